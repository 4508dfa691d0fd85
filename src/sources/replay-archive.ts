/**
 * The replay source: an archived scan played back through the live pipeline, as one scan.
 *
 * RxJS pushes, so a fast reader would pile decoded slices up in front of a slow model. With
 * `credits` (the pipeline's `SliceCredits`), the next slice is read only once fewer than `window` of
 * its slices are out;
 * the default window of 1 also makes a `max`-speed replay deterministic: every slice is finished
 * (mask written, alerts raised) before the next is read (or, for a model that takes in the slice
 * after each one, before the one after that), so micro-batches hold the same patches and alerts see
 * the same scan progress on every run.
 */
import { Observable } from 'rxjs';
import { DecodeError, isXctError, UsageError } from '../errors.ts';
import type { ArchiveSlice, ArchiveVolume } from './archive-volume.ts';
import { openArchive } from './open-archive.ts';
import type { SliceCredits } from './slice-credits.ts';
import type { SourceEvent } from './source-event.ts';

/** Options of `replayArchive`. */
export interface ReplayOptions {
  /** `max`: as fast as the consumer drains; a number: that many times the original pace (1 = as acquired). */
  speed: 'max' | number;
  /** Default: the archive's name (`tooth.h5` → `tooth`), with anything but letters, digits, `.`, `_`, `-` as `_`. */
  scanId?: string;
  /**
   * Slices per second of the original scan: needed for a paced replay of an archive that does not
   * record its pace (HDF5, Zarr, TIFF); overrides a folder's own (scan.json rate, file times).
   */
  rate?: number;
  /** The consumer's credits: a slice is read only once one is free (see SliceCredits). */
  credits?: SliceCredits;
  /** With `credits`: the next slice is read once fewer than this many are out (default 1). */
  window?: number;
  signal?: AbortSignal;
}

const STAGE = 'source';
/**
 * A paced replay is a live scanner and does not wait for the pipeline, but decoded pixels would
 * pile up without bound behind a model slower than the pace: past this many it waits after all.
 */
const PACED_MAX_PENDING = 32;
const SCAN_ID = /^[\w.-]+$/;

/**
 * Replay an archived scan (a path, or an opened `ArchiveVolume`, which the replay then owns and
 * closes) as scan-start, one slice per z in order, and scan-end. A bad archive is the Observable's
 * error (UsageError or DecodeError naming the file); unsubscribing stops reading and closes it.
 */
export function replayArchive(
  archive: string | ArchiveVolume,
  options: ReplayOptions,
): Observable<SourceEvent> {
  const o = normalizeOptions(options);
  return new Observable<SourceEvent>((subscriber) => {
    let closed = false;
    let volume: ArchiveVolume | undefined;
    const timers = new Set<NodeJS.Timeout>();
    /** Resolvers of waits in progress, released at teardown so the loop can exit. */
    const waiters = new Set<() => void>();

    const emit = (event: SourceEvent): void => {
      if (!closed) subscriber.next(event);
    };
    const sleep = (ms: number): Promise<void> =>
      new Promise<void>((resolve) => {
        const done = () => {
          clearTimeout(timer);
          timers.delete(timer);
          waiters.delete(done);
          resolve();
        };
        const timer = setTimeout(done, Math.max(0, ms));
        timers.add(timer);
        waiters.add(done);
      });
    /** Ends every wait at teardown (and on the signal), so the loop can exit. */
    const stop = new AbortController();
    /** A credit for the next slice, once fewer than `limit` are out: whether one was taken. */
    const gate = async (limit: number): Promise<boolean> =>
      o.credits !== undefined && (await o.credits.take(limit, { signal: stop.signal }));
    const abort = () => {
      stop.abort();
      for (const wake of [...waiters]) wake();
    };
    o.signal?.addEventListener('abort', abort, { once: true });

    const run = async (): Promise<void> => {
      o.signal?.throwIfAborted();
      const v =
        typeof archive === 'string'
          ? await openArchive(archive, o.signal ? { signal: o.signal } : {})
          : archive;
      volume = v;
      if (closed) {
        // The subscriber left while the archive was opening; teardown had nothing to close yet.
        await v.close();
        return;
      }
      const scanId = o.scanId ?? scanIdFor(v.name);
      const pace = o.speed === 'max' ? [] : replayPace(v, o.rate);
      const inline = v.kind !== 'folder';
      const missing = new Set(v.missing);
      const skipped: number[] = [];
      let slices = 0;
      emit({
        type: 'scan-start',
        scanId,
        ...(v.kind === 'folder' && { dir: v.path }),
        meta: { ...v.meta, expectedSlices: v.meta.expectedSlices ?? v.depth },
      });
      const started = performance.now();
      for (let z = 0; z < v.depth; z++) {
        if (closed) return;
        o.signal?.throwIfAborted();
        if (missing.has(z)) {
          skipped.push(z);
          emit({ type: 'slice-missing', scanId, z, reason: `the archive has no slice ${z}` });
          continue;
        }
        let took = false;
        if (o.speed === 'max') {
          took = await gate(o.window);
        } else {
          // Absolute schedule: slice z is due at its original offset / speed, so pacing never drifts.
          await sleep(started + (pace[z] as number) / o.speed - performance.now());
          if (inline) took = await gate(Math.max(o.window, PACED_MAX_PENDING));
        }
        /** Not handed over after all: the credit goes back. */
        const unTake = () => {
          if (took) o.credits?.give();
          took = false;
        };
        if (closed) return unTake();
        if (o.signal?.aborted) unTake();
        o.signal?.throwIfAborted();
        let slice: ArchiveSlice;
        try {
          slice = await v.read(z, o.signal ? { signal: o.signal } : {});
        } catch (err) {
          unTake();
          o.signal?.throwIfAborted();
          // One unreadable slice (a corrupt chunk) is a gap, as in a live scan: the rest still counts.
          const error = isXctError(err)
            ? err
            : new DecodeError(
                `${v.path}: cannot read slice ${z}: ${err instanceof Error ? err.message : String(err)}`,
                { path: v.path, scanId, slice: z, stage: STAGE },
                { cause: err },
              );
          skipped.push(z);
          emit({ type: 'error', scanId, path: v.path, error });
          emit({ type: 'slice-missing', scanId, z, reason: error.message });
          continue;
        }
        if (closed) return unTake();
        slices++;
        emit({ type: 'slice', scanId, z, readyAt: Date.now(), ...slice });
        // Without a consumer to ask, at least let it run between slices.
        if (o.speed === 'max' && o.credits === undefined) await new Promise((r) => setImmediate(r));
      }
      if (closed) return;
      emit({ type: 'scan-end', scanId, reason: 'archive-end', slices, missing: skipped });
      subscriber.complete();
    };

    run().catch((err: unknown) => {
      if (!closed) subscriber.error(err);
    });

    return () => {
      closed = true;
      o.signal?.removeEventListener('abort', abort);
      for (const timer of timers) clearTimeout(timer);
      timers.clear();
      abort();
      // Nobody is listening any more; a failing close has no one to tell. An archive still opening
      // is closed by the loop as soon as it is open.
      (volume ?? (typeof archive === 'string' ? undefined : archive))?.close().catch(() => undefined);
    };
  });
}

