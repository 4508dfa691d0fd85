import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { from } from 'rxjs';
import t from 'tap';
import { DEFAULT_ALERT_RULES } from '../../src/alerts/alert-rules.ts';
import type { DendriteAlert } from '../../src/alerts/dendrite-alert.ts';
import { ALERT_JOURNAL_FILE } from '../../src/daemon/alert-journal.ts';
import { DaemonStats } from '../../src/daemon/daemon-stats.ts';
import { runDaemon } from '../../src/daemon/run-daemon.ts';
import { loadModel } from '../../src/inference/load-model.ts';
import { createJsonlAlertSink } from '../../src/sinks/jsonl-alert-sink.ts';
import { memoryScan, renderScan } from '../daemon/memory-scan.ts';

const lines = async (path: string) =>
  (await readFile(path, 'utf8'))
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as DendriteAlert);

t.test('a file sink knows the alerts already in its file, and closes a line a crash cut short', async (t) => {
  const path = join(t.testdir(), 'alerts.jsonl');
  const a = { alertId: 'a-1', scanId: 's', kind: 'dendrite' };
  const b = { alertId: 'a-2', scanId: 's', kind: 'dendrite' };
  // Two whole lines, then half of a third: what a kill -9 in the middle of an append leaves.
  await writeFile(path, `${JSON.stringify(a)}\n${JSON.stringify(b)}\n{"alertId":"a-3","sc`);
  const sink = await createJsonlAlertSink(path);
  t.ok(sink.has?.('a-1') && sink.has?.('a-2'), 'the whole lines are held');
  t.notOk(sink.has?.('a-3'), 'the cut line holds nothing to count on');
  await sink.write({ ...a, alertId: 'a-3' } as unknown as DendriteAlert);
  t.ok(sink.has?.('a-3'), 'what it wrote, it holds');
  await sink.close();
  const text = await readFile(path, 'utf8');
  const parsed = text
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => {
      try {
        return (JSON.parse(l) as { alertId: string }).alertId;
      } catch {
        return 'unparsable';
      }
    });
  t.same(parsed, ['a-1', 'a-2', 'unparsable', 'a-3'], 'the new alert on a line of its own');
  // A target that is not a regular file is not read back (it would block, or mean nothing).
  const dev = await createJsonlAlertSink('/dev/null');
  t.notOk(dev.has?.('a-1'));
  await dev.close();
});

t.test(
  'an alert the file holds but the journal lost (a crash between the two) is not appended again',
  async (t) => {
    const model = await loadModel('unet', { threads: 2 });
    t.teardown(() => model.close());
    const events = memoryScan('cell', renderScan({ seed: 901_001, size: 128, slices: 24 }), 128);
    const root = t.testdir({ out: {} });
    const file = join(root, 'alerts.jsonl');
    const run = async () => {
      const sink = await createJsonlAlertSink(file);
      const stats = new DaemonStats();
      await runDaemon({
        source: from(events),
        out: join(root, 'out'),
        model,
        sinks: [sink],
        rules: DEFAULT_ALERT_RULES,
        maxScans: 1,
        stats,
      });
      await sink.close();
      return stats;
    };
    await run();
    const first = await lines(file);
    t.ok(first.filter((a) => a.kind === 'dendrite').length > 0, `${first.length} alerts written`);
    // As if every append had reached the file and no journal record had: the worst moment to crash.
    await rm(join(root, 'out', 'cell.ome.zarr', ALERT_JOURNAL_FILE));
    await run();
    const after = await lines(file);
    t.same(
      after.map((a) => a.alertId),
      first.map((a) => a.alertId),
      'the restart found them in the file: none appended twice',
    );
    const journal = await readFile(join(root, 'out', 'cell.ome.zarr', ALERT_JOURNAL_FILE), 'utf8');
    t.equal(journal.trim().split('\n').length, first.length, 'and journaled them this time');
  },
);
