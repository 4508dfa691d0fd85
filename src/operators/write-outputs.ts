import { catchError, concatMap, from, type MonoTypeOperatorFunction, map } from 'rxjs';

/**
 * The output stage: each finished slice through `write` (store, tracking, alerts), one at a time
 * and in order, and then on. A write that throws does not end the pipeline: `failed` hears of it
 * and the slice goes on all the same (its scan carries the failure, other scans go on).
 */
export function writeOutputs<S>(
  write: (slice: S) => Promise<void>,
  failed: (slice: S, err: unknown) => void,
): MonoTypeOperatorFunction<S> {
  return concatMap((slice) =>
    from(write(slice)).pipe(
      map(() => slice),
      catchError((err: unknown) => {
        failed(slice, err);
        return [slice];
      }),
    ),
  );
}
