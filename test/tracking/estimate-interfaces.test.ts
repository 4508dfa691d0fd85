import t from 'tap';
import { ConfigError } from '../../src/errors.ts';
import { Rng } from '../../src/sim/rng.ts';
import { estimateInterfaces } from '../../src/tracking/estimate-interfaces.ts';

/** A seeded stream in [0, 1): the project's own PRNG, the same numbers on every run. */
function rng(seed: number): () => number {
  const stream = new Rng(seed);
  return () => stream.next();
}

/** Standard normal numbers from a seeded uniform source (Box–Muller). */
function gaussian(random: () => number): () => number {
  return () => Math.sqrt(-2 * Math.log(1 - random())) * Math.cos(2 * Math.PI * random());
}

const LI = 0.3;
const ELECTROLYTE = 0.7;

interface Cell {
  width: number;
  height: number;
  image: Float32Array;
  /** True interface per column: the boundary between the last Li row and the first electrolyte row. */
  top: Float64Array;
  bottom: Float64Array;
}

/**
 * A synthetic Li|polymer|Li slice: Li rows where y < top(x) or y >= bottom(x), electrolyte between,
 * Gaussian noise on every pixel. The true interfaces sit between pixel rows, at top(x) - 0.5.
 */
function cell(
  width: number,
  height: number,
  seed: number,
  shape: { top: (x: number) => number; bottom: (x: number) => number; noise: number },
): Cell {
  const noise = gaussian(rng(seed));
  const image = new Float32Array(width * height);
  const top = new Float64Array(width);
  const bottom = new Float64Array(width);
  for (let x = 0; x < width; x++) {
    const t0 = Math.round(shape.top(x));
    const b0 = Math.round(shape.bottom(x));
    top[x] = t0 - 0.5;
    bottom[x] = b0 - 0.5;
    for (let y = 0; y < height; y++) {
      const level = y < t0 || y >= b0 ? LI : ELECTROLYTE;
      image[y * width + x] = level + shape.noise * noise();
    }
  }
  return { width, height, image, top, bottom };
}

/** Paint a dark vertical streak (a fake dendrite) from (x0, y0) to y1, `thickness` columns wide. */
function streak(c: Cell, x0: number, thickness: number, y0: number, y1: number, level = LI): void {
  for (let y = Math.min(y0, y1); y <= Math.max(y0, y1); y++) {
    for (let x = x0; x < x0 + thickness; x++) c.image[y * c.width + x] = level;
  }
}

function worstError(estimate: Float32Array, truth: Float64Array): number {
  let worst = 0;
  for (let x = 0; x < truth.length; x++) worst = Math.max(worst, Math.abs(estimate[x]! - truth[x]!));
  return worst;
}

t.test('finds both interfaces of a noisy cell with dendrites within 2 px', async (t) => {
  const cases = [
    { width: 256, height: 200, noise: 0.05, seed: 1 },
    { width: 512, height: 512, noise: 0.08, seed: 2 },
    { width: 1024, height: 300, noise: 0.1, seed: 3 },
    { width: 150, height: 400, noise: 0.05, seed: 4 },
  ];
  for (const { width, height, noise, seed } of cases) {
    const c = cell(width, height, seed, {
      top: (x) => 0.25 * height + 4 * Math.sin((2 * Math.PI * x) / width),
      bottom: (x) => 0.75 * height - 0.02 * x + 3 * Math.cos((3 * Math.PI * x) / width),
      noise,
    });
    // Dendrites: from the top electrode a third of the way into the electrolyte, and from the bottom.
    const depth = Math.round(0.3 * (c.bottom[0]! - c.top[0]!));
    const xa = Math.round(width * 0.3);
    const xb = Math.round(width * 0.7);
    streak(c, xa, 4, Math.round(c.top[xa]!), Math.round(c.top[xa]! + depth));
    streak(c, xb, 5, Math.round(c.bottom[xb]! - depth), Math.round(c.bottom[xb]!));
    const found = estimateInterfaces(c.image, width, height);
    if (!found) {
      t.fail(`${width}x${height}: no interfaces found`);
      continue;
    }
    const topError = worstError(found.top, c.top);
    const bottomError = worstError(found.bottom, c.bottom);
    t.ok(topError <= 2, `${width}x${height} noise ${noise}: top within ${topError.toFixed(2)} px`);
    t.ok(bottomError <= 2, `${width}x${height} noise ${noise}: bottom within ${bottomError.toFixed(2)} px`);
    t.ok(Math.abs(found.liLevel - LI) < 0.05, `Li level ${found.liLevel.toFixed(3)}`);
    t.ok(
      Math.abs(found.electrolyteLevel - ELECTROLYTE) < 0.05,
      `electrolyte level ${found.electrolyteLevel.toFixed(3)}`,
    );
    t.equal(found.top.length, width);
    t.equal(found.bottom.length, width);
  }
});

