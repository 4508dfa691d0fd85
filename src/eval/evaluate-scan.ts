/**
 * `eval --scan ARCHIVE --truth LABELS`: a model scored on a user's own scan against the user's own
 * labels. ARCHIVE is anything `replay` reads (projections are reconstructed); LABELS a multi-page
 * TIFF or a Zarr array of the scan's shape, or a folder of label TIFFs for only some slices (named
 * by slice number). In the labels 0 is background, 1 dendrite, 255 unlabelled (left out), any other
 * value not dendrite. Each labelled slice is segmented as the daemon segments it (the same
 * operators, its neighbours beside it when the model takes them in).
 */
import type { DecodedImage } from '../codecs/decode-tiff.ts';
import { readSliceFile } from '../codecs/read-slice-file.ts';
import { DecodeError } from '../errors.ts';
import type { ModelIdentity, SegmentationModel } from '../inference/load-model.ts';
import { segmentSlice } from '../inference/segment-slice.ts';
import { takesNeighbours } from '../slices/blend-neighbours.ts';
import type { ArchiveVolume } from '../sources/archive-volume.ts';
import { openArchive } from '../sources/open-archive.ts';
import type { ReconOptions } from '../sources/projections-volume.ts';
import { SegmentationMetrics, type SegmentationScores } from './segmentation-metrics.ts';

/** The label value of a voxel nobody labelled. */
export const UNLABELLED = 255;

export interface ScanEvaluation extends SegmentationScores {
  model: ModelIdentity;
  scan: string;
  truth: string;
  /** The slices that carry labels, ascending. */
  labelledSlices: number[];
  /** Voxels with a label (not 255) in them. */
  labelledVoxels: number;
  size: { width: number; height: number; slices: number };
}

/** Score `model` on the scan at `scan` against the labels at `truth`. */
export async function evaluateScan(
  model: SegmentationModel,
  o: { scan: string; truth: string; recon?: ReconOptions; signal?: AbortSignal },
): Promise<ScanEvaluation> {
  const volume = await openArchive(o.scan, {
    ...(o.signal && { signal: o.signal }),
    ...(o.recon && { recon: o.recon }),
  });
  try {
    const labels = await openArchive(o.truth, o.signal ? { signal: o.signal } : {});
    try {
      return await score(model, volume, labels, o);
    } finally {
      await labels.close();
    }
  } finally {
    await volume.close();
  }
}

async function score(
  model: SegmentationModel,
  volume: ArchiveVolume,
  labels: ArchiveVolume,
  o: { scan: string; truth: string; signal?: AbortSignal },
): Promise<ScanEvaluation> {
  const bad = (reason: string) =>
    new DecodeError(`${o.truth} against ${o.scan}: ${reason}`, { path: o.truth, stage: 'eval' });
  if (labels.depth > volume.depth)
    throw bad(`the labels have ${labels.depth} slices, the scan ${volume.depth}`);
  if (labels.kind !== 'folder' && labels.depth !== volume.depth)
    throw bad(
      `the labels have ${labels.depth} slices, the scan ${volume.depth}; label only some slices with a folder of label TIFFs named by slice number`,
    );
  const gaps = new Set(labels.missing);
  const labelled = Array.from({ length: labels.depth }, (_, z) => z).filter((z) => !gaps.has(z));
  if (labelled.length === 0) throw bad('no labelled slice');
  const read = async (v: ArchiveVolume, z: number): Promise<DecodedImage> => {
    const slice = await v.read(z, o.signal ? { signal: o.signal } : {});
    return 'image' in slice ? slice.image : readSliceFile(slice.path, o.signal ? { signal: o.signal } : {});
  };
  const missing = new Set(volume.missing);
  const neighbours = takesNeighbours(model);
  // Slices come in ascending z and each is also its neighbours' neighbour: keep the last few read,
  // so no slice is read (for projections: reconstructed) more than once in a run of labelled ones.
  const kept = new Map<number, DecodedImage>();
  const scanSlice = async (z: number): Promise<DecodedImage> => {
    let image = kept.get(z);
    if (!image) {
      image = await read(volume, z);
      kept.set(z, image);
    }
    for (const k of kept.keys()) if (k < z - 2) kept.delete(k);
    return image;
  };
  const metrics = new SegmentationMetrics(model.patchSize);
  let labelledVoxels = 0;
  let width = 0;
  let height = 0;
  for (const z of labelled) {
    if (missing.has(z)) throw bad(`slice ${z} is labelled but the scan lacks it`);
    const image = await scanSlice(z);
    const truth = await read(labels, z);
    if (truth.width !== image.width || truth.height !== image.height)
      throw bad(`slice ${z}: labels ${truth.width}×${truth.height}, scan ${image.width}×${image.height}`);
    if (truth.dtype.startsWith('float'))
      throw bad(`slice ${z}: labels are ${truth.dtype}; use integers (0, 1, 255)`);
    ({ width, height } = image);
    const beside = async (n: number) =>
      neighbours && n >= 0 && n < volume.depth && !missing.has(n) ? (await scanSlice(n)).data : undefined;
    const [previous, next] = [await beside(z - 1), await beside(z + 1)];
    const { mask } = await segmentSlice(model, image.data, width, height, {
      ...(previous && { previous }),
      ...(next && { next }),
    });
    const classes = new Uint8Array(truth.data.length);
    for (let i = 0; i < classes.length; i++) {
      const v = truth.data[i] as number;
      classes[i] = v === 1 ? 1 : v === UNLABELLED ? UNLABELLED : 0;
      if (v !== UNLABELLED) labelledVoxels++;
    }
    metrics.addSlice(mask, classes, width, height, UNLABELLED);
  }
  return {
    model: model.identity,
    scan: o.scan,
    truth: o.truth,
    labelledSlices: labelled,
    labelledVoxels,
    size: { width, height, slices: volume.depth },
    ...metrics.scores(),
  };
}
