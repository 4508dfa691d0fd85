import { copyFile, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import FileSystemStore from '@zarrita/storage/fs';
import t from 'tap';
import * as zarr from 'zarrita';
import { decodeTiff } from '../../src/codecs/decode-tiff.ts';
import { encodeTiff } from '../../src/codecs/encode-tiff.ts';
import { evaluateScan, UNLABELLED } from '../../src/eval/evaluate-scan.ts';
import { scoreAgainstTruth } from '../../src/eval/score-against-truth.ts';
import { loadModel, type SegmentationModel } from '../../src/inference/load-model.ts';
import { MODELS_DIR } from '../../src/inference/model-card.ts';
import { runLiveScanner } from '../../src/sim/live-scanner.ts';
import { runCli } from '../cli/run-cli.ts';

// Issue 19 item 1: a model scored on a user's own scan and labels. The peer is the daemon itself:
// the same scan replayed through the pipeline and its stored masks scored against the same labels.
const SCAN = { seed: 901_007, size: 128, slices: 8 };
let model: SegmentationModel;
let root: string;
let scanDir: string;
let truthPath: string;
let masks: Uint8Array[];

t.before(async () => {
  model = await loadModel('unet', { threads: 2, thread: 'inline' });
  root = t.testdir();
  const sim = await runLiveScanner({ out: root, ...SCAN, rate: 1e6, scanId: 'user-scan' });
  scanDir = sim.scanDir;
  truthPath = sim.truthPath;
  const replay = await runCli(
    ['replay', scanDir, '--out', join(root, 'replay'), '--model', 'unet', '--json'],
    {
      timeoutMs: 120_000,
    },
  );
  if (replay.code !== 0) throw new Error(replay.stderr);
  const store = new FileSystemStore(join(root, 'replay', 'user-scan.ome.zarr'));
  const labels = await zarr.open(zarr.root(store).resolve('labels/dendrite/0'), { kind: 'array' });
  masks = [];
  for (let z = 0; z < SCAN.slices; z++)
    masks.push((await zarr.get(labels, [z, null, null])).data as Uint8Array);
});
t.teardown(() => model?.close());

t.test('every slice labelled: the same Dice as the daemon’s own masks against the labels', async (t) => {
  const r = await evaluateScan(model, { scan: scanDir, truth: truthPath });
  const daemon = await scoreAgainstTruth(join(root, 'replay', 'user-scan.ome.zarr'), truthPath);
  t.same(r.labelledSlices, [0, 1, 2, 3, 4, 5, 6, 7]);
  t.equal(r.labelledVoxels, SCAN.size * SCAN.size * SCAN.slices);
  t.ok(Math.abs(r.dice - daemon.dice) < 1e-12, `Dice ${r.dice} = the daemon's ${daemon.dice}`);
  t.ok(Math.abs(r.iou - daemon.iou) < 1e-12, 'and IoU');
  t.ok(r.voxels.truePositive + r.voxels.falseNegative > 0, 'the scan has dendrite voxels to find');
});

t.test('sparse labels (a folder, two slices, part unlabelled): only labelled voxels count', async (t) => {
  const truthBytes = await readFile(truthPath);
  const dir = join(root, 'sparse');
  await mkdir(dir);
  const expected = { tp: 0, fp: 0, fn: 0, labelled: 0 };
  for (const z of [2, 5]) {
    const page = await decodeTiff(truthBytes, { path: truthPath, page: z });
    const labels = Uint8Array.from(page.data as Uint8Array);
    // The left half of slice 5 nobody labelled.
    if (z === 5)
      for (let i = 0; i < labels.length; i++) if (i % SCAN.size < SCAN.size / 2) labels[i] = UNLABELLED;
    await writeFile(
      join(dir, `labels_${String(z).padStart(3, '0')}.tif`),
      encodeTiff([{ width: SCAN.size, height: SCAN.size, data: labels }]),
    );
    const mask = masks[z] as Uint8Array;
    for (let i = 0; i < labels.length; i++) {
      if (labels[i] === UNLABELLED) continue;
      expected.labelled++;
      const p = mask[i] === 1;
      const d = labels[i] === 1;
      if (p && d) expected.tp++;
      else if (p) expected.fp++;
      else if (d) expected.fn++;
    }
  }
  const r = await evaluateScan(model, { scan: scanDir, truth: dir });
  t.same(r.labelledSlices, [2, 5], 'the slices named by the label files');
  t.equal(r.labelledVoxels, expected.labelled, 'a half slice left out');
  t.same(
    r.voxels,
    { truePositive: expected.tp, falsePositive: expected.fp, falseNegative: expected.fn },
    'counts equal the daemon’s masks over the labelled voxels',
  );
});

t.test('labels that do not fit the scan are refused, naming both', async (t) => {
  const small = join(root, 'small.tif');
  await writeFile(
    small,
    encodeTiff(
      Array.from({ length: SCAN.slices }, () => ({ width: 64, height: 64, data: new Uint8Array(64 * 64) })),
    ),
  );
  await t.rejects(evaluateScan(model, { scan: scanDir, truth: small }), {
    code: 'ERR_DECODE',
    message: /small\.tif against .*user-scan: slice 0: labels 64×64, scan 128×128/,
  });
  const short = join(root, 'short.tif');
  await writeFile(
    short,
    encodeTiff(
      Array.from({ length: 3 }, () => ({ width: 128, height: 128, data: new Uint8Array(128 * 128) })),
    ),
  );
  await t.rejects(evaluateScan(model, { scan: scanDir, truth: short }), {
    message:
      /short\.tif against .*: the labels have 3 slices, the scan 8; label only some slices with a folder/,
  });
  const cli = await runCli(['eval', '--scan', scanDir], { timeoutMs: 30_000 });
  t.not(cli.code, 0);
  t.match(cli.stderr, /eval --scan ARCHIVE needs --truth LABELS/);
});

t.test('the CLI prints the scores, and --json the record', async (t) => {
  const r = await runCli(['eval', '--scan', scanDir, '--truth', truthPath, '--model', 'unet', '--json'], {
    timeoutMs: 120_000,
  });
  t.equal(r.code, 0, 'exit 0', { stderr: r.stderr });
  const record = JSON.parse(r.stdout) as { dice: number; labelledSlices: number[]; model: { name: string } };
  const daemon = await scoreAgainstTruth(join(root, 'replay', 'user-scan.ome.zarr'), truthPath);
  t.ok(Math.abs(record.dice - daemon.dice) < 1e-12, 'the record’s Dice');
  t.equal(record.model.name, 'unet');
});

t.test('--model takes the path of a card (a model someone trained), verified by its sha256', async (t) => {
  const dir = join(root, 'my-model');
  await mkdir(dir);
  for (const f of ['unet.json', 'unet.onnx']) await copyFile(join(MODELS_DIR, f), join(dir, f));
  const r = await runCli(
    ['eval', '--scan', scanDir, '--truth', truthPath, '--model', join(dir, 'unet.json'), '--json'],
    {
      timeoutMs: 120_000,
    },
  );
  t.equal(r.code, 0, 'eval with a card path', { stderr: r.stderr });
  const daemon = await scoreAgainstTruth(join(root, 'replay', 'user-scan.ome.zarr'), truthPath);
  t.ok(
    Math.abs((JSON.parse(r.stdout) as { dice: number }).dice - daemon.dice) < 1e-12,
    'the same model, the same Dice',
  );
  const replay = await runCli(
    ['replay', scanDir, '--out', join(root, 'by-path'), '--model', join(dir, 'unet.json'), '--json'],
    {
      timeoutMs: 120_000,
    },
  );
  t.equal(replay.code, 0, 'replay with a card path', { stderr: replay.stderr });
  // One byte changed in its ONNX file: refused, as a shipped model would be.
  const onnx = await readFile(join(dir, 'unet.onnx'));
  onnx[onnx.length - 1] = (onnx[onnx.length - 1] as number) ^ 0xff;
  await writeFile(join(dir, 'unet.onnx'), onnx);
  const tampered = await runCli(
    ['eval', '--scan', scanDir, '--truth', truthPath, '--model', join(dir, 'unet.json')],
    {
      timeoutMs: 60_000,
    },
  );
  t.not(tampered.code, 0);
  t.match(tampered.stderr, /sha256/);
});
