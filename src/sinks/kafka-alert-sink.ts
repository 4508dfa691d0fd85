import type { DendriteAlert } from '../alerts/dendrite-alert.ts';
import { encodeAlert } from '../codecs/avro-alert.ts';
import type { EncodeAvroOptions } from '../codecs/avro-message.ts';
import { encodeScanEvent, type ScanEvent } from '../codecs/avro-scan-event.ts';
import { loadAvroSchemas } from '../codecs/avro-schemas.ts';
import { describeError, OutputError } from '../errors.ts';
import { ensureTopics } from '../kafka/ensure-topics.ts';
import {
  createKafkaClient,
  isRetriableKafkaError,
  type KafkaClient,
  type KafkaProducer,
  type KafkaSecurity,
  keyPartitioner,
} from '../kafka/kafka-client.ts';
import { registerSchema } from '../kafka/schema-registry.ts';
import type { Logger } from '../log.ts';
import type { AlertSink } from './alert-sink.ts';

/** Default topics (schemas/README.md). */
export const DEFAULT_ALERT_TOPIC = 'xct.dendrite-alerts';
export const DEFAULT_SCAN_EVENT_TOPIC = 'xct.scan-events';

export interface KafkaAlertSinkOptions {
  brokers: string[];
  topic?: string;
  /** Where scan events (started, progress, completed) go. */
  scanEventsTopic?: string;
  log: Logger;
  security?: KafkaSecurity;
  /** A client to use instead of one made from `brokers` (the sink does not own it). */
  client?: KafkaClient;
  /** Retries of connects and sends: KafkaJS backs off exponentially from `initialRetryTime` ms. */
  retry?: { retries?: number; initialRetryTime?: number; maxRetryTime?: number };
  /** Confluent Schema Registry framing instead of single-object encoding. */
  encoding?: { alert?: EncodeAvroOptions; scanEvent?: EncodeAvroOptions };
  /**
   * A Schema Registry (`http(s)://host:port`): the schemas are registered under `<topic>-value` at
   * start and messages carry the registry's framing (byte 0, schema id) instead of single-object.
   */
  schemaRegistryUrl?: string;
  /** Try CreateTopics at start (default true); refusals are logged and ignored. */
  createTopics?: boolean;
}

/** An alert sink on Kafka that can also publish scan lifecycle events. */
export interface KafkaAlertSink extends AlertSink, AsyncDisposable {
  /** Publish a scan event (key = scanId); resolves once the broker acknowledged it. */
  writeScanEvent(event: ScanEvent): Promise<void>;
}

/**
 * Alerts as Avro on a Kafka topic, key = scanId so one scan's alerts stay in order on one partition.
 * The producer is idempotent (one request in flight, acks from all in-sync replicas), so its own
 * retries never duplicate a message; `write` resolves only once the broker acknowledged it. Scan
 * events (started, progress, completed: the daemon sends them) go to `scanEventsTopic`.
 */
export async function createKafkaAlertSink(options: KafkaAlertSinkOptions): Promise<KafkaAlertSink> {
  const topic = options.topic ?? DEFAULT_ALERT_TOPIC;
  const scanEventsTopic = options.scanEventsTopic ?? DEFAULT_SCAN_EVENT_TOPIC;
  const { log } = options;
  const client =
    options.client ??
    createKafkaClient({
      brokers: options.brokers,
      log,
      ...(options.security && { security: options.security }),
      ...(options.retry && { retry: options.retry }),
    });
  let encoding = options.encoding;
  if (options.schemaRegistryUrl !== undefined) {
    const schemas = loadAvroSchemas();
    const [alertId, eventId] = await Promise.all([
      registerSchema(
        options.schemaRegistryUrl,
        `${topic}-value`,
        schemas['dendrite-alert'].current.type.schema(),
      ),
      registerSchema(
        options.schemaRegistryUrl,
        `${scanEventsTopic}-value`,
        schemas['scan-event'].current.type.schema(),
      ),
    ]);
    encoding = { alert: { confluentSchemaId: alertId }, scanEvent: { confluentSchemaId: eventId } };
    log.info(
      { registry: options.schemaRegistryUrl, alertSchemaId: alertId, scanEventSchemaId: eventId },
      `schemas registered at ${options.schemaRegistryUrl}: ${topic}-value id ${alertId}, ${scanEventsTopic}-value id ${eventId}`,
    );
  }
  if (options.createTopics !== false) {
    await ensureTopics(client, [{ topic }, { topic: scanEventsTopic }], log);
  }
  const producer: KafkaProducer = client.producer({
    idempotent: true,
    maxInFlightRequests: 1,
    allowAutoTopicCreation: true,
    createPartitioner: keyPartitioner,
    retry: { initialRetryTime: 100, maxRetryTime: 5000, retries: 8, ...options.retry },
  });
  try {
    await producer.connect();
  } catch (cause) {
    throw new OutputError(
      `cannot connect to Kafka at ${options.brokers.join(',')}: ${describeError(cause)}`,
      { topic, stage: 'sink' },
      { cause, canRetry: isRetriableKafkaError(cause) },
    );
  }

  // One send at a time, whatever the number of scans: KafkaJS's idempotent producer numbers its
  // batches per partition, and concurrent sends can race for the same sequence numbers.
  let tail: Promise<unknown> = Promise.resolve();
  const send = (target: string, scanId: string, value: Buffer, what: string): Promise<void> => {
    const sent = tail.then(() => sendNow(target, scanId, value, what));
    tail = sent.catch(() => undefined);
    return sent;
  };
  const sendNow = async (target: string, scanId: string, value: Buffer, what: string): Promise<void> => {
    try {
      await producer.send({ topic: target, acks: -1, messages: [{ key: scanId, value }] });
    } catch (cause) {
      throw new OutputError(
        `cannot publish ${what} to Kafka topic ${target}`,
        { topic: target, scanId, stage: 'sink' },
        { cause, canRetry: isRetriableKafkaError(cause) },
      );
    }
  };

  let closing: Promise<void> | undefined;
  const sink: KafkaAlertSink = {
    async write(alert: DendriteAlert) {
      if (closing) throw new OutputError('Kafka alert sink is closed', { topic, scanId: alert.scanId });
      await send(topic, alert.scanId, encodeAlert(alert, encoding?.alert), `alert ${alert.alertId}`);
    },
    async writeScanEvent(event: ScanEvent) {
      if (closing) throw new OutputError('Kafka alert sink is closed', { topic: scanEventsTopic });
      await send(
        scanEventsTopic,
        event.scanId,
        encodeScanEvent(event, encoding?.scanEvent),
        `${event.kind} event of scan ${event.scanId}`,
      );
    },
    close() {
      // KafkaJS's disconnect waits for the requests in flight, so close() drains.
      closing ??= producer.disconnect();
      return closing;
    },
    [Symbol.asyncDispose]() {
      return sink.close();
    },
  };
  return sink;
}
