"""DDP against FSDP2 on every visible GPU: the real `trainlab train` of the FSDP recipe on a random Llama-style model.

    bash benchmarks/gpu_check.sh                           # ~1.1B parameters, all visible GPUs, bf16
    python benchmarks/gpu_check.py --layers 8 --seq-len 512 --nproc 2
    python benchmarks/gpu_check.py --device cpu --tiny     # CPU smoke run of the plumbing: 2 gloo processes

For each strategy it runs ``configs/llm/llama_full_fsdp.yaml`` with TRAINER.STRATEGY ddp | fsdp, PRECISION bf16,
a few steps, no validation, checkpoints or export (nccl on CUDA, gloo on CPU; on one process ddp becomes single),
and prints step time, tokens/s, peak memory per rank and MFU. Every rank measures itself with StepProbeHook
(``benchmarks/modes/step_probe.py``). MFU = 6 × parameters (embeddings included) × tokens/s / (processes × peak
bf16 FLOP/s): model FLOPs only, so activation recomputation (gradient checkpointing, on in the recipe) is work MFU
does not count.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # `python benchmarks/gpu_check.py` from anywhere

from benchmarks.harness import REPO_ROOT, child_env
from benchmarks.modes.llama_job import STRATEGIES, LlamaShape, train_command
from benchmarks.modes.step_probe import read_probes, step_seconds

# Dense bf16 tensor-core peak per GPU (TFLOP/s, no sparsity), by a part of torch.cuda.get_device_name();
# the first match wins, so the more specific names come first.
PEAK_BF16_TFLOPS = (("H100 PCIe", 756.0), ("H100", 989.0), ("H200", 989.0), ("A100", 312.0))
TINY_SHAPE = LlamaShape(hidden=64, layers=2, heads=4, kv_heads=2, intermediate=128, vocab=1000)
TINY_RUN = {"seq_len": 64, "batch_size": 2, "steps": 5, "skip": 1}


@dataclasses.dataclass
class Result:
    """One strategy's run: its figures, or why it has none."""

    strategy: str
    nproc: int
    returncode: int
    wall_s: float
    step_s: float | None = None
    tokens_per_s: float | None = None
    peak_bytes: list[int] = dataclasses.field(default_factory=list)  # per rank: device memory on CUDA, RSS on CPU
    mfu: float | None = None
    device_name: str = ""
    peak_tflops: float | None = None
    error: str = ""


def peak_tflops(device_name: str, given: float | None) -> float | None:
    """The bf16 peak of one device: ``given`` (--peak-tflops), else from the table, else None (MFU not shown)."""
    if given:
        return given
    return next((peak for part, peak in PEAK_BF16_TFLOPS if part.lower() in device_name.lower()), None)


def run_strategy(strategy: str, job: Path, work: Path, args: argparse.Namespace, parameters: int) -> Result:
    """Train ``job`` with ``strategy`` on ``args.nproc`` processes and read every rank's probe."""
    output = work / f"run-{strategy}"
    overrides = ("TRAINER.DEVICE", args.device, "TRAINER.PRECISION", args.precision,
                 "MODEL.GRADIENT_CHECKPOINTING", str(args.gradient_checkpointing).lower())
    command = train_command(job, output, strategy, args.nproc, seq_len=args.seq_len, batch_size=args.batch_size,
                            steps=args.steps, overrides=overrides)
    log = work / f"{strategy}.log"
    start = time.perf_counter()
    with log.open("wb") as handle:
        try:
            returncode = subprocess.run(command, check=False, cwd=REPO_ROOT, env=child_env(), stdout=handle,
                                        stderr=subprocess.STDOUT, timeout=args.timeout).returncode
        except subprocess.TimeoutExpired:
            returncode = 124
    result = Result(strategy, args.nproc, returncode, time.perf_counter() - start)
    probes = read_probes(output)
    if returncode != 0 or len(probes) != args.nproc:
        lines = log.read_text(encoding="utf-8", errors="replace").strip().splitlines()
        errors = [line for line in lines if "error" in line.lower()] or lines or ["no output"]
        result.error = f"exit {returncode}: {errors[-1][:300]}" + (f" (log: {log})" if args.work_dir else "")
        print(f"--- {strategy} failed; the end of its log ---\n" + "\n".join(lines[-25:]), file=sys.stderr)
        return result
    result.step_s = step_seconds(probes[0], skip=args.skip)
    result.peak_bytes = [probe["peak_device_bytes"] or probe["peak_rss_bytes"] for probe in probes]
    if result.step_s:
        result.tokens_per_s = args.batch_size * args.seq_len * args.nproc / result.step_s
        result.device_name = probes[0]["device_name"]
        result.peak_tflops = peak_tflops(result.device_name, args.peak_tflops)
        if result.peak_tflops:
            result.mfu = 6 * parameters * result.tokens_per_s / (args.nproc * result.peak_tflops * 1e12)
    return result


