import { setTimeout as sleep } from 'node:timers/promises';
import { describeError } from '../errors.ts';
import type { Logger } from '../log.ts';
import { isRetriableKafkaError, type KafkaConsumer } from './kafka-client.ts';
import { OffsetTracker } from './offset-tracker.ts';

/**
 * A consumer's commits: offsets handed on for work (`add`), finished (`finish`), and each
 * partition's position committed once everything below it is finished (`OffsetTracker`), newest
 * only, one commit at a time so an older position never lands after a newer one. A commit the
 * broker refuses is tried again a few times, then left to the next commit or the one at close;
 * failing those, the partition's next owner re-reads from the last committed position, so nothing
 * is lost and some work is redone.
 */
export class OffsetCommitter {
  readonly #tracker = new OffsetTracker();
  /** Positions to commit per partition, newest only; removed once the broker accepted them. */
  readonly #toCommit = new Map<number, string>();
  #commits: Promise<void> = Promise.resolve();

  constructor(
    private readonly o: { topic: string; log: Logger; consumer: () => KafkaConsumer | undefined },
  ) {}

  /** An offset handed on for work. */
  add(partition: number, offset: string): void {
    this.#tracker.add(partition, offset);
  }

  /** An offset's work is finished: commit as far as the partition allows now. */
  finish(held: { partition: number; offset: string }): void {
    const position = this.#tracker.done(held.partition, held.offset);
    if (position === undefined) return;
    this.#toCommit.set(held.partition, position);
    this.#commits = this.#commits.then(() => this.#flush());
  }

  /** After a rebalance: partitions gone to another member are its to re-read; forget their offsets. */
  retain(mine: ReadonlySet<number>): void {
    for (const partition of [...this.#toCommit.keys()])
      if (!mine.has(partition)) this.#toCommit.delete(partition);
    this.#tracker.retain(mine);
  }

  /** Every commit under way done, and whatever an earlier one could not carry tried once more. */
  async settle(): Promise<void> {
    await this.#commits;
    await this.#flush();
  }

  async #flush(): Promise<void> {
    const { topic, log } = this.o;
    const c = this.o.consumer();
    if (!c || this.#toCommit.size === 0) return;
    const batch = [...this.#toCommit].map(([partition, offset]) => ({ topic, partition, offset }));
    for (let attempt = 0; ; attempt++) {
      try {
        await c.commitOffsets(batch);
        for (const { partition, offset } of batch)
          if (this.#toCommit.get(partition) === offset) this.#toCommit.delete(partition);
        return;
      } catch (err) {
        if (isRetriableKafkaError(err) && attempt < 4) {
          await sleep(100 * 2 ** attempt);
          continue;
        }
        log.warn(
          { topic, batch, err },
          `could not commit ${batch.map((b) => `${topic}[${b.partition}]@${b.offset}`).join(', ')}: ${describeError(err)}`,
        );
        return;
      }
    }
  }
}
