/**
 * A worker thread that owns one ONNX Runtime session (see `onnx-runner.ts`). onnxruntime-node runs a
 * session synchronously on the thread that calls it; here that thread is not the daemon's, so
 * decoding, stitching and writing go on while the model computes.
 */
import { parentPort, workerData } from 'node:worker_threads';
import * as ort from 'onnxruntime-node';
import { describeError } from '../errors.ts';
import { openOnnxSession, type Provider } from './open-onnx-session.ts';

/** What the worker is started with. */
export interface OnnxWorkerData {
  model: Uint8Array;
  label: { name: string; path: string };
  provider: Provider;
  threads: number;
}

/** Main → worker. */
export type OnnxWorkerRequest =
  | { type: 'run'; id: number; input: Float32Array; dims: number[]; inputName: string; outputName: string }
  | { type: 'close' };

/** Worker → main. */
export type OnnxWorkerReply =
  | { type: 'opened'; provider: Provider; fallbackReason?: string }
  | { type: 'open-failed'; message: string }
  | { type: 'result'; id: number; data: Float32Array }
  | { type: 'run-failed'; id: number; message: string }
  | { type: 'closed' };

const port = parentPort;
if (!port) throw new Error('onnx-worker.ts runs as a worker thread only');
const data = workerData as OnnxWorkerData;
const send = (reply: OnnxWorkerReply, transfer: ArrayBuffer[] = []) => port.postMessage(reply, transfer);

let session: ort.InferenceSession | undefined;
try {
  const opened = await openOnnxSession(data.model, data.label, {
    provider: data.provider,
    threads: data.threads,
  });
  session = opened.session;
  send({
    type: 'opened',
    provider: opened.provider,
    ...(opened.fallbackReason !== undefined && { fallbackReason: opened.fallbackReason }),
  });
} catch (err) {
  send({ type: 'open-failed', message: describeError(err) });
  port.close();
}

if (session) {
  const s = session;
  port.on('message', async (request: OnnxWorkerRequest) => {
    if (request.type === 'close') {
      await s.release();
      send({ type: 'closed' });
      port.close();
      return;
    }
    try {
      const result = await s.run({
        [request.inputName]: new ort.Tensor('float32', request.input, request.dims),
      });
      const output = result[request.outputName];
      if (!output || !(output.data instanceof Float32Array))
        throw new Error(`output "${request.outputName}" missing or not float32`);
      // A copy that owns its buffer, so it can be handed over without copying again.
      const out = output.data.slice();
      send({ type: 'result', id: request.id, data: out }, [out.buffer as ArrayBuffer]);
    } catch (err) {
      send({ type: 'run-failed', id: request.id, message: describeError(err) });
    }
  });
}
