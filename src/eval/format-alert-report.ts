import type { AlertRules } from '../alerts/alert-rules.ts';
import type { ModelIdentity } from '../inference/load-model.ts';
import type { AlertEvaluation } from './evaluate-alerts.ts';
import { type AlertReport, type AlertRow, LATE_SLICES } from './score-alerts.ts';

/** What `eval --alerts` reports, printed or as JSON. */
export interface AlertEvalReport extends AlertEvaluation {
  model: ModelIdentity;
  scans: {
    seeds: readonly number[];
    dendriteFreeSeeds: readonly number[];
    size: number;
    slices: number;
    dendrites: number | null;
  };
  rules: AlertRules;
  seconds: number;
}

/** The alert evaluation as a Markdown table with its context, for a terminal or a README. */
export function formatAlertReport(r: AlertEvalReport): string {
  const { segmentation: seg } = r;
  const range = (s: readonly number[]) => (s.length === 0 ? 'none' : `${s[0]}–${s.at(-1)}`);
  const lines = [
    `model ${r.model.name} ${r.model.version} (sha256 ${r.model.sha256.slice(0, 12)}…, ${r.model.provider}); ` +
      `${r.scans.seeds.length} held-out scan(s) with dendrites (seeds ${range(r.scans.seeds)}) and ` +
      `${r.scans.dendriteFreeSeeds.length} dendrite-free (seeds ${range(r.scans.dendriteFreeSeeds)}), ` +
      `${r.scans.size}×${r.scans.size}×${r.scans.slices}, replayed through the daemon at full speed in ${r.seconds.toFixed(0)} s`,
    `rules: ${describeRules(r.rules)}`,
    `matching: ${r.report.matchingRule}`,
    '',
    ...judgement(r.report),
    `segmentation over the scans with dendrites: foreground Dice ${seg.dice.toFixed(4)}, IoU ${seg.iou.toFixed(4)}; paper-style mIoU ${seg.mIoU.toFixed(4)}, mDSC ${seg.mDSC.toFixed(4)}`,
  ];
  for (const also of r.also) {
    const changed = Object.entries(also.rules).filter(([k, v]) => r.rules[k as keyof AlertRules] !== v);
    lines.push(
      '',
      `the same masks, judged with ${changed.length === 0 ? 'the same rules' : changed.map(([k, v]) => `${k} ${v}`).join(', ')}:`,
      '',
      ...judgement(also.report),
    );
  }
  return `${lines.join('\n')}\n`;
}

function describeRules(rules: AlertRules): string {
  return Object.entries(rules)
    .map(([k, v]) => `${k} ${v}`)
    .join(', ');
}

/** One rule set's verdict: the table, false alerts, and the dendrites to look at. */
function judgement(report: AlertReport): string[] {
  const lines = [
    '| habit | reaches | dendrites | warned | recall | highest: info / warning / critical | delay slices median / p95 / max | scan to come at first alert median (least) | truth voxels in mask |',
    '|---|---|---|---|---|---|---|---|---|',
    ...report.rows.map(formatRow),
    '',
    `false alerts: ${report.withDendrites.falseAlerts} on ${report.withDendrites.scans} scan(s) with dendrites (${report.withDendrites.perScan.toFixed(2)} per scan)` +
      `${listed(report.withDendrites.scanIds)}; ${report.dendriteFree.falseAlerts} on ${report.dendriteFree.scans} dendrite-free scan(s) (${report.dendriteFree.perScan.toFixed(2)} per scan)${listed(report.dendriteFree.scanIds)}`,
    `alerts from a second component of a dendrite already warned about (a split dendrite): ${report.splitAlerts}; dendrites not scored (too small): ${report.unscored}`,
  ];
  const missed = report.rows.filter((row) => row.habit === 'all' && row.minHeightFraction >= 0.3);
  for (const row of missed)
    if (row.missed.length > 0)
      lines.push(`missed, reaching ≥ ${pct(row.minHeightFraction)}: ${row.missed.join(', ')}`);
  const all30 = report.rows.find((row) => row.habit === 'all' && row.minHeightFraction === 0.3);
  if (all30 && all30.late.length > 0)
    lines.push(
      `late (first alert > ${LATE_SLICES} slices after qualifying), reaching ≥ 30%: ${all30.late.join(', ')}`,
    );
  const all85 = report.rows.find((row) => row.habit === 'all' && row.minHeightFraction === 0.85);
  if (all85 && all85.notCritical.length > 0)
    lines.push(`reaching ≥ 85% but never critical: ${all85.notCritical.join(', ')}`);
  return lines;
}

function formatRow(row: AlertRow): string {
  const d = row.delaySlices;
  const h = row.highest;
  return `| ${row.habit} | ≥ ${pct(row.minHeightFraction)} | ${row.dendrites} | ${row.warned} | ${Number.isNaN(row.recall) ? '–' : row.recall.toFixed(2)} | ${h.info} / ${h.warning} / ${h.critical} | ${d ? `${d.median} / ${d.p95} / ${d.max}` : '–'} | ${row.toCome ? `${pct(row.toCome.median)} (${pct(row.toCome.min)})` : '–'} | ${row.voxelRecall === undefined ? '–' : pct(row.voxelRecall)} |`;
}

function pct(v: number): string {
  return `${Math.round(v * 100)}%`;
}

function listed(ids: readonly string[]): string {
  return ids.length > 0 ? ` (${ids.join(', ')})` : '';
}
