import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Subject } from 'rxjs';
import t from 'tap';
import { DEFAULT_ALERT_RULES } from '../../src/alerts/alert-rules.ts';
import { DaemonStats } from '../../src/daemon/daemon-stats.ts';
import { runDaemon } from '../../src/daemon/run-daemon.ts';
import { loadModel } from '../../src/inference/load-model.ts';
import { runLiveScanner, sliceFileName } from '../../src/sim/live-scanner.ts';
import type { SourceEvent } from '../../src/sources/source-event.ts';

// A writer can pause longer than the watcher's stability window, so a slice may be handed over
// before it is complete. The daemon must read it again rather than lose it.
t.test('a slice handed over half-written is read again once complete, not lost', async (t) => {
  const root = t.testdir({ scan: {}, out: {} });
  const made = await runLiveScanner({
    out: join(root, 'made'),
    seed: 5,
    size: 64,
    slices: 2,
    rate: 1000,
    scanId: 'x',
  });
  const full = await readFile(join(made.scanDir, sliceFileName(0)));
  const path = join(root, 'scan', sliceFileName(0));
  await writeFile(path, full.subarray(0, Math.floor(full.length / 3)));

  const model = await loadModel('unet', { threads: 1 });
  t.teardown(() => model.close());
  const source = new Subject<SourceEvent>();
  const stats = new DaemonStats();
  const done = runDaemon({
    source,
    out: join(root, 'out'),
    model,
    sinks: [],
    rules: DEFAULT_ALERT_RULES,
    stats,
    decodeRetry: { attempts: 5, delayMs: 100 },
  });
  source.next({ type: 'scan-start', scanId: 'scan', meta: { expectedSlices: 1 } });
  source.next({ type: 'slice', scanId: 'scan', z: 0, path, readyAt: Date.now() });
  // The writer finishes 250 ms later: after the first reads failed as truncated.
  setTimeout(() => void writeFile(path, full), 250);
  await new Promise((r) => setTimeout(r, 1500));
  source.next({ type: 'scan-end', scanId: 'scan', reason: 'done-marker', slices: 1, missing: [] });
  source.complete();
  await done;
  t.equal(stats.slicesFailed, 0, 'no slice given up');
  t.equal(stats.slicesOut, 1, 'the slice was processed once complete');
});

t.test('a slice that never completes is reported after the retries, and the daemon goes on', async (t) => {
  const root = t.testdir({ scan: { [sliceFileName(0)]: 'II*\0' } });
  const model = await loadModel('unet', { threads: 1 });
  t.teardown(() => model.close());
  const source = new Subject<SourceEvent>();
  const stats = new DaemonStats();
  const done = runDaemon({
    source,
    out: join(root, 'out'),
    model,
    sinks: [],
    rules: DEFAULT_ALERT_RULES,
    stats,
    decodeRetry: { attempts: 3, delayMs: 20 },
  });
  source.next({
    type: 'slice',
    scanId: 'scan',
    z: 0,
    path: join(root, 'scan', sliceFileName(0)),
    readyAt: Date.now(),
  });
  source.complete();
  await done;
  t.equal(stats.slicesFailed, 1);
  t.equal(stats.errorsByStage.get('decode'), 1);
});
