/**
 * How far could a perfect per-voxel classifier get on the simulator's data? Prints, for the held-out
 * scans of the model table:
 *  - the noise-free image (the expected image: partial volume and blur, no noise), classified by the
 *    best intensity band inside the electrolyte (the interfaces given, as an oracle): what blur and
 *    partial volume alone allow;
 *  - the same on two independent noise realizations of each scan (the scan's own and another), and
 *    how well the two masks agree: what one voxel's intensity can tell through the noise;
 *  - per habit, the share of truth voxels that band finds, and how many noise standard deviations
 *    separate a needle voxel from the electrolyte.
 * A model sees context (neighbouring voxels, slices), so it can beat a per-voxel band; the label's
 * own definition (half of a voxel's sub-samples) bounds every model.
 *
 * Usage: node --import tsx models/training/ceiling.ts [--seed 900000] [--scans 3] [--size 256] [--slices 64]
 */
import { parseArgs } from 'node:util';
import { SegmentationMetrics } from '../../src/eval/segmentation-metrics.ts';
import type { Morphology } from '../../src/sim/grow-dendrite.ts';
import { createPhantom, type Phantom } from '../../src/sim/phantom.ts';
import { dendriteOwners, LABEL, renderSlice } from '../../src/sim/render-slice.ts';

const { values } = parseArgs({
  options: {
    seed: { type: 'string', default: '900000' },
    scans: { type: 'string', default: '3' },
    size: { type: 'string', default: '256' },
    slices: { type: 'string', default: '64' },
  },
});
const seeds = Array.from({ length: Number(values.scans) }, (_, i) => Number(values.seed) + i);
const size = Number(values.size);
const slices = Number(values.slices);
const BINS = 4096;
const REALIZATIONS = [null, 0, 1] as const;
type Realization = (typeof REALIZATIONS)[number];
const NAME: Record<string, string> = { null: 'noise-free', 0: 'noisy (the scan)', 1: 'noisy (another realization)' };

/** Each voxel of slice z inside the electrolyte (between the interfaces), where a dendrite voxel can be. */
function inElectrolyte(p: Phantom, z: number, i: number): boolean {
  const x = i % p.size;
  const y = (i - x) / p.size;
  return y > (p.top[z * p.size + x] as number) && y < (p.bottom[z * p.size + x] as number);
}

function* scanSlices() {
  for (const seed of seeds) {
    const phantom = createPhantom({ seed, size, slices });
    for (let z = 0; z < slices; z++) {
      const images = REALIZATIONS.map((noise) => renderSlice(phantom, z, { noise }));
      const labels = (images[0] as ReturnType<typeof renderSlice>).labels;
      yield { phantom, z, labels, images: images.map((r) => r.image) };
    }
  }
}

// Pass 1: intensity histograms of dendrite and other voxels in the electrolyte, per realization.
const hist = REALIZATIONS.map(() => ({ fg: new Float64Array(BINS), bg: new Float64Array(BINS) }));
let maxValue = 1;
for (const s of scanSlices()) for (const im of s.images) for (const v of im) if (v > maxValue) maxValue = v;
const bin = (v: number) => Math.min(BINS - 1, Math.floor((v / (maxValue + 1)) * BINS));
let residual = 0;
let residualN = 0;
for (const s of scanSlices()) {
  const [clean, noisy] = s.images as [Uint16Array, Uint16Array, Uint16Array];
  for (let i = 0; i < s.labels.length; i++) {
    if (!inElectrolyte(s.phantom, s.z, i)) continue;
    const fg = s.labels[i] === LABEL.dendrite;
    s.images.forEach((im, k) => {
      const h = hist[k] as { fg: Float64Array; bg: Float64Array };
      const counts = fg ? h.fg : h.bg;
      const b = bin(im[i] as number);
      counts[b] = (counts[b] as number) + 1;
    });
    if (!fg && s.labels[i] === LABEL.background) {
      const d = (noisy[i] as number) - (clean[i] as number);
      residual += d * d;
      residualN++;
    }
  }
}
const noiseSd = Math.sqrt(residual / residualN);

/** The intensity band [lo, hi) of bins that maximizes Dice against the truth. */
function bestBand(h: { fg: Float64Array; bg: Float64Array }): { lo: number; hi: number; dice: number } {
  const cf = new Float64Array(BINS + 1);
  const cb = new Float64Array(BINS + 1);
  for (let b = 0; b < BINS; b++) {
    cf[b + 1] = (cf[b] as number) + (h.fg[b] as number);
    cb[b + 1] = (cb[b] as number) + (h.bg[b] as number);
  }
  const totalFg = cf[BINS] as number;
  let best = { lo: 0, hi: 0, dice: 0 };
  for (let lo = 0; lo < BINS; lo += 4) {
    for (let hi = lo + 4; hi <= BINS; hi += 4) {
      const tp = (cf[hi] as number) - (cf[lo] as number);
      const fp = (cb[hi] as number) - (cb[lo] as number);
      const dice = (2 * tp) / (2 * tp + fp + (totalFg - tp));
      if (dice > best.dice) best = { lo, hi, dice };
    }
  }
  return best;
}
const bands = hist.map(bestBand);

