/**
 * One scan's OME-Zarr 0.5 store: the image, the dendrite mask and the probabilities, written slice
 * by slice as the scan runs, durable per slice, resumable after a crash, and read back for a resume
 * and the live view. Over 400 lines because the write protocol (create or take up, grow, write a
 * slice's chunks, record progress, finish and trim) is one state machine over one store's metadata;
 * the files underneath are `durable-file-store.ts`, the gzip codec `zarr-gzip-codec.ts`.
 */
import { readdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import FileSystemStore from '@zarrita/storage/fs';
import * as zarr from 'zarrita';
import { type Dtype, dtypeOf, TYPED_ARRAYS, type TypedArray } from '../codecs/dtype.ts';
import { type ErrorContext, isXctError, OutputError } from '../errors.ts';
import { quantizeProbability } from '../slices/probability.ts';
import { DurableFileStore, removeStaleTemps } from './durable-file-store.ts';
import { DEFAULT_GZIP_LEVEL } from './zarr-gzip-codec.ts';

/** The one place a scan's store is named: `<out>/<scanId>.ome.zarr`. */
export function scanStorePath(out: string, scanId: string): string {
  return join(out, `${scanId}.ome.zarr`);
}

/** Voxel edge lengths in micrometres, in the arrays' axis order. */
export interface VoxelSizeUm {
  z: number;
  y: number;
  x: number;
}

/** The model whose output the store holds (recorded with the progress). */
export interface ZarrModelInfo {
  name: string;
  version: string;
  sha256: string;
  provider: string;
}

/** How chunks are compressed: `gzip` is standard gzip (RFC 1952) through node:zlib. */
export type ZarrCompression = 'none' | 'gzip';

/** Where and how one scan's image, mask and probability volumes are written. */
export interface ZarrScanWriterOptions {
  /** The store folder, conventionally `scanStorePath(out, scanId)`. */
  root: string;
  scanId: string;
  width: number;
  height: number;
  /** Initial z extent; the arrays grow when a slice beyond it arrives. */
  expectedSlices?: number;
  /** One number for isotropic voxels. */
  voxelSizeUm: VoxelSizeUm | number;
  imageDtype: Dtype;
  /** In-plane chunk size; each chunk holds one slice in z. Default min(size, 512). */
  chunk?: { y: number; x: number };
  /** Compression of the mask and probability arrays (and of the image unless `imageCompression` says otherwise). */
  compression?: ZarrCompression;
  /**
   * Compression of the input image copy. Default `none`: a noisy 1024² uint16 slice gzips only to ~92%
   * of its size, for ~40 ms of CPU, while masks and probabilities shrink 100× or more in ~1 ms.
   */
  imageCompression?: ZarrCompression;
  /** gzip level 0–9 (default 1: masks already shrink 100× at level 1; level 5 takes ~3× as long). */
  gzipLevel?: number;
  /** fsync chunk files and their folders before a write resolves (default true). */
  durable?: boolean;
  model?: ZarrModelInfo;
  signal?: AbortSignal;
}

/** One stitched slice: the input image, the 0/1 dendrite mask and the 0..1 dendrite probability. */
export interface ZarrScanSlice {
  image: TypedArray;
  mask: Uint8Array;
  /** Dendrite probability 0–1, or already as stored (uint8, probability × 255; see slices/probability.ts). */
  prob: Float32Array | Uint8Array;
}

/** What a store says about itself: which slices are durably on disk, and whether the scan ended. */
export interface ZarrScanProgress {
  scanId: string;
  /** Ascending. */
  slicesWritten: number[];
  complete: boolean;
}

/** Writes one scan's OME-Zarr 0.5 store slice by slice, each slice durable when its write resolves. */
export interface ZarrScanWriter {
  readonly root: string;
  readonly scanId: string;
  /** The arrays' current z extent. */
  readonly capacity: number;
  /** Slices durably written so far, ascending. */
  slicesWritten(): number[];
  /** Write slice `z` of all three arrays, growing them if z lies beyond their extent. */
  writeSlice(z: number, slice: ZarrScanSlice): Promise<void>;
  /** Set the z extent to the real slice count (dropping anything beyond it) and mark the scan complete. */
  finish(options: { slices: number }): Promise<void>;
  /** Wait for writes in flight and refuse new ones; safe to call twice. The scan stays incomplete. */
  close(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

/** The key in the root group's attributes that holds our progress record. */
export const PROGRESS_ATTRIBUTE = 'xct-sentinel';

const STAGE = 'zarr';
const OME_VERSION = '0.5';
const DEFAULT_CHUNK = 512;
// Grow by a quarter (at least this many slices) so a scan without scan.json does not rewrite three
// zarr.json files per slice; finish() trims the extent to the truth.
const MIN_GROWTH = 8;
const IMAGE_DTYPES: ReadonlySet<string> = new Set(Object.keys(TYPED_ARRAYS));
const AXES = Object.freeze(
  (['z', 'y', 'x'] as const).map((name) => Object.freeze({ name, type: 'space', unit: 'micrometer' })),
);
const PATHS = Object.freeze({ image: '0', mask: 'labels/dendrite/0', prob: 'probabilities/0' });
const DIMENSION_NAMES = ['z', 'y', 'x'];

interface Settings {
  root: string;
  scanId: string;
  width: number;
  height: number;
  expectedSlices: number | undefined;
  scale: [number, number, number];
  imageDtype: Dtype;
  chunk: { y: number; x: number };
  imageCodecs: zarr.CodecMetadata[];
  labelCodecs: zarr.CodecMetadata[];
  durable: boolean;
  model: ZarrModelInfo | undefined;
  signal: AbortSignal | undefined;
}

interface Arrays {
  image: zarr.Array<Dtype, DurableFileStore>;
  mask: zarr.Array<'uint8', DurableFileStore>;
  prob: zarr.Array<'uint8', DurableFileStore>;
}

/** Create (or, for the same scan, reopen and resume) the OME-Zarr store of one scan. */
export async function createZarrScanWriter(options: ZarrScanWriterOptions): Promise<ZarrScanWriter> {
  const settings = normalizeOptions(options);
  const writer = new ScanWriter(settings);
  await writer.open();
  return writer;
}

/** The progress a store records, or undefined when `root` holds no store of ours (yet). */
export async function readZarrScanProgress(root: string): Promise<ZarrScanProgress | undefined> {
  const file = join(root, 'zarr.json');
  const context: ErrorContext = { path: root, stage: STAGE };
  const metadata = await readJson(file).catch((cause: unknown) => {
    throw new OutputError(`cannot read the progress of ${root}`, context, { cause });
  });
  if (metadata === undefined) return undefined;
  const record = objectAt(objectAt(metadata, 'attributes'), PROGRESS_ATTRIBUTE);
  if (record === undefined) return undefined;
  const written = objectAt(record, 'slicesWritten');
  const ranges = written?.['ranges'];
  if (typeof record['scanId'] !== 'string' || !Array.isArray(ranges)) {
    throw new OutputError(`${file}: malformed "${PROGRESS_ATTRIBUTE}" progress record`, context);
  }
  const slices: number[] = [];
  for (const range of ranges) {
    const [first, last] = Array.isArray(range) ? range : [];
    if (!Number.isSafeInteger(first) || !Number.isSafeInteger(last) || first < 0 || last < first) {
      throw new OutputError(`${file}: malformed slice range ${JSON.stringify(range)}`, context);
    }
    for (let z = first; z <= last; z++) slices.push(z);
  }
  return { scanId: record['scanId'], slicesWritten: slices, complete: record['complete'] === true };
}

/** One durable slice read back from a store: what the daemon needs to rebuild its state on resume. */
export interface StoredScanSlice {
  width: number;
  height: number;
  image: TypedArray;
  mask: Uint8Array;
  /** Dendrite probability as stored: uint8, probability × 255. */
  prob: Uint8Array;
}

/** Read slice z of the store at `root` (image, mask, quantized probability). */
export async function readZarrScanSlice(root: string, z: number): Promise<StoredScanSlice> {
  const [image, mask, prob] = await Promise.all([
    readZarrScanPlane(root, z, 'image'),
    readZarrScanPlane(root, z, 'mask'),
    readZarrScanPlane(root, z, 'prob'),
  ]);
  return {
    width: mask.width,
    height: mask.height,
    image: image.data,
    mask: mask.data as Uint8Array,
    prob: prob.data as Uint8Array,
  };
}

/** Read one array's plane z of the store at `root` (what the live view renders, one at a time). */
export async function readZarrScanPlane(
  root: string,
  z: number,
  part: keyof typeof PATHS,
): Promise<{ width: number; height: number; data: TypedArray }> {
  try {
    const array = await zarr.open(zarr.root(new FileSystemStore(root)).resolve(PATHS[part]), {
      kind: 'array',
    });
    const chunk = (await zarr.get(array, [z, null, null])) as unknown as {
      data: TypedArray;
      shape: number[];
    };
    const [height, width] = chunk.shape as [number, number];
    return { width, height, data: chunk.data };
  } catch (cause) {
    throw new OutputError(
      `cannot read slice ${z} back from ${root}`,
      { path: root, slice: z, stage: STAGE },
      { cause },
    );
  }
}

class ScanWriter implements ZarrScanWriter {
  readonly #s: Settings;
  readonly #store: DurableFileStore;
  readonly #written = new Set<number>();
  readonly #inflight = new Set<Promise<void>>();
  #arrays: Arrays | undefined;
  #capacity = 0;
  #complete = false;
  #finishing = false;
  #closing: Promise<void> | undefined;
  // Metadata changes (growth, progress, finish) run one at a time so no zarr.json rewrite is lost.
  #lock: Promise<void> = Promise.resolve();

  constructor(settings: Settings) {
    this.#s = settings;
    this.#store = new DurableFileStore(settings.root, settings.durable);
  }

  get root(): string {
    return this.#s.root;
  }

  get scanId(): string {
    return this.#s.scanId;
  }

  get capacity(): number {
    return this.#capacity;
  }

  slicesWritten(): number[] {
    return [...this.#written].sort((a, b) => a - b);
  }

  /** Lay out the store, or resume the one a previous run of this scan left. */
  async open(): Promise<void> {
    const { root, scanId, signal } = this.#s;
    try {
      signal?.throwIfAborted();
      const previous = await readZarrScanProgress(root);
      let capacity = this.#s.expectedSlices ?? 0;
      if (previous !== undefined) {
        if (previous.scanId !== scanId) {
          throw new OutputError(
            `${root} holds scan ${previous.scanId}, not ${scanId}; remove it or write elsewhere`,
            this.#context(),
          );
        }
        capacity = Math.max(capacity, await this.#checkLayout());
        await removeStaleTemps(root);
        for (const z of previous.slicesWritten) this.#written.add(z);
        capacity = Math.max(capacity, ...previous.slicesWritten.map((z) => z + 1));
      } else if ((await readJson(join(root, 'zarr.json'))) !== undefined) {
        // A Zarr group that is not ours (no progress record): never overwrite someone else's data.
        throw new OutputError(
          `${root} holds a Zarr store this daemon did not write; write elsewhere`,
          this.#context(),
        );
      }
      await this.#store.ensureDir(this.#store.root);
      const scale = this.#s.scale;
      await Promise.all([
        this.#writeArrays(capacity),
        this.#writeGroup('labels', { ome: { version: OME_VERSION, labels: ['dendrite'] } }),
        this.#writeGroup('labels/dendrite', {
          ome: {
            version: OME_VERSION,
            multiscales: multiscales('dendrite', scale),
            'image-label': {
              colors: [{ 'label-value': 1, rgba: [255, 0, 0, 255] }],
              source: { image: '../../' },
            },
          },
        }),
        this.#writeGroup('probabilities', {
          ome: { version: OME_VERSION, multiscales: multiscales('dendrite probability', scale) },
          // Readers need this to turn the stored uint8 back into a probability.
          [PROGRESS_ATTRIBUTE]: { quantity: 'dendrite probability', scale: 1 / 255 },
        }),
      ]);
      // The root group goes last: its zarr.json is what marks the store as usable and resumable.
      await this.#writeRoot();
    } catch (cause) {
      throw this.#wrap(cause, `cannot create the Zarr store`);
    }
  }

  async writeSlice(z: number, slice: ZarrScanSlice): Promise<void> {
    if (this.#closing !== undefined || this.#finishing) {
      const state = this.#closing !== undefined ? 'closed' : 'finished';
      throw new OutputError(
        `scan ${this.scanId}: writer ${state}, cannot write slice ${z}`,
        this.#context(z),
      );
    }
    const prob = this.#validate(z, slice);
    const task = this.#write(z, slice.image, slice.mask, prob);
    this.#inflight.add(task);
    const settle = (): void => {
      this.#inflight.delete(task);
    };
    task.then(settle, settle);
    await task;
  }

  async finish({ slices }: { slices: number }): Promise<void> {
    if (!Number.isSafeInteger(slices) || slices < 0) {
      throw new OutputError(
        `scan ${this.scanId}: finish needs a slice count ≥ 0, got ${slices}`,
        this.#context(),
      );
    }
    if (this.#closing !== undefined) {
      throw new OutputError(`scan ${this.scanId}: writer closed, cannot finish`, this.#context());
    }
    this.#finishing = true;
    await Promise.allSettled([...this.#inflight]);
    try {
      await this.#exclusive(async () => {
        // Shrink the extent before dropping chunks, so no reader ever sees a shape whose chunks are gone.
        await this.#writeArrays(slices);
        await this.#removeChunksFrom(slices);
        for (const z of this.#written) if (z >= slices) this.#written.delete(z);
        this.#complete = true;
        await this.#writeRoot();
      });
    } catch (cause) {
      throw this.#wrap(cause, `cannot finish the Zarr store`);
    }
  }

  close(): Promise<void> {
    this.#closing ??= Promise.allSettled([...this.#inflight]).then(() => undefined);
    return this.#closing;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  /** Check the slice; returns the probability quantized to uint8. */
  #validate(z: number, { image, mask, prob }: ZarrScanSlice): Uint8Array {
    const { width, height, imageDtype } = this.#s;
    const pixels = width * height;
    const fail = (what: string): never => {
      throw new OutputError(`scan ${this.scanId}, slice ${z}: ${what}`, this.#context(z));
    };
    if (!Number.isSafeInteger(z) || z < 0) fail(`slice index must be an integer ≥ 0`);
    let dtype: string;
    try {
      dtype = dtypeOf(image);
    } catch {
      dtype = Object.prototype.toString.call(image);
    }
    if (dtype !== imageDtype) fail(`image is ${dtype}, the store holds ${imageDtype}`);
    if (image.length !== pixels) fail(`image has ${image.length} pixels, expected ${width}x${height}`);
    if (!(mask instanceof Uint8Array)) fail(`mask must be a Uint8Array`);
    if (mask.length !== pixels) fail(`mask has ${mask.length} pixels, expected ${width}x${height}`);
    if (!(prob instanceof Float32Array || prob instanceof Uint8Array))
      fail(`prob must be a Float32Array (0–1) or a Uint8Array (×255)`);
    if (prob.length !== pixels) fail(`prob has ${prob.length} pixels, expected ${width}x${height}`);
    return prob instanceof Uint8Array ? prob : quantizeProbability(prob);
  }

  async #write(z: number, image: TypedArray, mask: Uint8Array, prob: Uint8Array): Promise<void> {
    const { width, height, signal } = this.#s;
    try {
      signal?.throwIfAborted();
      await this.#exclusive(() => this.#ensureCapacity(z));
      const arrays = this.#arrays!;
      const selection = [z, null, null];
      const shape = [height, width];
      const stride = [width, 1];
      // allSettled, not all: a failed array must not leave its siblings writing after we report.
      const results = await Promise.allSettled([
        zarr.set(arrays.image, selection, { data: image, shape, stride }, { signal }),
        zarr.set(arrays.mask, selection, { data: mask, shape, stride }, { signal }),
        zarr.set(arrays.prob, selection, { data: prob, shape, stride }, { signal }),
      ]);
      for (const result of results) if (result.status === 'rejected') throw result.reason;
      await this.#store.flush();
      await this.#exclusive(async () => {
        this.#written.add(z);
        await this.#writeRoot();
      });
    } catch (cause) {
      throw this.#wrap(cause, `cannot write slice ${z}`, z);
    }
  }

  async #ensureCapacity(z: number): Promise<void> {
    if (z < this.#capacity) return;
    await this.#writeArrays(
      Math.max(z + 1, this.#capacity + Math.max(MIN_GROWTH, Math.ceil(this.#capacity / 4))),
    );
  }

  /** (Re)write the three arrays' zarr.json with z extent `capacity`. */
  async #writeArrays(capacity: number): Promise<void> {
    const { width, height, chunk, imageDtype, imageCodecs, labelCodecs } = this.#s;
    const at = zarr.root(this.#store);
    const common = {
      shape: [capacity, height, width],
      chunkShape: [1, chunk.y, chunk.x],
      fillValue: 0,
      dimensionNames: DIMENSION_NAMES,
    };
    const [image, mask, prob] = await Promise.all([
      zarr.create(at.resolve(PATHS.image), { ...common, dtype: imageDtype, codecs: imageCodecs }),
      zarr.create(at.resolve(PATHS.mask), { ...common, dtype: 'uint8', codecs: labelCodecs }),
      zarr.create(at.resolve(PATHS.prob), { ...common, dtype: 'uint8', codecs: labelCodecs }),
    ]);
    this.#arrays = { image, mask, prob };
    this.#capacity = capacity;
  }

  async #writeGroup(path: string, attributes: Record<string, unknown>): Promise<void> {
    await zarr.create(zarr.root(this.#store).resolve(path), { attributes });
  }

  /** Rewrite the root group: the OME image metadata plus our progress record; durable on return. */
  async #writeRoot(): Promise<void> {
    const { scanId, scale, model } = this.#s;
    // Everything the record may claim must be on disk before the record is.
    await this.#store.flush();
    await this.#writeGroup('/', {
      ome: { version: OME_VERSION, multiscales: multiscales(scanId, scale) },
      [PROGRESS_ATTRIBUTE]: {
        scanId,
        slicesWritten: { count: this.#written.size, ranges: toRanges(this.slicesWritten()) },
        complete: this.#complete,
        model: model ?? null,
        updatedAt: new Date().toISOString(),
      },
    });
    await this.#store.flush();
  }

  /**
   * Refuse to resume into a store whose arrays were laid out differently (their chunks would decode as
   * garbage); returns the z extent they have now.
   */
  async #checkLayout(): Promise<number> {
    const { width, height, chunk, imageDtype, imageCodecs, labelCodecs } = this.#s;
    let extent = 0;
    for (const [path, dtype, codecs] of [
      [PATHS.image, imageDtype, imageCodecs],
      [PATHS.mask, 'uint8', labelCodecs],
      [PATHS.prob, 'uint8', labelCodecs],
    ] as const) {
      const file = join(this.#s.root, path, 'zarr.json');
      const meta = await readJson(file);
      const shape = meta?.['shape'];
      const chunkShape = objectAt(objectAt(meta, 'chunk_grid'), 'configuration')?.['chunk_shape'];
      const codecList = meta?.['codecs'];
      const codecNames = Array.isArray(codecList)
        ? codecList.map((c: unknown) => fieldOf(c, 'name'))
        : codecList;
      const actual = JSON.stringify([
        meta?.['data_type'],
        Array.isArray(shape) ? shape.slice(1) : shape,
        chunkShape,
        codecNames,
      ]);
      const wanted = JSON.stringify([
        dtype,
        [height, width],
        [1, chunk.y, chunk.x],
        codecs.map((c) => c.name),
      ]);
      if (actual !== wanted) {
        throw new OutputError(
          `${file} was written with another layout (dtype, size, chunks, codecs: ${actual}, now ${wanted}); ` +
            `remove the store or write elsewhere`,
          this.#context(),
        );
      }
      extent = Math.max(extent, Array.isArray(shape) && typeof shape[0] === 'number' ? shape[0] : 0);
    }
    return extent;
  }

  /** Delete the chunks of slices ≥ `slices` (a shrink leaves them unreachable; zarr's resize drops them too). */
  async #removeChunksFrom(slices: number): Promise<void> {
    await Promise.all(
      Object.values(PATHS).map(async (path) => {
        const dir = join(this.#s.root, path, 'c');
        const entries = await readdir(dir).catch((err: unknown) => {
          if (errorCode(err) === 'ENOENT') return [];
          throw err;
        });
        const doomed = entries.filter((name) => /^\d+$/.test(name) && Number(name) >= slices);
        if (doomed.length === 0) return;
        await Promise.all(doomed.map((name) => rm(join(dir, name), { recursive: true, force: true })));
        this.#store.markChanged(dir);
      }),
    );
    this.#store.forgetDirs();
  }

  #exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#lock.then(fn);
    this.#lock = run.then(
      () => undefined,
      () => undefined,
    );
    return run;
  }

  #context(slice?: number): ErrorContext {
    const context: ErrorContext = { path: this.#s.root, scanId: this.#s.scanId, stage: STAGE };
    if (slice !== undefined) context.slice = slice;
    return context;
  }

  /** Our own errors and aborts pass through; anything else becomes an OutputError naming store and scan. */
  #wrap(cause: unknown, what: string, slice?: number): unknown {
    if (isXctError(cause)) return cause;
    const { signal } = this.#s;
    if (signal?.aborted && cause === signal.reason) return cause;
    return new OutputError(`scan ${this.scanId}: ${what} in ${this.root}`, this.#context(slice), { cause });
  }
}

