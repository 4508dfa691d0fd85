import { createHash } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { encodeSlice, type SliceMessage } from '../codecs/avro-slice.ts';
import type { DecodedImage } from '../codecs/decode-tiff.ts';
import { littleEndianBytes } from '../codecs/dtype.ts';
import { OutputError, UsageError } from '../errors.ts';
import type { Logger } from '../log.ts';
import { defaultScanId } from '../sim/live-scanner.ts';
import { createPhantom, type PhantomOptions } from '../sim/phantom.ts';
import { renderSlice } from '../sim/render-slice.ts';
import { ensureTopics } from './ensure-topics.ts';
import {
  createKafkaClient,
  isRetriableKafkaError,
  type KafkaClient,
  type KafkaSecurity,
  keyPartitioner,
} from './kafka-client.ts';

/** The simulator's scan on Kafka: what the phantom decides replaces the stream's scan fields. */
export interface PublishScanOptions
  extends PhantomOptions,
    Omit<PublishSliceStreamOptions, 'scanId' | 'expectedSlices' | 'voxelSizeUm' | 'slices' | 'rate'> {
  scanId?: string;
  /** Slices per second. */
  rate: number;
}

export interface PublishScanResult {
  scanId: string;
  slices: number;
  elapsedMs: number;
  maxLagMs: number;
}

/**
 * A live simulated scan on a Kafka slice topic: one Avro slice message per slice (key = scan id, so
 * the scan stays on one partition, in order) at `rate` slices/s, each sent once the broker
 * acknowledged the one before.
 */
export async function publishSimulatedScan(options: PublishScanOptions): Promise<PublishScanResult> {
  const phantom = createPhantom(options);
  const scanId = options.scanId ?? defaultScanId(phantom.seed);
  async function* slices() {
    for (let z = 0; z < phantom.slices; z++) {
      const { image } = renderSlice(phantom, z);
      yield {
        z,
        image: { width: phantom.size, height: phantom.size, dtype: 'uint16' as const, data: image },
      };
    }
  }
  return publishSliceStream({
    ...options,
    scanId,
    expectedSlices: phantom.slices,
    voxelSizeUm: phantom.voxelSizeUm,
    slices: slices(),
  });
}

export interface PublishSliceStreamOptions {
  brokers: string[];
  topic: string;
  scanId: string;
  expectedSlices: number;
  voxelSizeUm?: number | undefined;
  /** The slices, in z order. */
  slices: AsyncIterable<{ z: number; image: DecodedImage }>;
  /** Slices per second; undefined: each as soon as the broker acknowledged the one before. */
  rate?: number | undefined;
  log: Logger;
  security?: KafkaSecurity;
  client?: KafkaClient;
  /**
   * Write each slice's pixels to a raw file here and publish a file reference instead of inline
   * pixels (for slices larger than the broker's message limit; the consumer must see the folder).
   */
  pixelsDir?: string;
  signal?: AbortSignal;
  onSlice?: (event: { z: number; partition: number; offset: string; lagMs: number }) => void;
}

/**
 * Slices as a live stream on a Kafka slice topic (the simulator's scan, or an archive replayed
 * with `replay --to-kafka`): key = scan id, one message at a time, each once the broker
 * acknowledged the one before.
 */
export async function publishSliceStream(options: PublishSliceStreamOptions): Promise<PublishScanResult> {
  const { rate, signal, log, topic, scanId } = options;
  if (rate !== undefined && !(Number.isFinite(rate) && rate > 0))
    throw new UsageError(`--rate must be a number of slices per second > 0, got ${rate}`, {
      option: '--rate',
    });
  if (!/^[\w.-]+$/.test(scanId) || scanId === '.' || scanId === '..')
    throw new UsageError(`--scan-id may hold letters, digits, '.', '_' and '-' only, got "${scanId}"`, {
      option: '--scan-id',
    });
  const client =
    options.client ??
    createKafkaClient({
      brokers: options.brokers,
      log,
      clientId: 'xct-sentinel-publish',
      ...(options.security && { security: options.security }),
    });
  await ensureTopics(client, [{ topic }], log);
  const producer = client.producer({
    idempotent: true,
    maxInFlightRequests: 1,
    createPartitioner: keyPartitioner,
  });
  const fail = (what: string, cause: unknown): never => {
    throw new OutputError(
      `${what} (Kafka at ${options.brokers.join(',')}, topic ${topic})`,
      { topic, scanId, stage: 'publish' },
      { cause, canRetry: isRetriableKafkaError(cause) },
    );
  };
  try {
    await producer.connect();
  } catch (cause) {
    fail('cannot connect', cause);
  }
  const pixelsDir = options.pixelsDir === undefined ? undefined : resolve(options.pixelsDir, scanId);
  if (pixelsDir) await mkdir(pixelsDir, { recursive: true });
  const started = performance.now();
  let maxLagMs = 0;
  let count = 0;
  try {
    for await (const { z, image } of options.slices) {
      signal?.throwIfAborted();
      const header = {
        scanId,
        z,
        expectedSlices: options.expectedSlices,
        voxelSizeUm: options.voxelSizeUm ?? null,
        acquiredAt: Date.now(),
      };
      let slice: SliceMessage;
      if (pixelsDir) {
        const bytes = littleEndianBytes(image.data);
        const path = join(pixelsDir, `slice_${String(z).padStart(5, '0')}.raw`);
        await writeFile(path, bytes);
        slice = {
          ...header,
          pixels: {
            path,
            offset: 0,
            length: bytes.byteLength,
            sha256: createHash('sha256').update(bytes).digest('hex'),
            width: image.width,
            height: image.height,
            dtype: image.dtype,
            endianness: 'little',
          },
        };
      } else {
        slice = { ...header, pixels: image };
      }
      // Absolute schedule, as the folder simulator: slice number n is due n / rate after the start.
      const due = rate === undefined ? performance.now() : started + (count * 1000) / rate;
      const wait = due - performance.now();
      if (wait > 0) await sleep(wait, undefined, { signal });
      const lagMs = Math.max(0, performance.now() - due);
      maxLagMs = Math.max(maxLagMs, lagMs);
      let meta: { partition: number; baseOffset?: string } | undefined;
      try {
        [meta] = await producer.send({
          topic,
          acks: -1,
          messages: [{ key: scanId, value: encodeSlice(slice), timestamp: String(Date.now()) }],
        });
      } catch (cause) {
        fail(`cannot publish slice ${z} of ${scanId}`, cause);
      }
      count++;
      options.onSlice?.({ z, partition: meta?.partition ?? -1, offset: meta?.baseOffset ?? '', lagMs });
    }
  } finally {
    await producer.disconnect();
  }
  return { scanId, slices: count, elapsedMs: performance.now() - started, maxLagMs };
}
