/**
 * A worker thread that owns one ONNX Runtime session (see `onnx-runner.ts`). onnxruntime-node runs a
 * session synchronously on the thread that calls it; here that thread is not the daemon's, so
 * decoding, stitching and writing go on while the model computes.
 */
import { parentPort, workerData } from 'node:worker_threads';
import type * as ort from 'onnxruntime-node';
import { describeError } from '../errors.ts';
import { openOnnxSession, type Provider, runSession } from './open-onnx-session.ts';

/** What the worker is started with. */
export interface OnnxWorkerData {
  model: Uint8Array;
  label: { name: string; path: string };
  provider: Provider;
  threads: number;
}

/**
 * Main → worker. `input` is handed over (transferred, not copied): its first `length` floats are the
 * tensor. With `outputDims`, ONNX Runtime writes the output straight into a buffer of that shape: the
 * start of `output` when one is handed over (a result the caller is done with), else a fresh one.
 */
export type OnnxWorkerRequest =
  | {
      type: 'run';
      id: number;
      input: ArrayBuffer;
      length: number;
      dims: number[];
      outputDims?: number[];
      output?: ArrayBuffer;
      inputName: string;
      outputName: string;
    }
  | { type: 'close' };

/** Worker → main. Every run hands its input buffer back (`input`), for the next run to reuse. */
export type OnnxWorkerReply =
  | { type: 'opened'; provider: Provider; fallbackReason?: string }
  | { type: 'open-failed'; message: string }
  | { type: 'result'; id: number; data: Float32Array; input: ArrayBuffer }
  | { type: 'run-failed'; id: number; message: string; input: ArrayBuffer }
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
    const { input } = request;
    try {
      const output = await runSession(
        s,
        new Float32Array(input, 0, request.length),
        request.dims,
        { input: request.inputName, output: request.outputName },
        request.outputDims,
        request.output && new Float32Array(request.output),
      );
      if (!output) throw new Error(`output "${request.outputName}" missing or not float32`);
      // Handed over without a copy when ONNX Runtime wrote it into our own buffer; copied otherwise.
      const out = output.owned ? output.data : output.data.slice();
      send({ type: 'result', id: request.id, data: out, input }, [out.buffer as ArrayBuffer, input]);
    } catch (err) {
      send({ type: 'run-failed', id: request.id, message: describeError(err), input }, [input]);
    }
  });
}
