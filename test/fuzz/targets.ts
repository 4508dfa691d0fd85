/**
 * What the fuzzer feeds: the four parsers that take bytes from outside (TIFF slices, `.raw` slices
 * with their JSON sidecar, Avro slice messages, pipeline files), each with its seed corpus and the
 * rule for what counts as handled. A handled input is decoded into something consistent, or refused
 * with one of the project's own errors (an XctError with a code). Anything else (a TypeError, a
 * RangeError from a typed array, an out-of-memory, a decoded image whose data does not match its
 * size) is a finding.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { parse as parseYaml, stringify as stringifyYaml } from 'yaml';
import { decodeSlice, encodeSlice, type SliceMessage } from '../../src/codecs/avro-slice.ts';
import { type DecodedImage, decodeTiff } from '../../src/codecs/decode-tiff.ts';
import { encodeTiff } from '../../src/codecs/encode-tiff.ts';
import { decodeRawSlice } from '../../src/codecs/read-slice-file.ts';
import { parsePipelineConfig } from '../../src/config/pipeline-config.ts';
import { isXctError } from '../../src/errors.ts';
import { mutated } from './mutate.ts';

const here = new URL('.', import.meta.url).pathname;
const repo = join(here, '..', '..');

/** A finding: what went wrong with an input the target did not handle. */
export class Finding extends Error {}

export interface FuzzTarget<T> {
  name: string;
  /** Mutated seeds. */
  input(): fc.Arbitrary<T>;
  /** 'ok' when accepted, else the code of the project error that refused it; throws on a finding. */
  run(input: T): Promise<string>;
  /** The input as bytes, to save a finding. */
  save(input: T): Uint8Array;
}

/** The project's own refusal, or a finding. */
export function refused(err: unknown): string {
  if (isXctError(err)) return err.code;
  throw new Finding(
    `not a project error: ${err instanceof Error ? `${err.name}: ${err.message}` : String(err)}`,
    {
      cause: err,
    },
  );
}

function checkImage(image: DecodedImage, what: string): void {
  const { width, height, data } = image;
  if (!(Number.isSafeInteger(width) && width > 0 && Number.isSafeInteger(height) && height > 0))
    throw new Finding(`${what}: decoded to ${width}×${height}`);
  if (data.length !== width * height)
    throw new Finding(`${what}: ${width}×${height} but ${data.length} samples`);
}

const ramp = (n: number, mod: number) => Array.from({ length: n }, (_, i) => (i * 37) % mod);

function tiffSeeds(): Uint8Array[] {
  const own = [
    encodeTiff([{ width: 12, height: 10, data: Uint16Array.from(ramp(120, 65536)) }]),
    encodeTiff([{ width: 7, height: 9, data: Uint8Array.from(ramp(63, 256)) }]),
    encodeTiff([{ width: 8, height: 8, data: Float32Array.from(ramp(64, 1000), (v) => v / 7) }]),
    encodeTiff([{ width: 16, height: 6, data: Uint16Array.from(ramp(96, 4096)) }], {
      compression: 'deflate',
    }),
    encodeTiff([
      { width: 4, height: 4, data: new Uint16Array(16).fill(3), description: 'a' },
      { width: 4, height: 4, data: new Uint16Array(16).fill(5) },
    ]),
  ];
  const dir = join(here, 'corpus');
  const files = readdirSync(dir)
    .filter((f) => f.endsWith('.tif'))
    .sort()
    .map((f) => new Uint8Array(readFileSync(join(dir, f))));
  return [...own, ...files];
}

/**
 * Where the fields of a classic TIFF's first IFD are (type, count, value of each entry), with the
 * file's byte order: edits aimed there reach the decoder's checks of sizes, offsets and counts
 * far more often than edits anywhere.
 */
function ifdFields(bytes: Uint8Array): { little: boolean; fields: { at: number; size: 2 | 4 }[] } {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const little = bytes[0] === 0x49;
  if (bytes.length < 8 || view.getUint16(2, little) !== 42) return { little, fields: [] };
  const ifd = view.getUint32(4, little);
  if (ifd + 2 > bytes.length) return { little, fields: [] };
  const fields: { at: number; size: 2 | 4 }[] = [
    { at: 4, size: 4 },
    { at: ifd, size: 2 },
  ];
  const n = view.getUint16(ifd, little);
  for (let k = 0; k < n && ifd + 2 + 12 * (k + 1) <= bytes.length; k++) {
    const entry = ifd + 2 + 12 * k;
    fields.push(
      { at: entry + 2, size: 2 },
      { at: entry + 4, size: 4 },
      { at: entry + 8, size: 4 },
      { at: entry + 8, size: 2 },
    );
  }
  return { little, fields };
}

