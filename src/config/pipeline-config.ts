import { readFile } from 'node:fs/promises';
import { parseDocument } from 'yaml';
import { type AlertRules, DEFAULT_ALERT_RULES, resolveAlertRules } from '../alerts/alert-rules.ts';
import { ConfigError } from '../errors.ts';
import { PRECISIONS, type Precision } from '../inference/load-model.ts';
import { PROVIDERS, type Provider } from '../inference/open-onnx-session.ts';
import type { SaslMechanism } from '../kafka/parse-kafka-url.ts';
import { Fields, type Obj } from './config-fields.ts';

/** Defaults for Kafka topics and the consumer group (schemas/README.md). */
export const KAFKA_DEFAULTS = Object.freeze({
  sliceTopic: 'xct.slices',
  group: 'xct-sentinel',
  alertTopic: 'xct.dendrite-alerts',
  scanEventsTopic: 'xct.scan-events',
});

/** A Kafka cluster and topic; credentials come from XCT_KAFKA_* variables, never the file. */
export interface KafkaTopicConfig {
  brokers: string[];
  topic: string;
  tls?: boolean;
  sasl?: SaslMechanism;
}

/** Where alerts go. */
export type SinkConfig =
  | { type: 'jsonl'; path: string }
  | { type: 'stdout'; format: 'auto' | 'json' | 'text' }
  | ({ type: 'kafka'; scanEventsTopic: string; schemaRegistry?: string } & KafkaTopicConfig);

export interface FolderSourceConfig {
  path: string;
  idleTimeoutSeconds: number;
  missingSliceTimeoutSeconds: number;
  stabilityMs: number;
  followSymlinks: boolean;
}

export interface KafkaSourceConfig extends KafkaTopicConfig {
  group: string;
  /**
   * Folders slice messages' file references may point into (relative ones resolve against the
   * first); empty: a message that refers to a file goes to the dead-letter topic unread.
   */
  fileRoots: string[];
  /**
   * How long the group waits for a silent member before its partitions go to the others: a daemon
   * killed or cut off hands its scans over after this long (6–1800 s, the broker's usual bounds).
   */
  sessionTimeoutSeconds: number;
}

/** A whole pipeline, as `pipelines/*.yaml` spells it, every default filled in. */
export interface PipelineConfig {
  /** Exactly one of the two. */
  source: { folder?: FolderSourceConfig; kafka?: KafkaSourceConfig };
  model: {
    name: string;
    /** `int8`: the INT8 model shipped beside `name` (`NAME-int8`). */
    precision: Precision;
    provider: Provider;
    /** Intra-op threads of all sessions together; 0: one per core. */
    threads: number;
    /** ONNX Runtime sessions computing side by side; 0: 2 on a CPU given 2 threads or more, else 1. */
    sessions: number;
    modelsDir?: string;
  };
  inference: {
    maxBatch: number;
    maxDelayMs: number;
    overlap: number;
    maxSlicesInFlight: number;
    /** How long a slice waits for the next one, for a model that takes in its neighbours. */
    neighbourWaitMs: number;
  };
  output: { zarr: string };
  alerts: { sinks: SinkConfig[]; rules: AlertRules };
  maxScans?: number;
  /** After SIGTERM/SIGINT, how long in-flight slices may take to finish and outputs to flush. */
  shutdownTimeoutSeconds: number;
  /** `/metrics`, `/healthz`, `/readyz` over HTTP, when a port is given. */
  metrics?: { port: number; host: string };
}

export const CONFIG_DEFAULTS = Object.freeze({
  idleTimeoutSeconds: 120,
  missingSliceTimeoutSeconds: 30,
  stabilityMs: 300,
  model: 'tnet',
  provider: 'cpu' as Provider,
  threads: 0,
  sessions: 0,
  maxBatch: 16,
  maxDelayMs: 10,
  overlap: 32,
  maxSlicesInFlight: 4,
  neighbourWaitMs: 60_000,
  shutdownTimeoutSeconds: 30,
  sessionTimeoutSeconds: 30,
});

