import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Kafka, logLevel } from 'kafkajs';
import t from 'tap';
import { silentLogger } from '../../src/log.ts';
import { createKafkaAlertSink } from '../../src/sinks/kafka-alert-sink.ts';
import { runCli } from '../cli/run-cli.ts';
import { dendriteAlert, summaryAlert } from './alert-fixtures.ts';
import { randomTopic, startMockKafka } from './mock-kafka.ts';

const MAIN = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));

t.test('alerts --from-beginning --scan --max prints one scan’s alerts as JSON lines', async (t) => {
  const kafka = await startMockKafka(t);
  const topic = randomTopic('alerts');
  await kafka.createTopic(topic, 1); // one partition: the topic's order is the order written
  const sink = await createKafkaAlertSink({ brokers: kafka.brokers, topic, log: silentLogger });
  t.teardown(() => sink.close());
  const a1 = dendriteAlert('cell-A', 1);
  const b1 = dendriteAlert('cell-B', 1);
  const a2 = summaryAlert('cell-A');
  await sink.write(a1);
  // Not an alert: a consumer must say so and go on.
  const producer = new Kafka({ brokers: kafka.brokers, logLevel: logLevel.NOTHING }).producer();
  await producer.connect();
  await producer.send({ topic, messages: [{ key: 'cell-A', value: Buffer.from('{"not":"avro"}') }] });
  await producer.disconnect();
  await sink.write(b1);
  await sink.write(a2);

  const r = await runCli(
    [
      'alerts',
      '--brokers',
      kafka.brokers.join(','),
      '--topic',
      topic,
      '--from-beginning',
      '--scan',
      'cell-A',
    ].concat(['--max', '2']),
    { timeoutMs: 60_000 },
  );
  t.equal(r.code, 0, r.stderr);
  const lines = r.stdout.trim().split('\n');
  t.equal(lines.length, 2, 'exactly --max alerts');
  t.same(
    lines.map((l) => JSON.parse(l)),
    [a1, a2],
    'the same JSON as the JSON-lines sink, cell-B left out',
  );
  t.match(
    r.stderr,
    new RegExp(`skipped ${topic.replace(/\./g, '\\.')}\\[0\\]@1: .*`),
    'names the bad offset',
  );
});

t.test('alerts follows new alerts live, from a kafka:// URL', async (t) => {
  const kafka = await startMockKafka(t);
  const topic = randomTopic('alerts');
  await kafka.createTopic(topic, 3);
  const sink = await createKafkaAlertSink({ brokers: kafka.brokers, topic, log: silentLogger });
  t.teardown(() => sink.close());
  await sink.write(dendriteAlert('old-scan', 1)); // before the follower starts: not shown

  const child = spawn(
    process.execPath,
    ['--import', 'tsx', MAIN, 'alerts', '--brokers', kafka.url(topic), '--max', '3'],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: 60_000,
    },
  );
  t.teardown(() => {
    if (child.exitCode === null) child.kill();
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => {
    stdout += d;
  });
  const following = new Promise<void>((resolve) => {
    child.stderr.on('data', (d: Buffer) => {
      stderr += d;
      if (stderr.includes(`following ${topic}`)) resolve();
    });
  });
  const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
  await Promise.race([following, exited]);
  const fresh = [
    dendriteAlert('new-scan', 1),
    dendriteAlert('new-scan', 2, 'critical'),
    summaryAlert('new-scan'),
  ];
  for (const alert of fresh) await sink.write(alert);
  t.equal(await exited, 0, stderr);
  const seen = stdout
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { alertId: string });
  t.same(
    seen.map((a) => a.alertId).sort(),
    fresh.map((a) => a.alertId).sort(),
    'the new alerts, not the old one',
  );
});

t.test('alerts: bad options exit 2 with a message naming the option', async (t) => {
  const cases: [string[], RegExp][] = [
    [['alerts'], /alerts needs --brokers/],
    [['alerts', '--brokers', 'localhost'], /--brokers localhost: "localhost" is not HOST:PORT/],
    [['alerts', '--brokers', 'localhost:99999'], /port 99999/],
    [['alerts', '--brokers', 'kafka://u:p@h:1'], /credentials do not belong in the URL/],
    [['alerts', '--brokers', 'h:1', '--topic', 'a b'], /--topic "a b" is not a Kafka topic name/],
    [['alerts', '--brokers', 'h:1', '--max', '0'], /--max must be from 1/],
  ];
  for (const [args, message] of cases) {
    const r = await runCli(args);
    t.equal(r.code, 2, `${args.join(' ')} exits 2`);
    t.match(r.stderr, message);
  }
});
