import type { DendriteAlert } from '../alerts/dendrite-alert.ts';

/** Where alerts go: JSON lines, a terminal, Kafka. `write` resolves once the alert is durable there. */
export interface AlertSink {
  write(alert: DendriteAlert): Promise<void>;
  /** Flush and release; safe to call twice. */
  close(): Promise<void>;
}
