import { mergeMap, type OperatorFunction } from 'rxjs';
import type { NormalizedSlice, PatchJob } from './slice-types.ts';
import { extractPatches, resolveTileOptions, type TileOptions, tileGrid } from './tile-grid.ts';

/** Cut each normalized slice into model-sized patches (overlapping, edges reflect-padded). */
export function tilePatches<S extends NormalizedSlice>(
  options: TileOptions = {},
): OperatorFunction<S, PatchJob<S>> {
  const { patch, overlap } = resolveTileOptions(options);
  const area = patch * patch;
  return mergeMap((slice: S) => {
    const tiles = tileGrid(slice.width, slice.height, { patch, overlap });
    const buffer = extractPatches(slice.normalized, slice.width, slice.height, tiles, patch);
    return tiles.map((tile, k) => ({ slice, tiles, tile, data: buffer.subarray(k * area, (k + 1) * area) }));
  });
}
