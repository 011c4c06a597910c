"""Keras 2's ``fit_generator``, ``evaluate_generator`` and ``predict_generator``.

Each reads its data through :class:`fitlab.compat.feeders.Source` (Keras 2's
feeders over :class:`fitlab.engine.BatchStream`) and runs one batch at a time
through :class:`fitlab.compat.batch_rules.Keras2Steps` (``train_on_batch``, as
:func:`fitlab.train_on_batches` does); ``fit_generator``'s epochs are
:func:`fitlab.engine.run_epochs`, ``fit``'s epoch loop written out.
:func:`enable_legacy_methods` puts the three on ``keras.Model``.
"""

from __future__ import annotations

import contextlib
import functools
import warnings
from collections.abc import Callable, Mapping
from typing import Any

import keras
import numpy as np

from fitlab.compat._stack import caller_stacklevel
from fitlab.compat.batch_rules import Keras2Steps, normalize_class_weight, prediction_inputs
from fitlab.compat.feeders import Source
from fitlab.compat.keras2 import legacy_history
from fitlab.engine import run_epochs

_MODERN_CALL = {
    "fit_generator": "model.fit(data, epochs=..., steps_per_epoch=..., validation_data=...)",
    "evaluate_generator": "model.evaluate(data, steps=...)",
    "predict_generator": "model.predict(data, steps=...)",
}
_warned: set[str] = set()


def _warn_deprecated(name: str) -> None:
    """Warn once per process per function, pointing at the user's call."""
    if name in _warned:
        return
    _warned.add(name)
    warnings.warn(
        f"{name} was deprecated in Keras 2 and removed in Keras 3; call "
        f"{_MODERN_CALL[name]} on a keras.utils.PyDataset (e.g. fitlab.CSVSequence) or a "
        f"tf.data.Dataset (e.g. fitlab.csv_dataset) instead. fitlab.compat.{name} keeps "
        "Keras 2's meaning so that old scripts run unchanged.",
        DeprecationWarning,
        stacklevel=caller_stacklevel(),
    )


def _check_common(model: keras.Model, workers: int, max_queue_size: int, name: str) -> None:
    if not isinstance(model, keras.Model):
        raise TypeError(f"{name} needs a keras.Model, got {type(model).__name__}")
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 0:
        raise ValueError(f"workers must be an int >= 0, got {workers!r}")
    if not isinstance(max_queue_size, int):
        raise TypeError(f"max_queue_size must be an int, got {max_queue_size!r}")


def _check_compiled(model: keras.Model, name: str) -> None:
    if not getattr(model, "compiled", False):
        raise ValueError(f"{name} needs a compiled model: call model.compile(...) first")


