import { join } from 'node:path';
import t from 'tap';
import { DEFAULT_ALERT_RULES } from '../../src/alerts/alert-rules.ts';
import { DaemonStats } from '../../src/daemon/daemon-stats.ts';
import { type CompletedScan, runDaemon } from '../../src/daemon/run-daemon.ts';
import { loadModel } from '../../src/inference/load-model.ts';
import { runLiveScanner } from '../../src/sim/live-scanner.ts';
import { readZarrScanProgress } from '../../src/sinks/zarr-scan-writer.ts';
import { watchFolder } from '../../src/sources/watch-folder.ts';

t.test(
  'on abort the daemon finishes what is in flight, leaves queued slices on disk, and stops',
  async (t) => {
    const root = t.testdir({ watch: {}, out: {} });
    await runLiveScanner({
      out: join(root, 'watch'),
      seed: 12,
      size: 192,
      slices: 40,
      rate: 5000,
      scanId: 'big',
    });
    const model = await loadModel('unet', { threads: 1 });
    t.teardown(() => model.close());
    const controller = new AbortController();
    const stats = new DaemonStats();
    const completed: CompletedScan[] = [];
    const done = runDaemon({
      source: watchFolder(join(root, 'watch'), { stabilityMs: 50 }),
      out: join(root, 'out'),
      model,
      sinks: [],
      rules: DEFAULT_ALERT_RULES,
      maxSlicesInFlight: 2,
      signal: controller.signal,
      stats,
      onSliceDone: () => {
        if (stats.slicesOut === 3) controller.abort();
      },
      onScanComplete: (c) => completed.push(c),
    });
    await done;
    t.ok(stats.slicesOut >= 3 && stats.slicesOut < 40, `${stats.slicesOut} slices finished before stopping`);
    t.equal(stats.slicesFailed, 0, 'skipped slices are not failures');
    t.same(completed, [], 'the scan is not marked complete: a restart carries on');
    const progress = await readZarrScanProgress(join(root, 'out', 'big.ome.zarr'));
    t.equal(progress?.complete, false);
    t.equal(
      progress?.slicesWritten.length,
      stats.slicesOut,
      'every finished slice is durable, and only those',
    );
  },
);
