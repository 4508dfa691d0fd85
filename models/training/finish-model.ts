/**
 * The last step of `npm run train` for one model: check that onnxruntime-node agrees with PyTorch
 * on the parity fixture (within 1e-4), write the model card (sha256, training record), then
 * evaluate the shipped file on held-out simulated scans and put the measured metrics in the card.
 *
 *   node --import tsx models/training/finish-model.ts --model tnet|unet|enet [--runs DIR] [--scans N]
 *                                                     [--models-dir DIR]
 *
 * `--models-dir` (default: the shipped `models/`) is where the ONNX file lies and the card goes: a
 * candidate is finished in a folder of its own and shipped only once it is measured to be better.
 */
import { readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import * as ort from 'onnxruntime-node';
import { EVAL_SEED } from '../../src/cli/eval-command.ts';
import { evaluateModel, measureSpeed } from '../../src/eval/evaluate-model.ts';
import { loadModel } from '../../src/inference/load-model.ts';
import { MODELS_DIR, sha256File } from '../../src/inference/model-card.ts';
import { DEFAULT_NORMALIZATION } from '../../src/slices/normalize-slice.ts';

const { values } = parseArgs({
  options: {
    model: { type: 'string' },
    runs: { type: 'string', default: 'models/training/runs' },
    data: { type: 'string', default: 'models/training/data/train' },
    scans: { type: 'string', default: '3' },
    size: { type: 'string', default: '256' },
    slices: { type: 'string', default: '64' },
    threshold: { type: 'string', default: '0.5' },
    'neighbour-weight': { type: 'string' },
    // A model continued from a shipped one gets a new minor version.
    version: { type: 'string', default: '1.0.0' },
    'models-dir': { type: 'string' },
  },
});
const name = values.model;
if (name !== 'tnet' && name !== 'unet' && name !== 'enet') throw new Error('--model must be tnet, unet or enet');
const runs = values.runs as string;
// Chosen by choose-threshold.ts on six validation scans (seeds 1000–1010); E-Net is mostly T-Net.
const NEIGHBOUR_WEIGHT = { tnet: 0.075, unet: 0.05, enet: 0.075 };
const neighbourWeight = Number(values['neighbour-weight'] ?? NEIGHBOUR_WEIGHT[name]);
const held = { seeds: Array.from({ length: Number(values.scans) }, (_, i) => EVAL_SEED + i), size: Number(values.size), slices: Number(values.slices) };

/** Read a float32 C-order .npy (the parity fixtures np.save wrote). */
async function readNpyFloat32(path: string): Promise<{ shape: number[]; data: Float32Array }> {
  const bytes = await readFile(path);
  const headerLength = bytes.readUInt16LE(8);
  const header = bytes.subarray(10, 10 + headerLength).toString('latin1');
  if (!header.includes("'descr': '<f4'") || header.includes("'fortran_order': True")) throw new Error(`${path}: expected C-order <f4`);
  const shape = (/'shape': \(([^)]*)\)/.exec(header)?.[1] ?? '').split(',').filter((s) => s.trim()).map(Number);
  const body = bytes.subarray(10 + headerLength);
  return { shape, data: new Float32Array(body.buffer.slice(body.byteOffset, body.byteOffset + body.byteLength)) };
}

const PAPER = {
  unet: { mIoU: 0.8698, mDSC: 0.8998, msPerPatch: 65.36 },
  tnet: { mIoU: 0.9511, mDSC: 0.9647, msPerPatch: 206.75 },
  enet: { mIoU: 0.9514, mDSC: 0.9641, msPerPatch: 473.59 },
};

