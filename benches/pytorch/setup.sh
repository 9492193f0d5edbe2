#!/usr/bin/env bash
# Installs the PyTorch the equal-work twin (bench.py) runs on into a virtual
# environment.
#
# On Linux x86_64 the torch wheel of the default pip index is the CUDA build;
# it is installed without its dependencies and its CUDA libraries (~4 GB) are
# replaced by tiny stubs (make_cuda_stubs.py) so it imports and runs on CPU.
# Elsewhere the wheel is CPU-only and is installed as is.
#
# Usage: benches/pytorch/setup.sh [VENV_DIR]
#        (default VENV_DIR: ${TMPDIR:-/tmp}/splitguard-torch-venv)
# Environment: TORCH_SPEC  the torch requirement (default torch==2.15.0)
#              PYTHON      the interpreter that makes the venv (default python3)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
venv=${1:-${TMPDIR:-/tmp}/splitguard-torch-venv}
torch_spec=${TORCH_SPEC:-torch==2.15.0}
python=${PYTHON:-python3}

"$python" -m venv "$venv"
pip=("$venv/bin/python" -m pip)
"${pip[@]}" install -q --upgrade pip
if [ "$(uname -s)/$(uname -m)" = "Linux/x86_64" ]; then
    for tool in gcc readelf nm ldconfig; do
        command -v "$tool" >/dev/null || {
            echo "setup.sh: $tool is needed to build the CUDA stubs" >&2
            exit 1
        }
    done
    "${pip[@]}" install -q --no-deps "$torch_spec"
    # torch's own dependencies, without the nvidia-*/triton wheels
    "${pip[@]}" install -q filelock 'typing-extensions>=4.13.0' 'setuptools>=77.0.3' \
        'sympy>=1.13.3' 'networkx>=2.5.1' jinja2 'fsspec>=0.8.5' numpy
    "$venv/bin/python" "$here/make_cuda_stubs.py"
else
    "${pip[@]}" install -q "$torch_spec" numpy
fi

# Sanity: import, one training step, the thread setting.
"$venv/bin/python" - <<'EOF'
import torch
import torch.nn as nn
torch.set_num_threads(2)
print("torch", torch.__version__, "threads", torch.get_num_threads(),
      "mkldnn", torch.backends.mkldnn.is_available(),
      "cuda_available", torch.cuda.is_available())
m = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                  nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(4 * 14 * 14, 10))
opt = torch.optim.Adam(m.parameters(), lr=1e-3, eps=1e-5)
loss = nn.functional.cross_entropy(m(torch.randn(8, 1, 28, 28)), torch.arange(8))
loss.backward()
opt.step()
assert torch.isfinite(loss), loss
print("sanity ok, loss", round(loss.item(), 4))
EOF
echo "ready: $venv"
echo "run:   $venv/bin/python $here/bench.py --threads 2"
