"""TRAINER.DROPOUT_KERNEL fast: the masks it draws, attention equal to torch's math path given the same mask,
what the mode leaves alone, seeding and activation-checkpoint recomputation on a real HF model."""

from __future__ import annotations

import contextlib

import pytest
import torch
import torch.nn.functional as F
from transformers import BertConfig, BertForSequenceClassification

from trainlab.config.settings import TrainerSettings
from trainlab.engine.dropout_kernels import FastDropout, attention, dropout, keep_mask, resolve_dropout_kernel
from trainlab.engine.strategies import Strategy
from trainlab.errors import ConfigError


@pytest.mark.parametrize("p", [0.1, 0.5])
def test_keep_mask_drops_at_rate_p_and_follows_the_seed(p):
    torch.manual_seed(3)
    first = keep_mask((1000, 2000), p)
    torch.manual_seed(3)
    again = keep_mask((1000, 2000), p)
    assert first.dtype == torch.bool and first.shape == (1000, 2000)
    assert torch.equal(first, again)
    assert abs(first.float().mean().item() - (1 - p)) < 2e-3
    # every 16-bit lane of the 64-bit draws is uniform: no position in a group of four is biased
    assert all(abs(lane.float().mean().item() - (1 - p)) < 4e-3 for lane in first.view(-1, 4).unbind(1))


def test_dropout_scales_kept_values_and_its_gradient_uses_the_same_mask():
    x = torch.randn(300, 40, requires_grad=True)
    keep = keep_mask(x.shape, 0.25)
    y = dropout(x, 0.25, keep)
    assert torch.allclose(y, torch.where(keep, x / 0.75, 0.0))
    (grad,) = torch.autograd.grad(y.sum(), x)
    assert torch.allclose(grad, keep.float() / 0.75)


def _math_reference(q, k, v, keep, p, attn_mask=None, is_causal=False, scale=None):
    if attn_mask is not None and attn_mask.dtype == torch.bool:  # as the public SDPA converts a bool mask
        attn_mask = torch.zeros(attn_mask.shape).masked_fill(attn_mask.logical_not(), float("-inf"))
    return torch.ops.aten._scaled_dot_product_attention_math(q, k, v, attn_mask, p, is_causal, keep, scale=scale)[0]


@pytest.mark.parametrize("case", ["plain", "bool_mask", "float_mask", "causal", "scale", "gqa"])
def test_attention_equals_torch_math_path_given_the_same_mask(case):
    torch.manual_seed(0)
    batch, heads, queries, keys, dim = 2, 4, 7, 9, 8
    kv_heads = 2 if case == "gqa" else heads
    q = torch.randn(batch, heads, queries, dim, requires_grad=True)
    k = torch.randn(batch, kv_heads, keys, dim, requires_grad=True)
    v = torch.randn(batch, kv_heads, keys, dim, requires_grad=True)
    keep = keep_mask((batch, heads, queries, keys), 0.3)
    options: dict = {}
    if case == "bool_mask":
        mask = torch.rand(batch, 1, queries, keys) > 0.3
        mask[0, 0, 2] = False  # a query that may see no key: zeros, not NaN
        options["attn_mask"] = mask
    elif case == "float_mask":
        options["attn_mask"] = torch.randn(batch, 1, queries, keys)
    elif case == "causal":
        options["is_causal"] = True
    elif case == "scale":
        options["scale"] = 0.3
    ours = attention(q, k, v, dropout_p=0.3, keep=keep, enable_gqa=case == "gqa", **options)
    if case == "gqa":
        k_ref, v_ref = k.repeat_interleave(2, 1), v.repeat_interleave(2, 1)
    else:
        k_ref, v_ref = k, v
    reference = _math_reference(q, k_ref, v_ref, keep, 0.3, **options)
    assert not ours.isnan().any()
    assert torch.allclose(ours, reference, atol=1e-5)
    for got, expected in zip(torch.autograd.grad(ours.sum(), (q, k, v)), torch.autograd.grad(reference.sum(), (q, k, v))):
        assert torch.allclose(got, expected, atol=1e-5)


