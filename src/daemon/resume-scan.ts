import type { TrackedSlice } from '../alerts/dendrite-monitor.ts';
import { dtypeOf } from '../codecs/dtype.ts';
import { readZarrScanProgress, readZarrScanSlice } from '../sinks/zarr-scan-writer.ts';
import { normalizeSlice } from '../slices/normalize-slice.ts';
import { journalPath } from './alert-delivery.ts';
import { AlertJournal } from './alert-journal.ts';
import type { DaemonContext } from './daemon-context.ts';
import { type ScanState, scanMonitor } from './scan-state.ts';

/**
 * Take up what an earlier run left of this scan: the slices its store holds are not processed
 * again; they are read back, in z order, into the tracker, so it stands where it stood; alerts
 * they raise that the journal lacks (lost in a crash) are emitted now, the others are not.
 */
export async function resumeScan(ctx: DaemonContext, s: ScanState): Promise<void> {
  s.journal = await AlertJournal.open(journalPath(s));
  const progress = await readZarrScanProgress(s.zarrPath);
  // Another scan's store under this name: the writer refuses it, with the reason, later.
  if (!progress || progress.scanId !== s.scanId || progress.slicesWritten.length === 0) return;
  s.announced = true;
  const zs = [...progress.slicesWritten].sort((a, b) => a - b);
  for (const z of zs) {
    const stored = await readZarrScanSlice(s.zarrPath, z);
    s.width ??= stored.width;
    s.height ??= stored.height;
    s.dtype ??= dtypeOf(stored.image);
    const slice: TrackedSlice = {
      z,
      width: stored.width,
      height: stored.height,
      normalized: normalizeSlice(stored.image, ctx.model.normalization),
      prob: stored.prob,
      mask: stored.mask,
    };
    s.monitorZ = z;
    await ctx.delivery.emit(
      s,
      scanMonitor(s, ctx.model, ctx.rules).addSlice(slice, Math.max(s.acquired, z + 1)),
    );
    s.durable.add(z);
  }
  ctx.log.info(
    { scanId: s.scanId, slices: zs.length, alerts: s.journal.size },
    `scan ${s.scanId}: resuming after ${zs.length} slice(s) finished by an earlier run (${s.journal.size} alert(s) already emitted)`,
  );
}
