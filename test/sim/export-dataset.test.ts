import { execFileSync } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import t from 'tap';
import { blendNeighbours } from '../../src/operators/blend-neighbours.ts';
import { normalizeSlice } from '../../src/operators/normalize-slice.ts';
import { datasetScan, exportDataset } from '../../src/sim/export-dataset.ts';
import { renderSlice } from '../../src/sim/render-slice.ts';

const numpyAvailable = (() => {
  try {
    execFileSync('/usr/bin/python3', ['-c', 'import numpy'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();

t.test('exports normalized patches, masks, labels and an index', async (t) => {
  const dir = t.testdir();
  const index = await exportDataset({
    dir,
    patches: 30,
    seed: 500,
    size: 128,
    slices: 24,
    patchSize: 64,
    patchesPerScan: 10,
  });
  t.equal(index.count, 30);
  t.same(index.seeds, [500, 501, 502]);
  t.equal(index.patches.length, 30);
  const kinds = new Set(index.patches.map((p) => p.kind));
  t.ok(kinds.has('dendrite') && kinds.has('background'), `kinds: ${[...kinds].join(', ')}`);
  for (const p of index.patches) t.ok(p.x >= 0 && p.x + 64 <= 128 && p.y >= 0 && p.y + 64 <= 128 && p.z < 24);

  const images = await readFile(join(dir, 'images.npy'));
  const masks = await readFile(join(dir, 'masks.npy'));
  const labels = await readFile(join(dir, 'labels.npy'));
  const header = (b: Buffer) => b.subarray(10, 10 + b.readUInt16LE(8)).toString('latin1');
  t.match(header(images), /'descr': '<f4', 'fortran_order': False, 'shape': \(30, 64, 64\)/);
  t.match(header(masks), /'descr': '\|u1'.*\(30, 64, 64\)/);
  const body = (b: Buffer) => b.subarray(10 + b.readUInt16LE(8));
  t.equal(body(images).length, 30 * 64 * 64 * 4);
  const m = body(masks);
  const l = body(labels);
  let dendriteVoxels = 0;
  let mismatches = 0;
  for (let i = 0; i < m.length; i++) {
    if (m[i] !== (l[i] === 1 ? 1 : 0)) mismatches++;
    dendriteVoxels += m[i] as number;
  }
  t.equal(mismatches, 0, 'mask = (label == dendrite)');
  t.ok(dendriteVoxels > 0, `${dendriteVoxels} dendrite voxels`);
  // Dendrite patches hold dendrite voxels: they were placed around one.
  const per = 64 * 64;
  index.patches.forEach((p, k) => {
    if (p.kind === 'dendrite')
      t.ok(m.subarray(k * per, (k + 1) * per).includes(1), `patch ${k} holds a dendrite`);
  });
});

t.test(
  'with --neighbour-weight: the same patches, each from its slice blended as the daemon blends it',
  async (t) => {
    const options = { patches: 12, seed: 700, size: 128, slices: 12, patchSize: 64, patchesPerScan: 6 };
    const plainDir = t.testdir({ plain: {}, blended: {} });
    const plain = await exportDataset({ ...options, dir: join(plainDir, 'plain') });
    const blended = await exportDataset({
      ...options,
      dir: join(plainDir, 'blended'),
      neighbourWeight: 0.075,
    });
    t.same(blended.patches, plain.patches, 'same scans, slices and places');
    t.equal(blended.neighbourWeight, 0.075, 'the index records the weight');
    t.equal(plain.neighbourWeight, 0);
    const read = async (dir: string) => {
      const b = await readFile(join(plainDir, dir, 'images.npy'));
      const body = b.subarray(10 + b.readUInt16LE(8));
      return new Float32Array(body.buffer.slice(body.byteOffset, body.byteOffset + body.byteLength));
    };
    const [plainImages, blendedImages] = [await read('plain'), await read('blended')];
    // Recompute every patch from the simulator: the blend of its slice and neighbours, normalized.
    const volumes = new Map<number, Uint16Array[]>();
    const volumeOf = (seed: number): Uint16Array[] => {
      let v = volumes.get(seed);
      if (!v) {
        const { phantom } = datasetScan(seed, 128, 12);
        v = Array.from({ length: phantom.slices }, (_, z) => renderSlice(phantom, z).image);
        volumes.set(seed, v);
      }
      return v;
    };
    const per = 64 * 64;
    let worst = 0;
    let differsFromPlain = 0;
    for (const [k, p] of blended.patches.entries()) {
      const volume = volumeOf(p.scanSeed);
      const at = (z: number) => volume[z] as Uint16Array | undefined;
      const full = normalizeSlice(
        blendNeighbours(volume[p.z] as Uint16Array, at(p.z - 1), at(p.z + 1), 0.075),
      );
      for (let r = 0; r < 64; r++)
        for (let c = 0; c < 64; c++) {
          const want = full[(p.y + r) * 128 + p.x + c] as number;
          const got = blendedImages[k * per + r * 64 + c] as number;
          worst = Math.max(worst, Math.abs(want - got));
          if (got !== plainImages[k * per + r * 64 + c]) differsFromPlain++;
        }
    }
    t.equal(worst, 0, 'every pixel as blendNeighbours + normalizeSlice give it');
    t.ok(differsFromPlain > 0.5 * 12 * per, `${differsFromPlain} pixels differ from the unblended export`);
    await t.rejects(
      exportDataset({ ...options, dir: join(plainDir, 'bad'), neighbourWeight: 0.5 }),
      /--neighbour-weight must be from 0 to 1\/3, got 0.5/,
    );
  },
);

t.test('numpy reads the files as written', { skip: !numpyAvailable && 'numpy not installed' }, async (t) => {
  const dir = t.testdir();
  await exportDataset({ dir, patches: 6, seed: 900, size: 128, slices: 12, patchSize: 64 });
  const out = execFileSync('/usr/bin/python3', [
    '-c',
    `import numpy as np, sys
d = sys.argv[1]
i = np.load(d + '/images.npy'); m = np.load(d + '/masks.npy'); l = np.load(d + '/labels.npy')
print(i.dtype, i.shape, m.dtype, m.shape, l.dtype, int(((l == 1) == (m == 1)).all()), float(np.median(i)) > 0.05)`,
    dir,
  ]).toString();
  t.equal(out.trim(), 'float32 (6, 64, 64) uint8 (6, 64, 64) uint8 1 True');
});
