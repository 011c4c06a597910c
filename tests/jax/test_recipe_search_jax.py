"""``examples/recipe_search.py`` as it runs on the GPU machine: JAX, no TensorFlow, runs at once.

Runs in the pytest of its own with ``KERAS_BACKEND=jax`` (see ``tests/conftest.py``).
A ``sitecustomize`` on ``PYTHONPATH`` refuses every ``tensorflow*`` import in the
search and in each process it starts, as on the GPU machine.
"""

from __future__ import annotations

import gzip
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import keras
import pytest
from no_tensorflow import BLOCK_TENSORFLOW
from processes import alive, children, survivors

from fitlab import make_synthetic_csv
from fitlab.files import sha256_of

pytestmark = pytest.mark.skipif(keras.backend.backend() != "jax", reason="KERAS_BACKEND=jax only")

REPO = Path(__file__).resolve().parents[2]


def search(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    """Run the search script in a Python where TensorFlow cannot be imported."""
    argv, env = search_command(tmp_path, *args)
    return subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)


def search_command(tmp_path: Path, *args: str) -> tuple[list[str], dict[str, str]]:
    """The search's command line, and an environment in which TensorFlow cannot be imported."""
    site = tmp_path / "site"
    site.mkdir(exist_ok=True)
    (site / "sitecustomize.py").write_text(BLOCK_TENSORFLOW)
    env = {**os.environ, "KERAS_BACKEND": "jax", "PYTHONPATH": f"{site}{os.pathsep}{REPO}"}
    return [sys.executable, str(REPO / "examples" / "recipe_search.py"), *args], env


@pytest.mark.slow
def test_the_search_trains_runs_at_once_from_a_gzipped_csv_and_scores_the_held_out_rows(tmp_path):
    plain = make_synthetic_csv(tmp_path / "flowers17_training.csv", rows=24, size=16)
    gzipped = tmp_path / "flowers17_training.csv.gz"
    gzipped.write_bytes(gzip.compress(plain.read_bytes()))
    plain.unlink()
    out = tmp_path / "search"
    args = ["--train-csv", str(gzipped), "--candidates", "improved,ls0", "--epochs", "1"]
    args += ["--seeds", "0", "--batch-size", "8", "--jobs", "2", "--out", str(out)]

    done = search(tmp_path, *args)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = json.loads((out / "table.json").read_text())
    assert sorted(row["candidate"] for row in rows) == ["improved", "ls0"]
    fit_csv = out / "split" / "flowers17_training_fit.csv"
    validation_csv = out / "split" / "flowers17_training_validation.csv"
    assert fit_csv.read_text().count("\n") == 18  # 6 of each class's 8 rows train
    for row in rows:
        assert row["backend"] == "jax" and row["epochs"] == 1 and not row["finished_before"]
        assert row["train_csv_sha256"] == sha256_of(fit_csv)[:16]
        assert row["test_csv_sha256"] == sha256_of(validation_csv)[:16]  # scored held out
    assert (out / "improved-e1-s0" / "result.json").is_file()
    table = done.stdout.splitlines()
    assert any(line.split()[:3] == ["ls0", "1", "1"] for line in table), done.stdout

    again = search(tmp_path, *args)
    assert again.returncode == 0, again.stderr[-3000:]
    assert all(row["finished_before"] for row in json.loads((out / "table.json").read_text()))

    stopped = search(tmp_path, *args, "--epochs", "2", "--stop-after-min", "0")
    assert stopped.returncode == 0, stopped.stderr[-3000:]
    assert "2 of 2 runs were not started" in stopped.stdout

    # a second search into the same folder adds its runs to the table; this one's
    # augmentation (Keras's RandAugment) builds and trains without TensorFlow too
    more = search(tmp_path, *args, "--candidates", "colour+randaugment")
    assert more.returncode == 0, more.stderr[-3000:]
    rows = json.loads((out / "table.json").read_text())
    assert sorted(row["candidate"] for row in rows) == ["colour+randaugment", "improved", "ls0"]


def test_a_missing_training_csv_is_one_line_naming_it(tmp_path):
    done = search(tmp_path, "--train-csv", "nowhere.csv.gz", "--out", str(tmp_path / "s"))
    assert done.returncode == 2
    assert "Traceback" not in done.stderr and "nowhere.csv.gz" in done.stderr


def test_a_table_it_did_not_write_is_one_line_naming_it(tmp_path):
    train_csv = make_synthetic_csv(tmp_path / "flowers17_training.csv", rows=24, size=16)
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "table.json").write_text("{not json")
    done = search(tmp_path, "--train-csv", str(train_csv), "--out", str(tmp_path / "s"))
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert "table.json: not a table this script wrote" in done.stderr
    assert "move it away" in done.stderr


@pytest.mark.slow
def test_a_search_killed_by_sigkill_takes_its_run_with_it(tmp_path):
    """Not an orphan that trains on, unseen, into the folder the next search resumes from."""
    train_csv = make_synthetic_csv(tmp_path / "flowers17_training.csv", rows=24, size=16)
    out = tmp_path / "search"
    argv, env = search_command(
        tmp_path, "--train-csv", str(train_csv), "--candidates", "improved", "--epochs", "100000",
        "--batch-size", "8", "--out", str(out),
    )  # fmt: skip
    searching = subprocess.Popen(argv, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL)
    checkpoint = out / "improved-e100000-s0" / "checkpoint" / "checkpoint.json"
    deadline = time.monotonic() + 240
    while not checkpoint.exists() and searching.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)  # until the run has trained an epoch
    started = children(searching.pid)  # the run, and multiprocessing's resource tracker
    try:
        assert checkpoint.exists() and searching.poll() is None, "the run never trained"
        searching.kill()
        searching.wait()
        assert not survivors(started, within=20)
    finally:
        for pid in started:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
