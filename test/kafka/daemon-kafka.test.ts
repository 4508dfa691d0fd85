import { existsSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { DEFAULT_ALERT_RULES } from '../../src/alerts/alert-rules.ts';
import type { DendriteAlert } from '../../src/alerts/dendrite-alert.ts';
import { DaemonStats } from '../../src/daemon/daemon-stats.ts';
import { type CompletedScan, type DaemonOptions, runDaemon } from '../../src/daemon/run-daemon.ts';
import { loadModel, type SegmentationModel } from '../../src/inference/load-model.ts';
import { createKafkaClient, type KafkaClient } from '../../src/kafka/kafka-client.ts';
import { publishSimulatedScan } from '../../src/kafka/publish-simulated-scan.ts';
import { silentLogger } from '../../src/log.ts';
import type { AlertSink } from '../../src/sinks/alert-sink.ts';
import { createKafkaAlertSink } from '../../src/sinks/kafka-alert-sink.ts';
import { type KafkaSliceSource, kafkaSliceSource } from '../../src/sources/kafka-slice-source.ts';
import { SliceCredits } from '../../src/sources/slice-credits.ts';
import { runCli } from '../cli/run-cli.ts';
import { captureLog } from './capture-log.ts';
import { randomTopic, readTopic, startMockKafka } from './mock-kafka.ts';
import { decodePlain, plainType } from './plain-avro.ts';
import { committedOffsets, waitFor } from './slice-fixtures.ts';

// A scan with dendrites that the shipped U-Net finds at this size (the folder pipeline's test scan).
const SCAN = { seed: 901_001, size: 128, slices: 32 } as const;

let model: SegmentationModel;
t.before(async () => {
  model = await loadModel('unet', { threads: 2 });
});
t.teardown(() => model?.close());

/**
 * The daemon on a Kafka slice source, wired as the run command wires it: each finished slice and
 * scan reported back to the source (so offsets get committed), completed scans recorded.
 */
function runOnSource(
  source: KafkaSliceSource,
  options: Omit<DaemonOptions, 'source' | 'onSliceDone' | 'onScanComplete'>,
) {
  const completed: CompletedScan[] = [];
  const daemon = runDaemon({
    ...options,
    source: source.events,
    onSliceDone: (slice) => source.sliceDone(slice),
    onScanComplete: (scan) => {
      source.scanDone(scan.scanId);
      completed.push(scan);
    },
  });
  return { daemon, completed };
}

/** What a consumer outside the project reads: the record, `kind` spelled as the schema's enum. */
function asAvroRecord(alert: DendriteAlert): Record<string, unknown> {
  return { ...alert, kind: alert.kind === 'scan-summary' ? 'scan_summary' : alert.kind };
}

t.test('simulated scan on Kafka → daemon → Avro alerts on the alert topic', async (t) => {
  const kafka = await startMockKafka(t);
  const slicesTopic = randomTopic('slices');
  const alertsTopic = randomTopic('alerts');
  const groupId = randomTopic('daemon');
  await kafka.createTopic(slicesTopic, 3);
  const out = t.testdir();

  const source = kafkaSliceSource({
    brokers: kafka.brokers,
    topic: slicesTopic,
    groupId,
    log: silentLogger,
    sessionTimeoutMs: 6000,
    heartbeatIntervalMs: 500,
  });
  t.teardown(() => source.close());
  const kafkaSink = await createKafkaAlertSink({
    brokers: kafka.brokers,
    topic: alertsTopic,
    log: silentLogger,
  });
  t.teardown(() => kafkaSink.close());
  const emitted: DendriteAlert[] = [];
  const recorder: AlertSink = { write: async (a) => void emitted.push(a), close: async () => {} };
  const stats = new DaemonStats();
  const { daemon, completed } = runOnSource(source, {
    out,
    model,
    sinks: [kafkaSink, recorder],
    rules: DEFAULT_ALERT_RULES,
    maxScans: 1,
    stats,
  });
  const published = await publishSimulatedScan({
    brokers: kafka.brokers,
    topic: slicesTopic,
    scanId: 'kafka-cell-1',
    ...SCAN,
    rate: 40,
    log: silentLogger,
  });
  await daemon;
  await source.close();

  t.equal(published.slices, SCAN.slices);
  t.equal(completed.length, 1);
  t.equal(completed[0]?.slices, SCAN.slices, 'every slice segmented');
  t.equal(stats.slicesFailed + stats.slicesMissing, 0, 'none lost');
  t.ok(existsSync(join(out, 'kafka-cell-1.ome.zarr')), 'masks written');
  const dendrites = emitted.filter((a) => a.kind === 'dendrite');
  t.ok(dendrites.length > 0, `${dendrites.length} dendrite alert(s) raised`);
  t.equal(emitted.at(-1)?.kind, 'scan-summary');

  // Decoded from schemas/dendrite-alert.avsc with plain avsc: no project code on this path.
  const messages = await readTopic({
    brokers: kafka.brokers,
    topic: alertsTopic,
    count: emitted.length,
    settleMs: 1000,
  });
  const type = plainType('dendrite-alert');
  const records = messages.map((m) => decodePlain(type, m.value));
  t.same(records, emitted.map(asAvroRecord), 'every alert once, in the order raised, field for field');
  t.ok(
    messages.every((m) => m.key?.toString() === 'kafka-cell-1'),
    'key = scanId',
  );
  const ids = records.map((r) => r.alertId);
  t.equal(new Set(ids).size, ids.length, 'no alert id twice');

  // Scan lifecycle on the scan-event topic: started, progress every 16 slices, completed.
  const events = (
    await readTopic({ brokers: kafka.brokers, topic: 'xct.scan-events', count: 4, settleMs: 1000 })
  ).map((m) => decodePlain(plainType('scan-event'), m.value));
  t.same(
    events.map((e) => e.kind),
    ['started', 'progress', 'progress', 'completed'],
    'started, progress, completed, in order',
  );
  const acquired = events.map((e) => Number(e.acquiredSlices));
  t.same(
    acquired,
    [...acquired].sort((a, b) => a - b),
    `slices received so far, never decreasing (${acquired.join(', ')})`,
  );
  t.equal(acquired.at(-1), SCAN.slices);
  t.same(
    events.map((e) => [e.scanId, e.expectedSlices]),
    events.map(() => ['kafka-cell-1', SCAN.slices]),
    'each names its scan and the expected count',
  );

  // The whole scan is finished, so the group has committed past every slice.
  const committed = await committedOffsets(kafka.brokers, groupId, slicesTopic);
  let total = 0;
  for (const offset of committed.values()) total += Math.max(0, Number(offset));
  t.equal(total, SCAN.slices, 'committed offsets cover every slice');
});

t.test(
  'more live scans on one topic than the source may hand over: slices held for their successors do not stall it',
  async (t) => {
    const kafka = await startMockKafka(t);
    const slicesTopic = randomTopic('slices');
    const groupId = randomTopic('daemon');
    // One partition: the scans' slices arrive interleaved, a0 b0 c0 a1 …
    await kafka.createTopic(slicesTopic, 1);
    const stats = new DaemonStats();
    const credits = new SliceCredits();
    const source = kafkaSliceSource({
      brokers: kafka.brokers,
      topic: slicesTopic,
      groupId,
      log: silentLogger,
      sessionTimeoutMs: 6000,
      heartbeatIntervalMs: 500,
      // Two slices at a time, three live scans: each scan holds its newest slice until the next one
      // comes, so if held slices kept their credits, the source would stop with two held ones and
      // wait out the daemon's neighbour wait (ten minutes here) for every slice.
      maxInFlight: 2,
      credits,
    });
    t.teardown(() => source.close());
    const { daemon, completed } = runOnSource(source, {
      out: t.testdir(),
      model,
      sinks: [],
      rules: DEFAULT_ALERT_RULES,
      maxScans: 3,
      maxSlicesInFlight: 1,
      neighbourWaitMs: 600_000,
      stats,
      credits,
    });
    await Promise.all(
      ['a', 'b', 'c'].map((id, k) =>
        publishSimulatedScan({
          brokers: kafka.brokers,
          topic: slicesTopic,
          scanId: `interleaved-${id}`,
          seed: 902_000 + k,
          size: 64,
          slices: 6,
          rate: 50,
          log: silentLogger,
        }),
      ),
    );
    await daemon;
    await source.close();
    t.same(
      completed.map((c) => [c.scanId, c.slices]).sort(),
      [
        ['interleaved-a', 6],
        ['interleaved-b', 6],
        ['interleaved-c', 6],
      ],
      'all three scans complete, every slice segmented, none waiting out the neighbour wait',
    );
    t.equal(stats.slicesFailed + stats.slicesMissing, 0, 'none lost');
  },
);

t.test(
  'a consumer that crashes with an error KafkaJS does not restart after rejoins the group, and the scan completes',
  async (t) => {
    const kafka = await startMockKafka(t);
    const slicesTopic = randomTopic('slices');
    const groupId = randomTopic('daemon');
    await kafka.createTopic(slicesTopic, 1);
    // The real client, except that its first consumer reports one crash that KafkaJS would not
    // restart from (as a broker answering a SyncGroup with INVALID_REQUEST does), once it has joined.
    const real = createKafkaClient({ brokers: kafka.brokers, log: silentLogger });
    let consumers = 0;
    const client = {
      admin: (...args: Parameters<KafkaClient['admin']>) => real.admin(...args),
      producer: (...args: Parameters<KafkaClient['producer']>) => real.producer(...args),
      consumer: (...args: Parameters<KafkaClient['consumer']>) => {
        const consumer = real.consumer(...args);
        if (consumers++ > 0) return consumer;
        const crash: ((event: unknown) => void)[] = [];
        const on = consumer.on.bind(consumer) as (
          event: string,
          listener: (e: unknown) => void,
        ) => () => void;
        consumer.on = ((event: string, listener: (e: unknown) => void) => {
          if (event === consumer.events.CRASH) crash.push(listener);
          if (event === consumer.events.GROUP_JOIN)
            return on(event, (e) => {
              listener(e);
              const error = Object.assign(new Error('The request is invalid (synthetic)'), {
                retriable: false,
              });
              setTimeout(() => {
                for (const l of crash) l({ payload: { error, groupId, restart: false } });
              }, 200);
            });
          return on(event, listener);
        }) as typeof consumer.on;
        return consumer;
      },
    } as unknown as KafkaClient;
    const { log, entries } = captureLog('info');
    const source = kafkaSliceSource({
      brokers: kafka.brokers,
      topic: slicesTopic,
      groupId,
      client,
      log,
      sessionTimeoutMs: 6000,
      heartbeatIntervalMs: 500,
    });
    t.teardown(() => source.close());
    const stats = new DaemonStats();
    const { daemon, completed } = runOnSource(source, {
      out: t.testdir(),
      model,
      sinks: [],
      rules: DEFAULT_ALERT_RULES,
      maxScans: 1,
      stats,
    });
    // Published once the first consumer is in the group, so the crash comes while the scan is read.
    await waitFor('the first consumer to join', () =>
      entries.some((e) => String(e.msg).startsWith('joined group')),
    );
    await publishSimulatedScan({
      brokers: kafka.brokers,
      topic: slicesTopic,
      scanId: 'crash-cell',
      seed: 903_000,
      size: 64,
      slices: 12,
      rate: 10,
      log: silentLogger,
    });
    await daemon;
    await source.close();
    t.equal(consumers, 2, `a second consumer took over after the crash (${consumers} made)`);
    const rejoins = entries.filter((e) => String(e.msg).includes('rejoining group'));
    t.equal(rejoins.length, 1, 'the crash is logged once, with what happens next');
    t.equal(completed[0]?.slices, 12, 'every slice segmented');
    t.equal(stats.slicesFailed + stats.slicesMissing, 0, 'none lost');
  },
);

t.test('the CLI end to end: simulate --kafka, run --source/--alerts kafka://, alerts', async (t) => {
  const kafka = await startMockKafka(t);
  const slicesTopic = randomTopic('slices');
  const alertsTopic = randomTopic('alerts');
  const out = t.testdir();
  const published = await runCli(
    [
      'simulate',
      '--kafka',
      kafka.brokers.join(','),
      '--topic',
      slicesTopic,
      '--scan-id',
      'cli-cell',
      '--seed',
      String(SCAN.seed),
      '--size',
      String(SCAN.size),
      '--slices',
      String(SCAN.slices),
      '--rate',
      '200',
      '--json',
    ],
    { timeoutMs: 60_000 },
  );
  t.equal(published.code, 0, published.stderr);
  t.match(JSON.parse(published.stdout), { scanId: 'cli-cell', slices: SCAN.slices, topic: slicesTopic });

  const run = await runCli(
    [
      'run',
      '--source',
      kafka.url(slicesTopic),
      '--alerts',
      kafka.url(alertsTopic),
      '--out',
      out,
      '--model',
      'unet',
      '--threads',
      '2',
      '--max-scans',
      '1',
      '--group',
      randomTopic('group'),
    ],
    { timeoutMs: 150_000 },
  );
  t.equal(run.code, 0, `${run.stderr}\n${run.stdout}`);
  t.match(run.stdout, new RegExp(`reading ${slicesTopic.replace(/\./g, '\\.')} on .* as group`));
  t.match(run.stdout, /scan cli-cell: 32 slices/);
  const alertCount = Number(
    /alerts (\d+) info \/ (\d+) warning \/ (\d+) critical/
      .exec(run.stdout)
      ?.slice(1)
      .reduce((a, b) => a + Number(b), 0),
  );

  const follow = await runCli(
    [
      'alerts',
      '--brokers',
      kafka.brokers.join(','),
      '--topic',
      alertsTopic,
      '--from-beginning',
      '--max',
      String(alertCount + 1),
    ],
    { timeoutMs: 40_000 },
  );
  t.equal(follow.code, 0, follow.stderr);
  const alerts = follow.stdout
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as DendriteAlert);
  t.equal(alerts.length, alertCount + 1, 'every dendrite alert and the scan summary');
  t.ok(alertCount > 0, `${alertCount} dendrite alert(s)`);
  t.equal(alerts.at(-1)?.kind, 'scan-summary');
  t.ok(alerts.every((a) => a.scanId === 'cli-cell'));
});
