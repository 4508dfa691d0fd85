import { DEFAULT_ALERT_RULES } from '../alerts/alert-rules.ts';
import {
  CONFIG_DEFAULTS,
  KAFKA_DEFAULTS,
  type PipelineConfig,
  validatePipelineConfig,
} from '../config/pipeline-config.ts';
import { UsageError } from '../errors.ts';
import { PRECISIONS } from '../inference/load-model.ts';
import { PROVIDERS } from '../inference/open-onnx-session.ts';
import { parseKafkaUrl } from '../kafka/parse-kafka-url.ts';
import { choiceOption, intOption, positiveOption, stringOption } from './parse-options.ts';

type Values = Parameters<typeof stringOption>[0];

/**
 * The command line's flags over the pipeline `c` (a copy; `c` is not changed). A flag that only applies
 * to a source or sink the pipeline does not have is a usage error naming it.
 */
export function applyFlags(c: PipelineConfig, values: Values): PipelineConfig {
  const watch = stringOption(values, 'watch');
  const out = stringOption(values, 'out');
  const alerts = stringOption(values, 'alerts');
  const modelsDir = stringOption(values, 'models-dir');
  const next: PipelineConfig = structuredClone(c);
  if (watch !== undefined)
    next.source = {
      folder: {
        ...(next.source.folder ??
          validatePipelineConfig({ source: { folder: { path: watch } }, output: { zarr: '.' } }).source
            .folder!),
        path: watch,
      },
    };
  const source = stringOption(values, 'source');
  if (source !== undefined) {
    const endpoint = parseKafkaUrl(source, { option: '--source', defaultTopic: KAFKA_DEFAULTS.sliceTopic });
    next.source = {
      kafka: {
        ...endpoint,
        group: next.source.kafka?.group ?? KAFKA_DEFAULTS.group,
        fileRoots: next.source.kafka?.fileRoots ?? [],
        sessionTimeoutSeconds:
          next.source.kafka?.sessionTimeoutSeconds ?? CONFIG_DEFAULTS.sessionTimeoutSeconds,
      },
    };
  }
  const fileRoots = values['file-root'];
  if (Array.isArray(fileRoots)) {
    if (!next.source.kafka)
      throw new UsageError('--file-root applies to a Kafka source (--source kafka://…)', {
        option: '--file-root',
      });
    next.source.kafka.fileRoots = fileRoots.map(String);
  }
  const group = stringOption(values, 'group');
  if (group !== undefined) {
    if (!next.source.kafka)
      throw new UsageError('--group applies to a Kafka source (--source kafka://…)', { option: '--group' });
    next.source.kafka.group = group;
  }
  if (out !== undefined) next.output.zarr = out;
  if (stringOption(values, 'model') !== undefined) next.model.name = stringOption(values, 'model') as string;
  if (modelsDir !== undefined) next.model.modelsDir = modelsDir;
  next.model.precision = choiceOption(values, 'precision', PRECISIONS, next.model.precision);
  next.model.provider = choiceOption(values, 'provider', PROVIDERS, next.model.provider);
  next.model.threads = intOption(values, 'threads', next.model.threads, 0, 1024);
  next.model.sessions = intOption(values, 'sessions', next.model.sessions, 0, 64);
  next.inference.maxBatch = intOption(values, 'batch', next.inference.maxBatch, 1, 1024);
  next.inference.overlap = intOption(values, 'overlap', next.inference.overlap, 0, 96);
  if (stringOption(values, 'idle-timeout') !== undefined && next.source.folder)
    next.source.folder.idleTimeoutSeconds = positiveOption(
      values,
      'idle-timeout',
      CONFIG_DEFAULTS.idleTimeoutSeconds,
    );
  if (stringOption(values, 'metrics-port') !== undefined)
    next.metrics = {
      port: intOption(values, 'metrics-port', 0, 0, 65535),
      host: next.metrics?.host ?? '127.0.0.1',
    };
  if (stringOption(values, 'shutdown-timeout') !== undefined)
    next.shutdownTimeoutSeconds = positiveOption(
      values,
      'shutdown-timeout',
      CONFIG_DEFAULTS.shutdownTimeoutSeconds,
    );
  if (stringOption(values, 'max-scans') !== undefined)
    next.maxScans = intOption(values, 'max-scans', 1, 1, 1e9);
  if (alerts !== undefined)
    next.alerts.sinks =
      alerts === '-'
        ? [{ type: 'stdout', format: 'auto' }]
        : alerts.startsWith('kafka://')
          ? [
              {
                type: 'kafka',
                ...parseKafkaUrl(alerts, { option: '--alerts', defaultTopic: KAFKA_DEFAULTS.alertTopic }),
                scanEventsTopic: KAFKA_DEFAULTS.scanEventsTopic,
              },
            ]
          : [{ type: 'jsonl', path: alerts }];
  const registry = stringOption(values, 'schema-registry');
  if (registry !== undefined) {
    if (!/^https?:\/\/[^/\s]+/.test(registry))
      throw new UsageError(
        `--schema-registry ${registry}: expected an http(s):// URL, e.g. http://registry:8081`,
        {
          option: '--schema-registry',
        },
      );
    const kafka = next.alerts.sinks.filter((s) => s.type === 'kafka');
    if (kafka.length === 0)
      throw new UsageError('--schema-registry applies to Kafka alerts (--alerts kafka://…)', {
        option: '--schema-registry',
      });
    for (const s of kafka) s.schemaRegistry = registry;
  }
  next.alerts.rules ??= { ...DEFAULT_ALERT_RULES };
  return next;
}
