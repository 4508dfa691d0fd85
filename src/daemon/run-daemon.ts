import { map, type Observable, Subject, type Subscription } from 'rxjs';
import type { AlertRules } from '../alerts/alert-rules.ts';
import { describeError } from '../errors.ts';
import type { SegmentationModel } from '../inference/load-model.ts';
import { type Logger, silentLogger } from '../log.ts';
import { decodeSlices } from '../operators/decode-slices.ts';
import { inferBatches } from '../operators/infer-batches.ts';
import { limitInFlight } from '../operators/limit-in-flight.ts';
import { microBatch } from '../operators/micro-batch.ts';
import { stitchSlices } from '../operators/stitch-slices.ts';
import { thresholdMask } from '../operators/threshold-mask.ts';
import { tilePatches } from '../operators/tile-patches.ts';
import { writeOutputs } from '../operators/write-outputs.ts';
import type { AlertSink } from '../sinks/alert-sink.ts';
import { takesNeighbours } from '../slices/blend-neighbours.ts';
import type { MaskedSlice, SliceRef } from '../slices/slice-types.ts';
import type { SliceCredits } from '../sources/slice-credits.ts';
import type { ScanMeta, SourceEvent } from '../sources/source-event.ts';
import { AlertDelivery } from './alert-delivery.ts';
import { type DaemonContext, failScan, ScanRegistry } from './daemon-context.ts';
import { DaemonStats } from './daemon-stats.ts';
import { admitSlice } from './decode-slice.ts';
import { NeighbourHold } from './neighbour-hold.ts';
import { type CompletedScan, finishScanIfDone } from './scan-completion.ts';
import type { QueuedSlice, ScanState } from './scan-state.ts';
import { writeSliceOutputs } from './slice-outputs.ts';
import { takeSourceEvent } from './source-intake.ts';

export type { CompletedScan } from './scan-completion.ts';

export interface DaemonOptions {
  source: Observable<SourceEvent>;
  /** Output folder: `<out>/<scanId>.ome.zarr` per scan. */
  out: string;
  model: SegmentationModel;
  sinks: AlertSink[];
  rules: AlertRules;
  tile?: { overlap?: number };
  inference?: { maxBatch?: number; maxDelayMs?: number };
  /**
   * A slice that fails to decode in a way that may pass (empty, truncated: a writer that paused
   * longer than the watcher's stability window) is read again, up to `attempts` times, waiting
   * `delayMs`, 2·`delayMs`, … in between. Only then is it reported and skipped.
   */
  decodeRetry?: { attempts?: number; delayMs?: number };
  /**
   * An alert a sink refuses is written to it again, after `delayMs`, 2·`delayMs`, … up to
   * `maxDelayMs` between tries (defaults 500 ms and 30 s), for as long as it takes: the scan waits
   * (and with it the source's offsets), no alert is journaled before every sink has acknowledged
   * it. Only the signal ends the retrying; such an alert stays out of the journal, so the next
   * start emits it again.
   */
  sinkRetry?: { delayMs?: number; maxDelayMs?: number };
  /**
   * The source's credits (a Kafka source and a replay take them; a folder source through
   * `takeCredits`): one comes back for each of its slices that has left the pipeline, was ignored,
   * or waits for its successor (held); a held slice that goes on takes one again.
   */
  credits?: SliceCredits;
  /** Slices decoded or in the model at once: the bound on memory, whatever the writer's pace. */
  maxSlicesInFlight?: number;
  /**
   * For a model that takes in the neighbouring slices (its card's `neighbourWeight`), slice z waits
   * for slice z + 1 to be complete, or for its scan to end, or at most this long (default 60 000 ms);
   * then it goes on with itself in place of the slice that did not come.
   */
  neighbourWaitMs?: number;
  /** Stop once this many scans have completed and every output is flushed. */
  maxScans?: number;
  signal?: AbortSignal;
  log?: Logger;
  stats?: DaemonStats;
  /** A `progress` scan event every this many slices (default 16); `started` comes with the first. */
  progressEvery?: number;
  /** Called when a scan's outputs are complete. */
  onScanComplete?: (scan: CompletedScan) => void;
  /** Called when a slice's outputs are durable in its store, before its alerts go out (the live view). */
  onSliceWritten?: (slice: MaskedSlice, meta: ScanMeta) => void;
  /** Called when a slice's mask is durable and its alerts emitted (for latency measurements). */
  onSliceDone?: (slice: { scanId: string; z: number; path?: string; readyAt: number; at: number }) => void;
}