const modelsDir = values['models-dir'] ?? MODELS_DIR;
const cardPath = join(modelsDir, `${name}.json`);
/** The shipped card: a run continued from the shipped ONNX file carries its phases from there. */
const shippedCardPath = join(MODELS_DIR, `${name}.json`);
let card: Record<string, unknown>;
if (name === 'enet') {
  card = {
    name,
    kind: 'ensemble',
    version: '1.0.0',
    description:
      'E-Net: the paper\'s weighted ensemble, 0.2 × U-Net + 0.8 × T-Net probabilities, averaged at inference time (no third file). Trained on synthetic scans only.',
    members: [
      { name: 'unet', weight: 0.2 },
      { name: 'tnet', weight: 0.8 },
    ],
    patchSize: 128,
    normalization: DEFAULT_NORMALIZATION,
    neighbourWeight,
    threshold: Number(values.threshold),
  };
} else {
  const train = JSON.parse(await readFile(join(runs, `${name}.train.json`), 'utf8'));
  const exported = JSON.parse(await readFile(join(runs, `${name}.export.json`), 'utf8'));
  const file = `${name}.onnx`;
  const onnxPath = join(modelsDir, file);
  const inputChannels = Number(exported.input?.shape?.[1] ?? 1);
  const sha256 = await sha256File(onnxPath);
  if (sha256 !== exported.sha256) throw new Error(`${onnxPath} changed since export (sha256 ${sha256} vs ${exported.sha256})`);

  // Parity: the shipped file in onnxruntime-node against PyTorch's own output on the same input.
  const input = await readNpyFloat32(join(runs, `${name}.parity-input.npy`));
  const expected = await readNpyFloat32(join(runs, `${name}.parity-output.npy`));
  const session = await ort.InferenceSession.create(onnxPath, { executionProviders: ['cpu'] });
  let maxAbsDiff = 0;
  try {
    const out = await session.run({ image: new ort.Tensor('float32', input.data, input.shape) });
    const got = out.prob?.data as Float32Array;
    for (let i = 0; i < expected.data.length; i++) maxAbsDiff = Math.max(maxAbsDiff, Math.abs((got[i] as number) - (expected.data[i] as number)));
  } finally {
    await session.release();
  }
  console.log(`${name}: onnxruntime-node vs PyTorch on ${input.shape.join('×')}: max |diff| ${maxAbsDiff.toExponential(2)}`);
  if (!(maxAbsDiff <= 1e-4)) throw new Error(`${name}: parity check failed (max |diff| ${maxAbsDiff} > 1e-4)`);

  const index = JSON.parse(await readFile(join(values.data as string, 'index.json'), 'utf8')) as { seeds: number[]; count: number };
  type Run = {
    epochsDone?: number;
    wallTimeSeconds: number;
    hyperparameters: unknown;
    data?: string;
    note?: string;
    previousRun?: Run;
    fromOnnx?: { sha256?: string };
  };
  type Phase = { epochs: number; wallSeconds: number; hyperparameters: unknown; data?: string; note?: string };
  const phases: Phase[] = [];
  for (let run: Run | undefined = train; run; run = run.previousRun) {
    if (run.epochsDone === undefined && run.fromOnnx) {
      // The chain started from the shipped ONNX file (onnx_to_torch.py): its card holds the phases
      // before, if it is the card of that very file.
      const previous = JSON.parse(await readFile(shippedCardPath, 'utf8').catch(() => '{}')) as {
        sha256?: string;
        training?: { phases?: Phase[]; epochs: number; wallSeconds: number; hyperparameters: unknown };
      };
      if (previous.sha256 !== run.fromOnnx.sha256 || !previous.training)
        throw new Error(`${shippedCardPath} is not the card of the ONNX file the run continued (sha256 ${run.fromOnnx.sha256})`);
      const before = previous.training.phases ?? [
        { epochs: previous.training.epochs, wallSeconds: previous.training.wallSeconds, hyperparameters: previous.training.hyperparameters },
      ];
      phases.unshift(...before);
      break;
    }
    phases.unshift({
      epochs: run.epochsDone ?? 0,
      wallSeconds: run.wallTimeSeconds,
      hyperparameters: run.hyperparameters,
      // Which dataset the phase read: the last T-Net phase reads slices blended with their neighbours.
      ...(run.data !== undefined && { data: run.data }),
      ...(run.note !== undefined && { note: run.note }),
    });
  }
  card = {
    name,
    kind: 'onnx',
    version: values.version as string,
    description:
      name === 'tnet'
        ? `T-Net (TransforCNN, arXiv 2302.04824): ViT encoder (64 tokens of 16×16, 64-dim, Fourier-feature positions, 8 layers) with a CNN decoder fed by every second layer.${inputChannels === 3 ? ' 2.5-D: the slices z − 1, z and z + 1 are its three input channels.' : ''} Trained on synthetic scans only.`
        : 'U-Net baseline (16 → 256 channels). Trained on synthetic scans only.',
    file,
    sha256,
    bytes: (await stat(onnxPath)).size,
    input: 'image',
    output: 'prob',
    patchSize: 128,
    normalization: DEFAULT_NORMALIZATION,
    neighbourWeight,
    ...(inputChannels !== 1 && { inputChannels }),
    threshold: Number(values.threshold),
    architecture: {
      family: name === 'tnet' ? 'T-Net (ViT encoder + CNN decoder)' : 'U-Net',
      parameters: train.parameters,
      config: train.config,
      ...(name === 'tnet' && {
        deviationsFromPaper: [
          'Decoder follows UNETR: layer 8 is the bottleneck, layers 6/4/2 are upsampled to 16/32/64 px by transposed convolutions.',
          'A small convolutional stem on the raw patch is the 128-px skip: 16×16 tokens alone cannot carry 1–2 voxel dendrite branches.',
          ...(inputChannels === 3
            ? [
                'Three input channels (the slices z − 1, z, z + 1, scaled by the blended slice\'s range) instead of one: a thin needle leaning through the slices is a few voxels in each, a line across three. The token embedding and the stem started as the one-channel model\'s times (w, 1 − 2w, w).',
              ]
            : []),
        ],
      }),
    },
    onnx: { opset: exported.opset, parityMaxAbsDiff: maxAbsDiff, parityTolerance: 1e-4 },
    training: {
      data:
        'Synthetic Li|polymer|Li XCT phantoms from `xct-sentinel simulate --dataset` (branching-random-walk dendrites in three habits, pits, gas bubbles, partial volume, blur, cupping, rings, drift, Poisson+Gaussian noise). No real scan was used: the paper\'s data is not public.',
      patches: index.count,
      seeds: { from: Math.min(...index.seeds), to: Math.max(...index.seeds), validation: train.split?.valSeeds },
      loss: describeLoss(phases.map((p) => (p.hyperparameters as { loss?: string } | undefined)?.loss ?? 'bce')),
      augmentation: "the paper's: 90° rotations, flips, 2% crops, shifts, zoom 0.8–1, ±5% brightness/contrast",
      hyperparameters: train.hyperparameters,
      // A continued run (--init) carries the runs it continued, oldest last: one phase each.
      epochs: phases.reduce((a, p) => a + p.epochs, 0),
      wallSeconds: Math.round(phases.reduce((a, p) => a + p.wallSeconds, 0) * 10) / 10,
      phases: phases.length > 1 ? phases : undefined,
      steps: train.steps,
      trainPatchesPerSecond: train.trainPatchesPerSecond,
      hardware: train.hardware,
      bestValidation: train.best,
      command: 'npm run train',
    },
  };
}

