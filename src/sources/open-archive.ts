/**
 * Recognises an archived scan by its contents, never by its name alone: a Zarr store by its
 * metadata file, TIFF and HDF5 by their signatures, a scan folder by its slice files.
 */
import { type FileHandle, open, stat } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { DecodeError, UsageError } from '../errors.ts';
import type { ArchiveVolume } from './archive-volume.ts';
import { openHdf5Volume } from './open-hdf5-volume.ts';
import { openSliceFolder } from './open-slice-folder.ts';
import { openTiffStack } from './open-tiff-stack.ts';
import { openZarrVolume } from './open-zarr-volume.ts';
import type { ReconOptions } from './projections-volume.ts';

const STAGE = 'source';
const ZARR_METADATA = ['zarr.json', '.zarray', '.zgroup'];
const TIFF_MAGIC = ['49492a00', '4d4d002a', '49492b00', '4d4d002b'];
const HDF5_MAGIC = '894844460d0a1a0a';
const EXPECTED =
  'expected a multi-page TIFF, a DXchange HDF5 file (/exchange/data), a Zarr array or OME-Zarr group, or a folder of slice files';

/**
 * Open an archived scan for replay: a folder of slice files, a multi-page TIFF, a DXchange HDF5
 * file (projections in it reconstructed with `recon`) or a Zarr array/group. A missing path is a
 * UsageError; anything unreplayable a DecodeError.
 */
export async function openArchive(
  path: string,
  options: { signal?: AbortSignal; recon?: ReconOptions } = {},
): Promise<ArchiveVolume> {
  const { signal } = options;
  const full = resolve(path);
  let info: Awaited<ReturnType<typeof stat>>;
  try {
    info = await stat(full);
  } catch (cause) {
    const code = (cause as { code?: unknown }).code;
    const context = { path: full, option: 'ARCHIVE', stage: STAGE };
    // "No such file" says it all; the system's own wording would only repeat the path.
    if (code === 'ENOENT') throw new UsageError(`${path}: no such file or folder`, context);
    throw new UsageError(`${path}: cannot read it`, context, { cause });
  }
  signal?.throwIfAborted();
  if (info.isDirectory()) {
    for (const name of ZARR_METADATA) {
      if (await exists(join(full, name))) return openZarrVolume(full, options);
    }
    return openSliceFolder(full);
  }
  if (basename(full) === 'zarr.json') return openZarrVolume(dirname(full), options);
  if (!info.isFile()) {
    throw new DecodeError(`${path}: not a regular file or folder; ${EXPECTED}`, { path: full, stage: STAGE });
  }
  if (info.size === 0) {
    throw new DecodeError(`${path}: not an archive: the file is empty (0 bytes); ${EXPECTED}`, {
      path: full,
      stage: STAGE,
    });
  }
  const head = await readHead(full, info.size);
  const magic = Buffer.from(head.subarray(0, 8)).toString('hex');
  if (TIFF_MAGIC.some((m) => magic.startsWith(m))) return openTiffStack(full, options);
  if (await isHdf5(full, info.size, head)) return openHdf5Volume(full, options.recon);
  throw new DecodeError(`${path}: not an archive (${describeStart(head)}); ${EXPECTED}`, {
    path: full,
    stage: STAGE,
  });
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}

async function readHead(path: string, size: number): Promise<Uint8Array> {
  return readAt(path, 0, Math.min(size, 64));
}

async function readAt(path: string, position: number, length: number): Promise<Uint8Array> {
  let handle: FileHandle | undefined;
  try {
    handle = await open(path, 'r');
    const buffer = new Uint8Array(length);
    const { bytesRead } = await handle.read(buffer, 0, length, position);
    return buffer.subarray(0, bytesRead);
  } catch (cause) {
    throw new DecodeError(`${path}: cannot read the file`, { path, stage: STAGE }, { cause });
  } finally {
    await handle?.close();
  }
}

/** The HDF5 signature sits at byte 0, or after a user block at 512, 1024, 2048 … bytes. */
async function isHdf5(path: string, size: number, head: Uint8Array): Promise<boolean> {
  if (Buffer.from(head.subarray(0, 8)).toString('hex') === HDF5_MAGIC) return true;
  for (let at = 512; at + 8 <= size; at *= 2) {
    const bytes = await readAt(path, at, 8);
    if (Buffer.from(bytes).toString('hex') === HDF5_MAGIC) return true;
  }
  return false;
}

/** "starts with "hello…" (text)" or the first bytes in hex: enough to recognise what it is instead. */
function describeStart(head: Uint8Array): string {
  const text = Buffer.from(head.subarray(0, 24)).toString('latin1');
  // biome-ignore lint/suspicious/noControlCharactersInRegex: tabs and newlines are what text looks like
  if (/^[\x09\x0a\x0d\x20-\x7e]+$/.test(text)) {
    return `it looks like text: starts with ${JSON.stringify(text.replace(/\s+/g, ' ').trim())}`;
  }
  const hex = Array.from(head.subarray(0, 8), (b) => b.toString(16).padStart(2, '0').toUpperCase()).join(' ');
  return `starts with bytes ${hex}`;
}
