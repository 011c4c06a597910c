"""The figure ``LivePlot`` redraws while training runs: a panel per metric, blitted.

:class:`LiveFigure` is one matplotlib figure that is made once and redrawn in
place, cheaply enough to redraw it between batches: the frame (axes, ticks,
titles, the legend) is kept as a bitmap and only the lines are drawn on it,
and panel limits move only when the data needs it. :func:`metric_names` says
which panels a history needs. The figure is made without pyplot, like
:mod:`fitlab.plots`' figures, and in the same style.

Examples
--------
>>> metric_names(["loss", "accuracy", "val_loss", "val_accuracy", "learning_rate"])
['loss', 'accuracy']
"""

from __future__ import annotations

import io
import math
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib import style as mpl_style
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter, MaxNLocator
from PIL import Image as PILImage

from fitlab.plots import STYLE, finite_points, save_figure

#: Log keys that are settings rather than results (logged by schedulers): never a panel.
LEARNING_RATE_KEYS = ("lr", "learning_rate")

_PANEL_INCHES = (4.4, 3.3)
_LIVE_DPI = 90
_MARKERS_UP_TO = 30  # epochs; beyond, a dot per epoch blurs the line


def metric_names(keys: Iterable[str]) -> list[str]:
    """One name per panel: ``loss`` first, then each metric once, ``val_`` stripped.

    Examples
    --------
    >>> metric_names(["accuracy", "val_loss", "loss", "mae", "lr"])
    ['loss', 'accuracy', 'mae']
    """
    names: list[str] = []
    for key in keys:
        base = key[4:] if key.startswith("val_") else key
        if base not in names and base not in LEARNING_RATE_KEYS:
            names.append(base)
    return sorted(names, key=lambda n: n != "loss")  # stable: keeps the log order otherwise


