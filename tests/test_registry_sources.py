"""Where registered components come from: modules imported on the first lookup that misses, installed plugins,
and a user's class against a built-in of the same name, each in a process as a user's starts."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import trainlab.plugins as plugins_module
from trainlab.builder import MODELS
from trainlab.registry import Registry


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