/** Read and validate a pipeline file; every error names the key path, what was wrong and what is allowed. */
export async function loadPipelineConfig(path: string): Promise<PipelineConfig> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (cause) {
    throw new ConfigError(`${path}: cannot read the pipeline file`, { path }, { cause });
  }
  return parsePipelineConfig(text, path);
}

/** A pipeline file's text, parsed and validated; `path` names it in errors. */
export function parsePipelineConfig(text: string, path: string): PipelineConfig {
  // Silent: the YAML library would print its warnings to stderr, between the daemon's JSON logs.
  // A warning (an ambiguous alias, say) means the file may not say what its author meant: refused.
  const parsed = parseDocument(text, { logLevel: 'silent' });
  const problem = parsed.errors[0] ?? parsed.warnings[0];
  if (problem !== undefined)
    throw new ConfigError(
      `${path}: not valid YAML: ${problem.message.split('\n')[0]}`,
      { path },
      { cause: problem },
    );
  let doc: unknown;
  try {
    doc = parsed.toJS({ maxAliasCount: 100 });
  } catch (cause) {
    throw new ConfigError(
      `${path}: not valid YAML: ${cause instanceof Error ? cause.message.split('\n')[0] : String(cause)}`,
      { path },
      { cause },
    );
  }
  return validatePipelineConfig(doc, path);
}

