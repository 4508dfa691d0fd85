import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { Observable } from 'rxjs';
import t from 'tap';
import { DEFAULT_ALERT_RULES } from '../../src/alerts/alert-rules.ts';
import { runDaemon } from '../../src/daemon/run-daemon.ts';
import { SourceError } from '../../src/errors.ts';
import { loadModel, type SegmentationModel } from '../../src/inference/load-model.ts';
import { readZarrScanProgress, readZarrScanSlice } from '../../src/sinks/zarr-scan-writer.ts';
import type { SourceEvent } from '../../src/sources/source-event.ts';
import { watchFolder } from '../../src/sources/watch-folder.ts';
import { neighbourScan } from './neighbour-fixtures.ts';

// The shipped T-Net takes in the slices above and below each one (its card's neighbourWeight).
// These tests check the daemon hands it exactly those, whatever the order and pace of the files.
let model: SegmentationModel;
t.before(async () => {
  model = await loadModel('tnet', { threads: 2 });
});
t.teardown(() => model.close());

const SIZE = 128;
const { writeSlice, differenceFrom, runWithOnly } = neighbourScan(() => model, 901_010, SIZE);

t.test('with a gap in the scan, each slice blends only the slices really beside it', async (t) => {
  t.equal(model.neighbourWeight > 0, true, 'the shipped T-Net takes in its neighbours');
  const root = t.testdir({ watch: { gap: {} }, out: {} });
  // Slice 2 never comes: 1 has no next neighbour, 3 no previous one.
  const { done, store } = await runWithOnly(root, 'gap', [0, 1, 3]);
  t.same(done, [0, 1, 3], 'every slice there is processed, in z order');
  const expected: [number, number | undefined, number | undefined][] = [
    [0, undefined, 1],
    [1, 0, undefined],
    [3, undefined, undefined],
  ];
  for (const [z, previous, next] of expected) {
    const { prob } = await readZarrScanSlice(store, z);
    t.ok(
      (await differenceFrom(prob, z, previous, next)) <= 1,
      `slice ${z}: neighbours ${previous ?? 'none'} and ${next ?? 'none'}`,
    );
  }
  // The check can tell: slice 0 alone (no neighbour) is not what the daemon stored.
  const { prob } = await readZarrScanSlice(store, 0);
  t.ok((await differenceFrom(prob, 0)) > 1, 'slice 0 without its neighbour differs from the stored one');
});

t.test('a slice whose successor does not come goes on after neighbourWaitMs, scan still open', async (t) => {
  const root = t.testdir({ watch: { open: {} }, out: {} });
  const dir = join(root, 'watch', 'open');
  await mkdir(dir, { recursive: true });
  for (const z of [0, 1]) await writeSlice(dir, z);
  const controller = new AbortController();
  const done: number[] = [];
  const daemon = runDaemon({
    // No scan.done, no expected count, a long idle timeout: only the wait lets slice 1 go.
    source: watchFolder(join(root, 'watch'), { stabilityMs: 50, pollMs: 20, idleTimeoutMs: 600_000 }),
    out: join(root, 'out'),
    model,
    sinks: [],
    rules: DEFAULT_ALERT_RULES,
    neighbourWaitMs: 300,
    signal: controller.signal,
    onSliceDone: ({ z }) => {
      done.push(z);
      if (z === 1) controller.abort();
    },
  });
  const stats = await daemon;
  t.same(done, [0, 1], 'both slices processed while the scan was still open');
  t.equal(stats.scansCompleted, 0, 'the scan had not ended');
  const { prob } = await readZarrScanSlice(join(root, 'out', 'open.ome.zarr'), 1);
  t.ok((await differenceFrom(prob, 1, 0, undefined)) <= 1, 'slice 1 blended with slice 0 and itself');
});

t.test(
  'a source that fails leaves the slice held for its successor to the next start, at once',
  async (t) => {
    const root = t.testdir({ watch: { broken: {} }, out: {} });
    const dir = join(root, 'watch', 'broken');
    for (const z of [0, 1, 2]) await writeSlice(dir, z);
    const folder = watchFolder(join(root, 'watch'), { stabilityMs: 50, pollMs: 20, idleTimeoutMs: 600_000 });
    // The real folder source, failing right after it has handed over slice 2.
    const source = new Observable<SourceEvent>((sub) => {
      const inner = folder.subscribe({
        next: (event) => {
          sub.next(event);
          if (event.type === 'slice' && event.z === 2)
            sub.error(new SourceError('the scanner share went away', { stage: 'source' }));
        },
        error: (err: unknown) => sub.error(err),
        complete: () => sub.complete(),
      });
      return () => inner.unsubscribe();
    });
    const done: number[] = [];
    // Slice 2 waits for slice 3, which never comes; with a ten-minute wait, only the fix ends this.
    const stats = await runDaemon({
      source,
      out: join(root, 'out'),
      model,
      sinks: [],
      rules: DEFAULT_ALERT_RULES,
      neighbourWaitMs: 600_000,
      onSliceDone: ({ z }) => void done.push(z),
    });
    // As on a stop: slices already in the model finish, those not started wait for the next start.
    t.notOk(done.includes(2), `slice 2 left for the next start (finished: ${done.join(', ') || 'none'})`);
    t.equal(stats.held, 0, 'nothing left held');
    t.match(stats.sourceError, /the scanner share went away/, 'why the source failed, for the CLI to exit 1');
    t.equal(stats.scansCompleted, 0, 'the scan is not complete: the rest is for the next start');
    const stored = await readZarrScanProgress(join(root, 'out', 'broken.ome.zarr'));
    t.same(stored?.slicesWritten.toSorted(), done.toSorted(), 'the store holds exactly the finished slices');
  },
);
