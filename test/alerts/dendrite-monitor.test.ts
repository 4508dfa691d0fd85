import t from 'tap';
import { DEFAULT_ALERT_RULES, resolveAlertRules, severityFor } from '../../src/alerts/alert-rules.ts';
import { alertIdFor, type DendriteAlert } from '../../src/alerts/dendrite-alert.ts';
import { DendriteMonitor } from '../../src/alerts/dendrite-monitor.ts';
import { createPhantom } from '../../src/sim/phantom.ts';
import { LABEL, renderSlice } from '../../src/sim/render-slice.ts';
import { summarizePhantom } from '../../src/sim/summarize-phantom.ts';
import { normalizeSlice } from '../../src/slices/normalize-slice.ts';
import { quantizeProbability } from '../../src/slices/probability.ts';
import type { MaskedSlice } from '../../src/slices/slice-types.ts';

const model = { name: 'truth', version: '0', sha256: '0'.repeat(64), provider: 'cpu' as const };

/** Run a monitor over a simulated scan, with a "model" that marks the voxels of `classes`. */
function monitorScan(
  seed: number,
  classes: number[],
  opts: { dendrites?: number } = {},
  rules = DEFAULT_ALERT_RULES,
  /** Which marked pixels (x, y) of slice z the "model" loses. */
  lose: (x: number, y: number, z: number) => boolean = () => false,
) {
  const phantom = createPhantom({ seed, size: 192, slices: 64, ...opts });
  const monitor = new DendriteMonitor({
    scanId: `scan-${seed}`,
    width: phantom.size,
    height: phantom.size,
    voxelSizeUm: phantom.voxelSizeUm,
    expectedSlices: phantom.slices,
    rules,
    model,
    zarrPath: `/tmp/scan-${seed}.ome.zarr`,
    now: () => 1_700_000_000_000,
  });
  const alerts: (DendriteAlert & { atSlice: number })[] = [];
  for (let z = 0; z < phantom.slices; z++) {
    const { image, labels } = renderSlice(phantom, z);
    const mask = labels.map((l, i) =>
      classes.includes(l) && !lose(i % phantom.size, Math.floor(i / phantom.size), z) ? 1 : 0,
    );
    const prob = Float32Array.from(mask, (m) => (m ? 0.9 : 0.02));
    const normalized = normalizeSlice(image);
    const slice: MaskedSlice = {
      scanId: `scan-${seed}`,
      z,
      readyAt: 0,
      width: phantom.size,
      height: phantom.size,
      dtype: 'uint16',
      data: image,
      normalized,
      prob,
      mask,
      storedProb: quantizeProbability(prob),
      patches: 0,
    };
    for (const a of monitor.addSlice(slice, z + 1)) alerts.push({ ...a, atSlice: z });
  }
  return { phantom, alerts, summary: monitor.finish({ missingSlices: [], acquired: phantom.slices }) };
}

