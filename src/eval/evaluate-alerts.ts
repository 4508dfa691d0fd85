import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AlertRules } from '../alerts/alert-rules.ts';
import type { DendriteAlert } from '../alerts/dendrite-alert.ts';
import { DendriteMonitor } from '../alerts/dendrite-monitor.ts';
import { CONFIG_DEFAULTS } from '../config/pipeline-config.ts';
import { DaemonStats } from '../daemon/daemon-stats.ts';
import { runDaemon } from '../daemon/run-daemon.ts';
import { EvaluationError } from '../errors.ts';
import type { SegmentationModel } from '../inference/load-model.ts';
import type { Logger } from '../log.ts';
import { createPhantom, type Phantom } from '../sim/phantom.ts';
import { type RenderedSlice, renderSlice } from '../sim/render-slice.ts';
import { scanStorePath } from '../sinks/zarr-scan-writer.ts';
import type { ArchiveVolume } from '../sources/archive-volume.ts';
import { replayArchive } from '../sources/replay-archive.ts';
import { SliceCredits } from '../sources/slice-credits.ts';
import { DendriteTruth } from './dendrite-truth.ts';
import { type AlertReport, type AlertScan, scoreAlerts } from './score-alerts.ts';
import { SegmentationMetrics, type SegmentationScores } from './segmentation-metrics.ts';

export interface EvaluateAlertsOptions {
  /** Scan seeds with dendrites (the simulator's default count, or `dendrites`). */
  seeds: readonly number[];
  /** Scan seeds simulated with no dendrites at all: every alert on them is false. */
  dendriteFreeSeeds: readonly number[];
  size: number;
  slices: number;
  /** Dendrites per scan for `seeds` (default: the simulator's). */
  dendrites?: number;
  rules: AlertRules;
  /**
   * More rule sets to judge the same masks by: each gets a monitor of its own, fed the very slices
   * the daemon's monitor is fed, so comparing rules costs one inference pass, not one per set.
   */
  alsoRules?: readonly AlertRules[];
  signal?: AbortSignal;
  log?: Logger;
  onSlice?: (done: number, total: number) => void;
}

export interface AlertEvaluation {
  report: AlertReport;
  /** The same masks judged by each of `alsoRules`, in order. */
  also: { rules: AlertRules; report: AlertReport }[];
  /** The daemon's masks against the truth, over the scans with dendrites. */
  segmentation: SegmentationScores;
}

/**
 * Replay simulated held-out scans through the daemon itself (`runDaemon` on a `replayArchive` at
 * full speed, the same pipeline `xct-sentinel replay` runs), collect the dendrite alerts it raises
 * and its masks, and score them against the simulator's truth, dendrite by dendrite.
 */
