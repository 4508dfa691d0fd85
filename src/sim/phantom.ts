/**
 * The simulated cell: electrodes, electrolyte, pits, bubbles and dendrites (trees, mossy clusters,
 * needles) placed by seed, with the scanner's acquisition settings and the truth every evaluation
 * scores against. Over 400 lines because it is mostly the declared shapes and their defaults; the
 * growth of one dendrite is `grow-dendrite.ts`, the rendering of a slice `render-slice.ts`.
 */
import { UsageError } from '../errors.ts';
import {
  type Capsule,
  type Electrode,
  growDendrite,
  type InterfaceSurfaces,
  MORPHOLOGIES,
  type Morphology,
} from './grow-dendrite.ts';
import { Rng } from './rng.ts';

/** What to simulate. Every field but `seed` has a default; see `PHANTOM_DEFAULTS`. */
export interface PhantomOptions {
  seed: number;
  /** Slice width and height in voxels (slices are square). */
  size?: number;
  /** Number of slices (z). */
  slices?: number;
  /** Number of dendrites; 0 gives a scan with pits and bubbles only. */
  dendrites?: number;
  pits?: number;
  bubbles?: number;
  /** Electrolyte thickness as a fraction of the slice height. */
  electrolyteFraction?: number;
  voxelSizeUm?: number;
}

export const PHANTOM_DEFAULTS = Object.freeze({
  size: 256,
  slices: 128,
  dendrites: 6,
  pits: 4,
  bubbles: 4,
  electrolyteFraction: 0.45,
  voxelSizeUm: 0.65,
});

/** A grown dendrite with where it sits. */
export interface PhantomDendrite {
  id: number;
  morphology: Morphology;
  electrode: Electrode;
  root: { x: number; z: number };
  capsules: Capsule[];
  heightVoxels: number;
  bridges: boolean;
  bbox: Box;
}

/** A void: a pit in the Li or a gas bubble in the electrolyte. */
export interface Ellipsoid {
  cx: number;
  cy: number;
  cz: number;
  rx: number;
  ry: number;
  rz: number;
}

export interface Box {
  xMin: number;
  xMax: number;
  yMin: number;
  yMax: number;
  zMin: number;
  zMax: number;
}

/** A ring artifact: a detector element with a gain error, constant through the scan. */
export interface Ring {
  radius: number;
  width: number;
  amplitude: number;
}

/** Scanner and material parameters drawn once per scan. */
export interface Acquisition {
  muVoid: number;
  muLi: number;
  muElectrolyte: number;
  /** Depth of the cupping (beam hardening) dip at the centre, as a fraction. */
  cupping: number;
  rings: Ring[];
  /** Detector blur, Gaussian sigma in voxels. */
  blurSigma: number;
  /** Intensity = offset + scale · μ. */
  offset: number;
  scale: number;
  /** Photon gain: Poisson counts are intensity / gain. */
  gain: number;
  /** Read-out and reconstruction noise, Gaussian sigma in intensity units. */
  readNoise: number;
  /** Slow intensity drift along z: linear part over the whole scan, and a slow wobble. */
  driftLinear: number;
  driftWobble: number;
  driftPeriod: number;
}

/** A complete synthetic cell: geometry, objects and acquisition settings. Render it with `renderSlice`. */
export interface Phantom {
  seed: number;
  size: number;
  slices: number;
  voxelSizeUm: number;
  /** Interface heights, row-major over (z, x): `top[z * size + x]`. */
  top: Float32Array;
  bottom: Float32Array;
  dendrites: PhantomDendrite[];
  pits: Ellipsoid[];
  bubbles: Ellipsoid[];
  acquisition: Acquisition;
  /** Capsule indices per slice, as [dendrite index, capsule index] pairs flattened. */
  capsulesBySlice: Int32Array[];
}

