import {
  asyncScheduler,
  Observable,
  type OperatorFunction,
  type SchedulerLike,
  type Subscription,
} from 'rxjs';
import { ConfigError } from '../errors.ts';

export interface MicroBatchOptions {
  /** Most items per batch. */
  maxBatch?: number;
  /** Longest an item waits for company before its batch goes anyway. */
  maxDelayMs?: number;
  /** Timer source; RxJS's async scheduler (virtual time in marble tests). */
  scheduler?: SchedulerLike;
}

/**
 * Group items into batches like a dynamic batcher: a batch goes as soon as it is full, or
 * `maxDelayMs` after its first item arrived, whichever comes first; what is left goes at completion.
 */
export function microBatch<T>(options: MicroBatchOptions = {}): OperatorFunction<T, T[]> {
  const maxBatch = options.maxBatch ?? 16;
  const maxDelayMs = options.maxDelayMs ?? 10;
  const scheduler = options.scheduler ?? asyncScheduler;
  if (!Number.isInteger(maxBatch) || maxBatch < 1)
    throw new ConfigError(`inference.maxBatch must be an integer ≥ 1, got ${maxBatch}`, {
      option: 'inference.maxBatch',
      stage: 'batch',
    });
  if (!(Number.isFinite(maxDelayMs) && maxDelayMs >= 0))
    throw new ConfigError(`inference.maxDelayMs must be a number ≥ 0, got ${maxDelayMs}`, {
      option: 'inference.maxDelayMs',
      stage: 'batch',
    });
  return (source) =>
    new Observable<T[]>((subscriber) => {
      let batch: T[] = [];
      let timer: Subscription | undefined;
      const flush = () => {
        timer?.unsubscribe();
        timer = undefined;
        if (batch.length === 0) return;
        const out = batch;
        batch = [];
        subscriber.next(out);
      };
      const upstream = source.subscribe({
        next: (item) => {
          batch.push(item);
          if (batch.length >= maxBatch) flush();
          else if (batch.length === 1) timer = scheduler.schedule(flush, maxDelayMs);
        },
        error: (err: unknown) => {
          timer?.unsubscribe();
          subscriber.error(err);
        },
        complete: () => {
          flush();
          subscriber.complete();
        },
      });
      return () => {
        upstream.unsubscribe();
        timer?.unsubscribe();
        batch = [];
      };
    });
}
