/** Slice messages and a plain producer for the Kafka source tests. */
import { Kafka, logLevel, type Message, Partitioners } from 'kafkajs';
import { encodeSlice, type SliceMessage } from '../../src/codecs/avro-slice.ts';

/** A `size`×`size` uint16 slice whose pixels encode scan, z and position (so mix-ups show). */
export function testSlice(
  scanId: string,
  z: number,
  options: { size?: number; expected?: number | null } = {},
): SliceMessage {
  const size = options.size ?? 8;
  const data = new Uint16Array(size * size);
  for (let i = 0; i < data.length; i++) data[i] = (z * 1000 + i + scanId.length * 7) % 65536;
  return {
    scanId,
    z,
    expectedSlices: options.expected === undefined ? 4 : options.expected,
    voxelSizeUm: 0.65,
    acquiredAt: 1_718_280_000_000 + z,
    pixels: { width: size, height: size, dtype: 'uint16', data },
  };
}

/** Produce these messages (key = scan id, as a scanner would) and wait for the acks. */
export async function produce(brokers: string[], topic: string, messages: Message[]): Promise<void> {
  const kafka = new Kafka({ clientId: 'test-scanner', brokers, logLevel: logLevel.NOTHING });
  const producer = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner });
  await producer.connect();
  try {
    await producer.send({ topic, acks: -1, messages });
  } finally {
    await producer.disconnect();
  }
}

/** The slice as a message keyed by its scan. */
export function sliceRecord(slice: SliceMessage): Message {
  return { key: slice.scanId, value: encodeSlice(slice) };
}

/** The group's committed offset per partition (-1: none). */
export async function committedOffsets(
  brokers: string[],
  groupId: string,
  topic: string,
): Promise<Map<number, string>> {
  const kafka = new Kafka({ clientId: 'test-admin', brokers, logLevel: logLevel.NOTHING });
  const admin = kafka.admin();
  await admin.connect();
  try {
    const [entry] = await admin.fetchOffsets({ groupId, topics: [topic] });
    return new Map((entry?.partitions ?? []).map((p) => [p.partition, p.offset]));
  } finally {
    await admin.disconnect();
  }
}

/** Poll `check` every 50 ms until it returns true, or fail after `timeoutMs` saying `what`. */
export async function waitFor(
  what: string,
  check: () => boolean | Promise<boolean>,
  timeoutMs = 20_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
