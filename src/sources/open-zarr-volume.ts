/**
 * A Zarr array as a replayable volume: a path to the array itself, or to an (OME-)Zarr group whose
 * first multiscale level (conventionally `0`) is used. zarrita reads one z-slab at a time, touching
 * only the chunks that hold it.
 */
import { basename, dirname } from 'node:path';
import FileSystemStore from '@zarrita/storage/fs';
import * as zarr from 'zarrita';
import { type Dtype, dtypeOf, type TypedArray } from '../codecs/dtype.ts';
import { DecodeError } from '../errors.ts';
import { type ArchiveVolume, checkVolumeShape } from './archive-volume.ts';
import type { ScanMeta } from './source-event.ts';

const STAGE = 'source';
const SUPPORTED: readonly string[] = [
  'uint8',
  'int8',
  'uint16',
  'int16',
  'uint32',
  'int32',
  'float32',
  'float64',
] satisfies Dtype[];
/** Micrometres per unit, for the OME-NGFF space units a voxel size is likely given in. */
const UM_PER_UNIT: Readonly<Record<string, number>> = {
  angstrom: 1e-4,
  nanometer: 1e-3,
  micrometer: 1,
  millimeter: 1e3,
  centimeter: 1e4,
  meter: 1e6,
};

type ZarrArray = zarr.Array<zarr.DataType, FileSystemStore>;

/** Open the Zarr array (or OME-Zarr image group) at `dir`; throws a DecodeError naming it and the reason. */
export async function openZarrVolume(
  dir: string,
  options: { signal?: AbortSignal } = {},
): Promise<ArchiveVolume> {
  const { signal } = options;
  const bad = (reason: string, cause?: unknown) =>
    new DecodeError(`${dir}: ${reason}`, { path: dir, stage: STAGE }, cause === undefined ? {} : { cause });
  const store = new FileSystemStore(dir);
  const root = zarr.root(store);
  let node: ZarrArray | zarr.Group<FileSystemStore>;
  try {
    node = await zarr.open(root, signal ? { signal } : {});
  } catch (cause) {
    signal?.throwIfAborted();
    throw bad(`not a readable Zarr array or group: ${messageOf(cause)}`, cause);
  }
  let array: ZarrArray;
  let arrayPath = '';
  let meta: ScanMeta = {};
  if (node instanceof zarr.Group) {
    const image = imageOf(node.attrs);
    arrayPath = image.path;
    meta = image.meta;
    try {
      array = await zarr.open(root.resolve(arrayPath), { kind: 'array', ...(signal && { signal }) });
    } catch (cause) {
      signal?.throwIfAborted();
      throw bad(
        `Zarr group has no readable array "${arrayPath}" (${image.fromMultiscales ? 'its multiscales name it' : 'the OME-Zarr convention'}): ${messageOf(cause)}`,
        cause,
      );
    }
  } else {
    array = node;
  }
  const where = arrayPath === '' ? 'the Zarr array' : `Zarr array "${arrayPath}"`;
  const shape = array.shape;
  const dims = shape.join('×') || 'scalar';
  const lead = checkVolumeShape(where, shape, bad);
  if (!SUPPORTED.includes(array.dtype)) {
    throw bad(`${where} has unsupported dtype ${array.dtype}; supported: ${SUPPORTED.join(', ')}`);
  }
  const dtype = array.dtype as Dtype;
  const [depth, height, width] = shape.slice(-3) as [number, number, number];
  if (depth === 0 || height === 0 || width === 0) throw bad(`${where} is empty (${dims})`);
  meta = { ...meta, width, height };

  return {
    kind: 'zarr',
    path: dir,
    name: nameOf(dir, node instanceof zarr.Group),
    depth,
    meta,
    paceMs: undefined,
    missing: [],
    notes: [],
    async read(z, readOptions = {}) {
      const readSignal = readOptions.signal;
      readSignal?.throwIfAborted();
      const fail = (reason: string, cause?: unknown) =>
        new DecodeError(
          `${dir}: cannot read slice ${z} of ${where}: ${reason}`,
          { path: dir, slice: z, stage: STAGE },
          cause === undefined ? {} : { cause },
        );
      if (!Number.isSafeInteger(z) || z < 0 || z >= depth) throw fail(`z must be 0 … ${depth - 1}`);
      let chunk: zarr.Chunk<zarr.DataType>;
      try {
        chunk = await zarr.get(
          array,
          [...Array.from({ length: lead }, () => 0), z, null, null],
          readSignal ? { signal: readSignal } : {},
        );
      } catch (cause) {
        readSignal?.throwIfAborted();
        throw fail(messageOf(cause), cause);
      }
      const data = chunk.data as TypedArray;
      if (!ArrayBuffer.isView(data) || dtypeOf(data) !== dtype || data.length !== width * height) {
        throw fail(
          `zarrita returned ${chunk.shape.join('×')} samples that are not ${width}×${height} ${dtype}`,
        );
      }
      const [rowStride, colStride] = chunk.stride as [number, number];
      return { image: { width, height, dtype, data: rowMajor(data, width, height, rowStride, colStride) } };
    },
    // Nothing to release: the file-system store opens and closes a file per chunk read.
    async close() {},
  };
}

