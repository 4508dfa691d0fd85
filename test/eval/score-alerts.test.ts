import t from 'tap';
import { DEFAULT_ALERT_RULES } from '../../src/alerts/alert-rules.ts';
import { alertIdFor, type DendriteAlert, type Severity } from '../../src/alerts/dendrite-alert.ts';
import { quantile } from '../../src/daemon/daemon-stats.ts';
import { DendriteTruth, qualifyingSlice, type TruthDendrite } from '../../src/eval/dendrite-truth.ts';
import { matchAlert, scoreAlerts } from '../../src/eval/score-alerts.ts';
import { createPhantom } from '../../src/sim/phantom.ts';
import { LABEL, renderSlice } from '../../src/sim/render-slice.ts';
import { summarizePhantom } from '../../src/sim/summarize-phantom.ts';

const SIZE = 32;
const SLICES = 20;

/** A vertical truth column at (x, ·, z0…z1), rows y0…y1, growing taller slice by slice. */
function column(
  id: number,
  morphology: TruthDendrite['morphology'],
  x: number,
  z0: number,
  z1: number,
  rows: number,
  heightFraction: number,
  /** The first slice whose voxels reach the electrode (its root); before it, a branch floats. */
  rootedFrom = z0,
): TruthDendrite {
  const voxels: number[] = [];
  const upTo = new Int32Array(SLICES);
  const height = new Float32Array(SLICES);
  const root = new Float32Array(SLICES);
  for (let z = 0; z < SLICES; z++) {
    if (z >= z0 && z <= z1) for (let y = 0; y < rows; y++) voxels.push(z * SIZE * SIZE + y * SIZE + x);
    upTo[z] = voxels.length;
    height[z] = z >= z0 ? (heightFraction * Math.min(z - z0 + 1, z1 - z0 + 1)) / (z1 - z0 + 1) : 0;
    root[z] = z >= rootedFrom ? 0 : z >= z0 ? 10 : Number.POSITIVE_INFINITY;
  }
  return {
    id,
    morphology,
    electrode: 'top',
    heightFraction,
    bridges: heightFraction >= 1,
    voxels: Int32Array.from(voxels),
    voxelsUpTo: upTo,
    heightFractionUpTo: height,
    rootDistanceUpTo: root,
  };
}

function alert(
  componentId: number,
  severity: Severity,
  box: { x: [number, number]; y: [number, number]; z: [number, number] },
): DendriteAlert {
  const voxels = {
    xMin: box.x[0],
    xMax: box.x[1],
    yMin: box.y[0],
    yMax: box.y[1],
    zMin: box.z[0],
    zMax: box.z[1],
  };
  return {
    alertId: alertIdFor('s', 'dendrite', componentId, severity),
    scanId: 's',
    kind: 'dendrite',
    severity,
    raisedAt: 0,
    scanProgress: (box.z[1] + 1) / SLICES,
    sliceRange: { first: box.z[0], last: box.z[1] },
    bbox: { voxels, um: voxels },
    voxelCount: 100,
    volumeUm3: 100,
    heightUm: 10,
    heightFraction: 0.5,
    confidence: 0.9,
    model: { name: 'm', version: '0', sha256: '0'.repeat(64), provider: 'cpu' },
    zarr: {
      path: 'x',
      labels: 'labels/dendrite/0',
      probabilities: 'probabilities/0',
      region: { z: [0, 1], y: [0, 1], x: [0, 1] },
    },
    componentId,
    electrode: 'top',
    summary: null,
  };
}

