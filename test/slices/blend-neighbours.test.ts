import fc from 'fast-check';
import t from 'tap';
import {
  blendNeighbours,
  modelInput,
  neighbourChannels,
  takesNeighbours,
} from '../../src/slices/blend-neighbours.ts';
import { DEFAULT_NORMALIZATION, percentileRange, scaleToRange } from '../../src/slices/normalize-slice.ts';

t.test('float slices: (1 − 2w)·current + w·previous + w·next', async (t) => {
  const current = Float32Array.of(1, 2, 3);
  const previous = Float32Array.of(11, 0, -5);
  const next = Float32Array.of(21, 4, 5);
  const out = blendNeighbours(current, previous, next, 0.25);
  t.ok(out instanceof Float32Array, 'same pixel type');
  t.same([...out], [0.5 * 1 + 0.25 * 32, 0.5 * 2 + 0.25 * 4, 0.5 * 3 + 0.25 * 0]);
  t.not(out, current, 'a new array: the decoded slice stays as it was');
});

t.test('integer slices are rounded, not truncated, and keep their type', async (t) => {
  const out = blendNeighbours(
    Uint16Array.of(100, 65535, 0),
    Uint16Array.of(107, 65535, 3),
    Uint16Array.of(100, 65535, 2),
    0.1,
  );
  t.ok(out instanceof Uint16Array);
  // 80 + 10.7 + 10 = 100.7 → 101; the top of the range stays there; 0.5 → 1 (round half up).
  t.same([...out], [101, 65535, 1]);
  const signed = blendNeighbours(Int16Array.of(-100), Int16Array.of(-107), Int16Array.of(-100), 0.1);
  t.same([...signed], [-101]);
});

t.test('a missing neighbour counts as the slice itself', async (t) => {
  const current = Uint16Array.of(1000, 2000);
  const next = Uint16Array.of(2000, 0);
  t.same([...blendNeighbours(current, undefined, undefined, 0.1)], [1000, 2000], 'alone: unchanged');
  t.same(
    [...blendNeighbours(current, undefined, next, 0.1)],
    [1100, 1800],
    'first slice: 0.9·self + 0.1·next',
  );
  t.same([...blendNeighbours(current, next, undefined, 0.1)], [1100, 1800], 'last slice: the same, mirrored');
  t.same([...blendNeighbours(current, next, next, 0)], [1000, 2000], 'weight 0: the slice alone');
});

t.test('refuses a weight out of range and neighbours of another size', async (t) => {
  const a = new Float32Array(4);
  t.throws(() => blendNeighbours(a, a, a, 0.4), /neighbour weight must be in \[0, 1\/3\], got 0.4/);
  t.throws(() => blendNeighbours(a, a, a, Number.NaN), /got NaN/);
  t.throws(() => blendNeighbours(a, new Float32Array(3), a, 0.1), /previous slice has 3 pixels, this one 4/);
  t.throws(() => blendNeighbours(a, a, new Float32Array(5), 0.1), /next slice has 5 pixels, this one 4/);
});

t.test(
  'three input channels: the slices as planes, scaled by the blend, so (w, 1 − 2w, w) of them is the blend',
  async (t) => {
    const rng = fc.sample(fc.integer({ min: 0, max: 65535 }), { numRuns: 3 * 400, seed: 7 });
    const [previous, current, next] = [0, 1, 2].map((k) =>
      Uint16Array.from(rng.slice(k * 400, (k + 1) * 400)),
    );
    const card = { neighbourWeight: 0.075, normalization: DEFAULT_NORMALIZATION };
    const one = modelInput(current as Uint16Array, previous, next, card);
    const three = modelInput(current as Uint16Array, previous, next, { ...card, inputChannels: 3 });
    t.equal(three.length, 3 * 400, 'three planes');
    t.same(
      neighbourChannels(current as Uint16Array, previous, next, card),
      three,
      'modelInput takes that path',
    );
    // The blend is rounded to the slice's integers, the planes are not: half a grey level at most.
    const [lo, hi] = percentileRange(blendNeighbours(current as Uint16Array, previous, next, 0.075), 1, 99);
    const tolerance = 0.5 / (hi - lo) + 1e-6;
    let worst = 0;
    for (let i = 0; i < 400; i++) {
      const mixed =
        0.075 * (three[i] as number) + 0.85 * (three[400 + i] as number) + 0.075 * (three[800 + i] as number);
      worst = Math.max(worst, Math.abs(mixed - (one[i] as number)));
    }
    t.ok(
      worst <= tolerance,
      `weighted planes equal the normalized blend (max |diff| ${worst}, allowed ${tolerance})`,
    );
    t.same(
      three.subarray(400, 800),
      scaleToRange(current as Uint16Array, lo, hi),
      'the middle plane is the slice itself',
    );
    t.same(
      three.subarray(0, 400),
      scaleToRange(previous as Uint16Array, lo, hi),
      'the first plane is the slice above',
    );

    const alone = neighbourChannels(current as Uint16Array, undefined, undefined, card);
    t.same(alone.subarray(0, 400), alone.subarray(400, 800), 'a missing neighbour is the slice itself');
    t.same(alone.subarray(800), alone.subarray(400, 800));
    t.throws(
      () => neighbourChannels(current as Uint16Array, new Uint16Array(3), next, card),
      /previous slice has 3 pixels, this one 400/,
    );
    t.throws(
      () =>
        neighbourChannels(current as Uint16Array, previous, new Uint16Array(3), {
          ...card,
          neighbourWeight: 0,
        }),
      /a neighbour slice has 3 pixels, this one 400/,
      'unblended, the planes are still checked',
    );
    t.equal(
      takesNeighbours({ ...card, neighbourWeight: 0 }),
      false,
      'weight 0, one channel: the slice alone',
    );
    t.equal(
      takesNeighbours({ ...card, neighbourWeight: 0, inputChannels: 3 }),
      true,
      'three channels need the neighbours',
    );
  },
);
