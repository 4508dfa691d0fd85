import { createHash, randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Subscription } from 'rxjs';
import t, { type Test } from 'tap';
import { encodeSlice } from '../../src/codecs/avro-slice.ts';
import { littleEndianBytes } from '../../src/codecs/dtype.ts';
import { silentLogger } from '../../src/log.ts';
import {
  type KafkaSliceSource,
  type KafkaSliceSourceOptions,
  kafkaSliceSource,
} from '../../src/sources/kafka-slice-source.ts';
import type { SourceEvent } from '../../src/sources/source-event.ts';
import { captureLog } from '../kafka/capture-log.ts';
import {
  API,
  KAFKA_ERR,
  type MockKafka,
  randomTopic,
  readTopic,
  startMockKafka,
} from '../kafka/mock-kafka.ts';
import { committedOffsets, produce, sliceRecord, testSlice, waitFor } from '../kafka/slice-fixtures.ts';

/** A source subscribed for the test, its events recorded, closed in teardown. */
function follow(t: Test, kafka: MockKafka, options: Partial<KafkaSliceSourceOptions> & { topic: string }) {
  const source: KafkaSliceSource = kafkaSliceSource({
    brokers: kafka.brokers,
    groupId: `g-${randomBytes(4).toString('hex')}`,
    log: silentLogger,
    drainTimeoutMs: 100,
    // The mock broker waits a session timeout (less 1 s) for members to rejoin after a member leaves.
    sessionTimeoutMs: 4000,
    heartbeatIntervalMs: 500,
    ...options,
  });
  const events: SourceEvent[] = [];
  let failure: unknown;
  const sub: Subscription = source.events.subscribe({
    next: (e) => events.push(e),
    error: (err: unknown) => {
      failure = err;
    },
  });
  t.teardown(async () => {
    sub.unsubscribe();
    await source.close();
  });
  const slices = () => events.filter((e) => e.type === 'slice');
  return { source, events, slices, failure: () => failure, sub };
}

t.test('slices become source events; offsets are committed only for finished slices', async (t) => {
  const kafka = await startMockKafka(t);
  const topic = randomTopic('slices');
  await kafka.createTopic(topic, 1);
  const groupId = `g-${randomBytes(4).toString('hex')}`;
  const sent = [0, 1, 2, 3].map((z) => testSlice('cell-1', z));
  await produce(kafka.brokers, topic, sent.map(sliceRecord));
  const { source, events, slices } = follow(t, kafka, { topic, groupId });
  await waitFor('4 slices and the scan end', () => events.some((e) => e.type === 'scan-end'));

  t.same(
    events.map((e) => e.type),
    ['scan-start', 'slice', 'slice', 'slice', 'slice', 'scan-end'],
  );
  t.match(events[0], {
    scanId: 'cell-1',
    meta: { expectedSlices: 4, voxelSizeUm: 0.65, width: 8, height: 8 },
  });
  t.match(events.at(-1), { type: 'scan-end', reason: 'expected-count', slices: 4, missing: [] });
  for (const [i, e] of slices().entries()) {
    if (e.type !== 'slice') continue;
    t.equal(e.z, i);
    t.same(
      Array.from(e.image?.data ?? []),
      Array.from(sent[i]?.pixels && 'data' in sent[i].pixels ? sent[i].pixels.data : []),
    );
  }

  const committed = async () => (await committedOffsets(kafka.brokers, groupId, topic)).get(0);
  t.equal(await committed(), '-1', 'nothing committed before the daemon finishes a slice');
  source.sliceDone({ scanId: 'cell-1', z: 0 });
  source.sliceDone({ scanId: 'cell-1', z: 1 });
  await waitFor('commit 2', async () => (await committed()) === '2');
  source.sliceDone({ scanId: 'cell-1', z: 3 });
  await new Promise((r) => setTimeout(r, 300));
  t.equal(await committed(), '2', 'slice 3 done before slice 2: the commit waits for 2');
  source.sliceDone({ scanId: 'cell-1', z: 2 });
  await waitFor('commit 3', async () => (await committed()) === '3');
  await new Promise((r) => setTimeout(r, 300));
  t.equal(await committed(), '3', 'slice 3 ended the scan: it waits for the scan summary');
  source.scanDone('cell-1');
  await waitFor('commit 4', async () => (await committed()) === '4');
});

