import { copyFile, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { blendPlanes, loadModel, type SegmentationModel } from '../../src/inference/load-model.ts';
import { MODELS_DIR } from '../../src/inference/model-card.ts';
import { readZarrScanSlice } from '../../src/sinks/zarr-scan-writer.ts';
import { modelInput } from '../../src/slices/blend-neighbours.ts';
import { extractPlanePatches, tileGrid } from '../../src/slices/tile-grid.ts';
import { neighbourScan } from './neighbour-fixtures.ts';

// A T-Net that takes the slices z − 1, z, z + 1 as three input planes (card inputChannels 3), kept
// in the repository beside the shipped models (models/training/README.md says how it was trained).
const THREE_PLANES_DIR = fileURLToPath(new URL('../../models/training/candidates-2p5d/', import.meta.url));

let model: SegmentationModel;
t.before(async () => {
  model = await loadModel('tnet', { modelsDir: THREE_PLANES_DIR, threads: 2 });
});
t.teardown(() => model.close());

const SIZE = 128;
const { images, differenceFrom, runWithOnly } = neighbourScan(() => model, 901_011, SIZE);

t.test('a three-plane model gets, for each slice, exactly the slices beside it as planes', async (t) => {
  t.equal(model.inputChannels, 3, 'the model takes three planes');
  const root = t.testdir({ watch: { gap: {} }, out: {} });
  // Slice 2 never comes: 1 has no next neighbour, 3 no previous one.
  const { done, store } = await runWithOnly(root, 'gap', [0, 1, 3, 4]);
  t.same(done, [0, 1, 3, 4], 'every slice there is processed, in z order');
  const expected: [number, number | undefined, number | undefined][] = [
    [0, undefined, 1],
    [1, 0, undefined],
    [3, undefined, 4],
    [4, 3, undefined],
  ];
  for (const [z, previous, next] of expected) {
    const { prob } = await readZarrScanSlice(store, z);
    t.ok(
      (await differenceFrom(prob, z, previous, next)) <= 1,
      `slice ${z}: planes ${previous ?? z}, ${z}, ${next ?? z}`,
    );
  }
  // The check can tell: slice 3 with its true neighbours on both sides is not what the scan gave it.
  const { prob } = await readZarrScanSlice(store, 3);
  t.ok(
    (await differenceFrom(prob, 3, 2, 4)) > 1,
    'slice 3 with slice 2 as a plane differs from the stored one',
  );
});

t.test(
  'E-Net with a three-plane T-Net: the one-plane U-Net gets the planes blended, as before',
  async (t) => {
    const dir = t.testdir();
    for (const file of ['tnet.json', 'tnet.onnx'])
      await copyFile(join(THREE_PLANES_DIR, file), join(dir, file));
    for (const file of ['unet.json', 'unet.onnx', 'enet.json'])
      await copyFile(join(MODELS_DIR, file), join(dir, file));
    const enet = await loadModel('enet', { modelsDir: dir, threads: 2, sessions: 1 });
    const unet = await loadModel('unet', { modelsDir: dir, threads: 2, sessions: 1 });
    t.teardown(async () => {
      await enet.close();
      await unet.close();
    });
    t.equal(enet.inputChannels, 3, 'the ensemble takes what its widest member takes');
    const card = JSON.parse(await readFile(join(dir, 'enet.json'), 'utf8'));
    const planes = modelInput(images[2] as Uint16Array, images[1], images[3], {
      neighbourWeight: enet.neighbourWeight,
      normalization: enet.normalization,
      inputChannels: 3,
    });
    const tiles = tileGrid(SIZE, SIZE, { patch: 128, overlap: 32 });
    const patches = extractPlanePatches(planes, 3, SIZE, SIZE, tiles, 128);
    const blended = blendPlanes(patches, tiles.length, 128, enet.neighbourWeight);
    // The blend of the planes is the one-plane input U-Net has always had in E-Net.
    const oldInput = modelInput(images[2] as Uint16Array, images[1], images[3], {
      neighbourWeight: enet.neighbourWeight,
      normalization: enet.normalization,
    });
    let inputDiff = 0;
    const oldPatches = extractPlanePatches(oldInput, 1, SIZE, SIZE, tiles, 128);
    for (let i = 0; i < blended.length; i++)
      inputDiff = Math.max(inputDiff, Math.abs((blended[i] as number) - (oldPatches[i] as number)));
    t.ok(inputDiff < 1e-3, `blended planes = the normalized blend (max |diff| ${inputDiff})`);

    const got = await enet.predict(patches, tiles.length);
    const u = Float32Array.from(await unet.predict(blended, tiles.length));
    const tn = Float32Array.from(await model.predict(patches, tiles.length));
    const [wu, wt] = card.members.map((m: { weight: number }) => m.weight);
    let worst = 0;
    for (let i = 0; i < got.length; i++)
      worst = Math.max(
        worst,
        Math.abs((got[i] as number) - (wu * (u[i] as number) + wt * (tn[i] as number))),
      );
    t.ok(worst < 1e-5, `E-Net = ${wu}·U-Net(blend) + ${wt}·T-Net(planes) (max |diff| ${worst})`);
  },
);
