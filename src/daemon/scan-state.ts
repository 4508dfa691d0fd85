import type { AlertRules } from '../alerts/alert-rules.ts';
import type { DendriteAlert } from '../alerts/dendrite-alert.ts';
import { DendriteMonitor } from '../alerts/dendrite-monitor.ts';
import type { ScanEvent } from '../codecs/avro-scan-event.ts';
import type { DecodedImage } from '../codecs/decode-tiff.ts';
import type { Dtype, TypedArray } from '../codecs/dtype.ts';
import type { SegmentationModel } from '../inference/load-model.ts';
import { createZarrScanWriter, type ZarrScanWriter } from '../sinks/zarr-scan-writer.ts';
import type { SliceRef } from '../slices/slice-types.ts';
import type { ScanMeta } from '../sources/source-event.ts';
import type { AlertJournal } from './alert-journal.ts';

/** A slice on its way into the pipeline, before it is decoded. */
export interface QueuedSlice extends SliceRef {
  /** Its pixels, when they came inline (a Kafka message, a replay from memory). */
  image?: DecodedImage;
  /** The slice after this one, complete when this one was sent on: its pixels blend into this one's input. */
  next?: QueuedSlice;
}

/** What the daemon knows and holds of one scan under way. */
export interface ScanState {
  scanId: string;
  /** Its store, `scanStorePath(out, scanId)`. */
  zarrPath: string;
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
  /**
   * Why the source gave the scan to another daemon, once it did: nothing more of it is written or
   * alerted here, and its state goes once its slices have left the pipeline.
   */
  handedOver?: string;
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
  held?: { ref: QueuedSlice; timer: NodeJS.Timeout };
  /** The last slice decoded: the previous neighbour of the next one. */
  previous?: { z: number; data: TypedArray };
  /** A slice read ahead as the next neighbour of another: its own turn takes it from here. */
  lookahead?: { z: number; image: DecodedImage };
}

/** A scan the daemon has just heard of: nothing seen, nothing written. */
export function newScanState(scanId: string, zarrPath: string): ScanState {
  return {
    scanId,
    zarrPath,
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
}

/** The scan's store writer (an existing store of the scan is taken up where it was). */
export function openScanWriter(
  s: ScanState,
  model: SegmentationModel,
  image: { width: number; height: number; dtype: Dtype },
): Promise<ZarrScanWriter> {
  return createZarrScanWriter({
    root: s.zarrPath,
    scanId: s.scanId,
    width: image.width,
    height: image.height,
    ...(s.meta.expectedSlices !== undefined && { expectedSlices: s.meta.expectedSlices }),
    voxelSizeUm: s.meta.voxelSizeUm ?? 1,
    imageDtype: image.dtype,
    model: model.identity,
  });
}

/** The scan's 3-D tracker, made when first needed (after a restart, by the resume). */
export function scanMonitor(s: ScanState, model: SegmentationModel, rules: AlertRules): DendriteMonitor {
  s.monitor ??= new DendriteMonitor({
    scanId: s.scanId,
    width: s.width ?? 1,
    height: s.height ?? 1,
    voxelSizeUm: s.meta.voxelSizeUm ?? 1,
    expectedSlices: s.meta.expectedSlices,
    rules,
    model: model.identity,
    zarrPath: s.zarrPath,
  });
  return s.monitor;
}

/** The scan event (`started`, `progress`, `completed`) that says where the scan stands now. */
export function scanEventFor(
  s: ScanState,
  kind: ScanEvent['kind'],
  end?: { reason: string | null; summary: DendriteAlert },
  at = Date.now(),
): ScanEvent {
  const expected = s.meta.expectedSlices ?? null;
  return {
    scanId: s.scanId,
    kind,
    at,
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
}
