"""Runs read back from their directories: status, progress, best and test metrics, and how their configs differ.

What `trainlab runs` lists and `trainlab plot` draws. A run directory holds what training left there
(status.json, metrics.jsonl, config.yaml, checkpoints/, train.log); older runs without status.json are still
listed, with status ``unknown`` and the figures metrics.jsonl gives.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from .engine.run_status import STATUS_FILE, current_status, read_status
from .engine.trackers import flat_params, json_number
from .errors import ConfigError

CONFIG_FILE = "config.yaml"
METRICS_FILE = "metrics.jsonl"
RUN_MARKERS = (STATUS_FILE, METRICS_FILE, "checkpoints", "train.log")  # any of these makes a folder a run
# Keys that name where a run lives rather than how it trains: they differ between runs by construction.
PLACE_KEYS = frozenset({"TRAINER.RUN_DIR", "TRAINER.OUTPUT_DIR", "TRAINER.RESUME"})
_MISSING = "\0missing"  # how an absent key compares with present ones


@dataclasses.dataclass(frozen=True)
class RunInfo:
    """One run as `trainlab runs` shows it; None where the run left no trace of a figure."""

    project: str
    run_dir: Path
    status: str  # running | finished | failed | interrupted | unknown (no status.json)
    started: float | None = None  # epoch seconds
    duration_s: float | None = None
    steps: int | None = None
    epochs: int | None = None  # completed epochs
    monitor: str | None = None
    best: float | None = None
    best_step: int | None = None
    test: dict[str, Any] = dataclasses.field(default_factory=dict)
    samples_per_s: float | None = None
    error: str | None = None
    differences: dict[str, Any] = dataclasses.field(default_factory=dict)  # dotted config key -> this run's value

    def to_json(self) -> dict[str, Any]:
        """A JSON-able mapping (non-finite numbers as strings, as in metrics.jsonl)."""
        data = {field.name: getattr(self, field.name) for field in dataclasses.fields(self)}
        data["run_dir"] = str(self.run_dir)
        data["test"] = {key: json_number(value) for key, value in self.test.items()}
        return {key: json_number(value) for key, value in data.items()}


def find_runs(path: str | os.PathLike, *, all_keys: bool = False) -> list[RunInfo]:
    """The runs under ``path`` (an OUTPUT_DIR, a project directory or one run directory), oldest first.

    ``all_keys``: the differences include the keys that name where a run lives (RUN_DIR, OUTPUT_DIR, RESUME).
    """
    directories = run_directories(path)
    configs = [read_config(directory) for directory in directories]
    runs = [read_run(directory, config) for directory, config in zip(directories, configs)]
    differences: list[dict[str, Any]] = [{} for _ in runs]
    for project in {run.project for run in runs}:
        members = [i for i, run in enumerate(runs) if run.project == project]
        found = config_differences([configs[i] for i in members], all_keys=all_keys)
        for i, difference in zip(members, found):
            differences[i] = difference
    runs = [dataclasses.replace(run, differences=d) for run, d in zip(runs, differences)]
    return sorted(runs, key=lambda run: (run.started is None, run.started or 0.0, str(run.run_dir)))


def run_directories(path: str | os.PathLike) -> list[Path]:
    """``path`` itself when it is a run, else the runs among its children and grandchildren."""
    root = Path(path)
    if not root.is_dir():
        what = "is a file, not a folder" if root.exists() else "does not exist"
        raise ConfigError(f"{path} {what}; give an OUTPUT_DIR (default: work_dirs), a project or a run directory")
    if is_run_dir(root):
        return [root]
    found: list[Path] = []
    for child in _folders(root):
        found += [child] if is_run_dir(child) else [grandchild for grandchild in _folders(child) if is_run_dir(grandchild)]
    return found


def is_run_dir(path: Path) -> bool:
    return any((path / marker).exists() for marker in RUN_MARKERS)


def read_run(run_dir: str | os.PathLike, config: Mapping[str, Any] | None = None) -> RunInfo:
    """What one run directory says about its run (``config``: its flattened config.yaml, when already read)."""
    run_dir = Path(run_dir).resolve()
    config = read_config(run_dir) if config is None else config
    state = read_status(run_dir) or {}
    summary = state.get("summary") or {}
    # metrics.jsonl can be long: read only when the summary (written as a run ends) lacks what it would give
    records = read_metrics(run_dir) if summary.get("best_value") is None else []
    status = current_status(state) if state else "unknown"
    monitor = summary.get("monitor") or config.get("TRAINER.MONITOR")
    best, best_step = summary.get("best_value"), summary.get("best_step")
    if best is None and monitor:
        best, best_step = best_of(records, monitor, str(config.get("TRAINER.MONITOR_MODE", "min")))
    started = state.get("started") or _first_write(run_dir)
    return RunInfo(
        project=str(config.get("TRAINER.PROJECT_NAME") or run_dir.parent.name), run_dir=run_dir,
        status=status, started=started, duration_s=_duration(run_dir, status, state, started),
        steps=_counter("global_step", "step", summary, state, records),
        epochs=_counter("epoch", "epoch", summary, state, records),
        monitor=monitor, best=best, best_step=best_step,
        test=dict(summary.get("test") or last_values(records, "test/")),
        samples_per_s=summary.get("samples_per_s") or _mean(series(records, "train/samples_per_s")[1]),
        error=state.get("error"),
    )


def read_config(run_dir: Path) -> dict[str, Any]:
    """The run's config.yaml flattened to dotted keys (``TRAINER.OPTIMIZER_KWARGS.lr``); {} when unreadable."""
    try:
        config = yaml.safe_load((Path(run_dir) / CONFIG_FILE).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return {}
    return flat_params(config) if isinstance(config, Mapping) else {}


def read_metrics(run_dir: str | os.PathLike) -> list[dict[str, Any]]:
    """The records of RUN_DIR/metrics.jsonl, "nan"/"inf" strings as floats; lines a crash cut short are skipped."""
    try:
        lines = (Path(run_dir) / METRICS_FILE).read_text(encoding="utf-8").splitlines()
    except OSError:
        return []
    records = []
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict):
            records.append({key: _number(value) for key, value in record.items()})
    return records


