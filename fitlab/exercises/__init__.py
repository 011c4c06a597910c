"""Checks for the classroom exercises (``notebooks/exercises``, generated from ``solutions``).

Each ``check_…`` function runs the student's code on small, known inputs
(and, when given, on the real Flowers-17 CSVs) and returns a
:class:`CheckResult`. A notebook shows it as one line, ``✔ PASS …`` or
``✘ FAIL …`` followed by a hint. A check never lets the student's exception
escape as a bare traceback: an exception raised by the student's code is a
failed check that names the exception, the input that caused it, and a hint.

The exercises' graded cells (nbgrader's autograder tests) end with
``result.assert_passed()``: it prints the pass line, or raises
:class:`ExerciseFailed`, which takes the cell's points and shows only the
fail line and its hint.

The checks, one module each, and what they expect:

* :func:`check_csv_generator` (``ex1_csv_generator``) —
  ``csv_generator(input_path, bs, mode="train")`` yields
  ``(images (n, H, W, 3), labels (n,))``; ``"train"`` loops forever and
  wraps without losing or repeating a row; ``"eval"`` yields every row once,
  never an empty batch, then stops.
* :func:`check_steps` (``ex2_steps``) — ``batches_needed(rows, batch_size)``
  and ``last_batch_size(rows, batch_size)`` for awkward sizes, or for the
  sizes given (the autograder's hidden test: counts too big for a float).
* :func:`check_input_pipeline` (``ex3_starving_pipeline``) —
  ``pipeline(path, bs, classes)`` yields one exact pass of ``(images,
  one_hot)`` batches, fast enough that a stand-in for a fast accelerator
  waits at most half the time.
* :func:`check_train_loop` (``ex4_train_loop``) — ``train_loop(model,
  train_batches, val_batches, epochs, patience) -> {"loss": [...],
  "val_loss": [...]}``: epoch means weighted by rows, early stopping, and a
  real run validated on a split of the training CSV.
* :func:`check_port` (``ex5_port``) — ``train_modern(model, train_gen,
  val_gen, steps_per_epoch, validation_steps, epochs, init_lr=1e-2) ->
  History``: the tutorial's ``fit_generator`` call ported to Keras 3's
  ``fit``, validating on the same batches every epoch.

``harness`` holds what they share: the result and its failure, running a
check, and calling the student's code.

Examples
--------
>>> check_steps(lambda rows, bs: -(-rows // bs), lambda rows, bs: (rows - 1) % bs + 1)
✔ PASS check_steps: batches_needed and last_batch_size are right for all 9 cases.
>>> print(check_steps(lambda rows, bs: rows // bs, lambda rows, bs: rows % bs))
... # doctest: +ELLIPSIS
✘ FAIL check_steps: batches_needed(1020, 32) returned 31, expected 32
  Hint: 1020 // 32 drops the last partial batch, ... round the division *up*
>>> check_steps(lambda rows, bs: rows // bs, lambda rows, bs: rows % bs).assert_passed()
... # doctest: +ELLIPSIS
Traceback (most recent call last):
...
fitlab.exercises.harness.ExerciseFailed: ✘ FAIL check_steps: batches_needed(1020, 32) ...
"""

from fitlab.exercises.ex1_csv_generator import check_csv_generator
from fitlab.exercises.ex2_steps import check_steps
from fitlab.exercises.ex3_starving_pipeline import (
    MAX_WAIT_SHARE,
    SECONDS_PER_IMAGE,
    check_input_pipeline,
)
from fitlab.exercises.ex4_train_loop import check_train_loop
from fitlab.exercises.ex5_port import check_port
from fitlab.exercises.harness import CheckResult, ExerciseFailed

__all__ = [
    "MAX_WAIT_SHARE",
    "SECONDS_PER_IMAGE",
    "CheckResult",
    "ExerciseFailed",
    "check_csv_generator",
    "check_input_pipeline",
    "check_port",
    "check_steps",
    "check_train_loop",
]
