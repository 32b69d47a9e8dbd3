"""Every torch LR scheduler in SCHEDULERS, and building the configured one with how the loop steps it."""

from __future__ import annotations

import inspect
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from torch.optim import Optimizer, lr_scheduler

from ..errors import ConfigError
from ..registries import SCHEDULERS
from ..registry import accepted_keywords, build, match_keywords
from ._introspect import public_classes

for _scheduler in public_classes(lr_scheduler, lr_scheduler.LRScheduler):
    SCHEDULERS.register_module(module=_scheduler)

Interval = Literal["step", "epoch"]
INTERVALS = ("step", "epoch")

# torch schedulers whose curve is defined over optimizer steps rather than epochs.
PER_STEP_TORCH_SCHEDULERS = (lr_scheduler.OneCycleLR, lr_scheduler.CyclicLR)

# Arguments that mean "length of the whole run in scheduler steps"; filled in when not configured.
RUN_LENGTH_ARGUMENTS = ("num_training_steps", "total_steps", "T_max")


@dataclass
class ScheduledLR:
    """A built scheduler and how the training loop advances it.

    ``interval`` says whether :meth:`step` is called after every optimizer step or after every
    epoch; ``monitor`` says that it takes the monitored metric (``ReduceLROnPlateau``).
    """

    scheduler: lr_scheduler.LRScheduler
    interval: Interval
    monitor: bool = False

    def advance(self, boundary: Literal["step", "epoch"], metrics: Mapping[str, float], monitor: str) -> None:
        """Step at an optimizer-step or epoch ``boundary`` when that is this schedule's interval; a monitoring
        schedule steps after an epoch whose ``metrics`` hold ``monitor``."""
        if self.monitor:
            if boundary == "epoch" and monitor in metrics:
                self.scheduler.step(metrics[monitor])
        elif boundary == self.interval:
            self.scheduler.step()

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Continue a saved schedule at its step, shaped by THIS run's length: a resumed run given more epochs
        (or another global batch) decays over its new length instead of keeping the old one (and sitting at 0).

        Kept from the current construction: the run-length arguments and the warm-up multipliers' settings;
        restored: the step count and everything else. The current learning rate is recomputed where the schedule
        is a multiplier of the base rate (LambdaLR and the warm-up schedules).
        """
        scheduler = self.scheduler
        lengths = {name: value for name, value in vars(scheduler).items() if name in RUN_LENGTH_ARGUMENTS}
        multipliers = [dict(vars(fn)) if hasattr(fn, "__dict__") else None for fn in getattr(scheduler, "lr_lambdas", [])]
        scheduler.load_state_dict(dict(state))
        vars(scheduler).update(lengths)
        for fn, settings in zip(getattr(scheduler, "lr_lambdas", []), multipliers):
            if settings is not None:
                vars(fn).update(settings)
        if isinstance(scheduler, lr_scheduler.LambdaLR):
            rates = [base * fn(scheduler.last_epoch) for base, fn in zip(scheduler.base_lrs, scheduler.lr_lambdas)]
            for group, rate in zip(scheduler.optimizer.param_groups, rates):
                group["lr"] = rate
            scheduler._last_lr = rates

    def step(self, metric: float | None = None) -> None:
        """Advance the schedule once; a monitoring scheduler needs the monitored metric's value."""
        if not self.monitor:
            self.scheduler.step()
        elif metric is None:
            raise ValueError(
                f"{type(self.scheduler).__name__} steps on a monitored metric; pass its value to step()"
            )
        else:
            self.scheduler.step(metric)


def default_interval(scheduler_class: type) -> Interval:
    """``"step"`` for per-step schedules (a class may declare ``interval = "step"``), else ``"epoch"``."""
    declared = getattr(scheduler_class, "interval", None)
    if declared in INTERVALS:
        return declared
    return "step" if issubclass(scheduler_class, PER_STEP_TORCH_SCHEDULERS) else "epoch"