class LiveFigure:
    """One Agg figure with a panel per metric, drawn in two layers.

    The frame (axes, ticks, titles, the one legend above the panels) is drawn
    in full only when it changes — a panel's limits moved, a kind of line
    appeared — and kept as a bitmap; an ordinary update pastes the bitmap back
    and draws only the lines on it (blitting), several times cheaper than a
    full draw. Limits are sticky: they grow when the data
    leaves them and shrink only when the data fills less than half of them, so
    most updates keep the frame. Lines are made once and updated in place.

    Parameters
    ----------
    total_epochs : int, optional
        The x axis spans this many epochs from the start (else it grows).
    log_loss : bool
        Draw the ``loss`` panel on a log scale.

    Attributes
    ----------
    figure : matplotlib.figure.Figure
        The one figure, reused by every :meth:`layout` and redraw.
    names : list of str
        The panels, in order.
    axes, lines : dict
        Each panel's ``Axes`` by name; each line by log key (``batch:loss`` for
        the running epoch's).
    full_draws : int
        Redraws that drew the whole frame rather than the lines alone.

    Examples
    --------
    >>> live = LiveFigure(total_epochs=3, log_loss=False)
    >>> live.layout(["loss", "accuracy"])
    >>> live.update([1, 2], {"loss": [1.0, 0.7], "val_loss": [1.1, 0.9],
    ...                      "accuracy": [0.4, 0.6]}, {})
    >>> png = live.png()
    >>> png[:4], live.pixels, live.full_draws
    (b'\\x89PNG', (792, 297), 1)
    >>> live.update([1, 2, 3], {"loss": [1.0, 0.7, 0.6], "val_loss": [1.1, 0.9, 0.8],
    ...                         "accuracy": [0.4, 0.6, 0.7]}, {})
    >>> png = live.png()  # the data stays inside the limits: only the lines are drawn
    >>> live.full_draws
    1
    """

    def __init__(self, total_epochs: int | None, log_loss: bool):
        self.total_epochs, self.log_loss = total_epochs, log_loss
        self.figure = Figure(dpi=_LIVE_DPI)
        self.canvas = FigureCanvasAgg(self.figure)
        self.names: list[str] = []
        self.axes: dict[str, Any] = {}
        self.lines: dict[str, Any] = {}
        self.full_draws = 0
        self._frame = None  # the bitmap of everything but the lines
        self._legend = None

    def layout(self, names: list[str]) -> None:
        """(Re)make the panels on the same Figure: ``loss`` first, at most three a row."""
        self.figure.clear()
        self.names, self.axes, self.lines = list(names), {}, {}
        self._frame = self._legend = None
        ncols = min(len(names), 3)
        nrows = math.ceil(len(names) / ncols)
        self.figure.set_size_inches(_PANEL_INCHES[0] * ncols, _PANEL_INCHES[1] * nrows)
        with mpl_style.context(STYLE):
            for i, name in enumerate(names):
                ax = self.figure.add_subplot(nrows, ncols, i + 1)
                ax.set_title(_pretty(name))
                ax.set_xlabel("Epoch #")
                ax.xaxis.set_major_locator(MaxNLocator(integer=True))
                if name == "loss" and self.log_loss:
                    ax.set_yscale("log")
                    # plain numbers (0.5, 1, 2) read better than 5×10⁻¹
                    ax.yaxis.set_major_formatter(FuncFormatter(_log_tick_text(ax)))
                    ax.yaxis.set_minor_formatter(FuncFormatter(_log_tick_text(ax)))
                self.axes[name] = ax
            # Fixed margins (in pixels, room for "0.0001"): tight_layout on every draw
            # would cost time and make the panels jump as tick labels change.
            width, height = self.pixels
            self.figure.subplots_adjust(
                left=62 / width, right=1 - 12 / width, bottom=42 / height, top=1 - 46 / height,
                wspace=62 * ncols / (width - 74), hspace=70 * nrows / (height - 70),
            )  # fmt: skip

    @property
    def pixels(self) -> tuple[int, int]:
        """The image's width and height in pixels."""
        w, h = self.figure.get_size_inches() * self.figure.dpi
        return round(w), round(h)

    def _line(self, key: str, name: str):
        """The line for one log key, made the first time the key shows up."""
        if key not in self.lines:
            kind = "train (running)" if key.startswith("batch:") else (
                "validation" if key.startswith("val_") else "train")  # fmt: skip
            with mpl_style.context(STYLE):  # "C0" means the style's first colour
                (self.lines[key],) = self.axes[name].plot(
                    [], [], animated=True, **_LINE_STYLES[kind]
                )
        return self.lines[key]

    def _draw_legend(self) -> None:
        """One legend for all panels, above them: no line can run under it."""
        labels = [k for k in _LINE_STYLES if any(ln.get_label() == k for ln in self.lines.values())]
        if self._legend is not None:
            if [t.get_text() for t in self._legend.get_texts()] == labels:
                return
            self._legend.remove()
        handles = [Line2D([], [], **_LINE_STYLES[label]) for label in labels]
        self._legend = self.figure.legend(
            handles=handles, loc="upper center", bbox_to_anchor=(0.5, 1.0),
            ncol=max(len(handles), 1), frameon=False,
        )  # fmt: skip

    def update(
        self,
        epochs: Sequence[int],
        history: Mapping[str, Sequence[float]],
        batch_points: Mapping[str, Sequence[tuple[float, float]]],
    ) -> None:
        """Point every line at the current values; move a panel's limits only when needed.

        ``history`` holds a value per epoch in ``epochs`` (1-based; NaN where a
        key has none); ``batch_points`` the running epoch's ``(x, value)`` points
        per panel, drawn as a faint line (x = 2.5: halfway through epoch 3).
        Nothing is drawn until :meth:`png`.
        """
        for key, values in history.items():
            name = key[4:] if key.startswith("val_") else key
            if name in self.axes:
                line = self._line(key, name)
                line.set_data(*finite_points(epochs, values))
                line.set_marker("o" if len(epochs) <= _MARKERS_UP_TO else "")  # dots would crowd
        for name in self.axes:  # the running line: this epoch's points, or none once it ends
            points, key = batch_points.get(name), f"batch:{name}"
            if points or key in self.lines:
                xs, ys = zip(*points, strict=True) if points else ((), ())
                self._line(key, name).set_data(*finite_points(list(xs), list(ys)))
        right = max(self.total_epochs or 0, max(epochs, default=1), 2)
        for name, ax in self.axes.items():
            limits = [(0.8, right + 0.2), _y_limits(name, ax)]
            for current, wanted, setter in zip(
                (ax.get_xlim(), ax.get_ylim()), limits, (ax.set_xlim, ax.set_ylim), strict=True
            ):
                if wanted is not None and not np.allclose(current, wanted):
                    setter(*wanted)
                    self._frame = None  # ticks move: the frame must be drawn again

    def png(self) -> bytes:
        """Draw the figure (the lines alone when the frame is kept) and return it as PNG."""
        with mpl_style.context(STYLE):  # ticks made while drawing take the style too
            if self._frame is None:
                self._draw_legend()
                self.canvas.draw()  # leaves out the animated lines
                self._frame = self.canvas.copy_from_bbox(self.figure.bbox)
                self.full_draws += 1
            else:
                self.canvas.restore_region(self._frame)
            for ax in self.axes.values():
                for line in ax.lines:
                    ax.draw_artist(line)
        return self._encode()

    def _encode(self) -> bytes:
        width, height = self.canvas.get_width_height()
        rgba = PILImage.frombuffer("RGBA", (width, height), self.canvas.buffer_rgba(), "raw")
        buf = io.BytesIO()
        # RGB and a fast zlib level: a redraw is on the training's clock.
        rgba.convert("RGB").save(buf, format="png", compress_level=1)
        return buf.getvalue()

    def placeholder_png(self, text: str) -> bytes:
        """A cheap first image: the message alone, at the figure's size."""
        for ax in self.axes.values():
            ax.set_visible(False)
        note = self.figure.text(0.5, 0.5, text, ha="center", va="center", color="0.35")
        try:
            self.canvas.draw()
            return self._encode()
        finally:
            note.remove()
            for ax in self.axes.values():
                ax.set_visible(True)
            self._frame = None

    def save(self, path: str | os.PathLike) -> Path:
        """Save the figure as it stands, lines included, atomically (format from the suffix)."""
        self._draw_legend()
        animated = list(self.lines.values())
        for artist in animated:  # savefig leaves animated artists out
            artist.set_animated(False)
        try:
            return save_figure(self.figure, path)
        finally:
            for artist in animated:
                artist.set_animated(True)
            self._frame = None

    def close(self) -> None:
        """Empty the figure: its artists and the kept frame are freed."""
        self.figure.clear()
        self._frame = None


