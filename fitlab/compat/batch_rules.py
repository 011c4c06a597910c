"""Keras 2's rules for one batch: what a batch may be, and how ``class_weight`` weighs it.

The training step is fitlab's :class:`fitlab.loops.OnBatchSteps` (``train_on_batch``
with the logs averaged over the epoch's rows, as ``fit`` reports them);
:class:`Keras2Steps` only changes how it splits a batch:

* a training batch must be ``(x, y)`` or ``(x, y, sample_weight)``, a tuple or
  a list (Keras 2 demanded it; Keras 3 would take ``x`` alone);
* targets and sample weights may be dicts keyed by output layer name, for a
  model whose outputs are a list (Keras 3 matches a dict only to dict outputs);
* ``class_weight`` becomes sample weights, *times* any the batch brings.

Examples
--------
>>> import numpy as np
>>> y = np.array([0, 1, 1])
>>> with_class_weight(y, None, {0: 1.0, 1: 3.0})
array([1., 3., 3.], dtype=float32)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import keras
import numpy as np

from fitlab.loops import OnBatchSteps


class Keras2Steps(OnBatchSteps):
    """:class:`fitlab.loops.OnBatchSteps` with Keras 2's batches and ``class_weight``.

    Parameters
    ----------
    model : keras.Model
        Compiled.
    class_weight : dict, optional
        ``{class index: weight}`` for the training batches (see :func:`with_class_weight`).
    role, test_role : str
        Name the caller in messages about a bad training / test batch.

    Examples
    --------
    >>> import numpy as np
    >>> model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    >>> model.compile(optimizer="sgd", loss="mse")
    >>> Keras2Steps(model).train(np.zeros((2, 1)))  # x alone: Keras 2 refused it
    Traceback (most recent call last):
    ...
    ValueError: fit_generator: each batch must be a tuple (x, y) or (x, y, sample_weight), ...
    """

    def __init__(
        self,
        model: keras.Model,
        class_weight: Mapping[int, float] | None = None,
        *,
        role: str = "fit_generator",
        test_role: str = "fit_generator (validation)",
    ) -> None:
        super().__init__(model)
        self.class_weight = class_weight
        self.role, self.test_role = role, test_role

    def unpack(self, batch: Any, training: bool) -> tuple:
        role = self.role if training else self.test_role
        x, y, sample_weight = _unpack_training_batch(batch, role)
        y = _by_output_name(self.model, y, role)
        sample_weight = _by_output_name(self.model, sample_weight, role)
        if training and self.class_weight is not None:
            sample_weight = with_class_weight(y, sample_weight, self.class_weight)
        return x, y, sample_weight


def _unpack_training_batch(batch: Any, role: str) -> tuple:
    """``(x, y)`` or ``(x, y, sample_weight)``, as Keras 2 demanded of a generator."""
    if isinstance(batch, list | tuple) and len(batch) in (2, 3):
        x, y, *rest = batch
        return x, y, (rest[0] if rest else None)
    shown = f"a {len(batch)}-tuple" if isinstance(batch, tuple) else type(batch).__name__
    raise ValueError(
        f"{role}: each batch must be a tuple (x, y) or (x, y, sample_weight), got {shown}. "
        "x and y may be arrays, or dicts keyed by input / output layer name."
    )


def _by_output_name(model: keras.Model, part: Any, role: str) -> Any:
    """Targets (or sample weights) given as ``{output layer name: array}``, as Keras 2 took them.

    Keras 3 matches a dict only to a model whose outputs are a dict; a
    functional model with one output (or a list of them) gets the arrays in
    ``model.output_names`` order.
    """
    if not isinstance(part, Mapping):
        return part
    try:
        structure = model.output
    except (AttributeError, ValueError):  # a subclassed model: leave it to Keras
        return part
    if isinstance(structure, Mapping):
        return part
    names = list(model.output_names)
    missing = [name for name in names if name not in part]
    unknown = [name for name in part if name not in names]
    if missing or unknown:
        raise ValueError(
            f"{role}: the batch's dict has keys {sorted(part)}, the model's outputs are named "
            f"{names}; name each array after its output layer"
        )
    return part[names[0]] if len(names) == 1 else [part[name] for name in names]


def prediction_inputs(batch: Any) -> Any:
    """The inputs of a prediction batch: ``x``, ``(x,)``, ``(x, y)`` or ``(x, y, w)``.

    A *tuple* is unpacked; a *list* is the inputs of a multi-input model, as in
    Keras 2.2 (``tf_keras`` 2.21 turns a 2-list into ``(x, y)`` and predicts on
    its first array only).

    Examples
    --------
    >>> prediction_inputs(("x", "y")), prediction_inputs(["a", "b"])
    ('x', ['a', 'b'])
    """
    if isinstance(batch, tuple):
        if not 1 <= len(batch) <= 3:
            raise ValueError(
                f"a prediction batch tuple must be (x,), (x, y) or (x, y, w), got {len(batch)}"
            )
        return batch[0]
    return batch


def normalize_class_weight(class_weight: Any) -> dict[int, float] | None:
    """``class_weight`` as ``{int: float}``; a clear error for anything but a dict.

    Examples
    --------
    >>> normalize_class_weight({0: 1, 1: 2})
    {0: 1.0, 1: 2.0}
    """
    if class_weight is None:
        return None
    if not isinstance(class_weight, Mapping):
        raise TypeError(
            f"class_weight must be a dict {{class index: weight}}, got {type(class_weight)}"
        )
    return {int(k): float(v) for k, v in class_weight.items()}


def with_class_weight(y: Any, sample_weight: Any, class_weight: Mapping[int, float]) -> np.ndarray:
    """Sample weights ``class_weight[class of each row]``, times any batch sample weights.

    The class of a row is the ``argmax`` of one-hot targets, or the integer
    label. Keys need only cover the classes present (Keras 2 wanted ``0 … n-1``).
    Single-output models only.
    """
    if isinstance(y, Mapping | list | tuple):
        if len(y) != 1:
            raise ValueError(
                "class_weight is only supported for models with a single output; "
                f"this batch has {len(y)} targets. Weight rows with sample weights instead."
            )
        (y,) = y.values() if isinstance(y, Mapping) else y
    classes = _class_indices(y)
    missing = sorted(set(classes.tolist()) - set(class_weight))
    if missing:
        raise ValueError(
            f"class_weight has no weight for class(es) {missing} found in the targets; "
            f"give every class a weight (got keys {sorted(class_weight)})"
        )
    weights = np.array([class_weight[c] for c in classes.tolist()], dtype="float32")
    if sample_weight is not None:
        weights = weights * np.asarray(keras.ops.convert_to_numpy(sample_weight), "float32")
    return weights


def _class_indices(y: Any) -> np.ndarray:
    y = np.asarray(keras.ops.convert_to_numpy(y))
    if y.ndim == 2 and y.shape[1] > 1:
        return y.argmax(axis=1)
    if y.ndim == 1 or (y.ndim == 2 and y.shape[1] == 1):
        return y.reshape(-1).astype(np.int64)
    raise ValueError(f"class_weight is not supported for targets of shape {y.shape} (3+ dims)")
