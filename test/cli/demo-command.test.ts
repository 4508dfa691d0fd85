import { readFile, rm } from 'node:fs/promises';
import { dirname } from 'node:path';
import FileSystemStore from '@zarrita/storage/fs';
import t from 'tap';
import * as zarr from 'zarrita';
import { runCli } from './run-cli.ts';

// `npm start` is `xct-sentinel demo`: the first thing a new user runs. This runs it for real (the
// simulator, the daemon, the shipped T-Net), on a short scan, and checks that what it says it left
// behind is there.
t.test('demo: a live scan end to end, with masks, alerts and a score where it says', async (t) => {
  const slices = 24;
  const r = await runCli(['demo', '--slices', String(slices), '--rate', '24', '--seed', '7'], {
    timeoutMs: 240_000,
  });
  t.equal(r.code, 0, r.stderr);
  const field = (name: string) => r.stdout.match(new RegExp(`^\\s*${name}:\\s+(\\S+)`, 'm'))?.[1];
  const masks = field('masks');
  const alerts = field('alerts');
  const said = t.ok(masks?.endsWith('demo-7.ome.zarr') && alerts, 'it says where the masks and alerts are');
  if (!said) t.comment(r.stdout);
  if (!masks || !alerts) return;
  t.teardown(() => rm(dirname(dirname(masks)), { recursive: true, force: true }));

  const root = zarr.root(new FileSystemStore(masks));
  const mask = await zarr.open(root.resolve('labels/dendrite/0'), { kind: 'array' });
  t.same(mask.shape, [slices, 256, 256], 'the mask covers every slice');
  t.equal(mask.dtype, 'uint8');

  const lines = (await readFile(alerts, 'utf8')).trim().split('\n');
  const last = JSON.parse(lines.at(-1) ?? '{}') as { kind?: string; summary?: { slices?: number } };
  t.equal(last.kind, 'scan-summary', 'the alerts file ends with the scan summary');
  t.equal(last.summary?.slices, slices);
  const dendriteAlerts = lines
    .map((l) => JSON.parse(l) as { kind?: string })
    .filter((a) => a.kind === 'dendrite');
  t.ok(dendriteAlerts.length > 0, `dendrite alerts in the file (${dendriteAlerts.length})`);
  t.match(r.stdout, /^\S+ (INFO|WARNING|CRITICAL) +dendrite #\d+ in demo-7: /m, 'and printed as they happen');

  const dice = Number(r.stdout.match(/mask vs truth: Dice ([\d.]+)/)?.[1]);
  t.ok(dice > 0.6, `it scores its mask against the simulator's truth (Dice ${dice})`);
});
