import { Worker } from 'node:worker_threads';

/**
 * A worker thread on `entry`: a `.js` file once built, or a `.ts` file when run from sources (tests,
 * `npm run bench`). Node 20 does not carry `--import tsx` into worker threads, so for a `.ts` entry
 * the worker registers tsx itself before it loads its TypeScript entry.
 */
export function startWorker(entry: URL, workerData: unknown): Worker {
  if (!entry.pathname.endsWith('.ts')) return new Worker(entry, { workerData });
  const tsx = import.meta.resolve('tsx/esm/api');
  const code = `import(${JSON.stringify(tsx)}).then((m) => { m.register(); return import(${JSON.stringify(entry.href)}); });`;
  return new Worker(code, { eval: true, workerData });
}
