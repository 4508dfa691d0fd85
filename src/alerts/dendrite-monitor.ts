import type { ModelIdentity } from '../inference/load-model.ts';
import type { MaskedSlice } from '../slices/slice-types.ts';
import { estimateInterfaces, type InterfaceEstimate } from '../tracking/estimate-interfaces.ts';
import { createComponentTracker, type TrackedComponent } from '../tracking/track-components.ts';
import { type AlertRules, severityFor } from './alert-rules.ts';
import {
  alertIdFor,
  type DendriteAlert,
  SEVERITIES,
  type Severity,
  type ZarrEvidence,
} from './dendrite-alert.ts';

export interface MonitorOptions {
  scanId: string;
  width: number;
  height: number;
  /** Isotropic voxel size. */
  voxelSizeUm: number;
  expectedSlices: number | undefined;
  rules: AlertRules;
  model: ModelIdentity;
  zarrPath: string;
  /** Discount voxels as dark as voids from a component's confidence (default true). */
  voidCheck?: boolean;
  /** Clock for `raisedAt` (tests and replays pass their own). */
  now?: () => number;
}

/**
 * What the monitor reads of a slice. `prob` is the model's probability, or the daemon's stored copy of
 * it (uint8, probability × 255), which the tracker reads as such without a float copy.
 */
export type TrackedSlice = Pick<MaskedSlice, 'z' | 'width' | 'height' | 'mask' | 'normalized'> & {
  prob: Float32Array | Uint8Array;
};

/** What a component measures against the electrodes. */
interface Measurement {
  electrode: 'top' | 'bottom';
  rooted: boolean;
  heightVoxels: number;
  heightFraction: number;
}

/**
 * Follows one scan slice by slice: tracks 3-D dendrite components, measures how far each reaches
 * into the electrolyte, and raises an alert when one first qualifies and again only when its
 * severity rises.
 */
export class DendriteMonitor {
  private readonly tracker;
  private readonly interfaces = new Map<number, InterfaceEstimate>();
  private lastInterfaces: InterfaceEstimate | undefined;
  /** Highest severity already raised per component id. */
  private readonly raised = new Map<number, Severity>();
  private readonly dendrites = new Map<number, { heightVoxels: number; heightFraction: number }>();
  private maskVoxels = 0;
  private slices = 0;
  private readonly now: () => number;
  private readonly voidCheck: boolean;
  private evidence8: Uint8Array | undefined;
  private evidence32: Float32Array | undefined;

  constructor(private readonly o: MonitorOptions) {
    this.voidCheck = o.voidCheck ?? true;
    this.tracker = createComponentTracker({
      width: o.width,
      height: o.height,
      connectivity: 26,
      gap: o.rules.trackingGapVoxels,
    });
    this.now = o.now ?? Date.now;
  }

  /** Add the next slice (z ascending); returns the alerts it raises. */
  addSlice(slice: TrackedSlice, acquired: number): DendriteAlert[] {
    this.slices++;
    const mask = slice.mask;
    let voxels = 0;
    for (let i = 0; i < mask.length; i++) voxels += mask[i] as number;
    this.maskVoxels += voxels;
    const found = estimateInterfaces(slice.normalized, slice.width, slice.height);
    if (found) {
      this.interfaces.set(slice.z, found);
      this.lastInterfaces = found;
    }
    const update = this.tracker.addSlice(
      slice.z,
      slice.mask,
      this.voidCheck ? this.liEvidence(slice, this.lastInterfaces) : slice.prob,
    );
    // A merged component inherits what its parts already raised: no repeat at the same severity.
    for (const merge of update.merges) {
      let top = this.raised.get(merge.id);
      for (const id of merge.absorbed) {
        const s = this.raised.get(id);
        if (s && (!top || rank(s) > rank(top))) top = s;
        this.raised.delete(id);
        this.dendrites.delete(id);
      }
      if (top) this.raised.set(merge.id, top);
    }
    const alerts: DendriteAlert[] = [];
    const progress = this.o.expectedSlices ? Math.min(1, acquired / this.o.expectedSlices) : null;
    for (const c of update.changed) {
      const m = this.measure(c);
      if (!m) continue;
      const severity = severityFor(this.o.rules, {
        voxelCount: c.voxelCount,
        confidence: c.probMean,
        heightFraction: m.heightFraction,
        rooted: m.rooted,
      });
      if (!severity) continue;
      this.dendrites.set(c.id, { heightVoxels: m.heightVoxels, heightFraction: m.heightFraction });
      const before = this.raised.get(c.id);
      if (before && rank(before) >= rank(severity)) continue;
      this.raised.set(c.id, severity);
      alerts.push(this.alert(c, m, severity, progress));
    }
    return alerts;
  }

  /** The scan ended: the summary alert. */
  finish(info: { missingSlices: number[]; acquired: number }): DendriteAlert {
    this.tracker.closeAll();
    const heights = [...this.dendrites.values()];
    const largest = heights.reduce((a, b) => (b.heightVoxels > a.heightVoxels ? b : a), {
      heightVoxels: 0,
      heightFraction: 0,
    });
    const severities = [...this.raised.values()];
    const severity = severities.reduce<Severity>((a, b) => (rank(b) > rank(a) ? b : a), 'info');
    const v = this.o.voxelSizeUm;
    const total = this.o.width * this.o.height * Math.max(1, this.slices);
    return {
      alertId: alertIdFor(this.o.scanId, 'scan-summary', null, 'info'),
      scanId: this.o.scanId,
      kind: 'scan-summary',
      severity,
      raisedAt: this.now(),
      scanProgress: this.o.expectedSlices ? Math.min(1, info.acquired / this.o.expectedSlices) : null,
      sliceRange: { first: 0, last: Math.max(0, this.slices - 1) },
      bbox: null,
      voxelCount: this.maskVoxels,
      volumeUm3: round(this.maskVoxels * v ** 3),
      heightUm: round(largest.heightVoxels * v),
      heightFraction: round(largest.heightFraction),
      confidence: 1,
      model: this.o.model,
      zarr: this.evidence({
        zMin: 0,
        zMax: Math.max(0, this.slices - 1),
        yMin: 0,
        yMax: this.o.height - 1,
        xMin: 0,
        xMax: this.o.width - 1,
      }),
      componentId: null,
      electrode: null,
      summary: {
        dendriteCount: this.dendrites.size,
        largestHeightUm: round(largest.heightVoxels * v),
        largestHeightFraction: round(largest.heightFraction),
        segmentedVolumeFraction: this.maskVoxels / total,
        slices: this.slices,
        missingSlices: info.missingSlices,
      },
    };
  }

