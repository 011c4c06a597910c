"""Exercise 5: the tutorial's ``fit_generator`` call, ported to Keras 3.

The check trains a tiny model through the student's function on endless
generators and reads what training left behind: the ``History``, what each
epoch validated on, the batches drawn and the optimizer's learning rate,
which shows whether Keras 2's ``decay`` survived the port.

Three things about how it watches:

* Both generators are cut off after far more batches than a right answer
  draws. A call without ``steps_per_epoch`` or ``validation_steps`` would
  draw from an endless generator forever; cut off, it ends within seconds
  and the check says which argument is missing.
* ``model.fit`` is wrapped for the call, to add a callback that counts each
  epoch's validation batches and computes, with the epoch's weights, the
  loss on the batches it should have validated on. ``fitlab.compat``'s
  ``fit_generator`` is replaced for the call by one that refuses, and a
  History that ``model.fit`` did not make fails too (the shortcut imported
  under another name, or a hand-written loop).
* The validation generator's batches are solid-colour images, one colour per
  batch, so that any other batches give another validation loss.
"""

from __future__ import annotations

import contextlib
import inspect
import itertools
import math
import os
import sys
import tempfile
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

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
    "Keras 3: model.fit(train_gen, steps_per_epoch=..., validation_data=..., epochs=...) with "
    "no workers/max_queue_size; the decay becomes a schedule: fitlab.legacy_sgd(init_lr, "
    "decay=init_lr / epochs) or keras.optimizers.schedules.InverseTimeDecay(init_lr, "
    "decay_steps=1, decay_rate=...)."
)
_VALIDATION_HINT = (
    "draw the validation batches once, `itertools.islice(val_gen, validation_steps)`, join "
    "them into arrays and pass those as validation_data: Keras 3 wraps a validation generator "
    "again every epoch and replays the two batches it peeked at."
)

_BATCH = 8
# Far more batches than a right answer draws (3 epochs of 3, plus the two batches Keras peeks
# at and what TensorFlow's prefetch reads ahead), few enough that reaching it takes seconds.
_CUT_OFF = 30


def check_port(train_modern: Callable, train_csv: str | os.PathLike | None = None) -> CheckResult:
    """Check the tutorial's ``fit_generator`` call ported to Keras 3 (exercise 5).

    Parameters
    ----------
    train_modern : callable
        ``train_modern(model, train_gen, val_gen, steps_per_epoch,
        validation_steps, epochs, init_lr=1e-2)`` compiles ``model`` as the
        tutorial did (SGD, momentum 0.9, ``decay = init_lr / epochs`` per
        batch, categorical cross-entropy, accuracy), trains it with
        ``model.fit`` on the endless training generator and returns the
        ``History``. Every epoch validates on the same ``validation_steps``
        batches: the first ones ``val_gen`` yields. Keras 3 accepts
        ``SGD(decay=…)`` and ignores it: the learning rate after training
        must show Keras 2's decay. ``fitlab.compat.fit_generator`` is refused.
    train_csv : path, optional
        The CSV to train on (e.g. ``flowers17_training.csv``); else 24
        synthetic rows. Either way 3 epochs of 3 batches of 8, validated on
        3 batches of 8.

    Returns
    -------
    CheckResult

    Examples
    --------
    Training is the point, so the example trains (a tiny model, a few seconds):

    >>> import itertools
    >>> import numpy as np
    >>> import fitlab
    >>> def train_modern(model, train_gen, val_gen, steps_per_epoch, validation_steps, epochs,
    ...                  init_lr=1e-2):
    ...     opt = fitlab.legacy_sgd(init_lr, momentum=0.9, decay=init_lr / epochs)
    ...     model.compile(loss="categorical_crossentropy", optimizer=opt, metrics=["accuracy"])
    ...     images, labels = zip(*itertools.islice(val_gen, validation_steps))
    ...     return model.fit(train_gen, steps_per_epoch=steps_per_epoch,
    ...                      validation_data=(np.concatenate(images), np.concatenate(labels)),
    ...                      epochs=epochs, shuffle=False, verbose=0)
    >>> check_port(train_modern)  # doctest: +NORMALIZE_WHITESPACE
    ✔ PASS check_port: fit trained 3 epochs of 3 batches, each validated on the same 3
    batches, and the learning rate decays per batch as Keras 2's SGD(decay=...) did.
    """

    def body() -> str:
        # Imported here: fitlab.pipelines loads Keras, and `import fitlab.exercises` stays quick.
        from fitlab.pipelines import csv_image_generator

        need_callable(train_modern, "train_modern", "check_port(train_modern)")
        steps, val_steps, epochs, init_lr = 3, 3, 3, 1e-2
        with tempfile.TemporaryDirectory(prefix="fitlab-check-") as tmp:
            path = given_or_synthetic(train_csv, Path(tmp) / "train.csv", rows=24)
            classes = classes_from_csv(path)
            model = tiny_model((64, 64, 3), len(classes))  # the student compiles it
            train = _CutOff(csv_image_generator(path, _BATCH, classes))
            val = _CutOff(_solid_colour_batches(len(classes)))
            watch = _FitWatch(model, val, val_steps)
            with watch, _refused_shortcuts() as shortcut:
                history = _call(
                    train_modern, (model, train.generator(), val.generator(), steps, val_steps,
                                   epochs), shortcut, init_lr=init_lr,
                    during=f"steps_per_epoch={steps}, validation_steps={val_steps}, "
                    f"epochs={epochs}",
                )  # fmt: skip
        if watch.fit_calls == 0:
            raise Failed(
                "train_modern trained without model.fit: this exercise is the port to "
                "Keras 3's fit",
                "call model.fit(train_gen, ...) yourself; fitlab.compat.fit_generator is for "
                "code you cannot edit",
            )
        _check_drawn(train, steps, epochs, watch.fit_kwargs)
        _check_history(history, epochs)
        _check_validation(watch, val_steps)
        _check_decay(model.optimizer, init_lr, epochs)
        return (
            f"fit trained {epochs} epochs of {steps} batches, each validated on the same "
            f"{val_steps} batches, and the learning rate decays per batch as Keras 2's "
            "SGD(decay=...) did."
        )

    return run_check("check_port", body)


