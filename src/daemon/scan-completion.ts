import type { DendriteAlert } from '../alerts/dendrite-alert.ts';
import { type DaemonContext, failScan } from './daemon-context.ts';
import { openScanWriter, type ScanState, scanEventFor, scanMonitor } from './scan-state.ts';

/** A scan whose outputs are complete, as `runDaemon`'s `onScanComplete` hears of it. */
export interface CompletedScan {
  scanId: string;
  zarrPath: string;
  slices: number;
  missing: number[];
  summary: DendriteAlert;
  failed: string | undefined;
  /** Whether every sink acknowledged the summary (false only when stopped during an outage). */
  acknowledged: boolean;
}

/**
 * Finish a scan once its source has ended it and none of its slices is still in the pipeline (a
 * scan with slices left on disk for the next start is not complete, whatever its source said): the
 * store's extent and progress, the summary alert, the `completed` event, and then its state let go
 * (writer closed, only the id kept). On the scan's chain, `hooks.completed` hears of it before its
 * state goes and `hooks.released` runs after. False while the scan is not done.
 */
export function finishScanIfDone(
  ctx: DaemonContext,
  s: ScanState,
  hooks: { completed?: (scan: CompletedScan) => void; released: () => void },
): boolean {
  if (s.handedOver !== undefined) {
    letGo(ctx, s, hooks.released);
    return false;
  }
  if (!s.ended || s.pending > 0 || s.finished || s.skipped > 0) return false;
  s.finished = true;
  // Its pixels are not needed again; the rest goes once its outputs are complete.
  s.previous = undefined;
  s.lookahead = undefined;
  s.chain = s.chain.then(async () => {
    await completeScan(ctx, s, hooks.completed);
    hooks.released();
  });
  return true;
}

/**
 * A scan handed to another daemon, once none of its slices is left in the pipeline: its writer
 * closed (waiting for a write under way; no extent, progress or summary is written) and its state
 * forgotten. Its store is the new owner's.
 */
function letGo(ctx: DaemonContext, s: ScanState, released: () => void): void {
  if (s.pending > 0 || s.finished) return;
  s.finished = true;
  s.previous = undefined;
  s.lookahead = undefined;
  s.chain = s.chain.then(async () => {
    await s.writer?.close();
    ctx.scans.forget(s);
    ctx.stats.scansHandedOver++;
    released();
  });
}

async function completeScan(
  ctx: DaemonContext,
  s: ScanState,
  completed?: (scan: CompletedScan) => void,
): Promise<void> {
  try {
    // Every slice was durable already (an earlier run wrote the last one and was killed
    // before it finished the store): open the store to finish it all the same.
    if (!s.writer && s.durable.size > 0 && s.width !== undefined && s.height !== undefined && s.dtype)
      s.writer = await openScanWriter(s, ctx.model, { width: s.width, height: s.height, dtype: s.dtype });
    // The volume spans every slice the scanner produced; missing ones stay at the fill value.
    if (s.writer) await s.writer.finish({ slices: s.acquired });
  } catch (err) {
    failScan(ctx, s, err, 'zarr');
  }
  const summary = scanMonitor(s, ctx.model, ctx.rules).finish({
    missingSlices: [...s.missing].sort((a, b) => a - b),
    acquired: s.acquired,
  });
  // Its tracking buffers (slice-sized) are not needed once the summary is out.
  s.monitor = undefined;
  // A scan an earlier run completed has announced it already.
  const announced = s.journal?.has(summary.alertId) === true;
  const acknowledged = await ctx.delivery.emit(s, [summary]);
  if (!announced)
    await ctx.delivery.scanEvent(scanEventFor(s, 'completed', { reason: s.endReason ?? null, summary }));
  ctx.stats.scansCompleted++;
  ctx.log.info(
    { scanId: s.scanId, slices: s.processed, missing: s.missing.length },
    `scan ${s.scanId} complete`,
  );
  completed?.({
    scanId: s.scanId,
    zarrPath: s.zarrPath,
    slices: s.processed,
    missing: s.missing,
    summary,
    failed: s.failed,
    acknowledged,
  });
  // Let go of the scan: its writer closes, its state goes; only its id stays.
  ctx.scans.release(s);
  await s.writer?.close();
}
