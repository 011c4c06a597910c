"""The package's public surface: every advertised name resolves, the CLI answers."""

from __future__ import annotations

import subprocess
import sys

import fitlab


def test_every_public_name_resolves():
    missing = [name for name in fitlab.__all__ if getattr(fitlab, name, None) is None]
    assert missing == []


def test_unknown_names_raise_attribute_error():
    try:
        fitlab.no_such_name  # noqa: B018
    except AttributeError as exc:
        assert "no_such_name" in str(exc)
    else:
        raise AssertionError("fitlab.no_such_name should not exist")


def test_importing_fitlab_does_not_import_tensorflow():
    code = "import sys, fitlab; fitlab.CLASS_NAMES; print('tensorflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_cli_help_lists_the_commands():
    out = subprocess.run(
        [sys.executable, "-m", "fitlab", "--help"], capture_output=True, text=True, check=True
    ).stdout
    for command in ("data", "train", "bench"):
        assert command in out
