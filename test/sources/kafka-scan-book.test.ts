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
