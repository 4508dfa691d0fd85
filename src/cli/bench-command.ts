import { readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm, stat } from 'node:fs/promises';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { DEFAULT_ALERT_RULES } from '../alerts/alert-rules.ts';
import { CONFIG_DEFAULTS } from '../config/pipeline-config.ts';
import { DaemonStats, quantile } from '../daemon/daemon-stats.ts';
import { startMetricsServer } from '../daemon/metrics-server.ts';
import { runDaemon } from '../daemon/run-daemon.ts';
import { UsageError } from '../errors.ts';
import { measureSpeed } from '../eval/evaluate-model.ts';
import {
  describeLayout,
  loadModel,
  PRECISIONS,
  precisionName,
  type SegmentationModel,
} from '../inference/load-model.ts';
import { PROVIDERS, type Provider } from '../inference/open-onnx-session.ts';
import { runLiveScanner } from '../sim/live-scanner.ts';
import { creditedFolder } from '../sources/credited-folder.ts';
import { SliceCredits } from '../sources/slice-credits.ts';
import { watchFolder } from '../sources/watch-folder.ts';
import { LiveView } from '../view/live-view.ts';
import { benchProjections, formatProjections } from './bench-projections.ts';
import { soak } from './bench-soak.ts';
import type { CommandContext } from './command-context.ts';
import {
  choiceOption,
  intOption,
  modelOption,
  parseOptions,
  stringOption,
  type Values,
} from './parse-options.ts';

