import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { encode as encodePng } from 'fast-png';
import t from 'tap';
import { encodeTiff } from '../../src/codecs/encode-tiff.ts';
import { readSliceFile } from '../../src/codecs/read-slice-file.ts';
import { DecodeError } from '../../src/errors.ts';

const W = 5;
const H = 3;

function ramp16(): Uint16Array {
  return Uint16Array.from({ length: W * H }, (_, i) => i * 4099 + 1);
}

/** Raw bytes of `values` as `width`-byte samples in the given order, after `offset` junk bytes. */
function rawBytes(
  values: number[],
  width: 2 | 4,
  order: 'little' | 'big',
  offset = 0,
  float = false,
): Buffer {
  const buf = Buffer.alloc(offset + values.length * width, 0xab);
  values.forEach((v, i) => {
    const at = offset + i * width;
    if (width === 2) order === 'little' ? buf.writeUInt16LE(v, at) : buf.writeUInt16BE(v, at);
    else if (float) order === 'little' ? buf.writeFloatLE(v, at) : buf.writeFloatBE(v, at);
    else order === 'little' ? buf.writeInt32LE(v, at) : buf.writeInt32BE(v, at);
  });
  return buf;
}

t.test('TIFF is recognised by content, whatever the file is called', async (t) => {
  const dir = t.testdir();
  const data = ramp16();
  const bytes = encodeTiff([{ width: W, height: H, data }]);
  for (const name of ['slice_00001.tif', 'slice_00001.raw', 'no-extension']) {
    writeFileSync(join(dir, name), bytes);
    const image = await readSliceFile(join(dir, name));
    t.match(image, { width: W, height: H, dtype: 'uint16' }, name);
    t.same([...image.data], [...data], `${name}: pixels`);
  }
  const floats = Float32Array.from({ length: W * H }, (_, i) => i / 3 - 2);
  writeFileSync(join(dir, 'f.tif'), encodeTiff([{ width: W, height: H, data: floats }]));
  const f = await readSliceFile(join(dir, 'f.tif'));
  t.equal(f.dtype, 'float32');
  t.same([...f.data], [...floats]);
});

t.test('.raw with a sidecar: dtype, both byte orders, offset', async (t) => {
  const dir = t.testdir();
  const values = [...ramp16()];
  for (const order of ['little', 'big'] as const) {
    const base = join(dir, `u16-${order}`);
    writeFileSync(`${base}.raw`, rawBytes(values, 2, order, 7));
    writeFileSync(
      `${base}.json`,
      JSON.stringify({ width: W, height: H, dtype: 'uint16', endianness: order, offset: 7 }),
    );
    const image = await readSliceFile(`${base}.raw`);
    t.match(image, { width: W, height: H, dtype: 'uint16' }, order);
    t.ok(image.data instanceof Uint16Array);
    t.same([...image.data], values, `${order}: pixels`);
  }
  const signed = values.map((v, i) => (i % 2 ? -v * 1000 : v * 1000));
  writeFileSync(join(dir, 'i32.raw'), rawBytes(signed, 4, 'big'));
  writeFileSync(
    join(dir, 'i32.json'),
    JSON.stringify({ width: W, height: H, dtype: 'int32', endianness: 'big' }),
  );
  t.same([...(await readSliceFile(join(dir, 'i32.raw'))).data], signed, 'int32 big-endian');

  const floats = values.map((v) => v / 8);
  writeFileSync(join(dir, 'f32.raw'), rawBytes(floats, 4, 'little', 0, true));
  writeFileSync(join(dir, 'f32.json'), JSON.stringify({ width: W, height: H, dtype: 'float32' }));
  const f = await readSliceFile(join(dir, 'f32.raw'));
  t.equal(f.dtype, 'float32', 'little-endian is the default');
  t.same([...f.data], floats);
});