def fit_generator(
    model: keras.Model,
    generator: Any,
    steps_per_epoch: int | None = None,
    epochs: int = 1,
    verbose: int | str = 1,
    callbacks: list[keras.callbacks.Callback] | None = None,
    validation_data: Any = None,
    validation_steps: int | None = None,
    class_weight: Mapping[int, float] | None = None,
    max_queue_size: int = 10,
    workers: int = 1,
    use_multiprocessing: bool = False,
    shuffle: bool = True,
    initial_epoch: int = 0,
) -> keras.callbacks.History:
    """Keras 2's ``model.fit_generator``, on a Keras 3 model.

    Parameters
    ----------
    model : keras.Model
        Compiled.
    generator : generator / iterator, or keras.utils.PyDataset / Sequence
        Yields ``(inputs, targets)`` or ``(inputs, targets, sample_weights)``;
        inputs and targets may be dicts keyed by input / output layer name.
        A generator must keep yielding (``while True``): epoch ``e`` trains on
        its next ``steps_per_epoch`` batches, never restarting it. If it runs
        dry, training stops after the epoch in progress with a warning (as
        ``tf_keras`` 2.21; an epoch that got no batch at all is not recorded,
        where ``tf_keras`` records one full of zeros).
    steps_per_epoch : int, optional
        Batches per epoch. Required for a generator (as Keras 2.2 required it).
        For a sequence it defaults to ``len(sequence)``; every epoch starts a
        fresh pass and takes its first ``steps_per_epoch`` items, and a value
        above ``len`` trains one pass and then stops with a warning (both as
        ``tf_keras`` 2.21; Keras 2.2 wrapped around instead).
    epochs, initial_epoch : int
        Trains epochs ``initial_epoch … epochs - 1``: ``epochs`` is the index to
        stop at, not a count, and callbacks and ``History.epoch`` see those
        numbers.
    verbose : int
        0 silent, 1 progress bar, 2 one line per epoch.
    callbacks : list of keras.callbacks.Callback, optional
        Called as ``fit`` calls them, validation included (``on_test_*``).
    validation_data : generator, sequence, (x, y) or (x, y, sample_weights)
        Evaluated after every epoch. A generator gives its *next*
        ``validation_steps`` batches each epoch -- fresh batches, as Keras 2
        drew them (Keras 3's ``fit`` re-validates on the same first batches).
        If it runs dry, that epoch is validated on the batches it had and later
        epochs are not validated (no ``val_*`` for them), as ``tf_keras`` 2.21.
        A sequence is read from index 0 each epoch (``validation_steps``
        items, default its length, never shuffled). Arrays are evaluated in
        batches of 32.
    validation_steps : int, optional
        Required for a validation generator (as Keras 2.2).
    class_weight : dict, optional
        ``{class index: weight}``, applied to the training batches as sample
        weights (class = ``argmax`` of one-hot targets, or the integer label),
        *multiplied* by any sample weights the batch brings -- ``tf_keras``
        2.21's rule (its generator path crashes on that combination; Keras 2.2
        ignored ``class_weight`` when sample weights were given). Keras 3's
        ``fit`` refuses ``class_weight`` for generators. Single-output models.
    max_queue_size : int
        Batches kept ready ahead of training (``workers > 0``).
    workers : int
        ``0``: the generator runs on this thread, one batch when needed (the
        2018 documentation's meaning; ``tf_keras`` 2.21 rejects ``workers=0``).
        ``> 0``: it runs on a background thread while the model trains (one
        thread for a generator, ``workers`` threads or processes computing
        items of a sequence).
    use_multiprocessing : bool
        With a sequence and ``workers > 0``: forked worker processes (a new pool
        each epoch). A generator is run on a thread instead, with a warning:
        Keras 2 copied it into each process, so batches repeated.
    shuffle : bool
        Reorder a sequence's items each epoch (Python's ``random.shuffle``, as
        Keras 2). Generators are never shuffled.

    Returns
    -------
    keras.callbacks.History
        ``history.history`` has ``fit``'s keys (``loss``, ``accuracy``,
        ``val_loss``, …) and also answers 2018 code that asks for ``"acc"`` /
        ``"val_acc"`` (see :func:`legacy_history`). Each value is the mean of
        the epoch's batch values weighted by their rows, as
        :func:`fitlab.train_on_batches` reports it: ``fit``'s numbers for the
        loss and for ``metrics`` that are means over rows (``accuracy``).

    Warns
    -----
    DeprecationWarning
        Once per process, naming the Keras 3 call to use instead.

    Examples
    --------
    >>> import numpy as np
    >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(2, "softmax")])
    >>> model.compile("sgd", "categorical_crossentropy", metrics=["accuracy"])
    >>> def batches():  # a 2018 generator: it never ends
    ...     while True:
    ...         yield np.ones((4, 2), "float32"), np.eye(2, dtype="float32")[[0, 1, 0, 1]]
    >>> H = fit_generator(model, batches(), steps_per_epoch=3, epochs=2, verbose=0)
    >>> H.epoch, len(H.history["acc"])  # "acc" finds Keras 3's "accuracy"
    ([0, 1], 2)
    """
    _warn_deprecated("fit_generator")
    _check_common(model, workers, max_queue_size, "fit_generator")
    _check_compiled(model, "fit_generator")
    class_weight = normalize_class_weight(class_weight)
    options = dict(workers=workers, use_multiprocessing=use_multiprocessing)
    options["max_queue_size"] = max_queue_size
    if isinstance(validation_data, list):  # Keras 2 took [x, y] as it took (x, y)
        validation_data = tuple(validation_data)
    with contextlib.ExitStack() as opened:  # closes what was opened, also when a later one fails
        train = opened.enter_context(
            Source(generator, steps_per_epoch, role="training data", shuffle=shuffle, **options)
        )
        validation = None
        if validation_data is not None:
            validation = opened.enter_context(
                Source(
                    validation_data,
                    validation_steps,
                    role="validation data",
                    steps_name="validation_steps",
                    **options,
                )
            )
        history = run_epochs(
            model,
            Keras2Steps(model, class_weight),
            train.stream,
            epochs=epochs,
            initial_epoch=initial_epoch,
            validation=None if validation is None else validation.stream,
            callbacks=callbacks,
            verbose=verbose,
        )
    return legacy_history(history)


