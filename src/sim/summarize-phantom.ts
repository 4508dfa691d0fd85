import type { Phantom } from './phantom.ts';

/** The ground truth's objects as plain JSON: what each dendrite is, where, and how tall. */
export function summarizePhantom(phantom: Phantom) {
  const thickness = meanThickness(phantom);
  return {
    seed: phantom.seed,
    size: phantom.size,
    slices: phantom.slices,
    voxelSizeUm: phantom.voxelSizeUm,
    electrolyteThicknessVoxels: round(thickness),
    dendrites: phantom.dendrites.map((d) => ({
      id: d.id,
      morphology: d.morphology,
      electrode: d.electrode,
      root: { x: round(d.root.x), z: round(d.root.z) },
      heightVoxels: round(d.heightVoxels),
      heightFraction: round(Math.min(1, d.heightVoxels / thickness)),
      bridges: d.bridges,
      bbox: d.bbox,
      segments: d.capsules.length,
    })),
    pits: phantom.pits.map(roundAll),
    bubbles: phantom.bubbles.map(roundAll),
  };
}

function meanThickness(p: Phantom): number {
  let sum = 0;
  for (let i = 0; i < p.top.length; i++) sum += (p.bottom[i] as number) - (p.top[i] as number);
  return sum / p.top.length;
}

function round(v: number): number {
  return Math.round(v * 100) / 100;
}

function roundAll<T extends object>(o: T): T {
  return Object.fromEntries(
    Object.entries(o).map(([k, v]) => [k, typeof v === 'number' ? round(v) : v]),
  ) as T;
}
