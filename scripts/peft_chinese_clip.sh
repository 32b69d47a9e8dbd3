#!/usr/bin/env bash
# bash scripts/peft_chinese_clip.sh GPUS [CONFIG] [KEY VALUE ...]   (CONFIG defaults to configs/ucf101/chinese_clip_peft_lora.yaml)
exec bash "$(dirname "$0")/train.sh" --default-config configs/ucf101/chinese_clip_peft_lora.yaml "$@"
