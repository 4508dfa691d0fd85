/**
 * A real Kafka-protocol broker for tests: librdkafka's mock cluster on loopback, through the small C
 * program beside this file (compiled here, once per source version, against librdkafka-dev, which
 * .ci/run installs). Each test gets its own cluster on ephemeral ports, torn down with the test.
 * There is no skip: without a C compiler or librdkafka-dev the tests fail and say what to install.
 */
import { type ChildProcessWithoutNullStreams, execFile, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { rename, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { Kafka, type KafkaMessage, logLevel } from 'kafkajs';

const SOURCE = fileURLToPath(new URL('./mock-cluster.c', import.meta.url));

/** Kafka protocol ApiKeys the tests inject errors into. */
export const API = Object.freeze({ Produce: 0, Fetch: 1, OffsetCommit: 8, Metadata: 3, InitProducerId: 22 });
/** Kafka error codes (retriable ones: the client must retry them). */
export const KAFKA_ERR = Object.freeze({
  NOT_LEADER_FOR_PARTITION: 6,
  REQUEST_TIMED_OUT: 7,
  NOT_ENOUGH_REPLICAS: 19,
  NOT_ENOUGH_REPLICAS_AFTER_APPEND: 20,
  COORDINATOR_LOAD_IN_PROGRESS: 14,
  /** librdkafka's "disconnect the client" pseudo-error. */
  TRANSPORT: -195,
});

/** Where the compiled mock lives: keyed by the source's hash, so an edit recompiles. */
export async function buildMockCluster(): Promise<string> {
  const hash = createHash('sha256').update(readFileSync(SOURCE)).digest('hex').slice(0, 16);
  const binary = join(tmpdir(), `xct-sentinel-mock-cluster-${hash}`);
  if (existsSync(binary)) return binary;
  // Compile to a private name, then rename: parallel test files never see a half-written binary.
  const partial = `${binary}.${process.pid}.${randomBytes(4).toString('hex')}`;
  try {
    await promisify(execFile)('cc', ['-O1', '-o', partial, SOURCE, '-lrdkafka']);
  } catch (err) {
    const stderr = (err as { stderr?: string }).stderr ?? String(err);
    await rm(partial, { force: true });
    throw new Error(
      `cannot compile ${SOURCE}: install a C compiler and librdkafka-dev (.ci/run does: apt-get install librdkafka-dev)\n${stderr}`,
    );
  }
  await rename(partial, binary);
  return binary;
}

/** A running mock cluster. */
export interface MockKafka {
  /** `host:port` of each broker. */
  brokers: string[];
  /** `kafka://` URL for the CLI, optionally with a topic. */
  url(topic?: string): string;
  /** Create a topic with this many partitions (the mock has no CreateTopics API). */
  createTopic(name: string, partitions: number): Promise<void>;
  /** Fail the next requests of one ApiKey with these Kafka error codes, in order. */
  pushRequestErrors(apiKey: number, codes: number[]): Promise<void>;
  setBrokerDown(id: number): Promise<void>;
  setBrokerUp(id: number): Promise<void>;
  /** Delay every response of one broker (-1: all) by this many milliseconds. */
  setRtt(id: number, ms: number): Promise<void>;
  /** Make a broker the leader of one partition (the mock never moves leaders by itself). */
  setLeader(topic: string, partition: number, id: number): Promise<void>;
  /** Make a broker the coordinator of a consumer group. */
  setGroupCoordinator(groupId: string, id: number): Promise<void>;
  stop(): Promise<void>;
}

/** What `startMockKafka` needs of a tap test: a teardown. */
interface HasTeardown {
  teardown(fn: () => unknown): void;
}

/** Start a mock cluster of `brokers` brokers, stopped in the test's teardown. */
export async function startMockKafka(t: HasTeardown, options: { brokers?: number } = {}): Promise<MockKafka> {
  const binary = await buildMockCluster();
  const child: ChildProcessWithoutNullStreams = spawn(binary, [String(options.brokers ?? 3)], {
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => {
    stderr += d;
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.stdin.end();
    const timer = setTimeout(() => child.kill('SIGKILL'), 2000);
    await exited;
    clearTimeout(timer);
  };
  t.teardown(stop);

  const lines = createInterface({ input: child.stdout });
  const waiting: ((line: string) => void)[] = [];
  const buffered: string[] = [];
  lines.on('line', (line) => {
    const next = waiting.shift();
    if (next) next(line);
    else buffered.push(line);
  });
  const nextLine = (what: string) =>
    new Promise<string>((resolve, reject) => {
      const early = buffered.shift();
      if (early !== undefined) return resolve(early);
      const timer = setTimeout(
        () => reject(new Error(`mock cluster: no answer to ${what}; ${stderr}`)),
        10_000,
      );
      waiting.push((line) => {
        clearTimeout(timer);
        resolve(line);
      });
    });
  // Commands are answered in order; chain them so answers match their commands.
  let queue: Promise<unknown> = Promise.resolve();
  const command = (text: string): Promise<void> => {
    const run = queue.then(async () => {
      child.stdin.write(`${text}\n`);
      const answer = await nextLine(text);
      if (answer !== 'ok') throw new Error(`mock cluster: ${text}: ${answer}`);
    });
    queue = run.catch(() => undefined);
    return run;
  };

  const first = await nextLine('start');
  const match = /^bootstraps (\S+)$/.exec(first);
  if (!match) throw new Error(`mock cluster: unexpected first line "${first}"; ${stderr}`);
  const brokers = (match[1] as string).split(',');
  return {
    brokers,
    url: (topic) => `kafka://${brokers.join(',')}${topic ? `/${topic}` : ''}`,
    createTopic: (name, partitions) => command(`topic ${name} ${partitions}`),
    pushRequestErrors: (apiKey, codes) => command(`errors ${apiKey} ${codes.join(' ')}`),
    setBrokerDown: (id) => command(`down ${id}`),
    setBrokerUp: (id) => command(`up ${id}`),
    setRtt: (id, ms) => command(`rtt ${id} ${ms}`),
    setLeader: (topic, partition, id) => command(`leader ${topic} ${partition} ${id}`),
    setGroupCoordinator: (groupId, id) => command(`coordinator group ${groupId} ${id}`),
    stop,
  };
}

/** A topic name no other test uses. */
export function randomTopic(prefix = 'xct.test'): string {
  return `${prefix}.${randomBytes(6).toString('hex')}`;
}

/**
 * Read `count` messages from `topic` from the beginning with a plain KafkaJS consumer (none of the
 * project's code), then wait `settleMs` more to catch any extra (duplicate) message.
 */
export async function readTopic(options: {
  brokers: string[];
  topic: string;
  count: number;
  timeoutMs?: number;
  settleMs?: number;
}): Promise<KafkaMessage[]> {
  const kafka = new Kafka({ clientId: 'test-reader', brokers: options.brokers, logLevel: logLevel.NOTHING });
  // Short fetch waits: disconnect waits for the fetch in flight.
  const consumer = kafka.consumer({
    groupId: `test-reader-${randomBytes(6).toString('hex')}`,
    maxWaitTimeInMs: 100,
  });
  const messages: KafkaMessage[] = [];
  await consumer.connect();
  try {
    await consumer.subscribe({ topics: [options.topic], fromBeginning: true });
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () =>
          reject(
            new Error(
              `read ${messages.length} of ${options.count} messages from ${options.topic} in ${options.timeoutMs ?? 30_000} ms`,
            ),
          ),
        options.timeoutMs ?? 30_000,
      );
      consumer
        .run({
          eachMessage: async ({ message }) => {
            messages.push(message);
            if (messages.length === options.count) {
              clearTimeout(timer);
              setTimeout(resolve, options.settleMs ?? 500);
            }
          },
        })
        .catch(reject);
    });
  } finally {
    await consumer.disconnect();
  }
  return messages;
}
