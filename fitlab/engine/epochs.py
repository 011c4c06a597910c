"""The epoch loop of ``fit``, written out once for every hand-made loop.

Keras's ``fit`` separates three concerns: reading the data (its data
adapters), running one step (its ``train_step``), and everything around the
steps (epochs, callbacks, validation, the ``History``). fitlab does the same:
:mod:`fitlab.engine.adapters` reads the data, a :class:`Steps` object runs one
batch (``train_on_batch`` in :mod:`fitlab.loops.on_batch`, a compiled step in
:mod:`fitlab.loops.compiled`, Keras 2's rules in :mod:`fitlab.compat`), and
:func:`run_epochs`, here, owns the rest: callbacks in ``fit``'s order, metric
resets, validation after each epoch, ``stop_training``, and a source that runs
dry.

Examples
--------
>>> import numpy as np
>>> class Count:  # a Steps that "trains" by counting rows
...     def reset(self): self.rows = 0
...     def train(self, batch): self.rows += len(batch[0]); return self.result()
...     test = train
...     def result(self): return {"rows": float(self.rows)}
>>> model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
>>> data = BatchStream((np.zeros((5, 1)), np.zeros(5)), batch_size=2)
>>> run_epochs(model, Count(), data, epochs=2, verbose=0).history
{'rows': [5.0, 5.0]}
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Protocol

import keras

from fitlab.engine.adapters import BatchStream
from fitlab.pipelines import InputMeter

# What a source that ran dry says (Keras 2 said much the same, then stopped).
_RAN_OUT = (
    "{role} ran out of data after {got} of {want} steps in epoch {epoch}; "
    "interrupting training. A generator must yield at least steps_per_epoch × epochs "
    "batches: make it loop forever (while True), or pass a re-iterable source "
    "(a PyDataset, a tf.data.Dataset or a list of batches)."
)


class Steps(Protocol):
    """What :func:`run_epochs` needs from a way of training one batch.

    ``train``/``test`` run one batch and return the metrics averaged over the
    epoch so far (what ``fit`` hands to ``on_*_batch_end``); ``result`` returns
    those averages as floats; ``reset`` starts a new average.
    """

    def reset(self) -> None: ...

    def train(self, batch) -> dict: ...

    def test(self, batch) -> dict: ...

    def result(self) -> dict[str, float]: ...


def run_epochs(
    model: keras.Model,
    steps: Steps,
    train: BatchStream,
    *,
    epochs: int,
    initial_epoch: int = 0,
    validation: BatchStream | None = None,
    callbacks: Sequence[keras.callbacks.Callback] | None = None,
    verbose: int | str = 1,
    meter: InputMeter | None = None,
) -> keras.callbacks.History:
    """The epoch loop of ``fit``, written out; shared by both hand-made loops.

    Calls, in ``fit``'s order: ``on_train_begin``; per epoch ``reset`` of the
    metrics, ``on_epoch_begin``, per batch ``on_train_batch_begin/end`` (with
    the running averages), then validation (``on_test_begin``,
    ``on_test_batch_begin/end``, ``on_test_end``), ``on_epoch_end`` with
    ``loss, …, val_loss, …``; ``on_train_end``. ``model.stop_training`` set
    by a callback ends the epoch after the current batch and training after
    the epoch, as in ``fit``.

    Parameters
    ----------
    meter : fitlab.InputMeter, optional
        Gets the time spent waiting for each next training batch.
    """
    if epochs < initial_epoch:
        raise ValueError(f"epochs ({epochs}) must be >= initial_epoch ({initial_epoch})")
    if not isinstance(callbacks, keras.callbacks.CallbackList):
        callbacks = keras.callbacks.CallbackList(
            callbacks,
            add_history=True,
            add_progbar=verbose != 0,
            verbose=verbose,
            epochs=epochs,
            steps=train.num_batches,
            model=model,
        )
    model.stop_training = False
    callbacks.on_train_begin()
    epoch_logs: dict[str, float] | None = None
    for epoch in range(initial_epoch, epochs):
        steps.reset()
        callbacks.on_epoch_begin(epoch)
        done = 0
        batches = train.epoch() if meter is None else meter.timed(train.epoch(), rows=train.rows)
        for step, batch in enumerate(batches):
            callbacks.on_train_batch_begin(step)
            logs = steps.train(batch)
            callbacks.on_train_batch_end(step, logs)
            done = step + 1
            if model.stop_training:
                break
        if train.ran_out:
            warnings.warn(
                _RAN_OUT.format(role=train.role, got=done, want=train.steps, epoch=epoch + 1),
                stacklevel=3,
            )
            model.stop_training = True
        if done == 0:
            break  # nothing trained this epoch: no metrics to report
        epoch_logs = steps.result()
        if validation is not None:
            val_logs = _validate(steps, validation, callbacks)
            epoch_logs.update({f"val_{name}": value for name, value in val_logs.items()})
        callbacks.on_epoch_end(epoch, epoch_logs)
        if model.stop_training:
            break
    if isinstance(getattr(model, "optimizer", None), keras.optimizers.Optimizer) and epochs > 0:
        # What fit does last: swap in EMA weights when the optimizer keeps them.
        model.optimizer.finalize_variable_values(model.trainable_weights)
    callbacks.on_train_end(logs=epoch_logs)
    return _history(callbacks)


def _validate(steps: Steps, validation: BatchStream, callbacks) -> dict[str, float]:
    steps.reset()
    callbacks.on_test_begin()
    for step, batch in enumerate(validation.epoch()):
        callbacks.on_test_batch_begin(step)
        logs = steps.test(batch)
        callbacks.on_test_batch_end(step, logs)
    if validation.ran_out:
        warnings.warn(
            f"{validation.role} ran out of data; validated on fewer than "
            f"{validation.steps} batches",
            stacklevel=4,
        )
        validation.ran_out = False
    logs = steps.result()
    callbacks.on_test_end(logs)
    return logs


def _history(callbacks: keras.callbacks.CallbackList) -> keras.callbacks.History:
    for callback in callbacks.callbacks:
        if isinstance(callback, keras.callbacks.History):
            return callback
    raise ValueError("the CallbackList passed in has no History callback (add_history=True)")
