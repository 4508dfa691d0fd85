import { ConfigError } from '../errors.ts';

/** How a model expects its input scaled; stored in every model card. */
export interface Normalization {
  /**
   * `slice-percentile`: x' = (x − P_low) / (P_high − P_low) with percentiles over the whole slice.
   * Per-slice scaling cancels the scanner's slow intensity drift along z and differences in gain
   * between scanners, which a fixed scale would pass straight to the model.
   */
  method: 'slice-percentile';
  low: number;
  high: number;
}

/** The normalization every shipped model was trained with. */
export const DEFAULT_NORMALIZATION: Readonly<Normalization> = Object.freeze({
  method: 'slice-percentile',
  low: 1,
  high: 99,
});

type Pixels =
  | Uint8Array
  | Uint16Array
  | Int8Array
  | Int16Array
  | Uint32Array
  | Int32Array
  | Float32Array
  | Float64Array;

/** The values at two percentiles of a slice (exact for 8/16-bit data, from a sorted copy otherwise). */
export function percentileRange(data: Pixels, low: number, high: number): [number, number] {
  if (data.length === 0) throw new RangeError('percentiles of an empty slice');
  if (data instanceof Uint8Array || data instanceof Uint16Array) {
    // A histogram is O(n) and exact for integer data; sorting 1M pixels per slice is not free. Its
    // 256 KiB of bins are reused (and cleared) rather than allocated for every slice.
    const bins = data instanceof Uint8Array ? HISTOGRAM.subarray(0, 256) : HISTOGRAM;
    try {
      for (let i = 0; i < data.length; i++) bins[data[i] as number] = (bins[data[i] as number] as number) + 1;
      return [fromHistogram(bins, data.length, low), fromHistogram(bins, data.length, high)];
    } finally {
      bins.fill(0);
    }
  }
  const sorted = Float64Array.from(data)
    .filter((v) => Number.isFinite(v))
    .sort();
  if (sorted.length === 0) return [0, 0];
  const at = (p: number) =>
    sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * (sorted.length - 1)))] as number;
  return [at(low), at(high)];
}

/** Bins for 16-bit slices; one thread runs one `percentileRange` at a time. */
const HISTOGRAM = new Uint32Array(65536);

function fromHistogram(bins: Uint32Array, count: number, p: number): number {
  const rank = Math.floor((p / 100) * (count - 1));
  let seen = 0;
  for (let v = 0; v < bins.length; v++) {
    seen += bins[v] as number;
    if (seen > rank) return v;
  }
  return bins.length - 1;
}

/** Scale a slice as the model card says; non-finite pixels become 0. */
export function normalizeSlice(
  data: Pixels,
  normalization: Normalization = DEFAULT_NORMALIZATION,
): Float32Array {
  const [lo, hi] = normalizationRange(data, normalization);
  return scaleToRange(data, lo, hi);
}

/** The two pixel values a slice's normalization maps to 0 and 1. */
export function normalizationRange(data: Pixels, normalization: Normalization): [number, number] {
  if (normalization.method !== 'slice-percentile')
    throw new ConfigError(`unknown normalization method "${String(normalization.method)}"`, {
      option: 'normalization.method',
    });
  return percentileRange(data, normalization.low, normalization.high);
}

/**
 * (x − lo) / (hi − lo) for every pixel (scale 1 when hi ≤ lo); non-finite pixels become 0. Written
 * into `out` at `offset` when given, so several planes can share one buffer.
 */
export function scaleToRange(
  data: Pixels,
  lo: number,
  hi: number,
  out: Float32Array = new Float32Array(data.length),
  offset = 0,
): Float32Array {
  const scale = hi > lo ? 1 / (hi - lo) : 1;
  // Integer pixels are always finite: the common slice (uint16) takes the loop without the check.
  if (data instanceof Uint16Array || data instanceof Uint8Array) {
    for (let i = 0; i < data.length; i++) out[offset + i] = ((data[i] as number) - lo) * scale;
    return out;
  }
  for (let i = 0; i < data.length; i++) {
    const v = ((data[i] as number) - lo) * scale;
    out[offset + i] = Number.isFinite(v) ? v : 0;
  }
  return out;
}
