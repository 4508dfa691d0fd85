import t from 'tap';
import { loadAvroSchemas } from '../../src/codecs/avro-schemas.ts';
import { encodeSingleObject } from '../../src/codecs/avro-single-object.ts';
import { decodeSlice, encodeSlice, type SliceMessage } from '../../src/codecs/avro-slice.ts';
import { decodeSlicePixels } from '../../src/codecs/avro-slice-pixels.ts';
import type { Dtype, TypedArray } from '../../src/codecs/dtype.ts';

/** 4x3 samples per dtype, including each type's extremes (and -0, NaN, infinities for floats). */
const SAMPLES: Record<Dtype, TypedArray> = {
  uint8: Uint8Array.from([0, 1, 2, 127, 128, 254, 255, 3, 4, 5, 6, 7]),
  int8: Int8Array.from([-128, -1, 0, 1, 127, 2, 3, 4, 5, 6, 7, 8]),
  uint16: Uint16Array.from([0, 1, 255, 256, 0x1234, 0xfffe, 0xffff, 7, 8, 9, 10, 11]),
  int16: Int16Array.from([-32768, -1, 0, 1, 32767, 0x1234, -0x1234, 7, 8, 9, 10, 11]),
  uint32: Uint32Array.from([0, 1, 0xffffffff, 0x12345678, 65536, 6, 7, 8, 9, 10, 11, 12]),
  int32: Int32Array.from([-2147483648, -1, 0, 1, 2147483647, 0x12345678, 7, 8, 9, 10, 11, 12]),
  float32: Float32Array.from([0, -0, 1.5, -2.25, 3.4e38, 1e-45, Number.NaN, Infinity, -Infinity, 0.1, 7, 8]),
  float64: Float64Array.from([
    0,
    -0,
    1.5,
    -2.25,
    1.7e308,
    5e-324,
    Number.NaN,
    Infinity,
    -Infinity,
    0.1,
    7,
    8,
  ]),
};

function slice(pixels: SliceMessage['pixels'], z = 5): SliceMessage {
  return {
    scanId: 'LiPEO-cell-042',
    z,
    expectedSlices: 320,
    voxelSizeUm: 0.65,
    acquiredAt: 1_718_280_000_000 + z,
    pixels,
  };
}

const where = { topic: 'xct.slices', partition: 0, offset: '99' };

t.test('inline slices of every dtype round-trip bit for bit', async (t) => {
  for (const [dtype, data] of Object.entries(SAMPLES) as [Dtype, TypedArray][]) {
    const message = encodeSlice(slice({ width: 4, height: 3, dtype, data }));
    t.same([...message.subarray(0, 2)], [0xc3, 0x01], `${dtype}: C3 01`);
    const decoded = decodeSlice(message);
    if (!('data' in decoded.pixels)) throw new Error('expected inline pixels');
    const { data: got, ...layout } = decoded.pixels;
    t.same(layout, { width: 4, height: 3, dtype }, `${dtype}: layout`);
    t.equal(got.constructor, data.constructor, `${dtype}: typed array kind`);
    // Compare bytes so NaN and -0 count as equal to themselves.
    t.same(
      [...new Uint8Array(got.buffer, got.byteOffset, got.byteLength)],
      [...new Uint8Array(data.buffer, data.byteOffset, data.byteLength)],
      `${dtype}: samples`,
    );
    t.same({ ...decoded, pixels: null }, { ...slice(decoded.pixels), pixels: null }, `${dtype}: header`);
  }
});

