"""CSVSequence under Keras's worker processes: trains, reports errors, leaves nothing behind."""

from __future__ import annotations

import multiprocessing
import os
import time
from pathlib import Path

import keras
import numpy as np
import pytest

from fitlab import CSVSequence, InputMeter, load_csv, make_synthetic_csv

pytestmark = pytest.mark.timeout(240)
SIZE = 8


@pytest.fixture
def csv80(tmp_path):
    return make_synthetic_csv(tmp_path / "t.csv", rows=80, size=SIZE, seed=4)


def _model():
    model = keras.Sequential(
        [keras.Input((SIZE, SIZE, 3)), keras.layers.Rescaling(1 / 255), keras.layers.Flatten(),
         keras.layers.Dense(3, activation="softmax")]
    )  # fmt: skip
    model.compile(optimizer="sgd", loss="categorical_crossentropy")
    return model


def _child_pids() -> set[int]:
    """Our live child processes, from /proc (zombies excluded)."""
    children = set()
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            fields = dict(line.split(":\t", 1) for line in status.read_text().splitlines())
        except (OSError, ValueError):
            continue
        if int(fields.get("PPid", "0")) == os.getpid() and not fields["State"].startswith("Z"):
            children.add(int(status.parent.name))
    return children


def _assert_no_workers_left(timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not multiprocessing.active_children() and not _child_pids():
            return
        time.sleep(0.2)
    raise AssertionError(
        f"worker processes left behind: {multiprocessing.active_children()} {_child_pids()}"
    )


class FailsOnBatch(CSVSequence):
    def __getitem__(self, i):
        if i == 5:
            raise RuntimeError("batch 5 could not be loaded")
        return super().__getitem__(i)


class Interrupt(keras.callbacks.Callback):
    def on_train_batch_end(self, batch, logs=None):
        if batch == 3:
            raise KeyboardInterrupt


class EpochMeter(keras.callbacks.Callback):
    """What the meter counted during each epoch (Keras reads 2 batches before epoch 1)."""

    def __init__(self, meter: InputMeter):
        super().__init__()
        self.meter, self.epochs = meter, []

    def on_epoch_begin(self, epoch, logs=None):
        self.meter.reset()

    def on_epoch_end(self, epoch, logs=None):
        self.epochs.append((self.meter.batches, self.meter.images, self.meter.wait_s))


def _sleepy(batch):
    time.sleep(0.02)
    return batch


def test_four_worker_processes_train_every_row_each_epoch(csv80):
    meter = InputMeter()
    seq = CSVSequence(csv80, 8, shuffle=True, seed=0, cache=True, meter=meter, augment=_sleepy,
                      workers=4, use_multiprocessing=True)  # fmt: skip
    epochs = EpochMeter(meter)
    history = _model().fit(seq, epochs=3, verbose=0, callbacks=[epochs])
    assert len(history.history["loss"]) == 3
    assert np.isfinite(history.history["loss"]).all()
    # The workers are forked processes, yet the meter they share counted every
    # batch of every epoch, and each batch's loading time as a quarter of the pool's.
    assert [(batches, images) for batches, images, _ in epochs.epochs] == [(10, 80)] * 3
    assert all(wait_s >= 10 * 0.02 / 4 for _, _, wait_s in epochs.epochs)
    _assert_no_workers_left()
    # ...and the cache they filled is this process's: the file changed, the rows did not.
    images = load_csv(csv80)[0]
    csv80.write_bytes(csv80.read_bytes().translate(bytes.maketrans(b"01", b"10")))
    seq.augment = None
    for i in range(len(seq)):
        np.testing.assert_array_equal(seq[i][0], images[seq.rows_of_batch(i)])


def test_an_error_in_a_worker_reaches_the_caller_and_no_worker_is_left(csv80):
    seq = FailsOnBatch(csv80, 8, workers=4, use_multiprocessing=True)
    with pytest.raises(Exception, match="batch 5 could not be loaded"):
        _model().fit(seq, epochs=2, verbose=0)
    _assert_no_workers_left()


def test_keyboard_interrupt_leaves_no_worker(csv80):
    seq = CSVSequence(csv80, 8, workers=4, use_multiprocessing=True)
    with pytest.raises(KeyboardInterrupt):
        _model().fit(seq, epochs=2, verbose=0, callbacks=[Interrupt()])
    _assert_no_workers_left()


def test_csv_format_error_from_a_worker_keeps_file_and_line(csv80, tmp_path):
    lines = csv80.read_bytes().splitlines()
    lines[50] = lines[50].replace(b",", b",300,", 1).rsplit(b",", 1)[0]
    path = tmp_path / "bad.csv"
    path.write_bytes(b"\n".join(lines) + b"\n")
    seq = CSVSequence(path, 8, workers=2, use_multiprocessing=True)
    with pytest.raises(Exception, match=r"bad\.csv, line 51: value 300 in column 2 is outside"):
        _model().fit(seq, epochs=1, verbose=0)
    _assert_no_workers_left()


def test_close_stops_workers_of_an_abandoned_iteration(csv80):
    from fitlab._private import pydataset_adapter

    with CSVSequence(csv80, 8, workers=2, use_multiprocessing=True) as seq:
        adapter = pydataset_adapter(seq)
        adapter.on_epoch_begin()
        next(iter(adapter.get_numpy_iterator()))  # then walk away mid-epoch
    _assert_no_workers_left()
