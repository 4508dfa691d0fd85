import { copyFile, mkdir, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import t from 'tap';
import { runLiveScanner } from '../../src/sim/live-scanner.ts';
import { readZarrScanProgress, readZarrScanSlice } from '../../src/sinks/zarr-scan-writer.ts';
import { runCli } from '../cli/run-cli.ts';
import { folderDaemonArgs, readAlertsFile, slicesWritten, spawnDaemon } from './restart-fixtures.ts';

// The scan the live-pipeline and Kafka tests use: the shipped U-Net raises alerts on it.
const SCAN = { seed: 901_001, size: 128, slices: 32, scanId: 'cell-7' } as const;

/**
 * Start the daemon; send `signal` once the scan's store records at least `afterSlices` finished
 * slices. Resolves to the slices finished at that moment and the exit code.
 */
async function killMidScan(
  args: string[],
  store: string,
  afterSlices: number,
  signal: NodeJS.Signals = 'SIGKILL',
): Promise<{ written: number; code: number | null }> {
  const { child, exited, stderr: err } = spawnDaemon(args);
  const started = Date.now();
  for (;;) {
    const written = await slicesWritten(store);
    if (written >= afterSlices) {
      child.kill(signal);
      return { written, code: await exited };
    }
    if (child.exitCode !== null)
      throw new Error(`the daemon exited (${child.exitCode}) before the kill: ${err()}`);
    if (Date.now() - started > 120_000) {
      child.kill('SIGKILL');
      throw new Error(`no progress to ${afterSlices} slices in 120 s: ${err()}`);
    }
    await sleep(5);
  }
}

t.test(
  'kill -9 and SIGTERM mid-scan, restarts: the same masks as an uninterrupted run, no alert twice',
  async (t) => {
    const root = t.testdir({ full: {}, watch: {}, ref: {}, crashed: {} });
    const full = join(root, 'full');
    await runLiveScanner({ out: full, ...SCAN, rate: 1e6 });
    const scanDir = join(full, SCAN.scanId);

    // The uninterrupted run, on the finished scan.
    const ref = await runCli(folderDaemonArgs(full, join(root, 'ref'), join(root, 'ref.jsonl')), {
      timeoutMs: 120_000,
    });
    t.equal(ref.code, 0, ref.stderr);
    const refAlerts = await readAlertsFile(join(root, 'ref.jsonl'));
    t.ok(refAlerts.filter((a) => a.kind === 'dendrite').length > 0, 'the reference run raises alerts');

    // The crashed run watches a folder the scanner is still writing: half the slices at first.
    const watchDir = join(root, 'watch', SCAN.scanId);
    await mkdir(watchDir);
    const files = (await readdir(scanDir)).filter((f) => f.endsWith('.tif')).sort();
    t.equal(files.length, SCAN.slices);
    const copy = (names: string[]) =>
      Promise.all(names.map((f) => copyFile(join(scanDir, f), join(watchDir, f))));
    await copy(['scan.json', ...files.slice(0, 20)]);
    const args = folderDaemonArgs(join(root, 'watch'), join(root, 'crashed'), join(root, 'crashed.jsonl'));
    const store = join(root, 'crashed', `${SCAN.scanId}.ome.zarr`);

    const { written: first } = await killMidScan(args, store, 4);
    t.ok(first >= 4 && first < 20, `kill -9 after ${first} slices`);
    // While it is down, the scanner writes more, but not all: the second run cannot finish the
    // scan before the SIGTERM however slow the poll below is (its last slice waits for the next).
    const upTo = Math.max(20, first + 12);
    await copy(files.slice(20, upTo));
    const stopped = await killMidScan(args, store, first + 9, 'SIGTERM');
    const second = stopped.written;
    t.ok(second > first && second < upTo, `SIGTERM after ${second} slices`);
    t.equal(stopped.code, 0, 'SIGTERM: finishes what is in flight and exits 0');
    // Then the scanner finishes the scan, and the third run the rest of it.
    await copy([...files.slice(upTo), 'scan.done']);
    const last = await runCli(args, { timeoutMs: 120_000 });
    t.equal(last.code, 0, last.stderr);
    t.match(last.stdout, new RegExp(`scan ${SCAN.scanId}: ${SCAN.slices} slices`));

    const progress = await readZarrScanProgress(store);
    t.equal(progress?.complete, true, 'the store is complete');
    t.equal(progress?.slicesWritten.length, SCAN.slices, 'no slice skipped');
    let differing = 0;
    for (let z = 0; z < SCAN.slices; z++) {
      const [a, b] = await Promise.all([
        readZarrScanSlice(join(root, 'ref', `${SCAN.scanId}.ome.zarr`), z),
        readZarrScanSlice(store, z),
      ]);
      if (
        !Buffer.from(a.mask.buffer).equals(Buffer.from(b.mask.buffer)) ||
        !Buffer.from(a.prob.buffer).equals(Buffer.from(b.prob.buffer)) ||
        !Buffer.from(a.image.buffer).equals(Buffer.from(b.image.buffer))
      )
        differing++;
    }
    t.equal(differing, 0, 'image, mask and probability equal the uninterrupted run, slice for slice');

    const alerts = await readAlertsFile(join(root, 'crashed.jsonl'));
    const ids = alerts.map((a) => a.alertId);
    t.equal(new Set(ids).size, ids.length, `no alert id twice (${ids.length} alerts over three runs)`);
    t.same(
      [...ids].sort(),
      refAlerts.map((a) => a.alertId).sort(),
      'the same alerts as the uninterrupted run, none lost',
    );
    const summary = alerts.find((a) => a.kind === 'scan-summary');
    const refSummary = refAlerts.find((a) => a.kind === 'scan-summary');
    t.same(summary?.summary, refSummary?.summary, 'the same scan summary');
  },
);
