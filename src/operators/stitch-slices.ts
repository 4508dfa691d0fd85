import { Observable, type OperatorFunction } from 'rxjs';
import type { NormalizedSlice, PatchResult, StitchedSlice } from './slice-types.ts';
import { createStitcher, type Stitcher } from './stitch-patches.ts';
import { resolveTileOptions, type TileOptions } from './tile-grid.ts';

/** Blend each slice's patch probabilities back into one probability image, emitted once complete. */
export function stitchSlices<S extends NormalizedSlice>(
  options: TileOptions = {},
): OperatorFunction<PatchResult<S>, S & StitchedSlice> {
  const tileOptions = resolveTileOptions(options);
  return (source) =>
    new Observable<S & StitchedSlice>((subscriber) => {
      const open = new Map<S, Stitcher>();
      const upstream = source.subscribe({
        next: ({ job, probs }) => {
          let stitcher = open.get(job.slice);
          if (!stitcher) {
            stitcher = createStitcher(job.slice.width, job.slice.height, job.tiles, tileOptions);
            open.set(job.slice, stitcher);
          }
          stitcher.add(job.tile.index, probs);
          if (!stitcher.complete) return;
          open.delete(job.slice);
          subscriber.next({ ...job.slice, prob: stitcher.result(), patches: job.tiles.length });
        },
        error: (err: unknown) => subscriber.error(err),
        complete: () => subscriber.complete(),
      });
      return () => {
        upstream.unsubscribe();
        open.clear();
      };
    });
}