t.test('a slice larger than the message limit travels as a file reference', async (t) => {
  const ref = {
    path: '/mnt/scanner/LiPEO-cell-042/slice_0005.raw',
    offset: 4096,
    length: 2048 * 2048 * 2,
    sha256: 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855',
    width: 2048,
    height: 2048,
    dtype: 'uint16' as const,
    endianness: 'big' as const,
  };
  const message = encodeSlice(slice(ref));
  t.ok(message.length < 300, `small message (${message.length} bytes)`);
  t.strictSame(decodeSlice(message), slice(ref));
  t.throws(() => encodeSlice(slice({ ...ref, length: 100 })), {
    code: 'ERR_OUTPUT',
    message: /length 100 but 2048x2048 uint16 needs 8388608/,
  });
  t.throws(() => encodeSlice(slice({ ...ref, sha256: 'E3B0' })), { message: /not 64 lowercase hex digits/ });
});

t.test('big-endian pixel bytes (from a referenced file) decode to host order', async (t) => {
  const bytes = Uint8Array.from([0x12, 0x34, 0xff, 0xfe, 0x00, 0x01]);
  t.same(
    [...decodeSlicePixels(bytes, { width: 3, height: 1, dtype: 'uint16', endianness: 'big' })],
    [0x1234, 0xfffe, 1],
  );
  t.same(
    [...decodeSlicePixels(bytes, { width: 3, height: 1, dtype: 'int16', endianness: 'little' })],
    [0x3412, -257, 256],
  );
});

t.test('slices written with schema v1 decode with the current reader, defaults filled', async (t) => {
  const v1 = loadAvroSchemas().slice.versions.find((v) => v.version === 1)!;
  const record = {
    scanId: 'old-scanner',
    z: 2,
    width: 2,
    height: 2,
    dtype: 'int16',
    acquiredAt: 1_600_000_000_000,
    pixels: Buffer.from([0xff, 0xff, 0x01, 0x00, 0x00, 0x80, 0xff, 0x7f]),
  };
  const decoded = decodeSlice(encodeSingleObject(v1, record));
  t.strictSame(decoded, {
    scanId: 'old-scanner',
    z: 2,
    expectedSlices: null,
    voxelSizeUm: null,
    acquiredAt: 1_600_000_000_000,
    pixels: { width: 2, height: 2, dtype: 'int16', data: Int16Array.from([-1, 1, -32768, 32767]) },
  });
});

t.test('poison slices fail with a DecodeError naming the reason', async (t) => {
  const current = loadAvroSchemas().slice.current;
  const record = {
    scanId: 'LiPEO-cell-042',
    z: 9,
    expectedSlices: null,
    width: 4,
    height: 3,
    dtype: 'uint16',
    endianness: 'little',
    voxelSizeUm: null,
    acquiredAt: 0,
    pixels: Buffer.alloc(23),
  };
  const context = { ...where, scanId: 'LiPEO-cell-042', slice: 9, stage: 'decode' };
  t.throws(() => decodeSlice(encodeSingleObject(current, record), { where }), {
    name: 'DecodeError',
    message: /slice pixels hold 23 bytes but 4x3 uint16 needs 24/,
    context,
  });
  t.throws(
    () =>
      decodeSlice(encodeSingleObject(current, { ...record, width: 0, pixels: Buffer.alloc(0) }), { where }),
    {
      name: 'DecodeError',
      message: /invalid dimensions 0x3/,
      context,
    },
  );
  const ref = { path: '/x.raw', offset: 0, length: 24, sha256: 'nope' };
  t.throws(() => decodeSlice(encodeSingleObject(current, { ...record, pixels: ref }), { where }), {
    name: 'DecodeError',
    message: /file reference \/x\.raw has sha256 "nope", not 64 lowercase hex digits/,
    context: { ...context, path: '/x.raw' },
  });
  const message = encodeSlice(slice({ width: 4, height: 3, dtype: 'uint16', data: SAMPLES.uint16 }));
  t.throws(() => decodeSlice(message.subarray(0, message.length - 5), { where }), {
    name: 'DecodeError',
    message: /truncated Avro body/,
  });
  t.throws(() => encodeSlice(slice({ width: 4, height: 3, dtype: 'uint16', data: SAMPLES.int16 })), {
    code: 'ERR_OUTPUT',
    message: /12 int16 samples do not make a 4x3 uint16 image/,
  });
});
