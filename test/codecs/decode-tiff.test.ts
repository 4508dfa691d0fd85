import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { encode as encodePng } from 'fast-png';
import { writeArrayBuffer } from 'geotiff';
import t, { type Test } from 'tap';
import { countTiffPages, decodeTiff } from '../../src/codecs/decode-tiff.ts';
import { type Dtype, dtypeOf, type TypedArray } from '../../src/codecs/dtype.ts';
import { encodeTiff } from '../../src/codecs/encode-tiff.ts';
import { DecodeError } from '../../src/errors.ts';

const DTYPES: readonly Dtype[] = [
  'uint8',
  'uint16',
  'uint32',
  'int8',
  'int16',
  'int32',
  'float32',
  'float64',
];
const CTORS = {
  uint8: Uint8Array,
  uint16: Uint16Array,
  uint32: Uint32Array,
  int8: Int8Array,
  int16: Int16Array,
  int32: Int32Array,
  float32: Float32Array,
  float64: Float64Array,
} satisfies Record<Dtype, new (length: number) => TypedArray>;

/** Deterministic samples that include each dtype's extremes (and NaN, ±Infinity, -0 for floats). */
function samples(dtype: Dtype, length: number, seed: number): TypedArray {
  const data = new CTORS[dtype](length);
  let state = seed >>> 0;
  const next = (): number => {
    // mulberry32
    state = (state + 0x6d2b79f5) >>> 0;
    let x = Math.imul(state ^ (state >>> 15), state | 1);
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61);
    return (x ^ (x >>> 14)) >>> 0;
  };
  const float = dtype === 'float32' || dtype === 'float64';
  for (let i = 0; i < length; i++) data[i] = float ? (next() / 2 ** 32 - 0.5) * 2e4 : next();
  // Integer stores wrap, so these hit min and max of every integer width.
  const specials = float
    ? [Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY, -0, 1e-40]
    : [0, -1, 0x7f, 0x80, 0x7fff, 0x8000, 0x7fffffff, 0x80000000];
  specials.slice(0, length).forEach((value, i) => {
    data[(i * 7919) % length] = value;
  });
  return data;
}

/** Index of the first differing sample (Object.is, so NaN = NaN and -0 ≠ 0), or -1. */
function firstMismatch(actual: TypedArray, expected: TypedArray): number {
  if (actual.length !== expected.length) return Math.min(actual.length, expected.length);
  for (let i = 0; i < actual.length; i++) if (!Object.is(actual[i], expected[i])) return i;
  return -1;
}

function run(command: string, args: readonly string[]): { stdout: string; stderr: string } {
  const result = spawnSync(command, args, { encoding: 'utf8', timeout: 30_000 });
  if (result.error)
    throw new Error(`${command} failed to start (install libtiff-tools?)`, { cause: result.error });
  if (result.status !== 0)
    throw new Error(`${command} ${args.join(' ')} exited ${result.status}: ${result.stderr}`);
  return { stdout: result.stdout, stderr: result.stderr };
}

/** Await a promise that must reject, and return what it rejected with. */
async function rejection(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    () => new Error('expected a rejection, got a value'),
    (err: unknown) => err,
  );
}

async function rejectsWithDecodeError(
  t: Test,
  promise: Promise<unknown>,
  path: string,
  reason: RegExp,
  canRetry: boolean,
): Promise<void> {
  const err = await rejection(promise);
  t.type(err, DecodeError);
  if (!(err instanceof DecodeError)) return;
  t.equal(err.code, 'ERR_DECODE');
  t.equal(err.context.path, path, 'context.path is the path');
  t.ok(err.message.startsWith(`${path}: `), `message names the path: ${err.message}`);
  t.match(err.message, reason);
  t.equal(err.canRetry, canRetry, 'canRetry');
}

t.test('round-trips every dtype, size and compression exactly', async (t) => {
  // 260x300 spans several strips for every dtype, with a short last strip.
  const sizes = [
    [1, 1],
    [3, 5],
    [513, 7],
    [260, 300],
  ] as const;
  let seed = 1;
  for (const dtype of DTYPES) {
    for (const [width, height] of sizes) {
      for (const compression of ['none', 'deflate'] as const) {
        const data = samples(dtype, width * height, seed++);
        const file = encodeTiff([{ width, height, data }], { compression });
        const image = await decodeTiff(file, { path: 'x.tif' });
        const name = `${dtype} ${width}x${height} ${compression}`;
        t.equal(image.dtype, dtype, `${name}: dtype`);
        t.equal(dtypeOf(image.data), dtype, `${name}: array type`);
        t.equal(image.width, width, `${name}: width`);
        t.equal(image.height, height, `${name}: height`);
        t.equal(firstMismatch(image.data, data), -1, `${name}: every sample equal`);
      }
    }
  }
});

