import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { DEFAULT_ALERT_RULES } from '../../src/alerts/alert-rules.ts';
import { DaemonStats } from '../../src/daemon/daemon-stats.ts';
import { startMetricsServer } from '../../src/daemon/metrics-server.ts';
import { runDaemon } from '../../src/daemon/run-daemon.ts';
import { loadModel } from '../../src/inference/load-model.ts';
import { runLiveScanner } from '../../src/sim/live-scanner.ts';
import { watchFolder } from '../../src/sources/watch-folder.ts';

const MAIN = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** Parse Prometheus text exposition format; throws on a line that is neither a comment nor a sample. */
function parsePrometheus(text: string): { samples: Sample[]; types: Map<string, string> } {
  const samples: Sample[] = [];
  const types = new Map<string, string>();
  for (const line of text.split('\n')) {
    if (line === '') continue;
    const type = /^# TYPE (\w+) (counter|gauge|histogram|summary|untyped)$/.exec(line);
    if (type) {
      types.set(type[1] as string, type[2] as string);
      continue;
    }
    if (line.startsWith('# HELP ')) continue;
    const m = /^(\w+)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m) throw new Error(`not a Prometheus sample: ${JSON.stringify(line)}`);
    const labels: Record<string, string> = {};
    for (const pair of (m[2] ?? '').split(',').filter(Boolean)) {
      const lm = /^(\w+)="(.*)"$/.exec(pair);
      if (!lm) throw new Error(`bad label ${pair} in ${line}`);
      labels[lm[1] as string] = lm[2] as string;
    }
    const value = Number(m[3]);
    if (Number.isNaN(value)) throw new Error(`bad value in ${line}`);
    samples.push({ name: m[1] as string, labels, value });
  }
  return { samples, types };
}

function sampleValue(
  samples: Sample[],
  name: string,
  labels: Record<string, string> = {},
): number | undefined {
  return samples.find((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))
    ?.value;
}

t.test('/metrics after a scan: what the daemon counted, in Prometheus format', async (t) => {
  const root = t.testdir({ watch: {}, out: {} });
  await runLiveScanner({
    out: join(root, 'watch'),
    seed: 901_001,
    size: 128,
    slices: 16,
    rate: 1e6,
    scanId: 'm',
  });
  const model = await loadModel('unet', { threads: 1 });
  t.teardown(() => model.close());
  const stats = new DaemonStats();
  let ready = false;
  const server = await startMetricsServer({ stats, port: 0, ready: () => ready });
  t.teardown(() => server.close());
  t.match(server.url, /^http:\/\/127\.0\.0\.1:\d+$/, 'on loopback by default');
  t.equal((await fetch(`${server.url}/healthz`)).status, 200);
  t.equal((await fetch(`${server.url}/readyz`)).status, 503, 'not ready before the daemon runs');
  ready = true;
  t.equal((await fetch(`${server.url}/readyz`)).status, 200);
  t.equal((await fetch(`${server.url}/nope`)).status, 404);

  await runDaemon({
    source: watchFolder(join(root, 'watch'), { stabilityMs: 50 }),
    out: join(root, 'out'),
    model,
    sinks: [],
    rules: DEFAULT_ALERT_RULES,
    maxScans: 1,
    stats,
  });
  const res = await fetch(`${server.url}/metrics`);
  t.match(res.headers.get('content-type'), /^text\/plain; version=0\.0\.4/);
  const { samples, types } = parsePrometheus(await res.text());
  t.equal(sampleValue(samples, 'xct_slices_in_total'), 16);
  t.equal(sampleValue(samples, 'xct_slices_out_total'), 16);
  t.equal(sampleValue(samples, 'xct_slices_dropped_total'), 0);
  t.equal(sampleValue(samples, 'xct_patches_total'), stats.patches);
  t.ok(stats.patches >= 16);
  t.equal(sampleValue(samples, 'xct_scans_completed_total'), 1);
  for (const severity of ['info', 'warning', 'critical'] as const)
    t.equal(sampleValue(samples, 'xct_alerts_total', { severity }), stats.alerts[severity], severity);
  t.equal(types.get('xct_inference_seconds'), 'histogram');
  t.equal(sampleValue(samples, 'xct_batch_size_count'), stats.batches);
  t.equal(sampleValue(samples, 'xct_slice_latency_seconds_count'), 16, 'one latency per slice');
  t.equal(
    sampleValue(samples, 'xct_slice_latency_seconds_bucket', { le: '+Inf' }),
    16,
    'the +Inf bucket holds every sample',
  );
  // Buckets are cumulative: never decreasing.
  const buckets = samples.filter((s) => s.name === 'xct_inference_seconds_bucket').map((s) => s.value);
  t.same(
    buckets,
    [...buckets].sort((a, b) => a - b),
    'cumulative buckets',
  );
  t.equal(sampleValue(samples, 'xct_slices_queued'), 0);
  t.equal(sampleValue(samples, 'xct_scans_in_memory'), 0, 'finished scans are let go');
  t.equal(sampleValue(samples, 'xct_slices_in_flight'), 0);
});

t.test('run --metrics-port --view: served while the daemon runs; SIGTERM exits 0', async (t) => {
  const root = t.testdir({ watch: {}, out: {} });
  const child = spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      MAIN,
      'run',
      '--watch',
      join(root, 'watch'),
      '--out',
      join(root, 'out'),
      '--model',
      'unet',
      '--threads',
      '1',
      '--metrics-port',
      '0',
      '--view',
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  t.teardown(() => child.kill('SIGKILL'));
  let stderr = '';
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no metrics URL logged: ${stderr}`)), 60_000);
    child.stderr.on('data', (d: Buffer) => {
      stderr += d;
      const m = /metrics on (http:\/\/127\.0\.0\.1:\d+)\/metrics/.exec(stderr);
      if (m) {
        clearTimeout(timer);
        resolve(m[1] as string);
      }
    });
    child.stdout.resume();
  });
  // Ready once the model is loaded and the folder watched.
  let status = 0;
  for (let i = 0; i < 200 && status !== 200; i++) {
    status = (await fetch(`${url}/readyz`)).status;
    if (status !== 200) await new Promise((r) => setTimeout(r, 100));
  }
  t.equal(status, 200, '/readyz');
  const { samples } = parsePrometheus(await (await fetch(`${url}/metrics`)).text());
  t.equal(sampleValue(samples, 'xct_slices_in_total'), 0);
  const page = await fetch(`${url}/`);
  t.match(
    await page.text(),
    /<title>xct-sentinel live view<\/title>/,
    '--view: the live view on the same server',
  );
  t.same(await (await fetch(`${url}/api/scans`)).json(), [], 'no scans yet');
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  child.kill('SIGTERM');
  t.equal(await exited, 0, `SIGTERM: a clean stop\n${stderr}`);
});
