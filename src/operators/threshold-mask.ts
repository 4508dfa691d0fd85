import { map, type OperatorFunction } from 'rxjs';
import { ConfigError } from '../errors.ts';
import type { MaskedSlice, StitchedSlice } from '../slices/slice-types.ts';

/**
 * Call a voxel dendrite where its probability reaches the threshold. The same pass also quantizes the
 * probability the way the store keeps it (`storedProb`, see `quantizeProbability`), so the slice's
 * probabilities are read once on their way out.
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
    const n = prob.length;
    const mask = new Uint8Array(n);
    // Uint8ClampedArray rounds, clamps to 0..255 and maps NaN to 0 in the engine (as quantizeProbability).
    const stored = new Uint8ClampedArray(n);
    for (let i = 0; i < n; i++) {
      const p = prob[i] as number;
      mask[i] = p >= threshold ? 1 : 0;
      stored[i] = p * 255;
    }
    return { ...slice, mask, storedProb: new Uint8Array(stored.buffer) };
  });
}
