"""How a causal LM sees a prompt: the tokenizer's own special tokens and chat templates, one encoding for
training, evaluation and generation (so a trained model never meets inputs shaped differently at inference).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import ConfigError

# Templates for tokenizers that ship none, named in the config (DATASET.*.CHAT_TEMPLATE).
CHAT_TEMPLATES = {
    "chatml": (
        "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
        "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    ),
    "llama3": (
        "{{ bos_token }}{% for message in messages %}<|start_header_id|>{{ message['role'] }}<|end_header_id|>\n\n"
        "{{ message['content'] | trim }}<|eot_id|>{% endfor %}"
        "{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}"
    ),
    "plain": (
        "{{ bos_token }}{% for message in messages %}{{ message['role'] | capitalize }}: {{ message['content'] }}"
        "{% if message['role'] == 'assistant' %}{{ eos_token }}{% endif %}\n{% endfor %}"
        "{% if add_generation_prompt %}Assistant: {% endif %}"
    ),
}

NO_TEMPLATE = ("the tokenizer has no chat template for 'messages' rows: set DATASET.*.CHAT_TEMPLATE to one of "
               f"{', '.join(CHAT_TEMPLATES)}, a .jinja file, or Jinja text")


def special_affixes(tokenizer: Any) -> tuple[list[int], list[int]]:
    """The token ids the tokenizer puts before and after a text it encodes with special tokens (BOS, EOS...)."""
    bare = tokenizer("x", add_special_tokens=False)["input_ids"]
    full = tokenizer("x")["input_ids"]
    for start in range(len(full) - len(bare) + 1):
        if full[start:start + len(bare)] == bare:
            return list(full[:start]), list(full[start + len(bare):])
    return [], []


def resolve_chat_template(tokenizer: Any, template: str = "") -> str | None:
    """The chat template to use: ``template`` (a name in CHAT_TEMPLATES, a .jinja file, or Jinja text) or,
    when empty, the tokenizer's own; None when there is neither."""
    if not template:
        return getattr(tokenizer, "chat_template", None) or None
    if template in CHAT_TEMPLATES:
        return CHAT_TEMPLATES[template]
    if "{" not in template:  # not Jinja: a file name
        path = Path(template)
        if not path.is_file():
            raise ConfigError(f"CHAT_TEMPLATE '{template}' is neither a template name ({', '.join(CHAT_TEMPLATES)}), "
                              f"a .jinja file, nor Jinja text")
        return path.read_text(encoding="utf-8")
    return template


def render_chat(tokenizer: Any, messages: list[dict[str, str]], template: str | None,
                add_generation_prompt: bool = False) -> str:
    """``messages`` rendered as text by ``template`` (special tokens written by the template itself)."""
    if template is None:
        raise ConfigError(NO_TEMPLATE)
    return tokenizer.apply_chat_template(messages, chat_template=template, tokenize=False,
                                         add_generation_prompt=add_generation_prompt)


def encode_prompt(tokenizer: Any, prompt: str | list[dict[str, str]], chat_template: str | None = None) -> list[int]:
    """Token ids of ``prompt`` ready for generation, exactly as training saw prompts: a text gets the tokenizer's
    leading special tokens (BOS) and no trailing ones; a list of messages is rendered by the chat template
    with the assistant's turn opened."""
    if isinstance(prompt, str):
        prefix, _ = special_affixes(tokenizer)
        return prefix + list(tokenizer(prompt, add_special_tokens=False)["input_ids"])
    text = render_chat(tokenizer, prompt, chat_template, add_generation_prompt=True)
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


__all__ = ["CHAT_TEMPLATES", "encode_prompt", "render_chat", "resolve_chat_template", "special_affixes"]
