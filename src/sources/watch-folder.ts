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
import { lstatSync, type Stats } from 'node:fs';
import { readdir, readFile, realpath, stat } from 'node:fs/promises';
import { basename, extname, isAbsolute, join, relative, resolve, sep } from 'node:path';
import { type FSWatcher, watch } from 'chokidar';
import { Observable } from 'rxjs';
import { ConfigError, DecodeError, SourceError, type XctError } from '../errors.ts';
import { type FileSig, fileState, sameSig } from './file-stability.ts';
import {
  DONE_NAME,
  isIgnoredName,
  META_NAME,
  parseSliceNumber,
  SLICE_EXTENSIONS,
  scanMetaFields,
  sidecarPath,
} from './scan-folder.ts';
import { type GapInfo, type SequencerStep, SliceSequencer } from './slice-sequencer.ts';
import type { ScanMeta } from './source-event.ts';
import { symlinkVerdict } from './symlink-policy.ts';
import { normalizeWatchOptions, type WatchFolderOptions } from './watch-folder-options.ts';

export { WATCH_FOLDER_DEFAULTS, type WatchFolderOptions } from './watch-folder-options.ts';
export type { ScanMeta };

/** Why a scan ended. */
export type ScanEndReason = 'done-marker' | 'expected-count' | 'idle-timeout';

/** A scan folder appeared (or was there at start-up). */
export interface ScanStartEvent {
  type: 'scan-start';
  scanId: string;
  dir: string;
  meta: ScanMeta;
}

/** `scan.json` arrived (or changed) after `scan-start` was emitted. */
export interface ScanMetaEvent {
  type: 'scan-meta';
  scanId: string;
  meta: ScanMeta;
}

/** A completely written slice file, in increasing z per scan. */
export interface SliceEvent {
  type: 'slice';
  scanId: string;
  z: number;
  path: string;
  /** Epoch ms when the file was seen complete. */
  readyAt: number;
}

/** A z that will not arrive: given up after a timeout, or the scan ended without it. */
export interface SliceMissingEvent {
  type: 'slice-missing';
  scanId: string;
  z: number;
  reason: string;
}

/** The last event of a scan. */
export interface ScanEndEvent {
  type: 'scan-end';
  scanId: string;
  reason: ScanEndReason;
  /** Slices emitted. */
  slices: number;
  missing: number[];
}

/** Something odd that the source skipped; the stream goes on. */
export interface FolderErrorEvent {
  type: 'error';
  scanId?: string;
  path?: string;
  error: XctError;
}

/** Everything `watchFolder` emits. */
export type FolderEvent =
  | ScanStartEvent
  | ScanMetaEvent
  | SliceEvent
  | SliceMissingEvent
  | ScanEndEvent
  | FolderErrorEvent;

const STAGE = 'source';

/** A file being watched until it is completely written. */
interface Tracked {
  path: string;
  name: string;
  kind: 'slice' | 'meta' | 'sidecar';
  /** The slice's z; -1 for other kinds. */
  z: number;
  sig: FileSig | undefined;
  /** When the file was last seen changing. */
  since: number;
  timer: NodeJS.Timeout | undefined;
  /** Stable at 0 bytes: not a slice, but not being written either. */
  empty: boolean;
}

interface ReadySlice {
  z: number;
  path: string;
  readyAt: number;
  sig: FileSig;
}

