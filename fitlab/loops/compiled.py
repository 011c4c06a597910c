"""The GPU loop: one compiled training step, on TensorFlow or on JAX.

``fit`` compiles its step for you; :class:`CompiledLoop` shows what that step
is, and adds what a GPU needs to be fed and used well. The step depends on
the Keras backend (``KERAS_BACKEND``); everything around it is written once,
here:

* on **TensorFlow** (:mod:`fitlab.loops.compiled_tf`): a ``tf.GradientTape``
  step inside ``tf.function`` (XLA on request), fed by a ``tf.data`` pipeline
  prefetched onto the device, ``mixed_float16`` with loss scaling on a GPU,
  and ``tf.distribute`` strategies;
* on **JAX** (:mod:`fitlab.loops.compiled_jax`): a pure function of the
  whole training state — ``model.stateless_call``, ``jax.value_and_grad``,
  ``optimizer.stateless_apply``, metrics by ``stateless_update_state`` —
  compiled once by ``jax.jit`` with the state's buffers donated, fed by a
  thread that copies the next batch to the device while the current one
  trains, ``mixed_bfloat16`` on a GPU.

Both compute the loss alike (:mod:`fitlab.loops.step`); batches come from
:class:`fitlab.engine.BatchStream`, and epochs, callbacks and validation from
:func:`fitlab.engine.run_epochs`, as for :func:`fitlab.train_on_batches`: the
same ``History``, the same callbacks, ``stop_training`` honoured.

Examples
--------
>>> CompiledLoop.__name__
'CompiledLoop'
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import keras

from fitlab.engine import arrays_batch_size, run_epochs
from fitlab.engine.adapters import check_batch_size
from fitlab.loops.step import per_example_loss, use_mixed_policy
from fitlab.pipelines import InputMeter


class CompiledLoop:
    """Train a Keras model with a compiled step, on TensorFlow or JAX.

    Parameters
    ----------
    model : keras.Model
        Built (MiniVGGNet.build returns a built model). With a strategy, build
        it inside ``with strategy.scope():`` so its variables are mirrored.
    optimizer : keras.optimizers.Optimizer
        Wrapped in a ``LossScaleOptimizer`` under ``mixed_float16``.
    loss : str or keras.losses.Loss
        As for ``model.compile``.
    metrics : sequence
        As for ``model.compile``; ``"accuracy"`` picks categorical, sparse or
        binary accuracy from the labels, as ``compile`` does.
    jit_compile : "auto", True or False
        Compile the step with XLA. ``"auto"``: off on TensorFlow (on a CPU XLA
        made the MiniVGGNet step about 5× slower, see
        ``docs/measurements.md``), on for JAX, which always compiles with
        XLA (``False`` is refused there).
    strategy : tf.distribute.Strategy, optional
        TensorFlow only. Default: no distribution (the current default strategy).
    mixed_precision : "auto", True or False
        ``"auto"``: on when the backend sees a GPU. On: the model's layers
        compute in ``mixed_float16`` (TensorFlow, with loss scaling) or
        ``mixed_bfloat16`` (JAX: bfloat16 has float32's range, so no loss
        scaling), except its output layers, which stay float32 so the softmax
        and the loss keep full precision.

    Attributes
    ----------
    model : keras.Model
        Compiled with ``optimizer``, ``loss`` and ``metrics``, so that
        ``model.evaluate``, ``model.save`` (with optimizer state) and
        ``ModelCheckpoint`` work as after ``fit``.
    backend : str
        ``"tensorflow"`` or ``"jax"``: whose step trains.
    images_per_second : float or None
        Training images per second over the last ``fit`` (training batches
        only: no validation, no first-step tracing).
    mixed_precision : bool
        Whether mixed precision is on.

    Examples
    --------
    >>> import numpy as np
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

    On the real data, ``loop.fit(fitlab.CSVSequence(train_csv, 32), epochs=75)``
    (either backend) or ``loop.fit(fitlab.csv_dataset(train_csv, 32), epochs=75)``
    (TensorFlow).
    """

    def __init__(
        self,
        model: keras.Model,
        optimizer: keras.optimizers.Optimizer,
        loss: Any,
        metrics: Sequence[Any] = ("accuracy",),
        *,
        jit_compile: bool | str = "auto",
        strategy: Any = None,
        mixed_precision: bool | str = "auto",
    ) -> None:
        for name, value in (("mixed_precision", mixed_precision), ("jit_compile", jit_compile)):
            if value not in ("auto", True, False):
                raise ValueError(f'{name} must be "auto", True or False, not {value!r}')
        if not model.built:
            raise ValueError("CompiledLoop needs a built model (call it once, or build it)")
        self.model = model
        self.backend = keras.backend.backend()
        self._step = _backend_step(self.backend)(model, strategy=strategy, jit_compile=jit_compile)
        self.jit_compile = self._step.jit_compile
        self.strategy = self._step.strategy
        self.mixed_precision = (
            self._step.gpu_present() if mixed_precision == "auto" else mixed_precision
        )
        self.images_per_second: float | None = None
        if self.mixed_precision:
            use_mixed_policy(model, self._step.mixed_policy)
            optimizer = self._step.prepare_optimizer(optimizer)
        with self._step.scope():
            # Compiled for what users do after training (evaluate, save with the
            # optimizer state, checkpoints); training uses the backend's step.
            model.compile(optimizer=optimizer, loss=loss, metrics=list(metrics), jit_compile=False)
            optimizer.build(model.trainable_variables)
            loss_tracker = keras.metrics.Mean(name="loss")
        self._step.set_up(loss_tracker, per_example_loss(loss))

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
        ``batch_size`` rows, default 32, in order), a ``PyDataset`` or a
        generator (with :class:`fitlab.engine.BatchStream`'s rules: a
        generator needs ``steps_per_epoch`` and keeps its position between
        epochs) and, on TensorFlow, a ``tf.data.Dataset`` of batches (used as
        is: shuffle and repeat it yourself). A batch is the *global* batch:
        with a strategy each replica gets its share.

        Sets :attr:`images_per_second`.

        Examples
        --------
        >>> import numpy as np
        >>> keras.utils.set_random_seed(0)
        >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(2, "softmax")])
        >>> loop = CompiledLoop(model, keras.optimizers.SGD(0.1), "categorical_crossentropy")
        >>> x, y = np.ones((8, 2), "float32"), np.eye(2, dtype="float32")[[0, 1] * 4]
        >>> loop.fit((x, y), epochs=1, batch_size=4, validation_data=(x, y),
        ...          verbose=0).history["val_loss"][0] > 0
        True
        """
        check_batch_size(train, validation_data, batch_size)
        train_stream = self._step.stream(
            train, steps_per_epoch, arrays_batch_size(train, batch_size), "training data"
        )
        validation = None
        if validation_data is not None:
            validation = self._step.stream(
                validation_data,
                validation_steps,
                arrays_batch_size(validation_data, batch_size),
                "validation data",
            )
        steps = _TimedSteps(self._step)
        try:
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
        finally:  # also when stopped (an error, Ctrl-C): the model keeps its last weights
            self._step.write_back()
        self.images_per_second = steps.images_per_second()
        return history


