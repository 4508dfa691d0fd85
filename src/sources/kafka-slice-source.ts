/**
 * The Kafka slice source: one consumer in the group, slices as source events, offsets committed
 * only for finished work (`OffsetCommitter`), poison messages to the dead-letter topic, a credit per
 * slice handed over (`SliceCredits`), consumers restarted after a failure KafkaJS does not retry.
 * Over 400 lines, and `kafkaSliceSource` over 150: its handlers still close over one consumer's
 * state; the next cut is the per-scan bookkeeping (sliceDone, scanDone, endScan) as its own unit.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { Observable, type Subscriber } from 'rxjs';
import type { SliceMessage } from '../codecs/avro-slice.ts';
import type { DecodedImage } from '../codecs/decode-tiff.ts';
import { DecodeError, describeError, isXctError, SourceError, type XctError } from '../errors.ts';
import { moveToDeadLetter } from '../kafka/dead-letter.ts';
import { ensureTopics } from '../kafka/ensure-topics.ts';
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
import { SliceCredits } from './slice-credits.ts';
import type { ScanMeta, SourceEvent } from './source-event.ts';

/** Default topic (schemas/README.md) and consumer group. */
export const DEFAULT_SLICE_TOPIC = 'xct.slices';
export const DEFAULT_SLICE_GROUP = 'xct-sentinel';

/** Consumer crashes in a row (no successful join between them) that the source rejoins after. */
const MAX_RESTARTS = 5;

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

interface Held {
  partition: number;
  offset: string;
}

interface ScanTrack {
  meta: ScanMeta;
  width: number;
  height: number;
  seen: Set<number>;
  /** Offsets per slice z still in work. */
  slices: Map<number, Held[]>;
  /** Offsets kept until the scan is complete: the slice that ended it, late duplicates. */
  untilComplete: Held[];
  ended: boolean;
  /** The message whose slice completed the expected count. */
  endedBy?: Held;
  idle?: NodeJS.Timeout;
}

/**
 * Slices from a Kafka topic (`schemas/slice.avsc`, pixels inline or as a file reference) as source
 * events, one consumer in group `groupId`. Offsets are committed only once the daemon says a slice is
 * finished (`sliceDone`); the slice that completes a scan only once the scan is (`scanDone`). A
 * message that is not a valid slice goes to the dead-letter topic with its error and source offset,
 * and the source goes on. At most `maxInFlight` slices are in the pipeline at once.
 */