t.test('a tilted cell', async (t) => {
  const width = 512;
  const height = 400;
  const c = cell(width, height, 12, {
    top: (x) => 60 + 0.08 * x,
    bottom: (x) => 300 + 0.08 * x,
    noise: 0.07,
  });
  streak(c, 100, 3, 68, 120);
  const found = estimateInterfaces(c.image, width, height);
  t.ok(found, 'found');
  if (!found) return;
  t.ok(worstError(found.top, c.top) <= 2, `top within ${worstError(found.top, c.top).toFixed(2)} px`);
  t.ok(
    worstError(found.bottom, c.bottom) <= 2,
    `bottom within ${worstError(found.bottom, c.bottom).toFixed(2)} px`,
  );
});

t.test('a wide mossy dendrite and a bubble do not drag the interface', async (t) => {
  const width = 512;
  const height = 384;
  const c = cell(width, height, 9, { top: () => 100, bottom: () => 290, noise: 0.06 });
  // 40 columns of dark moss, deeper than half the electrolyte, spanning more than one column window.
  streak(c, 200, 40, 100, 200);
  // A dark bubble in the electrolyte next to the bottom interface.
  for (let y = 250; y < 280; y++) {
    for (let x = 380; x < 410; x++)
      if ((x - 395) ** 2 + (y - 265) ** 2 < 15 ** 2) c.image[y * width + x] = 0.2;
  }
  const found = estimateInterfaces(c.image, width, height);
  t.ok(found, 'found');
  if (!found) return;
  t.ok(worstError(found.top, c.top) <= 2, `top within ${worstError(found.top, c.top).toFixed(2)} px`);
  t.ok(
    worstError(found.bottom, c.bottom) <= 2,
    `bottom within ${worstError(found.bottom, c.bottom).toFixed(2)} px`,
  );
});

t.test('no two-band structure: null', async (t) => {
  const width = 256;
  const height = 256;
  const noise = gaussian(rng(5));
  const flat = Float32Array.from({ length: width * height }, () => 0.5 + 0.05 * noise());
  t.equal(estimateInterfaces(flat, width, height), null, 'uniform noise');

  // A tooth-like cross-section: a bright round object on a dark background.
  const tooth = new Float32Array(width * height);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const r = Math.hypot(x - 128, y - 128);
      tooth[y * width + x] = (r < 115 ? 0.75 : 0.25) + 0.05 * noise();
    }
  }
  t.equal(estimateInterfaces(tooth, width, height), null, 'round object');

  // Only one electrode: dark top, bright bottom.
  const half = cell(width, height, 6, { top: () => 100, bottom: () => height, noise: 0.05 });
  t.equal(estimateInterfaces(half.image, width, height), null, 'one band');

  // Inverted contrast: bright bands around a dark middle.
  const inverted = cell(width, height, 7, { top: () => 80, bottom: () => 180, noise: 0.05 });
  for (let i = 0; i < inverted.image.length; i++) inverted.image[i] = 1 - inverted.image[i]!;
  t.equal(estimateInterfaces(inverted.image, width, height), null, 'dark middle');

  // Too little contrast between the bands.
  const faint = cell(width, height, 8, { top: () => 80, bottom: () => 180, noise: 0.01 });
  for (let i = 0; i < faint.image.length; i++) faint.image[i] = 0.5 + (faint.image[i]! - 0.5) * 0.1;
  t.equal(estimateInterfaces(faint.image, width, height), null, 'contrast below minContrast');
  t.ok(
    estimateInterfaces(faint.image, width, height, { minContrast: 0.02 }),
    'found with a lower minContrast',
  );
});

t.test('options and sizes are checked', async (t) => {
  const image = new Float32Array(64 * 64);
  t.throws(() => estimateInterfaces(image, 64, 64, { columnWindow: 0 }), ConfigError);
  t.throws(() => estimateInterfaces(image, 64, 64, { minContrast: -1 }), {
    code: 'ERR_CONFIG',
    context: { option: 'minContrast' },
  });
  t.throws(() => estimateInterfaces(image, 64, 63), RangeError);
  t.equal(estimateInterfaces(new Float32Array(3), 3, 1), null, 'too small to hold two bands');
});
