import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import t from 'tap';
import { decodeSlice } from '../../src/codecs/avro-slice.ts';
import { readSliceFile } from '../../src/codecs/read-slice-file.ts';
import { runLiveScanner } from '../../src/sim/live-scanner.ts';
import { runCli } from '../cli/run-cli.ts';
import { randomTopic, readTopic, startMockKafka } from './mock-kafka.ts';
import { decodePlain, plainType } from './plain-avro.ts';

t.test('replay --to-kafka: an archived scan as a live slice stream, in order, pixels intact', async (t) => {
  const kafka = await startMockKafka(t);
  const topic = randomTopic('slices');
  const root = t.testdir();
  const scan = await runLiveScanner({
    out: root,
    seed: 31,
    size: 64,
    slices: 6,
    rate: 1e6,
    scanId: 'archived',
  });
  const r = await runCli(['replay', scan.scanDir, '--to-kafka', `${kafka.brokers.join(',')}/${topic}`], {
    timeoutMs: 60_000,
  });
  t.equal(r.code, 0, r.stderr);
  t.match(JSON.parse(r.stdout), { scanId: 'archived', topic, slices: 6 });

  const messages = await readTopic({ brokers: kafka.brokers, topic, count: 6, settleMs: 500 });
  t.equal(messages.length, 6, 'one message per slice, none twice');
  t.ok(
    messages.every((m) => m.key?.toString() === 'archived'),
    'key = scan id',
  );
  const slices = messages.map((m) => decodeSlice(m.value as Buffer));
  t.same(
    slices.map((s) => s.z),
    [0, 1, 2, 3, 4, 5],
    'in z order',
  );
  t.ok(slices.every((s) => s.expectedSlices === 6));
  for (const s of slices) {
    const original = await readSliceFile(join(scan.scanDir, `slice_${String(s.z).padStart(5, '0')}.tif`));
    const pixels = s.pixels as { data: Uint16Array; width: number; height: number };
    t.same([pixels.width, pixels.height], [64, 64]);
    t.ok(
      Buffer.from(pixels.data.buffer, pixels.data.byteOffset, pixels.data.byteLength).equals(
        Buffer.from(original.data.buffer, original.data.byteOffset, original.data.byteLength),
      ),
      `slice ${s.z}: the archive's pixels, bit for bit`,
    );
  }
});

t.test('replay --to-kafka with a bad address: the option and the reason', async (t) => {
  const root = t.testdir();
  const scan = await runLiveScanner({ out: root, seed: 32, size: 64, slices: 2, rate: 1e6, scanId: 'a' });
  const r = await runCli(['replay', scan.scanDir, '--to-kafka', 'localhost'], { timeoutMs: 30_000 });
  t.equal(r.code, 2, 'a usage error');
  t.match(r.stderr, /--to-kafka localhost: "localhost" is not HOST:PORT \(the port is required/);
});

t.test(
  "replay --alerts kafka://: the replay's alerts on the topic, as the daemon publishes them",
  async (t) => {
    const kafka = await startMockKafka(t);
    const topic = randomTopic('alerts');
    const root = t.testdir({ out: {} });
    // The live-pipeline test scan: the shipped U-Net raises alerts on it.
    const scan = await runLiveScanner({
      out: root,
      seed: 901_001,
      size: 128,
      slices: 32,
      rate: 1e6,
      scanId: 'old-cell',
    });
    const jsonl = join(root, 'alerts.jsonl');
    const args = ['replay', scan.scanDir, '--model', 'unet', '--json'];
    const toFile = await runCli([...args, '--out', join(root, 'out', 'file'), '--alerts', jsonl], {
      timeoutMs: 120_000,
    });
    t.equal(toFile.code, 0, toFile.stderr);
    const expected = (await readFile(jsonl, 'utf8'))
      .trim()
      .split('\n')
      .map((l) => (JSON.parse(l) as { alertId: string }).alertId);
    t.ok(expected.length > 1, `${expected.length} alerts, the summary last`);

    const toKafka = await runCli(
      [...args, '--out', join(root, 'out', 'kafka'), '--alerts', kafka.url(topic)],
      {
        timeoutMs: 120_000,
      },
    );
    t.equal(toKafka.code, 0, toKafka.stderr);
    const messages = await readTopic({
      brokers: kafka.brokers,
      topic,
      count: expected.length,
      settleMs: 500,
    });
    const type = plainType('dendrite-alert');
    t.same(
      messages.map((m) => decodePlain(type, m.value).alertId),
      expected,
      'the same alerts, ids included, in the same order',
    );
  },
);
