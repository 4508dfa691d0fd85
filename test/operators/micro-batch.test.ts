import { Subject } from 'rxjs';
import { TestScheduler } from 'rxjs/testing';
import t, { type Test } from 'tap';
import { microBatch } from '../../src/operators/micro-batch.ts';

const scheduler = (t: Test) => new TestScheduler((actual, expected) => t.same(actual, expected));

t.test('a batch goes when full, or maxDelayMs after its first item', async (t) => {
  scheduler(t).run(({ cold, expectObservable }) => {
    // a b c fill a batch of 3 at once; d waits 5 ms alone; e f come together and leave at completion.
    const source = cold('abc 9ms d 9ms ef|');
    const expected = '  --x 14ms y 6ms (z|)';
    expectObservable(source.pipe(microBatch({ maxBatch: 3, maxDelayMs: 5 }))).toBe(expected, {
      x: ['a', 'b', 'c'],
      y: ['d'],
      z: ['e', 'f'],
    });
  });
});

t.test('errors pass through and the pending timer is cleared', async (t) => {
  scheduler(t).run(({ cold, expectObservable }) => {
    expectObservable(cold('a #').pipe(microBatch({ maxBatch: 4, maxDelayMs: 50 }))).toBe('- #');
  });
});

t.test('options are checked when the operator is created', async (t) => {
  t.throws(() => microBatch({ maxBatch: 0 }), { code: 'ERR_CONFIG', message: /maxBatch/ });
  t.throws(() => microBatch({ maxDelayMs: -1 }), { code: 'ERR_CONFIG', message: /maxDelayMs/ });
});

t.test('unsubscribing stops the source and the timer', async (t) => {
  const source = new Subject<number>();
  const seen: number[][] = [];
  const sub = source.pipe(microBatch({ maxBatch: 10, maxDelayMs: 20 })).subscribe((b) => seen.push(b));
  source.next(1);
  sub.unsubscribe();
  t.equal(source.observed, false, 'source no longer observed');
  await new Promise((r) => setTimeout(r, 40));
  t.same(seen, [], 'the timer did not fire after unsubscribe');
});
