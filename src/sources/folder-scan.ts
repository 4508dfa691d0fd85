/**
 * One scan folder as the folder source follows it: which of its files are being written, which are
 * complete, its `scan.json`, `scan.done` and idle timer, and the order its slices go out in (a
 * `SliceSequencer`). It emits through the watcher's `FolderContext`; the watcher (chokidar, the
 * root, symlinks) tells it of files with `admit`, `forget` and `touch`.
 *
 * Over 400 lines because every step of a file's way (seen, stable, accepted, in order, emitted or
 * given up) changes the same per-scan state; each method is one of those steps.
 */
import { lstatSync, type Stats } from 'node:fs';
import { readdir, readFile, stat } from 'node:fs/promises';
import { basename, extname, join } from 'node:path';
import { DecodeError, SourceError, type XctError } from '../errors.ts';
import { type FileSig, fileState, sameSig } from './file-stability.ts';
import type { FolderEvent, ScanEndReason } from './folder-events.ts';
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
import type { ResolvedWatchOptions } from './watch-folder-options.ts';

const STAGE = 'source';

/** What a scan folder needs of the watcher: its options, its timers, its output. */
export interface FolderContext {
  o: ResolvedWatchOptions;
  closed(): boolean;
  emit(event: FolderEvent): void;
  /** A timer the watcher clears when it closes; `fn` does not run after that. */
  later(fn: () => void, ms: number): NodeJS.Timeout;
  cancel(timer: NodeJS.Timeout | undefined): undefined;
  report(error: XctError, scanId?: string, path?: string): void;
  /** Report a standing problem with a file once, not on every event the file causes. */
  reportOnce(key: string, error: XctError, scanId?: string, path?: string): void;
  /** Whether a file may be read (the symlink policy). */
  allowed(path: string, scanId: string | undefined): Promise<boolean>;
}

/** A problem with a file of the watched folder, naming it. */
export function sourceError(path: string, message: string, scanId?: string, slice?: number, cause?: unknown) {
  return new SourceError(
    `${path}: ${message}`,
    {
      path,
      stage: STAGE,
      ...(scanId !== undefined && { scanId }),
      ...(slice !== undefined && { slice }),
    },
    cause === undefined ? {} : { cause },
  );
}

/** A file being watched until it is completely written. */
export interface Tracked {
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

export interface ReadySlice {
  z: number;
  path: string;
  readyAt: number;
  sig: FileSig;
}

export class FolderScan {
  readonly id: string;
  readonly dir: string;
  meta: ScanMeta = {};
  started: boolean = false;
  /**
   * scan.json was read (or failed to read, or was refused, or stayed empty): the scan may start.
   * Until then a scan.json on disk holds the start back, so scan-start carries what it says.
   */
  metaSettled: boolean = false;
  /** The start was due (timer, end of scan) but waits for scan.json. */
  startWanted: boolean = false;
  ended: boolean = false;
  /** Set once scan.done was seen or the idle timeout fired; the end waits for files in progress. */
  ending: 'done-marker' | 'idle-timeout' | undefined = undefined;
  /** Admissions (lstat, readdir) in flight: the end must not overtake a file being registered. */
  busy: number = 0;
  /** The order slices go out in: each z once, increasing, or reported missing. */
  readonly seq: SliceSequencer<ReadySlice>;
  readonly pending: Map<string, Tracked> = new Map();
  /** Complete `.raw` slices whose sidecar is not there yet, by path. */
  readonly parked: Map<string, ReadySlice> = new Map();
  /** What each emitted file looked like when emitted, to catch rewrites. */
  readonly emitted: Map<string, FileSig> = new Map();
  readonly seen: Set<string> = new Set();
  metaTimer: NodeJS.Timeout | undefined = undefined;
  idleTimer: NodeJS.Timeout | undefined = undefined;
  gapTimer: NodeJS.Timeout | undefined = undefined;

  constructor(
    private readonly ctx: FolderContext,
    id: string,
    dir: string,
  ) {
    this.id = id;
    this.dir = dir;
    this.seq = new SliceSequencer({
      firstSlice: ctx.o.firstSlice,
      missingSliceTimeoutMs: ctx.o.missingSliceTimeoutMs,
      expected: () => this.meta.expectedSlices,
    });
    // scan.json is often written just after the folder: give it a moment so scan-start carries it.
    this.metaTimer = ctx.later(() => this.start(), 2 * ctx.o.stabilityMs + 2 * ctx.o.pollMs);
    this.touch();
  }

  touch(): void {
    if (this.ended) return;
    this.ctx.cancel(this.idleTimer);
    this.idleTimer = this.ctx.later(() => {
      this.idleTimer = undefined;
      this.ending ??= 'idle-timeout';
      void this.sweep();
    }, this.ctx.o.idleTimeoutMs);
  }

