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
import { projectionsVolume, type ReconOptions, type RowReader } from './projections-volume.ts';
import type { ScanMeta } from './source-event.ts';

type H5 = typeof import('h5wasm/node');
type H5File = InstanceType<H5['File']>;
type H5Dataset = InstanceType<H5['Dataset']>;
type H5Metadata = H5Dataset['metadata'];
type H5Slice = Parameters<H5Dataset['slice']>[0][number];

/** Where DXchange keeps the (reconstructed or projection) stack. */
export const DXCHANGE_DATA = '/exchange/data';
/** The projections' angles, the flat (white) and dark fields. */
const DXCHANGE_THETA = '/exchange/theta';
const DXCHANGE_WHITE = '/exchange/data_white';
const DXCHANGE_DARK = '/exchange/data_dark';

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

/** The h5wasm module, instantiated once, on first use (the simulator writes DXchange files with it too). */
export function loadH5wasm(): Promise<H5> {
  h5wasm ??= import('h5wasm/node').then(async (h5) => {
    await h5.ready;
    return h5;
  });
  return h5wasm;
}

/**
 * Open `/exchange/data` of a DXchange file; throws a DecodeError naming the file and what is wrong.
 * Projections (a `/exchange/theta` with an angle per frame, and a `/exchange/data_white`) are
 * reconstructed row by row (`projectionsVolume`), with `recon`'s axis and filter.
 */
export async function openHdf5Volume(path: string, recon: ReconOptions = {}): Promise<ArchiveVolume> {
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
    const meta: ScanMeta = { width, height };
    const sample = stringValue(file, h5, '/measurement/sample/name');
    if (sample !== undefined) meta.sampleId = sample;
    const theta = file.get(DXCHANGE_THETA);
    const white = file.get(DXCHANGE_WHITE);
    if (theta instanceof h5.Dataset && white instanceof h5.Dataset && lead === 0) {
      const dark = file.get(DXCHANGE_DARK);
      const thetaDeg = anglesInDegrees(theta, notes, bad);
      return projectionsVolume(
        path,
        {
          data: rowReader(dataset, bad, DXCHANGE_DATA),
          flat: rowReader(white, bad, DXCHANGE_WHITE),
          ...(dark instanceof h5.Dataset && { dark: rowReader(dark, bad, DXCHANGE_DARK) }),
          thetaDeg,
        },
        { meta, notes, recon, close: () => file.close() },
      );
    }
    const axes = stringAttribute(dataset, 'axes');
    if (axes !== undefined && axes.split(':')[0] === 'theta') {
      notes.push(
        `${DXCHANGE_DATA} has axes ${axes}: these are projections, but the file has no ${DXCHANGE_THETA} and ${DXCHANGE_WHITE} to reconstruct them; each projection is replayed as a slice`,
      );
    }
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

/**
 * A 3-D dataset (frames × rows × columns) read one detector row across all its frames, as float32.
 * Its shape and type are checked when it is opened; a failed read is a DecodeError naming it.
 */
function rowReader(
  dataset: H5Dataset,
  bad: (reason: string, cause?: unknown) => Error,
  name: string,
): RowReader {
  const { metadata } = dataset;
  const shape = metadata.shape ?? [];
  const dtype = dtypeFor(metadata);
  if (shape.length !== 3)
    throw bad(`${name} is ${shape.join('×') || 'scalar'}; expected frames × rows × columns`);
  if (
    dtype === undefined ||
    !SUPPORTED.includes(dtype as Dtype) ||
    (!metadata.littleEndian && metadata.size > 1)
  )
    throw bad(
      `${name} has unsupported type ${dtype ?? describeType(metadata)}; supported: little-endian ${SUPPORTED.join(', ')}`,
    );
  const [frames, rows, columns] = shape as [number, number, number];
  return {
    shape,
    row(y) {
      let data: unknown;
      try {
        data = dataset.slice([
          [0, frames],
          [y, y + 1],
        ]);
      } catch (cause) {
        throw bad(
          `cannot read row ${y} of ${name}: ${cause instanceof Error ? cause.message : String(cause)}`,
          cause,
        );
      }
      const samples = asSamples(data);
      if (samples === undefined || samples.length !== frames * columns || y < 0 || y >= rows)
        throw bad(
          `cannot read row ${y} of ${name}: h5wasm returned ${describeValue(data)}, expected ${frames}×${columns}`,
        );
      return samples instanceof Float32Array ? samples : Float32Array.from(samples as ArrayLike<number>);
    },
  };
}

/**
 * `/exchange/theta` in degrees. DXchange writes degrees; angles that all lie within ±2π and span
 * more than a quarter turn in radians but less than 7° are taken as radians, and the note says so.
 */
function anglesInDegrees(
  dataset: H5Dataset,
  notes: string[],
  bad: (reason: string, cause?: unknown) => Error,
): Float64Array {
  let value: unknown;
  try {
    value = dataset.value;
  } catch (cause) {
    throw bad(`cannot read ${DXCHANGE_THETA}`, cause);
  }
  if (!ArrayBuffer.isView(value)) throw bad(`${DXCHANGE_THETA} is not an array of angles`);
  const angles = Float64Array.from(value as unknown as ArrayLike<number>);
  if (angles.some((a) => !Number.isFinite(a)))
    throw bad(`${DXCHANGE_THETA} holds an angle that is not a number`);
  const span = Math.max(...angles) - Math.min(...angles);
  if (angles.every((a) => Math.abs(a) <= 2 * Math.PI + 1e-6) && span > Math.PI / 2 && span < 7) {
    notes.push(`${DXCHANGE_THETA} spans ${span.toFixed(3)}: read as radians`);
    return angles.map((a) => (a * 180) / Math.PI);
  }
  return angles;
}
