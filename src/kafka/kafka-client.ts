/**
 * The one module that imports `kafkajs`. Everything else takes a `KafkaClient` (the KafkaJS API) from
 * here, so a KafkaJS-compatible client can replace it in this file alone.
 */
import { readFileSync } from 'node:fs';
import type { ConnectionOptions } from 'node:tls';
import { Kafka, type LogEntry, logLevel, Partitioners, type RetryOptions, type SASLOptions } from 'kafkajs';
import { ConfigError } from '../errors.ts';
import type { Logger } from '../log.ts';
import { SASL_MECHANISMS, type SaslMechanism } from './parse-kafka-url.ts';

export type {
  Admin as KafkaAdmin,
  Consumer as KafkaConsumer,
  EachMessagePayload,
  IHeaders as KafkaHeaders,
  Kafka as KafkaClient,
  KafkaMessage,
  Producer as KafkaProducer,
} from 'kafkajs';

/**
 * KafkaJS's default partitioner (murmur2 like the Java client), named explicitly: the same key lands
 * on the same partition as with every other Kafka client, and KafkaJS 2 stops warning about it.
 */
export const keyPartitioner = Partitioners.DefaultPartitioner;

/** TLS and SASL for a real cluster. */
export interface KafkaSecurity {
  ssl?: ConnectionOptions | boolean;
  sasl?: SASLOptions;
}

/** Options for `createKafkaClient`. */
export interface KafkaClientOptions {
  brokers: string[];
  clientId?: string;
  log: Logger;
  security?: KafkaSecurity;
  /** How KafkaJS retries a failed request (per request, before the caller sees the error). */
  retry?: RetryOptions;
  connectionTimeoutMs?: number;
  requestTimeoutMs?: number;
}

/** Retries with exponential backoff: 100 ms doubling to 5 s, 8 times (about 20 s in all). */
export const DEFAULT_KAFKA_RETRY: Readonly<RetryOptions> = Object.freeze({
  initialRetryTime: 100,
  maxRetryTime: 5000,
  retries: 8,
});

/** A KafkaJS client that logs through our pino logger. Connects nothing until a producer or consumer does. */
export function createKafkaClient(options: KafkaClientOptions): Kafka {
  return new Kafka({
    clientId: options.clientId ?? 'xct-sentinel',
    brokers: options.brokers,
    ...options.security,
    retry: { ...DEFAULT_KAFKA_RETRY, ...options.retry },
    connectionTimeout: options.connectionTimeoutMs ?? 3000,
    requestTimeout: options.requestTimeoutMs ?? 30_000,
    logLevel: kafkaLogLevel(options.log),
    logCreator: () => (entry) => logKafkaEntry(options.log, entry),
  });
}

/**
 * TLS and SASL from the environment (and the URL's `?tls=`/`?sasl=`):
 * `XCT_KAFKA_TLS` (true/false), `XCT_KAFKA_TLS_CA_FILE`, `XCT_KAFKA_TLS_CERT_FILE`,
 * `XCT_KAFKA_TLS_KEY_FILE` (any file implies TLS), `XCT_KAFKA_SASL_MECHANISM`
 * (plain, scram-sha-256, scram-sha-512; default plain), `XCT_KAFKA_SASL_USERNAME`,
 * `XCT_KAFKA_SASL_PASSWORD`. ConfigError naming the variable when they do not add up.
 */
