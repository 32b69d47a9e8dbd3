"""One LoRA vocabulary: the same MODEL.LORA keys give the same layers and trained parameters everywhere."""

import pytest
from peft.tuners.lora import LoraLayer

from trainlab.errors import ConfigError
from trainlab.models.bert import BertForSequenceClassification
from trainlab.models.hf_wrapper import TransformersModelWrapper
from trainlab.peft import LoRASettings, count_parameters, lora_modules
from trainlab.registries import MODELS, TRAINERS

SECTION = {"R": 4, "ALPHA": 8, "DROPOUT": 0.0, "TARGET_MODULES": ["query", "value"], "IGNORE_LAYERS": [0, 5]}
EXPECTED_LAYERS = {
    f"bert.encoder.layer.{i}.attention.self.{m}" for i in range(1, 5) for m in ("query", "value")
}


def test_defaults_are_the_prototype_lora_and_keys_are_case_insensitive():
    assert LoRASettings.from_config(None) == LoRASettings(
        r=8, alpha=16, dropout=0.1, target_modules=("query", "value"), ignore_layers=(), trainable=None
    )
    # PEFT's and the prototype's spellings of the same settings are read as those settings
    spelled = {
        "r": 4,
        "Lora_Alpha": 8,
        "lora_dropout": 0,
        "module_names": "query",
        "modules_to_save": ["score"],
    }
    assert LoRASettings.from_config(spelled) == LoRASettings(
        r=4, alpha=8, dropout=0.0, target_modules=("query",), trainable=("score",)
    )
    assert LoRASettings.from_config({"IGNORE_LAYERS": 3}).ignore_layers == (3,)


def test_every_mistake_is_named_in_one_line():
    with pytest.raises(ConfigError) as error:
        LoRASettings.from_config({"ALPH": 8, "R": 0, "DROPOUT": 1.5, "TARGET_MODULES": [""]})
    message = str(error.value)
    assert "\n" not in message
    assert (
        "Unknown key MODEL.LORA.ALPH — did you mean MODEL.LORA.ALPHA? (MODEL.LORA takes R, ALPHA," in message
    )
    assert "MODEL.LORA.R must be a positive integer, got 0" in message
    assert "MODEL.LORA.DROPOUT must be a dropout probability in [0, 1), got 1.5" in message
    assert "MODEL.LORA.TARGET_MODULES must be a name or a list of names" in message
    with pytest.raises(ConfigError, match=r"TRAINER.LORA.TARGET_REGEX is not a regular expression"):
        LoRASettings.from_config({"target_regex": "query("}, section="TRAINER.LORA")


def test_model_lora_section_errors_name_the_key_before_anything_is_built(minilm_path):
    with pytest.raises(
        ConfigError, match=r"^Unknown key MODEL.LORA.TARGET_MODULE — did you mean MODEL.LORA.TARGET_MODULES\?"
    ):
        MODELS.build(
            {
                "NAME": "TransformersModelWrapper",
                "PRETRAINED": minilm_path,
                "LORA": {"TARGET_MODULE": "query"},
            }
        )
    with pytest.raises(ConfigError, match="MODEL.LORA.TRAINABLE pattern 'clasifier' matches no parameter"):
        BertForSequenceClassification(pretrained=minilm_path, lora={"TRAINABLE": ["clasifier"]})


def _trainable(model):
    return {name for name, param in model.named_parameters() if param.requires_grad}


def test_same_section_same_layers_and_trained_parameters_on_own_bert_hf_and_peft(minilm_path):
    own = MODELS.build({"NAME": "BertForSequenceClassification", "PRETRAINED": minilm_path, "LORA": SECTION})
    hf = MODELS.build(
        {"NAME": "TransformersModelWrapper", "PRETRAINED": minilm_path, "NUM_LABELS": 2, "LORA": SECTION}
    )
    via_peft = TransformersModelWrapper(pretrained=minilm_path, num_labels=2, peft=SECTION)

    assert set(lora_modules(own)) == set(lora_modules(hf.model)) == EXPECTED_LAYERS
    base = via_peft.model.base_model.model
    assert {name for name, module in base.named_modules() if isinstance(module, LoraLayer)} == EXPECTED_LAYERS
    config = via_peft.model.peft_config["default"]
    assert (config.r, config.lora_alpha, config.lora_dropout) == (4, 8, 0.0)

    lora_weights = {f"{layer}.lora_{m}" for layer in EXPECTED_LAYERS for m in "AB"}
    assert _trainable(own) == _trainable(hf.model) == lora_weights | {"classifier.weight", "classifier.bias"}
    assert count_parameters(own)[0] == count_parameters(hf)[0] == count_parameters(via_peft)[0]
    assert count_parameters(own)[0] == 8 * 4 * (384 + 384) + 384 * 2 + 2


def test_globs_and_ignored_layers_reach_peft_as_the_same_selection(minilm_path):
    section = {"TARGET_MODULES": ["self.q*"], "IGNORE_LAYERS": ["layer.1", 2], "TRAINABLE": ["classif*"]}
    own = BertForSequenceClassification(pretrained=minilm_path, lora=section)
    via_peft = TransformersModelWrapper(pretrained=minilm_path, num_labels=2, peft=section)
    expected = {f"bert.encoder.layer.{i}.attention.self.query" for i in (0, 3, 4, 5)}
    assert set(lora_modules(own)) == expected
    base = via_peft.model.base_model.model
    assert {name for name, module in base.named_modules() if isinstance(module, LoraLayer)} == expected
    assert "classifier" in via_peft.model.peft_config["default"].modules_to_save  # the glob, resolved
    assert count_parameters(own)[0] == count_parameters(via_peft)[0]
    with pytest.raises(ConfigError, match="MODEL.PEFT.TRAINABLE 'classifier.weight' names no module"):
        TransformersModelWrapper(
            pretrained=minilm_path, num_labels=2, peft={"TRAINABLE": ["classifier.weight"]}
        )


def test_trainer_lora_is_the_same_section_with_the_same_defaults(minilm_path):
    trainer_class = TRAINERS.get("LORATrainer")
    model = TransformersModelWrapper(pretrained=minilm_path, num_labels=2)
    trainer = trainer_class(model, lora={"r": 4, "IGNORE_LAYERS": [0, 5], "dropout": 0.0}, device="cpu")
    assert trainer.lora == LoRASettings.from_config({"R": 4, "IGNORE_LAYERS": [0, 5], "DROPOUT": 0.0})
    trainer.custom_setup(0, 1)
    assert set(lora_modules(model.model)) == EXPECTED_LAYERS
    assert {layer.r for layer in lora_modules(model).values()} == {4}
    assert "classifier.weight" in _trainable(model.model)

    with pytest.raises(ConfigError, match=r"Unknown key TRAINER.LORA.RANK"):
        trainer_class(model, lora={"RANK": 4}, device="cpu")
    with pytest.raises(ConfigError, match="TRAINER.LORA is set but the model already has adapters"):
        trainer_class(model, lora={"R": 4}, device="cpu").custom_setup(0, 1)

    defaults = TransformersModelWrapper(pretrained=minilm_path, num_labels=2)
    trainer_class(defaults, device="cpu").custom_setup(0, 1)
    from_model_section = TransformersModelWrapper(pretrained=minilm_path, num_labels=2, lora={})
    assert set(lora_modules(defaults)) == set(lora_modules(from_model_section))
    assert _trainable(defaults) == _trainable(from_model_section)