/** The image array of an (OME-)Zarr group: the first multiscale level, with its voxel size. */
function imageOf(attrs: Record<string, unknown>): { path: string; meta: ScanMeta; fromMultiscales: boolean } {
  // OME-Zarr 0.5 nests its metadata under "ome"; 0.4 and earlier put it at the top level.
  const ome = record(attrs['ome']) ?? attrs;
  const multiscales = Array.isArray(ome['multiscales']) ? ome['multiscales'] : [];
  const first = record(multiscales[0]);
  const datasets = Array.isArray(first?.['datasets']) ? first['datasets'] : [];
  const level = record(datasets[0]);
  const path = typeof level?.['path'] === 'string' ? level['path'] : undefined;
  if (path === undefined) return { path: '0', meta: {}, fromMultiscales: false };
  const meta: ScanMeta = {};
  const voxel = voxelSizeUm(first?.['axes'], level?.['coordinateTransformations']);
  if (voxel !== undefined) meta.voxelSizeUm = voxel;
  return { path, meta, fromMultiscales: true };
}

/** The x voxel size in µm from a level's scale transform and the axes' units, when both say. */
function voxelSizeUm(axes: unknown, transforms: unknown): number | undefined {
  if (!Array.isArray(axes) || !Array.isArray(transforms)) return undefined;
  const scale = transforms.map(record).find((t) => t?.['type'] === 'scale')?.['scale'];
  if (!Array.isArray(scale) || scale.length !== axes.length) return undefined;
  const x = scale[scale.length - 1];
  const unit = record(axes[axes.length - 1])?.['unit'];
  const factor = typeof unit === 'string' ? UM_PER_UNIT[unit] : undefined;
  if (typeof x !== 'number' || !(x > 0) || factor === undefined) return undefined;
  return x * factor;
}

/** `cell-7.ome.zarr` → `cell-7`; an array `0` inside `cell-7.ome.zarr/` is named after its group. */
function nameOf(dir: string, isGroup: boolean): string {
  let name = basename(dir);
  if (!isGroup && /^\d+$/.test(name)) name = basename(dirname(dir));
  return name.replace(/(\.ome)?\.zarr$/i, '') || name;
}

/** The samples in C order (row by row), copying only when zarrita handed back another layout. */
function rowMajor(
  data: TypedArray,
  width: number,
  height: number,
  rowStride: number,
  colStride: number,
): TypedArray {
  if (rowStride === width && colStride === 1) return data;
  const out = new (data.constructor as new (n: number) => TypedArray)(width * height);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) out[y * width + x] = data[y * rowStride + x * colStride] as number;
  }
  return out;
}

function record(value: unknown): Record<string, unknown> | undefined {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
    ? (value as Record<string, unknown>)
    : undefined;
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
