import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ModelError } from '../errors.ts';
import type { Normalization } from '../slices/normalize-slice.ts';

/** The shipped models: `models/` at the package root, whether running from `src/` or `dist/`. */
export const MODELS_DIR = fileURLToPath(new URL('../../models/', import.meta.url));

/** Names a user may pass to `--model`. */
export const MODEL_NAMES = ['tnet', 'unet', 'enet'] as const;
export type ModelName = (typeof MODEL_NAMES)[number];

interface CardBase {
  name: string;
  version: string;
  description: string;
  patchSize: number;
  normalization: Normalization;
  /**
   * Share of each neighbouring slice (z − 1, z + 1) in the model's input; the slice keeps
   * 1 − 2w (`blendNeighbours`). 0 or absent: the slice alone. Chosen on validation scans.
   */
  neighbourWeight?: number;
  /**
   * 1 or absent: one input plane (the slice, blended as `neighbourWeight` says). 3: the slices
   * z − 1, z and z + 1 as three planes, each scaled by the blended slice's normalization range
   * (`neighbourChannels`).
   */
  inputChannels?: number;
  /** Probability at or above which a voxel is called dendrite. */
  threshold: number;
  metrics?: Record<string, unknown>;
}

/** A card for one ONNX file. */
export interface OnnxModelCard extends CardBase {
  kind: 'onnx';
  file: string;
  sha256: string;
  input: string;
  output: string;
  architecture: { family: string; parameters: number; config: Record<string, unknown> };
  training: Record<string, unknown>;
}

/** A card for a weighted average of other models' probabilities, run at inference time. */
export interface EnsembleModelCard extends CardBase {
  kind: 'ensemble';
  members: { name: string; weight: number }[];
}

export type ModelCard = OnnxModelCard | EnsembleModelCard;

/** Read and check `models/<name>.json`. */
export async function readModelCard(name: string, modelsDir: string = MODELS_DIR): Promise<ModelCard> {
  const path = join(modelsDir, `${name}.json`);
  if (!/^[\w-]+$/.test(name))
    throw new ModelError(`unknown model "${name}": model names are letters, digits, '-' and '_'`, {
      model: name,
    });
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (cause) {
    throw new ModelError(
      `unknown model "${name}": no model card at ${path} (shipped: ${MODEL_NAMES.join(', ')})`,
      { model: name, path },
      { cause },
    );
  }
  let card: unknown;
  try {
    card = JSON.parse(text);
  } catch (cause) {
    throw new ModelError(`model card ${path} is not valid JSON`, { model: name, path }, { cause });
  }
  return checkCard(card, name, path);
}

function checkCard(card: unknown, name: string, path: string): ModelCard {
  const fail = (why: string): never => {
    throw new ModelError(`model card ${path}: ${why}`, { model: name, path });
  };
  if (typeof card !== 'object' || card === null) return fail('not a JSON object');
  const c = card as Record<string, unknown>;
  if (c.name !== name) fail(`"name" is ${JSON.stringify(c.name)}, expected "${name}"`);
  if (!(typeof c.patchSize === 'number' && Number.isInteger(c.patchSize) && c.patchSize > 0))
    fail('"patchSize" must be a positive integer');
  if (!(typeof c.threshold === 'number' && c.threshold > 0 && c.threshold < 1))
    fail('"threshold" must be in (0, 1)');
  const n = c.normalization as Partial<Normalization> | undefined;
  if (n?.method !== 'slice-percentile' || typeof n.low !== 'number' || typeof n.high !== 'number')
    fail('"normalization" must be {"method": "slice-percentile", "low": number, "high": number}');
  const w = c.neighbourWeight;
  if (w !== undefined && !(typeof w === 'number' && w >= 0 && w <= 1 / 3))
    fail('"neighbourWeight" must be a number in [0, 1/3]');
  if (c.inputChannels !== undefined && c.inputChannels !== 1 && c.inputChannels !== 3)
    fail('"inputChannels" must be 1 or 3');
  if (c.kind === 'onnx') {
    if (typeof c.file !== 'string' || !/^[\w.-]+\.onnx$/.test(c.file))
      fail('"file" must name an .onnx file beside the card');
    if (typeof c.sha256 !== 'string' || !/^[0-9a-f]{64}$/.test(c.sha256))
      fail('"sha256" must be 64 hex digits');
    if (typeof c.input !== 'string' || typeof c.output !== 'string')
      fail('"input" and "output" must name the graph tensors');
  } else if (c.kind === 'ensemble') {
    const members = c.members as { name?: unknown; weight?: unknown }[] | undefined;
    if (!Array.isArray(members) || members.length < 2) fail('"members" must list at least two models');
    for (const m of members ?? [])
      if (typeof m.name !== 'string' || typeof m.weight !== 'number' || !(m.weight > 0))
        fail('each member needs a "name" and a "weight" > 0');
  } else fail(`"kind" must be "onnx" or "ensemble", got ${JSON.stringify(c.kind)}`);
  return c as unknown as ModelCard;
}

/** SHA-256 of a file, hex; streamed so a large model is not read twice into memory. */
export async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}
