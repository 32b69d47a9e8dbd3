"""Built-in LoRA: the layer's math, target selection, training on MiniLM, exact merge, adapter files, DDP."""

import copy
import json
import os
import socket

import pytest
import torch
import torch.distributed as dist
import transformers
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from trainlab.errors import ConfigError
from trainlab.models.bert import BertForSequenceClassification
from trainlab.models.hf_wrapper import TransformersModelWrapper
from trainlab.peft import (
    LoRALinear,
    add_lora_layers,
    apply_lora_from_config,
    count_parameters,
    freeze_model,
    load_lora_adapter,
    lora_modules,
    mark_trainable,
    merge_lora,
    merge_lora_layers,
    save_lora_adapter,
    unfreeze_model,
    unmerge_lora,
)
from trainlab.peft.merge import merge_lora_checkpoint

LABELS = torch.tensor([0, 1])


def test_lora_linear_computes_base_plus_scaled_low_rank_update():
    torch.manual_seed(0)
    base = nn.Linear(6, 4)
    x = torch.randn(3, 6)
    expected_base = base(x).detach()
    layer = LoRALinear(base, r=2, alpha=6, dropout=0.0)
    torch.testing.assert_close(layer(x), expected_base)  # B starts at zero: nothing changes yet
    with torch.no_grad():
        layer.lora_B.normal_()
    update = (6 / 2) * x @ layer.lora_A.T @ layer.lora_B.T
    torch.testing.assert_close(layer(x), expected_base + update)

    before = layer(x).detach()
    original_weight = layer.weight.detach().clone()
    layer.merge()
    torch.testing.assert_close(layer(x), before, atol=1e-5, rtol=0)
    assert not torch.equal(layer.weight, original_weight)
    layer.unmerge()
    torch.testing.assert_close(layer.weight, original_weight, atol=1e-6, rtol=0)
    torch.testing.assert_close(layer.to_linear()(x), before, atol=1e-5, rtol=0)


@pytest.fixture
def bert():
    """A tiny randomly initialised BERT: 2 layers, width 32."""
    return BertForSequenceClassification(
        vocab_size=50, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64
    )


def test_targets_by_name_regex_and_ignore_list(bert):
    names = add_lora_layers(bert, module_names=["query", "value"], ignore_layers=["layer.0"])
    assert names == ["bert.encoder.layer.1.attention.self.query", "bert.encoder.layer.1.attention.self.value"]
    assert sorted(lora_modules(bert)) == names
    assert "bert.encoder.layer.1.attention.self.query.lora_A" in bert.state_dict()
    assert "bert.encoder.layer.1.attention.self.query.weight" in bert.state_dict()  # base names unchanged

    regex_names = add_lora_layers(bert, target_regex=r"bert\.encoder\.layer\.\d\.attention\.self\.key")
    assert regex_names == [f"bert.encoder.layer.{i}.attention.self.key" for i in (0, 1)]
    with pytest.raises(ConfigError, match="match no nn.Linear.*query"):
        add_lora_layers(bert, module_names=["q_proj"])


def test_ignore_layers_are_layer_indices_as_in_the_prototype(bert):
    names = add_lora_layers(bert, ("query", "value"), 4, 8, 0.0, [0])
    assert names == ["bert.encoder.layer.1.attention.self.query", "bert.encoder.layer.1.attention.self.value"]


def test_freeze_model_keeps_lora_and_the_classifier_training_as_the_prototype_did(bert):
    add_lora_layers(bert)
    freeze_model(bert)
    trainable = {name for name, param in bert.named_parameters() if param.requires_grad}
    assert trainable == {name for name, _ in bert.named_parameters() if "lora_" in name} | {
        "classifier.weight",
        "classifier.bias",
    }
    assert len(trainable) == 2 * 2 * 2 + 2
    assert count_parameters(bert)[0] == sum(p.numel() for p in bert.parameters() if p.requires_grad)
    unfreeze_model(bert)
    assert count_parameters(bert)[0] == count_parameters(bert)[1]
    freeze_model(bert)
    mark_trainable(bert, ["bert.pooler"])
    assert (
        bert.bert.pooler.dense.weight.requires_grad
        and not bert.bert.embeddings.word_embeddings.weight.requires_grad
    )
    with pytest.raises(ConfigError, match="'clasifier' matches no parameter"):
        mark_trainable(bert, ["clasifier"])


