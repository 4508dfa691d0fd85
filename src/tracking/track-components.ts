/**
 * The 3-D connected-component tracker the dendrite monitor runs on each slice's mask as it comes:
 * union-find over slice labels, parts up to `gap` background voxels apart joined, components
 * closed once the scan has passed them. Over 400 lines because its hot path (label a slice, join
 * it to the open components, update their statistics) shares typed-array state that would only be
 * passed back and forth if split; it is checked as a whole against a brute-force 3-D flood fill.
 */
import { ConfigError } from '../errors.ts';
import { checkImageSize } from '../slices/tile-grid.ts';

/** 6: voxels touch through faces only; 26: through faces, edges or corners. */
export type Connectivity = 6 | 26;

export interface ComponentTrackerOptions {
  /** Slice width in pixels. */
  readonly width: number;
  /** Slice height in pixels. */
  readonly height: number;
  /** Which voxels count as touching (default 26: thin, branched dendrites often touch only diagonally). */
  readonly connectivity?: Connectivity;
  /**
   * Background voxels tolerated between two parts of one component, along each axis (default 0;
   * 26-connectivity only): a thin, faint structure the mask shows as fragments stays one.
   */
  readonly gap?: number;
}

/** The largest `gap` the tracker takes: more would join neighbouring dendrites, and costs (3 + 2·gap)² lookups per voxel. */
export const MAX_GAP = 3;

/** Inclusive voxel bounds of a component. */
export interface BBox3 {
  readonly zMin: number;
  readonly zMax: number;
  readonly yMin: number;
  readonly yMax: number;
  readonly xMin: number;
  readonly xMax: number;
}

export interface Voxel {
  readonly x: number;
  readonly y: number;
  readonly z: number;
}

/** A snapshot of one 3-D component; later slices never change a snapshot already handed out. */
export interface TrackedComponent {
  /** Stable id: the smallest id of all parts merged into it. */
  readonly id: number;
  readonly voxelCount: number;
  readonly bbox: BBox3;
  /** Sum of the probabilities of its voxels (uint8 probabilities are read as value/255). */
  readonly probSum: number;
  readonly probMax: number;
  /** `probSum / voxelCount`. */
  readonly probMean: number;
  /** The voxel that reached `bbox.yMin` (the lowest z, then the lowest x, among those that did). */
  readonly yMinVoxel: Voxel;
  /** The voxel that reached `bbox.yMax` (the lowest z, then the lowest x, among those that did). */
  readonly yMaxVoxel: Voxel;
  /** True once the component is absent from `gap + 1` slices in a row: it can no longer grow. */
  readonly closed: boolean;
}

/** Why a component is in a slice's `changed` list. */
export type ComponentChange = 'created' | 'grew' | 'merged';

export interface ChangedComponent extends TrackedComponent {
  readonly change: ComponentChange;
}

/** Components that met in a slice: `absorbed` ids are retired, their voxels now belong to `id`. */
export interface ComponentMerge {
  readonly id: number;
  readonly absorbed: readonly number[];
}

/** What one slice did to the tracked components. Every list is sorted by id. */
export interface SliceUpdate {
  readonly z: number;
  /** Every component present in this slice: new, grown, or grown by absorbing others. */
  readonly changed: readonly ChangedComponent[];
  readonly merges: readonly ComponentMerge[];
  /** Components the next slice can no longer reach (absent from the last `gap + 1` slices): final snapshots. */
  readonly closed: readonly TrackedComponent[];
}

/** Incrementally labels 3-D connected components, one slice at a time. */
export interface ComponentTracker {
  /** The last slice added, or undefined before the first. */
  readonly lastZ: number | undefined;
  /**
   * Add slice `z` (greater than the last one; a skipped z closes everything open): `mask` is nonzero on
   * foreground pixels, `prob` holds their probabilities (float, or uint8 read as value/255).
   */
  addSlice(z: number, mask: Uint8Array, prob: Float32Array | Uint8Array): SliceUpdate;
  /** Snapshots of the open components (those present in the last slice), by id. */
  components(): TrackedComponent[];
  /** Close every open component (the scan ended) and return their final snapshots, by id. */
  closeAll(): TrackedComponent[];
}