export function kafkaSecurityFromEnv(
  env: NodeJS.ProcessEnv = process.env,
  url: { tls?: boolean; sasl?: SaslMechanism } = {},
): KafkaSecurity {
  const security: KafkaSecurity = {};
  const files = {
    ca: 'XCT_KAFKA_TLS_CA_FILE',
    cert: 'XCT_KAFKA_TLS_CERT_FILE',
    key: 'XCT_KAFKA_TLS_KEY_FILE',
  };
  const tlsOptions: ConnectionOptions = {};
  for (const [field, name] of Object.entries(files) as [keyof typeof files, string][]) {
    const path = env[name];
    if (!path) continue;
    try {
      tlsOptions[field] = readFileSync(path);
    } catch (cause) {
      throw new ConfigError(`${name}=${path}: cannot read`, { option: name, path }, { cause });
    }
  }
  const envTls = env.XCT_KAFKA_TLS;
  if (envTls !== undefined && !['true', 'false', '1', '0', ''].includes(envTls))
    throw new ConfigError(`XCT_KAFKA_TLS=${envTls}: expected true or false`, { option: 'XCT_KAFKA_TLS' });
  const tlsWanted = url.tls ?? (envTls === 'true' || envTls === '1' || Object.keys(tlsOptions).length > 0);
  if (url.tls === false && Object.keys(tlsOptions).length > 0)
    throw new ConfigError('the URL says tls=false but XCT_KAFKA_TLS_*_FILE are set; drop one', {
      option: 'XCT_KAFKA_TLS_CA_FILE',
    });
  if (tlsWanted) security.ssl = Object.keys(tlsOptions).length > 0 ? tlsOptions : true;

  const username = env.XCT_KAFKA_SASL_USERNAME;
  const password = env.XCT_KAFKA_SASL_PASSWORD;
  const envMechanism = env.XCT_KAFKA_SASL_MECHANISM?.toLowerCase();
  if (envMechanism && !(SASL_MECHANISMS as readonly string[]).includes(envMechanism))
    throw new ConfigError(
      `XCT_KAFKA_SASL_MECHANISM=${envMechanism}: expected one of ${SASL_MECHANISMS.join(', ')}`,
      { option: 'XCT_KAFKA_SASL_MECHANISM' },
    );
  if (url.sasl && envMechanism && url.sasl !== envMechanism)
    throw new ConfigError(
      `the URL says sasl=${url.sasl} but XCT_KAFKA_SASL_MECHANISM=${envMechanism}; drop one`,
      { option: 'XCT_KAFKA_SASL_MECHANISM' },
    );
  const mechanism = (url.sasl ?? envMechanism) as SaslMechanism | undefined;
  if (username === undefined && password === undefined) {
    if (mechanism)
      throw new ConfigError(`SASL ${mechanism} needs XCT_KAFKA_SASL_USERNAME and XCT_KAFKA_SASL_PASSWORD`, {
        option: 'XCT_KAFKA_SASL_USERNAME',
      });
    return security;
  }
  if (!username || password === undefined)
    throw new ConfigError('set both XCT_KAFKA_SASL_USERNAME and XCT_KAFKA_SASL_PASSWORD, or neither', {
      option: username ? 'XCT_KAFKA_SASL_PASSWORD' : 'XCT_KAFKA_SASL_USERNAME',
    });
  security.sasl = { mechanism: mechanism ?? 'plain', username, password } as SASLOptions;
  return security;
}

/** Whether KafkaJS says repeating the operation may succeed (its `retriable` flag, never the message). */
export function isRetriableKafkaError(err: unknown): boolean {
  if (typeof err !== 'object' || err === null) return false;
  const e = err as { retriable?: unknown; name?: unknown; cause?: unknown };
  // KafkaJS gives up with a non-retriable "retries exceeded" wrapping the error it kept retrying:
  // whether trying again later may help is that error's call.
  if (e.name === 'KafkaJSNumberOfRetriesExceeded') return isRetriableKafkaError(e.cause);
  return e.retriable === true;
}

// KafkaJS logs one level louder than a daemon's log wants: every request it is about to retry is an
// error, every group join is info. One level down: its errors are our warnings (we raise our own
// error, with its cause, when a retried operation finally fails), its info our debug.
function kafkaLogLevel(log: Logger): logLevel {
  if (log.isLevelEnabled('debug')) return logLevel.INFO;
  if (log.isLevelEnabled('warn')) return logLevel.ERROR;
  return logLevel.NOTHING;
}

// Said at every idempotent producer's start when retries are finite. Ours are on purpose: an alert
// write must fail at last (so no offset is committed for it) rather than block the daemon forever,
// and a re-sent alert keeps its deterministic alertId, so consumers drop the duplicate.
const EXPECTED_WARNING = 'Limiting retries for the idempotent producer may invalidate EoS guarantees';

function logKafkaEntry(log: Logger, entry: LogEntry): void {
  const { message, timestamp: _timestamp, ...extra } = entry.log;
  const fields = { component: 'kafkajs', namespace: entry.namespace, ...extra };
  const level = entry.level === logLevel.WARN && message === EXPECTED_WARNING ? logLevel.DEBUG : entry.level;
  switch (level) {
    case logLevel.ERROR:
      log.warn(fields, `kafka: ${message}`);
      break;
    case logLevel.WARN:
      log.info(fields, `kafka: ${message}`);
      break;
    case logLevel.INFO:
      log.debug(fields, `kafka: ${message}`);
      break;
    default:
      log.trace(fields, `kafka: ${message}`);
  }
}
