"""The package's public surface: every advertised name resolves, the CLI answers."""

from __future__ import annotations

import os
import subprocess
import sys

from no_tensorflow import BLOCK_TENSORFLOW

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


def _stderr_of(code: str, **env: str) -> str:
    environ = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True,
        env={**environ, **env},
    )  # fmt: skip
    return out.stderr


def test_tensorflow_starts_silently_after_import_fitlab():
    # What a notebook's first cells do: fitlab, then Keras, then a first operation.
    code = "import fitlab, keras, tensorflow as tf; tf.constant(1.0) + 1; print('ok')"
    assert _stderr_of(code) == ""
    # A user who imports Keras first, or asks for every line, gets TensorFlow's own start-up.
    if _stderr_of("import keras, tensorflow as tf; tf.constant(1.0) + 1"):
        assert _stderr_of(code, TF_CPP_MIN_LOG_LEVEL="0") != ""


def test_silencing_respects_an_import_blocker():
    # A finder that refuses TensorFlow (tests/no_tensorflow.py, as on a JAX-only machine)
    # still refuses it after `import fitlab` has put its own finder first.
    code = BLOCK_TENSORFLOW + (
        "import fitlab\n"
        "try:\n    import tensorflow\nexcept ModuleNotFoundError:\n    print('refused')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "refused"


def test_show_versions_says_what_and_where(capsys):
    import keras

    fitlab.show_versions()
    software, machine = capsys.readouterr().out.splitlines()
    assert f"fitlab {fitlab.__version__}" in software
    assert f"Keras {keras.__version__} on {keras.config.backend()}" in software
    assert f"{os.cpu_count()} cores" in machine and "load average" in machine


def test_cli_help_lists_the_commands():
    out = subprocess.run(
        [sys.executable, "-m", "fitlab", "--help"], capture_output=True, text=True, check=True
    ).stdout
    for command in ("data", "train", "worker", "bench"):
        assert command in out


def _public_callables():
    """Every public function and class of fitlab, fitlab.compat and fitlab.exercises."""
    import inspect

    import fitlab.compat
    import fitlab.exercises

    for module, names in (
        (fitlab, fitlab.__all__),
        (fitlab.compat, fitlab.compat.__all__),
        (fitlab.exercises, fitlab.exercises.__all__),
    ):
        for name in names:
            value = getattr(module, name)
            if inspect.isfunction(value) or inspect.isclass(value):
                yield f"{module.__name__}.{name}", value


def test_every_public_function_and_class_has_a_runnable_example():
    # `make test` runs these examples (--doctest-modules); a skipped one does not count.
    import doctest

    finder = doctest.DocTestFinder(recurse=False)
    without = []
    for qualified, value in _public_callables():
        examples = [e for test in finder.find(value) for e in test.examples]
        if not [e for e in examples if not e.options.get(doctest.SKIP)]:
            without.append(qualified)
    assert without == [], f"no runnable example in the docstring of {without}"
