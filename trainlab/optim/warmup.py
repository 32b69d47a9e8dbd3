"""Per-step schedules as Hugging Face users know them: linear warm-up, then linear, cosine or constant.

The multipliers are small callable objects rather than lambdas, so ``LambdaLR.state_dict`` saves
their settings and a resumed run continues the same curve.
"""

from __future__ import annotations

import math
from typing import Literal

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR

from ..errors import ConfigError
from ..registries import SCHEDULERS


class WarmupMultiplier:
    """LR multiplier at an optimizer step: ``step / num_warmup_steps`` during warm-up, then ``decay(progress)``.

    ``progress`` runs from 0 at the end of warm-up to 1 at ``num_training_steps`` and stays at 1 after.
    """

    def __init__(self, num_warmup_steps: int, num_training_steps: int) -> None:
        self.num_warmup_steps = num_warmup_steps
        self.num_training_steps = num_training_steps

    def __call__(self, step: int) -> float:
        if step < self.num_warmup_steps:
            return step / self.num_warmup_steps
        decay_steps = max(1, self.num_training_steps - self.num_warmup_steps)
        return self.decay(min(1.0, (step - self.num_warmup_steps) / decay_steps))

    def decay(self, progress: float) -> float:
        return 1.0


class LinearDecay(WarmupMultiplier):
    """Linear from 1 to 0 over the steps after warm-up."""

    def decay(self, progress: float) -> float:
        return 1.0 - progress


class CosineDecay(WarmupMultiplier):
    """Cosine from 1 down to ``min_lr_ratio``; ``num_cycles=0.5`` is one half-wave."""

    def __init__(
        self, num_warmup_steps: int, num_training_steps: int, num_cycles: float, min_lr_ratio: float
    ) -> None:
        super().__init__(num_warmup_steps, num_training_steps)
        self.num_cycles = num_cycles
        self.min_lr_ratio = min_lr_ratio

    def decay(self, progress: float) -> float:
        wave = max(0.0, 0.5 * (1.0 + math.cos(math.pi * 2.0 * self.num_cycles * progress)))
        return self.min_lr_ratio + (1.0 - self.min_lr_ratio) * wave


class WarmupSchedule(LambdaLR):
    """Base of the warm-up schedules: validates the step counts; stepped once per optimizer step."""

    interval: Literal["step", "epoch"] = "step"

    def __init__(self, optimizer: Optimizer, multiplier: WarmupMultiplier, last_epoch: int = -1) -> None:
        name = type(self).__name__
        if multiplier.num_training_steps < 1:
            raise ConfigError(f"{name} needs num_training_steps ≥ 1, got {multiplier.num_training_steps}")
        if not 0 <= multiplier.num_warmup_steps <= multiplier.num_training_steps:
            raise ConfigError(
                f"{name} got num_warmup_steps={multiplier.num_warmup_steps}; it must lie between 0 and "
                f"num_training_steps={multiplier.num_training_steps} (lower WARMUP_STEPS or WARMUP_RATIO)"
            )
        super().__init__(optimizer, multiplier, last_epoch)


@SCHEDULERS.register_module()
class WarmupLinear(WarmupSchedule):
    """Linear warm-up from 0 to the optimizer's LR, then linear decay to 0 at ``num_training_steps``."""

    def __init__(
        self, optimizer: Optimizer, num_training_steps: int, num_warmup_steps: int = 0, last_epoch: int = -1
    ) -> None:
        super().__init__(optimizer, LinearDecay(num_warmup_steps, num_training_steps), last_epoch)


@SCHEDULERS.register_module()
class WarmupCosine(WarmupSchedule):
    """Linear warm-up, then cosine decay to ``min_lr_ratio`` × the optimizer's LR at ``num_training_steps``."""

    def __init__(
        self,
        optimizer: Optimizer,
        num_training_steps: int,
        num_warmup_steps: int = 0,
        last_epoch: int = -1,
        num_cycles: float = 0.5,
        min_lr_ratio: float = 0.0,
    ) -> None:
        if not 0.0 <= min_lr_ratio <= 1.0:
            raise ConfigError(f"WarmupCosine needs 0 ≤ min_lr_ratio ≤ 1, got {min_lr_ratio}")
        multiplier = CosineDecay(num_warmup_steps, num_training_steps, num_cycles, min_lr_ratio)
        super().__init__(optimizer, multiplier, last_epoch)


@SCHEDULERS.register_module()
class WarmupConstant(WarmupSchedule):
    """Linear warm-up, then the optimizer's LR unchanged (``num_training_steps`` only bounds the warm-up)."""

    def __init__(
        self, optimizer: Optimizer, num_training_steps: int, num_warmup_steps: int = 0, last_epoch: int = -1
    ) -> None:
        super().__init__(optimizer, WarmupMultiplier(num_warmup_steps, num_training_steps), last_epoch)
