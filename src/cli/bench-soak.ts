import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Observable } from 'rxjs';
import { DEFAULT_ALERT_RULES } from '../alerts/alert-rules.ts';
import { DaemonStats } from '../daemon/daemon-stats.ts';
import { runDaemon } from '../daemon/run-daemon.ts';
import type { SegmentationModel } from '../inference/load-model.ts';
import { createPhantom } from '../sim/phantom.ts';
import { renderSlice } from '../sim/render-slice.ts';
import { SliceCredits } from '../sources/slice-credits.ts';
import type { SourceEvent } from '../sources/source-event.ts';

export interface SoakOptions {
  model: SegmentationModel;
  /** Slices in all, over as many scans of `perScan` slices as it takes. */
  slices: number;
  size: number;
  perScan: number;
  /** RSS is read every this many slices. */
  every: number;
  batch: number;
  signal?: AbortSignal;
  progress?: (line: string) => void;
}

export interface SoakSample {
  slices: number;
  scansCompleted: number;
  /** Scans whose state the daemon holds (finished ones included, until it lets them go). */
  scansInMemory: number;
  rssMiB: number;
  heapUsedMiB: number;
  externalMiB: number;
}

export interface SoakReport {
  size: number;
  perScan: number;
  slices: number;
  samples: SoakSample[];
  /** Samples from the second on are after warm-up: the largest RSS over the smallest among them. */
  rssSpread: number;
  /** Whether RSS stayed within 10% after warm-up, the soak's pass mark. */
  flat: boolean;
  /** Scans the daemon still held when it was done: 0 when finished scans are let go. */
  scansInMemoryAtEnd: number;
  seconds: number;
}

/**
 * The daemon fed scan after scan for a long time, as in a plant: does its memory stay flat? Slices
 * come from memory (one simulated scan's slices, rendered once, reused under a new scan id each
 * time), so the soak measures the daemon rather than a writer; each finished scan's store is
 * deleted as it completes, so the disk does not fill. Slices are fed as the daemon drains them.
 */
export async function soak(o: SoakOptions): Promise<SoakReport> {
  const root = await mkdtemp(join(tmpdir(), 'xct-sentinel-soak-'));
  const phantom = createPhantom({ seed: 4245, size: o.size, slices: o.perScan });
  const images = Array.from({ length: o.perScan }, (_, z) => renderSlice(phantom, z).image);
  const stats = new DaemonStats();
  const credits = new SliceCredits();
  const samples: SoakSample[] = [];
  const scans = Math.ceil(o.slices / o.perScan);
  const started = performance.now();

  const source = new Observable<SourceEvent>((subscriber) => {
    const stop = new AbortController();
    void (async () => {
      let fed = 0;
      for (let k = 0; k < scans && !stop.signal.aborted; k++) {
        const scanId = `soak-${String(k).padStart(5, '0')}`;
        const count = Math.min(o.perScan, o.slices - fed);
        subscriber.next({ type: 'scan-start', scanId, meta: { expectedSlices: count } });
        for (let z = 0; z < count; z++) {
          if (!(await credits.take(4, { signal: stop.signal }))) break;
          const data = images[z] as Uint16Array;
          subscriber.next({
            type: 'slice',
            scanId,
            z,
            readyAt: Date.now(),
            image: { width: o.size, height: o.size, dtype: 'uint16', data },
          });
          fed++;
        }
        subscriber.next({ type: 'scan-end', scanId, reason: 'expected-count', slices: count, missing: [] });
      }
      subscriber.complete();
    })();
    return () => stop.abort();
  });

  const sample = () => {
    const m = process.memoryUsage();
    const s: SoakSample = {
      slices: stats.slicesOut,
      scansCompleted: stats.scansCompleted,
      scansInMemory: stats.scansInMemory,
      rssMiB: m.rss / 2 ** 20,
      heapUsedMiB: m.heapUsed / 2 ** 20,
      externalMiB: (m.external + m.arrayBuffers) / 2 ** 20,
    };
    samples.push(s);
    o.progress?.(
      `soak: ${s.slices} slices, ${s.scansCompleted} scans, RSS ${s.rssMiB.toFixed(0)} MiB, heap ${s.heapUsedMiB.toFixed(0)} MiB`,
    );
  };
  const removing: Promise<void>[] = [];
  try {
    await runDaemon({
      source,
      out: join(root, 'out'),
      model: o.model,
      sinks: [],
      rules: DEFAULT_ALERT_RULES,
      inference: { maxBatch: o.batch },
      stats,
      credits,
      ...(o.signal && { signal: o.signal }),
      onSliceDone: () => {
        if (stats.slicesOut % o.every === 0) sample();
      },
      onScanComplete: (c) => {
        removing.push(rm(c.zarrPath, { recursive: true, force: true }));
      },
    });
    await Promise.all(removing);
  } finally {
    await rm(root, { recursive: true, force: true });
  }
  const after = samples.slice(1).map((s) => s.rssMiB);
  const rssSpread = after.length > 0 ? Math.max(...after) / Math.min(...after) : Number.NaN;
  return {
    size: o.size,
    perScan: o.perScan,
    slices: stats.slicesOut,
    samples,
    rssSpread,
    flat: rssSpread <= 1.1,
    scansInMemoryAtEnd: stats.scansInMemory,
    seconds: (performance.now() - started) / 1000,
  };
}
