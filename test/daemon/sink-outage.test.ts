/**
 * A sink that refuses alerts (a Kafka leader down, a full disk): the alert is written again until it
 * is acknowledged, the scan waits, the daemon says so (counter, /readyz), and no alert is journaled
 * before every sink has it. Stopped during the outage, the daemon leaves the alert out of the journal
 * and the next start emits it: nothing is lost, nothing is sent twice to a sink that acknowledged it.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import t from 'tap';
import { DEFAULT_ALERT_RULES } from '../../src/alerts/alert-rules.ts';
import type { DendriteAlert } from '../../src/alerts/dendrite-alert.ts';
import { ALERT_JOURNAL_FILE } from '../../src/daemon/alert-journal.ts';
import { DaemonStats } from '../../src/daemon/daemon-stats.ts';
import { startMetricsServer } from '../../src/daemon/metrics-server.ts';
import { runDaemon } from '../../src/daemon/run-daemon.ts';
import { loadModel, type SegmentationModel } from '../../src/inference/load-model.ts';
import { runLiveScanner } from '../../src/sim/live-scanner.ts';
import type { AlertSink } from '../../src/sinks/alert-sink.ts';
import { createJsonlAlertSink } from '../../src/sinks/jsonl-alert-sink.ts';
import { watchFolder } from '../../src/sources/watch-folder.ts';
import { captureLog } from '../kafka/capture-log.ts';

const SCAN = { seed: 910_003, size: 128, slices: 24, rate: 1e6, scanId: 'cell' } as const;

let model: SegmentationModel;
t.before(async () => {
  model = await loadModel('unet', { threads: 2 });
});
t.teardown(() => model.close());

const readIds = async (path: string): Promise<string[]> =>
  (await readFile(path, 'utf8').catch(() => ''))
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => (JSON.parse(l) as DendriteAlert).alertId);
const journalIds = async (out: string): Promise<string[]> =>
  (await readFile(join(out, `${SCAN.scanId}.ome.zarr`, ALERT_JOURNAL_FILE), 'utf8').catch(() => ''))
    .split('\n')
    .filter((l) => l.trim() !== '');

/** A real JSON-lines sink behind a switch: while `down`, each write is refused as a broker would. */
function outage(real: AlertSink, refused: (n: number) => void) {
  const state = { down: true, refusals: 0 };
  const sink: AlertSink = {
    write: async (alert) => {
      if (state.down) {
        state.refusals++;
        refused(state.refusals);
        throw new Error('the alert topic has no leader (broker down)');
      }
      await real.write(alert);
    },
    close: () => real.close(),
  };
  return { sink, state };
}

async function runOnce(
  watch: string,
  out: string,
  sinks: AlertSink[],
  extra: { signal?: AbortSignal; stats?: DaemonStats; onSliceDone?: (s: { z: number }) => void } = {},
) {
  return runDaemon({
    source: watchFolder(watch, { stabilityMs: 50, pollMs: 20 }),
    out,
    model,
    sinks,
    rules: DEFAULT_ALERT_RULES,
    maxScans: 1,
    sinkRetry: { delayMs: 20, maxDelayMs: 80 },
    log: captureLog('warn').log,
    ...extra,
  });
}

/** The scan on disk, and the alert ids an undisturbed run emits for it, in order. */
async function reference(root: string) {
  const watch = join(root, 'watch');
  await runLiveScanner({ ...SCAN, out: watch });
  const refSink = await createJsonlAlertSink(join(root, 'ref.jsonl'));
  await runOnce(watch, join(root, 'ref'), [refSink]);
  await refSink.close();
  return { watch, expected: await readIds(join(root, 'ref.jsonl')) };
}

