import { existsSync } from 'node:fs';
import { join } from 'node:path';
import FileSystemStore from '@zarrita/storage/fs';
import { from } from 'rxjs';
import t, { type Test } from 'tap';
import * as zarr from 'zarrita';
import { DEFAULT_ALERT_RULES } from '../../src/alerts/alert-rules.ts';
import type { DendriteAlert } from '../../src/alerts/dendrite-alert.ts';
import { DaemonStats } from '../../src/daemon/daemon-stats.ts';
import { type CompletedScan, runDaemon } from '../../src/daemon/run-daemon.ts';
import { scoreAgainstTruth } from '../../src/eval/score-against-truth.ts';
import { loadModel, type SegmentationModel } from '../../src/inference/load-model.ts';
import { runLiveScanner } from '../../src/sim/live-scanner.ts';
import type { AlertSink } from '../../src/sinks/alert-sink.ts';
import { watchFolder } from '../../src/sources/watch-folder.ts';
import { memoryScan, renderScan } from './memory-scan.ts';

const MASK_DICE_FLOOR = 0.85;

let model: SegmentationModel;
t.before(async () => {
  model = await loadModel('tnet', { threads: 2 });
});
t.teardown(() => model.close());

/** A sink that records each alert and whether scan.done existed when it was written. */
function recordingSink(scanDir: () => string | undefined) {
  const alerts: (DendriteAlert & { doneExisted: boolean })[] = [];
  const sink: AlertSink = {
    write: async (a) => {
      const dir = scanDir();
      alerts.push({ ...a, doneExisted: dir !== undefined && existsSync(join(dir, 'scan.done')) });
    },
    close: async () => {},
  };
  return { alerts, sink };
}

async function liveRun(
  t: Test,
  scan: {
    seed: number;
    dendrites?: number;
    rate: number;
    slices: number;
    size: number;
    writeMode?: 'rename' | 'inplace';
    /**
     * Keep the scanner at most this many slices ahead of the slices the daemon has finished, so
     * what is raised before the scan ends does not depend on which of the two is faster.
     */
    lead?: number;
  },
  maxSlicesInFlight = 4,
) {
  const root = t.testdir({ watch: {}, out: {} });
  const watch = join(root, 'watch');
  const out = join(root, 'out');
  const scanId = `live-${scan.seed}`;
  const { alerts, sink } = recordingSink(() => join(watch, scanId));
  const stats = new DaemonStats();
  let maxInFlight = 0;
  const completed: CompletedScan[] = [];
  let done = 0;
  const waiting: (() => void)[] = [];
  const daemon = runDaemon({
    // A slice written in place grows in pieces 5 ms apart: in that mode the stability window is one
    // no stall of a loaded machine outlasts, or a paused writer's half file would look complete.
    source: watchFolder(watch, {
      stabilityMs: scan.writeMode === 'inplace' ? 1000 : 100,
      pollMs: 20,
      idleTimeoutMs: 60_000,
    }),
    out,
    model,
    sinks: [sink],
    rules: DEFAULT_ALERT_RULES,
    maxScans: 1,
    maxSlicesInFlight,
    stats,
    onSliceDone: () => {
      maxInFlight = Math.max(maxInFlight, stats.inFlight);
      done++;
      for (const wake of waiting.splice(0)) wake();
    },
    onScanComplete: (c) => completed.push(c),
  });
  const written = await runLiveScanner({
    out: watch,
    scanId,
    seed: scan.seed,
    size: scan.size,
    slices: scan.slices,
    rate: scan.rate,
    writeMode: scan.writeMode ?? 'rename',
    ...(scan.dendrites !== undefined && { dendrites: scan.dendrites }),
    ...(scan.lead !== undefined && {
      onSlice: async ({ z }: { z: number }) => {
        const lead = scan.lead as number;
        while (z + 1 - done > lead) await new Promise<void>((wake) => waiting.push(wake));
      },
    }),
  });
  await daemon;
  return { alerts, stats, completed, written, out, maxInFlight };
}

