#!/usr/bin/env bash
# splitguard against PyTorch on the equal-work benchmarks, side by side, with
# 2 threads each, and the ratio table.
#
# Usage: benches/run-comparison.sh [TORCH_VENV] [BENCH ARGS...]
#   TORCH_VENV  a venv made by benches/pytorch/setup.sh (default
#               ${TMPDIR:-/tmp}/splitguard-torch-venv), or any python with torch
#               >= 2.0 via TORCH_PYTHON=/path/to/python
#   BENCH ARGS  passed to both benchmarks: --only a,b --steps N --warmup N
# Environment: MAXWAIT  seconds to wait for a quiet machine before each run
#                       (default 600); QUIET  1-minute load counted as quiet
#                       (default 0.5)
# Writes target/bench/splitguard.json and target/bench/pytorch.json.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
venv=${TMPDIR:-/tmp}/splitguard-torch-venv
if [ $# -gt 0 ] && [ "${1#-}" = "$1" ]; then
    venv=$1
    shift
fi
python=${TORCH_PYTHON:-$venv/bin/python}
if ! "$python" -c 'import torch' 2>/dev/null; then
    echo "run-comparison.sh: no torch in $python; run benches/pytorch/setup.sh $venv first" >&2
    exit 1
fi
MAXWAIT=${MAXWAIT:-600}
QUIET=${QUIET:-0.5}
out=target/bench
mkdir -p "$out"

load1() { cut -d' ' -f1 /proc/loadavg; }
loadavg() { cut -d' ' -f1-3 /proc/loadavg; }

# Waits until the 1-minute load is below $QUIET, at most $MAXWAIT seconds.
wait_quiet() {
    local start=$SECONDS
    while awk -v l="$(load1)" -v q="$QUIET" 'BEGIN { exit !(l >= q) }'; do
        if [ $((SECONDS - start)) -ge "$MAXWAIT" ]; then
            echo "warning: load still $(loadavg) after ${MAXWAIT}s; measuring anyway" >&2
            return 0
        fi
        sleep 10
    done
    echo "quiet after $((SECONDS - start))s: load $(loadavg)"
}

# Build first, so compiling never overlaps a measurement.
cargo bench --bench equal_work --no-run

wait_quiet
rust_load=$(loadavg)
echo "== splitguard (load $rust_load)"
RAYON_NUM_THREADS=2 cargo bench --bench equal_work -- --json "$out/splitguard.json" "$@"

wait_quiet
torch_load=$(loadavg)
echo "== PyTorch (load $torch_load)"
OMP_NUM_THREADS=2 MKL_NUM_THREADS=2 "$python" benches/pytorch/bench.py --threads 2 \
    --json "$out/pytorch.json" "$@"

echo
python3 benches/compare.py "$out/splitguard.json" "$out/pytorch.json" \
    --load "before splitguard: $rust_load; before PyTorch: $torch_load"