t.test('a restarted consumer in the same group re-reads exactly the unfinished slices', async (t) => {
  const kafka = await startMockKafka(t);
  const topic = randomTopic('slices');
  await kafka.createTopic(topic, 1);
  const groupId = `g-${randomBytes(4).toString('hex')}`;
  await produce(
    kafka.brokers,
    topic,
    [0, 1, 2, 3, 4].map((z) => sliceRecord(testSlice('cell-2', z, { expected: 5 }))),
  );
  const first = follow(t, kafka, { topic, groupId, drainTimeoutMs: 100 });
  await waitFor('5 slices', () => first.slices().length === 5);
  first.source.sliceDone({ scanId: 'cell-2', z: 0 });
  first.source.sliceDone({ scanId: 'cell-2', z: 1 });
  first.sub.unsubscribe(); // a daemon stopped mid-scan: slices 2–4 never finish
  await first.source.close();

  const second = follow(t, kafka, { topic, groupId });
  await waitFor('3 slices again', () => second.slices().length === 3);
  await new Promise((r) => setTimeout(r, 500));
  t.same(
    second.slices().map((e) => (e.type === 'slice' ? e.z : -1)),
    [2, 3, 4],
    'slices 0 and 1 are not read again, none is lost',
  );
});

t.test('poison messages go to the dead-letter topic with their error; the rest flows', async (t) => {
  const kafka = await startMockKafka(t);
  const topic = randomTopic('slices');
  await kafka.createTopic(topic, 1);
  const base = t.testdir({ refs: {}, secret: { 'key.bin': 'k'.repeat(128) } });
  const dir = join(base, 'refs');
  const good = (z: number) => sliceRecord(testSlice('cell-3', z, { expected: 4 }));
  const valid = encodeSlice(testSlice('cell-3', 1, { expected: 4 }));
  const wrongSize = sliceRecord(testSlice('cell-3', 2, { size: 16, expected: 4 }));
  // A file reference whose bytes are not what its SHA-256 says.
  const refSlice = testSlice('cell-3', 2, { expected: 4 });
  const pixels = refSlice.pixels as { data: Uint16Array };
  const file = join(dir, 'slice-2.raw');
  const bytes = littleEndianBytes(pixels.data);
  await writeFile(file, bytes);
  const goodPixels = {
    width: 8,
    height: 8,
    dtype: 'uint16',
    endianness: 'little',
    path: file,
    offset: 0,
    length: bytes.byteLength,
    sha256: createHash('sha256').update(bytes).digest('hex'),
  } as const;
  const badRef = encodeSlice({ ...refSlice, pixels: { ...goodPixels, sha256: '0'.repeat(64) } });
  const goodRef = encodeSlice({ ...refSlice, pixels: goodPixels });
  await produce(kafka.brokers, topic, [
    good(0), // offset 0
    { key: 'cell-3', value: Buffer.from('not a slice at all') }, // 1: not our schema
    { key: 'cell-3', value: valid.subarray(0, valid.length - 40) }, // 2: truncated pixels
    good(1), // 3
    wrongSize, // 4: 16×16 in an 8×8 scan
    { key: 'cell-3', value: badRef }, // 5: file reference, wrong checksum
    { key: 'cell-3', value: goodRef }, // 6: file reference, right
    // 7: a file outside the file roots, the length it has, a digest guessed at
    {
      key: 'cell-3',
      value: encodeSlice({ ...refSlice, pixels: { ...goodPixels, path: join(base, 'secret', 'key.bin') } }),
    },
    good(3), // 8
  ]);
  const { events, slices } = follow(t, kafka, { topic, fileRoots: [dir] });
  await waitFor('the scan end', () => events.some((e) => e.type === 'scan-end'));
  t.same(
    slices().map((e) => (e.type === 'slice' ? e.z : -1)),
    [0, 1, 2, 3],
    'every good slice, the file reference among them, in order',
  );
  const fromRef = slices()[2];
  t.same(Array.from(fromRef?.type === 'slice' ? (fromRef.image?.data ?? []) : []), Array.from(pixels.data));
  t.equal(
    events.filter((e) => e.type === 'error').length,
    5,
    'each poison message is reported to the pipeline',
  );

  const dead = await readTopic({ brokers: kafka.brokers, topic: `${topic}.dlq`, count: 5 });
  t.equal(dead.length, 5);
  const header = (m: (typeof dead)[number], name: string) => m.headers?.[name]?.toString();
  t.same(
    dead.map((m) => header(m, 'xct-source-offset')).sort(),
    ['1', '2', '4', '5', '7'],
    'source offsets of the poison messages',
  );
  for (const m of dead) {
    t.equal(header(m, 'xct-source-topic'), topic);
    t.equal(header(m, 'xct-source-partition'), '0');
    t.equal(header(m, 'xct-error-code'), 'ERR_DECODE');
  }
  const errorAt = (offset: string) =>
    header(dead.find((m) => header(m, 'xct-source-offset') === offset) ?? dead[0]!, 'xct-error');
  t.match(errorAt('1'), /single-object/);
  t.match(errorAt('2'), /pixels|truncated|bytes/);
  t.match(errorAt('4'), /16×16, the scan's slices are 8×8/);
  t.match(errorAt('5'), /SHA-256/);
  t.notMatch(errorAt('5'), createHash('sha256').update(bytes).digest('hex'), 'no digest of the bytes read');
  t.match(errorAt('7'), /key\.bin: the slice message's file reference is outside the file roots/);
  t.same(
    dead.find((m) => header(m, 'xct-source-offset') === '1')?.value?.toString(),
    'not a slice at all',
    'the original bytes are kept',
  );
});

t.test('backpressure: no more than maxInFlight slices before the daemon finishes one', async (t) => {
  const kafka = await startMockKafka(t);
  const topic = randomTopic('slices');
  await kafka.createTopic(topic, 1);
  await produce(
    kafka.brokers,
    topic,
    [0, 1, 2, 3, 4].map((z) => sliceRecord(testSlice('cell-4', z, { expected: 5 }))),
  );
  const { source, slices } = follow(t, kafka, { topic, maxInFlight: 2 });
  await waitFor('2 slices', () => slices().length === 2);
  await new Promise((r) => setTimeout(r, 1000));
  t.equal(slices().length, 2, 'holds at 2 while none is finished');
  source.sliceDone({ scanId: 'cell-4', z: 0 });
  await waitFor('a third slice', () => slices().length === 3);
  await new Promise((r) => setTimeout(r, 300));
  t.equal(slices().length, 3, 'one finished, one more read');
});

t.test('unsubscribing leaves the group and stops reading', async (t) => {
  const kafka = await startMockKafka(t);
  const topic = randomTopic('slices');
  await kafka.createTopic(topic, 1);
  const groupId = `g-${randomBytes(4).toString('hex')}`;
  await produce(kafka.brokers, topic, [sliceRecord(testSlice('cell-5', 0, { expected: 3 }))]);
  const { source, slices, sub } = follow(t, kafka, { topic, groupId, drainTimeoutMs: 100 });
  await waitFor('1 slice', () => slices().length === 1);
  sub.unsubscribe();
  await source.close();
  await produce(kafka.brokers, topic, [sliceRecord(testSlice('cell-5', 1, { expected: 3 }))]);
  await new Promise((r) => setTimeout(r, 1000));
  t.equal(slices().length, 1, 'nothing read after unsubscribe');
  // Slice 0 was never finished, so a newcomer in the group reads it again, then slice 1.
  const next = follow(t, kafka, { topic, groupId });
  await waitFor('the newcomer reads both', () => next.slices().length === 2);
  t.same(
    next.slices().map((e) => (e.type === 'slice' ? e.z : -1)),
    [0, 1],
  );
});

t.test(
  'fetch and commit errors from the broker are retried: every slice once, every offset committed',
  async (t) => {
    const kafka = await startMockKafka(t);
    const topic = randomTopic('slices');
    await kafka.createTopic(topic, 1);
    const groupId = `g-${randomBytes(4).toString('hex')}`;
    await produce(
      kafka.brokers,
      topic,
      [0, 1, 2, 3, 4, 5].map((z) => sliceRecord(testSlice('cell-6', z, { expected: 6 }))),
    );
    await kafka.pushRequestErrors(API.Fetch, [
      KAFKA_ERR.NOT_LEADER_FOR_PARTITION,
      KAFKA_ERR.TRANSPORT,
      KAFKA_ERR.REQUEST_TIMED_OUT,
      KAFKA_ERR.NOT_LEADER_FOR_PARTITION,
    ]);
    const { log, entries } = captureLog('warn');
    const { source, events, slices } = follow(t, kafka, { topic, groupId, log });
    await waitFor('the scan end', () => events.some((e) => e.type === 'scan-end'), 30_000);
    await new Promise((r) => setTimeout(r, 500));
    t.same(
      slices().map((e) => (e.type === 'slice' ? e.z : -1)),
      [0, 1, 2, 3, 4, 5],
      'each slice once, in order',
    );
    t.ok(entries.length > 0, `the injected fetch errors were met (${entries.length} warning(s))`);

    const before = entries.length;
    await kafka.pushRequestErrors(API.OffsetCommit, [
      KAFKA_ERR.COORDINATOR_LOAD_IN_PROGRESS,
      KAFKA_ERR.REQUEST_TIMED_OUT,
    ]);
    for (let z = 0; z < 6; z++) source.sliceDone({ scanId: 'cell-6', z });
    source.scanDone('cell-6');
    await waitFor(
      'commit 6',
      async () => (await committedOffsets(kafka.brokers, groupId, topic)).get(0) === '6',
      30_000,
    );
    t.pass('committed past the last slice');
    t.ok(
      entries.slice(before).filter((e) => /OffsetCommit/.test(String(e.msg))).length >= 2,
      'both injected commit errors were met, and retried',
    );
  },
);
