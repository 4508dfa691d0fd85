import type { DecodedImage } from '../codecs/decode-tiff.ts';
import type { XctError } from '../errors.ts';

/** What a scanner says about a scan up front (`scan.json`, or a Kafka scan record). */
export interface ScanMeta {
  expectedSlices?: number;
  voxelSizeUm?: number;
  sampleId?: string;
  width?: number;
  height?: number;
}

/**
 * What every source (folder, Kafka, archive replay) tells the pipeline. Slices come in increasing z
 * per scan; the pipeline reads a slice's pixels only when it is ready for them.
 */
export type SourceEvent =
  | { type: 'scan-start'; scanId: string; dir?: string; meta: ScanMeta }
  | { type: 'scan-meta'; scanId: string; meta: ScanMeta }
  | { type: 'slice'; scanId: string; z: number; path?: string; readyAt: number; image?: DecodedImage }
  | { type: 'slice-missing'; scanId: string; z: number; reason: string }
  | { type: 'scan-end'; scanId: string; reason: string; slices: number; missing: number[] }
  /**
   * The source no longer has the scan (its Kafka partition went to another group member): the
   * pipeline lets it go unfinished, writing nothing more of it, so its store is the new owner's.
   */
  | { type: 'scan-handed-over'; scanId: string; reason: string }
  | { type: 'error'; scanId?: string; path?: string; error: XctError };
