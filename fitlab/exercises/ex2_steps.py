"""Exercise 2: how many batches one exact pass needs, and how full the last one is."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from fitlab.exercises.harness import CheckResult, Failed, call_student, need_callable, run_check

# (rows, batch size, batches needed, rows in the last batch)
_STEP_CASES = (
    (1020, 32, 32, 28),  # the training CSV
    (340, 32, 11, 20),  # the testing CSV
    (320, 32, 10, 32),  # divides: the tutorial's `// bs + 1` asks for an 11th, empty batch
    (1360, 64, 22, 16),
    (32, 32, 1, 32),
    (1, 32, 1, 1),
    (31, 32, 1, 31),
    (33, 32, 2, 1),
    (1000, 1, 1000, 1),
)


def check_steps(batches_needed: Callable, last_batch_size: Callable) -> CheckResult:
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
    """

    def body() -> str:
        example = "check_steps(batches_needed, last_batch_size)"
        need_callable(batches_needed, "batches_needed", example)
        need_callable(last_batch_size, "last_batch_size", example)
        for rows, bs, steps, last in _STEP_CASES:
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
                        _steps_hint(name, rows, bs),
                    )
        return f"batches_needed and last_batch_size are right for all {len(_STEP_CASES)} cases."

    return run_check("check_steps", body)


def _steps_hint(name: str, rows: int, bs: int) -> str:
    if name == "batches_needed":
        return (
            f"{rows} // {bs} drops the last partial batch, and {rows} // {bs} + 1 asks for an "
            "empty batch when the rows divide evenly; round the division *up*"
        )
    return (
        "the last batch holds what is left after the full batches; when the rows divide "
        f"evenly it is a full batch of {bs}, never 0"
    )
