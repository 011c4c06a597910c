"""Keras 2's names for two things Keras 3 renamed: ``SGD(lr, decay)`` and ``history["acc"]``."""

from __future__ import annotations

from typing import Any

import keras

from fitlab.optim import legacy_sgd


class _LegacyKeys(dict):
    """A history dict that also answers Keras 2.2's names (``acc``, ``val_acc``).

    The keys themselves stay Keras 3's (and ``tf_keras`` 2.21's): iterating,
    ``len`` and ``in`` see ``accuracy`` / ``val_accuracy`` only; looking up
    ``"acc"`` returns the ``"accuracy"`` list itself.
    """

    ALIASES = {"acc": "accuracy", "val_acc": "val_accuracy"}

    def __missing__(self, key: Any) -> Any:
        target = self.ALIASES.get(key)
        if target is not None and dict.__contains__(self, target):
            return self[target]
        raise KeyError(key)

    def get(self, key: Any, default: Any = None) -> Any:
        try:
            return self[key]
        except KeyError:
            return default


def legacy_history(history: keras.callbacks.History) -> keras.callbacks.History:
    """Let ``history.history["acc"]`` and ``["val_acc"]`` work, as in 2018 plotting code.

    Keras 2.2 named the ``"accuracy"`` metric ``acc``; Keras 3 (and
    ``tf_keras`` 2.21) name it ``accuracy``. The same ``History`` is returned,
    its ``history`` dict now also answering the old names; its keys are
    unchanged, so code that lists them sees Keras 3's names.

    Parameters
    ----------
    history : keras.callbacks.History
        What ``fit`` returned.

    Returns
    -------
    keras.callbacks.History
        ``history`` itself.

    Examples
    --------
    >>> import numpy as np
    >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(2, "softmax")])
    >>> model.compile("sgd", "categorical_crossentropy", metrics=["accuracy"])
    >>> x, y = np.ones((4, 2)), np.eye(2)[[0, 1, 0, 1]]
    >>> H = legacy_history(model.fit(x, y, epochs=2, verbose=0))
    >>> H.history["acc"] is H.history["accuracy"], "acc" in H.history
    (True, False)
    """
    if not isinstance(history, keras.callbacks.History):
        raise TypeError(f"legacy_history needs a keras.callbacks.History, got {type(history)}")
    if not isinstance(history.history, _LegacyKeys):
        history.history = _LegacyKeys(history.history)
    return history


def SGD(  # noqa: N802 - Keras 2's class name, called like a constructor
    lr: float | None = None,
    momentum: float = 0.0,
    decay: float = 0.0,
    nesterov: bool = False,
    *,
    learning_rate: float | None = None,
    **unsupported: Any,
) -> keras.optimizers.SGD:
    """Keras 2's ``SGD(lr=0.01, momentum=0., decay=0., nesterov=False)``.

    ``decay`` divides the rate by ``1 + decay * iterations``, counted in
    batches, as Keras 2 did (Keras 3's ``SGD`` accepts ``decay=`` with a
    warning and ignores it). Built by :func:`fitlab.legacy_sgd`; Keras 2.3's
    ``learning_rate=`` is accepted too.

    Returns
    -------
    keras.optimizers.SGD
        With an ``InverseTimeDecay`` schedule when ``decay`` is given.

    Raises
    ------
    NotImplementedError
        For any other Keras 2 argument (``clipnorm``, ``clipvalue``), rather
        than ignore it.

    Examples
    --------
    >>> opt = SGD(lr=0.1, momentum=0.9, decay=0.5)
    >>> _ = opt.iterations.assign(2)  # after 2 batches: 0.1 / (1 + 0.5 * 2)
    >>> round(float(opt.learning_rate), 6)
    0.05
    """
    if unsupported:
        raise NotImplementedError(
            f"fitlab.compat.SGD does not implement {sorted(unsupported)}; use "
            "keras.optimizers.SGD(...) with a schedule from fitlab.legacy_sgd for those"
        )
    if lr is not None and learning_rate is not None:
        raise TypeError("give lr or learning_rate, not both")
    rate = lr if lr is not None else learning_rate if learning_rate is not None else 0.01
    return legacy_sgd(learning_rate=rate, momentum=momentum, decay=decay, nesterov=nesterov)
