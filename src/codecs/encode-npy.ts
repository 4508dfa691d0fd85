import { OutputError } from '../errors.ts';
import { type Dtype, dtypeOf, littleEndianBytes, type TypedArray } from './dtype.ts';

const DESCR: Readonly<Record<Dtype, string>> = {
  uint8: '|u1',
  int8: '|i1',
  uint16: '<u2',
  int16: '<i2',
  uint32: '<u4',
  int32: '<i4',
  float32: '<f4',
  float64: '<f8',
};

const MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]; // "\x93NUMPY"
// numpy pads magic + version + length + header to a multiple of 64 so the data is aligned for mmap.
const ALIGN = 64;
const PREAMBLE_BYTES = 10;
// np.save leaves room for the first axis to grow to 21 digits so appenders can rewrite the
// header in place; we do the same so our files are byte-identical to np.save's.
const GROWTH_AXIS_MAX_DIGITS = 21;

/** Encode a C-order array as a NumPy .npy file (format 1.0, little-endian); throws OutputError on bad shape. */
export function encodeNpy(data: TypedArray, shape: readonly number[]): Uint8Array {
  const elements = shape.reduce((product, size) => product * size, 1);
  const header = npyHeader(dtypeOf(data), shape);
  if (elements !== data.length) {
    throw new OutputError(
      `cannot write .npy: shape (${shape.join(', ')}) holds ${elements} elements but data has ${data.length}`,
      { stage: 'encode' },
    );
  }
  const bytes = littleEndianBytes(data);
  const out = new Uint8Array(header.length + bytes.length);
  out.set(header, 0);
  out.set(bytes, header.length);
  return out;
}

/**
 * The bytes of a .npy file before its data: magic, version and the padded header. Writers that
 * stream large arrays (the training-set export) write this, then the data in C order.
 */
export function npyHeader(dtype: Dtype, shape: readonly number[]): Uint8Array {
  for (const [axis, size] of shape.entries()) {
    if (!Number.isSafeInteger(size) || size < 0) {
      throw new OutputError(`cannot write .npy: shape[${axis}] must be an integer >= 0, got ${size}`, {
        stage: 'encode',
      });
    }
  }
  // Python's repr of a tuple: a 1-tuple needs its trailing comma.
  const tuple = shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(', ')})`;
  const dict = `{'descr': '${DESCR[dtype]}', 'fortran_order': False, 'shape': ${tuple}, }`;
  const growth = shape.length === 0 ? 0 : Math.max(0, GROWTH_AXIS_MAX_DIGITS - String(shape[0]).length);
  const unpadded = PREAMBLE_BYTES + dict.length + growth + 1; // +1 for the closing newline
  // Like numpy, pad a whole ALIGN (not 0) when already aligned.
  const header = dict + ' '.repeat(growth + ALIGN - (unpadded % ALIGN)) + '\n';
  if (header.length > 0xffff) {
    throw new OutputError(`cannot write .npy: a ${shape.length}-dimensional header does not fit format 1.0`, {
      stage: 'encode',
    });
  }
  const out = new Uint8Array(PREAMBLE_BYTES + header.length);
  out.set(MAGIC, 0);
  out[6] = 1; // format version 1.0
  out[7] = 0;
  out[8] = header.length & 0xff;
  out[9] = header.length >> 8;
  // The header is pure ASCII (digits, punctuation, the descr), so char codes are its bytes.
  for (let i = 0; i < header.length; i++) out[PREAMBLE_BYTES + i] = header.charCodeAt(i);
  return out;
}