/** Build the geometry of a Li|polymer|Li cell, deterministically from the seed. */
export function createPhantom(options: PhantomOptions): Phantom {
  const o = { ...PHANTOM_DEFAULTS, ...definedOnly(options), seed: options.seed };
  validate(o);
  const { size, slices, seed } = o;
  const scale = size / 256;
  const rng = new Rng(seed, 1);

  const top = new Float32Array(slices * size);
  const bottom = new Float32Array(slices * size);
  const thickness = o.electrolyteFraction * size;
  const centre = size / 2 + rng.uniform(-0.03, 0.03) * size;
  fillInterface(top, rng, size, slices, centre - thickness / 2, scale);
  fillInterface(bottom, rng, size, slices, centre + thickness / 2, scale);
  // Rough surfaces can approach each other; keep a thin electrolyte everywhere so the cell is not shorted.
  for (let i = 0; i < top.length; i++) {
    const t = top[i] as number;
    const b = bottom[i] as number;
    if (b - t < thickness * 0.6) bottom[i] = t + thickness * 0.6;
  }
  const surfaces: InterfaceSurfaces = {
    top: (x, z) => sample(top, size, slices, x, z),
    bottom: (x, z) => sample(bottom, size, slices, x, z),
  };

  const dendrites = placeDendrites(new Rng(seed, 2), o.dendrites, size, slices, thickness, surfaces);
  const taken = dendrites.map((d) => d.bbox);
  const pits = placePits(new Rng(seed, 3), o.pits, size, slices, surfaces, taken);
  const bubbles = placeBubbles(new Rng(seed, 4), o.bubbles, size, slices, surfaces, taken);
  const acquisition = drawAcquisition(new Rng(seed, 5), size);

  return {
    seed,
    size,
    slices,
    voxelSizeUm: o.voxelSizeUm,
    top,
    bottom,
    dendrites,
    pits,
    bubbles,
    acquisition,
    capsulesBySlice: indexCapsules(dendrites, slices),
  };
}

/** Interface height at (x, z), bilinear between stored samples. */
export function interfaceAt(
  surface: Float32Array,
  phantom: Pick<Phantom, 'size' | 'slices'>,
  x: number,
  z: number,
) {
  return sample(surface, phantom.size, phantom.slices, x, z);
}

function validate(o: Required<Omit<PhantomOptions, 'seed'>> & { seed: number }): void {
  const int = (name: string, v: number, lo: number, hi: number) => {
    if (!Number.isInteger(v) || v < lo || v > hi)
      throw new UsageError(`--${name} must be an integer from ${lo} to ${hi}, got ${v}`, {
        option: `--${name}`,
      });
  };
  int('seed', o.seed, 0, 2 ** 53 - 1);
  int('size', o.size, 32, 4096);
  int('slices', o.slices, 1, 65536);
  int('dendrites', o.dendrites, 0, 200);
  int('pits', o.pits, 0, 200);
  int('bubbles', o.bubbles, 0, 200);
  if (!(o.electrolyteFraction >= 0.15 && o.electrolyteFraction <= 0.8))
    throw new UsageError(`electrolyteFraction must be from 0.15 to 0.8, got ${o.electrolyteFraction}`, {
      option: 'electrolyteFraction',
    });
  if (!(o.voxelSizeUm > 0)) throw new UsageError(`--voxel-size must be > 0 µm`, { option: '--voxel-size' });
}

function fillInterface(
  out: Float32Array,
  rng: Rng,
  size: number,
  slices: number,
  base: number,
  scale: number,
): void {
  // Objects keep their size in voxels whatever the field of view (the voxel size is the scanner's),
  // but interface roughness scales with the field so large slices do not look flat.
  // A tilt (the cell is never mounted perfectly level) plus roughness at a few scales.
  const tiltX = rng.uniform(-0.012, 0.012);
  const tiltZ = rng.uniform(-0.012, 0.012);
  const waves = Array.from({ length: 6 }, (_, k) => ({
    amp: (k < 3 ? rng.uniform(1.2, 3) : rng.uniform(0.3, 0.8)) * scale,
    fx: (k < 3 ? rng.uniform(0.5, 2.5) : rng.uniform(4, 10)) / size,
    fz: (k < 3 ? rng.uniform(0.5, 2.5) : rng.uniform(4, 10)) / size,
    phase: rng.uniform(0, 2 * Math.PI),
  }));
  for (let z = 0; z < slices; z++) {
    for (let x = 0; x < size; x++) {
      let h = base + tiltX * (x - size / 2) + tiltZ * (z - slices / 2) * (size / Math.max(slices, 1));
      for (const w of waves) h += w.amp * Math.sin(2 * Math.PI * (w.fx * x + w.fz * z) + w.phase);
      out[z * size + x] = h;
    }
  }
}

