"""TransformersModelWrapper: AutoModels from local folders, tokenizer/processor, freezing, checkpointing."""

import pytest
import torch
import transformers

from trainlab.errors import ConfigError
from trainlab.models.hf_wrapper import TransformersModelWrapper
from trainlab.registries import MODELS


@pytest.fixture(scope="module")
def minilm_classifier(minilm_path):
    return TransformersModelWrapper(pretrained=minilm_path, task="sequence-classification", num_labels=2)


def test_loads_minilm_with_its_tokenizer_and_forwards_batches(minilm_classifier, text_batch):
    wrapper = minilm_classifier
    assert isinstance(wrapper.model, transformers.BertForSequenceClassification)
    assert wrapper.tokenizer is not None and wrapper.processor is None
    assert wrapper.config.num_labels == 2
    assert wrapper.newly_initialized == ["classifier.bias", "classifier.weight"]
    output = wrapper(**text_batch, labels=torch.tensor([0, 1]))
    assert output.logits.shape == (2, 2) and torch.isfinite(output.loss)


def test_save_pretrained_is_plain_hugging_face_layout(minilm_classifier, text_batch, tmp_path):
    minilm_classifier.eval().save_pretrained(str(tmp_path))
    reloaded = transformers.AutoModelForSequenceClassification.from_pretrained(tmp_path).eval()
    transformers.AutoTokenizer.from_pretrained(tmp_path)
    with torch.no_grad():
        torch.testing.assert_close(reloaded(**text_batch).logits, minilm_classifier(**text_batch).logits)


def test_built_from_a_config_section_with_freeze_patterns(minilm_path):
    wrapper = MODELS.build(
        {
            "NAME": "TransformersModelWrapper",
            "PRETRAINED": minilm_path,
            "TASK": "base",
            "FREEZE": ["embeddings.*", "encoder.layer.0"],
        }
    )
    assert isinstance(wrapper.model, transformers.BertModel)
    frozen = {name for name, param in wrapper.model.named_parameters() if not param.requires_grad}
    assert frozen == {
        name
        for name, _ in wrapper.model.named_parameters()
        if name.startswith(("embeddings.", "encoder.layer.0."))
    }
    assert frozen


def test_freeze_pattern_that_matches_nothing_is_an_error(minilm_path):
    with pytest.raises(ConfigError, match="MODEL.FREEZE pattern 'bert.embedings.*' matches no parameter"):
        TransformersModelWrapper(pretrained=minilm_path, num_labels=2, freeze=["bert.embedings.*"])


def test_gradient_checkpointing_flag_turns_it_on(minilm_classifier, minilm_path, text_batch):
    assert not minilm_classifier.model.is_activation_checkpointing
    wrapper = TransformersModelWrapper(pretrained=minilm_path, num_labels=2, gradient_checkpointing=True)
    assert wrapper.model.is_activation_checkpointing
    wrapper.train()
    wrapper(**text_batch, labels=torch.tensor([0, 1])).loss.backward()
    assert wrapper.model.bert.encoder.layer[0].attention.self.query.weight.grad is not None


def test_missing_directory_fails_fast_naming_the_path(tmp_path):
    missing = str(tmp_path / "no-such-model")
    with pytest.raises(ConfigError, match=f"PRETRAINED = '{missing}' is not a directory"):
        TransformersModelWrapper(pretrained=missing)


def test_hub_id_not_in_the_cache_fails_without_network(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))  # an empty cache: nothing is downloaded
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(
        ConfigError, match="not in the Hugging Face cache|nor a model in the Hugging Face cache"
    ):
        TransformersModelWrapper(pretrained="someone/definitely-not-downloaded")


def test_model_type_is_an_alias_of_task(minilm_path):
    assert TransformersModelWrapper(pretrained=minilm_path, model_type="base").task == "base"
    with pytest.raises(ConfigError, match="disagree"):
        TransformersModelWrapper(pretrained=minilm_path, task="base", model_type="causal-lm")


def test_unknown_task_suggests_the_closest(minilm_path):
    with pytest.raises(ConfigError, match="did you mean 'causal-lm'"):
        TransformersModelWrapper(pretrained=minilm_path, task="causal_llm")


def test_tiny_llama_loads_as_causal_lm_and_gives_a_finite_loss(tmp_path):
    config = transformers.LlamaConfig(
        vocab_size=64,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=64,
    )
    transformers.LlamaForCausalLM(config).save_pretrained(tmp_path)
    wrapper = TransformersModelWrapper(pretrained=str(tmp_path), task="causal-lm")
    assert isinstance(wrapper.model, transformers.LlamaForCausalLM)
    assert wrapper.tokenizer is None and wrapper.processor is None  # the directory holds no tokenizer
    input_ids = torch.randint(0, 64, (2, 8))
    loss = wrapper(input_ids=input_ids, labels=input_ids).loss
    assert torch.isfinite(loss) and loss > 0


def test_tiny_clip_loads_with_its_image_processor(tmp_path):
    config = transformers.CLIPConfig(
        text_config={
            "vocab_size": 64,
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "max_position_embeddings": 16,
            "bos_token_id": 0,
            "eos_token_id": 1,
        },
        vision_config={
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "image_size": 32,
            "patch_size": 8,
        },
        projection_dim=16,
    )
    transformers.CLIPModel(config).save_pretrained(tmp_path)
    transformers.CLIPImageProcessor(
        size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}
    ).save_pretrained(tmp_path)
    wrapper = MODELS.build({"NAME": "TransformersModelWrapper", "PRETRAINED": str(tmp_path), "TASK": "clip"})
    assert isinstance(wrapper.model, transformers.CLIPModel)
    assert wrapper.tokenizer is None and wrapper.processor is not None
    pixels = wrapper.processor(
        images=[torch.randint(0, 255, (3, 40, 40), dtype=torch.uint8)], return_tensors="pt"
    )
    output = wrapper(input_ids=torch.randint(2, 64, (3, 6)), pixel_values=pixels["pixel_values"])
    assert output.logits_per_image.shape == (1, 3)
    with pytest.raises(ConfigError, match="MODEL.TASK 'sequence-classification'"):
        TransformersModelWrapper(pretrained=str(tmp_path), task="sequence-classification")


def test_lora_and_peft_sections_are_one_or_the_other(minilm_path):
    with pytest.raises(ConfigError, match="MODEL.LORA and MODEL.PEFT are both set; keep one of them"):
        TransformersModelWrapper(pretrained=minilm_path, num_labels=2, lora={}, peft={})


def test_an_empty_lora_section_means_the_defaults(minilm_path):
    from trainlab.peft import lora_modules

    wrapper = MODELS.build({"NAME": "TransformersModelWrapper", "PRETRAINED": minilm_path, "LORA": {}})
    layers = lora_modules(wrapper.model)
    assert len(layers) == 6 * 2 and {(m.r, m.alpha, m.dropout_p) for m in layers.values()} == {(8, 16.0, 0.1)}
