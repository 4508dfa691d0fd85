import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { decode as decodeWithImageJs } from 'tiff';
import type { Dtype, TypedArray } from '../../src/codecs/dtype.ts';
import { encodeTiff, type TiffPage } from '../../src/codecs/encode-tiff.ts';
import { OutputError } from '../../src/errors.ts';

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
const DTYPES = Object.keys(CTORS) as Dtype[];

/** A ramp with a dtype's extremes mixed in, so byte order and sign mistakes show. */
function ramp(dtype: Dtype, length: number): TypedArray {
  const data = new CTORS[dtype](length);
  const float = dtype === 'float32' || dtype === 'float64';
  for (let i = 0; i < length; i++) data[i] = float ? (i - length / 2) * 0.37 : i * 2654435761;
  if (length > 1) data[1] = float ? -1e30 : 0x80000000; // integer stores wrap: min of signed, high bit of unsigned
  return data;
}

interface Entry {
  type: number;
  count: number;
  values: number[];
  /** Where out-of-line values live; undefined when inline. */
  valueOffset: number | undefined;
}

/** A small independent reader of classic little-endian IFDs, to check the layout itself. */
function readIfds(bytes: Uint8Array): Array<{ offset: number; entries: Map<number, Entry>; tags: number[] }> {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const ifds = [];
  const sizes: Record<number, number> = { 2: 1, 3: 2, 4: 4, 5: 8 };
  for (let offset = view.getUint32(4, true); offset !== 0; ) {
    const count = view.getUint16(offset, true);
    const entries = new Map<number, Entry>();
    const tags: number[] = [];
    for (let i = 0; i < count; i++) {
      const at = offset + 2 + i * 12;
      const tag = view.getUint16(at, true);
      const type = view.getUint16(at + 2, true);
      const n = view.getUint32(at + 4, true);
      const size = n * (sizes[type] ?? 0);
      const valueOffset = size > 4 ? view.getUint32(at + 8, true) : undefined;
      const start = valueOffset ?? at + 8;
      const values: number[] = [];
      const words = type === 5 ? 2 * n : n;
      for (let v = 0; v < words; v++) {
        if (type === 2) values.push(view.getUint8(start + v));
        else if (type === 3) values.push(view.getUint16(start + 2 * v, true));
        else values.push(view.getUint32(start + 4 * v, true));
      }
      tags.push(tag);
      entries.set(tag, { type, count: n, values, valueOffset });
    }
    ifds.push({ offset, entries, tags });
    offset = view.getUint32(offset + 2 + count * 12, true);
  }
  return ifds;
}

function tool(command: string, args: readonly string[]) {
  const result = spawnSync(command, args, { encoding: 'utf8', timeout: 30_000 });
  if (result.error)
    throw new Error(`${command} failed to start (install libtiff-tools)`, { cause: result.error });
  return result;
}