  /**
   * The probability that counts towards a component's confidence: the model's, where the voxel is
   * as bright as Li or brighter, and 0 where it is as dark as empty space. Gas bubbles and pits are
   * voids, darker than any Li: a model that mistakes one for a dendrite still gives it no confidence.
   */
  private liEvidence(slice: TrackedSlice, levels: InterfaceEstimate | undefined): Float32Array | Uint8Array {
    const { prob, mask, normalized } = slice;
    if (!levels) return prob;
    const voidBelow = levels.liLevel - 0.5 * (levels.electrolyteLevel - levels.liLevel);
    // One buffer per monitor, rewritten whole each slice: the tracker reads it only during addSlice.
    let out = prob instanceof Uint8Array ? this.evidence8 : this.evidence32;
    if (out?.length !== prob.length) {
      out = prob instanceof Uint8Array ? new Uint8Array(prob.length) : new Float32Array(prob.length);
      if (out instanceof Uint8Array) this.evidence8 = out;
      else this.evidence32 = out;
    }
    for (let i = 0; i < out.length; i++)
      out[i] = mask[i] === 1 && (normalized[i] as number) >= voidBelow ? (prob[i] as number) : 0;
    return out;
  }

  private interfacesAt(z: number): InterfaceEstimate | undefined {
    return this.interfaces.get(z) ?? this.lastInterfaces;
  }

  private measure(c: TrackedComponent): Measurement | undefined {
    const atMin = this.interfacesAt(c.yMinVoxel.z);
    const atMax = this.interfacesAt(c.yMaxVoxel.z);
    // Without a two-band cell in view (not a battery, or not yet) there is no height to measure.
    if (!atMin || !atMax) return undefined;
    const topAtMin = atMin.top[c.yMinVoxel.x] as number;
    const bottomAtMax = atMax.bottom[c.yMaxVoxel.x] as number;
    const fromTop = c.bbox.yMin - topAtMin;
    const fromBottom = bottomAtMax - c.bbox.yMax;
    const electrode = fromTop <= fromBottom ? 'top' : 'bottom';
    const tol = this.o.rules.rootToleranceVoxels;
    let heightVoxels: number;
    let thickness: number;
    if (electrode === 'top') {
      const top = atMax.top[c.yMaxVoxel.x] as number;
      heightVoxels = c.bbox.yMax + 0.5 - top;
      thickness = (atMax.bottom[c.yMaxVoxel.x] as number) - top;
    } else {
      const bottom = atMin.bottom[c.yMinVoxel.x] as number;
      heightVoxels = bottom - (c.bbox.yMin - 0.5);
      thickness = bottom - (atMin.top[c.yMinVoxel.x] as number);
    }
    heightVoxels = Math.max(0, heightVoxels);
    return {
      electrode,
      rooted: Math.min(fromTop, fromBottom) <= tol,
      heightVoxels,
      heightFraction: thickness > 0 ? Math.min(1, heightVoxels / thickness) : 0,
    };
  }

  private alert(
    c: TrackedComponent,
    m: Measurement,
    severity: Severity,
    progress: number | null,
  ): DendriteAlert {
    const v = this.o.voxelSizeUm;
    const b = c.bbox;
    return {
      alertId: alertIdFor(this.o.scanId, 'dendrite', c.id, severity),
      scanId: this.o.scanId,
      kind: 'dendrite',
      severity,
      raisedAt: this.now(),
      scanProgress: progress,
      sliceRange: { first: b.zMin, last: b.zMax },
      bbox: {
        voxels: { ...b },
        um: {
          zMin: round(b.zMin * v),
          zMax: round((b.zMax + 1) * v),
          yMin: round(b.yMin * v),
          yMax: round((b.yMax + 1) * v),
          xMin: round(b.xMin * v),
          xMax: round((b.xMax + 1) * v),
        },
      },
      voxelCount: c.voxelCount,
      volumeUm3: round(c.voxelCount * v ** 3),
      heightUm: round(m.heightVoxels * v),
      heightFraction: round(m.heightFraction),
      confidence: round(c.probMean),
      model: this.o.model,
      zarr: this.evidence(b),
      componentId: c.id,
      electrode: m.electrode,
      summary: null,
    };
  }

  private evidence(b: {
    zMin: number;
    zMax: number;
    yMin: number;
    yMax: number;
    xMin: number;
    xMax: number;
  }): ZarrEvidence {
    return {
      path: this.o.zarrPath,
      labels: 'labels/dendrite/0',
      probabilities: 'probabilities/0',
      region: { z: [b.zMin, b.zMax + 1], y: [b.yMin, b.yMax + 1], x: [b.xMin, b.xMax + 1] },
    };
  }
}

function rank(s: Severity): number {
  return SEVERITIES.indexOf(s);
}

function round(v: number): number {
  return Math.round(v * 1000) / 1000;
}
