import type { AlertRules } from '../alerts/alert-rules.ts';
import { describeError, type XctError } from '../errors.ts';
import type { SegmentationModel } from '../inference/load-model.ts';
import type { Logger } from '../log.ts';
import { scanStorePath } from '../sinks/zarr-scan-writer.ts';
import type { MaskedSlice, SliceRef } from '../slices/slice-types.ts';
import type { ScanMeta } from '../sources/source-event.ts';
import type { AlertDelivery } from './alert-delivery.ts';
import type { DaemonStats } from './daemon-stats.ts';
import { newScanState, type ScanState } from './scan-state.ts';

/** What the daemon's units share: the model, the rules, where outputs go, and what they report to. */
export interface DaemonContext {
  out: string;
  model: SegmentationModel;
  rules: AlertRules;
  log: Logger;
  stats: DaemonStats;
  delivery: AlertDelivery;
  scans: ScanRegistry;
  signal?: AbortSignal;
  /** A `progress` scan event every this many slices; `started` comes with the first. */
  progressEvery: number;
  onSliceWritten?: (slice: MaskedSlice, meta: ScanMeta) => void;
  onSliceDone?: (slice: { scanId: string; z: number; path?: string; readyAt: number; at: number }) => void;
}

/**
 * The scans under way, by id, and the ids of those finished in this run: a finished scan's state is
 * let go (writer closed, buffers dropped) and only its id stays, so whatever a source says of it
 * later (a late or redelivered slice, a second scan-end) is told apart and ignored. An id is some
 * tens of bytes: a plant's year of scans.
 */
export class ScanRegistry {
  readonly #scans = new Map<string, ScanState>();
  readonly #finished = new Set<string>();

  constructor(
    private readonly out: string,
    private readonly stats: DaemonStats,
  ) {}

  get(scanId: string): ScanState | undefined {
    return this.#scans.get(scanId);
  }

  /** The scan's state, begun when the daemon first hears of it. */
  open(scanId: string): ScanState {
    let s = this.#scans.get(scanId);
    if (!s) {
      s = newScanState(scanId, scanStorePath(this.out, scanId));
      this.#scans.set(scanId, s);
      this.stats.scansStarted++;
      this.stats.scansInMemory = this.#scans.size;
    }
    return s;
  }

  isFinished(scanId: string): boolean {
    return this.#finished.has(scanId);
  }

  /** Let go of a finished scan: only its id stays. */
  release(s: ScanState): void {
    this.#finished.add(s.scanId);
    this.#scans.delete(s.scanId);
    this.stats.scansInMemory = this.#scans.size;
  }

  /**
   * Let go of a scan that is not finished here (another daemon finishes it): its id is not kept, so
   * if the scan comes back, it is taken up from its store like any other.
   */
  forget(s: ScanState): void {
    if (this.#scans.get(s.scanId) === s) this.#scans.delete(s.scanId);
    this.stats.scansInMemory = this.#scans.size;
  }

  values(): IterableIterator<ScanState> {
    return this.#scans.values();
  }
}

/** Mark a scan's outputs failed (once, with the first reason): its later slices are skipped. */
export function failScan(ctx: DaemonContext, s: ScanState, err: unknown, stage: string): void {
  ctx.stats.error(stage);
  if (!s.failed) {
    s.failed = describeError(err);
    ctx.log.error(
      { scanId: s.scanId, stage, err },
      `scan ${s.scanId} failed: ${s.failed}; other scans carry on`,
    );
  }
}

/** A slice that cannot be processed: counted, listed as missing in its scan, logged with the reason. */
export function skipSlice(ctx: DaemonContext, err: unknown, ref: SliceRef, stage: string): void {
  ctx.stats.error(stage);
  ctx.stats.slicesFailed++;
  ctx.scans.get(ref.scanId)?.missing.push(ref.z);
  const e = err as Partial<XctError>;
  ctx.log.error(
    { scanId: ref.scanId, slice: ref.z, path: ref.path, stage, code: e.code, err },
    `slice ${ref.z} of ${ref.scanId} skipped: ${describeError(err)}`,
  );
}

/** A slice done (durable, alerts out): the latency hook's record. */
export function sliceDone(ctx: DaemonContext, ref: SliceRef, at: number): void {
  ctx.onSliceDone?.({
    scanId: ref.scanId,
    z: ref.z,
    readyAt: ref.readyAt,
    at,
    ...(ref.path !== undefined && { path: ref.path }),
  });
}
