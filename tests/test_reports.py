"""Classification reports: numbers against scikit-learn (ties, an absent class), the files, the end of training
(`trainlab eval --report`: test_eval_report.py)."""

from __future__ import annotations

import json
import logging
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure
from PIL import Image
from sklearn import metrics as sk
from torch import nn

from trainlab import BaseTrainer
from trainlab.errors import ConfigError, DataError
from trainlab.metrics import ClassificationMetrics
from trainlab.metrics.curves import precision_recall_curve, roc_curve
from trainlab.report_figures import draw_curves
from trainlab.reports import (
    REPORT_FILES,
    check_report_dir,
    classification_report,
    find_class_names,
    write_report,
    write_test_report,
)

def random_state(num_classes: int, absent: int | None = None, size: int = 300, seed: int = 0) -> dict[str, torch.Tensor]:
    """Probabilities rounded to one decimal (many tied scores) that lean towards the true class."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, num_classes, size)
    if absent is not None:
        labels[labels == absent] = (absent + 1) % num_classes
    scores = rng.random((size, num_classes))
    scores[np.arange(size), labels] += 0.4
    probabilities = np.round(scores / scores.sum(1, keepdims=True), 1)
    return {"probabilities": torch.tensor(probabilities), "labels": torch.tensor(labels)}


CASES = {"binary": (2, None), "4-class, class 2 absent": (4, 2)}


@pytest.mark.parametrize("num_classes, absent", CASES.values(), ids=CASES)
def test_numbers_match_sklearn(num_classes, absent):
    state = random_state(num_classes, absent)
    p, y = state["probabilities"].numpy(), state["labels"].numpy()
    predicted = p.argmax(1)
    report = classification_report(p, y)
    classes = list(range(num_classes))

    assert report["accuracy"] == pytest.approx(sk.accuracy_score(y, predicted), abs=1e-12)
    assert report["confusion_matrix"] == sk.confusion_matrix(y, predicted, labels=classes).tolist()
    precision, recall, f1, support = sk.precision_recall_fscore_support(y, predicted, labels=classes, zero_division=0)
    rows = report["classes"]
    assert [row["name"] for row in rows] == [str(c) for c in classes]
    assert [row["support"] for row in rows] == support.tolist()
    for key, expected in (("precision", precision), ("recall", recall), ("f1", f1)):
        assert [row[key] for row in rows] == pytest.approx(expected.tolist(), abs=1e-12)
    for average in ("macro", "weighted"):  # macro: over the classes in the labels or predictions, as sklearn
        expected = sk.precision_recall_fscore_support(y, predicted, average=average, zero_division=0)[:3]
        got = report[f"{average}_avg"]
        assert [got["precision"], got["recall"], got["f1"]] == pytest.approx(list(expected), abs=1e-12)
        assert got["support"] == len(y)
    for c, row in enumerate(rows):
        if c == absent:
            assert row["roc_auc"] is None and row["average_precision"] is None
            continue
        assert row["roc_auc"] == pytest.approx(sk.roc_auc_score(y == c, p[:, c]), abs=1e-12)
        assert row["average_precision"] == pytest.approx(sk.average_precision_score(y == c, p[:, c]), abs=1e-12)
    defined = [row["roc_auc"] for row in rows if row["roc_auc"] is not None]
    assert report["macro_avg"]["roc_auc"] == pytest.approx(sum(defined) / len(defined))
    metric = ClassificationMetrics()  # the evaluation's own numbers agree with the report's
    metric.update(torch.tensor(p).log(), torch.tensor(y))
    computed = metric.compute(metric.state())
    assert computed["f1"] == pytest.approx(report["macro_avg"]["f1"], abs=1e-12)


def test_curves_match_sklearn_with_ties():
    state = random_state(4, seed=3)
    scores, positive = state["probabilities"][:, 1], state["labels"] == 1
    fpr, tpr = roc_curve(scores, positive)
    sk_fpr, sk_tpr, thresholds = sk.roc_curve(positive.numpy(), scores.numpy(), drop_intermediate=False)
    assert len(thresholds) - 1 == len(scores.unique()) < len(scores)  # one threshold per distinct score
    np.testing.assert_allclose(fpr.numpy(), sk_fpr)
    np.testing.assert_allclose(tpr.numpy(), sk_tpr)
    recall, precision = precision_recall_curve(scores, positive)
    sk_precision, sk_recall, _ = sk.precision_recall_curve(positive.numpy(), scores.numpy())
    np.testing.assert_allclose(recall.numpy(), sk_recall[::-1])
    np.testing.assert_allclose(precision.numpy(), sk_precision[::-1])


def test_a_class_in_every_label_has_no_roc_auc():
    report = classification_report(torch.tensor([[0.9, 0.1], [0.6, 0.4], [0.2, 0.8]]), torch.tensor([0, 0, 0]))
    assert [row["roc_auc"] for row in report["classes"]] == [None, None]
    assert [row["average_precision"] for row in report["classes"]] == [1.0, None]
    assert report["macro_avg"]["roc_auc"] is None
    assert report["accuracy"] == pytest.approx(2 / 3)


def test_inputs_no_report_can_be_made_of():
    with pytest.raises(DataError, match=r"labels must lie in \[0, 2\)"):
        classification_report(torch.tensor([[0.5, 0.5]]), torch.tensor([2]))
    with pytest.raises(DataError, match="N > 0"):
        classification_report(torch.empty(0, 3), torch.empty(0))
    with pytest.raises(ConfigError, match="got 3 class names for 2 classes"):
        classification_report(torch.tensor([[0.5, 0.5]]), torch.tensor([1]), ["a", "b", "c"])


def test_write_report(tmp_path):
    state = random_state(4, absent=2)
    names = ["cat", "dog", "bird | finch", "fish"]
    paths = write_report(state, tmp_path / "report", names)
    assert [path.name for path in paths] == list(REPORT_FILES)
    saved = json.loads(paths[0].read_text())
    assert saved == json.loads(json.dumps(classification_report(state["probabilities"], state["labels"], names)))
    markdown = paths[1].read_text()
    assert "| class | precision | recall | F1 | support | ROC AUC | average precision |" in markdown
    dog = saved["classes"][1]
    assert f"| dog | {dog['precision']:.4f} | {dog['recall']:.4f} | {dog['f1']:.4f} | {dog['support']} |" in markdown
    assert "| bird \\| finch | 0.0000 | 0.0000 | 0.0000 | 0 | — | — |" in markdown  # absent: no AUC
    assert "| **macro avg** |" in markdown and "| **weighted avg** |" in markdown
    assert "| true \\ predicted | cat | dog | bird \\| finch | fish |" in markdown
    for path in paths[2:]:
        with Image.open(path) as image:
            image.verify()
            assert image.format == "PNG" and min(image.size) > 100


def test_curves_per_class_and_the_positive_class_of_two():
    for num_classes, absent, curves in ((2, None, 1), (4, 2, 3)):
        state = random_state(num_classes, absent)
        report = classification_report(state["probabilities"], state["labels"])
        for kind in ("roc", "pr"):
            axes = Figure().add_subplot()
            assert draw_curves(axes, state, report, kind) == len(axes.lines) == curves


def test_write_report_needs_a_classification_state(tmp_path):
    with pytest.raises(ConfigError, match="^--report needs a classification evaluation .* kept sum, count"):
        write_report({"sum": torch.zeros(1), "count": torch.ones(1)}, tmp_path / "report")
    assert not (tmp_path / "report").exists()


def test_check_report_dir(tmp_path):
    check_report_dir(tmp_path / "new" / "report")
    (tmp_path / "empty").mkdir()
    check_report_dir(tmp_path / "empty")
    (tmp_path / "empty" / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="already holds files; .* --overwrite"):
        check_report_dir(tmp_path / "empty")
    check_report_dir(tmp_path / "empty", overwrite=True)
    with pytest.raises(ConfigError, match="is a file"):
        check_report_dir(tmp_path / "empty" / "notes.txt", overwrite=True)


def test_find_class_names():
    dataset = SimpleNamespace(label_names=["open", "closed"])
    hf_model = SimpleNamespace(config=SimpleNamespace(id2label={0: "neg", 1: "pos"}))
    default_model = SimpleNamespace(config=SimpleNamespace(id2label={0: "LABEL_0", 1: "LABEL_1"}))
    assert find_class_names(2, SimpleNamespace(label_names=[]), dataset, hf_model) == ["open", "closed"]
    assert find_class_names(2, None, hf_model) == ["neg", "pos"]
    assert find_class_names(2, default_model, SimpleNamespace(classnames=["a", "b"])) == ["a", "b"]
    assert find_class_names(3, dataset, hf_model, default_model) is None


class Points(torch.utils.data.Dataset):
    """Three noisy clusters, one per class."""

    label_names = ("red", "green", "blue")

    def __init__(self, size: int, seed: int) -> None:
        self.labels = torch.arange(size) % 3
        self.features = torch.eye(3)[self.labels] * 2 + torch.randn(size, 3, generator=torch.Generator().manual_seed(seed))

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {"features": self.features[index], "labels": self.labels[index]}


class Linear(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.layer = nn.Linear(3, 3)

    def forward(self, features: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return self.layer(features)


class PointsTrainer(BaseTrainer):
    def build_metrics(self) -> ClassificationMetrics:
        return ClassificationMetrics(num_classes=3)


def test_write_test_report_after_training(tmp_path):
    trainer = PointsTrainer(Linear(), epochs=1, output_dir=str(tmp_path), device="cpu", batch_size_train=8)
    metrics = trainer.fit(Points(48, 0), Points(12, 1), Points(15, 2))
    paths = write_test_report(trainer)
    assert paths == [trainer.run_dir / "report" / name for name in REPORT_FILES]
    report = json.loads(paths[0].read_text())
    assert [row["name"] for row in report["classes"]] == ["red", "green", "blue"]  # from the datasets
    assert report["num_samples"] == metrics["test/num_samples"] == 15
    assert report["accuracy"] == pytest.approx(metrics["test/accuracy"])
    assert report["macro_avg"]["f1"] == pytest.approx(metrics["test/f1"])


def test_write_test_report_skips_and_never_raises(tmp_path, caplog):
    logger = logging.getLogger("test_reports")
    state = random_state(2)
    trainer = SimpleNamespace(rank=0, run_dir=tmp_path, last_eval_state=state, val_dataset=None, train_dataset=None,
                              unwrapped_model=None, logger=logger)
    assert write_test_report(SimpleNamespace(**{**vars(trainer), "rank": 1})) == []
    assert write_test_report(SimpleNamespace(**{**vars(trainer), "last_eval_state": {"sum": torch.ones(1)}})) == []
    assert write_test_report(SimpleNamespace(**{**vars(trainer), "run_dir": None})) == []
    assert not (tmp_path / "report").exists()
    broken = {"probabilities": state["probabilities"], "labels": state["labels"] + 5}
    with caplog.at_level(logging.WARNING, logger="test_reports"):
        assert write_test_report(SimpleNamespace(**{**vars(trainer), "last_eval_state": broken})) == []
    assert "no evaluation report (DataError: labels must lie in [0, 2)" in caplog.text
