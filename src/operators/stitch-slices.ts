import { Observable, type OperatorFunction } from 'rxjs';
import type { NormalizedSlice, PatchResult, StitchedSlice } from '../slices/slice-types.ts';
import { createStitcher, type Stitcher } from '../slices/stitch-patches.ts';
import { resolveTileOptions, type TileOptions, tileGeometryKey } from '../slices/tile-grid.ts';

/** Stitchers kept for reuse (slices in flight rarely exceed a handful). */
const MAX_IDLE = 4;

/**
 * Blend each slice's patch probabilities back into one probability image, emitted once complete.
 * The patches of one slice are told apart from another's by their `job.slice` object, which
 * `tilePatches` shares among them: a contract between the two stages (a slice that passes twice
 * must be two objects, as every decode makes it).
 */
export function stitchSlices<S extends NormalizedSlice>(
  options: TileOptions = {},
): OperatorFunction<PatchResult<S>, S & StitchedSlice> {
  const tileOptions = resolveTileOptions(options);
  return (source) =>
    new Observable<S & StitchedSlice>((subscriber) => {
      const open = new Map<S, { stitcher: Stitcher; key: string }>();
      // Finished stitchers of the last geometry, reset for the next slice: a scan's slices all share
      // one, and a stitcher's accumulator is the largest buffer a slice needs.
      let idle: { key: string; stitchers: Stitcher[] } = { key: '', stitchers: [] };
      const upstream = source.subscribe({
        next: ({ job, probs }) => {
          let entry = open.get(job.slice);
          if (!entry) {
            const key = tileGeometryKey(job.slice.width, job.slice.height, job.tiles);
            const stitcher =
              (idle.key === key ? idle.stitchers.pop() : undefined) ??
              createStitcher(job.slice.width, job.slice.height, job.tiles, tileOptions);
            entry = { stitcher, key };
            open.set(job.slice, entry);
          }
          const { stitcher, key } = entry;
          stitcher.add(job.tile.index, probs);
          if (!stitcher.complete) return;
          open.delete(job.slice);
          const prob = stitcher.result();
          stitcher.reset();
          if (idle.key !== key) idle = { key, stitchers: [] };
          if (idle.stitchers.length < MAX_IDLE) idle.stitchers.push(stitcher);
          subscriber.next({ ...job.slice, prob, patches: job.tiles.length });
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
