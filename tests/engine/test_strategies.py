"""Strategies are registered components: a user's strategy is one file, named in the config."""

from __future__ import annotations

import json

from engine_helpers import HERE, step_losses

TOY_STRATEGY = ("CUSTOM_IMPORTS", f"[{HERE / 'toy_components.py'}, {HERE / 'toy_strategy.py'}]")


def test_a_strategy_from_a_user_file_trains_the_run(blobs):
    proc, run_dir = blobs(*TOY_STRATEGY, "TRAINER.STRATEGY", "CountingStrategy", "TRAINER.MAX_GRAD_NORM", "0.5")
    assert proc.returncode == 0, proc.stderr
    exported = json.loads((run_dir / "strategy_steps.json").read_text())
    assert exported == {"steps": max(step_losses(run_dir)), "clip": 0.5}  # every optimizer step went through it
    assert "CountingStrategy" in (run_dir / "train.log").read_text()
    assert (run_dir / "best_model.safetensors").is_file()


def test_an_unknown_strategy_is_refused_before_anything_starts(blobs, tmp_path):
    proc, run_dir = blobs("TRAINER.STRATEGY", "dpp")
    assert proc.returncode == 2
    assert "TRAINER.STRATEGY 'dpp' is not a strategy — did you mean 'ddp'?" in proc.stderr
    assert run_dir is None and "Traceback" not in proc.stderr


def test_ddp_named_for_one_process_says_how_to_get_several(blobs):
    proc, _ = blobs("TRAINER.STRATEGY", "ddp")
    assert proc.returncode == 2, proc.stderr
    assert "TRAINER.STRATEGY ddp" in proc.stderr and "--nproc" in proc.stderr
