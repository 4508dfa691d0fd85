import { Observable, type OperatorFunction } from 'rxjs';
import { isXctError, ModelError } from '../errors.ts';
import type { SegmentationModel } from '../inference/load-model.ts';
import type { NormalizedSlice, PatchJob, PatchResult } from '../slices/slice-types.ts';
import { extractPlanePatches } from '../slices/tile-grid.ts';

export interface InferStats {
  batch: number;
  ms: number;
}

export interface InferBatchesOptions {
  /** Most patches per model call (batches that wait together are merged up to this). */
  maxBatch?: number;
  /** Per batch, its size and its time from hand-over to result (for metrics). */
  onBatch?: (stats: InferStats) => void;
}

/**
 * Run batches through the model and hand back one result per patch, in order, like a dynamic
 * batcher in front of a busy model: while every session of the model computes, the batches that
 * arrive wait together and go as one (up to `maxBatch`) the moment a session is free; a full batch is
 * handed over even while all are busy (one waiting per session), so none idles while this thread
 * stitches or writes; a partial batch meeting several idle sessions is split among them. The slice
 * gate upstream bounds how many patches wait.
 */
export function inferBatches<S extends NormalizedSlice>(
  model: SegmentationModel,
  options: InferBatchesOptions = {},
): OperatorFunction<PatchJob<S>[], PatchResult<S>> {
  const patchSize = model.patchSize;
  const area = patchSize * patchSize;
  const channels = model.inputChannels;
  const maxBatch = options.maxBatch ?? 16;
  const sessions = Math.max(1, model.sessions);
  // Batch inputs are reused once their batch is back (at most two per session are out, see pump):
  // a megabyte a batch less for the collector, on the thread that also stitches and writes.
  const free: Float32Array[] = [];
  const run = (jobs: PatchJob<S>[]) => {
    const misfit = jobs.find(
      ({ slice }) => (slice.input ?? slice.normalized).length !== channels * slice.width * slice.height,
    )?.slice;
    if (misfit)
      return Promise.reject(
        new ModelError(
          `slice ${misfit.z} of scan ${misfit.scanId} has ${(misfit.input ?? misfit.normalized).length / (misfit.width * misfit.height)} input planes, the model takes ${channels}`,
          { model: model.identity.name, stage: 'infer', scanId: misfit.scanId, slice: misfit.z },
        ),
      );
    const buffer = free.pop() ?? new Float32Array(maxBatch * channels * area);
    const input = buffer.subarray(0, jobs.length * channels * area);
    jobs.forEach((job, k) => {
      const { normalized, input: planes, width, height } = job.slice;
      const at = k * channels * area;
      extractPlanePatches(
        planes ?? normalized,
        channels,
        width,
        height,
        [job.tile],
        patchSize,
        input.subarray(at, at + channels * area),
      );
    });
    const started = performance.now();
    const settled = model.predict(input, jobs.length).finally(() => {
      if (free.length < 2 * sessions) free.push(buffer);
    });
    return settled.then(
      (probs) => {
        options.onBatch?.({ batch: jobs.length, ms: performance.now() - started });
        return {
          probs,
          results: jobs.map((job, k) => ({ job, probs: probs.subarray(k * area, (k + 1) * area) })),
        };
      },
      (cause: unknown) => {
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
      },
    );
  };
  type Batch = { done: boolean; probs?: Float32Array; results?: PatchResult<S>[] };
  return (source) =>
    new Observable<PatchResult<S>>((subscriber) => {
      const waiting: PatchJob<S>[] = [];
      /** Batches handed to the model, oldest first: results go out in this order. */
      const running: Batch[] = [];
      /** Batches at the model, computing or queued there. */
      let out = 0;
      let upstreamDone = false;
      let failed = false;

      const emitReady = () => {
        while (running[0]?.done) {
          const head = running.shift();
          for (const r of head?.results ?? []) subscriber.next(r);
          // Downstream is done with a result when next() returns (stitchSlices blends it in, or
          // copies one that came early), so the batch's output can take the model's next one.
          if (head?.probs) model.recycle?.(head.probs);
        }
      };
      const pump = () => {
        // A session idle: whatever waits goes now. All busy: only full batches queue, one per session.
        while (
          !failed &&
          waiting.length > 0 &&
          (out < sessions || (out < 2 * sessions && waiting.length >= maxBatch))
        ) {
          // A partial batch with several sessions idle is shared among them: a small slice's patches
          // compute side by side instead of one after another in a single session.
          const idle = sessions - out;
          const jobs = waiting.splice(
            0,
            idle > 1 && waiting.length < maxBatch ? Math.ceil(waiting.length / idle) : maxBatch,
          );
          const entry: Batch = { done: false };
          running.push(entry);
          out++;
          run(jobs).then(
            ({ probs, results }) => {
              out--;
              entry.done = true;
              entry.probs = probs;
              entry.results = results;
              emitReady();
              pump();
              if (upstreamDone && running.length === 0 && waiting.length === 0) subscriber.complete();
            },
            (err: unknown) => {
              failed = true;
              subscriber.error(err);
            },
          );
        }
      };
      const upstream = source.subscribe({
        next: (batch) => {
          waiting.push(...batch);
          pump();
        },
        error: (err: unknown) => subscriber.error(err),
        complete: () => {
          upstreamDone = true;
          if (running.length === 0 && waiting.length === 0) subscriber.complete();
        },
      });
      return () => {
        failed = true;
        upstream.unsubscribe();
        waiting.length = 0;
      };
    });
}
