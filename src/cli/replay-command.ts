import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { tap } from 'rxjs';
import { DEFAULT_ALERT_RULES } from '../alerts/alert-rules.ts';
import { readSliceFile } from '../codecs/read-slice-file.ts';
import { CONFIG_DEFAULTS, KAFKA_DEFAULTS } from '../config/pipeline-config.ts';
import { DaemonStats } from '../daemon/daemon-stats.ts';
import { type CompletedScan, runDaemon } from '../daemon/run-daemon.ts';
import { OutputError, UsageError } from '../errors.ts';
import { loadModel, type SegmentationModel } from '../inference/load-model.ts';
import { kafkaSecurityFromEnv } from '../kafka/kafka-client.ts';
import { parseKafkaUrl } from '../kafka/parse-kafka-url.ts';
import { publishSliceStream } from '../kafka/publish-simulated-scan.ts';
import { createLogger, type Logger } from '../log.ts';
import { fbpFilter } from '../recon/fourier-filter.ts';
import type { AlertSink } from '../sinks/alert-sink.ts';
import { formatAlert } from '../sinks/format-alert.ts';
import { createJsonlAlertSink, streamSink } from '../sinks/jsonl-alert-sink.ts';
import { createKafkaAlertSink } from '../sinks/kafka-alert-sink.ts';
import type { ArchiveVolume } from '../sources/archive-volume.ts';
import { openArchive } from '../sources/open-archive.ts';
import type { ReconOptions } from '../sources/projections-volume.ts';
import { replayArchive, replayPace, scanIdFor } from '../sources/replay-archive.ts';
import { SliceCredits } from '../sources/slice-credits.ts';
import type { CommandContext } from './command-context.ts';
import { modelOption, parseOptions, positiveOption, stringOption } from './parse-options.ts';

export const REPLAY_HELP = `Usage:
  xct-sentinel replay ARCHIVE [--speed max|1x|Nx] [--rate SLICES_PER_S] [--out DIR]
                      [--alerts FILE|-|kafka://…] [--model tnet|unet|enet] [--precision fp32|int8] [--models-dir DIR]
                      [--scan-id ID] [--center COLUMN] [--filter NAME] [--json] [--log-level LEVEL]

Runs an archived scan through the same pipeline as live data: masks to <out>/<scanId>.ome.zarr,
dendrite alerts as they are found. ARCHIVE is a finished scan folder (slice files, scan.json), a
multi-page TIFF (one page per slice), a DXchange HDF5 file (/exchange/data, z × y × x) or a Zarr
array / OME-Zarr image group. A DXchange file of projections (with /exchange/theta and
/exchange/data_white) is reconstructed as it replays: each detector row, flat- and dark-corrected,
by filtered back-projection into one slice.
  --center COLUMN   the rotation axis in detector columns (default: found from the projections
                    180° apart, and reported)
  --filter NAME     the FBP filter: shepp-logan (default), ramp (= ram-lak), hann
  --speed max       as fast as the pipeline drains (default); two replays of one archive with one
                    model give the same masks and the same alerts
  --speed 1x | Nx   the original pace (scan.json rate, else file times), or N times faster
  --rate N          the original pace in slices/s, for archives that do not record it
  --out DIR         output folder (default ./replays)
  --alerts FILE     append alerts as JSON lines (default -: stdout, readable lines on a terminal)
  --alerts kafka://HOST:PORT[/TOPIC]
                    publish alerts as Avro to Kafka (default topic ${KAFKA_DEFAULTS.alertTopic}), key = scan id
  --scan-id ID      default: the archive's name (tooth.h5 → tooth)
  --json            what a pipe gets: no progress bar, JSON logs on stderr, JSON alerts on stdout
  --to-kafka HOST:PORT[/TOPIC]
                    publish the archive as a live slice stream (Avro, key = scan id; default topic
                    ${KAFKA_DEFAULTS.sliceTopic}) instead of processing it, at --speed (max: each slice as soon as
                    the broker acknowledged the last); TLS/SASL from XCT_KAFKA_* variables
`;

