import type { Rng } from './rng.ts';

/** The three growth habits seen in Li|polymer|Li cells. */
export type Morphology = 'tree' | 'mossy' | 'needle';
export const MORPHOLOGIES: readonly Morphology[] = ['tree', 'mossy', 'needle'];

/** A segment with a radius: dendrites are unions of these. Coordinates in voxels (x, y, z). */
export interface Capsule {
  ax: number;
  ay: number;
  az: number;
  bx: number;
  by: number;
  bz: number;
  r: number;
}

/** Which electrode a dendrite grows from: `top` grows towards +y, `bottom` towards −y. */
export type Electrode = 'top' | 'bottom';

/** The surfaces that bound the electrolyte, as functions of (x, z). */
export interface InterfaceSurfaces {
  top(x: number, z: number): number;
  bottom(x: number, z: number): number;
}

export interface GrowthSpec {
  morphology: Morphology;
  electrode: Electrode;
  rootX: number;
  rootZ: number;
  /** Height to reach into the electrolyte, in voxels; ≥ the local thickness means it bridges. */
  targetHeight: number;
  /** Volume bounds the walk must stay inside (x in [0, width), z in [0, depth)). */
  width: number;
  depth: number;
}

export interface GrownDendrite {
  capsules: Capsule[];
  /** Largest distance reached into the electrolyte from the root's interface, voxels. */
  heightVoxels: number;
  /** Whether it touched the opposite electrode. */
  bridges: boolean;
}

interface Habit {
  radius: [number, number];
  minRadius: number;
  step: number;
  noise: number;
  bias: number;
  branchProbability: number;
  branchSpread: number;
  branchTaper: number;
  /** Sideways component of the first direction: needles lean so they cross many slices. */
  lean: number;
  maxCapsules: number;
}

// Parameters chosen so that the three habits look distinct at 0.5–1 µm voxels: trees are thick,
// forked and tall; mossy deposits are low, dense and round; needles are thin, straight and leaning.
const HABITS: Record<Morphology, Habit> = {
  tree: {
    radius: [1.6, 3],
    minRadius: 0.6,
    step: 2,
    noise: 0.22,
    bias: 0.35,
    branchProbability: 0.07,
    branchSpread: 1.0,
    branchTaper: 0.72,
    lean: 0.15,
    maxCapsules: 2500,
  },
  mossy: {
    radius: [1, 2.2],
    minRadius: 0.6,
    step: 1.5,
    noise: 0.75,
    bias: 0.15,
    branchProbability: 0.22,
    branchSpread: 1.4,
    branchTaper: 0.85,
    lean: 0.4,
    maxCapsules: 1500,
  },
  needle: {
    radius: [0.5, 1],
    minRadius: 0.5,
    step: 2,
    noise: 0.05,
    bias: 0.04,
    branchProbability: 0.01,
    branchSpread: 0.5,
    branchTaper: 0.9,
    lean: 0.55,
    maxCapsules: 400,
  },
};

interface Walker {
  x: number;
  y: number;
  z: number;
  dx: number;
  dy: number;
  dz: number;
  r: number;
  budget: number;
}

/** Grow one dendrite by a branching random walk biased into the electrolyte. */
export function growDendrite(rng: Rng, spec: GrowthSpec, surfaces: InterfaceSurfaces): GrownDendrite {
  const habit = HABITS[spec.morphology];
  const sign = spec.electrode === 'top' ? 1 : -1;
  const rootSurface =
    spec.electrode === 'top' ? surfaces.top(spec.rootX, spec.rootZ) : surfaces.bottom(spec.rootX, spec.rootZ);
  // Start two voxels inside the Li so the deposit is rooted in its electrode, as real ones are.
  const start: Walker = {
    x: spec.rootX,
    y: rootSurface - 2 * sign,
    z: spec.rootZ,
    ...unit(habit.lean * rng.normal(), sign, habit.lean * (rng.next() < 0.5 ? -1 : 1) * (0.5 + rng.next())),
    r: rng.uniform(habit.radius[0], habit.radius[1]),
    budget: Math.ceil((spec.targetHeight * 2.5) / habit.step) + 8,
  };
  const capsules: Capsule[] = [];
  const walkers: Walker[] = [start];
  let heightVoxels = 0;
  let bridges = false;
  const margin = 2;

  while (walkers.length > 0 && capsules.length < habit.maxCapsules) {
    const w = walkers.pop() as Walker;
    for (let i = 0; i < w.budget && capsules.length < habit.maxCapsules; i++) {
      const d = unit(
        w.dx + habit.noise * rng.normal(),
        w.dy + habit.noise * rng.normal() + habit.bias * sign,
        w.dz + habit.noise * rng.normal(),
      );
      // Li deposits cannot grow back into their own electrode: turn such a step into the electrolyte.
      const homeHere = spec.electrode === 'top' ? surfaces.top(w.x, w.z) : surfaces.bottom(w.x, w.z);
      if ((w.y - homeHere) * sign < 1 && d.dy * sign < 0) d.dy = -d.dy;
      const nx = w.x + d.dx * habit.step;
      const ny = w.y + d.dy * habit.step;
      const nz = w.z + d.dz * habit.step;
      if (nx < margin || nx >= spec.width - margin || nz < margin || nz >= spec.depth - margin) break;
      const home = spec.electrode === 'top' ? surfaces.top(nx, nz) : surfaces.bottom(nx, nz);
      if ((ny - home) * sign < -3) continue;
      capsules.push({ ax: w.x, ay: w.y, az: w.z, bx: nx, by: ny, bz: nz, r: w.r });
      w.x = nx;
      w.y = ny;
      w.z = nz;
      w.dx = d.dx;
      w.dy = d.dy;
      w.dz = d.dz;
      const height = (ny - rootSurface) * sign;
      if (height > heightVoxels) heightVoxels = height;
      const opposite = spec.electrode === 'top' ? surfaces.bottom(nx, nz) : surfaces.top(nx, nz);
      if ((opposite - ny) * sign <= 0.5) {
        bridges = true;
        break;
      }
      if (height >= spec.targetHeight) break;
      if (rng.next() < habit.branchProbability) {
        const side = unit(rng.normal(), rng.normal() * 0.3, rng.normal());
        walkers.push({
          x: nx,
          y: ny,
          z: nz,
          ...unit(d.dx + habit.branchSpread * side.dx, d.dy, d.dz + habit.branchSpread * side.dz),
          r: Math.max(habit.minRadius, w.r * habit.branchTaper),
          budget: Math.ceil((w.budget - i) * 0.6),
        });
      }
      w.r = Math.max(habit.minRadius, w.r * 0.992);
    }
  }
  return { capsules, heightVoxels: Math.max(0, heightVoxels), bridges };
}

function unit(dx: number, dy: number, dz: number): { dx: number; dy: number; dz: number } {
  const n = Math.hypot(dx, dy, dz) || 1;
  return { dx: dx / n, dy: dy / n, dz: dz / n };
}
