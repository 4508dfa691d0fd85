/**
 * A baseline TIFF 6.0 writer for grayscale slices.
 *
 * We write TIFF ourselves because no maintained npm package encodes 16- or 32-bit grayscale
 * multi-page TIFF: geotiff's writer makes one GeoTIFF-tagged page, image-js `tiff` only decodes, and
 * UTIF's encoder writes 8-bit RGBA. What we need is small: little-endian, one strip-organised IFD per
 * page, uncompressed or Adobe deflate.
 */
import { deflateSync } from 'node:zlib';
import { OutputError } from '../errors.ts';
import { bytesPerSample, type Dtype, dtypeOf, littleEndianBytes, type TypedArray } from './dtype.ts';

/** One grayscale page: `data` holds `width * height` samples, row by row. */
export interface TiffPage {
  width: number;
  height: number;
  data: TypedArray;
  /** Stored as ImageDescription; TIFF's ASCII type allows 7-bit characters only. */
  description?: string;
}

/** How `encodeTiff` compresses strips: `none` (the default) or Adobe deflate (zlib). */
export interface EncodeTiffOptions {
  compression?: 'none' | 'deflate';
}

// The TIFF field types we use.
const ASCII = 2;
const SHORT = 3;
const LONG = 4;
const RATIONAL = 5;
type FieldType = typeof ASCII | typeof SHORT | typeof LONG | typeof RATIONAL;

const TAG = {
  ImageWidth: 256,
  ImageLength: 257,
  BitsPerSample: 258,
  Compression: 259,
  PhotometricInterpretation: 262,
  ImageDescription: 270,
  StripOffsets: 273,
  SamplesPerPixel: 277,
  RowsPerStrip: 278,
  StripByteCounts: 279,
  XResolution: 282,
  YResolution: 283,
  PlanarConfiguration: 284,
  ResolutionUnit: 296,
  SampleFormat: 339,
} as const;

const COMPRESSION_CODE = { none: 1, deflate: 8 } as const;
const SAMPLE_FORMAT: Readonly<Record<Dtype, number>> = {
  uint8: 1,
  uint16: 1,
  uint32: 1,
  int8: 2,
  int16: 2,
  int32: 2,
  float32: 3,
  float64: 3,
};

// TIFF 6.0 suggests ~8 KiB strips, sized for 1992 memory: a 512x512 uint16 slice would need 64
// strips (64 zlib streams). One strip per image defeats partial reads. 64 KiB sits between.
const TARGET_STRIP_BYTES = 64 * 1024;
// Classic TIFF stores offsets as 32-bit unsigned integers.
const MAX_FILE_BYTES = 0xffff_ffff;
const HEADER_BYTES = 8;
const IFD_ENTRY_BYTES = 12;

interface Field {
  tag: number;
  type: FieldType;
  /** Numbers as written: RATIONAL as numerator/denominator pairs, ASCII as bytes ending in NUL. */
  values: readonly number[];
}

interface PreparedPage {
  strips: Uint8Array[];
  fields: Field[];
}

/** Encode grayscale pages as one little-endian multi-page TIFF; throws OutputError on bad input. */
export function encodeTiff(pages: readonly TiffPage[], options: EncodeTiffOptions = {}): Uint8Array {
  const compression = options.compression ?? 'none';
  if (compression !== 'none' && compression !== 'deflate') {
    throw new OutputError(
      `cannot write TIFF: unknown compression '${String(compression)}' (use 'none' or 'deflate')`,
      { stage: 'encode' },
    );
  }
  if (pages.length === 0) {
    throw new OutputError('cannot write TIFF: no pages given (a TIFF needs at least one)', {
      stage: 'encode',
    });
  }
  const prepared = pages.map((page, index) => preparePage(page, index, compression));

  // Pass 1: lay out every page as [strips][IFD][IFD values too big to inline], all word-aligned.
  let position = HEADER_BYTES;
  const ifdOffsets: number[] = [];
  const valueOffsets: Array<Map<Field, number>> = [];
  for (const page of prepared) {
    const stripOffsets: number[] = [];
    for (const strip of page.strips) {
      stripOffsets.push(position);
      position += evenLength(strip.length);
    }
    page.fields.push({ tag: TAG.StripOffsets, type: LONG, values: stripOffsets });
    page.fields.sort((a, b) => a.tag - b.tag);
    ifdOffsets.push(position);
    position += 2 + page.fields.length * IFD_ENTRY_BYTES + 4;
    const outOfLine = new Map<Field, number>();
    for (const field of page.fields) {
      const size = fieldBytes(field);
      if (size > 4) {
        outOfLine.set(field, position);
        position += evenLength(size);
      }
    }
    valueOffsets.push(outOfLine);
  }
  if (position > MAX_FILE_BYTES) {
    throw new OutputError(
      `cannot write TIFF: ${position} bytes exceeds the 4 GiB limit of classic TIFF; write fewer pages per file`,
      { stage: 'encode' },
    );
  }

  // Pass 2: fill the buffer. Padding bytes stay zero from the allocation.
  const out = new Uint8Array(position);
  const view = new DataView(out.buffer);
  out.set([0x49, 0x49, 42, 0], 0); // "II*\0": little-endian TIFF
  view.setUint32(4, ifdOffsets[0]!, true);
  prepared.forEach((page, index) => {
    const stripOffsets = page.fields.find((f) => f.tag === TAG.StripOffsets)!.values;
    page.strips.forEach((strip, s) => {
      out.set(strip, stripOffsets[s]!);
    });
    const ifdOffset = ifdOffsets[index]!;
    const outOfLine = valueOffsets[index]!;
    view.setUint16(ifdOffset, page.fields.length, true);
    page.fields.forEach((field, f) => {
      const entry = ifdOffset + 2 + f * IFD_ENTRY_BYTES;
      view.setUint16(entry, field.tag, true);
      view.setUint16(entry + 2, field.type, true);
      view.setUint32(
        entry + 4,
        field.type === RATIONAL ? field.values.length / 2 : field.values.length,
        true,
      );
      const valueOffset = outOfLine.get(field);
      if (valueOffset === undefined) {
        writeValues(view, entry + 8, field);
      } else {
        view.setUint32(entry + 8, valueOffset, true);
        writeValues(view, valueOffset, field);
      }
    });
    const next = ifdOffsets[index + 1] ?? 0;
    view.setUint32(ifdOffset + 2 + page.fields.length * IFD_ENTRY_BYTES, next, true);
  });
  return out;
}

