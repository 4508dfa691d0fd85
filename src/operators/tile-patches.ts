import { mergeMap, type OperatorFunction } from 'rxjs';
import type { NormalizedSlice, PatchJob } from '../slices/slice-types.ts';
import { resolveTileOptions, type TileOptions, tileGrid } from '../slices/tile-grid.ts';

/** Cut each normalized slice into model-sized patches (overlapping; `inferBatches` copies them out, edges reflect-padded). */
export function tilePatches<S extends NormalizedSlice>(
  options: TileOptions = {},
): OperatorFunction<S, PatchJob<S>> {
  const { patch, overlap } = resolveTileOptions(options);
  return mergeMap((slice: S) => {
    const tiles = tileGrid(slice.width, slice.height, { patch, overlap });
    return tiles.map((tile) => ({ slice, tiles, tile }));
  });
}
