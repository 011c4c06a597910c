"""LivePlot, its live figure, plot_history and plot_runs without a front end.

Training tests use a tiny model on 4×4 images. Callback logic (throttling, the
status line, the input-wait share) is driven by hand with a fake clock, so the
numbers are exact. ``FITLAB_LIVE=widgets`` exercises the widget path outside a
kernel: the widgets are made and updated (``live.view``), nothing is displayed.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import keras
import matplotlib
import numpy as np
import pytest
from PIL import Image

from fitlab import InputMeter, LivePlot
from fitlab.callbacks.live_figure import LiveFigure
from fitlab.callbacks.live_view import MODE_ENV
from fitlab.plots import plot_history, plot_runs

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
TRAIN_RGB, VAL_RGB = (0xE2, 0x4A, 0x33), (0x34, 0x8A, 0xBD)  # ggplot's first two colours


def _pixels_of(png: bytes, rgb) -> int:
    """How many pixels of a PNG are (nearly) this colour."""
    import io

    pixels = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"), dtype=int)
    return int((np.abs(pixels - np.array(rgb)).sum(axis=-1) < 30).sum())


@pytest.fixture(autouse=True)
def _auto_mode(monkeypatch):
    monkeypatch.delenv(MODE_ENV, raising=False)


@pytest.fixture
def widgets_mode(monkeypatch):
    monkeypatch.setenv(MODE_ENV, "widgets")


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(24, 4, 4, 3)).astype("float32")
    y = keras.utils.to_categorical(np.arange(24) % 3, 3)
    return x, y


def tiny_model(metrics=("accuracy",)) -> keras.Model:
    keras.utils.set_random_seed(1)
    model = keras.Sequential(
        [
            keras.Input((4, 4, 3)),
            keras.layers.Rescaling(1 / 255),
            keras.layers.Flatten(),
            keras.layers.Dense(3, activation="softmax"),
        ]
    )
    model.compile(optimizer="sgd", loss="categorical_crossentropy", metrics=list(metrics))
    return model


class FakeClock:
    def __init__(self):
        self.now = 0.0
        self.reads = 0

    def __call__(self) -> float:
        self.reads += 1
        return self.now


def drive(live, epochs, steps, *, clock=None, tick=0.125, logs=None, on_batch=None,
          after_batch=None, val=True):  # fmt: skip
    """Call the hooks as fit does; the fake clock moves ``tick`` s per batch."""
    logs = logs or (lambda e, b: {"loss": 1.0 / (e + 1 + b / 10), "accuracy": 0.1 * (e + 1)})
    live.set_params({"epochs": epochs, "steps": steps, "verbose": 0})
    live.on_train_begin()
    for epoch in range(epochs):
        live.on_epoch_begin(epoch)
        for batch in range(steps):
            if clock is not None:
                clock.now += tick
            if on_batch is not None:
                on_batch(epoch, batch)
            live.on_train_batch_end(batch, logs(epoch, batch))
            if after_batch is not None:
                after_batch(epoch, batch)
        epoch_logs = dict(logs(epoch, steps))
        if val:
            live.on_test_begin()
            epoch_logs.update(
                {f"val_{k}": v * 1.1 for k, v in logs(epoch, steps).items() if k != "learning_rate"}
            )
        live.on_epoch_end(epoch, epoch_logs)
    live.on_train_end(epoch_logs)


# ---------------------------------------------------------------- text mode


def test_text_mode_prints_a_line_per_epoch_and_saves_the_figure(data, tmp_path, capsys):
    x, y = data
    live = LivePlot(batch_size=8, save_to=tmp_path / "plots" / "live.png")
    history = tiny_model().fit(
        x, y, epochs=2, batch_size=8, validation_split=0.25, verbose=0, callbacks=[live]
    )
    lines = capsys.readouterr().out.splitlines()
    assert live.mode == "text"
    assert history is live  # the run's History: fit keeps no second copy
    assert [line.split(" - ")[0] for line in lines[:2]] == ["epoch 1/2", "epoch 2/2"]
    for line in lines[:2]:
        names = [part.split(" ")[0] for part in line.split(" - ")[2:6]]
        assert names == ["loss", "accuracy", "val_loss", "val_accuracy"], line
        assert line.endswith("img/s"), line  # 3 batches of batch_size=8 per epoch
    assert lines[2] == f"saved figure to {tmp_path / 'plots' / 'live.png'}"
    saved = tmp_path / "plots" / "live.png"
    assert saved.read_bytes().startswith(PNG_MAGIC)
    assert Image.open(saved).size == (792, 297)  # two panels at the live size
    assert _pixels_of(saved.read_bytes(), TRAIN_RGB) > 100  # the curves are in it
    assert [p.name for p in saved.parent.iterdir()] == ["live.png"]  # no temp file left
    assert live.epoch == [0, 1] and len(live.history["val_loss"]) == 2
    assert live.figure is None  # released at the end


def test_text_mode_batch_lines_only_when_asked(capsys):
    clock = FakeClock()
    live = LivePlot(every_n_batches=4, min_interval=0.5)
    live.clock = clock
    drive(live, epochs=1, steps=16, clock=clock, tick=0.125)
    out = capsys.readouterr().out.splitlines()
    # every 4 batches (0.5 s apart, so the throttle lets each through)
    assert [line.split(" - ")[0] for line in out[:-1]] == [
        f"  batch {n}/16" for n in (4, 8, 12, 16)
    ]
    assert out[-1].startswith("epoch 1/1 - 2.0s - loss")

    live = LivePlot()  # the default: epochs only
    drive(live, epochs=2, steps=16)
    assert [line[:9] for line in capsys.readouterr().out.splitlines()] == ["epoch 1/2", "epoch 2/2"]


def test_status_shows_images_per_second_and_the_input_wait_share(capsys, widgets_mode):
    clock, meter = FakeClock(), InputMeter()
    # every_n_batches=100 > the 8 steps: batch-level status updates, no batch redraws
    live = LivePlot(total_epochs=4, meter=meter, every_n_batches=100)
    live.clock = clock
    statuses = []

    def on_batch(epoch, batch):
        meter.add(0.0625, images=8)  # half of each 0.125 s batch spent waiting for input

    def after_batch(epoch, batch):
        statuses.append(live.view.status.value)

    drive(live, epochs=2, steps=8, clock=clock, on_batch=on_batch, after_batch=after_batch)
    # Status updates at most every 0.5 s: in epoch 2 at 1.125 s and 1.625 s (after batch 5 of
    # 8): 0.625 s into the epoch, 40 images, 0.3125 s waited; 1 s per epoch so far.
    assert (
        "epoch 2 / 4 · batch 5/8 · elapsed 0:02 · ETA 0:02 · 64 img/s · input wait 50%"
        in (statuses[-1])
    )
    assert live.redraws == 3  # the empty panels and two epochs
    assert capsys.readouterr().out == ""  # widgets mode prints nothing


class _Untouchable(dict):
    """Logs that fail the test if anything reads them."""

    def __getitem__(self, key):
        raise AssertionError("the batch logs were read")

    def items(self):
        raise AssertionError("the batch logs were read")


@pytest.mark.parametrize("every_n_batches", [None, 100])
def test_per_epoch_mode_does_no_work_per_batch(widgets_mode, every_n_batches):
    clock = FakeClock()
    live = LivePlot(total_epochs=4, every_n_batches=every_n_batches, min_interval=0.0)
    live.clock = clock
    live.set_params({"epochs": 4, "steps": 50, "verbose": 0})
    live.on_train_begin()
    live.on_epoch_begin(0)
    before = (clock.reads, live.redraws, live.view.status.value)
    for batch in range(50):
        clock.now += 0.125
        live.on_train_batch_end(batch, _Untouchable() if every_n_batches is None else {})
    after = (clock.reads, live.redraws, live.view.status.value)
    if every_n_batches is None:
        assert after == before  # no clock read, no redraw, no status update, logs unread
    else:  # the check can fail: with batch updates on, each batch reads the clock
        assert after[0] >= before[0] + 50 and after[2] != before[2]


def test_per_epoch_mode_updates_the_status_per_epoch(widgets_mode):
    clock, meter = FakeClock(), InputMeter()
    live = LivePlot(total_epochs=4, meter=meter)
    live.clock = clock
    statuses = []
    live.on_epoch_end = _after(live.on_epoch_end, lambda: statuses.append(live.view.status.value))
    drive(live, epochs=2, steps=8, clock=clock, on_batch=lambda e, b: meter.add(0.0625, images=8))
    assert (
        "epoch 2 / 4 · batch 8/8 · elapsed 0:02 · ETA 0:02 · 64 img/s · input wait 50%"
        in (statuses[-1])
    )


def _after(hook, then):
    def wrapped(*args, **kwargs):
        hook(*args, **kwargs)
        then()

    return wrapped


def test_text_line_carries_the_meter_figures(capsys):
    clock, meter = FakeClock(), InputMeter()
    live = LivePlot(meter=meter)
    live.clock = clock
    drive(live, epochs=1, steps=4, clock=clock, tick=0.5,
          on_batch=lambda e, b: meter.add(0.1, images=16))  # fmt: skip
    line = capsys.readouterr().out.splitlines()[0]
    assert line.startswith("epoch 1/1 - 2.0s - loss")
    assert line.endswith(" - 32 img/s - input wait 20%"), line


@pytest.mark.parametrize(("batch_size", "rate"), [(8, "16 img/s"), (None, "2.0 batches/s")])
def test_images_per_second_from_the_batch_size_else_batches(capsys, batch_size, rate):
    clock = FakeClock()
    live = LivePlot(batch_size=batch_size)
    live.clock = clock
    drive(live, epochs=1, steps=4, clock=clock, tick=0.5)  # 4 batches in 2 s
    line = capsys.readouterr().out.splitlines()[0]
    assert line.endswith(f" - {rate}"), line


# ---------------------------------------------------------------- widgets mode


def test_widgets_mode_updates_one_image_in_place(data, widgets_mode):
    x, y = data
    seen = []

    class Spy(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            image = live.view.image
            seen.append((live.figure, image, bytes(image.value), live.redraws, live.view.box))

    live = LivePlot()
    tiny_model().fit(x, y, epochs=3, batch_size=8, verbose=0, callbacks=[live, Spy()])
    figures, images, pngs, redraws, boxes = zip(*seen, strict=True)
    assert live.mode == "widgets"
    assert all(f is figures[0] for f in figures)  # one Figure, reused
    assert all(i is images[0] for i in images)  # one Image widget, updated in place
    assert all(p.startswith(PNG_MAGIC) for p in pngs) and len(set(pngs)) == 3
    assert all(_pixels_of(p, TRAIN_RGB) > 20 and _pixels_of(p, VAL_RGB) < 5 for p in pngs)
    assert redraws == (2, 3, 4)  # the empty panels first, then one per epoch
    assert live.redraws == 4  # the end shows the last epoch's image again, not a new one
    assert images[0].layout.width == "792px" and images[0].layout.height == "297px"
    assert images[0].comm is None and images[0].value == b""  # emptied and closed at the end
    assert boxes[0].layout.display == "none"  # hidden: plain outputs keep the figure and status
    assert live.figure is None


def test_no_pyplot_figures_are_made(data, widgets_mode):
    import matplotlib.pyplot as plt

    x, y = data
    before = plt.get_fignums()
    tiny_model().fit(x, y, epochs=2, batch_size=8, verbose=0, callbacks=[LivePlot()])
    plot_history({"loss": [1.0, 0.5], "accuracy": [0.1, 0.2]})
    plot_runs({"a": {"loss": [1.0, 0.5]}})
    assert plt.get_fignums() == before


def test_batch_redraws_are_throttled(widgets_mode):
    clock = FakeClock()
    live = LivePlot(every_n_batches=1, min_interval=0.5)
    live.clock = clock
    drive(live, epochs=1, steps=24, clock=clock, tick=0.125, val=False)
    # the first image at 0 s; batches at 0.125, 0.625, 1.125, 1.625, 2.125, 2.625 s; the end
    assert live.redraws == 1 + 6 + 1

    live = LivePlot(every_n_batches=10, min_interval=0.0)
    live.clock = clock
    drive(live, epochs=1, steps=30, clock=clock, tick=0.125, val=False)
    assert live.redraws == 1 + 3 + 1  # after batches 10, 20, 30


def test_slow_redraws_are_spaced_to_a_share_of_the_time(widgets_mode, monkeypatch):
    clock = FakeClock()
    real_png = LiveFigure.png

    def slow_png(self):
        clock.now += 0.15  # a machine where drawing the figure costs 150 ms
        return real_png(self)

    monkeypatch.setattr(LiveFigure, "png", slow_png)
    live = LivePlot(every_n_batches=1, min_interval=0.5)
    live.clock = clock
    drive(live, epochs=1, steps=80, clock=clock, tick=0.125, val=False)
    # 10 s of batches; redraws may take 3 % of the time, so one per 5 s (after the first
    # batch, then near 5 s and 10 s), not one per 0.5 s; plus the first image and the end
    assert live.redraws == 1 + 3 + 1


def test_metric_names_acc_accuracy_and_others(widgets_mode):
    def keras2_logs(epoch, batch):
        return {"loss": 1.0, "acc": 0.5, "learning_rate": 0.01}

    live = LivePlot()
    live.on_epoch_end = _after(live.on_epoch_end, lambda: _keep_titles(live))
    drive(live, epochs=1, steps=2, logs=keras2_logs)
    assert live.titles == ["loss", "accuracy"]  # Keras 2's "acc" drawn as accuracy; no lr panel
    assert sorted(live.history) == ["acc", "learning_rate", "loss", "val_acc", "val_loss"]

    def more_logs(epoch, batch):
        return {"accuracy": 0.5, "loss": 1.0, "mae": 0.3, "top_k_categorical_accuracy": 0.9}

    live = LivePlot(log_loss=True)
    live.on_epoch_end = _after(live.on_epoch_end, lambda: _keep_titles(live))
    drive(live, epochs=2, steps=2, logs=more_logs)
    assert live.titles == ["loss", "accuracy", "mae", "top k categorical accuracy"]
    assert live.yscales[0] == "log"


def _keep_titles(live):
    live.titles = [ax.get_title() for ax in live.figure.axes]
    live.yscales = [ax.get_yscale() for ax in live.figure.axes]


def test_a_run_without_epochs_ends_cleanly(tmp_path, widgets_mode):
    live = LivePlot(save_to=tmp_path / "live.png")
    live.set_params({"epochs": 3, "steps": 4, "verbose": 0})
    live.on_train_begin()
    with pytest.warns(UserWarning, match="no epoch ended, so nothing was saved to"):
        live.on_train_end()
    assert not (tmp_path / "live.png").exists()
    assert live.figure is None and live.history == {}


def test_validation_every_other_epoch_keeps_epochs_aligned(data):
    x, y = data
    live = LivePlot()
    tiny_model().fit(x, y, epochs=4, batch_size=8, verbose=0, validation_split=0.25,
                     validation_freq=2, callbacks=[live])  # fmt: skip
    assert len(live.history["loss"]) == len(live.history["val_loss"]) == 4
    assert [math.isnan(v) for v in live.history["val_loss"]] == [True, False, True, False]
    fig = plot_history(live)
    val_line = next(line for line in fig.axes[0].lines if line.get_label() == "val_loss")
    assert list(val_line.get_xdata()) == [2, 4]


def test_a_run_from_the_start_replaces_the_old_one_a_resumed_run_continues(capsys):
    live = LivePlot()
    drive(live, epochs=3, steps=2)
    live.set_params({"epochs": 5, "steps": 2, "verbose": 0})  # resumed: initial_epoch=3
    live.on_train_begin()
    for epoch in (3, 4):
        live.on_epoch_begin(epoch)
        live.on_epoch_end(epoch, {"loss": 0.5, "mae": 0.1})
    live.on_train_end()
    assert live.epoch == [0, 1, 2, 3, 4]
    assert live.history["loss"][3:] == [0.5, 0.5]
    assert math.isnan(live.history["val_loss"][4]) and math.isnan(live.history["mae"][2])
    assert {len(values) for values in live.history.values()} == {5}  # a value per epoch
    drive(live, epochs=2, steps=2, val=False)  # a new run from epoch 0
    assert live.epoch == [0, 1] and sorted(live.history) == ["accuracy", "loss"]


@pytest.mark.parametrize("log_loss", [False, True])
def test_long_runs_stay_in_view_and_redraw_the_frame_rarely(log_loss):
    # The tutorial's shape: val_loss far above loss at first, then both falling.
    live = LiveFigure(total_epochs=75, log_loss=log_loss)
    live.layout(["loss", "accuracy"])
    history, out_of_view = {}, []
    for epoch in range(75):
        loss = 2.8 / (1 + 0.15 * epoch)
        logs = {"loss": loss, "accuracy": 0.9 - 0.8 / (1 + 0.1 * epoch),
                "val_loss": 25.0 if epoch == 0 else loss * 1.1}  # fmt: skip
        for key, value in logs.items():
            history.setdefault(key, []).append(value)
        live.update(list(range(1, epoch + 2)), history, {})
        assert live.png().startswith(PNG_MAGIC)
        for ax in live.figure.axes:
            low, high = ax.get_ylim()
            ys = np.concatenate([line.get_ydata() for line in ax.lines])
            out_of_view.extend(y for y in ys if not low <= y <= high)
    assert out_of_view == []
    assert live.full_draws <= 20  # the frame (ticks, titles) is kept between most redraws


def _rss_bytes() -> int:  # current, not peak (ru_maxrss)
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.skipif(not Path("/proc/self/statm").exists(), reason="needs Linux /proc")
def test_redraws_reuse_everything(widgets_mode):
    # 40 redraws here (kept fast); `python -m fitlab bench live` measures RSS over 500
    clock = FakeClock()
    live = LivePlot(every_n_batches=1, min_interval=0.0)
    live.clock = clock
    counts, rss = [], []

    def after_batch(epoch, batch):
        if batch in (9, 39):
            fig = live.figure
            counts.append([len(fig.axes)] + [len(ax.get_children()) for ax in fig.axes])
            rss.append(_rss_bytes())

    drive(live, epochs=1, steps=40, clock=clock, tick=1.0, after_batch=after_batch, val=False)
    assert live.redraws == 1 + 40 + 1
    assert counts[0] == counts[1]  # no artist piles up
    assert rss[1] - rss[0] < 4 * 2**20, f"RSS grew {(rss[1] - rss[0]) / 2**20:.1f} MiB"


# ---------------------------------------------------------------- other loops


def test_fit_on_a_generator(data, capsys):
    x, y = data

    def batches():
        while True:
            for i in range(0, len(x), 8):
                yield x[i : i + 8], y[i : i + 8]

    live, keras_history = LivePlot(), keras.callbacks.History()
    tiny_model().fit(batches(), steps_per_epoch=3, epochs=2, shuffle=False, verbose=0,
                     callbacks=[keras_history, live])  # fmt: skip
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(" - ")[0] for line in lines] == ["epoch 1/2", "epoch 2/2"]
    assert all(line.endswith(" batches/s") for line in lines), lines  # no batch_size, no meter
    assert live.epoch == keras_history.epoch == [0, 1]
    assert live.history == keras_history.history  # what Keras's own History keeps


def test_train_on_batches(data, capsys):
    from fitlab import train_on_batches

    x, y = data
    meter = InputMeter()
    live = LivePlot(meter=meter)
    history = train_on_batches(
        tiny_model(), (x, y), epochs=2, batch_size=8, verbose=0,
        validation_data=(x[:8], y[:8]), callbacks=[live], meter=meter,
    )  # fmt: skip
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(" - ")[0] for line in lines] == ["epoch 1/2", "epoch 2/2"]
    assert "input wait" in lines[0] and "img/s" in lines[0]  # images counted by the meter
    assert history is live


def test_compiled_loop(data, widgets_mode):
    from fitlab import CompiledLoop

    x, y = data
    model = tiny_model()
    loop = CompiledLoop(model, keras.optimizers.SGD(), "categorical_crossentropy")
    live = LivePlot(save_to=None)
    history = loop.fit((x, y), epochs=2, batch_size=8, verbose=0,
                       validation_data=(x[:8], y[:8]), callbacks=[live])  # fmt: skip
    assert live.redraws == 3  # the empty panels, then one per epoch
    assert history is live
    assert {"loss", "val_loss"} <= set(live.history)


# ---------------------------------------------------------------- plot_history / plot_runs

HISTORY = {
    "loss": [2.0, 1.5, 1.1],
    "val_loss": [2.2, 1.8, 1.4],
    "accuracy": [0.2, 0.4, 0.6],
    "val_accuracy": [0.1, 0.3, 0.5],
}


def test_plot_history_is_the_tutorial_figure(tmp_path):
    fig = plot_history(HISTORY, tmp_path / "plot.png")
    ax = fig.axes[0]
    assert ax.get_title() == "Training Loss and Accuracy"
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("Epoch #", "Loss/Accuracy")
    labels = [line.get_label() for line in ax.lines]
    assert labels == ["train_loss", "val_loss", "train_acc", "val_acc"]
    assert list(ax.lines[3].get_ydata()) == HISTORY["val_accuracy"]
    assert list(ax.lines[0].get_xdata()) == [1, 2, 3]
    assert ax.get_facecolor() == matplotlib.colors.to_rgba("#E5E5E5")  # ggplot
    assert Image.open(tmp_path / "plot.png").size == (640, 480)


def test_plot_history_reads_keras2_names_history_objects_and_json(tmp_path, data):
    keras2 = {"loss": [1.0, 0.5], "acc": [0.3, 0.6], "val_loss": [1.2, 0.7], "val_acc": [0.2, 0.5]}
    labels = [line.get_label() for line in plot_history(keras2).axes[0].lines]
    assert labels == ["train_loss", "val_loss", "train_acc", "val_acc"]

    x, y = data
    history = tiny_model().fit(x, y, epochs=2, initial_epoch=0, verbose=0)
    assert len(plot_history(history).axes[0].lines) == 2  # loss and accuracy, no validation

    plain = tmp_path / "history.json"
    plain.write_text(json.dumps(HISTORY))
    wrapped = tmp_path / "wrapped.json"
    wrapped.write_text(json.dumps({"history": HISTORY, "epoch": [5, 6, 7], "method": "fit"}))
    assert len(plot_history(str(plain)).axes[0].lines) == 4
    assert list(plot_history(wrapped).axes[0].lines[0].get_xdata()) == [6, 7, 8]


def test_plot_history_errors_name_the_file_and_the_fix(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.json: no such history file"):
        plot_history(tmp_path / "nope.json")
    bad = tmp_path / "bad.json"
    bad.write_text('{"loss": [1.0,\n  oops]}')
    with pytest.raises(ValueError, match=r"bad.json, line 2: not valid JSON"):
        plot_history(bad)
    with pytest.raises(ValueError, match=r"\['val_loss'\] have fewer values than the 3 epochs"):
        plot_history({"loss": [1, 2, 3], "val_loss": [1, 2]})
    with pytest.raises(ValueError, match="history is empty"):
        plot_history({})
    with pytest.raises(ValueError, match="'loss' holds 'x'"):
        plot_history({"loss": ["x"]})
    with pytest.raises(ValueError, match="no loss or accuracy"):
        plot_history({"mae": [1.0]})
    with pytest.raises(TypeError, match="expected a keras History"):
        plot_history(42)


def test_plot_runs_one_colour_per_run(tmp_path):
    other = {k: [v * 0.9 for v in vals] for k, vals in HISTORY.items()}
    fig = plot_runs({"fit": HISTORY, "train_on_batch": other}, tmp_path / "runs.svg")
    loss_ax, acc_ax = fig.axes
    assert (loss_ax.get_title(), acc_ax.get_title()) == ("Loss", "Accuracy")
    labels = [line.get_label() for line in loss_ax.lines]
    assert labels == ["fit", "fit (val)", "train_on_batch", "train_on_batch (val)"]
    colours = [line.get_color() for line in acc_ax.lines]
    assert colours[0] == colours[1] != colours[2] == colours[3]
    assert [line.get_linestyle() for line in acc_ax.lines] == ["-", "--", "-", "--"]
    assert (tmp_path / "runs.svg").read_text().lstrip().startswith("<?xml")
    with pytest.raises(ValueError, match="at least one run"):
        plot_runs({})
    with pytest.raises(ValueError, match="run 'bad'"):
        plot_runs({"bad": {"loss": [1, 2], "accuracy": [1]}})


# ---------------------------------------------------------------- arguments


def test_bad_arguments_are_refused(monkeypatch):
    with pytest.raises(ValueError, match="every_n_batches=0"):
        LivePlot(every_n_batches=0)
    with pytest.raises(ValueError, match="min_interval=-1"):
        LivePlot(min_interval=-1)
    with pytest.raises(TypeError, match="pass a fitlab.InputMeter"):
        LivePlot(meter=object())
    with pytest.raises(ValueError, match="batch_size=0"):
        LivePlot(batch_size=0)
    monkeypatch.setenv(MODE_ENV, "browser")
    with pytest.raises(ValueError, match="FITLAB_LIVE='browser'"):
        LivePlot()