function normalizeOptions(options: ZarrScanWriterOptions): Settings {
  const { root, scanId } = options;
  const fail = (option: string, what: string): never => {
    throw new OutputError(`zarr writer option ${option}: ${what}`, {
      option,
      path: root,
      scanId,
      stage: STAGE,
    });
  };
  if (typeof root !== 'string' || root === '') fail('root', 'must be a non-empty path');
  if (typeof scanId !== 'string' || scanId === '') fail('scanId', 'must be a non-empty string');
  const positive = (option: string, value: unknown): number => {
    if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 1) {
      fail(option, `must be a positive integer, got ${String(value)}`);
    }
    return value as number;
  };
  const width = positive('width', options.width);
  const height = positive('height', options.height);
  const { expectedSlices } = options;
  if (expectedSlices !== undefined && (!Number.isSafeInteger(expectedSlices) || expectedSlices < 0)) {
    fail('expectedSlices', `must be an integer ≥ 0, got ${expectedSlices}`);
  }
  const voxel =
    typeof options.voxelSizeUm === 'number'
      ? { z: options.voxelSizeUm, y: options.voxelSizeUm, x: options.voxelSizeUm }
      : options.voxelSizeUm;
  const scale = (['z', 'y', 'x'] as const).map((axis) => {
    const size = voxel?.[axis];
    if (typeof size !== 'number' || !Number.isFinite(size) || size <= 0) {
      fail(`voxelSizeUm.${axis}`, `must be a positive number of micrometres, got ${String(size)}`);
    }
    return size as number;
  }) as [number, number, number];
  if (!IMAGE_DTYPES.has(options.imageDtype)) {
    fail('imageDtype', `must be one of ${[...IMAGE_DTYPES].join(', ')}, got ${String(options.imageDtype)}`);
  }
  const chunk = {
    y: positive('chunk.y', options.chunk?.y ?? Math.min(height, DEFAULT_CHUNK)),
    x: positive('chunk.x', options.chunk?.x ?? Math.min(width, DEFAULT_CHUNK)),
  };
  const compression = options.compression ?? 'gzip';
  const imageCompression = options.imageCompression ?? 'none';
  for (const [option, value] of [
    ['compression', compression],
    ['imageCompression', imageCompression],
  ] as const) {
    if (value !== 'none' && value !== 'gzip') fail(option, `must be none or gzip, got ${String(value)}`);
  }
  const level = options.gzipLevel ?? DEFAULT_GZIP_LEVEL;
  if (!Number.isSafeInteger(level) || level < 0 || level > 9) fail('gzipLevel', `must be 0–9, got ${level}`);
  const codecs = (kind: ZarrCompression): zarr.CodecMetadata[] => {
    // Always an explicit bytes codec: zarrita writes "codecs": [] otherwise, which other readers reject.
    const list: zarr.CodecMetadata[] = [{ name: 'bytes', configuration: { endian: 'little' } }];
    if (kind === 'gzip') list.push({ name: 'gzip', configuration: { level } });
    return list;
  };
  return {
    root,
    scanId,
    width,
    height,
    expectedSlices,
    scale,
    imageDtype: options.imageDtype,
    chunk,
    imageCodecs: codecs(imageCompression),
    labelCodecs: codecs(compression),
    durable: options.durable ?? true,
    model: options.model,
    signal: options.signal,
  };
}

