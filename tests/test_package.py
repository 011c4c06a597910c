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
