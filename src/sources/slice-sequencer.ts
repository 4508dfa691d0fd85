/**
 * The order of a folder scan's slices, with no file system and no timer: complete slices are
 * offered in any order, and go out in increasing z, each exactly once, or are reported missing.
 * A gap below slices that wait is given up `missingSliceTimeoutMs` after the first of them was
 * ready, unless a file for it is still being written; the caller passes the clock (`now`) and sets
 * its own timer for `wakeAt`. Once `expected()` slices are out, the scan is over.
 */

/** What the sequencer holds: a complete slice, found ready at `readyAt` (ms). */
export interface Sequenced {
  z: number;
  path: string;
  readyAt: number;
}

/** What goes out, in order. */
export type SequencerStep<T extends Sequenced> =
  | { type: 'slice'; slice: T }
  | { type: 'missing'; z: number; reason: string }
  /** Every expected slice is out (or missing): the scan ends by its count. */
  | { type: 'expected-count' };

/** What the sequencer asks of the folder about a gap at `z`. */
export interface GapInfo {
  /** A file for `z` is still being written: its gap is not a loss yet. */
  beingWritten(z: number): boolean;
  /** Why `z` is missing, when the folder knows better than `fallback` (an empty file, no sidecar). */
  reason(z: number, fallback: string): string;
}

export interface SliceSequencerOptions {
  /** The z the numbering starts at; lower numbers are never waited for. */
  firstSlice: number;
  missingSliceTimeoutMs: number;
  /** The scan's expected slice count, when its metadata says (it may arrive late). */
  expected: () => number | undefined;
}

export class SliceSequencer<T extends Sequenced> {
  /** The next z to go out. */
  nextZ: number;
  /** Slices that went out. */
  emitted = 0;
  /** The z reported missing, in order. */
  readonly missing: number[] = [];
  /** Complete slices waiting for their predecessors, by z. */
  readonly #ready = new Map<number, T>();

  constructor(private readonly o: SliceSequencerOptions) {
    this.nextZ = o.firstSlice;
  }

  /** Whether the scan's expected count is out. */
  expectedReached(): boolean {
    const expected = this.o.expected();
    return expected !== undefined && this.nextZ >= this.o.firstSlice + expected;
  }

  /** Take a complete slice; undefined, or why it is refused (its z went by, another file has it). */
  offer(slice: T): string | undefined {
    if (slice.z < this.nextZ) {
      const what = this.missing.includes(slice.z)
        ? 'after it was reported missing'
        : 'after that z was emitted';
      return `slice ${slice.z} arrived ${what}; not emitted`;
    }
    const other = this.#ready.get(slice.z);
    if (other !== undefined && other.path !== slice.path)
      return `slice ${slice.z} is already provided by ${other.path}; not emitted`;
    this.#ready.set(slice.z, slice);
    return undefined;
  }

  /** A slice file changed or went away before its turn: it is not complete any more. */
  withdraw(path: string): void {
    for (const [z, slice] of this.#ready) if (slice.path === path) this.#ready.delete(z);
  }

  /** Slices complete and waiting. */
  waiting(): T[] {
    return [...this.#ready.values()];
  }

  clear(): void {
    this.#ready.clear();
  }

  /**
   * Every slice whose predecessors are all out or given up, at time `now`; `wakeAt`, when set, is
   * when a waiting gap is due to be given up (call again then).
   */
  advance(now: number, gaps: GapInfo): { steps: SequencerStep<T>[]; wakeAt: number | undefined } {
    const steps: SequencerStep<T>[] = [];
    const timeout = this.o.missingSliceTimeoutMs;
    for (;;) {
      if (this.expectedReached()) {
        steps.push({ type: 'expected-count' });
        return { steps, wakeAt: undefined };
      }
      const slice = this.#ready.get(this.nextZ);
      if (slice) {
        steps.push(this.#emit(slice));
        continue;
      }
      if (this.#ready.size === 0) return { steps, wakeAt: undefined };
      // The gap has lasted since the first of the slices above it was ready.
      const oldest = Math.min(...[...this.#ready.values()].map((s) => s.readyAt));
      // Past the deadline but blocked by a file being written: that file's completion calls again.
      if (now < oldest + timeout || gaps.beingWritten(this.nextZ))
        return { steps, wakeAt: oldest + timeout > now ? oldest + timeout : undefined };
      const z = this.nextZ;
      steps.push(
        this.#miss(z, gaps.reason(z, `no complete file within ${timeout} ms while later slices waited`)),
      );
    }
  }

  /**
   * The scan is over: what waits goes out, holes below it are missing, and so is every expected
   * slice not there. `why` says how it ended.
   */
  flush(why: string, gaps: GapInfo): SequencerStep<T>[] {
    const steps: SequencerStep<T>[] = [];
    const reason = (z: number) => gaps.reason(z, `no complete file when the scan ended (${why})`);
    while (this.#ready.size > 0 && !this.expectedReached()) {
      const slice = this.#ready.get(this.nextZ);
      steps.push(slice ? this.#emit(slice) : this.#miss(this.nextZ, reason(this.nextZ)));
    }
    while (this.o.expected() !== undefined && !this.expectedReached())
      steps.push(this.#miss(this.nextZ, reason(this.nextZ)));
    return steps;
  }

  #emit(slice: T): SequencerStep<T> {
    this.#ready.delete(slice.z);
    this.emitted++;
    this.nextZ = slice.z + 1;
    return { type: 'slice', slice };
  }

  #miss(z: number, reason: string): SequencerStep<T> {
    this.missing.push(z);
    this.nextZ = z + 1;
    return { type: 'missing', z, reason };
  }
}
