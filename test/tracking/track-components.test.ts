import t from 'tap';
import { ConfigError } from '../../src/errors.ts';
import { Rng } from '../../src/sim/rng.ts';
import {
  type Connectivity,
  createComponentTracker,
  type SliceUpdate,
  type TrackedComponent,
} from '../../src/tracking/track-components.ts';

/** A seeded stream in [0, 1): the project's own PRNG, the same numbers on every run. */
function rng(seed: number): () => number {
  const stream = new Rng(seed);
  return () => stream.next();
}

/** A test volume: z slices of width×height, mask and probabilities. */
interface Volume {
  width: number;
  height: number;
  depth: number;
  mask: Uint8Array[];
  prob: Float32Array[];
}

function emptyVolume(width: number, height: number, depth: number): Volume {
  return {
    width,
    height,
    depth,
    mask: Array.from({ length: depth }, () => new Uint8Array(width * height)),
    prob: Array.from({ length: depth }, () => new Float32Array(width * height)),
  };
}

function set(v: Volume, x: number, y: number, z: number, p = 0.5): void {
  v.mask[z]![y * v.width + x] = 1;
  v.prob[z]![y * v.width + x] = p;
}

/**
 * Feed every slice (but those `skip` says to leave out, as a source that lost them would); return the
 * updates and every component ever closed (including at the end).
 */
function track(
  v: Volume,
  connectivity: Connectivity,
  gap = 0,
  skip: (z: number) => boolean = () => false,
): { updates: SliceUpdate[]; all: TrackedComponent[] } {
  const tracker = createComponentTracker({ width: v.width, height: v.height, connectivity, gap });
  const updates: SliceUpdate[] = [];
  const all: TrackedComponent[] = [];
  for (let z = 0; z < v.depth; z++) {
    if (skip(z)) continue;
    const update = tracker.addSlice(z, v.mask[z]!, v.prob[z]!);
    updates.push(update);
    all.push(...update.closed);
  }
  all.push(...tracker.closeAll());
  return { updates, all: all.sort((a, b) => a.id - b.id) };
}

interface BruteComponent {
  voxelCount: number;
  bbox: { zMin: number; zMax: number; yMin: number; yMax: number; xMin: number; xMax: number };
  probSum: number;
  probMax: number;
  /** Lowest z then lowest x among voxels at yMin / yMax. */
  yMinVoxel: { x: number; y: number; z: number };
  yMaxVoxel: { x: number; y: number; z: number };
}

/**
 * Reference: label the whole volume with a plain breadth-first flood fill; with a gap, voxels touch
 * when within 1 + gap of each other along every axis.
 */
function floodFill(
  v: Volume,
  connectivity: Connectivity,
  gap = 0,
): { labels: Int32Array; components: BruteComponent[] } {
  const { width: w, height: h, depth: d } = v;
  const labels = new Int32Array(w * h * d);
  const offsets: [number, number, number][] = [];
  const r = 1 + gap;
  for (let dz = -r; dz <= r; dz++) {
    for (let dy = -r; dy <= r; dy++) {
      for (let dx = -r; dx <= r; dx++) {
        const manhattan = Math.abs(dx) + Math.abs(dy) + Math.abs(dz);
        if (manhattan === 0) continue;
        if (connectivity === 6 && manhattan > 1) continue;
        offsets.push([dx, dy, dz]);
      }
    }
  }
  const components: BruteComponent[] = [];
  const queue: number[] = [];
  for (let z = 0; z < d; z++) {
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        const start = z * w * h + y * w + x;
        if (v.mask[z]![y * w + x] === 0 || labels[start] !== 0) continue;
        const label = components.length + 1;
        const c: BruteComponent = {
          voxelCount: 0,
          bbox: { zMin: z, zMax: z, yMin: y, yMax: y, xMin: x, xMax: x },
          probSum: 0,
          probMax: Number.NEGATIVE_INFINITY,
          yMinVoxel: { x, y, z },
          yMaxVoxel: { x, y, z },
        };
        components.push(c);
        labels[start] = label;
        queue.length = 0;
        queue.push(start);
        while (queue.length > 0) {
          const i = queue.pop()!;
          const vz = Math.floor(i / (w * h));
          const vy = Math.floor((i % (w * h)) / w);
          const vx = i % w;
          const p = v.prob[vz]![vy * w + vx]!;
          c.voxelCount++;
          c.probSum += p;
          c.probMax = Math.max(c.probMax, p);
          const b = c.bbox;
          b.zMin = Math.min(b.zMin, vz);
          b.zMax = Math.max(b.zMax, vz);
          b.xMin = Math.min(b.xMin, vx);
          b.xMax = Math.max(b.xMax, vx);
          const before = (a: { x: number; z: number }) => vz < a.z || (vz === a.z && vx < a.x);
          if (vy < b.yMin || (vy === b.yMin && before(c.yMinVoxel))) {
            b.yMin = vy;
            c.yMinVoxel = { x: vx, y: vy, z: vz };
          }
          if (vy > b.yMax || (vy === b.yMax && before(c.yMaxVoxel))) {
            b.yMax = vy;
            c.yMaxVoxel = { x: vx, y: vy, z: vz };
          }
          for (const [dx, dy, dz] of offsets) {
            const nx = vx + dx;
            const ny = vy + dy;
            const nz = vz + dz;
            if (nx < 0 || ny < 0 || nz < 0 || nx >= w || ny >= h || nz >= d) continue;
            const j = nz * w * h + ny * w + nx;
            if (v.mask[nz]![ny * w + nx] === 0 || labels[j] !== 0) continue;
            labels[j] = label;
            queue.push(j);
          }
        }
      }
    }
  }
  return { labels, components };
}