await writeFile(cardPath, `${JSON.stringify(card, null, 2)}\n`);
const model = await loadModel(name, { modelsDir });
try {
  const scores = await evaluateModel(model, { ...held, batch: 16 });
  const speed = await measureSpeed(model);
  const best = speed.reduce((a, b) => (b.patchesPerSecond > a.patchesPerSecond ? b : a));
  const batch1 = speed.find((p) => p.batch === 1);
  card.metrics = {
    heldOut: { ...held, ...scores },
    speed: { hardware: (card.training as { hardware?: unknown } | undefined)?.hardware ?? 'this machine', batch1, best, points: speed },
    paper: PAPER[name],
    targets: { mIoU: 0.95, dice: 0.9, confoundersAsDendrite: 0.02 },
    command: `xct-sentinel eval --model ${name} --seed ${held.seeds[0]} --scans ${held.seeds.length} --size ${held.size} --slices ${held.slices}`,
  };
  await writeFile(cardPath, `${JSON.stringify(card, null, 2)}\n`);
  console.log(`${name}: IoU ${scores.iou.toFixed(4)} Dice ${scores.dice.toFixed(4)} mIoU ${scores.mIoU.toFixed(4)} mDSC ${scores.mDSC.toFixed(4)} pit ${(scores.pitAsDendrite * 100).toFixed(2)}% bubble ${(scores.bubbleAsDendrite * 100).toFixed(2)}%; batch 1 ${batch1?.msPerPatch.toFixed(2)} ms/patch, best batch ${best.batch} ${best.msPerPatch.toFixed(2)} ms/patch`);
} finally {
  await model.close();
}

/** The loss in words, phase by phase when they differ ("bce", "bce+1*softdice" from train.py). */
function describeLoss(perPhase: readonly string[]): string {
  const words = (loss: string): string => {
    const dice = /^bce\+([\d.]+)\*softdice$/.exec(loss);
    if (dice) return `binary cross-entropy + ${dice[1]} × soft Dice (pooled over the batch)`;
    return loss === 'bce' ? 'binary cross-entropy' : loss;
  };
  const distinct = [...new Set(perPhase)];
  if (distinct.length === 1) return words(distinct[0] as string);
  return perPhase.map((loss, i) => `phase ${i + 1}: ${words(loss)}`).join('; ');
}
