import { setTimeout as sleep } from 'node:timers/promises';
import type { DecodedImage } from '../codecs/decode-tiff.ts';
import { dtypeOf, type TypedArray } from '../codecs/dtype.ts';
import { readSliceFile } from '../codecs/read-slice-file.ts';
import { DecodeError, describeError, isXctError } from '../errors.ts';
import { readZarrScanPlane } from '../sinks/zarr-scan-writer.ts';
import { modelInput, takesNeighbours } from '../slices/blend-neighbours.ts';
import { normalizeSlice } from '../slices/normalize-slice.ts';
import type { NormalizedSlice } from '../slices/slice-types.ts';
import { type DaemonContext, skipSlice, sliceDone } from './daemon-context.ts';
import type { QueuedSlice, ScanState } from './scan-state.ts';

/** Slices narrower or shorter than this are refused: a 1-pixel slice is a broken header, not a scan
 * (thin ones are not: the shared tooth data set has 640×2 projections). */
const MIN_SLICE_SIDE = 2;

/** How a slice that fails to decode in a way that may pass (empty, truncated) is read again. */
export interface DecodeRetry {
  attempts: number;
  delayMs: number;
}

/**
 * A slice past the gate: its scan's earlier run is taken up first, and a slice that run finished
 * (durable in the store) is not done again, nor is one of a failed scan, nor any once the daemon is
 * stopping (it stays on disk for the next start). The rest is decoded. Undefined: not going on.
 */
export async function admitSlice(
  ctx: DaemonContext,
  ref: QueuedSlice,
  o: { stopping: boolean; retry: DecodeRetry },
): Promise<NormalizedSlice | undefined> {
  const s = ctx.scans.open(ref.scanId);
  if (o.stopping) {
    s.skipped++;
    return undefined;
  }
  if (s.resumed) await s.resumed;
  if (s.failed || s.handedOver) return undefined;
  if (s.durable.has(ref.z)) {
    s.processed++;
    ctx.stats.slicesResumed++;
    sliceDone(ctx, ref, Date.now());
    return undefined;
  }
  return decodeSlice(ctx, s, ref, o.retry);
}

/**
 * Read a slice's pixels, check them against its scan, scale them for the model and, for a model
 * that takes in the neighbouring slices, blend in the slice before it and the one after. A slice
 * that cannot be read or does not fit its scan is skipped (reported, listed missing): undefined.
 */
export async function decodeSlice(
  ctx: DaemonContext,
  s: ScanState,
  ref: QueuedSlice,
  retry: DecodeRetry,
): Promise<NormalizedSlice | undefined> {
  let image: DecodedImage | undefined =
    ref.image ?? (s.lookahead?.z === ref.z ? s.lookahead.image : undefined);
  s.lookahead = undefined;
  image ??= await readWithRetry(ctx, ref, retry);
  if (image === undefined) return undefined;
  const refusal = sliceMisfit(image, s, ref);
  if (refusal) {
    skipSlice(ctx, refusal, ref, 'decode');
    return undefined;
  }
  warnNonFinite(ctx, image, ref);
  if (s.width === undefined) {
    s.width = image.width;
    s.height = image.height;
    s.dtype = image.dtype;
  }
  const { model } = ctx;
  const normalized = normalizeSlice(image.data, model.normalization);
  if (!takesNeighbours(model)) return { ...ref, ...image, normalized };
  const previous =
    s.previous?.z === ref.z - 1 ? s.previous.data : await readStoredImage(ctx, s, ref.z - 1, image);
  s.previous = { z: ref.z, data: image.data };
  const next = ref.next && (await readAhead(ctx, s, ref.next, image));
  return { ...ref, ...image, normalized, input: modelInput(image.data, previous, next, model) };
}

/**
 * Why a decoded slice cannot go on in its scan (too small, another pixel type or size than the
 * scan's first slice), or undefined when it fits.
 */
