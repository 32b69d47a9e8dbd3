"""PEFT bridge: MODEL.PEFT → LoraConfig, adapters PEFT can load, merged models plain transformers can load."""

import shutil

import peft
import pytest
import torch
import transformers

from trainlab.errors import ConfigError
from trainlab.models.hf_wrapper import TransformersModelWrapper
from trainlab.peft.hf_peft import BASE_MODEL_FILE, peft_config_from
from trainlab.peft.merge import merge_lora_checkpoint

LABELS = torch.tensor([0, 1])


@pytest.fixture(scope="module")
def trained_peft(minilm_path, text_batch):
    """MiniLM with PEFT LoRA from a MODEL.PEFT section, trained three steps; returns (wrapper, logits)."""
    wrapper = TransformersModelWrapper(
        pretrained=minilm_path,
        num_labels=2,
        peft={
            "METHOD": "lora",
            "R": 4,
            "ALPHA": 8,
            "LORA_DROPOUT": 0.0,
            "TARGET_MODULES": ["query", "value"],
        },
    )
    optimizer = torch.optim.AdamW([p for p in wrapper.parameters() if p.requires_grad], lr=1e-2)
    for _ in range(3):
        optimizer.zero_grad()
        wrapper(**text_batch, labels=LABELS).loss.backward()
        optimizer.step()
    wrapper.eval()
    with torch.no_grad():
        logits = wrapper(**text_batch).logits
    return wrapper, logits


def test_only_adapter_and_head_train(trained_peft):
    wrapper, _ = trained_peft
    assert isinstance(wrapper.model, peft.PeftModel)
    config = wrapper.model.peft_config["default"]
    assert (config.r, config.lora_alpha, config.task_type) == (4, 8, peft.TaskType.SEQ_CLS)
    trainable = [name for name, param in wrapper.named_parameters() if param.requires_grad]
    assert trainable and all("lora_" in name or "classifier" in name for name in trainable)


def test_adapter_loads_with_peft_from_pretrained(trained_peft, minilm_path, text_batch, tmp_path):
    wrapper, logits = trained_peft
    wrapper.save_adapter(str(tmp_path))
    assert (tmp_path / "adapter_config.json").is_file() and (tmp_path / BASE_MODEL_FILE).is_file()
    base = transformers.AutoModelForSequenceClassification.from_pretrained(minilm_path, num_labels=2)
    loaded = peft.PeftModel.from_pretrained(base, tmp_path).eval()
    with torch.no_grad():
        torch.testing.assert_close(loaded(**text_batch).logits, logits, atol=1e-6, rtol=0)


def test_merged_model_loads_with_plain_transformers(trained_peft, text_batch, tmp_path):
    wrapper, logits = trained_peft
    wrapper.save_pretrained(str(tmp_path))
    assert isinstance(wrapper.model, peft.PeftModel)  # saving merged a copy, not the model in training
    merged = transformers.AutoModelForSequenceClassification.from_pretrained(tmp_path).eval()
    assert not any("lora_" in name for name in merged.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(merged(**text_batch).logits, logits, atol=1e-5, rtol=0)


def test_merge_lora_checkpoint_with_and_without_trainlab_record(trained_peft, text_batch, tmp_path):
    wrapper, logits = trained_peft
    wrapper.save_adapter(str(tmp_path / "adapter"))
    shutil.copytree(tmp_path / "adapter", tmp_path / "peft-only")
    (tmp_path / "peft-only" / BASE_MODEL_FILE).unlink()  # as if saved by PEFT itself
    for name in ("adapter", "peft-only"):
        out = merge_lora_checkpoint(str(tmp_path / name), str(tmp_path / f"{name}-merged"))
        merged = transformers.AutoModelForSequenceClassification.from_pretrained(out).eval()
        transformers.AutoTokenizer.from_pretrained(out)
        with torch.no_grad():
            torch.testing.assert_close(merged(**text_batch).logits, logits, atol=1e-5, rtol=0)


def test_peft_section_errors_name_the_key():
    with pytest.raises(
        ConfigError, match=r"Unknown key MODEL.PEFT.LORA_ALPH — did you mean MODEL.PEFT.LORA_ALPHA\?"
    ):
        peft_config_from({"LORA_ALPH": 8})
    with pytest.raises(ConfigError, match="MODEL.PEFT.ALPHA and MODEL.PEFT.LORA_ALPHA set the same thing"):
        peft_config_from({"ALPHA": 8, "LORA_ALPHA": 16})
    with pytest.raises(ConfigError, match="EXCLUDE_MODULES: use IGNORE_LAYERS"):
        peft_config_from({"EXCLUDE_MODULES": ["query"]})
    with pytest.raises(ConfigError, match="METHOD 'lorra'.*did you mean 'lora'"):
        peft_config_from({"METHOD": "lorra"})
    with pytest.raises(ConfigError, match="TASK_TYPE 'seq_class' is unknown — did you mean 'SEQ_CLS'"):
        peft_config_from({"TASK_TYPE": "seq_class"})
    ia3 = peft_config_from({"METHOD": "ia3", "TARGET_MODULES": ["key", "value"], "FEEDFORWARD_MODULES": []})
    assert isinstance(ia3, peft.IA3Config)


def test_lora_keys_have_the_model_lora_defaults_and_peft_fields_pass_through():
    config = peft_config_from({"BIAS": "lora_only", "USE_RSLORA": True}, task="sequence-classification")
    assert (config.r, config.lora_alpha, config.lora_dropout) == (8, 16, 0.1)
    assert set(config.target_modules) == {"query", "value"}
    assert (config.bias, config.use_rslora, config.task_type) == ("lora_only", True, peft.TaskType.SEQ_CLS)
