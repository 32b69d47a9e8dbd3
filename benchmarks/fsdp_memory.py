"""The largest Llama-shaped model that trains on 2 CPU processes within a host-memory budget: ddp, fsdp, fsdp + offload.

    python benchmarks/fsdp_memory.py                  # the full run: budget 16 GiB, ~30 minutes on 2 CPU cores
    python benchmarks/fsdp_memory.py --quick          # smoke run: tiny models, numbers printed, never checked
    python benchmarks/fsdp_memory.py --budget-gib 12 --strategies ddp,fsdp

Each attempt is the real ``trainlab train`` of ``configs/llm/llama_full_fsdp.yaml`` on a random-weight Llama saved
with ``save_pretrained`` (``benchmarks/modes/llama_job.py``): 2 gloo processes, fp32, batch 1 of short sequences,
3 optimizer steps, no validation, checkpoints or export. The summed RSS of the whole process tree (launcher and
both ranks) is polled every 0.2 s; a run that goes over the budget is killed and does not fit, as does one that
fails or times out. For each strategy a bisection over a ladder of widths (8 layers, intermediate 4 × hidden,
64-wide heads) finds the largest model that fits. Then ddp and fsdp are timed at the largest size ddp fits, in
alternating order over ``--timing-repeats`` runs each (the median counts: the machine may be shared).
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # `python benchmarks/fsdp_memory.py` from anywhere

import psutil

from benchmarks.harness import REPO_ROOT, GiB, child_env, wait_for_memory, watch
from benchmarks.modes.llama_job import STRATEGIES, LlamaShape, train_command
from benchmarks.modes.step_probe import read_probes, step_seconds

LADDER = tuple(range(256, 3072 + 1, 128))  # hidden sizes: ~20M to ~1.4B parameters at 8 layers, vocab 32000
QUICK_LADDER = (32, 64, 128)
GOAL_RATIO = 1.8


def shape_for(hidden: int, quick: bool) -> LlamaShape:
    """The ladder's model at ``hidden``: 8 layers of 64-wide heads (no grouped KV), intermediate 4 × hidden."""
    if quick:
        return LlamaShape(hidden=hidden, layers=2, heads=hidden // 16, kv_heads=0, intermediate=0, vocab=1000)
    return LlamaShape(hidden=hidden, layers=8, heads=hidden // 64, kv_heads=0, intermediate=0, vocab=32000)


@dataclasses.dataclass
class Attempt:
    """One training run of one strategy at one size, and how it ended."""

    strategy: str
    hidden: int
    parameters: int
    outcome: str  # fits | over budget | failed | timeout
    peak_tree_bytes: int
    wall_s: float
    peak_rank_bytes: list[int] = dataclasses.field(default_factory=list)  # each rank's own maximum RSS
    step_s: float | None = None
    error: str = ""

    @property
    def fits(self) -> bool:
        return self.outcome == "fits"


class JobCache:
    """Model and data folders by hidden size, built in a child process; only the newest ``keep`` stay on disk."""

    def __init__(self, root: Path, quick: bool, rows: int, seq_len: int, keep: int = 2) -> None:
        self.root, self.quick, self.rows, self.seq_len, self.keep = root, quick, rows, seq_len, keep
        self.built: dict[int, Path] = {}

    def get(self, hidden: int) -> Path:
        if hidden in self.built:
            self.built[hidden] = self.built.pop(hidden)  # most recently used last
            return self.built[hidden]
        while len(self.built) >= self.keep:
            shutil.rmtree(self.built.pop(next(iter(self.built))), ignore_errors=True)
        folder = self.root / f"job-h{hidden}"
        shutil.rmtree(folder, ignore_errors=True)
        shape = shape_for(hidden, self.quick)
        sizes = [f"--{f.name.replace('_', '-')}={getattr(shape, f.name)}" for f in dataclasses.fields(LlamaShape)]
        command = [sys.executable, "-m", "benchmarks.modes.llama_job", str(folder), *sizes,
                   "--rows", str(self.rows), "--seq-len", str(self.seq_len)]
        subprocess.run(command, cwd=REPO_ROOT, env=child_env(), check=True, capture_output=True)
        self.built[hidden] = folder
        return folder

    def clear(self) -> None:
        for folder in self.built.values():
            shutil.rmtree(folder, ignore_errors=True)
        self.built.clear()


def attempt(strategy: str, hidden: int, jobs: JobCache, args: argparse.Namespace, steps: int) -> Attempt:
    """Train the ladder's model at ``hidden`` with ``strategy`` for ``steps`` steps under the budget."""
    job = jobs.get(hidden)
    parameters = shape_for(hidden, args.quick).parameters()
    output = args.work_dir / "runs" / f"{strategy}-h{hidden}-{steps}steps"
    shutil.rmtree(output, ignore_errors=True)
    command = train_command(job, output, strategy, 2, seq_len=args.seq_len, batch_size=1, steps=steps,
                            overrides=("TRAINER.DEVICE", "cpu", "TRAINER.PRECISION", "fp32"))
    wait_for_memory(args.budget)
    start = time.monotonic()
    log = args.work_dir / "runs" / f"{strategy}-h{hidden}-{steps}steps.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    returncode, peak, outcome = watch(command, log, args.budget, args.timeout)
    result = Attempt(strategy, hidden, parameters, outcome or "fits", peak, time.monotonic() - start)
    probes = read_probes(output)
    if not outcome and (returncode != 0 or len(probes) != 2):
        lines = log.read_text(encoding="utf-8", errors="replace").strip().splitlines() or ["no output"]
        result.outcome, result.error = "failed", f"exit {returncode}: {lines[-1][:300]}"
    if result.fits:
        result.peak_rank_bytes = [probe["peak_rss_bytes"] for probe in probes]
        result.step_s = step_seconds(probes[0])
    print(f"  {strategy:<13} hidden {hidden:>5} {parameters / 1e6:>8.1f}M params: {result.outcome:<11} "
          f"peak {peak / GiB:5.2f} GiB  {result.wall_s:5.0f} s" + (f"  ({result.error})" if result.error else ""),
          flush=True)
    shutil.rmtree(output, ignore_errors=True)
    return result


def largest_fitting(ladder: tuple[int, ...], run: Callable[[int], Attempt]) -> list[Attempt]:
    """Bisection over the ladder (fitting is monotone in size); every attempt, in order. A run stopped because
    the host ran short of memory is repeated once, since it says nothing about the model."""
    attempts: list[Attempt] = []
    fits, fails = -1, len(ladder)
    while fails - fits > 1:
        middle = (fits + fails) // 2
        result = run(ladder[middle])
        if result.outcome == "host memory low":
            result = run(ladder[middle])
        attempts.append(result)
        fits, fails = (middle, fails) if result.fits else (fits, middle)
    return attempts


def median_step(runs: list[Attempt]) -> float | None:
    times = [run.step_s for run in runs if run.step_s]
    return statistics.median(times) if times else None


def millions(parameters: int) -> str:
    return f"{parameters / 1e6:.0f}M" if parameters >= 1e7 else f"{parameters / 1e6:.2f}M"


def best(attempts: list[Attempt]) -> Attempt | None:
    return max((a for a in attempts if a.fits), key=lambda a: a.parameters, default=None)


def format_report(found: dict[str, list[Attempt]], timing: dict[str, list[Attempt]], budget: int, quick: bool) -> str:
    title = f"Largest model that trains 3 steps on 2 CPU processes within {budget / GiB:g} GiB (summed RSS of the tree)"
    lines = [title, "",
             "| strategy | largest fitting | hidden | peak RSS (tree) | peak RSS per rank | smallest not fitting |",
             "|---|---|---|---|---|---|"]
    for strategy, attempts in found.items():
        fit = best(attempts)
        over = min((a for a in attempts if not a.fits), key=lambda a: a.parameters, default=None)
        over_text = f"{millions(over.parameters)} ({over.outcome})" if over else "none tried"
        if fit is None:
            lines.append(f"| {strategy} | none | - | - | - | {over_text} |")
            continue
        ranks = " / ".join(f"{b / GiB:.2f}" for b in fit.peak_rank_bytes)
        lines.append(f"| {strategy} | {millions(fit.parameters)} | {fit.hidden} | {fit.peak_tree_bytes / GiB:.2f} GiB "
                     f"| {ranks} GiB | {over_text} |")
    ddp, fsdp = best(found.get("ddp", [])), best(found.get("fsdp", []))
    if ddp and fsdp:
        ratio = fsdp.parameters / ddp.parameters
        verdict = "not judged in --quick" if quick else "met" if ratio >= GOAL_RATIO else "missed"
        lines += ["", f"fsdp / ddp largest model: {ratio:.2f}x (goal >= {GOAL_RATIO}x: {verdict})"]
        offload = best(found.get("fsdp+offload", []))
        if offload:
            lines.append(f"fsdp+offload / ddp largest model: {offload.parameters / ddp.parameters:.2f}x")
    medians = {name: median_step(runs) for name, runs in timing.items()}
    if len(medians) == 2 and all(medians.values()):
        size = timing["ddp"][0]
        each = "; ".join(f"{name} {medians[name]:.3g} s ({', '.join(f'{a.step_s:.3g}' for a in runs if a.step_s)})"
                         for name, runs in timing.items())
        ratio = medians["fsdp"] / medians["ddp"]
        where = f"{millions(size.parameters)} parameters (hidden {size.hidden})"
        lines += ["", f"step time at {where}, median over runs of each run's median step: {each}; "
                      + f"fsdp / ddp = {ratio:.2f}x"]
    return "\n".join(lines)


def git_state() -> str:
    """The commit measured, and the files changed on top of it (other work in the tree)."""
    def git(*arguments: str) -> str:
        return subprocess.run(["git", *arguments], check=False, cwd=REPO_ROOT, capture_output=True, text=True).stdout

    changed = [line[3:] for line in git("status", "--porcelain", "--untracked-files=no").splitlines()]
    return git("rev-parse", "--short", "HEAD").strip() + (f" + changes to {', '.join(changed)}" if changed else "")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny ladder (hidden 32-128, 2 layers): a smoke run")
    parser.add_argument("--budget-gib", type=float, default=16.0, help="host memory for the whole run (default 16)")
    parser.add_argument("--strategies", default=",".join(STRATEGIES),
                        help=f"comma-separated of {', '.join(STRATEGIES)} (default: all)")
    parser.add_argument("--seq-len", type=int, default=64, help="tokens per sequence (default 64; batch 1)")
    parser.add_argument("--timing-steps", type=int, default=6, help="steps of the ddp / fsdp timing runs (default 6)")
    parser.add_argument("--timing-repeats", type=int, default=2, help="timing runs of each (default 2)")
    parser.add_argument("--timeout", type=float, default=1200, help="seconds per run before it counts as not fitting")
    parser.add_argument("--work-dir", type=Path, default=REPO_ROOT / "work_dirs" / "benchmarks" / "fsdp_memory")
    parser.add_argument("--output", type=Path, help="JSON results (default: WORK_DIR/results.json)")
    args = parser.parse_args(argv)
    args.budget = int(args.budget_gib * GiB)
    unknown = [s for s in args.strategies.split(",") if s not in STRATEGIES]
    if unknown:
        parser.error(f"unknown strategy {', '.join(unknown)}; choose from {', '.join(STRATEGIES)}")
    return args


def main(argv: list[str] | None = None) -> int:
    import torch
    import transformers

    args = parse_args(argv)
    ladder = QUICK_LADDER if args.quick else LADDER
    args.work_dir.mkdir(parents=True, exist_ok=True)
    jobs = JobCache(args.work_dir, args.quick, rows=4 * max(args.timing_steps, 3), seq_len=args.seq_len)
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    smallest, largest = (millions(shape_for(hidden, args.quick).parameters()) for hidden in (ladder[0], ladder[-1]))
    machine = f"{os.cpu_count()} CPUs, {psutil.virtual_memory().total / GiB:.1f} GiB host memory"
    print(f"fsdp_memory: budget {args.budget_gib:g} GiB, ladder hidden {ladder[0]}..{ladder[-1]} "
          f"({smallest}..{largest} parameters), {machine}", flush=True)
    found: dict[str, list[Attempt]] = {}
    timing: dict[str, list[Attempt]] = {"ddp": [], "fsdp": []}
    try:
        for strategy in args.strategies.split(","):
            run = functools.partial(attempt, strategy, jobs=jobs, args=args, steps=3)
            found[strategy] = largest_fitting(ladder, run)
        ddp = best(found.get("ddp", []))
        if ddp and "fsdp" in found:
            print(f"timing ddp and fsdp at hidden {ddp.hidden} over {args.timing_steps} steps", flush=True)
            for repeat in range(args.timing_repeats):
                for name in ("ddp", "fsdp") if repeat % 2 == 0 else ("fsdp", "ddp"):
                    timing[name].append(attempt(name, ddp.hidden, jobs, args, steps=args.timing_steps))
    finally:
        jobs.clear()
    report = format_report(found, timing, args.budget, args.quick)
    print("\n" + report)
    environment = {"started": started, "machine": f"{machine}, {platform.platform()}",
                   "python": platform.python_version(), "torch": torch.__version__,
                   "transformers": transformers.__version__, "commit": git_state()}
    print(" | ".join(f"{k} {v}" for k, v in environment.items()))
    output = args.output or args.work_dir / "results.json"
    results = {"environment": environment, "budget_bytes": args.budget, "ladder": ladder,
               "attempts": {s: [dataclasses.asdict(a) for a in runs] for s, runs in found.items()},
               "timing": {s: [dataclasses.asdict(a) for a in runs] for s, runs in timing.items()}, "report": report}
    output.write_text(json.dumps(results, indent=1), encoding="utf-8")
    print(f"results: {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
