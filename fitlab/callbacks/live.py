"""``LivePlot``: the training curves, drawn while Keras trains.

``LivePlot`` is a Keras callback, and the ``keras.callbacks.History`` of the
run it watches: ``model.fit`` returns it, so the run's per-epoch logs are kept
once. In a Jupyter kernel it shows one output that is updated in place — a
status line, a progress bar and a PNG of one reused matplotlib figure inside
``ipywidgets`` (:mod:`fitlab.callbacks.live_view`) — and, when training ends,
hides it and leaves the final figure as a plain image and the final status
line as a printed line, so a notebook exported to HTML still shows both.
Anywhere else (a script, ``python -m fitlab``, CI) it prints one
compact text line per epoch. Either way it can save the final figure
(``save_to=``). The figure itself is :mod:`fitlab.callbacks.live_figure`'s;
the figures of a finished run are :mod:`fitlab.plots`'.

How fast training goes is shown as images/s when LivePlot can count the
images — from the ``meter=`` your data source fills, or as batches ×
``batch_size=`` — and as batches/s otherwise.

Examples
--------
>>> import keras, numpy as np, pathlib, tempfile
>>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
>>> model.compile(optimizer="sgd", loss="mse")
>>> live = LivePlot(batch_size=4, save_to=pathlib.Path(tempfile.mkdtemp()) / "live.png")
>>> history = model.fit(np.zeros((8, 2)), np.zeros(8), batch_size=4, epochs=2, verbose=0,
...                     callbacks=[live])  # doctest: +ELLIPSIS
epoch 1/2 - ...s - loss 0 - ... img/s
epoch 2/2 - ...s - loss 0 - ... img/s
saved figure to .../live.png
>>> history is live, live.epoch, live.history["loss"]
(True, [0, 1], [0.0, 0.0])
"""

from __future__ import annotations

import math
import os
import time
import warnings
from collections.abc import Callable, Mapping
from typing import Any

import keras
import numpy as np
from matplotlib.figure import Figure

from fitlab.callbacks.live_figure import LEARNING_RATE_KEYS, LiveFigure, metric_names
from fitlab.callbacks.live_view import WidgetView, choose_mode

# Batch-level redraws may take at most this share of the wall time (the goal is <= 5 %).
_REDRAW_BUDGET = 0.03

_Logs = Mapping[str, Any] | None  # what Keras passes to a hook


