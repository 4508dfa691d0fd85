import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { basename, join } from 'node:path';
import t from 'tap';
import { parseSpeed } from '../../src/cli/replay-command.ts';
import { volumeOf, writeHdf5 } from '../sources/archive-fixtures.ts';
import { runCli } from './run-cli.ts';

const TOOTH = new URL('../../../shared/data/tooth.h5', import.meta.url).pathname;
const MODEL = 'unet';
const HINT = 'Run `xct-sentinel replay --help` for its options.';

t.test('--speed: max, 1x, Nx, or a bare number', async (t) => {
  t.equal(parseSpeed(undefined), 'max');
  t.equal(parseSpeed('max'), 'max');
  t.equal(parseSpeed('1x'), 1);
  t.equal(parseSpeed('2.5x'), 2.5);
  t.equal(parseSpeed('4'), 4);
  for (const bad of ['0x', 'fast', '-1x', 'x', '1xx']) {
    t.throws(() => parseSpeed(bad), { code: 'ERR_USAGE', context: { option: '--speed' } }, bad);
  }
});

t.test('bad archives: a non-zero exit and one clear error line each, before any model loads', async (t) => {
  const dir = t.testdir({ 'notes.txt': 'just some text\n' });
  await writeHdf5(join(dir, 'other.h5'), volumeOf(Uint8Array, 2, 2, 2), [2, 2, 2], {
    dataset: 'entry/volume',
  });
  await writeHdf5(join(dir, 'flat.h5'), volumeOf(Float32Array, 1, 4, 5), [4, 5]);
  await writeHdf5(join(dir, 'wide.h5'), new BigInt64Array(8), [2, 2, 2]);
  await writeHdf5(join(dir, 'ok.h5'), volumeOf(Uint8Array, 2, 2, 2), [2, 2, 2]);
  await mkdir(join(dir, 'out', 'ok.ome.zarr'), { recursive: true });
  // A model name that does not exist: reaching the model would be an error of its own.
  const base = ['--model', 'no-such-model', '--out', join(dir, 'out')];
  const cases: [string[], number, RegExp][] = [
    [[join(dir, 'missing.h5')], 2, /missing\.h5: no such file or folder$/],
    [[join(dir, 'notes.txt')], 1, /notes\.txt: not an archive \(it looks like text/],
    [[join(dir, 'other.h5')], 1, /other\.h5: HDF5 file has no \/exchange\/data dataset/],
    [[join(dir, 'flat.h5')], 1, /flat\.h5: \/exchange\/data is 2-D \(4×5\)/],
    [[join(dir, 'wide.h5')], 1, /wide\.h5: \/exchange\/data has unsupported dtype int64/],
    [[join(dir, 'ok.h5'), '--speed', '1x'], 2, /ok\.h5: this HDF5 file does not record how fast .*--rate/],
    [[join(dir, 'ok.h5'), '--speed', 'fast'], 2, /--speed must be max, 1x .* got "fast"/],
    [[join(dir, 'ok.h5')], 1, /ok\.ome\.zarr already exists .* choose another --out or --scan-id/],
    [[], 2, /replay needs an ARCHIVE/],
  ];
  for (const [args, code, message] of cases) {
    const r = await runCli(['replay', ...args, ...base]);
    const name =
      args.length === 0 ? '(no archive)' : `${basename(args[0] as string)} ${args.slice(1).join(' ')}`;
    t.equal(r.code, code, `${name}: exit ${code}`);
    const lines = r.stderr.trimEnd().split('\n');
    t.match(lines[0], /^xct-sentinel replay: /, `${name}: the error comes first`);
    t.match(lines[0], message, name);
    t.same(lines.slice(1), code === 2 ? [HINT] : [], `${name}: nothing else (no HDF5 library noise, no log)`);
    t.equal(r.stdout, '', `${name}: nothing on stdout`);
  }
});

t.test('--help', async (t) => {
  const r = await runCli(['replay', '--help']);
  t.equal(r.code, 0);
  t.match(r.stdout, /xct-sentinel replay ARCHIVE \[--speed max\|1x\|Nx\]/);
  const top = await runCli(['--help']);
  t.match(top.stdout, /^ {2}replay +replay an archived scan/m, 'listed with the other commands');
});

t.test('tooth.h5 in a pipe: JSON alerts (the summary only), JSON logs, exit 0', {}, async (t) => {
  const out = t.testdir();
  const r = await runCli(['replay', TOOTH, '--model', MODEL, '--out', out], { timeoutMs: 280_000 });
  t.equal(r.code, 0, r.code === 0 ? 'exit 0' : r.stderr);
  const alerts = r.stdout
    .trim()
    .split('\n')
    .map((line) => JSON.parse(line) as { kind: string; scanId: string });
  t.same(
    alerts.map((a) => `${a.kind} ${a.scanId}`),
    ['scan-summary tooth'],
    'no dendrite alert on a tooth',
  );
  const logs = r.stderr
    .trim()
    .split('\n')
    .map((line) => JSON.parse(line) as { msg: string; summary?: { slices: number; failed: number } });
  t.ok(
    logs.some((l) => /projections: 181 angles, 2 rows of 640 columns; each row reconstructed/.test(l.msg)),
    'says the data are projections, reconstructed',
  );
  t.ok(
    logs.some((l) => /rotation axis found at column/.test(l.msg)),
    'and where it found the rotation axis',
  );
  t.match(logs.at(-1), { summary: { slices: 2, failed: 0 } }, 'the last log line is the summary');
  t.ok(existsSync(join(out, 'tooth.ome.zarr', 'zarr.json')), 'masks written');
});
