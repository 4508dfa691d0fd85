import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { basename, dirname, extname, join, resolve } from 'node:path';
import { ModelError } from '../errors.ts';
import type { Logger } from '../log.ts';
import type { Normalization } from '../slices/normalize-slice.ts';
import { MODELS_DIR, type ModelCard, type OnnxModelCard, readModelCard } from './model-card.ts';
import { type OnnxRunner, openOnnxRunner } from './onnx-runner.ts';
import type { Provider } from './open-onnx-session.ts';

/** What an alert says about the model that produced it. */
export interface ModelIdentity {
  name: string;
  version: string;
  sha256: string;
  provider: Provider;
}

/** A loaded model: patches in, dendrite probabilities out. */
export interface SegmentationModel {
  readonly card: ModelCard;
  readonly identity: ModelIdentity;
  readonly patchSize: number;
  readonly threshold: number;
  readonly normalization: Normalization;
  /** Each neighbouring slice's share of the model's input (the card's `neighbourWeight`; 0: none). */
  readonly neighbourWeight: number;
  /**
   * Planes per patch the model takes: 1, or 3 for the slices z − 1, z, z + 1 (the card's
   * `inputChannels`). `predict` takes `count` patches of `inputChannels` planes each.
   */
  readonly inputChannels: number;
  /** Why the requested execution provider is not the one in use, when it is not. */
  readonly fallbackReason: string | undefined;
  /** ONNX Runtime sessions computing side by side: how many `predict` calls are worth having out. */
  readonly sessions: number;
  /** Intra-op threads per session (0: ONNX Runtime's choice, one per physical core). */
  readonly threads: number;
  /** `count` patches of inputChannels × patchSize² normalized pixels → as many probability maps. */
  predict(patches: Float32Array, count: number): Promise<Float32Array>;
  /**
   * Hand back a result of `predict` that the caller is finished with: a later `predict` may write its
   * output there instead of allocating one (a megabyte per batch of 16 less for the collector).
   */
  recycle?(probs: Float32Array): void;
  /** Release native sessions; safe to call twice. */
  close(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

/** Which arithmetic the model runs in: its FP32 weights, or the INT8 model shipped beside them. */
export const PRECISIONS = ['fp32', 'int8'] as const;
export type Precision = (typeof PRECISIONS)[number];

export interface LoadModelOptions {
  modelsDir?: string;
  provider?: Provider;
  /** Intra-op threads of all sessions together, shared equally among them; 0 (default): one per core. */
  threads?: number;
  /**
   * Sessions computing side by side, each in its own thread; 0 (default): 2 on a CPU given 2 threads
   * or more, else 1. Two single-threaded sessions on two cores compute about 12% more patches per
   * second than one two-threaded session, and they lose less to the daemon's own work: one session's
   * threads wait for each other at every operator, so a core taken away for a moment stalls both.
   */
  sessions?: number;
  log?: Logger;
  /**
   * Where each ONNX Runtime session runs: `worker` (default) keeps the caller's thread free while the
   * model computes; `inline` runs it on the caller's thread (bare-inference measurements; one session).
   */
  thread?: 'worker' | 'inline';
}

/**
 * The sessions and intra-op threads per session that `options` ask for. `threads` counts all
 * sessions' threads together (0: one per core); automatic sessions are 2 on a CPU when there are 2
 * threads or more, else 1; each session gets an equal share of the threads, at least 1.
 */
export function sessionLayout(options: LoadModelOptions): { sessions: number; threads: number } {
  const threads = options.threads ?? 0;
  const total = threads > 0 ? threads : availableParallelism();
  const requested = options.sessions ?? 0;
  const sessions =
    options.thread === 'inline'
      ? 1
      : requested > 0
        ? requested
        : (options.provider ?? 'cpu') === 'cpu'
          ? Math.min(2, total)
          : 1;
  // One session on all cores: ONNX Runtime's own choice (0), which counts physical cores.
  if (sessions === 1) return { sessions, threads };
  return { sessions, threads: Math.max(1, Math.floor(total / sessions)) };
}

/** How a layout reads in a log line or report: `2 sessions × 1 thread`, `1 session × auto threads`. */
export function describeLayout(layout: { sessions: number; threads: number }): string {
  const { sessions, threads } = layout;
  return `${sessions} session${sessions === 1 ? '' : 's'} × ${threads || 'auto'} thread${threads === 1 ? '' : 's'}`;
}

/**
 * Load a model by name (`tnet`, `unet`, `enet`) or by the path of its card (`DIR/tnet.json`), checking
 * each ONNX file against its card's sha256.
 */
export async function loadModel(model: string, options: LoadModelOptions = {}): Promise<SegmentationModel> {
  const { name, modelsDir } = modelRef(model, options.modelsDir);
  const card = await readModelCard(name, modelsDir);
  if (card.kind === 'onnx') return loadOnnx(card, modelsDir, options);
  const members: SegmentationModel[] = [];
  try {
    for (const m of card.members) {
      const member = await loadModel(m.name, options);
      if (member.card.kind !== 'onnx')
        throw new ModelError(`ensemble ${name}: member ${m.name} is itself an ensemble`, { model: name });
      if (member.patchSize !== card.patchSize)
        throw new ModelError(
          `ensemble ${name}: member ${m.name} takes ${member.patchSize}px patches, not ${card.patchSize}`,
          { model: name },
        );
      members.push(member);
    }
  } catch (err) {
    await Promise.all(members.map((m) => m.close()));
    throw err;
  }
  return new EnsembleModel(
    card,
    members,
    card.members.map((m) => m.weight),
  );
}

async function loadOnnx(
  card: OnnxModelCard,
  modelsDir: string,
  options: LoadModelOptions,
): Promise<SegmentationModel> {
  const path = join(modelsDir, card.file);
  let bytes: Uint8Array;
  try {
    bytes = await readFile(path);
  } catch (cause) {
    throw new ModelError(`model ${card.name}: missing file ${path}`, { model: card.name, path }, { cause });
  }
  const sha256 = createHash('sha256').update(bytes).digest('hex');
  if (sha256 !== card.sha256)
    throw new ModelError(
      `model ${card.name}: checksum mismatch for ${path}: the card says sha256 ${card.sha256}, the file is ${sha256} (corrupt or replaced file)`,
      { model: card.name, path },
    );
  const layout = sessionLayout(options);
  const runner = await openOnnxRunner(bytes, { name: card.name, path }, { ...options, ...layout });
  return new OnnxModel(
    card,
    runner,
    { name: card.name, version: card.version, sha256, provider: runner.provider },
    runner.fallbackReason,
    layout.threads,
  );
}

class OnnxModel implements SegmentationModel {
  readonly patchSize: number;
  readonly threshold: number;
  readonly normalization: Normalization;
  readonly neighbourWeight: number;
  readonly inputChannels: number;
  readonly sessions: number;
  private closed = false;
  /** Results handed back by `recycle`, each its whole buffer. */
  private readonly spare: Float32Array[] = [];

  constructor(
    readonly card: OnnxModelCard,
    private readonly runner: OnnxRunner,
    readonly identity: ModelIdentity,
    readonly fallbackReason: string | undefined,
    readonly threads: number,
  ) {
    this.sessions = runner.concurrency;
    this.patchSize = card.patchSize;
    this.threshold = card.threshold;
    this.normalization = card.normalization;
    this.neighbourWeight = card.neighbourWeight ?? 0;
    this.inputChannels = card.inputChannels ?? 1;
  }

  async predict(patches: Float32Array, count: number): Promise<Float32Array> {
    if (this.closed) throw new ModelError(`model ${this.card.name} is closed`, { model: this.card.name });
    const p = this.patchSize;
    const values = count * this.inputChannels * p * p;
    if (patches.length < values)
      throw new RangeError(`${count} patches need ${values} values, got ${patches.length}`);
    // One probability map per patch, the patch's shape: ONNX Runtime writes it in place, into a
    // recycled result when one is large enough.
    const shape = [count, 1, p, p];
    const at = this.spare.findIndex((b) => b.length >= count * p * p);
    const into = at >= 0 ? this.spare.splice(at, 1)[0] : undefined;
    return this.runner.run(
      patches.subarray(0, values),
      [count, this.inputChannels, p, p],
      { input: this.card.input, output: this.card.output },
      { dims: shape, ...(into && { into }) },
    );
  }

  recycle(probs: Float32Array): void {
    // Whole buffers only: a result is a view from the start of its buffer.
    if (probs.byteOffset !== 0 || this.spare.length >= 2 * this.sessions + 2) return;
    this.spare.push(new Float32Array(probs.buffer as ArrayBuffer));
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.runner.release();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

class EnsembleModel implements SegmentationModel {
  readonly identity: ModelIdentity;
  readonly patchSize: number;
  readonly threshold: number;
  readonly normalization: Normalization;
  readonly neighbourWeight: number;
  readonly inputChannels: number;
  readonly fallbackReason: string | undefined;
  readonly sessions: number;
  readonly threads: number;
  private readonly weights: number[];

  constructor(
    readonly card: ModelCard,
    private readonly members: SegmentationModel[],
    weights: number[],
  ) {
    const total = weights.reduce((a, b) => a + b, 0);
    this.weights = weights.map((w) => w / total);
    // The ensemble is its members and their weights: its checksum covers exactly that.
    const sha256 = createHash('sha256')
      .update(JSON.stringify(members.map((m, i) => [m.identity.name, m.identity.sha256, this.weights[i]])))
      .digest('hex');
    const provider = members[0]?.identity.provider ?? 'cpu';
    this.identity = { name: card.name, version: card.version, sha256, provider };
    this.patchSize = card.patchSize;
    this.threshold = card.threshold;
    this.normalization = card.normalization;
    this.neighbourWeight = card.neighbourWeight ?? 0;
    // The ensemble takes the most planes any member takes; a one-plane member gets them blended.
    this.inputChannels = Math.max(...members.map((m) => m.inputChannels));
    this.fallbackReason = members.map((m) => m.fallbackReason).find((r) => r !== undefined);
    // Each call runs the members in turn, so as many calls are worth having out as the least of them takes.
    this.sessions = Math.min(...members.map((m) => m.sessions));
    this.threads = members[0]?.threads ?? 0;
  }

  async predict(patches: Float32Array, count: number): Promise<Float32Array> {
    const out = new Float32Array(count * this.patchSize * this.patchSize);
    // Members run one after the other: each already uses every core for its own batch.
    // A one-plane member of a three-plane ensemble gets the planes blended, computed once per call.
    const blended = this.members.some((m) => m.inputChannels !== this.inputChannels)
      ? blendPlanes(patches, count, this.patchSize, this.neighbourWeight)
      : undefined;
    for (const [i, member] of this.members.entries()) {
      const own = member.inputChannels === this.inputChannels ? patches : (blended as Float32Array);
      const probs = await member.predict(own, count);
      const w = this.weights[i] as number;
      for (let k = 0; k < out.length; k++) out[k] = (out[k] as number) + w * (probs[k] as number);
      member.recycle?.(probs);
    }
    return out;
  }

  async close(): Promise<void> {
    await Promise.all(this.members.map((m) => m.close()));
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

/**
 * Three-plane patches (z − 1, z, z + 1, scaled by the blend's range) as the one-plane patches a
 * one-channel model takes: (w, 1 − 2w, w) of the planes is exactly the normalized blend, since the
 * scaling is affine (`neighbourChannels`).
 */
export function blendPlanes(
  patches: Float32Array,
  count: number,
  patchSize: number,
  weight: number,
): Float32Array {
  const area = patchSize * patchSize;
  const out = new Float32Array(count * area);
  const self = 1 - 2 * weight;
  for (let k = 0; k < count; k++) {
    const base = 3 * k * area;
    for (let i = 0; i < area; i++)
      out[k * area + i] =
        self * (patches[base + area + i] as number) +
        weight * ((patches[base + i] as number) + (patches[base + 2 * area + i] as number));
  }
  return out;
}

/**
 * The model to load for `precision`: NAME itself for fp32, NAME-int8 for int8. A card path names one
 * file, whose precision is its own: asking it for int8 is refused rather than silently ignored.
 */
export function precisionName(model: string, precision: Precision = 'fp32'): string {
  if (precision === 'fp32' || model.endsWith('-int8')) return model;
  if (model.toLowerCase().endsWith('.json'))
    throw new ModelError(
      `--precision int8: ${model} is a model card; give the INT8 model's own card instead`,
      { model },
    );
  return `${model}-int8`;
}

/**
 * Where a model is: a name (`tnet`) in `modelsDir` (the shipped models by default), or the path of
 * a model card (`runs/tuned/tnet.json`, one a user trained or fine-tuned): its folder then holds
 * the card and its ONNX file, and the card's name is the file's.
 */
export function modelRef(model: string, modelsDir?: string): { name: string; modelsDir: string } {
  if (model.toLowerCase().endsWith('.json')) {
    const path = resolve(model);
    return { name: basename(path, extname(path)), modelsDir: dirname(path) };
  }
  return { name: model, modelsDir: modelsDir ?? MODELS_DIR };
}
