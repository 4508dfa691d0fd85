/**
 * A probability map as the store keeps it and the tracker reads it: uint8, probability × 255,
 * rounded (NaN as 0). The one definition: the threshold stage makes it, the store writes it, a
 * resumed scan reads it back, so a restart tracks exactly what an uninterrupted run tracked.
 */
export function quantizeProbability(prob: Float32Array): Uint8Array {
  // Uint8ClampedArray rounds, clamps to 0..255 and maps NaN to 0 in the engine: one multiply per pixel.
  const out = new Uint8ClampedArray(prob.length);
  for (let i = 0; i < prob.length; i++) out[i] = (prob[i] as number) * 255;
  return new Uint8Array(out.buffer);
}

/**
 * The mask (1 where the probability reaches `threshold`) and the stored probability, in one pass
 * over the slice: the threshold stage's hot path, with the same rounding as `quantizeProbability`.
 */
export function maskAndQuantize(
  prob: Float32Array,
  threshold: number,
): { mask: Uint8Array; stored: Uint8Array } {
  const n = prob.length;
  const mask = new Uint8Array(n);
  const stored = new Uint8ClampedArray(n);
  for (let i = 0; i < n; i++) {
    const p = prob[i] as number;
    mask[i] = p >= threshold ? 1 : 0;
    stored[i] = p * 255;
  }
  return { mask, stored: new Uint8Array(stored.buffer) };
}
