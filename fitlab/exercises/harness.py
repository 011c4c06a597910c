"""What every exercise check shares: the result, the run, and calling the student's code.

A check is a ``body`` that returns what was verified, or raises
:class:`Failed` at the first problem; :func:`run_check` turns either into a
:class:`CheckResult`. The student's code is only ever called through
:func:`call_student`, so an exception it raises becomes a failed check naming
the exception and the input, never a bare traceback in the notebook.

A graded cell (nbgrader's autograder tests) ends with
:meth:`CheckResult.assert_passed`: nbgrader takes the points away from a cell
that raises, and :class:`ExerciseFailed` shows as the two lines a failed
check prints, in the notebook and in nbgrader's feedback alike.

Examples
--------
>>> def body():
...     call_student(float, ("x",), "parsing 'x'", "write the digits")
...     return "never reached"
>>> run_check("check_demo", body)
✘ FAIL check_demo: your code raised ValueError: could not convert string to float: 'x' (parsing 'x')
  Hint: write the digits
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fitlab.data import make_synthetic_csv

if TYPE_CHECKING:
    import keras


#: ``next(batches, END)``'s default once a student's generator is exhausted: a
#: StopIteration would otherwise be reported as the student's exception.
END = object()


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one check: ``bool(result)`` is whether it passed.

    Its ``repr`` is the one line a notebook shows, so a check's result can be
    the last expression of a cell.

    Attributes
    ----------
    check : str
        The check's name.
    passed : bool
        Whether the student's code did everything the check asked.
    message : str
        What was checked, or what went wrong and on which input.
    hint : str
        What to look at (empty when the check passed).

    Examples
    --------
    >>> result = CheckResult("check_demo", False, "expected 2, got 3", "count from zero")
    >>> bool(result)
    False
    >>> result
    ✘ FAIL check_demo: expected 2, got 3
      Hint: count from zero
    >>> CheckResult("check_demo", True, "2 is right.")
    ✔ PASS check_demo: 2 is right.
    """

    check: str
    passed: bool
    message: str
    hint: str = ""

    def __bool__(self) -> bool:
        return self.passed

    def assert_passed(self) -> None:
        """Print the pass line, or raise :class:`ExerciseFailed`: a graded cell's last line.

        nbgrader's autograder gives a test cell its points unless the cell
        raises (or writes to stderr); a pass prints its line instead of being
        the cell's result, which nbgrader would try to read as partial credit.

        Examples
        --------
        >>> CheckResult("check_demo", True, "2 is right.").assert_passed()
        ✔ PASS check_demo: 2 is right.
        >>> CheckResult("check_demo", False, "expected 2, got 3", "count from zero").assert_passed()
        Traceback (most recent call last):
        ...
        fitlab.exercises.harness.ExerciseFailed: ✘ FAIL check_demo: expected 2, got 3
          Hint: count from zero
        """
        if not self.passed:
            raise ExerciseFailed(self)
        print(self)

    def __str__(self) -> str:
        if self.passed:
            return f"✔ PASS {self.check}: {self.message}"
        text = f"✘ FAIL {self.check}: {self.message}"
        return f"{text}\n  Hint: {self.hint}" if self.hint else text

    __repr__ = __str__


class ExerciseFailed(AssertionError):
    """A failed check, raised by :meth:`CheckResult.assert_passed` so that a graded cell fails.

    IPython shows it as the check's ✘ FAIL line and its hint, without a
    traceback (``_render_traceback_``): the student's notebook, nbgrader's
    feedback and nbval all see those lines.

    Attributes
    ----------
    result : CheckResult
        The failed check.

    Examples
    --------
    >>> failure = ExerciseFailed(CheckResult("check_demo", False, "expected 2, got 3", "count"))
    >>> failure._render_traceback_()
    ['✘ FAIL check_demo: expected 2, got 3', '  Hint: count']
    """

    def __init__(self, result: CheckResult):
        super().__init__(str(result))
        self.result = result

    def _render_traceback_(self) -> list[str]:
        return str(self.result).splitlines()