def series(records: Sequence[Mapping[str, Any]], metric: str) -> tuple[list[int], list[float]]:
    """Steps and values of ``metric`` (non-finite values as NaN) in the records that hold it."""
    points = [(int(r.get("step") or 0), float(r[metric])) for r in records if isinstance(r.get(metric), (int, float))]
    return [step for step, _ in points], [value if math.isfinite(value) else math.nan for _, value in points]


def best_of(records: Sequence[Mapping[str, Any]], metric: str, mode: str) -> tuple[float | None, int | None]:
    """The best finite value of ``metric`` (``mode`` min or max) and its step; the first one on ties."""
    best: tuple[float | None, int | None] = (None, None)
    for step, value in zip(*series(records, metric)):
        if math.isfinite(value) and (best[0] is None or (value < best[0] if mode == "min" else value > best[0])):
            best = (value, step)
    return best


def metric_mode(metric: str) -> str:
    """min for losses, perplexities and error rates; max for everything else (accuracy, f1, ...)."""
    return "min" if any(word in metric.lower() for word in ("loss", "perplexity", "error")) else "max"


def metric_value(run: RunInfo, metric: str, mode: str) -> float | None:
    """``metric`` of ``run`` to rank it by: a test metric as measured, others at their best over the run."""
    if metric in run.test:
        value = run.test[metric]
        return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None
    value, _ = best_of(read_metrics(run.run_dir), metric, mode)
    return run.best if value is None and metric == run.monitor else value


def last_values(records: Sequence[Mapping[str, Any]], prefix: str) -> dict[str, Any]:
    """The keys starting with ``prefix`` of the last record that holds any."""
    for record in reversed(records):
        values = {key: value for key, value in record.items() if key.startswith(prefix)}
        if values:
            return values
    return {}


def config_differences(configs: Sequence[Mapping[str, Any]], *, all_keys: bool = False) -> list[dict[str, Any]]:
    """For each flattened config, its values of the keys that are not the same in all of them.

    An empty config (a run without config.yaml) takes no part. ``all_keys`` compares PLACE_KEYS too.
    """
    compared = [config for config in configs if config]
    keys = {key for config in compared for key in config if all_keys or key not in PLACE_KEYS}
    differing = sorted(key for key in keys if len({_comparable(config.get(key, _MISSING)) for config in compared}) > 1)
    return [{key: config[key] for key in differing if key in config} for config in configs]


def _comparable(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def _counter(summary_key: str, record_key: str, summary: Mapping[str, Any], state: Mapping[str, Any],
             records: Sequence[Mapping[str, Any]]) -> int | None:
    """A progress counter: the summary's, else the furthest the heartbeat or metrics.jsonl got."""
    if summary.get(summary_key) is not None:
        return int(summary[summary_key])
    seen = [int(r[record_key]) for r in records if isinstance(r.get(record_key), (int, float))]
    if state.get(summary_key) is not None:
        seen.append(int(state[summary_key]))
    return max(seen) if seen else None


def _duration(run_dir: Path, status: str, state: Mapping[str, Any], started: float | None) -> float | None:
    """Seconds from start to the end (or to now while running, or to the last write of a run that vanished)."""
    if started is None:
        return None
    end = time.time() if status == "running" else state.get("finished") or _last_write(run_dir)
    return max(float(end) - float(started), 0.0) if end else None


def _first_write(run_dir: Path) -> float | None:
    times = _mtimes(run_dir, (CONFIG_FILE, "train.log", METRICS_FILE))
    return min(times) if times else None


def _last_write(run_dir: Path) -> float | None:
    times = _mtimes(run_dir, (METRICS_FILE, "train.log", STATUS_FILE))
    return max(times) if times else None


def _mtimes(run_dir: Path, names: Sequence[str]) -> list[float]:
    return [(run_dir / name).stat().st_mtime for name in names if (run_dir / name).exists()]


def _folders(path: Path) -> list[Path]:
    try:
        return sorted(child for child in path.iterdir() if child.is_dir() and not child.name.startswith("."))
    except OSError:
        return []


def _mean(values: Sequence[float]) -> float | None:
    finite = [value for value in values if math.isfinite(value)]
    return sum(finite) / len(finite) if finite else None


def _number(value: Any) -> Any:
    """JsonlTracker writes non-finite floats as strings; read them back as floats."""
    if isinstance(value, str) and value.lower() in ("nan", "inf", "-inf", "infinity", "-infinity"):
        return float(value)
    return value


__all__ = [
    "RunInfo", "best_of", "config_differences", "find_runs", "is_run_dir", "last_values", "metric_mode",
    "metric_value", "read_config", "read_metrics", "read_run", "run_directories", "series",
]
