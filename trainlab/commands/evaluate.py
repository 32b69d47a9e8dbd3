"""`trainlab eval`: the metrics of a saved model on any split of the configured data.

Run on N processes (``trainlab eval --nproc N``), each process is ``python -m trainlab.commands.evaluate
CONFIG [overrides] --checkpoint ...``: each evaluates its shard of the split, and rank 0 reports the metrics,
which are exact over the whole split, and with ``--report DIR`` writes a classification report there
(:mod:`trainlab.reports`).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from ..config import Config
from ..errors import ConfigError, DataError

SPLITS = {"train": "TRAIN", "val": "VAL", "validation": "VAL", "test": "TEST"}


def resolve_weights(checkpoint: str) -> Path:
    """The weights of a checkpoint path: a .safetensors file, or a checkpoint directory (whole or sharded) — the
    given one, or a run directory's best checkpoint, else its latest."""
    from ..engine.checkpoint_files import (
        MODEL_FILE,
        SHARDED_DIR,
        best_checkpoint,
        is_complete,
        latest_checkpoint,
    )

    path = Path(checkpoint)
    if path.is_file():
        return path
    if (path / MODEL_FILE).is_file() or (path / SHARDED_DIR).is_dir() and is_complete(path):
        return path
    checkpoints = path / "checkpoints"
    found = (best_checkpoint(checkpoints) or latest_checkpoint(checkpoints)) if checkpoints.is_dir() else None
    if found is not None:
        return found
    raise ConfigError(f"--checkpoint {checkpoint}: no model weights there (expected a run directory, a checkpoint "
                      f"directory, or a .safetensors file)")


def saved_shapes(weights: Path, checkpoint: str) -> dict[str, list[int]] | None:
    """Tensor shapes from the header of the checkpoint's safetensors file (None for a sharded checkpoint); a file
    that is not readable safetensors (truncated, random bytes, another format) raises ConfigError naming it."""
    from safetensors import SafetensorError, safe_open

    from ..engine.checkpoint_files import MODEL_FILE

    file = weights if weights.is_file() else weights / MODEL_FILE
    if not file.is_file():
        return None
    try:
        with safe_open(str(file), framework="pt") as handle:
            names = handle.keys()  # a safe_open handle is not iterable
            return {name: list(handle.get_slice(name).get_shape()) for name in names}
    except (SafetensorError, OSError) as error:
        where = f"--checkpoint {file}" if file == Path(checkpoint) else f"--checkpoint {checkpoint}: {file}"
        raise ConfigError(f"{where} is not a readable safetensors file ({error}); it is damaged or not model "
                          f"weights — pass another checkpoint or .safetensors file") from None


def shape_differences(saved: dict[str, list[int]], current: dict[str, list[int]]) -> list[str]:
    """``name: [saved] in the checkpoint, [current] in the model`` for every tensor both have at different shapes."""
    return [f"{name}: {saved[name]} in the checkpoint, {shape} in the model"
            for name, shape in current.items() if name in saved and list(saved[name]) != list(shape)]


def inference_trainer(cfg: Config, checkpoint: str) -> Any:
    """The configured trainer, set up for evaluation, with the checkpoint's weights in its model.

    The trainer's ``custom_setup`` runs before the weights load, so adapters it adds (LORATrainer) are
    there to receive theirs; shapes must match exactly. The checkpoint is found and its header read before
    the model is built, so a wrong path or a damaged file costs nothing.
    """
    from ..components import build_model, build_trainer
    from ..engine import distributed

    weights = resolve_weights(checkpoint)
    shapes = saved_shapes(weights, checkpoint)
    trainer = build_trainer(cfg, build_model(cfg))
    trainer.setup(distributed.get_rank(), distributed.get_world_size(), for_training=False)
    fix = "use the config the checkpoint was trained with"
    changed = shape_differences(shapes, trainer.strategy.parameter_shapes()) if shapes is not None else []
    if changed:
        more = f" and {len(changed) - 3} more" if len(changed) > 3 else ""
        raise ConfigError(f"{weights} does not fit the configured model ({'; '.join(changed[:3])}{more}); {fix}")
    try:
        if weights.is_dir():  # written by any strategy, at any world size
            trainer.strategy.load_checkpoint_weights(weights)
        else:
            trainer.strategy.load_weights(weights, strict=True)
    except RuntimeError as exc:  # missing or unexpected tensors: torch names them over several lines
        detail = " ".join(str(exc).split())
        detail = detail if len(detail) <= 400 else detail[:400] + " …"
        raise ConfigError(f"{weights} does not fit the configured model ({detail}); {fix}") from None
    return trainer