class Failed(Exception):
    """Raised inside a check's body to stop at the first failure, with its hint.

    Examples
    --------
    >>> failure = Failed("row 1: label 'x', expected 'tulip'", "the label comes first")
    >>> failure.message, failure.hint
    ("row 1: label 'x', expected 'tulip'", 'the label comes first')
    """

    def __init__(self, message: str, hint: str):
        super().__init__(message)
        self.message, self.hint = message, hint


def run_check(name: str, body: Callable[[], str]) -> CheckResult:
    """Run a check's ``body``: what it returns is a pass, a :class:`Failed` a failure.

    Any other exception is the check's own bug and propagates. What the
    student's code writes to ``sys.stderr`` meanwhile (a warning from Keras, say)
    goes to ``sys.stdout``: nbgrader takes a graded cell's points for any line
    on stderr, and a warning is not a wrong answer.

    Examples
    --------
    >>> run_check("check_demo", lambda: "all 3 cases are right.")
    ✔ PASS check_demo: all 3 cases are right.
    >>> run_check("check_demo", lambda: sys.stderr.write("a warning\\n") and "right.")
    a warning
    ✔ PASS check_demo: right.
    """
    try:
        with contextlib.redirect_stderr(sys.stdout):
            return CheckResult(name, True, body())
    except Failed as failure:
        return CheckResult(name, False, failure.message, failure.hint)


def need_callable(fn: object, what: str, example: str) -> None:
    """Fail unless ``fn`` is callable: students often pass ``f()`` instead of ``f``.

    Examples
    --------
    >>> need_callable(len, "batches_needed", "check_steps(batches_needed, last_batch_size)")
    >>> need_callable(32, "batches_needed", "check_steps(batches_needed, last_batch_size)")
    Traceback (most recent call last):
    ...
    fitlab.exercises.harness.Failed: expected a function `batches_needed`, got int
    """
    if not callable(fn):
        raise Failed(
            f"expected a function `{what}`, got {type(fn).__name__}",
            f"pass the function itself, without calling it: {example}",
        )


def call_student(fn: Callable, args: tuple, during: str, hint: str, **kwargs: Any) -> Any:
    """``fn(*args, **kwargs)``; any exception it raises becomes a :class:`Failed`.

    Parameters
    ----------
    fn : callable
        The student's code (or something that runs it, such as ``next``).
    args : tuple
        Its positional arguments; ``kwargs`` are passed on too.
    during : str
        The input, for the message: ``"your code raised …: … (during)"``.
    hint : str
        What to look at when it raises.

    Examples
    --------
    >>> call_student(int, ("12",), "parsing '12'", "write the digits")
    12
    >>> def batches_needed(rows, batch_size):
    ...     raise NotImplementedError()  # nbgrader's blank in a student's notebook
    >>> call_student(batches_needed, (1020, 32), "batches_needed(1020, 32)", "round up")
    Traceback (most recent call last):
    ...
    fitlab.exercises.harness.Failed: your code raised NotImplementedError (batches_needed(1020, 32))
    """
    try:
        return fn(*args, **kwargs)
    except Exception as exc:  # the student's code may raise anything
        # nbgrader's blank, `raise NotImplementedError()`, has no message to show.
        raised = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        raise Failed(f"your code raised {raised} ({during})", hint) from None


def given_or_synthetic(given: str | os.PathLike | None, fallback: Path, rows: int) -> Path:
    """The CSV the student named, else ``rows`` synthetic rows in the tutorial's format.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> tmp = pathlib.Path(tempfile.mkdtemp())
    >>> given_or_synthetic("flowers17_training.csv", tmp / "rows.csv", rows=3).name
    'flowers17_training.csv'
    >>> len(given_or_synthetic(None, tmp / "rows.csv", rows=3).read_text().splitlines())
    3
    """
    if given is not None:
        return Path(given)
    return make_synthetic_csv(fallback, rows)


def tiny_model(shape: tuple[int, ...], classes: int) -> keras.Model:
    """A seeded, uncompiled :class:`fitlab.TinyNet` for ``shape`` images: it trains in a second.

    Examples
    --------
    >>> tiny_model((8, 8, 3), classes=2).output_shape
    (None, 2)
    """
    import keras  # imported here: the checks that train nothing stay quick to import

    from fitlab.models import TinyNet

    keras.utils.set_random_seed(0)
    height, width, depth = shape
    return TinyNet.build(width, height, depth, classes)
