import FFT from 'fft.js';
import { type FbpFilter, fourierFilter } from './fourier-filter.ts';

/** A parallel-beam sinogram of one detector row: `angles` projections of `columns` samples, angle-major. */
export interface Sinogram {
  /** `angles × columns` line integrals (−log of the flat- and dark-corrected transmission). */
  data: Float32Array;
  angles: number;
  columns: number;
  /** Each projection's angle, in degrees. */
  thetaDeg: Float64Array;
}

export interface FbpOptions {
  /** The rotation axis, in detector columns (0 = the first column's centre); default ⌊columns/2⌋. */
  center?: number;
  filter?: FbpFilter;
}

/**
 * FFT length for filtering `columns` samples: a power of two ≥ twice the circle's diagonal
 * (⌈√2·columns⌉), at least 64, as scikit-image pads; the zero padding keeps the filter's
 * circular wrap-around off the samples the back-projection reads.
 */
export function paddedLength(columns: number): number {
  const diagonal = Math.ceil(Math.SQRT2 * columns);
  return Math.max(64, 2 ** Math.ceil(Math.log2(2 * diagonal)));
}

/**
 * Filtered back-projection of one slice, parallel beam: a `columns × columns` image (row-major,
 * y down), pixels outside the inscribed circle 0, as scikit-image's `iradon(…, circle=True)` makes
 * it: each projection is filtered with zero padding to `paddedLength`, then smeared back along its
 * angle with linear interpolation, t = (x − r)·cos θ − (y − r)·sin θ from the rotation axis, and
 * the sum scaled by π / (2 · angles).
 */
export function reconstructSlice(sino: Sinogram, options: FbpOptions = {}): Float32Array {
  const { angles, columns } = sino;
  if (sino.data.length !== angles * columns)
    throw new RangeError(`sinogram has ${sino.data.length} values, expected ${angles}×${columns}`);
  if (sino.thetaDeg.length !== angles)
    throw new RangeError(`${sino.thetaDeg.length} angles for ${angles} projections`);
  const center = options.center ?? Math.floor(columns / 2);
  if (!Number.isFinite(center)) throw new RangeError(`center must be a number, got ${center}`);
  const filtered = filterProjections(sino, options.filter ?? 'shepp-logan');
  return backProject(filtered, sino, center);
}

/**
 * Each projection convolved with the filter (through the FFT), kept over the whole padded length:
 * the filter spreads a projection past its ends, and the back-projection of pixels near the circle's
 * edge reads there. Row a of the result starts at the sample for column −`margin(columns)`.
 */
function filterProjections(sino: Sinogram, filter: FbpFilter): { rows: Float64Array; size: number } {
  const { angles, columns, data } = sino;
  const size = paddedLength(columns);
  const response = fourierFilter(size, filter);
  const fft = new FFT(size);
  const input = new Float64Array(size);
  const spectrum = fft.createComplexArray();
  const product = fft.createComplexArray();
  const back = fft.createComplexArray();
  const rows = new Float64Array(angles * size);
  const offset = margin(columns);
  for (let a = 0; a < angles; a++) {
    input.fill(0);
    for (let c = 0; c < columns; c++) input[offset + c] = data[a * columns + c] as number;
    fft.realTransform(spectrum, input);
    fft.completeSpectrum(spectrum);
    for (let k = 0; k < size; k++) {
      const h = response[k] as number;
      product[2 * k] = (spectrum[2 * k] as number) * h;
      product[2 * k + 1] = (spectrum[2 * k + 1] as number) * h;
    }
    fft.inverseTransform(back, product);
    for (let i = 0; i < size; i++) rows[a * size + i] = back[2 * i] as number;
  }
  return { rows, size };
}

/** Where a projection starts in its padded row: room for the filter's spread on the left. */
function margin(columns: number): number {
  return Math.floor(columns / 2) + 1;
}

function backProject(
  filtered: { rows: Float64Array; size: number },
  sino: Sinogram,
  center: number,
): Float32Array {
  const { angles, columns, thetaDeg } = sino;
  const { rows, size } = filtered;
  const n = columns;
  const radius = Math.floor(n / 2);
  const out = new Float64Array(n * n);
  const offset = margin(columns);
  for (let a = 0; a < angles; a++) {
    const theta = ((thetaDeg[a] as number) * Math.PI) / 180;
    const cos = Math.cos(theta);
    const sin = Math.sin(theta);
    const base = a * size;
    for (let y = 0; y < n; y++) {
      const dy = y - radius;
      // Sample position in the padded row for x = 0; it moves by cos θ per pixel along the row.
      let s = -radius * cos - dy * sin + center + offset;
      const row = y * n;
      for (let x = 0; x < n; x++, s += cos) {
        const i = Math.floor(s);
        if (i < 0 || i + 1 >= size) continue;
        const f = s - i;
        out[row + x] =
          (out[row + x] as number) +
          (rows[base + i] as number) * (1 - f) +
          (rows[base + i + 1] as number) * f;
      }
    }
  }
  const scale = Math.PI / (2 * angles);
  const image = new Float32Array(n * n);
  const r2 = radius * radius;
  for (let y = 0; y < n; y++)
    for (let x = 0; x < n; x++) {
      const dx = x - radius;
      const dy = y - radius;
      if (dx * dx + dy * dy <= r2) image[y * n + x] = (out[y * n + x] as number) * scale;
    }
  return image;
}
