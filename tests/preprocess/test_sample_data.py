"""The synthetic Kaggle-schema sample: reproducible, realistic lengths, learnable but not by one keyword."""

import csv
import re
from datetime import datetime

import numpy as np
import pytest
from stackoverflow_rows import SHIPPED_SAMPLE

from trainlab.preprocess.sample_data import main
from trainlab.preprocess.stackoverflow_csv import DATE_FORMAT, KAGGLE_COLUMNS, STATUSES


@pytest.fixture(scope="module")
def shipped_rows() -> list[dict]:
    with SHIPPED_SAMPLE.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def _words(row: dict) -> set[str]:
    return set(re.findall(r"[a-z']+", f"{row['Title']} {row['BodyMarkdown']}".lower()))


def test_the_shipped_csv_is_what_the_documented_command_writes(tmp_path):
    output = tmp_path / "train-sample.csv"
    assert main(["--rows", "600", "--seed", "0", "--output", str(output)]) == 0
    assert output.read_bytes() == SHIPPED_SAMPLE.read_bytes()


def test_rows_follow_the_kaggle_schema(shipped_rows):
    assert list(shipped_rows[0]) == list(KAGGLE_COLUMNS)
    for row in shipped_rows:
        posted = datetime.strptime(row["PostCreationDate"], DATE_FORMAT)
        assert datetime.strptime(row["OwnerCreationDate"], DATE_FORMAT) <= posted
        assert row["OpenStatus"] in STATUSES
        assert bool(row["PostClosedDate"]) == (row["OpenStatus"] != "open")
        assert row["Tag1"] and int(row["ReputationAtPostCreation"]) >= 1
    post_ids = [int(row["PostId"]) for row in shipped_rows]
    assert post_ids == sorted(set(post_ids))


def test_bodies_have_long_uneven_lengths(shipped_rows):
    lengths = np.array([len(row["BodyMarkdown"]) for row in shipped_rows])
    assert lengths.min() < 60 and lengths.max() > 2000
    assert 200 < np.median(lengths) < 1000 and np.mean(lengths) > np.median(lengths)  # long right tail


def test_label_is_learnable_but_no_single_word_gives_it_away(shipped_rows):
    closed = np.array([row["OpenStatus"] != "open" for row in shipped_rows])
    documents = [_words(row) for row in shipped_rows]
    vocabulary = sorted(set().union(*documents))
    presence = np.array([[word in doc for word in vocabulary] for doc in documents], dtype=np.float64)

    single_word = np.maximum((presence == closed[:, None]).mean(0), (presence != closed[:, None]).mean(0))
    assert single_word.max() < 0.8

    # Bernoulli naive Bayes on 480 questions, scored on the other 120.
    train, test = slice(0, 480), slice(480, None)
    log_odds = np.log(closed[train].mean() / (1 - closed[train].mean()))
    scores = np.full(120, log_odds)
    for label, sign in ((True, 1), (False, -1)):
        rows = presence[train][closed[train] == label]
        p = (rows.sum(0) + 1) / (len(rows) + 2)
        scores += sign * (presence[test] @ np.log(p) + (1 - presence[test]) @ np.log(1 - p))
    assert ((scores > 0) == closed[test]).mean() >= 0.8
