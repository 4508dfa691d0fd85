import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { DEFAULT_ALERT_RULES } from '../../src/alerts/alert-rules.ts';
import { encodeTiff } from '../../src/codecs/encode-tiff.ts';
import { runDaemon } from '../../src/daemon/run-daemon.ts';
import type { SegmentationModel } from '../../src/inference/load-model.ts';
import { segmentSlice } from '../../src/inference/segment-slice.ts';
import { sliceFileName } from '../../src/sim/live-scanner.ts';
import { createPhantom } from '../../src/sim/phantom.ts';
import { renderSlice } from '../../src/sim/render-slice.ts';
import { watchFolder } from '../../src/sources/watch-folder.ts';

/**
 * A small simulated scan for the tests of what a model that takes in the slices beside each one
 * is given: its slices as files, and the check of a stored slice against segmentSlice with the
 * neighbours named. `model` is asked for when used (tests load it in `t.before`).
 */
export function neighbourScan(model: () => SegmentationModel, seed: number, size = 128, slices = 6) {
  const phantom = createPhantom({ seed, size, slices });
  const images = Array.from({ length: phantom.slices }, (_, z) => renderSlice(phantom, z).image);
  const writeSlice = (dir: string, z: number) =>
    writeFile(
      join(dir, sliceFileName(z)),
      encodeTiff([{ width: size, height: size, data: images[z] as Uint16Array }]),
    );

  /** Largest difference between the stored probability (uint8) and segmentSlice with these neighbours. */
  const differenceFrom = async (stored: Uint8Array, z: number, previous?: number, next?: number) => {
    const { prob } = await segmentSlice(model(), images[z] as Uint16Array, size, size, {
      ...(previous !== undefined && { previous: images[previous] }),
      ...(next !== undefined && { next: images[next] }),
    });
    let worst = 0;
    for (let i = 0; i < prob.length; i++)
      worst = Math.max(worst, Math.abs(Math.round((prob[i] as number) * 255) - (stored[i] as number)));
    return worst;
  };

  /**
   * Only slices `zs` of scan `scanId` in `<root>/watch`, then scan.done, through the daemon over the
   * real folder source; the z of each slice done, in order, and the store.
   */
  const runWithOnly = async (root: string, scanId: string, zs: readonly number[]) => {
    const dir = join(root, 'watch', scanId);
    for (const z of zs) await writeSlice(dir, z);
    await writeFile(join(dir, 'scan.done'), '');
    const done: number[] = [];
    await runDaemon({
      source: watchFolder(join(root, 'watch'), {
        stabilityMs: 50,
        pollMs: 20,
        missingSliceTimeoutMs: 300,
        idleTimeoutMs: 60_000,
      }),
      out: join(root, 'out'),
      model: model(),
      sinks: [],
      rules: DEFAULT_ALERT_RULES,
      maxScans: 1,
      onSliceDone: ({ z }) => done.push(z),
    });
    return { done, store: join(root, 'out', `${scanId}.ome.zarr`) };
  };

  return { images, writeSlice, differenceFrom, runWithOnly };
}
