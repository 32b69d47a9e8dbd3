#!/usr/bin/env bash
# DDP against FSDP2 on every visible GPU (~1.1B-parameter random Llama, bf16, a few steps; about 3-5 minutes):
#   bash benchmarks/gpu_check.sh [--nproc N] [--hidden H --layers L ...] [--peak-tflops T]   (--help for all)
# Prints strategy, step time, tokens/s, peak GPU memory per rank and MFU. Exits 2 when no GPU is visible;
# `bash benchmarks/gpu_check.sh --device cpu --tiny` runs the same plumbing on 2 CPU processes instead.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
python=${PYTHON:-$root/.venv/bin/python}
[ -x "$python" ] || python=python3
cd "$root"
exec "$python" benchmarks/gpu_check.py "$@"
