"""The Stack Overflow preprocessing: drop policy, labels, features, standardisation, splits, errors."""

import json
import subprocess
import sys
from collections import Counter
from datetime import datetime

import numpy as np
import pytest
from datasets import load_from_disk
from stackoverflow_rows import BAD_ROWS, SHIPPED_SAMPLE, write_rows

from trainlab.errors import DataError
from trainlab.preprocess.stackoverflow import featurize_csv, main, preprocess
from trainlab.preprocess.stackoverflow_csv import DATE_FORMAT, FEATURE_NAMES, KAGGLE_COLUMNS, STATUSES


@pytest.fixture(scope="module")
def processed(tmp_path_factory, bad_csv):
    output = tmp_path_factory.mktemp("out") / "so"
    summary = preprocess(bad_csv, output, seed=7)
    return output, summary


def _raw_features(row: dict) -> list[float]:
    days = datetime.strptime(row["PostCreationDate"], DATE_FORMAT) - datetime.strptime(
        row["OwnerCreationDate"], DATE_FORMAT
    )
    tags = sum(bool(row[f"Tag{i}"].strip()) for i in range(1, 6))
    return [
        float(row["ReputationAtPostCreation"]),
        len(row["BodyMarkdown"]),
        len(row["Title"]),
        tags,
        days.total_seconds() / 86400,
    ]


def _split_ids(output) -> dict[str, list[str]]:
    return {
        split: load_from_disk(str(output / split))["post_id"][:] for split in ("train", "validation", "test")
    }


def test_bad_rows_are_dropped_and_counted_by_reason(processed):
    output, summary = processed
    expected = Counter(reason for _, reason in BAD_ROWS.values())
    assert {reason: count for reason, count in summary.dropped.items() if count} == dict(expected)
    assert summary.rows_read == 200
    assert summary.rows_kept == 200 - len(BAD_ROWS)
    assert sum(summary.split_sizes.values()) == summary.rows_kept
    assert summary.split_sizes == {"train": 149, "validation": 19, "test": 19}
    line = summary.line()
    assert "\n" not in line and "read 200 rows, kept 187, dropped 13" in line and "empty_body 2" in line
    info = json.loads((output / "preprocess.json").read_text())
    assert info["dropped"] == summary.dropped and info["rows_kept"] == 187


def test_binary_labels_text_and_features_match_the_csv(processed, clean_rows):
    output, _ = processed
    by_id = {row["PostId"]: row for row in clean_rows}
    info = json.loads((output / "preprocess.json").read_text())
    assert info["label_names"] == ["open", "closed"]
    assert info["feature_names"] == list(FEATURE_NAMES)
    means, stds = np.array(info["means"]), np.array(info["stds"])
    test = load_from_disk(str(output / "test"))
    assert test.features["label"].names == ["open", "closed"]
    for item in test:
        row = by_id[item["post_id"]]
        title = "NA" if row is clean_rows[0] else row["Title"]  # the "NA" title was kept as text
        assert item["text"] == f"{title} {row['BodyMarkdown']}"
        assert item["label"] == (0 if row["OpenStatus"] == "open" else 1)
        restored = np.array(item["tabular"]) * stds + means
        np.testing.assert_allclose(restored, _raw_features({**row, "Title": title}), rtol=1e-4, atol=1e-3)


def test_standardisation_uses_train_statistics_only(processed):
    output, _ = processed
    train = np.array(load_from_disk(str(output / "train"))["tabular"][:])
    np.testing.assert_allclose(train.mean(axis=0), 0, atol=1e-5)
    np.testing.assert_allclose(train.std(axis=0), 1, atol=1e-4)
    held_out = np.concatenate(
        [np.array(load_from_disk(str(output / split))["tabular"][:]) for split in ("validation", "test")]
    )
    assert np.abs(held_out.mean(axis=0)).max() > 1e-3  # not re-centred on its own statistics


def test_same_seed_same_split_other_seed_other_split(tmp_path, bad_csv, processed):
    output, _ = processed
    first = _split_ids(output)
    assert sum(map(len, first.values())) == len(set().union(*first.values()))  # disjoint
    preprocess(bad_csv, tmp_path / "again", seed=7)
    preprocess(bad_csv, tmp_path / "other", seed=8)
    assert _split_ids(tmp_path / "again") == first
    assert _split_ids(tmp_path / "other")["train"] != first["train"]


def test_multiclass_keeps_the_five_statuses(tmp_path, bad_csv, clean_rows):
    summary = preprocess(bad_csv, tmp_path / "multi", labels="multiclass", fractions=(0.6, 0.2, 0.2))
    assert summary.label_names == STATUSES
    assert summary.split_sizes == {"train": 113, "validation": 37, "test": 37}
    info = json.loads((tmp_path / "multi" / "preprocess.json").read_text())
    assert info["status_to_label"] == {status: index for index, status in enumerate(STATUSES)}
    by_id = {row["PostId"]: row["OpenStatus"] for row in clean_rows}
    train = load_from_disk(str(tmp_path / "multi" / "train"))
    assert all(STATUSES[item["label"]] == by_id[item["post_id"]] for item in train)
    assert len(set(train["label"][:])) == 5


