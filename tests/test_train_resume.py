"""``python -m fitlab train`` survives being stopped: it resumes exactly, refuses other
settings, knows when it is done, and a Ctrl-C costs one line."""

from __future__ import annotations

import json
import random
import signal

import pytest

from fitlab import Flowers17Files, cli, make_synthetic_csv, train_tutorial
from fitlab.bench import faults
from fitlab.config import METHODS


@pytest.fixture
def csvs(tmp_path) -> Flowers17Files:
    train, test = faults.make_csvs(tmp_path)
    return Flowers17Files(train, test, ())


def train(csvs, out, **changes) -> dict:
    settings = {"epochs": 1, "batch_size": 16, "seed": 3, "augment": False, "verbose": 0}
    return train_tutorial("batch", files=csvs, out=out, **{**settings, **changes})


@pytest.mark.slow
@pytest.mark.parametrize("method", METHODS)
def test_a_run_killed_at_a_random_moment_resumes_to_the_uninterrupted_outputs(tmp_path, method):
    """SIGKILL anywhere in training (mid-epoch too); the same command finishes the run
    with the history, report and weights (optimizer too) of a run never stopped."""
    csvs = faults.make_csvs(tmp_path)
    reference = faults.run_reference(method, csvs, tmp_path / "reference", epochs=2)
    draw = random.Random(METHODS.index(method))
    outcomes = faults.stop_and_resume(reference, signal.SIGKILL, draw, tmp_path / "killed")
    for outcome in outcomes:  # none when the run finished before its moment came
        assert outcome["exact"], outcome
        assert (outcome["epochs_lost"], outcome["traceback"], outcome["leftovers"]) == (0, 0, [])


def test_a_rerun_with_other_settings_is_refused_naming_them(csvs, tmp_path):
    train(csvs, tmp_path / "run")
    with pytest.raises(ValueError, match=r"epochs 1 \(now: 2\), seed 3 \(now: 4\)"):
        train(csvs, tmp_path / "run", epochs=2, seed=4)


def test_a_rerun_on_other_data_is_refused(csvs, tmp_path):
    train(csvs, tmp_path / "run")
    other = make_synthetic_csv(tmp_path / "other.csv", rows=48, size=16, seed=9)
    with pytest.raises(ValueError, match=r"train_csv_sha256 \w+ \(now: \w+\)"):
        train(Flowers17Files(other, csvs.test, ()), tmp_path / "run")


def test_a_finished_run_is_not_trained_again(csvs, tmp_path, capsys):
    first = train(csvs, tmp_path / "run")
    again = train(csvs, tmp_path / "run", verbose=1)
    assert again["finished_before"] and not first["finished_before"]
    assert again["accuracy"] == first["accuracy"]
    assert "finished before (1 of 1 epochs)" in capsys.readouterr().out.splitlines()[0]


def test_restart_trains_from_the_first_epoch(csvs, tmp_path):
    train(csvs, tmp_path / "run")
    again = train(csvs, tmp_path / "run", restart=True)
    assert (again["finished_before"], again["resumed_at"], again["epochs"]) == (False, 0, 1)


def test_a_run_whose_outputs_were_lost_writes_them_without_training_again(csvs, tmp_path):
    first = train(csvs, tmp_path / "run")
    (tmp_path / "run" / "report.txt").unlink()  # as if killed while writing its outputs
    again = train(csvs, tmp_path / "run")
    assert (again["resumed_at"], again["finished_before"]) == (1, False)
    assert again["accuracy"] == first["accuracy"]
    history = json.loads((tmp_path / "run" / "history.json").read_text())["history"]
    assert len(history["loss"]) == 1


def test_the_cli_refuses_other_settings_in_one_line(csvs, tmp_path, capsys):
    train(csvs, tmp_path / "run")
    argv = ["train", "--method", "batch", "--epochs", "1", "--batch-size", "16", "--seed", "5"]
    argv += [
        "--no-augment",
        "--csv",
        str(csvs.train),
        str(csvs.test),
        "--out",
        str(tmp_path / "run"),
    ]
    assert cli.main(argv) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert "seed 3 (now: 5)" in line and "--restart" in line


def test_ctrl_c_is_one_line_saying_how_to_resume(monkeypatch, tmp_path, capsys):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("fitlab.tutorial.train_tutorial", interrupted)
    argv = ["train", "--method", "fit", "--out", str(tmp_path / "run")]
    assert cli.main(argv) == 130
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line == (
        "fitlab train: interrupted; run the same command again to resume after the "
        "last finished epoch"
    )