t.test(
  'alerts are matched by the truth voxels their box covers; recall, severity, delay, false alerts',
  async (t) => {
    // Three dendrites: a tall tree (20 rows × 10 slices = 200 voxels), a needle (10 × 6 = 60), a
    // mossy one too small to score (2 × 5 = 10 voxels).
    const tree = column(1, 'tree', 4, 2, 11, 20, 0.9);
    const needle = column(2, 'needle', 20, 5, 10, 10, 0.4);
    const tiny = column(3, 'mossy', 28, 0, 4, 2, 0.1);
    const rules = { ...DEFAULT_ALERT_RULES, minVoxels: 100, minVoxelsFar: 40 };
    // Both qualify on 40 voxels once they reach 30%: the tree at z = 5 (80 voxels, height
    // 0.9·4/10 = 0.36; at z = 4 it had 60 at 0.27); the needle at z = 9 (50 voxels, 0.4·5/6 = 0.33).
    t.equal(qualifyingSlice(tree, rules), 5);
    t.equal(qualifyingSlice(needle, rules), 9);
    const alerts = [
      alert(7, 'warning', { x: [3, 5], y: [0, 19], z: [2, 8] }), // the tree, 2 slices after qualifying
      alert(7, 'critical', { x: [3, 5], y: [0, 19], z: [2, 10] }), // the same component, louder
      alert(9, 'info', { x: [4, 4], y: [10, 19], z: [11, 11] }), // a second piece of the tree
      alert(8, 'warning', { x: [19, 21], y: [0, 9], z: [5, 9] }), // the needle, on time
      alert(11, 'info', { x: [10, 14], y: [25, 30], z: [0, 3] }), // covers no truth voxel: false
    ];
    const scan = { scanId: 's', size: SIZE, slices: SLICES, dendrites: [tree, needle, tiny], alerts };
    t.equal(matchAlert(alerts[3] as DendriteAlert, scan)?.id, 2);
    t.equal(matchAlert(alerts[4] as DendriteAlert, scan), undefined);
    const free = {
      scanId: 'f',
      size: SIZE,
      slices: SLICES,
      dendrites: [],
      alerts: [alerts[4] as DendriteAlert],
    };
    const r = scoreAlerts([scan, free], rules);
    t.equal(r.unscored, 1, 'the 10-voxel deposit is not scored');
    t.equal(r.splitAlerts, 1, 'the second piece of the tree is a split alert, not a false one');
    t.same(r.withDendrites, { scans: 1, falseAlerts: 1, perScan: 1, scanIds: ['s'] });
    t.same(r.dendriteFree, { scans: 1, falseAlerts: 1, perScan: 1, scanIds: ['f'] });
    const row = (habit: string, h: number) =>
      r.rows.find((x) => x.habit === habit && x.minHeightFraction === h);
    t.same(row('all', 0.3)?.highest, { info: 0, warning: 1, critical: 1 });
    t.equal(row('all', 0.3)?.recall, 1);
    t.same(
      row('tree', 0.85)?.delaySlices,
      { median: 3, p95: 3, max: 3 },
      'first alert at z 8, qualified at 5',
    );
    t.same(row('needle', 0.3)?.delaySlices, { median: 0, p95: 0, max: 0 });
    t.same(row('tree', 0.85)?.toCome, { median: 1 - 9 / SLICES, min: 1 - 9 / SLICES });
    t.equal(row('needle', 0.85), undefined, 'no needle reaches 85%');
    t.equal(row('all', 0.85)?.dendrites, 1);

    const missing = scoreAlerts([{ ...scan, alerts: [alerts[0] as DendriteAlert] }], rules);
    const needles = missing.rows.find((x) => x.habit === 'needle' && x.minHeightFraction === 0.3);
    t.equal(needles?.recall, 0);
    t.same(needles?.missed, ['s#2 (40%)']);
    t.equal(needles?.delaySlices, undefined);
    t.same(row('all', 0.3)?.late, [], 'no first alert more than 5 slices after qualifying');

    // The same tree, but its first slices are a branch 10 voxels off the electrode: it qualifies
    // once its root is in (z 7), as the daemon's monitor can only call a rooted component a dendrite.
    const leaning = column(1, 'tree', 4, 2, 11, 20, 0.9, 7);
    t.equal(qualifyingSlice(leaning, rules), 7);
    t.equal(qualifyingSlice(leaning, { ...rules, rootToleranceVoxels: 10 }), 5, 'within a looser tolerance');
    t.same(row('all', 0.3)?.notCritical, ['s#2 (needle, warning)'], 'the needle stayed at warning');
    const tardy = scoreAlerts(
      [{ ...scan, alerts: [alert(7, 'critical', { x: [3, 5], y: [0, 19], z: [2, 11] })] }],
      rules,
    );
    t.same(
      tardy.rows.find((x) => x.habit === 'all' && x.minHeightFraction === 0.3)?.late,
      ['s#1 (tree, 6 slices)'],
      'qualified at 5, first alert at 11: listed as late',
    );
  },
);

t.test('quantile is nearest-rank', async (t) => {
  t.equal(quantile([5, 1, 3, 2, 4], 0.5), 3);
  t.equal(quantile([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20], 0.95), 19);
  t.equal(quantile([7], 0.95), 7);
});

t.test('the truth of a simulated scan: every dendrite voxel has one owner, inside its own box', async (t) => {
  const phantom = createPhantom({ seed: 4242, size: 128, slices: 32 });
  const truth = new DendriteTruth(phantom);
  let labelled = 0;
  for (let z = 0; z < phantom.slices; z++) {
    const { labels } = renderSlice(phantom, z);
    for (const l of labels) if (l === LABEL.dendrite) labelled++;
    truth.addSlice(z, labels);
  }
  t.throws(() => truth.addSlice(3, new Uint8Array(128 * 128)), RangeError, 'slices in order only');
  const dendrites = truth.dendrites();
  const summary = summarizePhantom(phantom);
  t.equal(dendrites.length, summary.dendrites.length);
  t.equal(
    dendrites.reduce((a, d) => a + d.voxels.length, 0),
    labelled,
    'the owners partition the dendrite label',
  );
  const area = phantom.size * phantom.size;
  for (const [k, d] of dendrites.entries()) {
    const s = summary.dendrites[k];
    t.equal(d.id, s?.id);
    t.equal(d.morphology, s?.morphology);
    t.equal(d.voxelsUpTo[phantom.slices - 1], d.voxels.length);
    let outside = 0;
    for (const v of d.voxels) {
      const z = Math.floor(v / area);
      const y = Math.floor((v % area) / phantom.size);
      const x = v % phantom.size;
      const b = s?.bbox;
      if (!b || z < b.zMin || z > b.zMax || y < b.yMin || y > b.yMax || x < b.xMin || x > b.xMax) outside++;
    }
    t.equal(outside, 0, `dendrite ${d.id} (${d.morphology}): all ${d.voxels.length} voxels inside its box`);
    // Every simulated dendrite starts inside its electrode: its truth, whole, is rooted.
    if (d.voxels.length > 0)
      t.ok(
        (d.rootDistanceUpTo[phantom.slices - 1] as number) <= DEFAULT_ALERT_RULES.rootToleranceVoxels,
        `dendrite ${d.id}: electrode-side end ${d.rootDistanceUpTo[phantom.slices - 1]} voxels from its interface`,
      );
    // The height measured from the voxels, against the local interface, is close to the simulator's.
    const reached = d.heightFractionUpTo[phantom.slices - 1] as number;
    if (d.voxels.length > 0)
      t.ok(
        Math.abs(reached - d.heightFraction) < 0.15,
        `dendrite ${d.id}: height from voxels ${reached.toFixed(2)} vs truth.json ${d.heightFraction.toFixed(2)}`,
      );
  }
});
