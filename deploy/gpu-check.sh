#!/usr/bin/env bash
# GPU check (issue 20 item 4): on a machine with an NVIDIA GPU, time the pipeline on the GPU
# providers against the CPU, at 1024² and 2048² slices with batch 64, within about 8 minutes.
# Installs nothing: it uses the checkout it runs in (node_modules already installed, and for
# `cuda` onnxruntime-node's CUDA binaries already in place: see deploy/README.md, "GPU hosts").
#
#   bash deploy/gpu-check.sh [OUT_DIR]      # writes OUT_DIR/*.json (default: ./gpu-check)
set -u
cd "$(dirname "$0")/.."
out=${1:-gpu-check}
mkdir -p "$out"
budget_end=$(( $(date +%s) + 8 * 60 ))
say() { printf '%s\n' "$*"; }

say "== machine"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null || say "nvidia-smi: not found (no NVIDIA driver?)"
node --version
bin=node_modules/onnxruntime-node/bin/napi-v6/linux/x64
providers="webgpu"
if [ -e "$bin/libonnxruntime_providers_cuda.so" ]; then providers="cuda webgpu"; else say "no $bin/libonnxruntime_providers_cuda.so: cuda skipped (deploy/README.md, GPU hosts)"; fi

# One bench: its JSON line kept, its figures printed; skipped when the 8 minutes would be passed.
bench() { # name seconds-allowed args...
  local name=$1 allowed=$2; shift 2
  local left=$(( budget_end - $(date +%s) ))
  if [ "$left" -lt 20 ]; then say "$name: skipped, out of time"; return; fi
  [ "$allowed" -gt "$left" ] && allowed=$left
  timeout "$allowed" node --import tsx src/cli/main.ts bench --json "$@" > "$out/$name.json" 2> "$out/$name.err"
  local rc=$?
  if [ $rc -ne 0 ]; then say "$name: failed or timed out (rc $rc; $out/$name.err)"; return; fi
  node -e '
    const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8").trim().split("\n").at(-1));
    console.log(`${process.argv[2]}: ${r.model.name} on ${r.model.provider}${r.fallbackReason ? ` (fallback: ${r.fallbackReason})` : ""}, ` +
      `${r.scan.size}², ${r.scan.patchesPerSlice} patches/slice, batch ${r.batch}: end to end ${r.endToEnd.slicesPerSecond.toFixed(2)} slices/s, ` +
      `${r.endToEnd.patchesPerSecond.toFixed(0)} patches/s; bare ${r.bareOnnxRuntime.patchesPerSecond.toFixed(0)} patches/s; ` +
      `ratio ${r.ratio.toFixed(2)}; cpu/slice ${r.cpuMsPerSlice.processMs.toFixed(0)} ms (daemon thread ${(r.cpuMsPerSlice.daemonThreadMs ?? NaN).toFixed(0)} ms)`);
  ' "$out/$name.json" "$name"
}

say "== CPU baseline (1024², fewer slices: it is slow)"
bench cpu-1024 120 --size 1024 --slices 4 --batch 64 --provider cpu
for p in $providers; do
  say "== $p"
  bench "$p-1024" 120 --size 1024 --slices 32 --batch 64 --provider "$p"
  bench "$p-2048" 150 --size 2048 --slices 32 --batch 64 --provider "$p"
done

say "== GPU vs CPU (end-to-end patches/s)"
node -e '
  const fs = require("fs"); const dir = process.argv[1];
  const read = (n) => { try { return JSON.parse(fs.readFileSync(`${dir}/${n}.json`, "utf8").trim().split("\n").at(-1)); } catch { return undefined; } };
  const cpu = read("cpu-1024");
  for (const n of fs.readdirSync(dir).filter((f) => f.endsWith(".json") && !f.startsWith("cpu")).map((f) => f.slice(0, -5))) {
    const r = read(n); if (!r || !cpu) continue;
    console.log(`${n}: ${(r.endToEnd.patchesPerSecond / cpu.endToEnd.patchesPerSecond).toFixed(1)}× the CPU`);
  }
' "$out"
say "goal (issue 20): T-Net 2048² ≥ 100 slices/s end to end on an H100/H200-class GPU"
