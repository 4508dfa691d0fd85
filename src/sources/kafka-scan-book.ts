import type { SliceMessage } from '../codecs/avro-slice.ts';
import type { DecodedImage } from '../codecs/decode-tiff.ts';
import type { ScanMeta, SourceEvent } from './source-event.ts';

/** A message's place, kept until its work is finished and it may be committed. */
export interface Held {
  partition: number;
  offset: string;
}

interface ScanTrack {
  /** The partition its slices come on (keyed by scan id, a scan stays on one). */
  partition: number;
  meta: ScanMeta;
  width: number;
  height: number;
  seen: Set<number>;
  /** Offsets per slice z still in work. */
  slices: Map<number, Held[]>;
  /** Offsets kept until the scan is complete: the slice that ended it, late duplicates. */
  untilComplete: Held[];
  ended: boolean;
  /** The message whose slice completed the expected count. */
  endedBy?: Held;
  idle?: NodeJS.Timeout;
}

/**
 * What the Kafka source knows of the scans on its partitions: each slice handed over once (a copy
 * read again follows the first copy's fate), each message's offset finished only when its slice is
 * (the one that completed a scan only when the scan is), and a scan ended by its expected count or
 * after `idleTimeoutMs` without a slice.
 */
export class KafkaScanBook {
  readonly #scans = new Map<string, ScanTrack>();
  /** Slices handed over and not yet done. */
  inFlight = 0;

  constructor(
    private readonly o: {
      emit: (event: SourceEvent) => void;
      /** The message's work is finished: it may be committed. */
      finish: (held: Held) => void;
      /** A handed-over slice is done or given up (the source's own credit, when it keeps one). */
      released: () => void;
      idleTimeoutMs: number;
    },
  ) {}

  /** The size of the scan's slices so far, if it has any. */
  size(scanId: string): { width: number; height: number } | undefined {
    return this.#scans.get(scanId);
  }

  /**
   * A decoded slice message: true when it is handed over (after its scan's `scan-start`, and
   * before its `scan-end` when it completes the expected count); false for a copy read again (a
   * producer retry, a rebalance) or one of an ended scan, whose offset follows the first copy's.
   */
  take(slice: SliceMessage, image: DecodedImage, held: Held, readyAt: number): boolean {
    const scan = this.#scans.get(slice.scanId) ?? this.#open(slice, image, held.partition);
    if (scan.seen.has(slice.z) || scan.ended) {
      const pending = scan.slices.get(slice.z);
      if (pending) pending.push(held);
      else this.o.finish(held);
      return false;
    }
    scan.seen.add(slice.z);
    scan.slices.set(slice.z, [held]);
    this.inFlight++;
    const scanId = slice.scanId;
    if (scan.idle) clearTimeout(scan.idle);
    scan.idle = setTimeout(() => this.#end(scanId, scan, 'idle-timeout'), this.o.idleTimeoutMs);
    scan.idle.unref();
    this.o.emit({ type: 'slice', scanId, z: slice.z, readyAt, image });
    // A partition keeps a scan's slices in order, so the last z means no more will come, even when
    // this consumer took the scan over mid-way (its first slices went to another group member).
    const expected = scan.meta.expectedSlices;
    if (expected !== undefined && (scan.seen.size >= expected || slice.z === expected - 1)) {
      scan.endedBy = held;
      this.#end(scanId, scan, 'expected-count');
    }
    return true;
  }

  /** Slice z of the scan is finished: its offsets may be committed (the scan's last one waits for the scan). */
  sliceDone({ scanId, z }: { scanId: string; z: number }): void {
    const scan = this.#scans.get(scanId);
    const held = scan?.slices.get(z);
    if (!scan || !held) return;
    scan.slices.delete(z);
    this.inFlight--;
    this.o.released();
    // The slice that completed the scan waits for the scan: its summary is still to come, and a
    // restart must read that slice again to end the scan again.
    for (const h of held) {
      if (h === scan.endedBy) scan.untilComplete.push(h);
      else this.o.finish(h);
    }
  }

  /** The scan is complete: every offset of it may be committed. */
  scanDone(scanId: string): void {
    const scan = this.#scans.get(scanId);
    if (!scan) return;
    // Slices the daemon skipped (a failed scan) are finished too: the scan is over.
    for (const held of scan.slices.values()) {
      this.inFlight--;
      this.o.released();
      for (const h of held) this.o.finish(h);
    }
    scan.slices.clear();
    for (const h of scan.untilComplete) this.o.finish(h);
    scan.untilComplete = [];
    if (scan.idle) clearTimeout(scan.idle);
  }

  /**
   * The group gave this member the partitions `mine` (a rebalance): the scans on any other partition
   * are another member's now. Each is forgotten (its offsets are the new owner's to commit, the
   * slices in work no longer count against the window) and the pipeline is told to let it go.
   */
  handOver(mine: ReadonlySet<number>): void {
    for (const [scanId, scan] of [...this.#scans]) {
      if (mine.has(scan.partition)) continue;
      if (scan.idle) clearTimeout(scan.idle);
      for (let i = 0; i < scan.slices.size; i++) {
        this.inFlight--;
        this.o.released();
      }
      this.#scans.delete(scanId);
      this.o.emit({
        type: 'scan-handed-over',
        scanId,
        reason: `partition ${scan.partition} went to another member of the group`,
      });
    }
  }

  /** The source closes: no scan ends by idle timeout any more. */
  stopTimers(): void {
    for (const scan of this.#scans.values()) if (scan.idle) clearTimeout(scan.idle);
  }

  #open(slice: SliceMessage, image: DecodedImage, partition: number): ScanTrack {
    const meta: ScanMeta = {
      width: image.width,
      height: image.height,
      ...(slice.expectedSlices !== null && { expectedSlices: slice.expectedSlices }),
      ...(slice.voxelSizeUm !== null && { voxelSizeUm: slice.voxelSizeUm }),
    };
    const scan: ScanTrack = {
      partition,
      meta,
      width: image.width,
      height: image.height,
      seen: new Set(),
      slices: new Map(),
      untilComplete: [],
      ended: false,
    };
    this.#scans.set(slice.scanId, scan);
    this.o.emit({ type: 'scan-start', scanId: slice.scanId, meta });
    return scan;
  }

  #end(scanId: string, scan: ScanTrack, reason: string): void {
    if (scan.ended) return;
    scan.ended = true;
    if (scan.idle) clearTimeout(scan.idle);
    const expected = scan.meta.expectedSlices ?? Math.max(0, ...scan.seen) + 1;
    const missing: number[] = [];
    for (let z = 0; z < expected; z++) if (!scan.seen.has(z)) missing.push(z);
    this.o.emit({ type: 'scan-end', scanId, reason, slices: scan.seen.size, missing });
  }
}
