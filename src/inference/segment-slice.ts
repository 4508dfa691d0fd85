import { lastValueFrom, of } from 'rxjs';
import { dtypeOf, type TypedArray } from '../codecs/dtype.ts';
import { inferBatches } from '../operators/infer-batches.ts';
import { microBatch } from '../operators/micro-batch.ts';
import { stitchSlices } from '../operators/stitch-slices.ts';
import { thresholdMask } from '../operators/threshold-mask.ts';
import { tilePatches } from '../operators/tile-patches.ts';
import { modelInput } from '../slices/blend-neighbours.ts';
import type { NormalizedSlice } from '../slices/slice-types.ts';
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

/**
 * One slice through the model outside the daemon (evaluation, threshold choice), through the
 * daemon's own stages: (blend neighbours →) normalize → tile → micro-batch → infer → stitch →
 * threshold. So what a model sees and returns has one definition.
 */
export async function segmentSlice(
  model: SegmentationModel,
  image: TypedArray,
  width: number,
  height: number,
  options: SegmentSliceOptions = {},
): Promise<{ prob: Float32Array; mask: Uint8Array; patches: number }> {
  const patch = model.patchSize;
  const overlap = options.overlap ?? 32;
  const maxBatch = options.batch ?? 16;
  const slice: NormalizedSlice = {
    scanId: 'segment-slice',
    z: 0,
    readyAt: 0,
    width,
    height,
    dtype: dtypeOf(image),
    data: image,
    normalized: modelInput(image, options.previous, options.next, {
      neighbourWeight: options.neighbourWeight ?? model.neighbourWeight,
      normalization: model.normalization,
      inputChannels: model.inputChannels,
    }),
  };
  const { prob, mask, patches } = await lastValueFrom(
    of(slice).pipe(
      tilePatches({ patch, overlap }),
      microBatch({ maxBatch, maxDelayMs: 0 }),
      inferBatches(model, { maxBatch }),
      stitchSlices({ patch, overlap }),
      thresholdMask(model.threshold),
    ),
  );
  return { prob, mask, patches };
}
