import {
  closeSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  statSync,
  symlinkSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import t, { type Test } from 'tap';
import { decodeTiff } from '../../src/codecs/decode-tiff.ts';
import { encodeTiff } from '../../src/codecs/encode-tiff.ts';
import { readSliceFile } from '../../src/codecs/read-slice-file.ts';
import { runLiveScanner, type WriteMode } from '../../src/sim/live-scanner.ts';
import {
  type FolderEvent,
  type SliceEvent,
  type WatchFolderOptions,
  watchFolder,
} from '../../src/sources/watch-folder.ts';

// Small knobs so every case runs in a second or two.
const FAST = { stabilityMs: 100, pollMs: 20, missingSliceTimeoutMs: 5000, idleTimeoutMs: 10_000 } as const;
const SIM = { size: 64, slices: 10, dendrites: 1 } as const;

interface Recorder {
  events: FolderEvent[];
  /** When each event was emitted (epoch ms). */
  times: number[];
  /** Decoded pixel count of each slice, from the bytes on disk at the moment it was emitted. */
  decoded: Map<string, Promise<number | string>>;
  /** The bytes each slice file held when emitted. */
  bytes: Map<string, Buffer>;
  until(what: string, done: (events: FolderEvent[]) => boolean, timeoutMs?: number): Promise<void>;
  stop(): void;
  failure: unknown;
}

/** Subscribe and record; each slice file is read synchronously inside `next`, i.e. as emitted. */
function record(t: Test, root: string, options: WatchFolderOptions): Recorder {
  const rec: Recorder = {
    events: [],
    times: [],
    decoded: new Map(),
    bytes: new Map(),
    failure: undefined,
    until: async (what, done, timeoutMs = 8000) => {
      const deadline = Date.now() + timeoutMs;
      while (!done(rec.events)) {
        if (rec.failure !== undefined) throw rec.failure;
        if (Date.now() > deadline) {
          throw new Error(`timed out waiting for ${what}; events: ${JSON.stringify(rec.events.map(brief))}`);
        }
        await sleep(10);
      }
    },
    stop: () => subscription.unsubscribe(),
  };
  const subscription = watchFolder(root, options).subscribe({
    next: (event) => {
      rec.events.push(event);
      rec.times.push(Date.now());
      if (event.type !== 'slice' || !/\.tiff?$/.test(event.path)) return;
      const key = `${event.scanId}/${event.z}`;
      const bytes = readFileSync(event.path);
      rec.bytes.set(key, bytes);
      rec.decoded.set(
        key,
        decodeTiff(bytes, { path: event.path }).then(
          (image) => image.data.length,
          (err: unknown) => String(err),
        ),
      );
    },
    error: (err: unknown) => {
      rec.failure = err;
    },
  });
  t.teardown(() => subscription.unsubscribe());
  return rec;
}

/** A compact view of an event for assertions and failure messages. */
function brief(e: FolderEvent): string {
  switch (e.type) {
    case 'slice':
    case 'slice-missing':
      return `${e.type}:${e.scanId}:${e.z}`;
    case 'scan-end':
      return `scan-end:${e.scanId}:${e.reason}:${e.slices}:[${e.missing.join(',')}]`;
    case 'error':
      return `error:${e.scanId ?? ''}:${e.error.message}`;
    default:
      return `${e.type}:${e.scanId}`;
  }
}

const ofScan = (events: FolderEvent[], scanId: string) =>
  events.filter((e) => e.type !== 'error' && e.scanId === scanId).map(brief);
const ended = (scanId: string) => (events: FolderEvent[]) =>
  events.some((e) => e.type === 'scan-end' && e.scanId === scanId);
const errors = (events: FolderEvent[]) => events.filter((e) => e.type === 'error');
const slicesOf = (events: FolderEvent[], scanId: string) =>
  events.filter((e): e is SliceEvent => e.type === 'slice' && e.scanId === scanId);

/** A small uint16 TIFF whose pixels all hold `z`. */
function tiff(z: number, size = 8): Uint8Array {
  return encodeTiff([{ width: size, height: size, data: new Uint16Array(size * size).fill(z) }]);
}

const sliceName = (z: number) => `slice_${String(z).padStart(5, '0')}.tif`;

/** Write slice z into `dir` by rename, as most scanners do. */
function putSlice(dir: string, z: number, name = sliceName(z)): string {
  const path = join(dir, name);
  writeFileSync(join(dir, `.${name}.partial`), tiff(z));
  renameSync(join(dir, `.${name}.partial`), path);
  return path;
}

t.test('options are checked when watchFolder is called, naming the option', async (t) => {
  const root = t.testdir();
  const cases: [WatchFolderOptions, string][] = [
    [{ stabilityMs: -1 }, 'stabilityMs'],
    [{ idleTimeoutMs: 0 }, 'idleTimeoutMs'],
    [{ pollMs: Number.POSITIVE_INFINITY }, 'pollMs'],
    [{ missingSliceTimeoutMs: 2 ** 31 }, 'missingSliceTimeoutMs'],
    [{ followSymlinks: 'yes' as unknown as boolean }, 'followSymlinks'],
    [{ firstSlice: 1.5 }, 'firstSlice'],
    [{ stabiltyMs: 5 } as WatchFolderOptions, 'stabiltyMs'],
  ];
  for (const [options, option] of cases) {
    t.throws(() => watchFolder(root, options), { code: 'ERR_CONFIG', context: { option } }, option);
  }
  t.throws(() => watchFolder(root, { stabiltyMs: 5 } as WatchFolderOptions), {
    message: /unknown option "stabiltyMs"/,
  });
  // A root that is not there is a start-up error: nothing could ever arrive.
  const failure = await new Promise<unknown>((resolve) => {
    watchFolder(join(root, 'nope')).subscribe({ error: resolve });
  });
  t.match(failure, { code: 'ERR_CONFIG', context: { option: 'root' }, message: /nope.*ENOENT/ });
});

for (const writeMode of ['rename', 'inplace'] as WriteMode[]) {
  t.test(`live simulator (${writeMode}): every slice once, in order, only when complete`, async (t) => {
    const out = t.testdir();
    // In place, a slice file grows in pieces 5 ms apart: a stability window far longer than any
    // stall of a loaded machine keeps a paused writer's half file from looking complete.
    const stabilityMs = writeMode === 'inplace' ? 1500 : 100;
    const rec = record(t, out, { ...FAST, stabilityMs });
    await sleep(100);
    await runLiveScanner({ ...SIM, seed: 11, out, rate: 25, writeMode, scanId: `sim-${writeMode}` });
    const scanId = `sim-${writeMode}`;
    await rec.until('scan-end', ended(scanId));
    t.same(errors(rec.events), [], 'no error events');
    t.same(ofScan(rec.events, scanId), [
      `scan-start:${scanId}`,
      ...Array.from({ length: SIM.slices }, (_, z) => `slice:${scanId}:${z}`),
      `scan-end:${scanId}:expected-count:${SIM.slices}:[]`,
    ]);
    const start = rec.events.find((e) => e.type === 'scan-start');
    t.match(start, {
      dir: join(out, scanId),
      meta: { expectedSlices: SIM.slices, width: 64, height: 64, voxelSizeUm: Number, sampleId: String },
    });
    for (const slice of slicesOf(rec.events, scanId)) {
      const key = `${scanId}/${slice.z}`;
      // What was on disk when the slice was emitted decodes whole and is what the scanner wrote.
      t.equal(await rec.decoded.get(key), 64 * 64, `slice ${slice.z} decodes to 64x64`);
      t.ok(rec.bytes.get(key)?.equals(readFileSync(slice.path)), `slice ${slice.z} was final when emitted`);
      const mtime = statSync(slice.path).mtimeMs;
      t.ok(
        slice.readyAt >= mtime + stabilityMs - 10,
        `slice ${slice.z} seen complete after it stopped changing`,
      );
    }
  });
}

t.test('out-of-order files are emitted in z order', async (t) => {
  const root = t.testdir({ scan: {} });
  const dir = join(root, 'scan');
  const rec = record(t, root, FAST);
  await rec.until('scan-start', (e) => e.length > 0);
  for (const z of [2, 1, 0]) {
    putSlice(dir, z);
    await sleep(150);
  }
  writeFileSync(join(dir, 'scan.done'), '');
  await rec.until('scan-end', ended('scan'));
  t.same(ofScan(rec.events, 'scan'), [
    'scan-start:scan',
    'slice:scan:0',
    'slice:scan:1',
    'slice:scan:2',
    'scan-end:scan:done-marker:3:[]',
  ]);
});

t.test('a gap is reported missing after missingSliceTimeoutMs, then the stream goes on', async (t) => {
  const root = t.testdir({ scan: {} });
  const dir = join(root, 'scan');
  const timeout = 400;
  const rec = record(t, root, { ...FAST, missingSliceTimeoutMs: timeout });
  for (const z of [0, 2, 3]) putSlice(dir, z);
  await rec.until('slice 3', (e) => e.some((x) => brief(x) === 'slice:scan:3'));
  const missing = rec.events.find((e) => e.type === 'slice-missing');
  t.match(missing, {
    scanId: 'scan',
    z: 1,
    reason: `no complete file within ${timeout} ms while later slices waited`,
  });
  // The gap lasts from when the first slice above it was complete.
  const waitingSince = Math.min(
    ...slicesOf(rec.events, 'scan')
      .filter((s) => s.z > 1)
      .map((s) => s.readyAt),
  );
  const missingAt = rec.times[rec.events.indexOf(missing as FolderEvent)] ?? 0;
  t.ok(
    missingAt - waitingSince >= timeout,
    `gave up ${missingAt - waitingSince} ms after later slices waited`,
  );
  putSlice(dir, 1);
  writeFileSync(join(dir, 'scan.done'), '');
  await rec.until('scan-end', ended('scan'));
  t.same(ofScan(rec.events, 'scan'), [
    'scan-start:scan',
    'slice:scan:0',
    'slice-missing:scan:1',
    'slice:scan:2',
    'slice:scan:3',
    'scan-end:scan:done-marker:3:[1]',
  ]);
  t.match(errors(rec.events), [
    { path: join(dir, sliceName(1)), error: { message: /arrived after it was reported missing/ } },
  ]);
});

t.test('scan.done seen before the last slice is complete: the slice still comes first', async (t) => {
  const root = t.testdir({ scan: {} });
  const dir = join(root, 'scan');
  // The pause below (80 ms) must stay inside the stability window whatever the machine does.
  const rec = record(t, root, { ...FAST, stabilityMs: 2000 });
  putSlice(dir, 0);
  putSlice(dir, 1);
  const bytes = tiff(2, 64);
  const fd = openSync(join(dir, sliceName(2)), 'w');
  writeSync(fd, bytes, 0, bytes.length >> 1, 0);
  writeFileSync(join(dir, 'scan.done'), '');
  await sleep(80);
  writeSync(fd, bytes, bytes.length >> 1, bytes.length - (bytes.length >> 1), bytes.length >> 1);
  closeSync(fd);
  await rec.until('scan-end', ended('scan'));
  t.same(ofScan(rec.events, 'scan'), [
    'scan-start:scan',
    'slice:scan:0',
    'slice:scan:1',
    'slice:scan:2',
    'scan-end:scan:done-marker:3:[]',
  ]);
  t.equal(await rec.decoded.get('scan/2'), 64 * 64, 'the last slice was whole when emitted');
});

t.test('at scan.done, holes are missing, and so is the tail up to expectedSlices', async (t) => {
  const root = t.testdir({ a: {}, b: { 'scan.json': JSON.stringify({ expectedSlices: 4 }) } });
  const rec = record(t, root, FAST);
  putSlice(join(root, 'a'), 0);
  writeFileSync(join(root, 'a', sliceName(1)), ''); // created, never written
  putSlice(join(root, 'a'), 2);
  putSlice(join(root, 'a'), 4);
  putSlice(join(root, 'b'), 0);
  putSlice(join(root, 'b'), 1);
  await rec.until('slices', (e) => slicesOf(e, 'a').length === 1 && slicesOf(e, 'b').length === 2);
  writeFileSync(join(root, 'a', 'scan.done'), '');
  writeFileSync(join(root, 'b', 'scan.done'), '');
  await rec.until('scan-ends', (e) => ended('a')(e) && ended('b')(e));
  t.same(ofScan(rec.events, 'a'), [
    'scan-start:a',
    'slice:a:0',
    'slice-missing:a:1',
    'slice:a:2',
    'slice-missing:a:3',
    'slice:a:4',
    'scan-end:a:done-marker:3:[1,3]',
  ]);
  t.same(ofScan(rec.events, 'b'), [
    'scan-start:b',
    'slice:b:0',
    'slice:b:1',
    'slice-missing:b:2',
    'slice-missing:b:3',
    'scan-end:b:done-marker:2:[2,3]',
  ]);
  const reasons = rec.events.flatMap((e) =>
    e.type === 'slice-missing' ? [`${e.scanId}:${e.z}:${e.reason}`] : [],
  );
  t.same(reasons.sort(), [
    `a:1:${sliceName(1)} is empty (0 bytes)`,
    'a:3:no complete file when the scan ended (done-marker)',
    'b:2:no complete file when the scan ended (done-marker)',
    'b:3:no complete file when the scan ended (done-marker)',
  ]);
  t.same(errors(rec.events), []);
});

t.test('a scan ends by expected count, or after the idle timeout', async (t) => {
  const root = t.testdir({ counted: { 'scan.json': JSON.stringify({ expectedSlices: 2 }) }, quiet: {} });
  // Long enough that 'counted' (ended by its count as soon as its slices are stable) always ends
  // first, even after a stall of seconds; 'quiet' then waits it out.
  const idleTimeoutMs = 8000;
  const rec = record(t, root, { ...FAST, idleTimeoutMs });
  putSlice(join(root, 'counted'), 0);
  putSlice(join(root, 'counted'), 1);
  putSlice(join(root, 'quiet'), 0);
  putSlice(join(root, 'quiet'), 1);
  const lastWrite = Date.now();
  await rec.until('counted ends', ended('counted'));
  t.same(ofScan(rec.events, 'counted'), [
    'scan-start:counted',
    'slice:counted:0',
    'slice:counted:1',
    'scan-end:counted:expected-count:2:[]',
  ]);
  t.notOk(ended('quiet')(rec.events), 'the quiet scan is still open');
  await rec.until('quiet ends', ended('quiet'), 60_000);
  t.ok(Date.now() - lastWrite >= idleTimeoutMs, 'ended only after the idle timeout');
  t.same(ofScan(rec.events, 'quiet'), [
    'scan-start:quiet',
    'slice:quiet:0',
    'slice:quiet:1',
    'scan-end:quiet:idle-timeout:2:[]',
  ]);
  // A file after the end is reported, not emitted.
  putSlice(join(root, 'quiet'), 2);
  await rec.until('late error', (e) => errors(e).length > 0);
  t.match(errors(rec.events), [{ scanId: 'quiet', error: { message: /appeared after scan quiet ended/ } }]);
});

t.test('two live scans at once each stream in order', async (t) => {
  const out = t.testdir();
  // 'right' writes in place: as in the live simulator test, a window no stall outlasts.
  const rec = record(t, out, { ...FAST, stabilityMs: 1500 });
  await sleep(100);
  await Promise.all([
    runLiveScanner({ ...SIM, seed: 1, out, rate: 40, scanId: 'left' }),
    runLiveScanner({ ...SIM, seed: 2, out, rate: 30, writeMode: 'inplace', scanId: 'right' }),
  ]);
  await rec.until('both ends', (e) => ended('left')(e) && ended('right')(e));
  t.same(errors(rec.events), []);
  for (const scanId of ['left', 'right']) {
    t.same(ofScan(rec.events, scanId), [
      `scan-start:${scanId}`,
      ...Array.from({ length: SIM.slices }, (_, z) => `slice:${scanId}:${z}`),
      `scan-end:${scanId}:expected-count:${SIM.slices}:[]`,
    ]);
    for (let z = 0; z < SIM.slices; z++) t.equal(await rec.decoded.get(`${scanId}/${z}`), 64 * 64);
  }
});

t.test('folder names with spaces and unicode; files already there at start-up', async (t) => {
  const name = 'Zelle 7 – Li|Li ü 東京 (2)';
  const root = t.testdir({
    [name]: { 'scan.json': JSON.stringify({ expectedSlices: 3, sampleId: 'Li|PEO|Li' }) },
  });
  const dir = join(root, name);
  putSlice(dir, 0);
  putSlice(dir, 1);
  const rec = record(t, root, FAST);
  await rec.until('slice 1', (e) => slicesOf(e, name).length === 2);
  putSlice(dir, 2);
  await rec.until('scan-end', ended(name));
  t.same(ofScan(rec.events, name), [
    `scan-start:${name}`,
    `slice:${name}:0`,
    `slice:${name}:1`,
    `slice:${name}:2`,
    `scan-end:${name}:expected-count:3:[]`,
  ]);
  t.match(rec.events[0], { type: 'scan-start', dir, meta: { expectedSlices: 3, sampleId: 'Li|PEO|Li' } });
  t.equal(slicesOf(rec.events, name)[2]?.path, join(dir, sliceName(2)));
});

t.test('a bad scan.json is an error event; the scan streams without it', async (t) => {
  const root = t.testdir({
    garbled: { 'scan.json': '{"expectedSlices": 3,' },
    typed: { 'scan.json': JSON.stringify({ expectedSlices: 'ten', voxelSizeUm: -1, sampleId: 'x' }) },
  });
  const rec = record(t, root, FAST);
  for (const scanId of ['garbled', 'typed']) {
    putSlice(join(root, scanId), 0);
    putSlice(join(root, scanId), 1);
    writeFileSync(join(root, scanId, 'scan.done'), '');
  }
  await rec.until('scan-ends', (e) => ended('garbled')(e) && ended('typed')(e));
  for (const scanId of ['garbled', 'typed']) {
    t.same(ofScan(rec.events, scanId), [
      `scan-start:${scanId}`,
      `slice:${scanId}:0`,
      `slice:${scanId}:1`,
      `scan-end:${scanId}:done-marker:2:[]`,
    ]);
    t.match(
      rec.events.find((e) => e.type === 'scan-start' && e.scanId === scanId),
      { meta: {} },
    );
  }
  const path = (scanId: string) => join(root, scanId, 'scan.json');
  t.match(
    errors(rec.events).find((e) => e.scanId === 'garbled'),
    {
      path: path('garbled'),
      error: {
        code: 'ERR_DECODE',
        context: { path: path('garbled') },
        message: /scan\.json: not valid JSON/,
      },
    },
  );
  t.match(
    errors(rec.events).find((e) => e.scanId === 'typed'),
    {
      path: path('typed'),
      error: {
        message:
          /expectedSlices must be a positive integer, got "ten"; voxelSizeUm must be a positive number, got -1/,
      },
    },
  );
});

t.test('scan.json arriving after scan-start gives scan-meta', async (t) => {
  const root = t.testdir({ scan: {} });
  const dir = join(root, 'scan');
  const rec = record(t, root, FAST);
  putSlice(dir, 0);
  await rec.until('slice 0', (e) => slicesOf(e, 'scan').length === 1);
  writeFileSync(join(dir, 'scan.json'), JSON.stringify({ expectedSlices: 2, voxelSizeUm: 0.65 }));
  await rec.until('scan-meta', (e) => e.some((x) => x.type === 'scan-meta'));
  putSlice(dir, 1);
  await rec.until('scan-end', ended('scan'));
  t.same(ofScan(rec.events, 'scan'), [
    'scan-start:scan',
    'slice:scan:0',
    'scan-meta:scan',
    'slice:scan:1',
    'scan-end:scan:expected-count:2:[]',
  ]);
  t.match(rec.events[0], { meta: {} });
  t.same(
    rec.events.find((e) => e.type === 'scan-meta'),
    {
      type: 'scan-meta',
      scanId: 'scan',
      meta: { expectedSlices: 2, voxelSizeUm: 0.65 },
    },
  );
});

t.test('a scan.json on disk holds scan-start back until it is read, however slow that is', async (t) => {
  // scan.json keeps changing for several times the start timer (2·stability + 2·poll), as if the
  // machine were too busy to see it settle, while the slices are long complete. The start must wait
  // for it, so the expected count ends the scan at 3 of the 5 slices whatever the machine's speed.
  const root = t.testdir({ scan: {} });
  const dir = join(root, 'scan');
  const meta = join(dir, 'scan.json');
  const rec = record(t, root, FAST);
  writeFileSync(meta, JSON.stringify({ expectedSlices: 3 }));
  for (const z of [0, 1, 2, 3, 4]) putSlice(dir, z);
  const timerMs = 2 * FAST.stabilityMs + 2 * FAST.pollMs;
  for (let i = 0; i < 30; i++) {
    // Always valid JSON, each write a different size: never stable while this loop runs.
    writeFileSync(meta, JSON.stringify({ expectedSlices: 3, note: 'x'.repeat(i) }));
    await sleep((4 * timerMs) / 30);
  }
  await rec.until('scan-end', ended('scan'));
  t.match(
    rec.events.find((e) => e.type === 'scan-start'),
    { meta: { expectedSlices: 3 } },
  );
  t.same(
    ofScan(rec.events, 'scan').filter((e) => !e.startsWith('scan-meta')),
    ['scan-start:scan', 'slice:scan:0', 'slice:scan:1', 'slice:scan:2', 'scan-end:scan:expected-count:3:[]'],
  );
  t.match(errors(rec.events), [
    { path: join(dir, sliceName(3)), error: { message: /not emitted: the scan ended \(expected-count\)/ } },
    { path: join(dir, sliceName(4)), error: { message: /not emitted: the scan ended \(expected-count\)/ } },
  ]);
});

t.test('a scan.json that is a symlink out of the root does not hold the scan back', async (t) => {
  const base = t.testdir({
    root: { scan: {} },
    outside: { 'scan.json': JSON.stringify({ expectedSlices: 1 }) },
  });
  const dir = join(base, 'root', 'scan');
  symlinkSync(join(base, 'outside', 'scan.json'), join(dir, 'scan.json'));
  const rec = record(t, join(base, 'root'), FAST);
  putSlice(dir, 0);
  putSlice(dir, 1);
  writeFileSync(join(dir, 'scan.done'), '');
  await rec.until('scan-end', ended('scan'));
  t.same(ofScan(rec.events, 'scan'), [
    'scan-start:scan',
    'slice:scan:0',
    'slice:scan:1',
    'scan-end:scan:done-marker:2:[]',
  ]);
  t.match(
    rec.events.find((e) => e.type === 'scan-start'),
    { meta: {} },
    'what it points at was never read',
  );
  t.match(errors(rec.events), [{ error: { message: /scan\.json: is a symlink to .*outside/ } }]);
});

t.test('symlinks leading outside the root are not followed', async (t) => {
  const base = t.testdir({
    root: { scan: {} },
    outside: { 'slice_00001.tif': Buffer.from(tiff(1)), elsewhere: {} },
  });
  const root = join(base, 'root');
  const dir = join(root, 'scan');
  putSlice(dir, 0);
  const link = join(dir, sliceName(1));
  symlinkSync(join(base, 'outside', 'slice_00001.tif'), link);
  symlinkSync(join(base, 'outside', 'elsewhere'), join(root, 'escape'));
  putSlice(dir, 2);
  writeFileSync(join(dir, 'scan.done'), '');
  const rec = record(t, root, FAST);
  await rec.until('scan-end', ended('scan'));
  t.same(ofScan(rec.events, 'scan'), [
    'scan-start:scan',
    'slice:scan:0',
    'slice-missing:scan:1',
    'slice:scan:2',
    'scan-end:scan:done-marker:2:[1]',
  ]);
  const errs = errors(rec.events);
  t.match(
    errs.find((e) => e.path === link),
    { scanId: 'scan', error: { code: 'ERR_SOURCE', message: /is a symlink to .*outside.*not followed/ } },
  );
  t.match(
    errs.find((e) => e.path === join(root, 'escape')),
    { error: { message: /outside/ } },
  );
  t.notOk(
    rec.events.some((e) => e.type === 'scan-start' && e.scanId === 'escape'),
    'the linked folder is not a scan',
  );

  // Asked to, the source follows them.
  const follow = record(t, root, { ...FAST, followSymlinks: true });
  await follow.until('scan-end', ended('scan'));
  t.same(ofScan(follow.events, 'scan'), [
    'scan-start:scan',
    'slice:scan:0',
    'slice:scan:1',
    'slice:scan:2',
    'scan-end:scan:done-marker:3:[]',
  ]);
});

t.test('a slice rewritten after emission is an error, never a second slice', async (t) => {
  const root = t.testdir({ scan: {} });
  const dir = join(root, 'scan');
  const rec = record(t, root, FAST);
  putSlice(dir, 0);
  await rec.until('slice 0', (e) => slicesOf(e, 'scan').length === 1);
  writeFileSync(join(dir, sliceName(0)), tiff(7, 16));
  await rec.until('error', (e) => errors(e).length === 1);
  putSlice(dir, 0); // replaced by rename this time
  await rec.until('second error', (e) => errors(e).length === 2);
  t.match(errors(rec.events), [
    {
      scanId: 'scan',
      path: join(dir, sliceName(0)),
      error: { context: { slice: 0 }, message: /rewritten after it was emitted/ },
    },
    { path: join(dir, sliceName(0)), error: { message: /rewritten after it was emitted/ } },
  ]);
  t.equal(slicesOf(rec.events, 'scan').length, 1);
});

t.test(
  'names: unparseable and foreign files are errors; temporary and hidden files are ignored',
  async (t) => {
    const root = t.testdir({
      scan: {
        'notes.tif': Buffer.from(tiff(0)),
        'readme.txt': 'hello',
        '.slice_00001.tif.partial': Buffer.from(tiff(1)),
        'slice_00001.tif.tmp': Buffer.from(tiff(1)),
        '.hidden_00001.tif': Buffer.from(tiff(1)),
        'img0001.tiff': Buffer.from(tiff(1)),
        'img0002.TIF': Buffer.from(tiff(2)),
        'scan.done': '',
      },
      'sim-1.truth.tif': 'beside the scans, not a scan',
    });
    const rec = record(t, root, { ...FAST, firstSlice: 1 });
    await rec.until('scan-end', ended('scan'));
    t.same(ofScan(rec.events, 'scan'), [
      'scan-start:scan',
      'slice:scan:1',
      'slice:scan:2',
      'scan-end:scan:done-marker:2:[]',
    ]);
    t.same(
      errors(rec.events)
        .map((e) => [e.path, e.error.code])
        .sort(),
      [
        [join(root, 'scan', 'notes.tif'), 'ERR_SOURCE'],
        [join(root, 'scan', 'readme.txt'), 'ERR_SOURCE'],
      ],
    );
    t.match(
      errors(rec.events).find((e) => e.path?.endsWith('notes.tif')),
      { error: { message: /no slice number/ } },
    );
    t.match(
      errors(rec.events).find((e) => e.path?.endsWith('readme.txt')),
      { error: { message: /not a slice file/ } },
    );
  },
);

t.test('.raw slices wait for their sidecar; readSliceFile reads what is emitted', async (t) => {
  const sidecar = JSON.stringify({ width: 4, height: 2, dtype: 'uint16' });
  const raw = (v: number) => Buffer.from(new Uint16Array(8).fill(v).buffer);
  const root = t.testdir({
    scan: { 'img0000.raw': raw(10), 'img0000.json': sidecar, 'img0001.raw': raw(11), 'img0002.raw': raw(12) },
  });
  const dir = join(root, 'scan');
  const rec = record(t, root, { ...FAST, missingSliceTimeoutMs: 400 });
  await sleep(300);
  writeFileSync(join(dir, 'img0002.json'), sidecar); // the sidecar after its raw file
  await rec.until('slice 2', (e) => slicesOf(e, 'scan').length === 2);
  writeFileSync(join(dir, 'scan.done'), '');
  await rec.until('scan-end', ended('scan'));
  t.same(ofScan(rec.events, 'scan'), [
    'scan-start:scan',
    'slice:scan:0',
    'slice-missing:scan:1',
    'slice:scan:2',
    'scan-end:scan:done-marker:2:[1]',
  ]);
  t.match(
    rec.events.find((e) => e.type === 'slice-missing'),
    { reason: /img0001\.raw has no sidecar .*img0001\.json/ },
  );
  for (const slice of slicesOf(rec.events, 'scan')) {
    const image = await readSliceFile(slice.path);
    t.match(image, { width: 4, height: 2, dtype: 'uint16' });
    t.same([...image.data], Array(8).fill(10 + slice.z));
  }
  t.same(errors(rec.events), [], 'the missing raw file is reported once, as slice-missing');
});

/** Handles that keep the process alive, by kind (fs watchers, stat pollers, timers). */
function handles(): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const kind of process.getActiveResourcesInfo()) counts[kind] = (counts[kind] ?? 0) + 1;
  return counts;
}