/** Validate a parsed pipeline document. */
export function validatePipelineConfig(doc: unknown, file = 'pipeline'): PipelineConfig {
  const f = new Fields(file);

  const root = f.obj(doc, '(top level)');
  f.known(root, '', [
    'source',
    'model',
    'inference',
    'output',
    'alerts',
    'maxScans',
    'shutdownTimeoutSeconds',
    'metrics',
  ]);
  const metrics = f.obj(root.metrics, 'metrics');
  f.known(metrics, 'metrics', ['port', 'host']);
  const source = f.obj(root.source, 'source');
  f.known(source, 'source', ['folder', 'kafka']);
  if ((source.folder === undefined) === (source.kafka === undefined))
    f.fail(
      'source',
      'needs exactly one of `folder:` (the scanner output path) or `kafka:` (brokers and topic of the slices)',
    );
  const folder = f.obj(source.folder, 'source.folder');
  f.known(folder, 'source.folder', [
    'path',
    'idleTimeoutSeconds',
    'missingSliceTimeoutSeconds',
    'stabilityMs',
    'followSymlinks',
  ]);
  const model = f.obj(root.model, 'model');
  f.known(model, 'model', ['name', 'precision', 'provider', 'threads', 'sessions', 'modelsDir']);
  const precision = f.str(model.precision, 'model.precision', 'fp32');
  if (!(PRECISIONS as readonly string[]).includes(precision))
    f.fail('model.precision', `"${precision}" is not one of ${PRECISIONS.join(', ')}`);
  const provider = f.str(model.provider, 'model.provider', CONFIG_DEFAULTS.provider);
  if (!(PROVIDERS as readonly string[]).includes(provider))
    f.fail('model.provider', `"${provider}" is not one of ${PROVIDERS.join(', ')}`);
  const inference = f.obj(root.inference, 'inference');
  f.known(inference, 'inference', [
    'maxBatch',
    'maxDelayMs',
    'overlap',
    'maxSlicesInFlight',
    'neighbourWaitMs',
  ]);
  const output = f.obj(root.output, 'output');
  f.known(output, 'output', ['zarr']);
  const alerts = f.obj(root.alerts, 'alerts');
  f.known(alerts, 'alerts', ['sinks', 'rules']);
  const sinksRaw = alerts.sinks ?? [{ stdout: {} }];
  if (!Array.isArray(sinksRaw))
    f.fail('alerts.sinks', 'must be a list, e.g. [{ jsonl: alerts.jsonl }, { stdout: {} }]');
  const sinks = (sinksRaw as unknown[]).map((raw, i) => sinkConfig(f, raw, i));
  const rulesRaw = f.obj(alerts.rules, 'alerts.rules');
  f.known(rulesRaw, 'alerts.rules', Object.keys(DEFAULT_ALERT_RULES));
  for (const [k, v] of Object.entries(rulesRaw))
    if (typeof v !== 'number') f.fail(`alerts.rules.${k}`, `must be a number, got ${JSON.stringify(v)}`);

  return {
    source: {
      ...(source.folder !== undefined && { folder: folderConfig(f, folder) }),
      ...(source.kafka !== undefined && { kafka: kafkaSourceConfig(f, source.kafka) }),
    },
    model: {
      name: f.str(model.name, 'model.name', CONFIG_DEFAULTS.model),
      precision: precision as Precision,
      provider: provider as Provider,
      threads: f.num(model.threads, 'model.threads', CONFIG_DEFAULTS.threads, 0, 1024, true),
      sessions: f.num(model.sessions, 'model.sessions', CONFIG_DEFAULTS.sessions, 0, 64, true),
      ...(model.modelsDir !== undefined && { modelsDir: f.str(model.modelsDir, 'model.modelsDir') }),
    },
    inference: {
      maxBatch: f.num(inference.maxBatch, 'inference.maxBatch', CONFIG_DEFAULTS.maxBatch, 1, 1024, true),
      maxDelayMs: f.num(inference.maxDelayMs, 'inference.maxDelayMs', CONFIG_DEFAULTS.maxDelayMs, 0, 10000),
      overlap: f.num(inference.overlap, 'inference.overlap', CONFIG_DEFAULTS.overlap, 0, 96, true),
      maxSlicesInFlight: f.num(
        inference.maxSlicesInFlight,
        'inference.maxSlicesInFlight',
        CONFIG_DEFAULTS.maxSlicesInFlight,
        1,
        256,
        true,
      ),
      neighbourWaitMs: f.num(
        inference.neighbourWaitMs,
        'inference.neighbourWaitMs',
        CONFIG_DEFAULTS.neighbourWaitMs,
        0,
        3_600_000,
        true,
      ),
    },
    output: { zarr: f.str(output.zarr, 'output.zarr') },
    alerts: { sinks, rules: resolveAlertRules(rulesRaw as Partial<AlertRules>) },
    shutdownTimeoutSeconds: f.num(
      root.shutdownTimeoutSeconds,
      'shutdownTimeoutSeconds',
      CONFIG_DEFAULTS.shutdownTimeoutSeconds,
      1,
      3600,
    ),
    ...(root.metrics !== undefined && {
      metrics: {
        port: f.num(metrics.port, 'metrics.port', 0, 0, 65535, true),
        host: f.str(metrics.host, 'metrics.host', '127.0.0.1'),
      },
    }),
    ...(root.maxScans !== undefined && { maxScans: f.num(root.maxScans, 'maxScans', 0, 1, 1e9, true) }),
  };
}

