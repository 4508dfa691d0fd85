import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import FileSystemStore from '@zarrita/storage/fs';
import t, { type Test } from 'tap';
import * as zarr from 'zarrita';
import { OutputError } from '../../src/errors.ts';
import { Rng } from '../../src/sim/rng.ts';
import {
  createZarrScanWriter,
  readZarrScanProgress,
  type ZarrScanSlice,
  type ZarrScanWriterOptions,
} from '../../src/sinks/zarr-scan-writer.ts';

/** A seeded stream in [0, 1): the project's own PRNG, the same numbers on every run. */
function rng(seed: number): () => number {
  const stream = new Rng(seed);
  return () => stream.next();
}

const W = 200;
const H = 150;

/** A slice of random uint16 image, 0/1 mask and 0..1 probability, different for every seed. */
function makeSlice(
  seed: number,
  width = W,
  height = H,
): { image: Uint16Array; mask: Uint8Array; prob: Float32Array } {
  const random = rng(seed);
  const n = width * height;
  const image = Uint16Array.from({ length: n }, () => Math.floor(random() * 65536));
  const prob = Float32Array.from({ length: n }, () => random());
  const mask = Uint8Array.from(prob, (p) => (p > 0.5 ? 1 : 0));
  return { image, mask, prob };
}

function options(root: string, extra: Partial<ZarrScanWriterOptions> = {}): ZarrScanWriterOptions {
  return {
    root,
    scanId: 'scan-7',
    width: W,
    height: H,
    expectedSlices: 4,
    voxelSizeUm: { z: 2, y: 0.5, x: 0.25 },
    imageDtype: 'uint16',
    chunk: { y: 64, x: 96 },
    ...extra,
  };
}

async function openArray(root: string, path: string): Promise<zarr.Array<zarr.DataType, FileSystemStore>> {
  return zarr.open(zarr.root(new FileSystemStore(root)).resolve(path), { kind: 'array' });
}

/** Slice z of the array at `path`, as zarrita reads it. */
async function readSlice(root: string, path: string, z: number): Promise<ArrayLike<unknown>> {
  const chunk = await zarr.get(await openArray(root, path), [z, null, null]);
  return chunk.data as ArrayLike<unknown>;
}

function sameValues(t: Test, actual: ArrayLike<unknown>, expected: ArrayLike<number>, what: string): void {
  let bad = -1;
  if (actual.length === expected.length) {
    for (let i = 0; i < expected.length && bad < 0; i++) if (actual[i] !== expected[i]) bad = i;
  }
  t.ok(
    actual.length === expected.length && bad < 0,
    `${what}: ${actual.length} values, first mismatch at ${bad}`,
  );
}

/** Stored probabilities are the input × 255, rounded: never more than half a step away. */
function checkProbability(t: Test, actual: ArrayLike<unknown>, prob: Float32Array, what: string): void {
  let worst = 0;
  for (let i = 0; i < prob.length; i++) worst = Math.max(worst, Math.abs(Number(actual[i]) - prob[i]! * 255));
  t.ok(actual.length === prob.length && worst <= 0.5, `${what}: worst rounding error ${worst}`);
}

function readJsonFile(file: string): Record<string, unknown> {
  return JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
}

/** Every zarr.json below `root`, keyed by its folder relative to root ('' for the root). */
function metadataFiles(root: string, rel = ''): Map<string, Record<string, unknown>> {
  const found = new Map<string, Record<string, unknown>>();
  const dir = join(root, rel);
  if (existsSync(join(dir, 'zarr.json'))) found.set(rel, readJsonFile(join(dir, 'zarr.json')));
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    if (entry.isDirectory() && entry.name !== 'c') {
      for (const [k, v] of metadataFiles(root, rel === '' ? entry.name : `${rel}/${entry.name}`))
        found.set(k, v);
    }
  }
  return found;
}