t.test('an outage mid-scan: alerts wait and go out once, in order, when the sink is back', async (t) => {
  const root = t.testdir({ watch: {}, ref: {}, out: {} });
  const { watch, expected } = await reference(root);
  t.ok(expected.length >= 2, `the scan raises alerts (${expected.length}), so the test means something`);

  const stats = new DaemonStats();
  const server = await startMetricsServer({ stats, port: 0, ready: () => true });
  t.teardown(() => server.close());
  const seen: { status: number; body: string; metrics: string }[] = [];
  const { sink, state } = outage(await createJsonlAlertSink(join(root, 'out.jsonl')), (n) => {
    // The third refusal: look at what an operator sees, then bring the sink back.
    if (n !== 3) return;
    void (async () => {
      const ready = await fetch(`${server.url}/readyz`);
      const metrics = await (await fetch(`${server.url}/metrics`)).text();
      seen.push({ status: ready.status, body: await ready.text(), metrics });
      state.down = false;
    })();
  });
  const journalWhileDown: string[][] = [];
  const watcher = setInterval(() => {
    if (state.down) void journalIds(join(root, 'out')).then((ids) => journalWhileDown.push(ids));
  }, 5);
  await runOnce(watch, join(root, 'out'), [sink], { stats });
  clearInterval(watcher);
  await sink.close();

  t.same(await readIds(join(root, 'out.jsonl')), expected, 'every alert once, in the undisturbed order');
  t.same(await journalIds(join(root, 'out')), expected, 'journaled once acknowledged');
  t.ok(
    journalWhileDown.every((ids) => ids.length === 0),
    'nothing journaled while the first alert was refused',
  );
  t.ok(stats.sinkRetries >= 3, `retried (${stats.sinkRetries})`);
  t.equal(stats.alertsRetrying, 0, 'none waiting at the end');
  t.equal(seen[0]?.status, 503, '/readyz during the outage');
  t.match(seen[0]?.body, /not ready: 1 alert\(s\) waiting for a sink/);
  t.match(seen[0]?.metrics, /^xct_alerts_retrying 1$/m);
  t.match(seen[0]?.metrics, /^xct_sink_retries_total [1-9]/m);
  t.equal((await fetch(`${server.url}/readyz`)).status, 200, 'ready again afterwards');
});

t.test('stopped while a sink refuses: the alert is not journaled, the next start emits it', async (t) => {
  const root = t.testdir({ watch: {}, ref: {}, out: {} });
  const { watch, expected } = await reference(root);

  // Two sinks: one that works throughout, one that is down until the daemon is stopped.
  const stop = new AbortController();
  const good1 = await createJsonlAlertSink(join(root, 'good-1.jsonl'));
  const { sink: down } = outage(await createJsonlAlertSink(join(root, 'down.jsonl')), (n) => {
    if (n === 2) stop.abort();
  });
  const stats = new DaemonStats();
  const done: number[] = [];
  await runOnce(watch, join(root, 'out'), [good1, down], {
    signal: stop.signal,
    stats,
    onSliceDone: (s) => done.push(s.z),
  });
  await good1.close();
  await down.close();
  // The slices in flight when the signal came still finish: their alerts reach the working sink and
  // are refused by the other, one try each.
  const first = await readIds(join(root, 'good-1.jsonl'));
  t.ok(first.length >= 1, `the working sink got ${first.length}`);
  t.same(first, expected.slice(0, first.length), 'in the undisturbed order');
  t.equal(stats.alertsUnacknowledged, first.length, 'each one the other sink refused is counted');
  t.same(await journalIds(join(root, 'out')), [], 'and none journaled');
  t.ok(
    done.length < stats.slicesOut,
    `slices with a refused alert are not done (${done.length} of ${stats.slicesOut}): a Kafka source would not commit them`,
  );

  // The next start, every sink working: the alert the journal lacks goes out, then the rest.
  const good2 = await createJsonlAlertSink(join(root, 'good-2.jsonl'));
  await runOnce(watch, join(root, 'out'), [good2]);
  await good2.close();
  t.same(await readIds(join(root, 'good-2.jsonl')), expected, 'every alert, the unacknowledged one included');
  t.same(await journalIds(join(root, 'out')), expected);
});
