"""What the resume tests of the data sources share: one run straight through against
one stopped after two epochs, saved, reloaded into a new source and trained on."""

from __future__ import annotations

from collections.abc import Callable

import keras
import numpy as np


def tiny_model() -> keras.Model:
    """A seeded model for 2×2 RGB images of 3 classes, compiled with Adam."""
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((2, 2, 3)), keras.layers.Rescaling(1 / 255), keras.layers.Flatten(),
         keras.layers.Dense(3, activation="softmax")]
    )  # fmt: skip
    model.compile(keras.optimizers.Adam(0.05), "categorical_crossentropy")
    return model


def assert_resuming_is_exact(fit: Callable, source: Callable, folder) -> None:
    """Three epochs straight equal two, a save, a reload and the third on a new source
    told where it resumes (``source(2)``); the same without telling (``source(None)``)
    differs, so the test can fail. ``fit(model, source, epochs, initial_epoch=0)``."""
    model = tiny_model()
    fit(model, source(0), 3)
    uninterrupted = model.get_weights()
    model = tiny_model()
    fit(model, source(0), 2)
    model.save(folder / "two.keras")  # weights and optimizer state
    finals = []
    for resume_at in (2, None):  # a new process: a new source, told where it resumes or not
        model = keras.models.load_model(folder / "two.keras")
        fit(model, source(resume_at), 3, initial_epoch=2)
        finals.append(model.get_weights())
    resumed, forgot = finals
    for a, b in zip(uninterrupted, resumed, strict=True):
        np.testing.assert_array_equal(a, b)
    assert not all(np.array_equal(a, b) for a, b in zip(uninterrupted, forgot, strict=True))
