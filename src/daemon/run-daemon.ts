import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { catchError, concatMap, EMPTY, from, map, type Observable, Subject, type Subscription } from 'rxjs';
import type { AlertRules } from '../alerts/alert-rules.ts';
import type { DendriteAlert } from '../alerts/dendrite-alert.ts';
import { DendriteMonitor, type TrackedSlice } from '../alerts/dendrite-monitor.ts';
import type { ScanEvent } from '../codecs/avro-scan-event.ts';
import type { DecodedImage } from '../codecs/decode-tiff.ts';
import { type Dtype, dtypeOf, type TypedArray } from '../codecs/dtype.ts';
import { readSliceFile } from '../codecs/read-slice-file.ts';
import { DecodeError, describeError, isXctError, OutputError, type XctError } from '../errors.ts';
import type { SegmentationModel } from '../inference/load-model.ts';
import { type Logger, silentLogger } from '../log.ts';
import { modelInput } from '../operators/blend-neighbours.ts';
import { inferBatches } from '../operators/infer-batches.ts';
import { limitInFlight } from '../operators/limit-in-flight.ts';
import { microBatch } from '../operators/micro-batch.ts';
import { normalizeSlice } from '../operators/normalize-slice.ts';
import type { MaskedSlice, NormalizedSlice, SliceRef } from '../operators/slice-types.ts';
import { stitchSlices } from '../operators/stitch-slices.ts';
import { thresholdMask } from '../operators/threshold-mask.ts';
import { tilePatches } from '../operators/tile-patches.ts';
import type { AlertSink } from '../sinks/alert-sink.ts';
import {
  createZarrScanWriter,
  readZarrScanPlane,
  readZarrScanProgress,
  readZarrScanSlice,
  type ZarrScanWriter,
} from '../sinks/zarr-scan-writer.ts';
import type { ScanMeta, SourceEvent } from '../sources/source-event.ts';
import { AlertJournal } from './alert-journal.ts';
import { DaemonStats } from './daemon-stats.ts';

/** Slices narrower or shorter than this are refused: a 1-pixel slice is a broken header, not a scan
 * (thin ones are not: the shared tooth data set has 640×2 projections). */
const MIN_SLICE_SIDE = 2;

/** Inside each scan's store: the ids of the alerts already emitted (see AlertJournal). */
export const ALERT_JOURNAL_FILE = 'xct-sentinel-alerts.journal';

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

export interface CompletedScan {
  scanId: string;
  zarrPath: string;
  slices: number;
  missing: number[];
  summary: DendriteAlert;
  failed: string | undefined;
  /** Whether every sink acknowledged the summary (false only when stopped during an outage). */
  acknowledged: boolean;
}

interface ScanState {
  scanId: string;
  meta: ScanMeta;
  /** Slices seen on disk so far (the scanner's progress). */
  acquired: number;
  /** Slices handed to the pipeline and not yet finished. */
  pending: number;
  processed: number;
  missing: number[];
  /** Slices left on disk because the daemon was stopping. */
  skipped: number;
  ended: boolean;
  finished: boolean;
  /** Set once the scan's outputs failed: later slices are skipped, other scans carry on. */
  failed: string | undefined;
  width?: number;
  height?: number;
  /** The pixel type of the scan's first slice: the store's image dtype. */
  dtype?: Dtype;
  writer?: ZarrScanWriter;
  monitor?: DendriteMonitor;
  /** The last slice the monitor has seen: it takes slices in ascending z only. */
  monitorZ: number;
  /** Settles once what an earlier run left of this scan (store, journal) has been taken up. */
  resumed?: Promise<void>;
  /** Slices an earlier run finished: durable in the store, their alerts emitted. */
  durable: Set<number>;
  journal?: AlertJournal;
  /** Why the source ended the scan (done-marker, expected-count, idle-timeout…). */
  endReason?: string;
  /** Whether the scan's `started` event has gone out (or an earlier run sent it). */
  announced: boolean;
  /** Serializes this scan's output work. */
  chain: Promise<void>;
  /** The newest slice, kept from the pipeline until the one after it is complete (neighbour blending). */
  held?: { ref: Ref; timer: NodeJS.Timeout };
  /** The last slice decoded: the previous neighbour of the next one. */
  previous?: { z: number; data: TypedArray };
  /** A slice read ahead as the next neighbour of another: its own turn takes it from here. */
  lookahead?: { z: number; image: DecodedImage };
}

