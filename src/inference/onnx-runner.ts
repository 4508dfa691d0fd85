import { extname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ModelError } from '../errors.ts';
import { type Logger, silentLogger } from '../log.ts';
import { startWorker } from '../worker-thread.ts';
import type { OnnxWorkerData, OnnxWorkerReply, OnnxWorkerRequest } from './onnx-worker.ts';
import { openOnnxSession, type Provider, runSession } from './open-onnx-session.ts';

/** One ONNX Runtime session, wherever it runs: a float32 tensor in, the named output back. */
export interface OnnxRunner {
  /** The provider that actually runs the model. */
  readonly provider: Provider;
  /** Why the requested provider was not used, when it was not. */
  readonly fallbackReason: string | undefined;
  /** How many runs compute at once: one per session. */
  readonly concurrency: number;
  /** False once it can take no more runs: released, or its thread gone. */
  readonly alive: boolean;
  /**
   * Run on `input` (shape `dims`); the caller keeps `input`. With `output`, the output's shape is
   * known beforehand and ONNX Runtime writes it in place (a wrong shape fails the run): into
   * `output.into` when given (which is handed over: the caller uses only what `run` returns), else
   * into a fresh array.
   */
  run(
    input: Float32Array,
    dims: number[],
    names: { input: string; output: string },
    output?: { dims: number[]; into?: Float32Array },
  ): Promise<Float32Array>;
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
  /**
   * Sessions of the same model, each in its own worker thread with `threads` intra-op threads, that
   * take runs side by side (default 1; `inline` takes only 1).
   */
  sessions?: number;
}

/**
 * Open a session for `model` (the ONNX bytes), in a worker thread unless `thread: 'inline'`; with
 * `sessions` > 1, that many, each run going to the one with the fewest runs waiting.
 */
export async function openOnnxRunner(
  model: Uint8Array,
  label: { name: string; path: string },
  options: RunnerOptions = {},
): Promise<OnnxRunner> {
  const sessions = options.sessions ?? 1;
  if (!Number.isInteger(sessions) || sessions < 1)
    throw new RangeError(`model ${label.name}: sessions must be a whole number ≥ 1, got ${sessions}`);
  if (options.thread === 'inline') {
    if (sessions !== 1)
      throw new RangeError(`model ${label.name}: an inline session runs on the calling thread: one only`);
    return openInline(model, label, options);
  }
  if (sessions === 1) return openInWorker(model, label, options);
  // A fallback is logged once, by the first session; the others fall back alike.
  const opened = await Promise.allSettled(
    Array.from({ length: sessions }, (_, i) => openInWorker(model, label, options, i === 0)),
  );
  const runners = opened.flatMap((o) => (o.status === 'fulfilled' ? [o.value] : []));
  const failed = opened.find((o) => o.status === 'rejected');
  if (failed) {
    await Promise.all(runners.map((r) => r.release()));
    throw failed.reason;
  }
  return poolRunners(runners);
}

/**
 * Several runners of one model as one: each run goes to the live runner with the fewest runs out,
 * so a session whose thread has died is passed over while another lives.
 */
export function poolRunners(runners: readonly OnnxRunner[]): OnnxRunner {
  const first = runners[0] as OnnxRunner;
  const out = runners.map(() => 0);
  return {
    provider: first.provider,
    fallbackReason: first.fallbackReason,
    concurrency: runners.length,
    get alive() {
      return runners.some((r) => r.alive);
    },
    run(input, dims, names, output) {
      // With none alive, the first says why.
      let i = -1;
      for (let k = 0; k < runners.length; k++)
        if ((runners[k] as OnnxRunner).alive && (i < 0 || (out[k] as number) < (out[i] as number))) i = k;
      if (i < 0) i = 0;
      out[i] = (out[i] as number) + 1;
      return (runners[i] as OnnxRunner).run(input, dims, names, output).finally(() => {
        out[i] = (out[i] as number) - 1;
      });
    },
    async release() {
      await Promise.all(runners.map((r) => r.release()));
    },
  };
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
    concurrency: 1,
    get alive() {
      return !released;
    },
    async run(input, dims, names, out) {
      if (released) throw new ModelError(`model ${label.name} is closed`, { model: label.name });
      const output = await runSession(opened.session, input, dims, names, out?.dims, out?.into);
      if (!output)
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

async function openInWorker(
  model: Uint8Array,
  label: { name: string; path: string },
  options: RunnerOptions,
  logFallback = true,
): Promise<OnnxRunner> {
  const log = options.log ?? silentLogger;
  const data: OnnxWorkerData = {
    model,
    label,
    provider: options.provider ?? 'cpu',
    threads: options.threads ?? 0,
  };
  const worker = startWorker(WORKER_URL, data);
  const pending = new Map<number, { resolve: (d: Float32Array) => void; reject: (e: unknown) => void }>();
  let nextId = 0;
  // Input buffers go to the worker and come back with each result, so a run costs one copy into a
  // spare buffer here instead of a structured clone (allocate, copy, allocate, copy across threads).
  const spare: ArrayBuffer[] = [];
  const MAX_SPARE = 4;
  /** Keep a returned buffer; when full, a larger one replaces the smallest (batches grow after a scan's start). */
  const keepSpare = (buffer: ArrayBuffer) => {
    if (spare.length < MAX_SPARE) {
      spare.push(buffer);
      return;
    }
    let smallest = 0;
    for (let i = 1; i < spare.length; i++)
      if ((spare[i] as ArrayBuffer).byteLength < (spare[smallest] as ArrayBuffer).byteLength) smallest = i;
    if ((spare[smallest] as ArrayBuffer).byteLength < buffer.byteLength) spare[smallest] = buffer;
  };
  /** Set once the worker can take no more work: every later run fails with it. */
  let gone: ModelError | undefined;
  let released: Promise<void> | undefined;
  let onOpened: ((reply: OnnxWorkerReply) => void) | undefined;
  let onClosed: (() => void) | undefined;

  const fail = (error: ModelError) => {
    if (!gone && !released && !onOpened) log.error({ model: label.name, err: error }, error.message);
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
        keepSpare(reply.input);
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
  if (opened.fallbackReason !== undefined && logFallback)
    log.warn(
      { model: label.name, requested: data.provider, reason: opened.fallbackReason },
      `execution provider ${data.provider} unavailable; using cpu`,
    );

  return {
    provider: opened.provider,
    fallbackReason: opened.fallbackReason,
    concurrency: 1,
    get alive() {
      return !gone && !released;
    },
    run(input, dims, names, output) {
      if (released)
        return Promise.reject(new ModelError(`model ${label.name} is closed`, { model: label.name }));
      if (gone) return Promise.reject(gone);
      const id = nextId++;
      const at = spare.findIndex((b) => b.byteLength >= input.byteLength);
      const buffer = at >= 0 ? (spare.splice(at, 1)[0] as ArrayBuffer) : new ArrayBuffer(input.byteLength);
      new Float32Array(buffer, 0, input.length).set(input);
      const into = output?.into?.buffer as ArrayBuffer | undefined;
      return new Promise<Float32Array>((resolve, reject) => {
        pending.set(id, { resolve, reject });
        const request: OnnxWorkerRequest = {
          type: 'run',
          id,
          input: buffer,
          length: input.length,
          dims,
          ...(output && { outputDims: output.dims }),
          ...(into && { output: into }),
          inputName: names.input,
          outputName: names.output,
        };
        worker.postMessage(request, into ? [buffer, into] : [buffer]);
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
