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
  if (!(Number.isFinite(center) && center >= 0 && center <= columns - 1))
    throw new RangeError(`center must be a detector column from 0 to ${columns - 1}, got ${center}`);
  const filtered = filterProjections(sino, options.filter ?? 'shepp-logan');
  return backProject(filtered, sino, center);
}

/**
 * Each projection convolved with the filter (through the FFT), kept over the whole padded length:
 * the filter spreads a projection past its ends, and the back-projection of pixels near the circle's
 * edge reads there. Row a of the result starts at the sample for column −`margin(columns)`.
 */
function filterProjections(sino: Sinogram, filter: FbpFilter): { rows: Float32Array; size: number } {
  const { angles, columns, data } = sino;
  const size = paddedLength(columns);
  const response = fourierFilter(size, filter);
  const fft = new FFT(size);
  const input = new Float64Array(size);
  const spectrum = fft.createComplexArray();
  const product = fft.createComplexArray();
  const back = fft.createComplexArray();
  const rows = new Float32Array(angles * size);
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
  filtered: { rows: Float32Array; size: number },
  sino: Sinogram,
  center: number,
): Float32Array {
  const { angles, columns, thetaDeg } = sino;
  const { rows, size } = filtered;
  const n = columns;
  const radius = Math.floor(n / 2);
  const image = new Float32Array(n * n);
  const origin = center + margin(columns);
  const cos = new Float64Array(angles);
  const sin = new Float64Array(angles);
  for (let a = 0; a < angles; a++) {
    const theta = ((thetaDeg[a] as number) * Math.PI) / 180;
    cos[a] = Math.cos(theta);
    sin[a] = Math.sin(theta);
  }
  // Only the pixels inside the circle (the rest stay 0); for them every sample position lies within
  // the padded row (|t| ≤ radius, and the row has a margin on both sides), so no bounds check. Each
  // row of the image is summed over all angles before the next, four angles at a time: one row of
  // accumulators stays in cache, and each is read and written once per four angles (1.6× faster
  // than one at a time here). The interpolation is exact linear, as scikit-image's.
  const sum = new Float64Array(n);
  const scale = Math.PI / (2 * angles);
  for (let y = 0; y < n; y++) {
    const dy = y - radius;
    if (dy * dy > radius * radius) continue;
    const half = Math.floor(Math.sqrt(radius * radius - dy * dy));
    const x0 = Math.max(0, radius - half);
    const x1 = Math.min(n - 1, radius + half);
    const dx = x0 - radius;
    sum.fill(0);
    let a = 0;
    for (; a + 3 < angles; a += 4) {
      const c0 = cos[a] as number;
      const c1 = cos[a + 1] as number;
      const c2 = cos[a + 2] as number;
      const c3 = cos[a + 3] as number;
      let s0 = dx * c0 - dy * (sin[a] as number) + origin + a * size;
      let s1 = dx * c1 - dy * (sin[a + 1] as number) + origin + (a + 1) * size;
      let s2 = dx * c2 - dy * (sin[a + 2] as number) + origin + (a + 2) * size;
      let s3 = dx * c3 - dy * (sin[a + 3] as number) + origin + (a + 3) * size;
      for (let x = x0; x <= x1; x++) {
        const i0 = s0 | 0;
        const i1 = s1 | 0;
        const i2 = s2 | 0;
        const i3 = s3 | 0;
        const l0 = rows[i0] as number;
        const l1 = rows[i1] as number;
        const l2 = rows[i2] as number;
        const l3 = rows[i3] as number;
        sum[x] =
          (sum[x] as number) +
          (l0 + ((rows[i0 + 1] as number) - l0) * (s0 - i0)) +
          (l1 + ((rows[i1 + 1] as number) - l1) * (s1 - i1)) +
          (l2 + ((rows[i2 + 1] as number) - l2) * (s2 - i2)) +
          (l3 + ((rows[i3 + 1] as number) - l3) * (s3 - i3));
        s0 += c0;
        s1 += c1;
        s2 += c2;
        s3 += c3;
      }
    }
    for (; a < angles; a++) {
      const c = cos[a] as number;
      let s = dx * c - dy * (sin[a] as number) + origin + a * size;
      for (let x = x0; x <= x1; x++, s += c) {
        const i = s | 0;
        const lo = rows[i] as number;
        sum[x] = (sum[x] as number) + lo + ((rows[i + 1] as number) - lo) * (s - i);
      }
    }
    const row = y * n;
    for (let x = x0; x <= x1; x++) image[row + x] = (sum[x] as number) * scale;
  }
  return image;
}
