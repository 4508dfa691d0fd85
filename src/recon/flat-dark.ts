/**
 * Flat- and dark-field correction and the line integrals FBP takes: for each projection sample,
 * −ln((P − D) / (F − D)) with D and F the mean dark and flat (white) fields at that detector pixel.
 * A transmission at or below 0 (a dead pixel, a flat no brighter than the dark) is clamped to
 * `minTransmission`, so the result stays finite; a transmission above 1 (noise in air) is kept.
 */
export function lineIntegrals(
  projections: Float32Array,
  flat: Float32Array,
  dark: Float32Array,
  options: { minTransmission?: number } = {},
): Float32Array {
  const pixels = flat.length;
  if (dark.length !== pixels) throw new RangeError(`dark has ${dark.length} pixels, flat ${pixels}`);
  if (pixels === 0 || projections.length % pixels !== 0)
    throw new RangeError(`${projections.length} projection samples are not whole rows of ${pixels}`);
  const floor = options.minTransmission ?? 1e-6;
  const out = new Float32Array(projections.length);
  for (let i = 0; i < projections.length; i++) {
    const p = i % pixels;
    const d = dark[p] as number;
    const range = (flat[p] as number) - d;
    const t = range > 0 ? ((projections[i] as number) - d) / range : floor;
    out[i] = -Math.log(t > floor ? t : floor);
  }
  return out;
}

/** The mean over the first axis of `count` frames of `pixels` values (dark or flat frames). */
export function meanFrame(frames: ArrayLike<number>, count: number, pixels: number): Float32Array {
  if (frames.length !== count * pixels)
    throw new RangeError(`${frames.length} values are not ${count} frames of ${pixels}`);
  const sum = new Float64Array(pixels);
  for (let f = 0; f < count; f++)
    for (let p = 0; p < pixels; p++) sum[p] = (sum[p] as number) + (frames[f * pixels + p] as number);
  const out = new Float32Array(pixels);
  for (let p = 0; p < pixels; p++) out[p] = (sum[p] as number) / count;
  return out;
}
