"""ExportAdapterHook: any trainer's LoRA / PEFT adapter written to RUN_DIR/adapter in a loadable format."""

import logging
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import peft
import pytest
import torch
import transformers
from torch import nn

from trainlab.engine.adapter_hook import ExportAdapterHook, has_adapter
from trainlab.engine.strategies import Strategy
from trainlab.models.bert import BertForSequenceClassification
from trainlab.models.hf_wrapper import TransformersModelWrapper
from trainlab.peft import merge_lora, merge_lora_layers
from trainlab.peft.merge import merge_lora_checkpoint
from trainlab.registries import HOOKS

LORA = {"R": 4, "ALPHA": 8, "DROPOUT": 0.0}


@dataclass
class FinishedRun:
    """What the hook reads of a trainer after training: these attributes, and a real single-device strategy."""

    unwrapped_model: nn.Module
    run_dir: Path
    rank: int = 0
    save: bool = True
    logger: logging.Logger = field(default_factory=lambda: logging.getLogger("test_adapter_export"))

    @property
    def settings(self) -> SimpleNamespace:
        return SimpleNamespace(save=self.save)

    @property
    def strategy(self) -> Strategy:
        strategy = Strategy(torch.device("cpu"))
        strategy.model = self.unwrapped_model
        return strategy


def _nudge_lora_b(model: nn.Module) -> None:
    """Give the adapters a non-zero update, as training would, so a lost adapter would show in the logits."""
    torch.manual_seed(0)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.normal_(std=0.05)


def _logits(model: nn.Module, batch: dict) -> torch.Tensor:
    with torch.no_grad():
        return model.eval()(**batch).logits


def test_hook_is_registered_and_built_by_name():
    assert HOOKS.get("ExportAdapterHook") is ExportAdapterHook
    assert isinstance(HOOKS.build({"NAME": "ExportAdapterHook"}), ExportAdapterHook)


def test_has_adapter_sees_trainlab_lora_and_peft_but_not_a_plain_model(minilm_path):
    assert not has_adapter(TransformersModelWrapper(pretrained=minilm_path, num_labels=2))
    assert has_adapter(TransformersModelWrapper(pretrained=minilm_path, num_labels=2, lora=LORA))
    assert has_adapter(TransformersModelWrapper(pretrained=minilm_path, num_labels=2, peft=LORA))
    own = BertForSequenceClassification(pretrained=minilm_path, lora=LORA)
    assert has_adapter(own)
    merge_lora_layers(own)
    assert not has_adapter(own)


def test_peft_adapter_is_saved_in_peft_format(minilm_path, text_batch, tmp_path):
    wrapper = TransformersModelWrapper(pretrained=minilm_path, num_labels=2, peft=LORA)
    _nudge_lora_b(wrapper)
    expected = _logits(wrapper, text_batch)
    ExportAdapterHook().after_train(FinishedRun(wrapper, tmp_path))
    base = transformers.AutoModelForSequenceClassification.from_pretrained(minilm_path, num_labels=2)
    loaded = peft.PeftModel.from_pretrained(base, tmp_path / "adapter")
    torch.testing.assert_close(_logits(loaded, text_batch), expected, atol=1e-6, rtol=0)
    merged = merge_lora_checkpoint(str(tmp_path / "adapter"), str(tmp_path / "merged"))
    plain = transformers.AutoModelForSequenceClassification.from_pretrained(merged)
    torch.testing.assert_close(_logits(plain, text_batch), expected, atol=1e-5, rtol=0)


def test_trainlab_lora_is_saved_in_trainlab_format_and_merges(minilm_path, text_batch, tmp_path):
    model = BertForSequenceClassification(pretrained=minilm_path, lora=LORA)
    _nudge_lora_b(model)
    expected = _logits(model, text_batch)
    ExportAdapterHook().after_train(FinishedRun(model, tmp_path))
    assert (tmp_path / "adapter" / "trainlab_adapter.json").is_file()
    merged = merge_lora_checkpoint(str(tmp_path / "adapter"), str(tmp_path / "merged"))
    plain = transformers.BertForSequenceClassification.from_pretrained(merged)
    torch.testing.assert_close(_logits(plain, text_batch), expected, atol=1e-4, rtol=0)


@pytest.mark.parametrize("run", [{"rank": 1}, {"save": False}, {"merged": "layers"}, {"merged": "in place"}])
def test_nothing_is_written_off_rank_0_without_save_or_once_merged(minilm_path, tmp_path, run):
    model = BertForSequenceClassification(pretrained=minilm_path, lora=LORA)
    merged = run.pop("merged", None)
    if merged == "layers":
        merge_lora_layers(model)  # a prototype loop merges at the last epoch; the run must still end cleanly
    elif merged == "in place":
        merge_lora(model)
    ExportAdapterHook().after_train(FinishedRun(model, tmp_path, **run))
    assert not (tmp_path / "adapter").exists()
