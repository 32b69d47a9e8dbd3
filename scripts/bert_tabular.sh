#!/usr/bin/env bash
# bash scripts/bert_tabular.sh GPUS [CONFIG] [KEY VALUE ...]   (CONFIG defaults to configs/stackoverflow/own_bert_tabular.yaml)
set -euo pipefail
here=$(dirname "$0")
gpus=${1:-0}
shift || true
config=configs/stackoverflow/own_bert_tabular.yaml
if [ $# -gt 0 ] && [[ $1 == *.yaml || $1 == *.yml ]]; then config=$1; shift; fi
exec bash "$here/train.sh" "$gpus" "$config" "$@"