t.test('.raw whose size does not match its sidecar names the file and both sizes', async (t) => {
  const dir = t.testdir();
  const raw = join(dir, 'slice_00003.raw');
  writeFileSync(
    join(dir, 'slice_00003.json'),
    JSON.stringify({ width: W, height: H, dtype: 'uint16', offset: 4 }),
  );
  writeFileSync(raw, Buffer.alloc(20));
  const short = await readSliceFile(raw).catch((e: unknown) => e);
  t.type(short, DecodeError);
  t.match(short, {
    code: 'ERR_DECODE',
    canRetry: true,
    context: { path: raw },
    message:
      /slice_00003\.raw: holds 20 bytes but .*slice_00003\.json describes 5x3 uint16 after a 4-byte offset = 34 bytes/,
  });
  writeFileSync(raw, Buffer.alloc(40));
  t.match(await readSliceFile(raw).catch((e: unknown) => e), { canRetry: false, message: /holds 40 bytes/ });
  writeFileSync(raw, Buffer.alloc(0));
  t.match(await readSliceFile(raw).catch((e: unknown) => e), {
    code: 'ERR_DECODE',
    message: /holds 0 bytes/,
  });
});

t.test('bad or missing sidecars are DecodeErrors that say what is wrong', async (t) => {
  const dir = t.testdir();
  const raw = join(dir, 'a.raw');
  const sidecar = join(dir, 'a.json');
  writeFileSync(raw, Buffer.alloc(W * H * 2));
  t.match(await readSliceFile(raw).catch((e: unknown) => e), {
    code: 'ERR_DECODE',
    canRetry: true,
    context: { path: raw },
    message: /a\.json: cannot read the sidecar of .*a\.raw \(ENOENT\)/,
  });
  writeFileSync(sidecar, '{ width: 5');
  t.match(await readSliceFile(raw).catch((e: unknown) => e), {
    message: /a\.json: sidecar is not valid JSON/,
  });
  writeFileSync(sidecar, JSON.stringify({ width: -1, height: 3, dtype: 'uint12', endianness: 'middle' }));
  const err = await readSliceFile(raw).catch((e: unknown) => e);
  t.type(err, DecodeError);
  t.match(err, { message: /width must be an integer >= 1, got -1/ });
  t.match(err, { message: /dtype must be one of uint8, .*got "uint12"/ });
  t.match(err, { message: /endianness must be "little" or "big", got "middle"/ });
});

t.test('empty, PNG and text files named .tif fail in the decoder, naming the file', async (t) => {
  const dir = t.testdir();
  const png = encodePng({ width: 2, height: 2, data: new Uint8Array(4), channels: 1, depth: 8 });
  const cases: [string, Uint8Array | string, RegExp][] = [
    ['empty.tif', new Uint8Array(0), /empty\.tif: empty file \(0 bytes\)/],
    ['picture.tif', png, /picture\.tif: not a TIFF file .*a PNG/],
    ['notes.tif', 'hello, this is not an image\n', /notes\.tif: not a TIFF file .*looks like text/],
  ];
  for (const [name, content, message] of cases) {
    const path = join(dir, name);
    writeFileSync(path, content);
    const err = await readSliceFile(path).catch((e: unknown) => e);
    t.type(err, DecodeError, name);
    t.match(err, { code: 'ERR_DECODE', context: { path }, message }, name);
  }
  const missing = join(dir, 'gone.tif');
  t.match(await readSliceFile(missing).catch((e: unknown) => e), {
    code: 'ERR_DECODE',
    context: { path: missing },
    message: /gone\.tif: cannot read the file \(ENOENT\)/,
  });
});

t.test('an aborted signal rejects with its own reason, not a DecodeError', async (t) => {
  const dir = t.testdir();
  const path = join(dir, 'slice_00000.tif');
  writeFileSync(path, encodeTiff([{ width: W, height: H, data: ramp16() }]));
  const controller = new AbortController();
  const reason = new Error('shutting down');
  controller.abort(reason);
  t.equal(await readSliceFile(path, { signal: controller.signal }).catch((e: unknown) => e), reason);
});
