import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { decode } from 'fast-png';
import t from 'tap';
import { runCli } from './run-cli.ts';

t.test('simulate --out writes a live scan and says where', async (t) => {
  const out = t.testdir();
  const r = await runCli([
    'simulate',
    '--out',
    out,
    '--size',
    '64',
    '--slices',
    '6',
    '--rate',
    '200',
    '--seed',
    '8',
    '--scan-id',
    'cell-A',
    '--write-mode',
    'inplace',
  ]);
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, /wrote 6 slices to .*cell-A/);
  t.same((await readdir(join(out, 'cell-A'))).length, 8);
  t.ok((await readdir(out)).includes('cell-A.truth.tif'));
});

t.test('simulate --preview renders the slice with the truth outlined', async (t) => {
  const dir = t.testdir();
  const file = join(dir, 'p.png');
  const r = await runCli(['simulate', '--preview', file, '--size', '96', '--slices', '24', '--seed', '2']);
  t.equal(r.code, 0, r.stderr);
  const png = decode(await readFile(file));
  t.equal(png.height, 2 * 96 + 8);
  t.equal(png.width, 96 + 8 + 24);
  let red = 0;
  for (let i = 0; i < png.data.length; i += 3) if (png.data[i] === 255 && png.data[i + 1] === 40) red++;
  t.ok(red > 0, `${red} dendrite outline pixels`);
});

t.test('bad options fail with a message naming the option', async (t) => {
  const dir = t.testdir({ file: 'x' });
  const cases: [string[], RegExp, number][] = [
    [['simulate', '--out', dir, '--bogus'], /Unknown option '--bogus'/, 2],
    [['simulate', '--out', dir, '--rate', '0'], /--rate must be > 0/, 2],
    [['simulate', '--out', dir, '--rate', 'fast'], /--rate must be a number/, 2],
    [['simulate', '--out', dir, '--size', '10'], /--size must be from 32/, 2],
    [['simulate', '--out', dir, '--slices', '2.5'], /--slices must be an integer/, 2],
    [['simulate', '--out', dir, '--write-mode', 'append'], /--write-mode must be one of rename, inplace/, 2],
    [['simulate', '--out', join(dir, 'file', 'x'), '--slices', '2'], /--out .*cannot create/, 1],
    [['simulate'], /give one of --out/, 2],
    [['simulate', '--out', dir, '--preview', 'x.png'], /cannot be combined/, 2],
    [['simulate', '--dataset', dir], /--patches/, 2],
    [['simulate', '--preview', join(dir, 'x.jpg')], /--preview must name a \.png/, 2],
    [['nonsense'], /unknown command "nonsense"/, 2],
  ];
  for (const [args, message, code] of cases) {
    const r = await runCli(args);
    t.equal(r.code, code, `${args.join(' ')} exits ${code}`);
    t.match(r.stderr, message, `${args.join(' ')}: ${r.stderr.split('\n')[0]}`);
  }
});

t.test('--help and --version', async (t) => {
  const help = await runCli(['simulate', '--help']);
  t.equal(help.code, 0);
  t.match(help.stdout, /--write-mode rename\|inplace/);
  const version = await runCli(['--version']);
  t.match(version.stdout, /^\d+\.\d+\.\d+\n$/);
});
