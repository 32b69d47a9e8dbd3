"""Registries as a user meets them: register, look up, build from a config (where components come from:
test_registry_sources.py)."""

from __future__ import annotations

import inspect

import pytest
import torch

from trainlab.builder import LOSSES, OPTIMIZERS, SCHEDULERS, build_from_cfg
from trainlab.errors import RegistryError
from trainlab.registry import Registry, accepted_keywords


class Classifier:
    """A component whose keywords a config fills in."""

    def __init__(self, hidden_size: int, num_labels: int = 2, dropout: float = 0.1) -> None:
        self.hidden_size, self.num_labels, self.dropout = hidden_size, num_labels, dropout


@pytest.fixture
def models() -> Registry:
    registry = Registry("toy_models")
    registry.register_module(module=Classifier)
    return registry


def test_register_as_decorator_and_as_call_with_aliases():
    registry = Registry("heads")

    @registry.register_module()
    class LinearHead:
        pass

    @registry.register_module(name=["MLPHead", "mlp"])
    class TwoLayerHead:
        pass

    def make_head() -> LinearHead:
        return LinearHead()

    assert registry.register_module(module=make_head) is make_head
    assert registry.get("LinearHead") is LinearHead
    assert registry.get("MLPHead") is registry.get("mlp") is TwoLayerHead
    assert registry.get("make_head") is make_head
    assert registry.get(LinearHead) is LinearHead  # a class passed instead of a name is used as is
    assert list(registry) == ["LinearHead", "MLPHead", "make_head", "mlp"]
    assert len(registry) == 4
    assert "mlp" in registry and "TwoLayerHead" not in registry and 3 not in registry
    assert registry.exists("LinearHead") and not registry.exists("ConvHead")


def test_a_taken_name_raises_unless_forced(models):
    class OtherClassifier:
        pass

    with pytest.raises(
        KeyError, match=r"'Classifier' is already registered in toy_models by .*Classifier.*force=True"
    ):
        models.register_module(name="Classifier", module=OtherClassifier)
    assert models.get("Classifier") is Classifier
    models.register_module(module=Classifier)  # the same class again is harmless (a module imported twice)
    models.register_module(name="Classifier", force=True, module=OtherClassifier)
    assert models.get("Classifier") is OtherClassifier


def test_only_callables_with_string_names_can_be_registered(models):
    with pytest.raises(TypeError, match="only classes and functions"):
        models.register_module(name="answer", module=42)
    with pytest.raises(TypeError, match="name must be a str or a list of str"):
        models.register_module(name=7)


def test_child_falls_back_to_its_parent_and_scopes_reach_across():
    root = Registry("models")
    vision = Registry("vision_models", parent=root, scope="vision")

    @root.register_module()
    class Bert:
        pass

    @vision.register_module()
    class ViT:
        pass

    assert vision.get("Bert") is Bert  # missing in the child: the parent answers
    assert root.get("vision.ViT") is ViT  # "scope.Name" reaches a child
    assert vision.get("models.Bert") is Bert  # ... and an ancestor
    assert vision.get("vision.ViT") is ViT
    assert not root.exists("ViT")
    assert root.children == {"vision": vision} and vision.parent is root and vision.scope == "vision"
    with pytest.raises(RegistryError, match="'ViT' is not in the models registry"):
        root.get("ViT")


def test_unknown_name_suggests_the_closest_and_lists_the_known_ones(models):
    models.register_module(name="Regressor", module=Classifier)
    with pytest.raises(RegistryError) as caught:
        models.get("Clasifier")
    message = str(caught.value)
    assert "'Clasifier' is not in the toy_models registry — did you mean 'Classifier'?" in message
    assert "Known names: Classifier, Regressor." in message
    assert "trainlab list toy_models" in message and "CUSTOM_IMPORTS" in message
    with pytest.raises(
        RegistryError, match=r"'Zebra' is not in the toy_models registry\. Known names: Classifier"
    ):
        models.get("Zebra")


def test_repr_is_a_table_of_names_and_where_they_are_defined(models):
    models.register_module(name="clf", module=Classifier)
    lines = repr(models).splitlines()
    assert lines[0] == "Registry 'toy_models' (scope 'toy_models', 2 names)"
    assert lines[1].split() == ["name", "defined", "in"]
    assert lines[2].split() == ["Classifier", f"{__name__}.Classifier"]
    assert lines[3].split() == ["clf", f"{__name__}.Classifier"]
    assert models.module_dict == {"Classifier": Classifier, "clf": Classifier}


