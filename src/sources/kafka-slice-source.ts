/**
 * The Kafka slice source: one consumer in the group, slices as source events, offsets committed
 * only for finished work (`OffsetCommitter`), per-scan bookkeeping in `KafkaScanBook`, poison
 * messages to the dead-letter topic (`moveToDeadLetter`), a credit per slice handed over
 * (`SliceCredits`), the group membership kept through crashes (`groupConsumer`).
 * `kafkaSliceSource` holds the state one consumer and producer share (credits, closing, the
 * current consumer); the steps that need none of it are the functions after it.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { Observable, type Subscriber } from 'rxjs';
import type { SliceMessage } from '../codecs/avro-slice.ts';
import type { DecodedImage } from '../codecs/decode-tiff.ts';
import { DecodeError, describeError, isXctError, SourceError, type XctError } from '../errors.ts';
import { moveToDeadLetter } from '../kafka/dead-letter.ts';
import { ensureTopics } from '../kafka/ensure-topics.ts';
import { groupConsumer } from '../kafka/group-consumer.ts';
import {
  createKafkaClient,
  type EachMessagePayload,
  isRetriableKafkaError,
  type KafkaClient,
  type KafkaConsumer,
  type KafkaProducer,
  type KafkaSecurity,
  keyPartitioner,
} from '../kafka/kafka-client.ts';
import { OffsetCommitter } from '../kafka/offset-committer.ts';
import { readSliceMessage } from '../kafka/slice-message.ts';
import type { Logger } from '../log.ts';
import { type Held, KafkaScanBook } from './kafka-scan-book.ts';
import { SliceCredits } from './slice-credits.ts';
import type { SourceEvent } from './source-event.ts';

/** Default topic (schemas/README.md) and consumer group. */
export const DEFAULT_SLICE_TOPIC = 'xct.slices';
export const DEFAULT_SLICE_GROUP = 'xct-sentinel';

export interface KafkaSliceSourceOptions {
  brokers: string[];
  topic?: string;
  /** Daemons sharing a group share the topic's partitions, i.e. its scans. */
  groupId?: string;
  log: Logger;
  security?: KafkaSecurity;
  /** A client to use instead of one made from `brokers`. */
  client?: KafkaClient;
  /** Where poison messages go (default `<topic>.dlq`). */
  deadLetterTopic?: string;
  /** Slices handed to the pipeline and not yet done: the source stops reading at this many. */
  maxInFlight?: number;
  /**
   * The pipeline's credits (`runDaemon`'s `credits`): a slice is handed over only once fewer than
   * `maxInFlight` are out. The pipeline gives a credit back when a slice has left it, and also while
   * it holds one back for its successor, so live scans waiting for their next slices never fill the
   * window. Without them the source keeps its own, given back by `sliceDone` and `scanDone`.
   */
  credits?: SliceCredits;
  /** Where a group without committed offsets starts (default: the oldest message). */
  fromBeginning?: boolean;
  /** A scan without a new slice for this long ends (when its expected count never arrives). */
  idleTimeoutMs?: number;
  /**
   * The folders slice messages' file references may point into (relative ones resolve against the
   * first). None: a slice that refers to a file goes to the dead-letter topic, unread.
   */
  fileRoots?: readonly string[];
  sessionTimeoutMs?: number;
  heartbeatIntervalMs?: number;
  /** How long the group waits for its members to rejoin in a rebalance (KafkaJS default 60 s). */
  rebalanceTimeoutMs?: number;
  retry?: { retries?: number; initialRetryTime?: number; maxRetryTime?: number };
  /** On close, how long to wait for slices in the pipeline to finish (and be committed). */
  drainTimeoutMs?: number;
  /**
   * Told when consuming fails and KafkaJS (or this source) restarts the consumer: a broker down, a
   * partition without its leader, a rebalance the group answered with an error (`problem` says
   * which); and told `undefined` once a fetch succeeds again. The daemon's
   * readiness and metrics (DaemonStats.sourceProblem, sourceOutages) come from here.
   */
  onHealth?: (problem: string | undefined) => void;
}

