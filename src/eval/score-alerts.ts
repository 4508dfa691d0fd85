import type { AlertRules } from '../alerts/alert-rules.ts';
import { type DendriteAlert, SEVERITIES, type Severity } from '../alerts/dendrite-alert.ts';
import { quantile } from '../daemon/daemon-stats.ts';
import type { Morphology } from '../sim/grow-dendrite.ts';
import { qualifyingSlice, type TruthDendrite } from './dendrite-truth.ts';

/** One evaluated scan: its truth dendrites, the dendrite alerts the daemon raised, and its mask's hits. */
export interface AlertScan {
  readonly scanId: string;
  /** Slice width and height. */
  readonly size: number;
  readonly slices: number;
  readonly dendrites: readonly TruthDendrite[];
  readonly alerts: readonly DendriteAlert[];
  /** Per truth dendrite id: how many of its voxels the daemon's mask holds. */
  readonly maskHits?: ReadonlyMap<number, number>;
}

/** The height classes the report groups dendrites by (fractions of the electrolyte). */
export const HEIGHT_CLASSES = [0.05, 0.3, 0.85] as const;
/** Dendrites with fewer truth voxels than this are listed apart, not scored. */
export const MIN_TRUTH_VOXELS = 50;

export const MATCHING_RULE =
  'each dendrite alert goes to the one truth dendrite with the most truth voxels inside its bounding box ' +
  '(none inside: a false alert); a dendrite is warned about when at least one alert goes to it; delay is ' +
  'the slice of its first alert minus the first slice at which its truth voxels so far meet the alert rules (or its last slice if they never do); dendrites under ' +
  `${MIN_TRUTH_VOXELS} truth voxels or 5% height are not scored`;

export interface Spread {
  median: number;
  p95: number;
  max: number;
}

export interface AlertRow {
  habit: Morphology | 'all';
  /** The class: dendrites reaching at least this fraction of the electrolyte. */
  minHeightFraction: number;
  dendrites: number;
  warned: number;
  recall: number;
  /** How many of them got this as their highest severity (unwarned ones are not counted). */
  highest: Record<Severity, number>;
  /** Slices from qualifying to the first alert, over the warned ones; undefined when none. */
  delaySlices: Spread | undefined;
  /** The scan fraction still to come at the first alert, over the warned ones (median, and the least). */
  toCome: { median: number; min: number } | undefined;
  /** Truth voxels in the daemon's mask over all truth voxels of the class; undefined without mask hits. */
  voxelRecall: number | undefined;
  /** The dendrites it missed, as `scanId#id` (height): where to look. */
  missed: string[];
  /** The warned ones whose first alert came more than `LATE_SLICES` after they qualified, as `scanId#id` (delay). */
  late: string[];
  /** The warned ones never raised as critical, as `scanId#id` (highest severity). */
  notCritical: string[];
}

/** The bound on the delay (p95): alerts later than this after qualifying are listed. */
export const LATE_SLICES = 5;

export interface AlertReport {
  matchingRule: string;
  rows: AlertRow[];
  /** Dendrites too small to score. */
  unscored: number;
  /** Alerts matched to a dendrite another component had already warned about (a split dendrite). */
  splitAlerts: number;
  withDendrites: FalseAlerts;
  dendriteFree: FalseAlerts;
}

export interface FalseAlerts {
  scans: number;
  falseAlerts: number;
  /** False alerts per scan. */
  perScan: number;
  /** Scan ids with at least one false alert. */
  scanIds: string[];
}

interface Outcome {
  scanId: string;
  dendrite: TruthDendrite;
  firstAlertZ: number | undefined;
  toCome: number | undefined;
  highest: Severity | undefined;
  delay: number | undefined;
  hits: number | undefined;
}

