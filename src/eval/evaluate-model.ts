import type { SegmentationModel } from '../inference/load-model.ts';
import { segmentSlice } from '../inference/segment-slice.ts';
import type { Morphology } from '../sim/grow-dendrite.ts';
import { createPhantom } from '../sim/phantom.ts';
import { dendriteHabits, HABITS, renderSlice } from '../sim/render-slice.ts';
import { modelInput } from '../slices/blend-neighbours.ts';
import { extractPlanePatches, tileGrid } from '../slices/tile-grid.ts';
import { SegmentationMetrics, type SegmentationScores } from './segmentation-metrics.ts';

export interface EvaluateOptions {
  seeds: readonly number[];
  size: number;
  slices: number;
  batch?: number;
  overlap?: number;
  signal?: AbortSignal;
  onSlice?: (done: number, total: number) => void;
}

/** Of each habit's truth voxels, the share in the mask: needles are where the models miss most. */
export type HabitRecall = Record<Morphology, { voxels: number; found: number; recall: number }>;

/**
 * Segment simulated held-out scans and score the masks against their ground truth; with the voxel
 * recall of each dendrite habit (tree, mossy, needle), the owner of a voxel from the simulator.
 */
export async function evaluateModel(
  model: SegmentationModel,
  options: EvaluateOptions,
): Promise<SegmentationScores & { habits: HabitRecall }> {
  const metrics = new SegmentationMetrics(model.patchSize);
  const habits: HabitRecall = {
    tree: { voxels: 0, found: 0, recall: Number.NaN },
    mossy: { voxels: 0, found: 0, recall: Number.NaN },
    needle: { voxels: 0, found: 0, recall: Number.NaN },
  };
  const total = options.seeds.length * options.slices;
  let done = 0;
  for (const seed of options.seeds) {
    const phantom = createPhantom({ seed, size: options.size, slices: options.slices });
    // A window of three rendered slices: the model may take in the slices above and below.
    let previous: ReturnType<typeof renderSlice> | undefined;
    let current = renderSlice(phantom, 0);
    for (let z = 0; z < phantom.slices; z++) {
      options.signal?.throwIfAborted();
      const next = z + 1 < phantom.slices ? renderSlice(phantom, z + 1) : undefined;
      const { mask } = await segmentSlice(model, current.image, phantom.size, phantom.size, {
        ...(options.batch !== undefined && { batch: options.batch }),
        ...(options.overlap !== undefined && { overlap: options.overlap }),
        ...(previous && { previous: previous.image }),
        ...(next && { next: next.image }),
      });
      metrics.addSlice(mask, current.labels, phantom.size, phantom.size);
      const codes = dendriteHabits(phantom, z, current.labels);
      for (let i = 0; i < codes.length; i++) {
        const name = HABITS[codes[i] as number];
        if (name === undefined) continue;
        habits[name].voxels++;
        if (mask[i] !== 0) habits[name].found++;
      }
      previous = current;
      if (next) current = next;
      options.onSlice?.(++done, total);
    }
  }
  for (const h of Object.values(habits)) h.recall = h.voxels > 0 ? h.found / h.voxels : Number.NaN;
  return { ...metrics.scores(), habits };
}

export interface SpeedPoint {
  batch: number;
  /** From the median run: a typical batch's speed (times the sessions computing side by side). */
  patchesPerSecond: number;
  /** The median run's time per patch, in one session. */
  msPerPatch: number;
  /** Every patch of every timed run over the time they took: throughput, slow runs included. */
  sustainedPatchesPerSecond: number;
  runs: number;
}

/**
 * Bare inference speed: the model alone on real patches (a simulated slice, normalized and tiled),
 * per batch size, from repeated timed runs after a warm-up, one run out per session of the model at
 * every moment: the median run's speed, and the sustained throughput over all of them.
 */
export async function measureSpeed(
  model: SegmentationModel,
  options: { batches?: readonly number[]; minMs?: number; seed?: number; signal?: AbortSignal } = {},
): Promise<SpeedPoint[]> {
  const batches = options.batches ?? [1, 2, 4, 8, 16, 32];
  const size = 512;
  const phantom = createPhantom({ seed: options.seed ?? 424242, size, slices: 8 });
  const [above, slice, below] = [3, 4, 5].map((z) => renderSlice(phantom, z).image);
  const planes = modelInput(slice as Uint16Array, above, below, model);
  const tiles = tileGrid(size, size, { patch: model.patchSize, overlap: 32 });
  const channels = model.inputChannels;
  const pool = extractPlanePatches(planes, channels, size, size, tiles, model.patchSize);
  const area = channels * model.patchSize * model.patchSize;
  const points: SpeedPoint[] = [];
  for (const batch of batches) {
    const input = new Float32Array(batch * area);
    for (let k = 0; k < batch; k++)
      input.set(pool.subarray((k % tiles.length) * area, ((k % tiles.length) + 1) * area), k * area);
    const lanes = Math.max(1, model.sessions);
    await Promise.all(Array.from({ length: lanes }, () => model.predict(input, batch)));
    const times: number[] = [];
    const started = performance.now();
    const lane = async () => {
      while (
        times.length < 5 * lanes ||
        (performance.now() - started < (options.minMs ?? 1500) && times.length < 200 * lanes)
      ) {
        options.signal?.throwIfAborted();
        const t0 = performance.now();
        // Outputs recycled as the daemon's are: bare inference is not charged for allocating them.
        model.recycle?.(await model.predict(input, batch));
        times.push(performance.now() - t0);
      }
    };
    await Promise.all(Array.from({ length: lanes }, lane));
    const elapsed = performance.now() - started;
    times.sort((a, b) => a - b);
    const median = times[Math.floor(times.length / 2)] as number;
    points.push({
      batch,
      patchesPerSecond: (lanes * batch * 1000) / median,
      msPerPatch: median / batch,
      sustainedPatchesPerSecond: (batch * times.length * 1000) / elapsed,
      runs: times.length,
    });
  }
  return points;
}
