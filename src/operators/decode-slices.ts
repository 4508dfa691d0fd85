import { concatMap, EMPTY, from, type OperatorFunction } from 'rxjs';

/**
 * The decode stage: each queued slice through `decode`, one at a time and in order. A slice
 * `decode` gives nothing for (skipped, failed, already durable, the daemon stopping) does not go on:
 * `skipped` hears of it, so the gate gets its credit back.
 */
export function decodeSlices<R, S>(
  decode: (ref: R) => Promise<S | undefined>,
  skipped: (ref: R) => void,
): OperatorFunction<R, S> {
  return concatMap((ref) =>
    from(decode(ref)).pipe(
      concatMap((slice) => {
        if (slice !== undefined) return [slice];
        skipped(ref);
        return EMPTY;
      }),
    ),
  );
}
