#!/usr/bin/env bash
# bash scripts/bert_tabular.sh GPUS [CONFIG] [KEY VALUE ...]   (CONFIG defaults to configs/stackoverflow/own_bert_tabular.yaml)
exec bash "$(dirname "$0")/train.sh" --default-config configs/stackoverflow/own_bert_tabular.yaml "$@"
