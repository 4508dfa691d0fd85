/**
 * Does a PyTorch module compute what an ONNX file computes? Runs `--onnx` in onnxruntime-node on a
 * raw float32 (B,1,P,P) input and compares with the module's output on the same input (written by
 * `onnx_to_torch.py --check`), within `--tolerance` (default 1e-4, as finish-model.ts asks).
 *
 *   node --import tsx models/training/onnx-parity.ts --onnx models/tnet.onnx --input X.f32 --torch X.f32.torch.f32
 */
import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import * as ort from 'onnxruntime-node';

const { values } = parseArgs({
  options: {
    onnx: { type: 'string' },
    input: { type: 'string' },
    torch: { type: 'string' },
    patch: { type: 'string', default: '128' },
    tolerance: { type: 'string', default: '1e-4' },
  },
});
if (!values.onnx || !values.input || !values.torch) throw new Error('--onnx, --input and --torch are needed');
const p = Number(values.patch);
const floats = async (path: string) => {
  const b = await readFile(path);
  return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
};
const input = await floats(values.input);
const expected = await floats(values.torch);
if (input.length % (p * p) || expected.length !== input.length)
  throw new Error(`${values.input}: ${input.length} floats in, ${expected.length} out: not matching ${p}×${p} patches`);
const session = await ort.InferenceSession.create(values.onnx, { executionProviders: ['cpu'] });
const out = await session.run({ image: new ort.Tensor('float32', input, [input.length / (p * p), 1, p, p]) });
await session.release();
const got = out.prob?.data as Float32Array;
let worst = 0;
for (let i = 0; i < got.length; i++) worst = Math.max(worst, Math.abs((got[i] as number) - (expected[i] as number)));
const tolerance = Number(values.tolerance);
console.log(`${values.onnx} vs PyTorch on ${input.length / (p * p)} patches: max |diff| ${worst.toExponential(2)} (tolerance ${tolerance})`);
if (!(worst <= tolerance)) process.exit(1);
