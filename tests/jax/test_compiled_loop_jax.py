"""CompiledLoop on JAX: the pure jitted step equals Keras's own fit on JAX, and TensorFlow's loop.

These tests run in a pytest of their own with ``KERAS_BACKEND=jax`` (``make test``
starts it; ``tests/conftest.py`` leaves this folder out of the TensorFlow run).
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import keras
import numpy as np
import pytest

from fitlab import CompiledLoop, CSVSequence, InputMeter, make_synthetic_csv

pytestmark = pytest.mark.skipif(keras.backend.backend() != "jax", reason="KERAS_BACKEND=jax only")

ROWS, CLASSES, BATCH = 24, 3, 8
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(ROWS, 6, 6, 3)).astype("float32")
    y = keras.utils.to_categorical(np.arange(ROWS) % CLASSES, CLASSES)
    return x, y


def small_cnn(dropout: float = 0.25) -> keras.Model:
    """Convolution, batch norm and dropout: every kind of state a step must carry."""
    keras.utils.set_random_seed(0)
    return keras.Sequential(
        [
            keras.Input((6, 6, 3)),
            keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="conv"),
            keras.layers.BatchNormalization(name="norm"),
            keras.layers.Flatten(name="flat"),
            keras.layers.Dropout(dropout, name="dropout"),
            keras.layers.Dense(CLASSES, activation="softmax", name="out"),
        ]
    )


def sgd():
    return keras.optimizers.SGD(0.1, momentum=0.9)


def loop_for(model, **kwargs) -> CompiledLoop:
    return CompiledLoop(model, sgd(), "categorical_crossentropy", **kwargs)


def keras_fit(model, data, epochs, **kwargs):
    model.compile(sgd(), "categorical_crossentropy", metrics=["accuracy"])
    x, y = data
    return model.fit(x, y, batch_size=BATCH, epochs=epochs, shuffle=False, verbose=0, **kwargs)


def test_same_history_and_weights_as_keras_fit_on_jax(data):
    """Same initial weights, same batches in the same order, dropout and batch norm on:
    the jitted step runs the very operations of Keras's JAX trainer, so the
    numbers agree to float32 rounding (they came out bit for bit here)."""
    reference = small_cnn()
    fitted = keras_fit(reference, data, 3, validation_data=data).history
    model = small_cnn()
    looped = loop_for(model).fit(data, 3, batch_size=BATCH, validation_data=data, verbose=0)
    assert sorted(looped.history) == sorted(fitted)
    for name, values in fitted.items():
        np.testing.assert_allclose(looped.history[name], values, rtol=1e-6, err_msg=name)
    for ours, theirs in zip(model.get_weights(), reference.get_weights(), strict=True):
        np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-6)


def test_a_callback_sees_this_steps_weights_during_an_epoch(data):
    """The state is donated to each step: without a hand-over, a callback reading
    the weights mid-epoch would find deleted buffers (or last epoch's weights)."""

    class Snapshots(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.kernels = []

        def on_train_batch_end(self, batch, logs=None):
            self.kernels.append(np.array(self.model.get_layer("out").kernel))

    snapshots = Snapshots()
    model = small_cnn(dropout=0.0)
    loop_for(model).fit(data, 2, batch_size=BATCH, callbacks=[snapshots], verbose=0)
    assert len(snapshots.kernels) == 2 * ROWS // BATCH
    changes = [np.abs(b - a).max() for a, b in itertools.pairwise(snapshots.kernels)]
    assert min(changes) > 0  # a new kernel after every step
    np.testing.assert_array_equal(snapshots.kernels[-1], np.array(model.get_layer("out").kernel))


def test_a_learning_rate_set_between_epochs_is_trained_with(data):
    """The state is read from the variables at each epoch's start, so a callback's
    change (here the learning rate, an optimizer variable) counts, as under fit."""

    def schedule():
        return keras.callbacks.LearningRateScheduler(lambda epoch, lr: 0.1 / (epoch + 1))

    reference = keras_fit(small_cnn(), data, 3, callbacks=[schedule()]).history
    model = small_cnn()
    looped = loop_for(model).fit(data, 3, batch_size=BATCH, callbacks=[schedule()], verbose=0)
    np.testing.assert_allclose(looped.history["loss"], reference["loss"], rtol=1e-6)
    assert float(model.optimizer.learning_rate) == pytest.approx(0.1 / 3)


def test_csv_sequence_and_generator_sources(tmp_path, data):
    csv = make_synthetic_csv(tmp_path / "train.csv", 20, size=8, seed=1)
    sequence = CSVSequence(csv, 8, shuffle=False)
    model = keras.Sequential(
        [keras.Input((8, 8, 3)), keras.layers.Flatten(), keras.layers.Dense(3, "softmax")]
    )
    meter = InputMeter()
    history = loop_for(model).fit(sequence, 2, meter=meter, verbose=0)
    assert len(history.history["loss"]) == 2
    assert meter.batches == 2 * len(sequence)

    def endless():
        while True:
            yield data[0][:BATCH], data[1][:BATCH]

    history = loop_for(small_cnn()).fit(endless(), 2, steps_per_epoch=3, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))


def test_an_error_in_the_source_reaches_the_caller_and_the_weights_survive(data):
    """The feeder thread hands a source's error to the training thread; the model
    keeps the weights of the last step (not the buffers donated to it)."""

    def breaks_on_the_third_batch():
        for index in range(10):
            if index == 2:
                raise OSError("disk gone")
            yield data[0][:BATCH], data[1][:BATCH]

    model = small_cnn()
    with pytest.raises(OSError, match="disk gone"):
        loop_for(model).fit(breaks_on_the_third_batch(), 1, steps_per_epoch=5, verbose=0)
    assert all(np.all(np.isfinite(w)) for w in model.get_weights())


def test_mixed_bfloat16_forced_on(data, tmp_path):
    loop = loop_for(small_cnn(), mixed_precision=True)
    policies = {layer.name: layer.dtype_policy.name for layer in loop.model.layers}
    assert policies["conv"] == "mixed_bfloat16" and policies["out"] == "float32"
    assert not isinstance(loop.model.optimizer, keras.optimizers.LossScaleOptimizer)
    history = loop.fit(data, 2, batch_size=BATCH, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))
    assert loop.model.get_layer("conv").kernel.dtype == "float32"  # float32 master weights
    loop.model.save(tmp_path / "mixed.keras")


