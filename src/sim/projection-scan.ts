/**
 * The simulator as a projection scanner: each slice of the phantom, rendered without noise (blur,
 * partial volume, cupping and rings kept), is taken as the attenuation map of one detector row and
 * forward-projected (parallel beam, the same geometry the reconstruction inverts), then detected:
 * Poisson counts of a flat beam through it, plus a dark level. Written as a DXchange file
 * (`/exchange/data` angles × rows × columns, `data_white`, `data_dark`, `theta` in degrees), with
 * the truth beside it. The scanner's field of view is the circle inscribed in the slice: the sample
 * outside it is cut away (in the projections and in the truth), so no ray leaves the detector.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { encodeTiff } from '../codecs/encode-tiff.ts';
import { loadH5wasm } from '../sources/open-hdf5-volume.ts';
import { createPhantom, type PhantomOptions } from './phantom.ts';
import { renderSlice } from './render-slice.ts';
import { Rng } from './rng.ts';

export interface ProjectionScanOptions extends PhantomOptions {
  out: string;
  scanId: string;
  /** Projections over 180° (default 360). */
  angles?: number;
  /** Flat-field counts per detector pixel (default 20 000): the dose, so the noise. */
  flatCounts?: number;
}

/** Attenuation per voxel at full scale (uint16 65535), so a ray across the slice sums to a few. */
const MU_FULL_SCALE = 3;
const DARK_LEVEL = 100;
const FLAT_FRAMES = 4;
const DARK_FRAMES = 4;

/**
 * Parallel-beam line integrals of an n × n map, pixel by pixel onto the detector (linear weights):
 * the adjoint of `reconstructSlice`'s back-projection, the axis at column ⌊n/2⌋. Angle-major.
 */
export function forwardProject(map: Float32Array, n: number, thetaDeg: Float64Array): Float32Array {
  const angles = thetaDeg.length;
  const r = Math.floor(n / 2);
  const out = new Float64Array(angles * n);
  for (let a = 0; a < angles; a++) {
    const theta = ((thetaDeg[a] as number) * Math.PI) / 180;
    const cos = Math.cos(theta);
    const sin = Math.sin(theta);
    const base = a * n;
    for (let y = 0; y < n; y++) {
      const dy = y - r;
      for (let x = 0; x < n; x++) {
        const v = map[y * n + x] as number;
        if (v === 0) continue;
        const s = (x - r) * cos - dy * sin + r;
        const i = Math.floor(s);
        const f = s - i;
        if (i >= 0 && i < n) out[base + i] = (out[base + i] as number) + v * (1 - f);
        if (i + 1 >= 0 && i + 1 < n) out[base + i + 1] = (out[base + i + 1] as number) + v * f;
      }
    }
  }
  return Float32Array.from(out);
}

/** Zero outside the circle inscribed in an n × n slice (the field of view). */
function insideCircle(n: number): Uint8Array {
  const r = Math.floor(n / 2);
  const inside = new Uint8Array(n * n);
  for (let y = 0; y < n; y++)
    for (let x = 0; x < n; x++) inside[y * n + x] = (x - r) ** 2 + (y - r) ** 2 <= r * r ? 1 : 0;
  return inside;
}

/** Poisson(λ): Knuth's product for small λ, the normal approximation (rounded, ≥ 0) above 30. */
function poisson(rng: Rng, lambda: number): number {
  if (lambda > 30) return Math.max(0, Math.round(lambda + Math.sqrt(lambda) * rng.normal()));
  const limit = Math.exp(-lambda);
  let k = 0;
  let p = rng.uniform(0, 1);
  while (p > limit) {
    k++;
    p *= rng.uniform(0, 1);
  }
  return k;
}

/** Simulate a projection scan; the DXchange file, the truth TIFF (labels, cut to the field of view). */
export async function writeProjectionScan(
  o: ProjectionScanOptions,
): Promise<{ path: string; truthPath: string }> {
  const phantom = createPhantom(o);
  const n = phantom.size;
  const angles = o.angles ?? 360;
  const flatCounts = o.flatCounts ?? 20_000;
  const thetaDeg = Float64Array.from({ length: angles }, (_, a) => (a * 180) / angles);
  const inside = insideCircle(n);
  const rng = new Rng(phantom.seed, 11);
  const rows = phantom.slices;
  const data = new Float32Array(angles * rows * n);
  const truth: Uint8Array[] = [];
  for (let z = 0; z < rows; z++) {
    // The labels come from the geometry alone: the noise-free render's are the scan's.
    const { image, labels } = renderSlice(phantom, z, { noise: null });
    const map = new Float32Array(n * n);
    for (let i = 0; i < map.length; i++)
      if (inside[i]) map[i] = ((image[i] as number) / 65535) * (MU_FULL_SCALE / n);
    truth.push(labels.map((l, i) => (inside[i] ? l : 0)));
    const sino = forwardProject(map, n, thetaDeg);
    for (let a = 0; a < angles; a++)
      for (let c = 0; c < n; c++)
        data[(a * rows + z) * n + c] =
          DARK_LEVEL + poisson(rng, flatCounts * Math.exp(-(sino[a * n + c] as number)));
  }
  const field = (frames: number, level: number) =>
    Float32Array.from({ length: frames * rows * n }, () => DARK_LEVEL + poisson(rng, level));
  const h5 = await loadH5wasm();
  const path = join(o.out, `${o.scanId}.h5`);
  const file = new h5.File(path, 'w');
  try {
    file.create_group('exchange');
    file.create_dataset({ name: 'exchange/data', data, shape: [angles, rows, n] });
    file.create_dataset({
      name: 'exchange/data_white',
      data: field(FLAT_FRAMES, flatCounts),
      shape: [FLAT_FRAMES, rows, n],
      dtype: '<f',
    });
    file.create_dataset({
      name: 'exchange/data_dark',
      data: field(DARK_FRAMES, 0),
      shape: [DARK_FRAMES, rows, n],
      dtype: '<f',
    });
    file.create_dataset({ name: 'exchange/theta', data: thetaDeg, shape: [angles] });
  } finally {
    file.close();
  }
  const truthPath = join(o.out, `${o.scanId}.truth.tif`);
  await writeFile(
    truthPath,
    encodeTiff(
      truth.map((t) => ({ width: n, height: n, data: t })),
      { compression: 'deflate' },
    ),
  );
  return { path, truthPath };
}
