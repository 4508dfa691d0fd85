import { readFile } from 'node:fs/promises';
import FileSystemStore from '@zarrita/storage/fs';
import * as zarr from 'zarrita';
import { countTiffPages, decodeTiff } from '../codecs/decode-tiff.ts';
import { LABEL } from '../sim/render-slice.ts';

/** Dice and IoU of a scan's OME-Zarr dendrite mask against the simulator's truth TIFF. */
export async function scoreAgainstTruth(
  zarrPath: string,
  truthPath: string,
): Promise<{ dice: number; iou: number; slices: number }> {
  const store = new FileSystemStore(zarrPath);
  const mask = await zarr.open(zarr.root(store).resolve('labels/dendrite/0'), { kind: 'array' });
  const truthBytes = await readFile(truthPath);
  const pages = await countTiffPages(truthBytes, { path: truthPath });
  const slices = Math.min(pages, mask.shape[0] ?? 0);
  let tp = 0;
  let fp = 0;
  let fn = 0;
  for (let z = 0; z < slices; z++) {
    const truth = await decodeTiff(truthBytes, { path: truthPath, page: z });
    const got = await zarr.get(mask, [z, null, null]);
    const m = got.data as Uint8Array;
    for (let i = 0; i < m.length; i++) {
      const p = m[i] === 1;
      const t = truth.data[i] === LABEL.dendrite;
      if (p && t) tp++;
      else if (p) fp++;
      else if (t) fn++;
    }
  }
  return {
    dice: tp + fp + fn === 0 ? 1 : (2 * tp) / (2 * tp + fp + fn),
    iou: tp + fp + fn === 0 ? 1 : tp / (tp + fp + fn),
    slices,
  };
}
