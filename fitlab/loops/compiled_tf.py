"""The GPU loop: a ``tf.GradientTape`` training step compiled with ``tf.function``.

``fit`` compiles its step for you; :class:`CompiledLoop` shows what that step
is, and adds what a GPU needs to be fed and used well:

* the step (forward pass, loss, gradients, optimizer update, metrics) runs as
  one ``tf.function`` graph, optionally compiled by XLA (``jit_compile``);
* input is a ``tf.data`` pipeline prefetched onto the device, so the next
  batch is copied while the current one trains;
* mixed precision (``mixed_float16``: float16 compute, float32 weights, a
  ``LossScaleOptimizer`` so small float16 gradients do not vanish) when a
  GPU is present;
* a ``tf.distribute`` strategy (``MirroredStrategy`` and friends) splits each
  global batch across the replicas; each replica's loss is divided by the
  *global* batch size, so the summed gradients equal one big batch's.

Batches come from :class:`fitlab.engine.BatchStream`, and epochs, callbacks and
validation from :func:`fitlab.engine.run_epochs`, as for
:func:`fitlab.train_on_batches`: the same ``History``, the same
callbacks, ``stop_training`` honoured.

This module is TensorFlow by nature (``GradientTape``, ``tf.data``,
``tf.distribute``) and imports it.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from fitlab.engine import BatchStream, arrays_batch_size, run_epochs, source_length
from fitlab.engine.adapters import check_batch_size
from fitlab.pipelines import InputMeter, rows_in


class CompiledLoop:
    """Train a Keras model with a compiled ``GradientTape`` step.

    Parameters
    ----------
    model : keras.Model
        Built (MiniVGGNet.build returns a built model). With a strategy, build
        it inside ``with strategy.scope():`` so its variables are mirrored.
    optimizer : keras.optimizers.Optimizer
        Wrapped in a ``LossScaleOptimizer`` when mixed precision is on.
    loss : str or keras.losses.Loss
        As for ``model.compile``.
    metrics : sequence
        As for ``model.compile``; ``"accuracy"`` picks categorical, sparse or
        binary accuracy from the labels, as ``compile`` does.
    jit_compile : bool
        Compile the step with XLA. Worth it on accelerators; on a CPU XLA made
        the MiniVGGNet step about 5× slower (see ``docs/measurements.md``).
    strategy : tf.distribute.Strategy, optional
        Default: no distribution (the current default strategy).
    mixed_precision : "auto", True or False
        ``"auto"``: on when TensorFlow sees a GPU. On: the model's layers are
        switched in place to the ``mixed_float16`` policy, except its output
        layers, which stay float32 so the softmax and the loss keep full
        precision.

    Attributes
    ----------
    model : keras.Model
        Compiled with ``optimizer``, ``loss`` and ``metrics``, so that
        ``model.evaluate``, ``model.save`` (with optimizer state) and
        ``ModelCheckpoint`` work as after ``fit``.
    images_per_second : float or None
        Training images per second over the last ``fit`` (training batches
        only: no validation, no first-step tracing).
    mixed_precision : bool
        Whether mixed precision is on.

    Examples
    --------
    >>> keras.utils.set_random_seed(0)
    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, "softmax")])
    >>> loop = CompiledLoop(model, keras.optimizers.SGD(0.1), "categorical_crossentropy")
    >>> x = np.random.default_rng(0).normal(size=(64, 4)).astype("float32")
    >>> y = keras.utils.to_categorical(np.arange(64) % 3, 3)
    >>> history = loop.fit((x, y), epochs=2, batch_size=16, verbose=0)
    >>> sorted(history.history), len(history.epoch)
    (['accuracy', 'loss'], 2)
    >>> loop.images_per_second > 0
    True

    On the real data, ``loop.fit(fitlab.csv_dataset(train_csv, 32), epochs=75)``.
    """

    def __init__(
        self,
        model: keras.Model,
        optimizer: keras.optimizers.Optimizer,
        loss: Any,
        metrics: Sequence[Any] = ("accuracy",),
        *,
        jit_compile: bool = False,
        strategy: tf.distribute.Strategy | None = None,
        mixed_precision: bool | str = "auto",
    ) -> None:
        if mixed_precision not in ("auto", True, False):
            raise ValueError(
                f'mixed_precision must be "auto", True or False, not {mixed_precision!r}'
            )
        self.model = model
        # Distribute when given a strategy or built inside one's scope.
        self._distributed = strategy is not None or tf.distribute.has_strategy()
        self.strategy = strategy or tf.distribute.get_strategy()
        self.jit_compile = bool(jit_compile)
        self.mixed_precision = _gpu_present() if mixed_precision == "auto" else mixed_precision
        self.images_per_second: float | None = None
        if not model.built:
            raise ValueError("CompiledLoop needs a built model (call it once, or build it)")
        if strategy is not None:
            _check_variables_in_scope(model, strategy)
        if self.mixed_precision:
            _use_mixed_float16(model)
            if not isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
                with self.strategy.scope():
                    optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
        with self.strategy.scope():
            # Compiled for what users do after training (evaluate, save with the
            # optimizer state, checkpoints); training uses the step below.
            model.compile(optimizer=optimizer, loss=loss, metrics=list(metrics), jit_compile=False)
            optimizer.build(model.trainable_variables)
            self._loss_tracker = keras.metrics.Mean(name="loss")
        self._per_example_loss = _unreduced(loss)
        self._metrics_built = False
        self._train_function = self._test_function = None

    # ----------------------------------------------------------------- steps

    def _replica_train_step(self, x, y, sample_weight, global_rows):
        """One replica's share of a training step."""
        model, optimizer = self.model, self.model.optimizer
        with tf.GradientTape() as tape:
            y_pred = model(x, training=True)
            loss, local_mean = self._loss(y, y_pred, sample_weight, global_rows)
            scaled = optimizer.scale_loss(loss)  # × the loss scale under mixed precision
        gradients = tape.gradient(scaled, model.trainable_variables)
        # Sums the replicas' gradients, unscales, skips the update on inf/nan.
        optimizer.apply_gradients(zip(gradients, model.trainable_variables, strict=True))
        return self._update_metrics(x, y, y_pred, sample_weight, local_mean)

    def _replica_test_step(self, x, y, sample_weight, global_rows):
        y_pred = self.model(x, training=False)
        _, local_mean = self._loss(y, y_pred, sample_weight, global_rows)
        return self._update_metrics(x, y, y_pred, sample_weight, local_mean)

    def _loss(self, y, y_pred, sample_weight, global_rows):
        """(loss to differentiate, this replica's mean loss for the log).

        The loss is this replica's sum divided by the *global* batch size:
        summed over replicas (as the optimizer sums gradients), that is the
        mean over the whole batch. With one replica it is ``compile``'s
        ``sum_over_batch_size`` loss, op for op.
        """
        per_example = self._per_example_loss(y, y_pred, sample_weight)
        total = ops.sum(per_example)
        local_size = ops.cast(ops.size(per_example), total.dtype)
        rows = ops.cast(ops.shape(per_example)[0], total.dtype)
        global_size = ops.cast(global_rows, total.dtype) * ops.divide_no_nan(local_size, rows)
        loss = ops.divide_no_nan(total, global_size)
        local_mean = ops.divide_no_nan(total, local_size)
        if self.model.losses:  # regularizers: counted once, however many replicas
            extra = ops.sum(self.model.losses)
            loss = loss + extra / self.strategy.num_replicas_in_sync
            local_mean = local_mean + extra
        return loss, local_mean

    def _update_metrics(self, x, y, y_pred, sample_weight, local_mean):
        self._loss_tracker.update_state(local_mean, sample_weight=ops.shape(y_pred)[0])
        self.model.compute_metrics(x, y, y_pred, sample_weight=sample_weight)

    def _make_function(self, replica_step):
        """Wrap a replica step: one ``tf.function`` that runs it on every replica."""
        strategy = self.strategy
        step = tf.function(replica_step, jit_compile=self.jit_compile, autograph=False)

        def distributed_step(batch):
            x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(batch)
            first = tf.nest.flatten(x)[0]
            # The global batch: the replicas' rows added up (a last batch may be short).
            global_rows = tf.add_n(
                [tf.shape(part)[0] for part in strategy.experimental_local_results(first)]
            )
            strategy.run(step, args=(x, y, sample_weight, global_rows))
            return self._results()

        return tf.function(distributed_step, reduce_retracing=True)

    def _results(self) -> dict:
        results = {"loss": self._loss_tracker.result()}
        for name, value in self.model.get_metrics_result().items():
            if name != "loss":  # the model's own loss tracker is not used here
                results[name] = value
        return results

    # ----------------------------------------------------------------- fit

    def fit(
        self,
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
        """Train; same arguments and result as :func:`fitlab.train_on_batches`.

        ``train`` and ``validation_data`` may be ``(x, y)`` arrays (cut into
        ``batch_size`` rows, default 32, in order), a ``tf.data.Dataset`` of
        batches (used as is: shuffle and repeat it yourself), a
        ``PyDataset`` or a generator (read through ``tf.data.Dataset.from_generator``,
        with :class:`fitlab.engine.BatchStream`'s rules: a generator needs
        ``steps_per_epoch`` and keeps its position between epochs). A batch
        is the *global* batch: with a strategy each replica gets its share.

        Sets :attr:`images_per_second`.

        Examples
        --------
        >>> keras.utils.set_random_seed(0)
        >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(2, "softmax")])
        >>> loop = CompiledLoop(model, keras.optimizers.SGD(0.1), "categorical_crossentropy")
        >>> x, y = np.ones((8, 2), "float32"), np.eye(2, dtype="float32")[[0, 1] * 4]
        >>> loop.fit((x, y), epochs=1, batch_size=4, validation_data=(x, y),
        ...          verbose=0).history["val_loss"][0] > 0
        True
        """
        check_batch_size(train, validation_data, batch_size)
        train_stream = self._device_stream(
            train, steps_per_epoch, arrays_batch_size(train, batch_size), "training data"
        )
        validation = None
        if validation_data is not None:
            validation = self._device_stream(
                validation_data,
                validation_steps,
                arrays_batch_size(validation_data, batch_size),
                "validation data",
            )
        self._build_metrics(train_stream.element_spec)
        if self._train_function is None:
            self._train_function = self._make_function(self._replica_train_step)
            self._test_function = self._make_function(self._replica_test_step)
        steps = _TimedSteps(self)
        history = run_epochs(
            self.model,
            steps,
            train_stream,
            epochs=epochs,
            initial_epoch=initial_epoch,
            validation=validation,
            callbacks=callbacks,
            verbose=verbose,
            meter=meter,
        )
        self.images_per_second = steps.images_per_second()
        return history

    def _device_stream(self, source, steps, batch_size, role) -> _DeviceStream:
        dataset, inner = _as_dataset(source, steps, batch_size, role)
        dataset = dataset.prefetch(tf.data.AUTOTUNE)
        if self._distributed:
            batches = self.strategy.experimental_distribute_dataset(dataset)
        else:
            gpus = tf.config.list_logical_devices("GPU")
            batches = (
                dataset.apply(tf.data.experimental.prefetch_to_device(gpus[0].name))
                if gpus
                else dataset
            )
        if inner is not None:  # a Python source: each pass of the dataset is one epoch
            outer = BatchStream.from_passes(lambda: iter(batches), inner.num_batches, None, role)
        else:
            outer = BatchStream.from_passes(
                lambda: iter(batches), source_length(dataset), steps, role
            )
        return _DeviceStream(outer, inner, dataset.element_spec, self.strategy)

    def _build_metrics(self, element_spec) -> None:
        """Create the compiled metrics' variables now, in the strategy's scope.

        ``compile`` creates metric variables lazily, on the first batch; inside
        ``strategy.run`` that would be on a replica, where variables cannot be
        made. One eager pass on a dummy row does it up front.
        """
        if self._metrics_built:
            return
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(
            tf.nest.map_structure(_one_row, element_spec)
        )
        with self.strategy.scope():
            y_pred = self.model(x, training=False)
            self.model.compute_metrics(x, y, y_pred, sample_weight=sample_weight)
        self.model.reset_metrics()
        self._metrics_built = True


class _TimedSteps:
    """:class:`fitlab.engine.Steps` for :class:`CompiledLoop`, with a stopwatch.

    The step returns tensors and nothing waits for them until the epoch ends
    (or a callback reads them), so the device can run ahead of Python as in
    ``fit``. The clock runs over training batches only; the very first batch
    (tracing and graph building) is left out.
    """

    def __init__(self, loop: CompiledLoop) -> None:
        self.loop = loop
        self._images = 0
        self._seconds = 0.0
        self._started: float | None = None
        self._traced = False

    def reset(self) -> None:
        self.loop._loss_tracker.reset_state()
        self.loop.model.reset_metrics()

    def train(self, batch) -> dict:
        if not self._traced:
            logs = self.loop._train_function(batch)
            float(logs["loss"])  # wait until the first, traced step is done
            self._traced = True
            return logs
        if self._started is None:
            self._started = time.perf_counter()
        self._images += _global_rows(batch, self.loop.strategy)
        return self.loop._train_function(batch)

    def test(self, batch) -> dict:
        self._stop_clock()
        return self.loop._test_function(batch)

    def result(self) -> dict[str, float]:
        self._stop_clock()
        return {name: float(value) for name, value in self.loop._results().items()}

    def _stop_clock(self) -> None:
        if self._started is not None:
            float(self.loop._loss_tracker.result())  # let the device catch up first
            self._seconds += time.perf_counter() - self._started
            self._started = None

    def images_per_second(self) -> float | None:
        self._stop_clock()
        return self._images / self._seconds if self._seconds > 0 and self._images else None


class _DeviceStream:
    """A stream of device batches that remembers whether its Python source ran dry."""

    def __init__(self, outer: BatchStream, inner: BatchStream | None, element_spec, strategy):
        self._outer, self._inner, self._strategy = outer, inner, strategy
        self.element_spec = element_spec
        self.role, self.num_batches = outer.role, outer.num_batches

    @property
    def steps(self):
        return (self._inner or self._outer).steps

    @property
    def ran_out(self) -> bool:
        return (self._inner or self._outer).ran_out

    @ran_out.setter
    def ran_out(self, value: bool) -> None:
        (self._inner or self._outer).ran_out = value

    def epoch(self):
        return self._outer.epoch()

    def rows(self, batch) -> int:
        return _global_rows(batch, self._strategy)


# --------------------------------------------------------------------------- helpers


def _gpu_present() -> bool:
    return bool(tf.config.list_physical_devices("GPU"))


def _check_variables_in_scope(model: keras.Model, strategy) -> None:
    for variable in model.variables:
        if not strategy.extended.variable_created_in_scope(variable.value):
            raise ValueError(
                f"{model.name}'s variable {variable.path} was created outside "
                f"{type(strategy).__name__}.scope(); build the model inside "
                "`with strategy.scope():` and pass it to CompiledLoop"
            )


def _use_mixed_float16(model: keras.Model) -> None:
    """Compute in float16 everywhere except the model's output layers."""
    for layer in model.layers:
        if not isinstance(layer, keras.layers.InputLayer) and not _makes_an_output(layer, model):
            layer.dtype_policy = keras.mixed_precision.DTypePolicy("mixed_float16")


def _makes_an_output(layer, model: keras.Model) -> bool:
    try:
        made = keras.tree.flatten(layer.output)
    except (AttributeError, ValueError):  # a layer called more than once
        return False
    return any(t is out for t in made for out in keras.tree.flatten(model.outputs))


def _unreduced(loss):
    """A function (y_true, y_pred, sample_weight) -> loss per example, as compile's loss."""
    if isinstance(loss, keras.losses.Loss):
        config = {**loss.get_config(), "reduction": "none"}
        loss_object = type(loss).from_config(config)
    else:
        function = keras.losses.get(loss)
        if function is None:
            raise ValueError(f"unknown loss {loss!r}")
        if isinstance(function, keras.losses.Loss):
            loss_object = type(function).from_config({**function.get_config(), "reduction": "none"})
        else:
            loss_object = _PerExampleLoss(function)
    return loss_object


class _PerExampleLoss(keras.losses.Loss):
    """A loss function as a ``Loss`` that does not reduce (what ``compile`` wraps it in)."""

    def __init__(self, function):
        super().__init__(name=getattr(function, "__name__", "loss"), reduction="none")
        self.function = function

    def call(self, y_true, y_pred):
        return self.function(y_true, y_pred)


def _as_dataset(source, steps, batch_size, role):
    """(tf.data.Dataset of batches, BatchStream behind it for a Python source, else None)."""
    if isinstance(source, tf.data.Dataset):
        if batch_size is not None:
            raise ValueError(f"{role}: batch_size applies to (x, y) arrays, not a tf.data.Dataset")
        return source, None
    if isinstance(source, tuple):
        arrays = tuple(a for a in source if a is not None)
        BatchStream(source, steps, batch_size=batch_size, role=role)  # checks the arrays
        return tf.data.Dataset.from_tensor_slices(arrays).batch(batch_size or 32), None
    stream = BatchStream(source, steps, role=role)
    signature = tf.nest.map_structure(
        lambda a: tf.TensorSpec((None, *np.shape(a)[1:]), tf.as_dtype(np.asarray(a).dtype)),
        tuple(stream.peek()),
    )
    dataset = tf.data.Dataset.from_generator(
        lambda: (tuple(batch) for batch in stream.epoch()), output_signature=signature
    )
    return dataset, stream


def _one_row(spec):
    shape = [1 if d is None else d for d in spec.shape]
    return tf.zeros(shape, spec.dtype)


def _global_rows(batch, strategy) -> int:
    """Rows in a global batch: each replica's share, added up."""
    first = tf.nest.flatten(batch)[0]
    return sum(rows_in(part) for part in strategy.experimental_local_results(first))