t.test('a U shape: two arms, then a base that joins them', async (t) => {
  // Arms at x=2 and x=8 (y=5) for z=0..4, base from x=2 to x=8 at z=5.
  const v = emptyVolume(12, 10, 7);
  for (let z = 0; z <= 4; z++) {
    set(v, 2, 5, z, 0.6);
    set(v, 8, 5, z, 0.9);
  }
  for (let x = 2; x <= 8; x++) set(v, x, 5, 5, 0.8);
  for (const connectivity of [6, 26] as const) {
    const { updates, all } = track(v, connectivity);
    t.same(
      updates[0]!.changed.map((c) => [c.id, c.change]),
      [
        [1, 'created'],
        [2, 'created'],
      ],
    );
    t.same(
      updates[4]!.changed.map((c) => [c.id, c.change, c.voxelCount]),
      [
        [1, 'grew', 5],
        [2, 'grew', 5],
      ],
    );
    const merge = updates[5]!;
    t.same(merge.merges, [{ id: 1, absorbed: [2] }], `${connectivity}: arm 2 retired into 1`);
    t.same(
      merge.changed.map((c) => [c.id, c.change, c.voxelCount]),
      [[1, 'merged', 17]],
    );
    t.same(
      updates[6]!.closed.map((c) => c.id),
      [1],
      'closed once absent',
    );
    t.equal(all.length, 1);
    const u = all[0]!;
    t.same(u.bbox, { zMin: 0, zMax: 5, yMin: 5, yMax: 5, xMin: 2, xMax: 8 });
    t.equal(u.probMax, Math.fround(0.9));
    t.ok(Math.abs(u.probSum - (5 * Math.fround(0.6) + 5 * Math.fround(0.9) + 7 * Math.fround(0.8))) < 1e-9);
    t.ok(Math.abs(u.probMean - u.probSum / 17) < 1e-12);
    t.ok(u.closed);
  }
});

t.test('a component that forks keeps one id', async (t) => {
  const v = emptyVolume(10, 10, 4);
  for (let x = 1; x <= 7; x++) set(v, x, 3, 0);
  for (let z = 1; z < 4; z++) {
    set(v, 1, 3, z);
    set(v, 7, 3, z);
  }
  const { updates, all } = track(v, 6);
  t.same(
    updates[3]!.changed.map((c) => c.id),
    [1],
    'both prongs report as component 1',
  );
  t.equal(all.length, 1);
  t.equal(all[0]!.voxelCount, 13);
});

