/**
 * The fuzzer: every target of `targets.ts` on `--runs` mutated inputs (default 100,000 each), in a
 * worker thread per target with a watchdog. Reports per target what was accepted, what was refused
 * (by error code), the slowest input, and peak memory; every finding (a crash, an inconsistent
 * result, a hang, a memory jump) is saved under `fuzz-findings/` and makes the exit code 1.
 *
 *   npm run fuzz -- [--runs N] [--seed S] [--target NAME] [--hang-ms MS]
 *
 * Same seed, same inputs: a finding is reproduced by its batch seed and index (printed) or by the
 * saved file.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import fc from 'fast-check';
import { quantile } from '../../src/daemon/daemon-stats.ts';
import { Finding, TARGETS } from './targets.ts';

const BATCH = 1000;
/** An input that grows the process by more than this is a finding, even if it is refused in the end. */
const JUMP_BYTES = 256 * 2 ** 20;

interface Job {
  target: string;
  runs: number;
  seed: number;
  progress: SharedArrayBuffer;
}
type FindingMessage = {
  type: 'finding';
  message: string;
  batchSeed: number;
  index: number;
  input: Uint8Array;
};
type Report = {
  type: 'report';
  runs: number;
  outcomes: Record<string, number>;
  slowestMs: number;
  slowest: { batchSeed: number; index: number };
  medianUs: number;
  peakRss: number;
};
type Message = FindingMessage | Report | { type: 'progress'; runs: number };

const findTarget = (name: string) => {
  const target = TARGETS.find((t) => t.name === name);
  if (!target)
    throw new Error(`no fuzz target "${name}"; there are: ${TARGETS.map((t) => t.name).join(', ')}`);
  return target;
};

async function work(job: Job): Promise<void> {
  const port = parentPort!;
  const target = findTarget(job.target);
  const arb = target.input();
  const at = new Int32Array(job.progress);
  const outcomes: Record<string, number> = {};
  const times: number[] = [];
  let slowestMs = 0;
  let slowest = { batchSeed: job.seed, index: 0 };
  let peakRss = process.memoryUsage.rss();
  let done = 0;
  // A decoder that prints (to stdout, where the daemon may write JSON-lines alerts, or to stderr
  // between the JSON logs) is a finding too.
  let printed = '';
  // process.emitWarning too (the YAML library warns that way).
  process.emitWarning = ((warning: string | Error) => {
    printed += `${String(warning)}\n`;
  }) as typeof process.emitWarning;
  for (const method of ['log', 'info', 'warn', 'error', 'debug'] as const)
    console[method] = (...args: unknown[]) => {
      printed += `${args.map(String).join(' ')}\n`;
    };
  for (let batch = 0; done < job.runs; batch++) {
    const batchSeed = job.seed + batch;
    const inputs = fc.sample(arb, { seed: batchSeed, numRuns: Math.min(BATCH, job.runs - done) });
    for (const [index, input] of inputs.entries()) {
      Atomics.store(at, 0, batch);
      Atomics.store(at, 1, index);
      const before = process.memoryUsage.rss();
      const t0 = performance.now();
      let outcome: string;
      printed = '';
      try {
        outcome = await target.run(input);
        if (printed !== '') throw new Finding(`printed to the console: ${printed.slice(0, 200).trim()}`);
      } catch (err) {
        outcome = 'FINDING';
        const message = err instanceof Finding ? err.message : `the harness itself failed: ${String(err)}`;
        port.postMessage({
          type: 'finding',
          message,
          batchSeed,
          index,
          input: target.save(input),
        } satisfies Message);
      }
      const ms = performance.now() - t0;
      const rss = process.memoryUsage.rss();
      if (rss - before > JUMP_BYTES)
        port.postMessage({
          type: 'finding',
          message: `memory: one input grew the process by ${((rss - before) / 2 ** 20).toFixed(0)} MiB`,
          batchSeed,
          index,
          input: target.save(input),
        } satisfies Message);
      peakRss = Math.max(peakRss, rss);
      outcomes[outcome] = (outcomes[outcome] ?? 0) + 1;
      times.push(ms);
      if (ms > slowestMs) {
        slowestMs = ms;
        slowest = { batchSeed, index };
      }
      done++;
    }
    port.postMessage({ type: 'progress', runs: done } satisfies Message);
  }
  port.postMessage({
    type: 'report',
    runs: done,
    outcomes,
    slowestMs,
    slowest,
    medianUs: quantile(times, 0.5) * 1000,
    peakRss,
  } satisfies Message);
}

