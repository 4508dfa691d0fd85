import { type MonoTypeOperatorFunction, Observable, type Observable as ObservableType } from 'rxjs';
import { ConfigError } from '../errors.ts';

/**
 * Let at most `max` values past until `done$` says some have finished: the pipeline's
 * backpressure. Values wait here as references (a path, a Kafka offset), so a fast writer costs a
 * queue of small objects, never pixels; the heavy work starts only after this gate.
 */
export function limitInFlight<T>(done$: ObservableType<unknown>, max: number): MonoTypeOperatorFunction<T> {
  if (!Number.isInteger(max) || max < 1)
    throw new ConfigError(`maxSlicesInFlight must be an integer ≥ 1, got ${max}`, {
      option: 'maxSlicesInFlight',
      stage: 'gate',
    });
  return (source) =>
    new Observable<T>((subscriber) => {
      const waiting: T[] = [];
      let inFlight = 0;
      let sourceDone = false;
      const pump = () => {
        while (inFlight < max && waiting.length > 0) {
          inFlight++;
          subscriber.next(waiting.shift() as T);
        }
        if (sourceDone && waiting.length === 0 && inFlight === 0) subscriber.complete();
      };
      const credits = done$.subscribe({
        next: () => {
          inFlight = Math.max(0, inFlight - 1);
          pump();
        },
        error: (err: unknown) => subscriber.error(err),
      });
      const upstream = source.subscribe({
        next: (value) => {
          waiting.push(value);
          pump();
        },
        error: (err: unknown) => subscriber.error(err),
        complete: () => {
          sourceDone = true;
          pump();
        },
      });
      return () => {
        upstream.unsubscribe();
        credits.unsubscribe();
        waiting.length = 0;
      };
    });
}
