import { mkdir } from 'node:fs/promises';
import type { Observable } from 'rxjs';
import {
  CONFIG_DEFAULTS,
  KAFKA_DEFAULTS,
  loadPipelineConfig,
  type PipelineConfig,
  validatePipelineConfig,
} from '../config/pipeline-config.ts';
import { DaemonStats, quantile } from '../daemon/daemon-stats.ts';
import { startMetricsServer } from '../daemon/metrics-server.ts';
import { type CompletedScan, runDaemon } from '../daemon/run-daemon.ts';
import { OutputError, UsageError } from '../errors.ts';
import { describeLayout, loadModel, precisionName } from '../inference/load-model.ts';
import { kafkaSecurityFromEnv } from '../kafka/kafka-client.ts';
import { createLogger, type Logger } from '../log.ts';
import type { AlertSink } from '../sinks/alert-sink.ts';
import { formatAlert } from '../sinks/format-alert.ts';
import { createJsonlAlertSink, streamSink } from '../sinks/jsonl-alert-sink.ts';
import { createKafkaAlertSink, DEFAULT_ALERT_TOPIC } from '../sinks/kafka-alert-sink.ts';
import { creditedFolder } from '../sources/credited-folder.ts';
import { DEFAULT_SLICE_GROUP, DEFAULT_SLICE_TOPIC, kafkaSliceSource } from '../sources/kafka-slice-source.ts';
import { SliceCredits } from '../sources/slice-credits.ts';
import type { SourceEvent } from '../sources/source-event.ts';
import { LiveView } from '../view/live-view.ts';
import type { CommandContext } from './command-context.ts';
import { parseOptions, stringOption } from './parse-options.ts';
import { applyFlags } from './run-flags.ts';

export const RUN_HELP = `Usage:
  xct-sentinel run --watch DIR --out DIR [--model tnet|unet|enet] [--precision fp32|int8] [--alerts FILE]
                   [--provider cpu|cuda|tensorrt|webgpu] [--threads N] [--sessions N] [--max-scans N]
                   [--idle-timeout SECONDS] [--batch N] [--overlap N] [--log-level LEVEL]
                   [--shutdown-timeout SECONDS] [--metrics-port N] [--view]
  xct-sentinel run --source kafka://HOST:PORT[/TOPIC] --out DIR [--group ID] [--file-root DIR]…
                   [flags above]
  xct-sentinel run PIPELINE.yaml [flags above override the file]

Watches a scanner's output folder (one sub-folder per scan), segments each slice as soon as it
is completely written, writes <out>/<scanId>.ome.zarr (image, dendrite mask, probabilities) and
raises dendrite alerts while the scan is still running.
  --alerts FILE   append alerts as JSON lines (default: stdout; readable lines on a terminal)
  --alerts kafka://HOST:PORT[,HOST:PORT][/TOPIC]
                  publish alerts as Avro to a Kafka topic (default ${DEFAULT_ALERT_TOPIC}), key = scan id,
                  and scan-completed events to xct.scan-events; TLS/SASL from XCT_KAFKA_* variables
  --schema-registry URL
                  with Kafka alerts: register the schemas there and frame messages for it
                  (byte 0 + schema id) instead of Avro single-object encoding
  --max-scans N   exit 0 once N scans have completed and every output is flushed
  --precision fp32|int8
                  int8: the INT8 model shipped beside --model (tnet-int8; faster on CPU, see README)
  --threads N     ONNX Runtime threads in all (default 0: one per core)
  --sessions N    ONNX Runtime sessions computing side by side, the threads shared among them
                  (default 0: 2 on a CPU given 2 threads or more, else 1)
  --metrics-port N
                  serve /metrics (Prometheus), /healthz and /readyz on 127.0.0.1:N (0: any free port)
  --view          the live view in a browser at / on the same server (any free port without
                  --metrics-port): scans, slices with the mask, side views, alerts
  --shutdown-timeout SECONDS
                  on SIGTERM/SIGINT, finish the slices in flight and flush for at most this long
                  (default ${CONFIG_DEFAULTS.shutdownTimeoutSeconds}), then exit; a second signal exits at once
  --source kafka://HOST:PORT[,HOST:PORT][/TOPIC]
                  read Avro slices from a Kafka topic (default ${DEFAULT_SLICE_TOPIC}) instead of --watch;
                  daemons with the same --group (default ${DEFAULT_SLICE_GROUP}) share the topic's scans;
                  offsets are committed once a slice's mask is written and its alerts acknowledged;
                  undecodable messages go to <TOPIC>.dlq
  --file-root DIR a folder slice messages' file references may point into (repeat for more; relative
                  references resolve against the first); without it a message that refers to a file
                  goes to the dead-letter topic unread
`;

