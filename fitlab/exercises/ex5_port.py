"""Exercise 5: the tutorial's ``fit_generator`` call, ported to Keras 3.

The check trains a tiny model through the student's function with
:func:`fitlab.pipelines.csv_image_generator` batches, then reads what
training left behind: the ``History``, the batches drawn (an
:class:`fitlab.pipelines.InputMeter` counts them) and the optimizer's
learning rate, which shows whether Keras 2's ``decay`` survived the port.
"""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from fitlab.data import classes_from_csv
from fitlab.exercises.harness import (
    CheckResult,
    Failed,
    call_student,
    given_or_synthetic,
    need_callable,
    run_check,
    tiny_model,
)

_PORT_HINT = (
    "Keras 3: model.fit(train_gen, steps_per_epoch=..., validation_data=val_gen, "
    "validation_steps=..., epochs=...) with no workers/max_queue_size; the decay "
    "becomes a schedule: fitlab.legacy_sgd(init_lr, decay=init_lr / epochs) or "
    "keras.optimizers.schedules.InverseTimeDecay(init_lr, decay_steps=1, decay_rate=...)."
)


def check_port(train_modern: Callable, train_csv: str | os.PathLike | None = None) -> CheckResult:
    """Check the tutorial's ``fit_generator`` call ported to Keras 3 (exercise 5).

    Parameters
    ----------
    train_modern : callable
        ``train_modern(model, train_gen, val_gen, steps_per_epoch,
        validation_steps, epochs, init_lr=1e-2)`` compiles ``model`` as the
        tutorial did (SGD, momentum 0.9, ``decay = init_lr / epochs`` per
        batch, categorical cross-entropy, accuracy), trains it on the endless
        generators and returns the ``History``. Keras 3 accepts
        ``SGD(decay=…)`` and ignores it: the learning rate after training must
        show Keras 2's decay.
    train_csv : path, optional
        The CSV to train on (e.g. ``flowers17_training.csv``); else 24
        synthetic rows. Either way 3 epochs of 3 batches of 8.

    Returns
    -------
    CheckResult

    Examples
    --------
    Training is the point, so the example trains (a tiny model, a few seconds):

    >>> import fitlab
    >>> def train_modern(model, train_gen, val_gen, steps_per_epoch, validation_steps, epochs,
    ...                  init_lr=1e-2):
    ...     opt = fitlab.legacy_sgd(init_lr, momentum=0.9, decay=init_lr / epochs)
    ...     model.compile(loss="categorical_crossentropy", optimizer=opt, metrics=["accuracy"])
    ...     return model.fit(train_gen, steps_per_epoch=steps_per_epoch, validation_data=val_gen,
    ...                      validation_steps=validation_steps, epochs=epochs,
    ...                      shuffle=False, verbose=0)  # a generator shuffles; fit cannot
    >>> check_port(train_modern)  # doctest: +NORMALIZE_WHITESPACE
    ✔ PASS check_port: fit trained 3 epochs of 3 batches with validation, and the learning
    rate decays per batch as Keras 2's SGD(decay=...) did.
    """

    def body() -> str:
        # Imported here: fitlab.pipelines loads Keras, and `import fitlab.exercises` stays quick.
        from fitlab.pipelines import InputMeter, csv_image_generator

        need_callable(train_modern, "train_modern", "check_port(train_modern)")
        steps, val_steps, epochs, init_lr = 3, 2, 3, 1e-2
        meter = InputMeter()  # counts the training batches drawn
        with tempfile.TemporaryDirectory(prefix="fitlab-check-") as tmp:
            path = given_or_synthetic(train_csv, Path(tmp) / "train.csv", rows=24)
            classes = classes_from_csv(path)
            model = tiny_model((64, 64, 3), len(classes))  # the student compiles it
            train_gen = csv_image_generator(path, 8, classes, meter=meter)
            val_gen = csv_image_generator(path, 8, classes)
            history = call_student(
                train_modern, (model, train_gen, val_gen, steps, val_steps, epochs),
                f"steps_per_epoch={steps}, validation_steps={val_steps}, epochs={epochs}",
                _PORT_HINT, init_lr=init_lr,
            )  # fmt: skip
        logs = getattr(history, "history", None)
        if not isinstance(logs, dict):
            raise Failed(
                f"train_modern returned {type(history).__name__}, expected the History "
                "that model.fit returns",
                "return model.fit(...)",
            )
        missing = [k for k in ("loss", "accuracy", "val_loss", "val_accuracy") if k not in logs]
        if missing:
            raise Failed(
                f"the History has {sorted(logs)}, missing {missing}",
                "compile with metrics=['accuracy'] and pass validation_data and validation_steps",
            )
        if len(logs["loss"]) != epochs:
            raise Failed(
                f"the History has {len(logs['loss'])} epochs, expected {epochs}",
                "pass epochs=epochs to fit",
            )
        if meter.batches < steps * epochs:
            raise Failed(
                f"only {meter.batches} training batches were drawn for {epochs} epochs of "
                f"{steps} steps",
                "pass steps_per_epoch=steps_per_epoch to fit",
            )
        _check_decay(model.optimizer, init_lr, epochs)
        return (
            f"fit trained {epochs} epochs of {steps} batches with validation, and the learning "
            "rate decays per batch as Keras 2's SGD(decay=...) did."
        )

    return run_check("check_port", body)


def _check_decay(optimizer, init_lr: float, epochs: int) -> None:
    """The rate is Keras 2's ``init_lr / (1 + decay * batches)``; the momentum 0.9."""
    iterations = int(optimizer.iterations.numpy())
    decay = init_lr / epochs
    want = init_lr / (1 + decay * iterations)
    # Keras 3 evaluates a schedule here, at the optimizer's iterations.
    got = float(np.asarray(optimizer.learning_rate))
    if not math.isclose(got, want, rel_tol=1e-5):
        raise Failed(
            f"after {iterations} batches the learning rate is {got:.6g}; Keras 2's "
            f"decay={decay:.4g} gives {want:.6g}",
            "Keras 3's SGD(decay=...) ignores decay (with only a warning). " + _PORT_HINT,
        )
    momentum = float(getattr(optimizer, "momentum", 0.0))
    if not math.isclose(momentum, 0.9):
        raise Failed(f"the optimizer's momentum is {momentum}, expected 0.9", _PORT_HINT)
