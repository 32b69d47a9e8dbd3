#!/usr/bin/env bash
# bash scripts/llm_ft.sh GPUS [CONFIG] [KEY VALUE ...]   (CONFIG defaults to configs/llm/causal_lm_lora.yaml)
set -euo pipefail
here=$(dirname "$0")
gpus=${1:-0}
shift || true
config=configs/llm/causal_lm_lora.yaml
if [ $# -gt 0 ] && [[ $1 == *.yaml || $1 == *.yml ]]; then config=$1; shift; fi
exec bash "$here/train.sh" "$gpus" "$config" "$@"
