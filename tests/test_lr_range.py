"""``examples/lr_range_test.py``: the learning-rate range test of the recipe search."""

from __future__ import annotations

import doctest
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from fitlab import make_synthetic_csv

SCRIPT = Path(__file__).resolve().parents[1] / "examples" / "lr_range_test.py"


def range_test(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    argv = [sys.executable, str(SCRIPT), "--out", str(tmp_path / "lr"), *args]
    return subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_the_rate_grows_from_start_to_stop_and_the_suggestions_lie_between(tmp_path):
    train_csv = make_synthetic_csv(tmp_path / "flowers17_training.csv", rows=24, size=16)
    args = ["--train-csv", str(train_csv), "--start", "1e-3", "--stop", "0.1"]
    done = range_test(tmp_path, *args, "--batches", "8", "--batch-size", "8")
    assert done.returncode == 0, done.stderr[-3000:]

    record = json.loads((tmp_path / "lr" / "lr_range.json").read_text())
    rates = record["rates"]
    assert len(rates) == len(record["losses"]) == 8
    assert rates[0] == pytest.approx(1e-3) and rates[-1] == pytest.approx(0.1)
    ratios = [later / earlier for earlier, later in zip(rates[:-1], rates[1:], strict=True)]
    assert ratios == pytest.approx([100 ** (1 / 7)] * 7)  # exponential, batch by batch
    assert all(loss > 0 for loss in record["losses"])
    # The rates are the schedule's own float32 values: 0.1 is recorded as 0.10000000149.
    low, high = 1e-3 * (1 - 1e-6), 0.1 * (1 + 1e-6)
    assert low <= record["steepest"] <= high and low <= record["lowest"] <= high
    assert f"steepest descent at {record['steepest']:.2g}" in done.stdout
    assert "absl::InitializeLog" not in done.stderr  # TensorFlow's start-up lines kept off
    assert (tmp_path / "lr" / "lr_range.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # it trains on the rows the search trains on: 6 of each class's 8
    assert (tmp_path / "lr" / "split" / "flowers17_training_fit.csv").read_text().count("\n") == 18


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--start", "1", "--stop", "0.1"], "--start must be above 0 and below --stop"),
        (["--train-csv", "nowhere.csv"], "nowhere.csv: no such file"),
    ],
)
def test_bad_arguments_are_one_line_saying_what_to_change(tmp_path, args, named):
    done = range_test(tmp_path, *args)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr and named in done.stderr


def test_the_scripts_examples_pass(monkeypatch):
    """The smoothing and the suggestions rule, as their docstrings show them."""
    monkeypatch.syspath_prepend(str(SCRIPT.parent))  # it imports the search beside it
    spec = importlib.util.spec_from_file_location("lr_range_test", SCRIPT)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    failed, attempted = doctest.testmod(script)
    assert attempted >= 3 and failed == 0
