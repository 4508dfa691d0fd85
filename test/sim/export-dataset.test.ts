import { execFileSync } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import t from 'tap';
import { exportDataset } from '../../src/sim/export-dataset.ts';

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
