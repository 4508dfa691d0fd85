/**
 * A DXchange HDF5 file as a replayable volume: `/exchange/data`, z × y × x, read one z-slab at a
 * time through h5wasm's hyperslab reads, so a 2 GB reconstruction never sits in memory whole.
 *
 * h5wasm's Node build opens host paths directly (Emscripten NODERAWFS) and is loaded on first use
 * only: importing it instantiates a WebAssembly module, which no import of ours may do.
 */
import { basename, extname } from 'node:path';
import { type Dtype, dtypeOf, type TypedArray } from '../codecs/dtype.ts';
import { DecodeError } from '../errors.ts';
import { type ArchiveVolume, checkVolumeShape } from './archive-volume.ts';
import type { ScanMeta } from './source-event.ts';

type H5 = typeof import('h5wasm/node');
type H5File = InstanceType<H5['File']>;
type H5Dataset = InstanceType<H5['Dataset']>;
type H5Metadata = H5Dataset['metadata'];
type H5Slice = Parameters<H5Dataset['slice']>[0][number];

/** Where DXchange keeps the (reconstructed or projection) stack. */
export const DXCHANGE_DATA = '/exchange/data';

const STAGE = 'source';
const SUPPORTED: readonly Dtype[] = [
  'uint8',
  'int8',
  'uint16',
  'int16',
  'uint32',
  'int32',
  'float32',
  'float64',
];
// H5T_class_t values, as h5wasm reports them in `metadata.type`.
const TYPE_CLASS_NAMES: Readonly<Record<number, string>> = {
  0: 'integer',
  1: 'float',
  2: 'time',
  3: 'string',
  4: 'bitfield',
  5: 'opaque',
  6: 'compound',
  7: 'reference',
  8: 'enum',
  9: 'variable-length',
  10: 'array',
};

let h5wasm: Promise<H5> | undefined;

/** The h5wasm module, instantiated once, on first use. */
function loadH5wasm(): Promise<H5> {
  h5wasm ??= import('h5wasm/node').then(async (h5) => {
    await h5.ready;
    return h5;
  });
  return h5wasm;
}

/** Open `/exchange/data` of a DXchange file; throws a DecodeError naming the file and what is wrong. */
export async function openHdf5Volume(path: string): Promise<ArchiveVolume> {
  const bad = (reason: string, cause?: unknown) =>
    new DecodeError(`${path}: ${reason}`, { path, stage: STAGE }, cause === undefined ? {} : { cause });
  const h5 = await loadH5wasm();
  let file: H5File;
  try {
    file = new h5.File(path, 'r');
  } catch (cause) {
    throw bad('the HDF5 library could not open it', cause);
  }
  // h5wasm reports a failed open as a negative id rather than throwing.
  if (file.file_id < 0n) throw bad('not a readable HDF5 file (corrupt or truncated)');
  try {
    const entity = file.get(DXCHANGE_DATA);
    if (!(entity instanceof h5.Dataset)) {
      const found = listDatasets(file, h5);
      throw bad(
        entity === null
          ? `HDF5 file has no ${DXCHANGE_DATA} dataset (it holds ${found.length === 0 ? 'no datasets' : found.join(', ')}); replay needs a DXchange volume at ${DXCHANGE_DATA} (z × y × x)`
          : `${DXCHANGE_DATA} is not a dataset; replay needs a DXchange volume there (z × y × x)`,
      );
    }
    const dataset = entity;
    const metadata = dataset.metadata;
    const shape = metadata.shape ?? [];
    const dims = shape.join('×') || 'scalar';
    const lead = checkVolumeShape(DXCHANGE_DATA, shape, bad);
    const dtype = dtypeFor(metadata);
    if (typeof dtype !== 'string' || !SUPPORTED.includes(dtype as Dtype)) {
      throw bad(
        `${DXCHANGE_DATA} has unsupported dtype ${dtype === undefined ? describeType(metadata) : dtype}; supported: ${SUPPORTED.join(', ')}`,
      );
    }
    if (!metadata.littleEndian && metadata.size > 1) {
      throw bad(
        `${DXCHANGE_DATA} holds big-endian ${dtype}, which h5wasm does not convert; rewrite it little-endian`,
      );
    }
    const [depth, height, width] = shape.slice(-3) as [number, number, number];
    if (depth === 0 || height === 0 || width === 0) throw bad(`${DXCHANGE_DATA} is empty (${dims})`);
    const notes: string[] = [];
    const axes = stringAttribute(dataset, 'axes');
    if (axes !== undefined && axes.split(':')[0] === 'theta') {
      notes.push(
        `${DXCHANGE_DATA} has axes ${axes}: these are projections, not a reconstructed volume; each projection is replayed as a slice`,
      );
    }
    const meta: ScanMeta = { width, height };
    const sample = stringValue(file, h5, '/measurement/sample/name');
    if (sample !== undefined) meta.sampleId = sample;
    return hdf5Volume(path, file, dataset, { depth, lead, dtype: dtype as Dtype, meta, notes });
  } catch (err) {
    file.close();
    throw err;
  }
}

