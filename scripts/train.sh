#!/usr/bin/env bash
# Train from a config on the given devices, the prototype's calling convention:
#   bash scripts/train.sh GPUS CONFIG [KEY VALUE ...]      e.g. bash scripts/train.sh 0,1,2,3 configs/x.yaml TRAINER.EPOCHS 3
# GPUS is a comma-separated list of CUDA device ids. Without an NVIDIA GPU, as many CPU processes run instead.
# Task scripts call it as `train.sh --default-config CONFIG GPUS [CONFIG] [...]`, so their CONFIG is optional.
set -euo pipefail
default_config=""
if [ "${1:-}" = "--default-config" ]; then
  default_config=$2
  shift 2
fi
gpus=${1:-}
[ $# -gt 0 ] && shift
config=$default_config
if [ $# -gt 0 ] && { [[ $1 == *.yaml || $1 == *.yml ]] || [ -z "$default_config" ]; }; then
  config=$1
  shift
fi
if [ -z "$gpus" ] || [ -z "$config" ]; then
  echo "usage: bash $0 GPUS CONFIG [KEY VALUE ...]   (e.g. bash $0 0,1 configs/stackoverflow/minilm_full.yaml)" >&2
  exit 2
fi
root=$(cd "$(dirname "$0")/.." && pwd)
python=${PYTHON:-$root/.venv/bin/python}
[ -x "$python" ] || python=python3
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
  exec "$python" -m trainlab train "$config" "$@" --gpus "$gpus"
fi
nproc=$(awk -F, '{print NF}' <<<"$gpus")
echo "scripts/train.sh: no NVIDIA GPU here, running $nproc CPU process(es) instead of GPUs $gpus" >&2
exec "$python" -m trainlab train "$config" "$@" --nproc "$nproc"
