import { map, type OperatorFunction } from 'rxjs';
import { ConfigError } from '../errors.ts';
import { quantizeProbability } from '../slices/probability.ts';
import type { MaskedSlice, StitchedSlice } from '../slices/slice-types.ts';

/**
 * Call a voxel dendrite where its probability reaches the threshold, and quantize the probability
 * the way the store keeps it (`storedProb`, `quantizeProbability`): once, here, for the store and
 * the tracker alike.
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
    const prob = slice.prob;
    const mask = new Uint8Array(prob.length);
    for (let i = 0; i < prob.length; i++) mask[i] = (prob[i] as number) >= threshold ? 1 : 0;
    return { ...slice, mask, storedProb: quantizeProbability(prob) };
  });
}