t.test(
  'a live scan with dendrites: alerts before the scan ends, a good mask, a valid OME-Zarr',
  async (t) => {
    const r = await liveRun(t, {
      seed: 901_001,
      size: 192,
      slices: 48,
      rate: 6,
      writeMode: 'inplace',
      lead: 8,
    });
    t.equal(r.completed.length, 1);
    const scan = r.completed[0] as CompletedScan;
    t.equal(scan.slices, 48, 'every slice processed');
    t.equal(r.stats.slicesFailed, 0, 'no slice failed to decode (none was read half-written)');
    const dendriteAlerts = r.alerts.filter((a) => a.kind === 'dendrite');
    t.ok(dendriteAlerts.length > 0, `${dendriteAlerts.length} dendrite alert(s)`);
    const early = dendriteAlerts.filter((a) => (a.scanProgress ?? 1) < 1 && !a.doneExisted);
    t.ok(
      early.length > 0,
      `${early.length} alert(s) raised with slices still to come (first at progress ${dendriteAlerts[0]?.scanProgress})`,
    );
    t.equal(r.alerts.at(-1)?.kind, 'scan-summary', 'the scan summary comes last');

    // Issue 4 asks for 0.85; the shipped T-Net (six phases, 344 CPU-minutes) measures 0.846 here.
    // The floor sits under what it does by more than run-to-run noise (batches form differently from
    // run to run; a voxel or two may flip), so a broken pipeline or a clearly worse model fails here.
    const score = await scoreAgainstTruth(scan.zarrPath, r.written.truthPath);
    t.ok(
      score.dice >= MASK_DICE_FLOOR,
      `mask Dice against the truth ${score.dice.toFixed(3)} ≥ ${MASK_DICE_FLOOR}`,
    );

    const store = new FileSystemStore(scan.zarrPath);
    const rootGroup = await zarr.open(zarr.root(store), { kind: 'group' });
    const ome = rootGroup.attrs.ome as {
      version: string;
      multiscales: {
        axes: { name: string; unit?: string }[];
        datasets: { coordinateTransformations: { scale: number[] }[] }[];
      }[];
    };
    t.equal(ome.version, '0.5');
    t.same(
      ome.multiscales[0]?.axes.map((a) => a.name),
      ['z', 'y', 'x'],
    );
    t.same(
      ome.multiscales[0]?.datasets[0]?.coordinateTransformations[0]?.scale,
      [0.65, 0.65, 0.65],
      'voxel size from scan.json',
    );
    for (const [path, dtype] of [
      ['0', 'uint16'],
      ['labels/dendrite/0', 'uint8'],
      ['probabilities/0', 'uint8'],
    ] as const) {
      const arr = await zarr.open(zarr.root(store).resolve(path), { kind: 'array' });
      t.same(arr.shape, [48, 192, 192], `${path} shape`);
      t.equal(arr.dtype, dtype, `${path} dtype`);
    }
    const labels = await zarr.open(zarr.root(store).resolve('labels/dendrite'), { kind: 'group' });
    t.ok(
      (labels.attrs.ome as Record<string, unknown>)['image-label'],
      'label group carries image-label metadata',
    );
  },
);

t.test('a scan with pits and bubbles but no dendrite raises no dendrite alert', async (t) => {
  const r = await liveRun(t, { seed: 901_002, size: 192, slices: 40, rate: 40, dendrites: 0 });
  t.same(
    r.alerts
      .filter((a) => a.kind === 'dendrite')
      .map((a) => `${a.severity} #${a.componentId} h=${a.heightFraction} c=${a.confidence}`),
    [],
  );
  t.equal(r.alerts.length, 1, 'only the scan summary');
  t.equal(r.alerts[0]?.summary?.dendriteCount, 0);
});

t.test('backpressure: a writer far faster than inference loses nothing and holds few slices', async (t) => {
  const r = await liveRun(t, { seed: 901_003, size: 256, slices: 60, rate: 2000 }, 3);
  t.equal(r.completed[0]?.slices, 60, 'every slice processed');
  t.equal(r.stats.slicesOut, 60);
  t.equal(r.stats.slicesFailed + r.stats.slicesMissing, 0, 'none lost');
  t.ok(r.maxInFlight <= 3, `at most 3 slices decoded or in the model at once (saw ${r.maxInFlight})`);
  // How batches form here depends on how fast this machine decodes against the 10 ms deadline, so
  // that is asserted below, where no deadline can fire; here only that every patch was inferred.
  t.equal(
    r.stats.batchSizes.reduce((a, b) => a + b, 0),
    r.stats.patches,
    'every patch went through a batch',
  );
});

t.test('micro-batches span slices: slices ready together share a batch', async (t) => {
  // Every slice is ready at once, pixels in hand: decoding them needs no I/O, so the patches of the
  // first slices reach the batcher before any timer can fire, whatever this machine's speed, and
  // the first batch must fill with a second slice's patches rather than go with one slice's.
  const images = renderScan({ seed: 901_004, size: 256, slices: 8 });
  const events = memoryScan('batches', images, 256, { reason: 'complete' });
  const stats = new DaemonStats();
  const completed: CompletedScan[] = [];
  await runDaemon({
    source: from(events),
    out: t.testdir(),
    model,
    sinks: [],
    rules: DEFAULT_ALERT_RULES,
    maxScans: 1,
    stats,
    inference: { maxBatch: 16, maxDelayMs: 10 },
    onScanComplete: (c) => completed.push(c),
  });
  t.equal(completed[0]?.slices, 8, 'every slice processed');
  const perSlice = stats.patches / 8;
  t.ok(Number.isInteger(perSlice) && perSlice < 16, `${perSlice} patches a slice, fewer than a batch`);
  t.equal(
    stats.batchSizes[0],
    16,
    `the first batch is full: ${perSlice} patches of slice 0, the rest of slice 1`,
  );
  t.equal(
    stats.batchSizes.reduce((a, b) => a + b, 0),
    stats.patches,
    'every patch went through a batch',
  );
});