function tiffInput(): fc.Arbitrary<{ bytes: Uint8Array }> {
  const seeds = tiffSeeds();
  const layouts = seeds.map(ifdFields);
  const aimed = fc
    .tuple(
      fc.integer({ min: 0, max: seeds.length - 1 }),
      fc.array(
        fc.tuple(
          fc.nat(),
          fc.oneof(
            fc.constantFrom(0, 1, 2, 3, 4, 7, 8, 16, 0xff, 0xffff, 0x7fffffff, 0x80000000, 0xffffffff),
            fc.nat(),
          ),
        ),
        { minLength: 1, maxLength: 3 },
      ),
    )
    .map(([i, edits]) => {
      const bytes = Uint8Array.from(seeds[i] as Uint8Array);
      const { little, fields } = layouts[i] as ReturnType<typeof ifdFields>;
      const view = new DataView(bytes.buffer);
      for (const [pick, value] of edits) {
        const field = fields[pick % Math.max(fields.length, 1)];
        if (!field) continue;
        if (field.size === 2) view.setUint16(field.at, value & 0xffff, little);
        else view.setUint32(field.at, value >>> 0, little);
      }
      return { bytes };
    });
  return fc.oneof(mutated(seeds), aimed);
}

export const tiffTarget: FuzzTarget<{ bytes: Uint8Array }> = {
  name: 'tiff',
  input: tiffInput,
  run: async ({ bytes }) => {
    try {
      checkImage(await decodeTiff(bytes, { path: 'fuzz.tif' }), 'TIFF');
      return 'ok';
    } catch (err) {
      if (err instanceof Finding) throw err;
      return refused(err);
    }
  },
  save: ({ bytes }) => bytes,
};

const text = (s: string) => new TextEncoder().encode(s);

/** A `.raw` and its sidecar, each mutated; the sidecar also by value (a key set to any JSON). */
export const rawTarget: FuzzTarget<{ raw: Uint8Array; sidecar: Uint8Array }> = {
  name: 'raw+sidecar',
  input: () => {
    const layouts = [
      { width: 8, height: 4, dtype: 'uint16' },
      { width: 5, height: 5, dtype: 'uint8', offset: 3 },
      { width: 4, height: 4, dtype: 'float32', endianness: 'big' },
      { width: 3, height: 2, dtype: 'int16', endianness: 'little', offset: 0 },
    ];
    const sidecars = layouts.map((l) => text(JSON.stringify(l)));
    const bytesPer: Record<string, number> = { uint8: 1, uint16: 2, int16: 2, float32: 4 };
    const raws = layouts.map((l) =>
      Uint8Array.from(ramp(l.width * l.height * (bytesPer[l.dtype] as number) + (l.offset ?? 0), 256)),
    );
    const byValue = fc
      .tuple(
        fc.integer({ min: 0, max: layouts.length - 1 }),
        fc.constantFrom('width', 'height', 'dtype', 'endianness', 'offset', '__proto__', 'constructor'),
        fc.jsonValue(),
      )
      .map(([i, key, value]) => text(JSON.stringify({ ...layouts[i], [key]: value })));
    return fc.record({
      raw: mutated(raws).map((m) => m.bytes),
      sidecar: fc.oneof(
        mutated(sidecars).map((m) => m.bytes),
        byValue,
      ),
    });
  },
  run: async ({ raw, sidecar }) => {
    try {
      checkImage(decodeRawSlice(raw, sidecar, 'fuzz.raw', 'fuzz.json'), 'raw');
      return 'ok';
    } catch (err) {
      if (err instanceof Finding) throw err;
      return refused(err);
    }
  },
  save: ({ raw, sidecar }) =>
    text(
      JSON.stringify({
        raw: Buffer.from(raw).toString('base64'),
        sidecar: Buffer.from(sidecar).toString('base64'),
      }),
    ),
};

function sliceSeeds(): Uint8Array[] {
  const header = {
    scanId: 'cell-7',
    z: 3,
    expectedSlices: 10,
    voxelSizeUm: 0.65,
    acquiredAt: 1_700_000_000_000,
  };
  const slices: SliceMessage[] = [
    { ...header, pixels: { width: 4, height: 3, dtype: 'uint16', data: Uint16Array.from(ramp(12, 65536)) } },
    {
      ...header,
      expectedSlices: null,
      voxelSizeUm: null,
      pixels: { width: 3, height: 3, dtype: 'uint8', data: Uint8Array.from(ramp(9, 256)) },
    },
    {
      ...header,
      pixels: { width: 2, height: 2, dtype: 'float32', data: Float32Array.from([0.5, -1, 3, 1e9]) },
    },
    {
      ...header,
      pixels: {
        width: 8,
        height: 8,
        dtype: 'uint16',
        endianness: 'little',
        path: 'scan/slice_00003.raw',
        offset: 0,
        length: 128,
        sha256: 'ab'.repeat(32),
      },
    },
  ];
  return slices.map((s) => new Uint8Array(encodeSlice(s)));
}

