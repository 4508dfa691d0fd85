import { readdir } from 'node:fs/promises';
import { Subject } from 'rxjs';
import t from 'tap';
import { DEFAULT_ALERT_RULES } from '../../src/alerts/alert-rules.ts';
import type { DendriteAlert } from '../../src/alerts/dendrite-alert.ts';
import { DaemonStats } from '../../src/daemon/daemon-stats.ts';
import { type CompletedScan, runDaemon } from '../../src/daemon/run-daemon.ts';
import { loadModel, type SegmentationModel } from '../../src/inference/load-model.ts';
import type { SourceEvent } from '../../src/sources/source-event.ts';
import { captureLog } from '../kafka/capture-log.ts';
import { memoryScan, renderScan } from './memory-scan.ts';

let model: SegmentationModel;
t.before(async () => {
  model = await loadModel('unet', { threads: 2 });
});
t.teardown(() => model.close());

const SIZE = 128;
const images = renderScan({ seed: 930_001, size: SIZE, slices: 3 });
const scanEvents = (scanId: string, zs?: number[]) => memoryScan(scanId, images, SIZE, zs ? { zs } : {});

t.test(
  'a finished scan is let go; what a source says of it later is ignored, not a second scan',
  async (t) => {
    const source = new Subject<SourceEvent>();
    const stats = new DaemonStats();
    const alerts: DendriteAlert[] = [];
    const completed: CompletedScan[] = [];
    const captured = captureLog('debug');
    const out = t.testdir();
    let wake: () => void = () => {};
    const daemon = runDaemon({
      source,
      out,
      model,
      sinks: [{ write: async (a) => void alerts.push(a), close: async () => {} }],
      rules: DEFAULT_ALERT_RULES,
      stats,
      log: captured.log,
      onScanComplete: (c) => {
        completed.push(c);
        wake();
      },
    });
    const completions = (n: number) =>
      new Promise<void>((resolve) => {
        const check = () => (completed.length >= n ? resolve() : undefined);
        wake = check;
        check();
      });

    for (const id of ['a0', 'a1', 'a2', 'a3']) for (const e of scanEvents(id)) source.next(e);
    await completions(4);
    // onScanComplete comes before the scan's state goes: wait for the daemon to be idle again.
    while (stats.scansInMemory > 0) await new Promise((r) => setImmediate(r));
    t.equal(stats.scansCompleted, 4);
    t.equal(stats.scansInMemory, 0, 'no finished scan is held in memory');
    const summaries = () => alerts.filter((a) => a.kind === 'scan-summary').map((a) => a.scanId);
    t.same(summaries(), ['a0', 'a1', 'a2', 'a3'], 'one summary per scan');

    // The same scan told again (a redelivery, a late slice, a second end), then a new scan.
    for (const e of scanEvents('a1', [1])) source.next(e);
    for (const e of scanEvents('b0')) source.next(e);
    await completions(5);
    source.complete();
    await daemon;

    t.same(
      completed.map((c) => c.scanId),
      ['a0', 'a1', 'a2', 'a3', 'b0'],
      'the finished scan was not started again',
    );
    t.same(summaries(), ['a0', 'a1', 'a2', 'a3', 'b0'], 'and got no second summary');
    t.equal(stats.slicesOut, 15, 'the late slice went nowhere near the model');
    t.ok(
      captured.entries.some(
        (e) => e.level === 40 && /slice 1 arrived after scan a1 ended; ignored/.test(String(e.msg)),
      ),
      'the late slice is warned about',
    );
    t.equal(stats.scansInMemory, 0);
    t.same((await readdir(out)).filter((f) => f.endsWith('.ome.zarr')).sort(), [
      'a0.ome.zarr',
      'a1.ome.zarr',
      'a2.ome.zarr',
      'a3.ome.zarr',
      'b0.ome.zarr',
    ]);
  },
);