interface ComponentState {
  readonly id: number;
  voxelCount: number;
  zMin: number;
  zMax: number;
  yMin: number;
  yMax: number;
  xMin: number;
  xMax: number;
  probSum: number;
  probMax: number;
  yMinX: number;
  yMinZ: number;
  yMaxX: number;
  yMaxZ: number;
}

/** Root of `a`, halving the path as it goes. */
function find(parent: Int32Array, a: number): number {
  let x = a;
  while (parent[x] !== x) {
    const up = parent[parent[x]!]!;
    parent[x] = up;
    x = up;
  }
  return x;
}

/** Join the sets of `a` and `b`; the smaller index becomes the root. */
function union(parent: Int32Array, a: number, b: number): void {
  const ra = find(parent, a);
  const rb = find(parent, b);
  if (ra < rb) parent[rb] = ra;
  else if (rb < ra) parent[ra] = rb;
}

/** `array` if it holds `needed` values, else a copy at least twice as long. */
function grown<T extends Int32Array | Float64Array>(array: T, needed: number): T {
  if (array.length >= needed) return array;
  const bigger = new (array.constructor as new (n: number) => T)(Math.max(needed, array.length * 2));
  bigger.set(array);
  return bigger;
}

function snapshot(s: ComponentState, closed: boolean): TrackedComponent;
function snapshot(s: ComponentState, closed: boolean, change: ComponentChange): ChangedComponent;
function snapshot(
  s: ComponentState,
  closed: boolean,
  change?: ComponentChange,
): TrackedComponent | ChangedComponent {
  const bbox = { zMin: s.zMin, zMax: s.zMax, yMin: s.yMin, yMax: s.yMax, xMin: s.xMin, xMax: s.xMax };
  const yMinVoxel = { x: s.yMinX, y: s.yMin, z: s.yMinZ };
  const yMaxVoxel = { x: s.yMaxX, y: s.yMax, z: s.yMaxZ };
  const { id, voxelCount, probSum, probMax } = s;
  const probMean = probSum / voxelCount;
  // Two literals rather than adding `change` afterwards: each shape stays fixed for the JIT.
  if (change === undefined)
    return { id, voxelCount, bbox, probSum, probMax, probMean, yMinVoxel, yMaxVoxel, closed };
  return { id, voxelCount, bbox, probSum, probMax, probMean, yMinVoxel, yMaxVoxel, closed, change };
}

/** Fold `b` into `a`; ties on extreme y go to the lower z, then the lower x, so merge order never matters. */
function absorb(a: ComponentState, b: ComponentState): void {
  a.voxelCount += b.voxelCount;
  a.zMin = Math.min(a.zMin, b.zMin);
  a.zMax = Math.max(a.zMax, b.zMax);
  a.xMin = Math.min(a.xMin, b.xMin);
  a.xMax = Math.max(a.xMax, b.xMax);
  a.probSum += b.probSum;
  a.probMax = Math.max(a.probMax, b.probMax);
  if (
    b.yMin < a.yMin ||
    (b.yMin === a.yMin && (b.yMinZ < a.yMinZ || (b.yMinZ === a.yMinZ && b.yMinX < a.yMinX)))
  ) {
    a.yMin = b.yMin;
    a.yMinZ = b.yMinZ;
    a.yMinX = b.yMinX;
  }
  if (
    b.yMax > a.yMax ||
    (b.yMax === a.yMax && (b.yMaxZ < a.yMaxZ || (b.yMaxZ === a.yMaxZ && b.yMaxX < a.yMaxX)))
  ) {
    a.yMax = b.yMax;
    a.yMaxZ = b.yMaxZ;
    a.yMaxX = b.yMaxX;
  }
}

const byId = (a: { id: number }, b: { id: number }): number => a.id - b.id;

/** A union-find forest in a growable typed array (node 0 unused). */
interface Forest {
  parent: Int32Array;
}

/** A slice a new slice may link to: its group per pixel (0 for background) and each group's component id. */
interface HistorySlice {
  z: number;
  groups: Int32Array;
  idOfGroup: Int32Array;
}