function progressAttribute(root: string): Record<string, unknown> {
  const attrs = readJsonFile(join(root, 'zarr.json'))['attributes'] as Record<string, unknown>;
  return attrs['xct-sentinel'] as Record<string, unknown>;
}

t.test(
  'slices written out of order read back through zarrita, with valid OME-Zarr 0.5 metadata',
  async (t) => {
    const root = join(t.testdir(), 'scan-7.ome.zarr');
    const model = { name: 'tnet', version: '1.0.0', sha256: 'ab'.repeat(32), provider: 'cpu' };
    const writer = await createZarrScanWriter(options(root, { imageCompression: 'gzip', model }));
    const slices = [0, 1, 2, 3].map((z) => makeSlice(100 + z));
    for (const z of [0, 3]) await writer.writeSlice(z, slices[z]!);
    t.same((await readZarrScanProgress(root))?.slicesWritten, [0, 3], 'progress after z=0 and z=3');
    for (const z of [1, 2]) await writer.writeSlice(z, slices[z]!);

    const paths = { image: '0', mask: 'labels/dendrite/0', prob: 'probabilities/0' };
    const dtypes = { image: 'uint16', mask: 'uint8', prob: 'uint8' };
    for (const [key, path] of Object.entries(paths) as [keyof typeof paths, string][]) {
      const arr = await openArray(root, path);
      t.same(arr.shape, [4, H, W], `${path} shape`);
      t.same(arr.chunks, [1, 64, 96], `${path} chunks`);
      t.equal(arr.dtype, dtypes[key], `${path} dtype`);
    }
    for (const [z, slice] of slices.entries()) {
      sameValues(t, await readSlice(root, paths.image, z), slice.image, `image z=${z}`);
      sameValues(t, await readSlice(root, paths.mask, z), slice.mask, `mask z=${z}`);
      checkProbability(t, await readSlice(root, paths.prob, z), slice.prob, `prob z=${z}`);
    }

    const metadata = metadataFiles(root);
    t.same(
      [...metadata.keys()].sort(),
      ['', '0', 'labels', 'labels/dendrite', 'labels/dendrite/0', 'probabilities', 'probabilities/0'],
      'one zarr.json per node',
    );
    for (const [node, meta] of metadata) {
      t.equal(meta['zarr_format'], 3, `${node} zarr_format`);
      if (meta['node_type'] !== 'array') continue;
      const codecs = meta['codecs'] as { name: string; configuration?: Record<string, unknown> }[];
      t.ok(Array.isArray(codecs) && codecs.length > 0, `${node}: codecs not empty`);
      t.same(
        codecs[0],
        { name: 'bytes', configuration: { endian: 'little' } },
        `${node}: explicit bytes codec`,
      );
      t.same(codecs[1], { name: 'gzip', configuration: { level: 1 } }, `${node}: gzip codec`);
      t.equal(meta['fill_value'], 0, `${node}: numeric fill_value`);
      t.same(meta['dimension_names'], ['z', 'y', 'x'], `${node}: dimension_names`);
      t.same(meta['chunk_key_encoding'], { name: 'default', configuration: { separator: '/' } });
    }
    const axes = ['z', 'y', 'x'].map((name) => ({ name, type: 'space', unit: 'micrometer' }));
    const datasets = [{ path: '0', coordinateTransformations: [{ type: 'scale', scale: [2, 0.5, 0.25] }] }];
    const ome = (node: string) => (metadata.get(node)!['attributes'] as { ome: Record<string, unknown> }).ome;
    for (const node of ['', 'labels/dendrite', 'probabilities']) {
      t.equal(ome(node)['version'], '0.5', `${node || 'root'}: OME version`);
      t.match(ome(node)['multiscales'], [{ axes, datasets }], `${node || 'root'}: multiscales`);
    }
    t.same(ome('labels'), { version: '0.5', labels: ['dendrite'] });
    t.same(ome('labels/dendrite')['image-label'], {
      colors: [{ 'label-value': 1, rgba: [255, 0, 0, 255] }],
      source: { image: '../../' },
    });

    const progress = progressAttribute(root);
    t.match(progress, {
      scanId: 'scan-7',
      slicesWritten: { count: 4, ranges: [[0, 3]] },
      complete: false,
      model,
    });
    t.ok(!Number.isNaN(Date.parse(String(progress['updatedAt']))), 'updatedAt is a date');
    await writer.close();
  },
);