function save(dir: string, target: string, what: string, input: Uint8Array): string {
  mkdirSync(dir, { recursive: true });
  const path = join(dir, `${target.replace(/\W+/g, '-')}-${what}.bin`);
  writeFileSync(path, input);
  return path;
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      runs: { type: 'string', default: '100000' },
      seed: { type: 'string', default: '20261203' },
      target: { type: 'string', multiple: true },
      'hang-ms': { type: 'string', default: '20000' },
      out: { type: 'string', default: 'fuzz-findings' },
    },
  });
  const runs = Number(values.runs);
  const seed = Number(values.seed);
  const hangMs = Number(values['hang-ms']);
  if (!(Number.isSafeInteger(runs) && runs > 0))
    throw new Error(`--runs must be a positive integer, got ${values.runs}`);
  if (!Number.isSafeInteger(seed)) throw new Error(`--seed must be an integer, got ${values.seed}`);
  const names = values.target ?? TARGETS.map((t) => t.name);
  for (const name of names) findTarget(name);
  let findings = 0;
  console.log(`fuzz: ${runs} inputs per target, seed ${seed}, a hang is ${hangMs} ms without progress`);
  console.log(
    '| target | inputs | accepted | refused (by code) | findings | median µs | slowest ms (batch seed, index) | peak RSS MiB |',
  );
  console.log('|---|---|---|---|---|---|---|---|');
  for (const name of names) {
    const progress = new SharedArrayBuffer(8);
    // A worker does not inherit `--import tsx`: it registers tsx itself, then loads this file.
    const worker = new Worker(
      `import('tsx/esm/api').then((tsx) => { tsx.register(); return import(${JSON.stringify(import.meta.url)}); })`,
      { eval: true, workerData: { target: name, runs, seed, progress } satisfies Job },
    );
    let targetFindings = 0;
    const report = await new Promise<Report | undefined>((resolve) => {
      let timer: NodeJS.Timeout | undefined;
      const arm = () => {
        clearTimeout(timer);
        timer = setTimeout(() => {
          const at = new Int32Array(progress);
          const batch = Atomics.load(at, 0);
          const index = Atomics.load(at, 1);
          void worker.terminate();
          // Same seed, same inputs: the one it was stuck on is generated again here.
          const target = findTarget(name);
          const input = fc.sample(target.input(), { seed: seed + batch, numRuns: index + 1 })[index];
          const path = save(values.out, name, `hang-${seed + batch}-${index}`, target.save(input));
          console.error(`${name}: HANG on batch seed ${seed + batch}, index ${index} (saved ${path})`);
          targetFindings++;
          resolve(undefined);
        }, hangMs);
      };
      arm();
      worker.on('message', (m: Message) => {
        arm();
        if (m.type === 'finding') {
          targetFindings++;
          const path = save(values.out, name, `${m.batchSeed}-${m.index}`, m.input);
          console.error(`${name}: ${m.message} (batch seed ${m.batchSeed}, index ${m.index}; saved ${path})`);
        } else if (m.type === 'report') {
          clearTimeout(timer);
          resolve(m);
        }
      });
      worker.on('error', (err) => {
        clearTimeout(timer);
        console.error(`${name}: the worker died: ${String(err)}`);
        targetFindings++;
        resolve(undefined);
      });
    });
    findings += targetFindings;
    if (!report) {
      console.log(`| ${name} | – | – | – | ${targetFindings} | – | – | – |`);
      continue;
    }
    const { ok = 0, FINDING: _f = 0, ...codes } = report.outcomes;
    const refusedText = Object.entries(codes)
      .sort((a, b) => b[1] - a[1])
      .map(([code, n]) => `${code} ${n}`)
      .join(', ');
    console.log(
      `| ${name} | ${report.runs} | ${ok} | ${refusedText} | ${targetFindings} | ${report.medianUs.toFixed(0)} | ${report.slowestMs.toFixed(1)} (${report.slowest.batchSeed}, ${report.slowest.index}) | ${(report.peakRss / 2 ** 20).toFixed(0)} |`,
    );
  }
  console.log(findings === 0 ? 'no findings' : `${findings} finding(s), saved under ${values.out}/`);
  return findings === 0 ? 0 : 1;
}

if (isMainThread) {
  main().then(
    (code) => process.exit(code),
    (err: unknown) => {
      console.error(String(err));
      process.exit(2);
    },
  );
} else {
  await work(workerData as Job);
}
