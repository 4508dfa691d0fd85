/**
 * Small archives written by the real libraries (h5wasm, zarrita, our TIFF writer), for replay tests.
 * Every volume holds `sample(z, y, x)` so a test can check each slice it gets back.
 */
import { writeFile } from 'node:fs/promises';
import FileSystemStore from '@zarrita/storage/fs';
import * as zarr from 'zarrita';
import type { TypedArray } from '../../src/codecs/dtype.ts';
import { encodeTiff } from '../../src/codecs/encode-tiff.ts';

/** The value of voxel (z, y, x) in every fixture: distinct per slice and per row, small enough for int16. */
export function sample(z: number, y: number, x: number): number {
  return z * 100 + ((y * 7 + x) % 50);
}

/** Fill a typed array of `depth` slices of height × width with `sample`. */
export function volumeOf<T extends TypedArray>(
  Ctor: new (n: number) => T,
  depth: number,
  height: number,
  width: number,
): T {
  const data = new Ctor(depth * height * width);
  for (let z = 0; z < depth; z++)
    for (let y = 0; y < height; y++)
      for (let x = 0; x < width; x++) data[(z * height + y) * width + x] = sample(z, y, x);
  return data;
}

type H5 = typeof import('h5wasm/node');
type H5Data = Parameters<InstanceType<H5['Group']>['create_dataset']>[0]['data'];

async function h5(): Promise<H5> {
  const lib = await import('h5wasm/node');
  await lib.ready;
  return lib;
}

/** A DXchange-like HDF5 file: `dataset` (default `exchange/data`) holding `data` of `shape`. */
export async function writeHdf5(
  path: string,
  data: H5Data,
  shape: number[],
  options: {
    dataset?: string;
    dtype?: string;
    attrs?: Record<string, string>;
    /** More datasets in the same file (their group must be the main dataset's or exist). */
    more?: { name: string; data: H5Data; shape: number[] }[];
  } = {},
): Promise<void> {
  const lib = await h5();
  const file = new lib.File(path, 'w');
  try {
    const name = options.dataset ?? 'exchange/data';
    const parent = name.includes('/') ? name.slice(0, name.lastIndexOf('/')) : '';
    if (parent !== '') file.create_group(parent);
    for (const extra of options.more ?? []) file.create_dataset(extra);
    const dataset = file.create_dataset({
      name,
      data,
      shape,
      ...(options.dtype && { dtype: options.dtype }),
    });
    for (const [key, value] of Object.entries(options.attrs ?? {})) dataset.create_attribute(key, value);
  } finally {
    file.close();
  }
}

/** A multi-page little-endian TIFF, one page per slice. */
export async function writeTiffStack(
  path: string,
  data: TypedArray,
  depth: number,
  height: number,
  width: number,
) {
  const size = height * width;
  const pages = Array.from({ length: depth }, (_, z) => ({
    width,
    height,
    data: data.subarray(z * size, (z + 1) * size),
  }));
  await writeFile(path, encodeTiff(pages));
}

/**
 * A Zarr v3 array at `dir` (or, with `ome`, an OME-Zarr 0.5 group whose level `0` holds it), one
 * slice per chunk, with the explicit bytes codec and fill value the spec requires.
 */
export async function writeZarr(
  dir: string,
  dtype: 'uint8' | 'uint16' | 'int16' | 'float32' | 'int64',
  data: TypedArray | BigInt64Array,
  shape: number[],
  options: { ome?: { voxelSizeUm: number } } = {},
): Promise<void> {
  const store = new FileSystemStore(dir);
  const root = zarr.root(store);
  let at = root;
  if (options.ome) {
    const v = options.ome.voxelSizeUm;
    await zarr.create(root, {
      attributes: {
        ome: {
          version: '0.5',
          multiscales: [
            {
              axes: ['z', 'y', 'x'].map((name) => ({ name, type: 'space', unit: 'micrometer' })),
              datasets: [{ path: '0', coordinateTransformations: [{ type: 'scale', scale: [v, v, v] }] }],
            },
          ],
        },
      },
    });
    at = root.resolve('0');
  }
  const chunkShape = [...shape.slice(0, -2).map(() => 1), ...shape.slice(-2)];
  const array = await zarr.create(at, {
    shape,
    chunkShape,
    dtype,
    codecs: [{ name: 'bytes', configuration: { endian: 'little' } }],
    // zarrita 0.7 cannot write a bigint fill value to JSON; int64 fixtures only need to be refused.
    ...(dtype !== 'int64' && { fillValue: 0 as never }),
  });
  const stride = shape.map((_, i) => shape.slice(i + 1).reduce((a, b) => a * b, 1));
  await zarr.set(array, null, { data, shape, stride } as never);
}