/**
 * Pass 1 over a slice: provisional labels in `cur`, unions between in-plane pixels already seen
 * within `reach` (rows above and pixels to the left; with reach 1 and `full` off, only left and up),
 * and unions with the open components seen in the recent slices within `reach` in x and y (only the
 * pixel underneath when `full` is off). `nodeOf` gives the union-find node of an open component id.
 * Returns the next free node.
 */
function labelSlice(
  mask: Uint8Array,
  cur: Int32Array,
  history: readonly HistorySlice[],
  nodeOf: (id: number) => number,
  firstFree: number,
  forest: Forest,
  width: number,
  height: number,
  full: boolean,
  reach: number,
): number {
  let parent = forest.parent;
  let next = firstFree;
  const join = (label: number, other: number): number => {
    if (label === 0) return other;
    if (other !== label) union(parent, label, other);
    return label;
  };
  for (let y = 0; y < height; y++) {
    const row = y * width;
    for (let x = 0; x < width; x++) {
      const p = row + x;
      if (mask[p] === 0) {
        cur[p] = 0;
        continue;
      }
      let label = 0;
      if (!full) {
        if (x > 0 && cur[p - 1] !== 0) label = cur[p - 1] as number;
        if (y > 0 && cur[p - width] !== 0) label = join(label, cur[p - width] as number);
      } else {
        const x0 = x >= reach ? x - reach : 0;
        const x1 = x + reach < width ? x + reach : width - 1;
        for (let yy = y >= reach ? y - reach : 0; yy < y; yy++) {
          const base = yy * width;
          for (let xx = x0; xx <= x1; xx++) {
            const q = cur[base + xx] as number;
            if (q !== 0) label = join(label, q);
          }
        }
        for (let xx = x0; xx < x; xx++) {
          const q = cur[row + xx] as number;
          if (q !== 0) label = join(label, q);
        }
      }
      if (label === 0) {
        if (next >= parent.length) {
          parent = grown(parent, next + 1);
          forest.parent = parent;
        }
        parent[next] = next;
        label = next++;
      }
      cur[p] = label;
      for (const h of history) {
        const { groups, idOfGroup } = h;
        if (!full) {
          const g = groups[p] as number;
          if (g !== 0) union(parent, label, nodeOf(idOfGroup[g] as number));
          continue;
        }
        const y0 = y >= reach ? y - reach : 0;
        const y1 = y + reach < height ? y + reach : height - 1;
        const x0 = x >= reach ? x - reach : 0;
        const x1 = x + reach < width ? x + reach : width - 1;
        for (let yy = y0; yy <= y1; yy++) {
          const base = yy * width;
          for (let xx = x0; xx <= x1; xx++) {
            const g = groups[base + xx] as number;
            if (g !== 0) union(parent, label, nodeOf(idOfGroup[g] as number));
          }
        }
      }
    }
  }
  return next;
}

/** Per-group statistics of one slice, in growable typed arrays indexed by group (1..groups). */
class GroupStats {
  count = new Int32Array(256);
  xMin = new Int32Array(256);
  xMax = new Int32Array(256);
  yMin = new Int32Array(256);
  yMax = new Int32Array(256);
  yMinX = new Int32Array(256);
  yMaxX = new Int32Array(256);
  /** Smallest id among the previous-slice components the group continues; 0 for none. */
  minId = new Int32Array(256);
  /** How many previous-slice components the group continues. */
  parts = new Int32Array(256);
  sum = new Float64Array(256);
  max = new Float64Array(256);

  ensure(needed: number): void {
    if (this.count.length >= needed) return;
    this.count = grown(this.count, needed);
    this.xMin = grown(this.xMin, needed);
    this.xMax = grown(this.xMax, needed);
    this.yMin = grown(this.yMin, needed);
    this.yMax = grown(this.yMax, needed);
    this.yMinX = grown(this.yMinX, needed);
    this.yMaxX = grown(this.yMaxX, needed);
    this.minId = grown(this.minId, needed);
    this.parts = grown(this.parts, needed);
    this.sum = grown(this.sum, needed);
    this.max = grown(this.max, needed);
  }
}

