import { endianness } from 'node:os';

/** The sample types a slice can hold, named as NumPy names them. */
export type Dtype = 'uint8' | 'uint16' | 'uint32' | 'int8' | 'int16' | 'int32' | 'float32' | 'float64';

/** The typed arrays that hold those samples, one per dtype. */
export type TypedArray =
  | Uint8Array
  | Uint16Array
  | Uint32Array
  | Int8Array
  | Int16Array
  | Int32Array
  | Float32Array
  | Float64Array;

/** The typed array class for each dtype. */
export const TYPED_ARRAYS: Readonly<Record<Dtype, new (buffer: ArrayBuffer) => TypedArray>> = Object.freeze({
  uint8: Uint8Array,
  uint16: Uint16Array,
  uint32: Uint32Array,
  int8: Int8Array,
  int16: Int16Array,
  int32: Int32Array,
  float32: Float32Array,
  float64: Float64Array,
});

const BYTES_PER_SAMPLE: Readonly<Record<Dtype, number>> = Object.freeze({
  uint8: 1,
  int8: 1,
  uint16: 2,
  int16: 2,
  uint32: 4,
  int32: 4,
  float32: 4,
  float64: 8,
});

const HOST_IS_LITTLE_ENDIAN = endianness() === 'LE';

/** The dtype of a typed array; throws a TypeError for anything else (a programming error). */
export function dtypeOf(array: TypedArray): Dtype {
  // instanceof rather than constructor.name so Node's Buffer (a Uint8Array subclass) counts as uint8.
  if (array instanceof Uint8Array) return 'uint8';
  if (array instanceof Uint16Array) return 'uint16';
  if (array instanceof Uint32Array) return 'uint32';
  if (array instanceof Int8Array) return 'int8';
  if (array instanceof Int16Array) return 'int16';
  if (array instanceof Int32Array) return 'int32';
  if (array instanceof Float32Array) return 'float32';
  if (array instanceof Float64Array) return 'float64';
  throw new TypeError(`not a supported typed array: ${Object.prototype.toString.call(array)}`);
}

/** How many bytes one sample of this dtype takes. */
export function bytesPerSample(dtype: Dtype): number {
  return BYTES_PER_SAMPLE[dtype];
}

/**
 * The samples as little-endian bytes: a view of the array's own memory on little-endian hosts
 * (no copy), a byte-swapped copy elsewhere. TIFF (as we write it) and .npy ('<') both need LE.
 */
export function littleEndianBytes(array: TypedArray): Uint8Array {
  const bytes = new Uint8Array(array.buffer, array.byteOffset, array.byteLength);
  const width = array.BYTES_PER_ELEMENT;
  if (HOST_IS_LITTLE_ENDIAN || width === 1) return bytes;
  const swapped = new Uint8Array(bytes.length);
  for (let i = 0; i < bytes.length; i += width) {
    for (let j = 0; j < width; j++) swapped[i + j] = bytes[i + width - 1 - j]!;
  }
  return swapped;
}
