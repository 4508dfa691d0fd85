import t from 'tap';
import { DaemonStats } from '../../src/daemon/daemon-stats.ts';
import { NeighbourHold } from '../../src/daemon/neighbour-hold.ts';
import { newScanState, type QueuedSlice } from '../../src/daemon/scan-state.ts';
import { silentLogger } from '../../src/log.ts';

const slice = (z: number): QueuedSlice => ({ scanId: 'cell', z, readyAt: z });

t.test('a slice waits for the next; it goes on with it as its neighbour', async (t) => {
  const sent: QueuedSlice[] = [];
  const stats = new DaemonStats();
  const hold = new NeighbourHold({ waitMs: 60_000, send: (r) => sent.push(r), stats, log: silentLogger });
  const s = newScanState('cell', '/out/cell.ome.zarr');
  hold.hold(s, slice(0));
  t.same(sent, [], 'slice 0 waits for slice 1');
  t.equal(stats.held, 1);
  hold.hold(s, slice(1));
  t.equal(sent.length, 1);
  t.equal(sent[0]?.z, 0);
  t.equal(sent[0]?.next?.z, 1, 'slice 1 goes with it as its next neighbour');
  hold.hold(s, slice(3));
  t.equal(sent[1]?.z, 1);
  t.equal(sent[1]?.next, undefined, 'slice 3 is not the next of slice 1 (2 is missing)');
  hold.release(s);
  t.equal(sent[2]?.z, 3, 'released at the end of its scan, with no neighbour');
  t.equal(stats.held, 0);
  hold.release(s);
  t.equal(sent.length, 3, 'nothing held: nothing sent');
});

t.test('a slice whose successor does not come goes on after waitMs', async (t) => {
  const stats = new DaemonStats();
  const s = newScanState('cell', '/out/cell.ome.zarr');
  const sent = await new Promise<QueuedSlice>((resolve) => {
    const hold = new NeighbourHold({ waitMs: 1, send: resolve, stats, log: silentLogger });
    hold.hold(s, slice(5));
  });
  t.equal(sent.z, 5);
  t.equal(sent.next, undefined);
  t.equal(stats.held, 0);
  t.equal(s.held, undefined);
});

t.test('cancel stops the wait without sending', async (t) => {
  const sent: QueuedSlice[] = [];
  const hold = new NeighbourHold({
    waitMs: 1,
    send: (r) => sent.push(r),
    stats: new DaemonStats(),
    log: silentLogger,
  });
  const s = newScanState('cell', '/out/cell.ome.zarr');
  hold.hold(s, slice(0));
  hold.cancel(s);
  // A later timer of the same length fires after the cancelled one would have.
  await new Promise((r) => setTimeout(r, 5));
  t.same(sent, []);
});
