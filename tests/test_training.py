"""train_on_batches: fit's epoch loop, written out over train_on_batch.

A tiny dense model keeps these fast; the MiniVGGNet runs are in
test_equivalence.py and test_resume.py.
"""

from __future__ import annotations

import json
import time
import warnings

import keras
import numpy as np
import pytest

from fitlab import InputMeter, ResumableCheckpoint, resume_from, train_on_batches
from fitlab.engine import BatchStream

ROWS, FEATURES, CLASSES, BATCH = 24, 4, 3, 8


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(ROWS, FEATURES)).astype("float32")
    y = keras.utils.to_categorical(np.arange(ROWS) % CLASSES, CLASSES)
    return x, y


def tiny_model(seed: int = 0) -> keras.Model:
    keras.utils.set_random_seed(seed)
    model = keras.Sequential(
        [
            keras.Input((FEATURES,)),
            keras.layers.Dense(8, activation="relu"),
            keras.layers.Dropout(0.2),
            keras.layers.Dense(CLASSES, activation="softmax"),
        ]
    )
    model.compile(
        optimizer=keras.optimizers.SGD(0.1, momentum=0.9),
        loss="categorical_crossentropy",
        metrics=["accuracy"],
        jit_compile=False,
    )
    return model


class Recorder(keras.callbacks.Callback):
    """Writes down every hook call, as (hook, index) pairs."""

    def __init__(self):
        super().__init__()
        self.events = []

    def _note(self, name, index=None):
        self.events.append((name, index))

    def on_train_begin(self, logs=None):
        self._note("train_begin")

    def on_train_end(self, logs=None):
        self._note("train_end")

    def on_epoch_begin(self, epoch, logs=None):
        self._note("epoch_begin", epoch)

    def on_epoch_end(self, epoch, logs=None):
        self._note("epoch_end", epoch)
        self.last_epoch_logs = dict(logs)

    def on_train_batch_begin(self, batch, logs=None):
        self._note("train_batch_begin", batch)

    def on_train_batch_end(self, batch, logs=None):
        self._note("train_batch_end", batch)

    def on_test_begin(self, logs=None):
        self._note("test_begin")

    def on_test_end(self, logs=None):
        self._note("test_end")

    def on_test_batch_begin(self, batch, logs=None):
        self._note("test_batch_begin", batch)

    def on_test_batch_end(self, batch, logs=None):
        self._note("test_batch_end", batch)