const SPEC = {
  watch: { type: 'string' },
  out: { type: 'string' },
  model: { type: 'string' },
  precision: { type: 'string' },
  alerts: { type: 'string' },
  provider: { type: 'string' },
  threads: { type: 'string' },
  sessions: { type: 'string' },
  'max-scans': { type: 'string' },
  'idle-timeout': { type: 'string' },
  batch: { type: 'string' },
  overlap: { type: 'string' },
  'log-level': { type: 'string' },
  'shutdown-timeout': { type: 'string' },
  'metrics-port': { type: 'string' },
  view: { type: 'boolean' },
  'schema-registry': { type: 'string' },
  'models-dir': { type: 'string' },
  source: { type: 'string' },
  group: { type: 'string' },
  'file-root': { type: 'string', multiple: true },
  help: { type: 'boolean', short: 'h' },
} as const;

/** `xct-sentinel run`: the daemon. */
export async function runCommand(args: readonly string[], ctx: CommandContext): Promise<number> {
  const { values, positionals } = parseOptions('run', args, SPEC, 1);
  if (values.help) {
    ctx.stdout.write(RUN_HELP);
    return 0;
  }
  const config = await runConfig(positionals[0], values);
  ctx.shutdownTimeoutMs = config.shutdownTimeoutSeconds * 1000;
  const kafkaSlices = config.source.kafka && {
    ...config.source.kafka,
    security: kafkaSecurityFromEnv(process.env, config.source.kafka),
  };
  const groupId = config.source.kafka?.group ?? KAFKA_DEFAULTS.group;
  for (const s of config.alerts.sinks) if (s.type === 'kafka') kafkaSecurityFromEnv(process.env, s);

  const log = createLogger({
    level: stringOption(values, 'log-level') ?? process.env.XCT_LOG_LEVEL ?? 'info',
  });
  try {
    await mkdir(config.output.zarr, { recursive: true });
  } catch (cause) {
    throw new OutputError(
      `--out ${config.output.zarr}: cannot create the output folder`,
      { path: config.output.zarr, option: '--out' },
      { cause },
    );
  }
  const stats = new DaemonStats();
  let ready = false;
  const view = values.view === true ? new LiveView(config.output.zarr) : undefined;
  const metrics =
    config.metrics || view
      ? await startMetricsServer({
          stats,
          port: config.metrics?.port ?? 0,
          host: config.metrics?.host ?? '127.0.0.1',
          ready: () => ready && !ctx.signal.aborted,
          ...(view && { routes: (req, res) => view.handle(req, res) }),
        })
      : undefined;
  if (metrics) log.info({ url: metrics.url }, `metrics on ${metrics.url}/metrics`);
  if (metrics && view) log.info({ url: `${metrics.url}/` }, `live view on ${metrics.url}/`);
  const model = await loadModel(precisionName(config.model.name, config.model.precision), {
    provider: config.model.provider,
    threads: config.model.threads,
    sessions: config.model.sessions,
    log,
    ...(config.model.modelsDir !== undefined && { modelsDir: config.model.modelsDir }),
  }).catch(async (err: unknown) => {
    await metrics?.close();
    throw err;
  });
  stats.model = { ...model.identity, requested: config.model.provider };
  const sinks: AlertSink[] = view ? [view] : [];
  let sourceClose: (() => Promise<void>) | undefined;
  try {
    const stdoutIsJson = config.alerts.sinks.some(
      (s) => s.type === 'stdout' && (s.format === 'json' || (s.format === 'auto' && !process.stdout.isTTY)),
    );
    sinks.push(...(await openSinks(config, stdoutIsJson, ctx, log)));
    // Human summaries go where they do not break a JSON-lines stream.
    const say = (line: string) => (stdoutIsJson ? ctx.stderr : ctx.stdout).write(line);
    const f = config.source.folder;
    // Either source takes a credit per slice (the folder's wait in takeCredits, as paths); the
    // daemon gives it back.
    const credits = new SliceCredits();
    const window = config.inference.maxSlicesInFlight * 2;
    const sliceSource = kafkaSlices
      ? kafkaSliceSource({
          brokers: kafkaSlices.brokers,
          topic: kafkaSlices.topic,
          groupId,
          security: kafkaSlices.security,
          log,
          fileRoots: kafkaSlices.fileRoots,
          // KafkaJS wants heartbeats at most a third of the session apart.
          sessionTimeoutMs: kafkaSlices.sessionTimeoutSeconds * 1000,
          heartbeatIntervalMs: Math.min(3000, (kafkaSlices.sessionTimeoutSeconds * 1000) / 3),
          maxInFlight: window,
          credits,
          onHealth: (problem) => stats.sourceHealth(problem),
        })
      : undefined;
    const source: Observable<SourceEvent> =
      sliceSource?.events ??
      creditedFolder(
        f?.path ?? '.',
        {
          ...(f && {
            idleTimeoutMs: f.idleTimeoutSeconds * 1000,
            missingSliceTimeoutMs: f.missingSliceTimeoutSeconds * 1000,
            stabilityMs: f.stabilityMs,
            followSymlinks: f.followSymlinks,
          }),
        },
        credits,
        window,
      );
    sourceClose = sliceSource?.close;
    say(
      `${kafkaSlices ? `reading ${kafkaSlices.topic} on ${kafkaSlices.brokers.join(',')} as group ${groupId}` : `watching ${f?.path}`} with model ${model.identity.name} ${model.identity.version} on ${model.identity.provider}${model.fallbackReason ? ` (fallback: ${model.fallbackReason})` : ''} (${describeLayout(model)}); masks to ${config.output.zarr}\n`,
    );
    const completed: CompletedScan[] = [];
    ready = true;
    await runDaemon({
      stats,
      source,
      credits,
      ...(sliceSource && { onSliceDone: (slice) => sliceSource.sliceDone(slice) }),
      out: config.output.zarr,
      model,
      sinks,
      rules: config.alerts.rules,
      tile: { overlap: config.inference.overlap },
      inference: { maxBatch: config.inference.maxBatch, maxDelayMs: config.inference.maxDelayMs },
      maxSlicesInFlight: config.inference.maxSlicesInFlight,
      neighbourWaitMs: config.inference.neighbourWaitMs,
      signal: ctx.signal,
      log,
      ...(view && { onSliceWritten: (slice, meta) => view.sliceDone(slice, meta.expectedSlices) }),
      ...(config.maxScans !== undefined && { maxScans: config.maxScans }),
      onScanComplete: (scan) => {
        // A summary no sink acknowledged (stopped during an outage): the offsets wait for the next start.
        if (scan.acknowledged) sliceSource?.scanDone(scan.scanId);
        completed.push(scan);
        say(
          `scan ${scan.scanId}: ${scan.slices} slices → ${scan.zarrPath}${scan.failed ? ` (FAILED: ${scan.failed})` : ''}\n`,
        );
      },
    });
    say(
      `done: ${stats.scansCompleted} scan(s), ${stats.slicesOut} slices, ${stats.patches} patches, alerts ${stats.alerts.info} info / ${stats.alerts.warning} warning / ${stats.alerts.critical} critical; slice→alert latency p50 ${quantile(stats.latenciesMs, 0.5).toFixed(0)} ms, p99 ${quantile(stats.latenciesMs, 0.99).toFixed(0)} ms\n`,
    );
    // A source that failed (a broker gone for good, a folder unmounted) ends the run: exit 1, so a
    // supervisor restarts the daemon; what was not finished is read again then.
    if (stats.sourceError !== undefined) {
      ctx.stderr.write(`xct-sentinel: the source failed: ${stats.sourceError}\n`);
      return 1;
    }
    return completed.some((s) => s.failed) ? 1 : 0;
  } finally {
    // The source first: its last commits cover slices whose alerts the sinks already acknowledged.
    await sourceClose?.();
    await Promise.all(sinks.map((s) => s.close()));
    await model.close();
    await metrics?.close();
  }
}

