/**
 * INT8 calibration, step 2 of 3: min/max of each tensor `expose_conv_tensors.py` made an output,
 * over the training patches of `simulate --dataset` (images.npy, float32 N×128×128), in ONNX Runtime.
 *
 *   node models/training/calibrate-int8.mjs EXPOSED.onnx NAMES.json DATA/images.npy RANGES.json
 */
import { readFileSync, writeFileSync } from 'node:fs';
import * as ort from 'onnxruntime-node';
const [model, list, npy, out] = process.argv.slice(2);
const names = JSON.parse(readFileSync(list, 'utf8'));
const b = readFileSync(npy); const hl = b.readUInt16LE(8); const header = b.subarray(10, 10 + hl).toString();
const data = new Float32Array(b.buffer.slice(b.byteOffset + 10 + hl, b.byteOffset + b.length));
const n = data.length / (128 * 128);
const s = await ort.InferenceSession.create(model, { executionProviders: ['cpu'], intraOpNumThreads: 2 });
const ranges = Object.fromEntries(names.map((k) => [k, [Infinity, -Infinity]]));
const B = 16;
for (let i = 0; i < n; i += B) {
  const k = Math.min(B, n - i);
  const r = await s.run({ image: new ort.Tensor('float32', data.subarray(i * 16384, (i + k) * 16384), [k, 1, 128, 128]) }, names);
  for (const name of names) { const d = r[name].data; const rg = ranges[name]; for (let j = 0; j < d.length; j++) { const v = d[j]; if (v < rg[0]) rg[0] = v; if (v > rg[1]) rg[1] = v; } }
}
writeFileSync(out, JSON.stringify(ranges, null, 1)); console.log(header, n, 'patches');