/** One entry of `alerts.sinks`: exactly one of jsonl, stdout, kafka. */
function sinkConfig(f: Fields, raw: unknown, i: number): SinkConfig {
  const key = `alerts.sinks[${i}]`;
  const s = f.obj(raw, key);
  const kinds = Object.keys(s);
  if (kinds.length !== 1)
    f.fail(key, `must have exactly one of jsonl, stdout, kafka; got ${kinds.join(', ') || 'none'}`);
  if ('jsonl' in s) return { type: 'jsonl', path: f.str(s.jsonl, `${key}.jsonl`) };
  if ('kafka' in s) {
    const k = f.obj(s.kafka, `${key}.kafka`);
    f.known(k, `${key}.kafka`, ['brokers', 'topic', 'scanEventsTopic', 'tls', 'sasl', 'schemaRegistry']);
    const registry =
      k.schemaRegistry === undefined ? undefined : f.str(k.schemaRegistry, `${key}.kafka.schemaRegistry`);
    if (registry !== undefined && !/^https?:\/\/[^/\s]+/.test(registry))
      f.fail(
        `${key}.kafka.schemaRegistry`,
        `"${registry}" is not an http(s):// URL, e.g. http://registry:8081`,
      );
    return {
      type: 'kafka',
      ...(registry !== undefined && { schemaRegistry: registry }),
      ...f.kafkaTopic(k, `${key}.kafka`, KAFKA_DEFAULTS.alertTopic),
      scanEventsTopic: f.topicName(
        k.scanEventsTopic,
        `${key}.kafka.scanEventsTopic`,
        KAFKA_DEFAULTS.scanEventsTopic,
      ),
    };
  }
  if ('stdout' in s) {
    const o = f.obj(s.stdout, `${key}.stdout`);
    f.known(o, `${key}.stdout`, ['format']);
    const format = f.str(o.format, `${key}.stdout.format`, 'auto');
    if (!['auto', 'json', 'text'].includes(format))
      f.fail(`${key}.stdout.format`, `"${format}" is not one of auto, json, text`);
    return { type: 'stdout', format: format as 'auto' | 'json' | 'text' };
  }
  return f.fail(`${key}.${kinds[0]}`, 'unknown sink; allowed: jsonl, stdout, kafka');
}

/** `source.folder`: the scanner's output folder and the watcher's timing. */
function folderConfig(f: Fields, folder: Obj): FolderSourceConfig {
  return {
    path: f.str(folder.path, 'source.folder.path'),
    idleTimeoutSeconds: f.num(
      folder.idleTimeoutSeconds,
      'source.folder.idleTimeoutSeconds',
      CONFIG_DEFAULTS.idleTimeoutSeconds,
      0.1,
      86400,
    ),
    missingSliceTimeoutSeconds: f.num(
      folder.missingSliceTimeoutSeconds,
      'source.folder.missingSliceTimeoutSeconds',
      CONFIG_DEFAULTS.missingSliceTimeoutSeconds,
      0.01,
      86400,
    ),
    stabilityMs: f.num(
      folder.stabilityMs,
      'source.folder.stabilityMs',
      CONFIG_DEFAULTS.stabilityMs,
      1,
      60000,
      true,
    ),
    followSymlinks: f.bool(folder.followSymlinks, 'source.folder.followSymlinks', false),
  };
}

/** `source.kafka`: brokers, topic and group of the slices, and the folders file references may use. */
function kafkaSourceConfig(f: Fields, raw: unknown): KafkaSourceConfig {
  const k = f.obj(raw, 'source.kafka');
  f.known(k, 'source.kafka', [
    'brokers',
    'topic',
    'group',
    'tls',
    'sasl',
    'fileRoots',
    'sessionTimeoutSeconds',
  ]);
  const roots = k.fileRoots ?? [];
  if (!Array.isArray(roots))
    f.fail('source.kafka.fileRoots', `must be a list of folders, got ${JSON.stringify(roots)}`);
  return {
    ...f.kafkaTopic(k, 'source.kafka', KAFKA_DEFAULTS.sliceTopic),
    group: f.str(k.group, 'source.kafka.group', KAFKA_DEFAULTS.group),
    sessionTimeoutSeconds: f.num(
      k.sessionTimeoutSeconds,
      'source.kafka.sessionTimeoutSeconds',
      CONFIG_DEFAULTS.sessionTimeoutSeconds,
      6,
      1800,
    ),
    fileRoots: (roots as unknown[]).map((r, i) => {
      const at = `source.kafka.fileRoots[${i}]`;
      if (typeof r !== 'string' || r.trim() === '')
        return f.fail(at, `must be a folder path, got ${JSON.stringify(r)}`);
      return r;
    }),
  };
}
