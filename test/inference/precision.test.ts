import t from 'tap';
import { validatePipelineConfig } from '../../src/config/pipeline-config.ts';
import { loadModel, precisionName } from '../../src/inference/load-model.ts';
import { readModelCard } from '../../src/inference/model-card.ts';
import { runCli } from '../cli/run-cli.ts';

t.test('--precision int8 names the INT8 model beside the FP32 one; a card path is its own', async (t) => {
  t.equal(precisionName('tnet'), 'tnet');
  t.equal(precisionName('tnet', 'fp32'), 'tnet');
  t.equal(precisionName('tnet', 'int8'), 'tnet-int8');
  t.equal(precisionName('tnet-int8', 'int8'), 'tnet-int8');
  t.throws(() => precisionName('runs/tuned/tnet.json', 'int8'), /model card; give the INT8 model's own card/);
});

t.test(
  'each INT8 model loads by its own sha256, and its card names the FP32 model it came from',
  async (t) => {
    for (const name of ['tnet', 'unet']) {
      const int8 = await loadModel(precisionName(name, 'int8'), { thread: 'inline' });
      const fp32 = await readModelCard(name);
      try {
        t.equal(int8.card.name, `${name}-int8`);
        const q = (int8.card as unknown as { quantization?: { base?: { sha256?: string } } }).quantization;
        t.equal(q?.base?.sha256, (fp32 as { sha256: string }).sha256, `${name}-int8 was made from ${name}`);
        t.equal(int8.patchSize, fp32.kind === 'onnx' ? fp32.patchSize : undefined);
      } finally {
        await int8.close();
      }
    }
  },
);

t.test('a pipeline file takes model.precision, and refuses anything else', async (t) => {
  const base = { source: { folder: { path: '/in' } }, output: { zarr: '/out' } };
  t.equal(validatePipelineConfig(base).model.precision, 'fp32');
  t.equal(validatePipelineConfig({ ...base, model: { precision: 'int8' } }).model.precision, 'int8');
  t.throws(() => validatePipelineConfig({ ...base, model: { precision: 'int4' } }), /model\.precision.*int4/);
});

// The shipped INT8 T-Net through eval: its own card and sha256, and on a held-out scan close to the
// FP32 model (the card's three-scan figures: Dice 0.8215 vs 0.8227).
t.test('eval --precision int8 runs the shipped INT8 T-Net, close to FP32', async (t) => {
  const args = [
    'eval',
    '--model',
    'tnet',
    '--scans',
    '1',
    '--size',
    '128',
    '--slices',
    '16',
    '--no-speed',
    '--json',
  ];
  const dice = async (extra: string[]) => {
    const r = await runCli([...args, ...extra], { timeoutMs: 240_000 });
    t.equal(r.code, 0, r.stderr);
    return JSON.parse(r.stdout.trim().split('\n').at(-1) ?? '{}') as {
      model: { name: string };
      dice: number;
    };
  };
  const fp32 = await dice([]);
  const int8 = await dice(['--precision', 'int8']);
  t.equal(fp32.model.name, 'tnet');
  t.equal(int8.model.name, 'tnet-int8');
  t.ok(int8.dice > 0.5, `INT8 Dice ${int8.dice.toFixed(4)}`);
  t.ok(
    Math.abs(int8.dice - fp32.dice) < 0.02,
    `INT8 ${int8.dice.toFixed(4)} vs FP32 ${fp32.dice.toFixed(4)}`,
  );
  const bad = await runCli(['eval', '--model', 'tnet', '--precision', 'int4'], { timeoutMs: 60_000 });
  t.not(bad.code, 0);
  t.match(bad.stderr, /--precision/);
});
