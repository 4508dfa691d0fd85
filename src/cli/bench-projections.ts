import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { CONFIG_DEFAULTS } from '../config/pipeline-config.ts';
import { measureSpeed } from '../eval/evaluate-model.ts';
import type { SegmentationModel } from '../inference/load-model.ts';
import { reconstructSlice, type Sinogram } from '../recon/fbp.ts';
import { startReconThreads } from '../recon/recon-threads.ts';
import { tileGrid } from '../slices/tile-grid.ts';

/** One detector width's figures: reconstruction, the scikit-image peer, segmentation. */
export interface ProjectionsPoint {
  columns: number;
  angles: number;
  /** Ours: filtered back-projection of one slice (shepp-logan) on one thread, median of `runs`. */
  reconMsPerSlice: number;
  runs: number;
  /** On the daemon's reconstruction threads (one per core, at most 4), several slices at once. */
  threadedSlicesPerSecond: number;
  threads: number;
  /** scikit-image's `iradon` on the same sinogram, in this machine's python3 (undefined: not there). */
  iradonMsPerSlice: number | undefined;
  iradonNote?: string;
  /** The model on slices of columns × columns: bare inference at the given batch, sustained. */
  segmentSlicesPerSecond: number;
  patchesPerSlice: number;
  /** Which stage limits a live scan of this width: the slower one. */
  limit: 'reconstruction' | 'segmentation';
}

const IRADON = `
import sys, time, numpy as np
from skimage.transform import iradon
path, angles, columns, runs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
sino = np.fromfile(path, dtype='<f4').reshape(angles, columns).T.astype(np.float64)
theta = np.arange(angles) * 180.0 / angles
times = []
for _ in range(runs):
    t0 = time.perf_counter()
    iradon(sino, theta=theta, filter_name='shepp-logan', circle=True)
    times.append(time.perf_counter() - t0)
print(sorted(times)[len(times) // 2] * 1000)
`;

/** A disc's sinogram, off the axis so it sweeps the detector: its content does not change the timing. */
function discSinogram(columns: number, angles: number): Sinogram {
  const data = new Float32Array(angles * columns);
  const thetaDeg = Float64Array.from({ length: angles }, (_, a) => (a * 180) / angles);
  const r = columns / 5;
  const c = columns / 2;
  for (let a = 0; a < angles; a++) {
    const shift = (columns / 6) * Math.cos(((thetaDeg[a] as number) * Math.PI) / 180);
    for (let x = 0; x < columns; x++) {
      const t = x - c - shift;
      data[a * columns + x] = t * t < r * r ? 2 * Math.sqrt(r * r - t * t) : 0;
    }
  }
  return { data, angles, columns, thetaDeg };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;

/**
 * `bench --projections`: how fast slices are reconstructed at each detector width (720 angles by
 * default), beside scikit-image's `iradon` on the same sinogram and beside the model's segmentation
 * of slices that size, so one can see which stage limits a live scan.
 */
export async function benchProjections(
  model: SegmentationModel,
  o: { columns: readonly number[]; angles: number; batch: number; progress: (line: string) => void },
): Promise<ProjectionsPoint[]> {
  const [speed] = await measureSpeed(model, { batches: [o.batch], minMs: 3000 });
  const patchesPerSecond = speed?.sustainedPatchesPerSecond ?? Number.NaN;
  const dir = await mkdtemp(join(tmpdir(), 'xct-sentinel-bench-recon-'));
  try {
    const points: ProjectionsPoint[] = [];
    for (const columns of o.columns) {
      const sino = discSinogram(columns, o.angles);
      const runs = columns <= 512 ? 5 : 3;
      o.progress(`reconstruction ${columns} columns × ${o.angles} angles…`);
      reconstructSlice(sino); // warm-up: the JIT, the FFT tables
      const times: number[] = [];
      for (let i = 0; i < runs; i++) {
        const t0 = performance.now();
        reconstructSlice(sino);
        times.push(performance.now() - t0);
      }
      const reconMs = median(times);
      const threaded = await threadedRate(sino, runs);
      o.progress(`scikit-image iradon ${columns} columns…`);
      const path = join(dir, `sino-${columns}.f32`);
      await writeFile(path, sino.data);
      let iradonMs: number | undefined;
      let iradonNote: string | undefined;
      try {
        const { stdout } = await promisify(execFile)(
          '/usr/bin/python3',
          ['-c', IRADON, path, String(o.angles), String(columns), String(columns <= 512 ? 3 : 1)],
          { env: { ...process.env, OMP_NUM_THREADS: '1', OPENBLAS_NUM_THREADS: '1' } },
        );
        iradonMs = Number(stdout.trim());
      } catch (err) {
        iradonNote = `not measured: /usr/bin/python3 with scikit-image did not run (${String((err as Error).message).split('\n')[0]})`;
      }
      const patchesPerSlice = tileGrid(columns, columns, {
        patch: model.patchSize,
        overlap: CONFIG_DEFAULTS.overlap,
      }).length;
      const segment = patchesPerSecond / patchesPerSlice;
      const recon = threaded.slicesPerSecond;
      points.push({
        columns,
        angles: o.angles,
        reconMsPerSlice: reconMs,
        runs,
        threadedSlicesPerSecond: threaded.slicesPerSecond,
        threads: threaded.threads,
        iradonMsPerSlice: iradonMs,
        ...(iradonNote && { iradonNote }),
        segmentSlicesPerSecond: segment,
        patchesPerSlice,
        limit: recon < segment ? 'reconstruction' : 'segmentation',
      });
    }
    return points;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/**
 * Slices per second on the threads the daemon uses: `runs` slices per thread submitted at once, after
 * one warm-up slice per thread; the median of three such rounds.
 */
async function threadedRate(
  sino: Sinogram,
  runs: number,
): Promise<{ slicesPerSecond: number; threads: number }> {
  const threads = startReconThreads(Math.min(4, availableParallelism()));
  const copy = (): Sinogram => ({ ...sino, data: sino.data.slice() });
  try {
    const round = (k: number) =>
      Promise.all(Array.from({ length: k }, () => threads.reconstruct(copy(), {})));
    await round(threads.threads);
    const rates: number[] = [];
    for (let r = 0; r < 3; r++) {
      const t0 = performance.now();
      await round(runs * threads.threads);
      rates.push((runs * threads.threads * 1000) / (performance.now() - t0));
    }
    return { slicesPerSecond: median(rates), threads: threads.threads };
  } finally {
    await threads.close();
  }
}

/** The report's lines. */
export function formatProjections(points: readonly ProjectionsPoint[], modelName: string): string {
  const lines = points.map((p) => {
    const vs =
      p.iradonMsPerSlice === undefined
        ? p.iradonNote
        : `iradon ${p.iradonMsPerSlice.toFixed(0)} ms/slice, ${(p.iradonMsPerSlice / p.reconMsPerSlice).toFixed(1)}× slower`;
    return `${p.columns} columns × ${p.angles} angles: reconstruction ${p.reconMsPerSlice.toFixed(0)} ms/slice on one thread (median of ${p.runs}), ${p.threadedSlicesPerSecond.toFixed(2)} slices/s on ${p.threads} threads; ${vs} (one thread each); segmentation (${modelName}, ${p.patchesPerSlice} patches) ${p.segmentSlicesPerSecond.toFixed(2)} slices/s; limit: ${p.limit}`;
  });
  return `${lines.join('\n')}\n`;
}