function sample(surface: Float32Array, size: number, slices: number, x: number, z: number): number {
  const xc = Math.min(Math.max(x, 0), size - 1);
  const zc = Math.min(Math.max(z, 0), slices - 1);
  const x0 = Math.floor(xc);
  const z0 = Math.floor(zc);
  const x1 = Math.min(x0 + 1, size - 1);
  const z1 = Math.min(z0 + 1, slices - 1);
  const fx = xc - x0;
  const fz = zc - z0;
  const a = surface[z0 * size + x0] as number;
  const b = surface[z0 * size + x1] as number;
  const c = surface[z1 * size + x0] as number;
  const d = surface[z1 * size + x1] as number;
  return (a * (1 - fx) + b * fx) * (1 - fz) + (c * (1 - fx) + d * fx) * fz;
}

function placeDendrites(
  rng: Rng,
  count: number,
  size: number,
  slices: number,
  thickness: number,
  surfaces: InterfaceSurfaces,
): PhantomDendrite[] {
  const out: PhantomDendrite[] = [];
  const spacing = 28;
  const zMargin = Math.min(6, Math.floor(slices / 4));
  for (let i = 0; i < count; i++) {
    // Round-robin habits so any scan with ≥ 3 dendrites shows all of them.
    const morphology = MORPHOLOGIES[i % MORPHOLOGIES.length] as Morphology;
    const electrode: Electrode = rng.next() < 0.5 ? 'top' : 'bottom';
    let rootX = 0;
    let rootZ = 0;
    for (let attempt = 0; attempt < 50; attempt++) {
      rootX = rng.uniform(0.1 * size, 0.9 * size);
      rootZ = rng.uniform(zMargin, Math.max(zMargin + 1, slices - zMargin));
      if (out.every((d) => Math.hypot(d.root.x - rootX, (d.root.z - rootZ) * 0.5) > spacing)) break;
    }
    // Heights span "a few voxels" (mossy) to bridging (the first tree always bridges, so every
    // default scan has a critical case).
    const fraction =
      morphology === 'mossy'
        ? rng.uniform(0.06, 0.22)
        : morphology === 'needle'
          ? rng.uniform(0.25, 0.85)
          : i === 0
            ? 1.2
            : rng.uniform(0.35, 1.2);
    const spec = {
      morphology,
      electrode,
      rootX,
      rootZ,
      targetHeight: fraction * thickness,
      width: size,
      depth: slices,
    };
    // A walk can wander off the volume early; regrow (from the same stream, so still deterministic)
    // until the deposit reaches a good part of its target height.
    let grown = growDendrite(rng, spec, surfaces);
    for (
      let retry = 0;
      retry < 8 && grown.heightVoxels < Math.min(0.5 * spec.targetHeight, thickness * 0.9);
      retry++
    ) {
      const again = growDendrite(rng, spec, surfaces);
      if (again.heightVoxels > grown.heightVoxels) grown = again;
    }
    out.push({
      id: i + 1,
      morphology,
      electrode,
      root: { x: rootX, z: rootZ },
      ...grown,
      bbox: capsuleBox(grown.capsules, size, slices),
    });
  }
  return out;
}

function capsuleBox(capsules: Capsule[], size: number, slices: number): Box {
  const box = {
    xMin: Infinity,
    xMax: -Infinity,
    yMin: Infinity,
    yMax: -Infinity,
    zMin: Infinity,
    zMax: -Infinity,
  };
  for (const c of capsules) {
    box.xMin = Math.min(box.xMin, c.ax - c.r, c.bx - c.r);
    box.xMax = Math.max(box.xMax, c.ax + c.r, c.bx + c.r);
    box.yMin = Math.min(box.yMin, c.ay - c.r, c.by - c.r);
    box.yMax = Math.max(box.yMax, c.ay + c.r, c.by + c.r);
    box.zMin = Math.min(box.zMin, c.az - c.r, c.bz - c.r);
    box.zMax = Math.max(box.zMax, c.az + c.r, c.bz + c.r);
  }
  if (capsules.length === 0) return { xMin: 0, xMax: 0, yMin: 0, yMax: 0, zMin: 0, zMax: 0 };
  return {
    xMin: Math.max(0, Math.floor(box.xMin)),
    xMax: Math.min(size - 1, Math.ceil(box.xMax)),
    yMin: Math.max(0, Math.floor(box.yMin)),
    yMax: Math.min(size - 1, Math.ceil(box.yMax)),
    zMin: Math.max(0, Math.floor(box.zMin)),
    zMax: Math.min(slices - 1, Math.ceil(box.zMax)),
  };
}

function nearTaken(taken: Box[], x: number, y: number, z: number, pad: number): boolean {
  return taken.some(
    (b) =>
      x > b.xMin - pad &&
      x < b.xMax + pad &&
      y > b.yMin - pad &&
      y < b.yMax + pad &&
      z > b.zMin - pad &&
      z < b.zMax + pad,
  );
}