class LivePlot(keras.callbacks.History):
    """Loss and metric curves, drawn while Keras trains.

    Works with ``model.fit`` (arrays, generators, ``PyDataset``, ``tf.data``),
    :func:`fitlab.train_on_batches` and :class:`fitlab.CompiledLoop`. It is a
    ``keras.callbacks.History``: each of them returns it as the run's history.

    Parameters
    ----------
    total_epochs : int, optional
        The ``N`` of "epoch k / N"; defaults to the ``epochs`` given to ``fit``.
    log_loss : bool
        Draw the loss panel on a log scale.
    every_n_batches : int, optional
        Also redraw after every ``N`` batches (the running epoch averages), at
        most once per ``min_interval`` seconds, and spaced so that drawing takes
        at most 3 % of the time (a redraw costing 60 ms waits 2 s for the next).
        In text mode: print a batch line instead. Default: once per epoch, and
        then LivePlot has no batch hook at all.
    min_interval : float
        Fewest seconds between two batch-level updates: redraws, text lines
        and the status line (elapsed, ETA, images/s) alike.
    meter : fitlab.InputMeter, optional
        The meter your data source fills; the status shows the share of
        training time spent waiting for input, and images/s from its count.
    batch_size : int, optional
        The batch size training uses: without a meter that counts images, the
        status shows images/s as batches × ``batch_size`` (a smaller last batch
        counts as a full one). Without either it shows batches/s.
    save_to : path, optional
        Save the final figure there when training ends (atomically).

    Attributes
    ----------
    history, epoch : dict, list
        The per-epoch logs, as in ``keras.callbacks.History``, with two rules
        a plot needs: every list has one value per epoch (NaN where an epoch
        did not log the key, e.g. with ``validation_freq``), and a run that
        starts again from an earlier epoch replaces the old one (a run resumed
        with ``initial_epoch`` continues it). Only numbers are kept.
    mode : str
        ``"widgets"`` in a Jupyter kernel, else ``"text"``; see ``FITLAB_LIVE``.
        Set it before training to override.
    redraws : int
        Figures rendered so far.
    figure : matplotlib.figure.Figure or None
        The live figure while training runs (widgets mode); released at the end.
    view : fitlab.callbacks.live_view.WidgetView or None
        In widgets mode, while training runs: the status line, progress bar
        and image widgets (``view.status``, ``view.progress``, ``view.image``).
        When training ends they hide, and the final figure and status line
        are left as plain outputs.
    clock : callable
        Seconds for every time LivePlot shows (``time.perf_counter``); a test
        may swap in a fake one.

    Examples
    --------
    >>> live = LivePlot(log_loss=True, every_n_batches=10)
    >>> isinstance(live, keras.callbacks.History), live.mode, live.history
    (True, 'text', {})

    A whole run is in the module's example.
    """

    clock: Callable[[], float] = staticmethod(time.perf_counter)

    def __init__(
        self,
        total_epochs: int | None = None,
        *,
        log_loss: bool = False,
        every_n_batches: int | None = None,
        min_interval: float = 0.5,
        meter: Any = None,
        batch_size: int | None = None,
        save_to: str | os.PathLike | None = None,
    ) -> None:
        super().__init__()
        if total_epochs is not None and total_epochs < 1:
            raise ValueError(f"total_epochs={total_epochs}: needs at least 1 epoch")
        if every_n_batches is not None and every_n_batches < 1:
            raise ValueError(f"every_n_batches={every_n_batches}: use None or a positive count")
        if min_interval < 0:
            raise ValueError(f"min_interval={min_interval}: needs 0 or more seconds")
        if meter is not None and not hasattr(meter, "wait_s"):
            raise TypeError(f"meter={meter!r} has no wait_s; pass a fitlab.InputMeter")
        if batch_size is not None and batch_size < 1:
            raise ValueError(f"batch_size={batch_size}: use None or a positive count")
        self.total_epochs = total_epochs
        self.log_loss = log_loss
        self.every_n_batches = every_n_batches
        self.min_interval = min_interval
        self.meter = meter
        self.batch_size = batch_size
        self.save_to = save_to
        self.mode = choose_mode()
        if every_n_batches is None:
            # No batch hook: the inherited one, which Keras marks as not overridden.
            # Keras dispatches batch callbacks off the training thread (on backends
            # that allow it) only when no callback overrides the hook, so a
            # per-epoch plot costs nothing between epochs. The status updates per epoch.
            self.on_train_batch_end = super().on_train_batch_end
        self.epoch: list[int] = []  # History makes it only in on_train_begin
        self.redraws = 0
        self.figure: Figure | None = None
        self.view: WidgetView | None = None
        self._live: LiveFigure | None = None
        self._batch_points: dict[str, list[tuple[float, float]]] = {}

    # -- keras hooks ----------------------------------------------------------

    def on_train_begin(self, logs: _Logs = None) -> None:
        # Not History's, which empties `epoch` but keeps `history`: a run resumed
        # with initial_epoch continues the curves; one from the start replaces them.
        params = self.params or {}
        self._epochs_total = self.total_epochs or params.get("epochs")
        self._steps = params.get("steps")
        self._t_start = self.clock()
        self._next_update = self._next_redraw = -math.inf
        self._batches_since_plot = 0
        self._epoch_seconds: list[float] = []
        self._first_epoch: int | None = None
        self._epoch_index = 0
        self._batches = 0
        self._wait_share: float | None = None
        self._rate_text = ""
        self._last_png: bytes | None = None
        if self.mode == "widgets":
            self._draw_figure(metric_names(self.history) if self.history else None)
            # a cheap first image; the panels come with the first epoch
            png = self._live.placeholder_png("training… the curves appear after the first epoch")
            self.redraws += 1
            self.view = WidgetView(self._live.pixels, png)

    def on_epoch_begin(self, epoch: int, logs: _Logs = None) -> None:
        if self._first_epoch is None:
            self._first_epoch = epoch
        self._epoch_index = epoch
        self._batches = self._batches_since_plot = 0
        self._batch_points = {}
        self._t_epoch = self.clock()
        self._meter_at_epoch = self._meter_snapshot()
        self._train_part_done = False

    def on_train_batch_end(self, batch: int, logs: _Logs = None) -> None:
        self._batches = batch + 1
        self._batches_since_plot += 1
        now = self.clock()
        if now < self._next_update:
            return  # the common case, kept cheap: at most one update per min_interval
        wants_plot = (
            self.every_n_batches is not None
            and self._batches_since_plot >= self.every_n_batches
            and now >= self._next_redraw
        )
        if self.mode == "text" and not wants_plot:
            return  # text mode prints epochs only, unless batch updates were asked for
        self._next_update = now + self.min_interval
        self._measure(now)
        logs = logs or {}
        if wants_plot and self._steps:
            x = self._epoch_index + self._batches / self._steps  # epoch k ends at x = k
            for key, value in logs.items():
                if not key.startswith("val_") and _is_number(value):
                    self._batch_points.setdefault(key, []).append((x, float(value)))
        if self.mode == "text":
            self._batches_since_plot = 0
            self._print(f"  batch {self._batch_text()} - {self._logs_text(logs)}{self._rates()}")
            return
        self.view.set_status(self._status_text(), self._fraction())
        if wants_plot:
            self._redraw()

    def on_test_begin(self, logs: _Logs = None) -> None:
        # Validation inside fit: the training part of the epoch is over, and the
        # rates and the input-wait share are of that part alone.
        if not getattr(self, "_train_part_done", True):
            self._measure(self.clock())
            self._train_part_done = True

    def on_epoch_end(self, epoch: int, logs: _Logs = None) -> None:
        now = self.clock()
        if not self._train_part_done:  # no validation ran
            self._measure(now)
            self._train_part_done = True
        self._epoch_seconds.append(now - self._t_epoch)
        self._batches = self._batches or self._steps or 0  # the whole epoch ran
        self._record(epoch, logs or {})
        self._batch_points = {}
        if self.mode == "text":
            self._print(self._epoch_line(epoch, logs or {}))
            return
        names = metric_names(self.history)
        if self._live.names != names:  # the model logs other metrics than first drawn
            self._draw_figure(names)
        self.view.set_status(self._status_text(end_of_epoch=True), self._fraction(True))
        self._redraw()

    def on_train_end(self, logs: _Logs = None) -> None:
        if self.view is not None:
            if self.history:  # the last epoch's image: on_epoch_end drew this very state
                self.view.finish(self._last_png, self._status_text(end_of_epoch=True, done=True))
            else:
                self.view.finish(png=None, status=None)
            self.view = None
        if self.save_to is not None and not self.history:
            warnings.warn(f"LivePlot: no epoch ended, so nothing was saved to {self.save_to}",
                          stacklevel=2)  # fmt: skip
        if self.save_to is not None and self.history:
            if self._live is None:  # text mode draws only now, once
                self._draw_figure(metric_names(self.history))
                self._live.update(self._epoch_numbers(), self.history, {})
            path = self._live.save(self.save_to)
            if self.mode == "text":
                self._print(f"saved figure to {path}")
        if self._live is not None:  # training is over: release the figure
            self._live.close()
            self._live = self.figure = None

    # -- bookkeeping ----------------------------------------------------------

    def _record(self, epoch: int, logs: Mapping[str, Any]) -> None:
        """Keep this epoch's numbers by the rules of the class's ``history``.

        ``History.on_epoch_end`` is not used: it keeps whatever is logged, leaves
        a list short where an epoch skipped its key, and needs a model, which
        hooks driven by hand (the tests, ``python -m fitlab bench live``) lack.
        """
        if self.epoch and epoch <= self.epoch[-1]:  # a new run from the start: forget the old
            self.history, self.epoch = {}, []
        n = len(self.epoch)
        for key, value in logs.items():
            if _is_number(value):
                self.history.setdefault(key, [math.nan] * n).append(float(value))
        for values in self.history.values():
            if len(values) == n:  # a key this epoch did not log (e.g. validation_freq)
                values.append(math.nan)
        self.epoch.append(epoch)

    def _epoch_numbers(self) -> list[int]:
        return [e + 1 for e in self.epoch]

    def _meter_snapshot(self) -> tuple[float, float] | None:
        if self.meter is None:
            return None
        return float(self.meter.wait_s), float(getattr(self.meter, "images", 0) or 0)

    def _measure(self, now: float) -> None:
        """Images/s (or batches/s) and the input-wait share of this epoch's training part."""
        seconds = max(now - self._t_epoch, 1e-9)
        meter_now = self._meter_snapshot()
        batches = self._batches or self._steps  # per-epoch updates count no batch: all ran
        images = None
        if meter_now is not None and meter_now[1] > self._meter_at_epoch[1]:
            images = meter_now[1] - self._meter_at_epoch[1]
        elif self.batch_size is not None and batches:
            images = batches * self.batch_size
        if images:
            self._rate_text = f"{images / seconds:,.0f} img/s"
        elif batches:
            self._rate_text = f"{batches / seconds:,.1f} batches/s"
        if meter_now is not None:
            waited = meter_now[0] - self._meter_at_epoch[0]
            self._wait_share = min(max(waited / seconds, 0.0), 1.0)

    def _rates(self) -> str:
        parts = [self._rate_text] if self._rate_text else []
        if self._wait_share is not None:
            parts.append(f"input wait {self._wait_share:.0%}")
        return "".join(f" - {p}" for p in parts)

    # -- text -----------------------------------------------------------------

    def _batch_text(self) -> str:
        return f"{self._batches}/{self._steps}" if self._steps else f"{self._batches}"

    def _epoch_line(self, epoch: int, logs: Mapping[str, Any]) -> str:
        total = f"/{self._epochs_total}" if self._epochs_total else ""
        seconds = self._epoch_seconds[-1]
        return f"epoch {epoch + 1}{total} - {seconds:.1f}s - {self._logs_text(logs)}{self._rates()}"

    @staticmethod
    def _logs_text(logs: Mapping[str, Any]) -> str:
        keys = [k for k, v in logs.items() if _is_number(v) and k not in LEARNING_RATE_KEYS]
        # loss first, then the metrics, then the same for validation (Keras sorts by name)
        keys.sort(key=lambda k: (k.startswith("val_"), k not in ("loss", "val_loss")))
        return " - ".join(f"{k} {_value_text(float(logs[k]))}" for k in keys)

    def _status_text(self, end_of_epoch: bool = False, done: bool = False) -> str:
        k = self._epoch_index + 1
        total = f" / {self._epochs_total}" if self._epochs_total else ""
        elapsed = self.clock() - self._t_start
        parts = [f"epoch {k}{total}"]
        if self._batches:  # unknown between epochs when batches are not watched
            parts.append(f"batch {self._batch_text()}")
        parts.append(f"elapsed {_clock_text(elapsed)}")
        eta = 0.0 if done else self._eta(end_of_epoch)
        if eta is not None:
            parts.append("done" if done else f"ETA {_clock_text(eta)}")
        if self._rate_text:
            parts.append(self._rate_text)
        if self._wait_share is not None:
            parts.append(f"input wait {self._wait_share:.0%}")
        return " · ".join(parts)

    def _eta(self, end_of_epoch: bool) -> float | None:
        if not self._epochs_total:
            return None
        epochs_left = self._epochs_total - (self._epoch_index + 1)
        if self._epoch_seconds:
            per_epoch = sum(self._epoch_seconds) / len(self._epoch_seconds)
        elif self._steps and self._batches:
            per_epoch = (self.clock() - self._t_epoch) / self._batches * self._steps
        else:
            return None
        in_this_epoch = 0.0
        if not end_of_epoch:
            in_this_epoch = max(per_epoch - (self.clock() - self._t_epoch), 0.0)
        return max(epochs_left, 0) * per_epoch + in_this_epoch

    def _fraction(self, epoch_done: bool = False) -> float | None:
        if not self._epochs_total:
            return None
        first = self._epoch_index if self._first_epoch is None else self._first_epoch
        span = max(self._epochs_total - first, 1)
        within = 1.0 if epoch_done else (self._batches / self._steps if self._steps else 0.0)
        return (self._epoch_index - first + within) / span

    @staticmethod
    def _print(line: str) -> None:
        print(line, flush=True)

    # -- figure ---------------------------------------------------------------

    def _draw_figure(self, names: list[str] | None) -> None:
        """Lay out the panels; later calls re-lay the same Figure (one figure per callback)."""
        names = names or ["loss", "accuracy"]  # what the workbook's models log
        if self._live is None:
            self._live = LiveFigure(self._epochs_total, self.log_loss)
        self._live.layout(names)
        self.figure = self._live.figure

    def _redraw(self) -> None:
        start = self.clock()
        self._live.update(self._epoch_numbers(), self.history, self._batch_points)
        png = self._live.png()
        self.redraws += 1
        if self.view is not None:
            self.view.show(png, self._live.pixels)
        # Batch-level redraws keep to a share of the time: a slow machine gets fewer.
        cost = self.clock() - start
        self._next_redraw = start + max(self.min_interval, cost / _REDRAW_BUDGET)
        self._batches_since_plot = 0
        self._last_png = png


def _is_number(value: Any) -> bool:
    if np.ndim(value) != 0:
        return False
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True


def _clock_text(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def _value_text(value: float) -> str:
    return f"{value:.4g}" if math.isfinite(value) else "nan"
