"""Shared fixtures: the real Flowers-17 data, found through FITLAB_FLOWERS17_ARCHIVE.

A test that needs the real data asks for ``flowers17_archive`` or
``flowers17_csvs``. Without the archive such a test is skipped on a developer's
machine and fails under ``CI=true``: CI must never pass by skipping it.
"""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import pytest

from fitlab.config import ARCHIVE_ENV

# Notebooks under tests/ are driven by their own tests: test_live_notebook.py runs
# strict nbval on tests/notebooks/ (and checks the HTML export), test_browser.py
# opens tests/browser/ in JupyterLab. `pytest --nbval tests` must not run them again.
collect_ignore_glob = ["notebooks/*.ipynb", "browser/*.ipynb"]
# tests/jax/ runs in a pytest of its own under KERAS_BACKEND=jax (`make test` starts it):
# Keras picks its backend once per process.
if os.environ.get("KERAS_BACKEND", "tensorflow") != "jax":
    collect_ignore_glob.append("jax/*")


def _missing(reason: str):
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason} (CI=true: real-data tests may not skip)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def flowers17_archive() -> Path:
    """The real 17flowers.tgz named by FITLAB_FLOWERS17_ARCHIVE."""
    value = os.environ.get(ARCHIVE_ENV)
    if not value:
        _missing(f"{ARCHIVE_ENV} is not set; point it at 17flowers.tgz to run real-data tests")
    path = Path(value)
    if not path.is_file():
        _missing(f"{ARCHIVE_ENV}={value} does not exist")
    return path


@pytest.fixture(scope="session")
def flowers17_csvs(flowers17_archive):
    """The tutorial's CSVs built from the real archive (once; the manifest makes reuse instant)."""
    from fitlab.data import prepare_flowers17

    return prepare_flowers17(archive=flowers17_archive)


@pytest.fixture
def csv_variant(tmp_path):
    """Write a clean CSV again as an accepted variant: ``"gzip"``, or CRLF + BOM + blank lines."""
    from fitlab.data.csvrows import BOM

    def write(clean: Path, variant: str) -> Path:
        payload = clean.read_bytes()
        if variant == "gzip":
            path = tmp_path / "variant.csv.gz"
            path.write_bytes(gzip.compress(payload))
            return path
        lines = payload.splitlines()
        path = tmp_path / "variant.csv"
        path.write_bytes(BOM + b"\r\n".join(lines[:3] + [b"", b" \t"] + lines[3:]))
        return path

    return write


@pytest.fixture
def tiny_flowers(tmp_path):
    """Stand-in CSVs (16×16, 3 classes), given to train_tutorial as its files."""
    from fitlab import Flowers17Files, make_synthetic_csv

    classes = ("bluebell", "crocus", "tulip")
    return Flowers17Files(
        make_synthetic_csv(tmp_path / "train.csv", rows=24, size=16, classes=classes),
        make_synthetic_csv(tmp_path / "test.csv", rows=8, size=16, classes=classes, seed=1),
        classes,
    )
