import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import t from 'tap';
import { isXctError } from '../../src/errors.ts';
import { silentLogger } from '../../src/log.ts';
import { createKafkaAlertSink } from '../../src/sinks/kafka-alert-sink.ts';
import { dendriteAlert, summaryAlert } from '../kafka/alert-fixtures.ts';
import { captureLog } from '../kafka/capture-log.ts';
import { API, KAFKA_ERR, randomTopic, readTopic, startMockKafka } from '../kafka/mock-kafka.ts';
import { decodePlain, plainType } from '../kafka/plain-avro.ts';

t.test('alerts land on the topic as Avro any consumer decodes from the .avsc alone', async (t) => {
  const kafka = await startMockKafka(t);
  const topic = randomTopic('alerts');
  const scanEventsTopic = randomTopic('scan-events');
  const sink = await createKafkaAlertSink({
    brokers: kafka.brokers,
    topic,
    scanEventsTopic,
    log: silentLogger,
  });
  t.teardown(() => sink.close());
  const written = [
    dendriteAlert('cell-A', 1),
    dendriteAlert('cell-B', 7, 'critical'),
    summaryAlert('cell-A'),
  ];
  for (const alert of written) await sink.write(alert);

  const messages = await readTopic({ brokers: kafka.brokers, topic, count: written.length });
  t.equal(messages.length, written.length, 'no message more, none less');
  const type = plainType('dendrite-alert');
  const byId = new Map(messages.map((m) => [decodePlain(type, m.value).alertId as string, m]));
  for (const alert of written) {
    const message = byId.get(alert.alertId);
    if (!message) {
      t.fail(`alert ${alert.alertId} is not on the topic`);
      continue;
    }
    t.equal(message.key?.toString(), alert.scanId, 'key = scanId');
    const record = decodePlain(type, message.value);
    // The one documented difference: Avro enum symbols cannot hold '-'.
    t.same(record, { ...alert, kind: alert.kind === 'scan-summary' ? 'scan_summary' : alert.kind });
  }

  const summary = summaryAlert('cell-A');
  await sink.writeScanEvent({
    scanId: 'cell-A',
    kind: 'completed',
    at: summary.raisedAt,
    acquiredSlices: 320,
    expectedSlices: 320,
    sampleId: 'Li|PEO|Li-7',
    voxelSizeUm: 0.65,
    scanProgress: 1,
    width: 480,
    height: 512,
    endReason: 'done-marker',
    summary: summary.summary,
    summaryAlertId: summary.alertId,
    failure: null,
  });
  const events = await readTopic({ brokers: kafka.brokers, topic: scanEventsTopic, count: 1 });
  t.equal(events.length, 1, 'the scan event, on its own topic');
  const event = decodePlain(plainType('scan-event'), events[0]?.value ?? null);
  t.equal(events[0]?.key?.toString(), 'cell-A', 'key = scanId');
  t.match(event, {
    scanId: 'cell-A',
    kind: 'completed',
    acquiredSlices: 320,
    expectedSlices: 320,
    endReason: 'done-marker',
    summaryAlertId: summary.alertId,
    width: 480,
    height: 512,
    summary: { dendriteCount: 3, missingSlices: [57, 203] },
  });
});

t.test('produce errors from the broker are retried: every alert once, in order', async (t) => {
  const kafka = await startMockKafka(t);
  const topic = randomTopic('alerts');
  // One partition, so the order on the topic is the order of acknowledged writes.
  await kafka.createTopic(topic, 1);
  const { log, entries } = captureLog('warn');
  const sink = await createKafkaAlertSink({
    brokers: kafka.brokers,
    topic,
    log,
    createTopics: false,
    retry: { initialRetryTime: 20, retries: 10 },
  });
  t.teardown(() => sink.close());
  await kafka.pushRequestErrors(API.Produce, [
    KAFKA_ERR.NOT_LEADER_FOR_PARTITION,
    KAFKA_ERR.REQUEST_TIMED_OUT,
    KAFKA_ERR.NOT_ENOUGH_REPLICAS,
    KAFKA_ERR.TRANSPORT,
    KAFKA_ERR.NOT_ENOUGH_REPLICAS_AFTER_APPEND,
  ]);
  const written = Array.from({ length: 6 }, (_, i) => dendriteAlert('cell-R', i + 1));
  for (const alert of written) await sink.write(alert);
  const messages = await readTopic({ brokers: kafka.brokers, topic, count: written.length, settleMs: 1000 });
  const type = plainType('dendrite-alert');
  t.same(
    messages.map((m) => decodePlain(type, m.value).alertId),
    written.map((a) => a.alertId),
  );
  // The injected errors did reach the producer: KafkaJS logs each error response (as our warning).
  // (The dropped connection shows up less reliably: it may close between requests.)
  const responses = entries.map((e) => String(e.error ?? ''));
  for (const error of [
    /not the leader/,
    /request timed out/,
    /rejected since there are fewer in-sync replicas/,
    /written to the log, but to fewer in-sync replicas/,
  ]) {
    t.ok(
      responses.some((r) => error.test(r)),
      `met and retried: ${error.source}`,
    );
  }
  t.notOk(
    entries.some((e) => (e.level as number) >= 50),
    'retried broker errors are warnings, not errors',
  );
});

