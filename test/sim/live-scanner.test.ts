import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import t from 'tap';
import { countTiffPages, decodeTiff } from '../../src/codecs/decode-tiff.ts';
import { runLiveScanner, sliceFileName } from '../../src/sim/live-scanner.ts';

const small = { size: 64, slices: 12, seed: 3 } as const;

t.test('writes scan.json first, then the slices, truth and scan.done', async (t) => {
  const out = t.testdir();
  const order: string[] = [];
  const result = await runLiveScanner({
    ...small,
    out,
    rate: 500,
    onSlice: ({ z, path }) => order.push(`${z}:${path.endsWith(sliceFileName(z))}`),
  });
  t.same(
    order,
    Array.from({ length: small.slices }, (_, z) => `${z}:true`),
  );
  const files = (await readdir(result.scanDir)).sort();
  t.same(files, [
    'scan.done',
    'scan.json',
    ...Array.from({ length: small.slices }, (_, z) => sliceFileName(z)),
  ]);
  const scan = JSON.parse(await readFile(join(result.scanDir, 'scan.json'), 'utf8'));
  t.match(scan, { scanId: 'sim-3', expectedSlices: 12, width: 64, height: 64, dtype: 'uint16', seed: 3 });
  t.ok(scan.voxelSizeUm > 0);
  // scan.json is on disk before the first slice, and scan.done after the last.
  const times = async (name: string) => (await stat(join(result.scanDir, name))).mtimeMs;
  t.ok((await times('scan.json')) <= (await times(sliceFileName(0))));
  t.ok((await times('scan.done')) >= (await times(sliceFileName(small.slices - 1))));

  const slice = await decodeTiff(await readFile(join(result.scanDir, sliceFileName(5))), {
    path: sliceFileName(5),
  });
  t.match(slice, { width: 64, height: 64, dtype: 'uint16' });
  t.equal(slice.data.length, 64 * 64);
  const truthBytes = await readFile(result.truthPath);
  t.equal(await countTiffPages(truthBytes, { path: result.truthPath }), small.slices);
  const page = await decodeTiff(truthBytes, { path: result.truthPath, page: 5 });
  t.match(page, { width: 64, height: 64, dtype: 'uint8' });
  t.ok(
    [...page.data].every((v) => v <= 3),
    'labels are 0..3',
  );
  const truth = JSON.parse(await readFile(result.truthJsonPath, 'utf8'));
  t.equal(truth.dendrites.length, 6);
});

t.test('same seed, same bytes; both write modes give the same files', async (t) => {
  const dirs = [t.testdir({ a: {}, b: {}, c: {} })];
  const base = dirs[0] as string;
  const a = await runLiveScanner({ ...small, out: join(base, 'a'), rate: 1000 });
  const b = await runLiveScanner({ ...small, out: join(base, 'b'), rate: 1000, writeMode: 'inplace' });
  const c = await runLiveScanner({ ...small, seed: 4, scanId: 'sim-3', out: join(base, 'c'), rate: 1000 });
  for (const name of [...Array.from({ length: small.slices }, (_, z) => sliceFileName(z)), 'scan.json']) {
    const [x, y] = await Promise.all([readFile(join(a.scanDir, name)), readFile(join(b.scanDir, name))]);
    t.ok(x.equals(y), `${name} identical`);
  }
  t.ok((await readFile(a.truthPath)).equals(await readFile(b.truthPath)), 'truth identical');
  const differs = !(await readFile(join(a.scanDir, sliceFileName(6)))).equals(
    await readFile(join(c.scanDir, sliceFileName(6))),
  );
  t.ok(differs, 'another seed gives other pixels');
});

t.test('paces slices at the requested rate', async (t) => {
  const out = t.testdir();
  const rate = 25;
  const stamps: number[] = [];
  const started = performance.now();
  await runLiveScanner({
    ...small,
    slices: 8,
    out,
    rate,
    onSlice: () => stamps.push(performance.now() - started),
  });
  // Slice z is never early: it is written at or after z / rate. (No upper bound: shared machines stall.)
  for (const [z, ms] of stamps.entries())
    t.ok(ms >= (z * 1000) / rate - 1, `slice ${z} at ${ms.toFixed(0)} ms ≥ ${(z * 1000) / rate} ms`);
  // (No check of the gaps between slices either: after a stall the scanner catches up on its
  // absolute schedule, writing the late slices back to back, as a real scanner's buffer would.)
});

/** Poll the scan folder while the scanner writes; record every size seen for each slice file. */
async function watchSizes(dir: string, until: Promise<unknown>) {
  const seen = new Map<string, Set<number>>();
  let done = false;
  void until.finally(() => {
    done = true;
  });
  while (!done) {
    for (const name of await readdir(dir).catch(() => [] as string[])) {
      if (!name.startsWith('slice_')) continue;
      const size = await stat(join(dir, name)).then(
        (s) => s.size,
        () => -1,
      );
      if (size < 0) continue;
      const sizes = seen.get(name) ?? new Set<number>();
      sizes.add(size);
      seen.set(name, sizes);
    }
    await new Promise((r) => setTimeout(r, 1));
  }
  return seen;
}

t.test('rename mode: a slice file never exists half-written', async (t) => {
  const out = t.testdir();
  const run = runLiveScanner({ ...small, out, rate: 40 });
  const seen = await watchSizes(join(out, 'sim-3'), run);
  await run;
  const full = (await stat(join(out, 'sim-3', sliceFileName(0)))).size;
  t.ok(seen.size > 0, `observed ${seen.size} slice files`);
  for (const [name, sizes] of seen) t.same([...sizes], [full], `${name}: only ever ${full} bytes`);
});

t.test('inplace mode: slice files are seen growing in place', async (t) => {
  const out = t.testdir();
  const run = runLiveScanner({ ...small, out, rate: 10, writeMode: 'inplace' });
  const seen = await watchSizes(join(out, 'sim-3'), run);
  await run;
  const full = (await stat(join(out, 'sim-3', sliceFileName(0)))).size;
  const partial = [...seen.values()].filter((sizes) => [...sizes].some((s) => s < full)).length;
  t.ok(partial > 0, `${partial} of ${seen.size} files observed while smaller than ${full} bytes`);
});

t.test('refuses a bad rate, a non-empty scan folder and an unwritable --out', async (t) => {
  const out = t.testdir({ 'sim-3': { 'old.tif': 'x' }, file: 'not a folder' });
  await t.rejects(runLiveScanner({ ...small, out, rate: 0 }), { code: 'ERR_USAGE', message: /--rate/ });
  await t.rejects(runLiveScanner({ ...small, out, rate: -1 }), { code: 'ERR_USAGE', message: /--rate/ });
  await t.rejects(runLiveScanner({ ...small, out, rate: 10 }), {
    code: 'ERR_OUTPUT',
    message: /already holds/,
  });
  await t.rejects(runLiveScanner({ ...small, out: join(out, 'file', 'sub'), rate: 10 }), {
    code: 'ERR_OUTPUT',
    message: /--out .*cannot create/,
  });
  await t.rejects(runLiveScanner({ ...small, out, scanId: '../escape', rate: 10 }), {
    code: 'ERR_USAGE',
    message: /--scan-id/,
  });
});
