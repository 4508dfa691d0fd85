import type { TypedArray } from '../codecs/dtype.ts';
import { type Normalization, normalizationRange, normalizeSlice, scaleToRange } from './normalize-slice.ts';

/** What decides a model's input: its card's blend weight, normalization and input channels. */
export interface ModelInputSpec {
  neighbourWeight: number;
  normalization: Normalization;
  /**
   * 1 (default): the slice blended with its neighbours, one plane. 3: the slices z − 1, z and z + 1
   * as three planes (`neighbourChannels`).
   */
  inputChannels?: number;
}

/** Whether a model's input uses the slices above and below (so slice z waits for z + 1). */
export function takesNeighbours(model: ModelInputSpec): boolean {
  return model.neighbourWeight > 0 || (model.inputChannels ?? 1) > 1;
}

/**
 * What a model sees of a slice: the slice blended with its neighbours by `neighbourWeight` (none
 * at 0), then normalized; or, for a model with three input channels, the three slices as planes
 * (`neighbourChannels`). The daemon, evaluation and the training-set export all go through here,
 * so the three cannot drift apart.
 */
export function modelInput(
  image: TypedArray,
  previous: TypedArray | undefined,
  next: TypedArray | undefined,
  model: ModelInputSpec,
): Float32Array {
  if ((model.inputChannels ?? 1) === 3) return neighbourChannels(image, previous, next, model);
  const blended =
    model.neighbourWeight > 0 ? blendNeighbours(image, previous, next, model.neighbourWeight) : image;
  return normalizeSlice(blended, model.normalization);
}

/**
 * The slices z − 1, z and z + 1 as three planes of one buffer (3·H·W, planar), each scaled by the
 * normalization range of the *blended* slice (`blendNeighbours` with the card's weight), and a
 * missing neighbour standing for the slice itself, as in the blend.
 *
 * Why the blend's range: scaling is affine, so the planes weighted (w, 1 − 2w, w) are exactly the
 * one-channel model's normalized blend. A three-channel model whose first layers start as the
 * one-channel model's weights times (w, 1 − 2w, w) therefore starts as that model, and training
 * only has to learn what the separate planes add (a thin leaning needle moves between slices; the
 * blend smears it, the planes keep it).
 */
export function neighbourChannels(
  image: TypedArray,
  previous: TypedArray | undefined,
  next: TypedArray | undefined,
  model: ModelInputSpec,
): Float32Array {
  const reference =
    model.neighbourWeight > 0 ? blendNeighbours(image, previous, next, model.neighbourWeight) : image;
  const [lo, hi] = normalizationRange(reference, model.normalization);
  const n = image.length;
  for (const other of [previous, next])
    if (other !== undefined && other.length !== n)
      throw new RangeError(`a neighbour slice has ${other.length} pixels, this one ${n}`);
  const out = new Float32Array(3 * n);
  scaleToRange(previous ?? image, lo, hi, out, 0);
  scaleToRange(image, lo, hi, out, n);
  scaleToRange(next ?? image, lo, hi, out, 2 * n);
  return out;
}

/**
 * A slice averaged with the slices above and below it: (1 − 2w)·current + w·previous + w·next,
 * pixel by pixel, in the slice's own pixel type (integers rounded, so 8/16-bit slices keep the
 * exact histogram path of `normalizeSlice`). A missing neighbour (the first or last slice, or one
 * that could not be read) counts as the slice itself. Neighbours are expected in the same pixel
 * type (the daemon refuses a scan's slices of another type).
 *
 * Why: dendrites run on through neighbouring slices while the scanner's noise does not, so a light
 * blend raises the contrast of thin branches. The weight belongs to the model (its card's
 * `neighbourWeight`), chosen on validation scans.
 */
export function blendNeighbours(
  current: TypedArray,
  previous: TypedArray | undefined,
  next: TypedArray | undefined,
  weight: number,
): TypedArray {
  if (!(weight >= 0 && weight <= 1 / 3))
    throw new RangeError(`neighbour weight must be in [0, 1/3], got ${weight}`);
  for (const [which, other] of [
    ['previous', previous],
    ['next', next],
  ] as const)
    if (other !== undefined && other.length !== current.length)
      throw new RangeError(`${which} slice has ${other.length} pixels, this one ${current.length}`);
  const before = previous ?? current;
  const after = next ?? current;
  const self = 1 - 2 * weight;
  const out = new (current.constructor as new (length: number) => TypedArray)(current.length);
  // A weighted mean of in-range values stays in range; integer stores would truncate, so round.
  if (current instanceof Uint16Array || current instanceof Uint8Array) {
    // The common scanner slice, on the daemon's thread for every slice: non-negative, so adding ½
    // and truncating is rounding (half up, as Math.round), at a third of its cost.
    blendUnsigned(
      current,
      before as typeof current,
      after as typeof current,
      out as typeof current,
      self,
      weight,
    );
  } else if (current instanceof Float32Array || current instanceof Float64Array) {
    for (let i = 0; i < out.length; i++)
      out[i] = self * (current[i] as number) + weight * ((before[i] as number) + (after[i] as number));
  } else {
    for (let i = 0; i < out.length; i++)
      out[i] = Math.round(
        self * (current[i] as number) + weight * ((before[i] as number) + (after[i] as number)),
      );
  }
  return out;
}

function blendUnsigned(
  current: Uint16Array | Uint8Array,
  before: Uint16Array | Uint8Array,
  after: Uint16Array | Uint8Array,
  out: Uint16Array | Uint8Array,
  self: number,
  weight: number,
): void {
  for (let i = 0; i < out.length; i++)
    out[i] =
      (self * (current[i] as number) + weight * ((before[i] as number) + (after[i] as number)) + 0.5) | 0;
}