interface Scan {
  id: string;
  dir: string;
  meta: ScanMeta;
  started: boolean;
  /**
   * scan.json was read (or failed to read, or was refused, or stayed empty): the scan may start.
   * Until then a scan.json on disk holds the start back, so scan-start carries what it says.
   */
  metaSettled: boolean;
  /** The start was due (timer, end of scan) but waits for scan.json. */
  startWanted: boolean;
  ended: boolean;
  /** Set once scan.done was seen or the idle timeout fired; the end waits for files in progress. */
  ending: 'done-marker' | 'idle-timeout' | undefined;
  /** Admissions (lstat, readdir) in flight: the end must not overtake a file being registered. */
  busy: number;
  /** The order slices go out in: each z once, increasing, or reported missing. */
  seq: SliceSequencer<ReadySlice>;
  pending: Map<string, Tracked>;
  /** Complete `.raw` slices whose sidecar is not there yet, by path. */
  parked: Map<string, ReadySlice>;
  /** What each emitted file looked like when emitted, to catch rewrites. */
  emitted: Map<string, FileSig>;
  seen: Set<string>;
  metaTimer: NodeJS.Timeout | undefined;
  idleTimer: NodeJS.Timeout | undefined;
  gapTimer: NodeJS.Timeout | undefined;
}

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
    const scans = new Map<string, Scan>();
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
    const fail = (path: string, message: string, scanId?: string, slice?: number, cause?: unknown) =>
      new SourceError(
        `${path}: ${message}`,
        {
          path,
          stage: STAGE,
          ...(scanId !== undefined && { scanId }),
          ...(slice !== undefined && { slice }),
        },
        cause === undefined ? {} : { cause },
      );

    // --- scans -----------------------------------------------------------------------------

    const scanFor = (id: string): Scan => {
      let scan = scans.get(id);
      if (scan) return scan;
      const meta = { expected: (): number | undefined => undefined };
      scan = {
        id,
        dir: join(rootDir, id),
        meta: {},
        started: false,
        metaSettled: false,
        startWanted: false,
        ended: false,
        ending: undefined,
        busy: 0,
        seq: new SliceSequencer({
          firstSlice: o.firstSlice,
          missingSliceTimeoutMs: o.missingSliceTimeoutMs,
          expected: () => meta.expected(),
        }),
        pending: new Map(),
        parked: new Map(),
        emitted: new Map(),
        seen: new Set(),
        metaTimer: undefined,
        idleTimer: undefined,
        gapTimer: undefined,
      };
      scans.set(id, scan);
      const created = scan;
      meta.expected = () => created.meta.expectedSlices;
      // scan.json is often written just after the folder: give it a moment so scan-start carries it.
      created.metaTimer = later(() => start(created), 2 * o.stabilityMs + 2 * o.pollMs);
      touch(created);
      return created;
    };

    const touch = (scan: Scan): void => {
      if (scan.ended) return;
      cancel(scan.idleTimer);
      scan.idleTimer = later(() => {
        scan.idleTimer = undefined;
        scan.ending ??= 'idle-timeout';
        void sweep(scan);
      }, o.idleTimeoutMs);
    };

    /** Whether a scan.json (file, symlink, anything) is in the scan folder now. */
    const metaOnDisk = (scan: Scan): boolean => {
      try {
        lstatSync(join(scan.dir, META_NAME));
        return true;
      } catch {
        return false;
      }
    };

    /**
     * Emit scan-start, unless a scan.json on disk has not been read yet: then the start waits for
     * it (its reading starts the scan), so whether scan-start carries the metadata does not depend
     * on how fast this machine noticed the file. Returns whether the scan has started.
     */
    const start = (scan: Scan): boolean => {
      if (scan.started || scan.ended) return scan.started;
      if (!scan.metaSettled && metaOnDisk(scan)) {
        scan.startWanted = true;
        scan.metaTimer = cancel(scan.metaTimer);
        // The watcher may not have told us about it yet: register it ourselves.
        const path = join(scan.dir, META_NAME);
        if (!scan.seen.has(path)) void admit(scan, path, META_NAME);
        return false;
      }
      scan.started = true;
      scan.startWanted = false;
      scan.metaTimer = cancel(scan.metaTimer);
      emit({ type: 'scan-start', scanId: scan.id, dir: scan.dir, meta: { ...scan.meta } });
      advance(scan);
      return true;
    };

    /** scan.json is settled one way or another: a start that waited for it happens now. */
    const metaDone = (scan: Scan): void => {
      scan.metaSettled = true;
      if (scan.startWanted) start(scan);
    };

    /** Carry out what the sequencer decided: slices and gaps out, or the end by expected count. */
    const apply = (scan: Scan, steps: SequencerStep<ReadySlice>[]): void => {
      for (const step of steps) {
        if (closed) return;
        if (step.type === 'slice') {
          const { slice } = step;
          scan.emitted.set(slice.path, slice.sig);
          emit({ type: 'slice', scanId: scan.id, z: slice.z, path: slice.path, readyAt: slice.readyAt });
        } else if (step.type === 'missing') {
          // A raw file parked for want of its sidecar is accounted for by this event.
          for (const [path, p] of scan.parked) if (p.z === step.z) scan.parked.delete(path);
          emit({ type: 'slice-missing', scanId: scan.id, z: step.z, reason: step.reason });
        } else end(scan, 'expected-count');
      }
    };

    /** What the sequencer needs to know of the scan's files about a gap. */
    const gapsOf = (scan: Scan): GapInfo => ({
      beingWritten: (z) => {
        for (const t of scan.pending.values())
          if (t.kind === 'slice' && t.z === z && !t.empty && !scan.emitted.has(t.path)) return true;
        return false;
      },
      reason: (z, fallback) => {
        for (const t of scan.pending.values())
          if (t.kind === 'slice' && t.z === z && t.empty) return `${t.name} is empty (0 bytes)`;
        for (const p of scan.parked.values())
          if (p.z === z) return `${p.path} has no sidecar ${sidecarPath(p.path)}`;
        return fallback;
      },
    });

    /** Emit every slice whose predecessors are all emitted or given up, then re-arm the gap timer. */
    const advance = (scan: Scan): void => {
      if (!scan.started || scan.ended) return;
      scan.gapTimer = cancel(scan.gapTimer);
      const { steps, wakeAt } = scan.seq.advance(Date.now(), gapsOf(scan));
      apply(scan, steps);
      if (closed || scan.ended || wakeAt === undefined) return;
      scan.gapTimer = later(() => advance(scan), Math.max(0, wakeAt - Date.now()));
    };

    /** After scan.done or the idle timeout: once nothing is being written, flush and end. */
    const maybeFinish = (scan: Scan): void => {
      if (scan.ended || scan.ending === undefined || scan.busy > 0 || closed) return;
      // scan.json too: its expectedSlices decides which trailing slices are missing.
      for (const t of scan.pending.values()) {
        if (!t.empty && !scan.emitted.has(t.path)) return;
      }
      const why = scan.ending;
      // A scan.json not read yet decides the expected count: its reading comes back here.
      if (!start(scan) || scan.ended) return;
      // The scan is over: holes below the last complete slice will not be filled now.
      apply(scan, scan.seq.flush(why, gapsOf(scan)));
      if (!closed) end(scan, why);
    };

    const end = (scan: Scan, reason: ScanEndReason): void => {
      if (scan.ended) return;
      scan.ended = true;
      scan.metaTimer = cancel(scan.metaTimer);
      scan.idleTimer = cancel(scan.idleTimer);
      scan.gapTimer = cancel(scan.gapTimer);
      const leftovers = [...scan.seq.waiting(), ...scan.parked.values()].map((s) => ({
        z: s.z,
        path: s.path,
        why: `the scan ended (${reason}) before its turn`,
      }));
      for (const t of scan.pending.values()) {
        cancel(t.timer);
        // Ones already reported missing (an empty file at a gap) need no second word.
        if (t.kind === 'slice' && !scan.emitted.has(t.path) && !scan.seq.missing.includes(t.z)) {
          leftovers.push({
            z: t.z,
            path: t.path,
            why: `the scan ended (${reason}) while it was ${t.empty ? 'empty' : 'still being written'}`,
          });
        }
      }
      leftovers.sort((a, b) => a.z - b.z);
      scan.pending.clear();
      scan.seq.clear();
      scan.parked.clear();
      emit({
        type: 'scan-end',
        scanId: scan.id,
        reason,
        slices: scan.seq.emitted,
        missing: [...scan.seq.missing],
      });
      for (const s of leftovers) {
        report(fail(s.path, `slice ${s.z} not emitted: ${s.why}`, scan.id, s.z), scan.id, s.path);
      }
    };

    // --- files -----------------------------------------------------------------------------

    const track = (scan: Scan, path: string, name: string, kind: Tracked['kind'], z: number): void => {
      const existing = scan.pending.get(path);
      if (existing) {
        existing.since = Date.now();
        return;
      }
      const t: Tracked = {
        path,
        name,
        kind,
        z,
        sig: undefined,
        since: Date.now(),
        timer: undefined,
        empty: false,
      };
      scan.pending.set(path, t);
      t.timer = later(() => void poll(scan, t), o.pollMs);
    };

    const poll = async (scan: Scan, t: Tracked): Promise<void> => {
      t.timer = undefined;
      let info: Stats;
      try {
        info = await stat(t.path);
      } catch (cause) {
        if (closed || scan.pending.get(t.path) !== t) return;
        scan.pending.delete(t.path);
        // A file that vanished is simply no longer a candidate; anything else is worth saying.
        if (errorCode(cause) !== 'ENOENT')
          report(fail(t.path, 'cannot stat', scan.id, undefined, cause), scan.id, t.path);
        if (t.kind === 'meta') metaDone(scan);
        advance(scan);
        maybeFinish(scan);
        return;
      }
      if (closed || scan.pending.get(t.path) !== t) return;
      const sig: FileSig = { size: info.size, mtimeMs: info.mtimeMs, ino: info.ino };
      const now = Date.now();
      const state = fileState(t, sig, now, o.stabilityMs);
      if (state === 'changed') {
        t.sig = sig;
        t.since = now;
        t.empty = false;
      } else if (state === 'complete') {
        scan.pending.delete(t.path);
        onStable(scan, t, sig, now);
        return;
      } else if (state === 'empty') {
        if (!t.empty) {
          t.empty = true;
          // An empty scan.json says nothing yet; if it fills later, scan-meta follows.
          if (t.kind === 'meta') metaDone(scan);
          advance(scan);
          maybeFinish(scan);
          if (scan.ended || closed) return;
        }
      }
      t.timer = later(() => void poll(scan, t), o.pollMs);
    };

    const onStable = (scan: Scan, t: Tracked, sig: FileSig, now: number): void => {
      if (t.kind === 'meta') {
        void loadMeta(scan, t.path);
        return;
      }
      if (t.kind === 'sidecar') {
        for (const [rawPath, slice] of scan.parked) {
          if (sidecarPath(rawPath) === t.path) {
            scan.parked.delete(rawPath);
            accept(scan, slice);
          }
        }
        maybeFinish(scan);
        return;
      }
      const before = scan.emitted.get(t.path);
      if (before !== undefined) {
        if (!sameSig(before, sig)) {
          scan.emitted.set(t.path, sig);
          report(
            fail(t.path, `slice ${t.z} was rewritten after it was emitted; not emitted again`, scan.id, t.z),
            scan.id,
            t.path,
          );
        }
        maybeFinish(scan);
        return;
      }
      if (scan.ended) return;
      const slice: ReadySlice = { z: t.z, path: t.path, readyAt: now, sig };
      if (extname(t.path).toLowerCase() === '.raw') void checkSidecar(scan, slice);
      else accept(scan, slice);
      maybeFinish(scan);
    };

    const checkSidecar = async (scan: Scan, slice: ReadySlice): Promise<void> => {
      const sidecar = sidecarPath(slice.path);
      let state: 'complete' | 'fresh' | 'absent' = 'absent';
      if (!scan.pending.has(sidecar)) {
        scan.busy++;
        try {
          const info = await stat(sidecar);
          // Untouched for stabilityMs already; else it may be mid-write and chokidar not yet told us.
          state = info.size > 0 && Date.now() - info.mtimeMs >= o.stabilityMs ? 'complete' : 'fresh';
        } catch {
          // No sidecar yet: park the slice until one is complete (or the gap gives up on it).
        } finally {
          scan.busy--;
        }
      }
      if (closed || scan.ended) return;
      if (state === 'complete') accept(scan, slice);
      else {
        scan.parked.set(slice.path, slice);
        if (state === 'fresh') track(scan, sidecar, basename(sidecar), 'sidecar', -1);
      }
      advance(scan);
      maybeFinish(scan);
    };

    const accept = (scan: Scan, slice: ReadySlice): void => {
      const refusal = scan.seq.offer(slice);
      if (refusal !== undefined) {
        report(fail(slice.path, refusal, scan.id, slice.z), scan.id, slice.path);
        return;
      }
      advance(scan);
    };

    const loadMeta = async (scan: Scan, path: string): Promise<void> => {
      let meta: ScanMeta | undefined;
      let problem: XctError | undefined;
      scan.busy++;
      try {
        meta = parseScanJson(await readFile(path, 'utf8'), path, scan.id);
      } catch (cause) {
        problem =
          cause instanceof DecodeError
            ? cause
            : fail(path, 'cannot read scan metadata', scan.id, undefined, cause);
      } finally {
        scan.busy--;
      }
      if (closed || scan.ended) return;
      if (problem !== undefined) {
        report(problem, scan.id, path);
      } else if (meta !== undefined) {
        scan.meta = meta;
        if (scan.started) emit({ type: 'scan-meta', scanId: scan.id, meta: { ...meta } });
      }
      // With or without metadata, nothing better is coming soon: no reason to wait out the timer.
      scan.metaSettled = true;
      if (!scan.started) start(scan);
      else advance(scan);
      maybeFinish(scan);
    };

    /** Whether a file may be read: not a symlink leading outside the root (unless following them). */
    const allowed = async (path: string, scanId: string | undefined): Promise<boolean> => {
      const verdict = await symlinkVerdict(path, { dir: rootDir, real: realRoot }, o.followSymlinks);
      // Gone already: chokidar will report its unlink.
      if (verdict.ok || verdict.gone) return verdict.ok;
      reportOnce(
        `${verdict.kind}:${path}`,
        fail(path, verdict.reason, scanId, undefined, verdict.cause),
        scanId,
        path,
      );
      return false;
    };

    /** Register a new or changed file in a scan folder. */
    const admit = async (scan: Scan, path: string, name: string): Promise<void> => {
      scan.seen.add(path);
      // A slice seen complete but changed before its turn is not complete any more.
      scan.seq.withdraw(path);
      scan.busy++;
      let ok: boolean;
      try {
        ok = await allowed(path, scan.id);
      } finally {
        scan.busy--;
      }
      if (closed) return;
      if (ok) classify(scan, path, name);
      // A refused scan.json (a symlink out of the root) will never be read.
      else if (name === META_NAME) metaDone(scan);
      maybeFinish(scan);
    };

    const classify = (scan: Scan, path: string, name: string): void => {
      if (name === DONE_NAME) {
        if (scan.ended) return;
        scan.ending ??= 'done-marker';
        void sweep(scan);
        return;
      }
      if (name === META_NAME) {
        if (!scan.ended) track(scan, path, name, 'meta', -1);
        return;
      }
      const ext = extname(name).toLowerCase();
      if (ext === '.json') {
        if (!scan.ended) track(scan, path, name, 'sidecar', -1);
        return;
      }
      if (!SLICE_EXTENSIONS.has(ext)) {
        reportOnce(
          `kind:${path}`,
          fail(path, 'is not a slice file (.tif, .tiff or .raw); ignored', scan.id),
          scan.id,
          path,
        );
        return;
      }
      const z = parseSliceNumber(name);
      if (z === undefined) {
        reportOnce(
          `name:${path}`,
          fail(path, 'has no slice number in its name (e.g. slice_00012.tif); ignored', scan.id),
          scan.id,
          path,
        );
        return;
      }
      if (scan.emitted.has(path)) {
        track(scan, path, name, 'slice', z); // only to catch a rewrite
        return;
      }
      if (scan.ended) {
        reportOnce(
          `late:${path}`,
          fail(path, `appeared after scan ${scan.id} ended; ignored`, scan.id, z),
          scan.id,
          path,
        );
        return;
      }
      if (z < o.firstSlice) {
        reportOnce(
          `first:${path}`,
          fail(path, `slice ${z} is below firstSlice ${o.firstSlice}; ignored`, scan.id, z),
          scan.id,
          path,
        );
        return;
      }
      track(scan, path, name, 'slice', z);
    };

    /** scan.done may be seen before chokidar reports the last slices: list the folder ourselves. */
    const sweep = async (scan: Scan): Promise<void> => {
      scan.busy++;
      let names: string[] = [];
      try {
        names = await readdir(scan.dir);
      } catch (cause) {
        if (!closed)
          report(fail(scan.dir, 'cannot list the scan folder', scan.id, undefined, cause), scan.id, scan.dir);
      } finally {
        scan.busy--;
      }
      if (closed) return;
      const admitted: Promise<void>[] = [];
      for (const name of names) {
        const path = join(scan.dir, name);
        if (!isIgnoredName(name) && !scan.seen.has(path)) admitted.push(admit(scan, path, name));
      }
      await Promise.all(admitted);
      maybeFinish(scan);
    };

    const forget = (scan: Scan, path: string): void => {
      const t = scan.pending.get(path);
      if (t) {
        cancel(t.timer);
        scan.pending.delete(path);
      }
      scan.seq.withdraw(path);
      scan.parked.delete(path);
      scan.seen.delete(path);
      // A start waiting for a scan.json that is gone now need not wait.
      if (scan.startWanted) start(scan);
      advance(scan);
      maybeFinish(scan);
    };

    // --- chokidar ----------------------------------------------------------------------------

    /** Split a watched path into scan id and file name; undefined for the root and anything deeper. */
    const locate = (path: string): { scanId: string; name: string | undefined } | undefined => {
      const rel = relative(rootDir, path);
      if (rel === '') return undefined;
      const parts = rel.split(sep);
      if (isAbsolute(rel) || parts.some((p) => p === '..' || p === '.' || p === '')) {
        reportOnce(`escape:${path}`, fail(path, `is not inside ${rootDir}; ignored`));
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
      touch(scan);
      void admit(scan, path, name);
    };

    const onUnlink = (path: string): void => {
      const where = locate(path);
      const scan = where?.name === undefined ? undefined : scans.get(where.scanId);
      if (scan && !scan.ended) forget(scan, path);
    };

    const begin = async (): Promise<void> => {
      let info: Stats;
      try {
        info = await stat(rootDir);
        realRoot = await realpath(rootDir);
      } catch (cause) {
        throw new ConfigError(
          `watchFolder: cannot watch ${rootDir}: ${errorCode(cause) ?? 'unreadable'}; create the folder first`,
          { option: 'root', path: rootDir, stage: STAGE },
          { cause },
        );
      }
      if (!info.isDirectory()) {
        throw new ConfigError(`watchFolder: ${rootDir} is not a folder`, {
          option: 'root',
          path: rootDir,
          stage: STAGE,
        });
      }
      if (closed) return;
      watcher = watch(rootDir, {
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
      watcher
        .on('addDir', onDir)
        .on('add', onFile)
        .on('change', onFile)
        .on('unlink', onUnlink)
        .on('error', (cause: unknown) =>
          report(
            new SourceError(
              `${rootDir}: the file watcher failed: ${String(cause)}`,
              { path: rootDir, stage: STAGE },
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

function errorCode(err: unknown): string | undefined {
  if (typeof err !== 'object' || err === null || !('code' in err)) return undefined;
  return typeof err.code === 'string' ? err.code : undefined;
}

/** The fields of scan.json we use; every one optional, each checked for its type. */
function parseScanJson(text: string, path: string, scanId: string): ScanMeta {
  const bad = (reason: string, cause?: unknown) =>
    new DecodeError(
      `${path}: ${reason}`,
      { path, scanId, stage: STAGE },
      cause === undefined ? {} : { cause },
    );
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (cause) {
    throw bad(`not valid JSON (${cause instanceof Error ? cause.message : String(cause)})`, cause);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw bad('must hold a JSON object');
  }
  const { meta, problems } = scanMetaFields(value as Record<string, unknown>);
  if (problems.length > 0) throw bad(`${problems.join('; ')}; scan metadata ignored`);
  return meta;
}
