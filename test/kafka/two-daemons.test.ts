import { join } from 'node:path';
import FileSystemStore from '@zarrita/storage/fs';
import { Partitioners } from 'kafkajs';
import t, { type Test } from 'tap';
import * as zarr from 'zarrita';
import { DEFAULT_ALERT_RULES } from '../../src/alerts/alert-rules.ts';
import type { DendriteAlert } from '../../src/alerts/dendrite-alert.ts';
import { ALERT_JOURNAL_FILE } from '../../src/daemon/alert-journal.ts';
import { type CompletedScan, runDaemon } from '../../src/daemon/run-daemon.ts';
import { loadModel, type SegmentationModel } from '../../src/inference/load-model.ts';
import { publishSimulatedScan } from '../../src/kafka/publish-simulated-scan.ts';
import { silentLogger } from '../../src/log.ts';
import { createKafkaAlertSink } from '../../src/sinks/kafka-alert-sink.ts';
import { kafkaSliceSource } from '../../src/sources/kafka-slice-source.ts';
import { differingFiles, storeFiles } from '../daemon/restart-fixtures.ts';
import { captureLog } from './capture-log.ts';
import { type MockKafka, randomTopic, readTopic, startMockKafka } from './mock-kafka.ts';
import { decodePlain, plainType } from './plain-avro.ts';
import { waitFor } from './slice-fixtures.ts';

const SLICES = 32;
const SIZE = 128;

let model: SegmentationModel;
t.before(async () => {
  model = await loadModel('unet', { threads: 1 });
});
t.teardown(() => model?.close());

/** Two scan ids that the Java-compatible partitioner puts on partitions 0 and 1 of a 2-partition topic. */
function scansOnBothPartitions(): [string, string] {
  const partition = Partitioners.DefaultPartitioner();
  const meta = [0, 1].map((partitionId) => ({
    partitionErrorCode: 0,
    partitionId,
    leader: 1,
    replicas: [1],
    isr: [1],
  }));
  const byPartition: string[] = [];
  for (let i = 0; byPartition[0] === undefined || byPartition[1] === undefined; i++) {
    const scanId = `shared-${i}`;
    const p = partition({ topic: 't', partitionMetadata: meta, message: { key: scanId, value: null } });
    byPartition[p] ??= scanId;
  }
  return [byPartition[0] as string, byPartition[1] as string];
}

/** Both scans published side by side, live, at `rate` slices/s each (seeds 901001 and 901002). */
function publishBoth(kafka: MockKafka, topic: string, scans: readonly string[], rate: number) {
  return Promise.all(
    scans.map((scanId, i) =>
      publishSimulatedScan({
        brokers: kafka.brokers,
        topic,
        scanId,
        seed: 901_001 + i,
        size: SIZE,
        slices: SLICES,
        rate,
        log: silentLogger,
      }),
    ),
  );
}

/** One daemon in the group: its own source, sink and abort switch; records what it finished. */
async function startDaemon(
  t: Test,
  kafka: MockKafka,
  o: { topic: string; alerts: string; groupId: string; out: string; maxScans: number },
) {
  const { log, entries } = captureLog('info');
  const source = kafkaSliceSource({
    brokers: kafka.brokers,
    topic: o.topic,
    groupId: o.groupId,
    log,
    // Long enough that a loaded CI machine's pauses do not evict a member and restart the split.
    sessionTimeoutMs: 10_000,
    heartbeatIntervalMs: 500,
    // A member slow to rejoin is dropped after this, not after KafkaJS's 60 s: the split settles.
    rebalanceTimeoutMs: 8000,
    maxInFlight: 4,
  });
  t.teardown(() => source.close());
  const sink = await createKafkaAlertSink({ brokers: kafka.brokers, topic: o.alerts, log: silentLogger });
  t.teardown(() => sink.close());
  const controller = new AbortController();
  const done: string[] = [];
  const raised: DendriteAlert[] = [];
  const completed: CompletedScan[] = [];
  const run = runDaemon({
    source: source.events,
    out: o.out,
    model,
    sinks: [sink, { write: async (alert) => void raised.push(alert), close: async () => {} }],
    rules: DEFAULT_ALERT_RULES,
    maxScans: o.maxScans,
    maxSlicesInFlight: 2,
    signal: controller.signal,
    onSliceDone: (slice) => {
      done.push(`${slice.scanId}/${slice.z}`);
      source.sliceDone(slice);
    },
    onScanComplete: (scan) => {
      source.scanDone(scan.scanId);
      completed.push(scan);
    },
  }).then(async (stats) => {
    await source.close();
    return stats;
  });
  /** The partitions of the member's latest join. */
  const partitions = () => {
    const joins = entries.filter((e) => Array.isArray(e.partitions));
    return (joins.at(-1)?.partitions as number[] | undefined) ?? [];
  };
  /** Every join and every warning so far, for a failure message. */
  const history = () =>
    entries
      .filter((e) => Array.isArray(e.partitions) || Number(e.level) >= 40)
      .map((e) => `${new Date(Number(e.time)).toISOString().slice(11, 23)} ${String(e.msg)}`)
      .join('\n');
  return {
    raised,
    run,
    done,
    completed,
    partitions,
    history,
    stop: () => controller.abort(new Error('test stops daemon')),
  };
}