  /** Whether a scan.json (file, symlink, anything) is in the scan folder now. */
  private metaOnDisk(): boolean {
    try {
      lstatSync(join(this.dir, META_NAME));
      return true;
    } catch {
      return false;
    }
  }

  /**
   * Emit scan-start, unless a scan.json on disk has not been read yet: then the start waits for
   * it (its reading starts the scan), so whether scan-start carries the metadata does not depend
   * on how fast this machine noticed the file. Returns whether the scan has started.
   */
  private start(): boolean {
    if (this.started || this.ended) return this.started;
    if (!this.metaSettled && this.metaOnDisk()) {
      this.startWanted = true;
      this.metaTimer = this.ctx.cancel(this.metaTimer);
      // The watcher may not have told us about it yet: register it ourselves.
      const path = join(this.dir, META_NAME);
      if (!this.seen.has(path)) void this.admit(path, META_NAME);
      return false;
    }
    this.started = true;
    this.startWanted = false;
    this.metaTimer = this.ctx.cancel(this.metaTimer);
    this.ctx.emit({ type: 'scan-start', scanId: this.id, dir: this.dir, meta: { ...this.meta } });
    this.advance();
    return true;
  }

  /** scan.json is settled one way or another: a start that waited for it happens now. */
  private metaDone(): void {
    this.metaSettled = true;
    if (this.startWanted) this.start();
  }

  /** Carry out what the sequencer decided: slices and gaps out, or the end by expected count. */
  private apply(steps: SequencerStep<ReadySlice>[]): void {
    for (const step of steps) {
      if (this.ctx.closed()) return;
      if (step.type === 'slice') {
        const { slice } = step;
        this.emitted.set(slice.path, slice.sig);
        this.ctx.emit({
          type: 'slice',
          scanId: this.id,
          z: slice.z,
          path: slice.path,
          readyAt: slice.readyAt,
        });
      } else if (step.type === 'missing') {
        // A raw file parked for want of its sidecar is accounted for by this event.
        for (const [path, p] of this.parked) if (p.z === step.z) this.parked.delete(path);
        this.ctx.emit({ type: 'slice-missing', scanId: this.id, z: step.z, reason: step.reason });
      } else this.end('expected-count');
    }
  }

  /** What the sequencer needs to know of the scan's files about a gap. */
  private gapsOf(): GapInfo {
    return {
      beingWritten: (z) => {
        for (const t of this.pending.values())
          if (t.kind === 'slice' && t.z === z && !t.empty && !this.emitted.has(t.path)) return true;
        return false;
      },
      reason: (z, fallback) => {
        for (const t of this.pending.values())
          if (t.kind === 'slice' && t.z === z && t.empty) return `${t.name} is empty (0 bytes)`;
        for (const p of this.parked.values())
          if (p.z === z) return `${p.path} has no sidecar ${sidecarPath(p.path)}`;
        return fallback;
      },
    };
  }

  /** Emit every slice whose predecessors are all emitted or given up, then re-arm the gap timer. */
  private advance(): void {
    if (!this.started || this.ended) return;
    this.gapTimer = this.ctx.cancel(this.gapTimer);
    const { steps, wakeAt } = this.seq.advance(Date.now(), this.gapsOf());
    this.apply(steps);
    if (this.ctx.closed() || this.ended || wakeAt === undefined) return;
    this.gapTimer = this.ctx.later(() => this.advance(), Math.max(0, wakeAt - Date.now()));
  }

  /** After scan.done or the idle timeout: once nothing is being written, flush and end. */
  private maybeFinish(): void {
    if (this.ended || this.ending === undefined || this.busy > 0 || this.ctx.closed()) return;
    // scan.json too: its expectedSlices decides which trailing slices are missing.
    for (const t of this.pending.values()) {
      if (!t.empty && !this.emitted.has(t.path)) return;
    }
    const why = this.ending;
    // A scan.json not read yet decides the expected count: its reading comes back here.
    if (!this.start() || this.ended) return;
    // The scan is over: holes below the last complete slice will not be filled now.
    this.apply(this.seq.flush(why, this.gapsOf()));
    if (!this.ctx.closed()) this.end(why);
  }