t.test('reads every page of a multi-page file and counts them', async (t) => {
  const pages = [
    { width: 4, height: 3, data: samples('uint16', 12, 10) },
    { width: 5, height: 2, data: samples('float32', 10, 11) },
    { width: 1, height: 1, data: samples('int8', 1, 12) },
  ];
  for (const compression of ['none', 'deflate'] as const) {
    const file = encodeTiff(pages, { compression });
    t.equal(await countTiffPages(file, { path: 'stack.tif' }), 3);
    for (const [index, page] of pages.entries()) {
      const image = await decodeTiff(file, { path: 'stack.tif', page: index });
      t.equal(image.dtype, dtypeOf(page.data), `${compression} page ${index}: dtype`);
      t.same([image.width, image.height], [page.width, page.height], `${compression} page ${index}: size`);
      t.equal(firstMismatch(image.data, page.data), -1, `${compression} page ${index}: samples`);
    }
    await rejectsWithDecodeError(
      t,
      decodeTiff(file, { path: 'stack.tif', page: 3 }),
      'stack.tif',
      /page 3 requested but the file has 3 pages/,
      false,
    );
  }
});

t.test('accepts an ArrayBuffer and a Uint8Array that is a window into a larger buffer', async (t) => {
  const data = samples('uint16', 15, 20);
  const file = encodeTiff([{ width: 3, height: 5, data }]);
  const fromBuffer = await decodeTiff(file.slice().buffer, { path: 'a.tif' });
  t.equal(firstMismatch(fromBuffer.data, data), -1, 'ArrayBuffer');
  const padded = new Uint8Array(file.length + 10).fill(0xee);
  padded.set(file, 3);
  const window = padded.subarray(3, 3 + file.length);
  const fromWindow = await decodeTiff(window, { path: 'a.tif' });
  t.equal(firstMismatch(fromWindow.data, data), -1, 'window');
  t.equal(await countTiffPages(window, { path: 'a.tif' }), 1);
});

t.test('decodes files rewritten by libtiff: LZW, predictor, PackBits, tiles, big-endian', async (t) => {
  const dir = t.testdir();
  const cases: ReadonlyArray<{ dtype: Dtype; args: readonly string[] }> = [
    ...DTYPES.map((dtype) => ({ dtype, args: ['-c', 'lzw'] })),
    { dtype: 'uint16', args: ['-c', 'lzw:2'] },
    { dtype: 'float32', args: ['-c', 'zip:3'] },
    { dtype: 'uint8', args: ['-c', 'packbits'] },
    { dtype: 'int16', args: ['-t', '-w', '16', '-l', '16'] },
    { dtype: 'float64', args: ['-t', '-w', '32', '-l', '16', '-c', 'lzw'] },
    { dtype: 'uint16', args: ['-B'] },
    { dtype: 'float32', args: ['-B', '-c', 'lzw'] },
  ];
  for (const [index, { dtype, args }] of cases.entries()) {
    // 513x70: rows wider than a 16-pixel tile grid, and several strips.
    const data = samples(dtype, 513 * 70, 100 + index);
    const source = join(dir, `source-${index}.tif`);
    const rewritten = join(dir, `libtiff-${index}.tif`);
    writeFileSync(source, encodeTiff([{ width: 513, height: 70, data }]));
    run('tiffcp', [...args, source, rewritten]);
    const bytes = readFileSync(rewritten);
    t.not(
      Buffer.compare(bytes, readFileSync(source)),
      0,
      `${dtype} ${args.join(' ')}: libtiff changed the file`,
    );
    const image = await decodeTiff(bytes, { path: rewritten });
    const name = `${dtype} tiffcp ${args.join(' ')}`;
    t.equal(image.dtype, dtype, `${name}: dtype`);
    t.same([image.width, image.height], [513, 70], `${name}: size`);
    t.equal(firstMismatch(image.data, data), -1, `${name}: every sample equal`);
  }
});

