import { createHash } from 'node:crypto';
import { open } from 'node:fs/promises';
import { isAbsolute, resolve } from 'node:path';
import type { SliceFileRef } from '../codecs/avro-slice.ts';
import { decodeSlicePixels } from '../codecs/avro-slice-pixels.ts';
import type { DecodedImage } from '../codecs/decode-tiff.ts';
import { DecodeError, type ErrorContext } from '../errors.ts';

/**
 * The pixels a slice message points at: `length` bytes at `offset` of the file, checked against the
 * message's SHA-256 before they are trusted. Relative paths resolve against `root`. DecodeError when
 * the file is missing, short, or holds other bytes.
 */
export async function readSliceFileRef(
  ref: SliceFileRef,
  options: { root?: string; context?: ErrorContext; signal?: AbortSignal } = {},
): Promise<DecodedImage> {
  const path = isAbsolute(ref.path) ? ref.path : resolve(options.root ?? process.cwd(), ref.path);
  const context: ErrorContext = { stage: 'decode', ...options.context, path };
  const bytes = new Uint8Array(ref.length);
  let handle: Awaited<ReturnType<typeof open>> | undefined;
  try {
    options.signal?.throwIfAborted();
    handle = await open(path, 'r');
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
    throw new DecodeError(`cannot read slice pixels from ${path}`, context, { cause });
  } finally {
    await handle?.close();
  }
  const sha256 = createHash('sha256').update(bytes).digest('hex');
  if (sha256 !== ref.sha256)
    throw new DecodeError(
      `${path}: pixel bytes have SHA-256 ${sha256}, the slice message says ${ref.sha256}`,
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
