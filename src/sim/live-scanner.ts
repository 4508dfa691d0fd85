import { mkdir, open, readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { encodeTiff } from '../codecs/encode-tiff.ts';
import { OutputError, UsageError } from '../errors.ts';
import { createPhantom, type Phantom, type PhantomOptions } from './phantom.ts';
import { renderSlice } from './render-slice.ts';
import { summarizePhantom } from './summarize-phantom.ts';

/** How slice files appear: atomically by rename, or growing in place as some scanners write them. */
export type WriteMode = 'rename' | 'inplace';
export const WRITE_MODES: readonly WriteMode[] = ['rename', 'inplace'];

export interface LiveScanOptions extends PhantomOptions {
  /** The scanner's output root; the scan goes to `<out>/<scanId>/`. */
  out: string;
  scanId?: string;
  /** Slices per second. */
  rate: number;
  writeMode?: WriteMode;
  signal?: AbortSignal;
  /**
   * Called after each slice file is complete on disk, and awaited: a consumer may hold the scanner
   * back (a test keeping it a few slices ahead of the daemon, whatever either's speed).
   */
  onSlice?: (event: { z: number; path: string; lagMs: number }) => unknown;
}

export interface LiveScanResult {
  scanId: string;
  scanDir: string;
  /** Multi-page uint8 TIFF, one page per slice: 0 background, 1 dendrite, 2 pit, 3 bubble. */
  truthPath: string;
  /** The phantom's objects (dendrites with heights and boxes, pits, bubbles) as JSON. */
  truthJsonPath: string;
  slices: number;
  elapsedMs: number;
  /** Worst delay behind the requested pace (rendering slower than the rate). */
  maxLagMs: number;
}

/** The metadata a scanner drops first: what the daemon may read from `scan.json`. */
export interface ScanJson {
  scanId: string;
  sampleId: string;
  expectedSlices: number;
  width: number;
  height: number;
  dtype: 'uint16';
  voxelSizeUm: number;
  seed: number;
}

/** Default scan id for a seed, so repeated runs with one seed name the same folder. */
export function defaultScanId(seed: number): string {
  return `sim-${seed}`;
}

/**
 * Behave like a live scanner: write `scan.json`, then one slice TIFF at a time at `rate` slices/s,
 * then the ground truth beside the scan folder, then `scan.done`.
 */
export async function runLiveScanner(options: LiveScanOptions): Promise<LiveScanResult> {
  const { rate, signal } = options;
  if (!(Number.isFinite(rate) && rate > 0))
    throw new UsageError(`--rate must be a number of slices per second > 0, got ${rate}`, {
      option: '--rate',
    });
  const writeMode = options.writeMode ?? 'rename';
  if (!WRITE_MODES.includes(writeMode))
    throw new UsageError(`--write-mode must be one of ${WRITE_MODES.join(', ')}, got "${writeMode}"`, {
      option: '--write-mode',
    });
  const phantom = createPhantom(options);
  const scanId = options.scanId ?? defaultScanId(phantom.seed);
  if (!/^[\w.-]+$/.test(scanId) || scanId === '.' || scanId === '..')
    throw new UsageError(`--scan-id may hold letters, digits, '.', '_' and '-' only, got "${scanId}"`, {
      option: '--scan-id',
    });
  const scanDir = join(options.out, scanId);

  const scanJson: ScanJson = {
    scanId,
    sampleId: `Li|PEO|Li-${phantom.seed}`,
    expectedSlices: phantom.slices,
    width: phantom.size,
    height: phantom.size,
    dtype: 'uint16',
    voxelSizeUm: phantom.voxelSizeUm,
    seed: phantom.seed,
  };
  await createScanDir(options.out, scanDir, `${JSON.stringify(scanJson, null, 2)}\n`);

  const truth: Uint8Array[] = [];
  const started = performance.now();
  let maxLagMs = 0;
  for (let z = 0; z < phantom.slices; z++) {
    signal?.throwIfAborted();
    const { image, labels } = renderSlice(phantom, z);
    truth.push(labels);
    const bytes = encodeTiff([{ width: phantom.size, height: phantom.size, data: image }]);
    // Absolute schedule: slice z is due at z / rate after the start, so pacing never drifts.
    const due = started + (z * 1000) / rate;
    const wait = due - performance.now();
    if (wait > 0) await sleep(wait, undefined, { signal });
    const lagMs = Math.max(0, performance.now() - due);
    maxLagMs = Math.max(maxLagMs, lagMs);
    const path = join(scanDir, sliceFileName(z));
    if (writeMode === 'rename') await writeAtomically(path, bytes);
    else await writeGrowing(path, bytes, 1000 / rate / 2, signal);
    await options.onSlice?.({ z, path, lagMs });
  }

  const truthPath = join(options.out, `${scanId}.truth.tif`);
  const truthJsonPath = join(options.out, `${scanId}.truth.json`);
  await writeAtomically(
    truthPath,
    encodeTiff(
      truth.map((data) => ({ width: phantom.size, height: phantom.size, data })),
      { compression: 'deflate' },
    ),
  );
  await writeAtomically(truthJsonPath, `${JSON.stringify(summarizePhantom(phantom), null, 2)}\n`);
  await writeAtomically(join(scanDir, 'scan.done'), `${JSON.stringify({ slices: phantom.slices })}\n`);
  return {
    scanId,
    scanDir,
    truthPath,
    truthJsonPath,
    slices: phantom.slices,
    elapsedMs: performance.now() - started,
    maxLagMs,
  };
}

/** `slice_00042.tif`: five digits, so names sort in z order up to 100 000 slices. */
export function sliceFileName(z: number): string {
  return `slice_${String(z).padStart(5, '0')}.tif`;
}

/**
 * The scan folder appears with its `scan.json` already inside, as a scanner that stages a scan
 * does: built under a dot-name (watchers ignore it) and renamed into place, so a watcher never
 * sees the folder without its metadata, however long this process stalls in between. A folder
 * already there (empty) gets its `scan.json` written atomically instead.
 */
async function createScanDir(out: string, scanDir: string, scanJson: string): Promise<void> {
  if (!(await exists(scanDir))) {
    const staged = join(out, `.${basename(scanDir)}.partial-${process.pid}`);
    try {
      await mkdir(out, { recursive: true });
      await mkdir(staged);
      await writeFile(join(staged, 'scan.json'), scanJson);
      await rename(staged, scanDir);
      return;
    } catch (cause) {
      await rm(staged, { recursive: true, force: true }).catch(() => {});
      // Someone else made it in between: go on as with a folder that was there.
      if (!(await exists(scanDir)))
        throw new OutputError(
          `--out ${out}: cannot create scan folder ${scanDir}`,
          { path: scanDir, option: '--out' },
          { cause },
        );
    }
  }
  await prepareScanDir(out, scanDir);
  await writeAtomically(join(scanDir, 'scan.json'), scanJson);
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}

async function prepareScanDir(out: string, scanDir: string): Promise<void> {
  try {
    await mkdir(scanDir, { recursive: true });
  } catch (cause) {
    throw new OutputError(
      `--out ${out}: cannot create scan folder ${scanDir}`,
      { path: scanDir, option: '--out' },
      { cause },
    );
  }
  const existing = await readdir(scanDir);
  if (existing.length > 0)
    throw new OutputError(
      `--out ${out}: scan folder ${scanDir} already holds ${existing.length} file(s); choose another --scan-id or an empty --out`,
      { path: scanDir, option: '--out' },
    );
}

async function writeAtomically(path: string, data: Uint8Array | string): Promise<void> {
  // A dot-prefixed temporary name in the same folder: watchers ignore it and rename is atomic.
  const dir = join(path, '..');
  const tmp = join(dir, `.${path.slice(dir.length + 1)}.partial`);
  try {
    await writeFile(tmp, data);
    await rename(tmp, path);
  } catch (cause) {
    throw new OutputError(`cannot write ${path}`, { path }, { cause });
  }
}

async function writeGrowing(
  path: string,
  data: Uint8Array,
  spreadMs: number,
  signal?: AbortSignal,
): Promise<void> {
  // Like a scanner that streams a slice straight into its final name: the file exists, half
  // written, for a while. Four pieces spread over half the slice interval.
  const pieces = 4;
  const step = Math.ceil(data.length / pieces);
  let handle: Awaited<ReturnType<typeof open>> | undefined;
  try {
    handle = await open(path, 'w');
    for (let offset = 0; offset < data.length; offset += step) {
      await handle.write(data, offset, Math.min(step, data.length - offset), offset);
      await handle.sync();
      if (offset + step < data.length && spreadMs > 0) await sleep(spreadMs / pieces, undefined, { signal });
    }
  } catch (cause) {
    if (signal?.aborted) throw cause;
    throw new OutputError(`cannot write ${path}`, { path }, { cause });
  } finally {
    await handle?.close();
  }
}

export type { Phantom };
