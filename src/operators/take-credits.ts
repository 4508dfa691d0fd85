import { type MonoTypeOperatorFunction, Observable } from 'rxjs';
import { ConfigError } from '../errors.ts';
import type { SliceCredits } from '../sources/slice-credits.ts';

/**
 * The credit protocol (`SliceCredits`) for a source that reads no pixels, the folder source: each
 * event that `needsCredit` waits here until a credit is free (fewer than `window` out) and takes
 * it as it passes. Every other event keeps its place behind the slices before it, so a scan's
 * events stay in order. What waits is a reference (a path), never pixels. With a credit free an
 * event passes at once, in the same turn. Upstream's end or error passes after what waits;
 * unsubscribing drops what waits and takes nothing more.
 */
export function takeCredits<T>(
  credits: SliceCredits,
  window: number,
  needsCredit: (value: T) => boolean,
): MonoTypeOperatorFunction<T> {
  if (!Number.isSafeInteger(window) || window < 1)
    throw new ConfigError(`takeCredits: window must be an integer ≥ 1, got ${window}`, {
      option: 'window',
      stage: 'gate',
    });
  return (source) =>
    new Observable<T>((subscriber) => {
      const waiting: T[] = [];
      const stop = new AbortController();
      let end: { error: unknown } | 'complete' | undefined;
      let pumping = false;
      const finish = () => {
        if (end === 'complete') subscriber.complete();
        else if (end) subscriber.error(end.error);
      };
      const pump = async (): Promise<void> => {
        if (pumping) return;
        pumping = true;
        try {
          while (waiting.length > 0 && !stop.signal.aborted) {
            const head = waiting[0] as T;
            if (needsCredit(head) && !credits.tryTake(window)) {
              if (!(await credits.take(window, { signal: stop.signal }))) return;
              if (stop.signal.aborted) {
                credits.give();
                return;
              }
            }
            waiting.shift();
            subscriber.next(head);
          }
          if (waiting.length === 0) finish();
        } finally {
          pumping = false;
        }
      };
      const run = () => {
        pump().catch((err: unknown) => subscriber.error(err));
      };
      const upstream = source.subscribe({
        next: (value) => {
          waiting.push(value);
          run();
        },
        error: (error: unknown) => {
          end = { error };
          run();
        },
        complete: () => {
          end = 'complete';
          run();
        },
      });
      return () => {
        stop.abort();
        upstream.unsubscribe();
        waiting.length = 0;
      };
    });
}
