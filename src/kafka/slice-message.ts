import { decodeSlice, type SliceMessage } from '../codecs/avro-slice.ts';
import type { DecodedImage } from '../codecs/decode-tiff.ts';
import { DecodeError } from '../errors.ts';
import { readSliceFileRef } from './read-slice-file-ref.ts';

const SCAN_ID = /^[\w.-]{1,200}$/;

/** Where a message came from: what every error about it names. */
export interface MessagePlace {
  topic: string;
  partition: number;
  offset: string;
}

/**
 * One Kafka message as a slice, checked before anything of it is trusted: an Avro slice record
 * (`schemas/slice.avsc`), its pixels inline or read from a file reference inside `fileRoots` only,
 * a scan id that can name an output folder, a z inside the scan, and the size of the scan's
 * earlier slices (`scanSize`, when it has some). Anything else is a DecodeError naming the message.
 */
export async function readSliceMessage(
  value: Buffer | null,
  where: MessagePlace,
  o: {
    fileRoots: readonly string[];
    scanSize: (scanId: string) => { width: number; height: number } | undefined;
  },
): Promise<{ slice: SliceMessage; image: DecodedImage }> {
  if (!value) throw new DecodeError('empty message (a tombstone?), not a slice', where);
  const slice = decodeSlice(value, { where });
  const image =
    'data' in slice.pixels
      ? slice.pixels
      : await readSliceFileRef(slice.pixels, {
          roots: o.fileRoots,
          context: { ...where, scanId: slice.scanId, slice: slice.z },
        });
  // The scan id names the scan's output folder: nothing that could leave it.
  if (!SCAN_ID.test(slice.scanId) || slice.scanId === '.' || slice.scanId === '..')
    throw new DecodeError(
      `scan id ${JSON.stringify(slice.scanId)} may hold letters, digits, '.', '_' and '-' only`,
      { ...where, stage: 'decode' },
    );
  const scan = o.scanSize(slice.scanId);
  if (scan && (image.width !== scan.width || image.height !== scan.height))
    throw new DecodeError(
      `slice ${slice.z} of ${slice.scanId} is ${image.width}×${image.height}, the scan's slices are ${scan.width}×${scan.height}`,
      { ...where, scanId: slice.scanId, slice: slice.z, stage: 'decode' },
    );
  if (
    !Number.isSafeInteger(slice.z) ||
    slice.z < 0 ||
    (slice.expectedSlices !== null && slice.z >= slice.expectedSlices)
  )
    throw new DecodeError(
      `slice z ${slice.z} of ${slice.scanId} is outside 0…${(slice.expectedSlices ?? Infinity) - 1}`,
      { ...where, scanId: slice.scanId, slice: slice.z, stage: 'decode' },
    );
  return { slice, image };
}
