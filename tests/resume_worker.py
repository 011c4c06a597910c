"""Train MiniVGGNet with a ResumableCheckpoint; resume if the checkpoint exists.

Run by test_resume.py as ``python tests/resume_worker.py DIR EPOCHS``. It
appends ``begin N`` / ``end N`` lines to ``DIR/epochs.log`` (``end`` after the
checkpoint is committed) and, when training is done, writes the full history
and the final weights to ``DIR/final.json`` and ``DIR/final.npz``.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from fitlab import MiniVGGNet, ResumableCheckpoint, legacy_sgd, resume_from

SIZE, ROWS, BATCH, CLASSES, SEED = 16, 32, 8, 3, 5


class EpochLog(keras.callbacks.Callback):
    """Appends each epoch's begin and end to a log, durably."""

    def __init__(self, path: Path):
        super().__init__()
        self.path = path

    def _write(self, line: str) -> None:
        with open(self.path, "a") as log:
            log.write(line + "\n")
            log.flush()
            os.fsync(log.fileno())

    def on_epoch_begin(self, epoch, logs=None):
        self._write(f"begin {epoch}")

    def on_epoch_end(self, epoch, logs=None):
        self._write(f"end {epoch}")


def data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(ROWS, SIZE, SIZE, 3), dtype=np.uint8)
    y = keras.utils.to_categorical(np.arange(ROWS) % CLASSES, CLASSES)
    return x, y


def main(directory: Path, epochs: int) -> None:
    tf.config.experimental.enable_op_determinism()
    x, y = data()
    resumed = resume_from(directory / "ckpt")
    if resumed is None:
        keras.utils.set_random_seed(SEED)
        model = MiniVGGNet.build(SIZE, SIZE, 3, CLASSES)
        model.compile(
            optimizer=legacy_sgd(),
            loss="categorical_crossentropy",
            metrics=["accuracy"],
            jit_compile=False,
        )
        start = 0
    else:
        model, start = resumed.model, resumed.initial_epoch
    checkpoint = ResumableCheckpoint(directory / "ckpt")
    model.fit(
        x,
        y,
        batch_size=BATCH,
        epochs=epochs,
        initial_epoch=start,
        shuffle=False,
        verbose=0,
        callbacks=[checkpoint, EpochLog(directory / "epochs.log")],
    )
    np.savez(directory / "final.npz", *model.get_weights())
    (directory / "final.json").write_text(json.dumps(checkpoint.history))


if __name__ == "__main__":
    main(Path(sys.argv[1]), int(sys.argv[2]))
