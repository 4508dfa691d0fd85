import { map, type OperatorFunction } from 'rxjs';
import { ConfigError } from '../errors.ts';
import { maskAndQuantize } from '../slices/probability.ts';
import type { MaskedSlice, StitchedSlice } from '../slices/slice-types.ts';

/**
 * Call a voxel dendrite where its probability reaches the threshold, and quantize the probability
 * the way the store keeps it (`storedProb`, `quantizeProbability`'s rounding), in one pass: once,
 * here, for the store and the tracker alike.
 */
export function thresholdMask<S extends StitchedSlice>(
  threshold: number,
): OperatorFunction<S, S & MaskedSlice> {
  if (!(threshold > 0 && threshold < 1))
    throw new ConfigError(`threshold must be in (0, 1), got ${threshold}`, {
      option: 'threshold',
      stage: 'threshold',
    });
  return map((slice: S) => {
    const { mask, stored } = maskAndQuantize(slice.prob, threshold);
    return { ...slice, mask, storedProb: stored };
  });
}
