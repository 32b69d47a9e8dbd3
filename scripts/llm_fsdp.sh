#!/usr/bin/env bash
# bash scripts/llm_fsdp.sh GPUS [CONFIG] [KEY VALUE ...]   (CONFIG defaults to configs/llm/llama_full_fsdp.yaml)
# FSDP2 recipes: llama_full_fsdp.yaml (full fine-tune), llama_lora_fsdp.yaml (LoRA on a sharded base model).
exec bash "$(dirname "$0")/train.sh" --default-config configs/llm/llama_full_fsdp.yaml "$@"