t.test('perfect masks raise alerts for the tall dendrites, early, with the right heights', async (t) => {
  const { phantom, alerts, summary } = monitorScan(21, [LABEL.dendrite]);
  const truth = summarizePhantom(phantom);
  const tall = truth.dendrites.filter((d) => d.heightFraction >= 0.3);
  t.ok(tall.length > 0, 'the scan has tall dendrites');
  const critical = alerts.filter((a) => a.severity === 'critical');
  const bridging = truth.dendrites.filter((d) => d.bridges);
  t.ok(
    critical.length >= Math.min(1, bridging.length),
    `${critical.length} critical alert(s) for ${bridging.length} bridging dendrite(s)`,
  );
  for (const a of alerts) {
    t.ok(a.scanProgress !== null && a.scanProgress <= 1);
    t.match(a.alertId, /^[0-9a-f]{8}-[0-9a-f]{4}-8[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    t.equal(a.alertId, alertIdFor(a.scanId, 'dendrite', a.componentId, a.severity));
    // The alert's height matches some simulated dendrite's height within a few voxels.
    const close = truth.dendrites.some(
      (d) =>
        Math.abs(d.heightVoxels * phantom.voxelSizeUm - a.heightUm) < 8 * phantom.voxelSizeUm ||
        a.heightFraction < d.heightFraction,
    );
    t.ok(close, `alert height ${a.heightUm} µm (${a.heightFraction}) is one of the dendrites'`);
  }
  // Severity only rises per component, and never repeats.
  const ids = alerts.map((a) => a.alertId);
  t.equal(new Set(ids).size, ids.length, 'no alert id twice');
  const byComponent = new Map<number, string[]>();
  for (const a of alerts)
    byComponent.set(a.componentId ?? -1, [...(byComponent.get(a.componentId ?? -1) ?? []), a.severity]);
  for (const [id, list] of byComponent)
    t.same(list, [...new Set(list)], `component ${id}: ${list.join(' → ')}`);
  // Lead time: the first alert comes before the last slice of the scan.
  const first = Math.min(...alerts.map((a) => a.atSlice));
  t.ok(first < phantom.slices - 1, `first alert at slice ${first} of ${phantom.slices}`);
  t.equal(summary.kind, 'scan-summary');
  t.ok(
    (summary.summary?.dendriteCount ?? 0) >= tall.length,
    `summary counts ${summary.summary?.dendriteCount} dendrites`,
  );
  t.ok((summary.summary?.segmentedVolumeFraction ?? 0) > 0);
});

t.test('pits and bubbles marked as dendrite by a confused model raise no alert', async (t) => {
  const { alerts, summary } = monitorScan(33, [LABEL.pit, LABEL.bubble], { dendrites: 0 });
  t.same(
    alerts.map((a) => `${a.severity} ${a.heightFraction} ${a.electrode}`),
    [],
    'floating bubbles are not rooted; pits do not reach into the electrolyte',
  );
  t.equal(summary.summary?.dendriteCount, 0);
});

t.test('the same scan gives the same alerts, ids included', async (t) => {
  const a = monitorScan(21, [LABEL.dendrite]).alerts;
  const b = monitorScan(21, [LABEL.dendrite]).alerts;
  t.same(a, b);
});

t.test('rules: severities, and bad values named by key', async (t) => {
  const r = DEFAULT_ALERT_RULES;
  const m = { voxelCount: 500, confidence: 0.9, rooted: true };
  t.equal(severityFor(r, { ...m, heightFraction: 0.02 }), undefined);
  t.equal(severityFor(r, { ...m, heightFraction: 0.1 }), 'info');
  t.equal(severityFor(r, { ...m, heightFraction: 0.5 }), 'warning');
  t.equal(severityFor(r, { ...m, heightFraction: 0.9 }), 'critical');
  t.equal(severityFor(r, { ...m, heightFraction: 0.9, rooted: false }), undefined);
  t.equal(severityFor(r, { ...m, heightFraction: 0.9, voxelCount: 10 }), undefined);
  t.equal(severityFor(r, { ...m, heightFraction: 0.9, confidence: 0.3 }), undefined);
  t.throws(() => resolveAlertRules({ minVoxels: 0 }), {
    code: 'ERR_CONFIG',
    message: /alerts\.rules\.minVoxels: 0 is not allowed/,
  });
  t.throws(() => resolveAlertRules({ criticalHeightFraction: 0.1 }), { message: /criticalHeightFraction/ });
});

t.test('rules: a component reaching far qualifies on fewer voxels (minVoxelsFar)', async (t) => {
  const r = DEFAULT_ALERT_RULES;
  const m = { confidence: 0.9, rooted: true };
  t.equal(severityFor(r, { ...m, voxelCount: 60, heightFraction: 0.2 }), undefined, 'short: needs minVoxels');
  t.equal(severityFor(r, { ...m, voxelCount: 60, heightFraction: 0.5 }), 'warning', 'far: minVoxelsFar');
  t.equal(severityFor(r, { ...m, voxelCount: 60, heightFraction: 0.9 }), 'critical');
  t.equal(severityFor(r, { ...m, voxelCount: r.minVoxelsFar - 1, heightFraction: 0.9 }), undefined);
  t.equal(severityFor(r, { ...m, voxelCount: 60, heightFraction: 0.9, rooted: false }), undefined);
  t.equal(
    resolveAlertRules({ minVoxels: 30 }).minVoxelsFar,
    30,
    'lowering minVoxels lowers the default with it',
  );
  t.equal(resolveAlertRules({ minVoxels: 300 }).minVoxelsFar, DEFAULT_ALERT_RULES.minVoxelsFar);
  t.throws(() => resolveAlertRules({ minVoxelsFar: 200 }), {
    message: /alerts\.rules\.minVoxelsFar: 200 is not allowed; use an integer from 1 to minVoxels/,
  });
  t.throws(() => resolveAlertRules({ trackingGapVoxels: 4 }), {
    message: /alerts\.rules\.trackingGapVoxels: 4 is not allowed/,
  });
  t.throws(() => resolveAlertRules({ trackingGapVoxels: 1.5 }), { message: /trackingGapVoxels/ });
});

t.test(
  'a mask that loses every fifth row still warns about the tall dendrites, once the gap is bridged',
  async (t) => {
    // A model that misses a row of voxels now and then cuts each dendrite into pieces a voxel apart.
    const lose = (_x: number, y: number) => y % 5 === 0;
    const whole = monitorScan(21, [LABEL.dendrite]).alerts;
    const critical = (alerts: DendriteAlert[]) => alerts.filter((a) => a.severity === 'critical').length;
    t.ok(critical(whole) > 0, 'the whole mask raises critical alerts');
    const bridged = monitorScan(21, [LABEL.dendrite], {}, DEFAULT_ALERT_RULES, lose).alerts;
    t.equal(critical(bridged), critical(whole), 'gap 2: as many critical alerts as the whole mask');
    const unbridged = monitorScan(
      21,
      [LABEL.dendrite],
      {},
      { ...DEFAULT_ALERT_RULES, trackingGapVoxels: 0 },
      lose,
    );
    t.equal(critical(unbridged.alerts), 0, 'gap 0: every piece is too short to be critical');
  },
);
