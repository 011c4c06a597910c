"""The command line's error contract: a user's mistake costs one line and exit 2, at once."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fitlab import cli

REPO = Path(__file__).resolve().parents[1]


def run_cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run(
        [sys.executable, "-m", "fitlab", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


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