class _CutOff:
    """An endless batch source, cut off after ``_CUT_OFF`` batches; remembers what it gave."""

    def __init__(self, batches: Iterator):
        self._batches = batches
        self.given: list[tuple[np.ndarray, np.ndarray]] = []

    def generator(self) -> Iterator:
        """A real generator (Keras reads only those as generators) over the cut-off source."""
        for batch in itertools.islice(self._batches, _CUT_OFF):
            self.given.append(batch)
            yield batch

    @property
    def drawn(self) -> int:
        return len(self.given)

    @property
    def cut_off(self) -> bool:
        return self.drawn >= _CUT_OFF


def _solid_colour_batches(classes: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Batches of one colour and one class each, all colours different: each its own loss."""
    rng = np.random.default_rng(5)
    colours = rng.integers(0, 256, size=(_CUT_OFF, 3))
    one_hot = np.eye(classes, dtype="float32")[rng.integers(0, classes, size=_CUT_OFF)]
    for colour, target in zip(colours, one_hot, strict=True):
        images = np.broadcast_to(colour, (_BATCH, 64, 64, 3)).astype("float32")
        yield images, np.repeat(target[None], _BATCH, axis=0)


class _FitWatch:
    """While active, ``model.fit`` goes through :meth:`fit`, which adds a watching callback."""

    def __init__(self, model, val: _CutOff, val_steps: int):
        self.model, self.val, self.val_steps = model, val, val_steps
        self.fit_calls = 0
        self.fit_kwargs: dict[str, Any] = {}
        self.epochs: list[dict[str, Any]] = []  # per epoch: val batches, val_loss, expected

    def __enter__(self) -> _FitWatch:
        self._fit = self.model.fit
        self.model.fit = self.fit
        return self

    def __exit__(self, *exc) -> None:
        del self.model.fit  # the instance attribute: Model.fit shows again

    def fit(self, *args, **kwargs):
        import keras

        bound = inspect.signature(self._fit).bind(*args, **kwargs)
        self.fit_calls += 1
        self.fit_kwargs = dict(bound.arguments)
        watch = self

        class Watching(keras.callbacks.Callback):
            def on_epoch_begin(self, epoch, logs=None):
                watch.epochs.append({"batches": 0})

            def on_test_batch_end(self, batch, logs=None):
                watch.epochs[-1]["batches"] += 1

            def on_epoch_end(self, epoch, logs=None):
                watch.epochs[-1]["val_loss"] = (logs or {}).get("val_loss")
                watch.epochs[-1]["expected"] = watch.expected_val_loss()

        callbacks = list(bound.arguments.get("callbacks") or [])
        bound.arguments["callbacks"] = [*callbacks, Watching()]
        with warnings.catch_warnings():
            # A cut-off generator "runs out of data": the check says what that means.
            warnings.filterwarnings("ignore", message="Your input ran out of data")
            return self._fit(*bound.args, **bound.kwargs)

    def expected_val_loss(self) -> float | None:
        """The loss, with the current weights, on the first ``val_steps`` validation batches."""
        import keras

        if self.val.drawn < self.val_steps:
            return None
        x = np.concatenate([x for x, _ in self.val.given[: self.val_steps]])
        y = np.concatenate([y for _, y in self.val.given[: self.val_steps]])
        y_pred = self.model.predict_on_batch(x)
        loss = self.model.compute_loss(x=x, y=y, y_pred=y_pred, training=False)
        return float(keras.ops.convert_to_numpy(loss))


@contextlib.contextmanager
def _refused_shortcuts() -> Iterator[list[str]]:
    """Replace ``fitlab.compat``'s ``fit_generator`` everywhere it is looked up, for a while.

    Yields a list that gets the name of each refused call.
    """
    import keras

    import fitlab.compat
    import fitlab.compat.generator_methods

    used: list[str] = []

    def refuse(name: str) -> Callable:
        def fit_generator(*args, **kwargs):
            used.append(name)
            raise RuntimeError(f"{name} is refused in this exercise")

        return fit_generator

    places = [
        (fitlab.compat, "fit_generator", "fitlab.compat.fit_generator"),
        (fitlab.compat.generator_methods, "fit_generator", "fitlab.compat.fit_generator"),
        (sys.modules["fitlab"], "fit_generator", "fitlab.fit_generator"),
        (keras.Model, "fit_generator", "model.fit_generator"),
    ]
    absent = object()  # fitlab's lazy attribute not looked up yet, or a method never enabled
    saved = [(owner, name, vars(owner).get(name, absent)) for owner, name, _ in places]
    try:
        for owner, name, shown in places:
            setattr(owner, name, refuse(shown))
        yield used
    finally:
        for owner, name, value in saved:
            if value is absent:
                delattr(owner, name)
            else:
                setattr(owner, name, value)


def _call(train_modern: Callable, args: tuple, shortcut: list[str], during: str, **kwargs) -> Any:
    try:
        return call_student(train_modern, args, during, _PORT_HINT, **kwargs)
    except Failed:
        if shortcut:
            raise Failed(
                f"train_modern called {shortcut[0]}, Keras 2's meaning on Keras 3: this "
                "exercise is the port itself",
                "call model.fit(train_gen, steps_per_epoch=..., validation_data=..., ...) "
                "yourself; " + _PORT_HINT,
            ) from None
        raise


def _check_drawn(train: _CutOff, steps: int, epochs: int, fit_kwargs: dict) -> None:
    if train.cut_off:
        missing = "steps_per_epoch" not in fit_kwargs
        raise Failed(
            ("steps_per_epoch missing: " if missing else "")
            + f"fit drew {train.drawn} batches from the endless training generator, where "
            f"{epochs} epochs of {steps} need {steps * epochs}; the check cut it off "
            "(without the cut-off, epoch 1 never ends)",
            "pass steps_per_epoch=steps_per_epoch to fit: a generator has no length",
        )
    if train.drawn < steps * epochs:
        raise Failed(
            f"only {train.drawn} training batches were drawn for {epochs} epochs of {steps} steps",
            "pass steps_per_epoch=steps_per_epoch and epochs=epochs to fit",
        )


def _check_history(history: Any, epochs: int) -> None:
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
            "compile with metrics=['accuracy'] and pass validation_data to fit",
        )
    if len(logs["loss"]) != epochs:
        raise Failed(
            f"the History has {len(logs['loss'])} epochs, expected {epochs}",
            "pass epochs=epochs to fit",
        )


def _check_validation(watch: _FitWatch, val_steps: int) -> None:
    """Every epoch validated on the first ``val_steps`` batches of ``val_gen``, no others."""
    if watch.val.cut_off:
        missing = "validation_steps" not in watch.fit_kwargs
        raise Failed(
            ("validation_steps missing: " if missing else "")
            + f"validation drew {watch.val.drawn} batches from the endless validation "
            f"generator, where {val_steps} per epoch are right; the check cut it off "
            "(without the cut-off, Keras 3's evaluate draws from it forever)",
            _VALIDATION_HINT,
        )
    for number, epoch in enumerate(watch.epochs, 1):
        expected, got = epoch.get("expected"), epoch.get("val_loss")
        if expected is not None and got is not None and math.isclose(got, expected, rel_tol=1e-5):
            continue
        if got is None or epoch["batches"] != val_steps:
            raise Failed(
                f"epoch {number} validated on {_batches(epoch['batches'])}; expected "
                f"validation_steps={val_steps}, the same batches every epoch",
                _VALIDATION_HINT,
            )
        if expected is None:
            raise Failed(
                f"epoch {number} validated on {val_steps} batches, but val_gen gave only "
                f"{watch.val.drawn}: validate on the batches val_gen yields",
                _VALIDATION_HINT,
            )
        raise Failed(
            f"epoch {number} validated on {val_steps} batches, but not on the first "
            f"{val_steps} that val_gen yields (val_loss {got:.4f}; on those it is "
            f"{expected:.4f})"
            + (": Keras 3 replayed the two batches it peeked at, then drew new ones"
               if number > 1 else ""),
            _VALIDATION_HINT,
        )  # fmt: skip


def _batches(count: int) -> str:
    return f"{count} batch" if count == 1 else f"{count} batches"


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
