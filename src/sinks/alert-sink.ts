import type { DendriteAlert } from '../alerts/dendrite-alert.ts';
import type { ScanEvent } from '../codecs/avro-scan-event.ts';

/** Where alerts go: JSON lines, a terminal, Kafka. `write` resolves once the alert is durable there. */
export interface AlertSink {
  write(alert: DendriteAlert): Promise<void>;
  /** Scan lifecycle events (started, progress), for sinks that publish them (Kafka). */
  writeScanEvent?(event: ScanEvent): Promise<void>;
  /**
   * Whether the sink already holds this alert (a file it appends to, read when it was opened). The
   * daemon then counts it as acknowledged without writing it again: a crash between a sink's write
   * and the journal's record does not repeat the alert there. Sinks that cannot tell leave it out.
   */
  has?(alertId: string): boolean;
  /** Flush and release; safe to call twice. */
  close(): Promise<void>;
}
