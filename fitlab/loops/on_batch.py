"""Training by hand: a ``train_on_batch`` loop that behaves like ``fit``.

``fit`` hides an epoch loop. :func:`train_on_batches` writes it out over
``model.train_on_batch`` / ``model.test_on_batch``: its batches come from
:class:`fitlab.engine.BatchStream`, its epochs from
:func:`fitlab.engine.run_epochs`, so ``EarlyStopping``, ``ModelCheckpoint``,
the progress bar and :class:`fitlab.LivePlot` all work in it, and it returns
the same :class:`keras.callbacks.History`. What is left here is one step:
:class:`OnBatchSteps`, which averages the per-batch logs as ``fit`` does.

Examples
--------
>>> import numpy as np
>>> keras.utils.set_random_seed(0)
>>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
>>> model.compile(optimizer="sgd", loss="mse")
>>> x, y = np.ones((6, 2), "float32"), np.zeros(6, "float32")
>>> history = train_on_batches(model, (x, y), epochs=2, batch_size=4, verbose=0)
>>> sorted(history.history), len(history.history["loss"])
(['loss'], 2)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
import numpy as np

from fitlab.engine import BatchStream, arrays_batch_size, run_epochs
from fitlab.engine.adapters import check_batch_size, is_sequence, warn_pydataset_workers
from fitlab.pipelines import InputMeter, rows_in


class OnBatchSteps:
    """One batch through ``train_on_batch`` / ``test_on_batch``, averaged like ``fit``.

    ``train_on_batch`` resets the model's metrics on every call (Keras 3
    dropped Keras 2's ``reset_metrics=False``), so each call reports that
    batch alone. ``fit`` reports means over the epoch's rows, kept by
    ``keras.metrics.Mean`` in float32 with the batch size as weight; summing
    the batch values the same way, in float32, gives ``fit``'s very numbers.
    (Not so where ``fit``'s metric is not a mean over rows: a metric in
    ``weighted_metrics`` under sample weights that vary weighs each row by
    its weight over the whole epoch, and ``Precision``, ``AUC`` and the like
    are ratios of epoch totals; their batch values averaged differ.)

    How a batch splits into ``x, y, sample_weight`` is :meth:`unpack`, Keras
    3's rule here; :mod:`fitlab.compat` overrides it with Keras 2's, so both
    kinds of loop average their logs this one way.

    Examples
    --------
    >>> import numpy as np
    >>> model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1, "relu")])
    >>> model.compile(optimizer="sgd", loss="mse")
    >>> model.set_weights([np.zeros((1, 1)), np.zeros(1)])  # predicts 0
    >>> steps = OnBatchSteps(model)
    >>> steps.test((np.zeros((3, 1)), np.full(3, 2.0)))  # 3 rows, squared error 4
    {'loss': 4.0}
    >>> steps.test((np.zeros((1, 1)), np.zeros(1)))  # 1 row, error 0: (3 * 4 + 0) / 4
    {'loss': 3.0}
    """

    def __init__(self, model: keras.Model) -> None:
        self.model = model
        self.reset()

    def reset(self) -> None:
        self._sums: dict[str, np.float32] = {}
        self._rows = np.float32(0)

    def unpack(self, batch: Any, training: bool) -> tuple:
        """``(x, y, sample_weight)`` of one batch (``training``: for ``train_on_batch``)."""
        return keras.utils.unpack_x_y_sample_weight(batch)

    def train(self, batch: Any) -> dict:
        x, y, sample_weight = self.unpack(batch, training=True)
        logs = self.model.train_on_batch(x, y, sample_weight=sample_weight, return_dict=True)
        return self._add(logs, rows_in(batch))

    def test(self, batch: Any) -> dict:
        x, y, sample_weight = self.unpack(batch, training=False)
        logs = self.model.test_on_batch(x, y, sample_weight=sample_weight, return_dict=True)
        return self._add(logs, rows_in(batch))

    def _add(self, logs: dict, rows: int) -> dict:
        weight = np.float32(rows)
        self._rows = np.float32(self._rows + weight)
        for name, value in logs.items():
            total = self._sums.get(name, np.float32(0))
            self._sums[name] = np.float32(total + np.float32(value) * weight)
        return self.result()

    def result(self) -> dict[str, float]:
        """The averages since :meth:`reset`; ``{}`` when no batch ran."""
        return {name: float(total / self._rows) for name, total in self._sums.items()}


def train_on_batches(
    model: keras.Model,
    train: Any,
    epochs: int = 1,
    *,
    steps_per_epoch: int | None = None,
    validation_data: Any = None,
    validation_steps: int | None = None,
    callbacks: Sequence[keras.callbacks.Callback] | None = None,
    initial_epoch: int = 0,
    verbose: int | str = 1,
    meter: InputMeter | None = None,
    batch_size: int | None = None,
) -> keras.callbacks.History:
    """Train a compiled model with your own loop over ``train_on_batch``.

    The loop is ``fit``'s, written out (see :func:`run_epochs`): the same
    callbacks in the same order, ``stop_training`` honoured, and epoch logs
    named and averaged as ``fit``'s (``loss``, ``accuracy``, ``val_loss``,
    ``val_accuracy``: means over the epoch's rows).

    Parameters
    ----------
    model : keras.Model
        Compiled (``model.compile(optimizer, loss, metrics)``).
    train : (x, y) arrays, PyDataset, tf.data.Dataset, list of batches or generator
        See :class:`BatchStream`. Arrays are cut into batches in order, not
        shuffled. A generator needs ``steps_per_epoch``; its position carries
        over between epochs, and if it runs dry training stops with a warning.
        A ``PyDataset`` is read by index on this thread (its ``workers`` are
        not used) and gets ``on_epoch_end()`` after each full pass.
    epochs, initial_epoch : int
        Train epochs ``initial_epoch … epochs - 1`` (as ``fit``: ``epochs`` is
        the index to stop at, not a count).
    steps_per_epoch, validation_steps : int, optional
        Batches per epoch; needed for sources without a length.
    validation_data : same kinds as ``train``, optional
        Evaluated after every epoch. A validation *generator* with
        ``validation_steps`` gives fresh batches each epoch (as Keras 2 did),
        not the same first ones (as Keras 3's ``fit`` does).
    callbacks : list of keras.callbacks.Callback, optional
    verbose : int
        0 silent, 1 progress bar (as ``fit``).
    meter : fitlab.InputMeter, optional
        Adds the time the loop waited for each next training batch.
    batch_size : int, optional
        Rows per batch for ``(x, y)`` arrays, training or validation (default
        32, as ``fit``); an error when neither is arrays.

    Returns
    -------
    keras.callbacks.History
        Also set as ``model.history``.

    Examples
    --------
    >>> import numpy as np
    >>> keras.utils.set_random_seed(1)
    >>> model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, "softmax")])
    >>> model.compile(optimizer="sgd", loss="categorical_crossentropy", metrics=["accuracy"])
    >>> x, y = np.ones((10, 3), "float32"), np.eye(2, dtype="float32")[[0, 1] * 5]
    >>> history = train_on_batches(model, (x, y), epochs=2, batch_size=4,
    ...                            validation_data=(x, y), verbose=0)
    >>> sorted(history.history)
    ['accuracy', 'loss', 'val_accuracy', 'val_loss']
    """
    if getattr(model, "optimizer", None) is None:
        raise ValueError("train_on_batches needs a compiled model: call model.compile(...) first")
    check_batch_size(train, validation_data, batch_size)
    for source in (train, validation_data):
        if is_sequence(source):
            warn_pydataset_workers(source)
    stream = BatchStream(
        train,
        steps_per_epoch,
        batch_size=arrays_batch_size(train, batch_size),
        role="training data",
    )
    validation = None
    if validation_data is not None:
        validation = BatchStream(
            validation_data,
            validation_steps,
            role="validation data",
            batch_size=arrays_batch_size(validation_data, batch_size),
        )
    return run_epochs(
        model,
        OnBatchSteps(model),
        stream,
        epochs=epochs,
        initial_epoch=initial_epoch,
        validation=validation,
        callbacks=callbacks,
        verbose=verbose,
        meter=meter,
    )
