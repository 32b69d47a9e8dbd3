"""TrainLab's own BERT on MiniLM: equals Hugging Face's, exports its layout, fuses tabular features."""

import pytest
import torch
import transformers

from trainlab.errors import ConfigError
from trainlab.models.bert import BertForSequenceClassification
from trainlab.registries import MODELS


@pytest.fixture(scope="module")
def own_and_hf(minilm_path):
    """Both implementations on MiniLM with the same (non-trivial) classifier weights, in eval mode."""
    own = BertForSequenceClassification(pretrained=minilm_path, num_labels=3).eval()
    hf = transformers.BertForSequenceClassification.from_pretrained(minilm_path, num_labels=3).eval()
    torch.manual_seed(0)
    with torch.no_grad():
        own.classifier.weight.normal_(std=1.0)
        own.classifier.bias.normal_(std=1.0)
    hf.classifier.load_state_dict(own.classifier.state_dict())
    return own, hf


def test_logits_equal_hugging_face_bert_with_padding(own_and_hf, text_batch):
    own, hf = own_and_hf
    with torch.no_grad():
        ours = own(**text_batch).logits
        theirs = hf(**text_batch).logits
    assert ours.shape == (2, 3)
    assert ours.abs().max() > 0.1  # a real signal, not two near-zero tensors
    torch.testing.assert_close(ours, theirs, atol=1e-4, rtol=0)


def test_padding_does_not_change_the_short_sentence(own_and_hf, text_batch):
    own, _ = own_and_hf
    length = int(text_batch["attention_mask"][0].sum())
    alone = {key: value[:1, :length] for key, value in text_batch.items()}
    with torch.no_grad():
        padded_logits = own(**text_batch).logits[0]
        alone_logits = own(**alone).logits[0]
    torch.testing.assert_close(padded_logits, alone_logits, atol=1e-5, rtol=0)


def test_reports_weights_missing_from_the_checkpoint(own_and_hf):
    own, _ = own_and_hf
    assert own.newly_initialized == ["classifier.weight", "classifier.bias"]  # MiniLM ships the pooler
    assert own.tokenizer is not None and own.tokenizer("hi")["input_ids"][0] == own.tokenizer.cls_token_id


def test_loss_is_cross_entropy_of_the_labels(own_and_hf, text_batch):
    own, _ = own_and_hf
    labels = torch.tensor([2, 0])
    with torch.no_grad():
        output = own(**text_batch, labels=labels)
    torch.testing.assert_close(output.loss, torch.nn.functional.cross_entropy(output.logits, labels))


def test_save_pretrained_loads_in_plain_transformers(own_and_hf, text_batch, tmp_path):
    own, _ = own_and_hf
    own.save_pretrained(str(tmp_path))
    reloaded = transformers.AutoModelForSequenceClassification.from_pretrained(tmp_path).eval()
    assert type(reloaded).__name__ == "BertForSequenceClassification"
    tokenizer = transformers.AutoTokenizer.from_pretrained(tmp_path)
    assert tokenizer("hello")["input_ids"] == own.tokenizer("hello")["input_ids"]
    with torch.no_grad():
        torch.testing.assert_close(reloaded(**text_batch).logits, own(**text_batch).logits, atol=1e-5, rtol=0)
    again = BertForSequenceClassification(pretrained=str(tmp_path), num_labels=3)
    assert again.newly_initialized == []


def test_architecture_comes_from_config_overrides():
    model = BertForSequenceClassification(
        num_labels=4,
        vocab_size=50,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
    )
    assert len(model.bert.encoder.layer) == 2
    assert model.bert.embeddings.word_embeddings.weight.shape == (50, 32)
    logits = model(torch.randint(0, 50, (3, 7))).logits
    assert logits.shape == (3, 4)


def test_unknown_config_key_is_named_with_a_suggestion():
    with pytest.raises(ConfigError, match="HIDEN_SIZE.*did you mean 'hidden_size'"):
        BertForSequenceClassification(hiden_size=32)


@pytest.mark.parametrize("fusion", ["concat", "gated"])
def test_tabular_features_reach_the_classifier(minilm_path, text_batch, fusion):
    model = MODELS.build(
        {
            "NAME": "BertForSequenceClassification",
            "PRETRAINED": minilm_path,
            "TABULAR_DIM": 5,
            "FUSION": fusion,
        }
    ).eval()
    assert {"fusion", "classifier"} <= {name.split(".")[0] for name in model.newly_initialized}
    tabular = torch.randn(2, 5, requires_grad=True)
    first = model(**text_batch, tabular=tabular).logits
    second = model(**text_batch, tabular=tabular.detach() + 1.0).logits
    assert not torch.allclose(first, second)

    model(**text_batch, tabular=tabular, labels=torch.tensor([0, 1])).loss.backward()
    assert tabular.grad.abs().sum() > 0
    fusion_grads = [param.grad for param in model.fusion.parameters()]
    assert all(grad is not None for grad in fusion_grads) and sum(g.abs().sum() for g in fusion_grads) > 0


def test_tabular_input_must_match_the_configured_width(minilm_path, text_batch):
    plain = BertForSequenceClassification(pretrained=minilm_path)
    with pytest.raises(ConfigError, match="TABULAR_DIM"):
        plain(**text_batch, tabular=torch.zeros(2, 5))
    with pytest.raises(ConfigError, match="unknown.*concat"):
        BertForSequenceClassification(pretrained=minilm_path, tabular_dim=5, fusion="attention")


def test_lora_section_adapts_query_value_and_trains_the_head(minilm_path):
    model = MODELS.build(
        {
            "NAME": "BertForSequenceClassification",
            "PRETRAINED": minilm_path,
            "LORA": {"R": 2, "IGNORE_LAYERS": [5]},
        }
    )
    trainable = {name for name, param in model.named_parameters() if param.requires_grad}
    assert {name.rsplit(".", 2)[-2] for name in trainable if "lora_" in name} == {"query", "value"}
    assert len(trainable) == 5 * 2 * 2 + 2 and {"classifier.weight", "classifier.bias"} <= trainable
    with pytest.raises(ConfigError, match=r"Unknown key MODEL.LORA.ALPA — did you mean MODEL.LORA.ALPHA\?"):
        BertForSequenceClassification(pretrained=minilm_path, lora={"ALPA": 4})