t.test(
  'two daemons in one group share scans; one stopped mid-scan loses nothing, redoes nothing',
  async (t) => {
    const kafka = await startMockKafka(t);
    const topic = randomTopic('slices');
    const alerts = randomTopic('alerts');
    const groupId = randomTopic('group');
    await kafka.createTopic(topic, 2);
    const out = t.testdir();
    const [scanA, scanB] = scansOnBothPartitions();

    // One after the other: A owns the group first, then B's join splits the partitions.
    const a = await startDaemon(t, kafka, { topic, alerts, groupId, out, maxScans: 1 });
    await waitFor('daemon A to join', () => a.partitions().length === 2, 30_000);
    const b = await startDaemon(t, kafka, { topic, alerts, groupId, out, maxScans: 2 });
    await waitFor(
      'each daemon to own one partition',
      () => a.partitions().length === 1 && b.partitions().length === 1,
      120_000,
    ).catch((err: unknown) => {
      throw new Error(`${(err as Error).message}\nA:\n${a.history()}\nB:\n${b.history()}`);
    });

    const published = publishBoth(kafka, topic, [scanA, scanB], 10);
    // Stop daemon A a quarter into its scan.
    const aScan = a.partitions()[0] === 0 ? scanA : scanB;
    await waitFor(
      'daemon A a quarter into its scan',
      () => a.done.filter((d) => d.startsWith(`${aScan}/`)).length >= SLICES / 4,
      60_000,
    );
    a.stop();
    await a.run;
    t.equal(a.completed.length, 0, 'A stopped before finishing its scan');
    await published;
    await b.run;

    const all = [...a.done, ...b.done];
    const expected = [scanA, scanB].flatMap((s) => Array.from({ length: SLICES }, (_, z) => `${s}/${z}`));
    t.same(
      [...all].sort(),
      [...expected].sort(),
      'every slice of both scans finished exactly once, across the two',
    );
    t.ok(
      a.done.length >= SLICES / 4 && a.done.length < SLICES,
      `A finished ${a.done.length} slices before it stopped`,
    );
    t.same(
      b.completed.map((c) => c.scanId).sort(),
      [scanA, scanB].sort(),
      'B completed both scans, the one it took over too',
    );

    // Every slice of the taken-over scan is in its OME-Zarr: A's part and B's part.
    const store = new FileSystemStore(join(out, `${aScan}.ome.zarr`));
    const image = await zarr.open(zarr.root(store).resolve('0'), { kind: 'array' });
    t.same(image.shape, [SLICES, SIZE, SIZE]);
    const empty: number[] = [];
    for (let z = 0; z < SLICES; z++) {
      const plane = await zarr.get(image, [z, null, null]);
      if (!(plane.data as Uint16Array).some((v) => v > 0)) empty.push(z);
    }
    t.same(empty, [], 'no slice of the taken-over scan is missing from its store');

    const raised = [...a.raised, ...b.raised];
    const messages = await readTopic({
      brokers: kafka.brokers,
      topic: alerts,
      count: raised.length,
      settleMs: 1000,
    });
    const type = plainType('dendrite-alert');
    const onTopic = messages.map((m) => decodePlain(type, m.value));
    t.equal(onTopic.length, raised.length, 'every alert either daemon raised is on the topic, once');
    // The daemon that takes a scan over reads the stopped one's store and alert journal back first,
    // so its tracker stands where the other's stood and it raises nothing twice.
    const ids = onTopic.map((r) => r.alertId);
    t.equal(new Set(ids).size, ids.length, `no alert id twice across the takeover (${ids.length} alerts)`);
  },
);

