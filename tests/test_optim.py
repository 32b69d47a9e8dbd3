"""Optimizers, schedulers and losses by name, as a config names them."""

from __future__ import annotations

import inspect
import io
import math

import pytest
import torch
from torch import nn

from trainlab.errors import ConfigError, RegistryError
from trainlab.optim import ScheduledLR, build_loss, build_optimizer, build_scheduler, param_groups
from trainlab.registries import LOSSES, OPTIMIZERS, SCHEDULERS


class TinyEncoder(nn.Module):
    """A small real text classifier: embeddings, one transformer layer, a final LayerNorm and a head."""

    def __init__(self) -> None:
        super().__init__()
        self.embeddings = nn.Embedding(50, 16)
        self.layer = nn.TransformerEncoderLayer(16, nhead=2, dim_feedforward=32, batch_first=True)
        self.LayerNorm = nn.LayerNorm(16)
        self.classifier = nn.Linear(16, 3)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        hidden = self.LayerNorm(self.layer(self.embeddings(input_ids)))
        return self.classifier(hidden[:, 0])


def sgd(lr: float = 1.0) -> torch.optim.Optimizer:
    return torch.optim.SGD(nn.Linear(2, 1).parameters(), lr=lr)


def lrs_over(scheduled: ScheduledLR, steps: int) -> list[float]:
    optimizer = scheduled.scheduler.optimizer
    values = []
    for _ in range(steps):
        values.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduled.step()
    return values


def test_every_torch_optimizer_scheduler_and_loss_is_available_by_name():
    optimizers = {n for n in torch.optim.__all__ if inspect.isclass(getattr(torch.optim, n))} - {"Optimizer"}
    schedulers = set(torch.optim.lr_scheduler.__all__) - {"LRScheduler"}
    losses = {n for n in dir(nn) if n.endswith("Loss") and inspect.isclass(getattr(nn, n))}
    losses.discard("AdaptiveLogSoftmaxWithLoss")  # an output layer with weights, not a criterion
    assert set(OPTIMIZERS.names()) == optimizers
    assert set(SCHEDULERS.names()) == schedulers | {"WarmupLinear", "WarmupCosine", "WarmupConstant"}
    assert set(LOSSES.names()) == losses
    assert OPTIMIZERS.get("AdamW") is torch.optim.AdamW and OPTIMIZERS.get("SGD") is torch.optim.SGD
    assert SCHEDULERS.get("OneCycleLR") is torch.optim.lr_scheduler.OneCycleLR
    assert SCHEDULERS.get("ReduceLROnPlateau") is torch.optim.lr_scheduler.ReduceLROnPlateau
    assert LOSSES.get("CrossEntropyLoss") is nn.CrossEntropyLoss


def test_param_groups_exempt_biases_and_norm_weights_and_skip_frozen():
    model = TinyEncoder()
    model.embeddings.weight.requires_grad_(False)
    groups = param_groups(model, weight_decay=0.1)
    names = {id(p): n for n, p in model.named_parameters()}
    decayed = {names[id(p)] for p in groups[0]["params"]}
    exempt = {names[id(p)] for p in groups[1]["params"]}
    assert [g["weight_decay"] for g in groups] == [0.1, 0.0]
    assert decayed == {
        "layer.self_attn.in_proj_weight",
        "layer.self_attn.out_proj.weight",
        "layer.linear1.weight",
        "layer.linear2.weight",
        "classifier.weight",
    }
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert exempt == trainable - decayed
    assert {"layer.norm1.weight", "LayerNorm.weight", "classifier.bias"} <= exempt


def test_a_model_with_its_own_param_groups_decides():
    class OwnPolicy(nn.Linear):
        def param_groups(self, weight_decay: float) -> list[dict]:
            return [{"params": [self.weight, self.bias], "weight_decay": weight_decay * 2}]

    optimizer = build_optimizer(OwnPolicy(3, 2), "AdamW", {"lr": 0.01, "weight_decay": 0.05})
    assert len(optimizer.param_groups) == 1 and optimizer.param_groups[0]["weight_decay"] == 0.1


