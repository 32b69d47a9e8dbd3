"""The end-of-run summary: best metric and its step, test metrics, time, throughput, and where the results are."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..utils.durations import format_duration


def run_summary(run_dir: Path, settings: Any, metrics: Mapping[str, Any], timings: Mapping[str, float],
                samples_trained: int, global_step: int, epoch: int) -> dict[str, Any]:
    """What a user wants to know when a run ends, as a JSON-able mapping (stored in status.json)."""
    run_dir = Path(run_dir).resolve()
    best = _best(run_dir / "checkpoints")
    train_s = timings.get("train", 0.0)
    outputs = {name: str(run_dir / name) for name in (settings.output_filename, "model", "adapter")
               if (run_dir / name).exists()}
    return {
        "global_step": global_step, "epoch": epoch,
        "monitor": settings.monitor, "best_value": best.get("value"), "best_step": best.get("step"),
        "best_checkpoint": best.get("path"),
        "test": {k: v for k, v in metrics.items() if k.startswith("test/")},
        "final": {k: v for k, v in metrics.items() if k.startswith("val/")},
        "timings_s": {k: round(v, 2) for k, v in timings.items()},
        "samples_per_s": samples_trained / train_s if train_s else None,
        "outputs": outputs,
    }


def summary_table(summary: Mapping[str, Any], wall_s: float) -> str:
    """The summary as a few aligned lines for the log."""
    rows = [("steps", f"{summary['global_step']} ({summary['epoch']} epoch(s))")]
    if summary.get("best_value") is not None:
        rows.append((f"best {summary['monitor']}", f"{summary['best_value']:.4g} at step {summary['best_step']}"))
    for name, value in summary.get("test", {}).items():
        if isinstance(value, float):
            rows.append((name, f"{value:.4g}"))
    timings = summary.get("timings_s", {})
    phases = "  ".join(f"{name} {seconds:.1f}s" for name, seconds in timings.items() if seconds)
    rows.append(("time", f"{format_duration(wall_s)}" + (f"  ({phases})" if phases else "")))
    if summary.get("samples_per_s"):
        rows.append(("throughput", f"{summary['samples_per_s']:.1f} samples/s"))
    if summary.get("best_checkpoint"):
        rows.append(("best checkpoint", summary["best_checkpoint"]))
    for name, path in summary.get("outputs", {}).items():
        rows.append((f"saved {name}", path))
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"  {name:<{width}}  {value}" for name, value in rows)


def process_age_s() -> float | None:
    """Seconds since this process started (Linux: /proc), None where unknown: the whole job's wall time so far,
    imports and start-up included."""
    import os

    try:
        fields = Path("/proc/self/stat").read_text(encoding="ascii").rsplit(")", 1)[1].split()
        uptime = float(Path("/proc/uptime").read_text(encoding="ascii").split()[0])
        return uptime - int(fields[19]) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def _best(checkpoint_dir: Path) -> dict[str, Any]:
    try:
        best = json.loads((checkpoint_dir / "best.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    name = str(best.get("checkpoint", ""))
    step = int(name.split("-")[-1]) if name.split("-")[-1].isdigit() else None
    return {"value": best.get("value"), "step": step, "path": str(checkpoint_dir / name)}


__all__ = ["process_age_s", "run_summary", "summary_table"]
