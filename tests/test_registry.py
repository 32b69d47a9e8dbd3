"""Registries as a user meets them: register, look up, build from a config, find modules nobody imported."""

from __future__ import annotations

import inspect
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

import trainlab.plugins as plugins_module
from trainlab.builder import LOSSES, MODELS, OPTIMIZERS, SCHEDULERS, build_from_cfg
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


def write_package(root: Path, files: dict[str, str]) -> None:
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))


@pytest.fixture
def forget_modules():
    """Drop the named temp modules from sys.modules afterwards, so no later test sees them."""
    names: list[str] = []
    yield names
    for name in [m for m in sys.modules if m.split(".")[0] in names]:
        del sys.modules[name]


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


def test_locations_are_imported_on_the_first_lookup_that_misses(tmp_path, monkeypatch, forget_modules):
    forget_modules.append("shapes_pkg")
    write_package(
        tmp_path,
        {
            "shapes_pkg/__init__.py": "",
            "shapes_pkg/registry.py": """
            from trainlab.registry import Registry
            SHAPES = Registry("shapes", locations=["shapes_pkg.circles"])
        """,
            "shapes_pkg/circles.py": """
            from shapes_pkg.registry import SHAPES

            @SHAPES.register_module()
            class Circle:
                def __init__(self, radius: float = 1.0):
                    self.radius = radius
        """,
        },
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    from shapes_pkg.registry import SHAPES

    assert SHAPES.locations == ["shapes_pkg.circles"]
    assert "shapes_pkg.circles" not in sys.modules
    assert SHAPES.build({"NAME": "Circle", "RADIUS": 2.0}).radius == 2.0
    assert "shapes_pkg.circles" in sys.modules
    assert list(SHAPES) == ["Circle"]


def test_a_location_that_cannot_be_imported_fails_loudly_every_time():
    registry = Registry("broken", locations=["no_such_package_for_trainlab"])
    for _ in range(2):  # not only once: a later lookup must not claim the name merely is unknown
        with pytest.raises(ModuleNotFoundError, match="no_such_package_for_trainlab"):
            registry.get("Anything")


def test_installed_plugins_register_through_the_entry_point_group(tmp_path, monkeypatch, forget_modules):
    forget_modules.append("acme_trainlab_plugin")
    write_package(
        tmp_path,
        {
            "acme_trainlab_plugin/__init__.py": """
            from trainlab.registries import MODELS

            @MODELS.register_module()
            class AcmeTinyModel:
                def __init__(self, width: int = 4):
                    self.width = width
        """,
            "acme_trainlab_plugin-1.0.dist-info/METADATA": """
            Metadata-Version: 2.1
            Name: acme-trainlab-plugin
            Version: 1.0
        """,
            "acme_trainlab_plugin-1.0.dist-info/entry_points.txt": """
            [trainlab.plugins]
            acme = acme_trainlab_plugin
        """,
        },
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(plugins_module, "_plugins_loaded", False)
    try:
        assert "acme_trainlab_plugin" not in sys.modules
        assert MODELS.build({"NAME": "AcmeTinyModel", "WIDTH": 8}).width == 8
        assert "AcmeTinyModel" in MODELS.names()
    finally:
        MODELS.module_dict.pop("AcmeTinyModel", None)


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


def run_python(script: str) -> subprocess.CompletedProcess:
    """Run ``script`` in a fresh interpreter, so the global registries start as a user's process does."""
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)], capture_output=True, text=True, timeout=120,
        env={**os.environ, "OMP_NUM_THREADS": "1"}, check=False,
    )


def test_a_users_class_keeps_a_built_in_name_when_the_built_ins_load_later():
    proc = run_python("""
        import logging, sys
        logging.basicConfig(level=logging.DEBUG, stream=sys.stdout, format="%(name)s %(message)s")
        from trainlab.builder import DATASETS, MODELS, TRAINERS
        from trainlab.registry_index import build_listing

        @DATASETS.register_module()
        class StackOverflowDataset:
            pass

        @MODELS.register_module()
        class BertForSequenceClassification:
            pass

        @TRAINERS.register_module(name=["BERTTrainer", "LORATrainer"])
        class MyTrainer:
            pass

        builtins = ["trainlab.datasets.stackoverflow", "trainlab.models", "trainlab.trainers"]
        assert not [name for name in builtins if name in sys.modules]
        assert not DATASETS.exists("NoSuchDataset")  # a lookup that misses imports the built-ins
        listing = build_listing()  # what `trainlab list` does: imports every registry's modules
        assert all(name in sys.modules for name in builtins)

        assert DATASETS.get("StackOverflowDataset") is StackOverflowDataset
        assert MODELS.build({"NAME": "BertForSequenceClassification"}).__class__ is BertForSequenceClassification
        assert TRAINERS.get("BERTTrainer") is TRAINERS.get("LORATrainer") is MyTrainer
        assert ("StackOverflowDataset", "__main__") in listing["datasets"]
        import trainlab.trainers
        assert trainlab.trainers.BERTTrainer is not MyTrainer  # the built-in class still exists, nameless
        print("checked")
    """)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[-1] == "checked"
    assert (
        "trainlab.registry trainers: built-in trainlab.trainers.classification.LORATrainer yields 'LORATrainer' "
        "to __main__.MyTrainer"
    ) in proc.stdout


def test_a_users_class_replaces_a_built_in_already_loaded_but_two_user_classes_still_clash():
    proc = run_python("""
        import logging, sys
        logging.basicConfig(level=logging.DEBUG, stream=sys.stdout, format="%(name)s %(message)s")
        from trainlab.builder import DATASETS, TRAINERS

        assert TRAINERS.get("BERTTrainer").__module__ == "trainlab.trainers.classification"

        @TRAINERS.register_module()
        class BERTTrainer:
            pass

        assert TRAINERS.get("BERTTrainer") is BERTTrainer
        try:
            TRAINERS.register_module(name="BERTTrainer", module=type("BERTTrainer", (), {}))
        except KeyError as exc:
            print("clash:", exc)
        # Loading more built-ins (another registry's) does not take the name back.
        assert DATASETS.get("StackOverflowDataset").__module__ == "trainlab.datasets.stackoverflow"
        assert TRAINERS.get("BERTTrainer") is BERTTrainer
    """)
    assert proc.returncode == 0, proc.stderr
    assert (
        "trainlab.registry trainers: __main__.BERTTrainer replaces built-in "
        "trainlab.trainers.classification.BERTTrainer as 'BERTTrainer'"
    ) in proc.stdout
    assert "clash: \"'BERTTrainer' is already registered in trainers by __main__.BERTTrainer" in proc.stdout
