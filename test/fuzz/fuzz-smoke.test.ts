/**
 * The fuzzer's targets on a few thousand inputs each (the full run is `npm run fuzz`, 100,000 per
 * target), and every input it found that was not handled, as a regression test.
 */
import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import t from 'tap';
import { decodeTiff } from '../../src/codecs/decode-tiff.ts';
import { DecodeError } from '../../src/errors.ts';
import { applyEdits } from './mutate.ts';
import { refused, TARGETS } from './targets.ts';

const finding = (name: string) =>
  new Uint8Array(readFileSync(new URL(`./findings/${name}`, import.meta.url)));

t.test('each target handles 2,000 mutated inputs: decoded, or refused with a project error', async (t) => {
  for (const target of TARGETS) {
    const outcomes = new Map<string, number>();
    for (const input of fc.sample(target.input(), { seed: 42, numRuns: 2000 })) {
      const outcome = await target.run(input);
      outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1);
    }
    // Both kinds occur, so the mutations neither break every input nor leave them all intact.
    t.ok((outcomes.get('ok') ?? 0) > 0, `${target.name}: some accepted (${JSON.stringify([...outcomes])})`);
    t.ok(
      [...outcomes.keys()].some((k) => k !== 'ok'),
      `${target.name}: some refused`,
    );
  }
});

t.test('the harness tells a project error from a crash', async (t) => {
  const tiff = TARGETS.find((x) => x.name === 'tiff')!;
  t.equal(await tiff.run({ bytes: new Uint8Array([1, 2, 3]) }), 'ERR_DECODE');
  t.equal(refused(new DecodeError('x: bad', { path: 'x' })), 'ERR_DECODE');
  t.throws(() => refused(new RangeError('Offset is outside the bounds')), /not a project error: RangeError/);
  t.throws(() => refused('a string'), /not a project error: a string/);
});

t.test('mutations are the edits they say, and reproducible', async (t) => {
  const seed = Uint8Array.from([0, 1, 2, 3, 4, 5, 6, 7]);
  t.same(Array.from(applyEdits(seed, [{ op: 'flip', at: 0.25, bit: 0 }])), [0, 1, 3, 3, 4, 5, 6, 7]);
  t.same(Array.from(applyEdits(seed, [{ op: 'truncate', at: 0.5 }])), [0, 1, 2, 3]);
  t.same(
    Array.from(applyEdits(seed, [{ op: 'u16', at: 0, value: 0x0102, big: true }])),
    [1, 2, 2, 3, 4, 5, 6, 7],
  );
  t.same(Array.from(applyEdits(seed, [{ op: 'delete', at: 0.75, count: 9 }])), [0, 1, 2, 3, 4, 5]);
  t.same(Array.from(seed), [0, 1, 2, 3, 4, 5, 6, 7], 'the seed itself is untouched');
  const tiff = TARGETS.find((x) => x.name === 'tiff')!;
  t.same(
    fc.sample(tiff.input(), { seed: 9, numRuns: 5 }),
    fc.sample(tiff.input(), { seed: 9, numRuns: 5 }),
    'same seed, same inputs',
  );
});

t.test('found by the fuzzer: an LZW strip whose codes run out before the end code is refused', async (t) => {
  // A StripOffsets entry's type turned from LONG to SHORT: half the strips start in the header,
  // and the last one's codes end without the end code. geotiff filled it in silently (and printed
  // "ran off the end of the buffer" to the console); libtiff says "Not enough data".
  const printed: string[] = [];
  const warn = console.warn;
  console.warn = (...args: unknown[]) => void printed.push(args.join(' '));
  t.teardown(() => {
    console.warn = warn;
  });
  await t.rejects(decodeTiff(finding('tiff-lzw-runs-out.tif'), { path: 'runs-out.tif' }), {
    code: 'ERR_DECODE',
    message: /runs-out\.tif: could not decode page 0: strip \d+: its LZW codes run out before the end code/,
  });
  t.same(printed, [], 'and nothing is printed');
});
