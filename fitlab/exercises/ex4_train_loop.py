"""Exercise 4: a hand-written ``train_on_batch`` loop with validation and early stopping.

The loop is first run against a scripted stand-in model whose losses are
known in advance, so the right history and the right stopping epoch are
known too. Its batches do not all hold the same number of rows, as the last
batch of a pass seldom does, so an epoch's loss must be the mean over rows:
each batch's loss weighted by its rows. Then, when given the training CSV, the
loop trains a small real Keras model on a split of it and validates on the
rest (:func:`fitlab.data.carve_validation`): the test CSV is never read.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

from fitlab.data import carve_validation, classes_from_csv, load_csv
from fitlab.data.labels import label_codes
from fitlab.exercises.harness import (
    CheckResult,
    Failed,
    call_student,
    need_callable,
    run_check,
    tiny_model,
)

_LOOP_HINT = (
    "for each epoch: call model.train_on_batch(x, y) on every training batch and average the "
    "losses over rows (each batch's loss times len(x), summed, divided by the rows); call "
    "model.test_on_batch(x, y) on every validation batch and average those the same way; "
    "append both to the history; stop when val_loss has not improved on the best one for "
    "`patience` epochs in a row."
)
_WEIGHT_HINT = (
    "a batch's loss is the mean over its rows, and the last batch of a pass has fewer rows: "
    "weight each batch's loss by len(x), sum, and divide by the epoch's rows"
)

# Rows per batch in the scripted runs: 10 training rows and 5 validation rows in batches of 4.
_TRAIN_SIZES, _VAL_SIZES = (4, 4, 2), (4, 1)
_TRAIN_BATCHES, _VAL_BATCHES = len(_TRAIN_SIZES), len(_VAL_SIZES)
_VAL_FRACTION = 0.2  # the share of each class carved from the training CSV to validate on

# (what, validation loss per epoch, epochs, patience)
_SCRIPTS = (
    ("always improving", [1.0, 0.8, 0.7, 0.6, 0.5], 5, 2),
    ("a plateau", [1.0, 0.8, 0.9, 0.85, 0.7, 0.6], 6, 2),
    ("patience 3", [1.0, 0.9, 0.95, 0.8, 0.85, 0.9, 0.7], 7, 3),
)


def check_train_loop(
    train_loop: Callable, train_csv: str | os.PathLike | None = None
) -> CheckResult:
    """Check a hand-written ``train_on_batch`` loop with validation and early stopping (exercise 4).

    Parameters
    ----------
    train_loop : callable
        ``train_loop(model, train_batches, val_batches, epochs, patience)``
        gets lists of ``(x, y)`` batches, calls ``model.train_on_batch`` on
        each training batch and ``model.test_on_batch`` on each validation
        batch every epoch, and returns ``{"loss": [...], "val_loss": [...]}``,
        one mean per epoch over rows (each batch's loss weighted by its
        rows). It stops once ``val_loss`` has not beaten its best for
        ``patience`` epochs, and never runs more than ``epochs``.
    train_csv : path, optional
        The training CSV (e.g. ``flowers17_training.csv``): the loop then also
        trains a small Keras model for 4 epochs on 80 % of each class's rows,
        validated on the other 20 % (:func:`fitlab.data.carve_validation`,
        ``seed=0``), in batches of 32; its training loss must fall.

    Returns
    -------
    CheckResult

    Examples
    --------
    >>> import numpy as np
    >>> def train_loop(model, train_batches, val_batches, epochs, patience):
    ...     history, best, waited = {"loss": [], "val_loss": []}, np.inf, 0
    ...     for _ in range(epochs):
    ...         rows = [len(x) for x, _ in train_batches]
    ...         loss = np.average([model.train_on_batch(x, y) for x, y in train_batches],
    ...                           weights=rows)
    ...         rows = [len(x) for x, _ in val_batches]
    ...         val_loss = np.average([model.test_on_batch(x, y) for x, y in val_batches],
    ...                               weights=rows)
    ...         history["loss"].append(loss)
    ...         history["val_loss"].append(val_loss)
    ...         best, waited = (val_loss, 0) if val_loss < best else (best, waited + 1)
    ...         if waited == patience:
    ...             break
    ...     return history
    >>> check_train_loop(train_loop)  # doctest: +NORMALIZE_WHITESPACE
    ✔ PASS check_train_loop: epochs, batch calls, means over rows and early stopping are
    right in 3 scripted runs.
    """

    def body() -> str:
        need_callable(train_loop, "train_loop", "check_train_loop(train_loop)")
        for what, epoch_val, epochs, patience in _SCRIPTS:
            _run_scripted(train_loop, epoch_val, epochs, patience, what)
        done = (
            "epochs, batch calls, means over rows and early stopping are right in "
            f"{len(_SCRIPTS)} scripted runs"
        )
        if train_csv is not None:
            fit_rows, val_rows = _run_real(train_loop, Path(train_csv))
            done += (
                f"; a real Keras model learns with it on {fit_rows} rows of "
                f"{Path(train_csv).name}, validated on the other {val_rows}"
            )
        return done + "."

    return run_check("check_train_loop", body)


class _ScriptedModel:
    """A stand-in model whose losses follow a script, so the check knows the answer."""

    def __init__(self, train_losses: Iterable[float], val_losses: Iterable[float]):
        self._train, self._val = iter(train_losses), iter(val_losses)
        self.train_calls: list[Any] = []
        self.test_calls: list[Any] = []

    def train_on_batch(self, x, y=None, return_dict=False, **kwargs) -> float | dict:
        self.train_calls.append(x)
        loss = self._next(self._train, "train_on_batch")
        return {"loss": loss} if return_dict else loss

    def test_on_batch(self, x, y=None, return_dict=False, **kwargs) -> float | dict:
        self.test_calls.append(x)
        loss = self._next(self._val, "test_on_batch")
        return {"loss": loss} if return_dict else loss

    @staticmethod
    def _next(script: Iterable[float], name: str) -> float:
        try:
            return next(script)
        except StopIteration:
            raise RuntimeError(
                f"{name} was called more often than `epochs` epochs of these batches allow"
            ) from None

    # The student's loop must not hand the work back to Keras.
    def fit(self, *args, **kwargs):
        raise RuntimeError("this exercise is about writing the loop: call train_on_batch, not fit")

    def evaluate(self, *args, **kwargs):
        raise RuntimeError("use test_on_batch on each validation batch, not evaluate")


def _train_loss(epoch: int, batch: int) -> float:
    """The scripted training loss: distinct per batch, so a sum or a last value shows."""
    return 10.0 - epoch + 0.1 * batch


def _val_offsets() -> np.ndarray:
    """Per validation batch, around 0, averaging to 0 over rows (not over batches)."""
    spread = np.linspace(-0.05, 0.05, _VAL_BATCHES)
    return spread - np.average(spread, weights=_VAL_SIZES)


def _epochs_run(epoch_val: list[float], epochs: int, patience: int) -> int:
    """How many epochs early stopping runs: until the best epoch is ``patience`` epochs old."""
    for run in range(1, epochs + 1):
        # argmin is the *first* minimum: an epoch that only ties the best is no improvement.
        if run - 1 - int(np.argmin(epoch_val[:run])) >= patience:
            return run
    return epochs


def _run_scripted(
    train_loop: Callable, epoch_val: list[float], epochs: int, patience: int, what: str
) -> None:
    n = len(epoch_val)
    train = [_train_loss(e, b) for e in range(n) for b in range(_TRAIN_BATCHES)]
    # Validation batches spread around the epoch's loss, averaging to it exactly over rows.
    val = [v + o for v in epoch_val for o in _val_offsets()]
    model = _ScriptedModel(train, val)
    # Each batch's x holds its index, so the check can see which batches were trained on.
    sizes = _TRAIN_SIZES + _VAL_SIZES
    batches = [(np.full((rows, 1), i, dtype=np.float32), np.zeros((rows, 1)))
               for i, rows in enumerate(sizes)]  # fmt: skip
    history = call_student(
        train_loop, (model, batches[:_TRAIN_BATCHES], batches[_TRAIN_BATCHES:], epochs, patience),
        f"{what}: epochs={epochs}, patience={patience}", _LOOP_HINT,
    )  # fmt: skip
    if not isinstance(history, dict) or "loss" not in history or "val_loss" not in history:
        raise Failed(
            f"{what}: train_loop returned {type(history).__name__}, expected a dict with "
            "'loss' and 'val_loss' lists",
            "start with history = {'loss': [], 'val_loss': []} and return it at the end",
        )
    run = _epochs_run(epoch_val, epochs, patience)
    batch_losses = [[_train_loss(e, b) for b in range(_TRAIN_BATCHES)] for e in range(run)]
    loss = [float(np.average(losses, weights=_TRAIN_SIZES)) for losses in batch_losses]
    val_loss = epoch_val[:run]
    got_loss = [float(v) for v in history["loss"]]
    got_val = [float(v) for v in history["val_loss"]]
    if len(got_val) != run:
        stop = "stopped" if len(got_val) < run else "ran on"
        raise Failed(
            f"{what}: validation losses per epoch were {[round(v, 3) for v in epoch_val[:epochs]]} "
            f"with patience={patience}; your loop {stop} after {len(got_val)} epochs, "
            f"expected {run}",
            "count epochs since the best val_loss; an epoch that does not beat the best adds one; "
            "stop when the count reaches patience (and never run more than `epochs`)",
        )
    seen = [int(x[0, 0]) for x in model.train_calls[:_TRAIN_BATCHES]]
    if len(model.train_calls) != _TRAIN_BATCHES * run or seen != list(range(_TRAIN_BATCHES)):
        raise Failed(
            f"{what}: train_on_batch was called {len(model.train_calls) / run:g} times per epoch "
            f"(first batches {seen}); expected each of the {_TRAIN_BATCHES} training batches "
            "once per epoch",
            "loop over all of train_batches inside the epoch loop",
        )
    if len(model.test_calls) != _VAL_BATCHES * run:
        raise Failed(
            f"{what}: test_on_batch was called {len(model.test_calls)} times in {run} epochs; "
            f"expected each of the {_VAL_BATCHES} validation batches once per epoch",
            "validate at the end of every epoch, over all of val_batches",
        )
    if np.allclose(got_loss, loss) and np.allclose(got_val, val_loss):
        return
    unweighted = [float(np.mean(losses)) for losses in batch_losses]
    if np.allclose(got_loss, unweighted):
        raise Failed(
            f"{what}: history loss {[round(v, 3) for v in got_loss]} are the plain means of "
            f"each epoch's batch losses; with batches of {list(_TRAIN_SIZES)} rows the means "
            f"over rows are {[round(v, 3) for v in loss]}",
            _WEIGHT_HINT,
        )
    raise Failed(
        f"{what}: history loss {[round(v, 3) for v in got_loss]}, val_loss "
        f"{[round(v, 3) for v in got_val]}; expected {[round(v, 3) for v in loss]} and "
        f"{[round(v, 3) for v in val_loss]} (each epoch's batch losses, averaged over rows)",
        "append one value per epoch: the mean over rows of the epoch's batch losses; "
        + _WEIGHT_HINT,
    )


def _run_real(train_loop: Callable, train_csv: Path) -> tuple[int, int]:
    """Four epochs on a small real model, validated on a split of the training CSV.

    Returns the rows trained on and the rows validated on.
    """
    import keras  # imported here: the scripted runs need no Keras

    classes = classes_from_csv(train_csv)
    with tempfile.TemporaryDirectory(prefix="fitlab-check-") as tmp:
        split = carve_validation(train_csv, tmp, fraction=_VAL_FRACTION, seed=0)
        train, val = (_batches_of(load_csv(path), classes) for path in (split.train, split.test))
    model = tiny_model(train[0][0].shape[1:], len(classes))
    model.compile(optimizer=keras.optimizers.Adam(0.05), loss="categorical_crossentropy")
    history = call_student(
        train_loop, (model, train, val, 4, 10),
        f"training a small Keras model on a split of {train_csv.name}", _LOOP_HINT,
    )  # fmt: skip
    loss = [float(v) for v in history.get("loss", [])] if isinstance(history, dict) else []
    if len(loss) != 4 or not loss[-1] < loss[0]:
        raise Failed(
            f"on a real Keras model the training loss per epoch was {loss}; expected "
            "4 epochs with the loss falling",
            "call model.train_on_batch(x, y): it updates the weights and returns the loss",
        )
    return sum(len(x) for x, _ in train), sum(len(x) for x, _ in val)


def _batches_of(loaded, classes: list[str], size: int = 32) -> list[tuple[np.ndarray, np.ndarray]]:
    """``(images, one-hot)`` batches of ``size`` rows, the last one with what is left."""
    images, labels = loaded
    one_hot = np.eye(len(classes), dtype="float32")[label_codes(labels.tolist(), classes)]
    return [(images[i : i + size], one_hot[i : i + size]) for i in range(0, len(images), size)]