def _backend_step(backend: str):
    """The class of the compiled step for ``backend``, imported only when used."""
    if backend == "tensorflow":
        from fitlab.loops.compiled_tf import TensorFlowStep

        return TensorFlowStep
    if backend == "jax":
        from fitlab.loops.compiled_jax import JaxStep

        return JaxStep
    raise ValueError(
        f"CompiledLoop has a step for TensorFlow and for JAX, not for Keras's {backend!r} "
        "backend; set KERAS_BACKEND=tensorflow or jax (or train with fit or train_on_batches)"
    )


class _TimedSteps:
    """:class:`fitlab.engine.Steps` over a backend's compiled step, with a stopwatch.

    The step returns device values and nothing waits for them until the epoch
    ends (or a callback reads them), so the device can run ahead of Python as
    in ``fit``. The clock runs over training batches only; the very first
    batch (tracing and compiling) is left out.
    """

    def __init__(self, step) -> None:
        self.step = step
        self._images = 0
        self._seconds = 0.0
        self._started: float | None = None
        self._traced = False

    def reset(self) -> None:
        self.step.reset()

    def train(self, batch) -> dict:
        if not self._traced:
            logs = self.step.train(batch)
            self.step.wait()  # the first step traces and compiles: keep it off the clock
            self._traced = True
            return logs
        if self._started is None:
            self._started = time.perf_counter()
        self._images += self.step.rows(batch)
        return self.step.train(batch)

    def test(self, batch) -> dict:
        self._stop_clock()
        return self.step.test(batch)

    def result(self) -> dict[str, float]:
        self._stop_clock()
        return self.step.result()

    def _stop_clock(self) -> None:
        if self._started is not None:
            self.step.wait()  # let the device catch up first
            self._seconds += time.perf_counter() - self._started
            self._started = None

    def images_per_second(self) -> float | None:
        self._stop_clock()
        return self._images / self._seconds if self._seconds > 0 and self._images else None