t.test('two separate blobs stay two components', async (t) => {
  const v = emptyVolume(20, 20, 6);
  for (let z = 1; z <= 3; z++) {
    for (let y = 2; y <= 4; y++) for (let x = 2; x <= 5; x++) set(v, x, y, z, 0.7);
  }
  for (let z = 2; z <= 5; z++) {
    for (let y = 12; y <= 16; y++) for (let x = 10; x <= 11; x++) set(v, x, y, z, 0.4);
  }
  const { updates, all } = track(v, 26);
  t.same(
    all.map((c) => [c.id, c.voxelCount]),
    [
      [1, 36],
      [2, 40],
    ],
  );
  t.same(all[0]!.bbox, { zMin: 1, zMax: 3, yMin: 2, yMax: 4, xMin: 2, xMax: 5 });
  t.same(all[1]!.bbox, { zMin: 2, zMax: 5, yMin: 12, yMax: 16, xMin: 10, xMax: 11 });
  t.same(all[1]!.yMaxVoxel, { x: 10, y: 16, z: 2 });
  t.same(
    updates[4]!.closed.map((c) => c.id),
    [1],
    'blob 1 closes at the first slice without it',
  );
  t.equal(updates[0]!.changed.length, 0);
});

t.test('diagonal contacts join under 26- but not 6-connectivity', async (t) => {
  // An in-plane diagonal pair in slice 0; a chain whose links touch only through an edge
  // ((5,5,0)-(6,5,1)) and only through a corner ((6,5,1)-(7,6,2)).
  const v = emptyVolume(8, 8, 3);
  set(v, 1, 1, 0);
  set(v, 2, 2, 0);
  set(v, 5, 5, 0);
  set(v, 6, 5, 1); // edge contact with (5,5,0)
  set(v, 7, 6, 2); // corner contact with (6,5,1)
  t.same(
    track(v, 26).all.map((c) => c.voxelCount),
    [2, 3],
    '26: the pair and the chain',
  );
  const six = track(v, 6).all;
  t.equal(six.length, 5, '6: every voxel on its own');
  t.same(
    six.map((c) => c.voxelCount),
    [1, 1, 1, 1, 1],
  );
});

t.test('a skipped slice closes everything; ids keep counting', async (t) => {
  const tracker = createComponentTracker({ width: 4, height: 4, connectivity: 6 });
  const mask = new Uint8Array(16).fill(1);
  const prob = new Uint8Array(16).fill(255);
  t.same(tracker.addSlice(0, mask, prob).changed[0]?.probMax, 1, 'uint8 probabilities read as value/255');
  const update = tracker.addSlice(2, mask, prob);
  t.same(
    update.closed.map((c) => [c.id, c.voxelCount]),
    [[1, 16]],
  );
  t.same(
    update.changed.map((c) => [c.id, c.change]),
    [[2, 'created']],
  );
  t.same(
    tracker.components().map((c) => c.id),
    [2],
  );
  t.equal(tracker.lastZ, 2);
  t.throws(() => tracker.addSlice(2, mask, prob), RangeError, 'z must increase');
  t.throws(() => tracker.addSlice(3, new Uint8Array(3), prob), RangeError);
  t.throws(
    () => createComponentTracker({ width: 4, height: 4, connectivity: 18 as Connectivity }),
    ConfigError,
  );
  t.throws(() => createComponentTracker({ width: 0, height: 4 }), {
    code: 'ERR_CONFIG',
    context: { option: 'width' },
  });
});

