import { copyFile, mkdir, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import t from 'tap';
import { ALERT_JOURNAL_FILE } from '../../src/daemon/alert-journal.ts';
import { runLiveScanner } from '../../src/sim/live-scanner.ts';
import { Rng } from '../../src/sim/rng.ts';
import { readZarrScanProgress } from '../../src/sinks/zarr-scan-writer.ts';
import { runCli } from '../cli/run-cli.ts';
import {
  differingFiles,
  folderDaemonArgs,
  readAlertsFile,
  slicesWritten,
  spawnDaemon,
  storeFiles,
} from './restart-fixtures.ts';

const SCAN = { seed: 901_001, size: 128, slices: 32, scanId: 'cell-20' } as const;
const KILLS = 20;

/**
 * Start the daemon; once its store has grown by a slice (or at once, when nothing is left to do),
 * wait `delayMs` more and kill -9 it. The moment is random against the pipeline's work (decoding,
 * inference, writing chunks, journaling) whatever the machine's speed; the outcome must not be.
 */
async function killAfterProgress(args: string[], store: string, delayMs: number) {
  const { child, exited, stderr } = spawnDaemon(args);
  const before = await slicesWritten(store);
  for (;;) {
    if (child.exitCode !== null) return { killed: false, code: child.exitCode, stderr: stderr() };
    if ((await slicesWritten(store)) > before) break;
    await sleep(5);
  }
  await sleep(delayMs);
  if (child.exitCode !== null) return { killed: false, code: child.exitCode, stderr: stderr() };
  child.kill('SIGKILL');
  await exited;
  return { killed: true, code: null, stderr: stderr() };
}

t.test(
  `${KILLS} seeded kill -9 over a live folder scan: the store of an uninterrupted run, no alert twice`,
  async (t) => {
    const root = t.testdir({ full: {}, watch: {}, ref: {}, crashed: {} });
    const full = join(root, 'full');
    await runLiveScanner({ out: full, ...SCAN, rate: 1e6 });
    const scanDir = join(full, SCAN.scanId);
    const ref = await runCli(folderDaemonArgs(full, join(root, 'ref'), join(root, 'ref.jsonl')), {
      timeoutMs: 180_000,
    });
    t.equal(ref.code, 0, ref.stderr);
    const refAlerts = await readAlertsFile(join(root, 'ref.jsonl'));

    // The scanner writes while the daemon is killed and restarted: a few slices at first, one more
    // after each kill (so every run can finish one slice more, and none can finish the scan), the
    // rest and scan.done before the last run.
    const watchDir = join(root, 'watch', SCAN.scanId);
    await mkdir(watchDir);
    const files = (await readdir(scanDir)).filter((f) => f.endsWith('.tif')).sort();
    let copied = 0;
    const copyMore = async (n: number) => {
      const next = files.slice(copied, copied + n);
      await Promise.all(next.map((f) => copyFile(join(scanDir, f), join(watchDir, f))));
      copied += next.length;
      if (copied === files.length) await copyFile(join(scanDir, 'scan.done'), join(watchDir, 'scan.done'));
    };
    await copyFile(join(scanDir, 'scan.json'), join(watchDir, 'scan.json'));
    await copyMore(4);
    const args = folderDaemonArgs(join(root, 'watch'), join(root, 'crashed'), join(root, 'crashed.jsonl'));
    const store = join(root, 'crashed', `${SCAN.scanId}.ome.zarr`);
    const rng = new Rng(20_261_203, 0xdead);
    const moments: number[] = [];
    for (let k = 0; k < KILLS; k++) {
      const delayMs = Math.round(rng.uniform(0, 400));
      const r = await killAfterProgress(args, store, delayMs);
      if (!r.killed) {
        // It finished the scan before the kill: nothing left to interrupt.
        t.equal(r.code, 0, `run ${k + 1} ended by itself, cleanly: ${r.stderr}`);
        break;
      }
      moments.push(delayMs);
      await copyMore(1);
    }
    await copyMore(files.length);
    const last = await runCli(args, { timeoutMs: 180_000 });
    t.equal(last.code, 0, last.stderr);
    t.equal(
      moments.length,
      KILLS,
      `${moments.length} kills mid-scan (${moments.join(', ')} ms after a slice)`,
    );

    const progress = await readZarrScanProgress(store);
    t.equal(progress?.complete, true, 'the store is complete');
    const [a, b] = await Promise.all([
      storeFiles(join(root, 'ref', `${SCAN.scanId}.ome.zarr`), [ALERT_JOURNAL_FILE]),
      storeFiles(store, [ALERT_JOURNAL_FILE]),
    ]);
    t.same([...b.keys()].sort(), [...a.keys()].sort(), 'the same files');
    const differ = differingFiles(a, b);
    t.same(differ, [], 'byte for byte the uninterrupted run’s store');

    const alerts = await readAlertsFile(join(root, 'crashed.jsonl'));
    const ids = alerts.map((x) => x.alertId);
    t.equal(
      new Set(ids).size,
      ids.length,
      `no alert id twice (${ids.length} alerts over ${moments.length + 1} runs)`,
    );
    t.same(
      [...ids].sort(),
      refAlerts.map((x) => x.alertId).sort(),
      'the same alerts as the uninterrupted run',
    );
  },
);
