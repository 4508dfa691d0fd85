import t from 'tap';
import { quantizeProbability } from '../../src/slices/probability.ts';

t.test('probability × 255, rounded, clamped, NaN as 0', async (t) => {
  const prob = new Float32Array([
    0,
    1,
    0.5,
    0.2,
    0.998,
    -0.1,
    1.7,
    Number.NaN,
    1 / 510 - 1e-6,
    1 / 510 + 1e-6,
  ]);
  const reference = [...prob].map((p) =>
    Number.isNaN(p) ? 0 : Math.min(255, Math.max(0, Math.round(p * 255))),
  );
  t.same([...quantizeProbability(prob)], reference);
  t.ok(quantizeProbability(prob) instanceof Uint8Array);
});
