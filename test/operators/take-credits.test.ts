import { setImmediate as turn } from 'node:timers/promises';
import { Subject } from 'rxjs';
import t from 'tap';
import { takeCredits } from '../../src/operators/take-credits.ts';
import { SliceCredits } from '../../src/sources/slice-credits.ts';

type Ev = { type: 'slice' | 'other'; n: number };
const slice = (n: number): Ev => ({ type: 'slice', n });
const other = (n: number): Ev => ({ type: 'other', n });
const isSlice = (e: Ev) => e.type === 'slice';

t.test('slices wait for a credit; other events keep their place behind them', async (t) => {
  const credits = new SliceCredits();
  const source = new Subject<Ev>();
  const seen: number[] = [];
  let completed = false;
  source
    .pipe(takeCredits(credits, 2, isSlice))
    .subscribe({ next: (e) => seen.push(e.n), complete: () => (completed = true) });
  source.next(other(0));
  source.next(slice(1));
  source.next(slice(2));
  t.same(seen, [0, 1, 2], 'with credits free, events pass in the same turn');
  t.equal(credits.outstanding, 2, 'one credit per slice, none for other events');
  source.next(slice(3));
  source.next(other(4));
  source.next(slice(5));
  source.complete();
  await turn();
  t.same(seen, [0, 1, 2], 'the third slice waits, and what came after it waits behind it');
  t.notOk(completed, 'the end waits behind them too');
  credits.give();
  await turn();
  t.same(seen, [0, 1, 2, 3, 4], 'a credit back lets the next slice and the event after it through');
  credits.give();
  await turn();
  t.same(seen, [0, 1, 2, 3, 4, 5]);
  t.ok(completed, 'completes once nothing waits');
  t.equal(credits.outstanding, 2);
});

t.test('an error from upstream passes after what waits', async (t) => {
  const credits = new SliceCredits();
  const source = new Subject<Ev>();
  const seen: number[] = [];
  let failed: unknown;
  source.pipe(takeCredits(credits, 1, isSlice)).subscribe({
    next: (e) => seen.push(e.n),
    error: (err: unknown) => {
      failed = err;
    },
  });
  source.next(slice(1));
  source.next(slice(2));
  source.error(new Error('watcher died'));
  await turn();
  t.same(seen, [1]);
  t.equal(failed, undefined, 'not yet: slice 2 waits');
  credits.give();
  await turn();
  t.same(seen, [1, 2]);
  t.match(failed, { message: 'watcher died' });
});

t.test('unsubscribing while a slice waits takes nothing and stops upstream', async (t) => {
  const credits = new SliceCredits();
  const source = new Subject<Ev>();
  const seen: number[] = [];
  const sub = source.pipe(takeCredits(credits, 1, isSlice)).subscribe((e) => seen.push(e.n));
  source.next(slice(1));
  source.next(slice(2));
  await turn();
  sub.unsubscribe();
  t.equal(source.observed, false, 'upstream unsubscribed');
  credits.give();
  await turn();
  t.same(seen, [1], 'the waiting slice is dropped');
  t.equal(credits.outstanding, 0, 'and took no credit');
});

t.test('two sources share one window', async (t) => {
  const credits = new SliceCredits();
  const a = new Subject<Ev>();
  const b = new Subject<Ev>();
  const seen: string[] = [];
  a.pipe(takeCredits(credits, 2, isSlice)).subscribe((e) => seen.push(`a${e.n}`));
  b.pipe(takeCredits(credits, 2, isSlice)).subscribe((e) => seen.push(`b${e.n}`));
  a.next(slice(1));
  b.next(slice(1));
  a.next(slice(2));
  b.next(slice(2));
  await turn();
  t.same(seen, ['a1', 'b1'], 'two out in all');
  credits.give();
  await turn();
  t.equal(seen.length, 3, 'one credit back lets exactly one more through');
  t.equal(credits.outstanding, 2);
});

t.test('the window is checked when the operator is created', async (t) => {
  t.throws(() => takeCredits(new SliceCredits(), 0, isSlice), { code: 'ERR_CONFIG', message: /window/ });
});
