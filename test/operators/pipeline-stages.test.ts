/**
 * The stages between decode and output, each alone: tile, infer (with the real shipped U-Net),
 * threshold. Every stage's unsubscribe test is here too: leaving stops the source and emits nothing.
 */
import { from, lastValueFrom, map, Subject, toArray } from 'rxjs';
import t from 'tap';
import { loadModel } from '../../src/inference/load-model.ts';
import { inferBatches } from '../../src/operators/infer-batches.ts';
import { thresholdMask } from '../../src/operators/threshold-mask.ts';
import { tilePatches } from '../../src/operators/tile-patches.ts';
import { quantizeProbability } from '../../src/slices/probability.ts';
import type { NormalizedSlice, PatchJob, StitchedSlice } from '../../src/slices/slice-types.ts';
import { extractPatches, tileGrid } from '../../src/slices/tile-grid.ts';

function slice(z: number, width: number, height: number): NormalizedSlice {
  const normalized = Float32Array.from(
    { length: width * height },
    (_, i) => Math.sin(i * 0.013 + z) * 0.5 + 0.5,
  );
  return { scanId: 'cell', z, readyAt: 0, width, height, dtype: 'float32', data: normalized, normalized };
}

t.test('tilePatches: one job per tile of the grid, in order, all sharing their slice', async (t) => {
  const s = [slice(0, 300, 200), slice(1, 100, 100)];
  const jobs = await lastValueFrom(from(s).pipe(tilePatches({ patch: 128, overlap: 32 }), toArray()));
  const grid0 = tileGrid(300, 200, { patch: 128, overlap: 32 });
  t.equal(jobs.length, grid0.length + 1, 'a 100×100 slice is one (padded) patch');
  t.same(
    jobs.slice(0, grid0.length).map((j) => j.tile),
    grid0,
  );
  t.ok(
    jobs.slice(0, grid0.length).every((j) => j.slice === s[0] && j.tiles === jobs[0]?.tiles),
    'the patches of a slice share its object and its grid (stitchSlices relies on it)',
  );
  const source = new Subject<NormalizedSlice>();
  const seen: PatchJob[] = [];
  const sub = source.pipe(tilePatches({ patch: 128, overlap: 32 })).subscribe((j) => seen.push(j));
  sub.unsubscribe();
  source.next(slice(2, 64, 64));
  t.equal(source.observed, false, 'unsubscribed: the source is let go');
  t.same(seen, []);
});

t.test('inferBatches with the shipped U-Net: each patch gets what the model gives it alone', async (t) => {
  const model = await loadModel('unet', { threads: 1 });
  t.teardown(() => model.close());
  const area = model.patchSize * model.patchSize;
  const s = slice(0, 2 * model.patchSize + 40, model.patchSize + 20);
  const tiles = tileGrid(s.width, s.height, { patch: model.patchSize, overlap: 32 });
  const jobs = tiles.map((tile) => ({ slice: s, tiles, tile }));
  // Batches of 2 and 3 as the micro-batcher would send them.
  const results = await lastValueFrom(
    from([jobs.slice(0, 2), jobs.slice(2)]).pipe(
      inferBatches(model, { maxBatch: 3 }),
      // A result is the consumer's only until next() returns (its buffer goes back to the model):
      // keep a copy, as stitchSlices blends it in at once.
      map((r) => ({ job: r.job, probs: r.probs.slice() })),
      toArray(),
    ),
  );
  t.equal(results.length, jobs.length, 'one result per patch');
  t.ok(
    results.every((r, k) => r.job === jobs[k]),
    'in the order the patches came',
  );
  let worst = 0;
  for (const [k, tile] of tiles.entries()) {
    const alone = await model.predict(
      extractPatches(s.normalized, s.width, s.height, [tile], model.patchSize),
      1,
    );
    const got = (results[k] as (typeof results)[number]).probs;
    for (let i = 0; i < area; i++)
      worst = Math.max(worst, Math.abs((got[i] as number) - (alone[i] as number)));
  }
  t.ok(worst < 1e-4, `batched results equal the patch run alone (max |diff| ${worst.toExponential(1)})`);

  const failing = { ...model, predict: () => Promise.reject(new Error('session lost')) };
  await t.rejects(
    lastValueFrom(from([jobs.slice(0, 1)]).pipe(inferBatches(failing, { maxBatch: 3 }))),
    { code: 'ERR_MODEL', message: /inference failed for a batch of 1 patches \(scan cell, slice 0\)/ },
    'a failing model is a ModelError naming the scan and slice',
  );

  const source = new Subject<PatchJob[]>();
  const seen: unknown[] = [];
  const sub = source.pipe(inferBatches(model, { maxBatch: 3 })).subscribe((r) => seen.push(r));
  source.next(jobs.slice(0, 1));
  sub.unsubscribe();
  t.equal(source.observed, false, 'unsubscribed: the source is let go');
  // The batch already at the model settles; its result must not come out.
  await model.predict(
    extractPatches(s.normalized, s.width, s.height, [tiles[0] as (typeof tiles)[0]], model.patchSize),
    1,
  );
  await new Promise((r) => setImmediate(r));
  t.same(seen, [], 'nothing emitted after unsubscribing');
});

t.test(
  'thresholdMask: dendrite where the probability reaches the threshold, stored as the store keeps it',
  async (t) => {
    const prob = new Float32Array([0, 0.2, 0.49, 0.5, 0.51, 1, Number.NaN, 0.999]);
    const s: StitchedSlice = { ...slice(0, 8, 1), prob, patches: 1 };
    const [out] = await lastValueFrom(from([s]).pipe(thresholdMask(0.5), toArray()));
    t.same([...(out?.mask ?? [])], [0, 0, 0, 1, 1, 1, 0, 1]);
    t.same([...(out?.storedProb ?? [])], [...quantizeProbability(prob)]);
    t.throws(() => thresholdMask(1), { code: 'ERR_CONFIG', message: /threshold must be in \(0, 1\)/ });
    const source = new Subject<StitchedSlice>();
    const seen: unknown[] = [];
    source
      .pipe(thresholdMask(0.5))
      .subscribe((x) => seen.push(x))
      .unsubscribe();
    source.next(s);
    t.equal(source.observed, false, 'unsubscribed: the source is let go');
    t.same(seen, []);
  },
);
