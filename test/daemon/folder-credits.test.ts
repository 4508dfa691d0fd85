import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import t from 'tap';
import { DEFAULT_ALERT_RULES } from '../../src/alerts/alert-rules.ts';
import { encodeTiff } from '../../src/codecs/encode-tiff.ts';
import { runDaemon } from '../../src/daemon/run-daemon.ts';
import { loadModel, type SegmentationModel } from '../../src/inference/load-model.ts';
import { sliceFileName } from '../../src/sim/live-scanner.ts';
import { createPhantom } from '../../src/sim/phantom.ts';
import { renderSlice } from '../../src/sim/render-slice.ts';
import { creditedFolder } from '../../src/sources/credited-folder.ts';
import { SliceCredits } from '../../src/sources/slice-credits.ts';

// The folder source in the one credit protocol (creditedFolder, as `run` makes it): its slices wait
// in takeCredits, as paths, and the daemon gives each credit back when the slice leaves the
// pipeline or waits for its successor.
let model: SegmentationModel;
t.before(async () => {
  model = await loadModel('unet', { threads: 2 });
});
t.teardown(() => model.close());

const SIZE = 128;
const SLICES = 8;

async function writeScan(root: string, scanId: string) {
  const phantom = createPhantom({ seed: 901_021, size: SIZE, slices: SLICES });
  const dir = join(root, scanId);
  for (let z = 0; z < SLICES; z++) {
    const { image } = renderSlice(phantom, z);
    await writeFile(join(dir, sliceFileName(z)), encodeTiff([{ width: SIZE, height: SIZE, data: image }]));
  }
  await writeFile(join(dir, 'scan.done'), '');
}

for (const window of [1, 3]) {
  t.test(`window ${window}: every slice goes through, never more than the window out`, async (t) => {
    t.ok(model.neighbourWeight > 0, 'the model waits for each slice’s successor');
    const root = t.testdir({ watch: { scan: {} }, out: {} });
    await writeScan(join(root, 'watch'), 'scan');
    const credits = new SliceCredits();
    let most = 0;
    const done: number[] = [];
    const source = creditedFolder(
      join(root, 'watch'),
      { stabilityMs: 50, pollMs: 20, idleTimeoutMs: 60_000 },
      credits,
      window,
    );
    await runDaemon({
      source,
      credits,
      out: join(root, 'out'),
      model,
      sinks: [],
      rules: DEFAULT_ALERT_RULES,
      maxScans: 1,
      onSliceDone: ({ z }) => {
        most = Math.max(most, credits.outstanding);
        done.push(z);
      },
    });
    t.same(
      done,
      Array.from({ length: SLICES }, (_, z) => z),
      'every slice, in z order: a held slice gave its credit back, so its successor came',
    );
    // A held slice that goes on is counted again without waiting: the window plus that one.
    t.ok(most >= 1 && most <= window + 1, `credits taken, at most ${window} + 1 out (saw ${most})`);
    t.equal(credits.outstanding, 0, 'every credit back at the end');
  });
}
