import { type FileHandle, open } from 'node:fs/promises';
import type { Writable } from 'node:stream';
import type { DendriteAlert } from '../alerts/dendrite-alert.ts';
import { OutputError } from '../errors.ts';
import type { AlertSink } from './alert-sink.ts';

/**
 * One JSON object per line, appended to a file (synced per alert, so an acknowledged alert survives
 * a crash) or written to a stream such as stdout.
 */
export async function createJsonlAlertSink(target: string | Writable): Promise<AlertSink> {
  if (typeof target !== 'string') return streamSink(target, (a) => `${JSON.stringify(a)}\n`);
  let handle: FileHandle;
  try {
    handle = await open(target, 'a');
  } catch (cause) {
    throw new OutputError(
      `--alerts ${target}: cannot open for appending`,
      { path: target, option: '--alerts' },
      { cause },
    );
  }
  let closed = false;
  return {
    async write(alert) {
      try {
        await handle.write(`${JSON.stringify(alert)}\n`);
        await handle.datasync();
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
