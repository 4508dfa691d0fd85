/**
 * A multi-page TIFF as a replayable volume, one page per slice. Pages are decoded one at a time;
 * the file's bytes are read whole, because `decodeTiff` checks each page's structure against the
 * whole file (Node cannot read a file over 2 GiB this way: such stacks belong in Zarr or HDF5).
 */
import { readFile } from 'node:fs/promises';
import { basename, extname } from 'node:path';
import { countTiffPages, decodeTiff } from '../codecs/decode-tiff.ts';
import { DecodeError } from '../errors.ts';
import type { ArchiveVolume } from './archive-volume.ts';

const STAGE = 'source';

/** Open a multi-page TIFF; throws a DecodeError naming the file when it is not one we can replay. */
export async function openTiffStack(
  path: string,
  options: { signal?: AbortSignal } = {},
): Promise<ArchiveVolume> {
  const { signal } = options;
  let bytes: Uint8Array;
  try {
    bytes = await readFile(path, signal ? { signal } : {});
  } catch (cause) {
    signal?.throwIfAborted();
    const tooLarge = (cause as { code?: unknown }).code === 'ERR_FS_FILE_TOO_LARGE';
    throw new DecodeError(
      `${path}: ${tooLarge ? 'a TIFF over 2 GiB cannot be replayed; convert it to Zarr or HDF5' : 'cannot read the file'}`,
      { path, stage: STAGE },
      { cause },
    );
  }
  // Checks every page's structure up front: a broken page fails the replay before it starts.
  const pages = await countTiffPages(bytes, { path });
  const first = await decodeTiff(bytes, { path, page: 0, ...(signal && { signal }) });
  if (pages < 2) {
    throw new DecodeError(
      `${path}: a single-page TIFF is one 2-D image (${first.width}×${first.height}); replay needs a 3-D volume: a multi-page TIFF (one page per slice) or a folder of slices`,
      { path, stage: STAGE },
    );
  }
  return {
    kind: 'tiff',
    path,
    name: basename(path, extname(path)),
    depth: pages,
    meta: { width: first.width, height: first.height },
    paceMs: undefined,
    missing: [],
    notes: [],
    async read(z, readOptions = {}) {
      return {
        image: await decodeTiff(bytes, {
          path,
          page: z,
          ...(readOptions.signal && { signal: readOptions.signal }),
        }),
      };
    },
    async close() {
      // The bytes are garbage once the volume is dropped; there is no handle to release.
    },
  };
}
