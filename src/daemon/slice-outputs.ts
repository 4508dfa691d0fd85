import { isXctError, OutputError } from '../errors.ts';
import type { MaskedSlice } from '../slices/slice-types.ts';
import { type DaemonContext, failScan, sliceDone } from './daemon-context.ts';
import { openScanWriter, type ScanState, scanEventFor, scanMonitor } from './scan-state.ts';

/**
 * A segmented slice's outputs, in order: its chunks into the scan's store (durable), the scan's
 * `started` event with its first slice, the slice into the 3-D tracker and the alerts that raises
 * to every sink, a `progress` event every `progressEvery` slices, its latency. Serialized per scan
 * (`ScanState.chain`), so a scan's slices reach its store and tracker one at a time.
 */
export function writeSliceOutputs(ctx: DaemonContext, slice: MaskedSlice): Promise<void> {
  const s = ctx.scans.open(slice.scanId);
  const work = s.chain.then(() => outputs(ctx, s, slice));
  s.chain = work;
  return work;
}

async function outputs(ctx: DaemonContext, s: ScanState, slice: MaskedSlice): Promise<void> {
  if (s.failed || s.handedOver) return;
  const { stats, log } = ctx;
  // Quantized once (by thresholdMask): what the store keeps is also what the tracker sees, so a
  // scan rebuilt from its store after a restart tracks exactly what an uninterrupted run would have.
  const { storedProb } = slice;
  try {
    s.writer ??= await openScanWriter(s, ctx.model, slice);
    await s.writer.writeSlice(slice.z, { image: slice.data, mask: slice.mask, prob: storedProb });
    ctx.onSliceWritten?.(slice, s.meta);
  } catch (err) {
    const cause = isXctError(err)
      ? err
      : new OutputError(
          `cannot write ${s.zarrPath}`,
          { path: s.zarrPath, scanId: s.scanId, slice: slice.z },
          { cause: err },
        );
    failScan(ctx, s, cause, 'zarr');
    return;
  }
  // Handed over while its chunks were being written: the new owner, reading the store back,
  // raises this slice's alerts; raising them here too would send them twice.
  if (s.handedOver) return;
  if (!s.announced) {
    s.announced = true;
    await ctx.delivery.scanEvent(scanEventFor(s, 'started'));
  }
  let unacknowledged = false;
  if (slice.z > s.monitorZ) {
    s.monitorZ = slice.z;
    // Stopped while a sink refused one of its alerts: the slice is not done, so a Kafka
    // source does not commit past it and the next start takes the scan up again.
    const alerts = scanMonitor(s, ctx.model, ctx.rules).addSlice({ ...slice, prob: storedProb }, s.acquired);
    if (!(await ctx.delivery.emit(s, alerts))) unacknowledged = true;
  } else {
    log.warn(
      { scanId: s.scanId, slice: slice.z },
      `slice ${slice.z} of ${s.scanId} came after slice ${s.monitorZ}: its mask is written, the tracker skips it`,
    );
  }
  s.processed++;
  stats.slicesOut++;
  if (s.processed % ctx.progressEvery === 0) await ctx.delivery.scanEvent(scanEventFor(s, 'progress'));
  const at = Date.now();
  stats.latenciesMs.push(at - slice.readyAt);
  stats.latencySeconds.observe((at - slice.readyAt) / 1000);
  if (stats.latenciesMs.length > 100_000) stats.latenciesMs.splice(0, 50_000);
  if (!unacknowledged) sliceDone(ctx, slice, at);
}