def test_build_optimizer_uses_config_and_default_weight_decay_on_weights_only():
    model = TinyEncoder()
    optimizer = build_optimizer(model, "AdamW", {"lr": 3e-4, "betas": (0.8, 0.9)})
    assert [g["weight_decay"] for g in optimizer.param_groups] == [0.01, 0.0]  # AdamW's default
    assert all(g["lr"] == 3e-4 and g["betas"] == (0.8, 0.9) and g["fused"] for g in optimizer.param_groups)
    assert build_optimizer(model, "SGD", {"lr": 0.1, "foreach": False}).param_groups[0]["foreach"] is False
    lbfgs = build_optimizer(model, "LBFGS", {"lr": 0.1})  # one group only, and no weight decay to split
    assert len(lbfgs.param_groups) == 1 and "foreach" not in lbfgs.defaults

    loss = model(torch.randint(0, 50, (4, 6))).sum()
    loss.backward()
    before = model.classifier.weight.detach().clone()
    optimizer.step()
    assert not torch.equal(before, model.classifier.weight)


def test_unknown_optimizer_keyword_names_the_optimizer_the_key_and_a_suggestion():
    with pytest.raises(RegistryError) as error:
        build_optimizer(TinyEncoder(), "AdamW", {"lr": 1e-3, "weight_decy": 0.01})
    message = str(error.value)
    assert "AdamW" in message and "'weight_decy'" in message and "did you mean 'weight_decay'" in message
    with pytest.raises(ConfigError, match="no trainable parameters"):
        build_optimizer(nn.Linear(2, 2).requires_grad_(False), "SGD", {})


def test_warmup_linear_follows_the_hugging_face_formula():
    scheduled = build_scheduler(sgd(), "WarmupLinear", {}, steps_per_epoch=5, epochs=2, warmup_steps=3)
    assert scheduled.interval == "step" and not scheduled.monitor
    expected = [k / 3 if k < 3 else max(0.0, (10 - k) / 7) for k in range(12)]
    assert lrs_over(scheduled, 12) == pytest.approx(expected)


def test_warmup_cosine_with_cycles_and_floor_and_warmup_ratio():
    scheduled = build_scheduler(
        sgd(2.0), "WarmupCosine", {"min_lr_ratio": 0.1}, steps_per_epoch=7, epochs=3, warmup_ratio=0.1
    )
    assert scheduled.scheduler.lr_lambdas[0].num_warmup_steps == 3  # ceil(0.1 × 21)

    def factor(k: int) -> float:
        if k < 3:
            return k / 3
        wave = 0.5 * (1 + math.cos(math.pi * (k - 3) / 18))
        return 0.1 + 0.9 * wave

    assert lrs_over(scheduled, 21) == pytest.approx([2.0 * factor(k) for k in range(21)])
    constant = build_scheduler(sgd(), "WarmupConstant", {"num_warmup_steps": 2}, steps_per_epoch=4, epochs=1)
    assert lrs_over(constant, 5) == pytest.approx([0.0, 0.5, 1.0, 1.0, 1.0])


def test_warmup_state_survives_a_weights_only_checkpoint():
    first = build_scheduler(
        sgd(), "WarmupCosine", {"num_cycles": 1.0}, steps_per_epoch=10, epochs=1, warmup_steps=2
    )
    lrs_over(first, 4)
    buffer = io.BytesIO()
    torch.save(first.scheduler.state_dict(), buffer)
    buffer.seek(0)
    resumed = build_scheduler(sgd(), "WarmupCosine", {}, steps_per_epoch=99, epochs=1)
    resumed.scheduler.load_state_dict(torch.load(buffer, weights_only=True))
    resumed.scheduler.optimizer.param_groups[0]["lr"] = resumed.scheduler.get_last_lr()[0]
    assert lrs_over(resumed, 6) == pytest.approx(lrs_over(first, 6))


