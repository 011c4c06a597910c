"""Training recipes: what MiniVGGNet is compiled with, the tutorial's and a better one.

A recipe here is the optimizer (with its learning-rate schedule) and the loss;
the network, the data, the augmentation, the epochs and the batch size stay
the tutorial's. ``python -m fitlab train --recipe NAME`` picks one.

``"tutorial"``
    SGD, momentum 0.9, rate 0.01 divided by ``1 + decay * batches`` with
    ``decay = 0.01 / epochs`` (:func:`fitlab.legacy_sgd`), cross-entropy.
    After 75 epochs of 32 batches the rate is still 0.0076: it never anneals,
    so the weights end where the noise of the last batches left them.
``"improved"``
    Four changes, each a standard one for training a small CNN from scratch:

    1. the rate warms up linearly from 0.0025 to 0.025 over the first three
       epochs (batch-norm statistics are still settling then), and
    2. then follows a cosine down to 0 at the last batch, so the last epochs
       refine instead of wander;
    3. Nesterov momentum and a weight decay of 0.005 (decoupled, as Keras 3
       applies it: ``w -= lr * 0.005 * w`` per batch, about what a coupled
       L2 of 5e-4 does through momentum 0.9);
    4. label smoothing 0.1 (targets 0.906 / 0.006 instead of 1 / 0), which
       keeps the softmax from growing over-confident on 1,020 images.

Both recipes serialize with the model (``model.keras``), so a saved run
resumes with its schedule.
"""

from __future__ import annotations

import keras

from fitlab.config import RECIPES
from fitlab.optim import legacy_sgd

__all__ = ["RECIPES", "make_recipe"]

# The improved recipe's settings (see the module docstring).
PEAK_LEARNING_RATE = 0.025
WARMUP_EPOCHS = 3
WEIGHT_DECAY = 5e-3
LABEL_SMOOTHING = 0.1


def make_recipe(
    name: str, *, epochs: int, steps_per_epoch: int
) -> tuple[keras.optimizers.Optimizer, str | keras.losses.Loss]:
    """The optimizer and loss of recipe ``name`` for a run of ``epochs`` × ``steps_per_epoch``.

    Parameters
    ----------
    name : {"tutorial", "improved"}
    epochs : int
        Epochs the run will train; both schedules are laid out over them.
    steps_per_epoch : int
        Batches per epoch (``ceil(rows / batch_size)``); the schedules count batches.

    Returns
    -------
    optimizer : keras.optimizers.Optimizer
        A new one each call (an optimizer belongs to one model).
    loss : str or keras.losses.Loss
        For ``model.compile`` (or :class:`fitlab.CompiledLoop`).

    Examples
    --------
    >>> optimizer, loss = make_recipe("improved", epochs=75, steps_per_epoch=32)
    >>> round(float(optimizer.learning_rate), 4)  # batch 0: the warm-up's start
    0.0025
    >>> loss.get_config()["label_smoothing"]
    0.1
    """
    if name not in RECIPES:
        raise ValueError(f"recipe must be one of {RECIPES}, got {name!r}")
    if epochs < 1 or steps_per_epoch < 1:
        raise ValueError(
            f"epochs and steps_per_epoch must be positive, got {epochs}, {steps_per_epoch}"
        )
    if name == "tutorial":
        init_lr = 1e-2
        # The tutorial: SGD(lr=INIT_LR, momentum=0.9, decay=INIT_LR / NUM_EPOCHS).
        return legacy_sgd(init_lr, momentum=0.9, decay=init_lr / epochs), "categorical_crossentropy"
    total = epochs * steps_per_epoch
    # A run shorter than the warm-up warms up over half of it instead.
    warmup = min(WARMUP_EPOCHS * steps_per_epoch, total // 2)
    schedule = keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=PEAK_LEARNING_RATE / 10,
        decay_steps=total - warmup,
        alpha=0.0,
        warmup_target=PEAK_LEARNING_RATE,
        warmup_steps=warmup,
    )
    optimizer = keras.optimizers.SGD(
        learning_rate=schedule, momentum=0.9, nesterov=True, weight_decay=WEIGHT_DECAY
    )
    loss = keras.losses.CategoricalCrossentropy(label_smoothing=LABEL_SMOOTHING)
    return optimizer, loss
