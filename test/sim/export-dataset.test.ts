import { execFileSync } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import t from 'tap';
import { datasetScan, exportDataset } from '../../src/sim/export-dataset.ts';
import { dendriteOwners, renderSlice } from '../../src/sim/render-slice.ts';
import { blendNeighbours, neighbourChannels } from '../../src/slices/blend-neighbours.ts';
import { DEFAULT_NORMALIZATION, normalizeSlice } from '../../src/slices/normalize-slice.ts';

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

t.test(
  'with --input-channels 3: the same patches, each as the slices above, at and below it, scaled by the blend',
  async (t) => {
    const options = { patches: 8, seed: 710, size: 128, slices: 12, patchSize: 64, patchesPerScan: 4 };
    const dir = t.testdir({ one: {}, three: {} });
    const one = await exportDataset({ ...options, dir: join(dir, 'one'), neighbourWeight: 0.075 });
    const three = await exportDataset({
      ...options,
      dir: join(dir, 'three'),
      neighbourWeight: 0.075,
      inputChannels: 3,
    });
    t.same(three.patches, one.patches, 'same scans, slices and places');
    t.equal(three.inputChannels, 3, 'the index says so');
    t.equal(one.inputChannels, 1);
    const bytes = await readFile(join(dir, 'three', 'images.npy'));
    const headerLength = bytes.readUInt16LE(8);
    t.match(bytes.subarray(10, 10 + headerLength).toString('latin1'), /'shape': \(8, 3, 64, 64\)/);
    const body = bytes.subarray(10 + headerLength);
    const images = new Float32Array(body.buffer.slice(body.byteOffset, body.byteOffset + body.byteLength));
    const per = 64 * 64;
    let worst = 0;
    for (const [k, p] of three.patches.entries()) {
      const { phantom } = datasetScan(p.scanSeed, 128, 12);
      const at = (z: number) => (z >= 0 && z < 12 ? renderSlice(phantom, z).image : undefined);
      const planes = neighbourChannels(at(p.z) as Uint16Array, at(p.z - 1), at(p.z + 1), {
        neighbourWeight: 0.075,
        normalization: DEFAULT_NORMALIZATION,
      });
      for (let c = 0; c < 3; c++)
        for (let r = 0; r < 64; r++)
          for (let x = 0; x < 64; x++) {
            const want = planes[c * 128 * 128 + (p.y + r) * 128 + p.x + x] as number;
            const got = images[(k * 3 + c) * per + r * 64 + x] as number;
            worst = Math.max(worst, Math.abs(want - got));
          }
    }
    t.equal(worst, 0, 'every plane of every patch as neighbourChannels gives it');
    await t.rejects(
      exportDataset({ ...options, dir: join(dir, 'bad'), inputChannels: 2 }),
      /--input-channels must be 1 or 3, got 2/,
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

t.test(
  '--needle-fraction places patches on needles; habits.npy names each dendrite voxel’s habit',
  async (t) => {
    const dirs = t.testdir({ plain: {}, needles: {} });
    const options = { patches: 40, seed: 700, size: 128, slices: 24, patchSize: 64, patchesPerScan: 20 };
    const plain = await exportDataset({ ...options, dir: join(dirs, 'plain') });
    const index = await exportDataset({ ...options, dir: join(dirs, 'needles'), needleFraction: 0.5 });
    t.equal(plain.needleFraction, 0);
    t.equal(index.needleFraction, 0.5);
    t.notOk(
      plain.patches.some((p) => p.kind === 'needle'),
      'no needle patches unless asked for',
    );
    const needlePatches = index.patches.flatMap((p, k) => (p.kind === 'needle' ? [k] : []));
    t.ok(needlePatches.length >= 10, `${needlePatches.length} of 40 patches placed on needles`);

    const body = (b: Buffer) => b.subarray(10 + b.readUInt16LE(8));
    const masks = body(await readFile(join(dirs, 'needles', 'masks.npy')));
    const habits = body(await readFile(join(dirs, 'needles', 'habits.npy')));
    t.equal(habits.length, masks.length);
    let wrong = 0;
    for (let i = 0; i < masks.length; i++) if ((habits[i] !== 0) !== (masks[i] === 1)) wrong++;
    t.equal(wrong, 0, 'a habit exactly where the mask says dendrite');
    t.ok(
      [...new Set(habits)].every((h) => h <= 3),
      'habit codes are 0–3',
    );
    // Each needle patch holds needle voxels of the scan's own needle dendrites, checked against the
    // simulator's dendrite list: the owner of a voxel, its habit, from the phantom itself.
    const per = 64 * 64;
    for (const k of needlePatches) {
      t.ok(habits.subarray(k * per, (k + 1) * per).includes(3), `patch ${k} holds needle voxels`);
    }
    const p = index.patches[needlePatches[0] as number] as {
      scanSeed: number;
      z: number;
      y: number;
      x: number;
    };
    const { phantom } = datasetScan(p.scanSeed, 128, 24);
    const owners = dendriteOwners(phantom, p.z, renderSlice(phantom, p.z).labels);
    const k = needlePatches[0] as number;
    let checked = 0;
    for (let r = 0; r < 64; r++)
      for (let c = 0; c < 64; c++) {
        const owner = owners[(p.y + r) * 128 + p.x + c] as number;
        const h = habits[k * per + r * 64 + c] as number;
        const want =
          owner === 0
            ? 0
            : { tree: 1, mossy: 2, needle: 3 }[phantom.dendrites[owner - 1]?.morphology ?? 'tree'];
        if (h !== want) wrong++;
        checked++;
      }
    t.equal(wrong, 0, `patch ${k}: the habit of every one of ${checked} voxels is its owner dendrite's`);
  },
);

t.test('--needle-fraction outside 0–1 is refused', async (t) => {
  await t.rejects(exportDataset({ dir: t.testdir(), patches: 1, seed: 1, needleFraction: 1.5 }), {
    code: 'ERR_USAGE',
    context: { option: '--needle-fraction' },
  });
});