t.test('property: matches a brute-force 3-D flood fill on random sparse volumes', async (t) => {
  const random = rng(42);
  let volumes = 0;
  let mergesSeen = 0;
  let skipped = 0;
  const cases = [
    { connectivity: 6, gap: 0 },
    { connectivity: 26, gap: 0 },
    { connectivity: 26, gap: 1 },
    { connectivity: 26, gap: 2 },
  ] as const;
  for (const { connectivity, gap } of cases) {
    for (let trial = 0; trial < 60; trial++) {
      const width = 4 + Math.floor(random() * 20);
      const height = 4 + Math.floor(random() * 20);
      const depth = 1 + Math.floor(random() * 14);
      const density = gap > 0 ? 0.005 + random() * 0.05 : 0.05 + random() * (connectivity === 6 ? 0.4 : 0.25);
      const v = emptyVolume(width, height, depth);
      for (let z = 0; z < depth; z++) {
        for (let i = 0; i < width * height; i++) {
          if (random() < density) {
            v.mask[z]![i] = 1;
            v.prob[z]![i] = random();
          }
        }
      }
      // An empty slice may also be one the source never delivered: the tracker must treat both alike.
      const empty = v.mask.map((m) => m.every((b) => b === 0));
      const leaveOut = empty.map((e) => e && random() < 0.5);
      skipped += leaveOut.filter(Boolean).length;
      const skip = (z: number) => leaveOut[z] === true;
      const { updates, all } = track(v, connectivity, gap, skip);
      const brute = floodFill(v, connectivity, gap);
      const where = `${connectivity}-conn gap ${gap} ${width}x${height}x${depth} density ${density.toFixed(3)}`;
      volumes++;
      if (all.length !== brute.components.length) {
        t.fail(`${where}: ${all.length} components, flood fill finds ${brute.components.length}`);
        continue;
      }
      // Each tracked component names a voxel (its yMin voxel); the flood fill's label there must
      // be a component with exactly the same statistics, and no two tracked ones may share it.
      const matched = new Set<number>();
      let bad = 0;
      for (const c of all) {
        const { x, y, z } = c.yMinVoxel;
        const label = brute.labels[z * width * height + y * width + x]!;
        const b = brute.components[label - 1];
        const same =
          b !== undefined &&
          !matched.has(label) &&
          b.voxelCount === c.voxelCount &&
          JSON.stringify(b.bbox) === JSON.stringify(c.bbox) &&
          JSON.stringify(b.yMinVoxel) === JSON.stringify(c.yMinVoxel) &&
          JSON.stringify(b.yMaxVoxel) === JSON.stringify(c.yMaxVoxel) &&
          b.probMax === c.probMax &&
          Math.abs(b.probSum - c.probSum) < 1e-9;
        matched.add(label);
        if (!same) bad++;
      }
      t.equal(bad, 0, `${where}: ${all.length} components match`);
      // Ids: distinct, each retired id absorbed into a smaller one, and no id reappears once retired.
      const retired = new Set<number>();
      let consistent = true;
      for (const u of updates) {
        mergesSeen += u.merges.length;
        for (const m of u.merges) {
          for (const a of m.absorbed) {
            if (a <= m.id || retired.has(a)) consistent = false;
            retired.add(a);
          }
        }
        for (const c of u.changed) if (retired.has(c.id)) consistent = false;
      }
      for (const c of all) if (retired.has(c.id)) consistent = false;
      t.ok(consistent, `${where}: merges retire larger ids for good`);
      // Same volume, same ids: the tracker is deterministic.
      t.same(
        track(v, connectivity, gap, skip).all.map((c) => c.id),
        all.map((c) => c.id),
      );
    }
  }
  t.equal(volumes, 240);
  t.ok(skipped > 20, `the volumes exercise slices left out (${skipped})`);
  t.ok(mergesSeen > 100, `the volumes exercise merging (${mergesSeen} merges)`);
});

t.test('a needle broken into fragments is one component when the gap is tolerated', async (t) => {
  // A one-voxel needle rising in y and leaning in x and z, as the simulator's needles do, with the
  // mask losing every fifth voxel and two in a row further up: what a model shows of a faint needle.
  const v = emptyVolume(40, 48, 14);
  const needle = (x0: number, drop: (k: number) => boolean) => {
    for (let k = 0; k < 40; k++) {
      if (drop(k)) continue;
      set(v, x0 + Math.round(k * 0.3), 4 + k, Math.floor(k * 0.3), 0.8);
    }
  };
  needle(5, (k) => k % 5 === 4 || k === 11 || k === 12);
  // A second, unbroken needle leaning alongside, 6 voxels away in x: it must stay separate.
  needle(11, () => false);
  const pieces = (gap: number) => track(v, 26, gap).all;
  t.equal(pieces(0).length, 1 + 9, 'gap 0: the broken needle falls apart into 9 pieces');
  t.equal(pieces(1).length, 1 + 2, 'gap 1: one-voxel breaks bridged, the two-voxel break not');
  const two = pieces(2);
  t.equal(two.length, 2, 'gap 2: two needles, each one component');
  t.same(
    two.find((c) => c.bbox.xMin === 5)?.bbox,
    { zMin: 0, zMax: 11, yMin: 4, yMax: 42, xMin: 5, xMax: 16 },
    'gap 2: the broken needle end to end',
  );
  t.equal(two.find((c) => c.bbox.xMin === 11)?.voxelCount, 40, 'gap 2: the other needle whole');
});

t.test('gap option is checked when the tracker is created', async (t) => {
  for (const gap of [-1, 1.5, 4])
    t.throws(() => createComponentTracker({ width: 4, height: 4, gap }), {
      code: 'ERR_CONFIG',
      context: { option: 'gap' },
    });
  t.throws(() => createComponentTracker({ width: 4, height: 4, connectivity: 6, gap: 1 }), {
    code: 'ERR_CONFIG',
    context: { option: 'gap' },
  });
});