type Values = Parameters<typeof stringOption>[0];

/** The pipeline: a pipeline file, or the command line's own, with the flags applied over it. */
async function runConfig(file: string | undefined, values: Values): Promise<PipelineConfig> {
  // URLs are checked before anything loads: a typo or a missing password fails in milliseconds.
  const sourceFlag = stringOption(values, 'source');
  if (sourceFlag !== undefined && !sourceFlag.startsWith('kafka://'))
    throw new UsageError(
      `--source ${sourceFlag}: expected kafka://HOST:PORT[/TOPIC] (use --watch DIR for a folder)`,
      {
        option: '--source',
      },
    );
  if (sourceFlag !== undefined && stringOption(values, 'watch') !== undefined)
    throw new UsageError('--source and --watch cannot be combined; give one', { option: '--source' });
  let config: PipelineConfig;
  if (file !== undefined) {
    config = await loadPipelineConfig(file);
  } else {
    if (stringOption(values, 'watch') === undefined && sourceFlag === undefined)
      throw new UsageError('run needs --watch DIR or --source kafka://HOST:PORT (or a pipeline file)', {
        option: '--watch',
      });
    if (stringOption(values, 'out') === undefined)
      throw new UsageError('run needs --out DIR for the OME-Zarr masks', { option: '--out' });
    config = validatePipelineConfig(
      {
        // Replaced by --watch or --source below.
        source: { folder: { path: '.' } },
        output: { zarr: stringOption(values, 'out') },
      },
      'command line',
    );
  }
  return applyFlags(config, values);
}

/** The alert sinks a pipeline names: files and stdout first, then Kafka. */
async function openSinks(
  config: PipelineConfig,
  stdoutIsJson: boolean,
  ctx: CommandContext,
  log: Logger,
): Promise<AlertSink[]> {
  const out: AlertSink[] = [];
  for (const s of config.alerts.sinks) {
    if (s.type === 'kafka') continue;
    if (s.type === 'jsonl') out.push(await createJsonlAlertSink(s.path));
    else if (stdoutIsJson) out.push(streamSink(ctx.stdout, (a) => `${JSON.stringify(a)}\n`));
    else out.push(streamSink(ctx.stdout, (a) => formatAlert(a, process.stdout.isTTY === true)));
  }
  for (const s of config.alerts.sinks) {
    if (s.type !== 'kafka') continue;
    out.push(
      await createKafkaAlertSink({
        brokers: s.brokers,
        topic: s.topic,
        scanEventsTopic: s.scanEventsTopic,
        security: kafkaSecurityFromEnv(process.env, s),
        ...(s.schemaRegistry !== undefined && { schemaRegistryUrl: s.schemaRegistry }),
        log,
      }),
    );
  }
  return out;
}
