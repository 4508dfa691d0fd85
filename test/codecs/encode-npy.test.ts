import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import type { Dtype, TypedArray } from '../../src/codecs/dtype.ts';
import { encodeNpy, npyHeader } from '../../src/codecs/encode-npy.ts';
import { OutputError } from '../../src/errors.ts';

/** Split a .npy file into its parts, checking only what every reader relies on. */
function parse(bytes: Uint8Array): {
  magic: number[];
  version: number[];
  headerLength: number;
  header: string;
} {
  const headerLength = bytes[8]! | (bytes[9]! << 8);
  return {
    magic: [...bytes.subarray(0, 6)],
    version: [...bytes.subarray(6, 8)],
    headerLength,
    header: Buffer.from(bytes.subarray(10, 10 + headerLength)).toString('latin1'),
  };
}

const MAGIC = [0x93, ...Buffer.from('NUMPY')];

t.test('float32 header and data are laid out as numpy expects', async (t) => {
  const data = Float32Array.from([0, 1.5, -2.25, 1e-30, 3.4e38, -0]);
  const bytes = encodeNpy(data, [2, 3]);
  const { magic, version, headerLength, header } = parse(bytes);
  t.same(magic, MAGIC, 'magic \\x93NUMPY');
  t.same(version, [1, 0], 'format 1.0');
  t.equal((10 + headerLength) % 64, 0, 'data starts on a 64-byte boundary');
  t.ok(header.startsWith("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }"), header);
  t.match(header, /^[^\n]* *\n$/, 'padded with spaces, ends in one newline');
  t.equal(bytes.length, 10 + headerLength + 24, 'header then 6 float32s');
  const stored = new Float32Array(bytes.slice(10 + headerLength).buffer);
  t.same(
    [...stored].map((v) => Object.is(v, -0)),
    [false, false, false, false, false, true],
    '-0 kept',
  );
  t.same([...stored], [...data]);
});

t.test('uint8 header uses |u1 and a 1-tuple shape', async (t) => {
  const bytes = encodeNpy(Uint8Array.from([0, 1, 127, 128, 255]), [5]);
  const { magic, version, headerLength, header } = parse(bytes);
  t.same(magic, MAGIC);
  t.same(version, [1, 0]);
  t.equal((10 + headerLength) % 64, 0);
  t.ok(header.startsWith("{'descr': '|u1', 'fortran_order': False, 'shape': (5,), }"), header);
  t.same([...bytes.subarray(10 + headerLength)], [0, 1, 127, 128, 255]);
});

t.test('npyHeader is the prefix encodeNpy writes, for streaming writers', async (t) => {
  const data = new Uint16Array(12);
  t.same([...npyHeader('uint16', [3, 4])], [...encodeNpy(data, [3, 4]).subarray(0, -24)]);
  t.ok(Buffer.from(npyHeader('float64', [])).toString('latin1').includes("'shape': (), "), 'scalar shape');
});

t.test('rejects shapes that do not match the data', async (t) => {
  const cases: Array<[string, () => unknown, RegExp]> = [
    [
      'too few elements',
      () => encodeNpy(new Float32Array(6), [2, 2]),
      /shape \(2, 2\) holds 4 elements but data has 6/,
    ],
    ['scalar of 2', () => encodeNpy(new Uint8Array(2), []), /shape \(\) holds 1 elements but data has 2/],
    [
      'negative axis',
      () => encodeNpy(new Uint8Array(0), [-1, 0]),
      /shape\[0\] must be an integer >= 0, got -1/,
    ],
    [
      'fractional axis',
      () => encodeNpy(new Uint8Array(3), [1.5, 2]),
      /shape\[0\] must be an integer >= 0, got 1.5/,
    ],
  ];
  for (const [name, encode, message] of cases) {
    t.throws(encode, { name: 'OutputError', code: 'ERR_OUTPUT', message }, name);
    try {
      encode();
    } catch (err) {
      t.type(err, OutputError, `${name}: is an OutputError`);
    }
  }
});

// Debian's python3-numpy on the dev machines and CI; other interpreters as a fallback.
const python = ['/usr/bin/python3', 'python3'].find(
  (command) => spawnSync(command, ['-c', 'import numpy'], { timeout: 30_000 }).status === 0,
);

t.test(
  'numpy loads every dtype with the same values and writes byte-identical files',
  { skip: python === undefined ? 'numpy is not installed' : false },
  async (t) => {
    const dir = t.testdir();
    const arrays: Record<Dtype | 'empty', { data: TypedArray; shape: number[] }> = {
      uint8: { data: Uint8Array.from([0, 1, 254, 255]), shape: [2, 2] },
      int8: { data: Int8Array.from([-128, -1, 0, 127]), shape: [4] },
      uint16: { data: Uint16Array.from([0, 1, 65534, 65535, 256, 1]), shape: [3, 2] },
      int16: { data: Int16Array.from([-32768, -1, 0, 32767, 258, -258]), shape: [1, 2, 3] },
      uint32: { data: Uint32Array.from([0, 1, 0xfffffffe, 0xffffffff]), shape: [2, 2] },
      int32: { data: Int32Array.from([-2147483648, -1, 0, 2147483647]), shape: [4, 1] },
      float32: { data: Float32Array.from([0.1, -2.5, 3.4e38, 1e-45, 7]), shape: [5] },
      float64: { data: Float64Array.from([0.1, -2.5, 1.7e308, 5e-324, 1 / 3, 42]), shape: [2, 3] },
      // A header long enough that numpy's growth padding for axis 0 moves it past a 64-byte boundary.
      empty: { data: new Float32Array(0), shape: [0, ...new Array<number>(14).fill(1)] },
    };
    for (const [dtype, { data, shape }] of Object.entries(arrays)) {
      writeFileSync(join(dir, `${dtype}.npy`), encodeNpy(data, shape));
    }
    // For each file: what numpy loads, and whether np.save of that array gives the same bytes.
    const script = `
import io, json, sys, numpy as np
out = {}
for path in sys.argv[1:]:
    raw = open(path, 'rb').read()
    a = np.load(path)
    buf = io.BytesIO()
    np.save(buf, a)
    out[path] = {'dtype': str(a.dtype), 'shape': list(a.shape), 'values': a.ravel().tolist(), 'same_bytes': buf.getvalue() == raw}
print(json.dumps(out))
`;
    const files = Object.keys(arrays).map((dtype) => join(dir, `${dtype}.npy`));
    const result = spawnSync(python!, ['-c', script, ...files], { encoding: 'utf8', timeout: 60_000 });
    t.equal(result.status, 0, `python ran: ${result.stderr}`);
    const loaded = JSON.parse(result.stdout) as Record<
      string,
      { dtype: string; shape: number[]; values: number[]; same_bytes: boolean }
    >;
    for (const [dtype, { data, shape }] of Object.entries(arrays)) {
      const got = loaded[join(dir, `${dtype}.npy`)];
      t.ok(got, `${dtype}: loaded`);
      if (got === undefined) continue;
      t.equal(got.dtype, dtype === 'empty' ? 'float32' : dtype, `${dtype}: dtype`);
      t.same(got.shape, shape, `${dtype}: shape`);
      t.same(got.values, [...data], `${dtype}: values`);
      t.ok(got.same_bytes, `${dtype}: byte-identical to np.save`);
    }
  },
);
