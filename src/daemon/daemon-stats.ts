import type { Severity } from '../alerts/dendrite-alert.ts';

/** A Prometheus-style cumulative histogram: counts per upper bound, plus sum and count. */
export class Histogram {
  readonly counts: number[];
  sum = 0;
  count = 0;

  constructor(readonly bounds: readonly number[]) {
    this.counts = bounds.map(() => 0);
  }

  observe(value: number): void {
    this.sum += value;
    this.count++;
    for (let i = 0; i < this.bounds.length; i++) if (value <= (this.bounds[i] as number)) this.counts[i]!++;
  }
}

/** Counters and samples the daemon keeps as it runs: for summaries, the benchmark and metrics. */
export class DaemonStats {
  /** The model that runs, on the provider that runs it (not only the one asked for): set once loaded. */
  model: { name: string; version: string; provider: string; requested: string } | undefined = undefined;
  slicesIn = 0;
  slicesOut = 0;
  slicesFailed = 0;
  slicesMissing = 0;
  /** Slices an earlier run had finished (durable in the scan's store): skipped on resume. */
  slicesResumed = 0;
  /** Alerts not sent again because the scan's journal says they were already emitted. */
  alertsSuppressed = 0;
  /** Alert writes a sink refused and that were tried again. */
  sinkRetries = 0;
  /** Alerts a sink refused and that wait to be written again now: above 0, a sink is out. */
  alertsRetrying = 0;
  /** Alerts no sink retry got through before the daemon stopped: not journaled, emitted on the next start. */
  alertsUnacknowledged = 0;
  patches = 0;
  batches = 0;
  inferenceMs = 0;
  readonly batchSizes: number[] = [];
  /** Per slice: ms from complete on disk to mask chunks written and alerts emitted. */
  readonly latenciesMs: number[] = [];
  readonly alerts: Record<Severity, number> = { info: 0, warning: 0, critical: 0 };
  readonly errorsByStage = new Map<string, number>();
  /** Seconds per model call (hand-over to result). */
  readonly inferenceSeconds = new Histogram([0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]);
  /** Seconds from a slice complete at the source to its mask written and alerts emitted. */
  readonly latencySeconds = new Histogram([0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60]);
  /** Patches per model call. */
  readonly batchSize = new Histogram([1, 2, 4, 8, 16, 32, 64, 128]);
  scansStarted = 0;
  scansCompleted = 0;
  /** Scans let go unfinished because the source gave them to another daemon (a Kafka rebalance). */
  scansHandedOver = 0;
  /**
   * Scans whose state the daemon holds: those under way. A finished scan is let go (only its id is
   * kept, so a late slice of it is told apart), so this stays bounded over a long run.
   */
  scansInMemory = 0;
  /** Slices waiting at the gate or in flight, right now. */
  queued = 0;
  /** Of `queued`: slices held back until the slice after them is complete (neighbour blending). */
  held = 0;
  inFlight = 0;
  /** Why the source failed, when it did: the daemon finished what it had and stopped. */
  sourceError: string | undefined;
  /**
   * What keeps the source from reading right now (a broker down, a leaderless partition), while it
   * retries; undefined when it reads. `/readyz` answers 503 with it.
   */
  sourceProblem: string | undefined;
  /** Times the source stopped reading and had to recover (each problem after a healthy spell). */
  sourceOutages = 0;

  /** What a source reports of its health (KafkaSliceSourceOptions.onHealth): counts each outage once. */
  sourceHealth(problem: string | undefined): void {
    if (problem !== undefined && this.sourceProblem === undefined) this.sourceOutages++;
    this.sourceProblem = problem;
  }

  /** Count an error against its stage. */
  error(stage: string): void {
    this.errorsByStage.set(stage, (this.errorsByStage.get(stage) ?? 0) + 1);
  }
}

/** The q-quantile (0–1) of samples, nearest rank; NaN when empty. */
export function quantile(samples: readonly number[], q: number): number {
  if (samples.length === 0) return Number.NaN;
  const sorted = [...samples].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))] as number;
}