def test_featurize_csv_reuses_the_saved_statistics(processed, bad_csv):
    output, _ = processed
    new_questions, rows_read, dropped = featurize_csv(bad_csv, output)
    assert rows_read == 200 and "unknown_status" not in dropped
    assert new_questions.column_names == ["post_id", "text", "tabular"]
    saved = {item["post_id"]: item["tabular"] for item in load_from_disk(str(output / "validation"))}
    fresh = {item["post_id"]: item["tabular"] for item in new_questions}
    for post_id, tabular in saved.items():
        np.testing.assert_allclose(fresh[post_id], tabular, rtol=1e-6)


def test_an_existing_foreign_directory_is_refused_and_left_alone(tmp_path, bad_csv):
    target = tmp_path / "mine"
    target.mkdir()
    (target / "notes.txt").write_text("keep me")
    with pytest.raises(DataError, match="already holds other files"):
        preprocess(bad_csv, target)
    assert [p.name for p in target.iterdir()] == ["notes.txt"]


def test_a_previous_output_is_replaced_only_with_overwrite_and_without_leftovers(tmp_path, bad_csv):
    preprocess(bad_csv, tmp_path / "so", seed=1)
    with pytest.raises(DataError, match="already holds preprocessed splits .* seed 1.*--overwrite"):
        preprocess(bad_csv, tmp_path / "so", seed=2)
    assert json.loads((tmp_path / "so" / "preprocess.json").read_text())["seed"] == 1
    preprocess(bad_csv, tmp_path / "so", seed=2, labels="multiclass", overwrite=True)
    assert [p.name for p in tmp_path.iterdir()] == ["so"]
    assert json.loads((tmp_path / "so" / "preprocess.json").read_text())["seed"] == 2


def test_later_copies_of_a_question_are_dropped_and_counted(tmp_path, clean_rows):
    rows = [*clean_rows[:40], *({**row, "OpenStatus": "off topic"} for row in clean_rows[:3])]
    summary = preprocess(write_rows(tmp_path / "in.csv", rows), tmp_path / "so")
    assert summary.dropped["duplicate_id"] == 3 and summary.rows_kept == 40
    assert "duplicate_id 3" in summary.line()
    ids = [post_id for split_ids in _split_ids(tmp_path / "so").values() for post_id in split_ids]
    assert sorted(ids) == sorted(row["PostId"] for row in clean_rows[:40])


def test_too_few_usable_rows_reports_why_rows_were_dropped(tmp_path, clean_rows):
    rows = [{**row, "BodyMarkdown": ""} for row in clean_rows[:4]] + clean_rows[4:6]
    with pytest.raises(DataError, match=r"only 2 usable rows of 6 \(dropped: empty_body 4\)"):
        preprocess(write_rows(tmp_path / "in.csv", rows), tmp_path / "so")
    assert not (tmp_path / "so").exists()


def test_featurize_csv_without_a_usable_row_gives_the_drop_counts(processed, tmp_path, clean_rows):
    output, _ = processed
    rows = [{**row, "Title": ""} for row in clean_rows[:2]] + [{**clean_rows[2], "ReputationAtPostCreation": "-1"}]
    with pytest.raises(DataError, match=r"none of its 3 rows is usable \(dropped: empty_title 2, bad_reputation 1\)"):
        featurize_csv(write_rows(tmp_path / "new.csv", rows), output)


def _run_cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "trainlab.preprocess.stackoverflow", *map(str, args)],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize("problem", ["missing columns", "empty file"])
def test_cli_reports_user_errors_in_one_line_with_exit_code_2(tmp_path, clean_rows, problem):
    source = tmp_path / "in.csv"
    if problem == "missing columns":
        columns = [c for c in KAGGLE_COLUMNS if c not in ("OpenStatus", "Tag3")]
        write_rows(source, clean_rows[:5], columns)
        expected = "lacks column(s) Tag3, OpenStatus"
    else:
        source.write_text("")
        expected = "is empty"
    result = _run_cli("--input", source, "--output", tmp_path / "out")
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and expected in result.stderr, result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv"]  # nothing half-written


def test_a_header_without_rows_is_an_error(tmp_path, capsys):
    write_rows(tmp_path / "in.csv", [])
    assert main(["--input", str(tmp_path / "in.csv"), "--output", str(tmp_path / "out")]) == 2
    assert "has a header but no rows" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_cli_debug_shows_the_traceback(tmp_path):
    (tmp_path / "in.csv").write_text("")
    result = _run_cli("--input", tmp_path / "in.csv", "--output", tmp_path / "out", "--debug")
    assert result.returncode == 2 and "Traceback" in result.stderr


def test_shipped_sample_preprocesses_into_balanced_splits(tmp_path, capsys):
    assert SHIPPED_SAMPLE.stat().st_size <= 1_000_000
    assert main(["--input", str(SHIPPED_SAMPLE), "--output", str(tmp_path / "data")]) == 0
    assert capsys.readouterr().out.startswith("read 600 rows, kept 600, dropped 0")
    counts = json.loads((tmp_path / "data" / "preprocess.json").read_text())["label_counts"]
    closed_share = sum(c["closed"] for c in counts.values()) / 600
    assert 0.45 <= closed_share <= 0.55
    assert all(0.3 <= c["closed"] / (c["open"] + c["closed"]) <= 0.7 for c in counts.values())
