"""fp32 against bf16 autocast for one MiniLM training step on this machine's device, and what PRECISION auto picks.

    python benchmarks/precision_check.py [--device cuda] [--size minilm|bert-base] [--batch 16] [--length 256] [--steps 10]

A BERT classifier of MiniLM's or bert-base's shape (random weights) classifies random token ids; each precision
is timed over --steps optimizer steps after 3 warm-up steps (CUDA: synchronised). Prints a table and the ratio.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


SIZES = {  # BERT shapes: MiniLM-L6 (22.7M parameters, the benchmark's model) and bert-base (110M)
    "minilm": {"hidden_size": 384, "num_hidden_layers": 6, "num_attention_heads": 12, "intermediate_size": 1536},
    "bert-base": {},
}


def step_times(model, batch, dtype, steps: int, device) -> list[float]:
    import torch

    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5, fused=True)
    times = []
    for index in range(steps + 3):
        start = time.perf_counter()
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            loss = model(**batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if device.type == "cuda":
            torch.cuda.synchronize()
        if index >= 3:
            times.append(time.perf_counter() - start)
    return times


def main(argv: list[str] | None = None) -> int:
    import torch
    import transformers

    from trainlab.engine.precision import resolve_precision

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--length", type=int, default=256)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--size", choices=SIZES, default="minilm", help="random weights of this shape (default minilm)")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    torch.manual_seed(0)
    config = transformers.BertConfig(**SIZES[args.size], num_labels=2)
    model = transformers.BertForSequenceClassification(config).to(device)
    ids = torch.randint(1000, 20000, (args.batch, args.length), device=device)
    batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": torch.randint(0, 2, (args.batch,), device=device)}
    rows = []
    for name, dtype in (("fp32", None), ("bf16", torch.bfloat16)):
        times = step_times(model, batch, dtype, args.steps, device)
        rows.append((name, statistics.median(times)))
    chosen, reason = resolve_precision("auto", device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(f"{name}, torch {torch.__version__}, {args.size} batch {args.batch} × {args.length} tokens, median of {args.steps} steps")
    for precision, seconds in rows:
        print(f"  {precision}: {seconds * 1000:.1f} ms/step, {args.batch / seconds:.1f} samples/s")
    print(f"  bf16 speed-up: {rows[0][1] / rows[1][1]:.2f}x; PRECISION auto picks {chosen} ({reason})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
