import t from 'tap';
import { ConfigError, isXctError } from '../../src/errors.ts';
import {
  extractPatches,
  extractPlanePatches,
  reflectIndex,
  resolveTileOptions,
  tileGrid,
} from '../../src/slices/tile-grid.ts';

const SIZES: [number, number][] = [
  [1, 1],
  [100, 300],
  [128, 128],
  [129, 257],
  [512, 512],
  [1000, 77],
];
const OVERLAPS = [0, 16, 32, 64];

t.test('defaults: patch 128, overlap 32', async (t) => {
  t.same(resolveTileOptions(), { patch: 128, overlap: 32 });
  const tiles = tileGrid(512, 512);
  // stride 96: starts 0, 96, 192, 288, then the last snapped flush to 384
  t.same(
    tiles.filter((r) => r.y === 0).map((r) => r.x),
    [0, 96, 192, 288, 384],
  );
  t.equal(tiles.length, 25);
});

t.test('tiles are listed row by row with their index', async (t) => {
  const tiles = tileGrid(300, 200, { patch: 128, overlap: 32 });
  t.same(
    tiles.map((r) => [r.index, r.x, r.y]),
    [
      [0, 0, 0],
      [1, 96, 0],
      [2, 172, 0],
      [3, 0, 72],
      [4, 96, 72],
      [5, 172, 72],
    ],
  );
});

t.test('every pixel covered, no tile past the edge, stride respected', async (t) => {
  for (const [w, h] of SIZES) {
    for (const overlap of OVERLAPS) {
      const patch = 128;
      const tiles = tileGrid(w, h, { patch, overlap });
      const cover = new Uint8Array(w * h);
      for (const r of tiles) {
        t.equal(r.width, Math.min(patch, w));
        t.equal(r.height, Math.min(patch, h));
        if (w >= patch) t.ok(r.x + patch <= w, `${w}x${h}/${overlap}: tile x=${r.x} inside`);
        else t.equal(r.x, 0);
        if (h >= patch) t.ok(r.y + patch <= h, `${w}x${h}/${overlap}: tile y=${r.y} inside`);
        else t.equal(r.y, 0);
        for (let y = r.y; y < r.y + r.height; y++) cover.fill(1, y * w + r.x, y * w + r.x + r.width);
      }
      t.equal(cover.indexOf(0), -1, `${w}x${h} overlap ${overlap}: every pixel covered`);
      const xs = [...new Set(tiles.map((r) => r.x))];
      for (let i = 1; i < xs.length; i++) {
        const step = xs[i]! - xs[i - 1]!;
        t.ok(step > 0 && step <= patch - overlap, `${w}x${h}/${overlap}: x step ${step} <= stride`);
      }
    }
  }
});

t.test('options are checked when the grid is made, naming the option', async (t) => {
  const bad: [object, string][] = [
    [{ overlap: 128 }, 'overlap'],
    [{ overlap: 200 }, 'overlap'],
    [{ overlap: -1 }, 'overlap'],
    [{ overlap: 1.5 }, 'overlap'],
    [{ patch: 0 }, 'patch'],
    [{ patch: 64.5 }, 'patch'],
    [{ patch: 16, overlap: 16 }, 'overlap'],
  ];
  for (const [options, option] of bad) {
    let caught: unknown;
    try {
      tileGrid(256, 256, options);
    } catch (err) {
      caught = err;
    }
    t.ok(
      caught instanceof ConfigError && isXctError(caught, 'ERR_CONFIG'),
      `${JSON.stringify(options)}: ConfigError`,
    );
    t.match(caught, { code: 'ERR_CONFIG', context: { option, stage: 'tile' } });
  }
  t.throws(() => tileGrid(0, 10), RangeError);
  t.throws(() => tileGrid(10, 2.5), RangeError);
});

t.test('reflect padding mirrors without repeating the edge', async (t) => {
  t.same(
    Array.from({ length: 9 }, (_, i) => reflectIndex(i - 2, 3)),
    [2, 1, 0, 1, 2, 1, 0, 1, 2],
  );
  t.equal(reflectIndex(5, 1), 0);
  t.equal(reflectIndex(-7, 1), 0);
});

t.test('extractPatches copies the image and reflect-pads small images', async (t) => {
  // 3x2 image, patch 4: columns 0 1 2 1, rows 0 1 0 1
  const image = Float32Array.from([1, 2, 3, 4, 5, 6]);
  const tiles = tileGrid(3, 2, { patch: 4, overlap: 1 });
  t.equal(tiles.length, 1);
  const patches = extractPatches(image, 3, 2, tiles, 4);
  t.same(Array.from(patches), [1, 2, 3, 2, 4, 5, 6, 5, 1, 2, 3, 2, 4, 5, 6, 5]);

  const w = 10;
  const h = 7;
  const big = Float32Array.from({ length: w * h }, (_, i) => i);
  const grid = tileGrid(w, h, { patch: 4, overlap: 1 });
  const out = new Float32Array(grid.length * 16 + 5);
  t.equal(extractPatches(big, w, h, grid, 4, out), out, 'fills the buffer it is given');
  grid.forEach((r, k) => {
    for (let y = 0; y < 4; y++) {
      for (let x = 0; x < 4; x++) t.equal(out[k * 16 + y * 4 + x], big[(r.y + y) * w + r.x + x]);
    }
  });
  t.throws(() => extractPatches(big, w, h, grid, 4, new Float32Array(3)), RangeError);
  t.throws(() => extractPatches(big.subarray(1), w, h, grid, 4), RangeError);
});

t.test('extractPlanePatches: each patch holds its planes one after the other (N×C×P×P)', async (t) => {
  const width = 7;
  const height = 5;
  const plane = width * height;
  const planes = Float32Array.from({ length: 3 * plane }, (_, i) => i);
  const tiles = tileGrid(width, height, { patch: 4, overlap: 1 });
  const out = extractPlanePatches(planes, 3, width, height, tiles, 4);
  t.equal(out.length, tiles.length * 3 * 16);
  tiles.forEach((tile, k) => {
    for (let c = 0; c < 3; c++) {
      const want = extractPatches(planes.subarray(c * plane, (c + 1) * plane), width, height, [tile], 4);
      t.same(out.subarray((k * 3 + c) * 16, (k * 3 + c + 1) * 16), want, `tile ${k}, plane ${c}`);
    }
  });
  const single = planes.subarray(0, plane);
  t.same(
    extractPlanePatches(single, 1, width, height, tiles, 4),
    extractPatches(single, width, height, tiles, 4),
  );
  t.throws(
    () => extractPlanePatches(single, 3, width, height, tiles, 4),
    /input has 35 values, expected 3x7x5/,
  );
});
