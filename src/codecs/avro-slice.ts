/**
 * Slice messages on the slice topic (`schemas/slice.avsc`): a decoded image plus the scan it belongs
 * to, with the pixels inline or, for slices larger than the broker's message limit, a reference to a
 * file the consumer reads (and checks by SHA-256) itself.
 */

import { DecodeError, OutputError } from '../errors.ts';
import {
  type DecodeAvroOptions,
  decodeAvroMessage,
  type EncodeAvroOptions,
  encodeAvroMessage,
} from './avro-message.ts';
import { loadAvroSchemas } from './avro-schemas.ts';
import { decodeSlicePixels, type SlicePixelLayout, slicePixelBytes } from './avro-slice-pixels.ts';
import type { DecodedImage } from './decode-tiff.ts';
import { dtypeOf, littleEndianBytes } from './dtype.ts';

/** Pixels kept outside the message: where they are and how to read them. */
export interface SliceFileRef extends SlicePixelLayout {
  path: string;
  /** Byte offset of the first sample in the file. */
  offset: number;
  /** Byte count: width · height · bytes per sample. */
  length: number;
  /** Lowercase hex SHA-256 of those bytes. */
  sha256: string;
}

/** One slice of a scan as it travels on the slice topic. */
export interface SliceMessage {
  scanId: string;
  z: number;
  expectedSlices: number | null;
  voxelSizeUm: number | null;
  /** Epoch milliseconds. */
  acquiredAt: number;
  /** Inline pixels (an image with `data`), or a reference to a file holding them. */
  pixels: DecodedImage | SliceFileRef;
}

interface PixelFileRecord {
  path: string;
  offset: number;
  length: number;
  sha256: string;
}

/** The slice as the Avro record holds it. */
interface SliceRecord extends SlicePixelLayout {
  scanId: string;
  z: number;
  expectedSlices: number | null;
  voxelSizeUm: number | null;
  acquiredAt: number;
  pixels: Buffer | PixelFileRecord;
}

const SHA256_HEX = /^[0-9a-f]{64}$/;

/** A slice as a message for the slice topic; inline pixels are written little-endian. */
export function encodeSlice(slice: SliceMessage, options: EncodeAvroOptions = {}): Buffer {
  const { pixels, ...header } = slice;
  const context = { scanId: slice.scanId, slice: slice.z, stage: 'encode' };
  const fail = (problem: string): never => {
    throw new OutputError(`slice ${slice.z} of ${slice.scanId}: ${problem}`, context);
  };
  let record: SliceRecord;
  if ('data' in pixels) {
    const { width, height, dtype, data } = pixels;
    if (slicePixelBytes({ width, height, dtype, endianness: 'little' }) === undefined)
      fail(`invalid dimensions ${width}x${height}`);
    if (data.length !== width * height || dtypeOf(data) !== dtype) {
      fail(`${data.length} ${dtypeOf(data)} samples do not make a ${width}x${height} ${dtype} image`);
    }
    const bytes = littleEndianBytes(data);
    const buffer = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    record = { ...header, width, height, dtype, endianness: 'little', pixels: buffer };
  } else {
    const { path, offset, length, sha256, ...layout } = pixels;
    const ref = { path, offset, length, sha256 };
    const problem = fileRefProblem(ref, layout);
    if (problem) fail(`file reference ${path} has ${problem}`);
    record = { ...header, ...layout, pixels: ref };
  }
  return encodeAvroMessage(loadAvroSchemas().slice, record, options, context);
}

/**
 * A slice from a message of any known schema version. DecodeError when the message is not a slice,
 * or its pixels are not width · height samples of its dtype.
 */
export function decodeSlice(message: Uint8Array, options: DecodeAvroOptions = {}): SliceMessage {
  const record = decodeAvroMessage(loadAvroSchemas().slice, message, options) as SliceRecord;
  const { pixels, width, height, dtype, endianness, ...header } = record;
  const layout: SlicePixelLayout = { width, height, dtype, endianness };
  const context = { scanId: record.scanId, slice: record.z, ...options.where };
  if (Buffer.isBuffer(pixels)) {
    const data = decodeSlicePixels(pixels, layout, context);
    return { ...header, pixels: { width, height, dtype, data } };
  }
  const problem = fileRefProblem(pixels, layout);
  if (problem) {
    throw new DecodeError(
      `slice ${record.z} of ${record.scanId}: file reference ${pixels.path} has ${problem}`,
      {
        stage: 'decode',
        path: pixels.path,
        ...context,
      },
    );
  }
  return {
    ...header,
    pixels: {
      ...layout,
      path: pixels.path,
      offset: pixels.offset,
      length: pixels.length,
      sha256: pixels.sha256,
    },
  };
}

/** Why a file reference cannot hold the slice's samples, if it cannot. */
function fileRefProblem(ref: PixelFileRecord, layout: SlicePixelLayout): string | undefined {
  const expected = slicePixelBytes(layout);
  if (expected === undefined) return `invalid dimensions ${layout.width}x${layout.height}`;
  if (ref.length !== expected) {
    return `length ${ref.length} but ${layout.width}x${layout.height} ${layout.dtype} needs ${expected}`;
  }
  if (!Number.isSafeInteger(ref.offset) || ref.offset < 0) return `offset ${ref.offset}, not a byte offset`;
  if (!SHA256_HEX.test(ref.sha256))
    return `sha256 ${JSON.stringify(ref.sha256)}, not 64 lowercase hex digits`;
  return undefined;
}
