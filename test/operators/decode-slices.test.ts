import { from, Subject } from 'rxjs';
import t from 'tap';
import { decodeSlices } from '../../src/operators/decode-slices.ts';

t.test('decodes one at a time, in order; a slice decoded to nothing is handed to skipped', async (t) => {
  const skipped: number[] = [];
  let running = 0;
  let most = 0;
  const decode = async (z: number) => {
    running++;
    most = Math.max(most, running);
    // Later slices finish sooner: order must still hold.
    await new Promise((r) => setImmediate(r));
    if (z % 3 === 0) await new Promise((r) => setImmediate(r));
    running--;
    return z === 2 || z === 5 ? undefined : `slice ${z}`;
  };
  const out: string[] = [];
  await new Promise<void>((done) =>
    from([0, 1, 2, 3, 4, 5, 6])
      .pipe(decodeSlices(decode, (z) => skipped.push(z)))
      .subscribe({ next: (s) => out.push(s), complete: done }),
  );
  t.same(out, ['slice 0', 'slice 1', 'slice 3', 'slice 4', 'slice 6']);
  t.same(skipped, [2, 5], 'each skipped slice heard of once');
  t.equal(most, 1, 'one decode at a time');
});

t.test('a decode that throws errors the stream (the daemon reports, it does not throw)', async (t) => {
  const err = await new Promise<unknown>((done) =>
    from([1])
      .pipe(
        decodeSlices(
          () => Promise.reject(new Error('boom')),
          () => {},
        ),
      )
      .subscribe({ error: done, complete: () => done(undefined) }),
  );
  t.match(err, { message: 'boom' });
});

t.test('unsubscribing stops the source; a decode under way is not followed by another', async (t) => {
  const source = new Subject<number>();
  const started: number[] = [];
  let finish: (v: string) => void = () => {};
  const sub = source
    .pipe(
      decodeSlices(
        (z: number) => {
          started.push(z);
          return new Promise<string>((r) => (finish = r));
        },
        () => {},
      ),
    )
    .subscribe();
  source.next(1);
  source.next(2);
  sub.unsubscribe();
  t.equal(source.observed, false, 'source no longer observed');
  finish('slice 1');
  await new Promise((r) => setImmediate(r));
  t.same(started, [1], 'slice 2 was never decoded');
});
