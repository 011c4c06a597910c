"""Keras 2's SGD with ``decay``, rebuilt on a Keras 3 learning-rate schedule."""

from __future__ import annotations

import keras


def legacy_sgd(
    learning_rate: float = 1e-2,
    momentum: float = 0.9,
    decay: float = 1e-2 / 75,
    nesterov: bool = False,
) -> keras.optimizers.SGD:
    """Return an SGD whose rate falls as Keras 2's ``SGD(decay=…)`` did.

    Keras 2 divided the rate by ``1 + decay * iterations``, counting
    *batches* (the tutorial's text says epochs; its code counted batches).
    Keras 3 accepts ``SGD(decay=…)`` with a warning and ignores it; an
    ``InverseTimeDecay`` with ``decay_steps=1`` gives exactly the old rates:
    ``learning_rate / (1 + decay * optimizer.iterations)``, where
    ``optimizer.iterations`` counts applied batches.

    Examples
    --------
    >>> opt = legacy_sgd(1e-2, decay=1e-2 / 75)
    >>> _ = opt.iterations.assign(750)  # 750 batches: ~23 epochs of 1,020 rows at batch 32
    >>> round(float(opt.learning_rate), 6)  # 1e-2 / (1 + 1e-2 / 75 * 750)
    0.009091
    """
    if learning_rate <= 0:
        raise ValueError(f"learning_rate must be > 0, got {learning_rate}")
    if decay < 0:
        raise ValueError(f"decay must be >= 0, got {decay}")
    rate = (
        keras.optimizers.schedules.InverseTimeDecay(
            initial_learning_rate=learning_rate, decay_steps=1, decay_rate=decay
        )
        if decay
        else learning_rate
    )
    return keras.optimizers.SGD(learning_rate=rate, momentum=momentum, nesterov=nesterov)
