import { type ChildProcess, spawn } from 'node:child_process';
import { readdir, readFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { DendriteAlert } from '../../src/alerts/dendrite-alert.ts';
import { readZarrScanProgress } from '../../src/sinks/zarr-scan-writer.ts';

const MAIN = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));

/**
 * Every file of a scan's store, relative path → bytes, for comparing two runs byte for byte: the
 * progress record's clock (`updatedAt`) is taken out of each zarr.json, and files named in `skip`
 * are left out (the alert journal's order of ids differs between a crashed run and a whole one).
 */
export async function storeFiles(dir: string, skip: readonly string[] = []): Promise<Map<string, Buffer>> {
  const files = new Map<string, Buffer>();
  for (const entry of await readdir(dir, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile() || skip.includes(entry.name)) continue;
    const path = join(entry.parentPath, entry.name);
    let bytes = await readFile(path);
    if (entry.name === 'zarr.json') {
      const json = JSON.parse(bytes.toString('utf8')) as {
        attributes?: Record<string, { updatedAt?: unknown }>;
      };
      delete json.attributes?.['xct-sentinel']?.updatedAt;
      bytes = Buffer.from(JSON.stringify(json));
    }
    files.set(relative(dir, path), bytes);
  }
  return files;
}

/** The paths whose bytes differ between two `storeFiles` maps, or that only one has. */
export function differingFiles(a: Map<string, Buffer>, b: Map<string, Buffer>): string[] {
  const keys = new Set([...a.keys(), ...b.keys()]);
  return [...keys].filter((k) => !(a.get(k) && b.get(k)?.equals(a.get(k) as Buffer))).sort();
}

/** `run` on a watch folder, one scan, U-Net on one thread: the daemon the restart tests kill. */
export function folderDaemonArgs(watch: string, out: string, alerts: string): string[] {
  return [
    'run',
    '--watch',
    watch,
    '--out',
    out,
    '--alerts',
    alerts,
    '--model',
    'unet',
    '--threads',
    '1',
  ].concat(['--max-scans', '1', '--idle-timeout', '600']);
}

/** The alerts of a JSON-lines file, in order (none when it is not there). */
export async function readAlertsFile(path: string): Promise<DendriteAlert[]> {
  const text = await readFile(path, 'utf8').catch(() => '');
  return text
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as DendriteAlert);
}

/** The CLI as a child process (its stderr kept for failure messages), and its exit code once it exits. */
export function spawnDaemon(args: readonly string[]): {
  child: ChildProcess;
  exited: Promise<number | null>;
  stderr: () => string;
} {
  const child = spawn(process.execPath, ['--import', 'tsx', MAIN, ...args], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => {
    stderr += d;
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, exited, stderr: () => stderr };
}

/** Slices the store records as written (0 while it is not there). */
export async function slicesWritten(store: string): Promise<number> {
  return (await readZarrScanProgress(store).catch(() => undefined))?.slicesWritten.length ?? 0;
}
