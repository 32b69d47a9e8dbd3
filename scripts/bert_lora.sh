#!/usr/bin/env bash
# bash scripts/bert_lora.sh GPUS [CONFIG] [KEY VALUE ...]   (CONFIG defaults to configs/stackoverflow/minilm_lora.yaml)
exec bash "$(dirname "$0")/train.sh" --default-config configs/stackoverflow/minilm_lora.yaml "$@"