/**
 * Pass 2: one group per union-find root that owns pixels, numbered in raster order of its first
 * pixel, with its statistics; rewrites `cur` to group indices, ready to serve as the next `prev`.
 * Returns the number of groups.
 */
function collectGroups(
  cur: Int32Array,
  parent: Int32Array,
  groupOf: Int32Array,
  prob: Float32Array | Uint8Array,
  stats: GroupStats,
  width: number,
  height: number,
): number {
  const { count, xMin, xMax, yMin, yMax, yMinX, yMaxX, minId, parts, sum, max } = stats;
  let groups = 0;
  for (let y = 0; y < height; y++) {
    const row = y * width;
    for (let x = 0; x < width; x++) {
      const p = row + x;
      const label = cur[p]!;
      if (label === 0) continue;
      const root = find(parent, label);
      let g = groupOf[root]!;
      const v = prob[p]!;
      if (g === 0) {
        g = ++groups;
        groupOf[root] = g;
        count[g] = 1;
        xMin[g] = x;
        xMax[g] = x;
        yMin[g] = y; // raster order: a group's first pixel is its topmost, leftmost one
        yMax[g] = y;
        yMinX[g] = x;
        yMaxX[g] = x;
        minId[g] = 0;
        parts[g] = 0;
        sum[g] = v;
        max[g] = v;
      } else {
        count[g] = count[g]! + 1;
        sum[g] = sum[g]! + v;
        if (v > max[g]!) max[g] = v;
        if (x < xMin[g]!) xMin[g] = x;
        if (x > xMax[g]!) xMax[g] = x;
        if (y > yMax[g]!) {
          yMax[g] = y;
          yMaxX[g] = x;
        }
      }
      cur[p] = g;
    }
  }
  return groups;
}

/**
 * Labels slice after slice, keeping only the labels of the last `1 + gap` slices in memory. Each
 * slice's pixels are labelled in one raster pass over a union-find whose first nodes stand for the
 * open components, so 2-D labelling, linking across z and merging (a U shape closing) are one
 * step. Two foreground voxels touch when they lie within `1 + gap` voxels of each other along every
 * axis (26-connectivity; gap 0 is plain 26-connectivity), so a thin structure the mask shows as
 * fragments separated by a voxel or two of background stays one component. A component's id is the
 * smallest id among its parts, and new ids are handed out in raster order of their first pixel, so
 * ids depend only on the volume.
 */
class SliceTracker implements ComponentTracker {
  readonly #width: number;
  readonly #height: number;
  readonly #full: boolean;
  readonly #gap: number;
  readonly #live = new Map<number, ComponentState>();
  /** Absorbed id → the id it was merged into (older slices' labels still carry absorbed ids). */
  readonly #alias = new Map<number, number>();
  #nextId = 1;
  #lastZ: number | undefined;
  /** The recent slices' labels, oldest first; their buffers are reused once they fall out. */
  #history: HistorySlice[] = [];
  #spare: Int32Array[] = [];
  readonly #forest: Forest = { parent: new Int32Array(1024) };
  #groupOf = new Int32Array(1024);
  /** Union-find node of each open component id during a slice; 0 otherwise. */
  #nodeById = new Int32Array(1024);
  readonly #stats = new GroupStats();

  constructor(width: number, height: number, connectivity: Connectivity, gap: number) {
    this.#width = width;
    this.#height = height;
    this.#full = connectivity === 26;
    this.#gap = gap;
  }

  get lastZ(): number | undefined {
    return this.#lastZ;
  }

  /** The id an old label now goes by (ids only ever merge into smaller ones). */
  #resolve(id: number): number {
    let r = id;
    for (let up = this.#alias.get(r); up !== undefined; up = this.#alias.get(r)) r = up;
    if (r !== id) this.#alias.set(id, r);
    return r;
  }