export function kafkaSliceSource(options: KafkaSliceSourceOptions): KafkaSliceSource {
  const topic = options.topic ?? DEFAULT_SLICE_TOPIC;
  const groupId = options.groupId ?? DEFAULT_SLICE_GROUP;
  const deadLetterTopic = options.deadLetterTopic ?? `${topic}.dlq`;
  const maxInFlight = options.maxInFlight ?? 8;
  const idleTimeoutMs = options.idleTimeoutMs ?? 120_000;
  const drainTimeoutMs = options.drainTimeoutMs ?? 30_000;
  if (!(Number.isSafeInteger(maxInFlight) && maxInFlight >= 1))
    throw new SourceError(`maxInFlight must be an integer ≥ 1, got ${maxInFlight}`, { topic });
  const { log } = options;
  const client =
    options.client ??
    createKafkaClient({
      brokers: options.brokers,
      log,
      ...(options.security && { security: options.security }),
      ...(options.retry && { retry: options.retry }),
    });

  const scans = new Map<string, ScanTrack>();
  let consumer: KafkaConsumer | undefined;
  let producer: KafkaProducer | undefined;
  let subscriber: Subscriber<SourceEvent> | undefined;
  let inFlight = 0;
  const credits = options.credits ?? new SliceCredits();
  /** No pipeline gives credits back: `sliceDone` and `scanDone` do. */
  const ownCredits = options.credits === undefined;
  /** Ends a wait for a credit when the source closes. */
  const stopping = new AbortController();
  let closing = false;
  let closed: Promise<void> | undefined;

  const committer = new OffsetCommitter({ topic, log, consumer: () => consumer });
  const finish = (held: Held) => committer.finish(held);

  const sliceDone: KafkaSliceSource['sliceDone'] = ({ scanId, z }) => {
    const scan = scans.get(scanId);
    const held = scan?.slices.get(z);
    if (!scan || !held) return;
    scan.slices.delete(z);
    inFlight--;
    if (ownCredits) credits.give();
    // The slice that completed the scan waits for the scan: its summary is still to come, and a
    // restart must read that slice again to end the scan again.
    for (const h of held) {
      if (h === scan.endedBy) scan.untilComplete.push(h);
      else finish(h);
    }
  };

  const scanDone: KafkaSliceSource['scanDone'] = (scanId) => {
    const scan = scans.get(scanId);
    if (!scan) return;
    // Slices the daemon skipped (a failed scan) are finished too: the scan is over.
    for (const held of scan.slices.values()) {
      inFlight--;
      if (ownCredits) credits.give();
      for (const h of held) finish(h);
    }
    scan.slices.clear();
    for (const h of scan.untilComplete) finish(h);
    scan.untilComplete = [];
    if (scan.idle) clearTimeout(scan.idle);
  };

  const endScan = (scanId: string, scan: ScanTrack, reason: string) => {
    if (scan.ended) return;
    scan.ended = true;
    if (scan.idle) clearTimeout(scan.idle);
    const expected = scan.meta.expectedSlices ?? Math.max(0, ...scan.seen) + 1;
    const missing: number[] = [];
    for (let z = 0; z < expected; z++) if (!scan.seen.has(z)) missing.push(z);
    subscriber?.next({ type: 'scan-end', scanId, reason, slices: scan.seen.size, missing });
  };

  const deadLetter = async (payload: EachMessagePayload, error: XctError): Promise<void> => {
    if (!producer) return;
    await moveToDeadLetter(producer, payload, error, { topic, deadLetterTopic, log });
    subscriber?.next({
      type: 'error',
      ...(error.context.scanId !== undefined && { scanId: error.context.scanId }),
      error,
    });
  };

  const decode = ({ partition, message }: EachMessagePayload) =>
    readSliceMessage(
      message.value,
      { topic, partition, offset: message.offset },
      { fileRoots: options.fileRoots ?? [], scanSize: (scanId) => scans.get(scanId) },
    );

  const eachMessage = async (payload: EachMessagePayload): Promise<void> => {
    const { partition, message, heartbeat } = payload;
    // Backpressure: a credit per slice handed over; while none is free, wait, heartbeating once a
    // second so the group keeps us.
    let took = false;
    while (!closing) {
      took = await credits.take(maxInFlight, { signal: stopping.signal, timeoutMs: 1000 });
      if (took) break;
      await heartbeat();
    }
    // Closing: not handed on, not committed; the next owner of the partition reads it.
    if (closing) {
      if (took) credits.give();
      return;
    }
    committer.add(partition, message.offset);
    const held: Held = { partition, offset: message.offset };
    let decoded: { slice: SliceMessage; image: DecodedImage };
    try {
      decoded = await decode(payload);
    } catch (err) {
      const error = isXctError(err)
        ? err
        : new DecodeError(`cannot decode ${topic}[${partition}]@${message.offset}`, {}, { cause: err });
      await deadLetter(payload, error);
      credits.give();
      finish(held);
      return;
    }
    const { slice, image } = decoded;
    let scan = scans.get(slice.scanId);
    if (!scan) {
      const meta: ScanMeta = {
        width: image.width,
        height: image.height,
        ...(slice.expectedSlices !== null && { expectedSlices: slice.expectedSlices }),
        ...(slice.voxelSizeUm !== null && { voxelSizeUm: slice.voxelSizeUm }),
      };
      scan = {
        meta,
        width: image.width,
        height: image.height,
        seen: new Set(),
        slices: new Map(),
        untilComplete: [],
        ended: false,
      };
      scans.set(slice.scanId, scan);
      subscriber?.next({ type: 'scan-start', scanId: slice.scanId, meta });
    }
    const pending = scan.slices.get(slice.z);
    if (scan.seen.has(slice.z) || scan.ended) {
      // Read twice (a producer retry, a rebalance): the first copy's fate decides this one's.
      credits.give();
      if (pending) pending.push(held);
      else finish(held);
      log.debug(
        { scanId: slice.scanId, slice: slice.z, partition, offset: message.offset },
        'duplicate slice',
      );
      return;
    }
    scan.seen.add(slice.z);
    scan.slices.set(slice.z, [held]);
    inFlight++;
    if (scan.idle) clearTimeout(scan.idle);
    const s = scan;
    const scanId = slice.scanId;
    s.idle = setTimeout(() => endScan(scanId, s, 'idle-timeout'), idleTimeoutMs);
    s.idle.unref();
    const readyAt = Number(message.timestamp);
    subscriber?.next({
      type: 'slice',
      scanId,
      z: slice.z,
      readyAt: Number.isFinite(readyAt) && readyAt > 0 ? readyAt : Date.now(),
      image,
    });
    // A partition keeps a scan's slices in order, so the last z means no more will come, even when
    // this consumer took the scan over mid-way (its first slices went to another group member).
    const expected = s.meta.expectedSlices;
    if (expected !== undefined && (s.seen.size >= expected || slice.z === expected - 1)) {
      s.endedBy = held;
      endScan(scanId, s, 'expected-count');
    }
  };

  /** Consumer crashes since the last successful join; past MAX_RESTARTS the source fails. */
  let crashes = 0;

  /** Whether the last word to `onHealth` was a problem (kept across consumers: a rejoin clears it). */
  let unhealthy = false;
  const health = (problem: string | undefined) => {
    if (problem === undefined && !unhealthy) return;
    unhealthy = problem !== undefined;
    options.onHealth?.(problem);
  };

  const startConsumer = async (sub: Subscriber<SourceEvent>) => {
    const c = client.consumer({
      groupId,
      maxWaitTimeInMs: 200,
      sessionTimeout: options.sessionTimeoutMs ?? 30_000,
      heartbeatInterval: options.heartbeatIntervalMs ?? 3000,
      ...(options.rebalanceTimeoutMs !== undefined && { rebalanceTimeout: options.rebalanceTimeoutMs }),
      // Only the messages we can take: large slices make a full default fetch hundreds of MB.
      maxBytesPerPartition: 64 * 1024 * 1024,
    });
    consumer = c;
    // A fetch that came back (empty or not): the partitions' leaders answer again. Not a join:
    // the group's coordinator may well answer while a leader is still down.
    c.on(c.events.FETCH, () => health(undefined));
    c.on(c.events.CRASH, ({ payload }) => {
      if (closing || consumer !== c) return;
      const problem = `consuming ${topic} failed: ${describeError(payload.error)}`;
      if (payload.restart) {
        // KafkaJS restarts the consumer itself after a retriable error (a broker down, a moved leader).
        log.warn({ topic, groupId, err: payload.error }, `${problem}; KafkaJS restarts the consumer`);
        health(problem);
        return;
      }
      health(problem);
      // KafkaJS restarts itself after retriable errors only. A broker that answers a rebalance with
      // a non-retriable error (INVALID_REQUEST from a SyncGroup, seen with librdkafka's mock) would
      // otherwise leave the daemon running and reading nothing: rejoin with a new consumer. Slices
      // already handed over finish as usual; one read again is recognized as a duplicate.
      if (++crashes > MAX_RESTARTS) {
        sub.error(
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
        if (closing) return;
        await startConsumer(sub);
      })().catch((err: unknown) => sub.error(err));
    });
    c.on(c.events.GROUP_JOIN, ({ payload }) => {
      crashes = 0;
      const mine = new Set(payload.memberAssignment[topic] ?? []);
      // Partitions gone to another member: their uncommitted offsets are its to re-read.
      committer.retain(mine);
      log.info(
        { topic, groupId, partitions: [...mine] },
        `joined group ${groupId}: ${topic} partitions ${[...mine].join(', ') || 'none'}`,
      );
    });
    try {
      await c.connect();
      await c.subscribe({ topics: [topic], fromBeginning: options.fromBeginning ?? true });
      await c.run({ autoCommit: false, eachMessage });
    } catch (cause) {
      throw new SourceError(
        `cannot consume ${topic} from ${options.brokers.join(',')}`,
        { topic, stage: 'source' },
        { cause, canRetry: isRetriableKafkaError(cause) },
      );
    }
  };

  const start = async (sub: Subscriber<SourceEvent>) => {
    await ensureTopics(client, [{ topic }, { topic: deadLetterTopic }], log);
    producer = client.producer({
      idempotent: true,
      maxInFlightRequests: 1,
      createPartitioner: keyPartitioner,
    });
    await producer.connect().catch((cause: unknown) => {
      throw new SourceError(
        `cannot consume ${topic} from ${options.brokers.join(',')}`,
        { topic, stage: 'source' },
        { cause, canRetry: isRetriableKafkaError(cause) },
      );
    });
    await startConsumer(sub);
  };

  const close = (): Promise<void> => {
    closed ??= (async () => {
      closing = true;
      stopping.abort();
      for (const scan of scans.values()) if (scan.idle) clearTimeout(scan.idle);
      const c = consumer;
      if (c) {
        try {
          c.pause([{ topic }]);
        } catch {
          // not running yet: nothing to pause
        }
      }
      // Give the pipeline time to finish what it holds, so its offsets are committed now rather
      // than re-read by the next owner.
      const deadline = Date.now() + drainTimeoutMs;
      while (inFlight > 0 && Date.now() < deadline) await sleep(50);
      await committer.settle();
      await c
        ?.disconnect()
        .catch((err: unknown) => log.warn({ err }, `leaving group ${groupId}: ${describeError(err)}`));
      await producer
        ?.disconnect()
        .catch((err: unknown) =>
          log.warn({ err }, `closing the dead-letter producer: ${describeError(err)}`),
        );
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

  return { events, sliceDone, scanDone, close, [Symbol.asyncDispose]: close };
}