def test_a_section_without_the_classifier_freezes_it(bert):
    apply_lora_from_config(bert, {"TARGET_MODULES": ["query"], "TRAINABLE": []})
    trainable = {name for name, param in bert.named_parameters() if param.requires_grad}
    assert trainable == {
        f"bert.encoder.layer.{i}.attention.self.query.lora_{m}" for i in (0, 1) for m in "AB"
    }


def test_config_section_keys_are_checked(bert):
    with pytest.raises(ConfigError, match="Unknown key MODEL.LORA.RANK .*MODEL.LORA takes R, ALPHA"):
        apply_lora_from_config(bert, {"RANK": 4})
    assert not lora_modules(bert)


def _train(model: nn.Module, batch: dict, steps: int = 4) -> tuple[float, float]:
    """A few AdamW steps on one batch; returns the eval-mode loss before and after."""
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)

    def eval_loss() -> float:
        model.eval()
        with torch.no_grad():
            return model(**batch, labels=LABELS).loss.item()

    before = eval_loss()
    model.train()
    for _ in range(steps):
        optimizer.zero_grad()
        model(**batch, labels=LABELS).loss.backward()
        optimizer.step()
    return before, eval_loss()


@pytest.fixture(scope="module")
def trained_lora_bert(minilm_path, text_batch):
    """Own BERT with LoRA from a MODEL.LORA section, trained briefly; returns (model, base copy, losses)."""
    model = BertForSequenceClassification(
        pretrained=minilm_path,
        lora={"R": 4, "ALPHA": 8, "DROPOUT": 0.0, "TARGET_MODULES": ["query", "value"]},
    )
    base = {
        name: t.clone()
        for name, t in model.state_dict().items()
        if "lora_" not in name and "classifier" not in name
    }
    losses = _train(model, text_batch)
    return model.eval(), base, losses


def test_training_moves_only_lora_and_the_head(trained_lora_bert):
    model, base_before, (loss_before, loss_after) = trained_lora_bert
    assert loss_after < loss_before
    trainable = {name for name, param in model.named_parameters() if param.requires_grad}
    assert {name.split(".")[-1] for name in trainable} == {"lora_A", "lora_B", "weight", "bias"}
    assert {name for name in trainable if "lora_" not in name} == {"classifier.weight", "classifier.bias"}
    state = model.state_dict()
    for name, tensor in base_before.items():
        assert torch.equal(state[name], tensor), name


def test_merging_is_exact_and_reversible(trained_lora_bert, text_batch):
    model, _, _ = trained_lora_bert
    with torch.no_grad():
        expected = model(**text_batch).logits
        merge_lora(model)
        torch.testing.assert_close(model(**text_batch).logits, expected, atol=1e-5, rtol=0)
        unmerge_lora(model)
        torch.testing.assert_close(model(**text_batch).logits, expected, atol=1e-5, rtol=0)


def test_adapter_round_trip_and_merge_into_plain_transformers(
    trained_lora_bert, minilm_path, text_batch, tmp_path
):
    model, _, _ = trained_lora_bert
    with torch.no_grad():
        expected = model(**text_batch).logits
    save_lora_adapter(model, str(tmp_path / "adapter"))
    meta = json.loads((tmp_path / "adapter" / "trainlab_adapter.json").read_text())
    assert meta["layers"]["bert.encoder.layer.0.attention.self.query"] == {
        "r": 4,
        "alpha": 8.0,
        "dropout": 0.0,
    }
    assert meta["trained_parameters"] == ["classifier.bias", "classifier.weight"]
    assert meta["base_model"]["NAME"] == "BertForSequenceClassification"

    fresh = load_lora_adapter(
        BertForSequenceClassification(pretrained=minilm_path), str(tmp_path / "adapter")
    ).eval()
    with torch.no_grad():
        torch.testing.assert_close(fresh(**text_batch).logits, expected, atol=1e-6, rtol=0)

    merged_dir = merge_lora_checkpoint(str(tmp_path / "adapter"), str(tmp_path / "merged"))
    hf = transformers.BertForSequenceClassification.from_pretrained(merged_dir).eval()
    with torch.no_grad():
        torch.testing.assert_close(hf(**text_batch).logits, expected, atol=1e-4, rtol=0)


def test_merge_lora_layers_restores_the_plain_architecture(trained_lora_bert, text_batch):
    model = copy.deepcopy(trained_lora_bert[0])
    with torch.no_grad():
        expected = model(**text_batch).logits
    merge_lora_layers(model)
    assert not lora_modules(model)
    base_names = set(trained_lora_bert[1]) | {"classifier.weight", "classifier.bias"}
    assert set(model.state_dict()) == base_names
    with torch.no_grad():
        torch.testing.assert_close(model(**text_batch).logits, expected, atol=1e-5, rtol=0)


