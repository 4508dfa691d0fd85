import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import t from 'tap';
import { AlertDelivery, type JournaledScan, journalPath } from '../../src/daemon/alert-delivery.ts';
import { AlertJournal } from '../../src/daemon/alert-journal.ts';
import { DaemonStats } from '../../src/daemon/daemon-stats.ts';
import { silentLogger } from '../../src/log.ts';
import type { AlertSink } from '../../src/sinks/alert-sink.ts';
import { createJsonlAlertSink } from '../../src/sinks/jsonl-alert-sink.ts';
import { dendriteAlert } from '../kafka/alert-fixtures.ts';

/** A real JSON-lines sink that refuses the first `refusals` writes (a sink out, then back). */
function refusing(sink: AlertSink, refusals: number): AlertSink & { tries: number } {
  const wrapped = {
    tries: 0,
    write: async (alert: Parameters<AlertSink['write']>[0]) => {
      wrapped.tries++;
      if (wrapped.tries <= refusals) throw new Error(`sink out (try ${wrapped.tries})`);
      await sink.write(alert);
    },
    ...(sink.has && { has: (id: string) => sink.has?.(id) === true }),
    close: () => sink.close(),
  };
  return wrapped;
}

const lines = async (path: string) =>
  (await readFile(path, 'utf8').catch(() => '')).split('\n').filter((l) => l !== '');

t.test(
  'an alert is journaled only once every sink acknowledged it; a refusing sink is retried',
  async (t) => {
    const dir = t.testdir();
    const stats = new DaemonStats();
    const first = await createJsonlAlertSink(join(dir, 'a.jsonl'));
    const second = refusing(await createJsonlAlertSink(join(dir, 'b.jsonl')), 2);
    const delivery = new AlertDelivery({
      sinks: [first, second],
      stats,
      log: silentLogger,
      retry: { delayMs: 1, maxDelayMs: 2 },
    });
    const scan: JournaledScan = { scanId: 'cell', zarrPath: join(dir, 'cell.ome.zarr') };
    const alert = dendriteAlert('cell', 1);
    t.equal(await delivery.emit(scan, [alert]), true, 'acknowledged in the end');
    t.equal(second.tries, 3, 'two refusals, then written');
    t.equal(stats.sinkRetries, 2);
    t.equal(stats.alertsRetrying, 0, 'nothing waits once it went through');
    t.same(await lines(journalPath(scan)), [alert.alertId], 'journaled, once');
    t.equal((await lines(join(dir, 'a.jsonl'))).length, 1, 'the sink that took it at once has it once');
    t.equal((await lines(join(dir, 'b.jsonl'))).length, 1, 'the recovered sink has it once');
    t.equal(await delivery.emit(scan, [alert]), true);
    t.equal(stats.alertsSuppressed, 1, 'an alert the journal holds is not written again');
    t.equal((await lines(join(dir, 'b.jsonl'))).length, 1);
    await first.close();
    await second.close();
  },
);

t.test('stopped while a sink refuses: not journaled, so the next start emits it, once', async (t) => {
  const dir = t.testdir();
  const stats = new DaemonStats();
  const controller = new AbortController();
  const file = join(dir, 'alerts.jsonl');
  const sink = refusing(await createJsonlAlertSink(file), Number.POSITIVE_INFINITY);
  const delivery = new AlertDelivery({
    sinks: [sink],
    stats,
    log: silentLogger,
    signal: controller.signal,
    retry: { delayMs: 60_000 },
  });
  const scan: JournaledScan = { scanId: 'cell', zarrPath: join(dir, 'cell.ome.zarr') };
  const alert = dendriteAlert('cell', 2, 'critical');
  const emitted = delivery.emit(scan, [alert]);
  // The first refusal puts it to wait (60 s): the stop ends the wait, no clock involved.
  while (stats.alertsRetrying === 0) await new Promise((r) => setImmediate(r));
  controller.abort();
  t.equal(await emitted, false, 'not acknowledged');
  t.equal(stats.alertsUnacknowledged, 1);
  t.same(await lines(journalPath(scan)), [], 'not journaled');
  await sink.close();

  // The next start: the sink is back, the journal does not hold the alert, so it goes out.
  const restarted = await createJsonlAlertSink(file);
  const next = new AlertDelivery({ sinks: [restarted], stats: new DaemonStats(), log: silentLogger });
  const again: JournaledScan = { ...scan, journal: await AlertJournal.open(journalPath(scan)) };
  t.equal(await next.emit(again, [alert]), true);
  t.same(
    (await lines(file)).map((l) => JSON.parse(l).alertId),
    [alert.alertId],
    'delivered exactly once over the restart',
  );
  t.same(await lines(journalPath(scan)), [alert.alertId]);
  await restarted.close();
});

t.test(
  'a sink that already holds the alert (a crash before the journal record) is not written again',
  async (t) => {
    const dir = t.testdir();
    const file = join(dir, 'alerts.jsonl');
    const alert = dendriteAlert('cell', 3);
    const before = await createJsonlAlertSink(file);
    await before.write(alert);
    await before.close();
    const sink = await createJsonlAlertSink(file);
    const delivery = new AlertDelivery({ sinks: [sink], stats: new DaemonStats(), log: silentLogger });
    const scan: JournaledScan = { scanId: 'cell', zarrPath: join(dir, 'cell.ome.zarr') };
    t.equal(await delivery.emit(scan, [alert]), true);
    t.equal((await lines(file)).length, 1, 'still one line');
    t.same(await lines(journalPath(scan)), [alert.alertId], 'and now journaled');
    await sink.close();
  },
);
