import fc from 'fast-check';
import t from 'tap';
import {
  type GapInfo,
  type Sequenced,
  type SequencerStep,
  SliceSequencer,
} from '../../src/sources/slice-sequencer.ts';

const TIMEOUT = 100;
const noGaps: GapInfo = { beingWritten: () => false, reason: (_z, fallback) => fallback };
const at = (z: number, readyAt: number, path = `slice_${z}.tif`): Sequenced => ({ z, path, readyAt });
const zsOf = (steps: SequencerStep<Sequenced>[]) =>
  steps.map((s) => (s.type === 'slice' ? s.slice.z : s.type === 'missing' ? `-${s.z}` : 'end'));

t.test('slices go out in z order whatever order they are offered in', async (t) => {
  const seq = new SliceSequencer<Sequenced>({
    firstSlice: 0,
    missingSliceTimeoutMs: TIMEOUT,
    expected: () => 4,
  });
  seq.offer(at(2, 0));
  seq.offer(at(1, 0));
  t.same(zsOf(seq.advance(0, noGaps).steps), [], 'slice 0 not there: 1 and 2 wait');
  seq.offer(at(0, 5));
  t.same(zsOf(seq.advance(5, noGaps).steps), [0, 1, 2]);
  seq.offer(at(3, 6));
  t.same(zsOf(seq.advance(6, noGaps).steps), [3, 'end'], 'the expected count ends the scan');
});

t.test('a gap is given up after the timeout, not before, and never while its file is written', async (t) => {
  const seq = new SliceSequencer<Sequenced>({
    firstSlice: 0,
    missingSliceTimeoutMs: TIMEOUT,
    expected: () => undefined,
  });
  seq.offer(at(0, 0));
  seq.offer(at(2, 10));
  const first = seq.advance(10, noGaps);
  t.same(zsOf(first.steps), [0]);
  t.equal(first.wakeAt, 110, 'call again when the gap below slice 2 is due');
  const writing: GapInfo = { beingWritten: (z) => z === 1, reason: (_z, f) => f };
  t.same(zsOf(seq.advance(500, writing).steps), [], 'slice 1 is still being written: no loss yet');
  const late = seq.advance(109, noGaps);
  t.same(zsOf(late.steps), [], 'not before the deadline');
  const due = seq.advance(110, { ...noGaps, reason: () => 'slice_1.tif is empty (0 bytes)' });
  t.same(due.steps, [
    { type: 'missing', z: 1, reason: 'slice_1.tif is empty (0 bytes)' },
    { type: 'slice', slice: at(2, 10) },
  ]);
  t.equal(seq.offer(at(1, 120)), 'slice 1 arrived after it was reported missing; not emitted');
  t.equal(seq.offer(at(0, 120)), 'slice 0 arrived after that z was emitted; not emitted');
  seq.offer(at(5, 130));
  t.equal(seq.offer(at(5, 131, 'other_5.tif')), 'slice 5 is already provided by slice_5.tif; not emitted');
});

t.test('the end flushes what waits, holes and expected slices not there become missing', async (t) => {
  const seq = new SliceSequencer<Sequenced>({
    firstSlice: 2,
    missingSliceTimeoutMs: TIMEOUT,
    expected: () => 6,
  });
  seq.offer(at(4, 0));
  seq.offer(at(5, 0));
  t.same(zsOf(seq.flush('done-marker', noGaps)), ['-2', '-3', 4, 5, '-6', '-7']);
  t.same(seq.missing, [2, 3, 6, 7]);
  t.equal(seq.emitted, 2);
});

t.test('a withdrawn slice (changed before its turn) does not go out until offered again', async (t) => {
  const seq = new SliceSequencer<Sequenced>({
    firstSlice: 0,
    missingSliceTimeoutMs: TIMEOUT,
    expected: () => undefined,
  });
  seq.offer(at(0, 0));
  seq.withdraw('slice_0.tif');
  t.same(zsOf(seq.advance(1000, noGaps).steps), []);
  seq.offer(at(0, 1000));
  t.same(zsOf(seq.advance(1000, noGaps).steps), [0]);
});