const SPEC = {
  model: { type: 'string' },
  precision: { type: 'string' },
  size: { type: 'string' },
  slices: { type: 'string' },
  batch: { type: 'string' },
  threads: { type: 'string' },
  sessions: { type: 'string' },
  provider: { type: 'string' },
  json: { type: 'boolean' },
  view: { type: 'boolean' },
  soak: { type: 'string' },
  'per-scan': { type: 'string' },
  every: { type: 'string' },
  projections: { type: 'boolean' },
  columns: { type: 'string' },
  angles: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

export const BENCH_HELP = `Usage: xct-sentinel bench [--model tnet] [--precision fp32|int8|fp32,int8] [--size 512] [--slices 32] [--batch 16] [--threads 0] [--sessions 0] [--provider cpu|cuda|tensorrt|webgpu] [--json]
       xct-sentinel bench --view     how fast the live view renders a 1024×1024 slice, its mask and a side view
       xct-sentinel bench --soak N [--size 256] [--per-scan 100] [--every 1000] [--model tnet] [--json]
                                     N slices through the daemon, scan after scan: RSS every 1000 slices
       xct-sentinel bench --projections [--columns 512,1024] [--angles 720] [--model tnet] [--json]
                                     reconstructed slices/s per detector width, beside scikit-image's
                                     iradon on the same sinogram and the model's segmentation of such slices

Benchmarks the live pipeline on a fixed simulated scan (seed 4242):
  1. throughput: the whole scan already on disk, the daemon as fast as it drains: slices/s, patches/s;
  2. latency: a live scan written at 60% of that throughput; per slice, from the file complete on
     disk (its mtime) to its mask chunks written and its alerts emitted: p50 and p99;
  3. peak RSS of the process so far (the daemon's memory);
  4. bare ONNX Runtime patches/s for the same model, batch, threads and sessions, in the same run
     (sustained over repeated batches, as end to end is; the median batch's speed beside it); the
     same for one session on all the threads, the layout before sessions; and the ratio of end-to-end
     to the faster of the two (goal ≥ 0.9).
`;

/** The folder source's credit window, as `run` gives it with the default maxSlicesInFlight. */
const CREDIT_WINDOW = CONFIG_DEFAULTS.maxSlicesInFlight * 2;

/** `npm run bench`: end-to-end throughput against bare inference, latency and memory. */
export async function benchCommand(args: readonly string[], ctx: CommandContext): Promise<number> {
  const { values } = parseOptions('bench', args, SPEC);
  if (values.help) {
    ctx.stdout.write(BENCH_HELP);
    return 0;
  }
  if (values.view) return benchView(ctx);
  if (values.soak !== undefined) return benchSoak(values, ctx);
  if (values.projections) return benchRecon(values, ctx);
  const o = {
    size: intOption(values, 'size', 512, 128, 4096),
    slices: intOption(values, 'slices', 32, 4, 4096),
    batch: intOption(values, 'batch', 16, 1, 1024),
    threads: intOption(values, 'threads', 0, 0, 1024),
    sessions: intOption(values, 'sessions', 0, 0, 64),
    provider: choiceOption(values, 'provider', PROVIDERS, 'cpu'),
  };
  // --precision fp32,int8: the whole benchmark once per precision, in one run, then their ratios.
  const precisions = String(values.precision ?? 'fp32')
    .split(',')
    .map((p) => choiceOption({ precision: p }, 'precision', PRECISIONS, 'fp32'));
  const base = stringOption(values, 'model') ?? 'tnet';
  const reports: BenchReport[] = [];
  for (const precision of precisions) {
    const { report, text } = await benchPipeline(precisionName(base, precision), o, ctx);
    reports.push(report);
    ctx.stdout.write(values.json ? `${JSON.stringify(report)}\n` : text);
  }
  const [first, second] = reports;
  if (first && second) {
    const bare = second.bareOnnxRuntime.patchesPerSecond / first.bareOnnxRuntime.patchesPerSecond;
    const e2e = second.endToEnd.patchesPerSecond / first.endToEnd.patchesPerSecond;
    ctx.stdout.write(
      values.json
        ? `${JSON.stringify({ compare: [first.model.name, second.model.name], bare, endToEnd: e2e })}\n`
        : `${second.model.name} / ${first.model.name}: bare ${bare.toFixed(2)}×, end to end ${e2e.toFixed(2)}× (this run)\n`,
    );
  }
  return 0;
}

type BenchReport = Awaited<ReturnType<typeof benchPipeline>>['report'];

/** One pass of the pipeline benchmark with model `name`: its report, and as lines to print. */
async function benchPipeline(
  name: string,
  o: { size: number; slices: number; batch: number; threads: number; sessions: number; provider: Provider },
  ctx: CommandContext,
) {
  const { size, slices, batch, threads, sessions, provider } = o;
  const root = await mkdtemp(join(tmpdir(), 'xct-sentinel-bench-'));
  const model = await loadModel(name, { threads, sessions, provider });
  try {
    // 1. Throughput: every slice is on disk before the daemon starts.
    const watch = join(root, 'archive');
    await mkdir(watch);
    await runLiveScanner({ out: watch, seed: 4242, size, slices, rate: 1e6, scanId: 'bench' });
    ctx.progress('throughput run…');
    const stats = new DaemonStats();
    const credits = new SliceCredits();
    let first = Number.NaN;
    let last = Number.NaN;
    const cpuBefore = process.cpuUsage();
    const mainBefore = mainThreadCpuMs();
    await runDaemon({
      source: creditedFolder(watch, { stabilityMs: 50, idleTimeoutMs: 60_000 }, credits, CREDIT_WINDOW),
      credits,
      out: join(root, 'out'),
      model,
      sinks: [],
      rules: DEFAULT_ALERT_RULES,
      inference: { maxBatch: batch },
      maxScans: 1,
      stats,
      onSliceDone: ({ at }) => {
        if (Number.isNaN(first)) first = at;
        last = at;
      },
    });
    // Time from the first slice done to the last, plus one slice's share: excludes start-up.
    const seconds = ((last - first) / 1000) * (slices / Math.max(1, slices - 1));
    const e2eSlices = slices / seconds;
    const e2ePatches = stats.patches / seconds;
    // Where the CPU went: the daemon's own thread against everything else (inference, GC, I/O).
    const cpu = process.cpuUsage(cpuBefore);
    const processMs = (cpu.user + cpu.system) / 1000;
    const mainAfter = mainThreadCpuMs();
    const cpuPerSlice = {
      processMs: processMs / slices,
      daemonThreadMs:
        mainBefore === undefined || mainAfter === undefined ? undefined : (mainAfter - mainBefore) / slices,
    };

    // 3. Latency at a sustainable live rate.
    ctx.progress('latency run…');
    const rate = Math.max(0.02, e2eSlices * 0.6); // 2048² slices on a CPU go at ~0.2/s
    const latencies = await liveLatencies(model, { root, size, slices: Math.min(slices, 24), rate, batch });

    // The daemon's memory: read before the bare figures load sessions of their own.
    const rssMiB = (process.resourceUsage().maxRSS * 1024) / 2 ** 20;

    // 2. Bare ONNX Runtime: the same model file, batch, threads and sessions (each in its own thread,
    // as in the daemon), one batch out per session and nothing else running; then one session on
    // all the threads, on this thread. The ratio is taken against the faster: a layout that merely
    // slows bare inference down cannot raise it.
    ctx.progress('bare onnxruntime…');
    const bareLayout = async (options: Parameters<typeof loadModel>[1]) => {
      const bareModel = await loadModel(name, options);
      const point = await measureSpeed(bareModel, { batches: [batch], minMs: 3000 }).finally(() =>
        bareModel.close(),
      );
      return { sessions: bareModel.sessions, threads: bareModel.threads, point: point[0] };
    };
    // On the provider that really runs (a GPU that could not start is timed as the CPU it fell back to).
    const ran = model.identity.provider;
    const same = await bareLayout({ threads, sessions: model.sessions, provider: ran });
    const single =
      model.sessions > 1 ? await bareLayout({ threads, thread: 'inline', provider: ran }) : undefined;
    // Like for like: end to end is patches over wall time, slow moments included, so bare is too
    // (its median batch's speed is reported beside it).
    const sustained = (b: typeof same | undefined) => b?.point?.sustainedPatchesPerSecond ?? Number.NaN;
    const bare = single !== undefined && sustained(single) > sustained(same) ? single : same;
    const barePatches = sustained(bare);
    const report = {
      machine: `${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}`,
      model: model.identity,
      requestedProvider: provider,
      ...(model.fallbackReason && { fallbackReason: model.fallbackReason }),
      scan: { seed: 4242, size, slices, patchesPerSlice: stats.patches / slices },
      batch,
      threads,
      sessions: { sessions: model.sessions, threadsPerSession: model.threads },
      endToEnd: { slicesPerSecond: e2eSlices, patchesPerSecond: e2ePatches },
      bareOnnxRuntime: {
        layout: describeLayout(bare),
        patchesPerSecond: barePatches,
        medianBatchPatchesPerSecond: bare.point?.patchesPerSecond,
        msPerPatch: bare.point?.msPerPatch,
        runs: bare.point?.runs,
        sameLayoutPatchesPerSecond: sustained(same),
        ...(single && { singleSessionPatchesPerSecond: sustained(single) }),
      },
      ratio: e2ePatches / barePatches,
      ratioToMedianBatch: e2ePatches / (bare.point?.patchesPerSecond ?? Number.NaN),
      latencyMs: {
        rate,
        p50: quantile(latencies, 0.5),
        p99: quantile(latencies, 0.99),
        samples: latencies.length,
      },
      cpuMsPerSlice: cpuPerSlice,
      meanBatch: stats.batchSizes.reduce((a, b) => a + b, 0) / Math.max(1, stats.batchSizes.length),
      peakRssMiB: rssMiB,
    };
    const text =
      [
        `machine        ${report.machine}`,
        `model          ${model.identity.name} ${model.identity.version} (${model.identity.provider}${model.fallbackReason ? `; asked for ${provider}, fallback: ${model.fallbackReason}` : ''}), batch ${batch}, ${describeLayout(model)}`,
        `scan           seed 4242, ${size}×${size}×${slices}, ${report.scan.patchesPerSlice} patches/slice`,
        `end to end     ${e2eSlices.toFixed(2)} slices/s, ${e2ePatches.toFixed(1)} patches/s (mean batch ${report.meanBatch.toFixed(1)})`,
        `bare ORT       ${sustained(same).toFixed(1)} patches/s, ${describeLayout(same)}, over ${same.point?.runs} batches (median batch ${same.point?.patchesPerSecond.toFixed(1)} patches/s)`,
        ...(single
          ? [
              `               ${sustained(single).toFixed(1)} patches/s, ${describeLayout(single)}, over ${single.point?.runs} batches (median batch ${single.point?.patchesPerSecond.toFixed(1)} patches/s)`,
            ]
          : []),
        `ratio          ${report.ratio.toFixed(3)} (end-to-end / bare ${describeLayout(bare)}, the faster; ${report.ratioToMedianBatch.toFixed(3)} against its median batch)`,
        `cpu per slice  ${cpuPerSlice.processMs.toFixed(0)} ms in all${cpuPerSlice.daemonThreadMs === undefined ? '' : `, ${cpuPerSlice.daemonThreadMs.toFixed(0)} ms of it on the daemon's thread (decode, tracking, writing); the rest is inference, GC and I/O threads`}`,
        `latency        p50 ${report.latencyMs.p50.toFixed(0)} ms, p99 ${report.latencyMs.p99.toFixed(0)} ms (live at ${rate.toFixed(2)} slices/s, ${latencies.length} slices; file mtime → mask written + alerts emitted)`,
        `peak RSS       ${rssMiB.toFixed(0)} MiB`,
      ].join('\n') + '\n';
    return { report, text };
  } finally {
    await model.close();
    await rm(root, { recursive: true, force: true });
  }
}

/**
 * A live scan written at `rate` slices/s while the daemon runs: per slice, from its file's mtime to
 * its mask written and alerts emitted (ms).
 */
async function liveLatencies(
  model: SegmentationModel,
  o: { root: string; size: number; slices: number; rate: number; batch: number },
): Promise<number[]> {
  const live = join(o.root, 'live');
  const credits = new SliceCredits();
  await mkdir(live);
  const latencies: number[] = [];
  const pending: Promise<void>[] = [];
  const daemon = runDaemon({
    source: creditedFolder(live, { stabilityMs: 50, idleTimeoutMs: 60_000 }, credits, CREDIT_WINDOW),
    credits,
    out: join(o.root, 'out-live'),
    model,
    sinks: [],
    rules: DEFAULT_ALERT_RULES,
    inference: { maxBatch: o.batch },
    maxScans: 1,
    onSliceDone: ({ path, at }) => {
      if (path) pending.push(stat(path).then((s) => void latencies.push(at - s.mtimeMs)));
    },
  });
  await runLiveScanner({
    out: live,
    seed: 4243,
    size: o.size,
    slices: o.slices,
    rate: o.rate,
    scanId: 'live',
  });
  await daemon;
  await Promise.all(pending);
  return latencies;
}

/** `bench --projections`: reconstruction against iradon and against segmentation. */
async function benchRecon(values: Values, ctx: CommandContext): Promise<number> {
  const columns = (stringOption(values, 'columns') ?? '512,1024').split(',').map((c) => {
    const n = Number(c);
    if (!(Number.isInteger(n) && n >= 16 && n <= 8192))
      throw new UsageError(`--columns ${c}: expected detector widths from 16 to 8192, e.g. 512,1024`, {
        option: '--columns',
      });
    return n;
  });
  const angles = intOption(values, 'angles', 720, 2, 100_000);
  const batch = intOption(values, 'batch', 16, 1, 1024);
  const model = await loadModel(modelOption(values, 'tnet'), {});
  try {
    const points = await benchProjections(model, { columns, angles, batch, progress: ctx.progress });
    const name = `${model.identity.name} ${model.identity.version}`;
    ctx.stdout.write(
      values.json
        ? `${JSON.stringify({ machine: `${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}`, model: model.identity, points })}\n`
        : `machine        ${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}\n${formatProjections(points, name)}`,
    );
    return 0;
  } finally {
    await model.close();
  }
}

/** `bench --soak N`: does the daemon's memory stay flat over many slices and scans? */
async function benchSoak(values: Values, ctx: CommandContext): Promise<number> {
  const slices = intOption(values, 'soak', 10_000, 1, 100_000_000);
  const size = intOption(values, 'size', 256, 128, 4096);
  const perScan = intOption(values, 'per-scan', 100, 2, 100_000);
  const every = intOption(values, 'every', 1000, 1, 100_000_000);
  const batch = intOption(values, 'batch', 16, 1, 1024);
  const model = await loadModel(modelOption(values, 'tnet'), {
    threads: intOption(values, 'threads', 0, 0, 1024),
    sessions: intOption(values, 'sessions', 0, 0, 64),
  });
  try {
    const report = await soak({
      model,
      slices,
      size,
      perScan,
      every,
      batch,
      signal: ctx.signal,
      progress: (line) => ctx.progress(line),
    });
    if (values.json) {
      ctx.stdout.write(`${JSON.stringify({ model: model.identity, ...report })}\n`);
    } else {
      const rows = report.samples.map(
        (s) =>
          `| ${s.slices} | ${s.scansCompleted} | ${s.scansInMemory} | ${s.rssMiB.toFixed(0)} | ${s.heapUsedMiB.toFixed(0)} | ${s.externalMiB.toFixed(0)} |`,
      );
      ctx.stdout.write(
        [
          `soak: ${report.slices} slices of ${size}×${size}, ${perScan} a scan, ${model.identity.name} ${model.identity.version}, ${report.seconds.toFixed(0)} s`,
          '',
          '| slices | scans done | scans held | RSS MiB | heap MiB | external MiB |',
          '|---|---|---|---|---|---|',
          ...rows,
          '',
          Number.isNaN(report.rssSpread)
            ? `RSS after warm-up: too few samples (one every ${every} slices) to say`
            : `RSS after warm-up (from the second sample): largest / smallest = ${report.rssSpread.toFixed(3)}, ${report.flat ? 'flat (within 10%)' : 'NOT flat (more than 10%)'}`,
          `scans held at the end: ${report.scansInMemoryAtEnd} (finished scans are let go)`,
        ].join('\n') + '\n',
      );
    }
    // A figure for people to read, like the rest of the benchmark: the verdict is printed, not the exit status.
    return 0;
  } finally {
    await model.close();
  }
}

/**
 * CPU time of the process's main thread in ms, from /proc (Linux); undefined elsewhere. Node reports
 * only whole-process CPU, which here includes ONNX Runtime's threads.
 */
function mainThreadCpuMs(): number | undefined {
  try {
    const stat = readFileSync(`/proc/self/task/${process.pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // utime and stime (fields 14 and 15 of stat(5)) in clock ticks, 100 per second on Linux.
    return (Number(fields[11]) + Number(fields[12])) * 10;
  } catch {
    return undefined;
  }
}

/** `bench --view`: server-side PNG rendering of the live view on a 1024×1024 scan, as a browser asks for it. */
async function benchView(ctx: CommandContext): Promise<number> {
  const root = await mkdtemp(join(tmpdir(), 'xct-sentinel-bench-view-'));
  const model = await loadModel('unet');
  const view = new LiveView(join(root, 'out'));
  const server = await startMetricsServer({
    stats: new DaemonStats(),
    port: 0,
    ready: () => true,
    routes: (req, res) => view.handle(req, res),
  });
  try {
    const watch = join(root, 'scan');
    await mkdir(watch);
    await runLiveScanner({ out: watch, seed: 4244, size: 1024, slices: 4, rate: 1e6, scanId: 'big' });
    await runDaemon({
      source: watchFolder(watch, { stabilityMs: 50 }),
      out: join(root, 'out'),
      model,
      sinks: [view],
      rules: DEFAULT_ALERT_RULES,
      maxScans: 1,
      onSliceWritten: (slice, meta) => view.sliceDone(slice, meta.expectedSlices),
    });
    const time = async (path: string) => {
      const ms: number[] = [];
      let bytes = 0;
      for (let i = 0; i < 15; i++) {
        const t0 = performance.now();
        const res = await fetch(`${server.url}${path}`);
        bytes = (await res.arrayBuffer()).byteLength;
        ms.push(performance.now() - t0);
      }
      return `p50 ${quantile(ms, 0.5).toFixed(1)} ms, ${(bytes / 1024).toFixed(0)} KiB`;
    };
    ctx.stdout.write(
      [
        `live view, 1024×1024 slice, server-side PNG (read from the Zarr store, encoded, fetched over loopback):`,
        `  slice image   ${await time('/api/scans/big/slice/2.png')}`,
        `  mask overlay  ${await time('/api/scans/big/mask/2.png')}`,
        `  x–z side view ${await time('/api/scans/big/mip/xz.png')}`,
      ].join('\n') + '\n',
    );
    return 0;
  } finally {
    await server.close();
    await view.close();
    await model.close();
    await rm(root, { recursive: true, force: true });
  }
}
