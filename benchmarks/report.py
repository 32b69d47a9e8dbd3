"""From per-run results to figures: samples/s measured the same way for every mode, medians, goals, a table."""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from typing import Any

# (name, numerator, denominator, figure, goal, kind): kind "min" means ratio >= goal, "max" ratio <= goal.
# "trainlab_best" and "hf_best" stand for each side's fastest mode that ran (see ``add_best``).
GOALS = (
    ("default vs default (HF)", "trainlab_full", "hf_default", "samples_per_s", 3.0, "min"),
    ("best vs best (HF)", "trainlab_best", "hf_best", "samples_per_s", 1.1, "min"),
    ("whole job vs HF best (wall)", "trainlab_full", "hf_best", "wall_s", 0.9, "max"),
    ("trainlab full vs raw", "trainlab_full", "raw_full", "samples_per_s", 0.98, "min"),
    ("trainlab LoRA vs raw LoRA", "trainlab_lora", "raw_lora", "samples_per_s", 0.98, "min"),
    ("trainlab vs prototype_style", "trainlab_full", "prototype_style", "samples_per_s", 5.0, "min"),
    ("bf16 (auto) vs fp32", "trainlab_full", "trainlab_fp32", "samples_per_s", None, "min"),
    ("compile vs eager", "trainlab_compile", "trainlab_full", "samples_per_s", None, "min"),
    ("fast dropout (auto) vs torch's", "trainlab_full", "trainlab_native_dropout", "samples_per_s", None, "min"),
    ("HF bf16 vs fp32 (group_by_length)", "hf_gbl_bf16", "hf_group_by_length", "samples_per_s", None, "min"),
    ("LoRA peak RSS vs full (MiniLM)", "trainlab_lora", "trainlab_full", "peak_rss_mb", None, "max"),
    ("2-process DDP vs 1 process", "trainlab_full_ddp2", "trainlab_full", "samples_per_s", None, "min"),
)
# Validation accuracy of TrainLab's default against HF's default: within this many points.
ACCURACY_POINTS = 1.0
COLUMNS = (
    ("samples_per_s", "samples/s", "{:.2f}"),
    ("first_step_s", "to 1st step s", "{:.1f}"),
    ("wall_s", "wall s", "{:.1f}"),
    ("peak_rss_mb", "peak RSS MB", "{:.0f}"),
    ("final_loss", "final loss", "{:.3f}"),
    ("val_accuracy", "val acc", "{:.3f}"),
)


def samples_per_second(result: Mapping[str, Any], train_size: int, global_batch: int) -> float:
    """Steady-state training throughput from the mode's own timestamps.

    With two or more epochs: the whole last epoch (every sample once) over the time from its start to its
    last optimizer step, so warm-up, model load and evaluation are excluded and all length-grouped modes
    time the same set of batches. A run stopped after ``max_steps`` (equal-cost steps): the steps after the first.
    """
    ticks, starts = result["step_end_times"], result["epoch_start_times"]
    if result.get("max_steps"):
        return (len(ticks) - 1) * global_batch / (ticks[-1] - ticks[0])
    return train_size / (ticks[-1] - starts[-1])


def figures(
    result: Mapping[str, Any], start_time: float, train_size: int, global_batch: int
) -> dict[str, float]:
    ticks = result["step_end_times"]
    return {
        "samples_per_s": samples_per_second(result, train_size, global_batch),
        "first_step_s": ticks[0] - start_time,
        "final_loss": result["final_loss"],
        "val_accuracy": result["val_accuracy"],
        "steps": len(ticks),
    }


def summarize(runs: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, float]]:
    """Median of every figure per mode over its repeats."""
    by_mode: dict[str, list[Mapping[str, Any]]] = {}
    for run in runs:
        by_mode.setdefault(run["mode"], []).append(run)
    summary = {}
    for mode, mode_runs in by_mode.items():
        keys = [
            key
            for key, value in mode_runs[0].items()
            if isinstance(value, (int, float)) and key not in ("repeat", "start_time")
        ]
        summary[mode] = {
            key: statistics.median(r[key] for r in mode_runs if r.get(key) is not None) for key in keys
        }
        summary[mode]["runs"] = len(mode_runs)
    return summary


def add_best(summary: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    """``trainlab_best`` / ``hf_best``: a copy of each side's single-process full fine-tuning mode with the highest
    samples/s (named in ``of``), so goals compare the best settings of each side."""
    sides = {"trainlab_best": ("trainlab_full", "trainlab_fp32", "trainlab_compile", "trainlab_native_dropout"),
             "hf_best": ("hf_default", "hf_group_by_length", "hf_gbl_bf16", "hf_gbl_bf16_compile")}
    for best, modes in sides.items():
        ran = [mode for mode in modes if mode in summary]
        if ran:
            fastest = max(ran, key=lambda mode: summary[mode]["samples_per_s"])
            summary[best] = {**summary[fastest], "of": fastest}
    return summary


def check_goals(
    summary: Mapping[str, Mapping[str, float]], cli_times: Mapping[str, float]
) -> list[dict[str, Any]]:
    """Every goal whose modes ran: the measured ratio, the goal and whether it is met."""
    checks = []
    for name, numerator, denominator, figure, goal, kind in GOALS:
        if numerator in summary and denominator in summary:
            ratio = summary[numerator][figure] / summary[denominator][figure]
            met = None if goal is None else (ratio >= goal if kind == "min" else ratio <= goal)
            checks.append({"goal": name, "value": ratio, "target": goal, "kind": kind, "met": met})
    if "trainlab_full" in summary and "hf_default" in summary:
        points = 100 * abs(summary["trainlab_full"]["val_accuracy"] - summary["hf_default"]["val_accuracy"])
        checks.append({"goal": "default vs default: val accuracy gap (points)", "value": points,
                       "target": ACCURACY_POINTS, "kind": "max", "met": points <= ACCURACY_POINTS})
    for command, seconds in cli_times.items():
        checks.append(
            {
                "goal": f"{command} time (s)",
                "value": seconds,
                "target": 1.0,
                "kind": "max",
                "met": seconds < 1.0,
            }
        )
    return checks


def format_report(summary: Mapping[str, Mapping[str, float]], checks: Sequence[Mapping[str, Any]]) -> str:
    header = ["mode", *(title for _, title, _ in COLUMNS), "runs"]
    rows = [header]
    for mode, values in summary.items():
        mode = f"{mode} (= {values['of']})" if "of" in values else mode
        cells = [fmt.format(values[key]) if values.get(key) is not None else "-" for key, _, fmt in COLUMNS]
        rows.append([mode, *cells, str(values["runs"])])
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["| " + " | ".join(cell.ljust(width) for cell, width in zip(row, widths)) + " |" for row in rows]
    lines.insert(1, "|" + "|".join("-" * (width + 2) for width in widths) + "|")
    lines.append("")
    for check in checks:
        target = (
            ""
            if check["target"] is None
            else f"  (goal {'>=' if check['kind'] == 'min' else '<'} {check['target']})"
        )
        verdict = {True: "met", False: "MISSED", None: "reported"}[check["met"]]
        lines.append(f"{check['goal']:<34} {check['value']:.2f}{target}  {verdict}")
    return "\n".join(lines)
