/**
 * Which shared libraries an execution provider needs, and which of them this machine lacks, so that
 * a `--provider` that cannot start says what to install instead of ONNX Runtime's "Failed to load
 * shared library". onnxruntime-node 1.30's CUDA and TensorRT providers are built against CUDA 12
 * and cuDNN 9 and are not in its npm package (its install script fetches them with
 * ONNXRUNTIME_NODE_INSTALL=cuda12); its WebGPU provider is built in and needs Vulkan on Linux.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import type { Provider } from './open-onnx-session.ts';

/** onnxruntime-node's own provider libraries, in its package's bin folder. */
const ORT_FILES: Partial<Record<Provider, string[]>> = {
  cuda: ['libonnxruntime_providers_shared.so', 'libonnxruntime_providers_cuda.so'],
  tensorrt: [
    'libonnxruntime_providers_shared.so',
    'libonnxruntime_providers_cuda.so',
    'libonnxruntime_providers_tensorrt.so',
  ],
};

/** The system's libraries each provider loads (sonames). */
const CUDA_12 = [
  'libcudart.so.12',
  'libcublas.so.12',
  'libcublasLt.so.12',
  'libcufft.so.11',
  'libcurand.so.10',
  'libcudnn.so.9',
];
const SYSTEM_LIBS: Partial<Record<Provider, string[]>> = {
  cuda: CUDA_12,
  tensorrt: [...CUDA_12, 'libnvinfer.so.10'],
  webgpu: ['libvulkan.so.1'],
};

const HINTS: Partial<Record<Provider, { ort: string; system: string; present: string }>> = {
  cuda: {
    ort: 'onnxruntime-node was installed without its CUDA binaries (this project\'s .npmrc skips them): on the GPU host run `ONNXRUNTIME_NODE_INSTALL=cuda12 npm rebuild onnxruntime-node` (deploy/README.md, "GPU hosts")',
    system:
      'install the CUDA 12 runtime and cuDNN 9 (e.g. the cuda-libraries-12-x and libcudnn9-cuda-12 packages) or put them on LD_LIBRARY_PATH',
    present: 'every library is there: check the NVIDIA driver (nvidia-smi) and that it supports CUDA 12',
  },
  tensorrt: {
    ort: 'onnxruntime-node was installed without its CUDA/TensorRT binaries: on the GPU host run `ONNXRUNTIME_NODE_INSTALL=cuda12 npm rebuild onnxruntime-node`',
    system: 'install the CUDA 12 runtime, cuDNN 9 and TensorRT 10, or put them on LD_LIBRARY_PATH',
    present: 'every library is there: check the NVIDIA driver (nvidia-smi)',
  },
  webgpu: {
    ort: '',
    system:
      "install the Vulkan loader (Debian: libvulkan1) and the GPU vendor's Vulkan driver (NVIDIA: its driver's Vulkan ICD; Mesa: mesa-vulkan-drivers)",
    present:
      "the Vulkan loader is there but no adapter was found: check the vendor's Vulkan driver (vulkaninfo --summary)",
  },
};

/** onnxruntime-node's native folder (where its provider libraries go), or undefined when not found. */
function ortBinDir(): string | undefined {
  try {
    const pkg = createRequire(import.meta.url).resolve('onnxruntime-node/package.json');
    return join(dirname(pkg), 'bin', 'napi-v6', process.platform, process.arch);
  } catch {
    return undefined;
  }
}

/** The sonames the dynamic loader can find: its cache (`ldconfig -p`) and LD_LIBRARY_PATH. */
function loadableLibraries(): Set<string> {
  const names = new Set<string>();
  for (const ldconfig of ['/sbin/ldconfig', '/usr/sbin/ldconfig']) {
    if (!existsSync(ldconfig)) continue;
    try {
      const out = execFileSync(ldconfig, ['-p'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
      for (const line of out.split('\n')) {
        const name = line.trim().split(' ')[0];
        if (name?.startsWith('lib')) names.add(name);
      }
      break;
    } catch {
      // No cache to read: LD_LIBRARY_PATH below is all there is.
    }
  }
  for (const dir of (process.env.LD_LIBRARY_PATH ?? '').split(':').filter(Boolean)) {
    try {
      for (const name of readdirSync(dir)) names.add(name);
    } catch {
      // A folder on the path that is not there loads nothing.
    }
  }
  return names;
}

/**
 * What `provider` lacks here: onnxruntime-node's files and the system's libraries, and what to do.
 * Nothing for the CPU provider.
 */
export function providerLibraries(provider: Provider): { missing: string[]; advice: string } {
  const hints = HINTS[provider];
  if (!hints) return { missing: [], advice: '' };
  const bin = ortBinDir();
  const ortMissing = (ORT_FILES[provider] ?? []).filter((f) => !(bin && existsSync(join(bin, f))));
  if (ortMissing.length > 0)
    return { missing: ortMissing.map((f) => (bin ? join(bin, f) : f)), advice: hints.ort };
  const loadable = loadableLibraries();
  const systemMissing = (SYSTEM_LIBS[provider] ?? []).filter((lib) => !loadable.has(lib));
  if (systemMissing.length > 0) return { missing: systemMissing, advice: hints.system };
  return { missing: [], advice: hints.present };
}

/** ONNX Runtime's first line of why `provider` did not start, with what is missing and what to do. */
export function explainProviderFailure(provider: Provider, reason: string): string {
  const { missing, advice } = providerLibraries(provider);
  if (!advice) return reason;
  return missing.length > 0 ? `${reason}; missing ${missing.join(', ')}: ${advice}` : `${reason}; ${advice}`;
}
