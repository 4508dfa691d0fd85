#!/usr/bin/env bash
# The test suite on a busy machine: one CPU-bound process per core runs beside `npm test` for its
# whole length, so a test that only passes when a sleep is long enough, or when the watcher is
# quick, fails here. Usage: npm run test:busy  (HOGS=N to change the number of busy processes).
set -euo pipefail
cd "$(dirname "$0")/.."
hogs=${HOGS:-$(nproc)}
pids=()
stop() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap stop EXIT
for _ in $(seq "$hogs"); do
  node -e 'for (;;) {}' &
  pids+=("$!")
done
echo "test:busy: ${hogs} busy process(es) beside the suite"
npm test
