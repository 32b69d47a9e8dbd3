"""`trainlab plot RUN_DIR [RUN_DIR ...]`: the runs' metric curves overlaid in one PNG, one panel per metric."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import ConfigError

DEFAULT_OUTPUT = "plot.png"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="run directories (see `trainlab runs`)")
    parser.add_argument("--metrics", help="comma-separated panels, e.g. train/loss,val/f1 "
                                          "(default: train/loss, train/lr and every val/* metric)")
    parser.add_argument("--output", default=DEFAULT_OUTPUT, help=f"PNG file to write (default: {DEFAULT_OUTPUT})")
    parser.add_argument("--overwrite", action="store_true", help="replace --output if it exists")


def run(args: argparse.Namespace) -> int:
    from ..plots import plot_runs

    output = Path(args.output)
    if output.suffix.lower() != ".png":
        raise ConfigError(f"--output {output}: give a .png file name")
    if output.exists() and not args.overwrite:
        raise ConfigError(f"{output} already exists; choose another --output, or pass --overwrite to replace it")
    for path in plot_runs(args.run_dirs, parse_metrics(args.metrics), output):
        print(f"wrote {path}")
    return 0


def parse_metrics(text: str | None) -> list[str] | None:
    if text is None:
        return None
    metrics = [name.strip() for name in text.split(",") if name.strip()]
    if not metrics:
        raise ConfigError(f"--metrics {text!r}: name at least one metric, e.g. --metrics train/loss,val/f1")
    return metrics
