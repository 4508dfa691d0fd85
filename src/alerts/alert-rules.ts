import { ConfigError } from '../errors.ts';
import { MAX_GAP } from '../tracking/track-components.ts';
import type { Severity } from './dendrite-alert.ts';

/** When a tracked component counts as a dendrite worth telling someone about, and how loudly. */
export interface AlertRules {
  /** Fewest voxels (a few noisy voxels are not a dendrite). */
  minVoxels: number;
  /**
   * Fewest voxels for a component that reaches at least `warningHeightFraction`: a thin needle
   * reaching far into the electrolyte has few voxels and is the most dangerous kind, so it qualifies
   * on its length (at most `minVoxels`).
   */
  minVoxelsFar: number;
  /**
   * Background voxels the tracker bridges between two parts of one component (0–3): the mask shows a
   * faint, thin needle as fragments a voxel or two apart, which would each be too small alone.
   */
  trackingGapVoxels: number;
  /** Least mean probability over the component. */
  minConfidence: number;
  /** Least height into the electrolyte, as a fraction of its thickness, for any alert. */
  minHeightFraction: number;
  /**
   * Dendrites grow from an electrode: a component whose electrode-side end stays further than this
   * from the interface (a gas bubble floating in the electrolyte) is not one.
   */
  rootToleranceVoxels: number;
  /** Height fractions at which severity rises to warning and to critical (nearly bridging). */
  warningHeightFraction: number;
  criticalHeightFraction: number;
}

export const DEFAULT_ALERT_RULES: Readonly<AlertRules> = Object.freeze({
  minVoxels: 150,
  minVoxelsFar: 40,
  trackingGapVoxels: 2,
  minConfidence: 0.6,
  minHeightFraction: 0.05,
  rootToleranceVoxels: 6,
  warningHeightFraction: 0.3,
  criticalHeightFraction: 0.85,
});

/** Fill in and check rules; the message names the key and what is allowed. */
export function resolveAlertRules(rules: Partial<AlertRules> = {}, keyPrefix = 'alerts.rules'): AlertRules {
  const r = { ...DEFAULT_ALERT_RULES, ...rules };
  // Lowering minVoxels alone must not trip over the default minVoxelsFar.
  if (rules.minVoxelsFar === undefined) r.minVoxelsFar = Math.min(r.minVoxelsFar, r.minVoxels);
  const check = (key: keyof AlertRules, ok: boolean, want: string) => {
    if (!ok)
      throw new ConfigError(`${keyPrefix}.${key}: ${JSON.stringify(r[key])} is not allowed; ${want}`, {
        option: `${keyPrefix}.${key}`,
      });
  };
  check('minVoxels', Number.isInteger(r.minVoxels) && r.minVoxels >= 1, 'use an integer ≥ 1');
  check(
    'minVoxelsFar',
    Number.isInteger(r.minVoxelsFar) && r.minVoxelsFar >= 1 && r.minVoxelsFar <= r.minVoxels,
    'use an integer from 1 to minVoxels',
  );
  check(
    'trackingGapVoxels',
    Number.isInteger(r.trackingGapVoxels) && r.trackingGapVoxels >= 0 && r.trackingGapVoxels <= MAX_GAP,
    `use an integer from 0 to ${MAX_GAP}`,
  );
  check('minConfidence', r.minConfidence >= 0 && r.minConfidence <= 1, 'use a number from 0 to 1');
  check(
    'minHeightFraction',
    r.minHeightFraction >= 0 && r.minHeightFraction <= 1,
    'use a number from 0 to 1',
  );
  check('rootToleranceVoxels', r.rootToleranceVoxels >= 0, 'use a number ≥ 0');
  check(
    'warningHeightFraction',
    r.warningHeightFraction >= r.minHeightFraction && r.warningHeightFraction <= 1,
    'use a number from minHeightFraction to 1',
  );
  check(
    'criticalHeightFraction',
    r.criticalHeightFraction >= r.warningHeightFraction && r.criticalHeightFraction <= 1,
    'use a number from warningHeightFraction to 1',
  );
  return r;
}

/** The severity a measured dendrite deserves, or undefined when it does not qualify. */
export function severityFor(
  rules: AlertRules,
  m: { voxelCount: number; confidence: number; heightFraction: number; rooted: boolean },
): Severity | undefined {
  if (!m.rooted || m.confidence < rules.minConfidence) return undefined;
  if (m.heightFraction < rules.minHeightFraction) return undefined;
  const fewest = m.heightFraction >= rules.warningHeightFraction ? rules.minVoxelsFar : rules.minVoxels;
  if (m.voxelCount < fewest) return undefined;
  if (m.heightFraction >= rules.criticalHeightFraction) return 'critical';
  if (m.heightFraction >= rules.warningHeightFraction) return 'warning';
  return 'info';
}