_LINE_STYLES = {
    "train": {"color": "C0", "marker": "o", "markersize": 3, "label": "train"},
    "validation": {"color": "C1", "marker": "o", "markersize": 3, "label": "validation"},
    "train (running)": {"color": "C0", "alpha": 0.35, "linewidth": 1.0, "label": "train (running)"},
}


def _higher_is_better(name: str) -> bool:
    return any(word in name for word in ("acc", "auc", "precision", "recall"))


def _y_limits(name: str, ax) -> tuple[float, float] | None:
    """Sticky y limits for a panel's data, or None to keep the current ones."""
    ys = [np.asarray(line.get_ydata(), dtype=float) for line in ax.lines]
    ys = np.concatenate(ys) if ys else np.empty(0)
    log = ax.get_yscale() == "log"
    ys = ys[np.isfinite(ys) & (ys > 0)] if log else ys[np.isfinite(ys)]
    if ys.size == 0:
        return None
    low, high = float(ys.min()), float(ys.max())
    bottom, top = ax.get_ylim()
    falling = not _higher_is_better(name)  # a loss: new values come in at the bottom
    if not falling and 0.0 <= low and high <= 1.0:
        return (0.0, 1.02)  # a fraction: the whole scale, always
    if falling and not log and low >= 0.0:
        # 0 at the bottom: falling values never move the frame, only a new high
        # or a high under half the axis (zoom in) does
        return None if bottom == 0.0 and 0.5 * top <= high <= top else (0.0, 1.1 * high or 1.0)
    scale, unscale = (np.log10, lambda v: 10.0**v) if log else (float, float)
    low, high = scale(low), scale(high)
    bottom, top = (scale(v) if v > 0 or not log else -np.inf for v in (bottom, top))
    if bottom <= low and high <= top and (high - low) >= 0.25 * (top - bottom):
        return None
    # room above the highest point too (a tenth of the span, and at least a little)
    margin = max(0.1 * (high - low), 0.04 if log else 0.05 * max(abs(high), 1e-3))
    # room below a falling curve (a third of a decade on a log scale) for epochs to come
    below = max(margin, 0.35 if log else 0.5 * (high - low)) if falling else margin
    return (float(unscale(low - below)), float(unscale(high + margin)))


def _log_tick_text(ax) -> Callable[[float, int], str]:
    """Plain tick labels on a log axis, as many as its span has room for.

    Over two decades only 1 × 10^k is labelled, over a factor of 3 also 2 and
    5 × 10^k; a narrower span labels every tick (matplotlib then places linear
    ticks such as 1.05, 1.1, which 1-2-5 labels would leave all blank).
    """

    def text(value: float, _position: int) -> str:
        low, high = ax.get_ylim()
        if value <= 0 or low <= 0:
            return ""
        ratio = high / low
        if ratio <= 3:  # enough decimals to tell neighbouring ticks apart
            decimals = max(0, 2 - math.floor(math.log10(high - low)))
            return f"{value:.{decimals}f}".rstrip("0").rstrip(".")
        mantissa = value / 10 ** math.floor(math.log10(value) + 1e-9)
        wanted = (1,) if ratio > 100 else (1, 2, 5)
        nearest = round(mantissa)
        return f"{value:g}" if nearest in wanted and abs(mantissa - nearest) < 1e-6 else ""

    return text


def _pretty(name: str) -> str:
    return "accuracy" if name == "acc" else name.replace("_", " ")
