import { join } from 'node:path';
import t, { type Test } from 'tap';
import { DEFAULT_ALERT_RULES } from '../../src/alerts/alert-rules.ts';
import type { DendriteAlert } from '../../src/alerts/dendrite-alert.ts';
import { DaemonStats } from '../../src/daemon/daemon-stats.ts';
import { startMetricsServer } from '../../src/daemon/metrics-server.ts';
import { type CompletedScan, runDaemon } from '../../src/daemon/run-daemon.ts';
import { loadModel, type SegmentationModel } from '../../src/inference/load-model.ts';
import { publishSliceStream } from '../../src/kafka/publish-simulated-scan.ts';
import { silentLogger } from '../../src/log.ts';
import { createPhantom } from '../../src/sim/phantom.ts';
import { renderSlice } from '../../src/sim/render-slice.ts';
import { createKafkaAlertSink } from '../../src/sinks/kafka-alert-sink.ts';
import { kafkaSliceSource } from '../../src/sources/kafka-slice-source.ts';
import { differingFiles, storeFiles } from '../daemon/restart-fixtures.ts';
import { captureLog } from './capture-log.ts';
import { type MockKafka, randomTopic, readTopic, startMockKafka } from './mock-kafka.ts';
import { decodePlain, plainType } from './plain-avro.ts';
import { committedOffsets } from './slice-fixtures.ts';

const SCAN = { seed: 901_001, size: 128, slices: 24 } as const;
const SCAN_ID = 'outage-cell';

let model: SegmentationModel;
t.before(async () => {
  model = await loadModel('unet', { threads: 2 });
});
t.teardown(() => model?.close());

interface Disturbance {
  /** Called once the daemon has finished this many slices; resolves when the fault is over. */
  afterSlices: number;
  run: (ctx: {
    kafka: MockKafka;
    stats: DaemonStats;
    topics: Topics;
    readyz: () => Promise<string>;
  }) => Promise<void>;
  /**
   * Publish only the first half of the scan before the daemon starts, the rest once the fault is
   * over: the daemon must fetch again after it, so a consumer-side fault cannot hide behind one
   * fetch that brought the whole scan before it.
   */
  secondHalfAfter?: boolean;
}

interface Topics {
  slices: string;
  alerts: string;
  events: string;
  group: string;
}

/**
 * One scan published to a 3-broker cluster, then consumed by the daemon with the Kafka alert sink,
 * as `run --source kafka:// --alerts kafka://` wires it. Leaders are placed so that each topic's
 * leader is its own broker: slices on 2, alerts and scan events on 3, the group's coordinator on 1.
 */
async function kafkaRun(t: Test, disturbance?: Disturbance) {
  const kafka = await startMockKafka(t, { brokers: 3 });
  const topics: Topics = {
    slices: randomTopic('slices'),
    alerts: randomTopic('alerts'),
    events: randomTopic('events'),
    group: randomTopic('daemon'),
  };
  for (const topic of [topics.slices, topics.alerts, topics.events]) await kafka.createTopic(topic, 1);
  await kafka.setLeader(topics.slices, 0, 2);
  await kafka.setLeader(topics.alerts, 0, 3);
  await kafka.setLeader(topics.events, 0, 3);
  await kafka.setGroupCoordinator(topics.group, 1);
  let faultOver: () => void = () => {};
  const over = new Promise<void>((resolve) => {
    faultOver = resolve;
  });
  const phantom = createPhantom(SCAN);
  const published = publishSliceStream({
    brokers: kafka.brokers,
    topic: topics.slices,
    scanId: SCAN_ID,
    expectedSlices: SCAN.slices,
    voxelSizeUm: phantom.voxelSizeUm,
    log: silentLogger,
    slices: (async function* () {
      for (let z = 0; z < SCAN.slices; z++) {
        if (z === SCAN.slices / 2 && disturbance?.secondHalfAfter) await over;
        const image = renderSlice(phantom, z).image;
        yield { z, image: { width: SCAN.size, height: SCAN.size, dtype: 'uint16' as const, data: image } };
      }
    })(),
  });
  if (!disturbance?.secondHalfAfter) await published;

  const captured = captureLog('warn');
  const source = kafkaSliceSource({
    brokers: kafka.brokers,
    topic: topics.slices,
    groupId: topics.group,
    log: captured.log,
    // As in two-daemons.test.ts: a member slow to rejoin is dropped after 8 s, not KafkaJS's 60 s.
    sessionTimeoutMs: 10_000,
    heartbeatIntervalMs: 500,
    rebalanceTimeoutMs: 8000,
    retry: { retries: 2, initialRetryTime: 100, maxRetryTime: 500 },
    onHealth: (problem) => stats.sourceHealth(problem),
  });
  t.teardown(() => source.close());
  const sink = await createKafkaAlertSink({
    brokers: kafka.brokers,
    topic: topics.alerts,
    scanEventsTopic: topics.events,
    log: captured.log,
    createTopics: false,
    // KafkaJS gives up quickly; the daemon's own sink retry then waits out the outage.
    retry: { retries: 1, initialRetryTime: 100, maxRetryTime: 200 },
  });
  t.teardown(() => sink.close());
  const stats = new DaemonStats();
  const server = await startMetricsServer({ stats, port: 0, ready: () => true });
  t.teardown(() => server.close());
  const readyz = async () => {
    const res = await fetch(`${server.url}/readyz`);
    return `${res.status} ${(await res.text()).trim()}`;
  };
  const emitted: DendriteAlert[] = [];
  const completed: CompletedScan[] = [];
  const out = t.testdir();
  let done = 0;
  let fault: Promise<void> | undefined;
  const daemon = runDaemon({
    source: source.events,
    out,
    model,
    sinks: [sink, { write: async (a) => void emitted.push(a), close: async () => {} }],
    rules: DEFAULT_ALERT_RULES,
    maxScans: 1,
    stats,
    log: captured.log,
    sinkRetry: { delayMs: 100, maxDelayMs: 500 },
    onSliceDone: (slice) => {
      source.sliceDone(slice);
      if (++done === disturbance?.afterSlices)
        fault = disturbance.run({ kafka, stats, topics, readyz }).finally(() => faultOver());
    },
    onScanComplete: (scan) => {
      source.scanDone(scan.scanId);
      completed.push(scan);
    },
  });
  await daemon;
  await fault;
  await published;
  const readyAfter = await readyz();
  await source.close();
  await sink.close();
  const messages = await readTopic({
    brokers: kafka.brokers,
    topic: topics.alerts,
    count: emitted.length,
    settleMs: 1000,
  });
  const ids = messages.map((m) => String(decodePlain(plainType('dendrite-alert'), m.value).alertId));
  const committed = await committedOffsets(kafka.brokers, topics.group, topics.slices);
  return {
    completed,
    stats,
    store: await storeFiles(join(out, `${SCAN_ID}.ome.zarr`)),
    emittedIds: emitted.map((a) => a.alertId),
    topicIds: ids,
    committed: Number(committed.get(0) ?? -1),
    log: captured.entries,
    readyAfter,
  };
}

