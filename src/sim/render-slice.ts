import type { Morphology } from './grow-dendrite.ts';
import type { Phantom } from './phantom.ts';
import { Rng } from './rng.ts';

/** Ground-truth classes, voxel for voxel with the image. */
export const LABEL = Object.freeze({ background: 0, dendrite: 1, pit: 2, bubble: 3 });

/** One reconstructed slice and its ground truth. */
export interface RenderedSlice {
  /** uint16 intensities, row-major (y, x). */
  image: Uint16Array;
  /** 0 background, 1 dendrite, 2 pit, 3 bubble. */
  labels: Uint8Array;
}

// Partial volume by supersampling: 8 sub-voxel points at (±¼, ±¼, ±¼). A voxel's coverage by an
// object is the fraction of points inside it; its label is the object's when half or more are.
const SUB_X = [-0.25, 0.25, -0.25, 0.25, -0.25, 0.25, -0.25, 0.25];
const SUB_Y = [-0.25, -0.25, 0.25, 0.25, -0.25, -0.25, 0.25, 0.25];
const SUB_Z = [-0.25, -0.25, -0.25, -0.25, 0.25, 0.25, 0.25, 0.25];
const POPCOUNT = Uint8Array.from({ length: 256 }, (_, i) => {
  let n = 0;
  for (let v = i; v; v >>= 1) n += v & 1;
  return n;
});

interface StaticMaps {
  /** Multiplicative cupping profile and additive ring pattern; both constant through the scan. */
  cupping: Float32Array;
  rings: Float32Array;
  kernel: Float32Array;
}
const staticCache = new WeakMap<Phantom, StaticMaps>();

/** How to render: for measuring what the data allow, not for making scans. */
export interface RenderOptions {
  /**
   * Which noise realization: 0 (default) is the scan's own; another number draws independent
   * noise over the same object and scanner; `null` renders without noise (the expected image).
   */
  noise?: number | null;
}

/** Render slice `z` of the phantom as the scanner would reconstruct it, with its ground truth. */
export function renderSlice(phantom: Phantom, z: number, options: RenderOptions = {}): RenderedSlice {
  if (!Number.isInteger(z) || z < 0 || z >= phantom.slices)
    throw new RangeError(`slice ${z} is outside 0..${phantom.slices - 1}`);
  const { size } = phantom;
  const n = size * size;
  const electrode = new Float32Array(n);
  const dendriteBits = new Uint8Array(n);
  const pitBits = new Uint8Array(n);
  const bubbleBits = new Uint8Array(n);

  fillElectrodes(phantom, z, electrode);
  rasterCapsules(phantom, z, dendriteBits);
  for (const e of phantom.pits) rasterEllipsoid(e, z, size, pitBits);
  for (const e of phantom.bubbles) rasterEllipsoid(e, z, size, bubbleBits);

  const a = phantom.acquisition;
  const mu = new Float32Array(n);
  const labels = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    const dendrite = (POPCOUNT[dendriteBits[i] as number] as number) / 8;
    const pit = (POPCOUNT[pitBits[i] as number] as number) / 8;
    const bubble = (POPCOUNT[bubbleBits[i] as number] as number) / 8;
    const li0 = electrode[i] as number;
    const voids = Math.min(1, pit + bubble);
    const li = Math.min(1 - voids, Math.max(li0, dendrite));
    mu[i] = voids * a.muVoid + li * a.muLi + (1 - voids - li) * a.muElectrolyte;
    labels[i] =
      pit >= 0.5
        ? LABEL.pit
        : bubble >= 0.5
          ? LABEL.bubble
          : dendrite >= 0.5 && li0 < 0.5
            ? LABEL.dendrite
            : LABEL.background;
  }

  const maps = staticMaps(phantom);
  for (let i = 0; i < n; i++)
    mu[i] = (mu[i] as number) * (maps.cupping[i] as number) + (maps.rings[i] as number);
  const blurred = blur(mu, size, maps.kernel);

  const gain =
    1 +
    a.driftLinear * (z / Math.max(1, phantom.slices - 1) - 0.5) +
    a.driftWobble * Math.sin((2 * Math.PI * z) / a.driftPeriod);
  const noise = options.noise === undefined ? 0 : options.noise;
  // Realization 0 keeps the scan's original stream, so every scan's bytes stay as they were.
  const rng =
    noise === 0 || noise === null ? new Rng(phantom.seed, 6, z) : new Rng(phantom.seed, 6, z, noise);
  const image = new Uint16Array(n);
  for (let i = 0; i < n; i++) {
    const mean = a.offset + a.scale * (blurred[i] as number) * gain;
    // Poisson photon noise (variance = gain · mean, Gaussian approximation at these counts) plus
    // read-out noise, drawn together as one Gaussian.
    const sd = noise === null ? 0 : Math.sqrt(a.gain * Math.max(mean, 0) + a.readNoise * a.readNoise);
    const v = Math.round(mean + sd * rng.normal());
    image[i] = v < 0 ? 0 : v > 65535 ? 65535 : v;
  }
  return { image, labels };
}

