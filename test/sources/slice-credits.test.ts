import fc from 'fast-check';
import t from 'tap';
import { SliceCredits } from '../../src/sources/slice-credits.ts';

t.test('a source waits while its window is out and goes on when a credit comes back', async (t) => {
  const credits = new SliceCredits();
  t.equal(await credits.take(2), true);
  t.equal(await credits.take(2), true);
  let third = false;
  const pending = credits.take(2).then((ok) => (third = ok));
  await new Promise((r) => setImmediate(r));
  t.equal(third, false, 'the third waits: two are out');
  credits.give();
  await pending;
  t.equal(third, true, 'taken once one came back');
  t.equal(credits.outstanding, 2);
});

t.test('held slices: given back while held, taken again without waiting when they go on', async (t) => {
  const credits = new SliceCredits();
  await credits.take(1);
  credits.give(); // held for its successor: the source may read the successor
  t.equal(await credits.take(1), true);
  credits.retake(); // the held one goes on, beside its successor
  t.equal(credits.outstanding, 2, 'over the window for a moment, never under-counted');
  credits.give();
  credits.give();
  t.equal(credits.outstanding, 0);
  credits.give();
  t.equal(credits.outstanding, 0, 'a slice no credit was taken for gives nothing back');
});

t.test('a wait ends with nothing taken when the signal aborts or the timeout passes', async (t) => {
  const credits = new SliceCredits();
  await credits.take(1);
  const controller = new AbortController();
  const aborted = credits.take(1, { signal: controller.signal });
  controller.abort();
  t.equal(await aborted, false);
  t.equal(
    await credits.take(1, { timeoutMs: 1 }),
    false,
    'timed out (a Kafka source heartbeats, then waits again)',
  );
  t.equal(credits.outstanding, 1, 'nothing taken by either');
  t.equal(await credits.take(1, { signal: AbortSignal.abort() }), false);
});

t.test('property: never more than the window out through take, whatever the interleaving', async (t) => {
  await fc.assert(
    fc.asyncProperty(
      fc.integer({ min: 1, max: 4 }),
      fc.array(fc.boolean(), { maxLength: 60 }),
      async (window, ops) => {
        const credits = new SliceCredits();
        let most = 0;
        let taken = 0;
        const waiting: Promise<boolean>[] = [];
        for (const takeOne of ops) {
          if (takeOne)
            waiting.push(
              credits.take(window).then((ok) => {
                taken++;
                most = Math.max(most, credits.outstanding);
                return ok;
              }),
            );
          else if (credits.outstanding > 0) credits.give();
          await new Promise((r) => setImmediate(r));
        }
        while (taken < waiting.length) {
          if (credits.outstanding > 0) credits.give();
          await new Promise((r) => setImmediate(r));
        }
        if (most > window) throw new Error(`${most} out with a window of ${window}`);
        if (!(await Promise.all(waiting)).every(Boolean)) throw new Error('a take failed without a signal');
      },
    ),
    { seed: 20261204, numRuns: 300 },
  );
  t.pass('300 random interleavings');
});