const SPEC = {
  speed: { type: 'string' },
  rate: { type: 'string' },
  out: { type: 'string' },
  alerts: { type: 'string' },
  model: { type: 'string' },
  precision: { type: 'string' },
  'models-dir': { type: 'string' },
  center: { type: 'string' },
  filter: { type: 'string' },
  'scan-id': { type: 'string' },
  json: { type: 'boolean' },
  'log-level': { type: 'string' },
  'to-kafka': { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

const DEFAULT_OUT = 'replays';
const BAR_WIDTH = 24;

/** `xct-sentinel replay`: an archived scan through the live pipeline, once. */
export async function replayCommand(args: readonly string[], ctx: CommandContext): Promise<number> {
  const { values, positionals } = parseOptions('replay', args, SPEC, 1);
  if (values.help) {
    ctx.stdout.write(REPLAY_HELP);
    return 0;
  }
  const archivePath = positionals[0];
  if (archivePath === undefined) {
    throw new UsageError(
      'replay needs an ARCHIVE: a scan folder, a multi-page TIFF, an HDF5 file or a Zarr array',
      {
        option: 'ARCHIVE',
      },
    );
  }
  const speed = parseSpeed(stringOption(values, 'speed'));
  const rate = stringOption(values, 'rate') === undefined ? undefined : positiveOption(values, 'rate', 1);
  const out = stringOption(values, 'out') ?? DEFAULT_OUT;
  const alertsTarget = stringOption(values, 'alerts') ?? '-';
  // Checked before the archive and the model: a typo in a URL fails at once.
  const alertsKafka = alertsTarget.startsWith('kafka://')
    ? parseKafkaUrl(alertsTarget, { option: '--alerts', defaultTopic: KAFKA_DEFAULTS.alertTopic })
    : undefined;
  const modelsDir = stringOption(values, 'models-dir');
  // A bar needs a terminal to redraw in; anything else gets JSON it can parse.
  const bar = values.json !== true && process.stderr.isTTY === true;
  const log = createLogger({
    level: stringOption(values, 'log-level') ?? process.env.XCT_LOG_LEVEL ?? (bar ? 'warn' : 'info'),
  });

  // The archive is checked before the model loads: a bad one fails in milliseconds, with one line.
  const volume = await openArchive(archivePath, { signal: ctx.signal, recon: reconOptions(values) });
  let model: SegmentationModel | undefined;
  const sinks: AlertSink[] = [];
  try {
    // Checked now rather than by the replay, which would say so only after the model has loaded.
    if (speed !== 'max') replayPace(volume, rate);
    const scanId = stringOption(values, 'scan-id') ?? scanIdFor(volume.name);
    const toKafka = stringOption(values, 'to-kafka');
    if (toKafka !== undefined)
      return await publishArchive(volume, { target: toKafka, scanId, speed, rate, log, ctx });
    const stats = new DaemonStats();
    const credits = new SliceCredits();
    let sourceError: unknown;
    // Created (and its options checked) now; it reads nothing until the daemon subscribes.
    const source = replayArchive(volume, {
      speed,
      scanId,
      signal: ctx.signal,
      ...(rate !== undefined && { rate }),
      credits,
    }).pipe(
      tap({
        error: (err: unknown) => {
          sourceError = err;
        },
      }),
    );
    const zarrPath = join(out, `${scanId}.ome.zarr`);
    await prepareOut(out, zarrPath);

    for (const note of volume.notes) {
      if (bar) ctx.stderr.write(`note: ${note}\n`);
      else log.warn({ path: volume.path }, note);
    }
    model = await loadModel(modelOption(values, CONFIG_DEFAULTS.model), {
      provider: CONFIG_DEFAULTS.provider,
      threads: CONFIG_DEFAULTS.threads,
      sessions: CONFIG_DEFAULTS.sessions,
      log,
      ...(modelsDir !== undefined && { modelsDir }),
    });
    sinks.push(await openAlertSink(alertsTarget, alertsKafka, { bar, ctx, log }));

    const total = volume.depth - volume.missing.length;
    const what = `${archivePath} (${volume.kind}, ${volume.depth} slices${volume.meta.width ? ` of ${volume.meta.width}×${volume.meta.height}` : ''})`;
    const modelName = `${model.identity.name} ${model.identity.version} on ${model.identity.provider}`;
    if (bar)
      ctx.stderr.write(`replaying ${what} at ${speedText(speed)} with model ${modelName} → ${zarrPath}\n`);
    else
      log.info(
        {
          archive: volume.path,
          kind: volume.kind,
          slices: volume.depth,
          scanId,
          speed,
          model: model.identity,
          zarrPath,
        },
        `replaying ${what}`,
      );

    const started = performance.now();
    let done = 0;
    const completed: CompletedScan[] = [];
    await runDaemon({
      source,
      out,
      model,
      sinks,
      rules: DEFAULT_ALERT_RULES,
      tile: { overlap: CONFIG_DEFAULTS.overlap },
      inference: { maxBatch: CONFIG_DEFAULTS.maxBatch, maxDelayMs: CONFIG_DEFAULTS.maxDelayMs },
      maxSlicesInFlight: CONFIG_DEFAULTS.maxSlicesInFlight,
      maxScans: 1,
      stats,
      credits,
      signal: ctx.signal,
      log,
      onSliceDone: () => {
        done++;
        if (bar)
          ctx.progress(progressLine(done, total, (performance.now() - started) / 1000, alertCount(stats)));
      },
      onScanComplete: (scan) => completed.push(scan),
    });
    if (sourceError !== undefined) throw sourceError;
    if (ctx.signal.aborted) return 130;

    const scan = completed[0];
    const failed = reportReplay(
      { scanId, zarrPath, total, seconds: (performance.now() - started) / 1000, stats, volume, scan },
      { bar, ctx, log },
    );
    return scan === undefined || scan.failed !== undefined || failed > 0 ? 1 : 0;
  } finally {
    await Promise.all(sinks.map((s) => s.close()));
    await model?.close();
    await volume.close();
  }
}

/** `--center` and `--filter`, checked before the archive opens. */
export function reconOptions(values: Parameters<typeof stringOption>[0]): ReconOptions {
  const center = stringOption(values, 'center');
  const filter = stringOption(values, 'filter');
  const recon: ReconOptions = {};
  if (center !== undefined) {
    const c = Number(center);
    if (center.trim() === '' || !Number.isFinite(c) || c < 0)
      throw new UsageError(`--center ${center}: expected a detector column ≥ 0, e.g. 296.5`, {
        option: '--center',
      });
    recon.center = c;
  }
  if (filter !== undefined) recon.filter = fbpFilter(filter);
  return recon;
}

/** Refuse to replay over an earlier replay's store; create `--out`. */
async function prepareOut(out: string, zarrPath: string): Promise<void> {
  if (existsSync(zarrPath)) {
    throw new OutputError(
      `${zarrPath} already exists (an earlier replay?); remove it, or choose another --out or --scan-id`,
      { path: zarrPath, option: '--out' },
    );
  }
  try {
    await mkdir(out, { recursive: true });
  } catch (cause) {
    throw new OutputError(
      `--out ${out}: cannot create the output folder`,
      { path: out, option: '--out' },
      { cause },
    );
  }
}

/** Where `--alerts` sends the alerts: stdout (`-`; JSON lines unless a terminal shows the bar), Kafka or a file. */
async function openAlertSink(
  target: string,
  kafka: ReturnType<typeof parseKafkaUrl> | undefined,
  { bar, ctx, log }: { bar: boolean; ctx: CommandContext; log: Logger },
): Promise<AlertSink> {
  if (target === '-') {
    if (!bar || process.stdout.isTTY !== true) return streamSink(ctx.stdout, (a) => `${JSON.stringify(a)}\n`);
    // Alerts and the bar share the terminal: clear the bar before an alert line, it redraws itself.
    return streamSink(ctx.stdout, (a) => `\r\x1b[2K${formatAlert(a, true)}`);
  }
  if (kafka)
    return createKafkaAlertSink({
      brokers: kafka.brokers,
      topic: kafka.topic,
      security: kafkaSecurityFromEnv(process.env, kafka),
      log,
    });
  return createJsonlAlertSink(target);
}

/** The replay's closing line (a terminal) or record (a log); the count of slices that failed. */
function reportReplay(
  r: {
    scanId: string;
    zarrPath: string;
    total: number;
    seconds: number;
    stats: DaemonStats;
    volume: ArchiveVolume;
    scan: CompletedScan | undefined;
  },
  o: { bar: boolean; ctx: CommandContext; log: Logger },
): number {
  const { scanId, zarrPath, total, seconds, stats, volume, scan } = r;
  const { bar, ctx, log } = o;
  const readErrors = stats.errorsByStage.get('source') ?? 0;
  const summary = {
    scanId,
    zarrPath,
    slices: stats.slicesOut,
    missing: volume.missing.length,
    failed: stats.slicesFailed + readErrors,
    seconds: Number(seconds.toFixed(3)),
    slicesPerSecond: Number((stats.slicesOut / Math.max(seconds, 1e-9)).toFixed(2)),
    alerts: { ...stats.alerts },
    scanFailed: scan?.failed ?? null,
  };
  if (bar) {
    ctx.stderr.write(
      `\r\x1b[2Kreplayed ${summary.slices}/${total} slices in ${seconds.toFixed(1)} s (${summary.slicesPerSecond} slices/s); alerts ${stats.alerts.info} info / ${stats.alerts.warning} warning / ${stats.alerts.critical} critical; masks in ${zarrPath}${summary.failed ? `; ${summary.failed} slice(s) FAILED` : ''}${scan?.failed ? `; scan FAILED: ${scan.failed}` : ''}\n`,
    );
  } else {
    log.info({ summary }, `replay of ${scanId} complete: ${summary.slices} slices → ${zarrPath}`);
  }
  return summary.failed;
}

/** `max`, `1x`, `2.5x` or a bare `4` → the speed `replayArchive` takes. */
export function parseSpeed(raw: string | undefined): 'max' | number {
  if (raw === undefined || raw === 'max') return 'max';
  const match = /^(\d+(?:\.\d*)?|\.\d+)x?$/i.exec(raw.trim());
  const value = match ? Number(match[1]) : Number.NaN;
  if (!(Number.isFinite(value) && value > 0)) {
    throw new UsageError(`--speed must be max, 1x (the original pace) or Nx (N times faster), got "${raw}"`, {
      option: '--speed',
    });
  }
  return value;
}

function speedText(speed: 'max' | number): string {
  return speed === 'max' ? 'full speed' : `${speed}× the original pace`;
}

function alertCount(stats: DaemonStats): number {
  return stats.alerts.info + stats.alerts.warning + stats.alerts.critical;
}

/** `[██████░░░░░░] 120/181 slices  34.1 slices/s  ETA 0:02  alerts 3` */
function progressLine(done: number, total: number, seconds: number, alerts: number): string {
  const fraction = total > 0 ? Math.min(1, done / total) : 1;
  const filled = Math.round(fraction * BAR_WIDTH);
  const rate = seconds > 0 ? done / seconds : 0;
  const eta = rate > 0 ? Math.max(0, (total - done) / rate) : Number.NaN;
  const etaSeconds = Math.round(eta);
  const etaText = Number.isFinite(eta)
    ? `${Math.floor(etaSeconds / 60)}:${String(etaSeconds % 60).padStart(2, '0')}`
    : '?';
  return `[${'█'.repeat(filled)}${'░'.repeat(BAR_WIDTH - filled)}] ${done}/${total} slices  ${rate.toFixed(1)} slices/s  ETA ${etaText}  alerts ${alerts}`;
}

/** `replay --to-kafka`: the archive as a live slice stream on a Kafka topic, for downstream consumers. */
async function publishArchive(
  volume: ArchiveVolume,
  o: {
    target: string;
    scanId: string;
    speed: 'max' | number;
    rate: number | undefined;
    log: Logger;
    ctx: CommandContext;
  },
): Promise<number> {
  const url = o.target.startsWith('kafka://') ? o.target : `kafka://${o.target}`;
  const endpoint = parseKafkaUrl(url, { option: '--to-kafka', defaultTopic: KAFKA_DEFAULTS.sliceTopic });
  // The original pace as an average rate, times the speed.
  let rate: number | undefined;
  if (o.speed !== 'max') {
    const pace = replayPace(volume, o.rate);
    const span = pace.at(-1) ?? 0;
    rate = span > 0 ? (o.speed * (pace.length - 1) * 1000) / span : undefined;
  }
  const signal = o.ctx.signal;
  async function* slices() {
    for (let z = 0; z < volume.depth; z++) {
      if (volume.missing.includes(z)) continue;
      const slice = await volume.read(z, { signal });
      yield { z, image: 'image' in slice ? slice.image : await readSliceFile(slice.path, { signal }) };
    }
  }
  const result = await publishSliceStream({
    brokers: endpoint.brokers,
    topic: endpoint.topic,
    scanId: o.scanId,
    expectedSlices: volume.depth,
    voxelSizeUm: volume.meta.voxelSizeUm,
    slices: slices(),
    rate,
    log: o.log,
    security: kafkaSecurityFromEnv(process.env, endpoint),
    signal,
    onSlice: ({ z }) =>
      o.ctx.progress(`published slice ${z + 1}/${volume.depth} of ${o.scanId} to ${endpoint.topic}`),
  });
  o.ctx.stdout.write(
    `${JSON.stringify({ scanId: o.scanId, topic: endpoint.topic, slices: result.slices, seconds: result.elapsedMs / 1000 })}\n`,
  );
  return 0;
}