const KIND_NAMES: Readonly<Record<ArchiveVolume['kind'], string>> = {
  folder: 'scan folder',
  tiff: 'multi-page TIFF',
  hdf5: 'HDF5 file',
  projections: 'DXchange file of projections',
  zarr: 'Zarr array',
  simulated: 'simulated scan',
};

/**
 * When each slice is due in a paced replay, in ms after the first: from `rate` when given, else
 * from the archive; a UsageError when neither says.
 */
export function replayPace(volume: ArchiveVolume, rate?: number): readonly number[] {
  if (rate !== undefined) return Array.from({ length: volume.depth }, (_, z) => (z * 1000) / rate);
  if (volume.paceMs !== undefined) return volume.paceMs;
  throw new UsageError(
    `${volume.path}: this ${KIND_NAMES[volume.kind]} does not record how fast it was acquired; give the original rate (--rate SLICES_PER_S) or replay at --speed max`,
    { path: volume.path, option: '--rate', stage: STAGE },
  );
}

/** The scan id a replay uses by default for an archive name. */
export function scanIdFor(name: string): string {
  const id = name.replace(/[^\w.-]/g, '_');
  return id === '' || id === '.' || id === '..' ? 'replay' : id;
}

interface Resolved {
  speed: 'max' | number;
  scanId: string | undefined;
  rate: number | undefined;
  credits: SliceCredits | undefined;
  window: number;
  signal: AbortSignal | undefined;
}

/** Check the options once, when the replay is created: a bad value is a UsageError naming the option. */
function normalizeOptions(options: ReplayOptions): Resolved {
  const { speed, scanId, rate, credits, signal } = options;
  if (speed !== 'max' && !(typeof speed === 'number' && Number.isFinite(speed) && speed > 0)) {
    throw new UsageError(
      `--speed must be max or a number of times the original pace > 0, got ${String(speed)}`,
      {
        option: '--speed',
      },
    );
  }
  if (scanId !== undefined && (!SCAN_ID.test(scanId) || scanId === '.' || scanId === '..')) {
    throw new UsageError(`--scan-id may hold letters, digits, '.', '_' and '-' only, got "${scanId}"`, {
      option: '--scan-id',
    });
  }
  if (rate !== undefined && !(Number.isFinite(rate) && rate > 0)) {
    throw new UsageError(`--rate must be a number of slices per second > 0, got ${rate}`, {
      option: '--rate',
    });
  }
  const window = options.window ?? 1;
  if (!Number.isSafeInteger(window) || window < 1) {
    throw new UsageError(`window must be an integer ≥ 1, got ${window}`, { option: 'window' });
  }
  if (credits !== undefined && typeof credits.take !== 'function') {
    throw new UsageError('credits must be a SliceCredits', { option: 'credits' });
  }
  return { speed, scanId, rate, credits, window, signal };
}
