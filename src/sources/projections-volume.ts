/**
 * A DXchange file of projections (`/exchange/data` angles × rows × columns, `/exchange/theta`,
 * `/exchange/data_white`, `/exchange/data_dark`) as a volume of reconstructed slices: slice z is
 * detector row z, flat- and dark-corrected, −log, and reconstructed by filtered back-projection
 * into a columns × columns float32 image. Each slice reads only its own row of every projection
 * and field, so memory follows one row, not the scan.
 */
import { availableParallelism } from 'node:os';
import { basename, extname } from 'node:path';
import { DecodeError, describeError, UsageError } from '../errors.ts';
import type { Sinogram } from '../recon/fbp.ts';
import { findCenter } from '../recon/find-center.ts';
import { lineIntegrals, meanFrame } from '../recon/flat-dark.ts';
import type { FbpFilter } from '../recon/fourier-filter.ts';
import { startReconThreads } from '../recon/recon-threads.ts';
import type { ArchiveVolume } from './archive-volume.ts';
import type { ScanMeta } from './source-event.ts';

/** How to reconstruct: the rotation axis (found when not given) and the filter. */
export interface ReconOptions {
  center?: number;
  filter?: FbpFilter;
  /** Worker threads that reconstruct; default one per core, at most 4. */
  threads?: number;
}

/** One dataset of the file as the volume needs it: its shape and a row read across its frames. */
export interface RowReader {
  shape: readonly number[];
  /** Row `y` of every frame, frame-major (frames × columns), as float32. */
  row(y: number): Float32Array;
}

const STAGE = 'source';

/**
 * The volume over already opened datasets (`data`, `flat`, optional `dark`) and the angles in
 * degrees. Throws a DecodeError naming `path` when their shapes do not fit together.
 */
export function projectionsVolume(
  path: string,
  sets: { data: RowReader; flat: RowReader; dark?: RowReader; thetaDeg: Float64Array },
  o: { meta: ScanMeta; notes: string[]; recon: ReconOptions; close: () => void },
): ArchiveVolume {
  const bad = (reason: string) => new DecodeError(`${path}: ${reason}`, { path, stage: STAGE });
  const [angles, rows, columns] = sets.data.shape as [number, number, number];
  if (sets.thetaDeg.length !== angles)
    throw bad(`/exchange/theta has ${sets.thetaDeg.length} angles for ${angles} projections`);
  for (const [name, set] of [
    ['data_white', sets.flat],
    ['data_dark', sets.dark],
  ] as const) {
    if (set && (set.shape.length !== 3 || set.shape[1] !== rows || set.shape[2] !== columns))
      throw bad(`/exchange/${name} is ${set.shape.join('×')}; expected frames × ${rows} × ${columns}`);
  }
  const sinogram = (y: number): Sinogram => {
    const flat = meanFrame(sets.flat.row(y), sets.flat.shape[0] as number, columns);
    const dark = sets.dark
      ? meanFrame(sets.dark.row(y), sets.dark.shape[0] as number, columns)
      : new Float32Array(columns);
    return { data: lineIntegrals(sets.data.row(y), flat, dark), angles, columns, thetaDeg: sets.thetaDeg };
  };
  let center = o.recon.center;
  if (center !== undefined && !(center >= 0 && center <= columns - 1))
    throw new UsageError(`--center ${center}: the detector has columns 0 … ${columns - 1}`, {
      option: '--center',
      path,
    });
  const notes = [...o.notes];
  if (center === undefined) {
    const found = findCenter(sinogram(Math.floor(rows / 2)));
    center = found ?? Math.floor(columns / 2);
    notes.push(
      found === undefined
        ? `no two projections 180° apart: rotation axis taken as column ${center} (set it with --center)`
        : `rotation axis found at column ${found.toFixed(2)} (row ${Math.floor(rows / 2)}; override with --center)`,
    );
  }
  const filter = o.recon.filter ?? 'shepp-logan';
  notes.push(
    `projections: ${angles} angles, ${rows} rows of ${columns} columns; each row reconstructed (filtered back-projection, ${filter}) as a ${columns}×${columns} slice`,
  );
  // Slices are reconstructed on worker threads, and the next ones are started while the pipeline
  // works on this one (as many ahead as there are threads): in a replay, reconstruction of slice z + 1
  // overlaps the segmentation of slice z. A read out of order drops what was started ahead of it.
  const threads = startReconThreads(o.recon.threads ?? Math.min(4, availableParallelism()));
  const started = new Map<number, Promise<Float32Array>>();
  const start = (z: number) => {
    if (z >= rows || started.has(z)) return;
    const slice = threads.reconstruct(sinogram(z), { center: center as number, filter });
    slice.catch(() => undefined); // read(z) reports it; one dropped unread is not an error
    started.set(z, slice);
  };
  let closed = false;
  return {
    kind: 'projections',
    path,
    name: basename(path, extname(path)),
    depth: rows,
    meta: { ...o.meta, width: columns, height: columns },
    paceMs: undefined,
    missing: [],
    notes,
    async read(z, options = {}) {
      options.signal?.throwIfAborted();
      if (closed) throw bad(`cannot reconstruct slice ${z}: the file is closed`);
      if (!Number.isSafeInteger(z) || z < 0 || z >= rows)
        throw bad(`cannot reconstruct slice ${z}: z must be 0 … ${rows - 1}`);
      for (const k of started.keys()) if (k < z || k > z + threads.threads) started.delete(k);
      for (let k = z; k <= z + threads.threads; k++) start(k);
      const slice = started.get(z) as Promise<Float32Array>;
      started.delete(z);
      let data: Float32Array;
      try {
        data = await slice;
      } catch (err) {
        if (closed) throw bad(`cannot reconstruct slice ${z}: the file is closed`);
        throw bad(`cannot reconstruct slice ${z}: ${describeError(err)}`);
      }
      return { image: { width: columns, height: columns, dtype: 'float32', data } };
    },
    async close() {
      if (closed) return;
      closed = true;
      started.clear();
      await threads.close();
      o.close();
    },
  };
}