/** Match every scan's alerts to its truth and summarize recall, severity, delay and false alerts. */
export function scoreAlerts(scans: readonly AlertScan[], rules: AlertRules): AlertReport {
  const outcomes: Outcome[] = [];
  let splitAlerts = 0;
  const withDendrites: FalseAlerts = { scans: 0, falseAlerts: 0, perScan: 0, scanIds: [] };
  const dendriteFree: FalseAlerts = { scans: 0, falseAlerts: 0, perScan: 0, scanIds: [] };
  let unscored = 0;
  for (const scan of scans) {
    const tally = scan.dendrites.length > 0 ? withDendrites : dendriteFree;
    tally.scans++;
    const perDendrite = new Map<
      number,
      { first: DendriteAlert; highest: Severity; components: Set<number> }
    >();
    let falseHere = 0;
    for (const alert of scan.alerts) {
      if (alert.kind !== 'dendrite' || !alert.bbox) continue;
      const owner = matchAlert(alert, scan);
      if (owner === undefined) {
        falseHere++;
        continue;
      }
      const seen = perDendrite.get(owner.id);
      const component = alert.componentId ?? -1;
      if (!seen) {
        perDendrite.set(owner.id, {
          first: alert,
          highest: alert.severity,
          components: new Set([component]),
        });
        continue;
      }
      if (!seen.components.has(component)) {
        seen.components.add(component);
        splitAlerts++;
      }
      if (rank(alert.severity) > rank(seen.highest)) seen.highest = alert.severity;
      if (alert.sliceRange.last < seen.first.sliceRange.last) seen.first = alert;
    }
    tally.falseAlerts += falseHere;
    if (falseHere > 0) tally.scanIds.push(scan.scanId);
    for (const d of scan.dendrites) {
      if (d.voxels.length < MIN_TRUTH_VOXELS || d.heightFraction < (HEIGHT_CLASSES[0] as number)) {
        unscored++;
        continue;
      }
      const got = perDendrite.get(d.id);
      const firstAlertZ = got?.first.sliceRange.last;
      const qualified = qualifyingSlice(d, rules) ?? lastSlice(d, scan.size);
      outcomes.push({
        scanId: scan.scanId,
        dendrite: d,
        firstAlertZ,
        // From the alert's slice, not its scanProgress: at full speed the replay reads ahead by as
        // many slices as the pipeline holds, which depends on the machine; at a scanner's pace the
        // slice being segmented is about the last acquired.
        toCome: firstAlertZ === undefined ? undefined : 1 - (firstAlertZ + 1) / scan.slices,
        highest: got?.highest,
        delay: firstAlertZ === undefined ? undefined : firstAlertZ - qualified,
        hits: scan.maskHits?.get(d.id),
      });
    }
  }
  for (const t of [withDendrites, dendriteFree]) t.perScan = t.scans > 0 ? t.falseAlerts / t.scans : 0;
  const rows: AlertRow[] = [];
  for (const minHeightFraction of HEIGHT_CLASSES) {
    for (const habit of ['tree', 'mossy', 'needle', 'all'] as const) {
      const these = outcomes.filter(
        (o) =>
          (habit === 'all' || o.dendrite.morphology === habit) &&
          o.dendrite.heightFraction >= minHeightFraction,
      );
      if (these.length === 0 && habit !== 'all') continue;
      rows.push(row(habit, minHeightFraction, these));
    }
  }
  return { matchingRule: MATCHING_RULE, rows, unscored, splitAlerts, withDendrites, dendriteFree };
}

function row(habit: AlertRow['habit'], minHeightFraction: number, these: Outcome[]): AlertRow {
  const warned = these.filter((o) => o.firstAlertZ !== undefined);
  const highest = Object.fromEntries(SEVERITIES.map((s) => [s, 0])) as Record<Severity, number>;
  for (const o of warned) if (o.highest) highest[o.highest]++;
  const delays = warned.map((o) => o.delay as number);
  const toCome = warned.flatMap((o) => (o.toCome === undefined ? [] : [o.toCome]));
  const withHits = these.filter((o) => o.hits !== undefined);
  const truthVoxels = withHits.reduce((a, o) => a + o.dendrite.voxels.length, 0);
  const hitVoxels = withHits.reduce((a, o) => a + (o.hits as number), 0);
  return {
    habit,
    minHeightFraction,
    dendrites: these.length,
    warned: warned.length,
    recall: these.length > 0 ? warned.length / these.length : Number.NaN,
    highest,
    delaySlices: delays.length > 0 ? spread(delays) : undefined,
    toCome: toCome.length > 0 ? { median: quantile(toCome, 0.5), min: Math.min(...toCome) } : undefined,
    voxelRecall: withHits.length > 0 && truthVoxels > 0 ? hitVoxels / truthVoxels : undefined,
    missed: these
      .filter((o) => o.firstAlertZ === undefined)
      .map((o) => `${o.scanId}#${o.dendrite.id} (${Math.round(o.dendrite.heightFraction * 100)}%)`),
    late: warned
      .filter((o) => (o.delay as number) > LATE_SLICES)
      .map((o) => `${o.scanId}#${o.dendrite.id} (${o.dendrite.morphology}, ${o.delay} slices)`),
    notCritical: warned
      .filter((o) => o.highest !== 'critical')
      .map((o) => `${o.scanId}#${o.dendrite.id} (${o.dendrite.morphology}, ${o.highest})`),
  };
}

/** The truth dendrite with the most truth voxels inside the alert's box, if any. */
export function matchAlert(alert: DendriteAlert, scan: AlertScan): TruthDendrite | undefined {
  const b = alert.bbox?.voxels;
  if (!b) return undefined;
  const area = scan.size * scan.size;
  let best: TruthDendrite | undefined;
  let bestCount = 0;
  for (const d of scan.dendrites) {
    let count = 0;
    // Voxels are sorted by index, so z-major: only the box's slab needs a look.
    const from = lowerBound(d.voxels, b.zMin * area);
    const to = lowerBound(d.voxels, (b.zMax + 1) * area);
    for (let k = from; k < to; k++) {
      const v = (d.voxels[k] as number) % area;
      const x = v % scan.size;
      const y = (v - x) / scan.size;
      if (x >= b.xMin && x <= b.xMax && y >= b.yMin && y <= b.yMax) count++;
    }
    if (count > bestCount) {
      best = d;
      bestCount = count;
    }
  }
  return best;
}

function lastSlice(d: TruthDendrite, size: number): number {
  const last = d.voxels[d.voxels.length - 1];
  return last === undefined ? 0 : Math.floor(last / (size * size));
}

function lowerBound(sorted: Int32Array, value: number): number {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if ((sorted[mid] as number) < value) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

function rank(s: Severity): number {
  return SEVERITIES.indexOf(s);
}

function spread(values: number[]): Spread {
  return { median: quantile(values, 0.5), p95: quantile(values, 0.95), max: Math.max(...values) };
}
