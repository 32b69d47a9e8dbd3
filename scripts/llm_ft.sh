#!/usr/bin/env bash
# bash scripts/llm_ft.sh GPUS [CONFIG] [KEY VALUE ...]   (CONFIG defaults to configs/llm/causal_lm_lora.yaml)
exec bash "$(dirname "$0")/train.sh" --default-config configs/llm/causal_lm_lora.yaml "$@"
