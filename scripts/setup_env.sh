#!/usr/bin/env bash
# Creates (or reuses) ./.venv and installs TrainLab with the right PyTorch build for this machine.
# A machine with an NVIDIA GPU gets PyTorch's default (CUDA) build; one without gets the CPU build.
# Override with TORCH_SPEC="torch==X" and/or TORCH_INDEX_URL=<a PyTorch wheel index>.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}
EXTRAS=${EXTRAS:-dev}

if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV"
fi
PY="$VENV/bin/python"
"$PY" -m pip install -q --upgrade pip

if ! "$PY" -c "import torch" 2>/dev/null; then
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
    spec=${TORCH_SPEC:-torch}
  else
    spec=${TORCH_SPEC:-torch==2.13.0}  # the CPU build where a local CPU wheel is provided
  fi
  if [ -n "${TORCH_INDEX_URL:-}" ]; then
    "$PY" -m pip install -q "$spec" --index-url "$TORCH_INDEX_URL"
  else
    "$PY" -m pip install -q "$spec"
  fi
fi
"$PY" -m pip install -q -e ".[$EXTRAS]"
"$PY" -c "import torch, trainlab; print(f'trainlab ready: torch {torch.__version__}, cuda={torch.cuda.is_available()}')"