def build_scheduler(
    optimizer: Optimizer,
    name: str | None,
    kwargs: Mapping[str, Any],
    *,
    steps_per_epoch: int,
    epochs: int,
    warmup_steps: int = 0,
    warmup_ratio: float = 0.0,
    max_steps: int = 0,
) -> ScheduledLR | None:
    """Build scheduler ``name`` from SCHEDULERS; ``None`` or ``""`` means a constant learning rate.

    ``kwargs`` may hold ``interval`` (``"step"`` | ``"epoch"``) to override how the scheduler is
    stepped. Arguments the scheduler takes and the config leaves out are filled in: the run's
    length in scheduler steps (``T_max``, ``total_steps``, ``num_training_steps``), the warm-up
    (``num_warmup_steps`` = ``warmup_steps``, or ``ceil(warmup_ratio × length)`` when that is 0;
    schedulers without warm-up ignore both) and OneCycleLR's ``max_lr`` (the optimizer's LR).

    Args:
        steps_per_epoch: optimizer steps per epoch, i.e. after gradient accumulation.
        max_steps: when > 0, the run stops after this many optimizer steps.
    """
    if not name:
        return None
    scheduler_class = SCHEDULERS.get(name)
    options = {str(k): v for k, v in (kwargs or {}).items()}
    interval_key = next((k for k in options if k.lower() == "interval"), "interval")
    interval = options.pop(interval_key, None) or default_interval(scheduler_class)
    if interval not in INTERVALS:
        raise ConfigError(f"SCHEDULER_KWARGS.interval of {name} is {interval!r}; use 'step' or 'epoch'")
    options = match_keywords(scheduler_class, options, "SCHEDULER_KWARGS")
    if "optimizer" in options:
        raise ConfigError(
            f"SCHEDULER_KWARGS of {name} sets 'optimizer'; remove it, the optimizer is passed in"
        )
    accepted, _ = accepted_keywords(scheduler_class)
    length = _run_length(interval, steps_per_epoch, epochs, max_steps)
    if not {"epochs", "steps_per_epoch"} & options.keys():  # OneCycleLR may derive its length from these
        options.update(
            {key: length for key in RUN_LENGTH_ARGUMENTS if key in accepted and key not in options}
        )
    if "num_warmup_steps" in accepted and "num_warmup_steps" not in options:
        options["num_warmup_steps"] = _warmup_length(warmup_steps, warmup_ratio, length)
    if issubclass(scheduler_class, lr_scheduler.OneCycleLR) and "max_lr" not in options:
        options["max_lr"] = [group["lr"] for group in optimizer.param_groups]
    _require_arguments(scheduler_class, options, name)
    scheduler = build({"NAME": name, **options}, SCHEDULERS, optimizer, where="SCHEDULER_KWARGS")
    return ScheduledLR(scheduler, interval, monitor=isinstance(scheduler, lr_scheduler.ReduceLROnPlateau))


def _run_length(interval: Interval, steps_per_epoch: int, epochs: int, max_steps: int) -> int:
    if steps_per_epoch < 1 or epochs < 1:
        raise ConfigError(
            f"a schedule needs at least one optimizer step per epoch and one epoch, got steps_per_epoch="
            f"{steps_per_epoch} and epochs={epochs}; check that the training set fills one batch"
        )
    total_steps = steps_per_epoch * epochs if max_steps <= 0 else min(max_steps, steps_per_epoch * epochs)
    return total_steps if interval == "step" else math.ceil(total_steps / steps_per_epoch)


def _warmup_length(warmup_steps: int, warmup_ratio: float, length: int) -> int:
    if warmup_steps < 0 or not 0.0 <= warmup_ratio < 1.0:
        raise ConfigError(
            f"WARMUP_STEPS must be ≥ 0 and WARMUP_RATIO in [0, 1), got {warmup_steps} and {warmup_ratio}"
        )
    return warmup_steps or math.ceil(warmup_ratio * length)


def _require_arguments(scheduler_class: type, options: Mapping[str, Any], name: str) -> None:
    parameters = list(inspect.signature(scheduler_class).parameters.values())[1:]  # after the optimizer
    missing = [
        parameter.name
        for parameter in parameters
        if parameter.default is inspect.Parameter.empty
        and parameter.kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
        and parameter.name not in options
    ]
    if missing:
        raise ConfigError(f"{name} needs {', '.join(repr(key) for key in missing)} in SCHEDULER_KWARGS")
