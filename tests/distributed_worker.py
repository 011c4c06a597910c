"""Train three small models under a strategy and save what they became; run by test_distributed.

``python tests/distributed_worker.py OUT KIND`` where ``KIND`` is

* ``multi-worker``: one worker of the cluster in ``TF_CONFIG``
  (``MultiWorkerMirroredStrategy``); also tries Keras's own ``fit`` under it;
* ``two-devices``: one process, ``MirroredStrategy`` over two logical CPUs;
  also ``fit`` under it;
* ``one``: one process, no strategy (the reference).

Each model starts from the same seed and trains on the same 48 rows in batches
of 8 (the *global* batch), without shuffling and without dropout (each replica
draws its own dropout masks, so dropout could never match one process's): the
dense model 2 epochs, MiniVGGNet one step (its batch norm on random pixels
turns float32 rounding into visible differences within a few steps, even in
one process between two equivalent variance formulas; see
test_distributed.py). ``OUT/KIND-INDEX.npz`` gets every model's weights and
losses.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import tensorflow as tf

OUT, KIND = Path(sys.argv[1]), sys.argv[2]
# The strategy before anything else TensorFlow does (devices and collectives are set up once).
if KIND == "multi-worker":
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    index = json.loads(os.environ["TF_CONFIG"])["task"]["index"]
elif KIND == "two-devices":
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    index = 0
else:
    strategy, index = tf.distribute.get_strategy(), 0

import keras  # noqa: E402

from fitlab import CompiledLoop, MiniVGGNet  # noqa: E402

ROWS, SIZE, CLASSES, BATCH, EPOCHS = 48, 16, 3, 8, 2
rng = np.random.default_rng(0)
x = rng.integers(0, 256, size=(ROWS, SIZE, SIZE, 3)).astype("float32")
y = keras.utils.to_categorical(np.arange(ROWS) % CLASSES, CLASSES)


def dense() -> keras.Model:
    return keras.Sequential(
        [
            keras.Input((SIZE, SIZE, 3)),
            keras.layers.Rescaling(1 / 255),
            keras.layers.Flatten(),
            keras.layers.Dense(16, activation="relu"),
            keras.layers.Dense(CLASSES, activation="softmax"),
        ]
    )


def minivggnet(synchronized: bool) -> keras.Model:
    model = MiniVGGNet.build(SIZE, SIZE, 3, CLASSES, synchronized=synchronized)
    for layer in model.layers:
        if isinstance(layer, keras.layers.Dropout):
            layer.rate = 0.0  # read at call time: these runs compare batch norm, not masks
    return model


# name: (model, epochs, steps per epoch: None for all 6)
RUNS = {
    "dense": (dense, EPOCHS, None),
    "minivggnet_synchronized": (lambda: minivggnet(True), 1, 1),
    "minivggnet_per_replica": (lambda: minivggnet(False), 1, 1),
}


def train(build, epochs: int, steps: int | None) -> tuple[list, list[float]]:
    with strategy.scope():
        keras.utils.set_random_seed(0)
        model = build()
        optimizer = keras.optimizers.SGD(0.05, momentum=0.9)
    loop = CompiledLoop(model, optimizer, "categorical_crossentropy", strategy=strategy)
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(BATCH)
    history = loop.fit(dataset, epochs, steps_per_epoch=steps, verbose=0)
    return [v.numpy() for v in model.trainable_variables], history.history["loss"]


def keras_fit() -> str:
    """Keras's own fit under the strategy: its losses, or the error it raised."""
    with strategy.scope():
        keras.utils.set_random_seed(0)
        model = dense()
        model.compile(keras.optimizers.SGD(0.05, momentum=0.9), "categorical_crossentropy")
    try:
        history = model.fit(x, y, batch_size=BATCH, epochs=EPOCHS, shuffle=False, verbose=0)
    except Exception as error:  # the upstream regression under MultiWorkerMirroredStrategy
        return f"{type(error).__name__}: {error}"[:500]
    return json.dumps(history.history["loss"])


saved = {"replicas": np.array(strategy.num_replicas_in_sync)}
for name, (build, epochs, steps) in RUNS.items():
    weights, losses = train(build, epochs, steps)
    saved[f"{name}/losses"] = np.array(losses)
    for i, w in enumerate(weights):
        saved[f"{name}/w{i}"] = w
saved["fit"] = np.array(keras_fit())
np.savez(OUT / f"{KIND}-{index}.npz", **saved)
print("done", KIND, index, flush=True)
