"""`trainlab runs [PATH]`: one line per run — status, progress, best and test metrics, time, throughput, and the
config keys that differ between the runs of a project."""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ..config.defaults import DEFAULTS
from ..errors import ConfigError
from ..runs import RunInfo, find_runs, metric_mode, metric_value, read_config
from ..utils.durations import format_duration

SHOWN_KEYS = 4  # differing config keys shown per run without --all-keys
VALUE_WIDTH = 40  # longer config values are cut


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("path", nargs="?", default=DEFAULTS["TRAINER"]["OUTPUT_DIR"],
                        help="an OUTPUT_DIR, a project or a run directory (default: work_dirs)")
    parser.add_argument("--json", action="store_true", help="print a JSON list of the runs (for scripts)")
    parser.add_argument("--best", metavar="METRIC[:min|max]",
                        help="sort by this metric, best first (min for loss/perplexity/error, else max)")
    parser.add_argument("--all-keys", action="store_true",
                        help="show every differing config key by its full name, RUN_DIR/OUTPUT_DIR/RESUME too")


def run(args: argparse.Namespace) -> int:
    runs = find_runs(args.path, all_keys=args.all_keys)
    ranking = parse_best(args.best) if args.best else None
    values: dict[Path, float | None] = {}
    if ranking is not None:
        runs, values = rank_runs(runs, *ranking)
        if runs and all(value is None for value in values.values()):
            monitors = sorted({run.monitor for run in runs if run.monitor})
            raise ConfigError(f"--best {args.best}: no run logged {ranking[0]}; "
                              f"name a metric of metrics.jsonl, e.g. {', '.join(monitors) or 'val/loss'}")
    if args.json:
        print(json.dumps([run.to_json() | _ranked(run, ranking, values) for run in runs], indent=1))
    elif not runs:
        print(f"no runs in {args.path}")
    else:
        print(runs_table(runs, all_keys=args.all_keys, ranking=ranking[0] if ranking else None, values=values))
    return 0


def parse_best(text: str) -> tuple[str, str]:
    """``val/f1`` or ``val/loss:min`` → (metric, mode)."""
    metric, _, mode = text.rpartition(":") if text.endswith((":min", ":max")) else (text, "", "")
    if not metric or ":" in metric:
        raise ConfigError(f"--best {text}: give a metric name, optionally with :min or :max (e.g. val/loss:min)")
    return metric, mode or metric_mode(metric)


def rank_runs(runs: Sequence[RunInfo], metric: str, mode: str) -> tuple[list[RunInfo], dict[Path, float | None]]:
    """The runs best first by ``metric`` (those without it last, oldest first), and each run's value."""
    values = {run.run_dir: metric_value(run, metric, mode) for run in runs}
    sign = 1.0 if mode == "min" else -1.0

    def key(run: RunInfo) -> tuple[bool, float]:
        value = values[run.run_dir]
        return value is None, sign * value if value is not None else 0.0

    return sorted(runs, key=key), values


def runs_table(runs: Sequence[RunInfo], *, all_keys: bool = False, ranking: str | None = None,
               values: Mapping[Path, float | None] | None = None) -> str:
    """The aligned text table; columns that are empty for every run are left out."""
    header = ["project", "run", "status", "steps", "epochs", "best", "test", "time", "samples/s", "config"]
    known = set().union(*(read_config(run.run_dir) for run in runs))
    rows = [_row(run, all_keys, known) for run in runs]
    if ranking is not None and not all(run.monitor == ranking for run in runs):
        header.insert(6, ranking)
        for row, run in zip(rows, runs):
            row.insert(6, _number((values or {}).get(run.run_dir)))
    kept = [i for i in range(len(header)) if any(row[i] for row in rows)]
    table = [[header[i] for i in kept]] + [[row[i] for i in kept] for row in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(kept))]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip() for line in table)


def _row(run: RunInfo, all_keys: bool, known: set[str]) -> list[str]:
    return [run.project, shown_path(run.run_dir), run.status, _number(run.steps), _number(run.epochs),
            _best_cell(run), _test_cell(run), format_duration(run.duration_s), _number(run.samples_per_s),
            _config_cell(run.differences, all_keys, known)]


def shown_path(path: Path) -> str:
    """``path`` relative to the current folder when that is shorter."""
    relative = os.path.relpath(path)
    return relative if len(relative) < len(str(path)) else str(path)


def _best_cell(run: RunInfo) -> str:
    if run.best is None:
        return ""
    return f"{run.monitor}={_number(run.best)}" + (f" @{run.best_step}" if run.best_step is not None else "")


def _test_cell(run: RunInfo) -> str:
    """The test counterpart of the monitored metric if measured, else every test metric."""
    counterpart = "test/" + (run.monitor or "").partition("/")[2]
    shown = [counterpart] if counterpart in run.test else [k for k in run.test if not k.endswith("num_samples")]
    return " ".join(f"{key}={_number(run.test[key])}" for key in shown)


def _config_cell(differences: Mapping[str, Any], all_keys: bool, known: set[str]) -> str:
    names = dict(zip(differences, differences)) if all_keys else short_names(differences, known)
    cells = [f"{names[key]}={_value(value)}" for key, value in differences.items()]
    if not all_keys and len(cells) > SHOWN_KEYS:
        cells = cells[:SHOWN_KEYS] + [f"(+{len(cells) - SHOWN_KEYS}, --all-keys)"]
    return " ".join(cells)


def short_names(keys: Iterable[str], among: Iterable[str] = ()) -> dict[str, str]:
    """Each dotted key by its shortest trailing part that no other key (of ``keys`` and ``among``) ends with:
    ``lr`` for TRAINER.OPTIMIZER_KWARGS.lr, ``TEST.SIZE`` for DATASET.TEST.SIZE next to DATASET.TRAIN.SIZE."""
    others = [other.split(".") for other in {*keys, *among}]
    names = {}
    for key in keys:
        split = key.split(".")
        size = next(size for size in range(1, len(split) + 1)
                    if sum(other[-size:] == split[-size:] for other in others) <= 1)
        names[key] = ".".join(split[-size:])
    return names


def _value(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"), default=str)
    text = text or '""'
    return text if len(text) <= VALUE_WIDTH else text[: VALUE_WIDTH - 1] + "…"


def _number(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.0f}" if abs(value) >= 1000 else f"{value:.4g}"
    return str(value)


def _ranked(run: RunInfo, ranking: tuple[str, str] | None, values: Mapping[Path, float | None]) -> dict[str, Any]:
    """The value a run was ranked by, for --json with --best."""
    return {} if ranking is None else {"ranked_by": ranking[0], "ranked_value": values.get(run.run_dir)}
