import type { Sinogram } from './fbp.ts';

/**
 * The rotation axis of a parallel-beam sinogram, in detector columns, from the two projections
 * closest to 180° apart: the one at θ + 180° is the one at θ mirrored about the axis, so the shift
 * that best aligns one with the other mirrored is twice the axis' offset from the middle. The best
 * shift is found by least squares over every integer shift, refined to sub-pixel by a parabola
 * through the three best. Undefined when no two projections are within `toleranceDeg` of 180°
 * apart (a scan of less than a half turn).
 */
export function findCenter(sino: Sinogram, options: { toleranceDeg?: number } = {}): number | undefined {
  const { angles, columns, data, thetaDeg } = sino;
  const tolerance = options.toleranceDeg ?? 2;
  let best: { a: number; b: number; gap: number } | undefined;
  for (let a = 0; a < angles; a++)
    for (let b = a + 1; b < angles; b++) {
      const apart = Math.abs((thetaDeg[b] as number) - (thetaDeg[a] as number));
      const gap = Math.abs((((apart % 360) + 360) % 360) - 180);
      if (gap <= tolerance && (!best || gap < best.gap)) best = { a, b, gap };
    }
  if (!best) return undefined;
  const p = data.subarray(best.a * columns, (best.a + 1) * columns);
  const q = data.subarray(best.b * columns, (best.b + 1) * columns);
  // q mirrored about an axis at column c is q(2c − x); with 2c = (columns − 1) + shift, compare
  // p(x) with q(columns − 1 + shift − x) over the columns both cover.
  const maxShift = Math.floor(columns / 2);
  const cost = (shift: number): number => {
    let sum = 0;
    let n = 0;
    for (let x = 0; x < columns; x++) {
      const m = columns - 1 + shift - x;
      if (m < 0 || m >= columns) continue;
      const d = (p[x] as number) - (q[m] as number);
      sum += d * d;
      n++;
    }
    return n >= columns / 4 ? sum / n : Number.POSITIVE_INFINITY;
  };
  let bestShift = 0;
  let bestCost = Number.POSITIVE_INFINITY;
  for (let s = -maxShift; s <= maxShift; s++) {
    const c = cost(s);
    if (c < bestCost) {
      bestCost = c;
      bestShift = s;
    }
  }
  const left = cost(bestShift - 1);
  const right = cost(bestShift + 1);
  const curve = left - 2 * bestCost + right;
  const refine = Number.isFinite(curve) && curve > 0 ? (0.5 * (left - right)) / curve : 0;
  return (columns - 1 + bestShift + refine) / 2;
}