function placePits(
  rng: Rng,
  count: number,
  size: number,
  slices: number,
  surfaces: InterfaceSurfaces,
  taken: Box[],
): Ellipsoid[] {
  const out: Ellipsoid[] = [];
  for (let i = 0; i < count; i++) {
    for (let attempt = 0; attempt < 60; attempt++) {
      const rx = rng.uniform(3, 9);
      const ry = rng.uniform(2, 5);
      const rz = Math.min(rng.uniform(3, 9), Math.max(1.5, slices / 4));
      const cx = rng.uniform(0.08 * size, 0.92 * size);
      const cz = rng.uniform(Math.min(rz, slices / 2), Math.max(slices - rz, slices / 2));
      const fromTop = rng.next() < 0.5;
      // A pit sits in the Li just behind the interface, sometimes breaking through it a little.
      const depth = ry * rng.uniform(0.4, 1.1);
      const cy = fromTop ? surfaces.top(cx, cz) - depth : surfaces.bottom(cx, cz) + depth;
      if (nearTaken(taken, cx, cy, cz, Math.max(rx, rz) + 4)) continue;
      const e = { cx, cy, cz, rx, ry, rz };
      out.push(e);
      taken.push(ellipsoidBox(e));
      break;
    }
  }
  return out;
}

function placeBubbles(
  rng: Rng,
  count: number,
  size: number,
  slices: number,
  surfaces: InterfaceSurfaces,
  taken: Box[],
): Ellipsoid[] {
  const out: Ellipsoid[] = [];
  for (let i = 0; i < count; i++) {
    for (let attempt = 0; attempt < 60; attempt++) {
      const r = rng.uniform(3, 9);
      const rz = Math.min(r, Math.max(1.5, slices / 4));
      const cx = rng.uniform(0.08 * size, 0.92 * size);
      const cz = rng.uniform(Math.min(rz, slices / 2), Math.max(slices - rz, slices / 2));
      const lo = surfaces.top(cx, cz) + r + 3;
      const hi = surfaces.bottom(cx, cz) - r - 3;
      if (hi <= lo) continue;
      const cy = rng.uniform(lo, hi);
      if (nearTaken(taken, cx, cy, cz, r + 4)) continue;
      const e = { cx, cy, cz, rx: r, ry: r * rng.uniform(0.85, 1.0), rz };
      out.push(e);
      taken.push(ellipsoidBox(e));
      break;
    }
  }
  return out;
}

function ellipsoidBox(e: Ellipsoid): Box {
  return {
    xMin: e.cx - e.rx,
    xMax: e.cx + e.rx,
    yMin: e.cy - e.ry,
    yMax: e.cy + e.ry,
    zMin: e.cz - e.rz,
    zMax: e.cz + e.rz,
  };
}

function drawAcquisition(rng: Rng, size: number): Acquisition {
  const rings: Ring[] = Array.from({ length: rng.int(3, 8) }, () => ({
    radius: rng.uniform(0.02, 0.7) * size,
    width: rng.uniform(0.5, 1.5),
    amplitude: rng.uniform(-0.04, 0.04),
  }));
  return {
    muVoid: 0.02,
    muLi: rng.uniform(0.28, 0.34),
    muElectrolyte: rng.uniform(0.58, 0.66),
    cupping: rng.uniform(0.04, 0.1),
    rings,
    blurSigma: rng.uniform(0.6, 1.0),
    offset: rng.uniform(2500, 4000),
    scale: rng.uniform(45000, 52000),
    gain: rng.uniform(15, 25),
    readNoise: rng.uniform(2000, 2800),
    driftLinear: rng.uniform(-0.06, 0.06),
    driftWobble: rng.uniform(0, 0.015),
    driftPeriod: rng.uniform(40, 120),
  };
}

function indexCapsules(dendrites: PhantomDendrite[], slices: number): Int32Array[] {
  const lists: number[][] = Array.from({ length: slices }, () => []);
  dendrites.forEach((d, di) => {
    d.capsules.forEach((c, ci) => {
      const z0 = Math.max(0, Math.floor(Math.min(c.az, c.bz) - c.r - 1));
      const z1 = Math.min(slices - 1, Math.ceil(Math.max(c.az, c.bz) + c.r + 1));
      for (let z = z0; z <= z1; z++) lists[z]?.push(di, ci);
    });
  });
  return lists.map((l) => Int32Array.from(l));
}

function definedOnly<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