def test_same_epoch_logs_and_weights_as_fit(data):
    x, y = data
    by_fit = tiny_model()
    fitted = by_fit.fit(
        x, y, batch_size=BATCH, epochs=2, shuffle=False, validation_data=(x, y), verbose=0
    )
    by_hand = tiny_model()
    history = train_on_batches(
        by_hand, (x, y), 2, batch_size=BATCH, validation_data=(x, y), verbose=0
    )
    assert sorted(history.history) == ["accuracy", "loss", "val_accuracy", "val_loss"]
    assert history.history == fitted.history  # float for float: fit's float32 means
    assert history.epoch == [0, 1]
    assert by_hand.history is history
    for a, b in zip(by_hand.get_weights(), by_fit.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_callbacks_called_exactly_as_fit_calls_them(data):
    x, y = data
    by_fit, by_hand = Recorder(), Recorder()
    tiny_model().fit(
        x,
        y,
        batch_size=BATCH,
        epochs=2,
        shuffle=False,
        verbose=0,
        validation_data=(x[:10], y[:10]),
        callbacks=[by_fit],
    )
    train_on_batches(
        tiny_model(),
        (x, y),
        2,
        batch_size=BATCH,
        verbose=0,
        validation_data=(x[:10], y[:10]),
        callbacks=[by_hand],
    )
    assert by_hand.events == by_fit.events
    assert by_hand.last_epoch_logs.keys() == by_fit.last_epoch_logs.keys()


def test_early_stopping_ends_training_as_in_fit(data):
    x, y = data

    def stopper():
        # Demands an impossible improvement: stops after epoch 1 + patience.
        return keras.callbacks.EarlyStopping(monitor="loss", min_delta=10.0, patience=1)

    fitted = tiny_model().fit(
        x, y, batch_size=BATCH, epochs=10, shuffle=False, verbose=0, callbacks=[stopper()]
    )
    history = train_on_batches(
        tiny_model(), (x, y), 10, batch_size=BATCH, verbose=0, callbacks=[stopper()]
    )
    assert len(history.epoch) == len(fitted.epoch) == 2


def test_stop_training_mid_epoch_ends_after_that_batch(data):
    x, y = data

    class StopAtSecondBatch(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if batch == 1:
                self.model.stop_training = True

    recorder = Recorder()
    history = train_on_batches(
        tiny_model(),
        (x, y),
        5,
        batch_size=BATCH,
        verbose=0,
        callbacks=[StopAtSecondBatch(), recorder],
    )
    assert history.epoch == [0]
    assert [e for e in recorder.events if e[0] == "train_batch_end"] == [
        ("train_batch_end", 0),
        ("train_batch_end", 1),
    ]
    assert recorder.events[-2:] == [("epoch_end", 0), ("train_end", None)]


def test_model_checkpoint_saves_a_loadable_model_each_epoch(data, tmp_path):
    x, y = data
    path = tmp_path / "epoch-{epoch}.keras"
    model = tiny_model()
    train_on_batches(
        model,
        (x, y),
        2,
        batch_size=BATCH,
        verbose=0,
        callbacks=[keras.callbacks.ModelCheckpoint(str(path))],
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["epoch-1.keras", "epoch-2.keras"]
    restored = keras.models.load_model(tmp_path / "epoch-2.keras")
    np.testing.assert_array_equal(restored.predict(x, verbose=0), model.predict(x, verbose=0))


def batches_of(x, y, order):
    for i in order:
        yield x[i * BATCH : (i + 1) * BATCH], y[i * BATCH : (i + 1) * BATCH]


def test_generator_keeps_its_position_between_epochs(data):
    """No finite-generator trap: every batch is trained on once, in order."""
    x, y = data
    pulled = []

    def generator():
        for i in range(6):  # 6 batches = 2 epochs of 3: finite, and exactly enough
            pulled.append(i)
            j = i % 3
            yield x[j * BATCH : (j + 1) * BATCH], y[j * BATCH : (j + 1) * BATCH]

    seen = Recorder()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "ran out of data"
        history = train_on_batches(
            tiny_model(), generator(), 2, steps_per_epoch=3, verbose=0, callbacks=[seen]
        )
    assert pulled == [0, 1, 2, 3, 4, 5]
    assert history.epoch == [0, 1]
    assert sum(1 for e in seen.events if e[0] == "train_batch_end") == 6


def test_generator_running_dry_stops_training_with_a_warning(data):
    x, y = data
    with pytest.warns(UserWarning, match="ran out of data after 1 of 3 steps in epoch 2"):
        history = train_on_batches(
            tiny_model(), batches_of(x, y, [0, 1, 2, 0]), 5, steps_per_epoch=3, verbose=0
        )
    assert history.epoch == [0, 1]  # epoch 2 trained its one batch, then training stopped


def test_validation_generator_gives_fresh_batches_each_epoch(data):
    """Keras 2's behaviour, not Keras 3 fit's re-chained first batches."""
    x, y = data
    pulled = []

    def validation():
        i = 0
        while True:
            pulled.append(i)
            yield x[:BATCH], y[:BATCH]
            i += 1

    train_on_batches(
        tiny_model(),
        (x, y),
        3,
        batch_size=BATCH,
        verbose=0,
        validation_data=validation(),
        validation_steps=2,
    )
    assert pulled == [0, 1, 2, 3, 4, 5]


def test_pydataset_is_read_by_index_and_told_each_epoch_end(data):
    x, y = data

    class Source(keras.utils.PyDataset):
        def __init__(self):
            super().__init__()
            self.reads, self.epoch_ends = [], 0

        def __len__(self):
            return 3

        def __getitem__(self, index):
            self.reads.append(index)
            return x[index * BATCH : (index + 1) * BATCH], y[index * BATCH : (index + 1) * BATCH]

        def on_epoch_end(self):
            self.epoch_ends += 1

    source = Source()
    history = train_on_batches(tiny_model(), source, 2, verbose=0)
    assert source.reads == [0, 1, 2, 0, 1, 2]
    assert source.epoch_ends == 2
    assert history.params["steps"] == 3


def test_tf_data_repeating_dataset_continues_where_it_stopped(data):
    tf = pytest.importorskip("tensorflow")
    x, y = data
    index = tf.data.Dataset.range(ROWS // BATCH).repeat()
    dataset = index.map(
        lambda i: (
            tf.fill([BATCH, FEATURES], tf.cast(i, "float32")),
            tf.one_hot(tf.fill([BATCH], i % CLASSES), CLASSES),
        )
    )
    seen = []
    stream = BatchStream(dataset, steps=2)
    for _ in range(3):
        seen.append([int(batch[0][0, 0]) for batch in stream.epoch()])
    assert seen == [[0, 1], [2, 0], [1, 2]]
    finite = BatchStream(tf.data.Dataset.from_tensor_slices((x, y)).batch(BATCH))
    assert finite.num_batches == 3
    history = train_on_batches(tiny_model(), dataset, 2, steps_per_epoch=2, verbose=0)
    assert history.epoch == [0, 1]


def test_meter_gets_every_wait(data):
    x, y = data

    def slow_batches():  # each batch keeps the loop waiting at least 10 ms
        while True:
            for start in range(0, ROWS, BATCH):
                time.sleep(0.01)
                yield x[start : start + BATCH], y[start : start + BATCH]

    meter = InputMeter()
    steps = ROWS // BATCH
    train_on_batches(tiny_model(), slow_batches(), 2, steps_per_epoch=steps, verbose=0, meter=meter)
    assert (meter.batches, meter.images) == (2 * steps, 2 * ROWS)
    assert meter.wait_s >= 2 * steps * 0.01


def test_initial_epoch_numbers_the_epochs_as_fit_does(data):
    x, y = data
    history = train_on_batches(
        tiny_model(), (x, y), 4, initial_epoch=2, batch_size=BATCH, verbose=0
    )
    assert history.epoch == [2, 3]


def test_progress_bar_prints_fit_style_lines(data, capsys):
    x, y = data
    train_on_batches(tiny_model(), (x, y), 2, batch_size=BATCH, verbose=2)
    out = capsys.readouterr().out
    assert "Epoch 1/2" in out and "Epoch 2/2" in out and "loss:" in out


@pytest.mark.parametrize(
    ("source", "kwargs", "message"),
    [
        ("generator", {}, "steps_per_epoch"),
        ("array", {}, "tuple"),
        ("pydataset_batch_size", {"batch_size": 4}, "batch_size applies to"),
        ("object", {}, "a object is not a data source"),
    ],
)
def test_bad_input_is_named_with_the_fix(data, source, kwargs, message):
    x, y = data
    sources = {
        "generator": batches_of(x, y, [0, 1]),
        "array": x,
        "pydataset_batch_size": [(x, y)],
        "object": object(),
    }
    with pytest.raises((ValueError, TypeError), match=message):
        train_on_batches(tiny_model(), sources[source], 1, verbose=0, **kwargs)


def test_uncompiled_model_is_refused(data):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((FEATURES,)), keras.layers.Dense(CLASSES)])
    with pytest.raises(ValueError, match="model.compile"):
        train_on_batches(model, data, 1, verbose=0)


def test_resumable_checkpoint_resumes_where_it_stopped(data, tmp_path):
    """In-process: see test_resume.py for the SIGKILLed subprocess."""
    x, y = data
    directory = tmp_path / "ckpt"
    assert resume_from(directory) is None
    straight = tiny_model()
    full = train_on_batches(straight, (x, y), 3, batch_size=BATCH, verbose=0)

    first = tiny_model()
    train_on_batches(
        first, (x, y), 2, batch_size=BATCH, verbose=0, callbacks=[ResumableCheckpoint(directory)]
    )
    resumed = resume_from(directory)
    assert resumed.initial_epoch == 2
    assert resumed.model.optimizer.iterations.numpy() == 2 * ROWS // BATCH
    checkpoint = ResumableCheckpoint(directory)
    rest = train_on_batches(
        resumed.model,
        (x, y),
        3,
        initial_epoch=resumed.initial_epoch,
        batch_size=BATCH,
        verbose=0,
        callbacks=[checkpoint],
    )
    assert rest.epoch == [2]
    assert checkpoint.history == full.history
    for a, b in zip(resumed.model.get_weights(), straight.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)  # dropout's seed state came back too
    files = sorted(p.name for p in directory.iterdir())
    assert files == ["checkpoint.json", "epoch-0003.keras", "epoch-0003.rng.npz"]


def test_checkpoint_refuses_to_mix_runs(data, tmp_path):
    x, y = data
    train_on_batches(
        tiny_model(),
        (x, y),
        1,
        batch_size=BATCH,
        verbose=0,
        callbacks=[ResumableCheckpoint(tmp_path)],
    )
    with pytest.raises(ValueError, match="initial_epoch=1"):
        train_on_batches(
            tiny_model(),
            (x, y),
            1,
            batch_size=BATCH,
            verbose=0,
            callbacks=[ResumableCheckpoint(tmp_path)],
        )
    (tmp_path / "checkpoint.json").write_text(json.dumps({"epochs": 1}))
    with pytest.raises(ValueError, match="not a fitlab checkpoint"):
        resume_from(tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("method", "augment", "recipe"),
    [
        ("fit", True, "tutorial"),
        ("generator", False, "improved"),
        ("batch", False, "tutorial"),
        ("loop", False, "improved"),
    ],
)
def test_train_tutorial_writes_every_output(
    tiny_flowers, tmp_path, method, augment, recipe, capsys
):
    """Every method end to end (augmentation is the same model layers for all)."""
    from fitlab import train_tutorial

    out = tmp_path / f"run-{method}"
    result = train_tutorial(
        method,
        epochs=1,
        batch_size=8,
        seed=3,
        recipe=recipe,
        out=out,
        augment=augment,
        files=tiny_flowers,
    )
    assert {"accuracy", "macro_f1", "wall_s", "epochs", "method", "seed", "paths"} <= set(result)
    assert (result["method"], result["recipe"], result["seed"], result["epochs"]) == (
        method,
        recipe,
        3,
        1,
    )
    for score in ("accuracy", "macro_f1", "tta_accuracy", "tta_macro_f1"):
        assert 0.0 <= result[score] <= 1.0
    assert sorted(p.name for p in out.iterdir()) == [
        ".fitlab-train.lock",  # one run at a time in a folder; empty, kept
        "checkpoint",  # what a rerun resumes from
        "history.json",
        "model.keras",
        "plot.png",
        "report.txt",
        "result.json",
    ]
    assert json.loads((out / "result.json").read_text())["accuracy"] == result["accuracy"]
    report = (out / "report.txt").read_text()
    assert "tulip" in report and report in capsys.readouterr().out
    recorded = json.loads((out / "history.json").read_text())["history"]
    assert sorted(recorded) == ["accuracy", "loss", "val_accuracy", "val_loss"]
    assert len(recorded["loss"]) == 1
    assert (out / "plot.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    model = keras.models.load_model(out / "model.keras")
    assert model.output_shape == (None, 3)


def test_train_tutorial_refuses_an_unknown_method(tmp_path):
    from fitlab import train_tutorial

    with pytest.raises(ValueError, match="method must be one of"):
        train_tutorial("fit_generator", out=tmp_path)


def test_pydataset_workers_it_cannot_use_are_not_silently_ignored(data):
    x, y = data

    class Threaded(keras.utils.PyDataset):
        def __len__(self):
            return 1

        def __getitem__(self, index):
            return x, y

    with pytest.warns(UserWarning, match="workers=2; this loop reads its batches by index"):
        train_on_batches(tiny_model(), Threaded(workers=2), 1, verbose=0)