function fillElectrodes(phantom: Phantom, z: number, out: Float32Array): void {
  const { size } = phantom;
  const row = z * size;
  for (let x = 0; x < size; x++) {
    const t = phantom.top[row + x] as number;
    const b = phantom.bottom[row + x] as number;
    for (let y = 0; y < size; y++) {
      // Fraction of the voxel [y−½, y+½] above the top interface or below the bottom one.
      const ft = t - y + 0.5;
      const fb = y + 0.5 - b;
      const f = (ft <= 0 ? 0 : ft >= 1 ? 1 : ft) + (fb <= 0 ? 0 : fb >= 1 ? 1 : fb);
      out[y * size + x] = f > 1 ? 1 : f;
    }
  }
}

/** How a dendrite voxel's habit is coded (`habits.npy`, `dendriteHabits`); 0 is not a dendrite voxel. */
export const HABIT_CODE: Readonly<Record<Morphology, number>> = Object.freeze({
  tree: 1,
  mossy: 2,
  needle: 3,
});
/** The habit of each code, index = code (`HABITS[0]` is no dendrite). */
export const HABITS: readonly (Morphology | undefined)[] = [undefined, 'tree', 'mossy', 'needle'];

/** The habit code (HABIT_CODE) of the dendrite each voxel of slice `z` belongs to, 0 elsewhere. */
export function dendriteHabits(phantom: Phantom, z: number, labels: Uint8Array): Uint8Array {
  const codes = phantom.dendrites.map((d) => HABIT_CODE[d.morphology]);
  return Uint8Array.from(dendriteOwners(phantom, z, labels), (o) => (o === 0 ? 0 : (codes[o - 1] as number)));
}

/**
 * Which dendrite each voxel of slice `z` labelled dendrite belongs to: its index in
 * `phantom.dendrites` plus one (0 elsewhere), the one covering most of its sub-samples where two
 * touch (the lower index on a tie). `labels` is the slice's ground truth from `renderSlice`.
 */
export function dendriteOwners(phantom: Phantom, z: number, labels: Uint8Array): Uint16Array {
  const { size } = phantom;
  const n = size * size;
  if (labels.length !== n) throw new RangeError(`labels has ${labels.length} values, expected ${n}`);
  const owners = new Uint16Array(n);
  const best = new Uint8Array(n);
  const list = phantom.capsulesBySlice[z];
  if (!list) return owners;
  const byDendrite = new Map<number, number[]>();
  for (let k = 0; k < list.length; k += 2) {
    const d = list[k] as number;
    const caps = byDendrite.get(d);
    if (caps) caps.push(list[k + 1] as number);
    else byDendrite.set(d, [list[k + 1] as number]);
  }
  const bits = new Uint8Array(n);
  for (const d of [...byDendrite.keys()].sort((a, b) => a - b)) {
    bits.fill(0);
    const flat: number[] = [];
    for (const c of byDendrite.get(d) as number[]) flat.push(d, c);
    rasterCapsuleList(phantom, z, Int32Array.from(flat), bits);
    for (let i = 0; i < n; i++) {
      if (labels[i] !== LABEL.dendrite || bits[i] === 0) continue;
      const cover = POPCOUNT[bits[i] as number] as number;
      if (cover > (best[i] as number)) {
        best[i] = cover;
        owners[i] = d + 1;
      }
    }
  }
  return owners;
}

function rasterCapsules(phantom: Phantom, z: number, bits: Uint8Array): void {
  const list = phantom.capsulesBySlice[z];
  if (list) rasterCapsuleList(phantom, z, list, bits);
}

