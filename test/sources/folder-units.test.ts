import { symlinkSync } from 'node:fs';
import { realpath } from 'node:fs/promises';
import { join } from 'node:path';
import t from 'tap';
import { fileState } from '../../src/sources/file-stability.ts';
import { isSliceName, parseSliceNumber, scanMetaFields, sidecarPath } from '../../src/sources/scan-folder.ts';
import { symlinkVerdict } from '../../src/sources/symlink-policy.ts';
import { normalizeWatchOptions, WATCH_FOLDER_DEFAULTS } from '../../src/sources/watch-folder-options.ts';

t.test('file stability: complete once unchanged for stabilityMs, with bytes', async (t) => {
  const sig = { size: 10, mtimeMs: 5, ino: 7 };
  t.equal(fileState({ sig: undefined, since: 0 }, sig, 0, 300), 'changed', 'first look');
  t.equal(fileState({ sig, since: 0 }, sig, 299, 300), 'settling');
  t.equal(fileState({ sig, since: 0 }, sig, 300, 300), 'complete');
  t.equal(fileState({ sig, since: 0 }, { ...sig, size: 11 }, 900, 300), 'changed', 'it grew');
  t.equal(fileState({ sig, since: 0 }, { ...sig, ino: 8 }, 900, 300), 'changed', 'renamed into place');
  const empty = { size: 0, mtimeMs: 5, ino: 7 };
  t.equal(fileState({ sig: empty, since: 0 }, empty, 900, 300), 'empty');
  t.equal(fileState({ sig, since: 0 }, sig, 0, 0), 'complete', 'stabilityMs 0: complete on the second look');
});

t.test('symlink policy: inside the root yes, to nothing or outside no, unless following', async (t) => {
  const dir = t.testdir({ root: { scan: { 'slice_0.tif': 'x' } }, elsewhere: { 'secret.tif': 'y' } });
  const root = join(dir, 'root');
  const scan = join(root, 'scan');
  symlinkSync(join(scan, 'slice_0.tif'), join(scan, 'slice_1.tif'));
  symlinkSync(join(dir, 'elsewhere', 'secret.tif'), join(scan, 'slice_2.tif'));
  symlinkSync(join(dir, 'nowhere.tif'), join(scan, 'slice_3.tif'));
  const r = { dir: root, real: await realpath(root) };
  t.same(await symlinkVerdict(join(scan, 'slice_0.tif'), r, false), { ok: true }, 'a plain file');
  t.same(await symlinkVerdict(join(scan, 'slice_1.tif'), r, false), { ok: true }, 'a link inside the root');
  t.match(await symlinkVerdict(join(scan, 'slice_2.tif'), r, false), {
    ok: false,
    kind: 'outside',
    reason: /^is a symlink to .*secret\.tif, outside .*root; not followed \(set followSymlinks to allow\)$/,
  });
  t.match(await symlinkVerdict(join(scan, 'slice_3.tif'), r, false), { ok: false, kind: 'dangling' });
  t.same(await symlinkVerdict(join(scan, 'gone.tif'), r, false), { ok: false, gone: true });
  t.same(await symlinkVerdict(join(scan, 'slice_2.tif'), r, true), { ok: true }, 'followSymlinks allows it');
});

t.test('watch options: defaults filled in, each bad value named', async (t) => {
  t.same(normalizeWatchOptions({}), WATCH_FOLDER_DEFAULTS);
  t.equal(normalizeWatchOptions({ stabilityMs: 0 }).stabilityMs, 0);
  t.throws(() => normalizeWatchOptions({ pollMs: 0 }), { code: 'ERR_CONFIG', message: /pollMs must be/ });
  t.throws(() => normalizeWatchOptions({ idleTimeoutMs: 2 ** 31 }), {
    message: /idleTimeoutMs .* <= 2147483647/,
  });
  t.throws(() => normalizeWatchOptions({ firstSlice: -1 }), {
    message: /firstSlice must be an integer >= 0/,
  });
  t.throws(() => normalizeWatchOptions({ usePolling: 'yes' as unknown as boolean }), {
    message: /usePolling must be true or false/,
  });
  t.throws(() => normalizeWatchOptions({ bogus: 1 } as never), { message: /unknown option "bogus"/ });
});

t.test('scan folder names: one reading for the watcher and the archive', async (t) => {
  t.equal(parseSliceNumber('slice_00012.tif'), 12);
  t.equal(parseSliceNumber('cell7_z0042.raw'), 42, 'the last run of digits');
  t.equal(parseSliceNumber('slice.tif'), undefined);
  t.equal(parseSliceNumber(`s${'9'.repeat(20)}.tif`), undefined, 'beyond a safe integer');
  t.ok(isSliceName('slice_1.TIF'));
  t.notOk(isSliceName('.slice_1.tif'), 'hidden');
  t.notOk(isSliceName('slice_1.tif.partial'), 'a writer at work');
  t.notOk(isSliceName('slice_1.png'));
  t.equal(sidecarPath('/a/slice_0001.raw'), '/a/slice_0001.json');
  t.same(scanMetaFields({ expectedSlices: 64, voxelSizeUm: 0.65, sampleId: 'cell-7', width: null }), {
    meta: { expectedSlices: 64, voxelSizeUm: 0.65, sampleId: 'cell-7' },
    problems: [],
  });
  t.same(scanMetaFields({ expectedSlices: 'ten', voxelSizeUm: -1, sampleId: 3 }).problems, [
    'expectedSlices must be a positive integer, got "ten"',
    'voxelSizeUm must be a positive number, got -1',
    'sampleId must be a string, got 3',
  ]);
});
