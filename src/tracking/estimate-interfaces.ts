import { ConfigError } from '../errors.ts';
import { checkImageSize } from '../slices/tile-grid.ts';

/** Where the two Li|electrolyte interfaces of a slice lie, column by column. */
export interface InterfaceEstimate {
  /** Per column x, the y (pixel centres at integers, sub-pixel) where the top Li band ends. */
  readonly top: Float32Array;
  /** Per column x, the y where the bottom Li band begins. */
  readonly bottom: Float32Array;
  /** Typical intensity of the Li electrodes (dark). */
  readonly liLevel: number;
  /** Typical intensity of the polymer electrolyte (bright). */
  readonly electrolyteLevel: number;
}

export interface EstimateInterfacesOptions {
  /** Columns whose row-by-row median forms one profile (default: width/16, clamped to 8–64). */
  readonly columnWindow?: number;
  /** Least electrolyte-minus-Li contrast that counts as a two-band cell (default 0.1). */
  readonly minContrast?: number;
  /**
   * Most an interface may stray from a straight line, as a fraction of the electrolyte's thickness
   * (default 0.1): electrodes are flat bands, a round object's outline is not.
   */
  readonly maxRoughness?: number;
}

/** Most columns of a window that one row's median is taken over (evenly spaced). */
const MEDIAN_SAMPLES = 16;
/** Fraction of column windows that must show both interfaces. */
const MIN_VALID_FRACTION = 0.75;
/** Fraction of column windows that must agree with their neighbours. */
const MIN_KEPT_FRACTION = 0.5;
/**
 * A window's interface further than this from its neighbours' median is an outlier: OUTLIER_PX, or
 * OUTLIER_FRACTION of the electrolyte's thickness where that is larger.
 */
const OUTLIER_PX = 3;
const OUTLIER_FRACTION = 0.02;

function checkOption(name: string, value: number, ok: boolean, want: string): void {
  if (!ok) {
    throw new ConfigError(`interface option "${name}" must be ${want}, got ${value}`, {
      option: name,
      stage: 'interfaces',
    });
  }
}

/** Partially sort `a[0..n)` so that `a[k]` holds the k-th smallest value (Hoare's selection). */
function select(a: Float32Array, n: number, k: number): number {
  let lo = 0;
  let hi = n - 1;
  while (lo < hi) {
    const pivot = a[(lo + hi) >> 1]!;
    let i = lo;
    let j = hi;
    while (i <= j) {
      while (a[i]! < pivot) i++;
      while (a[j]! > pivot) j--;
      if (i <= j) {
        const t = a[i]!;
        a[i] = a[j]!;
        a[j] = t;
        i++;
        j--;
      }
    }
    if (k <= j) hi = j;
    else if (k >= i) lo = i;
    else break;
  }
  return a[k]!;
}

function median(values: ArrayLike<number>, scratch: Float32Array): number {
  const n = values.length;
  for (let i = 0; i < n; i++) scratch[i] = values[i]!;
  return select(scratch, n, n >> 1);
}

/** Otsu's threshold of a small set of values: the split that maximizes between-class variance. */
function otsu(values: Float32Array): number {
  const sorted = Float64Array.from(values).sort();
  const n = sorted.length;
  let total = 0;
  for (let i = 0; i < n; i++) total += sorted[i]!;
  let below = 0;
  let best = -1;
  let threshold = sorted[0]!;
  for (let i = 1; i < n; i++) {
    below += sorted[i - 1]!;
    if (sorted[i] === sorted[i - 1]) continue;
    const m0 = below / i;
    const m1 = (total - below) / (n - i);
    const score = i * (n - i) * (m1 - m0) * (m1 - m0);
    if (score > best) {
      best = score;
      threshold = (sorted[i - 1]! + sorted[i]!) / 2;
    }
  }
  return threshold;
}

/** Replace NaNs by linear interpolation between the nearest valid neighbours (flat at the ends). */
function fillGaps(values: Float64Array): void {
  const n = values.length;
  let last = -1;
  for (let i = 0; i <= n; i++) {
    if (i < n && Number.isNaN(values[i]!)) continue;
    if (i - last > 1) {
      const a = last >= 0 ? values[last]! : values[i]!;
      const b = i < n ? values[i]! : a;
      for (let k = last + 1; k < i; k++) values[k] = last < 0 ? b : a + ((b - a) * (k - last)) / (i - last);
    }
    last = i;
  }
}

/** Running median over `radius` neighbours each side (window shrinks at the ends). */
function medianFilter(values: Float64Array, radius: number): Float64Array {
  const n = values.length;
  const out = new Float64Array(n);
  const scratch = new Float32Array(2 * radius + 1);
  for (let i = 0; i < n; i++) {
    const lo = Math.max(0, i - radius);
    const hi = Math.min(n - 1, i + radius);
    out[i] = median(values.subarray(lo, hi + 1), scratch);
  }
  return out;
}