function rasterCapsuleList(phantom: Phantom, z: number, list: Int32Array, bits: Uint8Array): void {
  const { size } = phantom;
  for (let k = 0; k < list.length; k += 2) {
    const c = phantom.dendrites[list[k] as number]?.capsules[list[k + 1] as number];
    if (!c) continue;
    const abx = c.bx - c.ax;
    const aby = c.by - c.ay;
    const abz = c.bz - c.az;
    const ab2 = abx * abx + aby * aby + abz * abz || 1;
    const r2 = c.r * c.r;
    const x0 = Math.max(0, Math.floor(Math.min(c.ax, c.bx) - c.r - 1));
    const x1 = Math.min(size - 1, Math.ceil(Math.max(c.ax, c.bx) + c.r + 1));
    const y0 = Math.max(0, Math.floor(Math.min(c.ay, c.by) - c.r - 1));
    const y1 = Math.min(size - 1, Math.ceil(Math.max(c.ay, c.by) + c.r + 1));
    for (let y = y0; y <= y1; y++) {
      for (let x = x0; x <= x1; x++) {
        let inside = 0;
        for (let s = 0; s < 8; s++) {
          const px = x + (SUB_X[s] as number) - c.ax;
          const py = y + (SUB_Y[s] as number) - c.ay;
          const pz = z + (SUB_Z[s] as number) - c.az;
          let t = (px * abx + py * aby + pz * abz) / ab2;
          t = t < 0 ? 0 : t > 1 ? 1 : t;
          const dx = px - t * abx;
          const dy = py - t * aby;
          const dz = pz - t * abz;
          if (dx * dx + dy * dy + dz * dz <= r2) inside |= 1 << s;
        }
        if (inside) bits[y * size + x] = (bits[y * size + x] as number) | inside;
      }
    }
  }
}

function rasterEllipsoid(
  e: { cx: number; cy: number; cz: number; rx: number; ry: number; rz: number },
  z: number,
  size: number,
  bits: Uint8Array,
): void {
  if (Math.abs(z - e.cz) > e.rz + 1) return;
  const x0 = Math.max(0, Math.floor(e.cx - e.rx - 1));
  const x1 = Math.min(size - 1, Math.ceil(e.cx + e.rx + 1));
  const y0 = Math.max(0, Math.floor(e.cy - e.ry - 1));
  const y1 = Math.min(size - 1, Math.ceil(e.cy + e.ry + 1));
  for (let y = y0; y <= y1; y++) {
    for (let x = x0; x <= x1; x++) {
      let inside = 0;
      for (let s = 0; s < 8; s++) {
        const dx = (x + (SUB_X[s] as number) - e.cx) / e.rx;
        const dy = (y + (SUB_Y[s] as number) - e.cy) / e.ry;
        const dz = (z + (SUB_Z[s] as number) - e.cz) / e.rz;
        if (dx * dx + dy * dy + dz * dz <= 1) inside |= 1 << s;
      }
      if (inside) bits[y * size + x] = (bits[y * size + x] as number) | inside;
    }
  }
}

function staticMaps(phantom: Phantom): StaticMaps {
  const cached = staticCache.get(phantom);
  if (cached) return cached;
  const { size, acquisition: a } = phantom;
  const cupping = new Float32Array(size * size);
  const rings = new Float32Array(size * size);
  const c = (size - 1) / 2;
  const reach = size / Math.SQRT2;
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      const r = Math.hypot(x - c, y - c);
      const i = y * size + x;
      // Beam hardening darkens the middle of the field: a parabolic dip.
      cupping[i] = 1 - a.cupping * (1 - Math.min(1, (r / reach) ** 2));
      let ring = 0;
      for (const g of a.rings)
        ring += g.amplitude * Math.exp(-((r - g.radius) ** 2) / (2 * g.width * g.width));
      rings[i] = ring;
    }
  }
  const radius = Math.max(1, Math.ceil(3 * a.blurSigma));
  const kernel = new Float32Array(2 * radius + 1);
  let sum = 0;
  for (let k = -radius; k <= radius; k++) {
    const w = Math.exp(-(k * k) / (2 * a.blurSigma * a.blurSigma));
    kernel[k + radius] = w;
    sum += w;
  }
  for (let k = 0; k < kernel.length; k++) kernel[k] = (kernel[k] as number) / sum;
  const maps = { cupping, rings, kernel };
  staticCache.set(phantom, maps);
  return maps;
}

/** Separable Gaussian blur with edge clamping. */
function blur(src: Float32Array, size: number, kernel: Float32Array): Float32Array {
  const radius = (kernel.length - 1) / 2;
  const tmp = new Float32Array(src.length);
  const out = new Float32Array(src.length);
  for (let y = 0; y < size; y++) {
    const row = y * size;
    for (let x = 0; x < size; x++) {
      let acc = 0;
      for (let k = -radius; k <= radius; k++) {
        const xx = x + k < 0 ? 0 : x + k >= size ? size - 1 : x + k;
        acc += (kernel[k + radius] as number) * (src[row + xx] as number);
      }
      tmp[row + x] = acc;
    }
  }
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      let acc = 0;
      for (let k = -radius; k <= radius; k++) {
        const yy = y + k < 0 ? 0 : y + k >= size ? size - 1 : y + k;
        acc += (kernel[k + radius] as number) * (tmp[yy * size + x] as number);
      }
      out[y * size + x] = acc;
    }
  }
  return out;
}