t.test(
  'writes a little-endian baseline TIFF with sorted tags, word-aligned values and chained IFDs',
  async (t) => {
    const pages: TiffPage[] = [
      { width: 512, height: 512, data: ramp('uint16', 512 * 512), description: 'scan 7, slice 0' },
      { width: 3, height: 5, data: ramp('float32', 15) },
      { width: 513, height: 7, data: ramp('int8', 513 * 7) },
    ];
    for (const compression of ['none', 'deflate'] as const) {
      const bytes = encodeTiff(pages, { compression });
      t.same([...bytes.subarray(0, 4)], [0x49, 0x49, 42, 0], `${compression}: "II*\\0" header`);
      const ifds = readIfds(bytes);
      t.equal(ifds.length, 3, `${compression}: one IFD per page`);
      for (const [index, ifd] of ifds.entries()) {
        const name = `${compression} page ${index}`;
        const page = pages[index]!;
        const value = (tag: number) => ifd.entries.get(tag)?.values;
        t.equal(ifd.offset % 2, 0, `${name}: IFD word-aligned`);
        t.same(
          ifd.tags,
          [...ifd.tags].sort((a, b) => a - b),
          `${name}: tags ascending`,
        );
        t.equal(new Set(ifd.tags).size, ifd.tags.length, `${name}: no duplicate tags`);
        for (const [tag, entry] of ifd.entries) {
          if (entry.valueOffset !== undefined)
            t.equal(entry.valueOffset % 2, 0, `${name}: tag ${tag} values word-aligned`);
        }
        t.same(value(256), [page.width], `${name}: ImageWidth`);
        t.same(value(257), [page.height], `${name}: ImageLength`);
        t.same(value(258), [page.data.BYTES_PER_ELEMENT * 8], `${name}: BitsPerSample`);
        t.same(value(259), [compression === 'none' ? 1 : 8], `${name}: Compression`);
        t.same(value(262), [1], `${name}: BlackIsZero`);
        t.same(value(277), [1], `${name}: SamplesPerPixel`);
        t.same(value(284), [1], `${name}: PlanarConfiguration`);
        t.same(value(282), [1, 1], `${name}: XResolution`);
        t.same(value(283), [1, 1], `${name}: YResolution`);
        t.same(value(296), [1], `${name}: ResolutionUnit`);
        t.same(value(339), [index === 0 ? 1 : index === 1 ? 3 : 2], `${name}: SampleFormat`);
        const description = value(270);
        if (page.description === undefined) t.notOk(description, `${name}: no ImageDescription`);
        else
          t.equal(
            String.fromCharCode(...(description ?? [])),
            `${page.description}\0`,
            `${name}: ImageDescription`,
          );

        const rowsPerStrip = value(278)![0]!;
        const rowBytes = page.width * page.data.BYTES_PER_ELEMENT;
        t.ok(rowsPerStrip * rowBytes <= 64 * 1024 || rowsPerStrip === 1, `${name}: strips at most 64 KiB`);
        t.ok(
          rowsPerStrip === page.height || (rowsPerStrip + 1) * rowBytes > 64 * 1024,
          `${name}: strips near 64 KiB`,
        );
        const offsets = value(273)!;
        const counts = value(279)!;
        t.equal(offsets.length, Math.ceil(page.height / rowsPerStrip), `${name}: strip count`);
        t.equal(counts.length, offsets.length, `${name}: one byte count per strip`);
        offsets.forEach((offset, s) => {
          t.ok(offset >= 8 && offset + counts[s]! <= bytes.length, `${name}: strip ${s} inside the file`);
        });
        if (compression === 'none') {
          t.equal(
            counts.reduce((a, b) => a + b, 0),
            page.width * page.height * page.data.BYTES_PER_ELEMENT,
            `${name}: byte counts add up to the image`,
          );
        }
      }
      // The 512x512 uint16 page: 64 rows of 1 KiB per strip.
      t.same(ifds[0]!.entries.get(278)!.values, [64], `${compression}: 512x512 uint16 has 64 rows per strip`);
    }
  },
);

t.test('the independent image-js `tiff` decoder reads the same pixels', async (t) => {
  // image-js `tiff` decodes 8/16-bit integers as unsigned and 32/64-bit floats; it has no 32-bit
  // integer reader, so uint32/int32 are checked against libtiff below instead.
  const checked: Dtype[] = ['uint8', 'int8', 'uint16', 'int16', 'float32', 'float64'];
  for (const compression of ['none', 'deflate'] as const) {
    const pages = checked.map((dtype, i) => {
      const width = [1, 3, 513, 260, 17, 64][i]!;
      const height = [1, 5, 7, 300, 1, 1100][i]!;
      return { width, height, data: ramp(dtype, width * height), description: `page ${i}` };
    });
    const decoded = decodeWithImageJs(encodeTiff(pages, { compression }));
    t.equal(decoded.length, pages.length, `${compression}: page count`);
    for (const [i, page] of pages.entries()) {
      const ifd = decoded[i]!;
      const name = `${compression} ${checked[i]} ${page.width}x${page.height}`;
      t.same([ifd.width, ifd.height], [page.width, page.height], `${name}: size`);
      t.equal(ifd.imageDescription, page.description, `${name}: description`);
      t.equal(ifd.compression, compression === 'none' ? 1 : 8, `${name}: compression`);
      // Signed 8/16-bit come back as their unsigned bit patterns; compare bytes for those.
      const expected =
        page.data instanceof Int8Array
          ? new Uint8Array(page.data.buffer)
          : page.data instanceof Int16Array
            ? new Uint16Array(page.data.buffer)
            : page.data;
      t.equal(ifd.data.constructor, expected.constructor, `${name}: array type`);
      t.same([...ifd.data], [...expected], `${name}: pixels`);
    }
  }
});

