import { mkdir, readFile, rm, utimes, writeFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { lastValueFrom, type Subscription, toArray } from 'rxjs';
import t, { type Test } from 'tap';
import { DEFAULT_ALERT_RULES } from '../../src/alerts/alert-rules.ts';
import type { DendriteAlert } from '../../src/alerts/dendrite-alert.ts';
import { readSliceFile } from '../../src/codecs/read-slice-file.ts';
import { DaemonStats } from '../../src/daemon/daemon-stats.ts';
import { type CompletedScan, runDaemon } from '../../src/daemon/run-daemon.ts';
import { isXctError } from '../../src/errors.ts';
import { loadModel, type SegmentationModel } from '../../src/inference/load-model.ts';
import { runLiveScanner, sliceFileName } from '../../src/sim/live-scanner.ts';
import type { ArchiveVolume } from '../../src/sources/archive-volume.ts';
import { openArchive } from '../../src/sources/open-archive.ts';
import { type ReplayOptions, replayArchive } from '../../src/sources/replay-archive.ts';
import { SliceCredits } from '../../src/sources/slice-credits.ts';
import type { SourceEvent } from '../../src/sources/source-event.ts';
import { storeFiles } from '../daemon/restart-fixtures.ts';
import { sample, volumeOf, writeHdf5, writeTiffStack, writeZarr } from './archive-fixtures.ts';

const TOOTH = new URL('../../../shared/data/tooth.h5', import.meta.url).pathname;
const MODEL = 'unet';

type Slice = Extract<SourceEvent, { type: 'slice' }>;

async function replayAll(archive: string | ArchiveVolume, options: ReplayOptions = { speed: 'max' }) {
  return lastValueFrom(replayArchive(archive, options).pipe(toArray()));
}

/** Timestamped events, and the error the replay ended with if it did. */
async function record(archive: string | ArchiveVolume, options: ReplayOptions) {
  const events: SourceEvent[] = [];
  const times: number[] = [];
  let error: unknown;
  const subscribedAt = performance.now();
  await new Promise<void>((resolve) => {
    replayArchive(archive, options).subscribe({
      next: (e) => {
        events.push(e);
        times.push(performance.now());
      },
      error: (err: unknown) => {
        error = err;
        resolve();
      },
      complete: resolve,
    });
  });
  return { events, times, error, subscribedAt };
}

function slicesOf(events: SourceEvent[]): Slice[] {
  return events.filter((e): e is Slice => e.type === 'slice');
}

/** Check every inline slice holds `sample` at every pixel. */
function checkSamples(t: Test, slices: Slice[], height: number, width: number) {
  let wrong = 0;
  for (const s of slices) {
    const image = s.image;
    if (!image || image.width !== width || image.height !== height) {
      wrong++;
      continue;
    }
    for (let y = 0; y < height; y++)
      for (let x = 0; x < width; x++) if (image.data[y * width + x] !== sample(s.z, y, x)) wrong++;
  }
  t.equal(wrong, 0, 'every pixel of every slice as written');
}

function shape(events: SourceEvent[]): string {
  return events.map((e) => (e.type === 'slice' ? `slice ${e.z}` : e.type)).join(', ');
}

// --- one test per archive kind ----------------------------------------------------------------

t.test('a finished scan folder: slice files by reference, in z order, with scan.json metadata', async (t) => {
  const root = t.testdir();
  const scan = await runLiveScanner({
    out: root,
    scanId: 'cell-A',
    seed: 31,
    size: 64,
    slices: 6,
    rate: 1000,
  });
  const events = await replayAll(scan.scanDir);
  t.equal(shape(events), 'scan-start, slice 0, slice 1, slice 2, slice 3, slice 4, slice 5, scan-end');
  const start = events[0];
  t.match(start, { type: 'scan-start', scanId: 'cell-A', dir: scan.scanDir });
  t.match(start?.type === 'scan-start' && start.meta, { expectedSlices: 6, voxelSizeUm: 0.65, width: 64 });
  const slices = slicesOf(events);
  t.same(
    slices.map((s) => s.path),
    slices.map((s) => join(scan.scanDir, sliceFileName(s.z))),
    'each slice is its file, not pixels',
  );
  t.notOk(
    slices.some((s) => s.image),
    'no inline pixels',
  );
  const first = await readSliceFile(slices[0]?.path as string);
  t.same([first.width, first.height, first.dtype], [64, 64, 'uint16']);
  t.match(events.at(-1), { type: 'scan-end', scanId: 'cell-A', slices: 6, missing: [] });
});

t.test('a folder with a gap: the missing slice is reported, the rest replayed', async (t) => {
  const root = t.testdir();
  const scan = await runLiveScanner({ out: root, scanId: 'gap', seed: 32, size: 64, slices: 5, rate: 1000 });
  await rm(join(scan.scanDir, sliceFileName(2)));
  const events = await replayAll(scan.scanDir);
  t.equal(shape(events), 'scan-start, slice 0, slice 1, slice-missing, slice 3, slice 4, scan-end');
  t.match(events.at(-1), { type: 'scan-end', slices: 4, missing: [2] });
});

t.test('a multi-page TIFF: one page per slice, decoded inline', async (t) => {
  const dir = t.testdir();
  const path = join(dir, 'stack.tif');
  await writeTiffStack(path, volumeOf(Uint16Array, 4, 6, 9), 4, 6, 9);
  const events = await replayAll(path, { speed: 'max', scanId: 'stack-1' });
  t.equal(shape(events), 'scan-start, slice 0, slice 1, slice 2, slice 3, scan-end');
  t.match(events[0], {
    type: 'scan-start',
    scanId: 'stack-1',
    meta: { expectedSlices: 4, width: 9, height: 6 },
  });
  const slices = slicesOf(events);
  t.ok(
    slices.every((s) => s.image?.dtype === 'uint16' && s.path === undefined),
    'uint16 pixels, no path',
  );
  checkSamples(t, slices, 6, 9);
});

t.test('a DXchange HDF5 file: /exchange/data read slice by slice', async (t) => {
  const dir = t.testdir();
  const path = join(dir, 'recon 7.h5');
  await writeHdf5(path, volumeOf(Int16Array, 5, 4, 7), [5, 4, 7]);
  const events = await replayAll(path);
  t.equal(shape(events), 'scan-start, slice 0, slice 1, slice 2, slice 3, slice 4, scan-end');
  t.match(
    events[0],
    { scanId: 'recon_7', meta: { expectedSlices: 5, width: 7, height: 4 } },
    'id from the name',
  );
  const slices = slicesOf(events);
  t.ok(
    slices.every((s) => s.image?.dtype === 'int16'),
    'int16 pixels',
  );
  checkSamples(t, slices, 4, 7);
});

t.test('a Zarr v3 array, and an OME-Zarr group whose level 0 is used', async (t) => {
  const dir = t.testdir();
  const plain = join(dir, 'plain.zarr');
  await writeZarr(plain, 'float32', volumeOf(Float32Array, 3, 5, 6), [3, 5, 6]);
  const a = await replayAll(plain);
  t.equal(shape(a), 'scan-start, slice 0, slice 1, slice 2, scan-end');
  t.match(a[0], { scanId: 'plain', meta: { expectedSlices: 3, width: 6, height: 5 } });
  t.ok(
    slicesOf(a).every((s) => s.image?.dtype === 'float32'),
    'float32 pixels',
  );
  checkSamples(t, slicesOf(a), 5, 6);

  const ome = join(dir, 'cell-9.ome.zarr');
  await writeZarr(ome, 'uint8', volumeOf(Uint8Array, 2, 3, 4), [2, 3, 4], { ome: { voxelSizeUm: 0.8 } });
  for (const path of [ome, join(ome, '0')]) {
    const b = await replayAll(path);
    t.equal(shape(b), 'scan-start, slice 0, slice 1, scan-end', relative(dir, path));
    t.match(b[0], { scanId: 'cell-9', meta: { expectedSlices: 2 } }, 'named after the group');
    checkSamples(t, slicesOf(b), 3, 4);
  }
  const viaGroup = await replayAll(ome);
  t.match(viaGroup[0], { meta: { voxelSizeUm: 0.8 } }, 'voxel size from the multiscales scale');
});

t.test(
  'the real DXchange file tooth.h5 (181 projections of 2×640 float32): 2 slices reconstructed',
  async (t) => {
    const volume = await openArchive(TOOTH);
    t.match(volume, { kind: 'projections', depth: 2, meta: { width: 640, height: 640, sampleId: 'Tooth' } });
    t.match(
      volume.notes,
      [/rotation axis found at column/, /projections: 181 angles, 2 rows of 640 columns/],
      'says what the data really is and how it is reconstructed',
    );
    const events = await replayAll(volume);
    const slices = slicesOf(events);
    t.same(
      slices.map((s) => s.z),
      [0, 1],
      'one slice per detector row, in z order',
    );
    t.ok(
      slices.every((s) => s.image?.dtype === 'float32' && s.image.data.length === 640 * 640),
      '640×640 float32 each',
    );
    // The tooth is in the middle of the field; outside the reconstruction circle is 0.
    t.ok(
      slices.every((s) => (s.image?.data[320 * 640 + 300] ?? 0) !== 0 && s.image?.data[0] === 0),
      'an image in the circle, 0 in the corner',
    );
    t.match(events.at(-1), { type: 'scan-end', scanId: 'tooth', slices: 2 });
  },
);

// --- pacing -----------------------------------------------------------------------------------

/**
 * Check each slice event came no earlier than its due time after subscribing: the pace is a
 * schedule from the start, so only lower bounds hold on a busy machine. Node's timers round to
 * whole milliseconds and may fire up to 1 ms early against performance.now(): 2 ms of slack.
 */
function checkDue(
  t: Test,
  r: Awaited<ReturnType<typeof record>>,
  dueMs: (z: number) => number,
  label: string,
) {
  const slices = r.events.flatMap((e, i) =>
    e.type === 'slice' ? [{ z: e.z, at: (r.times[i] as number) - r.subscribedAt }] : [],
  );
  t.ok(slices.length > 0, `${label}: slices came`);
  for (const { z, at } of slices) {
    t.ok(at >= dueMs(z) - 2, `${label}: slice ${z} at ${at.toFixed(1)} ms ≥ ${dueMs(z).toFixed(1)} ms`);
  }
}

t.test('1x keeps scan.json’s rate, Nx divides it, max does not wait', async (t) => {
  const root = t.testdir();
  const scan = await runLiveScanner({
    out: root,
    scanId: 'paced',
    seed: 33,
    size: 32,
    slices: 5,
    rate: 1000,
  });
  const metaPath = join(scan.scanDir, 'scan.json');
  const meta = JSON.parse(await readFile(metaPath, 'utf8')) as Record<string, unknown>;
  await writeFile(metaPath, JSON.stringify({ ...meta, rate: 20 }));
  const oneX = await record(scan.scanDir, { speed: 1 });
  t.equal(oneX.error, undefined);
  checkDue(t, oneX, (z) => z * 50, '1x at 20 slices/s');
  const twoX = await record(scan.scanDir, { speed: 2 });
  checkDue(t, twoX, (z) => z * 25, '2x');
  const max = await record(scan.scanDir, { speed: 'max' });
  t.equal(slicesOf(max.events).length, 5, 'max replays them all');
});

t.test('1x without a rate follows the slice files’ times', async (t) => {
  const root = t.testdir();
  const scan = await runLiveScanner({
    out: root,
    scanId: 'mtimes',
    seed: 34,
    size: 32,
    slices: 4,
    rate: 1000,
  });
  const base = Date.now() / 1000 - 3600;
  // Uneven, as a real scanner's are.
  const offsetsMs = [0, 80, 120, 240];
  for (const [z, ms] of offsetsMs.entries()) {
    await utimes(join(scan.scanDir, sliceFileName(z)), base + ms / 1000, base + ms / 1000);
  }
  const r = await record(scan.scanDir, { speed: 1 });
  t.equal(slicesOf(r.events).length, 4);
  checkDue(t, r, (z) => offsetsMs[z] as number, 'file times');
});

t.test('an archive without a pace needs a rate for 1x', async (t) => {
  const dir = t.testdir();
  const path = join(dir, 'v.h5');
  await writeHdf5(path, volumeOf(Uint8Array, 3, 2, 2), [3, 2, 2]);
  const without = await record(path, { speed: 1 });
  t.ok(isXctError(without.error, 'ERR_USAGE'), 'a UsageError');
  t.match((without.error as Error).message, /does not record how fast.*--rate/);
  t.same(without.events, [], 'before anything is emitted');
  const withRate = await record(path, { speed: 1, rate: 25 });
  checkDue(t, withRate, (z) => z * 40, '--rate 25');
});

// --- backpressure and teardown ----------------------------------------------------------------

t.test('with credits, the next slice is read only when the consumer has room', async (t) => {
  const dir = t.testdir();
  const path = join(dir, 'bp.h5');
  await writeHdf5(path, volumeOf(Uint16Array, 6, 3, 3), [6, 3, 3]);
  for (const window of [1, 2]) {
    let held = 0;
    let most = 0;
    const credits = new SliceCredits();
    // A consumer that holds each slice 15 ms, then gives its credit back.
    const seen: number[] = [];
    await new Promise<void>((resolve, reject) => {
      replayArchive(path, { speed: 'max', credits, window }).subscribe({
        next: (e) => {
          if (e.type !== 'slice') return;
          held++;
          most = Math.max(most, held, credits.outstanding);
          seen.push(e.z);
          setTimeout(() => {
            held--;
            credits.give();
          }, 15);
        },
        error: reject,
        complete: resolve,
      });
    });
    t.same(seen, [0, 1, 2, 3, 4, 5], `window ${window}: every slice`);
    t.equal(most, window, `window ${window}: never more than ${window} held`);
  }
});

t.test('unsubscribing stops the replay and closes the archive', async (t) => {
  const dir = t.testdir();
  const path = join(dir, 'td.h5');
  await writeHdf5(path, volumeOf(Uint8Array, 10, 2, 2), [10, 2, 2]);
  const volume = await openArchive(path);
  let closes = 0;
  const wrapped: ArchiveVolume = {
    ...volume,
    close: async () => {
      closes++;
      await volume.close();
    },
  };
  const events: SourceEvent[] = [];
  let sub: Subscription | undefined;
  await new Promise<void>((resolve) => {
    // 2 slices/s: the second slice is half a second away when we leave.
    sub = replayArchive(wrapped, { speed: 1, rate: 2 }).subscribe((e) => {
      events.push(e);
      if (e.type === 'slice') resolve();
    });
  });
  sub?.unsubscribe();
  t.equal(closes, 1, 'closed once');
  await new Promise((r) => setTimeout(r, 700));
  t.equal(shape(events), 'scan-start, slice 0', 'nothing after unsubscribe');
  await t.rejects(volume.read(1), /closed/, 'the HDF5 file is closed');
});

t.test('an abort signal ends the replay with its reason', async (t) => {
  const dir = t.testdir();
  const path = join(dir, 'ab.h5');
  await writeHdf5(path, volumeOf(Uint8Array, 10, 2, 2), [10, 2, 2]);
  const controller = new AbortController();
  setTimeout(() => controller.abort(new Error('stop now')), 100);
  const r = await record(path, { speed: 1, rate: 5, signal: controller.signal });
  t.match(r.error, { message: 'stop now' });
  t.ok(slicesOf(r.events).length < 10, 'stopped early');
});

t.test('an unreadable chunk is one missing slice, not the end of the replay', async (t) => {
  const dir = t.testdir();
  const path = join(dir, 'broken.zarr');
  await writeZarr(path, 'uint16', volumeOf(Uint16Array, 4, 3, 3), [4, 3, 3]);
  // A folder where the chunk file should be: the read fails as a disk or permission error would.
  await rm(join(path, 'c', '2', '0', '0'));
  await mkdir(join(path, 'c', '2', '0', '0'));
  const events = await replayAll(path);
  t.equal(shape(events), 'scan-start, slice 0, slice 1, error, slice-missing, slice 3, scan-end');
  const error = events.find((e) => e.type === 'error');
  t.match(error, { type: 'error', error: { code: 'ERR_DECODE', context: { slice: 2 } } });
  t.match(error?.type === 'error' && error.error.message, /broken\.zarr: cannot read slice 2/);
  t.match(events.at(-1), { type: 'scan-end', slices: 3, missing: [2] });
});

// --- bad archives: one clear error each ---------------------------------------------------------

t.test('bad archives: one error each, naming the file and the reason, nothing emitted', async (t) => {
  const dir = t.testdir({ 'notes.txt': 'hello, these are my notes\n', 'empty.bin': '', nothing: {} });
  await writeHdf5(join(dir, 'other.h5'), volumeOf(Uint8Array, 2, 2, 2), [2, 2, 2], {
    dataset: 'entry/volume',
  });
  await writeHdf5(join(dir, 'flat.h5'), volumeOf(Float32Array, 1, 4, 5), [4, 5]);
  await writeHdf5(join(dir, 'wide.h5'), new BigInt64Array(8), [2, 2, 2]);
  await writeHdf5(join(dir, 'words.h5'), ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h'], [2, 2, 2]);
  await writeZarr(join(dir, 'flat.zarr'), 'uint8', volumeOf(Uint8Array, 1, 3, 3), [3, 3]);
  await writeZarr(join(dir, 'long.zarr'), 'int64', new BigInt64Array(8), [2, 2, 2]);
  await writeTiffStack(join(dir, 'one.tif'), volumeOf(Uint16Array, 1, 4, 4), 1, 4, 4);
  const cases: [string, string, RegExp][] = [
    ['missing.h5', 'ERR_USAGE', /missing\.h5: no such file or folder/],
    ['notes.txt', 'ERR_DECODE', /notes\.txt: not an archive \(it looks like text: starts with "hello, these/],
    ['empty.bin', 'ERR_DECODE', /empty\.bin: not an archive: the file is empty/],
    ['nothing', 'ERR_DECODE', /nothing: not a replayable archive: the folder holds no slice files/],
    [
      'other.h5',
      'ERR_DECODE',
      /other\.h5: HDF5 file has no \/exchange\/data dataset \(it holds \/entry\/volume\)/,
    ],
    ['flat.h5', 'ERR_DECODE', /flat\.h5: \/exchange\/data is 2-D \(4×5\); replay needs a 3-D volume/],
    ['wide.h5', 'ERR_DECODE', /wide\.h5: \/exchange\/data has unsupported dtype int64; supported: uint8/],
    ['words.h5', 'ERR_DECODE', /words\.h5: \/exchange\/data has unsupported dtype string/],
    ['flat.zarr', 'ERR_DECODE', /flat\.zarr: the Zarr array is 2-D \(3×3\); replay needs a 3-D volume/],
    ['long.zarr', 'ERR_DECODE', /long\.zarr: the Zarr array has unsupported dtype int64/],
    [
      'one.tif',
      'ERR_DECODE',
      /one\.tif: a single-page TIFF is one 2-D image \(4×4\); replay needs a 3-D volume/,
    ],
  ];
  for (const [name, code, message] of cases) {
    const r = await record(join(dir, name), { speed: 'max' });
    t.ok(isXctError(r.error, code), `${name}: ${code} (${String(r.error)})`);
    t.match((r.error as Error).message, message, name);
    t.equal((r.error as Error).message.split('\n').length, 1, `${name}: one line`);
    t.same(r.events, [], `${name}: nothing emitted`);
  }
});

t.test('options are checked when the replay is created', async (t) => {
  t.throws(() => replayArchive('x', { speed: 0 }), { code: 'ERR_USAGE', context: { option: '--speed' } });
  t.throws(() => replayArchive('x', { speed: 'fast' as never }), { code: 'ERR_USAGE' });
  t.throws(() => replayArchive('x', { speed: 'max', scanId: 'a/b' }), {
    code: 'ERR_USAGE',
    context: { option: '--scan-id' },
  });
  t.throws(() => replayArchive('x', { speed: 1, rate: -1 }), {
    code: 'ERR_USAGE',
    context: { option: '--rate' },
  });
  t.throws(() => replayArchive('x', { speed: 'max', credits: new SliceCredits(), window: 0 }), {
    code: 'ERR_USAGE',
    context: { option: 'window' },
  });
});

// --- through the pipeline, with the real model ----------------------------------------------------

/** Replay an archive through runDaemon as the CLI does; alerts recorded, raisedAt dropped. */
async function replayThroughDaemon(archive: string, out: string, model: SegmentationModel, scanId?: string) {
  const stats = new DaemonStats();
  const credits = new SliceCredits();
  const alerts: Omit<DendriteAlert, 'raisedAt'>[] = [];
  const completed: CompletedScan[] = [];
  await runDaemon({
    source: replayArchive(archive, {
      speed: 'max',
      ...(scanId !== undefined && { scanId }),
      credits,
    }),
    out,
    model,
    sinks: [
      {
        // raisedAt is the wall clock; the store's path differs only by the output folder.
        write: async ({ raisedAt: _, ...rest }) => {
          alerts.push({ ...rest, zarr: { ...rest.zarr, path: relative(out, rest.zarr.path) } });
        },
        close: async () => {},
      },
    ],
    rules: DEFAULT_ALERT_RULES,
    maxScans: 1,
    stats,
    credits,
    onScanComplete: (c) => completed.push(c),
  });
  return { alerts, completed, stats };
}

t.test('determinism: two replays give byte-identical chunks and identical alerts', {}, async (t) => {
  const root = t.testdir({ a: {}, b: {} });
  const scan = await runLiveScanner({
    out: root,
    scanId: 'det',
    seed: 902_001,
    size: 192,
    slices: 32,
    rate: 1000,
  });
  const model = await loadModel(MODEL, { threads: 2 });
  t.teardown(() => model.close());
  const a = await replayThroughDaemon(scan.scanDir, join(root, 'a'), model);
  const b = await replayThroughDaemon(scan.scanDir, join(root, 'b'), model);
  t.equal(a.completed[0]?.slices, 32, 'every slice processed');
  t.equal(a.completed[0]?.failed, undefined);
  const filesA = await storeFiles(join(root, 'a', 'det.ome.zarr'));
  const filesB = await storeFiles(join(root, 'b', 'det.ome.zarr'));
  t.same([...filesA.keys()].sort(), [...filesB.keys()].sort(), 'the same files');
  t.ok(
    [...filesA.keys()].some((k) => k.startsWith('labels/dendrite/0/c/')),
    'mask chunks were written',
  );
  const differ = [...filesA].filter(([k, v]) => !filesB.get(k)?.equals(v)).map(([k]) => k);
  t.same(differ, [], 'every file byte for byte (progress updatedAt aside)');
  // Without a dendrite alert the comparison would only cover the summary.
  const dendrites = a.alerts.filter((x) => x.kind === 'dendrite');
  t.ok(dendrites.length >= 1, `${dendrites.length} dendrite alert(s) to compare`);
  t.equal(a.alerts.at(-1)?.kind, 'scan-summary', 'the scan summary last');
  t.same(b.alerts, a.alerts, 'identical alerts, ids included (raisedAt aside)');
});

t.test('tooth.h5 runs through the pipeline and raises no dendrite alert', async (t) => {
  const out = t.testdir();
  const model = await loadModel(MODEL, { threads: 2 });
  t.teardown(() => model.close());
  const r = await replayThroughDaemon(TOOTH, out, model);
  t.equal(r.completed[0]?.slices, 2, 'both reconstructed slices processed');
  t.equal(r.completed[0]?.failed, undefined, 'the scan did not fail');
  t.equal(r.stats.slicesFailed, 0);
  t.same(
    r.alerts.filter((a) => a.kind === 'dendrite').map((a) => a.alertId),
    [],
    'no dendrite alert',
  );
  t.equal(r.alerts.at(-1)?.kind, 'scan-summary');
  const image = await readFile(join(out, 'tooth.ome.zarr', '0', 'zarr.json'), 'utf8');
  t.match(
    JSON.parse(image),
    { shape: [2, 640, 640], data_type: 'float32' },
    'the store holds the reconstruction',
  );
});