def test_cosine_annealing_fills_t_max_with_the_epochs_only_when_absent():
    default = build_scheduler(sgd(), "CosineAnnealingLR", {}, steps_per_epoch=10, epochs=4)
    assert default.interval == "epoch" and default.scheduler.T_max == 4
    assert lrs_over(default, 5)[-1] == pytest.approx(0.0)
    explicit = build_scheduler(sgd(), "CosineAnnealingLR", {"T_max": 7}, steps_per_epoch=10, epochs=4)
    assert explicit.scheduler.T_max == 7
    per_step = build_scheduler(sgd(), "CosineAnnealingLR", {"interval": "step"}, steps_per_epoch=10, epochs=4)
    assert per_step.interval == "step" and per_step.scheduler.T_max == 40


def test_step_lr_gets_only_the_arguments_it_takes():
    scheduled = build_scheduler(sgd(), "StepLR", {"step_size": 2, "gamma": 0.5}, steps_per_epoch=10, epochs=6)
    assert scheduled.interval == "epoch"
    assert lrs_over(scheduled, 6) == pytest.approx([1.0, 1.0, 0.5, 0.5, 0.25, 0.25])
    with pytest.raises(ConfigError, match="StepLR needs 'step_size'"):
        build_scheduler(sgd(), "StepLR", {}, steps_per_epoch=10, epochs=6)
    with pytest.raises(RegistryError, match="StepLR does not take 'T_max'"):
        build_scheduler(sgd(), "StepLR", {"step_size": 1, "T_max": 3}, steps_per_epoch=10, epochs=6)
    with pytest.raises(ConfigError, match="'step' or 'epoch'"):
        build_scheduler(sgd(), "StepLR", {"step_size": 1, "interval": "batch"}, steps_per_epoch=10, epochs=6)


def test_one_cycle_runs_per_step_over_the_whole_run():
    scheduled = build_scheduler(sgd(0.5), "OneCycleLR", {}, steps_per_epoch=4, epochs=3)
    assert scheduled.interval == "step" and scheduled.scheduler.total_steps == 12
    lrs = lrs_over(scheduled, 12)  # OneCycleLR raises when stepped past total_steps
    assert max(lrs) == pytest.approx(0.5, rel=0.05) and lrs[0] < 0.05 and lrs[-1] < 1e-3


def test_reduce_on_plateau_steps_on_the_monitored_metric():
    scheduled = build_scheduler(
        sgd(), "ReduceLROnPlateau", {"patience": 0, "factor": 0.5}, steps_per_epoch=3, epochs=2
    )
    assert scheduled.monitor and scheduled.interval == "epoch"
    for loss in (1.0, 0.9, 0.95):
        scheduled.step(loss)
    assert scheduled.scheduler.optimizer.param_groups[0]["lr"] == 0.5
    with pytest.raises(ValueError, match="monitored metric"):
        scheduled.step()


def test_no_scheduler_and_warmup_ignored_by_schedulers_without_warmup():
    assert build_scheduler(sgd(), None, {}, steps_per_epoch=3, epochs=2, warmup_ratio=0.1) is None
    exponential = build_scheduler(
        sgd(), "ExponentialLR", {"gamma": 0.5}, steps_per_epoch=3, epochs=2, warmup_ratio=0.1
    )
    assert lrs_over(exponential, 3) == pytest.approx([1.0, 0.5, 0.25])
    with pytest.raises(ConfigError, match="num_warmup_steps=30"):
        build_scheduler(sgd(), "WarmupLinear", {}, steps_per_epoch=3, epochs=2, warmup_steps=30)


def test_build_loss_by_name_with_class_weights_from_yaml_lists():
    assert build_loss(None, {}) is None
    loss_fn = build_loss("CrossEntropyLoss", {"weight": [1.0, 3.0], "label_smoothing": 0.1})
    assert isinstance(loss_fn, nn.CrossEntropyLoss) and torch.equal(loss_fn.weight, torch.tensor([1.0, 3.0]))
    logits, labels = torch.tensor([[2.0, 0.0], [0.0, 1.0]]), torch.tensor([0, 1])
    expected = nn.CrossEntropyLoss(weight=torch.tensor([1.0, 3.0]), label_smoothing=0.1)(logits, labels)
    assert loss_fn(logits, labels) == expected
    with pytest.raises(RegistryError, match="did you mean 'reduction'"):
        build_loss("MSELoss", {"reductoin": "sum"})
