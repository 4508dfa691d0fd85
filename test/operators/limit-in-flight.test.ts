import { Subject } from 'rxjs';
import t from 'tap';
import { limitInFlight } from '../../src/operators/limit-in-flight.ts';

t.test('lets at most max values through until done$ returns credit', async (t) => {
  const source = new Subject<number>();
  const done = new Subject<void>();
  const seen: number[] = [];
  let completed = false;
  source
    .pipe(limitInFlight(done, 2))
    .subscribe({ next: (v) => seen.push(v), complete: () => (completed = true) });
  for (let i = 0; i < 6; i++) source.next(i);
  t.same(seen, [0, 1], 'two in flight, four waiting');
  done.next();
  t.same(seen, [0, 1, 2]);
  source.complete();
  t.notOk(completed, 'does not complete while values wait');
  done.next();
  done.next();
  done.next();
  t.same(seen, [0, 1, 2, 3, 4, 5], 'every value let through, in order, none lost');
  t.notOk(completed, 'still in flight');
  done.next();
  done.next();
  done.next();
  t.ok(completed, 'completes once the source ended and everything finished');
});

t.test('unsubscribing stops the source and the credits', async (t) => {
  const source = new Subject<number>();
  const done = new Subject<void>();
  const sub = source.pipe(limitInFlight(done, 1)).subscribe();
  sub.unsubscribe();
  t.equal(source.observed, false);
  t.equal(done.observed, false);
});

t.test('max is checked when the operator is created', async (t) => {
  t.throws(() => limitInFlight(new Subject(), 0), { code: 'ERR_CONFIG', message: /maxSlicesInFlight/ });
});
