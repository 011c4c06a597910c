"""legacy_sgd: Keras 2's per-batch inverse-time decay; Keras 3's SGD(decay=...) trap."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from fitlab import legacy_sgd

LR, DECAY = 1e-2, 1e-2 / 75


def keras2_rate(iterations: int, lr: float = LR, decay: float = DECAY) -> float:
    """Keras 2's SGD: lr / (1 + decay * iterations), iterations counted in batches."""
    return lr / (1.0 + decay * iterations)


@pytest.mark.parametrize("iterations", [0, 1, 10, 1000, 10**5])
def test_rate_follows_the_closed_formula(iterations):
    opt = legacy_sgd(LR, decay=DECAY)
    opt.iterations.assign(iterations)
    assert float(opt.learning_rate) == pytest.approx(keras2_rate(iterations), rel=1e-6)


def test_defaults_are_the_tutorials():
    opt = legacy_sgd()
    assert float(opt.momentum) == pytest.approx(0.9)
    opt.iterations.assign(75)
    assert float(opt.learning_rate) == pytest.approx(keras2_rate(75), rel=1e-6)


def _one_weight_model(opt):
    # y = w·x with x = 1 and a target far above w: the MAE gradient is exactly
    # -1 on every step, so w grows by the step's learning rate each batch.
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1, use_bias=False)])
    model.layers[0].set_weights([np.zeros((1, 1), "float32")])
    model.compile(optimizer=opt, loss="mae")
    return model


def test_rate_changes_every_batch_not_every_epoch():
    steps, decay = 7, 0.5
    opt = legacy_sgd(0.1, momentum=0.0, decay=decay)
    model = _one_weight_model(opt)
    x = np.ones((steps, 1), "float32")
    y = np.full((steps, 1), 1000.0, "float32")
    model.fit(x, y, batch_size=1, epochs=1, shuffle=False, verbose=0)  # one epoch, 7 batches

    assert int(opt.iterations) == steps
    assert float(opt.learning_rate) == pytest.approx(keras2_rate(steps, 0.1, decay), rel=1e-6)
    # Step t used rate(t): the weight is the sum of the per-batch rates.
    expected = sum(keras2_rate(t, 0.1, decay) for t in range(steps))
    assert float(model.layers[0].get_weights()[0][0, 0]) == pytest.approx(expected, rel=1e-5)


def test_keras3_sgd_decay_is_accepted_with_a_warning_and_ignored():
    with pytest.warns(UserWarning, match="`decay` is no longer supported and will be ignored"):
        opt = keras.optimizers.SGD(learning_rate=0.1, momentum=0.0, decay=0.5)
    model = _one_weight_model(opt)
    x, y = np.ones((5, 1), "float32"), np.full((5, 1), 1000.0, "float32")
    model.fit(x, y, batch_size=1, epochs=1, shuffle=False, verbose=0)
    assert int(opt.iterations) == 5
    assert float(opt.learning_rate) == pytest.approx(0.1)  # no decay at all
    assert float(model.layers[0].get_weights()[0][0, 0]) == pytest.approx(5 * 0.1, rel=1e-5)


def test_zero_decay_is_a_constant_rate_and_negative_decay_is_refused():
    opt = legacy_sgd(0.05, decay=0.0)
    opt.iterations.assign(1000)
    assert float(opt.learning_rate) == pytest.approx(0.05)
    with pytest.raises(ValueError, match="decay must be >= 0"):
        legacy_sgd(decay=-1e-3)
