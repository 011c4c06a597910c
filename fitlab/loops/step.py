"""What every compiled training step shares, whichever backend runs it.

:class:`fitlab.CompiledLoop` has one step per backend (``compiled_tf``,
``compiled_jax``); both compute the loss the same way and switch the model to
mixed precision the same way. Those two things live here, written once with
``keras.ops`` so that they run inside a ``tf.function`` and a ``jax.jit``
alike.

Examples
--------
>>> import numpy as np
>>> per_example = per_example_loss("mse")
>>> float(global_mean_loss(per_example(np.zeros((4, 1)), np.ones((4, 1)), None), 4)[0])
1.0
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops


def per_example_loss(loss: Any) -> keras.losses.Loss:
    """``loss`` as ``compile`` understands it, unreduced: one value per example.

    Examples
    --------
    >>> import numpy as np
    >>> per_example = per_example_loss("mse")
    >>> [float(v) for v in per_example(np.zeros((2, 1)), np.array([[1.0], [3.0]]), None)]
    [1.0, 9.0]
    """
    if isinstance(loss, keras.losses.Loss):
        return type(loss).from_config({**loss.get_config(), "reduction": "none"})
    function = keras.losses.get(loss)
    if function is None:
        raise ValueError(f"unknown loss {loss!r}")
    if isinstance(function, keras.losses.Loss):
        return type(function).from_config({**function.get_config(), "reduction": "none"})
    return _PerExampleLoss(function)


class _PerExampleLoss(keras.losses.Loss):
    """A loss function as a ``Loss`` that does not reduce (what ``compile`` wraps it in)."""

    def __init__(self, function):
        super().__init__(name=getattr(function, "__name__", "loss"), reduction="none")
        self.function = function

    def call(self, y_true, y_pred):
        return self.function(y_true, y_pred)


def global_mean_loss(per_example, global_rows, extra_losses=(), replicas: int = 1) -> tuple:
    """``(loss to differentiate, this replica's mean loss for the log)``.

    The loss is this replica's sum divided by the *global* batch size: summed
    over replicas (as a strategy sums gradients), that is the mean over the
    whole batch. With one replica it is ``compile``'s ``sum_over_batch_size``
    loss, op for op. ``extra_losses`` (the model's regularizers) count once,
    however many replicas.
    """
    total = ops.sum(per_example)
    local_size = ops.cast(ops.size(per_example), total.dtype)
    rows = ops.cast(ops.shape(per_example)[0], total.dtype)
    global_size = ops.cast(global_rows, total.dtype) * ops.divide_no_nan(local_size, rows)
    loss = ops.divide_no_nan(total, global_size)
    local_mean = ops.divide_no_nan(total, local_size)
    if extra_losses:
        extra = ops.cast(ops.sum(extra_losses), total.dtype)
        loss = loss + extra / replicas
        local_mean = local_mean + extra
    return loss, local_mean


def use_mixed_policy(model: keras.Model, policy: str) -> None:
    """Compute in ``policy`` (``mixed_float16``, ``mixed_bfloat16``) except in the output layers.

    The output layers stay float32, so the softmax and the loss keep full
    precision; the weights stay float32 everywhere (a mixed policy computes in
    the low precision and keeps float32 variables).
    """
    for layer in model.layers:
        if not isinstance(layer, keras.layers.InputLayer) and not _makes_an_output(layer, model):
            layer.dtype_policy = keras.mixed_precision.DTypePolicy(policy)


def _makes_an_output(layer, model: keras.Model) -> bool:
    try:
        made = keras.tree.flatten(layer.output)
    except (AttributeError, ValueError):  # a layer called more than once
        return False
    return any(t is out for t in made for out in keras.tree.flatten(model.outputs))
