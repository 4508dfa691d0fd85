import * as ort from 'onnxruntime-node';
import { ModelError } from '../errors.ts';
import { type Logger, silentLogger } from '../log.ts';

/** Execution providers a user may ask for. */
export const PROVIDERS = ['cpu', 'cuda', 'tensorrt', 'webgpu'] as const;
export type Provider = (typeof PROVIDERS)[number];

export interface SessionOptions {
  provider?: Provider;
  /** Intra-op threads; 0 lets ONNX Runtime choose (one per core). */
  threads?: number;
  log?: Logger;
}

export interface OpenedSession {
  session: ort.InferenceSession;
  /** The provider that actually runs the model. */
  provider: Provider;
  /** Why the requested provider was not used, when it was not. */
  fallbackReason?: string;
}

/**
 * Open an ONNX Runtime session on the requested provider, falling back to CPU with a logged reason
 * when that provider cannot start: onnxruntime-node throws rather than falling back by itself.
 */
export async function openOnnxSession(
  model: Uint8Array,
  label: { name: string; path: string },
  options: SessionOptions = {},
): Promise<OpenedSession> {
  const provider = options.provider ?? 'cpu';
  const log = options.log ?? silentLogger;
  const base: ort.InferenceSession.SessionOptions = {
    graphOptimizationLevel: 'all',
    intraOpNumThreads: options.threads ?? 0,
    interOpNumThreads: 1,
  };
  if (provider !== 'cpu') {
    try {
      const session = await ort.InferenceSession.create(model, { ...base, executionProviders: [provider] });
      return { session, provider };
    } catch (err) {
      const reason = err instanceof Error ? err.message.split('\n')[0] : String(err);
      log.warn(
        { model: label.name, requested: provider, reason },
        `execution provider ${provider} unavailable; using cpu`,
      );
      const opened = await openCpu(model, label, base);
      return { ...opened, fallbackReason: `${provider}: ${reason}` };
    }
  }
  return openCpu(model, label, base);
}

async function openCpu(
  model: Uint8Array,
  label: { name: string; path: string },
  base: ort.InferenceSession.SessionOptions,
): Promise<OpenedSession> {
  try {
    const session = await ort.InferenceSession.create(model, { ...base, executionProviders: ['cpu'] });
    return { session, provider: 'cpu' };
  } catch (cause) {
    throw new ModelError(
      `model ${label.name}: ONNX Runtime cannot load ${label.path}`,
      { model: label.name, path: label.path },
      { cause },
    );
  }
}
