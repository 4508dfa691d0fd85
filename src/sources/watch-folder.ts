/**
 * The folder source: one sub-folder per scan under a watched root, one file per slice.
 *
 * Completeness is decided by polling each file's size, mtime and inode ourselves rather than with
 * chokidar's `awaitWriteFinish`, because that option (chokidar 5) skips files found during the
 * initial scan (a slice half written when the daemon starts would be emitted truncated) and its
 * poll timers outlive `close()`. A file renamed into place is complete from the start and passes
 * the same check after stabilityMs. Pixels are never read here: the file on disk is the buffer,
 * the pipeline decodes when it is ready.
 */
import type { Stats } from 'node:fs';
import { realpath, stat } from 'node:fs/promises';
import { isAbsolute, join, relative, resolve, sep } from 'node:path';
import { type FSWatcher, watch } from 'chokidar';
import { Observable } from 'rxjs';
import { ConfigError, SourceError, type XctError } from '../errors.ts';
import type { FolderEvent } from './folder-events.ts';
import { errorCode, type FolderContext, FolderScan, sourceError } from './folder-scan.ts';
import { isIgnoredName } from './scan-folder.ts';
import type { ScanMeta } from './source-event.ts';
import { symlinkVerdict } from './symlink-policy.ts';
import {
  normalizeWatchOptions,
  type ResolvedWatchOptions,
  type WatchFolderOptions,
} from './watch-folder-options.ts';

export type * from './folder-events.ts';
export { WATCH_FOLDER_DEFAULTS, type WatchFolderOptions } from './watch-folder-options.ts';
export type { ScanMeta };

/**
 * Watch `root` for scan folders and emit each scan's start, its completely written slices in z
 * order, gaps, and its end. Options are checked now (ConfigError); unsubscribing closes the watcher.
 */