t.test('write rejects with an OutputError naming topic and scan when the broker stays away', async (t) => {
  const kafka = await startMockKafka(t, { brokers: 1 });
  const topic = randomTopic('alerts');
  await kafka.createTopic(topic, 1);
  const sink = await createKafkaAlertSink({
    brokers: kafka.brokers,
    topic,
    log: silentLogger,
    createTopics: false,
    retry: { initialRetryTime: 20, maxRetryTime: 50, retries: 2 },
  });
  t.teardown(() => sink.close());
  await sink.write(dendriteAlert('cell-D', 1));
  await kafka.pushRequestErrors(API.Produce, Array(20).fill(KAFKA_ERR.NOT_ENOUGH_REPLICAS));
  const err = await sink.write(dendriteAlert('cell-D', 2)).then(
    () => undefined,
    (e: unknown) => e,
  );
  t.ok(isXctError(err, 'ERR_OUTPUT'), `an OutputError, got ${String(err)}`);
  if (isXctError(err)) {
    t.match(err.context, { topic, scanId: 'cell-D', stage: 'sink' });
    t.equal(err.canRetry, true, 'a broker error that may pass');
    t.ok(err.cause, 'keeps the KafkaJS error as its cause');
  }
});

t.test('close drains, is idempotent, and later writes fail loudly', async (t) => {
  const kafka = await startMockKafka(t, { brokers: 1 });
  const sink = await createKafkaAlertSink({
    brokers: kafka.brokers,
    topic: randomTopic(),
    log: silentLogger,
  });
  await sink.write(dendriteAlert('cell-C', 1));
  await Promise.all([sink.close(), sink.close()]);
  await sink.close();
  await t.rejects(sink.write(dendriteAlert('cell-C', 2)), { code: 'ERR_OUTPUT' });
});

t.test('an unreachable broker fails at start with an OutputError', async (t) => {
  // A port nothing listens on: start a cluster, note a broker, stop it.
  const kafka = await startMockKafka(t, { brokers: 1 });
  const brokers = kafka.brokers;
  await kafka.stop();
  await t.rejects(
    createKafkaAlertSink({
      brokers,
      topic: randomTopic(),
      log: silentLogger,
      createTopics: false,
      retry: { retries: 1, initialRetryTime: 10 },
    }),
    { code: 'ERR_OUTPUT', message: /cannot connect to Kafka/ },
  );
});

t.test('with a schema registry: schemas registered per topic, messages in its framing', async (t) => {
  // The registry is a peer here, not the thing under test: a minimal one that answers the one call
  // the sink makes (POST /subjects/<subject>/versions) the way Confluent's does.
  const registered: { subject: string; schema: string }[] = [];
  const registry = createServer((req, res) => {
    let body = '';
    req.on('data', (d: Buffer) => {
      body += d;
    });
    req.on('end', () => {
      const m = /^\/subjects\/([^/]+)\/versions$/.exec(req.url ?? '');
      if (req.method !== 'POST' || !m) {
        res.writeHead(404).end('{"error_code":404}');
        return;
      }
      registered.push({ subject: decodeURIComponent(m[1] as string), schema: JSON.parse(body).schema });
      res.writeHead(200, { 'content-type': 'application/vnd.schemaregistry.v1+json' });
      res.end(JSON.stringify({ id: 40 + registered.length }));
    });
  });
  await new Promise<void>((resolve) => registry.listen(0, '127.0.0.1', resolve));
  t.teardown(() => registry.close());
  const url = `http://127.0.0.1:${(registry.address() as AddressInfo).port}`;

  const kafka = await startMockKafka(t);
  const topic = randomTopic('alerts');
  const scanEventsTopic = randomTopic('scan-events');
  const sink = await createKafkaAlertSink({
    brokers: kafka.brokers,
    topic,
    scanEventsTopic,
    log: silentLogger,
    schemaRegistryUrl: url,
  });
  t.teardown(() => sink.close());
  t.same(registered.map((r) => r.subject).sort(), [`${scanEventsTopic}-value`, `${topic}-value`].sort());
  const alertSchemaId = 41 + registered.findIndex((r) => r.subject === `${topic}-value`);
  const type = plainType('dendrite-alert');
  t.same(
    JSON.parse(registered.find((r) => r.subject === `${topic}-value`)?.schema ?? '{}'),
    type.schema(),
    'the registered schema is schemas/dendrite-alert.avsc',
  );

  const alert = dendriteAlert('cell-R', 3);
  await sink.write(alert);
  const [message] = await readTopic({ brokers: kafka.brokers, topic, count: 1 });
  const value = message?.value as Buffer;
  t.equal(value[0], 0, 'magic byte 0');
  t.equal(value.readUInt32BE(1), alertSchemaId, 'the id the registry gave');
  t.same(type.fromBuffer(value.subarray(5)), { ...alert }, 'the body is plain Avro of the alert');
});

t.test('an unreachable schema registry: a clear error naming it', async (t) => {
  const kafka = await startMockKafka(t);
  await t.rejects(
    createKafkaAlertSink({
      brokers: kafka.brokers,
      topic: randomTopic('alerts'),
      log: silentLogger,
      schemaRegistryUrl: 'http://127.0.0.1:9',
    }),
    {
      code: 'ERR_OUTPUT',
      message: /schema registry http:\/\/127\.0\.0\.1:9: cannot register subject .*-value: unreachable/,
    },
  );
});
