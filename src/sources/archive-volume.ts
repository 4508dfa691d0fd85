/**
 * What every archive reader (`openArchive` and the per-format openers) hands to `replayArchive`:
 * a z-stack read one slice at a time, so a replay never holds more than the slices in flight.
 */
import type { DecodedImage } from '../codecs/decode-tiff.ts';
import type { ScanMeta } from './source-event.ts';

/** The archive layouts a replay reads. */
export type ArchiveKind = 'folder' | 'tiff' | 'hdf5' | 'projections' | 'zarr' | 'simulated';

/** One slice of an archive: a file the pipeline decodes itself, or pixels already decoded. */
export type ArchiveSlice = { path: string } | { image: DecodedImage };

/** An opened archive: its size and metadata up front, its slices on demand. */
export interface ArchiveVolume {
  readonly kind: ArchiveKind;
  /** The archive as opened (absolute). */
  readonly path: string;
  /** A scan id taken from the archive's name (`tooth.h5` → `tooth`). */
  readonly name: string;
  /** The z extent: slices 0 … depth-1. */
  readonly depth: number;
  /** What the archive says about the scan (voxel size, sample, slice size when known). */
  readonly meta: ScanMeta;
  /**
   * When slice z was acquired, in ms after slice 0, for archives that record their pace (a scan
   * folder's `scan.json` rate or file times); undefined when the archive does not say.
   */
  readonly paceMs: readonly number[] | undefined;
  /** Slices the archive lacks (a gap in a folder's numbering), ascending. */
  readonly missing: readonly number[];
  /** Things worth telling the user that do not stop the replay (e.g. "these are projections"). */
  readonly notes: readonly string[];
  /** Read slice z (0 ≤ z < depth, not missing); rejects with a DecodeError naming the archive. */
  read(z: number, options?: { signal?: AbortSignal }): Promise<ArchiveSlice>;
  /** Release the file handle; safe to call twice. */
  close(): Promise<void>;
}

/**
 * Check that an archive array is a z × y × x volume (leading axes of size 1 allowed); throws
 * `bad(reason)` naming `where` (e.g. the dataset path) otherwise. Returns how many leading axes.
 */
export function checkVolumeShape(
  where: string,
  shape: readonly number[],
  bad: (reason: string) => Error,
): number {
  const dims = shape.join('×') || 'scalar';
  if (shape.length < 3)
    throw bad(
      `${where} is ${shape.length}-D (${dims}); replay needs a 3-D volume (z × y × x), one slice per z`,
    );
  if (shape.slice(0, -3).some((n) => n !== 1))
    throw bad(
      `${where} is ${shape.length}-D (${dims}); replay needs z × y × x (extra leading axes of size 1 are fine)`,
    );
  return shape.length - 3;
}