/** Largest distance from the least-squares line through (xs, ys). */
function lineResidual(xs: Float64Array, ys: Float64Array): number {
  const n = xs.length;
  let sx = 0;
  let sy = 0;
  for (let i = 0; i < n; i++) {
    sx += xs[i]!;
    sy += ys[i]!;
  }
  const mx = sx / n;
  const my = sy / n;
  let sxx = 0;
  let sxy = 0;
  for (let i = 0; i < n; i++) {
    sxx += (xs[i]! - mx) ** 2;
    sxy += (xs[i]! - mx) * (ys[i]! - my);
  }
  const slope = sxx > 0 ? sxy / sxx : 0;
  let worst = 0;
  for (let i = 0; i < n; i++) worst = Math.max(worst, Math.abs(ys[i]! - (my + slope * (xs[i]! - mx))));
  return worst;
}

/**
 * Estimate the top and bottom Li|electrolyte interfaces of a normalized slice (Li electrodes dark
 * bands at top and bottom, electrolyte a bright band between). Each window of columns is reduced to
 * a row profile of medians, which ignores dark dendrites narrower than half the window; the
 * interfaces are where that profile, followed from the middle of the electrolyte outward, first drops
 * below the level midway between Li and electrolyte. Windows disagreeing with their neighbours (a
 * wide dendrite, a bubble) are voted out by a median across windows. Returns null when the slice shows
 * no such two-band structure.
 */
export function estimateInterfaces(
  slice: Float32Array,
  width: number,
  height: number,
  options: EstimateInterfacesOptions = {},
): InterfaceEstimate | null {
  checkImageSize(width, height);
  if (slice.length !== width * height) {
    throw new RangeError(`slice has ${slice.length} values, expected ${width}x${height} = ${width * height}`);
  }
  const window = options.columnWindow ?? Math.min(64, Math.max(8, Math.round(width / 16)));
  const minContrast = options.minContrast ?? 0.1;
  const maxRoughness = options.maxRoughness ?? 0.1;
  checkOption('columnWindow', window, Number.isInteger(window) && window >= 1, 'an integer >= 1');
  checkOption('minContrast', minContrast, minContrast > 0, 'a number > 0');
  checkOption('maxRoughness', maxRoughness, maxRoughness > 0, 'a number > 0');
  if (height < 5) return null;

  // Near-equal windows of columns; window k covers [starts[k], starts[k + 1]).
  const windows = Math.max(1, Math.floor(width / Math.min(window, width)));
  const starts = new Int32Array(windows + 1);
  for (let k = 0; k <= windows; k++) starts[k] = Math.floor((k * width) / windows);

  // profiles[k * height + y]: median of row y over window k's columns.
  const profiles = new Float32Array(windows * height);
  const scratch = new Float32Array(Math.max(windows, Math.ceil(width / windows) + 1));
  // The hot loop (every row of every slice): each window's median is taken over at most
  // MEDIAN_SAMPLES evenly spaced columns, which ignores a dendrite narrower than half the window just
  // as all of its columns would, at a fixed cost per row whatever the image width. The samples are
  // copied into the scratch and selected in place: no subarray views, one array type per access.
  for (let y = 0; y < height; y++) {
    const row = y * width;
    for (let k = 0; k < windows; k++) {
      const from = row + starts[k]!;
      const span = starts[k + 1]! - starts[k]!;
      const step = Math.max(1, Math.floor(span / MEDIAN_SAMPLES));
      let n = 0;
      for (let i = 0; i < span; i += step) scratch[n++] = slice[from + i]!;
      profiles[k * height + y] = select(scratch, n, n >> 1);
    }
  }
  const global = new Float32Array(height);
  const across = new Float32Array(windows);
  for (let y = 0; y < height; y++) {
    for (let k = 0; k < windows; k++) across[k] = profiles[k * height + y]!;
    global[y] = median(across, scratch);
  }

  // Split rows into dark and bright; the levels are each class's median.
  const split = otsu(global);
  const dark: number[] = [];
  const bright: number[] = [];
  for (let y = 0; y < height; y++) (global[y]! > split ? bright : dark).push(global[y]!);
  if (dark.length === 0 || bright.length === 0) return null;
  const levelScratch = new Float32Array(height);
  const liLevel = median(dark, levelScratch);
  const electrolyteLevel = median(bright, levelScratch);
  if (!(electrolyteLevel - liLevel >= minContrast)) return null;

  // The electrolyte is the longest run of bright rows, with dark bands above and below it.
  let runStart = -1;
  let bandTop = 0;
  let bandBottom = -1;
  for (let y = 0; y <= height; y++) {
    if (y < height && global[y]! > split) {
      if (runStart < 0) runStart = y;
    } else if (runStart >= 0) {
      if (y - 1 - runStart > bandBottom - bandTop) {
        bandTop = runStart;
        bandBottom = y - 1;
      }
      runStart = -1;
    }
  }
  const minBand = Math.max(2, Math.round(height * 0.02));
  let darkAbove = 0;
  let darkBelow = 0;
  for (let y = 0; y < bandTop; y++) if (global[y]! <= split) darkAbove++;
  for (let y = bandBottom + 1; y < height; y++) if (global[y]! <= split) darkBelow++;
  if (darkAbove < minBand || darkBelow < minBand) return null;

  const threshold = (liLevel + electrolyteLevel) / 2;
  const { tops, bottoms, valid } = crossings(profiles, windows, height, bandTop, bandBottom, threshold);
  if (valid < MIN_VALID_FRACTION * windows) return null;

  const centres = new Float64Array(windows);
  for (let k = 0; k < windows; k++) centres[k] = (starts[k]! + starts[k + 1]! - 1) / 2;
  fillGaps(tops);
  fillGaps(bottoms);
  // A window whose crossing strays from the running median of its neighbours saw a dendrite or a
  // bubble wider than half the window, not the interface: drop it and bridge the gap. Only the
  // outliers are replaced, so a curved interface keeps its shape.
  const radius = windows >= 5 ? 2 : windows >= 3 ? 1 : 0;
  const topLine = medianFilter(tops, radius);
  const bottomLine = medianFilter(bottoms, radius);
  const thickness = median(
    bottomLine.map((b, k) => b - topLine[k]!),
    new Float32Array(windows),
  );
  const outlier = Math.max(OUTLIER_PX, OUTLIER_FRACTION * thickness);
  let kept = 0;
  for (let k = 0; k < windows; k++) {
    const topOff = Math.abs(tops[k]! - topLine[k]!) > outlier;
    const bottomOff = Math.abs(bottoms[k]! - bottomLine[k]!) > outlier;
    if (topOff) tops[k] = Number.NaN;
    if (bottomOff) bottoms[k] = Number.NaN;
    if (!topOff && !bottomOff) kept++;
  }
  // Mostly outliers means no clean pair of bands, whatever the row profile suggested.
  if (kept < MIN_KEPT_FRACTION * windows) return null;
  fillGaps(tops);
  fillGaps(bottoms);

  const tolerance = Math.max(2, maxRoughness * thickness);
  if (lineResidual(centres, tops) > tolerance || lineResidual(centres, bottoms) > tolerance) return null;

  return {
    top: interpolate(centres, tops, width),
    bottom: interpolate(centres, bottoms, width),
    liLevel,
    electrolyteLevel,
  };
}

