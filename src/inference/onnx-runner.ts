import { extname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import * as ort from 'onnxruntime-node';
import { ModelError } from '../errors.ts';
import { type Logger, silentLogger } from '../log.ts';
import type { OnnxWorkerData, OnnxWorkerReply, OnnxWorkerRequest } from './onnx-worker.ts';
import { openOnnxSession, type Provider } from './open-onnx-session.ts';

/** One ONNX Runtime session, wherever it runs: a float32 tensor in, the named output back. */
export interface OnnxRunner {
  /** The provider that actually runs the model. */
  readonly provider: Provider;
  /** Why the requested provider was not used, when it was not. */
  readonly fallbackReason: string | undefined;
  run(input: Float32Array, dims: number[], names: { input: string; output: string }): Promise<Float32Array>;
  /** Release the session (and its thread); safe to call twice. */
  release(): Promise<void>;
}

export interface RunnerOptions {
  provider?: Provider;
  /** Intra-op threads; 0 lets ONNX Runtime choose (one per core). */
  threads?: number;
  log?: Logger;
  /**
   * `worker` (default): the session lives in its own thread, so the daemon's thread decodes,
   * stitches and writes while the model computes (onnxruntime-node runs a session synchronously on
   * the calling thread). `inline`: on the calling thread, e.g. to measure bare inference.
   */
  thread?: 'worker' | 'inline';
}

/** Open a session for `model` (the ONNX bytes), in a worker thread unless `thread: 'inline'`. */
export function openOnnxRunner(
  model: Uint8Array,
  label: { name: string; path: string },
  options: RunnerOptions = {},
): Promise<OnnxRunner> {
  return options.thread === 'inline'
    ? openInline(model, label, options)
    : openInWorker(model, label, options);
}

async function openInline(
  model: Uint8Array,
  label: { name: string; path: string },
  options: RunnerOptions,
): Promise<OnnxRunner> {
  const opened = await openOnnxSession(model, label, options);
  let released = false;
  return {
    provider: opened.provider,
    fallbackReason: opened.fallbackReason,
    async run(input, dims, names) {
      if (released) throw new ModelError(`model ${label.name} is closed`, { model: label.name });
      const result = await opened.session.run({ [names.input]: new ort.Tensor('float32', input, dims) });
      const output = result[names.output];
      if (!output || !(output.data instanceof Float32Array))
        throw new ModelError(`model ${label.name}: output "${names.output}" missing or not float32`, {
          model: label.name,
        });
      return output.data;
    },
    async release() {
      if (released) return;
      released = true;
      await opened.session.release();
    },
  };
}

/** The worker's entry: `.ts` beside this file when run from sources, `.js` once built. */
const EXT = extname(fileURLToPath(import.meta.url));
const WORKER_URL = new URL(`./onnx-worker${EXT}`, import.meta.url);

function startWorker(data: OnnxWorkerData): Worker {
  if (EXT !== '.ts') return new Worker(WORKER_URL, { workerData: data });
  // Run from sources (tests, `npm run bench`): Node 20 does not carry `--import tsx` into worker
  // threads, so the worker registers tsx itself before it loads its TypeScript entry.
  const tsx = import.meta.resolve('tsx/esm/api');
  const code = `import(${JSON.stringify(tsx)}).then((m) => { m.register(); return import(${JSON.stringify(WORKER_URL.href)}); });`;
  return new Worker(code, { eval: true, workerData: data });
}

async function openInWorker(
  model: Uint8Array,
  label: { name: string; path: string },
  options: RunnerOptions,
): Promise<OnnxRunner> {
  const log = options.log ?? silentLogger;
  const data: OnnxWorkerData = {
    model,
    label,
    provider: options.provider ?? 'cpu',
    threads: options.threads ?? 0,
  };
  const worker = startWorker(data);
  const pending = new Map<number, { resolve: (d: Float32Array) => void; reject: (e: unknown) => void }>();
  let nextId = 0;
  /** Set once the worker can take no more work: every later run fails with it. */
  let gone: ModelError | undefined;
  let onOpened: ((reply: OnnxWorkerReply) => void) | undefined;
  let onClosed: (() => void) | undefined;

  const fail = (error: ModelError) => {
    gone ??= error;
    for (const p of pending.values()) p.reject(error);
    pending.clear();
    onOpened?.({ type: 'open-failed', message: error.message });
  };
  worker.on('message', (reply: OnnxWorkerReply) => {
    switch (reply.type) {
      case 'opened':
      case 'open-failed':
        onOpened?.(reply);
        break;
      case 'result':
      case 'run-failed': {
        const p = pending.get(reply.id);
        pending.delete(reply.id);
        if (reply.type === 'result') p?.resolve(reply.data);
        else
          p?.reject(
            new ModelError(`model ${label.name}: ONNX Runtime failed: ${reply.message}`, {
              model: label.name,
              stage: 'infer',
            }),
          );
        break;
      }
      case 'closed':
        onClosed?.();
        break;
    }
  });
  worker.on('error', (cause) =>
    fail(new ModelError(`model ${label.name}: inference thread failed`, { model: label.name }, { cause })),
  );
  worker.on('exit', (code) => {
    fail(new ModelError(`model ${label.name}: inference thread exited (${code})`, { model: label.name }));
    onClosed?.();
  });

  const opened = await new Promise<OnnxWorkerReply>((resolve) => {
    onOpened = resolve;
  });
  onOpened = undefined;
  if (opened.type !== 'opened') {
    await worker.terminate();
    throw new ModelError(
      `model ${label.name}: ONNX Runtime cannot load ${label.path}: ${opened.type === 'open-failed' ? opened.message : ''}`,
      { model: label.name, path: label.path },
    );
  }
  if (opened.fallbackReason !== undefined)
    log.warn(
      { model: label.name, requested: data.provider, reason: opened.fallbackReason },
      `execution provider ${data.provider} unavailable; using cpu`,
    );

  let released: Promise<void> | undefined;
  return {
    provider: opened.provider,
    fallbackReason: opened.fallbackReason,
    run(input, dims, names) {
      if (gone) return Promise.reject(gone);
      if (released)
        return Promise.reject(new ModelError(`model ${label.name} is closed`, { model: label.name }));
      const id = nextId++;
      return new Promise<Float32Array>((resolve, reject) => {
        pending.set(id, { resolve, reject });
        const request: OnnxWorkerRequest = {
          type: 'run',
          id,
          input,
          dims,
          inputName: names.input,
          outputName: names.output,
        };
        worker.postMessage(request);
      });
    },
    release() {
      released ??= new Promise<void>((resolve) => {
        if (gone) {
          resolve();
          return;
        }
        onClosed = resolve;
        worker.postMessage({ type: 'close' } satisfies OnnxWorkerRequest);
      }).then(async () => {
        await worker.terminate();
      });
      return released;
    },
  };
}
