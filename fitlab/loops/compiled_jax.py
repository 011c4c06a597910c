""":class:`fitlab.CompiledLoop`'s step on JAX: the whole training state through one ``jax.jit``.

JAX has no variables to update in place: a training step is a *pure
function* from the state before a batch to the state after it. This module
owns that function and what feeds it:

* the state is four lists of arrays — trainable weights, non-trainable ones
  (batch-norm statistics, the random-seed state of dropout and
  augmentation), the optimizer's slots and the metrics' totals;
* one step is ``model.stateless_call`` (training mode, so batch norm and
  dropout behave as in ``fit``, their new state returned), the loss of
  :func:`fitlab.loops.step.global_mean_loss` under ``jax.value_and_grad``,
  ``optimizer.stateless_apply``, and each metric's
  ``stateless_update_state``; ``jax.jit`` compiles it once, and the old
  state's buffers are *donated* to the new one, so the step updates the
  weights in place on the device instead of holding two copies;
* the next batch is copied to the device by a feeder thread while the
  current one trains;
* the model's variables are brought up to date from the state at the end
  of every epoch (before validation, ``on_epoch_end`` and checkpoints), and
  whenever a callback reads ``self.model`` during an epoch, as in Keras's
  own ``fit`` on JAX.

Mixed precision is ``mixed_bfloat16``: bfloat16 has float32's exponent
range, so, unlike float16, it needs no loss scaling.

Examples
--------
>>> JaxStep.mixed_policy
'mixed_bfloat16'
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator

import jax
import keras

from fitlab._private import offer_jax_state
from fitlab.engine import BatchStream
from fitlab.loops.step import global_mean_loss
from fitlab.pipelines import rows_in

#: Batches copied to the device ahead of the one training.
PREFETCH = 2


class JaxStep:
    """One training and one test step of :class:`fitlab.CompiledLoop`, on JAX.

    Parameters
    ----------
    model : keras.Model
        Built.
    strategy : None
        ``tf.distribute`` is TensorFlow's; refused here.
    jit_compile : "auto" or True
        JAX compiles every step with XLA; ``False`` is refused.
    """

    mixed_policy = "mixed_bfloat16"
    strategy = None

    def __init__(self, model: keras.Model, *, strategy=None, jit_compile="auto") -> None:
        if strategy is not None:
            raise ValueError(
                "strategy is tf.distribute's and needs the TensorFlow backend; on JAX "
                "leave it out (keras.distribution.DataParallel spreads a model over devices)"
            )
        if jit_compile is False:
            raise ValueError(
                "on JAX every step is compiled by XLA (jax.jit); jit_compile=False is "
                "TensorFlow's switch: leave jit_compile at its default"
            )
        self.model = model
        self.jit_compile = True
        self._state: tuple | None = None
        self._train_function = jax.jit(self._train_step, donate_argnums=0)
        self._test_function = jax.jit(self._test_step, donate_argnums=2)

    @staticmethod
    def gpu_present() -> bool:
        return jax.default_backend() == "gpu"

    def prepare_optimizer(self, optimizer: keras.optimizers.Optimizer):
        return optimizer  # bfloat16 needs no loss scaling

    def scope(self):
        return _NoScope()

    def set_up(self, loss_tracker: keras.metrics.Mean, per_example_loss) -> None:
        self._loss_tracker = loss_tracker
        self._per_example_loss = per_example_loss
        self._metrics: list[keras.metrics.Metric] | None = None

    # ------------------------------------------------------------ pure steps

    def _train_step(self, state, batch):
        trainable, non_trainable, optimizer_state, metric_state = state
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(batch)

        def loss_of(trainable):
            y_pred, new_non_trainable, losses = self.model.stateless_call(
                trainable, non_trainable, x, training=True, return_losses=True
            )
            per_example = self._per_example_loss(y, y_pred, sample_weight)
            loss, local_mean = global_mean_loss(per_example, rows_in(x), losses)
            return loss, (local_mean, y_pred, new_non_trainable)

        (_, (local_mean, y_pred, non_trainable)), gradients = jax.value_and_grad(
            loss_of, has_aux=True
        )(trainable)
        trainable, optimizer_state = self.model.optimizer.stateless_apply(
            optimizer_state, gradients, trainable
        )
        metric_state = self._update_metrics(metric_state, y, y_pred, sample_weight, local_mean)
        return (trainable, non_trainable, optimizer_state, metric_state), self._results(
            metric_state
        )

    def _test_step(self, trainable, non_trainable, metric_state, batch):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(batch)
        y_pred, _, losses = self.model.stateless_call(
            trainable, non_trainable, x, training=False, return_losses=True
        )
        per_example = self._per_example_loss(y, y_pred, sample_weight)
        _, local_mean = global_mean_loss(per_example, rows_in(x), losses)
        metric_state = self._update_metrics(metric_state, y, y_pred, sample_weight, local_mean)
        return metric_state, self._results(metric_state)

    def _update_metrics(self, metric_state, y, y_pred, sample_weight, local_mean):
        loss_state, *others = metric_state
        rows = keras.ops.shape(y_pred)[0]
        updated = [self._loss_tracker.stateless_update_state(loss_state, local_mean, rows)]
        for metric, state in zip(self._metrics[1:], others, strict=True):
            updated.append(metric.stateless_update_state(state, y, y_pred, sample_weight))
        return updated

    def _results(self, metric_state) -> dict:
        results = {}
        for metric, state in zip(self._metrics, metric_state, strict=True):
            value = metric.stateless_result(state)
            results.update(value if isinstance(value, dict) else {metric.name: value})
        return results

    # ------------------------------------------------------ what the loop calls

    def stream(self, source, steps, batch_size, role) -> _PrefetchedStream:
        """``source`` read by :class:`~fitlab.engine.BatchStream`, copied to the device ahead."""
        if hasattr(source, "element_spec"):  # a tf.data.Dataset
            raise ValueError(
                f"{role}: a tf.data.Dataset feeds the TensorFlow backend; on JAX pass arrays, "
                "a PyDataset (fitlab.CSVSequence) or a generator"
            )
        stream = BatchStream(source, steps, batch_size=batch_size, role=role)
        self._build_metrics(stream.peek())
        return _PrefetchedStream(stream)

    def train(self, batch) -> dict:
        state, logs = self._train_function(self._current_state(), batch)
        self._state = state
        offer_jax_state(self.model, *state[:3])
        return logs

    def test(self, batch) -> dict:
        trainable, non_trainable, optimizer_state, metric_state = self._current_state()
        metric_state, logs = self._test_function(trainable, non_trainable, metric_state, batch)
        self._state = (trainable, non_trainable, optimizer_state, metric_state)
        return logs

    def reset(self) -> None:
        self.write_back()
        for metric in self._metrics:
            metric.reset_state()

    def result(self) -> dict[str, float]:
        self.write_back()
        results = {}
        for metric in self._metrics:
            value = metric.result()
            results.update(value if isinstance(value, dict) else {metric.name: value})
        return {name: float(value) for name, value in results.items()}

    def wait(self) -> None:
        jax.block_until_ready(self._state)

    @staticmethod
    def rows(batch) -> int:
        return rows_in(batch)

    # ---------------------------------------------------------------- state

    def _current_state(self) -> tuple:
        """The state the next step starts from: the variables' values, read once an epoch.

        Read afresh after each write-back, so that what callbacks change
        between epochs (a learning rate, restored weights) is trained on.
        """
        if self._state is None:
            model = self.model
            self._state = (
                [v.value for v in model.trainable_variables],
                [v.value for v in model.non_trainable_variables],
                [v.value for v in model.optimizer.variables],
                [[v.value for v in metric.variables] for metric in self._metrics],
            )
        return self._state

    def write_back(self) -> None:
        """Put the state into the model's, optimizer's and metrics' variables."""
        if self._state is None:
            return
        trainable, non_trainable, optimizer_state, metric_state = self._state
        model = self.model
        pairs = [
            *zip(model.trainable_variables, trainable, strict=True),
            *zip(model.non_trainable_variables, non_trainable, strict=True),
            *zip(model.optimizer.variables, optimizer_state, strict=True),
        ]
        for metric, state in zip(self._metrics, metric_state, strict=True):
            pairs.extend(zip(metric.variables, state, strict=True))
        for variable, value in pairs:
            variable.assign(value)
        self._state = None
        offer_jax_state(self.model)

    def _build_metrics(self, batch) -> None:
        """Create the compiled metrics' variables (``compile`` does it on the first batch)."""
        if self._metrics is not None:
            return
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(batch)
        y_pred = self.model(x, training=False)
        self.model.compute_metrics(x, y, y_pred, sample_weight=sample_weight)
        self.model.reset_metrics()
        # The loss tracker first; then compile's metrics (the model's own loss tracker unused).
        self._metrics = [self._loss_tracker]
        self._metrics += [m for m in self.model.metrics if m.name != "loss"]