def evaluate_generator(
    model: keras.Model,
    generator: Any,
    steps: int | None = None,
    callbacks: list[keras.callbacks.Callback] | None = None,
    max_queue_size: int = 10,
    workers: int = 1,
    use_multiprocessing: bool = False,
    verbose: int = 0,
) -> float | list[float]:
    """Keras 2's ``model.evaluate_generator``: loss (and metrics) over ``steps`` batches.

    ``steps`` is required for a generator and defaults to ``len`` for a
    sequence. A generator that runs dry early ends the evaluation with a
    warning; the result covers the batches it gave (as ``tf_keras`` 2.21).
    ``workers`` and ``use_multiprocessing`` as in :func:`fit_generator`.

    Returns
    -------
    float or list of float
        The loss alone when the model has no metrics, else ``[loss, metric, …]``
        in ``model.metrics_names`` order (Keras 2's return), each the mean of
        the batch values weighted by their rows.

    Examples
    --------
    >>> import numpy as np
    >>> model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    >>> model.compile("sgd", "mse", metrics=["mae"])
    >>> model.set_weights([np.zeros((1, 1)), np.zeros(1)])  # predicts 0
    >>> batches = ((np.zeros((2, 1)), np.full(2, 3.0)) for _ in range(4))
    >>> evaluate_generator(model, batches, steps=4)  # [mse, mae]
    [9.0, 3.0]
    """
    _warn_deprecated("evaluate_generator")
    _check_common(model, workers, max_queue_size, "evaluate_generator")
    _check_compiled(model, "evaluate_generator")
    steps_run = Keras2Steps(model, role="evaluate_generator", test_role="evaluate_generator")
    with _single_pass(
        model, generator, steps, "evaluation data", callbacks, verbose,
        workers=workers, use_multiprocessing=use_multiprocessing, max_queue_size=max_queue_size,
    ) as (stream, callbacks):  # fmt: skip
        callbacks.on_test_begin()
        for step, batch in enumerate(stream.epoch()):
            callbacks.on_test_batch_begin(step)
            callbacks.on_test_batch_end(step, steps_run.test(batch))
        logs = steps_run.result()
        callbacks.on_test_end(logs)
    if stream.ran_out:
        warnings.warn(
            f"evaluation data ran out after fewer than steps={steps} batches; "
            "the result covers the batches it gave",
            stacklevel=caller_stacklevel(),
        )
    if not logs:
        raise ValueError("evaluate_generator: the generator yielded no batches")
    return _in_metrics_order(model, logs)


@contextlib.contextmanager
def _single_pass(model, generator, steps, role, callbacks, verbose, **loading):
    """The stream and callbacks of one pass (evaluate_generator, predict_generator)."""
    with Source(generator, steps, role=role, steps_name="steps", **loading) as source:
        callbacks = keras.callbacks.CallbackList(
            callbacks, add_progbar=verbose != 0, verbose=verbose, epochs=1,
            steps=source.stream.num_batches, model=model,
        )  # fmt: skip
        yield source.stream, callbacks


