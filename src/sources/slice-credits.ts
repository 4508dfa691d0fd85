/**
 * The one backpressure protocol between a source that reads slices (Kafka, an archive replay) and
 * the pipeline that takes them. A source takes a credit before it hands a slice over, waiting while
 * `window` of its slices are out; the pipeline gives the credit back when the slice has left it
 * (finished, skipped, ignored) or waits for another source event instead of for the model (held for
 * its successor, see `runDaemon`), and takes one again without waiting when such a slice goes on.
 * A source hands back the credit of anything it took one for and did not hand over (a poison
 * message, a duplicate, a read that failed).
 *
 * A source that reads no pixels (the folder source) takes its credits through the `takeCredits`
 * operator: its events wait there, as references, until a credit is free.
 */
export class SliceCredits {
  #out = 0;
  readonly #waiters = new Set<() => void>();

  /** Slices handed over and not given back. */
  get outstanding(): number {
    return this.#out;
  }

  /**
   * Wait until fewer than `window` slices are out, then take a credit: true. False, with nothing
   * taken, once `signal` aborts or `timeoutMs` passes first (a Kafka source heartbeats then).
   */
  async take(window: number, options: { signal?: AbortSignal; timeoutMs?: number } = {}): Promise<boolean> {
    const { signal, timeoutMs } = options;
    const deadline = timeoutMs === undefined ? undefined : Date.now() + timeoutMs;
    while (this.#out >= window) {
      if (signal?.aborted) return false;
      const left = deadline === undefined ? undefined : deadline - Date.now();
      if (left !== undefined && left <= 0) return false;
      await new Promise<void>((resolve) => {
        const done = () => {
          clearTimeout(timer);
          signal?.removeEventListener('abort', done);
          this.#waiters.delete(done);
          resolve();
        };
        const timer = left === undefined ? undefined : setTimeout(done, left);
        signal?.addEventListener('abort', done, { once: true });
        this.#waiters.add(done);
      });
    }
    this.#out++;
    return true;
  }

  /** Take a credit now if fewer than `window` slices are out: true; else false, nothing taken. */
  tryTake(window: number): boolean {
    if (this.#out >= window) return false;
    this.#out++;
    return true;
  }

  /** Count a slice as out again without waiting (one held for its successor going on). */
  retake(): void {
    this.#out++;
  }

  /**
   * A slice is back: the sources waiting look again (each takes only if there is room). Never below
   * zero: a slice from a source that took no credit gives nothing back.
   */
  give(): void {
    if (this.#out > 0) this.#out--;
    for (const wake of [...this.#waiters]) wake();
  }
}