export async function evaluateAlerts(
  model: SegmentationModel,
  o: EvaluateAlertsOptions,
): Promise<AlertEvaluation> {
  const out = await mkdtemp(join(tmpdir(), 'xct-eval-alerts-'));
  const metrics = new SegmentationMetrics(model.patchSize);
  const scans: AlertScan[] = [];
  const variants = (o.alsoRules ?? []).map((rules) => ({ rules, scans: [] as AlertScan[] }));
  const runs = [
    ...o.seeds.map((seed) => ({ seed, dendrites: o.dendrites })),
    ...o.dendriteFreeSeeds.map((seed) => ({ seed, dendrites: 0 })),
  ];
  const total = runs.length * o.slices;
  let done = 0;
  try {
    for (const run of runs) {
      o.signal?.throwIfAborted();
      const phantom = createPhantom({
        seed: run.seed,
        size: o.size,
        slices: o.slices,
        ...(run.dendrites !== undefined && { dendrites: run.dendrites }),
      });
      const scanId = `sim-${run.seed}${run.dendrites === 0 ? '-free' : ''}`;
      const rendered = Array.from({ length: phantom.slices }, (_, z) => renderSlice(phantom, z));
      const truth = new DendriteTruth(phantom);
      for (const [z, r] of rendered.entries()) truth.addSlice(z, r.labels);
      const dendrites = truth.dendrites();
      const owners = ownerVolume(dendrites, phantom);
      const hits = new Map<number, number>(dendrites.map((d) => [d.id, 0]));
      const alerts: DendriteAlert[] = [];
      const judged = variants.map((v) => ({
        alerts: [] as DendriteAlert[],
        monitor: new DendriteMonitor({
          scanId,
          width: phantom.size,
          height: phantom.size,
          voxelSizeUm: phantom.voxelSizeUm,
          expectedSlices: phantom.slices,
          rules: v.rules,
          model: model.identity,
          zarrPath: scanStorePath(out, scanId),
        }),
      }));
      const stats = new DaemonStats();
      const credits = new SliceCredits();
      const area = phantom.size * phantom.size;
      await runDaemon({
        source: replayArchive(simulatedVolume(phantom, rendered, scanId), {
          speed: 'max',
          scanId,
          credits,
          ...(o.signal && { signal: o.signal }),
        }),
        out,
        model,
        sinks: [
          {
            write: async (alert) => {
              if (alert.kind === 'dendrite') alerts.push(alert);
            },
            close: async () => {},
          },
        ],
        rules: o.rules,
        tile: { overlap: CONFIG_DEFAULTS.overlap },
        inference: { maxBatch: CONFIG_DEFAULTS.maxBatch, maxDelayMs: CONFIG_DEFAULTS.maxDelayMs },
        maxSlicesInFlight: CONFIG_DEFAULTS.maxSlicesInFlight,
        maxScans: 1,
        stats,
        credits,
        ...(o.signal && { signal: o.signal }),
        ...(o.log && { log: o.log }),
        onSliceWritten: (slice) => {
          const labels = (rendered[slice.z] as RenderedSlice).labels;
          if (run.dendrites !== 0) metrics.addSlice(slice.mask, labels, phantom.size, phantom.size);
          for (let i = 0; i < area; i++) {
            if (slice.mask[i] !== 1) continue;
            const id = owners[slice.z * area + i] as number;
            if (id !== 0) hits.set(id, (hits.get(id) as number) + 1);
          }
          // What the daemon's own monitor reads next (slice-outputs): the stored probabilities.
          for (const j of judged)
            for (const a of j.monitor.addSlice({ ...slice, prob: slice.storedProb }, slice.z + 1))
              if (a.kind === 'dendrite') j.alerts.push(a);
        },
        onSliceDone: () => {
          o.onSlice?.(++done, total);
        },
      });
      o.signal?.throwIfAborted();
      if (stats.slicesOut !== phantom.slices)
        throw new EvaluationError(
          `scan ${scanId}: the daemon finished ${stats.slicesOut} of ${phantom.slices} slices (${stats.slicesFailed} failed)`,
          { scanId },
        );
      const scan = { scanId, size: phantom.size, slices: phantom.slices, dendrites, maskHits: hits };
      scans.push({ ...scan, alerts });
      judged.forEach((j, k) => {
        variants[k]?.scans.push({ ...scan, alerts: j.alerts });
      });
      await rm(join(out, `${scanId}.ome.zarr`), { recursive: true, force: true });
    }
  } finally {
    await rm(out, { recursive: true, force: true });
  }
  return {
    report: scoreAlerts(scans, o.rules),
    also: variants.map((v) => ({ rules: v.rules, report: scoreAlerts(v.scans, v.rules) })),
    segmentation: metrics.scores(),
  };
}

/** Truth dendrite id per voxel of the whole volume (0 elsewhere). */
function ownerVolume(dendrites: ReturnType<DendriteTruth['dendrites']>, phantom: Phantom): Uint16Array {
  const owners = new Uint16Array(phantom.size * phantom.size * phantom.slices);
  for (const d of dendrites) for (const v of d.voxels) owners[v] = d.id;
  return owners;
}

/** A rendered phantom as an archive the replay reads: pixels already decoded, one page per z. */
function simulatedVolume(phantom: Phantom, rendered: readonly RenderedSlice[], name: string): ArchiveVolume {
  return {
    kind: 'simulated',
    path: `simulated:${name}`,
    name,
    depth: phantom.slices,
    meta: {
      expectedSlices: phantom.slices,
      voxelSizeUm: phantom.voxelSizeUm,
      width: phantom.size,
      height: phantom.size,
    },
    paceMs: undefined,
    missing: [],
    notes: [],
    read: async (z) => {
      const r = rendered[z];
      if (!r) throw new RangeError(`simulated scan ${name} has no slice ${z}`);
      return { image: { width: phantom.size, height: phantom.size, dtype: 'uint16', data: r.image } };
    },
    close: async () => {},
  };
}
