"""Exercise 2: how many batches one exact pass needs, and how full the last one is."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import numpy as np

from fitlab.exercises.harness import CheckResult, Failed, call_student, need_callable, run_check

# (rows, batch size): the checked sizes, unless a check names its own.
_STEP_SIZES = (
    (1020, 32),  # the training CSV: 32 batches, the last of 28 rows
    (340, 32),  # the testing CSV
    (320, 32),  # divides: the tutorial's `// bs + 1` asks for an 11th, empty batch
    (1360, 64),
    (32, 32),
    (1, 32),
    (31, 32),
    (33, 32),
    (1000, 1),
)


def check_steps(
    batches_needed: Callable,
    last_batch_size: Callable,
    sizes: Iterable[tuple[int, int]] | None = None,
) -> CheckResult:
    """Check ``batches_needed`` and ``last_batch_size`` for awkward sizes (exercise 2).

    Parameters
    ----------
    batches_needed : callable
        ``batches_needed(rows, batch_size)``: the number of batches that
        shows every row exactly once (``steps_per_epoch`` or
        ``validation_steps`` for one exact pass), an ``int``.
    last_batch_size : callable
        ``last_batch_size(rows, batch_size)``: how many rows the last of
        those batches holds, an ``int``.
    sizes : iterable of (rows, batch_size), optional
        The sizes to check instead of the nine awkward ones (the Flowers-17
        files, a count that divides, one row, batch size 1). The right
        answers are worked out in integers, exact for any count.

    Returns
    -------
    CheckResult

    Examples
    --------
    >>> import math
    >>> def batches_needed(rows, bs):
    ...     return math.ceil(rows / bs)
    >>> def last_batch_size(rows, bs):
    ...     return rows - (batches_needed(rows, bs) - 1) * bs
    >>> check_steps(batches_needed, last_batch_size)
    ✔ PASS check_steps: batches_needed and last_batch_size are right for all 9 cases.

    A float holds about 16 digits, so ``rows / bs`` rounds huge counts:

    >>> print(check_steps(batches_needed, last_batch_size, sizes=[(10**17 + 1, 10)]))
    ... # doctest: +ELLIPSIS
    ✘ FAIL check_steps: batches_needed(100000000000000001, 10) returned 10000000000000000, ...
      Hint: rows / batch_size is a float, exact only to about 16 digits: ...
    """
    cases = [
        (rows, bs, *_exact(rows, bs)) for rows, bs in (_STEP_SIZES if sizes is None else sizes)
    ]

    def body() -> str:
        example = "check_steps(batches_needed, last_batch_size)"
        need_callable(batches_needed, "batches_needed", example)
        need_callable(last_batch_size, "last_batch_size", example)
        for rows, bs, steps, last in cases:
            for fn, name, want in ((batches_needed, "batches_needed", steps),
                                   (last_batch_size, "last_batch_size", last)):  # fmt: skip
                got = call_student(
                    fn, (rows, bs), f"{name}({rows}, {bs})",
                    "divide the rows by the batch size and round *up*, with integers only",
                )  # fmt: skip
                # bool is an int subclass, but True is no batch count.
                if isinstance(got, bool) or not isinstance(got, int | np.integer):
                    raise Failed(
                        f"{name}({rows}, {bs}) returned {got!r} ({type(got).__name__}); "
                        "Keras wants a whole number of batches, an int",
                        "math.ceil returns an int; np.ceil and / return floats: wrap them in int()",
                    )
                if got != want:
                    raise Failed(
                        f"{name}({rows}, {bs}) returned {got}, expected {want}",
                        _steps_hint(name, rows, bs, got),
                    )
        return f"batches_needed and last_batch_size are right for all {len(cases)} cases."

    return run_check("check_steps", body)


def _exact(rows: int, bs: int) -> tuple[int, int]:
    """The batches one exact pass needs and the rows in the last one, in integers only."""
    steps = -(-rows // bs)
    return steps, rows - (steps - 1) * bs


def _steps_hint(name: str, rows: int, bs: int, got: int) -> str:
    float_steps = math.ceil(rows / bs)  # what rounding a float division up gives
    if got == (float_steps if name == "batches_needed" else rows - (float_steps - 1) * bs):
        return (
            f"rows / batch_size is a float, exact only to about 16 digits: {rows:,} rows are "
            "rounded before math.ceil sees them; divide with integers only (// rounds down, "
            "and rounding up can be done in integers too)"
        )
    if name == "batches_needed":
        return (
            f"{rows} // {bs} drops the last partial batch, and {rows} // {bs} + 1 asks for an "
            "empty batch when the rows divide evenly; round the division *up*"
        )
    return (
        "the last batch holds what is left after the full batches; when the rows divide "
        f"evenly it is a full batch of {bs}, never 0"
    )
