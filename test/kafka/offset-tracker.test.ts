import t from 'tap';
import { OffsetTracker } from '../../src/kafka/offset-tracker.ts';

t.test('commits up to the oldest unfinished offset, per partition', async (t) => {
  const tracker = new OffsetTracker();
  for (const o of ['10', '11', '12']) tracker.add(0, o);
  tracker.add(1, '5');
  t.equal(tracker.done(0, '11'), undefined, '10 still in work');
  t.equal(tracker.done(1, '5'), '6', 'another partition is independent');
  t.equal(tracker.done(0, '10'), '12', 'past 10 and 11, up to 12');
  t.equal(tracker.done(0, '10'), undefined, 'finishing twice changes nothing');
  t.equal(tracker.done(0, '12'), '13');
  t.equal(tracker.pendingCount, 0);
  t.equal(tracker.done(7, '1'), undefined, 'unknown partition');
});

t.test('a re-delivered offset is tracked once; retain drops lost partitions', async (t) => {
  const tracker = new OffsetTracker();
  t.equal(tracker.add(0, '3'), true);
  t.equal(tracker.add(0, '4'), true);
  t.equal(tracker.add(0, '3'), false, 're-delivered after a rebalance');
  t.equal(tracker.pendingCount, 2);
  tracker.add(1, '8');
  tracker.retain(new Set([1]));
  t.equal(tracker.pendingCount, 1, 'partition 0 went to another member');
  t.equal(tracker.done(0, '3'), undefined);
  t.equal(tracker.done(1, '8'), '9');
});

t.test('property: in any finishing order, commits only grow and never pass unfinished work', async (t) => {
  let seed = 12345;
  const random = () => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed / 2 ** 31;
  };
  for (let round = 0; round < 200; round++) {
    const tracker = new OffsetTracker();
    const n = 1 + Math.floor(random() * 40);
    const start = Math.floor(random() * 1000);
    const offsets = Array.from({ length: n }, (_, i) => start + i);
    for (const o of offsets) tracker.add(0, String(o));
    const order = [...offsets].sort(() => random() - 0.5);
    const unfinished = new Set(offsets);
    let last = -1;
    for (const o of order) {
      unfinished.delete(o);
      const position = tracker.done(0, String(o));
      if (position === undefined) continue;
      const p = Number(position);
      if (p <= last) t.fail(`commit went back from ${last} to ${p}`);
      if ([...unfinished].some((u) => u < p)) t.fail(`committed ${p} past unfinished work`);
      last = p;
    }
    if (last !== start + n) t.fail(`round ${round}: ended at ${last}, expected ${start + n}`);
  }
  t.pass('200 random orders');
});
