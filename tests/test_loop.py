"""CompiledLoop: the tf.function GradientTape loop, its sources, precision and replicas.

The strategy test needs two logical CPU devices, which TensorFlow only lets a
process configure before it first touches its devices; pytest's process has
long done that, so that test runs its script in a fresh Python subprocess.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
import warnings
from pathlib import Path

import keras
import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from fitlab import (  # noqa: E402
    CompiledLoop,
    InputMeter,
    train_on_batches,
)

ROWS, FEATURES, CLASSES, BATCH = 24, 4, 3, 8
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(ROWS, FEATURES)).astype("float32")
    y = keras.utils.to_categorical(np.arange(ROWS) % CLASSES, CLASSES)
    return x, y


def tiny_model(seed: int = 0, dropout: float = 0.2) -> keras.Model:
    keras.utils.set_random_seed(seed)
    return keras.Sequential(
        [
            keras.Input((FEATURES,)),
            keras.layers.Dense(8, activation="relu", name="hidden"),
            keras.layers.Dropout(dropout, name="dropout"),
            keras.layers.Dense(CLASSES, activation="softmax", name="out"),
        ]
    )


def sgd():
    return keras.optimizers.SGD(0.1, momentum=0.9)


def compiled_loop(model=None, **kwargs) -> CompiledLoop:
    return CompiledLoop(model or tiny_model(), sgd(), "categorical_crossentropy", **kwargs)


class Events(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.events = []

    def __getattribute__(self, name):
        if name.startswith("on_") and not name.startswith("on_predict"):
            # the hook and its epoch or batch index; logs are compared elsewhere
            return lambda *args, **kwargs: self.events.append(
                (name, *[a for a in args[:1] if isinstance(a, int)])
            )
        return super().__getattribute__(name)


def test_same_history_and_weights_as_fit(data):
    x, y = data
    by_fit = tiny_model()
    by_fit.compile(
        optimizer=sgd(), loss="categorical_crossentropy", metrics=["accuracy"], jit_compile=False
    )
    fitted = by_fit.fit(
        x, y, batch_size=BATCH, epochs=2, shuffle=False, verbose=0, validation_data=(x, y)
    )
    loop = compiled_loop()
    start = time.perf_counter()
    history = loop.fit((x, y), 2, batch_size=BATCH, validation_data=(x, y), verbose=0)
    wall_s = time.perf_counter() - start
    assert history.history == fitted.history
    for a, b in zip(loop.model.get_weights(), by_fit.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    # The clock runs over training batches after the first (traced) one: 2 × 24 − 8
    # images in less than the whole call's time.
    assert loop.images_per_second >= (2 * ROWS - BATCH) / wall_s
    assert loop.model.history is history


def test_drives_callbacks_like_fit_and_train_on_batches(data):
    x, y = data
    by_fit, by_hand, by_loop = Events(), Events(), Events()
    model = tiny_model()
    model.compile(optimizer=sgd(), loss="categorical_crossentropy", metrics=["accuracy"])
    model.fit(
        x,
        y,
        batch_size=BATCH,
        epochs=2,
        shuffle=False,
        verbose=0,
        validation_data=(x, y),
        callbacks=[by_fit],
    )
    train_on_batches(
        model, (x, y), 2, batch_size=BATCH, verbose=0, validation_data=(x, y), callbacks=[by_hand]
    )
    compiled_loop().fit(
        (x, y), 2, batch_size=BATCH, verbose=0, validation_data=(x, y), callbacks=[by_loop]
    )
    assert by_loop.events == by_fit.events == by_hand.events


def test_early_stopping_and_checkpoint_work(data, tmp_path):
    x, y = data
    stop = keras.callbacks.EarlyStopping(monitor="loss", min_delta=10.0, patience=0)
    save = keras.callbacks.ModelCheckpoint(str(tmp_path / "m-{epoch}.keras"))
    loop = compiled_loop()
    history = loop.fit((x, y), 10, batch_size=BATCH, verbose=0, callbacks=[stop, save])
    assert history.epoch == [0, 1]
    restored = keras.models.load_model(tmp_path / "m-2.keras")
    assert int(restored.optimizer.iterations) == 2 * ROWS // BATCH  # optimizer state saved
    np.testing.assert_allclose(restored.predict(x, verbose=0), loop.model.predict(x, verbose=0))
    assert set(loop.model.evaluate(x, y, verbose=0, return_dict=True)) == {"loss", "accuracy"}


def test_generator_pydataset_and_tf_data_sources(data):
    x, y = data

    def generator():
        while True:
            for i in range(ROWS // BATCH):
                yield x[i * BATCH : (i + 1) * BATCH], y[i * BATCH : (i + 1) * BATCH]

    class Source(keras.utils.PyDataset):
        def __len__(self):
            return ROWS // BATCH

        def __getitem__(self, i):
            return x[i * BATCH : (i + 1) * BATCH], y[i * BATCH : (i + 1) * BATCH]

    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(BATCH)
    reference = compiled_loop().fit((x, y), 2, batch_size=BATCH, verbose=0).history
    for source, kwargs in [
        (generator(), {"steps_per_epoch": ROWS // BATCH}),
        (Source(), {}),
        (dataset, {}),
    ]:
        history = compiled_loop().fit(source, 2, verbose=0, **kwargs)
        assert history.history == reference, type(source).__name__


def test_finite_generator_is_not_re_chained(data):
    """Keras 3 fit would train on two re-chained batches per later epoch; this runs dry."""
    x, y = data
    pulled = []

    def generator():
        for i in range(4):
            pulled.append(i)
            yield x[:BATCH], y[:BATCH]

    with pytest.warns(UserWarning, match="ran out of data after 1 of 3 steps in epoch 2"):
        history = compiled_loop().fit(generator(), 5, steps_per_epoch=3, verbose=0)
    assert pulled == [0, 1, 2, 3]
    assert history.epoch == [0, 1]


def test_meter_counts_every_batch(data):
    x, y = data
    meter = InputMeter()
    compiled_loop().fit((x, y), 2, batch_size=BATCH, verbose=0, meter=meter)
    assert (meter.batches, meter.images) == (2 * ROWS // BATCH, 2 * ROWS)


def test_jit_compile_gives_the_same_losses(data):
    """Without dropout: XLA draws other random numbers for the same seed."""
    x, y = data
    plain = compiled_loop(tiny_model(dropout=0.0))
    plain = plain.fit((x, y), 2, batch_size=BATCH, verbose=0).history
    xla = compiled_loop(tiny_model(dropout=0.0), jit_compile=True)
    xla = xla.fit((x, y), 2, batch_size=BATCH, verbose=0).history
    np.testing.assert_allclose(xla["loss"], plain["loss"], rtol=1e-5)


def test_mixed_precision_forced_on(data, tmp_path):
    x, y = data
    loop = compiled_loop(mixed_precision=True)
    policies = {layer.name: layer.dtype_policy.name for layer in loop.model.layers}
    assert policies == {"hidden": "mixed_float16", "dropout": "mixed_float16", "out": "float32"}
    assert isinstance(loop.model.optimizer, keras.optimizers.LossScaleOptimizer)
    history = loop.fit((x, y), 2, batch_size=BATCH, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))
    assert loop.model.layers[0].kernel.dtype == "float32"  # float32 master weights
    loop.model.save(tmp_path / "mixed.keras")


def test_mixed_precision_auto_follows_the_gpu():
    gpu = bool(tf.config.list_physical_devices("GPU"))
    assert compiled_loop().mixed_precision is gpu
    assert compiled_loop(mixed_precision=False).mixed_precision is False


def test_bad_arguments_are_refused(data):
    with pytest.raises(ValueError, match="mixed_precision"):
        compiled_loop(mixed_precision="yes")
    with pytest.raises(ValueError, match="steps_per_epoch"):
        compiled_loop().fit(iter([data]), 1, verbose=0)
    with pytest.raises(ValueError, match="batch_size applies"):
        dataset = tf.data.Dataset.from_tensor_slices(data).batch(BATCH)
        compiled_loop().fit(dataset, 1, batch_size=BATCH, verbose=0)


STRATEGY_SCRIPT = textwrap.dedent(
    """
    import json
    import tensorflow as tf

    # Two logical CPUs: only possible before TensorFlow initialises its devices.
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

    import keras
    import numpy as np
    from fitlab import CompiledLoop

    rng = np.random.default_rng(0)
    x = rng.normal(size=(30, 4)).astype("float32")
    y = keras.utils.to_categorical(np.arange(30) % 3, 3)

    def build():
        keras.utils.set_random_seed(0)
        return keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, activation="relu"),
                                 keras.layers.Dense(3, activation="softmax")])

    def loop(model, **kwargs):
        return CompiledLoop(model, keras.optimizers.SGD(0.1), "categorical_crossentropy", **kwargs)

    single = build()
    initial = single.get_weights()
    one = loop(single).fit((x, y), 2, batch_size=8, verbose=0)  # 8, 8, 8, 6 rows

    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    with strategy.scope():
        mirrored = build()
        mirrored.set_weights(initial)
    two_loop = loop(mirrored, strategy=strategy)
    two = two_loop.fit((x, y), 2, batch_size=8, verbose=0)
    try:
        loop(build(), strategy=strategy)
        refused = ""
    except ValueError as error:
        refused = str(error)
    print("RESULT", json.dumps({
        "replicas": strategy.num_replicas_in_sync,
        "diff": max(float(np.max(np.abs(a - b)))
                    for a, b in zip(single.get_weights(), mirrored.get_weights())),
        "one": one.history, "two": two.history, "refused": refused,
        "images_per_second": two_loop.images_per_second,
    }))
    """
)


@pytest.mark.slow
def test_mirrored_strategy_splits_the_global_batch_and_matches_one_device():
    """Two replicas on half-batches each, losses divided by the global batch size,
    end where one device on the whole batches ends (to float rounding)."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": ""}
    done = subprocess.run(
        [sys.executable, "-c", STRATEGY_SCRIPT],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    assert done.returncode == 0 and lines, done.stderr[-3000:]
    result = json.loads(lines[-1][len("RESULT ") :])
    assert result["replicas"] == 2
    # Equal weights prove the split: had each replica taken the whole global batch
    # (or divided by its own share), the summed gradients would be twice as large.
    assert result["diff"] < 1e-5
    np.testing.assert_allclose(result["two"]["loss"], result["one"]["loss"], rtol=1e-5)
    assert result["two"]["accuracy"] == result["one"]["accuracy"]
    assert "strategy.scope()" in result["refused"]
    assert result["images_per_second"] > 0  # a rate over wall time; its count is pinned below


def test_no_warning_noise_on_plain_arrays(data):
    x, y = data
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        compiled_loop().fit((x, y), 1, batch_size=BATCH, verbose=0)
