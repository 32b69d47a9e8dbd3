"""A user's own strategy, in its own file: registered in STRATEGIES and named in TRAINER.STRATEGY."""

from __future__ import annotations

import json

from trainlab.builder import STRATEGIES
from trainlab.engine.strategies import Strategy


@STRATEGIES.register_module()
class CountingStrategy(Strategy):
    """Single-device training that counts its optimizer steps and exports the count with the model."""

    def __init__(self, device, precision: str = "fp32", max_grad_norm: float = 0.0) -> None:
        super().__init__(device, precision)
        self.steps = 0
        self.max_grad_norm = max_grad_norm  # a TRAINER setting the strategy asked for by name

    def optimizer_step(self, max_grad_norm: float):
        self.steps += 1
        return super().optimizer_step(max_grad_norm)

    def export(self, run_dir, filename):
        (run_dir / "strategy_steps.json").write_text(json.dumps({"steps": self.steps, "clip": self.max_grad_norm}))
        return super().export(run_dir, filename)