def test_the_mode_changes_training_dropout_only():
    x = torch.randn(64, 64, requires_grad=True)
    q = k = v = torch.randn(1, 2, 5, 4)
    attended = F.scaled_dot_product_attention(q, k, v)
    with FastDropout():
        assert torch.equal(F.dropout(x, 0.5, training=False), x)
        assert torch.equal(torch.nn.Dropout(0.5).eval()(x), x)
        assert torch.equal(F.scaled_dot_product_attention(q, k, v), attended)  # no dropout: torch's fused kernel
        assert not _has_fast_dropout(F.dropout(x.clone(), 0.5, training=True, inplace=True))  # in place: torch's
        trained = torch.nn.Dropout(0.5).train()(x)
        kept = trained != 0
        assert _has_fast_dropout(trained)
        assert torch.allclose(trained[kept], x[kept] * 2)
        assert _has_fast_dropout(F.scaled_dot_product_attention(q, k, v.requires_grad_(), dropout_p=0.2))
        # under vmap torch's kernel follows the transform's randomness rule: a different mask per row
        rows = torch.vmap(lambda row: F.dropout(row, 0.5), randomness="different")(torch.ones(4, 256))
        assert len({tuple(row.tolist()) for row in rows}) == 4


def _has_fast_dropout(output: torch.Tensor) -> bool:
    """Whether the autograd graph of ``output`` holds a fast-dropout node."""
    seen, stack = set(), [output.grad_fn]
    while stack:
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        if type(node).__name__ == "_ScaleKeptBackward":
            return True
        stack.extend(next_node for next_node, _ in node.next_functions)
    return False


def _tiny_bert() -> BertForSequenceClassification:
    torch.manual_seed(0)
    config = BertConfig(vocab_size=120, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=64, max_position_embeddings=64, attn_implementation="sdpa")
    return BertForSequenceClassification(config).train()


def _gradients(model, batch, seed, fast=True):
    torch.manual_seed(seed)
    model.zero_grad(set_to_none=True)
    with FastDropout() if fast else contextlib.nullcontext():
        loss = model(**batch).loss
        loss.backward()
    return loss, {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("reentrant", [False, True])
def test_hf_bert_under_the_mode_is_seeded_and_checkpointed_blocks_recompute_the_same_masks(reentrant):
    model = _tiny_bert()
    batch = {"input_ids": torch.randint(5, 120, (4, 12)), "attention_mask": torch.ones(4, 12, dtype=torch.long),
             "labels": torch.tensor([0, 1, 1, 0])}
    batch["attention_mask"][:2, 9:] = 0  # padding: the mask reaches attention
    loss, grads = _gradients(model, batch, seed=7)
    again, grads_again = _gradients(model, batch, seed=7)
    other, _ = _gradients(model, batch, seed=8)
    assert _has_fast_dropout(loss)
    assert loss.item() == again.item() and all(torch.equal(grads[name], grads_again[name]) for name in grads)
    assert loss.item() != other.item()  # the masks follow the seed

    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": reentrant})
    mixed, _ = _gradients(model, batch, seed=7)  # embeddings and head outside the checkpointed layers: fast there
    assert _has_fast_dropout(mixed)
    model.bert.embeddings.dropout.p = model.dropout.p = 0.0  # now every dropout is inside a checkpointed layer
    checkpointed, checkpointed_grads = _gradients(model, batch, seed=7)
    model.gradient_checkpointing_disable()
    native, native_grads = _gradients(model, batch, seed=7, fast=False)
    # checkpointed layers draw torch's masks in the forward and in the recomputation: the plain native gradients
    assert not _has_fast_dropout(checkpointed)
    assert checkpointed.item() == pytest.approx(native.item(), abs=1e-6)
    assert all(torch.allclose(native_grads[name], checkpointed_grads[name], atol=1e-6) for name in native_grads)

def test_auto_is_fast_on_cpu_and_native_where_torch_is_fast_or_the_model_is_compiled():
    cpu = torch.device("cpu")
    assert resolve_dropout_kernel("auto", cpu, compiled=False) == ("fast", "auto: CPU")
    assert resolve_dropout_kernel("auto", cpu, compiled=True)[0] == "native"
    assert resolve_dropout_kernel("auto", torch.device("cuda", 0), compiled=False)[0] == "native"
    assert resolve_dropout_kernel("native", cpu, compiled=False) == ("native", "set in TRAINER.DROPOUT_KERNEL")
    strategy = Strategy(cpu, "fp32")
    strategy.setup(torch.nn.Linear(2, 2))
    assert strategy.dropout_kernel[0] == "fast"
    compiled = torch.nn.Sequential(torch.nn.Linear(2, 2))
    compiled[0].compile()
    strategy.setup(compiled)
    assert strategy.dropout_kernel == ("native", "auto: the model is compiled")


def test_an_unknown_dropout_kernel_is_a_config_error_naming_the_choices():
    with pytest.raises(ConfigError, match="DROPOUT_KERNEL.*fast"):
        TrainerSettings.from_mapping({"DROPOUT_KERNEL": "fastest"})