def _in_metrics_order(model: keras.Model, logs: dict[str, float]) -> float | list[float]:
    """Keras 2's ``evaluate`` return: ``loss`` first, then metrics in compile order."""
    names: list[str] = []
    for metric in model.metrics:
        inner = getattr(metric, "metrics", None)  # Keras 3 groups compiled metrics
        names.extend(m.name for m in inner) if inner is not None else names.append(metric.name)
    ordered = [logs[n] for n in names if n in logs]
    ordered += [logs[n] for n in sorted(logs) if n not in names]
    return ordered[0] if len(ordered) == 1 else ordered


def predict_generator(
    model: keras.Model,
    generator: Any,
    steps: int | None = None,
    callbacks: list[keras.callbacks.Callback] | None = None,
    max_queue_size: int = 10,
    workers: int = 1,
    use_multiprocessing: bool = False,
    verbose: int = 0,
) -> Any:
    """Keras 2's ``model.predict_generator``: one prediction per input row of ``steps`` batches.

    Each batch may be ``x`` (an array, a list of arrays for a multi-input model,
    or a dict), or a tuple ``(x,)``, ``(x, y)``, ``(x, y, w)`` whose targets are
    ignored. ``steps`` is required for a generator (default ``len`` for a
    sequence); a generator that runs dry early ends prediction with a warning,
    returning the rows it gave (as ``tf_keras`` 2.21). Nothing is dropped or
    padded: step ``i``'s rows follow step ``i-1``'s.

    Returns
    -------
    numpy.ndarray, or a list / dict of them for a multi-output model

    Examples
    --------
    >>> import numpy as np
    >>> model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    >>> batches = (np.ones((rows, 3)) for rows in (4, 4, 1))  # the last one short
    >>> predict_generator(model, batches, steps=3).shape
    (9, 2)
    """
    _warn_deprecated("predict_generator")
    _check_common(model, workers, max_queue_size, "predict_generator")
    outputs = []
    with _single_pass(
        model, generator, steps, "prediction data", callbacks, verbose,
        workers=workers, use_multiprocessing=use_multiprocessing, max_queue_size=max_queue_size,
    ) as (stream, callbacks):  # fmt: skip
        callbacks.on_predict_begin()
        for step, batch in enumerate(stream.epoch()):
            callbacks.on_predict_batch_begin(step)
            outputs.append(model.predict_on_batch(prediction_inputs(batch)))
            callbacks.on_predict_batch_end(step, {"outputs": outputs[-1]})
        callbacks.on_predict_end()
    if stream.ran_out:
        warnings.warn(
            f"prediction data ran out after {len(outputs)} of steps={steps} batches; "
            "returning the predictions for those",
            stacklevel=caller_stacklevel(),
        )
    if not outputs:
        raise ValueError("predict_generator: the generator yielded no batches")
    return keras.tree.map_structure(lambda *parts: np.concatenate(parts), *outputs)


def _as_method(function: Callable) -> Callable:
    @functools.wraps(function)
    def method(self, *args, **kwargs):
        return function(self, *args, **kwargs)

    method.__doc__ = f"fitlab.compat.{function.__name__} as a method (see there).\n\n" + (
        function.__doc__ or ""
    )
    return method


_LEGACY_METHODS: dict[str, Callable] = {
    "fit_generator": fit_generator,
    "evaluate_generator": evaluate_generator,
    "predict_generator": predict_generator,
}


def enable_legacy_methods() -> None:
    """Put ``fit_generator``, ``evaluate_generator``, ``predict_generator`` on ``keras.Model``.

    Opt-in and global for the process (every model, Sequential and functional
    included), so ``model.fit_generator(...)`` code runs unchanged. Calling it
    again is harmless.

    Examples
    --------
    >>> import numpy as np
    >>> enable_legacy_methods()
    >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    >>> model.predict_generator(iter([np.ones((3, 2))]), steps=1).shape
    (3, 1)
    """
    for name, function in _LEGACY_METHODS.items():
        setattr(keras.Model, name, _as_method(function))