/** What the daemon tells the source, so offsets are committed only for finished work. */
export interface KafkaSliceSource {
  /** Subscribe once: a consumer joins the group; unsubscribing stops reading and drains. */
  events: Observable<SourceEvent>;
  /** Slice z of the scan is finished: mask durable, alerts acknowledged (the daemon's onSliceDone). */
  sliceDone(slice: { scanId: string; z: number }): void;
  /** The scan is complete, its summary acknowledged (the daemon's onScanComplete). */
  scanDone(scanId: string): void;
  /** Stop reading, wait for slices in work (up to drainTimeoutMs), commit, leave the group. Idempotent. */
  close(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

/**
 * Slices from a Kafka topic (`schemas/slice.avsc`, pixels inline or as a file reference) as source
 * events, one consumer in group `groupId`. Offsets are committed only once the daemon says a slice is
 * finished (`sliceDone`); the slice that completes a scan only once the scan is (`scanDone`). A
 * message that is not a valid slice goes to the dead-letter topic with its error and source offset,
 * and the source goes on. At most `maxInFlight` slices are in the pipeline at once.
 */
export function kafkaSliceSource(options: KafkaSliceSourceOptions): KafkaSliceSource {
  const { topic, groupId, deadLetterTopic, maxInFlight, idleTimeoutMs, drainTimeoutMs } = settings(options);
  const { log } = options;
  const client =
    options.client ??
    createKafkaClient({
      brokers: options.brokers,
      log,
      ...(options.security && { security: options.security }),
      ...(options.retry && { retry: options.retry }),
    });

  let consumer: KafkaConsumer | undefined;
  let producer: KafkaProducer | undefined;
  let subscriber: Subscriber<SourceEvent> | undefined;
  const credits = options.credits ?? new SliceCredits();
  /** No pipeline gives credits back: `sliceDone` and `scanDone` do. */
  const ownCredits = options.credits === undefined;
  /** Ends a wait for a credit when the source closes. */
  const stopping = new AbortController();
  let closing = false;
  let closed: Promise<void> | undefined;
  /** The partitions of the latest join: a message of any other is not handed over. */
  let mine: ReadonlySet<number> | undefined;

  const committer = new OffsetCommitter({ topic, log, consumer: () => consumer });
  const finish = (held: Held) => committer.finish(held);

  const book = new KafkaScanBook({
    emit: (event) => subscriber?.next(event),
    finish,
    released: () => {
      if (ownCredits) credits.give();
    },
    idleTimeoutMs,
  });

  const eachMessage = async (payload: EachMessagePayload): Promise<void> => {
    const { partition, message } = payload;
    // Closing: not handed on, not committed; the next owner of the partition reads it.
    if (!(await awaitCredit(credits, maxInFlight, stopping.signal, payload.heartbeat))) return;
    // Its partition went to another member while this waited: that member reads it.
    if (mine && !mine.has(partition)) {
      credits.give();
      return;
    }
    committer.add(partition, message.offset);
    const held: Held = { partition, offset: message.offset };
    const decoded = await readOrDeadLetter(payload, {
      topic,
      deadLetterTopic,
      log,
      producer,
      fileRoots: options.fileRoots ?? [],
      book,
      emit: (event) => subscriber?.next(event),
    });
    if (!decoded) {
      credits.give();
      finish(held);
      return;
    }
    const { slice, image } = decoded;
    const timestamp = Number(message.timestamp);
    const readyAt = Number.isFinite(timestamp) && timestamp > 0 ? timestamp : Date.now();
    if (!book.take(slice, image, held, readyAt)) {
      credits.give();
      log.debug(
        { scanId: slice.scanId, slice: slice.z, partition, offset: message.offset },
        'duplicate slice',
      );
    }
  };

  const start = async (sub: Subscriber<SourceEvent>) => {
    await ensureTopics(client, [{ topic }, { topic: deadLetterTopic }], log);
    producer = await connectProducer(client, topic, options.brokers);
    await groupConsumer({
      client,
      brokers: options.brokers,
      topic,
      groupId,
      log,
      ...(options.sessionTimeoutMs !== undefined && { sessionTimeoutMs: options.sessionTimeoutMs }),
      ...(options.heartbeatIntervalMs !== undefined && { heartbeatIntervalMs: options.heartbeatIntervalMs }),
      ...(options.rebalanceTimeoutMs !== undefined && { rebalanceTimeoutMs: options.rebalanceTimeoutMs }),
      ...(options.fromBeginning !== undefined && { fromBeginning: options.fromBeginning }),
      eachMessage,
      // Partitions gone to another member: their uncommitted offsets are its to re-read, and their
      // scans its to finish.
      joined: (partitions) => {
        mine = partitions;
        committer.retain(partitions);
        book.handOver(partitions);
      },
      health: healthReporter(options.onHealth),
      current: (c) => {
        consumer = c;
      },
      closing: () => closing,
      failed: (err) => sub.error(err),
    }).start();
  };

  const close = (): Promise<void> => {
    closed ??= (async () => {
      closing = true;
      stopping.abort();
      book.stopTimers();
      const c = consumer;
      try {
        c?.pause([{ topic }]);
      } catch {
        // not running yet: nothing to pause
      }
      // Give the pipeline time to finish what it holds, so its offsets are committed now rather
      // than re-read by the next owner.
      const deadline = Date.now() + drainTimeoutMs;
      while (book.inFlight > 0 && Date.now() < deadline) await sleep(50);
      await committer.settle();
      await disconnect(c, `leaving group ${groupId}`, log);
      await disconnect(producer, 'closing the dead-letter producer', log);
    })();
    return closed;
  };

  const events = new Observable<SourceEvent>((sub) => {
    if (subscriber) {
      sub.error(new SourceError('a Kafka slice source can be subscribed once', { topic, stage: 'source' }));
      return;
    }
    subscriber = sub;
    start(sub).catch((err: unknown) => sub.error(err));
    return () => {
      void close();
    };
  });

  return {
    events,
    sliceDone: (slice) => book.sliceDone(slice),
    scanDone: (scanId) => book.scanDone(scanId),
    close,
    [Symbol.asyncDispose]: close,
  };
}

/**
 * A message's slice and pixels; or, for a message that is not a valid slice, undefined once it is
 * on the dead-letter topic (with its error and source offset) and the pipeline told.
 */
async function readOrDeadLetter(
  payload: EachMessagePayload,
  o: {
    topic: string;
    deadLetterTopic: string;
    log: Logger;
    producer: KafkaProducer | undefined;
    fileRoots: readonly string[];
    book: KafkaScanBook;
    emit: (event: SourceEvent) => void;
  },
): Promise<{ slice: SliceMessage; image: DecodedImage } | undefined> {
  const { partition, message } = payload;
  try {
    return await readSliceMessage(
      message.value,
      { topic: o.topic, partition, offset: message.offset },
      { fileRoots: o.fileRoots, scanSize: (scanId) => o.book.size(scanId) },
    );
  } catch (err) {
    const error: XctError = isXctError(err)
      ? err
      : new DecodeError(`cannot decode ${o.topic}[${partition}]@${message.offset}`, {}, { cause: err });
    if (!o.producer) return undefined;
    await moveToDeadLetter(o.producer, payload, error, o);
    o.emit({
      type: 'error',
      ...(error.context.scanId !== undefined && { scanId: error.context.scanId }),
      error,
    });
    return undefined;
  }
}

/** The options with their defaults, checked. */
function settings(options: KafkaSliceSourceOptions) {
  const topic = options.topic ?? DEFAULT_SLICE_TOPIC;
  const maxInFlight = options.maxInFlight ?? 8;
  if (!(Number.isSafeInteger(maxInFlight) && maxInFlight >= 1))
    throw new SourceError(`maxInFlight must be an integer ≥ 1, got ${maxInFlight}`, { topic });
  return {
    topic,
    groupId: options.groupId ?? DEFAULT_SLICE_GROUP,
    deadLetterTopic: options.deadLetterTopic ?? `${topic}.dlq`,
    maxInFlight,
    idleTimeoutMs: options.idleTimeoutMs ?? 120_000,
    drainTimeoutMs: options.drainTimeoutMs ?? 30_000,
  };
}

/**
 * Wait for a credit to hand a slice over, heartbeating once a second so the group keeps this
 * member. False once `signal` aborts (the source closing): then no credit is held.
 */
async function awaitCredit(
  credits: SliceCredits,
  window: number,
  signal: AbortSignal,
  heartbeat: () => Promise<void>,
): Promise<boolean> {
  while (!signal.aborted) {
    if (await credits.take(window, { signal, timeoutMs: 1000 })) {
      if (!signal.aborted) return true;
      credits.give();
      return false;
    }
    await heartbeat();
  }
  return false;
}

/** The producer for the dead-letter topic; failing to connect is the source failing to start. */
async function connectProducer(client: KafkaClient, topic: string, brokers: readonly string[]) {
  const producer = client.producer({
    idempotent: true,
    maxInFlightRequests: 1,
    createPartitioner: keyPartitioner,
  });
  await producer.connect().catch((cause: unknown) => {
    throw new SourceError(
      `cannot consume ${topic} from ${brokers.join(',')}`,
      { topic, stage: 'source' },
      { cause, canRetry: isRetriableKafkaError(cause) },
    );
  });
  return producer;
}

/**
 * `onHealth`, told only of changes: a problem each time, its end once (the state is kept across
 * consumers, so a rejoin clears it).
 */
function healthReporter(onHealth: ((problem: string | undefined) => void) | undefined) {
  let unhealthy = false;
  return (problem: string | undefined) => {
    if (problem === undefined && !unhealthy) return;
    unhealthy = problem !== undefined;
    onHealth?.(problem);
  };
}

/** Disconnect a consumer or producer at close; a failure is logged, not thrown. */
async function disconnect(
  client: { disconnect(): Promise<void> } | undefined,
  what: string,
  log: Logger,
): Promise<void> {
  await client?.disconnect().catch((err: unknown) => log.warn({ err }, `${what}: ${describeError(err)}`));
}