def test_lora_on_a_hugging_face_model_saves_merged(minilm_path, text_batch, tmp_path):
    wrapper = TransformersModelWrapper(pretrained=minilm_path, num_labels=2, lora={"R": 4, "DROPOUT": 0.0})
    trainable = {name for name, param in wrapper.model.named_parameters() if param.requires_grad}
    assert {"classifier.weight", "classifier.bias"} <= trainable  # new head trains without being listed
    assert all("lora_" in name or name.startswith("classifier.") for name in trainable)
    loss_before, loss_after = _train(wrapper, text_batch, steps=3)
    assert loss_after < loss_before
    with torch.no_grad():
        expected = wrapper(**text_batch).logits

    wrapper.save_pretrained(str(tmp_path / "full"))
    reloaded = transformers.AutoModelForSequenceClassification.from_pretrained(tmp_path / "full").eval()
    wrapper.save_adapter(str(tmp_path / "adapter"))
    merged = merge_lora_checkpoint(str(tmp_path / "adapter"), str(tmp_path / "merged"))
    from_merge = transformers.AutoModelForSequenceClassification.from_pretrained(merged).eval()
    with torch.no_grad():
        torch.testing.assert_close(reloaded(**text_batch).logits, expected, atol=1e-5, rtol=0)
        torch.testing.assert_close(from_merge(**text_batch).logits, expected, atol=1e-5, rtol=0)
    assert os.path.isfile(tmp_path / "merged" / "tokenizer.json")

    before = (tmp_path / "merged" / "config.json").read_bytes()  # a second merge never replaces a model
    with pytest.raises(ConfigError, match="already exists and is not empty"):
        merge_lora_checkpoint(str(tmp_path / "adapter"), str(tmp_path / "merged"))
    assert (tmp_path / "merged" / "config.json").read_bytes() == before


def test_bad_adapter_directories_are_config_errors(tmp_path, bert):
    with pytest.raises(ConfigError, match="is not a directory"):
        merge_lora_checkpoint(str(tmp_path / "missing"), str(tmp_path / "out"))
    with pytest.raises(ConfigError, match="holds no adapter"):
        merge_lora_checkpoint(str(tmp_path), str(tmp_path / "out"))
    with pytest.raises(ConfigError, match="not a TrainLab LoRA adapter"):
        load_lora_adapter(bert, str(tmp_path))


@pytest.fixture
def gloo_group():
    """A one-process gloo group, as a DDP job's rank 0 sees it; destroyed afterwards."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=0, world_size=1)
    yield
    dist.destroy_process_group()


def test_prototype_lora_flow_on_a_ddp_wrapped_model(gloo_group, minilm_path, text_batch):
    """add → freeze → DDP → train → merge_lora_layers(ddp) → ddp.module.state_dict(), as the prototype did."""
    model = BertForSequenceClassification(pretrained=minilm_path)
    add_lora_layers(model, r=8, lora_alpha=16)
    freeze_model(model)
    ddp = DistributedDataParallel(model)
    optimizer = torch.optim.AdamW([p for p in ddp.parameters() if p.requires_grad], lr=1e-2)
    for _ in range(2):
        optimizer.zero_grad()
        ddp(**text_batch, labels=LABELS).loss.backward()
        optimizer.step()
    ddp.eval()
    with torch.no_grad():
        expected = ddp(**text_batch).logits
    assert merge_lora_layers(ddp) is ddp
    state = ddp.module.state_dict()
    assert not lora_modules(ddp) and not any("lora" in name for name in state)
    assert "bert.encoder.layer.0.attention.self.query.weight" in state
    with torch.no_grad():
        torch.testing.assert_close(ddp(**text_batch).logits, expected, atol=1e-5, rtol=0)
    unfreeze_model(ddp)
    assert all(param.requires_grad for param in ddp.parameters())


def test_add_lora_layers_on_a_ddp_wrapped_model_uses_the_inner_names(gloo_group, bert):
    ddp = DistributedDataParallel(bert)
    names = add_lora_layers(
        ddp, ignore_layers=[1], target_regex=r"bert\.encoder\.layer\.\d\.attention\.self\.key"
    )
    assert names == ["bert.encoder.layer.0.attention.self.key"]
    assert isinstance(bert.bert.encoder.layer[0].attention.self.key, LoRALinear)
