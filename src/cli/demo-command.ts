import { mkdir, mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DEFAULT_ALERT_RULES } from '../alerts/alert-rules.ts';
import { CONFIG_DEFAULTS } from '../config/pipeline-config.ts';
import { DaemonStats, quantile } from '../daemon/daemon-stats.ts';
import { startMetricsServer } from '../daemon/metrics-server.ts';
import { type CompletedScan, runDaemon } from '../daemon/run-daemon.ts';
import { scoreAgainstTruth } from '../eval/score-against-truth.ts';
import { loadModel } from '../inference/load-model.ts';
import { createLogger } from '../log.ts';
import { runLiveScanner } from '../sim/live-scanner.ts';
import { formatAlert } from '../sinks/format-alert.ts';
import { createJsonlAlertSink, streamSink } from '../sinks/jsonl-alert-sink.ts';
import { creditedFolder } from '../sources/credited-folder.ts';
import { SliceCredits } from '../sources/slice-credits.ts';
import { LiveView } from '../view/live-view.ts';
import type { CommandContext } from './command-context.ts';
import { intOption, parseOptions, positiveOption, stringOption } from './parse-options.ts';

const SPEC = {
  model: { type: 'string' },
  seed: { type: 'string' },
  slices: { type: 'string' },
  rate: { type: 'string' },
  'view-port': { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

export const DEMO_HELP = `Usage: xct-sentinel demo [--model tnet|unet|enet] [--seed N] [--slices N] [--rate SLICES_PER_S] [--view-port N]

What \`npm start\` runs: a simulated scanner writes a live scan of a Li|polymer|Li cell into a
temporary folder, the daemon watches that folder, alerts appear as the dendrites are found (before
the scan ends), and at the end it prints where the OME-Zarr masks are and how they compare with the
simulator's ground truth. Needs no Kafka or any other server.
`;

/** `npm start`: simulator + daemon in one process, on embedded defaults. */
export async function demoCommand(args: readonly string[], ctx: CommandContext): Promise<number> {
  const { values } = parseOptions('demo', args, SPEC);
  if (values.help) {
    ctx.stdout.write(DEMO_HELP);
    return 0;
  }
  const seed = intOption(values, 'seed', 7, 0, 2 ** 48);
  const slices = intOption(values, 'slices', 96, 8, 4096);
  const rate = positiveOption(values, 'rate', 4);
  const root = await mkdtemp(join(tmpdir(), 'xct-sentinel-demo-'));
  const watch = join(root, 'scanner');
  const out = join(root, 'masks');
  await mkdir(watch);
  await mkdir(out);
  const log = createLogger({ level: process.env.XCT_LOG_LEVEL ?? 'warn' });
  const model = await loadModel(stringOption(values, 'model') ?? 'tnet', { log });
  const alertsFile = join(root, 'alerts.jsonl');
  // The live view, on loopback (--view-port, default any free port).
  const view = new LiveView(out);
  const stats = new DaemonStats();
  const server = await startMetricsServer({
    stats,
    port: intOption(values, 'view-port', 0, 0, 65535),
    ready: () => true,
    routes: (req, res) => view.handle(req, res),
  });
  const sinks = [
    view,
    streamSink(ctx.stdout, (a) => formatAlert(a, process.stdout.isTTY === true)),
    await createJsonlAlertSink(alertsFile),
  ];
  ctx.stdout.write(
    `xct-sentinel demo: a simulated scanner writes ${slices} slices at ${rate}/s into ${watch};\n` +
      `the daemon (model ${model.identity.name} ${model.identity.version}, ${model.identity.provider}) watches it and raises alerts as it goes.\n` +
      `live view: ${server.url}/  (metrics: ${server.url}/metrics)\n\n`,
  );
  const controller = new AbortController();
  const stop = () => controller.abort();
  ctx.signal.addEventListener('abort', stop, { once: true });
  try {
    let completed: CompletedScan | undefined;
    const credits = new SliceCredits();
    const daemon = runDaemon({
      source: creditedFolder(
        watch,
        { idleTimeoutMs: 30_000, stabilityMs: 150, missingSliceTimeoutMs: 5_000 },
        credits,
        CONFIG_DEFAULTS.maxSlicesInFlight * 2,
      ),
      credits,
      out,
      model,
      sinks,
      rules: DEFAULT_ALERT_RULES,
      maxScans: 1,
      signal: controller.signal,
      log,
      stats,
      onSliceWritten: (slice, meta) => view.sliceDone(slice, meta.expectedSlices),
      onScanComplete: (scan) => {
        completed = scan;
      },
    });
    const scanner = runLiveScanner({
      out: watch,
      seed,
      size: 256,
      slices,
      rate,
      signal: controller.signal,
      scanId: `demo-${seed}`,
      onSlice: ({ z }) => ctx.progress(`scanner: slice ${z + 1}/${slices} written`),
    });
    const [scan] = await Promise.all([scanner, daemon]);
    ctx.stdout.write('\n');
    if (!completed) {
      ctx.stdout.write('stopped before the scan completed\n');
      return 130;
    }
    const score = await scoreAgainstTruth(completed.zarrPath, scan.truthPath);
    ctx.stdout.write(
      [
        `scan ${completed.scanId}: ${completed.slices} slices processed, ${stats.alerts.info + stats.alerts.warning + stats.alerts.critical} dendrite alert(s)`,
        `  masks:        ${completed.zarrPath}  (labels/dendrite/0, probabilities/0, image 0)`,
        `  alerts:       ${alertsFile}`,
        `  ground truth: ${scan.truthPath}`,
        `  mask vs truth: Dice ${score.dice.toFixed(3)}, IoU ${score.iou.toFixed(3)}`,
        `  slice→alert latency p50 ${quantile(stats.latenciesMs, 0.5).toFixed(0)} ms, p99 ${quantile(stats.latenciesMs, 0.99).toFixed(0)} ms`,
      ].join('\n') + '\n',
    );
    return 0;
  } finally {
    ctx.signal.removeEventListener('abort', stop);
    await Promise.all(sinks.map((s) => s.close()));
    await server.close();
    await model.close();
  }
}
