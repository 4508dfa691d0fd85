/**
 * Turns the pixel bytes of a slice message (inline, or read from the file it references) into a
 * typed array, after checking that they are exactly the samples the message's header promises.
 */
import { endianness as hostEndianness } from 'node:os';
import { DecodeError, type ErrorContext } from '../errors.ts';
import { bytesPerSample, type Dtype, TYPED_ARRAYS, type TypedArray } from './dtype.ts';

/** What a slice message says its pixels are. */
export interface SlicePixelLayout {
  width: number;
  height: number;
  dtype: Dtype;
  endianness: 'little' | 'big';
}

const HOST = hostEndianness() === 'LE' ? 'little' : 'big';

/** How many pixel bytes a layout needs; undefined when its dimensions are not positive integers. */
export function slicePixelBytes(layout: SlicePixelLayout): number | undefined {
  const { width, height, dtype } = layout;
  if (!Number.isSafeInteger(width) || !Number.isSafeInteger(height) || width < 1 || height < 1)
    return undefined;
  return width * height * bytesPerSample(dtype);
}

/**
 * The samples as a typed array in host byte order: always a copy, because the bytes usually sit at an
 * odd offset inside a Kafka message buffer, where a Uint16Array or Float32Array cannot view them.
 */
export function decodeSlicePixels(
  bytes: Uint8Array,
  layout: SlicePixelLayout,
  context: ErrorContext = {},
): TypedArray {
  const expected = slicePixelBytes(layout);
  if (expected === undefined) {
    throw new DecodeError(
      `slice has invalid dimensions ${layout.width}x${layout.height}: both must be at least 1`,
      {
        stage: 'decode',
        ...context,
      },
    );
  }
  if (bytes.byteLength !== expected) {
    throw new DecodeError(
      `slice pixels hold ${bytes.byteLength} bytes but ${layout.width}x${layout.height} ${layout.dtype} needs ${expected}`,
      { stage: 'decode', ...context },
    );
  }
  const copy = new Uint8Array(expected);
  copy.set(bytes);
  const width = bytesPerSample(layout.dtype);
  if (width > 1 && layout.endianness !== HOST) {
    for (let i = 0; i < copy.length; i += width) copy.subarray(i, i + width).reverse();
  }
  return new TYPED_ARRAYS[layout.dtype](copy.buffer);
}
