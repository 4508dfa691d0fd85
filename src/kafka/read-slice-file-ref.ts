import { createHash } from 'node:crypto';
import { constants } from 'node:fs';
import { open, realpath } from 'node:fs/promises';
import { isAbsolute, relative, resolve, sep } from 'node:path';
import type { SliceFileRef } from '../codecs/avro-slice.ts';
import { decodeSlicePixels } from '../codecs/avro-slice-pixels.ts';
import type { DecodedImage } from '../codecs/decode-tiff.ts';
import { DecodeError, type ErrorContext } from '../errors.ts';

/** Where slice messages' file references may point, and what a relative one resolves against. */
export interface FileRefOptions {
  /**
   * The folders a file reference may resolve into (after following symlinks). Relative paths
   * resolve against the first. Empty or absent: file references are refused, since anyone who
   * may produce to the slice topic could otherwise make the daemon read any file it can.
   */
  roots?: readonly string[];
  context?: ErrorContext;
  signal?: AbortSignal;
}

const inside = (dir: string, path: string): boolean => {
  const rel = relative(dir, path);
  return rel === '' || (!isAbsolute(rel) && rel !== '..' && !rel.startsWith(`..${sep}`));
};

/**
 * The pixels a slice message points at: `length` bytes at `offset` of the file, checked against the
 * message's SHA-256 before they are trusted. The file must be a regular file inside one of `roots`,
 * by its path and by where its symlinks lead; nothing outside is opened. DecodeError when the
 * reference is refused, or the file is missing, short, or holds other bytes. No error says
 * anything about the bytes read beyond that they do not match (a digest of untrusted bytes would
 * let whoever reads the dead-letter topic learn the file).
 */
export async function readSliceFileRef(
  ref: SliceFileRef,
  options: FileRefOptions = {},
): Promise<DecodedImage> {
  const roots = (options.roots ?? []).map((r) => resolve(r));
  const first = roots[0];
  const path = isAbsolute(ref.path) || first === undefined ? resolve(ref.path) : resolve(first, ref.path);
  const context: ErrorContext = { stage: 'decode', ...options.context, path };
  if (first === undefined)
    throw new DecodeError(
      `${ref.path}: the slice message refers to a file, and file references are off (give the folders they may point into: source.kafka.fileRoots, or --file-root DIR)`,
      context,
    );
  if (!roots.some((root) => inside(root, path)))
    throw new DecodeError(
      `${path}: the slice message's file reference is outside the file roots (${roots.join(', ')}); not read`,
      context,
    );
  const bytes = new Uint8Array(ref.length);
  let handle: Awaited<ReturnType<typeof open>> | undefined;
  try {
    options.signal?.throwIfAborted();
    const real = await realpath(path);
    const realRoots = await Promise.all(roots.map((root) => realpath(root).catch(() => root)));
    if (!realRoots.some((root) => inside(root, real)))
      throw new DecodeError(
        `${path}: leads (by a symlink) to a file outside the file roots (${roots.join(', ')}); not read`,
        context,
      );
    // O_NOFOLLOW: a file swapped for a symlink since the check is not opened; O_NONBLOCK: opening a
    // FIFO does not wait for a writer. What was opened must then be a regular file.
    handle = await open(real, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
    if (!(await handle.stat()).isFile())
      throw new DecodeError(`${path}: is not a regular file; not read`, context);
    let got = 0;
    while (got < ref.length) {
      const { bytesRead } = await handle.read(bytes, got, ref.length - got, ref.offset + got);
      if (bytesRead === 0) break;
      got += bytesRead;
    }
    if (got < ref.length)
      throw new DecodeError(
        `${path}: holds ${got} of the ${ref.length} pixel bytes the slice message promises at offset ${ref.offset}`,
        context,
      );
  } catch (cause) {
    if (cause instanceof DecodeError) throw cause;
    const code = (cause as { code?: unknown }).code;
    throw new DecodeError(
      `cannot read slice pixels from ${path}${typeof code === 'string' ? `: ${code}` : ''}`,
      context,
      { cause },
    );
  } finally {
    await handle?.close();
  }
  if (createHash('sha256').update(bytes).digest('hex') !== ref.sha256)
    throw new DecodeError(
      `${path}: the ${ref.length} bytes at offset ${ref.offset} are not the pixels the slice message's SHA-256 ${ref.sha256} names`,
      context,
    );
  const { width, height, dtype, endianness } = ref;
  return {
    width,
    height,
    dtype,
    data: decodeSlicePixels(bytes, { width, height, dtype, endianness }, context),
  };
}