t.test(
  'chunk files are standard gzip of the little-endian chunk, edge chunks padded with the fill value',
  async (t) => {
    const root = join(t.testdir(), 'scan-7.ome.zarr');
    const writer = await createZarrScanWriter(options(root, { imageCompression: 'gzip' }));
    const slice = makeSlice(5);
    await writer.writeSlice(1, slice);
    await writer.close();

    // Mask chunk (0, 0): rows 0..63, columns 0..95.
    const maskChunk = gunzipSync(readFileSync(join(root, 'labels/dendrite/0/c/1/0/0')));
    const expectedMask = new Uint8Array(64 * 96);
    for (let y = 0; y < 64; y++) expectedMask.set(slice.mask.subarray(y * W, y * W + 96), y * 96);
    t.ok(maskChunk.equals(expectedMask), 'mask chunk bytes');

    // Image chunk (2, 2) is the corner: rows 128..149, columns 192..199 of a 64x96 chunk, rest zero.
    const imageChunk = gunzipSync(readFileSync(join(root, '0/c/1/2/2')));
    const expected = Buffer.alloc(64 * 96 * 2);
    for (let y = 128; y < H; y++) {
      for (let x = 192; x < W; x++)
        expected.writeUInt16LE(slice.image[y * W + x]!, ((y - 128) * 96 + (x - 192)) * 2);
    }
    t.ok(imageChunk.equals(expected), 'corner image chunk bytes, little endian, zero padded');
    t.same(
      readdirSync(join(root, '0/c/1/2')).filter((name) => name.startsWith('.')),
      [],
      'no temp files left behind',
    );
  },
);

t.test('without compression the chunk files are the raw little-endian bytes', async (t) => {
  const root = join(t.testdir(), 'raw.ome.zarr');
  const writer = await createZarrScanWriter(options(root, { compression: 'none', chunk: { y: H, x: W } }));
  const slice = makeSlice(9);
  await writer.writeSlice(0, slice);
  await writer.close();
  for (const path of ['0', 'labels/dendrite/0', 'probabilities/0']) {
    t.same(readJsonFile(join(root, path, 'zarr.json'))['codecs'], [
      { name: 'bytes', configuration: { endian: 'little' } },
    ]);
  }
  const raw = readFileSync(join(root, '0/c/0/0/0'));
  t.ok(raw.equals(Buffer.from(slice.image.buffer)), 'image chunk is the slice itself');
  t.ok(
    readFileSync(join(root, 'labels/dendrite/0/c/0/0/0')).equals(slice.mask),
    'mask chunk is the mask itself',
  );
  checkProbability(t, await readSlice(root, 'probabilities/0', 0), slice.prob, 'prob');
});

t.test('the arrays grow past expectedSlices, and finish() sets the real extent', async (t) => {
  const root = join(t.testdir(), 'grow.ome.zarr');
  const writer = await createZarrScanWriter(options(root, { expectedSlices: 2 }));
  const slices = [0, 1, 2, 3, 4, 5].map((z) => makeSlice(200 + z));
  await writer.writeSlice(0, slices[0]!);
  await writer.writeSlice(5, slices[5]!);
  t.ok(writer.capacity >= 6, `capacity ${writer.capacity} holds z=5`);
  t.ok((await openArray(root, 'labels/dendrite/0')).shape[0]! >= 6, 'zarr.json grew');
  sameValues(t, await readSlice(root, 'labels/dendrite/0', 5), slices[5]!.mask, 'mask z=5 after growth');
  sameValues(t, await readSlice(root, '0', 0), slices[0]!.image, 'image z=0 kept after growth');
  for (const z of [1, 2, 3, 4]) await writer.writeSlice(z, slices[z]!);

  await writer.finish({ slices: 6 });
  for (const path of ['0', 'labels/dendrite/0', 'probabilities/0']) {
    t.same((await openArray(root, path)).shape, [6, H, W], `${path} final shape`);
  }
  t.same(await readZarrScanProgress(root), {
    scanId: 'scan-7',
    slicesWritten: [0, 1, 2, 3, 4, 5],
    complete: true,
  });
  t.match(progressAttribute(root), { complete: true, slicesWritten: { count: 6, ranges: [[0, 5]] } });
  await t.rejects(writer.writeSlice(6, slices[0]!), OutputError, 'no writes after finish');
  await writer.close();
});

