"""Backend-neutral: on JAX without TensorFlow, everything not TensorFlow by nature works.

Each test runs a child Python with ``KERAS_BACKEND=jax`` in which TensorFlow
cannot be imported (a ``sys.meta_path`` finder refuses every ``tensorflow*``
module, as if it were not installed), so the parent's TensorFlow is no help.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import pytest
from no_tensorflow import BLOCK_TENSORFLOW

from fitlab.config import TENSORFLOW_REQUIREMENT, needs_tensorflow

pytest.importorskip("jax")

ROOT = Path(__file__).resolve().parents[1]


TRAIN_WITHOUT_TENSORFLOW = """
import math
import sys
from pathlib import Path

import keras
import numpy as np

import fitlab
from fitlab import (
    TUTORIAL_AUGMENTATION, CSVSequence, LivePlot, MiniVGGNet, ResumableCheckpoint,
    classes_from_csv, csv_image_generator, legacy_sgd, load_csv, make_augmentation,
    make_synthetic_csv, predict_all, report, train_on_batches,
)
from fitlab.compat import fit_generator
from fitlab.data.labels import encode_labels, one_hot_rows

assert keras.backend.backend() == "jax", keras.backend.backend()
folder = Path(sys.argv[1])
train_csv = make_synthetic_csv(folder / "train.csv", rows=24, size=32)
test_csv = make_synthetic_csv(folder / "test.csv", rows=9, size=32, seed=1)
classes = classes_from_csv(train_csv)
x_test, test_labels = load_csv(test_csv)
y_test = one_hot_rows(encode_labels(test_labels, classes, test_csv), len(classes))


def check(history, how):
    assert len(history.history["loss"]) == 2, (how, history.history)
    assert all(math.isfinite(v) for v in history.history["loss"]), (how, history.history)


# The tutorial's augmentation (fitlab's own shear layer included) runs on JAX; called
# eagerly here, as XLA takes 20 s on two cores to compile its affine warps into a step.
tutorial = make_augmentation(**TUTORIAL_AUGMENTATION, seed=0)
warped = np.asarray(tutorial(x_test[:4].astype("float32"), training=True))
assert warped.shape == (4, 32, 32, 3) and not np.allclose(warped, x_test[:4])

# One model trained on by each method in turn: JAX compiles its training step once.
keras.utils.set_random_seed(0)
augmentation = make_augmentation(horizontal_flip=True, seed=0)
net = MiniVGGNet.build(32, 32, 3, len(classes), augmentation=augmentation)
net.compile(optimizer=legacy_sgd(0.01, momentum=0.9), loss="categorical_crossentropy",
            metrics=["accuracy"])
live = LivePlot()
checkpoint = ResumableCheckpoint(folder / "checkpoint", settings={"backend": "jax"})
train = CSVSequence(train_csv, 8, classes=classes, shuffle=True, seed=0)
check(net.fit(train, epochs=2, validation_data=(x_test, y_test),
              callbacks=[live, checkpoint], verbose=0), "fit")
assert live.mode == "text" and len(live.history["val_loss"]) == 2
assert checkpoint.epochs_done == 2

resumed = fitlab.resume_from(folder / "checkpoint")
assert resumed.initial_epoch == 2 and resumed.settings == {"backend": "jax"}

train = CSVSequence(train_csv, 8, classes=classes, shuffle=True, seed=0)
check(train_on_batches(net, train, epochs=2, validation_data=(x_test, y_test),
                       callbacks=[LivePlot()], verbose=0), "train_on_batches")

generator = csv_image_generator(train_csv, 8, classes)
check(fit_generator(net, generator, steps_per_epoch=3, epochs=2, verbose=0),
      "fit_generator")

probabilities = predict_all(net, csv_image_generator(test_csv, 4, classes, mode="eval"))
assert probabilities.shape == (9, len(classes)), probabilities.shape
assert np.allclose(predict_all(net, x_test, batch_size=4), probabilities, atol=1e-5)
text = report(y_test, probabilities, classes)
assert all(name in text for name in classes), text

leaked = sorted(name for name in sys.modules if name.startswith("tensorflow"))
assert not leaked, leaked
print("trained on jax without tensorflow")
"""

CSV_DATASET_WITHOUT_TENSORFLOW = """
import fitlab

try:
    fitlab.csv_dataset
except ImportError as exc:
    print(exc)
else:
    raise SystemExit("csv_dataset imported without TensorFlow")
"""


def run_child(code: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {**os.environ, "KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu"}
    env.pop("XLA_FLAGS", None)
    done = subprocess.run(
        [sys.executable, "-c", BLOCK_TENSORFLOW + textwrap.dedent(code), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done


@pytest.mark.slow
def test_jax_without_tensorflow_trains_by_every_method_that_needs_no_tensorflow(tmp_path):
    done = run_child(TRAIN_WITHOUT_TENSORFLOW, str(tmp_path))
    assert "trained on jax without tensorflow" in done.stdout


def test_csv_dataset_without_tensorflow_says_so_in_one_line():
    done = run_child(CSV_DATASET_WITHOUT_TENSORFLOW, timeout=60)
    message = done.stdout.strip()
    assert "\n" not in message
    assert message == str(needs_tensorflow("csv_dataset (a tf.data pipeline)"))
    assert "csv_dataset" in message and "pip install" in message and "CSVSequence" in message


def test_the_install_line_names_the_tensorflow_pyproject_pins():
    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert TENSORFLOW_REQUIREMENT in dependencies