/** Validate one page, cut it into (possibly compressed) strips and list its fields but StripOffsets. */
function preparePage(page: TiffPage, index: number, compression: 'none' | 'deflate'): PreparedPage {
  const { width, height, data, description } = page;
  const where = `cannot write TIFF page ${index}`;
  if (!Number.isInteger(width) || width < 1 || !Number.isInteger(height) || height < 1) {
    throw new OutputError(`${where}: width and height must be integers >= 1, got ${width}x${height}`, {
      stage: 'encode',
    });
  }
  let dtype: Dtype;
  try {
    dtype = dtypeOf(data);
  } catch (cause) {
    throw new OutputError(
      `${where}: data must be a typed array of a supported dtype`,
      { stage: 'encode' },
      { cause },
    );
  }
  if (data.length !== width * height) {
    throw new OutputError(
      `${where}: data has ${data.length} samples but ${width}x${height} needs ${width * height}`,
      { stage: 'encode' },
    );
  }
  const sampleBytes = bytesPerSample(dtype);
  const rowBytes = width * sampleBytes;
  const rowsPerStrip = Math.min(height, Math.max(1, Math.floor(TARGET_STRIP_BYTES / rowBytes)));
  const stripBytes = rowsPerStrip * rowBytes;
  const bytes = littleEndianBytes(data);
  const strips: Uint8Array[] = [];
  for (let start = 0; start < bytes.length; start += stripBytes) {
    const raw = bytes.subarray(start, start + stripBytes);
    strips.push(compression === 'deflate' ? deflateSync(raw) : raw);
  }

  const fields: Field[] = [
    { tag: TAG.ImageWidth, type: LONG, values: [width] },
    { tag: TAG.ImageLength, type: LONG, values: [height] },
    { tag: TAG.BitsPerSample, type: SHORT, values: [sampleBytes * 8] },
    { tag: TAG.Compression, type: SHORT, values: [COMPRESSION_CODE[compression]] },
    { tag: TAG.PhotometricInterpretation, type: SHORT, values: [1] }, // BlackIsZero
    { tag: TAG.SamplesPerPixel, type: SHORT, values: [1] },
    { tag: TAG.RowsPerStrip, type: LONG, values: [rowsPerStrip] },
    { tag: TAG.StripByteCounts, type: LONG, values: strips.map((s) => s.length) },
    // Pixel size is not known here; 1/1 with unit "none" is what libtiff readers treat as "unset".
    { tag: TAG.XResolution, type: RATIONAL, values: [1, 1] },
    { tag: TAG.YResolution, type: RATIONAL, values: [1, 1] },
    { tag: TAG.PlanarConfiguration, type: SHORT, values: [1] },
    { tag: TAG.ResolutionUnit, type: SHORT, values: [1] },
    { tag: TAG.SampleFormat, type: SHORT, values: [SAMPLE_FORMAT[dtype]] },
  ];
  if (description !== undefined) {
    fields.push({ tag: TAG.ImageDescription, type: ASCII, values: asciiBytes(description, where) });
  }
  return { strips, fields };
}

/** The description as NUL-terminated 7-bit ASCII, which is all the TIFF ASCII type allows. */
function asciiBytes(text: string, where: string): number[] {
  const bytes: number[] = [];
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code === 0 || code > 0x7f) {
      throw new OutputError(
        `${where}: description has character ${JSON.stringify(text[i])} at ${i}; TIFF ASCII allows 7-bit characters except NUL (escape it, e.g. with JSON \\u escapes)`,
        { stage: 'encode' },
      );
    }
    bytes.push(code);
  }
  bytes.push(0);
  return bytes;
}

function fieldBytes(field: Field): number {
  // RATIONAL values are already split into their two LONGs.
  return field.values.length * (field.type === ASCII ? 1 : field.type === SHORT ? 2 : 4);
}

function evenLength(length: number): number {
  return length + (length & 1);
}

function writeValues(view: DataView, offset: number, field: Field): void {
  const { type, values } = field;
  for (let i = 0; i < values.length; i++) {
    const value = values[i]!;
    if (type === ASCII) view.setUint8(offset + i, value);
    else if (type === SHORT) view.setUint16(offset + 2 * i, value, true);
    else view.setUint32(offset + 4 * i, value, true); // LONG, and RATIONAL's two LONGs
  }
}
