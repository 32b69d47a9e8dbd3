#!/usr/bin/env bash
# bash scripts/bert_ft.sh GPUS [CONFIG] [KEY VALUE ...]   (CONFIG defaults to configs/stackoverflow/minilm_full.yaml)
exec bash "$(dirname "$0")/train.sh" --default-config configs/stackoverflow/minilm_full.yaml "$@"
