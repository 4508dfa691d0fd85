/**
 * Reads one slice file as the folder source hands it over: a TIFF (recognised by its magic bytes,
 * whatever its name) or a headerless `.raw` whose layout a JSON sidecar of the same base name gives.
 */
import { readFile, stat } from 'node:fs/promises';
import { endianness } from 'node:os';
import { extname } from 'node:path';
import { DecodeError } from '../errors.ts';
import { type DecodedImage, decodeTiff } from './decode-tiff.ts';
import { bytesPerSample, type Dtype, TYPED_ARRAYS } from './dtype.ts';

/** Options for `readSliceFile`. */
export interface ReadSliceFileOptions {
  signal?: AbortSignal;
  /** Files larger than this are refused unread (default 1 GiB: a 16384² float32 slice). */
  maxBytes?: number;
}

export const MAX_SLICE_BYTES = 2 ** 30;

/** What a `.raw` slice's sidecar says about it. */
export interface RawSidecar {
  width: number;
  height: number;
  dtype: Dtype;
  /** Byte order of the samples; little by default. */
  endianness?: 'little' | 'big';
  /** Bytes to skip before the first sample (a header we do not parse); 0 by default. */
  offset?: number;
}

const HOST_LITTLE = endianness() === 'LE';
const TIFF_MAGICS = [
  [0x49, 0x49, 0x2a, 0x00],
  [0x4d, 0x4d, 0x00, 0x2a],
  [0x49, 0x49, 0x2b, 0x00],
  [0x4d, 0x4d, 0x00, 0x2b],
];
const STAGE = 'decode';

/** Read and decode one slice file (TIFF by content, or `.raw` with a JSON sidecar); DecodeError names the file. */
export async function readSliceFile(path: string, options: ReadSliceFileOptions = {}): Promise<DecodedImage> {
  const { signal } = options;
  signal?.throwIfAborted();
  const maxBytes = options.maxBytes ?? MAX_SLICE_BYTES;
  // Checked before reading: a runaway file (or a sparse one) must not be pulled into memory.
  const size = await stat(path).then(
    (s) => s.size,
    () => undefined, // readBytes reports a file that cannot be read
  );
  if (size !== undefined && size > maxBytes)
    throw new DecodeError(
      `${path}: is ${gib(size)}; slices over ${gib(maxBytes)} are refused unread (a 16384×16384 float32 slice is 1.0 GiB)`,
      { path, stage: STAGE },
    );
  const bytes = await readBytes(path, signal);
  if (isTiff(bytes) || extname(path).toLowerCase() !== '.raw') {
    // Anything that is not a .raw goes to the TIFF decoder, whose errors say what the file is instead.
    return decodeTiff(bytes, signal ? { path, signal } : { path });
  }
  const sidecarPath = path.slice(0, path.length - extname(path).length) + '.json';
  return decodeRawSlice(bytes, await readBytes(sidecarPath, signal, path), path, sidecarPath);
}

/**
 * A headerless `.raw` slice from its bytes and its sidecar's bytes (JSON: width, height, dtype,
 * endianness?, offset?), as `readSliceFile` reads them. DecodeError names the file at fault.
 */
export function decodeRawSlice(
  bytes: Uint8Array,
  sidecarBytes: Uint8Array,
  path: string,
  sidecarPath: string,
): DecodedImage {
  return decodeRaw(bytes, parseSidecar(sidecarBytes, sidecarPath), path, sidecarPath);
}

async function readBytes(
  path: string,
  signal: AbortSignal | undefined,
  forSlice?: string,
): Promise<Uint8Array> {
  try {
    return await readFile(path, signal ? { signal } : {});
  } catch (cause) {
    // Cancellation is not a decode failure: callers see their own abort reason.
    if (signal?.aborted) throw signal.reason;
    const code =
      typeof cause === 'object' && cause !== null && 'code' in cause ? String(cause.code) : undefined;
    const what = forSlice === undefined ? 'cannot read the file' : `cannot read the sidecar of ${forSlice}`;
    throw new DecodeError(
      `${path}: ${what}${code ? ` (${code})` : ''}`,
      { path: forSlice ?? path, stage: STAGE },
      // A file that is not there (yet) may appear; a permission problem will not fix itself.
      { cause, canRetry: code === 'ENOENT' },
    );
  }
}