/**
 * Per window, where its row profile, followed from inside the electrolyte band up and down, first
 * drops below `threshold` (sub-row, interpolated); NaN where it never does or no row of the band is
 * bright in this window.
 */
function crossings(
  profiles: Float32Array,
  windows: number,
  height: number,
  bandTop: number,
  bandBottom: number,
  threshold: number,
): { tops: Float64Array; bottoms: Float64Array; valid: number } {
  const centre = (bandTop + bandBottom) >> 1;
  const tops = new Float64Array(windows);
  const bottoms = new Float64Array(windows);
  let valid = 0;
  for (let k = 0; k < windows; k++) {
    const base = k * height;
    tops[k] = Number.NaN;
    bottoms[k] = Number.NaN;
    // Start inside the electrolyte: at the band's centre, or the nearest bright row of the band.
    let start = -1;
    for (let d = 0; d <= bandBottom - bandTop && start < 0; d++) {
      if (centre - d >= bandTop && profiles[base + centre - d]! >= threshold) start = centre - d;
      else if (centre + d <= bandBottom && profiles[base + centre + d]! >= threshold) start = centre + d;
    }
    if (start < 0) continue;
    let top = Number.NaN;
    for (let y = start - 1; y >= 0; y--) {
      const a = profiles[base + y]!;
      if (a < threshold) {
        const b = profiles[base + y + 1]!;
        top = y + (threshold - a) / (b - a);
        break;
      }
    }
    let bottom = Number.NaN;
    for (let y = start + 1; y < height; y++) {
      const a = profiles[base + y]!;
      if (a < threshold) {
        const b = profiles[base + y - 1]!;
        bottom = y - (threshold - a) / (b - a);
        break;
      }
    }
    if (Number.isNaN(top) || Number.isNaN(bottom)) continue;
    tops[k] = top;
    bottoms[k] = bottom;
    valid++;
  }
  return { tops, bottoms, valid };
}

/** Per column, linear interpolation between window centres, extended linearly to the image edges. */
function interpolate(centres: Float64Array, values: Float64Array, width: number): Float32Array {
  const out = new Float32Array(width);
  const n = centres.length;
  if (n === 1) return out.fill(values[0]!);
  let k = 0;
  for (let x = 0; x < width; x++) {
    while (k < n - 2 && centres[k + 1]! <= x) k++;
    const c0 = centres[k]!;
    const c1 = centres[k + 1]!;
    out[x] = values[k]! + ((values[k + 1]! - values[k]!) * (x - c0)) / (c1 - c0);
  }
  return out;
}