def test_build_from_cfg_lower_cases_keys_and_runtime_kwargs_win(models):
    built = build_from_cfg({"NAME": "Classifier", "HIDDEN_SIZE": 8, "NUM_LABELS": 5}, models, dropout=0.3)
    assert (built.hidden_size, built.num_labels, built.dropout) == (8, 5, 0.3)
    built = models.build({"NAME": "Classifier", "NUM_LABELS": 5}, num_labels=3, hidden_size=4)
    assert (built.hidden_size, built.num_labels) == (4, 3)
    assert models.build({"type": "Classifier", "hidden_size": 1}).hidden_size == 1


def test_build_without_a_name_says_what_names_exist(models):
    with pytest.raises(
        RegistryError, match="the toy_models config has no NAME; set NAME to one of: Classifier"
    ):
        build_from_cfg({"HIDDEN_SIZE": 8}, models)
    with pytest.raises(RegistryError, match="must be a mapping with a NAME key"):
        build_from_cfg("Classifier", models)


def test_a_bad_keyword_names_the_class_the_key_the_accepted_keys_and_the_closest(models):
    with pytest.raises(RegistryError) as caught:
        build_from_cfg({"NAME": "Classifier", "HIDDEN_SIZE": 8, "NUM_LABLES": 3}, models)
    assert str(caught.value) == (
        "Classifier does not take 'num_lables' — did you mean 'num_labels'? "
        "(from the toy_models config of 'Classifier'). It accepts: dropout, hidden_size, num_labels."
    )


def test_keywords_passed_up_through_kwargs_are_checked_against_the_parent(models):
    @models.register_module()
    class DeepClassifier(Classifier):
        def __init__(self, num_layers: int = 2, **kwargs) -> None:
            super().__init__(**kwargs)
            self.num_layers = num_layers

    @models.register_module()
    class Encoder(torch.nn.Module):
        def __init__(self, width: int = 4, **options) -> None:  # **options stop at nn.Module: the class's own
            super().__init__()
            self.options = options

    built = models.build({"NAME": "DeepClassifier", "NUM_LAYERS": 3, "HIDDEN_SIZE": 8})
    assert (built.num_layers, built.hidden_size) == (3, 8)
    assert accepted_keywords(DeepClassifier) == (
        {"num_layers", "hidden_size", "num_labels", "dropout"},
        False,
    )
    with pytest.raises(
        RegistryError, match="DeepClassifier does not take 'hiden_size' — did you mean 'hidden_size'"
    ):
        models.build({"NAME": "DeepClassifier", "HIDEN_SIZE": 8})
    assert models.build({"NAME": "Encoder", "ANYTHING": 1}).options == {"anything": 1}


def test_every_torch_optimizer_scheduler_and_loss_is_there_by_its_class_name():
    params = [torch.nn.Parameter(torch.ones(2))]
    for name, obj in inspect.getmembers(torch.optim, inspect.isclass):
        if issubclass(obj, torch.optim.Optimizer) and obj is not torch.optim.Optimizer:
            assert OPTIMIZERS.get(name) is obj
    for name in torch.optim.lr_scheduler.__all__:
        if name != "LRScheduler":
            assert SCHEDULERS.get(name) is getattr(torch.optim.lr_scheduler, name)
    for name, obj in inspect.getmembers(torch.nn, inspect.isclass):
        if issubclass(obj, torch.nn.modules.loss._Loss) and name.endswith(
            "Loss"
        ):  # not NLLLoss2d (deprecated)
            assert LOSSES.get(name) is obj
    sgd = build_from_cfg({"NAME": "SGD", "LR": 0.5, "MOMENTUM": 0.9}, OPTIMIZERS, params)
    assert sgd.param_groups[0]["lr"] == 0.5 and sgd.param_groups[0]["momentum"] == 0.9
    step = build_from_cfg({"NAME": "StepLR", "STEP_SIZE": 2, "GAMMA": 0.5}, SCHEDULERS, sgd)
    assert step.step_size == 2
    with pytest.raises(
        RegistryError, match="'Adamw' is not in the optimizers registry — did you mean 'AdamW'"
    ):
        OPTIMIZERS.get("Adamw")
