""":class:`fitlab.CompiledLoop`'s step on TensorFlow: a ``GradientTape`` inside ``tf.function``.

This module owns what is TensorFlow by nature in the compiled loop:

* the step (forward pass, loss, gradients, optimizer update, metrics) runs
  as one ``tf.function`` graph, optionally compiled by XLA (``jit_compile``);
* input is a ``tf.data`` pipeline prefetched onto the device, so the next
  batch is copied while the current one trains;
* mixed precision is ``mixed_float16`` with a ``LossScaleOptimizer``, so
  that small float16 gradients do not vanish;
* a ``tf.distribute`` strategy (``MirroredStrategy`` and friends) splits each
  global batch across the replicas; each replica's loss is divided by the
  *global* batch size (:func:`fitlab.loops.step.global_mean_loss`), so the
  summed gradients equal one big batch's.

Examples
--------
>>> TensorFlowStep.mixed_policy
'mixed_float16'
"""

from __future__ import annotations

import keras
import numpy as np

from fitlab.config import needs_tensorflow

try:
    import tensorflow as tf
except ImportError as error:  # on JAX without TensorFlow: say what needs it, in one line
    raise needs_tensorflow(
        "CompiledLoop's TensorFlow step (tf.function, tf.distribute)",
        instead="fitlab.CompiledLoop with KERAS_BACKEND=jax",
    ) from error

from fitlab.engine import BatchStream, source_length
from fitlab.loops.step import global_mean_loss
from fitlab.pipelines import rows_in


class TensorFlowStep:
    """One training and one test step of :class:`fitlab.CompiledLoop`, on TensorFlow.

    Parameters
    ----------
    model : keras.Model
        Built; with a strategy, built inside its scope.
    strategy : tf.distribute.Strategy, optional
        Default: the current strategy (none, or the one whose scope is open).
    jit_compile : "auto", True or False
        ``"auto"`` is off: on a CPU XLA slows this model down.
    """

    mixed_policy = "mixed_float16"

    def __init__(self, model: keras.Model, *, strategy=None, jit_compile="auto") -> None:
        self.model = model
        # Distribute when given a strategy or built inside one's scope.
        self._distributed = strategy is not None or tf.distribute.has_strategy()
        self.strategy = strategy or tf.distribute.get_strategy()
        self.jit_compile = jit_compile is True
        if strategy is not None:
            _check_variables_in_scope(model, strategy)
        self._metrics_built = False
        self._train_function = self._test_function = None

    @staticmethod
    def gpu_present() -> bool:
        return bool(tf.config.list_physical_devices("GPU"))

    def prepare_optimizer(self, optimizer: keras.optimizers.Optimizer):
        """Under ``mixed_float16``: scale the loss, so small float16 gradients survive."""
        if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
            return optimizer
        with self.strategy.scope():
            return keras.optimizers.LossScaleOptimizer(optimizer)

    def scope(self):
        return self.strategy.scope()

    def set_up(self, loss_tracker: keras.metrics.Mean, per_example_loss) -> None:
        self._loss_tracker = loss_tracker
        self._per_example_loss = per_example_loss

    # ------------------------------------------------------------ one replica

    def _replica_train_step(self, x, y, sample_weight):
        """One replica's share of a training step."""
        model, optimizer = self.model, self.model.optimizer
        global_rows = _global_rows(x)
        with tf.GradientTape() as tape:
            y_pred = model(x, training=True)
            loss, local_mean = self._loss(y, y_pred, sample_weight, global_rows)
            scaled = optimizer.scale_loss(loss)  # × the loss scale under mixed precision
        gradients = tape.gradient(scaled, model.trainable_variables)
        # Sums the replicas' gradients, unscales, skips the update on inf/nan.
        optimizer.apply_gradients(zip(gradients, model.trainable_variables, strict=True))
        self._update_metrics(x, y, y_pred, sample_weight, local_mean)

    def _replica_test_step(self, x, y, sample_weight):
        global_rows = _global_rows(x)
        y_pred = self.model(x, training=False)
        _, local_mean = self._loss(y, y_pred, sample_weight, global_rows)
        self._update_metrics(x, y, y_pred, sample_weight, local_mean)

    def _loss(self, y, y_pred, sample_weight, global_rows):
        per_example = self._per_example_loss(y, y_pred, sample_weight)
        return global_mean_loss(
            per_example, global_rows, self.model.losses, self.strategy.num_replicas_in_sync
        )

    def _update_metrics(self, x, y, y_pred, sample_weight, local_mean):
        self._loss_tracker.update_state(local_mean, sample_weight=keras.ops.shape(y_pred)[0])
        self.model.compute_metrics(x, y, y_pred, sample_weight=sample_weight)

    def _make_function(self, replica_step):
        """Wrap a replica step: one ``tf.function`` that runs it on every replica."""
        strategy = self.strategy
        step = tf.function(replica_step, jit_compile=self.jit_compile, autograph=False)

        def distributed_step(batch):
            x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(batch)
            strategy.run(step, args=(x, y, sample_weight))
            return self._results()

        return tf.function(distributed_step, reduce_retracing=True)

    def _results(self) -> dict:
        results = {"loss": self._loss_tracker.result()}
        for name, value in self.model.get_metrics_result().items():
            if name != "loss":  # the model's own loss tracker is not used here
                results[name] = value
        return results

    # ------------------------------------------------------ what the loop calls

    def stream(self, source, steps, batch_size, role) -> _DeviceStream:
        """``source`` as a stream of device batches (distributed under a strategy)."""
        dataset, inner = _as_dataset(source, steps, batch_size, role)
        dataset = dataset.prefetch(tf.data.AUTOTUNE)
        if self._distributed:
            batches = self.strategy.experimental_distribute_dataset(_sharded_by_data(dataset))
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
        self._build_metrics(dataset.element_spec)
        return _DeviceStream(outer, inner, self.rows)

    def train(self, batch) -> dict:
        if self._train_function is None:
            self._train_function = self._make_function(self._replica_train_step)
            self._test_function = self._make_function(self._replica_test_step)
        return self._train_function(batch)

    def test(self, batch) -> dict:
        if self._test_function is None:
            self._test_function = self._make_function(self._replica_test_step)
        return self._test_function(batch)

    def reset(self) -> None:
        self._loss_tracker.reset_state()
        self.model.reset_metrics()

    def result(self) -> dict[str, float]:
        return {name: float(value) for name, value in self._results().items()}

    def write_back(self) -> None:
        """Nothing to do: TensorFlow's step updates the variables in place."""

    def wait(self) -> None:
        float(self._loss_tracker.result())  # reading a value waits for the device

    def rows(self, batch) -> int:
        """Rows in a global batch: each replica's share, added up."""
        first = tf.nest.flatten(batch)[0]
        return sum(rows_in(part) for part in self.strategy.experimental_local_results(first))

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


