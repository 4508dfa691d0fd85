import t from 'tap';
import { createPhantom } from '../../src/sim/phantom.ts';
import { summarizePhantom } from '../../src/sim/summarize-phantom.ts';
import { runCli } from './run-cli.ts';

t.test(
  'eval --alerts replays scans through the daemon and scores its alerts against the truth',
  async (t) => {
    // One small scan with dendrites and one without, through the shipped T-Net: real alerts, real truth.
    const args = ['eval', '--alerts', '--seed', '930000', '--scans', '1', '--free-scans', '1'];
    const small = ['--size', '160', '--slices', '24', '--dendrites', '3'];
    // Judged a second time by the default rules, given explicitly: exactly the daemon's own verdict.
    const same = ['--also-rules', 'minVoxels=150,trackingGapVoxels=2'];
    const r = await runCli([...args, ...small, ...same, '--json'], { timeoutMs: 300_000 });
    t.equal(r.code, 0, r.stderr.slice(-2000));
    const report = JSON.parse(r.stdout);
    t.same(report.scans.seeds, [930000]);
    t.same(report.scans.dendriteFreeSeeds, [940000]);
    t.match(report.report.matchingRule, /most truth voxels inside its bounding box/);
    t.equal(report.report.withDendrites.scans, 1);
    t.equal(report.report.dendriteFree.scans, 1);
    t.equal(report.rules.trackingGapVoxels, 2, 'the daemon defaults');
    t.equal(report.also.length, 1);
    t.same(report.also[0].rules, report.rules);
    t.same(report.also[0].report, report.report, 'a monitor fed beside the daemon judges as the daemon does');
    // Every truth dendrite is either scored in the ≥ 5% "all" row or counted as too small.
    const truth = summarizePhantom(createPhantom({ seed: 930000, size: 160, slices: 24, dendrites: 3 }));
    const all = report.report.rows.find(
      (row: { habit: string; minHeightFraction: number }) =>
        row.habit === 'all' && row.minHeightFraction === 0.05,
    );
    t.equal(all.dendrites + report.report.unscored, truth.dendrites.length);
    t.ok(all.warned <= all.dendrites);
    t.ok(all.warned >= 1, 'some dendrite was warned about, so the second judgement had alerts to match');
    t.ok(
      report.segmentation.dice > 0 && report.segmentation.dice <= 1,
      `mask Dice ${report.segmentation.dice}`,
    );

    const text = await runCli(
      [...args, ...small, '--rule', 'minVoxels=100', '--also-rules', 'minConfidence=0.5,minVoxels=90'],
      { timeoutMs: 300_000 },
    );
    t.equal(text.code, 0, text.stderr.slice(-2000));
    t.match(text.stdout, /\| habit \| reaches \| dendrites \| warned \| recall \|/);
    t.match(text.stdout, /rules: minVoxels 100, minVoxelsFar 40,/);
    t.match(text.stdout, /false alerts: \d+ on 1 scan\(s\) with dendrites/);
    t.match(text.stdout, /the same masks, judged with minVoxels 90, minConfidence 0.5:/);
  },
);

t.test('eval --alerts: bad options are named', async (t) => {
  const cases: [string[], RegExp][] = [
    [['eval', '--alerts', '--rule', 'minVolts=3'], /--rule minVolts=3: unknown rule "minVolts"/],
    [['eval', '--alerts', '--rule', 'minVoxels'], /--rule minVoxels: write KEY=NUMBER/],
    [['eval', '--alerts', '--rule', 'trackingGapVoxels=9'], /--rule\.trackingGapVoxels: 9 is not allowed/],
    [['eval', '--alerts', '--scans', '0', '--free-scans', '0'], /nothing to evaluate/],
    [
      ['eval', '--alerts', '--also-rules', 'minVoxels=5,minVolts=3'],
      /--also-rules minVolts=3: unknown rule "minVolts"/,
    ],
    [['eval', '--alerts', '--seed', '1200'], /scan seed 1200 was used to train tnet/],
    [['eval', '--alerts', '--batch', '4'], /--batch does not go with --alerts/],
    [['eval', '--model', 'tnet', '--free-scans', '3'], /--free-scans goes with --alerts/],
  ];
  for (const [args, message] of cases) {
    const r = await runCli(args);
    t.not(r.code, 0, `${args.join(' ')} fails`);
    t.match(r.stderr, message, r.stderr.split('\n')[0] ?? '');
  }
});
