import type { TypedArray } from '../codecs/dtype.ts';
import { modelInput } from '../slices/blend-neighbours.ts';
import { createStitcher } from '../slices/stitch-patches.ts';
import { extractPatches, tileGrid } from '../slices/tile-grid.ts';
import type { SegmentationModel } from './load-model.ts';

export interface SegmentSliceOptions {
  /** Pixels shared by neighbouring patches (blended, so no seams). */
  overlap?: number;
  /** Most patches per inference call. */
  batch?: number;
  /** The slices above and below, blended in as the model's card says (`neighbourWeight`). */
  previous?: TypedArray;
  next?: TypedArray;
  /** Each neighbour's share in place of the card's (choosing that weight on validation scans). */
  neighbourWeight?: number;
}

/** One slice through the model: (blend neighbours →) normalize → tile → infer → stitch → threshold. */
export async function segmentSlice(
  model: SegmentationModel,
  image: TypedArray,
  width: number,
  height: number,
  options: SegmentSliceOptions = {},
): Promise<{ prob: Float32Array; mask: Uint8Array; patches: number }> {
  const patch = model.patchSize;
  const overlap = options.overlap ?? 32;
  const batch = options.batch ?? 16;
  const normalized = modelInput(image, options.previous, options.next, {
    neighbourWeight: options.neighbourWeight ?? model.neighbourWeight,
    normalization: model.normalization,
  });
  const tiles = tileGrid(width, height, { patch, overlap });
  const patches = extractPatches(normalized, width, height, tiles, patch);
  const stitcher = createStitcher(width, height, tiles, { patch, overlap });
  const area = patch * patch;
  for (let start = 0; start < tiles.length; start += batch) {
    const count = Math.min(batch, tiles.length - start);
    const probs = await model.predict(patches.subarray(start * area, (start + count) * area), count);
    for (let k = 0; k < count; k++) stitcher.add(start + k, probs.subarray(k * area, (k + 1) * area));
    model.recycle?.(probs);
  }
  const prob = stitcher.result();
  const mask = new Uint8Array(prob.length);
  for (let i = 0; i < prob.length; i++) mask[i] = (prob[i] as number) >= model.threshold ? 1 : 0;
  return { prob, mask, patches: tiles.length };
}