  private end(reason: ScanEndReason): void {
    if (this.ended) return;
    this.ended = true;
    this.metaTimer = this.ctx.cancel(this.metaTimer);
    this.idleTimer = this.ctx.cancel(this.idleTimer);
    this.gapTimer = this.ctx.cancel(this.gapTimer);
    const leftovers = [...this.seq.waiting(), ...this.parked.values()].map((s) => ({
      z: s.z,
      path: s.path,
      why: `the scan ended (${reason}) before its turn`,
    }));
    for (const t of this.pending.values()) {
      this.ctx.cancel(t.timer);
      // Ones already reported missing (an empty file at a gap) need no second word.
      if (t.kind === 'slice' && !this.emitted.has(t.path) && !this.seq.missing.includes(t.z)) {
        leftovers.push({
          z: t.z,
          path: t.path,
          why: `the scan ended (${reason}) while it was ${t.empty ? 'empty' : 'still being written'}`,
        });
      }
    }
    leftovers.sort((a, b) => a.z - b.z);
    this.pending.clear();
    this.seq.clear();
    this.parked.clear();
    this.ctx.emit({
      type: 'scan-end',
      scanId: this.id,
      reason,
      slices: this.seq.emitted,
      missing: [...this.seq.missing],
    });
    for (const s of leftovers) {
      this.ctx.report(
        sourceError(s.path, `slice ${s.z} not emitted: ${s.why}`, this.id, s.z),
        this.id,
        s.path,
      );
    }
  }

  // --- files -----------------------------------------------------------------------------

  private track(path: string, name: string, kind: Tracked['kind'], z: number): void {
    const existing = this.pending.get(path);
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
    this.pending.set(path, t);
    t.timer = this.ctx.later(() => void this.poll(t), this.ctx.o.pollMs);
  }

  private async poll(t: Tracked): Promise<void> {
    t.timer = undefined;
    let info: Stats;
    try {
      info = await stat(t.path);
    } catch (cause) {
      if (this.ctx.closed() || this.pending.get(t.path) !== t) return;
      this.pending.delete(t.path);
      // A file that vanished is simply no longer a candidate; anything else is worth saying.
      if (errorCode(cause) !== 'ENOENT')
        this.ctx.report(sourceError(t.path, 'cannot stat', this.id, undefined, cause), this.id, t.path);
      if (t.kind === 'meta') this.metaDone();
      this.advance();
      this.maybeFinish();
      return;
    }
    if (this.ctx.closed() || this.pending.get(t.path) !== t) return;
    const sig: FileSig = { size: info.size, mtimeMs: info.mtimeMs, ino: info.ino };
    const now = Date.now();
    const state = fileState(t, sig, now, this.ctx.o.stabilityMs);
    if (state === 'changed') {
      t.sig = sig;
      t.since = now;
      t.empty = false;
    } else if (state === 'complete') {
      this.pending.delete(t.path);
      this.onStable(t, sig, now);
      return;
    } else if (state === 'empty') {
      if (!t.empty) {
        t.empty = true;
        // An empty scan.json says nothing yet; if it fills later, scan-meta follows.
        if (t.kind === 'meta') this.metaDone();
        this.advance();
        this.maybeFinish();
        if (this.ended || this.ctx.closed()) return;
      }
    }
    t.timer = this.ctx.later(() => void this.poll(t), this.ctx.o.pollMs);
  }

  private onStable(t: Tracked, sig: FileSig, now: number): void {
    if (t.kind === 'meta') {
      void this.loadMeta(t.path);
      return;
    }
    if (t.kind === 'sidecar') {
      for (const [rawPath, slice] of this.parked) {
        if (sidecarPath(rawPath) === t.path) {
          this.parked.delete(rawPath);
          this.accept(slice);
        }
      }
      this.maybeFinish();
      return;
    }
    const before = this.emitted.get(t.path);
    if (before !== undefined) {
      if (!sameSig(before, sig)) {
        this.emitted.set(t.path, sig);
        this.ctx.report(
          sourceError(
            t.path,
            `slice ${t.z} was rewritten after it was emitted; not emitted again`,
            this.id,
            t.z,
          ),
          this.id,
          t.path,
        );
      }
      this.maybeFinish();
      return;
    }
    if (this.ended) return;
    const slice: ReadySlice = { z: t.z, path: t.path, readyAt: now, sig };
    if (extname(t.path).toLowerCase() === '.raw') void this.checkSidecar(slice);
    else this.accept(slice);
    this.maybeFinish();
  }

  private async checkSidecar(slice: ReadySlice): Promise<void> {
    const sidecar = sidecarPath(slice.path);
    let state: 'complete' | 'fresh' | 'absent' = 'absent';
    if (!this.pending.has(sidecar)) {
      this.busy++;
      try {
        const info = await stat(sidecar);
        // Untouched for stabilityMs already; else it may be mid-write and chokidar not yet told us.
        state = info.size > 0 && Date.now() - info.mtimeMs >= this.ctx.o.stabilityMs ? 'complete' : 'fresh';
      } catch {
        // No sidecar yet: park the slice until one is complete (or the gap gives up on it).
      } finally {
        this.busy--;
      }
    }
    if (this.ctx.closed() || this.ended) return;
    if (state === 'complete') this.accept(slice);
    else {
      this.parked.set(slice.path, slice);
      if (state === 'fresh') this.track(sidecar, basename(sidecar), 'sidecar', -1);
    }
    this.advance();
    this.maybeFinish();
  }

