"""A synthetic Llama job for the FSDP benchmarks: a random-weight Llama-style model, a word-level tokenizer and
text rows of exactly ``seq_len`` tokens, written the way a user's would be, so TrainLab loads them through its
real ``from_pretrained`` path; and the ``trainlab train`` command line that trains it.

    python -m benchmarks.modes.llama_job OUT --hidden 1024 --layers 8 --rows 64 --seq-len 512

writes ``OUT/model`` (``save_pretrained``: config, fp32 safetensors, tokenizer) and ``OUT/data/train.jsonl``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import random
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import transformers

REPO_ROOT = Path(__file__).resolve().parents[2]
RECIPE = REPO_ROOT / "configs" / "llm" / "llama_full_fsdp.yaml"
SPECIAL_TOKENS = ("<pad>", "<unk>", "<eos>")
# The benchmarked strategies: TRAINER.STRATEGY and the overrides each adds.
STRATEGIES = {"ddp": ("ddp", ()), "fsdp": ("fsdp", ()), "fsdp+offload": ("fsdp", ("TRAINER.FSDP_CPU_OFFLOAD", "true"))}


@dataclasses.dataclass(frozen=True)
class LlamaShape:
    """The sizes of a Llama-style decoder; ``intermediate`` 0 means 4 × hidden, ``kv_heads`` 0 means ``heads``."""

    hidden: int = 2048
    layers: int = 16
    heads: int = 32
    kv_heads: int = 8
    intermediate: int = 8192
    vocab: int = 32000

    def config(self, max_positions: int = 4096) -> transformers.LlamaConfig:
        import transformers

        return transformers.LlamaConfig(
            vocab_size=self.vocab, hidden_size=self.hidden, intermediate_size=self.intermediate or 4 * self.hidden,
            num_hidden_layers=self.layers, num_attention_heads=self.heads,
            num_key_value_heads=self.kv_heads or self.heads, max_position_embeddings=max_positions,
            pad_token_id=0, bos_token_id=None, eos_token_id=2, tie_word_embeddings=False,
        )

    def parameters(self) -> int:
        """The exact parameter count, from the model built on the ``meta`` device (no memory, no time)."""
        import torch
        import transformers

        with torch.device("meta"):
            model = transformers.LlamaForCausalLM(self.config())
        return sum(p.numel() for p in model.parameters())


def write_tokenizer(directory: Path, vocab: int) -> None:
    """A word-level tokenizer over the words ``w3 … w<vocab-1>``: one whitespace-separated word is one token."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words = {token: i for i, token in enumerate(SPECIAL_TOKENS)}
    words.update({f"w{i}": i for i in range(len(SPECIAL_TOKENS), vocab)})
    backend = Tokenizer(models.WordLevel(words, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, pad_token="<pad>", unk_token="<unk>",
                                        eos_token="<eos>")
    tokenizer.save_pretrained(directory)


def write_model(directory: Path, shape: LlamaShape, seed: int = 0) -> int:
    """A randomly initialised ``LlamaForCausalLM`` saved in fp32 with its tokenizer; returns its parameter count."""
    import torch
    import transformers

    torch.manual_seed(seed)
    model = transformers.LlamaForCausalLM(shape.config())
    model.save_pretrained(directory)
    write_tokenizer(directory, shape.vocab)
    return sum(p.numel() for p in model.parameters())


def write_rows(directory: Path, rows: int, seq_len: int, vocab: int, seed: int = 0) -> None:
    """``directory/train.jsonl``: ``rows`` texts of ``seq_len`` random words, so every batch is rows × seq_len tokens
    (the dataset appends an end-of-sequence token and truncates to MAX_LENGTH = seq_len)."""
    generator = random.Random(seed)
    directory.mkdir(parents=True, exist_ok=True)
    def text() -> str:
        return " ".join(f"w{generator.randrange(len(SPECIAL_TOKENS), vocab)}" for _ in range(seq_len))

    lines = (json.dumps({"text": text()}) for _ in range(rows))
    (directory / "train.jsonl").write_text("".join(line + "\n" for line in lines), encoding="utf-8")


def train_command(job: Path, output_dir: Path, strategy: str, nproc: int, *, seq_len: int, batch_size: int,
                  steps: int, overrides: tuple[str, ...] = ()) -> list[str]:
    """``trainlab train`` of the FSDP recipe on ``job`` (written by this module), with StepProbeHook on every rank.

    ``strategy`` is a key of STRATEGIES. No validation, no checkpoints and no export: the run is its training
    steps. ``ddp`` on one process becomes ``single``. ``fsdp`` on one process starts through torchrun, since
    ``trainlab train --nproc 1`` runs in-process without a process group, which FSDPStrategy cannot build its
    device mesh from.
    """
    name, extra = STRATEGIES[strategy]
    name = "single" if name == "ddp" and nproc == 1 else name
    arguments = [
        str(RECIPE), "MODEL.PRETRAINED", str(job / "model"), "DATASET.TRAIN.ROOT", str(job / "data"),
        "DATASET.TRAIN.MAX_LENGTH", str(seq_len), "DATASET.TRAIN.PROMPT_FIELD", "", "DATASET.VAL.NAME", "",
        "TRAINER.STRATEGY", name, "TRAINER.MAX_STEPS", str(steps), "TRAINER.EPOCHS", "1",
        "TRAINER.BATCH_SIZE_TRAIN", str(batch_size), "TRAINER.GRAD_ACCUM_STEPS", "1", "TRAINER.SAVE", "false",
        "TRAINER.WARMUP_RATIO", "0.0", "TRAINER.LOG_EVERY_STEPS", "1", "TRAINER.OUTPUT_DIR", str(output_dir),
        "TRAINER.HOOKS", "[{NAME: StepProbeHook}]", *extra, *overrides, "--import", "benchmarks.modes.step_probe",
    ]
    if name == "fsdp" and nproc == 1:
        return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "1",
                "-m", "trainlab.train", *arguments]
    return [sys.executable, "-m", "trainlab", "train", *arguments, "--nproc", str(nproc), "--force"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write a random Llama-style model, its tokenizer and text rows.")
    parser.add_argument("out", type=Path, help="folder to create: OUT/model and OUT/data/train.jsonl")
    for field in dataclasses.fields(LlamaShape):
        parser.add_argument(f"--{field.name.replace('_', '-')}", type=int, default=field.default)
    parser.add_argument("--rows", type=int, default=64)
    parser.add_argument("--seq-len", type=int, default=512)
    args = parser.parse_args(argv)
    shape = LlamaShape(**{field.name: getattr(args, field.name) for field in dataclasses.fields(LlamaShape)})
    params = write_model(args.out / "model", shape)
    write_rows(args.out / "data", args.rows, args.seq_len, shape.vocab)
    print(json.dumps({"parameters": params, **dataclasses.asdict(shape)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