function multiscales(name: string, scale: readonly number[]): unknown[] {
  return [
    {
      name,
      axes: AXES,
      datasets: [{ path: '0', coordinateTransformations: [{ type: 'scale', scale: [...scale] }] }],
    },
  ];
}

/** Ascending slice numbers as inclusive [first, last] runs: a 2000-slice scan stays one pair. */
function toRanges(sorted: readonly number[]): [number, number][] {
  const ranges: [number, number][] = [];
  for (const z of sorted) {
    const last = ranges[ranges.length - 1];
    if (last !== undefined && z === last[1] + 1) last[1] = z;
    else ranges.push([z, z]);
  }
  return ranges;
}

/** The parsed JSON object in `file`, or undefined when there is no such file. */
async function readJson(file: string): Promise<Record<string, unknown> | undefined> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    // ENOTDIR: a parent is a regular file, so the store cannot exist there either.
    if (errorCode(err) === 'ENOENT' || errorCode(err) === 'ENOTDIR') return undefined;
    throw err;
  }
  const value: unknown = JSON.parse(text);
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new SyntaxError(`${file}: not a JSON object`);
  }
  return value as Record<string, unknown>;
}

function fieldOf(value: unknown, key: string): unknown {
  return typeof value === 'object' && value !== null ? (value as Record<string, unknown>)[key] : undefined;
}

function objectAt(value: unknown, key: string): Record<string, unknown> | undefined {
  const field = fieldOf(value, key);
  return typeof field === 'object' && field !== null ? (field as Record<string, unknown>) : undefined;
}

function errorCode(err: unknown): unknown {
  return typeof err === 'object' && err !== null && 'code' in err ? err.code : undefined;
}