t.test('finish() with fewer slices than written drops the extra ones', async (t) => {
  const root = join(t.testdir(), 'shrink.ome.zarr');
  const writer = await createZarrScanWriter(options(root, { expectedSlices: undefined }));
  t.equal(writer.capacity, 0);
  for (const z of [0, 1, 2]) await writer.writeSlice(z, makeSlice(z));
  await writer.finish({ slices: 2 });
  t.same((await openArray(root, '0')).shape, [2, H, W]);
  t.notOk(existsSync(join(root, 'labels/dendrite/0/c/2')), 'chunks of z=2 removed');
  t.ok(existsSync(join(root, 'labels/dendrite/0/c/1')), 'chunks of z=1 kept');
  t.same((await readZarrScanProgress(root))?.slicesWritten, [0, 1]);
  await writer.close();
});

t.test('a reopened store of the same scan resumes; another scan or layout is refused', async (t) => {
  const root = join(t.testdir(), 'resume.ome.zarr');
  const first = await createZarrScanWriter(options(root));
  const slices = [0, 1, 2].map((z) => makeSlice(300 + z));
  await first.writeSlice(0, slices[0]!);
  await first.writeSlice(2, slices[2]!);
  await first.close();
  await first.close();

  const second = await createZarrScanWriter(options(root));
  t.same(second.slicesWritten(), [0, 2], 'written slices carried over');
  await second.writeSlice(1, slices[1]!);
  for (const [z, slice] of slices.entries()) {
    sameValues(t, await readSlice(root, 'labels/dendrite/0', z), slice.mask, `mask z=${z}`);
  }
  t.same((await readZarrScanProgress(root))?.slicesWritten, [0, 1, 2]);
  await second[Symbol.asyncDispose]();

  await t.rejects(createZarrScanWriter(options(root, { scanId: 'scan-8' })), OutputError, 'other scan');
  await t.rejects(createZarrScanWriter(options(root, { imageDtype: 'float32' })), OutputError, 'other dtype');
  await t.rejects(
    createZarrScanWriter(options(root, { chunk: { y: 32, x: 32 } })),
    OutputError,
    'other chunks',
  );
  t.equal(await readZarrScanProgress(join(t.testdir(), 'nothing-here')), undefined, 'no store, no progress');

  const foreign = join(t.testdir(), 'foreign.zarr');
  await zarr.create(new FileSystemStore(foreign), { attributes: { owner: 'someone else' } });
  await t.rejects(createZarrScanWriter(options(foreign)), OutputError, 'a Zarr group that is not ours');
  t.same(readJsonFile(join(foreign, 'zarr.json'))['attributes'], { owner: 'someone else' }, 'left untouched');
});