/** One thing that happens to a scan folder: a slice completes, time passes, a file is written. */
const op = fc.oneof(
  fc.record({ kind: fc.constant('offer' as const), z: fc.integer({ min: 0, max: 24 }), alt: fc.boolean() }),
  fc.record({ kind: fc.constant('tick' as const), ms: fc.integer({ min: 0, max: 3 * TIMEOUT }) }),
  fc.record({ kind: fc.constant('writing' as const), z: fc.integer({ min: 0, max: 24 }) }),
);

t.test('property: every z exactly once, in increasing order, emitted or reported missing', async (t) => {
  fc.assert(
    fc.property(
      fc.array(op, { maxLength: 80 }),
      fc.integer({ min: 0, max: 3 }),
      fc.option(fc.integer({ min: 1, max: 20 }), { nil: undefined }),
      (ops, firstSlice, expected) => {
        const seq = new SliceSequencer<Sequenced>({
          firstSlice,
          missingSliceTimeoutMs: TIMEOUT,
          expected: () => expected,
        });
        const steps: SequencerStep<Sequenced>[] = [];
        const offered = new Map<number, string>();
        let now = 0;
        let writing = -1;
        const gaps: GapInfo = { beingWritten: (z) => z === writing, reason: (_z, f) => f };
        let ended = false;
        for (const o of ops) {
          if (ended) break;
          if (o.kind === 'tick') now += o.ms;
          else if (o.kind === 'writing') writing = o.z;
          else {
            const slice = at(o.z, now, o.alt ? `b_${o.z}.tif` : `slice_${o.z}.tif`);
            if (o.z < firstSlice) continue; // the watcher refuses those before the sequencer
            if (seq.offer(slice) === undefined) offered.set(o.z, slice.path);
          }
          const out = seq.advance(now, gaps);
          // A gap is given up only when it was due and its file is not being written.
          for (const s of out.steps)
            if (s.type === 'missing' && s.z === writing)
              throw new Error(`gave up ${s.z} while it was written`);
          steps.push(...out.steps);
          if (out.wakeAt !== undefined && out.wakeAt <= now) throw new Error('wakeAt in the past');
          ended = out.steps.some((s) => s.type === 'expected-count');
        }
        if (!ended) steps.push(...seq.flush('done-marker', gaps));
        const zs = steps.flatMap((s) =>
          s.type === 'slice' ? [s.slice.z] : s.type === 'missing' ? [s.z] : [],
        );
        // Increasing and contiguous from firstSlice: each z once, none skipped silently.
        zs.forEach((z, i) => {
          if (z !== firstSlice + i) throw new Error(`step ${i} is z ${z}, not ${firstSlice + i}: ${zs}`);
        });
        if (expected !== undefined && zs.length > expected) throw new Error(`past the expected ${expected}`);
        if (expected !== undefined && zs.length !== expected)
          throw new Error(`ended at ${zs.length} of ${expected}`);
        for (const s of steps)
          if (s.type === 'slice' && offered.get(s.slice.z) === undefined)
            throw new Error(`${s.slice.z} was not offered`);
        // A slice offered (and accepted) at or above the point reached is out, not lost.
        const last = firstSlice + zs.length;
        for (const s of steps)
          if (s.type === 'missing' && offered.has(s.z) && s.z < last) {
            // Missing only if it came after its z was given up: then offer refused it.
            throw new Error(`slice ${s.z} was offered and accepted, yet reported missing`);
          }
        if (expected === undefined && seq.waiting().length > 0)
          throw new Error('slices left waiting after the flush');
      },
    ),
    { seed: 20261204, numRuns: 2000 },
  );
  t.pass('2000 random folder histories');
});
