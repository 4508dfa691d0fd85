import { extname } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Worker } from 'node:worker_threads';
import { startWorker } from '../worker-thread.ts';
import type { FbpOptions, Sinogram } from './fbp.ts';
import type { ReconReply, ReconRequest } from './recon-worker.ts';

/** Reconstruction on worker threads: slices are reconstructed off the daemon's thread, several at once. */
export interface ReconThreads {
  readonly threads: number;
  /** The slice of `sino` (whose buffers are handed over: the caller no longer uses them). */
  reconstruct(sino: Sinogram, options: FbpOptions): Promise<Float32Array>;
  /** Stop the threads; what is still being reconstructed fails. Safe to call twice. */
  close(): Promise<void>;
}

const EXT = extname(fileURLToPath(import.meta.url));
const WORKER_URL = new URL(`./recon-worker${EXT}`, import.meta.url);

interface Thread {
  worker: Worker;
  pending: Map<number, { resolve: (image: Float32Array) => void; reject: (err: Error) => void }>;
  /** Set once the thread can take no more work. */
  gone?: Error;
}

/**
 * `threads` worker threads (at least 1). Each request goes to the thread with the fewest waiting;
 * an idle thread does not keep the process alive. A thread that dies fails what it had and takes
 * no more; the others go on.
 */
export function startReconThreads(threads: number): ReconThreads {
  const count = Math.max(1, Math.floor(threads));
  const pool: Thread[] = [];
  let nextId = 0;
  let closed = false;
  for (let i = 0; i < count; i++) {
    const thread: Thread = { worker: startWorker(WORKER_URL, undefined), pending: new Map() };
    const fail = (err: Error) => {
      thread.gone ??= err;
      for (const p of thread.pending.values()) p.reject(err);
      thread.pending.clear();
    };
    thread.worker.on('message', (reply: ReconReply) => {
      const p = thread.pending.get(reply.id);
      if (!p) return;
      thread.pending.delete(reply.id);
      if (thread.pending.size === 0) thread.worker.unref();
      if ('image' in reply) p.resolve(reply.image);
      else p.reject(new Error(reply.error));
    });
    thread.worker.on('error', (err) => fail(new Error(`reconstruction thread failed: ${err.message}`)));
    thread.worker.on('exit', (code) => fail(new Error(`reconstruction thread ended (exit code ${code})`)));
    thread.worker.unref();
    pool.push(thread);
  }
  return {
    threads: count,
    reconstruct(sino, options) {
      if (closed) return Promise.reject(new Error('reconstruction threads are closed'));
      const live = pool.filter((t) => !t.gone);
      if (live.length === 0) return Promise.reject((pool[0] as Thread).gone as Error);
      const thread = live.reduce((a, b) => (b.pending.size < a.pending.size ? b : a));
      const id = nextId++;
      // Hand the samples over; a view into a larger buffer is copied first, not taken with it.
      const whole = sino.data.byteOffset === 0 && sino.data.byteLength === sino.data.buffer.byteLength;
      const data = whole ? sino.data : sino.data.slice();
      return new Promise<Float32Array>((resolve, reject) => {
        thread.pending.set(id, { resolve, reject });
        if (thread.pending.size === 1) thread.worker.ref();
        const request: ReconRequest = {
          id,
          data,
          thetaDeg: sino.thetaDeg,
          angles: sino.angles,
          columns: sino.columns,
          options,
        };
        thread.worker.postMessage(request, [data.buffer as ArrayBuffer]);
      });
    },
    async close() {
      if (closed) return;
      closed = true;
      await Promise.all(pool.map((t) => t.worker.terminate()));
    },
  };
}