function isTiff(bytes: Uint8Array): boolean {
  return TIFF_MAGICS.some((magic) => magic.every((b, i) => bytes[i] === b));
}

/** Validate the sidecar's JSON; every problem is listed, not only the first. */
function parseSidecar(bytes: Uint8Array, path: string): RawSidecar {
  const bad = (reason: string, cause?: unknown) =>
    new DecodeError(`${path}: ${reason}`, { path, stage: STAGE }, cause === undefined ? {} : { cause });
  let value: unknown;
  try {
    value = JSON.parse(new TextDecoder().decode(bytes));
  } catch (cause) {
    throw bad(`sidecar is not valid JSON (${cause instanceof Error ? cause.message : String(cause)})`, cause);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw bad('sidecar must hold a JSON object {width, height, dtype, endianness?, offset?}');
  }
  const record = value as Record<string, unknown>;
  const problems: string[] = [];
  const int = (key: string, min: number): number => {
    const v = record[key];
    if (typeof v === 'number' && Number.isSafeInteger(v) && v >= min) return v;
    problems.push(`${key} must be an integer >= ${min}, got ${JSON.stringify(v)}`);
    return min;
  };
  const width = int('width', 1);
  const height = int('height', 1);
  const dtype = record['dtype'];
  if (typeof dtype !== 'string' || !Object.hasOwn(TYPED_ARRAYS, dtype)) {
    problems.push(
      `dtype must be one of ${Object.keys(TYPED_ARRAYS).join(', ')}, got ${JSON.stringify(dtype)}`,
    );
  }
  const order = record['endianness'] ?? 'little';
  if (order !== 'little' && order !== 'big') {
    problems.push(`endianness must be "little" or "big", got ${JSON.stringify(order)}`);
  }
  const offset = record['offset'] === undefined ? 0 : int('offset', 0);
  if (problems.length > 0) throw bad(problems.join('; '));
  return { width, height, dtype: dtype as Dtype, endianness: order as 'little' | 'big', offset };
}

function decodeRaw(bytes: Uint8Array, sidecar: RawSidecar, path: string, sidecarPath: string): DecodedImage {
  const { width, height, dtype } = sidecar;
  const offset = sidecar.offset ?? 0;
  const sampleBytes = bytesPerSample(dtype);
  const pixelBytes = width * height * sampleBytes;
  const expected = pixelBytes + offset;
  if (bytes.length !== expected) {
    throw new DecodeError(
      `${path}: holds ${bytes.length} bytes but ${sidecarPath} describes ${width}x${height} ${dtype}` +
        `${offset ? ` after a ${offset}-byte offset` : ''} = ${expected} bytes`,
      { path, stage: STAGE },
      // Short is what a raw file still being written looks like; too long will not change.
      { canRetry: bytes.length < expected },
    );
  }
  // A fresh buffer: the file's bytes may sit at an odd offset of Node's pool, and we may swap them.
  const buffer = new ArrayBuffer(pixelBytes);
  const out = new Uint8Array(buffer);
  out.set(bytes.subarray(offset, expected));
  const little = (sidecar.endianness ?? 'little') === 'little';
  if (little !== HOST_LITTLE && sampleBytes > 1) {
    swapBytes(out, sampleBytes);
  }
  return { width, height, dtype, data: new TYPED_ARRAYS[dtype](buffer) };
}

/** Reverse the byte order of every `width`-byte sample, in place. */
function swapBytes(bytes: Uint8Array, width: number): void {
  const half = width >> 1;
  for (let i = 0; i < bytes.length; i += width) {
    for (let j = 0; j < half; j++) {
      const a = bytes[i + j]!;
      bytes[i + j] = bytes[i + width - 1 - j]!;
      bytes[i + width - 1 - j] = a;
    }
  }
}

function gib(bytes: number): string {
  return `${(bytes / 2 ** 30).toFixed(1)} GiB`;
}