def check_evaluation(cfg: Config, checkpoint: str, split: str) -> str:
    """Raise the user's mistakes (split, components, data folder, checkpoint path) before anything loads;
    returns the split's DATASET section."""
    from ..run_dir_checks import dataset_errors
    from ..validation import check_components

    if split not in SPLITS:
        raise ConfigError(f"--split must be one of {', '.join(SPLITS)}, got '{split}'")
    section = SPLITS[split]
    if not cfg.DATASET[section].NAME:
        raise ConfigError(f"DATASET.{section}.NAME is empty: configure the {split} split to evaluate on it")
    check_components(cfg)
    problems = dataset_errors(cfg, (section,))  # a missing or empty data folder, found before the model loads
    if problems:
        raise DataError("\n".join(problems))
    resolve_weights(checkpoint)
    return section


def evaluate_checkpoint(cfg: Config, checkpoint: str, split: str = "test", report: str | None = None) -> dict[str, float]:
    """Metrics of the model at ``checkpoint`` on DATASET.<split>, across all processes of this job; with
    ``report``, rank 0 writes the classification report of the evaluation into that folder."""
    from ..components import build_datasets
    from ..engine import distributed
    from ..engine.setup import seed_everything
    from ..engine.strategies import resolve_device

    section = check_evaluation(cfg, checkpoint, split)
    distributed.init_distributed(resolve_device(cfg.TRAINER.DEVICE).type, timeout_s=cfg.TRAINER.TIMEOUT_S)
    try:
        seed_everything(cfg.TRAINER.SEED)
        trainer = inference_trainer(cfg, checkpoint)
        dataset = build_datasets(cfg, trainer.model, splits=(section,))[section.lower()]
        metrics = trainer.evaluate_dataset(dataset, prefix=split)
        if report is not None and distributed.is_main_process():
            write_evaluation_report(trainer, dataset, report)
        return metrics
    finally:
        distributed.cleanup()


def write_evaluation_report(trainer: Any, dataset: Any, report: str) -> None:
    """The report of the trainer's last evaluation (of ``dataset``), its classes named as the data or model name them."""
    from ..reports import find_class_names, is_classification_state, write_report

    state = trainer.last_eval_state
    names = (find_class_names(state["probabilities"].shape[1], dataset, trainer, trainer.unwrapped_model)
             if is_classification_state(state) else None)
    write_report(state, report, names)  # ConfigError for an evaluation that did not classify
    trainer.logger.info("evaluation report: %s", report)


def report_metrics(metrics: dict[str, float], output: str | None = None) -> None:
    """Print the metrics as JSON (and write them to ``output``) once per job: on rank 0."""
    from ..engine import distributed

    if not distributed.is_main_process():
        return
    text = json.dumps(metrics, indent=1)
    print(text)
    if output is not None:
        Path(output).write_text(text + "\n", encoding="utf-8")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m trainlab.commands.evaluate", description=__doc__)
    parser.add_argument("config", help="YAML config file")
    parser.add_argument("overrides", nargs="*", help="KEY VALUE pairs or KEY=VALUE items")
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--split", default="test")
    parser.add_argument("--output")
    parser.add_argument("--report", metavar="DIR")
    parser.add_argument("--overwrite", action="store_true")
    parser.add_argument("--import", dest="imports", action="append", default=[], metavar="MODULE")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of user errors")
    return parser.parse_intermixed_args(argv)


def worker_arguments(args: argparse.Namespace) -> list[str]:
    """The command line of ``parse_args`` for the parsed ``trainlab eval`` options ``args``."""
    arguments = [args.config, *args.overrides, "--checkpoint", args.checkpoint, "--split", args.split]
    arguments += ["--output", args.output] if args.output is not None else []
    arguments += ["--report", args.report] if args.report is not None else []
    arguments += ["--overwrite"] if args.overwrite else []
    arguments += [arg for module in args.imports for arg in ("--import", module)]
    return arguments + (["--debug"] if args.debug else [])


def main(argv: list[str] | None = None) -> int:
    """One process of a distributed evaluation (started by ``trainlab eval --nproc N``)."""
    from ..reports import check_report_dir
    from ..validation import prepare_config
    from .train import run_guarded

    args = parse_args(argv)

    def job() -> None:
        if args.report is not None:
            check_report_dir(args.report, args.overwrite)
        cfg = prepare_config(args.config, args.overrides, args.imports)
        report_metrics(evaluate_checkpoint(cfg, args.checkpoint, args.split, args.report), args.output)

    return run_guarded(job, args.debug)


if __name__ == "__main__":
    sys.exit(main())
