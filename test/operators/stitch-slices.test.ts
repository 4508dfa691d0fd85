import { from, lastValueFrom, toArray } from 'rxjs';
import t from 'tap';
import type { SegmentationModel } from '../../src/inference/load-model.ts';
import { inferBatches } from '../../src/operators/infer-batches.ts';
import { microBatch } from '../../src/operators/micro-batch.ts';
import { stitchSlices } from '../../src/operators/stitch-slices.ts';
import { thresholdMask } from '../../src/operators/threshold-mask.ts';
import { tilePatches } from '../../src/operators/tile-patches.ts';
import { quantizeProbability } from '../../src/slices/probability.ts';
import type { NormalizedSlice } from '../../src/slices/slice-types.ts';

/**
 * A stand-in model for the stitching test (the thing under test is the stitch, not the model); with
 * `sessions`, it takes that many calls side by side, each settling after `delayMs(call)`. Like the
 * real models it writes each output into a result handed back by `recycle` when it has one, so a
 * result recycled while still in use shows as wrong probabilities.
 */
function modelOf(
  fn: (patch: Float32Array) => Float32Array,
  sessions = 1,
  delayMs?: (call: number) => number,
): SegmentationModel {
  const patchSize = 128;
  const area = patchSize * patchSize;
  let calls = 0;
  const spare: Float32Array[] = [];
  return {
    patchSize,
    threshold: 0.5,
    inputChannels: 1,
    sessions,
    threads: 1,
    identity: { name: 'fn', version: '0', sha256: '0'.repeat(64), provider: 'cpu' },
    predict: async (patches: Float32Array, count: number) => {
      const call = calls++;
      const input = patches.slice(0, count * area);
      if (delayMs) await new Promise((resolve) => setTimeout(resolve, delayMs(call)));
      const reused = spare.findIndex((b) => b.length >= count * area);
      const out = reused >= 0 ? (spare.splice(reused, 1)[0] as Float32Array) : new Float32Array(count * area);
      for (let k = 0; k < count; k++) out.set(fn(input.subarray(k * area, (k + 1) * area)), k * area);
      return out.subarray(0, count * area);
    },
    recycle: (probs: Float32Array) => void spare.push(new Float32Array(probs.buffer)),
  } as unknown as SegmentationModel;
}

function slice(z: number, width: number, height: number, value: (i: number) => number): NormalizedSlice {
  const normalized = Float32Array.from({ length: width * height }, (_, i) => value(i));
  return { scanId: 's', z, readyAt: 0, width, height, dtype: 'float32', data: normalized, normalized };
}

const run = (slices: NormalizedSlice[], model: SegmentationModel, overlap: number) =>
  lastValueFrom(
    from(slices).pipe(
      tilePatches({ patch: 128, overlap }),
      microBatch({ maxBatch: 7, maxDelayMs: 1 }),
      inferBatches(model),
      stitchSlices({ patch: 128, overlap }),
      thresholdMask(0.5),
      toArray(),
    ),
  );

t.test('a constant-probability model gives a seamless constant probability and mask', async (t) => {
  const constant = modelOf((p) => new Float32Array(p.length).fill(0.7));
  for (const overlap of [0, 32, 64]) {
    const [out] = await run([slice(0, 300, 257, () => 0.5)], constant, overlap);
    t.ok(out);
    if (!out) continue;
    const distinct = new Set(out.prob);
    t.same(
      [...distinct].map((v) => v.toFixed(6)),
      ['0.700000'],
      `overlap ${overlap}: one value everywhere, no tile border`,
    );
    t.ok(
      out.mask.every((m) => m === 1),
      `overlap ${overlap}: mask all 1`,
    );
    t.same(
      out.storedProb,
      quantizeProbability(out.prob),
      `overlap ${overlap}: stored form as the store quantizes`,
    );
  }
});

t.test('an identity model returns each slice unchanged: tile → infer → untile is the identity', async (t) => {
  const identity = modelOf((p) => Float32Array.from(p));
  const slices = [0, 1, 2].map((z) => slice(z, 200 + z * 37, 150, (i) => Math.sin(i * 0.01 + z) * 0.5 + 0.5));
  const out = await run(slices, identity, 32);
  t.equal(out.length, 3, 'every slice out, once');
  out.forEach((o, k) => {
    const input = slices[k] as NormalizedSlice;
    t.equal(o.z, input.z, 'in order');
    let worst = 0;
    for (let i = 0; i < o.prob.length; i++)
      worst = Math.max(worst, Math.abs((o.prob[i] as number) - (input.normalized[i] as number)));
    t.ok(worst < 1e-6, `slice ${k}: max |diff| ${worst}`);
  });
});

