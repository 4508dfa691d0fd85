import t from 'tap';
import { type Held, KafkaScanBook } from '../../src/sources/kafka-scan-book.ts';
import type { SourceEvent } from '../../src/sources/source-event.ts';
import { testSlice } from '../kafka/slice-fixtures.ts';

function book() {
  const events: SourceEvent[] = [];
  const finished: string[] = [];
  let released = 0;
  const b = new KafkaScanBook({
    emit: (e) => events.push(e),
    finish: (h: Held) => finished.push(h.offset),
    released: () => released++,
    idleTimeoutMs: 600_000,
  });
  t.teardown(() => b.stopTimers());
  return { b, events, finished, released: () => released };
}
const image = (slice: ReturnType<typeof testSlice>) =>
  slice.pixels as { width: number; height: number; dtype: 'uint16'; data: Uint16Array };
const at = (offset: number): Held => ({ partition: 0, offset: String(offset) });

t.test('a scan: start, slices once each, end by its count; offsets finished with their work', async (t) => {
  const { b, events, finished, released } = book();
  const s = [0, 1, 2].map((z) => testSlice('cell', z, { expected: 3 }));
  t.equal(b.take(s[0]!, image(s[0]!), at(10), 1), true);
  t.equal(b.take(s[0]!, image(s[0]!), at(11), 2), false, 'a copy read again is not handed over');
  t.equal(b.take(s[1]!, image(s[1]!), at(12), 3), true);
  t.equal(b.take(s[2]!, image(s[2]!), at(13), 4), true);
  t.same(
    events.map((e) => (e.type === 'slice' ? `slice ${e.z}` : e.type)),
    ['scan-start', 'slice 0', 'slice 1', 'slice 2', 'scan-end'],
  );
  t.match(events.at(-1), { type: 'scan-end', reason: 'expected-count', slices: 3, missing: [] });
  t.equal(b.inFlight, 3);
  b.sliceDone({ scanId: 'cell', z: 0 });
  t.same(finished, ['10', '11'], 'the copy follows the first one: finished together');
  b.sliceDone({ scanId: 'cell', z: 2 });
  t.same(finished, ['10', '11'], "the slice that ended the scan waits for the scan's summary");
  b.scanDone('cell');
  t.same(finished.sort(), ['10', '11', '12', '13'], 'the scan done: every offset, the skipped slice 1 too');
  t.equal(b.inFlight, 0);
  t.equal(released(), 3, 'each handed-over slice released once');
  t.equal(b.take(s[1]!, image(s[1]!), at(14), 5), false, 'a slice of an ended scan is not handed over');
  t.same(finished.at(-1), '14', 'and its offset is finished at once');
});

t.test('the size of a scan is what its first slice said', async (t) => {
  const { b } = book();
  t.equal(b.size('cell'), undefined);
  const s = testSlice('cell', 0, { size: 16 });
  b.take(s, image(s), at(1), 1);
  t.match(b.size('cell'), { width: 16, height: 16 });
});

t.test(
  'a rebalance: the scans of partitions gone to another member are handed over, not finished',
  async (t) => {
    const { b, events, finished, released } = book();
    const on = (partition: number, offset: number): Held => ({ partition, offset: String(offset) });
    const kept = [0, 1].map((z) => testSlice('kept', z, { expected: 4 }));
    const moved = [0, 1].map((z) => testSlice('moved', z, { expected: 4 }));
    b.take(kept[0]!, image(kept[0]!), on(0, 1), 1);
    b.take(moved[0]!, image(moved[0]!), on(1, 1), 1);
    b.take(moved[1]!, image(moved[1]!), on(1, 2), 2);
    b.sliceDone({ scanId: 'moved', z: 0 });
    t.same(finished, ['1'], 'moved/0 done before the rebalance: its offset finished');
    events.length = 0;
    b.handOver(new Set([0]));
    t.same(events, [
      {
        type: 'scan-handed-over',
        scanId: 'moved',
        reason: 'partition 1 went to another member of the group',
      },
    ]);
    t.equal(b.inFlight, 1, 'moved/1 no longer counts against the window; kept/0 does');
    t.equal(released(), 2, 'moved/0 by its sliceDone, moved/1 by the hand-over');
    b.sliceDone({ scanId: 'moved', z: 1 });
    t.same(finished, ['1'], 'the moved scan’s later work finishes no offset: they are the new owner’s');
    t.equal(released(), 2);
    b.handOver(new Set([0]));
    t.equal(events.length, 1, 'a second join with the same partitions hands over nothing more');
    // The partition comes back: the scan is new to this member again.
    b.take(moved[1]!, image(moved[1]!), on(1, 2), 3);
    t.same(
      events.slice(1).map((e) => e.type),
      ['scan-start', 'slice'],
      'taken up again from its first slice seen, as any scan is',
    );
    b.sliceDone({ scanId: 'kept', z: 0 });
    t.same(finished, ['1', '1'], 'the kept scan goes on as before');
  },
);
