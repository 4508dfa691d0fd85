import { concatMap, from, map, mergeMap, type OperatorFunction } from 'rxjs';
import { isXctError, ModelError } from '../errors.ts';
import type { SegmentationModel } from '../inference/load-model.ts';
import type { NormalizedSlice, PatchJob, PatchResult } from './slice-types.ts';

export interface InferStats {
  batch: number;
  ms: number;
}

/**
 * Run each batch through the model, one batch at a time (the model already uses every core), and
 * hand back one result per patch. `onBatch` sees each batch's size and time, for metrics.
 */
export function inferBatches<S extends NormalizedSlice>(
  model: SegmentationModel,
  onBatch?: (stats: InferStats) => void,
): OperatorFunction<PatchJob<S>[], PatchResult<S>> {
  const area = model.patchSize * model.patchSize;
  return (source) =>
    source.pipe(
      concatMap((jobs) => {
        const input = new Float32Array(jobs.length * area);
        jobs.forEach((job, k) => {
          input.set(job.data, k * area);
        });
        const started = performance.now();
        return from(
          model.predict(input, jobs.length).catch((cause: unknown) => {
            if (isXctError(cause)) throw cause;
            const first = jobs[0]?.slice;
            throw new ModelError(
              `inference failed for a batch of ${jobs.length} patches${first ? ` (scan ${first.scanId}, slice ${first.z})` : ''}`,
              {
                model: model.identity.name,
                stage: 'infer',
                ...(first && { scanId: first.scanId, slice: first.z }),
              },
              { cause },
            );
          }),
        ).pipe(
          map((probs) => {
            onBatch?.({ batch: jobs.length, ms: performance.now() - started });
            return jobs.map((job, k) => ({ job, probs: probs.subarray(k * area, (k + 1) * area) }));
          }),
        );
      }),
      mergeMap((results) => results),
    );
}