export const avroSliceTarget: FuzzTarget<{ bytes: Uint8Array }> = {
  name: 'avro slice',
  input: () => mutated(sliceSeeds()),
  run: async ({ bytes }) => {
    try {
      const slice = decodeSlice(bytes);
      if ('data' in slice.pixels) checkImage(slice.pixels, 'slice message');
      else {
        const { width, height, length, offset } = slice.pixels;
        if (!(width > 0 && height > 0 && length > 0 && offset >= 0))
          throw new Finding(
            `file reference accepted with ${width}×${height}, length ${length}, offset ${offset}`,
          );
      }
      return 'ok';
    } catch (err) {
      if (err instanceof Finding) throw err;
      return refused(err);
    }
  },
  save: ({ bytes }) => bytes,
};

function pipelineSeeds(): string[] {
  const dir = join(repo, 'pipelines');
  const files = readdirSync(dir)
    .filter((f) => f.endsWith('.yaml'))
    .sort()
    .map((f) => readFileSync(join(dir, f), 'utf8'));
  // Aliases: the YAML library must refuse an alias bomb, not expand it.
  const bomb = [
    'a: &a [x, x, x, x, x, x, x, x, x]',
    ...Array.from({ length: 8 }, (_, i) => {
      const prev = String.fromCharCode(97 + i);
      const next = String.fromCharCode(98 + i);
      return `${next}: &${next} [*${prev}, *${prev}, *${prev}, *${prev}, *${prev}, *${prev}, *${prev}, *${prev}, *${prev}]`;
    }),
  ].join('\n');
  return [...files, bomb];
}

/** Set the value at one path of a parsed document. */
function setAt(doc: unknown, path: readonly (string | number)[], value: unknown): unknown {
  if (path.length === 0) return value;
  const [head, ...rest] = path;
  const base = (typeof doc === 'object' && doc !== null ? doc : {}) as Record<string | number, unknown>;
  const copy = (Array.isArray(base) ? [...base] : { ...base }) as Record<string | number, unknown>;
  copy[head as string | number] = setAt(base[head as string | number], rest, value);
  return copy;
}

function leafPaths(doc: unknown, prefix: (string | number)[] = []): (string | number)[][] {
  if (typeof doc !== 'object' || doc === null) return [prefix];
  const entries = Array.isArray(doc) ? doc.map((v, i) => [i, v] as const) : Object.entries(doc);
  return [prefix, ...entries.flatMap(([k, v]) => leafPaths(v, [...prefix, k]))];
}

export const pipelineTarget: FuzzTarget<{ text: string }> = {
  name: 'pipeline file',
  input: () => {
    const seeds = pipelineSeeds();
    const docs = seeds.slice(0, -1).map((s) => parseYaml(s) as unknown);
    const byBytes = mutated(seeds.map(text)).map((m) => ({ text: new TextDecoder().decode(m.bytes) }));
    const byValue = fc
      .tuple(
        fc.integer({ min: 0, max: docs.length - 1 }),
        fc.nat(),
        fc.oneof(fc.jsonValue(), fc.constantFrom(-1, 0, 1e308, -0, '', '../../etc', [], {})),
      )
      .map(([i, pick, value]) => {
        const paths = leafPaths(docs[i]);
        const path = paths[pick % paths.length] as (string | number)[];
        return { text: stringifyYaml(setAt(docs[i], path, value)) };
      });
    return fc.oneof(byBytes, byValue);
  },
  run: async ({ text: yaml }) => {
    try {
      const config = parsePipelineConfig(yaml, 'fuzz.yaml');
      if ((config.source.folder === undefined) === (config.source.kafka === undefined))
        throw new Finding('accepted a pipeline without exactly one source');
      return 'ok';
    } catch (err) {
      if (err instanceof Finding) throw err;
      return refused(err);
    }
  },
  save: ({ text: yaml }) => text(yaml),
};

/** Every target, with its input type erased (each one only ever sees its own inputs). */
export const TARGETS: readonly FuzzTarget<unknown>[] = [
  tiffTarget,
  rawTarget,
  avroSliceTarget,
  pipelineTarget,
].map((t) => t as unknown as FuzzTarget<unknown>);