  private accept(slice: ReadySlice): void {
    const refusal = this.seq.offer(slice);
    if (refusal !== undefined) {
      this.ctx.report(sourceError(slice.path, refusal, this.id, slice.z), this.id, slice.path);
      return;
    }
    this.advance();
  }

  private async loadMeta(path: string): Promise<void> {
    let meta: ScanMeta | undefined;
    let problem: XctError | undefined;
    this.busy++;
    try {
      meta = parseScanJson(await readFile(path, 'utf8'), path, this.id);
    } catch (cause) {
      problem =
        cause instanceof DecodeError
          ? cause
          : sourceError(path, 'cannot read scan metadata', this.id, undefined, cause);
    } finally {
      this.busy--;
    }
    if (this.ctx.closed() || this.ended) return;
    if (problem !== undefined) {
      this.ctx.report(problem, this.id, path);
    } else if (meta !== undefined) {
      this.meta = meta;
      if (this.started) this.ctx.emit({ type: 'scan-meta', scanId: this.id, meta: { ...meta } });
    }
    // With or without metadata, nothing better is coming soon: no reason to wait out the timer.
    this.metaSettled = true;
    if (!this.started) this.start();
    else this.advance();
    this.maybeFinish();
  }

  /** Register a new or changed file in a scan folder. */
  async admit(path: string, name: string): Promise<void> {
    this.seen.add(path);
    // A slice seen complete but changed before its turn is not complete any more.
    this.seq.withdraw(path);
    this.busy++;
    let ok: boolean;
    try {
      ok = await this.ctx.allowed(path, this.id);
    } finally {
      this.busy--;
    }
    if (this.ctx.closed()) return;
    if (ok) this.classify(path, name);
    // A refused scan.json (a symlink out of the root) will never be read.
    else if (name === META_NAME) this.metaDone();
    this.maybeFinish();
  }

  private classify(path: string, name: string): void {
    if (name === DONE_NAME) {
      if (this.ended) return;
      this.ending ??= 'done-marker';
      void this.sweep();
      return;
    }
    if (name === META_NAME) {
      if (!this.ended) this.track(path, name, 'meta', -1);
      return;
    }
    const ext = extname(name).toLowerCase();
    if (ext === '.json') {
      if (!this.ended) this.track(path, name, 'sidecar', -1);
      return;
    }
    if (!SLICE_EXTENSIONS.has(ext)) {
      this.ctx.reportOnce(
        `kind:${path}`,
        sourceError(path, 'is not a slice file (.tif, .tiff or .raw); ignored', this.id),
        this.id,
        path,
      );
      return;
    }
    const z = parseSliceNumber(name);
    if (z === undefined) {
      this.ctx.reportOnce(
        `name:${path}`,
        sourceError(path, 'has no slice number in its name (e.g. slice_00012.tif); ignored', this.id),
        this.id,
        path,
      );
      return;
    }
    if (this.emitted.has(path)) {
      this.track(path, name, 'slice', z); // only to catch a rewrite
      return;
    }
    if (this.ended) {
      this.ctx.reportOnce(
        `late:${path}`,
        sourceError(path, `appeared after scan ${this.id} ended; ignored`, this.id, z),
        this.id,
        path,
      );
      return;
    }
    if (z < this.ctx.o.firstSlice) {
      this.ctx.reportOnce(
        `first:${path}`,
        sourceError(path, `slice ${z} is below firstSlice ${this.ctx.o.firstSlice}; ignored`, this.id, z),
        this.id,
        path,
      );
      return;
    }
    this.track(path, name, 'slice', z);
  }

  /** scan.done may be seen before chokidar reports the last slices: list the folder ourselves. */
  private async sweep(): Promise<void> {
    this.busy++;
    let names: string[] = [];
    try {
      names = await readdir(this.dir);
    } catch (cause) {
      if (!this.ctx.closed())
        this.ctx.report(
          sourceError(this.dir, 'cannot list the scan folder', this.id, undefined, cause),
          this.id,
          this.dir,
        );
    } finally {
      this.busy--;
    }
    if (this.ctx.closed()) return;
    const admitted: Promise<void>[] = [];
    for (const name of names) {
      const path = join(this.dir, name);
      if (!isIgnoredName(name) && !this.seen.has(path)) admitted.push(this.admit(path, name));
    }
    await Promise.all(admitted);
    this.maybeFinish();
  }

  forget(path: string): void {
    const t = this.pending.get(path);
    if (t) {
      this.ctx.cancel(t.timer);
      this.pending.delete(path);
    }
    this.seq.withdraw(path);
    this.parked.delete(path);
    this.seen.delete(path);
    // A start waiting for a scan.json that is gone now need not wait.
    if (this.startWanted) this.start();
    this.advance();
    this.maybeFinish();
  }
}

export function errorCode(err: unknown): string | undefined {
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
