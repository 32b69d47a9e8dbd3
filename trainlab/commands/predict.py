"""`trainlab predict`: class probabilities of a saved model for new rows in a CSV file."""

from __future__ import annotations

import csv
import os
from pathlib import Path

from ..config import Config
from ..errors import ConfigError


def predict_csv(cfg: Config, checkpoint: str, input_csv: str, output_csv: str, *, overwrite: bool = False) -> int:
    """Score ``input_csv`` with the model at ``checkpoint``; writes id (see ``row_ids``), per-class probabilities,
    prediction.

    The dataset class of DATASET.TRAIN must offer ``from_csv(csv, root, tokenizer=..., max_length=...)``,
    which prepares rows exactly as training did (e.g. the saved standardisation of tabular features).
    An existing ``output_csv`` is replaced only with ``overwrite``, and never when it is the input.
    Returns the number of rows written.
    """
    import torch

    from ..engine.data import move_to_device
    from ..engine.setup import seed_everything
    from ..registries import DATASETS
    from ..validation import check_components
    from .evaluate import inference_trainer

    check_paths(input_csv, output_csv, overwrite)  # first: whatever the config, nothing of the user's is replaced
    check_components(cfg)
    section = cfg.DATASET.TRAIN
    dataset_class = DATASETS.get(section.NAME)
    if not hasattr(dataset_class, "from_csv"):
        raise ConfigError(
            f"{section.NAME} cannot read new rows from a CSV (it has no from_csv); predict needs a dataset that does"
        )
    seed_everything(cfg.TRAINER.SEED)
    trainer = inference_trainer(cfg, checkpoint)
    dataset = dataset_class.from_csv(
        input_csv,
        section.ROOT,
        tokenizer=getattr(trainer.model, "tokenizer", None),
        max_length=section.get("MAX_LENGTH", 256),
    )
    trainer.model.eval()
    loader = trainer.prepare_dataloader(dataset, trainer.batch_size_eval, train=False)
    probabilities = []
    with torch.no_grad():
        for batch in loader:
            outputs = trainer.forward(move_to_device(batch, trainer.device))
            probabilities.append(torch.softmax(getattr(outputs, "logits", outputs).float(), dim=-1).cpu())
    probs = torch.cat(probabilities)
    names = list(getattr(dataset, "label_names", []) or _label_names(section.ROOT, probs.shape[1]))
    id_column, ids = row_ids(dataset, len(probs))
    _write(output_csv, id_column, ids, probs, names)
    dropped = {k: v for k, v in getattr(dataset, "dropped_rows", {}).items() if v}
    if dropped:
        trainer.logger.warning(
            "rows not scored (unusable): %s", ", ".join(f"{k}: {v}" for k, v in dropped.items())
        )
    return len(probs)


def check_paths(input_csv: str, output_csv: str, overwrite: bool) -> None:
    """The input exists, and the output can be written without destroying anything the user did not offer."""
    source, target = Path(input_csv), Path(output_csv)
    if not source.is_file():
        raise ConfigError(f"--input {input_csv}: file not found")
    if target.exists() and target.resolve() == source.resolve():
        raise ConfigError(f"--output {output_csv} is the --input file; write the predictions to another file")
    if target.is_dir():
        raise ConfigError(f"--output {output_csv} is a folder; name the CSV file to write, e.g. {target / 'predictions.csv'}")
    if target.exists() and not overwrite:
        raise ConfigError(f"--output {output_csv} already exists; choose another file, or pass --overwrite to replace it")
    folder = target.parent
    if not folder.is_dir():
        raise ConfigError(f"--output {output_csv}: folder {folder} does not exist; create it or choose another path")
    if not os.access(folder, os.W_OK):
        raise ConfigError(f"--output {output_csv}: folder {folder} is not writable; choose another path")


def _label_names(root: str, count: int) -> list[str]:
    import json

    info = Path(root) / "preprocess.json"
    if info.is_file():
        names = json.loads(info.read_text(encoding="utf-8")).get("label_names")
        if names and len(names) == count:
            return names
    return [str(i) for i in range(count)]


def row_ids(dataset: object, count: int) -> tuple[str, list]:
    """The id column of the predictions and its values: the dataset's ``row_ids`` under its ``id_column``
    (default ``id``), its ``post_ids`` as ``PostId`` (the Stack Overflow datasets), else the row number."""
    if hasattr(dataset, "row_ids"):
        return getattr(dataset, "id_column", "id"), list(dataset.row_ids)
    if hasattr(dataset, "post_ids"):
        return "PostId", list(dataset.post_ids)
    return "row", list(range(count))


def _write(path: str, id_column: str, ids: list, probs: object, names: list[str]) -> None:
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow([id_column, *[f"prob_{name}" for name in names], "prediction"])
        for row_id, row in zip(ids, probs.tolist()):  # type: ignore[attr-defined]
            writer.writerow(
                [row_id, *[f"{p:.6f}" for p in row], names[max(range(len(row)), key=row.__getitem__)]]
            )
    os.replace(tmp, path)