function hdf5Volume(
  path: string,
  file: H5File,
  dataset: H5Dataset,
  info: { depth: number; lead: number; dtype: Dtype; meta: ScanMeta; notes: string[] },
): ArchiveVolume {
  const { depth, lead, dtype, meta } = info;
  const width = meta.width as number;
  const height = meta.height as number;
  let closed = false;
  return {
    kind: 'hdf5',
    path,
    name: basename(path, extname(path)),
    depth,
    meta,
    paceMs: undefined,
    missing: [],
    notes: info.notes,
    async read(z, options = {}) {
      options.signal?.throwIfAborted();
      const fail = (reason: string, cause?: unknown) =>
        new DecodeError(
          `${path}: cannot read slice ${z} of ${DXCHANGE_DATA}: ${reason}`,
          { path, slice: z, stage: STAGE },
          cause === undefined ? {} : { cause },
        );
      if (closed) throw fail('the file is closed');
      if (!Number.isSafeInteger(z) || z < 0 || z >= depth) throw fail(`z must be 0 … ${depth - 1}`);
      const ranges: H5Slice[] = [...Array.from({ length: lead }, (): H5Slice => [0, 1]), [z, z + 1]];
      let data: unknown;
      try {
        data = dataset.slice(ranges);
      } catch (cause) {
        throw fail(cause instanceof Error ? cause.message : String(cause), cause);
      }
      const samples = asSamples(data);
      if (samples === undefined || dtypeOf(samples) !== dtype || samples.length !== width * height) {
        throw fail(`h5wasm returned ${describeValue(data)}, expected ${width}×${height} ${dtype} samples`);
      }
      return { image: { width, height, dtype, data: samples } };
    },
    async close() {
      if (closed) return;
      closed = true;
      file.close();
    },
  };
}

/** Our dtype name for an integer or float HDF5 type, a NumPy-like name for other numbers, else undefined. */
function dtypeFor(m: H5Metadata): string | undefined {
  if (m.type === 0 && [1, 2, 4, 8].includes(m.size)) return `${m.signed ? 'int' : 'uint'}${m.size * 8}`;
  if (m.type === 1 && [2, 4, 8].includes(m.size)) return `float${m.size * 8}`;
  return undefined;
}

function describeType(m: H5Metadata): string {
  const cls = TYPE_CLASS_NAMES[m.type] ?? `class ${m.type}`;
  const members = m.compound_type?.members;
  if (members !== undefined) {
    const names = members.map((x) => x.name);
    const floats = members.every((x) => x.type === 1);
    if (members.length === 2 && floats) return `complex${m.size * 8} (compound ${names.join(', ')})`;
    return `compound (${names.join(', ')})`;
  }
  if (m.type === 3) return m.vlen ? 'string (variable-length)' : `string (${m.size} bytes)`;
  return `${cls} (${m.size} bytes)`;
}

/** The value as one of our typed arrays, or undefined for anything else h5wasm may return. */
function asSamples(value: unknown): TypedArray | undefined {
  if (!ArrayBuffer.isView(value)) return undefined;
  try {
    dtypeOf(value as TypedArray);
    return value as TypedArray;
  } catch {
    return undefined;
  }
}

function describeValue(value: unknown): string {
  if (ArrayBuffer.isView(value)) return `${(value as { length?: number }).length ?? '?'} samples`;
  return value === null ? 'nothing' : typeof value;
}

/** Every dataset in the file, for an error that says what is there instead. */
function listDatasets(file: H5File, h5: H5): string[] {
  const found: string[] = [];
  for (const p of file.paths()) {
    if (found.length >= 8) {
      found.push('…');
      break;
    }
    try {
      if (file.get(p) instanceof h5.Dataset) found.push(`/${p.replace(/^\//, '')}`);
    } catch {
      // A broken link cannot be listed; the message only wants examples.
    }
  }
  return found;
}

function stringAttribute(dataset: H5Dataset, name: string): string | undefined {
  try {
    const value = dataset.attrs[name]?.value;
    return typeof value === 'string' ? value : undefined;
  } catch {
    // Metadata is a nicety: an unreadable attribute must not stop a replay.
    return undefined;
  }
}

function stringValue(file: H5File, h5: H5, at: string): string | undefined {
  try {
    const entity = file.get(at);
    const value = entity instanceof h5.Dataset ? entity.value : undefined;
    if (typeof value === 'string') return value;
    if (Array.isArray(value) && typeof value[0] === 'string') return value[0];
  } catch {
    // As above: optional metadata.
  }
  return undefined;
}
