/**
 * A finished scan folder as a replayable volume: one slice file per z (numbered as the live folder
 * source numbers them), optionally `scan.json`. Slices stay files: the pipeline decodes each when it
 * is ready for it, exactly as for a live scan.
 */
import type { Dirent } from 'node:fs';
import { readdir, readFile, stat } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { DecodeError } from '../errors.ts';
import type { ArchiveVolume } from './archive-volume.ts';
import { isSliceName, META_NAME, parseSliceNumber, scanMetaFields } from './scan-folder.ts';
import type { ScanMeta } from './source-event.ts';

const STAGE = 'source';

/** Open a folder of slice files; throws a DecodeError when it holds none. */
export async function openSliceFolder(dir: string): Promise<ArchiveVolume> {
  const bad = (reason: string, cause?: unknown) =>
    new DecodeError(`${dir}: ${reason}`, { path: dir, stage: STAGE }, cause === undefined ? {} : { cause });
  let entries: Dirent[];
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch (cause) {
    throw bad('cannot list the folder', cause);
  }
  const names = entries.filter((e) => !e.isDirectory()).map((e) => e.name);
  const folders = entries.filter((e) => e.isDirectory() && !e.name.startsWith('.')).map((e) => e.name);
  const notes: string[] = [];
  const byZ = new Map<number, string>();
  for (const name of names.sort()) {
    if (!isSliceName(name)) continue;
    const z = parseSliceNumber(name);
    if (z === undefined) {
      notes.push(`${join(dir, name)} has no slice number in its name; ignored`);
      continue;
    }
    const other = byZ.get(z);
    if (other !== undefined) throw bad(`${other} and ${name} both claim slice ${z}`);
    byZ.set(z, name);
  }
  if (byZ.size === 0) {
    const hint =
      folders.length > 0
        ? `; if it holds scan folders, pass one of them (e.g. ${join(dir, folders.sort()[0] as string)})`
        : '';
    throw bad(
      `not a replayable archive: the folder holds no slice files (.tif, .tiff, .raw) and no zarr.json${hint}`,
    );
  }

  const scan = await readScanJson(join(dir, META_NAME), notes);
  const meta = scan.meta;
  const last = Math.max(...byZ.keys());
  const depth = Math.max(last + 1, meta.expectedSlices ?? 0);
  meta.expectedSlices ??= depth;
  const missing: number[] = [];
  for (let z = 0; z < depth; z++) if (!byZ.has(z)) missing.push(z);

  let paceMs: number[];
  if (scan.rate !== undefined) {
    const rate = scan.rate;
    paceMs = Array.from({ length: depth }, (_, z) => (z * 1000) / rate);
  } else {
    paceMs = await paceFromFileTimes(dir, byZ, depth);
  }

  return {
    kind: 'folder',
    path: dir,
    name: basename(dir),
    depth,
    meta,
    paceMs,
    missing,
    notes,
    async read(z, options = {}) {
      options.signal?.throwIfAborted();
      const name = byZ.get(z);
      if (name === undefined) {
        throw new DecodeError(`${dir}: no slice file for slice ${z}`, { path: dir, slice: z, stage: STAGE });
      }
      return { path: join(dir, name) };
    },
    async close() {},
  };
}

/** When each slice file was last written, relative to the first, never going backwards in z. */
async function paceFromFileTimes(
  dir: string,
  byZ: ReadonlyMap<number, string>,
  depth: number,
): Promise<number[]> {
  const times = new Map<number, number>();
  await Promise.all(
    [...byZ].map(async ([z, name]) => {
      try {
        times.set(z, (await stat(join(dir, name))).mtimeMs);
      } catch {
        // A file that vanished fails again, with its own error, when the pipeline reads it.
      }
    }),
  );
  const first = Math.min(...times.values());
  const pace: number[] = [];
  let previous = 0;
  for (let z = 0; z < depth; z++) {
    const t = times.get(z);
    // A copied folder can have times out of z order; a replay must still move forward.
    previous = t === undefined ? previous : Math.max(previous, t - first);
    pace.push(previous);
  }
  return pace;
}

/** The fields of scan.json a replay uses; a bad or absent file gives empty metadata and a note. */
async function readScanJson(
  path: string,
  notes: string[],
): Promise<{ meta: ScanMeta; rate: number | undefined }> {
  const meta: ScanMeta = {};
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (cause) {
    if ((cause as { code?: unknown }).code !== 'ENOENT') notes.push(`${path}: unreadable; ignored`);
    return { meta, rate: undefined };
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    notes.push(`${path}: not valid JSON; ignored`);
    return { meta, rate: undefined };
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    notes.push(`${path}: not a JSON object; ignored`);
    return { meta, rate: undefined };
  }
  const r = value as Record<string, unknown>;
  const fields = scanMetaFields(r);
  for (const problem of fields.problems) notes.push(`${path}: ${problem}; ignored`);
  const rate = r['rate'];
  if (rate === undefined || rate === null) return { meta: fields.meta, rate: undefined };
  if (typeof rate === 'number' && Number.isFinite(rate) && rate > 0) return { meta: fields.meta, rate };
  notes.push(`${path}: rate must be a positive number, got ${JSON.stringify(rate)}; ignored`);
  return { meta: fields.meta, rate: undefined };
}