def test_tensorflow_only_arguments_are_refused_in_one_line(data):
    assert loop_for(small_cnn()).mixed_precision is False  # no GPU here
    with pytest.raises(ValueError, match="jit_compile=False is TensorFlow's"):
        loop_for(small_cnn(), jit_compile=False)
    with pytest.raises(ValueError, match="needs the TensorFlow backend"):
        loop_for(small_cnn(), strategy=object())


TF_LOOP = textwrap.dedent(
    """
    import json, sys
    import keras, numpy as np
    from fitlab import CompiledLoop
    saved = np.load(sys.argv[1])
    model = keras.Sequential([
        keras.Input((6, 6, 3)),
        keras.layers.Conv2D(4, 3, padding="same", activation="relu"),
        keras.layers.BatchNormalization(),
        keras.layers.Flatten(),
        keras.layers.Dense(3, activation="softmax"),
    ])
    model.set_weights([saved[f"w{i}"] for i in range(len(saved.files) - 2)])
    loop = CompiledLoop(model, keras.optimizers.SGD(0.1, momentum=0.9), "categorical_crossentropy")
    history = loop.fit((saved["x"], saved["y"]), 3, batch_size=8, verbose=0)
    print("RESULT", json.dumps(history.history["loss"]))
    """
)


@pytest.mark.slow
def test_same_losses_as_the_tensorflow_loop(data, tmp_path):
    """One model, one set of initial weights, two backends: TensorFlow's kernels and
    XLA's add up a convolution in other orders, so the losses agree to float32
    rounding grown over 9 steps (rtol 1e-4), not bit for bit."""
    x, y = data
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((6, 6, 3)),
            keras.layers.Conv2D(4, 3, padding="same", activation="relu"),
            keras.layers.BatchNormalization(),
            keras.layers.Flatten(),
            keras.layers.Dense(3, activation="softmax"),
        ]
    )
    weights = {f"w{i}": w for i, w in enumerate(model.get_weights())}
    np.savez(tmp_path / "start.npz", x=x, y=y, **weights)
    jax_losses = loop_for(model).fit(data, 3, batch_size=BATCH, verbose=0).history["loss"]
    env = {**os.environ, "KERAS_BACKEND": "tensorflow", "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run(
        [sys.executable, "-c", TF_LOOP, str(tmp_path / "start.npz")],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    assert done.returncode == 0 and lines, done.stderr[-3000:]
    tf_losses = json.loads(lines[-1][len("RESULT ") :])
    np.testing.assert_allclose(jax_losses, tf_losses, rtol=1e-4)