t.test(
  'a second daemon joins mid-scan: the scan that moves is let go by the first and finished by the second, its store an undisturbed run’s, each alert once',
  async (t) => {
    const kafka = await startMockKafka(t);
    const topic = randomTopic('slices');
    const alerts = randomTopic('alerts');
    const refAlerts = randomTopic('alerts');
    const groupId = randomTopic('group');
    await kafka.createTopic(topic, 2);
    const root = t.testdir({ shared: {}, ref: {} });
    const shared = join(root, 'shared');
    const [scanA, scanB] = scansOnBothPartitions();

    const a = await startDaemon(t, kafka, { topic, alerts, groupId, out: shared, maxScans: 1 });
    await waitFor('daemon A to join', () => a.partitions().length === 2, 30_000);
    const published = publishBoth(kafka, topic, [scanA, scanB], 5);
    // Both scans under way on A, neither finished: then B joins and the group splits the partitions.
    await waitFor('daemon A a quarter into the two scans', () => a.done.length >= SLICES / 2, 60_000);
    const b = await startDaemon(t, kafka, { topic, alerts, groupId, out: shared, maxScans: 1 });
    await waitFor(
      'each daemon to own one partition',
      () => a.partitions().length === 1 && b.partitions().length === 1,
      120_000,
    ).catch((err: unknown) => {
      throw new Error(`${(err as Error).message}\nA:\n${a.history()}\nB:\n${b.history()}`);
    });
    const moved = b.partitions()[0] === 0 ? scanA : scanB;
    const kept = moved === scanA ? scanB : scanA;
    t.ok(
      a.done.some((d) => d.startsWith(`${moved}/`)),
      `A had begun ${moved} before it moved to B`,
    );
    await published;
    const [aStats] = await Promise.all([a.run, b.run]);
    t.same(
      a.completed.map((c) => c.scanId),
      [kept],
      'A completed the scan it kept, and not the one it let go',
    );
    t.same(
      b.completed.map((c) => c.scanId),
      [moved],
      'B completed the scan it took over',
    );
    // At least the scan that moved; more when the split took more than one rebalance and a scan
    // went away and came back (it is then taken up from the store, as checked below).
    t.ok(
      aStats.scansHandedOver >= 1,
      `A counts the scans it let go (xct_scans_handed_over_total ${aStats.scansHandedOver})`,
    );

    // The undisturbed run: one daemon, a group of its own, the whole topic.
    const ref = await startDaemon(t, kafka, {
      topic,
      alerts: refAlerts,
      groupId: randomTopic('group'),
      out: join(root, 'ref'),
      maxScans: 2,
    });
    await ref.run;
    for (const scanId of [scanA, scanB]) {
      const [x, y] = await Promise.all([
        storeFiles(join(root, 'ref', `${scanId}.ome.zarr`), [ALERT_JOURNAL_FILE]),
        storeFiles(join(shared, `${scanId}.ome.zarr`), [ALERT_JOURNAL_FILE]),
      ]);
      t.same([...y.keys()].sort(), [...x.keys()].sort(), `${scanId}: the same files`);
      t.same(differingFiles(x, y), [], `${scanId}: byte for byte the undisturbed run’s store`);
    }

    const type = plainType('dendrite-alert');
    const idsOn = async (alertTopic: string, count: number) =>
      (await readTopic({ brokers: kafka.brokers, topic: alertTopic, count, settleMs: 1000 })).map(
        (m) => decodePlain(type, m.value).alertId,
      );
    const ids = await idsOn(alerts, a.raised.length + b.raised.length);
    t.equal(new Set(ids).size, ids.length, `no alert id twice across the rebalance (${ids.length} alerts)`);
    t.same(
      [...ids].sort(),
      (await idsOn(refAlerts, ref.raised.length)).sort(),
      'the same alerts as the undisturbed run',
    );
  },
);
