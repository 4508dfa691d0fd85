import { map, type OperatorFunction } from 'rxjs';
import { ConfigError } from '../errors.ts';
import type { MaskedSlice, StitchedSlice } from './slice-types.ts';

/** Call a voxel dendrite where its probability reaches the threshold. */
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
    for (let i = 0; i < mask.length; i++) mask[i] = (prob[i] as number) >= threshold ? 1 : 0;
    return { ...slice, mask };
  });
}