t.test('stitchers reused across slices of one geometry carry nothing from the slice before', async (t) => {
  const identity = modelOf((p) => Float32Array.from(p));
  // Five slices of one size with a sixth of another in the middle: reuse, a change of geometry, reuse.
  const sizes = [300, 300, 300, 190, 300, 300];
  const slices = sizes.map((w, z) => slice(z, w, 260, (i) => ((i * (z + 3)) % 97) / 97));
  const out = await run(slices, identity, 32);
  t.equal(out.length, slices.length);
  out.forEach((o, k) => {
    const input = slices[k] as NormalizedSlice;
    let worst = 0;
    for (let i = 0; i < o.prob.length; i++)
      worst = Math.max(worst, Math.abs((o.prob[i] as number) - (input.normalized[i] as number)));
    t.ok(worst < 1e-6, `slice ${k} (${input.width}×${input.height}): max |diff| ${worst}`);
  });
  t.not(out[0]?.prob, out[1]?.prob, 'each slice gets its own probability array');
});

t.test(
  'with several sessions, batches go out side by side and their results still come back in order',
  async (t) => {
    for (const sessions of [1, 2, 3]) {
      let out = 0;
      let most = 0;
      const identity = modelOf(
        (p) => Float32Array.from(p),
        sessions,
        // Every other call is slow, so later batches finish before earlier ones.
        (call) => (call % 2 === 0 ? 8 : 1),
      );
      const predict = identity.predict.bind(identity);
      const counted: SegmentationModel = {
        ...identity,
        predict: async (patches, count) => {
          most = Math.max(most, ++out);
          try {
            return await predict(patches, count);
          } finally {
            out--;
          }
        },
      };
      const slices = [0, 1, 2, 3, 4, 5].map((z) => slice(z, 400, 300, (i) => ((i * (z + 5)) % 89) / 89));
      const results = await run(slices, counted, 32);
      t.same(
        results.map((o) => o.z),
        [0, 1, 2, 3, 4, 5],
        `${sessions} session(s): every slice once, in order`,
      );
      let worst = 0;
      results.forEach((o, k) => {
        const input = slices[k] as NormalizedSlice;
        for (let i = 0; i < o.prob.length; i++)
          worst = Math.max(worst, Math.abs((o.prob[i] as number) - (input.normalized[i] as number)));
      });
      t.ok(
        worst < 1e-6,
        `${sessions} session(s): each patch stitched where it came from (max |diff| ${worst})`,
      );
      // All 72 patches wait at once: each session gets one batch to compute and one queued behind it.
      t.equal(most, 2 * sessions, `${sessions} session(s): ${most} batches out at once`);
    }
  },
);

t.test('a partial batch meeting idle sessions is shared among them', async (t) => {
  for (const sessions of [1, 2, 3]) {
    const sizes: number[] = [];
    const identity = modelOf(
      (p) => Float32Array.from(p),
      sessions,
      () => 2,
    );
    const predict = identity.predict.bind(identity);
    const counted: SegmentationModel = {
      ...identity,
      predict: (patches, count) => {
        sizes.push(count);
        return predict(patches, count);
      },
    };
    // One 300×257 slice: 3 × 3 = 9 patches, fewer than a batch.
    const input = slice(0, 300, 257, (i) => (i % 71) / 71);
    const [out] = await run([input], counted, 32);
    let worst = 0;
    for (let i = 0; i < (out?.prob.length ?? 0); i++)
      worst = Math.max(worst, Math.abs((out?.prob[i] as number) - (input.normalized[i] as number)));
    t.ok(out && worst < 1e-6, `${sessions} session(s): the slice comes back whole (max |diff| ${worst})`);
    t.same(
      sizes.toSorted((a, b) => b - a),
      { 1: [7, 2], 2: [4, 3, 2], 3: [3, 2, 2, 2] }[sessions],
      `${sessions} session(s): batches of ${sizes.join(', ')}`,
    );
  }
});
