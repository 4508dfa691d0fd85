import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import t from 'tap';
import { DaemonStats } from '../../src/daemon/daemon-stats.ts';
import { renderMetrics } from '../../src/daemon/metrics-server.ts';
import { loadModel } from '../../src/inference/load-model.ts';
import { providerLibraries } from '../../src/inference/provider-libraries.ts';

const ORT_BIN = join(
  dirname(createRequire(import.meta.url).resolve('onnxruntime-node/package.json')),
  'bin',
  'napi-v6',
  process.platform,
  process.arch,
);

t.test('a CUDA provider that cannot start says which library is missing and what to do', async (t) => {
  const cudaEp = join(ORT_BIN, 'libonnxruntime_providers_cuda.so');
  const { missing, advice } = providerLibraries('cuda');
  // Checked against the file system itself: onnxruntime-node's CUDA library is reported missing
  // exactly when it is not in its package's native folder (this project's .npmrc leaves it out).
  t.equal(missing.includes(cudaEp), !existsSync(cudaEp), `${cudaEp} reported as missing iff absent`);
  if (!existsSync(cudaEp)) t.match(advice, /ONNXRUNTIME_NODE_INSTALL=cuda12/);
  const model = await loadModel('unet', { provider: 'cuda', thread: 'inline' });
  try {
    t.equal(model.identity.provider, 'cpu', 'fell back: no GPU here');
    for (const lib of missing) t.ok(model.fallbackReason?.includes(lib), `the reason names ${lib}`);
    t.ok(model.fallbackReason?.includes(advice), 'and says what to do');
  } finally {
    await model.close();
  }
  t.same(providerLibraries('cpu'), { missing: [], advice: '' }, 'the CPU provider needs nothing more');
});

t.test('/metrics names the provider that runs, beside the one asked for', async (t) => {
  const stats = new DaemonStats();
  t.notMatch(renderMetrics(stats), /xct_model_info/, 'nothing before a model is loaded');
  stats.model = { name: 'tnet-int8', version: '1.0.0', provider: 'cpu', requested: 'cuda' };
  t.match(
    renderMetrics(stats),
    /^xct_model_info\{model="tnet-int8",version="1\.0\.0",provider="cpu",requested="cuda"\} 1$/m,
  );
});
