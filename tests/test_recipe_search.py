"""``examples/recipe_search.py``: searches into one folder build one table."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from fitlab import make_synthetic_csv

SCRIPT = Path(__file__).resolve().parents[1] / "examples" / "recipe_search.py"


def search(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    train_csv = tmp_path / "flowers17_training.csv"
    if not train_csv.exists():
        make_synthetic_csv(train_csv, rows=24, size=16)
    argv = [sys.executable, str(SCRIPT), "--train-csv", str(train_csv), "--out", "search"]
    argv += ["--epochs", "1", "--batch-size", "8", *args]
    return subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_a_second_search_into_the_same_folder_adds_to_its_table(tmp_path):
    for candidate in ("improved", "colour"):
        done = search(tmp_path, "--candidates", candidate)
        assert done.returncode == 0, done.stderr[-3000:]
        assert f"{candidate} " in done.stdout  # its line of the printed table

    rows = json.loads((tmp_path / "search" / "table.json").read_text())
    assert [(row["candidate"], row["epochs"], row["seed"]) for row in rows] == [
        ("improved", 1, 0),
        ("colour", 1, 0),
    ]
    assert all(0 <= row["accuracy"] <= 1 for row in rows)


def test_a_table_it_did_not_write_is_one_line_naming_the_file(tmp_path):
    (tmp_path / "search").mkdir()
    (tmp_path / "search" / "table.json").write_text("{not json")
    done = search(tmp_path, "--candidates", "improved")
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert "table.json: not a table this script wrote" in done.stderr
    assert "move it away" in done.stderr
