import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import t from 'tap';
import { decodeTiff } from '../../src/codecs/decode-tiff.ts';
import { scoreAgainstTruth } from '../../src/eval/score-against-truth.ts';
import { createPhantom } from '../../src/sim/phantom.ts';
import { renderSlice } from '../../src/sim/render-slice.ts';
import { openArchive } from '../../src/sources/open-archive.ts';
import { runCli } from '../cli/run-cli.ts';

// Issue 18 item 5: the simulator as a projection scanner, end to end: projections → reconstruction
// → segmentation → alerts, with the Dice against the truth reported.
const SCAN = { seed: 901_005, size: 128, slices: 6, angles: 180 };

/** Pearson correlation of two n × n slices inside the circle of radius n/2 − 4. */
function correlation(a: ArrayLike<number>, b: ArrayLike<number>, n: number): number {
  const r = Math.floor(n / 2);
  let k = 0;
  let sa = 0;
  let sb = 0;
  let saa = 0;
  let sbb = 0;
  let sab = 0;
  for (let y = 0; y < n; y++)
    for (let x = 0; x < n; x++) {
      if ((x - r) ** 2 + (y - r) ** 2 > (r - 4) ** 2) continue;
      const p = a[y * n + x] as number;
      const q = b[y * n + x] as number;
      k++;
      sa += p;
      sb += q;
      saa += p * p;
      sbb += q * q;
      sab += p * q;
    }
  const cov = sab / k - (sa / k) * (sb / k);
  return cov / Math.sqrt((saa / k - (sa / k) ** 2) * (sbb / k - (sb / k) ** 2));
}

t.test(
  'simulate --projections, then replay: reconstructed, segmented, scored against the truth',
  async (t) => {
    const dir = t.testdir();
    const sim = await runCli(
      [
        'simulate',
        '--projections',
        dir,
        '--seed',
        String(SCAN.seed),
        '--size',
        String(SCAN.size),
        '--slices',
        String(SCAN.slices),
        '--angles',
        String(SCAN.angles),
        '--json',
      ],
      { timeoutMs: 120_000 },
    );
    t.equal(sim.code, 0, 'simulate --projections exits 0', { stderr: sim.stderr });
    const { path, truthPath } = JSON.parse(sim.stdout) as { path: string; truthPath: string };

    const volume = await openArchive(path);
    t.teardown(() => volume.close());
    t.match(volume, {
      kind: 'projections',
      depth: SCAN.slices,
      meta: { width: SCAN.size, height: SCAN.size },
    });
    const axis = Number(/rotation axis found at column ([\d.]+)/.exec(volume.notes.join('\n'))?.[1]);
    t.ok(
      Math.abs(axis - SCAN.size / 2) <= 1,
      `the axis found (${axis}) is the simulator's (${SCAN.size / 2})`,
    );
    // Each reconstructed slice is the simulator's noise-free slice, up to the detector's noise.
    const phantom = createPhantom({ seed: SCAN.seed, size: SCAN.size, slices: SCAN.slices });
    for (const z of [0, 3, 5]) {
      const slice = await volume.read(z);
      if (!('image' in slice)) throw new Error('expected pixels');
      const c = correlation(slice.image.data, renderSlice(phantom, z, { noise: null }).image, SCAN.size);
      t.ok(c >= 0.9, `slice ${z}: correlation with the noise-free slice ${c.toFixed(3)}`);
    }
    const truthBytes = await readFile(truthPath);
    const truth = await decodeTiff(truthBytes, { path: truthPath, page: 0 });
    t.equal(truth.data[0], 0, 'the truth is cut to the field of view too (a corner is background)');

    const out = join(dir, 'out');
    const replay = await runCli(['replay', path, '--out', out, '--model', 'unet', '--json'], {
      timeoutMs: 180_000,
    });
    t.equal(replay.code, 0, 'replay exits 0', { stderr: replay.stderr });
    const alerts = replay.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { kind: string });
    t.equal(alerts.at(-1)?.kind, 'scan-summary', 'the scan completed with its summary');
    const score = await scoreAgainstTruth(join(out, `proj-${SCAN.seed}.ome.zarr`), truthPath);
    t.equal(score.slices, SCAN.slices);
    t.ok(score.dice >= 0 && score.dice <= 1, 'a Dice against the truth');
    t.comment(
      `dendrite Dice on reconstructed slices: ${score.dice.toFixed(3)} (U-Net, trained on image-domain slices only; ${alerts.length - 1} dendrite alerts)`,
    );
  },
);
