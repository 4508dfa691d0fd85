import { ConfigError } from '../errors.ts';
import { isTopicName, SASL_MECHANISMS, type SaslMechanism } from '../kafka/parse-kafka-url.ts';
import type { KafkaTopicConfig } from './pipeline-config.ts';

export type Obj = Record<string, unknown>;

/** Reads one pipeline file's values: each checked for its type and range, an error naming the key. */
export class Fields {
  constructor(readonly file: string) {}

  fail(key: string, why: string): never {
    throw new ConfigError(`${this.file}: ${key}: ${why}`, { path: this.file, option: key });
  }

  obj(v: unknown, key: string): Obj {
    if (v === undefined || v === null) return {};
    if (typeof v !== 'object' || Array.isArray(v))
      return this.fail(key, `must be a mapping, got ${JSON.stringify(v)}`);
    return v as Obj;
  }

  known(o: Obj, key: string, keys: string[]): void {
    for (const k of Object.keys(o))
      if (!keys.includes(k))
        this.fail(key ? `${key}.${k}` : k, `unknown key; allowed here: ${keys.join(', ')}`);
  }

  str(v: unknown, key: string, fallback?: string): string {
    if (v === undefined && fallback !== undefined) return fallback;
    if (typeof v !== 'string' || v.trim() === '')
      return this.fail(key, `must be a non-empty string, got ${JSON.stringify(v)}`);
    return v;
  }

  num(v: unknown, key: string, fallback: number, min: number, max: number, integer = false): number {
    if (v === undefined) return fallback;
    if (
      typeof v !== 'number' ||
      !Number.isFinite(v) ||
      (integer && !Number.isInteger(v)) ||
      v < min ||
      v > max
    )
      return this.fail(
        key,
        `${JSON.stringify(v)} is not allowed; use ${integer ? 'an integer' : 'a number'} from ${min} to ${max}`,
      );
    return v;
  }

  bool(v: unknown, key: string, fallback: boolean): boolean {
    if (v === undefined) return fallback;
    if (typeof v !== 'boolean') return this.fail(key, `must be true or false, got ${JSON.stringify(v)}`);
    return v;
  }

  topicName(v: unknown, key: string, fallback: string): string {
    const name = this.str(v, key, fallback);
    if (!isTopicName(name))
      this.fail(key, `"${name}" is not a Kafka topic name (1–249 of a-z A-Z 0-9 . _ -, not "." or "..")`);
    return name;
  }

  /** Brokers (HOST:PORT each), topic, TLS and SASL of a Kafka source or sink. */
  kafkaTopic(k: Obj, key: string, defaultTopic: string): KafkaTopicConfig {
    const brokers = k.brokers;
    if (!Array.isArray(brokers) || brokers.length === 0)
      this.fail(`${key}.brokers`, 'must be a list of HOST:PORT, e.g. [localhost:9092]');
    const list = (brokers as unknown[]).map((b, i) => {
      const at = `${key}.brokers[${i}]`;
      if (typeof b !== 'string') return this.fail(at, `must be HOST:PORT, got ${JSON.stringify(b)}`);
      const m = /^(\[[0-9a-fA-F:.]+\]|[^:[\]\s]+)(?::(\d+))?$/.exec(b.trim());
      if (!m) return this.fail(at, `"${b}" is not HOST:PORT`);
      if (m[2] === undefined) return this.fail(at, `"${b}" has no port; use HOST:PORT, e.g. ${b}:9092`);
      const port = Number(m[2]);
      if (!(port >= 1 && port <= 65535)) return this.fail(at, `"${b}": port ${port} is not from 1 to 65535`);
      return b.trim();
    });
    const sasl = k.sasl === undefined ? undefined : this.str(k.sasl, `${key}.sasl`);
    if (sasl !== undefined && !(SASL_MECHANISMS as readonly string[]).includes(sasl))
      this.fail(`${key}.sasl`, `"${sasl}" is not one of ${SASL_MECHANISMS.join(', ')}`);
    return {
      brokers: list,
      topic: this.topicName(k.topic, `${key}.topic`, defaultTopic),
      ...(k.tls !== undefined && { tls: this.bool(k.tls, `${key}.tls`, false) }),
      ...(sasl !== undefined && { sasl: sasl as SaslMechanism }),
    };
  }
}