  addSlice(z: number, mask: Uint8Array, prob: Float32Array | Uint8Array): SliceUpdate {
    const width = this.#width;
    const height = this.#height;
    const n = width * height;
    if (!Number.isInteger(z) || (this.#lastZ !== undefined && z <= this.#lastZ)) {
      throw new RangeError(`slice z=${z} must be an integer greater than the last slice (${this.#lastZ})`);
    }
    if (mask.length !== n) throw new RangeError(`slice ${z}: mask has ${mask.length} values, expected ${n}`);
    if (prob.length !== n) throw new RangeError(`slice ${z}: prob has ${prob.length} values, expected ${n}`);
    const gap = this.#gap;
    const closed: TrackedComponent[] = [];
    // Beyond the gap nothing can touch the new slice: close everything first.
    if (this.#lastZ !== undefined && z > this.#lastZ + 1 + gap) closed.push(...this.closeAll());
    else if (this.#lastZ !== undefined && z > this.#lastZ + 1) closed.push(...this.#closeBefore(z - 1 - gap));
    this.#lastZ = z;
    this.#history = this.#history.filter((h) => {
      if (h.z >= z - 1 - gap) return true;
      this.#spare.push(h.groups);
      return false;
    });

    // Union-find nodes 1..open stand for the open components, in id order; then provisional labels.
    const openIds = [...this.#live.keys()].sort((a, b) => a - b);
    // A typed array rather than a Map: labelSlice asks once per labelled pixel in each window.
    const nodeById = grown(this.#nodeById, this.#nextId + 1);
    this.#nodeById = nodeById;
    for (const [k, id] of openIds.entries()) nodeById[id] = k + 1;
    const nodeOf = (id: number): number =>
      (nodeById[id] as number) || (nodeById[this.#resolve(id)] as number);
    const open = openIds.length;
    // Every pixel of it is written by labelSlice, so a reused buffer needs no clearing.
    const cur = this.#spare.pop() ?? new Int32Array(n);
    const forest = this.#forest;
    forest.parent = grown(forest.parent, open + 2);
    for (let i = 1; i <= open; i++) forest.parent[i] = i;
    const next = labelSlice(
      mask,
      cur,
      this.#history,
      nodeOf,
      open + 1,
      forest,
      width,
      height,
      this.#full,
      1 + gap,
    );
    const parent = forest.parent;
    const groupOf = grown(this.#groupOf, next);
    this.#groupOf = groupOf;
    // Groups never outnumber provisional labels.
    const stats = this.#stats;
    stats.ensure(next - open + 1);
    const groups = collectGroups(cur, parent, groupOf, prob, stats, width, height);

    // Which open components each group continues.
    const { minId, parts } = stats;
    for (let k = 1; k <= open; k++) {
      const g = groupOf[find(parent, k)]!;
      if (g === 0) continue;
      const id = openIds[k - 1]!;
      parts[g] = parts[g]! + 1;
      if (minId[g] === 0 || id < minId[g]!) minId[g] = id;
    }
    const merges = new Map<number, number[]>();
    for (let k = 1; k <= open; k++) {
      const g = groupOf[find(parent, k)]!;
      const id = openIds[k - 1]!;
      if (g === 0 || id === minId[g]) continue;
      const survivor = minId[g]!;
      absorb(this.#live.get(survivor)!, this.#live.get(id)!);
      this.#live.delete(id);
      this.#alias.set(id, survivor);
      const list = merges.get(survivor);
      if (list) list.push(id);
      else merges.set(survivor, [id]);
    }
    groupOf.fill(0, 0, next);
    for (const id of openIds) nodeById[id] = 0;

    const scale = prob instanceof Uint8Array ? 1 / 255 : 1;
    const idOfGroup = new Int32Array(groups + 1);
    const changed: ChangedComponent[] = [];
    for (let g = 1; g <= groups; g++) {
      const sum = stats.sum[g]! * scale;
      const max = stats.max[g]! * scale;
      let id = minId[g]!;
      let change: ComponentChange;
      let state: ComponentState;
      if (id === 0) {
        id = this.#nextId++;
        change = 'created';
        state = {
          id,
          voxelCount: stats.count[g]!,
          zMin: z,
          zMax: z,
          yMin: stats.yMin[g]!,
          yMax: stats.yMax[g]!,
          xMin: stats.xMin[g]!,
          xMax: stats.xMax[g]!,
          probSum: sum,
          probMax: max,
          yMinX: stats.yMinX[g]!,
          yMinZ: z,
          yMaxX: stats.yMaxX[g]!,
          yMaxZ: z,
        };
        this.#live.set(id, state);
      } else {
        change = parts[g]! > 1 ? 'merged' : 'grew';
        state = this.#live.get(id)!;
        // This slice lies beyond every earlier one, so a tie on extreme y keeps the earlier voxel.
        state.voxelCount += stats.count[g]!;
        state.zMax = z;
        state.xMin = Math.min(state.xMin, stats.xMin[g]!);
        state.xMax = Math.max(state.xMax, stats.xMax[g]!);
        state.probSum += sum;
        state.probMax = Math.max(state.probMax, max);
        if (stats.yMin[g]! < state.yMin) {
          state.yMin = stats.yMin[g]!;
          state.yMinX = stats.yMinX[g]!;
          state.yMinZ = z;
        }
        if (stats.yMax[g]! > state.yMax) {
          state.yMax = stats.yMax[g]!;
          state.yMaxX = stats.yMaxX[g]!;
          state.yMaxZ = z;
        }
      }
      idOfGroup[g] = id;
      changed.push(snapshot(state, false, change));
    }
    // Components the next slice can no longer reach are done.
    closed.push(...this.#closeBefore(z - gap));

    // This slice's groups (collectGroups left them in `cur`) and their ids, for the slices after it.
    this.#history.push({ z, groups: cur, idOfGroup });
    return {
      z,
      changed: changed.sort(byId),
      merges: [...merges]
        .map(([id, absorbed]) => ({ id, absorbed: absorbed.sort((a, b) => a - b) }))
        .sort(byId),
      closed: closed.sort(byId),
    };
  }

  /** Close the open components last seen before slice `z`. */
  #closeBefore(z: number): TrackedComponent[] {
    const closed: TrackedComponent[] = [];
    for (const [id, s] of this.#live) {
      if (s.zMax >= z) continue;
      closed.push(snapshot(s, true));
      this.#live.delete(id);
    }
    if (closed.length > 0 && this.#live.size === 0) this.#alias.clear();
    return closed;
  }

  components(): TrackedComponent[] {
    return [...this.#live.values()].map((s) => snapshot(s, false)).sort(byId);
  }

  closeAll(): TrackedComponent[] {
    const closed = [...this.#live.values()].map((s) => snapshot(s, true)).sort(byId);
    this.#live.clear();
    this.#alias.clear();
    this.#spare.push(...this.#history.map((h) => h.groups));
    this.#history = [];
    return closed;
  }
}

/** Create an incremental 3-D connected-component tracker; options are checked here, once. */
export function createComponentTracker(options: ComponentTrackerOptions): ComponentTracker {
  const { width, height, connectivity = 26, gap = 0 } = options;
  if (!Number.isInteger(width) || width < 1) {
    throw new ConfigError(`tracker option "width" must be an integer >= 1, got ${width}`, {
      option: 'width',
      stage: 'track',
    });
  }
  if (!Number.isInteger(height) || height < 1) {
    throw new ConfigError(`tracker option "height" must be an integer >= 1, got ${height}`, {
      option: 'height',
      stage: 'track',
    });
  }
  if (connectivity !== 6 && connectivity !== 26) {
    throw new ConfigError(`tracker option "connectivity" must be 6 or 26, got ${String(connectivity)}`, {
      option: 'connectivity',
      stage: 'track',
    });
  }
  if (!Number.isInteger(gap) || gap < 0 || gap > MAX_GAP || (gap > 0 && connectivity !== 26)) {
    throw new ConfigError(
      `tracker option "gap" must be an integer from 0 to ${MAX_GAP} (above 0 only with connectivity 26), got ${String(gap)}`,
      { option: 'gap', stage: 'track' },
    );
  }
  checkImageSize(width, height);
  return new SliceTracker(width, height, connectivity, gap);
}