t.test('rejects what is not a decodable grayscale TIFF with a DecodeError naming the path', async (t) => {
  const dir = t.testdir();
  const write = (name: string, bytes: Uint8Array | string): { path: string; bytes: Uint8Array } => {
    const path = join(dir, name);
    writeFileSync(path, bytes);
    return { path, bytes: readFileSync(path) };
  };
  type File = { path: string; bytes: Uint8Array };
  const expectations: Array<{ file: File; reason: RegExp; canRetry: boolean; page: number }> = [];
  const expect = (file: File, reason: RegExp, canRetry = false, page = 0): void => {
    expectations.push({ file, reason, canRetry, page });
  };

  expect(write('empty.tif', new Uint8Array(0)), /: empty file \(0 bytes\)$/, true);
  const png = encodePng({ width: 2, height: 2, data: new Uint8Array(4), channels: 1, depth: 8 });
  expect(write('slice_00003.tif', png), /: not a TIFF file \(starts with 89 50 4E 47, a PNG\)$/);
  expect(
    write('notes.tif', 'hello, this is not an image\n'),
    /: not a TIFF file \(starts with 68 65 6C 6C, looks like text\)$/,
  );

  const valid = encodeTiff([{ width: 512, height: 512, data: samples('uint16', 512 * 512, 30) }]);
  // Our writer puts the IFD after the strips, so half a file has lost its IFD.
  expect(
    write('half.tif', valid.subarray(0, valid.length >> 1)),
    /: truncated: IFD 0 at byte \d+ starts past the end/,
    true,
  );
  expect(
    write('header-only.tif', valid.subarray(0, 5)),
    /: truncated: 5 bytes, shorter than the TIFF header$/,
    true,
  );
  // geotiff's writer puts the IFD first, so half of its file has the IFD but not all strips.
  const ifdFirst = new Uint8Array(
    writeArrayBuffer(samples('uint16', 300 * 300, 31), { width: 300, height: 300 }),
  );
  expect(
    write('ifd-first-half.tif', ifdFirst.subarray(0, ifdFirst.length >> 1)),
    new RegExp(`: truncated: strip 0 ends at byte \\d+ but the file has ${ifdFirst.length >> 1} bytes$`),
    true,
  );

  const rgb = new Uint8Array(writeArrayBuffer(new Uint8Array(3 * 4 * 4).fill(7), { width: 4, height: 4 }));
  expect(write('rgb.tif', rgb), /: page 0 has 3 samples per pixel \(RGB\); only single-channel grayscale/);

  // Point the last IFD's next-offset back at the first: geotiff alone would loop forever. Page 0
  // and 1 are still readable; page 2 and the page count are not.
  const cyclic = encodeTiff([
    { width: 2, height: 2, data: new Uint8Array(4) },
    { width: 2, height: 2, data: new Uint8Array(4) },
  ]);
  const view = new DataView(cyclic.buffer);
  const first = view.getUint32(4, true);
  const second = view.getUint32(first + 2 + view.getUint16(first, true) * 12, true);
  view.setUint32(second + 2 + view.getUint16(second, true) * 12, first, true);
  expect(write('cyclic.tif', cyclic), /: corrupt: IFD chain loops back to byte \d+ after 2 pages$/, false, 2);

  // Hand-edited tags in the first IFD of one of our files.
  const patched = (tag: number, value: number): Uint8Array => {
    const bytes = encodeTiff([{ width: 3, height: 5, data: new Uint16Array(15) }]);
    const view = new DataView(bytes.buffer);
    const ifd = view.getUint32(4, true);
    for (let i = 0; i < view.getUint16(ifd, true); i++) {
      const entry = ifd + 2 + i * 12;
      if (view.getUint16(entry, true) !== tag) continue;
      if (view.getUint16(entry + 2, true) === 3) view.setUint16(entry + 8, value, true);
      else view.setUint32(entry + 8, value, true);
      return bytes;
    }
    throw new Error(`tag ${tag} not found`);
  };
  expect(write('short-strip.tif', patched(279, 29)), /: corrupt: strip 0 holds 29 bytes but needs 30$/);
  expect(
    write('jpeg.tif', patched(259, 7)),
    /: page 0 uses compression 7 \(JPEG\); supported: none, LZW, deflate/,
  );
  expect(write('12-bit.tif', patched(258, 12)), /: page 0 has 12-bit unsigned samples; supported: /);
  expect(
    write('palette.tif', patched(262, 3)),
    /: page 0 has photometric interpretation palette; only BlackIsZero/,
  );

  for (const { file, reason, canRetry, page } of expectations) {
    await t.test(file.path, async (t) => {
      const decoding = decodeTiff(file.bytes, { path: file.path, page });
      await rejectsWithDecodeError(t, decoding, file.path, reason, canRetry);
      await rejectsWithDecodeError(
        t,
        countTiffPages(file.bytes, { path: file.path }),
        file.path,
        reason,
        canRetry,
      );
    });
  }
});

t.test('rejects an invalid page number', async (t) => {
  const file = encodeTiff([{ width: 1, height: 1, data: new Uint8Array(1) }]);
  await rejectsWithDecodeError(
    t,
    decodeTiff(file, { path: 'p.tif', page: -1 }),
    'p.tif',
    /page must be an integer/,
    false,
  );
  await rejectsWithDecodeError(
    t,
    decodeTiff(file, { path: 'p.tif', page: 0.5 }),
    'p.tif',
    /page must be an integer/,
    false,
  );
});

t.test('an aborted signal rejects with the abort reason, not a DecodeError', async (t) => {
  const file = encodeTiff([{ width: 3, height: 5, data: new Uint16Array(15) }]);
  const controller = new AbortController();
  controller.abort();
  const err = await rejection(decodeTiff(file, { path: 'a.tif', signal: controller.signal }));
  t.equal(err, controller.signal.reason);
  t.notOk(err instanceof DecodeError);
});
