import { from, Subject } from 'rxjs';
import t from 'tap';
import { writeOutputs } from '../../src/operators/write-outputs.ts';

t.test('writes one at a time, in order; a failed write is reported and the slice goes on', async (t) => {
  const written: number[] = [];
  const failed: [number, string][] = [];
  let running = 0;
  let most = 0;
  const write = async (z: number) => {
    running++;
    most = Math.max(most, running);
    await new Promise((r) => setImmediate(r));
    running--;
    if (z === 1) throw new Error('disk full');
    written.push(z);
  };
  const out: number[] = [];
  await new Promise<void>((done) =>
    from([0, 1, 2])
      .pipe(writeOutputs(write, (z, err) => failed.push([z, (err as Error).message])))
      .subscribe({ next: (z) => out.push(z), complete: done }),
  );
  t.same(written, [0, 2]);
  t.same(failed, [[1, 'disk full']], 'the failure is heard of with its slice');
  t.same(out, [0, 1, 2], 'every slice goes on, the failed one too (its credit returns)');
  t.equal(most, 1, 'one write at a time');
});

t.test('unsubscribing stops the source; no write starts after it', async (t) => {
  const source = new Subject<number>();
  const started: number[] = [];
  let finish: () => void = () => {};
  const sub = source
    .pipe(
      writeOutputs(
        (z: number) => {
          started.push(z);
          return new Promise<void>((r) => (finish = r));
        },
        () => {},
      ),
    )
    .subscribe();
  source.next(1);
  source.next(2);
  sub.unsubscribe();
  t.equal(source.observed, false, 'source no longer observed');
  finish();
  await new Promise((r) => setImmediate(r));
  t.same(started, [1], 'slice 2 was never written');
});