export function watchFolder(root: string, options: WatchFolderOptions = {}): Observable<FolderEvent> {
  if (typeof root !== 'string' || root.length === 0) {
    throw new ConfigError('watchFolder: root must be a non-empty folder path', { option: 'root' });
  }
  const o = normalizeWatchOptions(options);
  const rootDir = resolve(root);
  return new Observable<FolderEvent>((subscriber) => {
    let closed = false;
    let watcher: FSWatcher | undefined;
    let realRoot = rootDir;
    const scans = new Map<string, FolderScan>();
    const timers = new Set<NodeJS.Timeout>();
    const reportedOnce = new Set<string>();

    const emit = (event: FolderEvent): void => {
      if (!closed) subscriber.next(event);
    };
    const later = (fn: () => void, ms: number): NodeJS.Timeout => {
      const timer = setTimeout(() => {
        timers.delete(timer);
        if (!closed) fn();
      }, ms);
      timers.add(timer);
      return timer;
    };
    const cancel = (timer: NodeJS.Timeout | undefined): undefined => {
      if (timer !== undefined) {
        clearTimeout(timer);
        timers.delete(timer);
      }
      return undefined;
    };
    const report = (error: XctError, scanId?: string, path?: string): void => {
      emit({
        type: 'error',
        ...(scanId !== undefined && { scanId }),
        ...(path !== undefined && { path }),
        error,
      });
    };
    /** Report a standing problem with a file once, not on every event the file causes. */
    const reportOnce = (key: string, error: XctError, scanId?: string, path?: string): void => {
      if (reportedOnce.has(key)) return;
      reportedOnce.add(key);
      report(error, scanId, path);
    };
    /** Whether a file may be read: not a symlink leading outside the root (unless following them). */
    const allowed = async (path: string, scanId: string | undefined): Promise<boolean> => {
      const verdict = await symlinkVerdict(path, { dir: rootDir, real: realRoot }, o.followSymlinks);
      // Gone already: chokidar will report its unlink.
      if (verdict.ok || verdict.gone) return verdict.ok;
      reportOnce(
        `${verdict.kind}:${path}`,
        sourceError(path, verdict.reason, scanId, undefined, verdict.cause),
        scanId,
        path,
      );
      return false;
    };

    const ctx: FolderContext = { o, closed: () => closed, emit, later, cancel, report, reportOnce, allowed };
    const scanFor = (id: string): FolderScan => {
      let scan = scans.get(id);
      if (!scan) {
        scan = new FolderScan(ctx, id, join(rootDir, id));
        scans.set(id, scan);
      }
      return scan;
    };

    // --- chokidar ----------------------------------------------------------------------------

    /** Split a watched path into scan id and file name; undefined for the root and anything deeper. */
    const locate = (path: string): { scanId: string; name: string | undefined } | undefined => {
      const rel = relative(rootDir, path);
      if (rel === '') return undefined;
      const parts = rel.split(sep);
      if (isAbsolute(rel) || parts.some((p) => p === '..' || p === '.' || p === '')) {
        reportOnce(`escape:${path}`, sourceError(path, `is not inside ${rootDir}; ignored`));
        return undefined;
      }
      const [scanId, name] = parts;
      if (scanId === undefined || parts.length > 2) return undefined;
      return { scanId, name };
    };

    const onDir = (path: string): void => {
      const where = locate(path);
      if (where?.name === undefined && where !== undefined) scanFor(where.scanId);
    };

    const onFile = (path: string): void => {
      const where = locate(path);
      if (where === undefined) return;
      const { scanId, name } = where;
      if (name === undefined) {
        // Files beside the scan folders are not scans, but a symlink out of the root is worth a word.
        void allowed(path, undefined);
        return;
      }
      const scan = scanFor(scanId);
      scan.touch();
      void scan.admit(path, name);
    };

    const onUnlink = (path: string): void => {
      const where = locate(path);
      const scan = where?.name === undefined ? undefined : scans.get(where.scanId);
      if (scan && !scan.ended) scan.forget(path);
    };

    const begin = async (): Promise<void> => {
      realRoot = await checkRoot(rootDir);
      if (closed) return;
      watcher = openWatcher(rootDir, o)
        .on('addDir', onDir)
        .on('add', onFile)
        .on('change', onFile)
        .on('unlink', onUnlink)
        .on('error', (cause: unknown) =>
          report(
            new SourceError(
              `${rootDir}: the file watcher failed: ${String(cause)}`,
              { path: rootDir, stage: 'source' },
              { cause },
            ),
          ),
        );
    };

    // What keeps the process running while the folder is watched (chokidar's handles do not).
    const keepAlive = setInterval(() => undefined, 1 << 30);
    begin().catch((err: unknown) => {
      if (!closed) subscriber.error(err);
    });

    return () => {
      closed = true;
      clearInterval(keepAlive);
      for (const timer of timers) clearTimeout(timer);
      timers.clear();
      scans.clear();
      // Nobody is listening any more, so a failing close has no one to tell; it must not crash the process.
      watcher?.close().catch(() => undefined);
      watcher = undefined;
    };
  });
}

/** The root's real path, once it is known to be a folder we can watch (else a ConfigError). */
async function checkRoot(rootDir: string): Promise<string> {
  let info: Stats;
  let real: string;
  try {
    info = await stat(rootDir);
    real = await realpath(rootDir);
  } catch (cause) {
    throw new ConfigError(
      `watchFolder: cannot watch ${rootDir}: ${errorCode(cause) ?? 'unreadable'}; create the folder first`,
      { option: 'root', path: rootDir, stage: 'source' },
      { cause },
    );
  }
  if (!info.isDirectory())
    throw new ConfigError(`watchFolder: ${rootDir} is not a folder`, {
      option: 'root',
      path: rootDir,
      stage: 'source',
    });
  return real;
}

/** chokidar on the root and its scan folders (one level down), hidden and temporary files ignored. */
function openWatcher(rootDir: string, o: ResolvedWatchOptions): FSWatcher {
  return watch(rootDir, {
    // chokidar 5 orphans a directory's fs.watch handle when close() lands while it is adding
    // that directory (paulmillr/chokidar#1482): ours would keep a stopped daemon's process
    // alive for ever. Its handles therefore do not hold the process; `keepAlive` does, and
    // teardown always clears it.
    persistent: false,
    depth: 1,
    followSymlinks: o.followSymlinks,
    usePolling: o.usePolling,
    interval: o.pollMs,
    binaryInterval: o.pollMs,
    ignoreInitial: false,
    ignored: (path: string) => {
      const rel = relative(rootDir, path);
      if (rel === '' || isAbsolute(rel) || rel === '..' || rel.startsWith(`..${sep}`)) return false;
      const parts = rel.split(sep);
      return parts.length > 2 || isIgnoredName(parts[parts.length - 1] ?? '');
    },
  });
}