export function sliceMisfit(
  image: DecodedImage,
  scan: Pick<ScanState, 'width' | 'height' | 'dtype'>,
  ref: QueuedSlice,
): DecodeError | undefined {
  const where = ref.path ?? `slice ${ref.z} of ${ref.scanId}`;
  const context = { path: ref.path, scanId: ref.scanId, slice: ref.z, stage: 'decode' };
  if (image.width < MIN_SLICE_SIDE || image.height < MIN_SLICE_SIDE)
    return new DecodeError(
      `${where}: ${image.width}×${image.height} is too small to be a reconstructed slice (at least ${MIN_SLICE_SIDE}×${MIN_SLICE_SIDE})`,
      context,
    );
  if (scan.dtype !== undefined && image.dtype !== scan.dtype)
    return new DecodeError(`${where}: ${image.dtype} pixels differ from the scan's ${scan.dtype}`, context);
  if (scan.width !== undefined && (image.width !== scan.width || image.height !== scan.height))
    return new DecodeError(
      `${ref.path ?? `slice ${ref.z}`}: ${image.width}×${image.height} differs from the scan's ${scan.width}×${scan.height}`,
      context,
    );
  return undefined;
}

/** Read the slice's file, again after a pause while the error says it may pass; undefined once skipped. */
async function readWithRetry(
  ctx: DaemonContext,
  ref: QueuedSlice,
  retry: DecodeRetry,
): Promise<DecodedImage | undefined> {
  const { signal, log } = ctx;
  for (let attempt = 1; ; attempt++) {
    try {
      return await readSliceFile(ref.path as string, signal ? { signal } : {});
    } catch (err) {
      if (isXctError(err) && err.canRetry && attempt < retry.attempts && !signal?.aborted) {
        log.warn(
          { scanId: ref.scanId, slice: ref.z, path: ref.path, attempt },
          `slice ${ref.z} of ${ref.scanId} not readable yet (${describeError(err)}); reading it again`,
        );
        await sleep(retry.delayMs * attempt);
        continue;
      }
      skipSlice(ctx, err, ref, 'decode');
      return undefined;
    }
  }
}

/** NaN and infinite pixels are segmented at the background level, and said so. */
function warnNonFinite(ctx: DaemonContext, image: DecodedImage, ref: QueuedSlice): void {
  if (image.dtype !== 'float32' && image.dtype !== 'float64') return;
  let bad = 0;
  for (let i = 0; i < image.data.length; i++) if (!Number.isFinite(image.data[i] as number)) bad++;
  if (bad === 0) return;
  ctx.stats.error('decode');
  ctx.log.warn(
    { scanId: ref.scanId, slice: ref.z, path: ref.path, pixels: bad },
    `${ref.path ?? `slice ${ref.z} of ${ref.scanId}`}: ${bad} pixels are NaN or infinite; segmented with them at the background level`,
  );
}

/**
 * A slice an earlier run finished, as the previous neighbour of the first one this run does: the
 * store keeps the decoded image bit for bit, so the slice gets what an uninterrupted run gave it.
 */
async function readStoredImage(
  ctx: DaemonContext,
  s: ScanState,
  z: number,
  like: DecodedImage,
): Promise<TypedArray | undefined> {
  if (!s.durable.has(z)) return undefined;
  try {
    const { data } = await readZarrScanPlane(s.zarrPath, z, 'image');
    return data.length === like.data.length && dtypeOf(data) === like.dtype ? data : undefined;
  } catch (err) {
    ctx.log.warn(
      { scanId: s.scanId, slice: z, err },
      `slice ${z} of ${s.scanId} not readable from its store: ${describeError(err)}`,
    );
    return undefined;
  }
}

/**
 * The next slice's pixels for this one's input, kept for its own turn. One try: a slice that
 * cannot be read yet, or does not match, is left to its own decode (which retries and reports);
 * this one goes on with itself in its place. Not cut short by a stop: the slice it serves is
 * already in flight and is finished as an uninterrupted run would finish it.
 */
async function readAhead(
  ctx: DaemonContext,
  s: ScanState,
  ref: QueuedSlice,
  like: DecodedImage,
): Promise<TypedArray | undefined> {
  let image = ref.image;
  if (image === undefined) {
    try {
      image = await readSliceFile(ref.path as string);
    } catch (err) {
      ctx.log.warn(
        { scanId: ref.scanId, slice: ref.z, path: ref.path, err },
        `slice ${ref.z - 1} of ${ref.scanId} goes on without its next neighbour: ${describeError(err)}`,
      );
      return undefined;
    }
    s.lookahead = { z: ref.z, image };
  }
  const fits = image.width === like.width && image.height === like.height && image.dtype === like.dtype;
  return fits ? image.data : undefined;
}
