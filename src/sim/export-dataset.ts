import { mkdir, open, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { npyHeader } from '../codecs/encode-npy.ts';
import { OutputError, UsageError } from '../errors.ts';
import { modelInput } from '../slices/blend-neighbours.ts';
import { DEFAULT_NORMALIZATION } from '../slices/normalize-slice.ts';
import { createPhantom, type Phantom } from './phantom.ts';
import { dendriteHabits, HABIT_CODE, LABEL, renderSlice } from './render-slice.ts';
import { Rng } from './rng.ts';

export type PatchKind = 'dendrite' | 'pit' | 'bubble' | 'background';
/** A patch placed on a thin needle dendrite (`--needle-fraction`), on top of the mix below. */
export type DatasetPatchKind = PatchKind | 'needle';

/**
 * The share of each kind of patch. Dendrites are rare by volume, so uniform sampling would give a
 * model that never says "dendrite"; pits and bubbles are the confounders it must learn to reject.
 */
export const PATCH_MIX: Readonly<Record<PatchKind, number>> = Object.freeze({
  dendrite: 0.45,
  pit: 0.15,
  bubble: 0.15,
  background: 0.25,
});

export interface DatasetOptions {
  dir: string;
  patches: number;
  /** First scan seed; scans use seed, seed + 1, … and all are listed in `index.json`. */
  seed: number;
  patchSize?: number;
  /** Slice size and slice count of each generated scan. */
  size?: number;
  slices?: number;
  /** Patches taken from each scan before moving to a new one (more scans, more variety). */
  patchesPerScan?: number;
  /**
   * Each patch's slice blended with the slices above and below, this much of each, before it is
   * normalized: what a model whose card has this `neighbourWeight` sees in the daemon. Default 0.
   * The patches (scans, places) are the same whatever the weight.
   */
  neighbourWeight?: number;
  /**
   * This share of the patches is placed on a needle dendrite's voxels, the rest by the mix (default
   * 0: the same patches as before the option existed). Needles are a few voxels of a scan; a model
   * trained on the plain mix sees too few of them to learn them.
   */
  needleFraction?: number;
  /**
   * 1 (default): one image plane per patch. 3: the patch's slice and the slices above and below as
   * three planes (`images.npy` N×3×P×P), what a model whose card has `inputChannels: 3` sees.
   */
  inputChannels?: number;
  signal?: AbortSignal;
  onProgress?: (done: number, total: number) => void;
}

export interface DatasetIndex {
  patchSize: number;
  count: number;
  seeds: number[];
  normalization: typeof DEFAULT_NORMALIZATION;
  neighbourWeight: number;
  mix: Record<PatchKind, number>;
  needleFraction: number;
  inputChannels: number;
  files: { images: string; masks: string; labels: string; habits: string };
  patches: { scanSeed: number; z: number; y: number; x: number; kind: DatasetPatchKind }[];
}

/**
 * Export training patches: `images.npy` (N×P×P float32, normalized as the models expect; N×3×P×P
 * with three input channels),
 * `masks.npy` (N×P×P uint8, 1 = dendrite), `labels.npy` (N×P×P uint8, 0–3), `habits.npy`
 * (N×P×P uint8: the habit of the dendrite a dendrite voxel belongs to, 1 tree, 2 mossy, 3 needle;
 * 0 elsewhere) and `index.json`.
 */
export async function exportDataset(options: DatasetOptions): Promise<DatasetIndex> {
  const patchSize = options.patchSize ?? 128;
  const size = options.size ?? 256;
  const slices = options.slices ?? 48;
  const perScan = options.patchesPerScan ?? 40;
  const { patches: total, dir, seed } = options;
  const weight = options.neighbourWeight ?? 0;
  if (!(weight >= 0 && weight <= 1 / 3))
    throw new UsageError(`--neighbour-weight must be from 0 to 1/3, got ${weight}`, {
      option: '--neighbour-weight',
    });
  const needleFraction = options.needleFraction ?? 0;
  if (!(needleFraction >= 0 && needleFraction <= 1))
    throw new UsageError(`--needle-fraction must be from 0 to 1, got ${needleFraction}`, {
      option: '--needle-fraction',
    });
  const channels = options.inputChannels ?? 1;
  if (channels !== 1 && channels !== 3)
    throw new UsageError(`--input-channels must be 1 or 3, got ${channels}`, { option: '--input-channels' });
  if (!Number.isInteger(total) || total < 1)
    throw new UsageError(`--patches must be an integer ≥ 1, got ${total}`, { option: '--patches' });
  if (size < patchSize)
    throw new UsageError(`--size must be ≥ the patch size ${patchSize}`, { option: '--size' });

  try {
    await mkdir(dir, { recursive: true });
  } catch (cause) {
    throw new OutputError(
      `--dataset ${dir}: cannot create folder`,
      { path: dir, option: '--dataset' },
      { cause },
    );
  }
  const pixels = patchSize * patchSize;
  const files = { images: 'images.npy', masks: 'masks.npy', labels: 'labels.npy', habits: 'habits.npy' };
  const images = await openNpy(
    join(dir, files.images),
    'float32',
    channels === 1 ? [total, patchSize, patchSize] : [total, channels, patchSize, patchSize],
  );
  const masks = await openNpy(join(dir, files.masks), 'uint8', [total, patchSize, patchSize]);
  const labelsOut = await openNpy(join(dir, files.labels), 'uint8', [total, patchSize, patchSize]);
  const habitsOut = await openNpy(join(dir, files.habits), 'uint8', [total, patchSize, patchSize]);

  const index: DatasetIndex = {
    patchSize,
    count: total,
    seeds: [],
    normalization: DEFAULT_NORMALIZATION,
    neighbourWeight: weight,
    mix: { ...PATCH_MIX },
    needleFraction,
    inputChannels: channels,
    files,
    patches: [],
  };
  try {
    let scanSeed = seed;
    while (index.patches.length < total) {
      options.signal?.throwIfAborted();
      const { phantom, rng } = datasetScan(scanSeed, size, slices);
      index.seeds.push(scanSeed);
      const volume = Array.from({ length: slices }, (_, z) => renderSlice(phantom, z));
      const normalized = volume.map((s, z) =>
        modelInput(s.image, volume[z - 1]?.image, volume[z + 1]?.image, {
          neighbourWeight: weight,
          normalization: DEFAULT_NORMALIZATION,
          inputChannels: channels,
        }),
      );
      const habitSlices = volume.map((s, z) => dendriteHabits(phantom, z, s.labels));
      const where = locate(volume.map((s) => s.labels));
      const needles = needleFraction > 0 ? locateHabit(habitSlices, HABIT_CODE.needle) : [];
      const take = Math.min(perScan, total - index.patches.length);
      for (let k = 0; k < take; k++) {
        // Drawn only when asked for, so a dataset without needle patches is the one it always was.
        const onNeedle = needleFraction > 0 && rng.next() < needleFraction && needles.length > 0;
        let kind: DatasetPatchKind = onNeedle ? 'needle' : drawKind(rng);
        if (kind !== 'background' && kind !== 'needle' && where[kind].length === 0) kind = 'background';
        const { z, y, x } = placePatch(
          rng,
          kind === 'needle' ? 'dendrite' : kind,
          kind === 'needle' ? { ...where, dendrite: needles } : where,
          size,
          slices,
          patchSize,
        );
        const image = new Float32Array(channels * pixels);
        const labels = new Uint8Array(pixels);
        const habits = new Uint8Array(pixels);
        const input = normalized[z] as Float32Array;
        const plane = size * size;
        const lab = (volume[z] as { labels: Uint8Array }).labels;
        const hab = habitSlices[z] as Uint8Array;
        for (let r = 0; r < patchSize; r++) {
          const from = (y + r) * size + x;
          for (let c = 0; c < channels; c++)
            image.set(
              input.subarray(c * plane + from, c * plane + from + patchSize),
              c * pixels + r * patchSize,
            );
          labels.set(lab.subarray(from, from + patchSize), r * patchSize);
          habits.set(hab.subarray(from, from + patchSize), r * patchSize);
        }
        const mask = labels.map((l) => (l === LABEL.dendrite ? 1 : 0));
        await images.append(new Uint8Array(image.buffer));
        await masks.append(mask);
        await labelsOut.append(labels);
        await habitsOut.append(habits);
        index.patches.push({ scanSeed, z, y, x, kind });
      }
      options.onProgress?.(index.patches.length, total);
      scanSeed++;
    }
  } finally {
    await Promise.all([images.close(), masks.close(), labelsOut.close(), habitsOut.close()]);
  }
  await writeFile(join(dir, 'index.json'), `${JSON.stringify(index)}\n`);
  return index;
}

/**
 * The simulated cell behind a dataset's scan `scanSeed`, and the random stream that goes on to place
 * its patches. The cell varies with the seed: counts of objects and the electrolyte's thickness.
 */
export function datasetScan(scanSeed: number, size: number, slices: number): { phantom: Phantom; rng: Rng } {
  const rng = new Rng(scanSeed, 0xda7a);
  const phantom = createPhantom({
    seed: scanSeed,
    size,
    slices,
    dendrites: rng.int(0, 7),
    pits: rng.int(2, 9),
    bubbles: rng.int(2, 9),
    electrolyteFraction: rng.uniform(0.3, 0.6),
  });
  return { phantom, rng };
}

type Where = Record<Exclude<PatchKind, 'background'>, number[]>;

/** Flat voxel indices (z·size² + i) of every voxel whose habit code is `code`. */
function locateHabit(habits: Uint8Array[], code: number): number[] {
  const out: number[] = [];
  habits.forEach((h, z) => {
    const base = z * h.length;
    for (let i = 0; i < h.length; i++) if (h[i] === code) out.push(base + i);
  });
  return out;
}

/** Flat voxel indices (z·size² + i) of every dendrite, pit and bubble voxel. */
function locate(labels: Uint8Array[]): Where {
  const where: Where = { dendrite: [], pit: [], bubble: [] };
  labels.forEach((l, z) => {
    const base = z * l.length;
    for (let i = 0; i < l.length; i++) {
      const v = l[i];
      if (v === LABEL.dendrite) where.dendrite.push(base + i);
      else if (v === LABEL.pit) where.pit.push(base + i);
      else if (v === LABEL.bubble) where.bubble.push(base + i);
    }
  });
  return where;
}

function drawKind(rng: Rng): PatchKind {
  let u = rng.next();
  for (const [kind, share] of Object.entries(PATCH_MIX) as [PatchKind, number][]) {
    if (u < share) return kind;
    u -= share;
  }
  return 'background';
}

function placePatch(rng: Rng, kind: PatchKind, where: Where, size: number, slices: number, patch: number) {
  const maxOrigin = size - patch;
  if (kind === 'background')
    return { z: rng.int(0, slices), y: rng.int(0, maxOrigin + 1), x: rng.int(0, maxOrigin + 1) };
  const voxels = where[kind];
  const v = voxels[rng.int(0, voxels.length)] as number;
  const plane = size * size;
  const z = Math.floor(v / plane);
  const cy = Math.floor((v % plane) / size);
  const cx = v % size;
  // Jitter so the object is not always centred: the model must find it anywhere in the patch.
  const jitter = patch * 0.35;
  const clamp = (o: number) => Math.max(0, Math.min(maxOrigin, Math.round(o)));
  return {
    z,
    y: clamp(cy - patch / 2 + rng.uniform(-jitter, jitter)),
    x: clamp(cx - patch / 2 + rng.uniform(-jitter, jitter)),
  };
}

async function openNpy(path: string, dtype: 'float32' | 'uint8', shape: number[]) {
  let handle: Awaited<ReturnType<typeof open>>;
  try {
    handle = await open(path, 'w');
    await handle.write(npyHeader(dtype, shape));
  } catch (cause) {
    throw new OutputError(`cannot write ${path}`, { path }, { cause });
  }
  let closed = false;
  return {
    append: async (bytes: Uint8Array) => {
      await handle.write(bytes);
    },
    close: async () => {
      if (closed) return;
      closed = true;
      await handle.close();
    },
  };
}
