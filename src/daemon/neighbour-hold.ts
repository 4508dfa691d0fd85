import type { Logger } from '../log.ts';
import type { DaemonStats } from './daemon-stats.ts';
import type { QueuedSlice, ScanState } from './scan-state.ts';

/**
 * For a model that takes in the slices around each one: a scan's newest slice is held back until the
 * slice after it is complete (it then goes on with that one as its next neighbour), its scan ends,
 * or `waitMs` pass (it goes on without). One slice per scan is held at a time.
 */
export class NeighbourHold {
  constructor(
    private readonly o: {
      waitMs: number;
      /** Into the pipeline. */
      send: (ref: QueuedSlice) => void;
      stats: DaemonStats;
      log: Logger;
    },
  ) {}

  /** Hold `ref`; the slice held before it goes on, with `ref` as its next neighbour when it is. */
  hold(s: ScanState, ref: QueuedSlice): void {
    this.release(s, ref);
    const timer = setTimeout(() => {
      this.o.log.debug(
        { scanId: s.scanId, slice: ref.z, waitedMs: this.o.waitMs },
        `slice ${ref.z + 1} of ${s.scanId} not there after ${this.o.waitMs} ms; slice ${ref.z} goes on without it`,
      );
      this.release(s);
    }, this.o.waitMs);
    s.held = { ref, timer };
    this.o.stats.held++;
  }

  /** Send the scan's held slice on; `next`, when it is the slice right after it, goes with it as its next neighbour. */
  release(s: ScanState, next?: QueuedSlice): void {
    const held = s.held;
    if (!held) return;
    clearTimeout(held.timer);
    s.held = undefined;
    this.o.stats.held--;
    this.o.send(next?.z === held.ref.z + 1 ? { ...held.ref, next } : held.ref);
  }

  /** Stop the scan's wait without sending its slice (the pipeline is over). */
  cancel(s: ScanState): void {
    if (s.held) clearTimeout(s.held.timer);
  }
}