// Pass 2: masks from the bands, scored as the models are, per habit, and the two noisy masks' agreement.
const metrics = REALIZATIONS.map(() => new SegmentationMetrics(128));
const habitHits = REALIZATIONS.map(() => new Map<Morphology, number>());
const habitTotal = new Map<Morphology, number>();
const needleContrast: number[] = [];
let both = 0;
let either = 0;
for (const s of scanSlices()) {
  const n = s.labels.length;
  const masks = s.images.map((im, k) => {
    const band = bands[k] as { lo: number; hi: number };
    const m = new Uint8Array(n);
    for (let i = 0; i < n; i++) {
      if (!inElectrolyte(s.phantom, s.z, i)) continue;
      const b = bin(im[i] as number);
      if (b >= band.lo && b < band.hi) m[i] = 1;
    }
    return m;
  });
  masks.forEach((m, k) => metrics[k]?.addSlice(m, s.labels, size, size));
  const [, m0, m1] = masks as [Uint8Array, Uint8Array, Uint8Array];
  for (let i = 0; i < n; i++) {
    both += (m0[i] as number) & (m1[i] as number);
    either += (m0[i] as number) + (m1[i] as number);
  }
  const owners = dendriteOwners(s.phantom, s.z, s.labels);
  // The electrolyte's expected level in this slice: the median of its clean background voxels.
  const clean = s.images[0] as Uint16Array;
  const level: number[] = [];
  for (let i = 0; i < n; i += 7)
    if (s.labels[i] === LABEL.background && inElectrolyte(s.phantom, s.z, i)) level.push(clean[i] as number);
  level.sort((a, b) => a - b);
  const electrolyte = level[level.length >> 1] ?? 0;
  for (let i = 0; i < n; i++) {
    const o = owners[i] as number;
    if (o === 0) continue;
    const habit = s.phantom.dendrites[o - 1]?.morphology as Morphology;
    habitTotal.set(habit, (habitTotal.get(habit) ?? 0) + 1);
    masks.forEach((m, k) => {
      if (m[i]) habitHits[k]?.set(habit, (habitHits[k]?.get(habit) ?? 0) + 1);
    });
    if (habit === 'needle') needleContrast.push((electrolyte - (clean[i] as number)) / noiseSd);
  }
}

const f4 = (v: number) => v.toFixed(4);
const pct = (v: number) => `${(v * 100).toFixed(0)}%`;
const habits: Morphology[] = ['tree', 'mossy', 'needle'];
const lines = [
  `scans: seeds ${seeds[0]}–${seeds.at(-1)}, ${size}×${size}×${slices}; per-voxel intensity band inside the electrolyte (interfaces given), best band per row`,
  '',
  `| image | Dice (fg) | IoU (fg) | mIoU | mDSC | ${habits.map((h) => `${h} voxels found`).join(' | ')} |`,
  `|---|---|---|---|---|${habits.map(() => '---|').join('')}`,
];
REALIZATIONS.forEach((r: Realization, k) => {
  const sc = metrics[k]?.scores();
  if (!sc) return;
  lines.push(
    `| ${NAME[String(r)]} | ${f4(sc.dice)} | ${f4(sc.iou)} | ${f4(sc.mIoU)} | ${f4(sc.mDSC)} | ${habits
      .map((h) => pct((habitHits[k]?.get(h) ?? 0) / Math.max(1, habitTotal.get(h) ?? 0)))
      .join(' | ')} |`,
  );
});
needleContrast.sort((a, b) => a - b);
const share = (t: number) => needleContrast.filter((c) => c >= t).length / Math.max(1, needleContrast.length);
lines.push(
  '',
  `two noise realizations, band masks agree: Dice ${f4((2 * both) / Math.max(1, either))}`,
  `noise sd in the electrolyte ${noiseSd.toFixed(0)} grey levels; needle truth voxels darker than the electrolyte by ≥ 1 sd: ${pct(share(1))}, ≥ 2 sd: ${pct(share(2))}, ≥ 3 sd: ${pct(share(3))} (median ${(needleContrast[needleContrast.length >> 1] ?? 0).toFixed(2)} sd)`,
);
process.stdout.write(`${lines.join('\n')}\n`);