for (const usePolling of [false, true]) {
  t.test(`unsubscribing closes the watcher and clears its timers (usePolling: ${usePolling})`, async (t) => {
    const root = t.testdir({ scan: { 'scan.json': '{}' } });
    const before = handles();
    const rec = record(t, root, { ...FAST, usePolling, stabilityMs: 400 });
    await rec.until('scan-start', (e) => e.length > 0);
    putSlice(join(root, 'scan'), 0); // its stability check is under way when we unsubscribe
    await sleep(60);
    // chokidar's own handles do not hold the process (see watchFolder); the source's keep-alive does.
    t.ok(handles()['Timeout'], 'watching holds the process open');
    rec.stop();
    const count = rec.events.length;
    mkdirSync(join(root, 'later'));
    putSlice(join(root, 'later'), 0);
    putSlice(join(root, 'scan'), 1);
    // Every handle the source opened goes away (chokidar's own throttle timers last up to a second).
    const deadline = Date.now() + 30_000;
    let now = handles();
    const settled = () =>
      ['FSEventWrap', 'StatWatcher', 'Timeout'].every((kind) => (now[kind] ?? 0) <= (before[kind] ?? 0));
    while (!settled() && Date.now() < deadline) {
      await sleep(50);
      now = handles();
    }
    t.ok(
      settled(),
      `handles back to where they were: before ${JSON.stringify(before)}, now ${JSON.stringify(now)}`,
    );
    await sleep(500);
    t.equal(rec.events.length, count, 'no events after unsubscribing');
  });
}