t.test("libtiff's tiffinfo accepts a multi-page uint16 file and reports its shape", async (t) => {
  const dir = t.testdir();
  const path = join(dir, 'stack.tif');
  const pages = [0, 1, 2].map((z) => ({
    width: 513,
    height: 70,
    data: ramp('uint16', 513 * 70).map((v) => v + z),
  }));
  writeFileSync(path, encodeTiff(pages, { compression: 'deflate' }));
  // -D reads and decompresses every strip, so a bad deflate stream would be reported on stderr.
  const result = tool('tiffinfo', ['-D', path]);
  t.equal(result.status, 0, 'tiffinfo exits 0');
  t.equal(result.stderr, '', 'no errors or warnings on stderr');
  t.equal(result.stdout.match(/TIFF Directory at offset/g)?.length, 3, 'three directories');
  t.equal(
    result.stdout.match(/Image Width: 513 Image Length: 70/g)?.length,
    3,
    'width and length of every page',
  );
  t.equal(result.stdout.match(/Bits\/Sample: 16/g)?.length, 3, '16 bits per sample');
  t.equal(result.stdout.match(/Sample Format: unsigned integer/g)?.length, 3, 'unsigned samples');
  t.equal(result.stdout.match(/Compression Scheme: AdobeDeflate/g)?.length, 3, 'Adobe deflate');
});

t.test('tiffinfo reads every dtype and compression without complaint', async (t) => {
  const dir = t.testdir();
  const formats: Record<Dtype, string> = {
    uint8: 'unsigned integer',
    uint16: 'unsigned integer',
    uint32: 'unsigned integer',
    int8: 'signed integer',
    int16: 'signed integer',
    int32: 'signed integer',
    float32: 'IEEE floating point',
    float64: 'IEEE floating point',
  };
  for (const dtype of DTYPES) {
    for (const compression of ['none', 'deflate'] as const) {
      const path = join(dir, `${dtype}-${compression}.tif`);
      const data = ramp(dtype, 260 * 300);
      writeFileSync(
        path,
        encodeTiff([{ width: 260, height: 300, data, description: dtype }], { compression }),
      );
      const result = tool('tiffinfo', ['-D', path]);
      const name = `${dtype} ${compression}`;
      t.equal(result.status, 0, `${name}: exits 0`);
      t.equal(result.stderr, '', `${name}: stderr empty`);
      t.match(result.stdout, `Bits/Sample: ${data.BYTES_PER_ELEMENT * 8}`, `${name}: bits`);
      t.match(result.stdout, `Sample Format: ${formats[dtype]}`, `${name}: sample format`);
      t.match(result.stdout, `ImageDescription: ${dtype}`, `${name}: description`);
    }
  }
});

t.test('writes the bytes of a typed-array window, not its whole buffer', async (t) => {
  const backing = new Uint16Array(40).fill(0xdead);
  const window = new Uint16Array(backing.buffer, 6, 15);
  window.forEach((_, i) => {
    window[i] = i;
  });
  const [ifd] = decodeWithImageJs(encodeTiff([{ width: 3, height: 5, data: window }]));
  t.same([...(ifd?.data ?? [])], [...window]);
});

t.test('rejects bad input with an OutputError that says what is wrong', async (t) => {
  const cases: Array<[string, () => unknown, RegExp]> = [
    ['no pages', () => encodeTiff([]), /no pages given/],
    [
      'zero width',
      () => encodeTiff([{ width: 0, height: 1, data: new Uint8Array(0) }]),
      /page 0: width and height must be integers >= 1, got 0x1/,
    ],
    [
      'fractional height',
      () => encodeTiff([{ width: 2, height: 1.5, data: new Uint8Array(3) }]),
      /got 2x1\.5/,
    ],
    [
      'wrong length on page 1',
      () =>
        encodeTiff([
          { width: 2, height: 2, data: new Uint8Array(4) },
          { width: 2, height: 2, data: new Uint16Array(5) },
        ]),
      /page 1: data has 5 samples but 2x2 needs 4/,
    ],
    [
      'non-ASCII description',
      () => encodeTiff([{ width: 1, height: 1, data: new Uint8Array(1), description: 'voxel 5 µm' }]),
      /description has character "µ" at 8; TIFF ASCII allows 7-bit characters/,
    ],
    [
      'unknown compression',
      () => encodeTiff([{ width: 1, height: 1, data: new Uint8Array(1) }], { compression: 'lzw' as 'none' }),
      /unknown compression 'lzw'/,
    ],
    [
      'unsupported array',
      () => encodeTiff([{ width: 1, height: 1, data: new Uint8ClampedArray(1) as unknown as Uint8Array }]),
      /data must be a typed array of a supported dtype/,
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
