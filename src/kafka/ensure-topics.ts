import { describeError } from '../errors.ts';
import type { Logger } from '../log.ts';
import type { KafkaClient } from './kafka-client.ts';

/** A topic to create if it is missing. */
export interface TopicSpec {
  topic: string;
  numPartitions?: number;
  configEntries?: { name: string; value: string }[];
}

/**
 * Try to create the topics; carry on when the broker refuses (no CreateTopics API, as in
 * librdkafka's mock, or no ACL for it): brokers that auto-create topics, or an operator who created
 * them (deploy/), make it unnecessary. Resolves to whether CreateTopics was accepted.
 */
export async function ensureTopics(
  client: KafkaClient,
  topics: TopicSpec[],
  log: Logger,
  options: { timeoutMs?: number } = {},
): Promise<boolean> {
  const admin = client.admin({ retry: { retries: 0 } });
  try {
    await admin.connect();
    await admin.createTopics({
      topics: topics.map((t) => ({ numPartitions: -1, replicationFactor: -1, ...t })),
      waitForLeaders: true,
      timeout: options.timeoutMs ?? 5000,
    });
    return true;
  } catch (err) {
    const names = topics.map((t) => t.topic);
    // Expected against brokers without CreateTopics or without the ACL: one line, the rest at debug.
    log.info(
      { topics: names, reason: describeError(err) },
      `could not create Kafka topics ${names.join(', ')} (${describeError(err)}); relying on auto-creation or the operator`,
    );
    log.debug({ topics: names, err }, 'CreateTopics refused');
    return false;
  } finally {
    await admin.disconnect().catch(() => undefined);
  }
}
