import t from 'tap';
import { ConfigError } from '../../src/errors.ts';
import { Rng } from '../../src/sim/rng.ts';
import { blendWindow, createStitcher } from '../../src/slices/stitch-patches.ts';
import { extractPatches, tileGrid } from '../../src/slices/tile-grid.ts';

/** A seeded stream in [0, 1): the project's own PRNG, the same numbers on every run. */
function rng(seed: number): () => number {
  const stream = new Rng(seed);
  return () => stream.next();
}

function shuffled(n: number, random: () => number): number[] {
  const order = Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [order[i], order[j]] = [order[j]!, order[i]!];
  }
  return order;
}

const SIZES: [number, number][] = [
  [1, 1],
  [100, 300],
  [128, 128],
  [129, 257],
  [512, 512],
  [1000, 77],
];
const OVERLAPS = [0, 16, 32, 64];
const PATCH = 128;
const AREA = PATCH * PATCH;

t.test('tile -> extract -> stitch of the image itself is the identity', async (t) => {
  const random = rng(1);
  for (const [w, h] of SIZES) {
    const image = Float32Array.from({ length: w * h }, () => random());
    for (const overlap of OVERLAPS) {
      const tiles = tileGrid(w, h, { patch: PATCH, overlap });
      const patches = extractPatches(image, w, h, tiles, PATCH);
      const stitcher = createStitcher(w, h, tiles, { patch: PATCH, overlap });
      for (const order of shuffled(tiles.length, random)) {
        stitcher.add(order, patches.subarray(order * AREA, (order + 1) * AREA));
      }
      const out = stitcher.result();
      let worst = 0;
      for (let i = 0; i < out.length; i++) worst = Math.max(worst, Math.abs(out[i]! - image[i]!));
      t.ok(worst <= 1e-6, `${w}x${h} overlap ${overlap}: max error ${worst}`);
    }
  }
});

t.test('stitching does not depend on the order patches arrive in', async (t) => {
  const random = rng(7);
  for (const [w, h, overlap] of [
    [512, 512, 32],
    [129, 257, 64],
    [1000, 77, 16],
    [300, 200, 0],
  ] as const) {
    const tiles = tileGrid(w, h, { patch: PATCH, overlap });
    // Unrelated random maps per patch: overlaps disagree, so blending order would show if it mattered.
    const maps = tiles.map(() => Float32Array.from({ length: AREA }, () => random()));
    const stitcher = createStitcher(w, h, tiles, { patch: PATCH, overlap });
    for (const [i, m] of maps.entries()) stitcher.add(i, m);
    const reference = stitcher.result();
    for (let round = 0; round < 5; round++) {
      stitcher.reset();
      t.notOk(stitcher.complete);
      for (const i of shuffled(tiles.length, random)) stitcher.add(i, maps[i]!);
      t.same(stitcher.result(), reference, `${w}x${h}/${overlap}: shuffle ${round} gives identical bits`);
    }
  }
});

t.test('a constant probability stays exactly constant: no seams', async (t) => {
  for (const [w, h] of SIZES) {
    for (const overlap of OVERLAPS) {
      for (const value of [Math.fround(0.3), Math.fround(0.7123), 1, 0]) {
        const tiles = tileGrid(w, h, { patch: PATCH, overlap });
        const stitcher = createStitcher(w, h, tiles, { patch: PATCH, overlap });
        const map = new Float32Array(AREA).fill(value);
        for (let i = tiles.length - 1; i >= 0; i--) stitcher.add(i, map);
        const out = stitcher.result();
        const off = out.findIndex((v) => v !== value);
        t.equal(off, -1, `${w}x${h}/${overlap} value ${value}: first pixel off = ${off}`);
      }
    }
  }
});

t.test('blending weights are positive everywhere and ramp smoothly', async (t) => {
  for (const overlap of OVERLAPS) {
    const window = blendWindow(PATCH, overlap);
    t.ok(
      window.every((v) => v > 0 && v <= 1),
      `overlap ${overlap}: weights in (0, 1]`,
    );
    const centre = window[64 * PATCH + 64]!;
    t.ok(overlap <= 32 ? centre === 1 : centre > 0.999, `overlap ${overlap}: centre weight ${centre}`);
  }
  // Neighbours overlapping by exactly `overlap` have weights summing to 1 across the overlap.
  const line = blendWindow(PATCH, 32).subarray(64 * PATCH, 65 * PATCH);
  for (let i = 0; i < 32; i++) t.ok(Math.abs(line[96 + i]! + line[i]! - 1) < 1e-12);
});

t.test('the stitcher refuses misuse', async (t) => {
  const tiles = tileGrid(200, 150, { patch: PATCH, overlap: 32 });
  const stitcher = createStitcher(200, 150, tiles, { patch: PATCH, overlap: 32 });
  const map = new Float32Array(AREA).fill(0.5);
  t.throws(() => stitcher.result(), /0 of 4 tiles/, 'result before any tile');
  stitcher.add(2, map);
  t.throws(() => stitcher.add(2, map), /already added/);
  t.throws(() => stitcher.add(4, map), RangeError);
  t.throws(() => stitcher.add(-1, map), RangeError);
  t.throws(() => stitcher.add(0, new Float32Array(10)), RangeError);
  t.throws(() => stitcher.result(), /1 of 4 tiles/, 'result too early');
  t.equal(stitcher.received, 1);
  stitcher.add(0, map);
  stitcher.add(3, map);
  stitcher.add(1, map);
  t.ok(stitcher.complete);
  const out = new Float32Array(200 * 150);
  t.equal(stitcher.result(out), out, 'writes into the buffer it is given');
  t.ok(out.every((v) => v === 0.5));

  // Out-of-order patches are copied: reusing the caller's buffer must not change the result.
  stitcher.reset();
  const buffer = new Float32Array(AREA);
  for (const i of [3, 1, 2, 0]) {
    buffer.fill(0.25);
    stitcher.add(i, buffer);
    buffer.fill(0.9);
  }
  t.ok(stitcher.result().every((v) => v === 0.25));

  t.throws(() => createStitcher(200, 150, tiles.slice(1), { patch: PATCH, overlap: 32 }), /uncovered/);
  t.throws(() => createStitcher(100, 150, tiles, { patch: PATCH, overlap: 32 }), /does not fit/);
  t.throws(() => createStitcher(200, 150, tiles, { patch: PATCH, overlap: PATCH }), ConfigError);
  t.throws(() => createStitcher(200, 150, tiles, { patch: PATCH, overlap: PATCH }), {
    code: 'ERR_CONFIG',
    context: { option: 'overlap' },
  });
});
