import { readFile } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { measureSpeed } from '../../src/eval/evaluate-model.ts';
import { loadModel, sessionLayout } from '../../src/inference/load-model.ts';
import { MODELS_DIR, readModelCard } from '../../src/inference/model-card.ts';
import { openOnnxRunner, poolRunners } from '../../src/inference/onnx-runner.ts';
import { createPhantom } from '../../src/sim/phantom.ts';
import { renderSlice } from '../../src/sim/render-slice.ts';
import { normalizeSlice } from '../../src/slices/normalize-slice.ts';
import { extractPatches, tileGrid } from '../../src/slices/tile-grid.ts';

t.test('session layout: threads in all are shared among the sessions', async (t) => {
  t.same(sessionLayout({ threads: 2 }), { sessions: 2, threads: 1 }, 'two threads: two sessions of one');
  t.same(sessionLayout({ threads: 1 }), { sessions: 1, threads: 1 }, 'one thread: one session');
  t.same(sessionLayout({ threads: 8 }), { sessions: 2, threads: 4 });
  t.same(sessionLayout({ threads: 6, sessions: 3 }), { sessions: 3, threads: 2 }, 'sessions asked for');
  t.same(sessionLayout({ threads: 2, sessions: 4 }), { sessions: 4, threads: 1 }, 'at least one thread each');
  t.same(sessionLayout({ threads: 4, sessions: 1 }), { sessions: 1, threads: 4 });
  t.same(sessionLayout({ threads: 4, thread: 'inline' }), { sessions: 1, threads: 4 }, 'inline: one session');
  t.same(sessionLayout({ threads: 4, provider: 'cuda' }), { sessions: 1, threads: 4 }, 'a GPU: one session');
  const cores = availableParallelism();
  t.same(
    sessionLayout({}),
    cores >= 2 ? { sessions: 2, threads: Math.floor(cores / 2) } : { sessions: 1, threads: 0 },
    `defaults on ${cores} core(s)`,
  );
});

t.test('a runner refuses a session count it cannot honour', async (t) => {
  const label = { name: 'x', path: 'x.onnx' };
  await t.rejects(
    openOnnxRunner(new Uint8Array(0), label, { sessions: 0 }),
    /sessions must be a whole number/,
  );
  await t.rejects(
    openOnnxRunner(new Uint8Array(0), label, { sessions: 2, thread: 'inline' }),
    /runs on the calling thread: one only/,
  );
});