class _NoScope:
    """JAX has no distribution scope to open: a context that does nothing."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


class _PrefetchedStream:
    """A :class:`~fitlab.engine.BatchStream` whose batches a thread copies to the device ahead.

    ``jax.device_put`` starts the copy and returns at once; doing it on a
    feeder thread, :data:`PREFETCH` batches ahead, also moves reading and
    parsing the next batch off the thread that dispatches the steps.
    """

    def __init__(self, stream: BatchStream) -> None:
        self._stream = stream
        self.role, self.num_batches = stream.role, stream.num_batches
        self.rows = rows_in

    @property
    def steps(self):
        return self._stream.steps

    @property
    def ran_out(self) -> bool:
        return self._stream.ran_out

    @ran_out.setter
    def ran_out(self, value: bool) -> None:
        self._stream.ran_out = value

    def epoch(self) -> Iterator:
        ready: queue.Queue = queue.Queue(maxsize=PREFETCH)
        stop = threading.Event()
        feeder = threading.Thread(
            target=_feed, args=(self._stream.epoch(), ready, stop), daemon=True
        )
        feeder.start()
        try:
            while True:
                kind, item = ready.get()
                if kind == "end":
                    return
                if kind == "error":
                    raise item
                yield item
        finally:
            stop.set()  # the loop stopped early (stop_training, an error): let the feeder go
            while feeder.is_alive():
                try:
                    ready.get(timeout=0.05)
                except queue.Empty:
                    pass
            feeder.join()


def _feed(batches: Iterator, ready: queue.Queue, stop: threading.Event) -> None:
    """Copy ``batches`` to the device into ``ready``, then say how it ended."""
    try:
        for batch in batches:
            ready.put(("batch", jax.device_put(batch)))
            if stop.is_set():
                return
        ready.put(("end", None))
    except BaseException as error:  # handed to the training thread, raised there
        ready.put(("error", error))
    finally:
        close = getattr(batches, "close", None)
        if close is not None:
            close()
