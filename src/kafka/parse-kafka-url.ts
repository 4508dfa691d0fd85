/**
 * `kafka://host:port[,host:port…][/topic][?tls=true&sasl=scram-sha-512]`: where a Kafka cluster is,
 * which topic, and whether to speak TLS / SASL. Credentials never go in the URL (it shows up in `ps`
 * and in logs): they come from the environment, see `kafkaSecurityFromEnv`.
 */
import { ConfigError, type ErrorContext, UsageError } from '../errors.ts';

/** The SASL mechanisms KafkaJS ships. */
export const SASL_MECHANISMS = ['plain', 'scram-sha-256', 'scram-sha-512'] as const;
export type SaslMechanism = (typeof SASL_MECHANISMS)[number];

/** A parsed Kafka URL. */
export interface KafkaEndpoint {
  /** `host:port` strings, as KafkaJS takes them. */
  brokers: string[];
  topic: string;
  /** Set only when the URL says `?tls=…`. */
  tls?: boolean;
  /** Set only when the URL says `?sasl=…`. */
  sasl?: SaslMechanism;
}

/** Where the text came from, so errors name the flag (usage error) or config key (config error). */
export interface KafkaUrlSource {
  /** `--alerts`, `--source`… (a usage error), or a config key path such as `alerts.kafka` (a config error). */
  option: string;
  /** The topic when the URL names none. */
  defaultTopic: string;
}

// Kafka's own rule (kafka.common.internals.Topic): 1–249 of these characters, not `.` or `..`.
const TOPIC = /^[a-zA-Z0-9._-]{1,249}$/;
const QUERY_KEYS = ['tls', 'sasl'] as const;

/** Parse a `kafka://` URL; a UsageError/ConfigError naming the option and the fix when it is not one. */
export function parseKafkaUrl(text: string, source: KafkaUrlSource): KafkaEndpoint {
  const fail = failFor(source.option, text);
  const match = /^kafka:\/\/([^/?#]*)(?:\/([^?#]*))?(?:\?([^#]*))?$/.exec(text.trim());
  if (!match) fail('expected kafka://HOST:PORT[,HOST:PORT][/TOPIC]');
  const [, authority = '', path = '', query] = match as RegExpExecArray;
  if (authority.includes('@'))
    fail(
      'credentials do not belong in the URL (it is visible in ps and logs); set XCT_KAFKA_SASL_USERNAME and XCT_KAFKA_SASL_PASSWORD',
    );
  const brokers = parseBrokerList(authority, source.option);
  let topic = source.defaultTopic;
  if (path !== '') {
    const decoded = decodeURIComponent(path);
    if (!isTopicName(decoded))
      fail(`"${decoded}" is not a Kafka topic name (1–249 of a-z A-Z 0-9 . _ -, not "." or "..")`);
    topic = decoded;
  }
  const endpoint: KafkaEndpoint = { brokers, topic };
  if (query !== undefined && query !== '') {
    const params = new URLSearchParams(query);
    for (const key of params.keys()) {
      if (!(QUERY_KEYS as readonly string[]).includes(key))
        fail(`unknown parameter "${key}" (known: ${QUERY_KEYS.join(', ')})`);
    }
    const tls = params.get('tls');
    if (tls !== null) {
      if (!['true', 'false', '1', '0'].includes(tls)) fail(`tls=${tls}: expected tls=true or tls=false`);
      endpoint.tls = tls === 'true' || tls === '1';
    }
    const sasl = params.get('sasl');
    if (sasl !== null) {
      if (!(SASL_MECHANISMS as readonly string[]).includes(sasl))
        fail(`sasl=${sasl}: expected one of ${SASL_MECHANISMS.join(', ')}`);
      endpoint.sasl = sasl as SaslMechanism;
    }
  }
  return endpoint;
}

/** `host:port[,host:port…]` (IPv6 hosts in brackets) as KafkaJS broker strings. */
export function parseBrokerList(text: string, option: string): string[] {
  const fail = failFor(option, text);
  const parts = text.split(',').map((p) => p.trim());
  if (parts.length === 0 || parts.some((p) => p === '')) fail('expected HOST:PORT[,HOST:PORT]');
  return parts.map((part) => {
    const m = /^(\[[0-9a-fA-F:.]+\]|[^:[\]\s]+):(\d+)$/.exec(part);
    if (!m) fail(`"${part}" is not HOST:PORT (the port is required, e.g. localhost:9092)`);
    const port = Number((m as RegExpExecArray)[2]);
    if (!(port >= 1 && port <= 65535)) fail(`"${part}": port ${port} is not from 1 to 65535`);
    return part;
  });
}

/** Whether Kafka accepts this as a topic name. */
export function isTopicName(name: string): boolean {
  return TOPIC.test(name) && name !== '.' && name !== '..';
}

function failFor(option: string, text: string) {
  return (problem: string): never => {
    const message = `${option} ${text}: ${problem}`;
    const context: ErrorContext = { option, stage: 'config' };
    throw option.startsWith('-') ? new UsageError(message, context) : new ConfigError(message, context);
  };
}
