import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { OutputError } from '../errors.ts';
import type { DaemonStats, Histogram } from './daemon-stats.ts';

export interface MetricsServerOptions {
  stats: DaemonStats;
  /** 0 picks a free port. */
  port: number;
  /** Default 127.0.0.1: metrics are not for the whole network unless the operator says so. */
  host?: string;
  /** Whether the daemon takes work now (model loaded, source open); `/readyz` answers 503 until then. */
  ready: () => boolean;
  /** More routes on the same server (the live view); returns whether it answered the request. */
  routes?: (req: IncomingMessage, res: ServerResponse) => boolean;
}

export interface MetricsServer {
  /** `http://host:port` the server listens on. */
  readonly url: string;
  close(): Promise<void>;
}

/** Serve `/healthz`, `/readyz` and `/metrics` (Prometheus text format 0.0.4) for a running daemon. */
export async function startMetricsServer(options: MetricsServerOptions): Promise<MetricsServer> {
  const host = options.host ?? '127.0.0.1';
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' }).end();
      return;
    }
    if (path === '/healthz') {
      res.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
    } else if (path === '/readyz') {
      // A sink refusing alerts, or a source that cannot read, makes the daemon not ready: its scans
      // wait until that is back. Both are said, so an operator knows which side is out.
      const retrying = options.stats.alertsRetrying;
      const problems = [
        ...(retrying > 0 ? [`${retrying} alert(s) waiting for a sink that refuses them`] : []),
        ...(options.stats.sourceProblem !== undefined ? [`source: ${options.stats.sourceProblem}`] : []),
      ];
      const started = options.ready();
      const ready = started && problems.length === 0;
      res
        .writeHead(ready ? 200 : 503, { 'content-type': 'text/plain' })
        .end(ready ? 'ready\n' : started ? `not ready: ${problems.join('; ')}\n` : 'starting\n');
    } else if (path === '/metrics') {
      res
        .writeHead(200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' })
        .end(renderMetrics(options.stats));
    } else if (!options.routes?.(req, res)) {
      res
        .writeHead(404, { 'content-type': 'text/plain' })
        .end('not found: try /metrics, /healthz or /readyz\n');
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (cause) =>
      reject(
        new OutputError(
          `cannot serve metrics on ${host}:${options.port}: ${(cause as NodeJS.ErrnoException).code ?? cause}`,
          { option: '--metrics-port' },
          { cause },
        ),
      ),
    );
    server.listen(options.port, host, resolve);
  });
  const address = server.address() as AddressInfo;
  return {
    url: `http://${address.family === 'IPv6' ? `[${address.address}]` : address.address}:${address.port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/** The daemon's counters in Prometheus text exposition format. */
export function renderMetrics(stats: DaemonStats): string {
  const lines: string[] = [];
  const metric = (name: string, type: string, help: string, samples: [string, number][]) => {
    lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
    for (const [labels, value] of samples) lines.push(`${name}${labels} ${value}`);
  };
  const counter = (name: string, help: string, value: number) => metric(name, 'counter', help, [['', value]]);
  const gauge = (name: string, help: string, value: number) => metric(name, 'gauge', help, [['', value]]);
  const histogram = (name: string, help: string, h: Histogram) => {
    const samples: [string, number][] = h.bounds.map((b, i) => [`_bucket{le="${b}"}`, h.counts[i] as number]);
    samples.push(['_bucket{le="+Inf"}', h.count], ['_sum', h.sum], ['_count', h.count]);
    lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} histogram`);
    for (const [suffix, value] of samples) lines.push(`${name}${suffix} ${value}`);
  };
  if (stats.model) {
    const m = stats.model;
    const label = (v: string) => JSON.stringify(v); // a JSON string is a valid Prometheus label value
    metric(
      'xct_model_info',
      'gauge',
      'The model that runs and the execution provider that runs it (requested: the one asked for).',
      [
        [
          `{model=${label(m.name)},version=${label(m.version)},provider=${label(m.provider)},requested=${label(m.requested)}}`,
          1,
        ],
      ],
    );
  }
  counter('xct_slices_in_total', 'Slices the sources reported complete.', stats.slicesIn);
  counter('xct_slices_out_total', 'Slices whose mask is written and alerts emitted.', stats.slicesOut);
  counter(
    'xct_slices_failed_total',
    'Slices that could not be processed (reported, skipped).',
    stats.slicesFailed,
  );
  counter('xct_slices_missing_total', 'Slices a scan lacked (gaps, never written).', stats.slicesMissing);
  counter(
    'xct_slices_resumed_total',
    'Slices an earlier run had finished, skipped on resume.',
    stats.slicesResumed,
  );
  counter(
    'xct_slices_dropped_total',
    'Slices dropped under load: always 0, backpressure slows the source instead.',
    0,
  );
  counter('xct_patches_total', 'Patches run through the model.', stats.patches);
  counter('xct_batches_total', 'Model calls.', stats.batches);
  counter('xct_scans_started_total', 'Scans seen.', stats.scansStarted);
  counter(
    'xct_scans_completed_total',
    'Scans completed (outputs flushed, summary emitted).',
    stats.scansCompleted,
  );
  counter(
    'xct_scans_handed_over_total',
    'Scans let go unfinished: their Kafka partition went to another member of the group, which finishes them.',
    stats.scansHandedOver,
  );
  gauge(
    'xct_scans_in_memory',
    'Scans whose state the daemon holds: those under way (a finished scan is let go).',
    stats.scansInMemory,
  );
  gauge('xct_slices_queued', 'Slices waiting at the gate for a place in the pipeline.', stats.queued);
  gauge(
    'xct_slices_held',
    'Slices waiting for the slice after them, which the model takes in as a neighbour (counted in queued too).',
    stats.held,
  );
  gauge('xct_slices_in_flight', 'Slices being decoded, inferred, stitched or written.', stats.inFlight);
  metric(
    'xct_alerts_total',
    'counter',
    'Dendrite alerts emitted, by severity.',
    (['info', 'warning', 'critical'] as const).map((s) => [`{severity="${s}"}`, stats.alerts[s]]),
  );
  counter(
    'xct_alerts_suppressed_total',
    'Alerts not sent again after a restart: the journal says they were.',
    stats.alertsSuppressed,
  );
  gauge(
    'xct_source_up',
    'Whether the source reads (0 while it retries after a broker or partition fault; /readyz says why).',
    stats.sourceProblem === undefined ? 1 : 0,
  );
  counter(
    'xct_source_outages_total',
    'Times the source stopped reading (a broker down, a leaderless partition) and recovered or is retrying.',
    stats.sourceOutages,
  );
  counter('xct_sink_retries_total', 'Alert writes a sink refused, tried again.', stats.sinkRetries);
  gauge(
    'xct_alerts_retrying',
    'Alerts a sink refused, waiting to be written again (above 0: a sink is out, the scan waits; /readyz says so).',
    stats.alertsRetrying,
  );
  counter(
    'xct_alerts_unacknowledged_total',
    'Alerts not acknowledged when the daemon stopped: left out of the journal, emitted again on the next start.',
    stats.alertsUnacknowledged,
  );
  metric(
    'xct_errors_total',
    'counter',
    'Errors by pipeline stage.',
    [...stats.errorsByStage].map(([stage, n]) => [`{stage="${stage.replace(/["\\\n]/g, '_')}"}`, n]),
  );
  histogram('xct_batch_size', 'Patches per model call.', stats.batchSize);
  histogram('xct_inference_seconds', 'Time per model call, hand-over to result.', stats.inferenceSeconds);
  histogram(
    'xct_slice_latency_seconds',
    'From a slice complete at the source to its mask written and its alerts emitted.',
    stats.latencySeconds,
  );
  return `${lines.join('\n')}\n`;
}
