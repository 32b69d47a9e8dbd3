"""Metrics checked against independent brute-force computations, alone and merged across shards."""

from __future__ import annotations

import math
import warnings

import pytest
import torch

from trainlab.errors import ConfigError, DataError
from trainlab.metrics import (
    Accuracy,
    ClassificationMetrics,
    LossMetric,
    MeanMetric,
    binary_roc_auc,
    merge_states,
)
from trainlab.registries import METRICS


def pairwise_auc(scores: list[float], positive: list[bool]) -> float:
    """P(score of a positive > score of a negative), ties counting one half, over all pairs."""
    pos = [s for s, p in zip(scores, positive) if p]
    neg = [s for s, p in zip(scores, positive) if not p]
    wins = sum(1.0 if a > b else 0.5 if a == b else 0.0 for a in pos for b in neg)
    return wins / (len(pos) * len(neg))


def reference(probabilities: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
    """Macro metrics with plain Python loops, over classes seen in labels or predictions."""
    probs, y = probabilities.tolist(), labels.tolist()
    predicted = [max(range(len(row)), key=row.__getitem__) for row in probs]
    classes = sorted(set(y) | set(predicted))
    precision, recall, f1 = [], [], []
    for c in classes:
        tp = sum(p == c and t == c for p, t in zip(predicted, y))
        fp = sum(p == c and t != c for p, t in zip(predicted, y))
        fn = sum(p != c and t == c for p, t in zip(predicted, y))
        precision.append(tp / (tp + fp) if tp + fp else 0.0)
        recall.append(tp / (tp + fn) if tp + fn else 0.0)
        f1.append(2 * precision[-1] * recall[-1] / (precision[-1] + recall[-1]) if tp else 0.0)
    num_classes = len(probs[0])
    if num_classes == 2:
        auc = pairwise_auc([row[1] for row in probs], [t == 1 for t in y])
    else:
        auc = (
            sum(pairwise_auc([row[c] for row in probs], [t == c for t in y]) for c in range(num_classes))
            / num_classes
        )
    return {
        "accuracy": sum(p == t for p, t in zip(predicted, y)) / len(y),
        "precision": sum(precision) / len(classes),
        "recall": sum(recall) / len(classes),
        "f1": sum(f1) / len(classes),
        "roc_auc": auc,
        "log_loss": -sum(math.log(row[t]) for row, t in zip(probs, y)) / len(y),
        "num_samples": len(y),
    }


def tied_logits(num_samples: int, num_classes: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits drawn from a few values, so many samples share exactly the same scores."""
    generator = torch.Generator().manual_seed(seed)
    logits = torch.randint(-2, 3, (num_samples, num_classes), generator=generator).float() / 2
    labels = torch.randint(0, num_classes, (num_samples,), generator=generator)
    return logits, labels


@pytest.mark.parametrize("num_classes, seed", [(2, 0), (3, 1)])
def test_values_match_brute_force_computation_with_tied_scores(num_classes: int, seed: int):
    logits, labels = tied_logits(40, num_classes, seed)
    metric = ClassificationMetrics(num_classes)
    for start in range(0, 40, 16):
        metric.update(logits[start : start + 16], labels[start : start + 16])
    values = metric.compute()
    expected = reference(torch.softmax(logits.double(), dim=1), labels)
    assert values == pytest.approx(expected, rel=1e-12)
    probabilities = metric.state()["probabilities"]
    assert len(set(probabilities[:, 1].tolist())) < 40  # ties were really there


def test_roc_auc_of_a_hand_computed_example():
    # Pairs (positive, negative): 0.35>0.1, 0.35<0.4, 0.8>0.1, 0.8>0.4 → 3 of 4.
    assert (
        binary_roc_auc(torch.tensor([0.1, 0.4, 0.35, 0.8]), torch.tensor([False, False, True, True])) == 0.75
    )
    # Ties: 0.5 vs 0.5 counts one half → (1 + 0.5 + 1 + 1) / 4.
    assert (
        binary_roc_auc(torch.tensor([0.2, 0.5, 0.5, 0.9]), torch.tensor([False, False, True, True])) == 0.875
    )


def test_weighted_and_binary_averages_by_hand():
    # labels 0,0,0,1 ; predictions 0,0,1,1 → class 0: P=1, R=2/3 ; class 1: P=1/2, R=1.
    logits = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    labels = torch.tensor([0, 0, 0, 1])
    weighted = ClassificationMetrics(average="weighted")
    weighted.update(logits, labels)
    values = weighted.compute()
    assert values["precision"] == pytest.approx(0.75 * 1 + 0.25 * 0.5)
    assert values["recall"] == pytest.approx(0.75 * 2 / 3 + 0.25 * 1)
    assert values["f1"] == pytest.approx(0.75 * 0.8 + 0.25 * 2 / 3)
    binary = ClassificationMetrics(2, average="binary")
    binary.update(logits, labels)
    assert (binary.compute()["precision"], binary.compute()["recall"]) == (0.5, 1.0)


def test_two_shards_merged_equal_the_whole_set():
    logits, labels = tied_logits(13, 3, seed=7)
    whole = ClassificationMetrics(3)
    whole.update(logits, labels)
    shards = [ClassificationMetrics(3), ClassificationMetrics(3)]
    shards[0].update(logits[:4], labels[:4])
    shards[0].update(logits[4:7], labels[4:7])
    shards[1].update(logits[7:], labels[7:])
    merged = merge_states([shard.state() for shard in shards])
    assert ClassificationMetrics(3).compute(merged) == whole.compute()
    assert whole.compute()["num_samples"] == 13

    counts = [Accuracy(top_k=2), Accuracy(top_k=2)]
    counts[0].update(logits[:7], labels[:7])
    counts[1].update(logits[7:], labels[7:])
    in_top_two = (logits.topk(2, dim=1).indices == labels[:, None]).any(dim=1).double().mean().item()
    assert Accuracy().compute(merge_states([c.state() for c in counts])) == {
        "accuracy": in_top_two,
        "num_samples": 13,
    }


def test_a_rank_without_samples_merges_and_an_empty_metric_does_not_crash():
    logits, labels = tied_logits(5, 2, seed=3)
    full, empty = ClassificationMetrics(), ClassificationMetrics()
    full.update(logits, labels)
    assert ClassificationMetrics().compute(merge_states([empty.state(), full.state()])) == full.compute()
    values = empty.compute()
    assert values["num_samples"] == 0 and math.isnan(values["accuracy"]) and math.isnan(values["roc_auc"])


def test_edge_cases_give_defined_values_without_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        single_class = ClassificationMetrics(2)
        single_class.update(torch.tensor([[2.0, 0.0], [0.0, 1.0], [1.0, 0.0]]), torch.tensor([0, 0, 0]))
        values = single_class.compute()
        assert math.isnan(values["roc_auc"]) and values["accuracy"] == pytest.approx(2 / 3)

        perfect = ClassificationMetrics(3)
        perfect.update(torch.eye(3).repeat(2, 1) * 50, torch.tensor([0, 1, 2, 0, 1, 2]))
        values = perfect.compute()
        assert values["roc_auc"] == 1.0 and values["accuracy"] == values["precision"] == values["f1"] == 1.0
        assert 0.0 < values["log_loss"] < 1e-12  # clipped, finite

        never_positive = ClassificationMetrics(2, average="binary")
        never_positive.update(torch.tensor([[1.0, 0.0], [3.0, 0.0]]), torch.tensor([1, 0]))
        values = never_positive.compute()
        assert (values["precision"], values["recall"], values["f1"]) == (0.0, 0.0, 0.0)

        certain_and_wrong = ClassificationMetrics(2)
        certain_and_wrong.update(torch.tensor([[1000.0, -1000.0]]), torch.tensor([1]))
        assert math.isfinite(certain_and_wrong.compute()["log_loss"])


def test_single_logit_binary_outputs_and_bad_inputs():
    metric = ClassificationMetrics()
    metric.update(torch.tensor([-1.0, 2.0, 0.5]), torch.tensor([0, 1, 0]))
    assert metric.state()["probabilities"][:, 1].tolist() == pytest.approx(
        torch.sigmoid(torch.tensor([-1.0, 2.0, 0.5])).tolist()
    )
    assert metric.compute()["accuracy"] == pytest.approx(2 / 3)
    metric.update(torch.tensor([0.0]), torch.tensor([2]))
    with pytest.raises(DataError, match=r"labels must lie in \[0, 2\)"):
        metric.compute()
    with pytest.raises(ValueError, match="3 classes"):
        ClassificationMetrics(3).update(torch.zeros(2, 4), torch.zeros(2, dtype=torch.long))
    with pytest.raises(ConfigError, match="average"):
        ClassificationMetrics(average="samples")


def test_mean_metrics_weight_by_samples_and_merge():
    ranks = [LossMetric(), LossMetric()]
    ranks[0].update(torch.tensor(2.0), weight=3)  # batch mean 2.0 over 3 samples
    ranks[1].update(torch.tensor([1.0, 5.0]))  # per-sample losses
    assert LossMetric().compute(merge_states([r.state() for r in ranks])) == {
        "loss": (2.0 * 3 + 1.0 + 5.0) / 5
    }
    assert math.isnan(MeanMetric("score").compute()["score"])
    assert {"ClassificationMetrics", "Accuracy", "LossMetric", "MeanMetric"} <= set(METRICS.names())
    assert (
        METRICS.build({"NAME": "ClassificationMetrics", "NUM_CLASSES": 3, "AVERAGE": "weighted"}).average
        == "weighted"
    )