t.test('concurrent writes that grow the arrays all land, and all are recorded', async (t) => {
  const root = join(t.testdir(), 'concurrent.ome.zarr');
  const writer = await createZarrScanWriter(options(root, { expectedSlices: undefined, durable: false }));
  const order = [7, 0, 12, 3, 1, 20, 2];
  const slices = new Map(order.map((z) => [z, makeSlice(400 + z)]));
  await Promise.all(order.map((z) => writer.writeSlice(z, slices.get(z)!)));
  t.same(writer.slicesWritten(), [0, 1, 2, 3, 7, 12, 20]);
  t.same((await readZarrScanProgress(root))?.slicesWritten, [0, 1, 2, 3, 7, 12, 20]);
  t.match(progressAttribute(root), {
    slicesWritten: {
      count: 7,
      ranges: [
        [0, 3],
        [7, 7],
        [12, 12],
        [20, 20],
      ],
    },
  });
  t.ok((await openArray(root, '0')).shape[0]! >= 21, 'extent covers z=20');
  for (const [z, slice] of slices) sameValues(t, await readSlice(root, '0', z), slice.image, `image z=${z}`);
  await writer.close();
});

t.test('bad slices and a closed writer give OutputError naming scan and slice', async (t) => {
  const root = join(t.testdir(), 'bad.ome.zarr');
  const writer = await createZarrScanWriter(options(root));
  const good = makeSlice(1);
  const cases: [string, ZarrScanSlice][] = [
    ['short image', { ...good, image: good.image.subarray(1) }],
    ['wrong dtype', { ...good, image: new Float32Array(W * H) }],
    ['short mask', { ...good, mask: new Uint8Array(W * H - 1) }],
    ['short prob', { ...good, prob: new Float32Array(3) }],
  ];
  for (const [what, slice] of cases) {
    await t.rejects(
      writer.writeSlice(0, slice),
      { code: 'ERR_OUTPUT', context: { scanId: 'scan-7', slice: 0 } },
      what,
    );
  }
  await t.rejects(writer.writeSlice(-1, good), OutputError, 'negative z');
  t.same(writer.slicesWritten(), [], 'nothing recorded');
  await writer.close();
  await t.rejects(writer.writeSlice(0, good), OutputError, 'closed');
});

t.test('an unwritable root gives OutputError with the path, the scan and the cause', async (t) => {
  const dir = t.testdir();
  writeFileSync(join(dir, 'file'), 'not a folder');
  const root = join(dir, 'file', 'x.ome.zarr');
  const err = await createZarrScanWriter(options(root)).then(
    () => undefined,
    (e: unknown) => e,
  );
  t.type(err, OutputError);
  const output = err as OutputError;
  t.match(output.context, { path: root, scanId: 'scan-7', stage: 'zarr' });
  t.match(output.cause, { code: 'ENOTDIR' });
  t.match(output.message, /scan-7/);
});

t.test('a slice that cannot be written is an OutputError, is not recorded, and can be retried', async (t) => {
  const root = join(t.testdir(), 'fail.ome.zarr');
  const writer = await createZarrScanWriter(options(root));
  await writer.writeSlice(0, makeSlice(0));
  // A regular file where slice 1's chunk folder must go: the disk refuses, as it would when full.
  const blocker = join(root, 'labels/dendrite/0/c/1');
  writeFileSync(blocker, 'in the way');
  const err = await writer.writeSlice(1, makeSlice(1)).then(
    () => undefined,
    (e: unknown) => e,
  );
  t.type(err, OutputError);
  t.match((err as OutputError).context, { path: root, scanId: 'scan-7', slice: 1, stage: 'zarr' });
  t.ok((err as OutputError).cause, 'carries the cause');
  t.same((await readZarrScanProgress(root))?.slicesWritten, [0], 'the failed slice is not claimed');
  rmSync(blocker);
  await writer.writeSlice(1, makeSlice(1));
  t.same((await readZarrScanProgress(root))?.slicesWritten, [0, 1], 'retry succeeds');
  await writer.close();
});

t.test('an aborted signal stops writes', async (t) => {
  const root = join(t.testdir(), 'abort.ome.zarr');
  const controller = new AbortController();
  const writer = await createZarrScanWriter(options(root, { signal: controller.signal }));
  controller.abort(new Error('shutting down'));
  await t.rejects(writer.writeSlice(0, makeSlice(1)), { message: 'shutting down' });
  t.same(writer.slicesWritten(), []);
  await writer.close();
});
