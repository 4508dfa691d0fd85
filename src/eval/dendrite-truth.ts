import type { AlertRules } from '../alerts/alert-rules.ts';
import { severityFor } from '../alerts/alert-rules.ts';
import type { Morphology } from '../sim/grow-dendrite.ts';
import type { Phantom } from '../sim/phantom.ts';
import { dendriteOwners } from '../sim/render-slice.ts';

/** One simulated dendrite as the ground truth knows it, voxel by voxel. */
export interface TruthDendrite {
  /** The phantom's id (as in `truth.json`). */
  readonly id: number;
  readonly morphology: Morphology;
  readonly electrode: 'top' | 'bottom';
  /** How far it reaches into the electrolyte, as `truth.json` says: height over the mean thickness, at most 1. */
  readonly heightFraction: number;
  readonly bridges: boolean;
  /** Its truth voxels, as `z * size * size + y * size + x`, ascending. */
  readonly voxels: Int32Array;
  /** Truth voxels in slices 0…z (index z). */
  readonly voxelsUpTo: Int32Array;
  /**
   * Height reached in slices 0…z (index z), measured as the daemon measures a component: from the
   * local interface of its electrode, over the local thickness there.
   */
  readonly heightFractionUpTo: Float32Array;
  /**
   * How close slices 0…z (index z) come to its electrode: the least distance, in voxels, from a truth
   * voxel to the interface it grows from (Infinity before its first voxel). The monitor calls a
   * component rooted when its electrode-side end lies within `rootToleranceVoxels` of the interface;
   * a branch that leans into the scan before its trunk is not rooted yet, for the truth as for the
   * daemon.
   */
  readonly rootDistanceUpTo: Float32Array;
}

/** Collects the ground truth of one phantom, one slice of labels at a time (z ascending). */
export class DendriteTruth {
  readonly #phantom: Phantom;
  readonly #voxels: number[][];
  readonly #count: Int32Array[];
  readonly #height: Float32Array[];
  readonly #root: Float32Array[];
  #next = 0;

  constructor(phantom: Phantom) {
    this.#phantom = phantom;
    const k = phantom.dendrites.length;
    this.#voxels = Array.from({ length: k }, () => []);
    this.#count = Array.from({ length: k }, () => new Int32Array(phantom.slices));
    this.#height = Array.from({ length: k }, () => new Float32Array(phantom.slices));
    this.#root = Array.from({ length: k }, () => new Float32Array(phantom.slices));
  }

  /** Add slice z's labels (from `renderSlice`). */
  addSlice(z: number, labels: Uint8Array): void {
    if (z !== this.#next)
      throw new RangeError(`truth slices must come in order: expected ${this.#next}, got ${z}`);
    this.#next++;
    const p = this.#phantom;
    const size = p.size;
    const owners = dendriteOwners(p, z, labels);
    const counted = new Int32Array(p.dendrites.length);
    const reached = new Float32Array(p.dendrites.length);
    const nearest = new Float32Array(p.dendrites.length).fill(Number.POSITIVE_INFINITY);
    for (let i = 0; i < owners.length; i++) {
      const o = owners[i] as number;
      if (o === 0) continue;
      const d = o - 1;
      const x = i % size;
      const y = (i - x) / size;
      (this.#voxels[d] as number[]).push(z * size * size + i);
      counted[d] = (counted[d] as number) + 1;
      const top = p.top[z * size + x] as number;
      const bottom = p.bottom[z * size + x] as number;
      const thickness = bottom - top;
      const fromTop = p.dendrites[d]?.electrode === 'top';
      const h = fromTop ? y + 0.5 - top : bottom - (y - 0.5);
      const f = thickness > 0 ? Math.min(1, Math.max(0, h / thickness)) : 0;
      if (f > (reached[d] as number)) reached[d] = f;
      // As the monitor measures a component's electrode-side end: its row against the interface there.
      const gap = fromTop ? y - top : bottom - y;
      if (gap < (nearest[d] as number)) nearest[d] = gap;
    }
    for (let d = 0; d < p.dendrites.length; d++) {
      const count = this.#count[d] as Int32Array;
      const height = this.#height[d] as Float32Array;
      count[z] = (z > 0 ? (count[z - 1] as number) : 0) + (counted[d] as number);
      height[z] = Math.max(z > 0 ? (height[z - 1] as number) : 0, reached[d] as number);
      const root = this.#root[d] as Float32Array;
      root[z] = Math.min(z > 0 ? (root[z - 1] as number) : Number.POSITIVE_INFINITY, nearest[d] as number);
    }
  }

  /** The dendrites, once every slice is in. */
  dendrites(): TruthDendrite[] {
    const p = this.#phantom;
    if (this.#next !== p.slices)
      throw new RangeError(`truth has ${this.#next} of ${p.slices} slices; add them all first`);
    let thickness = 0;
    for (let i = 0; i < p.top.length; i++) thickness += (p.bottom[i] as number) - (p.top[i] as number);
    thickness /= p.top.length;
    return p.dendrites.map((d, k) => ({
      id: d.id,
      morphology: d.morphology,
      electrode: d.electrode,
      heightFraction: Math.min(1, d.heightVoxels / thickness),
      bridges: d.bridges,
      voxels: Int32Array.from(this.#voxels[k] as number[]),
      voxelsUpTo: this.#count[k] as Int32Array,
      heightFractionUpTo: this.#height[k] as Float32Array,
      rootDistanceUpTo: this.#root[k] as Float32Array,
    }));
  }
}

/**
 * The first slice at which a truth dendrite, as acquired so far, meets the alert rules (its truth
 * voxels and height up to that slice, rooted once a voxel so far lies within `rootToleranceVoxels`
 * of its interface, full confidence); undefined if it never does.
 */
export function qualifyingSlice(d: TruthDendrite, rules: AlertRules): number | undefined {
  for (let z = 0; z < d.voxelsUpTo.length; z++) {
    const severity = severityFor(rules, {
      voxelCount: d.voxelsUpTo[z] as number,
      confidence: 1,
      heightFraction: d.heightFractionUpTo[z] as number,
      rooted: (d.rootDistanceUpTo[z] as number) <= rules.rootToleranceVoxels,
    });
    if (severity) return z;
  }
  return undefined;
}
