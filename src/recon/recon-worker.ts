/**
 * A worker thread that reconstructs slices (see `recon-threads.ts`): filtered back-projection is
 * pure arithmetic, a few hundred milliseconds a slice, and here it runs beside the daemon's thread
 * (reading, stitching, writing) and the model's, instead of stopping them.
 */
import { parentPort } from 'node:worker_threads';
import { describeError } from '../errors.ts';
import { type FbpOptions, reconstructSlice } from './fbp.ts';

/** Main → worker: one sinogram (its buffers handed over) and how to reconstruct it. */
export interface ReconRequest {
  id: number;
  data: Float32Array;
  thetaDeg: Float64Array;
  angles: number;
  columns: number;
  options: FbpOptions;
}

/** Worker → main: the slice (handed over), or why not. */
export type ReconReply = { id: number; image: Float32Array } | { id: number; error: string };

const port = parentPort;
if (!port) throw new Error('recon-worker.ts runs as a worker thread only');
port.on('message', (r: ReconRequest) => {
  try {
    const image = reconstructSlice(
      { data: r.data, thetaDeg: r.thetaDeg, angles: r.angles, columns: r.columns },
      r.options,
    );
    port.postMessage({ id: r.id, image } satisfies ReconReply, [image.buffer as ArrayBuffer]);
  } catch (err) {
    port.postMessage({ id: r.id, error: describeError(err) } satisfies ReconReply);
  }
});