/**
 * The live pipeline, as DESIGN.md draws it: source events → gate (backpressure) → decode (and blend
 * neighbours) → tile → micro-batch → infer → stitch → threshold → store + 3-D tracking + alerts.
 * The per-scan bookkeeping beside it: `takeSourceEvent` (what the source says), `resumeScan` (what an
 * earlier run left), `finishScanIfDone` (the end of a scan), `AlertDelivery` (sinks and journal).
 * Resolves when the source ends, `maxScans` scans are complete, or the signal aborts (in-flight
 * slices finish first).
 */
export function runDaemon(o: DaemonOptions): Promise<DaemonStats> {
  const log = o.log ?? silentLogger;
  const stats = o.stats ?? new DaemonStats();
  const { model } = o;
  const patch = model.patchSize;
  const overlap = o.tile?.overlap ?? 32;
  const maxBatch = o.inference?.maxBatch ?? 16;
  const retry = { attempts: o.decodeRetry?.attempts ?? 6, delayMs: o.decodeRetry?.delayMs ?? 250 };
  const ctx = daemonContext(o, log, stats);
  const { scans } = ctx;
  /** Slices admitted to the pipeline; the gate lets `maxSlicesInFlight` of them in at once. */
  const queue$ = new Subject<QueuedSlice>();
  /** One credit back to the gate per slice that left the pipeline (finished or skipped). */
  const credit$ = new Subject<void>();
  // A model that takes in the slices around each one sees slice z once z + 1 is there too.
  const hold = takesNeighbours(model)
    ? new NeighbourHold({
        waitMs: o.neighbourWaitMs ?? 60_000,
        send: (ref) => {
          o.credits?.retake();
          queue$.next(ref);
        },
        stats,
        log,
      })
    : undefined;

  return new Promise<DaemonStats>((resolve, reject) => {
    let sourceSub: Subscription | undefined;
    let settled = false;
    let sourceEnded = false;
    // Set by the signal: slices still waiting at the gate are left on disk for the next start.
    let stopping = false;

    const finishAll = (err?: unknown) => {
      if (settled) return;
      settled = true;
      sourceSub?.unsubscribe();
      for (const s of scans.values()) hold?.cancel(s);
      o.signal?.removeEventListener('abort', onAbort);
      void Promise.all([...scans.values()].map((s) => s.chain)).then(async () => {
        // Scans that finished meanwhile closed their own writers and left the registry.
        await Promise.all([...scans.values()].map((s) => s.writer?.close()));
        if (err) reject(err);
        else resolve(stats);
      });
    };
    const maybeStop = () => {
      if (stats.inFlight + stats.queued > 0) return;
      if (sourceEnded || (o.maxScans !== undefined && stats.scansCompleted >= o.maxScans)) queue$.complete();
    };
    /** No slice will come after this: those held for their successor go on, to be left on disk. */
    const endIntake = () => {
      sourceEnded = true;
      for (const s of scans.values()) hold?.release(s);
      maybeStop();
    };
    const onAbort = () => {
      log.info('stopping: no new slices; finishing those in flight');
      stopping = true;
      sourceSub?.unsubscribe();
      endIntake();
    };
    const finishIfDone = (s: ScanState) =>
      finishScanIfDone(ctx, s, {
        ...(o.onScanComplete && { completed: o.onScanComplete }),
        released: maybeStop,
      });
    /** A slice left the pipeline: its credit goes back to the gate. */
    const release = (ref: SliceRef) => {
      const s = scans.get(ref.scanId);
      if (s) s.pending--;
      stats.inFlight--;
      credit$.next();
      o.credits?.give();
      if (s) finishIfDone(s);
      maybeStop();
    };
    queue$
      .pipe(
        limitInFlight(credit$, o.maxSlicesInFlight ?? 4),
        map((ref) => {
          stats.queued--;
          stats.inFlight++;
          return ref;
        }),
        decodeSlices((ref: QueuedSlice) => admitSlice(ctx, ref, { stopping, retry }), release),
        tilePatches({ patch, overlap }),
        microBatch({ maxBatch, maxDelayMs: o.inference?.maxDelayMs ?? 10 }),
        inferBatches(model, { maxBatch, onBatch: (batch) => countBatch(stats, batch) }),
        stitchSlices({ patch, overlap }),
        thresholdMask(model.threshold),
        writeOutputs(
          (slice: MaskedSlice) => writeSliceOutputs(ctx, slice),
          (slice, err) => failScan(ctx, scans.open(slice.scanId), err, 'output'),
        ),
      )
      .subscribe({
        next: (slice) => release(slice),
        error: (err: unknown) => {
          log.error({ err }, `pipeline failed: ${describeError(err)}`);
          finishAll(err);
        },
        complete: () => finishAll(),
      });

    if (o.signal?.aborted) {
      sourceEnded = true;
      maybeStop();
      return;
    }
    o.signal?.addEventListener('abort', onAbort, { once: true });

    const intake = {
      enqueue: (s: ScanState, ref: QueuedSlice) => {
        if (!hold) return queue$.next(ref);
        hold.hold(s, ref);
        // It waits for the source now, not for the model: the source may read its successor.
        o.credits?.give();
      },
      ignored: () => o.credits?.give(),
      releaseHeld: (s: ScanState) => hold?.release(s),
      finishIfDone,
    };
    sourceSub = o.source.subscribe({
      next: (event) => takeSourceEvent(ctx, event, intake),
      error: (err: unknown) => {
        stats.sourceError = describeError(err);
        log.error({ err }, `source failed: ${stats.sourceError}`);
        // As on a stop, slices held for their successor are left for the next start (they are
        // not durable), rather than waiting out neighbourWaitMs.
        stopping = true;
        endIntake();
      },
      complete: () => {
        sourceEnded = true;
        // Scans the source never ended (it stopped first) are finished with what they have.
        for (const s of scans.values()) {
          hold?.release(s);
          s.ended = true;
          finishIfDone(s);
        }
        maybeStop();
      },
    });
  });
}

/** What the daemon's units share, from its options. */
function daemonContext(o: DaemonOptions, log: Logger, stats: DaemonStats): DaemonContext {
  return {
    out: o.out,
    model: o.model,
    rules: o.rules,
    log,
    stats,
    delivery: new AlertDelivery({
      sinks: o.sinks,
      stats,
      log,
      ...(o.signal && { signal: o.signal }),
      ...(o.sinkRetry && { retry: o.sinkRetry }),
    }),
    scans: new ScanRegistry(o.out, stats),
    progressEvery: o.progressEvery ?? 16,
    ...(o.signal && { signal: o.signal }),
    ...(o.onSliceWritten && { onSliceWritten: o.onSliceWritten }),
    ...(o.onSliceDone && { onSliceDone: o.onSliceDone }),
  };
}

/** One model call into the counters and histograms. */
function countBatch(stats: DaemonStats, { batch, ms }: { batch: number; ms: number }): void {
  stats.batches++;
  stats.patches += batch;
  stats.inferenceMs += ms;
  stats.batchSizes.push(batch);
  if (stats.batchSizes.length > 100_000) stats.batchSizes.splice(0, 50_000);
  stats.batchSize.observe(batch);
  stats.inferenceSeconds.observe(ms / 1000);
}
