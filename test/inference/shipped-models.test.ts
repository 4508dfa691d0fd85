import { copyFile, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import t from 'tap';
import { evaluateModel } from '../../src/eval/evaluate-model.ts';
import { loadModel } from '../../src/inference/load-model.ts';
import { MODEL_NAMES, MODELS_DIR, readModelCard, sha256File } from '../../src/inference/model-card.ts';
import { runCli } from '../cli/run-cli.ts';

// A broken, swapped or untrained model must fail here. Floors sit below what `npm run train`
// measured (see each card's metrics) with room for the scan being small.
const DICE_FLOOR: Record<string, number> = { tnet: 0.75, unet: 0.75, enet: 0.75 };

for (const name of MODEL_NAMES) {
  t.test(`${name}: loads, matches its card, and segments a held-out scan`, async (t) => {
    const card = await readModelCard(name);
    if (card.kind === 'onnx') {
      t.equal(
        await sha256File(join(MODELS_DIR, card.file)),
        card.sha256,
        'file matches the sha256 in its card',
      );
      t.ok((await readFile(join(MODELS_DIR, card.file))).length < 20 * 2 ** 20, 'under 20 MB');
    }
    const model = await loadModel(name, { threads: 2 });
    try {
      t.equal(model.identity.provider, 'cpu');
      const scores = await evaluateModel(model, { seeds: [950_000], size: 128, slices: 24 });
      t.ok(
        scores.dice >= (DICE_FLOOR[name] as number),
        `Dice ${scores.dice.toFixed(3)} ≥ floor ${DICE_FLOOR[name]}`,
      );
      t.ok(
        scores.pitAsDendrite <= 0.05 && scores.bubbleAsDendrite <= 0.05,
        `confounders as dendrite: pits ${scores.pitAsDendrite}, bubbles ${scores.bubbleAsDendrite}`,
      );
      // Every truth dendrite voxel belongs to one habit, and those found are the true positives.
      const h = Object.values(scores.habits);
      t.equal(
        h.reduce((a, x) => a + x.voxels, 0),
        scores.voxels.truePositive + scores.voxels.falseNegative,
        'habit voxels add up to the truth dendrite voxels',
      );
      t.equal(
        h.reduce((a, x) => a + x.found, 0),
        scores.voxels.truePositive,
        'habit voxels found add up to the true positives',
      );
    } finally {
      await model.close();
    }
  });
}

t.test('a requested GPU provider that cannot start falls back to CPU and says why', async (t) => {
  const model = await loadModel('unet', { provider: 'cuda' });
  try {
    t.equal(model.identity.provider, 'cpu');
    t.match(model.fallbackReason, /^cuda: /);
  } finally {
    await model.close();
  }
});

t.test('eval refuses bad input with a clear error', async (t) => {
  const dir = t.testdir();
  await copyFile(join(MODELS_DIR, 'unet.json'), join(dir, 'unet.json'));
  await copyFile(join(MODELS_DIR, 'unet.onnx'), join(dir, 'unet.onnx'));
  const corrupt = await readFile(join(dir, 'unet.onnx'));
  corrupt.writeUInt8(corrupt.readUInt8(corrupt.length - 10) ^ 0xff, corrupt.length - 10);
  await writeFile(join(dir, 'unet.onnx'), corrupt);
  const cases: [string[], RegExp][] = [
    [['eval', '--model', 'resnet'], /unknown model "resnet"/],
    [['eval'], /eval needs --model/],
    [['eval', '--model', 'unet', '--models-dir', dir], /checksum mismatch/],
    [['eval', '--model', 'unet', '--seed', '1200'], /scan seed 1200 was used to train unet/],
    [['eval', '--model', 'unet', '--scans', '0'], /--scans must be from 1/],
  ];
  await copyFile(join(MODELS_DIR, 'tnet.json'), join(dir, 'tnet.json'));
  cases.push([['eval', '--model', 'tnet', '--models-dir', dir], /missing file .*tnet\.onnx/]);
  const heavy = join(dir, 'heavy');
  await mkdir(heavy);
  const card = JSON.parse(await readFile(join(MODELS_DIR, 'unet.json'), 'utf8'));
  await writeFile(join(heavy, 'unet.json'), JSON.stringify({ ...card, neighbourWeight: 0.5 }));
  cases.push([
    ['eval', '--model', 'unet', '--models-dir', heavy],
    /model card .*unet\.json: "neighbourWeight" must be a number in \[0, 1\/3\]/,
  ]);
  const planes = join(dir, 'planes');
  await mkdir(planes);
  await writeFile(join(planes, 'unet.json'), JSON.stringify({ ...card, inputChannels: 2 }));
  cases.push([
    ['eval', '--model', 'unet', '--models-dir', planes],
    /model card .*unet\.json: "inputChannels" must be 1 or 3/,
  ]);
  for (const [args, message] of cases) {
    const r = await runCli(args);
    t.not(r.code, 0, `${args.join(' ')} fails`);
    t.match(r.stderr, message, r.stderr.split('\n')[0] ?? '');
  }
});