class _DeviceStream:
    """A stream of device batches that remembers whether its Python source ran dry."""

    def __init__(self, outer: BatchStream, inner: BatchStream | None, rows) -> None:
        self._outer, self._inner = outer, inner
        self.role, self.num_batches = outer.role, outer.num_batches
        self.rows = rows

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


# --------------------------------------------------------------------------- helpers


def _check_variables_in_scope(model: keras.Model, strategy) -> None:
    for variable in model.variables:
        if not strategy.extended.variable_created_in_scope(variable.value):
            raise ValueError(
                f"{model.name}'s variable {variable.path} was created outside "
                f"{type(strategy).__name__}.scope(); build the model inside "
                "`with strategy.scope():` and pass it to CompiledLoop"
            )


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


def _sharded_by_data(dataset: tf.data.Dataset) -> tf.data.Dataset:
    """``dataset`` split among workers by batch, unless its owner chose a policy.

    What one step of N workers trains on, pinned: ``tf.distribute`` cuts each
    global batch of B rows into per-replica batches of B / N, and the ``DATA``
    policy has every worker read the whole dataset and keep its own per-replica
    batches, so that in each step the workers together train on exactly the
    rows one process would (``tests/test_distributed.py`` checks it). ``AUTO``
    would try ``FILE`` first: a worker per file, which for one CSV means some
    workers get nothing and the steps differ from one process's.
    """
    policy = dataset.options().experimental_distribute.auto_shard_policy
    if policy != tf.data.experimental.AutoShardPolicy.AUTO:
        return dataset
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options)


def _global_rows(x):
    """Rows in this step's global batch: every replica's rows, on every worker, added up.

    An all-reduce, not this worker's replicas counted: under a multi-worker
    strategy a worker sees only its own replicas, and dividing by their rows
    would scale the summed gradients by the number of workers.
    """
    rows = tf.shape(tf.nest.flatten(x)[0])[0]
    return tf.distribute.get_replica_context().all_reduce("sum", rows)


def _one_row(spec):
    shape = [1 if d is None else d for d in spec.shape]
    return tf.zeros(shape, spec.dtype)
