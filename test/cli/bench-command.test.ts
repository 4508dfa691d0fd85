import t from 'tap';
import { runCli } from './run-cli.ts';

// The benchmark's figures are for people to read, never asserted as speeds here; this checks that
// a small run completes and that the report's numbers hang together.
t.test('bench --json on a small scan reports consistent figures', async (t) => {
  const r = await runCli(['bench', '--size', '128', '--slices', '6', '--json'], { timeoutMs: 240_000 });
  t.equal(r.code, 0, r.stderr);
  const report = JSON.parse(r.stdout.trim().split('\n').at(-1) ?? '{}') as {
    scan: { patchesPerSlice: number };
    endToEnd: { slicesPerSecond: number; patchesPerSecond: number };
    bareOnnxRuntime: { patchesPerSecond: number; medianBatchPatchesPerSecond: number; runs: number };
    ratio: number;
    latencyMs: { p50: number; p99: number; samples: number };
    cpuMsPerSlice: { processMs: number; daemonThreadMs?: number };
    meanBatch: number;
    peakRssMiB: number;
  };
  t.equal(report.scan.patchesPerSlice, 1, 'a 128×128 slice is one patch');
  t.ok(
    report.endToEnd.patchesPerSecond > 0 && report.bareOnnxRuntime.patchesPerSecond > 0,
    'both throughputs measured',
  );
  t.ok(
    report.bareOnnxRuntime.runs >= 5 && report.bareOnnxRuntime.medianBatchPatchesPerSecond > 0,
    'bare: sustained over at least 5 timed batches, and the median batch beside it',
  );
  t.ok(
    Math.abs(report.ratio - report.endToEnd.patchesPerSecond / report.bareOnnxRuntime.patchesPerSecond) <
      1e-9,
    'ratio is end-to-end over bare',
  );
  t.ok(report.latencyMs.samples > 0 && report.latencyMs.p50 <= report.latencyMs.p99, 'latency quantiles');
  t.ok(report.cpuMsPerSlice.processMs > 0, 'process CPU per slice');
  if (process.platform === 'linux')
    t.ok(
      report.cpuMsPerSlice.daemonThreadMs !== undefined &&
        report.cpuMsPerSlice.daemonThreadMs >= 0 &&
        report.cpuMsPerSlice.daemonThreadMs <= report.cpuMsPerSlice.processMs,
      `the daemon thread's share (${report.cpuMsPerSlice.daemonThreadMs} of ${report.cpuMsPerSlice.processMs} ms)`,
    );
  t.ok(report.meanBatch >= 1 && report.peakRssMiB > 0, 'mean batch and peak RSS');
});

t.test('bench --precision fp32,int8: both models in one run, and their ratios', async (t) => {
  const r = await runCli(
    ['bench', '--model', 'unet', '--precision', 'fp32,int8', '--size', '128', '--slices', '4', '--json'],
    { timeoutMs: 300_000 },
  );
  t.equal(r.code, 0, r.stderr);
  const lines = r.stdout
    .trim()
    .split('\n')
    .slice(-3)
    .map((l) => JSON.parse(l));
  const [fp32, int8, compare] = lines as [
    {
      model: { name: string };
      bareOnnxRuntime: { patchesPerSecond: number };
      endToEnd: { patchesPerSecond: number };
    },
    {
      model: { name: string };
      bareOnnxRuntime: { patchesPerSecond: number };
      endToEnd: { patchesPerSecond: number };
    },
    { compare: string[]; bare: number; endToEnd: number },
  ];
  t.same([fp32.model.name, int8.model.name], ['unet', 'unet-int8']);
  t.same(compare.compare, ['unet', 'unet-int8']);
  t.ok(
    Math.abs(compare.bare - int8.bareOnnxRuntime.patchesPerSecond / fp32.bareOnnxRuntime.patchesPerSecond) <
      1e-9,
    'bare ratio is INT8 over FP32',
  );
  t.ok(
    Math.abs(compare.endToEnd - int8.endToEnd.patchesPerSecond / fp32.endToEnd.patchesPerSecond) < 1e-9,
    'end-to-end ratio is INT8 over FP32',
  );
  const bad = await runCli(['bench', '--precision', 'fp32,int4'], { timeoutMs: 60_000 });
  t.not(bad.code, 0);
  t.match(bad.stderr, /--precision/);
});

t.test('bench --soak: RSS every N slices over many scans, and finished scans are let go', async (t) => {
  const r = await runCli(
    [
      'bench',
      '--soak',
      '12',
      '--per-scan',
      '4',
      '--every',
      '4',
      '--size',
      '128',
      '--model',
      'unet',
      '--json',
    ],
    { timeoutMs: 240_000 },
  );
  t.equal(r.code, 0, r.stderr);
  const report = JSON.parse(r.stdout.trim().split('\n').at(-1) ?? '{}') as {
    slices: number;
    samples: { slices: number; scansCompleted: number; scansInMemory: number; rssMiB: number }[];
    rssSpread: number;
    flat: boolean;
    scansInMemoryAtEnd: number;
  };
  t.equal(report.slices, 12);
  t.same(
    report.samples.map((s) => s.slices),
    [4, 8, 12],
    'a sample every 4 slices',
  );
  t.ok(
    report.samples.every((s) => s.scansInMemory <= 3 - s.scansCompleted && s.rssMiB > 0),
    `never more scans held than started and not let go (${report.samples.map((s) => s.scansInMemory).join(', ')})`,
  );
  t.equal(report.scansInMemoryAtEnd, 0, 'every finished scan let go');
  const after = report.samples.slice(1).map((s) => s.rssMiB);
  t.equal(report.rssSpread, Math.max(...after) / Math.min(...after), 'spread from the samples after warm-up');
  t.equal(report.flat, report.rssSpread <= 1.1);
});

t.test('bench --projections --json: reconstruction beside iradon and segmentation, per width', async (t) => {
  const r = await runCli(
    ['bench', '--projections', '--columns', '64,96', '--angles', '90', '--model', 'unet', '--json'],
    { timeoutMs: 240_000 },
  );
  t.equal(r.code, 0, r.stderr);
  const report = JSON.parse(r.stdout.trim().split('\n').at(-1) ?? '{}') as {
    points: {
      columns: number;
      angles: number;
      reconMsPerSlice: number;
      threadedSlicesPerSecond: number;
      threads: number;
      iradonMsPerSlice?: number;
      segmentSlicesPerSecond: number;
      patchesPerSlice: number;
      limit: string;
    }[];
  };
  t.same(
    report.points.map((p) => [p.columns, p.angles]),
    [
      [64, 90],
      [96, 90],
    ],
  );
  for (const p of report.points) {
    t.ok(p.reconMsPerSlice > 0, `${p.columns}: one slice on one thread timed`);
    t.ok(p.threads >= 1 && p.threadedSlicesPerSecond > 0, `${p.columns}: slices/s on ${p.threads} threads`);
    t.ok((p.iradonMsPerSlice ?? 0) > 0, `${p.columns}: scikit-image's iradon timed on the same sinogram`);
    t.equal(p.patchesPerSlice, 1, `${p.columns}: one patch per slice`);
    t.equal(
      p.limit,
      p.threadedSlicesPerSecond < p.segmentSlicesPerSecond ? 'reconstruction' : 'segmentation',
      `${p.columns}: the limit is the slower stage`,
    );
  }

  const bad = await runCli(['bench', '--projections', '--columns', '64,x'], { timeoutMs: 60_000 });
  t.not(bad.code, 0);
  t.match(bad.stderr, /--columns x: expected detector widths/);
});
