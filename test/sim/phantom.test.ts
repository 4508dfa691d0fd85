import t from 'tap';
import { MORPHOLOGIES } from '../../src/sim/grow-dendrite.ts';
import { createPhantom } from '../../src/sim/phantom.ts';
import { LABEL, renderSlice } from '../../src/sim/render-slice.ts';

t.test('a default scan shows every morphology and both confounders', async (t) => {
  for (const seed of [1, 2, 3, 42]) {
    const p = createPhantom({ seed });
    t.same(new Set(p.dendrites.map((d) => d.morphology)), new Set(MORPHOLOGIES), `seed ${seed}: all habits`);
    t.ok(p.pits.length > 0, `seed ${seed}: pits`);
    t.ok(p.bubbles.length > 0, `seed ${seed}: bubbles`);
    t.ok(
      p.dendrites.some((d) => d.bridges),
      `seed ${seed}: one dendrite bridges the electrolyte`,
    );
    // Every class appears in the rendered labels, and each dendrite left voxels of its own.
    const seen = new Set<number>();
    const perDendrite = new Map<number, number>();
    for (let z = 0; z < p.slices; z++) {
      const { labels } = renderSlice(p, z);
      for (let i = 0; i < labels.length; i++) {
        const l = labels[i] as number;
        seen.add(l);
        if (l !== LABEL.dendrite) continue;
        const x = i % p.size;
        const y = Math.floor(i / p.size);
        for (const d of p.dendrites) {
          const b = d.bbox;
          if (x >= b.xMin && x <= b.xMax && y >= b.yMin && y <= b.yMax && z >= b.zMin && z <= b.zMax)
            perDendrite.set(d.id, (perDendrite.get(d.id) ?? 0) + 1);
        }
      }
    }
    t.same([...seen].sort(), [0, 1, 2, 3], `seed ${seed}: all label classes rendered`);
    for (const d of p.dendrites)
      t.ok((perDendrite.get(d.id) ?? 0) > 5, `seed ${seed}: dendrite ${d.id} (${d.morphology}) is labelled`);
  }
});

t.test('dendrites span many slices and a range of heights', async (t) => {
  const heights: number[] = [];
  for (const seed of [1, 2, 3, 4, 5]) {
    const p = createPhantom({ seed });
    for (const d of p.dendrites) {
      heights.push(d.heightVoxels / (PHANTOM_THICKNESS * p.size));
      if (d.morphology === 'tree')
        t.ok(d.bbox.zMax - d.bbox.zMin >= 5, `seed ${seed}: tree ${d.id} crosses ≥ 5 slices`);
    }
  }
  t.ok(Math.min(...heights) < 0.2, `some are short (min height fraction ${Math.min(...heights).toFixed(2)})`);
  t.ok(Math.max(...heights) > 0.9, `some bridge (max height fraction ${Math.max(...heights).toFixed(2)})`);
});
const PHANTOM_THICKNESS = 0.45;

t.test('--dendrites 0 gives pits and bubbles but no dendrite voxel', async (t) => {
  const p = createPhantom({ seed: 9, dendrites: 0, size: 128, slices: 48 });
  t.equal(p.dendrites.length, 0);
  const counts = [0, 0, 0, 0];
  for (let z = 0; z < p.slices; z++)
    for (const l of renderSlice(p, z).labels) counts[l] = (counts[l] ?? 0) + 1;
  t.equal(counts[LABEL.dendrite], 0);
  t.ok(
    (counts[LABEL.pit] ?? 0) > 0 && (counts[LABEL.bubble] ?? 0) > 0,
    `pits ${counts[2]}, bubbles ${counts[3]}`,
  );
});

t.test('the same seed gives the same slice bytes; another seed does not', async (t) => {
  const a = renderSlice(createPhantom({ seed: 5, size: 96, slices: 16 }), 7);
  const b = renderSlice(createPhantom({ seed: 5, size: 96, slices: 16 }), 7);
  const c = renderSlice(createPhantom({ seed: 6, size: 96, slices: 16 }), 7);
  t.same(Buffer.from(a.image.buffer), Buffer.from(b.image.buffer));
  t.same(Buffer.from(a.labels.buffer), Buffer.from(b.labels.buffer));
  t.notSame(Buffer.from(a.image.buffer), Buffer.from(c.image.buffer));
});

t.test('labels line up with the image voxel for voxel', async (t) => {
  // Li (dendrites) is darker than the electrolyte, voids darker still. If labels were shifted
  // against the image, the mean intensity under the dendrite labels would not be lowest at zero shift.
  const p = createPhantom({ seed: 11 });
  const shifts = [-2, -1, 0, 1, 2];
  const sums = new Map<string, { sum: number; n: number }>();
  const classMeans = [0, 0, 0, 0].map(() => ({ sum: 0, n: 0 }));
  for (let z = 0; z < p.slices; z += 2) {
    const { image, labels } = renderSlice(p, z);
    for (let y = 2; y < p.size - 2; y++) {
      for (let x = 2; x < p.size - 2; x++) {
        const l = labels[y * p.size + x] as number;
        const m = classMeans[l] as { sum: number; n: number };
        m.sum += image[y * p.size + x] as number;
        m.n++;
        if (l !== LABEL.dendrite) continue;
        for (const dy of shifts)
          for (const dx of shifts) {
            const key = `${dx},${dy}`;
            const s = sums.get(key) ?? { sum: 0, n: 0 };
            s.sum += image[(y + dy) * p.size + x + dx] as number;
            s.n++;
            sums.set(key, s);
          }
      }
    }
  }
  const mean = (s: { sum: number; n: number } | undefined) => (s ? s.sum / s.n : Number.NaN);
  const centre = mean(sums.get('0,0'));
  for (const [key, s] of sums)
    if (key !== '0,0') t.ok(centre < mean(s), `shift ${key}: ${mean(s).toFixed(0)} > ${centre.toFixed(0)}`);
  const [bg, dendrite, pit, bubble] = classMeans.map(mean) as [number, number, number, number];
  t.ok(
    pit < dendrite && bubble < dendrite,
    `voids (${pit.toFixed(0)}, ${bubble.toFixed(0)}) darker than dendrites (${dendrite.toFixed(0)})`,
  );
  t.ok(Number.isFinite(bg));
});

t.test('invalid geometry options are refused with the option named', async (t) => {
  t.throws(() => createPhantom({ seed: 1, size: 8 }), { code: 'ERR_USAGE', message: /--size/ });
  t.throws(() => createPhantom({ seed: 1, slices: 0 }), { code: 'ERR_USAGE', message: /--slices/ });
  t.throws(() => createPhantom({ seed: 1.5 }), { code: 'ERR_USAGE', message: /--seed/ });
  t.throws(() => createPhantom({ seed: 1, dendrites: -1 }), { code: 'ERR_USAGE', message: /--dendrites/ });
});
