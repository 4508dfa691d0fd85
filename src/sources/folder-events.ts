import type { XctError } from '../errors.ts';
import type { ScanMeta } from './source-event.ts';

/** Why a scan ended. */
export type ScanEndReason = 'done-marker' | 'expected-count' | 'idle-timeout';

/** A scan folder appeared (or was there at start-up). */
export interface ScanStartEvent {
  type: 'scan-start';
  scanId: string;
  dir: string;
  meta: ScanMeta;
}

/** `scan.json` arrived (or changed) after `scan-start` was emitted. */
export interface ScanMetaEvent {
  type: 'scan-meta';
  scanId: string;
  meta: ScanMeta;
}

/** A completely written slice file, in increasing z per scan. */
export interface SliceEvent {
  type: 'slice';
  scanId: string;
  z: number;
  path: string;
  /** Epoch ms when the file was seen complete. */
  readyAt: number;
}

/** A z that will not arrive: given up after a timeout, or the scan ended without it. */
export interface SliceMissingEvent {
  type: 'slice-missing';
  scanId: string;
  z: number;
  reason: string;
}

/** The last event of a scan. */
export interface ScanEndEvent {
  type: 'scan-end';
  scanId: string;
  reason: ScanEndReason;
  /** Slices emitted. */
  slices: number;
  missing: number[];
}

/** Something odd that the source skipped; the stream goes on. */
export interface FolderErrorEvent {
  type: 'error';
  scanId?: string;
  path?: string;
  error: XctError;
}

/** Everything `watchFolder` emits. */
export type FolderEvent =
  | ScanStartEvent
  | ScanMetaEvent
  | SliceEvent
  | SliceMissingEvent
  | ScanEndEvent
  | FolderErrorEvent;
