"""Where metrics go: metrics.jsonl, TensorBoard, MLflow, Weights & Biases (TRAINER.LOGGERS); rank 0 only.

A tracker is a class in the TRACKERS registry built as ``cls(run_dir=..., project=..., run_name=..., params=...)``
with ``log(metrics, step, epoch)`` and ``close(status)``. A tracker that cannot start (not installed, no
server) costs a one-line warning and the run goes on without it; one that fails while logging is dropped the
same way. Nothing a tracker does can lose the run.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..registries import TRACKERS
from .logging import get_logger


@TRACKERS.register_module(name=["jsonl", "JsonlTracker"])
class JsonlTracker:
    """Appends ``{"step", "epoch", "<tag>": value}`` lines to RUN_DIR/metrics.jsonl (what `trainlab runs` reads)."""

    def __init__(self, run_dir: Path, **_: Any) -> None:
        self.path = Path(run_dir) / "metrics.jsonl"

    def log(self, metrics: Mapping[str, Any], step: int, epoch: int | None = None) -> None:
        record = {"step": step, "epoch": epoch, **{k: json_number(v) for k, v in metrics.items()}}
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")

    def close(self, status: str = "finished") -> None:
        pass


@TRACKERS.register_module(name=["tensorboard", "TensorBoardTracker"])
class TensorBoardTracker:
    """Scalars to RUN_DIR/tb for TensorBoard."""

    def __init__(self, run_dir: Path, **_: Any) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(Path(run_dir) / "tb"))

    def log(self, metrics: Mapping[str, Any], step: int, epoch: int | None = None) -> None:
        for key, value in metrics.items():
            if isinstance(value, (int, float)):
                self.writer.add_scalar(key, value, step)

    def close(self, status: str = "finished") -> None:
        self.writer.close()


@TRACKERS.register_module(name=["mlflow", "MLflowTracker"])
class MLflowTracker:
    """An MLflow run (experiment = PROJECT_NAME, run name = the run directory's name) with the resolved config as
    parameters. Tracking URI: $MLFLOW_TRACKING_URI, else the local store OUTPUT_DIR/mlruns next to the runs."""

    def __init__(self, run_dir: Path, project: str, run_name: str, params: Mapping[str, Any], **_: Any) -> None:
        import mlflow

        uri = os.environ.get("MLFLOW_TRACKING_URI") or (Path(run_dir).resolve().parent.parent / "mlruns").as_uri()
        if uri.startswith("file:"):
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow 3 keeps the file store behind this flag
        self.client = mlflow.MlflowClient(tracking_uri=uri)
        experiment = self.client.get_experiment_by_name(project)
        experiment_id = experiment.experiment_id if experiment else self.client.create_experiment(project)
        self.run_id = self.client.create_run(experiment_id, run_name=run_name).info.run_id
        items = [mlflow.entities.Param(key, str(value)[:6000]) for key, value in params.items()]
        for start in range(0, len(items), 100):  # MLflow takes at most 100 parameters per batch
            self.client.log_batch(self.run_id, params=items[start:start + 100])
        (Path(run_dir) / "mlflow_run.json").write_text(json.dumps({"tracking_uri": uri, "run_id": self.run_id}))

    def log(self, metrics: Mapping[str, Any], step: int, epoch: int | None = None) -> None:
        from mlflow.entities import Metric

        now = _now_ms()
        values = [Metric(key, float(value), now, step) for key, value in metrics.items()
                  if isinstance(value, (int, float)) and math.isfinite(value)]
        if values:
            self.client.log_batch(self.run_id, metrics=values)

    def close(self, status: str = "finished") -> None:
        self.client.set_terminated(self.run_id, "FINISHED" if status == "finished" else "FAILED")


@TRACKERS.register_module(name=["wandb", "WandbTracker"])
class WandbTracker:
    """A Weights & Biases run (project = PROJECT_NAME) in RUN_DIR/wandb; offline unless $WANDB_MODE says otherwise."""

    def __init__(self, run_dir: Path, project: str, run_name: str, params: Mapping[str, Any], **_: Any) -> None:
        import wandb

        mode = os.environ.get("WANDB_MODE", "offline")
        self.run = wandb.init(project=project, name=run_name, dir=str(run_dir), config=dict(params), mode=mode,
                              reinit="create_new", settings=wandb.Settings(silent=True))
        if mode == "offline":
            folder = Path(self.run.dir).parent
            get_logger().info("wandb: offline run in %s (upload it with `wandb sync %s`)", folder, folder)

    def log(self, metrics: Mapping[str, Any], step: int, epoch: int | None = None) -> None:
        self.run.log(dict(metrics), step=step)

    def close(self, status: str = "finished") -> None:
        self.run.finish(exit_code=0 if status == "finished" else 1)


class MetricsWriter:
    """Sends each metrics record to every tracker of TRAINER.LOGGERS; a tracker that fails is warned about once
    and dropped, so logging never ends a run."""

    def __init__(self, run_dir: str | Path, loggers: list[str] | tuple[str, ...] = ("tensorboard", "jsonl"),
                 project: str = "", params: Mapping[str, Any] | None = None) -> None:
        run_dir = Path(run_dir)
        self.trackers: dict[str, Any] = {}
        for name in loggers:
            try:
                cls = TRACKERS.get(name)
                self.trackers[name] = cls(run_dir=run_dir, project=project or run_dir.parent.name,
                                          run_name=run_dir.name, params=dict(params or {}))
            except Exception as error:  # noqa: BLE001 - a tracker must never stop the run
                get_logger().warning("logger %s did not start (%s): the run goes on without it", name,
                                     _one_line(error))

    def write(self, metrics: Mapping[str, Any], step: int, epoch: int | None = None) -> None:
        self._each("log", metrics, step, epoch)

    def close(self, status: str = "finished") -> None:
        self._each("close", status)
        self.trackers.clear()

    def _each(self, method: str, *args: Any) -> None:
        for name, tracker in list(self.trackers.items()):
            try:
                getattr(tracker, method)(*args)
            except Exception as error:  # noqa: BLE001
                get_logger().warning("logger %s failed (%s): no more metrics go to it", name, _one_line(error))
                del self.trackers[name]


def flat_params(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"TRAINER.LR": 0.1, ...}``: a nested config flattened to dotted keys (the trackers' parameters)."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(flat_params(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def json_number(value: Any) -> Any:
    """``value`` as JSON can hold it: non-finite floats become strings ("nan", "inf")."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


def _now_ms() -> int:
    return int(time.time() * 1000)


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split()) or type(error).__name__
    return text if len(text) <= 200 else text[:200] + " …"


__all__ = ["JsonlTracker", "MLflowTracker", "MetricsWriter", "TensorBoardTracker", "WandbTracker", "flat_params"]
