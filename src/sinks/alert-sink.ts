import type { DendriteAlert } from '../alerts/dendrite-alert.ts';
import type { ScanEvent } from '../codecs/avro-scan-event.ts';

/** Where alerts go: JSON lines, a terminal, Kafka. `write` resolves once the alert is durable there. */
export interface AlertSink {
  write(alert: DendriteAlert): Promise<void>;
  /** Scan lifecycle events (started, progress), for sinks that publish them (Kafka). */
  writeScanEvent?(event: ScanEvent): Promise<void>;
  /** Flush and release; safe to call twice. */
  close(): Promise<void>;
}