interface Ref extends SliceRef {
  image?: DecodedImage;
  /** The slice after this one, complete when this one was sent on: its pixels blend into this one's input. */
  next?: Ref;
}

/**
 * The live pipeline: source events → gate (backpressure) → decode → normalize → tile →
 * micro-batch → infer → stitch → threshold → OME-Zarr + 3-D tracking + alerts. Resolves when the
 * source ends, `maxScans` scans are complete, or the signal aborts (in-flight slices finish first).
 */
export function runDaemon(o: DaemonOptions): Promise<DaemonStats> {
  const log = o.log ?? silentLogger;
  const stats = o.stats ?? new DaemonStats();
  const model = o.model;
  const patch = model.patchSize;
  const overlap = o.tile?.overlap ?? 32;
  const scans = new Map<string, ScanState>();
  const retryAttempts = o.decodeRetry?.attempts ?? 6;
  const retryDelayMs = o.decodeRetry?.delayMs ?? 250;
  const progressEvery = o.progressEvery ?? 16;
  const sinkDelayMs = o.sinkRetry?.delayMs ?? 500;
  const sinkMaxDelayMs = o.sinkRetry?.maxDelayMs ?? 30_000;
  const refs$ = new Subject<Ref>();
  const done$ = new Subject<void>();
  // A model that takes in the slices around each one sees slice z once z + 1 is there too.
  const holdsSlices = model.neighbourWeight > 0;
  const neighbourWaitMs = o.neighbourWaitMs ?? 60_000;
  /**
   * Scans finished in this run: their state is let go (writer closed, buffers dropped) and only the
   * id stays, so whatever a source says of such a scan later (a late or redelivered slice, a second
   * scan-end) is told apart and ignored. An id is some tens of bytes: a plant's year of scans.
   */
  const finishedIds = new Set<string>();

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
      for (const s of scans.values()) if (s.held) clearTimeout(s.held.timer);
      o.signal?.removeEventListener('abort', onAbort);
      void Promise.all([...scans.values()].map((s) => s.chain)).then(async () => {
        await Promise.all([...scans.values()].map((s) => s.writer?.close()));
        if (err) reject(err);
        else resolve(stats);
      });
    };
    const maybeStop = () => {
      if (stats.inFlight + stats.queued > 0) return;
      if (sourceEnded || (o.maxScans !== undefined && stats.scansCompleted >= o.maxScans)) {
        refs$.complete();
      }
    };
    const onAbort = () => {
      log.info('stopping: no new slices; finishing those in flight');
      stopping = true;
      sourceSub?.unsubscribe();
      sourceEnded = true;
      // Held slices go on to be counted as left on disk, like every other slice not yet started.
      for (const s of scans.values()) sendHeld(s);
      maybeStop();
    };

    const scanFor = (scanId: string): ScanState => {
      let s = scans.get(scanId);
      if (!s) {
        s = {
          scanId,
          meta: {},
          acquired: 0,
          pending: 0,
          processed: 0,
          missing: [],
          skipped: 0,
          ended: false,
          finished: false,
          failed: undefined,
          monitorZ: -1,
          durable: new Set(),
          announced: false,
          chain: Promise.resolve(),
        };
        scans.set(scanId, s);
        stats.scansStarted++;
        stats.scansInMemory = scans.size;
      }
      return s;
    };

    /**
     * Send a scan's held slice into the pipeline; `next`, when it is the slice right after it, goes
     * with it as its next neighbour.
     */
    const sendHeld = (s: ScanState, next?: Ref) => {
      const held = s.held;
      if (!held) return;
      clearTimeout(held.timer);
      s.held = undefined;
      stats.held--;
      refs$.next(next?.z === held.ref.z + 1 ? { ...held.ref, next } : held.ref);
    };

    const release = (ref: SliceRef) => {
      const s = scans.get(ref.scanId);
      if (s) s.pending--;
      stats.inFlight--;
      done$.next();
      if (s) maybeFinishScan(s);
      maybeStop();
    };

    const failScan = (s: ScanState, err: unknown, stage: string) => {
      stats.error(stage);
      if (!s.failed) {
        s.failed = describeError(err);
        log.error(
          { scanId: s.scanId, stage, err },
          `scan ${s.scanId} failed: ${s.failed}; other scans carry on`,
        );
      }
    };

    const maybeFinishScan = (s: ScanState) => {
      // A scan with slices left for the next start is not complete, whatever its source said.
      if (!s.ended || s.pending > 0 || s.finished || s.skipped > 0) return;
      s.finished = true;
      // Its pixels are not needed again; the rest goes once its outputs are complete.
      s.previous = undefined;
      s.lookahead = undefined;
      s.chain = s.chain.then(async () => {
        const zarrPath = join(o.out, `${s.scanId}.ome.zarr`);
        try {
          // Every slice was durable already (an earlier run wrote the last one and was killed
          // before it finished the store): open the store to finish it all the same.
          if (!s.writer && s.durable.size > 0 && s.width !== undefined && s.height !== undefined && s.dtype)
            s.writer = await openWriter(s, zarrPath, s.width, s.height, s.dtype);
          // The volume spans every slice the scanner produced; missing ones stay at the fill value.
          if (s.writer) await s.writer.finish({ slices: s.acquired });
        } catch (err) {
          failScan(s, err, 'zarr');
        }
        const monitor = s.monitor ?? monitorFor(s, zarrPath);
        const summary = monitor.finish({
          missingSlices: [...s.missing].sort((a, b) => a - b),
          acquired: s.acquired,
        });
        // Its tracking buffers (slice-sized) are not needed once the summary is out.
        s.monitor = undefined;
        // A scan an earlier run completed has announced it already.
        const announced = s.journal?.has(summary.alertId) === true;
        const acknowledged = await emit(s, [summary]);
        if (!announced) await scanEvent(s, 'completed', { reason: s.endReason ?? null, summary });
        stats.scansCompleted++;
        log.info(
          { scanId: s.scanId, slices: s.processed, missing: s.missing.length },
          `scan ${s.scanId} complete`,
        );
        o.onScanComplete?.({
          scanId: s.scanId,
          zarrPath,
          slices: s.processed,
          missing: s.missing,
          summary,
          failed: s.failed,
          acknowledged,
        });
        // Let go of the scan: its writer closes, its state goes; only its id stays (finishedIds).
        finishedIds.add(s.scanId);
        scans.delete(s.scanId);
        stats.scansInMemory = scans.size;
        await s.writer?.close();
        maybeStop();
      });
    };

    /** The scan's store writer (an existing store of the scan is taken up where it was). */
    const openWriter = (s: ScanState, zarrPath: string, width: number, height: number, dtype: Dtype) =>
      createZarrScanWriter({
        root: zarrPath,
        scanId: s.scanId,
        width,
        height,
        ...(s.meta.expectedSlices !== undefined && { expectedSlices: s.meta.expectedSlices }),
        voxelSizeUm: s.meta.voxelSizeUm ?? 1,
        imageDtype: dtype,
        model: model.identity,
      });

    const monitorFor = (s: ScanState, zarrPath: string) => {
      s.monitor ??= new DendriteMonitor({
        scanId: s.scanId,
        width: s.width ?? 1,
        height: s.height ?? 1,
        voxelSizeUm: s.meta.voxelSizeUm ?? 1,
        expectedSlices: s.meta.expectedSlices,
        rules: o.rules,
        model: model.identity,
        zarrPath,
      });
      return s.monitor;
    };

    /** Write one alert to one sink until it is acknowledged; false only when the signal ended it. */
    const deliver = async (s: ScanState, alert: DendriteAlert, sink: AlertSink, index: number) => {
      const where = { scanId: s.scanId, alertId: alert.alertId, sink: index };
      if (sink.has?.(alert.alertId)) {
        // Written there before a crash cut the journal's record short: not again.
        log.debug(where, `alert sink ${index} already holds alert ${alert.alertId}; not written again`);
        return true;
      }
      let attempt = 0;
      try {
        for (; ; attempt++) {
          try {
            await sink.write(alert);
            if (attempt > 0)
              log.info(
                where,
                `alert ${alert.alertId} acknowledged by sink ${index} after ${attempt} retries`,
              );
            return true;
          } catch (err) {
            if (attempt === 0) stats.alertsRetrying++;
            stats.error('sink');
            if (o.signal?.aborted) {
              stats.alertsUnacknowledged++;
              log.error(
                { ...where, err },
                `alert ${alert.alertId} of ${s.scanId} not acknowledged by sink ${index} (${describeError(err)}) and the daemon is stopping: not journaled, the next start emits it again`,
              );
              return false;
            }
            const wait = Math.min(sinkDelayMs * 2 ** Math.min(attempt, 30), sinkMaxDelayMs);
            log[attempt === 0 ? 'error' : 'warn'](
              { ...where, attempt: attempt + 1, err },
              `alert sink ${index} failed (${describeError(err)}); alert ${alert.alertId} of ${s.scanId} is written again in ${wait} ms, the scan waits for it`,
            );
            stats.sinkRetries++;
            try {
              await sleep(wait, undefined, o.signal ? { signal: o.signal } : {});
            } catch {
              // Aborted: one last try, then the stopping branch above.
            }
          }
        }
      } finally {
        if (attempt > 0) stats.alertsRetrying--;
      }
    };

    /** Emit and journal; false when an alert went unacknowledged (the daemon is stopping). */
    const emit = async (s: ScanState, alerts: DendriteAlert[]): Promise<boolean> => {
      let all = true;
      for (const alert of alerts) {
        if (s.journal?.has(alert.alertId)) {
          stats.alertsSuppressed++;
          log.debug({ scanId: s.scanId, alertId: alert.alertId }, 'alert already emitted before a restart');
          continue;
        }
        let acknowledged = true;
        for (const [index, sink] of o.sinks.entries())
          if (!(await deliver(s, alert, sink, index))) acknowledged = false;
        if (alert.kind === 'dendrite') stats.alerts[alert.severity]++;
        if (!acknowledged) {
          all = false;
          continue;
        }
        try {
          s.journal ??= await AlertJournal.open(journalPath(s));
          await s.journal.record(alert.alertId);
        } catch (err) {
          stats.error('journal');
          log.error({ scanId: s.scanId, alertId: alert.alertId, err }, describeError(err));
        }
      }
      return all;
    };

    /** A `started` or `progress` event to the sinks that publish scan events. */
    const scanEvent = async (
      s: ScanState,
      kind: ScanEvent['kind'],
      end?: { reason: string | null; summary: DendriteAlert },
    ) => {
      const expected = s.meta.expectedSlices ?? null;
      const event: ScanEvent = {
        scanId: s.scanId,
        kind,
        at: Date.now(),
        acquiredSlices: s.acquired,
        expectedSlices: expected,
        sampleId: s.meta.sampleId ?? null,
        voxelSizeUm: s.meta.voxelSizeUm ?? null,
        scanProgress: expected ? Math.min(1, s.acquired / expected) : null,
        width: s.width ?? null,
        height: s.height ?? null,
        endReason: end?.reason ?? null,
        summary: end?.summary.summary ?? null,
        summaryAlertId: end?.summary.alertId ?? null,
        failure: kind === 'completed' ? (s.failed ?? null) : null,
      };
      for (const sink of o.sinks) {
        if (!sink.writeScanEvent) continue;
        try {
          await sink.writeScanEvent(event);
        } catch (err) {
          stats.error('sink');
          log.error({ scanId: s.scanId, kind, err }, `scan event failed: ${describeError(err)}`);
        }
      }
    };

    const journalPath = (s: ScanState) => join(o.out, `${s.scanId}.ome.zarr`, ALERT_JOURNAL_FILE);

    /**
     * Take up what an earlier run left of this scan: the slices its store holds are not processed
     * again; they are read back, in z order, into the tracker, so it stands where it stood; alerts
     * they raise that the journal lacks (lost in a crash) are emitted now, the others are not.
     */
    const resumeScan = async (s: ScanState): Promise<void> => {
      const zarrPath = join(o.out, `${s.scanId}.ome.zarr`);
      s.journal = await AlertJournal.open(journalPath(s));
      const progress = await readZarrScanProgress(zarrPath);
      // Another scan's store under this name: the writer refuses it, with the reason, later.
      if (!progress || progress.scanId !== s.scanId || progress.slicesWritten.length === 0) return;
      s.announced = true;
      const zs = [...progress.slicesWritten].sort((a, b) => a - b);
      for (const z of zs) {
        const stored = await readZarrScanSlice(zarrPath, z);
        s.width ??= stored.width;
        s.height ??= stored.height;
        s.dtype ??= dtypeOf(stored.image);
        const slice: TrackedSlice = {
          z,
          width: stored.width,
          height: stored.height,
          normalized: normalizeSlice(stored.image, model.normalization),
          prob: stored.prob,
          mask: stored.mask,
        };
        s.monitorZ = z;
        await emit(s, monitorFor(s, zarrPath).addSlice(slice, Math.max(s.acquired, z + 1)));
        s.durable.add(z);
      }
      log.info(
        { scanId: s.scanId, slices: zs.length, alerts: s.journal.size },
        `scan ${s.scanId}: resuming after ${zs.length} slice(s) finished by an earlier run (${s.journal.size} alert(s) already emitted)`,
      );
    };

    const decode = async (ref: Ref): Promise<NormalizedSlice | undefined> => {
      const s = scanFor(ref.scanId);
      if (stopping) {
        s.skipped++;
        return undefined;
      }
      if (s.resumed) await s.resumed;
      if (s.failed) return undefined;
      if (s.durable.has(ref.z)) {
        s.processed++;
        stats.slicesResumed++;
        o.onSliceDone?.({
          scanId: ref.scanId,
          z: ref.z,
          readyAt: ref.readyAt,
          at: Date.now(),
          ...(ref.path !== undefined && { path: ref.path }),
        });
        return undefined;
      }
      let image: DecodedImage | undefined =
        ref.image ?? (s.lookahead?.z === ref.z ? s.lookahead.image : undefined);
      s.lookahead = undefined;
      for (let attempt = 1; image === undefined; attempt++) {
        try {
          image = await readSliceFile(ref.path as string, o.signal ? { signal: o.signal } : {});
        } catch (err) {
          if (isXctError(err) && err.canRetry && attempt < retryAttempts && !o.signal?.aborted) {
            log.warn(
              { scanId: ref.scanId, slice: ref.z, path: ref.path, attempt },
              `slice ${ref.z} of ${ref.scanId} not readable yet (${describeError(err)}); reading it again`,
            );
            await sleep(retryDelayMs * attempt);
            continue;
          }
          report(err, ref, 'decode');
          return undefined;
        }
      }
      const where = ref.path ?? `slice ${ref.z} of ${ref.scanId}`;
      const context = { path: ref.path, scanId: ref.scanId, slice: ref.z, stage: 'decode' };
      if (image.width < MIN_SLICE_SIDE || image.height < MIN_SLICE_SIDE) {
        report(
          new DecodeError(
            `${where}: ${image.width}×${image.height} is too small to be a reconstructed slice (at least ${MIN_SLICE_SIDE}×${MIN_SLICE_SIDE})`,
            context,
          ),
          ref,
          'decode',
        );
        return undefined;
      }
      if (s.dtype !== undefined && image.dtype !== s.dtype) {
        report(
          new DecodeError(`${where}: ${image.dtype} pixels differ from the scan's ${s.dtype}`, context),
          ref,
          'decode',
        );
        return undefined;
      }
      if (image.dtype === 'float32' || image.dtype === 'float64') {
        let bad = 0;
        for (let i = 0; i < image.data.length; i++) if (!Number.isFinite(image.data[i] as number)) bad++;
        if (bad > 0) {
          stats.error('decode');
          log.warn(
            { scanId: ref.scanId, slice: ref.z, path: ref.path, pixels: bad },
            `${where}: ${bad} pixels are NaN or infinite; segmented with them at the background level`,
          );
        }
      }
      if (s.width === undefined) {
        s.width = image.width;
        s.height = image.height;
        s.dtype = image.dtype;
      } else if (image.width !== s.width || image.height !== s.height) {
        report(
          new DecodeError(
            `${ref.path ?? `slice ${ref.z}`}: ${image.width}×${image.height} differs from the scan's ${s.width}×${s.height}`,
            { path: ref.path, scanId: ref.scanId, slice: ref.z, stage: 'decode' },
          ),
          ref,
          'decode',
        );
        return undefined;
      }
      const normalized = normalizeSlice(image.data, model.normalization);
      if (!(model.neighbourWeight > 0)) return { ...ref, ...image, normalized };
      const previous =
        s.previous?.z === ref.z - 1 ? s.previous.data : await readStoredImage(s, ref.z - 1, image);
      s.previous = { z: ref.z, data: image.data };
      const next = ref.next && (await readAhead(s, ref.next, image));
      return { ...ref, ...image, normalized, input: modelInput(image.data, previous, next, model) };
    };

    /**
     * A slice an earlier run finished, as the previous neighbour of the first one this run does: the
     * store keeps the decoded image bit for bit, so the slice gets what an uninterrupted run gave it.
     */
    const readStoredImage = async (
      s: ScanState,
      z: number,
      like: DecodedImage,
    ): Promise<TypedArray | undefined> => {
      if (!s.durable.has(z)) return undefined;
      try {
        const { data } = await readZarrScanPlane(join(o.out, `${s.scanId}.ome.zarr`), z, 'image');
        return data.length === like.data.length && dtypeOf(data) === like.dtype ? data : undefined;
      } catch (err) {
        log.warn(
          { scanId: s.scanId, slice: z, err },
          `slice ${z} of ${s.scanId} not readable from its store: ${describeError(err)}`,
        );
        return undefined;
      }
    };

    /**
     * The next slice's pixels for this one's input, kept for its own turn. One try: a slice that
     * cannot be read yet, or does not match, is left to its own decode (which retries and reports);
     * this one goes on with itself in its place. Not cut short by a stop: the slice it serves is
     * already in flight and is finished as an uninterrupted run would finish it.
     */
    const readAhead = async (s: ScanState, ref: Ref, like: DecodedImage): Promise<TypedArray | undefined> => {
      let image = ref.image;
      if (image === undefined) {
        try {
          image = await readSliceFile(ref.path as string);
        } catch (err) {
          log.warn(
            { scanId: ref.scanId, slice: ref.z, path: ref.path, err },
            `slice ${ref.z - 1} of ${ref.scanId} goes on without its next neighbour: ${describeError(err)}`,
          );
          return undefined;
        }
        s.lookahead = { z: ref.z, image };
      }
      const fits = image.width === like.width && image.height === like.height && image.dtype === like.dtype;
      return fits ? image.data : undefined;
    };

    const report = (err: unknown, ref: SliceRef, stage: string) => {
      stats.error(stage);
      stats.slicesFailed++;
      const s = scans.get(ref.scanId);
      s?.missing.push(ref.z);
      const e = err as Partial<XctError>;
      log.error(
        { scanId: ref.scanId, slice: ref.z, path: ref.path, stage, code: e.code, err },
        `slice ${ref.z} of ${ref.scanId} skipped: ${describeError(err)}`,
      );
    };

    const finishSlice = (slice: MaskedSlice): Promise<void> => {
      const s = scanFor(slice.scanId);
      const work = s.chain.then(async () => {
        if (s.failed) return;
        const zarrPath = join(o.out, `${s.scanId}.ome.zarr`);
        // Quantized once (by thresholdMask): what the store keeps is also what the tracker sees, so a
        // scan rebuilt from its store after a restart tracks exactly what an uninterrupted run would have.
        const { storedProb } = slice;
        try {
          s.writer ??= await openWriter(s, zarrPath, slice.width, slice.height, slice.dtype);
          await s.writer.writeSlice(slice.z, { image: slice.data, mask: slice.mask, prob: storedProb });
          o.onSliceWritten?.(slice, s.meta);
        } catch (err) {
          failScan(
            s,
            isXctError(err)
              ? err
              : new OutputError(
                  `cannot write ${zarrPath}`,
                  { path: zarrPath, scanId: s.scanId, slice: slice.z },
                  { cause: err },
                ),
            'zarr',
          );
          return;
        }
        if (!s.announced) {
          s.announced = true;
          await scanEvent(s, 'started');
        }
        let unacknowledged = false;
        if (slice.z > s.monitorZ) {
          s.monitorZ = slice.z;
          // Stopped while a sink refused one of its alerts: the slice is not done, so a Kafka
          // source does not commit past it and the next start takes the scan up again.
          if (!(await emit(s, monitorFor(s, zarrPath).addSlice({ ...slice, prob: storedProb }, s.acquired))))
            unacknowledged = true;
        } else {
          log.warn(
            { scanId: s.scanId, slice: slice.z },
            `slice ${slice.z} of ${s.scanId} came after slice ${s.monitorZ}: its mask is written, the tracker skips it`,
          );
        }
        s.processed++;
        stats.slicesOut++;
        if (s.processed % progressEvery === 0) await scanEvent(s, 'progress');
        const at = Date.now();
        stats.latenciesMs.push(at - slice.readyAt);
        stats.latencySeconds.observe((at - slice.readyAt) / 1000);
        if (stats.latenciesMs.length > 100_000) stats.latenciesMs.splice(0, 50_000);
        if (unacknowledged) return;
        o.onSliceDone?.({
          scanId: slice.scanId,
          z: slice.z,
          readyAt: slice.readyAt,
          at,
          ...(slice.path !== undefined && { path: slice.path }),
        });
      });
      s.chain = work;
      return work;
    };

    refs$
      .pipe(
        limitInFlight(done$, o.maxSlicesInFlight ?? 4),
        map((ref) => {
          stats.queued--;
          stats.inFlight++;
          return ref;
        }),
        concatMap((ref) =>
          from(decode(ref)).pipe(
            concatMap((slice) => {
              if (slice) return [slice];
              release(ref);
              return EMPTY;
            }),
          ),
        ),
        tilePatches({ patch, overlap }),
        microBatch({ maxBatch: o.inference?.maxBatch ?? 16, maxDelayMs: o.inference?.maxDelayMs ?? 10 }),
        inferBatches(model, {
          maxBatch: o.inference?.maxBatch ?? 16,
          onBatch: ({ batch, ms }) => {
            stats.batches++;
            stats.patches += batch;
            stats.inferenceMs += ms;
            stats.batchSizes.push(batch);
            if (stats.batchSizes.length > 100_000) stats.batchSizes.splice(0, 50_000);
            stats.batchSize.observe(batch);
            stats.inferenceSeconds.observe(ms / 1000);
          },
        }),
        stitchSlices({ patch, overlap }),
        thresholdMask(model.threshold),
        concatMap((slice) =>
          from(finishSlice(slice)).pipe(
            map(() => slice),
            catchError((err: unknown) => {
              failScan(scanFor(slice.scanId), err, 'output');
              return [slice];
            }),
          ),
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

    sourceSub = o.source.subscribe({
      next: (event) => {
        if (event.type !== 'error' && finishedIds.has(event.scanId)) {
          // A finished scan is not started again by a late or redelivered event: its store and
          // summary are complete, and a second summary would be a second alert.
          if (event.type === 'slice')
            log.warn(
              { scanId: event.scanId, slice: event.z },
              `slice ${event.z} arrived after scan ${event.scanId} ended; ignored`,
            );
          else
            log.debug(
              { scanId: event.scanId, event: event.type },
              `${event.type} of finished scan ${event.scanId}; ignored`,
            );
          return;
        }
        switch (event.type) {
          case 'scan-start':
          case 'scan-meta': {
            const s = scanFor(event.scanId);
            s.meta = { ...s.meta, ...event.meta };
            break;
          }
          case 'slice': {
            const s = scanFor(event.scanId);
            if (s.finished) {
              log.warn(
                { scanId: event.scanId, slice: event.z },
                `slice ${event.z} arrived after scan ${event.scanId} ended; ignored`,
              );
              break;
            }
            if (!s.resumed) {
              const scan = s;
              scan.resumed = resumeScan(scan).catch((err: unknown) => failScan(scan, err, 'resume'));
              scan.chain = scan.chain.then(() => scan.resumed);
            }
            s.acquired = Math.max(s.acquired, event.z + 1);
            s.pending++;
            stats.slicesIn++;
            stats.queued++;
            const ref: Ref = {
              scanId: event.scanId,
              z: event.z,
              readyAt: event.readyAt,
              ...(event.path !== undefined && { path: event.path }),
              ...(event.image && { image: event.image }),
            };
            if (!holdsSlices) {
              refs$.next(ref);
              break;
            }
            sendHeld(s, ref);
            const scan = s;
            const timer = setTimeout(() => {
              log.debug(
                { scanId: scan.scanId, slice: ref.z, waitedMs: neighbourWaitMs },
                `slice ${ref.z + 1} of ${scan.scanId} not there after ${neighbourWaitMs} ms; slice ${ref.z} goes on without it`,
              );
              sendHeld(scan);
            }, neighbourWaitMs);
            s.held = { ref, timer };
            stats.held++;
            break;
          }
          case 'slice-missing': {
            const s = scanFor(event.scanId);
            s.missing.push(event.z);
            stats.slicesMissing++;
            if (s.held?.ref.z === event.z - 1) sendHeld(s);
            log.warn(
              { scanId: event.scanId, slice: event.z },
              `slice ${event.z} of ${event.scanId} missing: ${event.reason}`,
            );
            break;
          }
          case 'scan-end': {
            const s = scanFor(event.scanId);
            s.ended = true;
            s.endReason = event.reason;
            sendHeld(s);
            log.info(
              { scanId: event.scanId, reason: event.reason },
              `scan ${event.scanId} ended (${event.reason})`,
            );
            maybeFinishScan(s);
            break;
          }
          case 'error': {
            stats.error('source');
            log.error(
              { scanId: event.scanId, path: event.path, code: event.error.code, err: event.error },
              describeError(event.error),
            );
            break;
          }
        }
      },
      error: (err: unknown) => {
        stats.sourceError = describeError(err);
        log.error({ err }, `source failed: ${stats.sourceError}`);
        // No slice will come after this: as on a stop, slices held for their successor are left
        // for the next start (they are not durable), rather than waiting out neighbourWaitMs.
        stopping = true;
        sourceEnded = true;
        for (const s of scans.values()) sendHeld(s);
        maybeStop();
      },
      complete: () => {
        sourceEnded = true;
        // Scans the source never ended (it stopped first) are finished with what they have.
        for (const s of scans.values()) {
          sendHeld(s);
          s.ended = true;
          maybeFinishScan(s);
        }
        maybeStop();
      },
    });
  });
}
