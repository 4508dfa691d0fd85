import { setTimeout as sleep } from 'node:timers/promises';
import { describeError, SourceError } from '../errors.ts';
import type { Logger } from '../log.ts';
import {
  type EachMessagePayload,
  isRetriableKafkaError,
  type KafkaClient,
  type KafkaConsumer,
} from './kafka-client.ts';

/** Consumer crashes in a row (no successful join between them) that the member rejoins after. */
const MAX_RESTARTS = 5;

export interface GroupConsumerOptions {
  client: KafkaClient;
  brokers: readonly string[];
  topic: string;
  groupId: string;
  log: Logger;
  sessionTimeoutMs?: number;
  heartbeatIntervalMs?: number;
  rebalanceTimeoutMs?: number;
  fromBeginning?: boolean;
  eachMessage: (payload: EachMessagePayload) => Promise<void>;
  /** The partitions this member holds after each (re)join. */
  joined: (partitions: ReadonlySet<number>) => void;
  /** A problem while consuming (undefined: a fetch came back, it reads again). */
  health: (problem: string | undefined) => void;
  /** The consumer now in use (a rejoin replaces it): commits go through it. */
  current: (consumer: KafkaConsumer) => void;
  /** Whether the source is closing: no rejoin then. */
  closing: () => boolean;
  /** Consuming cannot go on (rejoins used up): the source's error. */
  failed: (err: unknown) => void;
}

/**
 * One member of the consumer group, kept in it: KafkaJS restarts its consumer after retriable
 * errors (a broker down, a moved leader); after any other crash (a rebalance answered with
 * INVALID_REQUEST, seen with librdkafka's mock) this rejoins with a new consumer, backing off, up to
 * MAX_RESTARTS crashes without a successful join in between. Slices already handed over finish as
 * usual; one read again is recognized as a duplicate.
 */
export function groupConsumer(o: GroupConsumerOptions): { start(): Promise<void> } {
  const { topic, groupId, log } = o;
  let crashes = 0;
  let consumer: KafkaConsumer | undefined;

  const start = async (): Promise<void> => {
    const c = o.client.consumer({
      groupId,
      maxWaitTimeInMs: 200,
      sessionTimeout: o.sessionTimeoutMs ?? 30_000,
      heartbeatInterval: o.heartbeatIntervalMs ?? 3000,
      ...(o.rebalanceTimeoutMs !== undefined && { rebalanceTimeout: o.rebalanceTimeoutMs }),
      // Only the messages we can take: large slices make a full default fetch hundreds of MB.
      maxBytesPerPartition: 64 * 1024 * 1024,
    });
    consumer = c;
    o.current(c);
    // A fetch that came back (empty or not): the partitions' leaders answer again. Not a join:
    // the group's coordinator may well answer while a leader is still down.
    c.on(c.events.FETCH, () => o.health(undefined));
    c.on(c.events.CRASH, ({ payload }) => {
      if (o.closing() || consumer !== c) return;
      const problem = `consuming ${topic} failed: ${describeError(payload.error)}`;
      o.health(problem);
      if (payload.restart) {
        log.warn({ topic, groupId, err: payload.error }, `${problem}; KafkaJS restarts the consumer`);
        return;
      }
      if (++crashes > MAX_RESTARTS) {
        o.failed(
          new SourceError(`consuming ${topic} failed`, { topic, stage: 'source' }, { cause: payload.error }),
        );
        return;
      }
      const delayMs = 500 * 2 ** (crashes - 1);
      log.warn(
        { topic, groupId, err: payload.error, attempt: crashes },
        `consuming ${topic} failed (${describeError(payload.error)}); rejoining group ${groupId} in ${delayMs} ms`,
      );
      void (async () => {
        await c.disconnect().catch(() => {});
        await sleep(delayMs);
        if (o.closing()) return;
        await start();
      })().catch((err: unknown) => o.failed(err));
    });
    c.on(c.events.GROUP_JOIN, ({ payload }) => {
      crashes = 0;
      const mine = new Set(payload.memberAssignment[topic] ?? []);
      o.joined(mine);
      log.info(
        { topic, groupId, partitions: [...mine] },
        `joined group ${groupId}: ${topic} partitions ${[...mine].join(', ') || 'none'}`,
      );
    });
    try {
      await c.connect();
      await c.subscribe({ topics: [topic], fromBeginning: o.fromBeginning ?? true });
      await c.run({ autoCommit: false, eachMessage: o.eachMessage });
    } catch (cause) {
      throw new SourceError(
        `cannot consume ${topic} from ${o.brokers.join(',')}`,
        { topic, stage: 'source' },
        { cause, canRetry: isRetriableKafkaError(cause) },
      );
    }
  };
  return { start };
}
