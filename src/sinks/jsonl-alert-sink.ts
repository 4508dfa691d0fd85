import { type FileHandle, open, readFile, stat } from 'node:fs/promises';
import type { Writable } from 'node:stream';
import type { DendriteAlert } from '../alerts/dendrite-alert.ts';
import { OutputError } from '../errors.ts';
import type { AlertSink } from './alert-sink.ts';

/**
 * One JSON object per line, appended to a file (synced per alert, so an acknowledged alert survives
 * a crash) or written to a stream such as stdout. A file's existing lines are read first: the sink
 * `has` the alert ids already there (so a restarted daemon does not append one twice), and a last
 * line a crash cut short is closed with a newline before anything is appended after it.
 */
export async function createJsonlAlertSink(target: string | Writable): Promise<AlertSink> {
  if (typeof target !== 'string') return streamSink(target, (a) => `${JSON.stringify(a)}\n`);
  let handle: FileHandle;
  const held = new Set<string>();
  try {
    // Only a regular file is read back: /dev/stdout, a FIFO or a terminal would block or mean nothing.
    const info = await stat(target).catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return undefined;
      throw err;
    });
    const existing = info?.isFile() ? await readFile(target, 'utf8') : '';
    for (const line of existing.split('\n')) {
      if (line.trim() === '') continue;
      try {
        const id = (JSON.parse(line) as { alertId?: unknown }).alertId;
        if (typeof id === 'string') held.add(id);
      } catch {
        // A line cut short by a crash, or not ours: it holds no alert we can count on.
      }
    }
    handle = await open(target, 'a');
    if (existing.length > 0 && !existing.endsWith('\n')) await handle.write('\n');
  } catch (cause) {
    throw new OutputError(
      `--alerts ${target}: cannot open for appending`,
      { path: target, option: '--alerts' },
      { cause },
    );
  }
  let closed = false;
  return {
    has: (alertId) => held.has(alertId),
    async write(alert) {
      try {
        await handle.write(`${JSON.stringify(alert)}\n`);
        await handle.datasync();
        held.add(alert.alertId);
      } catch (cause) {
        throw new OutputError(
          `cannot append alert ${alert.alertId} to ${target}`,
          { path: target, scanId: alert.scanId, stage: 'sink' },
          { cause },
        );
      }
    },
    async close() {
      if (closed) return;
      closed = true;
      await handle.close();
    },
  };
}

/** A sink over a stream, each alert formatted by `format`; never closes the stream (it may be stdout). */
export function streamSink(stream: Writable, format: (alert: DendriteAlert) => string): AlertSink {
  return {
    write: (alert) =>
      new Promise<void>((resolve, reject) => {
        stream.write(format(alert), (err) => (err ? reject(err) : resolve()));
      }),
    close: async () => {},
  };
}
