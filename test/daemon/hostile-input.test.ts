/**
 * Hostile input at the folder source, all at once, beside a good scan: each bad thing gets one
 * clear error naming its file and the reason; the good scan and the good slices of the bad scans
 * are processed as if nothing happened; the daemon keeps going to the end.
 */
import { copyFile, mkdir, open, readFile, symlink, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import t from 'tap';
import { DEFAULT_ALERT_RULES } from '../../src/alerts/alert-rules.ts';
import { encodeTiff } from '../../src/codecs/encode-tiff.ts';
import { DaemonStats } from '../../src/daemon/daemon-stats.ts';
import { type CompletedScan, runDaemon } from '../../src/daemon/run-daemon.ts';
import { loadModel } from '../../src/inference/load-model.ts';
import { runLiveScanner } from '../../src/sim/live-scanner.ts';
import { readZarrScanProgress } from '../../src/sinks/zarr-scan-writer.ts';
import { watchFolder } from '../../src/sources/watch-folder.ts';
import { captureLog } from '../kafka/capture-log.ts';

const PNG_MAGIC = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 13]);
const slice = (z: number) => `slice_${String(z).padStart(5, '0')}.tif`;

t.test('every hostile input gets its own clear error; nothing else is lost', async (t) => {
  const root = t.testdir({ watch: {}, out: {}, outside: {}, staging: {} });
  const watch = join(root, 'watch');
  // The good scan, and a source of valid 128×128 slices for the others.
  await runLiveScanner({ out: watch, seed: 901_001, size: 128, slices: 8, rate: 1e6, scanId: 'good' });
  await runLiveScanner({
    out: join(root, 'staging'),
    seed: 901_002,
    size: 128,
    slices: 8,
    rate: 1e6,
    scanId: 'src',
  });
  const valid = (z: number) => join(root, 'staging', 'src', slice(z));

  // One scan of 8 slices where 6 are bad in 6 ways; slices 0 and 7 are fine.
  const mixed = join(watch, 'mixed');
  await mkdir(mixed);
  await writeFile(
    join(mixed, 'scan.json'),
    JSON.stringify({ expectedSlices: 8, width: 128, height: 128, dtype: 'uint16' }),
  );
  await copyFile(valid(0), join(mixed, slice(0)));
  await writeFile(join(mixed, slice(1)), ''); // zero bytes
  const whole = await readFile(valid(2));
  await writeFile(join(mixed, slice(2)), whole.subarray(0, whole.length >> 1)); // truncated
  await writeFile(join(mixed, slice(3)), PNG_MAGIC); // a PNG named .tif
  await writeFile(join(mixed, slice(4)), 'reconstruction failed, see log\n'); // text named .tif
  await writeFile(
    join(mixed, slice(5)),
    encodeTiff([{ width: 64, height: 64, data: new Uint16Array(64 * 64).fill(900) }]),
  ); // a different size mid-scan
  await writeFile(
    join(mixed, slice(6)),
    encodeTiff([{ width: 128, height: 128, data: new Float32Array(128 * 128).fill(0.5) }]),
  ); // float pixels in a uint16 scan
  await copyFile(valid(7), join(mixed, slice(7)));

  // A float scan with NaN and ±Inf in one slice.
  const floaty = join(watch, 'floaty');
  await mkdir(floaty);
  for (const z of [0, 1]) {
    const floats = new Float32Array(128 * 128).map((_, i) => 0.2 + ((i * 7919) % 100) / 1000);
    if (z === 1) {
      floats[10] = Number.NaN;
      floats[20] = Number.POSITIVE_INFINITY;
    }
    await writeFile(join(floaty, slice(z)), encodeTiff([{ width: 128, height: 128, data: floats }]));
  }
  await writeFile(join(floaty, 'scan.done'), '');

  // A 1×1 slice; a 2 GiB sparse file named as a slice; a folder name with spaces, dots and unicode.
  const tiny = join(watch, 'tiny');
  await mkdir(tiny);
  await writeFile(join(tiny, slice(0)), encodeTiff([{ width: 1, height: 1, data: new Uint16Array([7]) }]));
  await writeFile(join(tiny, 'scan.done'), '');
  const huge = join(watch, 'huge');
  await mkdir(huge);
  const handle = await open(join(huge, slice(0)), 'w');
  await handle.close();
  await truncate(join(huge, slice(0)), 2 ** 31);
  await writeFile(join(huge, 'scan.done'), '');
  const odd = join(watch, 'cell ü..β 7');
  await mkdir(odd);
  for (const z of [0, 1]) await copyFile(valid(z), join(odd, slice(z)));
  await writeFile(join(odd, 'scan.done'), '');
  // A link out of the watch root, and a scan.json that is not JSON.
  await copyFile(valid(0), join(root, 'outside', 'secret.tif'));
  const linked = join(watch, 'linked');
  await mkdir(linked);
  await symlink(join(root, 'outside', 'secret.tif'), join(linked, slice(0)));
  await copyFile(valid(1), join(linked, slice(1)));
  await writeFile(join(linked, 'scan.json'), '{ "expectedSlices": 2, ');
  await writeFile(join(linked, 'scan.done'), '');
  // A scan.json that lies: says 3 slices, the folder has 5.
  const liar = join(watch, 'liar');
  await mkdir(liar);
  await writeFile(join(liar, 'scan.json'), JSON.stringify({ expectedSlices: 3 }));
  for (const z of [0, 1, 2, 3, 4]) await copyFile(valid(z), join(liar, slice(z)));
  await writeFile(join(mixed, 'scan.done'), '');

  const model = await loadModel('unet', { threads: 1 });
  t.teardown(() => model.close());
  const { log, entries } = captureLog('warn');
  const stats = new DaemonStats();
  const completed: CompletedScan[] = [];
  await runDaemon({
    source: watchFolder(watch, { stabilityMs: 50, idleTimeoutMs: 3000, missingSliceTimeoutMs: 2000 }),
    out: join(root, 'out'),
    model,
    sinks: [],
    rules: DEFAULT_ALERT_RULES,
    decodeRetry: { attempts: 2, delayMs: 20 },
    maxScans: 8,
    stats,
    log,
    onScanComplete: (c) => completed.push(c),
  });

  const byScan = new Map(completed.map((c) => [c.scanId, c]));
  t.same(
    [...byScan.keys()].sort(),
    ['cell ü..β 7', 'floaty', 'good', 'huge', 'liar', 'linked', 'mixed', 'tiny'],
    'every scan completes, the bad ones too',
  );
  t.same(
    completed.filter((c) => c.failed).map((c) => c.scanId),
    [],
    'no scan failed: bad slices are skipped, not fatal',
  );
  t.equal(byScan.get('good')?.slices, 8, 'the good scan: every slice');
  t.equal(byScan.get('good')?.failed, undefined);
  t.equal(byScan.get('cell ü..β 7')?.slices, 2, 'an odd folder name is just a name');
  const mixedScan = byScan.get('mixed');
  t.equal(mixedScan?.slices, 2, 'mixed: the good slices 0 and 7');
  t.same([...(mixedScan?.missing ?? [])].sort(), [1, 2, 3, 4, 5, 6], 'mixed: the bad ones reported missing');
  const progress = await readZarrScanProgress(join(root, 'out', 'mixed.ome.zarr'));
  t.same(progress?.slicesWritten, [0, 7], 'mixed: what was good is in the store');
  t.equal(byScan.get('floaty')?.slices, 2, 'NaN/Inf pixels do not cost the slice');

  const said = entries.map((e) => String(e.msg));
  const saysAbout = (pattern: RegExp, what: string) =>
    t.ok(
      said.some((m) => pattern.test(m)),
      `${what}: ${said.find((m) => pattern.test(m)) ?? `nothing matching ${pattern} in\n${said.join('\n')}`}`,
    );
  saysAbout(/slice_00001\.tif.*(empty|0 bytes)/i, 'zero-byte slice');
  saysAbout(/slice_00002\.tif.*(truncated|cut short|ends)/i, 'truncated TIFF');
  saysAbout(/slice_00003\.tif.*PNG/i, 'a PNG named .tif');
  saysAbout(/slice_00004\.tif.*not a TIFF/i, 'a text file named .tif');
  saysAbout(/slice_00005\.tif.*64×64 differs from the scan's 128×128/, 'a different size mid-scan');
  saysAbout(/slice_00006\.tif: float32 pixels differ from the scan's uint16/, 'another pixel type mid-scan');
  saysAbout(/floaty.slice_00001\.tif: 2 pixels are NaN or infinite/, 'NaN/Inf in a float slice');
  saysAbout(/tiny.slice_00000\.tif: 1×1 is too small/, 'a 1×1 slice');
  saysAbout(
    /huge.slice_00000\.tif: is 2\.0 GiB; slices over 1\.0 GiB are refused unread/,
    'a 2 GiB sparse file',
  );
  saysAbout(/linked.*slice_00000\.tif.*outside/, 'a symlink out of the watch root');
  saysAbout(/linked.*scan\.json/, 'scan.json that is not JSON');
  saysAbout(
    /liar.slice_00003\.tif: slice 3 not emitted: the scan ended \(expected-count\)/,
    'scan.json that lies about the count',
  );
  t.equal(byScan.get('liar')?.slices, 3, 'the liar: the slices it announced');
  t.ok(process.memoryUsage().rss < 2 ** 31, 'the 2 GiB file was never read into memory');
});
