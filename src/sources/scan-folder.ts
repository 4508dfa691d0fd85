/**
 * What a scan folder holds, as the live folder watcher and the archive reader both read one: one
 * file per slice (`.tif`, `.tiff`, `.raw` with a `.json` sidecar), numbered by the last run of
 * digits in its name, an optional `scan.json`, and `scan.done` once the scanner is finished.
 * Hidden and temporary files (`.x`, `*.partial`, `*.tmp`) are a writer's work in progress.
 */
import { extname } from 'node:path';
import type { ScanMeta } from './source-event.ts';

export const META_NAME = 'scan.json';
export const DONE_NAME = 'scan.done';
/** The slice files a scan folder may hold. */
export const SLICE_EXTENSIONS: ReadonlySet<string> = new Set(['.tif', '.tiff', '.raw']);

/** Temporary and hidden files that writers rename into place later. */
export function isIgnoredName(name: string): boolean {
  const lower = name.toLowerCase();
  return name.startsWith('.') || lower.endsWith('.partial') || lower.endsWith('.tmp');
}

/** A slice file: the right extension, not hidden or temporary. */
export function isSliceName(name: string): boolean {
  return !isIgnoredName(name) && SLICE_EXTENSIONS.has(extname(name).toLowerCase());
}

/** The slice number: the last run of digits before the extension (`slice_00012.tif` → 12). */
export function parseSliceNumber(name: string): number | undefined {
  const stem = name.slice(0, name.length - extname(name).length);
  const digits = stem.match(/\d+/g);
  const last = digits?.[digits.length - 1];
  if (last === undefined) return undefined;
  const z = Number(last);
  return Number.isSafeInteger(z) ? z : undefined;
}

/** `slice_0001.raw` → `slice_0001.json`. */
export function sidecarPath(rawPath: string): string {
  return rawPath.slice(0, rawPath.length - extname(rawPath).length) + '.json';
}

/**
 * The `scan.json` fields both readers use, each checked for its type: the metadata that passed, and
 * a problem for each field that did not (the watcher refuses the file for any; a replay notes them).
 */
export function scanMetaFields(record: Record<string, unknown>): { meta: ScanMeta; problems: string[] } {
  const meta: ScanMeta = {};
  const problems: string[] = [];
  const positiveInt = (key: 'expectedSlices' | 'width' | 'height') => {
    const v = record[key];
    if (v === undefined || v === null) return;
    if (typeof v === 'number' && Number.isSafeInteger(v) && v > 0) meta[key] = v;
    else problems.push(`${key} must be a positive integer, got ${JSON.stringify(v)}`);
  };
  positiveInt('expectedSlices');
  positiveInt('width');
  positiveInt('height');
  const voxel = record['voxelSizeUm'];
  if (voxel !== undefined && voxel !== null) {
    if (typeof voxel === 'number' && Number.isFinite(voxel) && voxel > 0) meta.voxelSizeUm = voxel;
    else problems.push(`voxelSizeUm must be a positive number, got ${JSON.stringify(voxel)}`);
  }
  const sample = record['sampleId'];
  if (sample !== undefined && sample !== null) {
    if (typeof sample === 'string') meta.sampleId = sample;
    else problems.push(`sampleId must be a string, got ${JSON.stringify(sample)}`);
  }
  return { meta, problems };
}