t.test('two sessions compute what one does, side by side, each batch its own answer', async (t) => {
  const phantom = createPhantom({ seed: 951_000, size: 256, slices: 24 });
  const normalized = normalizeSlice(renderSlice(phantom, 12).image);
  const tiles = tileGrid(256, 256, { patch: 128, overlap: 32 });
  const patches = extractPatches(normalized, 256, 256, tiles, 128);
  const area = 128 * 128;
  // Two different batches, so a result handed back to the wrong caller shows: the slice's patches,
  // and the same patches negated (bright Li, dark electrolyte).
  const a = patches.slice(0, 4 * area);
  const b = a.map((v) => 1 - v);

  const single = await loadModel('tnet', { threads: 1 });
  const pooled = await loadModel('tnet', { threads: 2 });
  t.teardown(() => Promise.all([single.close(), pooled.close()]));
  t.equal(single.sessions, 1);
  t.equal(pooled.sessions, 2);
  t.equal(pooled.threads, 1);

  const wantA = await single.predict(a, 4);
  const wantB = await single.predict(b, 4);
  const [gotA, gotB, gotA2] = await Promise.all([
    pooled.predict(a, 4),
    pooled.predict(b, 4),
    pooled.predict(a, 4),
  ]);
  const worst = (x: Float32Array, y: Float32Array) => {
    let w = 0;
    for (let i = 0; i < x.length; i++) w = Math.max(w, Math.abs((x[i] as number) - (y[i] as number)));
    return w;
  };
  t.ok(worst(gotA, wantA) < 1e-4, `batch a: max |diff| ${worst(gotA, wantA)}`);
  t.ok(worst(gotB, wantB) < 1e-4, `batch b: max |diff| ${worst(gotB, wantB)}`);
  t.ok(worst(gotA2, wantA) < 1e-4, `batch a again: max |diff| ${worst(gotA2, wantA)}`);
  t.ok(
    worst(wantA, wantB) > 0.1,
    `the two batches differ (max |diff| ${worst(wantA, wantB)}), so a mix-up would show`,
  );

  // A recycled result becomes the next run's output space: handed to the session's thread (so empty
  // here) and filled there with the new answer.
  const first = await pooled.predict(a, 4);
  pooled.recycle?.(first);
  const again = await pooled.predict(b, 4);
  t.equal(first.length, 0, 'the recycled result went to the session as its output space');
  t.ok(worst(again, wantB) < 1e-4, `the run written into it is right: max |diff| ${worst(again, wantB)}`);
  // On the calling thread, the very same memory.
  const inline = await loadModel('tnet', { threads: 1, thread: 'inline' });
  t.teardown(() => inline.close());
  const one = await inline.predict(a, 4);
  inline.recycle?.(one);
  const two = await inline.predict(b, 4);
  t.equal(two.buffer, one.buffer, 'inline: written into the recycled result');
  t.ok(worst(two, wantB) < 1e-4, `inline: right answer: max |diff| ${worst(two, wantB)}`);

  const [speed] = await measureSpeed(pooled, { batches: [4], minMs: 100 });
  t.ok(speed && speed.runs >= 10, `bare speed timed over ${speed?.runs} runs, five per session at least`);
  t.ok(speed && speed.sustainedPatchesPerSecond > 0);

  await pooled.close();
  await pooled.close();
  await t.rejects(pooled.predict(a, 4), /closed/, 'a closed model refuses work');
});

t.test('several sessions on an unavailable GPU fall back to CPU together, logged once', async (t) => {
  const warnings: unknown[] = [];
  const log = {
    warn: (...args: unknown[]) => void warnings.push(args),
    info: () => {},
    debug: () => {},
    error: () => {},
  } as unknown as NonNullable<Parameters<typeof loadModel>[1]>['log'];
  const model = await loadModel('unet', { provider: 'cuda', sessions: 2, threads: 2, log });
  t.teardown(() => model.close());
  t.equal(model.sessions, 2);
  t.equal(model.identity.provider, 'cpu');
  t.match(model.fallbackReason, /^cuda: /);
  t.equal(warnings.length, 1, 'one warning for the two sessions');
});

t.test('a pool passes over a session that can take no more runs while another lives', async (t) => {
  const card = await readModelCard('unet');
  if (card.kind !== 'onnx') throw new Error('unet is an ONNX model');
  const path = join(MODELS_DIR, card.file);
  const bytes = await readFile(path);
  const label = { name: 'unet', path };
  const runners = await Promise.all([0, 1].map(() => openOnnxRunner(bytes, label, { threads: 1 })));
  const pool = poolRunners(runners);
  t.teardown(() => pool.release());
  const area = card.patchSize * card.patchSize;
  const input = new Float32Array(2 * area).fill(0.5);
  const dims = [2, 1, card.patchSize, card.patchSize];
  const names = { input: card.input, output: card.output };
  const want = await runners[0]?.run(input, dims, names);

  await runners[1]?.release();
  t.equal(runners[1]?.alive, false, 'the released session is not alive');
  t.equal(pool.alive, true, 'the pool still is');
  // Four runs at once: by fewest runs out alone, two of them would go to the released session.
  const got = await Promise.all([0, 1, 2, 3].map(() => pool.run(input, dims, names)));
  t.ok(
    got.every((g) => g.length === want?.length && g.every((v, i) => v === want?.[i])),
    'every run answered, by the live session',
  );

  await runners[0]?.release();
  t.equal(pool.alive, false, 'none alive');
  await t.rejects(pool.run(input, dims, names), /closed/, 'with none alive, a run fails with the reason');
});