def format_table(results: list[Result], device: str) -> str:
    memory = "peak GPU GiB/rank" if device == "cuda" else "peak RSS GiB/rank"
    header = ("strategy", "procs", "step s", "tokens/s", memory, "MFU", "wall s")
    rows = [header]
    for result in results:
        name = "single (ddp, 1 process)" if result.strategy == "ddp" and result.nproc == 1 else result.strategy
        if result.error:
            rows.append((name, str(result.nproc), "FAILED", "-", "-", "-", f"{result.wall_s:.0f}"))
            continue
        peaks = f"{max(result.peak_bytes) / 2**30:.2f}"
        if len(result.peak_bytes) > 1:
            peaks += f" (min {min(result.peak_bytes) / 2**30:.2f})"
        rows.append((name, str(result.nproc), f"{result.step_s:.3f}", f"{result.tokens_per_s:,.0f}", peaks,
                     f"{100 * result.mfu:.1f}%" if result.mfu is not None else "n/a", f"{result.wall_s:.0f}"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["| " + " | ".join(cell.ljust(width) for cell, width in zip(row, widths)) + " |" for row in rows]
    lines.insert(1, "|" + "|".join("-" * (width + 2) for width in widths) + "|")
    return "\n".join(lines + [f"{r.strategy}: {r.error}" for r in results if r.error])


def visible_gpus() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", choices=("cuda", "cpu"), default="cuda", help="cpu: gloo processes (a smoke run)")
    parser.add_argument("--tiny", action="store_true", help="a tiny model, short sequences, few steps (smoke run)")
    parser.add_argument("--nproc", type=int, help="processes (default: every visible GPU; 2 on CPU)")
    parser.add_argument("--strategies", default="ddp,fsdp",
                        help=f"comma-separated of {', '.join(STRATEGIES)} (default: ddp,fsdp)")
    for field in dataclasses.fields(LlamaShape):
        parser.add_argument(f"--{field.name.replace('_', '-')}", type=int, help=f"model {field.name} "
                            f"(default {field.default}: ~1.1B parameters)")
    parser.add_argument("--seq-len", type=int, help="tokens per sequence (default 1024)")
    parser.add_argument("--batch-size", type=int, help="sequences per process and step (default 4)")
    parser.add_argument("--steps", type=int, help="optimizer steps per run (default 10)")
    parser.add_argument("--skip", type=int, help="step durations left out of the median, after step 1 (default 2)")
    parser.add_argument("--precision", default="bf16", choices=("bf16", "fp32"))
    parser.add_argument("--gradient-checkpointing", type=lambda text: text.lower() in ("1", "true", "yes", "on"),
                        default=True, metavar="true|false", help="the recipe's setting (default true)")
    parser.add_argument("--peak-tflops", type=float, help="bf16 peak of one device (default: from its name)")
    parser.add_argument("--timeout", type=float, default=300, help="seconds per run before it is stopped (default 300)")
    parser.add_argument("--work-dir", type=Path, help="keep the model, data, runs and logs here (default: a temp dir)")
    parser.add_argument("--output", type=Path, help="also write the results as JSON")
    args = parser.parse_args(argv)
    unknown = [s for s in args.strategies.split(",") if s not in STRATEGIES]
    if unknown:
        parser.error(f"unknown strategy {', '.join(unknown)}; choose from {', '.join(STRATEGIES)}")
    shape_defaults = TINY_SHAPE if args.tiny else LlamaShape()
    for field in dataclasses.fields(LlamaShape):
        if getattr(args, field.name) is None:
            setattr(args, field.name, getattr(shape_defaults, field.name))
    run_defaults = TINY_RUN if args.tiny else {"seq_len": 1024, "batch_size": 4, "steps": 10, "skip": 2}
    for name, value in run_defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    gpus = visible_gpus() if args.device == "cuda" else 0
    if args.device == "cuda" and gpus == 0:
        print("gpu_check: no CUDA GPU is visible (torch.cuda.device_count() is 0: check nvidia-smi, the driver and "
              "CUDA_VISIBLE_DEVICES, and that torch is a CUDA build); for a CPU smoke run of the plumbing use "
              "`python benchmarks/gpu_check.py --device cpu --tiny`", file=sys.stderr)
        return 2
    args.nproc = args.nproc or (gpus if args.device == "cuda" else 2)
    if args.device == "cuda" and args.nproc > gpus:
        print(f"gpu_check: --nproc {args.nproc} but only {gpus} GPU(s) are visible", file=sys.stderr)
        return 2
    if args.steps < args.skip + 3:
        print(f"gpu_check: --steps {args.steps} leaves fewer than 2 timed steps after --skip {args.skip}",
              file=sys.stderr)
        return 2
    shape = LlamaShape(**{field.name: getattr(args, field.name) for field in dataclasses.fields(LlamaShape)})
    with tempfile.TemporaryDirectory(prefix="gpu_check-") as temporary:
        work = args.work_dir or Path(temporary)
        work.mkdir(parents=True, exist_ok=True)
        rows = args.batch_size * args.nproc * (args.steps + 1)
        print(f"gpu_check: writing a random Llama ({shape}) and {rows} rows of {args.seq_len} tokens to {work}",
              flush=True)
        job_args = [f"--{f.name.replace('_', '-')}={getattr(shape, f.name)}" for f in dataclasses.fields(LlamaShape)]
        written = subprocess.run([sys.executable, "-m", "benchmarks.modes.llama_job", str(work / "job"), *job_args,
                                  "--rows", str(rows), "--seq-len", str(args.seq_len)],
                                 cwd=REPO_ROOT, env=child_env(), check=False, capture_output=True, text=True)
        if written.returncode != 0:
            print(f"gpu_check: writing the model failed:\n{written.stderr[-3000:]}", file=sys.stderr)
            return 1
        parameters = json.loads(written.stdout.strip().splitlines()[-1])["parameters"]
        results = []
        for strategy in args.strategies.split(","):
            print(f"gpu_check: {strategy} on {args.nproc} {args.device} process(es)...", flush=True)
            results.append(run_strategy(strategy, work / "job", work, args, parameters))
        print(f"\n{parameters:,} parameters, batch {args.batch_size} x {args.seq_len} tokens per process, "
              f"{args.precision}, gradient checkpointing {'on' if args.gradient_checkpointing else 'off'}, "
              f"{args.steps} steps (median of steps {args.skip + 2}-{args.steps}), "
              f"{args.nproc} {args.device} process(es)")
        measured = next((r for r in results if r.device_name), None)
        if measured and args.device == "cuda":
            peak = f"{measured.peak_tflops:g} TFLOP/s bf16 peak" if measured.peak_tflops else "peak unknown"
            print(f"{measured.device_name} ({peak}; --peak-tflops sets it)")
        print(format_table(results, args.device))
        if args.output:
            report = {"parameters": parameters, "shape": dataclasses.asdict(shape), "args": {
                k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
                "results": [dataclasses.asdict(r) for r in results]}
            args.output.parent.mkdir(parents=True, exist_ok=True)
            args.output.write_text(json.dumps(report, indent=1), encoding="utf-8")
    return 1 if any(result.error for result in results) else 0


if __name__ == "__main__":
    sys.exit(main())
