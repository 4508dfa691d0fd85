/**
 * Byte-level mutations of seed inputs, as fast-check arbitraries: the fuzzer's input generator.
 * Each input is one seed with 1–8 edits (bit flips, interesting bytes and integers, inserts,
 * deletions, truncation, a duplicated range), so most inputs stay close to a valid file and reach
 * deep into the decoders. fast-check makes every run reproducible from its seed and shrinks a
 * failing input to a small one.
 */
import fc from 'fast-check';

const INTERESTING_BYTES = [0x00, 0x01, 0x7f, 0x80, 0xff, 0x2a, 0x2b];
const INTERESTING_U32 = [
  0,
  1,
  2,
  0x7f,
  0xff,
  0x100,
  0xffff,
  0x10000,
  0x7fffffff,
  0x80000000,
  0xffffffff,
  2 ** 24,
];

type Edit =
  | { op: 'flip'; at: number; bit: number }
  | { op: 'byte'; at: number; value: number }
  | { op: 'u32'; at: number; value: number; big: boolean }
  | { op: 'u16'; at: number; value: number; big: boolean }
  | { op: 'insert'; at: number; bytes: Uint8Array }
  | { op: 'delete'; at: number; count: number }
  | { op: 'truncate'; at: number }
  | { op: 'repeat'; at: number; count: number; to: number };

// Where an edit lands, as a fraction of the input's length: half of them anywhere (pixel data),
// half biased towards the ends (headers, tag tables, trailing lengths).
const position = fc.oneof(
  fc.noBias(fc.integer({ min: 0, max: 2 ** 20 - 1 })).map((n) => n / 2 ** 20),
  fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }),
);

const edit: fc.Arbitrary<Edit> = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.record({
      op: fc.constant('flip' as const),
      at: position,
      bit: fc.integer({ min: 0, max: 7 }),
    }),
  },
  {
    weight: 3,
    arbitrary: fc.record({
      op: fc.constant('byte' as const),
      at: position,
      value: fc.oneof(fc.constantFrom(...INTERESTING_BYTES), fc.integer({ min: 0, max: 255 })),
    }),
  },
  {
    weight: 3,
    arbitrary: fc.record({
      op: fc.constant('u32' as const),
      at: position,
      value: fc.oneof(fc.constantFrom(...INTERESTING_U32), fc.integer({ min: 0, max: 0xffffffff })),
      big: fc.boolean(),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      op: fc.constant('u16' as const),
      at: position,
      value: fc.oneof(fc.constantFrom(0, 1, 0xff, 0xffff, 0x8000), fc.integer({ min: 0, max: 0xffff })),
      big: fc.boolean(),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      op: fc.constant('insert' as const),
      at: position,
      bytes: fc.uint8Array({ minLength: 1, maxLength: 16 }),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      op: fc.constant('delete' as const),
      at: position,
      count: fc.integer({ min: 1, max: 32 }),
    }),
  },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('truncate' as const), at: position }) },
  {
    weight: 1,
    arbitrary: fc.record({
      op: fc.constant('repeat' as const),
      at: position,
      count: fc.integer({ min: 1, max: 64 }),
      to: position,
    }),
  },
);

/** Apply the edits to a copy of `seed`. */
export function applyEdits(seed: Uint8Array, edits: readonly Edit[]): Uint8Array {
  let b = Uint8Array.from(seed);
  for (const e of edits) {
    const at = Math.floor(e.at * Math.max(b.length, 1));
    switch (e.op) {
      case 'flip':
        if (at < b.length) b[at] = (b[at] as number) ^ (1 << e.bit);
        break;
      case 'byte':
        if (at < b.length) b[at] = e.value;
        break;
      case 'u16':
      case 'u32': {
        const n = e.op === 'u16' ? 2 : 4;
        if (at + n > b.length) break;
        const view = new DataView(b.buffer, b.byteOffset, b.byteLength);
        if (n === 2) view.setUint16(at, e.value, !e.big);
        else view.setUint32(at, e.value, !e.big);
        break;
      }
      case 'insert': {
        const out = new Uint8Array(b.length + e.bytes.length);
        out.set(b.subarray(0, at));
        out.set(e.bytes, at);
        out.set(b.subarray(at), at + e.bytes.length);
        b = out;
        break;
      }
      case 'delete': {
        const end = Math.min(b.length, at + e.count);
        b = Uint8Array.from([...b.subarray(0, at), ...b.subarray(end)]);
        break;
      }
      case 'truncate':
        b = b.slice(0, at);
        break;
      case 'repeat': {
        const chunk = b.slice(at, Math.min(b.length, at + e.count));
        const to = Math.floor(e.to * Math.max(b.length, 1));
        const out = new Uint8Array(b.length + chunk.length);
        out.set(b.subarray(0, to));
        out.set(chunk, to);
        out.set(b.subarray(to), to + chunk.length);
        b = out;
        break;
      }
    }
  }
  return b;
}

/** One of the seeds with 1–8 edits; `seedIndex` says which seed, for the report. */
export function mutated(
  seeds: readonly Uint8Array[],
): fc.Arbitrary<{ seedIndex: number; bytes: Uint8Array }> {
  return fc
    .tuple(fc.integer({ min: 0, max: seeds.length - 1 }), fc.array(edit, { minLength: 1, maxLength: 8 }))
    .map(([seedIndex, edits]) => ({ seedIndex, bytes: applyEdits(seeds[seedIndex] as Uint8Array, edits) }));
}
