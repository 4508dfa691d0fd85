import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { DendriteAlert } from '../alerts/dendrite-alert.ts';
import type { ScanEvent } from '../codecs/avro-scan-event.ts';
import { describeError } from '../errors.ts';
import type { Logger } from '../log.ts';
import type { AlertSink } from '../sinks/alert-sink.ts';
import { ALERT_JOURNAL_FILE, AlertJournal } from './alert-journal.ts';
import type { DaemonStats } from './daemon-stats.ts';

export interface AlertDeliveryOptions {
  sinks: readonly AlertSink[];
  stats: DaemonStats;
  log: Logger;
  /** Ends the retrying of a refusing sink: the alert stays out of the journal. */
  signal?: AbortSignal;
  /** Backoff between writes a sink refused: `delayMs`, 2·`delayMs`, … up to `maxDelayMs` (500 ms, 30 s). */
  retry?: { delayMs?: number; maxDelayMs?: number };
}

/** Where a scan's alerts are journaled: its store, and the journal once opened. */
export interface JournaledScan {
  scanId: string;
  zarrPath: string;
  journal?: AlertJournal;
}

/**
 * The fan-out of alerts to every sink, and the journal's contract: an alert is journaled only once
 * every sink has acknowledged it. A sink that refuses is written again, with backoff, for as long as
 * it takes (the scan waits); only the signal ends that, and the alert then stays out of the journal
 * so the next start emits it again. An alert the journal holds is not written again; one a sink
 * already holds (`AlertSink.has`) is not written to that sink again.
 */
export class AlertDelivery {
  readonly #o: AlertDeliveryOptions;
  readonly #delayMs: number;
  readonly #maxDelayMs: number;

  constructor(o: AlertDeliveryOptions) {
    this.#o = o;
    this.#delayMs = o.retry?.delayMs ?? 500;
    this.#maxDelayMs = o.retry?.maxDelayMs ?? 30_000;
  }

  /** Emit and journal each alert in turn; false when one went unacknowledged (the daemon is stopping). */
  async emit(s: JournaledScan, alerts: readonly DendriteAlert[]): Promise<boolean> {
    const { stats, log } = this.#o;
    let all = true;
    for (const alert of alerts) {
      if (s.journal?.has(alert.alertId)) {
        stats.alertsSuppressed++;
        log.debug({ scanId: s.scanId, alertId: alert.alertId }, 'alert already emitted before a restart');
        continue;
      }
      let acknowledged = true;
      for (const [index, sink] of this.#o.sinks.entries())
        if (!(await this.#deliver(s.scanId, alert, sink, index))) acknowledged = false;
      if (alert.kind === 'dendrite') stats.alerts[alert.severity]++;
      if (!acknowledged) {
        all = false;
        continue;
      }
      try {
        s.journal ??= await AlertJournal.open(journalPath(s));
        await s.journal.record(alert.alertId);
      } catch (err) {
        stats.error('journal');
        log.error({ scanId: s.scanId, alertId: alert.alertId, err }, describeError(err));
      }
    }
    return all;
  }

  /** A scan event to the sinks that publish them; a sink that fails is logged, not retried. */
  async scanEvent(event: ScanEvent): Promise<void> {
    for (const sink of this.#o.sinks) {
      if (!sink.writeScanEvent) continue;
      try {
        await sink.writeScanEvent(event);
      } catch (err) {
        this.#o.stats.error('sink');
        this.#o.log.error(
          { scanId: event.scanId, kind: event.kind, err },
          `scan event failed: ${describeError(err)}`,
        );
      }
    }
  }

  /** Write one alert to one sink until it is acknowledged; false only when the signal ended it. */
  async #deliver(scanId: string, alert: DendriteAlert, sink: AlertSink, index: number): Promise<boolean> {
    const { stats, log, signal } = this.#o;
    const where = { scanId, alertId: alert.alertId, sink: index };
    if (sink.has?.(alert.alertId)) {
      // Written there before a crash cut the journal's record short: not again.
      log.debug(where, `alert sink ${index} already holds alert ${alert.alertId}; not written again`);
      return true;
    }
    let attempt = 0;
    try {
      for (; ; attempt++) {
        try {
          await sink.write(alert);
          if (attempt > 0)
            log.info(where, `alert ${alert.alertId} acknowledged by sink ${index} after ${attempt} retries`);
          return true;
        } catch (err) {
          if (attempt === 0) stats.alertsRetrying++;
          stats.error('sink');
          if (signal?.aborted) {
            stats.alertsUnacknowledged++;
            log.error(
              { ...where, err },
              `alert ${alert.alertId} of ${scanId} not acknowledged by sink ${index} (${describeError(err)}) and the daemon is stopping: not journaled, the next start emits it again`,
            );
            return false;
          }
          const wait = Math.min(this.#delayMs * 2 ** Math.min(attempt, 30), this.#maxDelayMs);
          log[attempt === 0 ? 'error' : 'warn'](
            { ...where, attempt: attempt + 1, err },
            `alert sink ${index} failed (${describeError(err)}); alert ${alert.alertId} of ${scanId} is written again in ${wait} ms, the scan waits for it`,
          );
          stats.sinkRetries++;
          try {
            await sleep(wait, undefined, signal ? { signal } : {});
          } catch {
            // Aborted: one last try, then the stopping branch above.
          }
        }
      }
    } finally {
      if (attempt > 0) stats.alertsRetrying--;
    }
  }
}

/** The scan's alert journal, inside its store. */
export function journalPath(s: { zarrPath: string }): string {
  return join(s.zarrPath, ALERT_JOURNAL_FILE);
}
