"""Metric curves of runs as a PNG: one panel per metric against steps, each run in its own colour.

`trainlab plot` overlays several runs; :func:`plot_run` draws RUN_DIR/plots/metrics.png when a run ends. The
figure is drawn with Matplotlib's object API on the Agg canvas: no display, no pyplot state.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

from .errors import ConfigError, did_you_mean
from .runs import read_metrics, series

TRAIN_PANELS = ("train/loss", "train/lr")
RAW_LOSS = {"alpha": 0.3, "linewidth": 0.8}  # the raw train/loss, under its smoothed curve
MARKER_BELOW = 30  # series with fewer points get markers (a single point has no line to show)
PANEL_SIZE = (4.8, 3.2)  # inches per panel
MAX_COLUMNS = 3
MAX_POINTS = 2000  # longer series are thinned to about this many points before drawing

History = list[dict[str, Any]]


def plot_runs(run_dirs: Sequence[str | os.PathLike], metrics: Sequence[str] | None = None,
              output: str | os.PathLike = "plot.png") -> list[Path]:
    """Draw ``metrics`` (default: train/loss, train/lr and every val/* metric) of the runs into ``output``."""
    figure = build_figure(run_dirs, metrics)
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(output)
    return [output]


def plot_run(run_dir: str | os.PathLike) -> list[Path]:
    """RUN_DIR/plots/metrics.png with every panel; [] when the run logged no metrics. Never raises: a plot that
    cannot be drawn is a warning, not a failure of the run that just ended."""
    from .engine.logging import get_logger

    try:
        if not available_metrics({"run": read_metrics(run_dir)}):
            return []
        return plot_runs([run_dir], output=Path(run_dir) / "plots" / "metrics.png")
    except Exception as error:  # noqa: BLE001 — the run's results are saved; only its picture is missing
        get_logger().warning("no plot of %s (%s: %s)", run_dir, type(error).__name__, error)
        return []


def build_figure(run_dirs: Sequence[str | os.PathLike], metrics: Sequence[str] | None = None) -> Figure:
    """The figure: one panel (titled by its metric) per metric, one line per run (two for train/loss)."""
    run_dirs = list(dict.fromkeys(Path(path).resolve() for path in run_dirs))
    if not run_dirs:
        raise ConfigError("no run directory to plot: name one or more RUN_DIRs")
    missing = [str(path) for path in run_dirs if not path.is_dir()]
    if missing:
        raise ConfigError(f"{', '.join(missing)}: no such run directory; give the folders `trainlab runs` lists")
    histories = {label: read_metrics(path) for label, path in zip(run_labels(run_dirs), run_dirs)}
    panels = choose_panels(histories, metrics, run_dirs)
    columns = min(len(panels), MAX_COLUMNS)
    rows = math.ceil(len(panels) / columns)
    figure = Figure(figsize=(PANEL_SIZE[0] * columns, PANEL_SIZE[1] * rows), layout="constrained")
    FigureCanvasAgg(figure)
    for index, metric in enumerate(panels):
        draw_panel(figure.add_subplot(rows, columns, index + 1), metric, histories)
    if len(histories) > 1:
        handles = [Line2D([], [], color=_color(index)) for index in range(len(histories))]
        figure.legend(handles, list(histories), loc="outside upper center", ncols=min(len(histories), 4))
    else:
        figure.suptitle(next(iter(histories)))
    return figure


def draw_panel(axes: Any, metric: str, histories: Mapping[str, History]) -> None:
    """``metric`` of every run: raw and smoothed for train/loss, else the logged points."""
    for index, records in enumerate(histories.values()):
        steps, values = series(records, metric)
        if not steps:
            continue
        style = {"color": _color(index), "marker": "o" if len(steps) < MARKER_BELOW else None, "markersize": 3}
        if metric == "train/loss":
            axes.plot(thin(steps), thin(values), **{**style, **RAW_LOSS})
            axes.plot(thin(steps), thin(smooth(values)), color=_color(index), linewidth=1.6)
        else:
            axes.plot(thin(steps), thin(values), linewidth=1.4, **style)
    axes.set_title(metric)
    axes.set_xlabel("step")
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.grid(True, alpha=0.3)


def available_metrics(histories: Mapping[str, History]) -> list[str]:
    """train/loss and train/lr, then the validation metrics (not val/num_samples), as far as any run logged them."""
    logged = {key for records in histories.values() for record in records for key in record
              if isinstance(record[key], (int, float))}
    validation = sorted(key for key in logged if key.startswith("val/") and not key.endswith("/num_samples"))
    return [key for key in TRAIN_PANELS if key in logged] + validation


def choose_panels(histories: Mapping[str, History], metrics: Sequence[str] | None,
                  run_dirs: Sequence[str | os.PathLike]) -> list[str]:
    """The requested metrics, each logged by some run; by default every available one."""
    available = available_metrics(histories)
    if metrics is None:
        if not available:
            raise ConfigError(f"no metrics to plot in {', '.join(map(str, run_dirs))}: "
                              "its metrics.jsonl is missing or empty (TRAINER.LOGGERS needs jsonl)")
        return available
    logged = {key for records in histories.values() for record in records for key in record}
    for metric in metrics:
        if metric not in logged:
            raise ConfigError(f"--metrics {metric}: no run logged it{did_you_mean(metric, sorted(logged))}; "
                              f"available: {', '.join(available) or 'none'}")
    return list(dict.fromkeys(metrics))


def smooth(values: Sequence[float], weight: float | None = None) -> list[float]:
    """Bias-corrected exponential moving average; NaN points stay gaps and do not enter the average.

    ``weight`` (the share of the past) defaults to more smoothing for longer series: 0.6 up to 50 points,
    0.98 from 1,000.
    """
    weight = min(0.98, max(0.6, 1 - 20 / max(len(values), 1))) if weight is None else weight
    smoothed, average, count = [], 0.0, 0
    for value in values:
        if not math.isfinite(value):
            smoothed.append(math.nan)
            continue
        average, count = weight * average + (1 - weight) * value, count + 1
        smoothed.append(average / (1 - weight**count))
    return smoothed


def thin(values: Sequence[Any], limit: int = MAX_POINTS) -> Sequence[Any]:
    """Every k-th point (and the last) of a long series: a panel is a few hundred pixels wide."""
    if len(values) <= limit:
        return values
    stride = math.ceil(len(values) / limit)
    return [*values[::stride], values[-1]] if (len(values) - 1) % stride else values[::stride]


def run_labels(run_dirs: Sequence[str | os.PathLike]) -> list[str]:
    """Each run by its directory name, with the project in front when two runs share a name."""
    paths = [Path(path).resolve() for path in run_dirs]
    names = [path.name for path in paths]
    labels = [f"{path.parent.name}/{path.name}" if names.count(path.name) > 1 else path.name for path in paths]
    return [label if labels.count(label) == 1 else str(path) for label, path in zip(labels, paths)]


def _color(index: int) -> str:
    return f"C{index % 10}"


__all__ = ["available_metrics", "build_figure", "plot_run", "plot_runs", "run_labels", "smooth", "thin"]
