import { describeError } from '../errors.ts';
import type { SourceEvent } from '../sources/source-event.ts';
import { type DaemonContext, failScan } from './daemon-context.ts';
import { resumeScan } from './resume-scan.ts';
import type { QueuedSlice, ScanState } from './scan-state.ts';

/** Where the source's events lead: the pipeline's entrance and the scan's end. */
export interface Intake {
  /** A slice for the pipeline: sent at once, or held for its next neighbour. */
  enqueue(s: ScanState, ref: QueuedSlice): void;
  /** The scan's held slice goes on now (its successor will not come). */
  releaseHeld(s: ScanState): void;
  /** Finish the scan if its source ended it and nothing of it is left in the pipeline. */
  finishIfDone(s: ScanState): void;
  /** A slice that does not go in (its scan is over): its credit goes back to the source. */
  ignored(): void;
}

/**
 * One source event into the daemon's scan bookkeeping: metadata, slices (the first one of a scan
 * takes up what an earlier run left of it), missing slices, the scan's end, source errors. A finished
 * scan is not started again by a late or redelivered event: its store and summary are complete, and
 * a second summary would be a second alert.
 */
export function takeSourceEvent(ctx: DaemonContext, event: SourceEvent, intake: Intake): void {
  const { log, stats, scans } = ctx;
  if (event.type !== 'error' && scans.isFinished(event.scanId)) {
    if (event.type === 'slice') {
      intake.ignored();
      log.warn(
        { scanId: event.scanId, slice: event.z },
        `slice ${event.z} arrived after scan ${event.scanId} ended; ignored`,
      );
    } else
      log.debug(
        { scanId: event.scanId, event: event.type },
        `${event.type} of finished scan ${event.scanId}; ignored`,
      );
    return;
  }
  switch (event.type) {
    case 'scan-start':
    case 'scan-meta': {
      const s = scans.open(event.scanId);
      s.meta = { ...s.meta, ...event.meta };
      break;
    }
    case 'slice': {
      const s = scans.open(event.scanId);
      if (s.finished || s.handedOver !== undefined) {
        intake.ignored();
        log.warn(
          { scanId: event.scanId, slice: event.z },
          `slice ${event.z} arrived after scan ${event.scanId} ${s.finished ? 'ended' : 'was handed over'}; ignored`,
        );
        break;
      }
      if (!s.resumed) {
        s.resumed = resumeScan(ctx, s).catch((err: unknown) => failScan(ctx, s, err, 'resume'));
        const resumed = s.resumed;
        s.chain = s.chain.then(() => resumed);
      }
      s.acquired = Math.max(s.acquired, event.z + 1);
      s.pending++;
      stats.slicesIn++;
      stats.queued++;
      intake.enqueue(s, {
        scanId: event.scanId,
        z: event.z,
        readyAt: event.readyAt,
        ...(event.path !== undefined && { path: event.path }),
        ...(event.image && { image: event.image }),
      });
      break;
    }
    case 'slice-missing': {
      const s = scans.open(event.scanId);
      s.missing.push(event.z);
      stats.slicesMissing++;
      if (s.held?.ref.z === event.z - 1) intake.releaseHeld(s);
      log.warn(
        { scanId: event.scanId, slice: event.z },
        `slice ${event.z} of ${event.scanId} missing: ${event.reason}`,
      );
      break;
    }
    case 'scan-end': {
      const s = scans.open(event.scanId);
      s.ended = true;
      s.endReason = event.reason;
      intake.releaseHeld(s);
      log.info(
        { scanId: event.scanId, reason: event.reason },
        `scan ${event.scanId} ended (${event.reason})`,
      );
      intake.finishIfDone(s);
      break;
    }
    case 'scan-handed-over': {
      const s = scans.get(event.scanId);
      if (!s || s.handedOver !== undefined) break;
      s.handedOver = event.reason;
      log.info(
        { scanId: event.scanId, reason: event.reason, inPipeline: s.pending },
        `scan ${event.scanId} handed over (${event.reason}): it is let go unfinished, its store left to the new owner`,
      );
      // Its held slice goes on, to leave the pipeline unprocessed like the rest of its slices.
      intake.releaseHeld(s);
      intake.finishIfDone(s);
      break;
    }
    case 'error': {
      stats.error('source');
      log.error(
        { scanId: event.scanId, path: event.path, code: event.error.code, err: event.error },
        describeError(event.error),
      );
      break;
    }
  }
}
