"""YAML files that are not configs: broken syntax, a list, an empty file, a key written twice, merge keys."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from trainlab.config import load_config
from trainlab.config.yaml_files import load_yaml
from trainlab.errors import ConfigError


def write_config(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(text))
    return path


def test_files_that_are_not_configs_say_where_they_go_wrong(tmp_path):
    broken = write_config(tmp_path, "broken.yaml", "TRAINER:\n  EPOCHS: [3\n")
    with pytest.raises(ConfigError, match=r"broken\.yaml is not valid YAML at line 3, column 1"):
        load_config(broken)
    listing = write_config(tmp_path, "list.yaml", "- MODEL\n- TRAINER\n")
    with pytest.raises(
        ConfigError, match=r"must hold a mapping of sections \(MODEL, TRAINER, DATASET\), not list"
    ):
        load_config(listing)
    with pytest.raises(ConfigError, match=r"empty\.yaml is empty"):
        load_config(write_config(tmp_path, "empty.yaml", "# only a comment\n"))


@pytest.mark.parametrize("text, line, key", [
    ("TRAINER:\n  EPOCHS: 2\nMODEL:\n  NAME: x\nTRAINER:\n  LR: 0.1\n", 5, "TRAINER"),
    ("TRAINER:\n  EPOCHS: 2\n  EPOCHS: 3\n", 3, "EPOCHS"),
    ("DATASET:\n  TRAIN:\n    NAME: a\n    NAME: b\n", 4, "NAME"),
])
def test_a_key_written_twice_is_refused_with_its_line(tmp_path, text, line, key):
    config = write_config(tmp_path, "twice.yaml", text)
    with pytest.raises(ConfigError, match=rf"twice\.yaml, line {line}: key {key} appears twice"):
        load_config(config)


def test_yaml_merge_keys_may_still_be_overridden(tmp_path):
    config = write_config(tmp_path, "merge.yaml", "TRAINER: &t\n  EPOCHS: 2\nMODEL:\n  NAME: m\n")
    assert load_config(config).TRAINER.EPOCHS == 2
    assert load_yaml("a: &x {b: 1}\nd:\n  <<: *x\n  b: 3\n")["d"] == {"b": 3}
