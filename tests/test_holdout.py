"""carve_validation: a stratified, seeded validation split; every row kept exactly once."""

from __future__ import annotations

import gzip
from collections import Counter

import pytest

from fitlab import carve_validation, load_csv, make_synthetic_csv

CLASSES = ("bluebell", "crocus", "tulip")


@pytest.fixture
def train_csv(tmp_path):
    return make_synthetic_csv(tmp_path / "train.csv", rows=30, size=8, classes=CLASSES)


def test_each_class_gives_its_share_and_every_row_lands_once(train_csv, tmp_path):
    files = carve_validation(train_csv, tmp_path / "split", fraction=0.2, seed=3)
    held_out = Counter(load_csv(files.test)[1])
    assert held_out == {name: 2 for name in CLASSES}  # 20 % of each class's 10 rows
    rows = train_csv.read_bytes().splitlines()
    fit, validation = files.train.read_bytes().splitlines(), files.test.read_bytes().splitlines()
    assert sorted(fit + validation) == sorted(rows) and not set(fit) & set(validation)
    # both keep the original order
    assert fit == [row for row in rows if row in set(fit)]


def test_the_same_seed_gives_the_same_bytes_and_another_seed_other_rows(train_csv, tmp_path):
    first = carve_validation(train_csv, tmp_path / "a", seed=1).test.read_bytes()
    again = carve_validation(train_csv, tmp_path / "b", seed=1).test.read_bytes()
    other = carve_validation(train_csv, tmp_path / "c", seed=2).test.read_bytes()
    assert first == again and first != other


def test_a_gzipped_csv_splits_like_the_plain_one(train_csv, tmp_path):
    packed = tmp_path / "train.csv.gz"
    packed.write_bytes(gzip.compress(train_csv.read_bytes()))
    plain = carve_validation(train_csv, tmp_path / "plain", seed=0)
    from_gzip = carve_validation(packed, tmp_path / "gzip", seed=0)
    assert from_gzip.test.read_bytes() == plain.test.read_bytes()


def test_a_class_too_small_to_split_is_named(tmp_path):
    csv = tmp_path / "train.csv"
    csv.write_bytes(b"tulip,1,2,3\ntulip,4,5,6\ncrocus,7,8,9\n")
    with pytest.raises(ValueError, match=r"train.csv: class 'crocus' has 1 row"):
        carve_validation(csv, tmp_path / "split")


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.5])
def test_a_fraction_outside_zero_to_one_is_refused(train_csv, tmp_path, fraction):
    with pytest.raises(ValueError, match="fraction must be between 0 and 1"):
        carve_validation(train_csv, tmp_path / "split", fraction=fraction)


def test_a_bad_row_is_named_by_file_and_line(tmp_path):
    csv = tmp_path / "train.csv"
    csv.write_bytes(b"tulip,1,2,3\nno comma here\n")
    with pytest.raises(ValueError, match=r"train.csv, line 2: no comma"):
        carve_validation(csv, tmp_path / "split")
