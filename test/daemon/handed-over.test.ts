import { join } from 'node:path';
import { Subject } from 'rxjs';
import t from 'tap';
import { DEFAULT_ALERT_RULES } from '../../src/alerts/alert-rules.ts';
import type { DendriteAlert } from '../../src/alerts/dendrite-alert.ts';
import { ALERT_JOURNAL_FILE } from '../../src/daemon/alert-journal.ts';
import { DaemonStats } from '../../src/daemon/daemon-stats.ts';
import { type CompletedScan, runDaemon } from '../../src/daemon/run-daemon.ts';
import { loadModel, type SegmentationModel } from '../../src/inference/load-model.ts';
import { readZarrScanProgress } from '../../src/sinks/zarr-scan-writer.ts';
import type { SourceEvent } from '../../src/sources/source-event.ts';
import { memoryScan, renderScan } from './memory-scan.ts';
import { differingFiles, storeFiles } from './restart-fixtures.ts';

// A scan the source gives to another daemon (a Kafka rebalance) is let go unfinished: nothing more
// of it is written or alerted, its state goes, and if it comes back it is taken up from its store.
let model: SegmentationModel;
t.before(async () => {
  model = await loadModel('unet', { threads: 2 });
});
t.teardown(() => model.close());

const SIZE = 128;
const SLICES = 6;
const images = renderScan({ seed: 930_011, size: SIZE, slices: SLICES });

/** Run the daemon on `source` until it ends; what it finished and raised. */
function daemonOn(source: Subject<SourceEvent>, out: string) {
  const stats = new DaemonStats();
  const alerts: DendriteAlert[] = [];
  const completed: CompletedScan[] = [];
  const done: number[] = [];
  const run = runDaemon({
    source,
    out,
    model,
    sinks: [{ write: async (a) => void alerts.push(a), close: async () => {} }],
    rules: DEFAULT_ALERT_RULES,
    stats,
    onSliceDone: ({ z }) => done.push(z),
    onScanComplete: (c) => completed.push(c),
  });
  return { stats, alerts, completed, done, run };
}

const until = async (what: () => boolean) => {
  while (!what()) await new Promise((r) => setImmediate(r));
};

t.test(
  'a scan handed over mid-way is let go unfinished, and taken up from its store when it comes back',
  async (t) => {
    const root = t.testdir({ out: {}, ref: {} });
    const source = new Subject<SourceEvent>();
    const d = daemonOn(source, join(root, 'out'));
    const events = memoryScan('cell', images, SIZE);
    const [start, ...rest] = events;
    source.next(start as SourceEvent);
    for (const e of rest.slice(0, 3)) source.next(e); // slices 0, 1, 2
    // Slice 2 waits for slice 3 (the model takes in its neighbours): 0 and 1 go through.
    await until(() => d.done.length === 2);
    source.next({
      type: 'scan-handed-over',
      scanId: 'cell',
      reason: 'partition 1 went to another member of the group',
    });
    await until(() => d.stats.scansHandedOver === 1);
    t.same(d.done, [0, 1], 'the held slice 2 left the pipeline undone');
    t.same(d.completed, [], 'the scan was not completed');
    t.notOk(
      d.alerts.some((a) => a.kind === 'scan-summary'),
      'no summary: the new owner raises it',
    );
    t.equal(d.stats.scansInMemory, 0, 'its state is gone');
    const store = join(root, 'out', 'cell.ome.zarr');
    const progress = await readZarrScanProgress(store);
    t.same(progress?.slicesWritten, [0, 1], 'the store holds what was done before the hand-over');
    t.equal(progress?.complete, false, 'and is not finished');

    // The scan comes back (another rebalance): every slice again, taken up where the store stands.
    for (const e of events) source.next(e);
    await until(() => d.completed.length === 1);
    source.complete();
    await d.run;
    t.equal(d.stats.slicesResumed, 2, 'slices 0 and 1 were not done again');
    t.equal((await readZarrScanProgress(store))?.complete, true, 'the store is finished');

    // The undisturbed run.
    const refSource = new Subject<SourceEvent>();
    const ref = daemonOn(refSource, join(root, 'ref'));
    for (const e of events) refSource.next(e);
    await until(() => ref.completed.length === 1);
    refSource.complete();
    await ref.run;
    const [a, b] = await Promise.all([
      storeFiles(join(root, 'ref', 'cell.ome.zarr'), [ALERT_JOURNAL_FILE]),
      storeFiles(store, [ALERT_JOURNAL_FILE]),
    ]);
    t.same(differingFiles(a, b), [], 'byte for byte the undisturbed run’s store');
    const ids = d.alerts.map((x) => x.alertId);
    t.equal(new Set(ids).size, ids.length, 'no alert twice');
    t.same([...ids].sort(), ref.alerts.map((x) => x.alertId).sort(), 'the undisturbed run’s alerts');
  },
);