let reference: Awaited<ReturnType<typeof kafkaRun>>;
t.before(async () => {
  // An undisturbed run: what every disturbed one must end up equal to.
  reference = await kafkaRun(t);
});

/** Until `condition` holds: checked every 20 ms, for as long as it takes (the test's timeout bounds it). */
async function until(condition: () => boolean): Promise<void> {
  while (!condition()) await new Promise((r) => setTimeout(r, 20));
}

function sameAsUndisturbed(t: Test, r: Awaited<ReturnType<typeof kafkaRun>>) {
  t.equal(r.readyAfter, '200 ready', 'ready again, without a restart');
  t.equal(r.completed[0]?.slices, SCAN.slices, 'the scan completed, every slice segmented');
  t.equal(r.stats.slicesFailed + r.stats.slicesMissing, 0, 'none lost');
  t.same([...r.store.keys()].sort(), [...reference.store.keys()].sort(), 'the same store files');
  const differ = differingFiles(r.store, reference.store);
  t.same(differ, [], 'byte for byte the undisturbed run’s store');
  t.same(r.topicIds, reference.topicIds, 'the alert topic holds every alert id once, as undisturbed');
  t.equal(new Set(r.topicIds).size, r.topicIds.length, 'no alert id twice');
  t.equal(r.committed, SCAN.slices, 'committed offsets reach the end, and not before the scan did');
}

t.test(
  'the alert topic’s leader goes down mid-scan: alerts wait, /readyz says so, nothing is lost',
  async (t) => {
    let sawRetrying = 0;
    let during = '';
    const r = await kafkaRun(t, {
      afterSlices: 4,
      run: async ({ kafka, stats, readyz }) => {
        await kafka.setBrokerDown(3);
        // Until an alert (at the latest the scan's summary) has been refused and waits to be retried.
        await until(() => stats.alertsRetrying > 0);
        sawRetrying = stats.alertsRetrying;
        during = await readyz();
        await kafka.setBrokerUp(3);
      },
    });
    t.ok(sawRetrying > 0, `${sawRetrying} alert(s) waited for the broker`);
    t.match(
      during,
      /^503 not ready: \d+ alert\(s\) waiting for a sink that refuses them$/,
      `during: ${during}`,
    );
    t.ok(r.stats.sinkRetries > 0, `${r.stats.sinkRetries} sink retries counted`);
    t.equal(r.stats.alertsRetrying, 0, 'none waiting once it is back');
    sameAsUndisturbed(t, r);
  },
);

t.test(
  'the slice topic’s leader goes down mid-scan: the source says so, recovers, nothing lost or doubled',
  async (t) => {
    let during = '';
    const r = await kafkaRun(t, {
      afterSlices: 4,
      secondHalfAfter: true,
      run: async ({ kafka, stats, readyz }) => {
        await kafka.setBrokerDown(2);
        // Until the consumer has failed against the missing leader and is being restarted.
        await until(() => stats.sourceProblem !== undefined);
        during = await readyz();
        await kafka.setBrokerUp(2);
      },
    });
    t.match(during, /^503 not ready: source: consuming \S+ failed: /, `during: ${during}`);
    t.ok(r.stats.sourceOutages >= 1, `${r.stats.sourceOutages} source outage(s) counted`);
    t.equal(r.stats.sourceProblem, undefined, 'the source reads again');
    t.ok(
      r.log.some((e) => /KafkaJS restarts the consumer/.test(String(e.msg))),
      'the log says the consumer failed and is restarted',
    );
    sameAsUndisturbed(t, r);
  },
);

t.test('2 s of added round-trip time mid-scan: slower, and the same result', async (t) => {
  const r = await kafkaRun(t, {
    afterSlices: 4,
    secondHalfAfter: true,
    run: async ({ kafka }) => {
      await kafka.setRtt(-1, 2000);
      // Long enough for fetches, commits, alerts and heartbeats to go through the slow brokers.
      const start = Date.now();
      await until(() => Date.now() - start >= 8000);
      await kafka.setRtt(-1, 0);
    },
  });
  sameAsUndisturbed(t, r);
});
