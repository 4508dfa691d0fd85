import { createHash } from 'node:crypto';
import type { ModelIdentity } from '../inference/load-model.ts';

export type Severity = 'info' | 'warning' | 'critical';
export const SEVERITIES: readonly Severity[] = ['info', 'warning', 'critical'];

/** Inclusive voxel bounds. */
export interface VoxelBox {
  zMin: number;
  zMax: number;
  yMin: number;
  yMax: number;
  xMin: number;
  xMax: number;
}

/** The same bounds in micrometres (voxel edges, so max = (index + 1) · voxel size). */
export interface MicrometreBox {
  zMin: number;
  zMax: number;
  yMin: number;
  yMax: number;
  xMin: number;
  xMax: number;
}

/** Where the evidence for an alert lies in the scan's OME-Zarr. */
export interface ZarrEvidence {
  path: string;
  labels: string;
  probabilities: string;
  /** Half-open index ranges [start, stop) per axis. */
  region: { z: [number, number]; y: [number, number]; x: [number, number] };
}

export interface ScanSummary {
  dendriteCount: number;
  largestHeightUm: number;
  largestHeightFraction: number;
  segmentedVolumeFraction: number;
  slices: number;
  missingSlices: number[];
}

/**
 * A dendrite alert, or a scan summary: the contract with every consumer (Avro on Kafka, JSON lines).
 * Field names follow DESIGN.md and are never renamed.
 */
export interface DendriteAlert {
  alertId: string;
  scanId: string;
  kind: 'dendrite' | 'scan-summary';
  severity: Severity;
  /** When it was raised, ms since the epoch. */
  raisedAt: number;
  /** Slices acquired so far / expected, when the expected count is known. */
  scanProgress: number | null;
  sliceRange: { first: number; last: number };
  bbox: { voxels: VoxelBox; um: MicrometreBox } | null;
  voxelCount: number;
  volumeUm3: number;
  heightUm: number;
  heightFraction: number;
  confidence: number;
  model: ModelIdentity;
  zarr: ZarrEvidence;
  /** The tracked component (stable within a scan). */
  componentId: number | null;
  electrode: 'top' | 'bottom' | null;
  summary: ScanSummary | null;
}

/**
 * A UUID derived from what the alert is about (scan, kind, component, severity), never from time:
 * a replay or a restart raises the same id, so consumers can drop duplicates.
 */
export function alertIdFor(
  scanId: string,
  kind: DendriteAlert['kind'],
  componentId: number | null,
  severity: Severity,
): string {
  const h = createHash('sha256')
    .update(`xct-sentinel/alert/v1\0${scanId}\0${kind}\0${componentId ?? '-'}\0${severity}`)
    .digest();
  // RFC 9562 version 8 (custom) layout: the hash's bytes with version and variant bits set.
  h[6] = ((h[6] as number) & 0x0f) | 0x80;
  h[8] = ((h[8] as number) & 0x3f) | 0x80;
  const hex = h.subarray(0, 16).toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20, 32)}`;
}
