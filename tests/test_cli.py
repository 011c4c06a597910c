"""The command line's error contract: a user's mistake costs one line and exit 2, at once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fitlab import cli

REPO = Path(__file__).resolve().parents[1]


def run_cli(
    *args: str, timeout: float = 120, env: dict | None = None, blocked: str | None = None
) -> subprocess.CompletedProcess:
    """``python -m fitlab ARGS``; ``env`` adds variables; ``blocked`` is a package made missing."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **(env or {})}
    command = ["-m", "fitlab"] if blocked is None else ["-c", _BLOCKED.format(package=blocked)]
    return subprocess.run(
        [sys.executable, *command, *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


# The command line with one package missing, as if not installed (its imports fail).
_BLOCKED = """
import importlib.abc, sys


class Missing(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "{package}" or name.startswith("{package}."):
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)


sys.meta_path.insert(0, Missing())
from fitlab.cli import main

sys.exit(main(sys.argv[1:]))
"""


def assert_one_line_error(done: subprocess.CompletedProcess, *fragments: str) -> str:
    assert done.returncode == 2, done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    lines = [line for line in done.stderr.splitlines() if line.startswith("fitlab ")]
    assert len(lines) == 1, done.stderr[-2000:]
    for fragment in fragments:
        assert fragment in lines[0]
    return lines[0]


@pytest.fixture
def a_file(tmp_path) -> Path:
    path = tmp_path / "a-file"
    path.write_text("not a folder\n")
    return path


def test_an_out_folder_that_is_a_file_fails_before_any_data_or_training(tmp_path, a_file):
    start = time.perf_counter()
    done = run_cli(
        "train", "--method", "fit", "--epochs", "1", "--out", str(a_file),
        "--data-dir", str(tmp_path / "data"), "--archive", str(tmp_path / "no.tgz"),
    )  # fmt: skip
    assert_one_line_error(done, "fitlab train: error:", str(a_file), "choose another path")
    assert not (tmp_path / "data").exists()  # the data was never touched
    assert time.perf_counter() - start < 60


def test_an_out_folder_under_a_file_is_one_line(a_file):
    done = run_cli("train", "--method", "batch", "--out", str(a_file / "run"))
    assert_one_line_error(done, str(a_file / "run"), "a file stands in its path")


@pytest.mark.skipif(not Path("/sys").is_dir(), reason="needs a folder even root cannot write")
def test_an_out_folder_that_cannot_be_written_is_one_line():
    done = run_cli("train", "--method", "fit", "--out", "/sys/fitlab-run")
    assert_one_line_error(done, "/sys/fitlab-run", "choose a folder you can write to")


def test_a_data_dir_under_a_file_is_one_line(a_file, tmp_path):
    archive = tmp_path / "17flowers.tgz"
    archive.write_bytes(b"")
    done = run_cli("data", "--data-dir", str(a_file / "data"), "--archive", str(archive))
    assert_one_line_error(done, "fitlab data: error:", str(a_file / "data"))


def test_debug_shows_the_traceback_instead(a_file):
    done = run_cli("train", "--method", "fit", "--out", str(a_file), "--debug")
    assert done.returncode != 0
    assert "Traceback" in done.stderr and "FileExistsError" in done.stderr


def test_a_bug_is_not_dressed_up_as_a_user_error():
    assert cli.user_error(KeyError("missing")) is None
    assert cli.user_error(ZeroDivisionError()) is None


@pytest.mark.realdata
def test_an_image_over_pillows_pixel_limit_is_one_line(
    flowers17_archive, tmp_path, monkeypatch, capsys
):
    from PIL import Image

    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # every photo is now "too large"
    status = cli.main(
        ["data", "--data-dir", str(tmp_path / "data"), "--archive", str(flowers17_archive)]
    )
    assert status == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "fitlab data: error:" in err
    assert "decompression bomb" in err.lower() and "official 17flowers.tgz" in err


def test_an_archive_path_that_is_a_folder_says_so(tmp_path):
    done = run_cli("data", "--archive", str(tmp_path), "--data-dir", str(tmp_path / "data"))
    line = assert_one_line_error(done, "is a folder, not the archive file", str(tmp_path))
    assert "not found" not in line


@pytest.fixture
def tiny_csvs(tmp_path) -> tuple[str, str]:
    from fitlab.data import make_synthetic_csv

    train = make_synthetic_csv(tmp_path / "train.csv", rows=16, size=32)
    test = make_synthetic_csv(tmp_path / "test.csv", rows=6, size=32, seed=1)
    return str(train), str(test)


@pytest.mark.slow
def test_jax_trains_by_the_compiled_loop_and_its_run_goes_on_on_jax_only(tmp_path, tiny_csvs):
    out = tmp_path / "run"
    options = ("--method", "loop", "--deterministic", "--csv", *tiny_csvs, "--epochs", "1")
    options += ("--batch-size", "8", "--no-augment", "--out", str(out))
    done = run_cli("train", "--backend", "jax", *options, env={"JAX_PLATFORMS": "cpu"}, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "loop on jax" in done.stdout
    result = json.loads((out / "result.json").read_text())
    assert (result["backend"], result["deterministic"], result["epochs"]) == ("jax", True, 1)
    # KERAS_BACKEND chooses the backend without --backend: the same run, finished before.
    done = run_cli("train", *options, env={"KERAS_BACKEND": "jax"}, timeout=300)
    assert done.returncode == 0 and "finished before" in done.stdout, done.stderr[-3000:]
    # The backend is one of the run's settings: it is not resumed on another.
    done = run_cli("train", "--backend", "tensorflow", *options, timeout=300)
    assert_one_line_error(done, "other settings", "backend jax (now: tensorflow)")


@pytest.mark.parametrize("backend", ["jax", "tensorflow"])
def test_a_backend_that_is_not_installed_is_one_line(tmp_path, backend):
    out = tmp_path / "run"
    done = run_cli("train", "--backend", backend, "--method", "fit", "--out", str(out),
                   blocked=backend)  # fmt: skip
    assert_one_line_error(done, f"the {backend} backend needs the {backend} package", "pip install")
    assert not out.exists()  # refused before anything was done


def test_a_keras_backend_fitlab_does_not_train_on_is_one_line(tmp_path):
    done = run_cli("train", "--method", "fit", "--out", str(tmp_path / "run"),
                   env={"KERAS_BACKEND": "torch"})  # fmt: skip
    assert_one_line_error(done, "KERAS_BACKEND=torch", "--backend")


def test_an_unknown_backend_option_is_refused_by_the_parser(tmp_path):
    done = run_cli("train", "--backend", "torch", "--method", "fit", "--out", str(tmp_path))
    assert done.returncode == 2 and "invalid choice: 'torch'" in done.stderr
