"""Training curves while training runs, and the tutorial's figure after it.

``LivePlot`` is a Keras callback. In a Jupyter kernel it shows one output that
is updated in place — a status line, a progress bar and a PNG of one reused
matplotlib figure inside ``ipywidgets`` — and, when training ends, leaves the
final figure as a plain image, so a notebook exported to HTML still shows it.
Anywhere else (a script, ``python -m fitlab``, CI) it prints one compact text
line per epoch. Either way it can save the final figure (``save_to=``).

How it decides: an IPython *kernel* (ipykernel: JupyterLab, Notebook, VS Code,
but also nbval and ``nbconvert --execute``, which cannot be told apart from a
live front end) gets widgets; every other process gets text. The widget path
never calls ``clear_output`` and its outputs are stable, so strict nbval
accepts it: nbval skips the widget mime type and ``image/png``, and the
``text/plain`` of both outputs is fixed. Set ``FITLAB_LIVE=text`` (or
``widgets``) to force a mode.

``plot_history`` draws the tutorial's "Training Loss and Accuracy" figure and
``plot_runs`` compares several runs side by side. All figures here are made
without pyplot (``Figure`` + Agg canvas), so no figure manager keeps them alive.

Examples
--------
>>> from fitlab.callbacks.live import plot_history
>>> fig = plot_history({"loss": [1.2, 0.8], "val_loss": [1.3, 1.0],
...                     "accuracy": [0.4, 0.6], "val_accuracy": [0.35, 0.5]})
>>> fig.axes[0].get_title()
'Training Loss and Accuracy'
"""

from __future__ import annotations

import html
import io
import json
import math
import os
import sys
import time
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import keras
import numpy as np
from matplotlib import style as mpl_style
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter, MaxNLocator
from PIL import Image as PILImage

from fitlab.files import write_atomically

#: Environment variable that forces the display mode: ``widgets``, ``text`` or ``auto``.
MODE_ENV = "FITLAB_LIVE"

_STYLE = "ggplot"
_LEARNING_RATE_KEYS = ("lr", "learning_rate")  # logged by schedulers; not a curve
_PANEL_INCHES = (4.4, 3.3)
_LIVE_DPI = 90
_MARKERS_UP_TO = 30  # epochs; beyond, a dot per epoch blurs the line
# Batch-level redraws may take at most this share of the wall time (the goal is <= 5 %).
_REDRAW_BUDGET = 0.03


# ---------------------------------------------------------------- history input


def _as_history(history: Any, what: str = "history") -> tuple[list[int], dict[str, list[float]]]:
    """Epoch numbers (1-based) and ``{name: values}`` from a History, a dict or a JSON path."""
    epochs = None
    if isinstance(history, str | os.PathLike):
        history = _read_history_json(Path(history))
    if hasattr(history, "history") and not isinstance(history, Mapping):
        # keras History (and LivePlot) keep 0-based epoch numbers beside the dict
        epochs = [int(e) + 1 for e in getattr(history, "epoch", [])] or None
        history = history.history
    if not isinstance(history, Mapping):
        raise TypeError(
            f"{what}: expected a keras History, a dict of lists or a history.json path, "
            f"got {type(history).__name__}"
        )
    if isinstance(history.get("history"), Mapping):  # {"history": {...}, "epoch": [...]}
        if isinstance(history.get("epoch"), list):
            epochs = [int(e) + 1 for e in history["epoch"]]
        history = history["history"]
    series = {}
    for key, values in history.items():
        if not isinstance(values, list | tuple | np.ndarray):
            raise ValueError(
                f"{what}: {key!r} is {type(values).__name__}, not a list of per-epoch values; "
                "pass history.history (a dict of lists)"
            )
        series[str(key)] = [_as_float(v, what, key) for v in values]
    if not series:
        raise ValueError(f"{what}: the history is empty; train at least one epoch first")
    lengths = {len(v) for v in series.values()}
    n = max(lengths)
    if len(lengths) > 1:
        short = sorted(k for k, v in series.items() if len(v) != n)
        raise ValueError(
            f"{what}: {short} have fewer values than the {n} epochs of the others; "
            "every key needs one value per epoch"
        )
    if epochs is None or len(epochs) != n:
        epochs = list(range(1, n + 1))
    return epochs, series


def _as_float(value: Any, what: str, key: str) -> float:
    try:
        return float(value) if value is not None else math.nan
    except (TypeError, ValueError):
        raise ValueError(f"{what}: {key!r} holds {value!r}, which is not a number") from None


def _read_history_json(path: Path) -> dict:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise FileNotFoundError(
            f"{path}: no such history file; write one with json.dump(history.history, f)"
        ) from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(
            f"{path}, line {e.lineno}: not valid JSON ({e.msg}); "
            "write it with json.dump(history.history, f)"
        ) from None


def _accuracy_key(series: Mapping[str, list[float]]) -> str | None:
    """Keras 2 logged ``acc``, Keras 3 logs ``accuracy``: take whichever is there."""
    return next((k for k in ("accuracy", "acc") if k in series or f"val_{k}" in series), None)


def _metric_names(keys) -> list[str]:
    """One name per panel: ``loss`` first, then each metric once, ``val_`` stripped."""
    names: list[str] = []
    for key in keys:
        base = key[4:] if key.startswith("val_") else key
        if base not in names and base not in _LEARNING_RATE_KEYS:
            names.append(base)
    return sorted(names, key=lambda n: n != "loss")  # stable: keeps the log order otherwise


def _finite(xs: list[float], ys: list[float]) -> tuple[np.ndarray, np.ndarray]:
    """Drop epochs without a value (e.g. validation every other epoch) instead of breaking lines."""
    x, y = np.asarray(xs, dtype=float), np.asarray(ys, dtype=float)
    keep = np.isfinite(y)
    return x[keep], y[keep]


def _pretty(name: str) -> str:
    return "accuracy" if name == "acc" else name.replace("_", " ")


# ---------------------------------------------------------------- static figures


def _save_figure(fig: Figure, path: str | os.PathLike, dpi: float | None = None) -> Path:
    """Save atomically; the format follows the suffix (``.png`` when there is none)."""
    path = Path(path)
    fmt = path.suffix[1:].lower() or "png"
    buf = io.BytesIO()
    with mpl_style.context(_STYLE):
        fig.savefig(buf, format=fmt, dpi=dpi)
    write_atomically(path, buf.getvalue())
    return path


def _displayable_in_notebooks() -> None:
    """Let a kernel show these pyplot-free figures as images, e.g. as a cell's value.

    ``%matplotlib inline`` registers that only once pyplot is imported; a
    formatter already there (png, svg, …) is left alone.
    """
    shell = _kernel_shell()
    if shell is None:
        return
    formatters = shell.display_formatter.formatters
    if not any(Figure in f.type_printers for f in formatters.values()):
        formatters["image/png"].for_type(Figure, _figure_png)


def _figure_png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    with mpl_style.context(_STYLE):
        fig.savefig(buf, format="png")
    return buf.getvalue()


def plot_history(history: Any, path: str | os.PathLike | None = None) -> Figure:
    """The tutorial's figure: train/val loss and accuracy against the epoch.

    Parameters
    ----------
    history : keras.callbacks.History, dict or path
        ``model.fit(...)``'s return value, its ``.history`` dict, or a
        ``history.json`` holding that dict (or ``{"history": {...}}``).
        Keras 2's ``acc`` names work as well as Keras 3's ``accuracy``.
    path : path, optional
        Where to save the figure (written atomically; format from the suffix).

    Returns
    -------
    matplotlib.figure.Figure
        Not registered with pyplot: it is freed with its last reference. As a
        notebook cell's value it shows as an image.

    Examples
    --------
    >>> fig = plot_history({"loss": [2.0, 1.5, 1.1], "accuracy": [0.2, 0.4, 0.6]})
    >>> [line.get_label() for line in fig.axes[0].lines]
    ['train_loss', 'train_acc']
    """
    epochs, series = _as_history(history)
    _displayable_in_notebooks()
    acc = _accuracy_key(series)
    curves = [("loss", "train_loss"), ("val_loss", "val_loss")]
    if acc:
        curves += [(acc, "train_acc"), (f"val_{acc}", "val_acc")]
    if not any(key in series for key, _ in curves):
        raise ValueError(
            f"history has no loss or accuracy values (keys: {sorted(series)}); "
            "pass the History that model.fit returned"
        )
    with mpl_style.context(_STYLE):
        fig = Figure(figsize=(6.4, 4.8), dpi=100)
        FigureCanvasAgg(fig)
        ax = fig.add_subplot()
        for key, label in curves:
            if key in series:
                ax.plot(*_finite(epochs, series[key]), label=label)
        ax.set_title("Training Loss and Accuracy")
        ax.set_xlabel("Epoch #")
        ax.set_ylabel("Loss/Accuracy")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.legend(loc="best")
        fig.tight_layout()
    if path is not None:
        _save_figure(fig, path)
    return fig


def plot_runs(runs: Mapping[str, Any], path: str | os.PathLike | None = None) -> Figure:
    """Several runs side by side: a loss panel and an accuracy panel, one colour per run.

    Training curves are solid, validation curves dashed.

    Parameters
    ----------
    runs : dict
        ``{run name: History, history dict or history.json path}``, e.g. one
        entry per training method.
    path : path, optional
        Where to save the figure (written atomically).

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> fig = plot_runs({"fit": {"loss": [1.0, 0.5], "accuracy": [0.5, 0.7]},
    ...                  "train_on_batch": {"loss": [1.1, 0.6], "accuracy": [0.4, 0.6]}})
    >>> [ax.get_title() for ax in fig.axes]
    ['Loss', 'Accuracy']
    """
    if not runs:
        raise ValueError("plot_runs needs at least one run, e.g. {'fit': history}")
    loaded = {name: _as_history(h, what=f"run {name!r}") for name, h in runs.items()}
    _displayable_in_notebooks()
    with mpl_style.context(_STYLE):
        fig = Figure(figsize=(11, 4.2), dpi=100)
        FigureCanvasAgg(fig)
        loss_ax, acc_ax = fig.subplots(1, 2)
        colours = [c["color"] for c in mpl_style.library[_STYLE]["axes.prop_cycle"]]
        for i, (name, (epochs, series)) in enumerate(loaded.items()):
            colour = colours[i % len(colours)]
            acc = _accuracy_key(series)
            for ax, key in ((loss_ax, "loss"), (acc_ax, acc)):
                if key is None:
                    continue
                for prefix, dashes in (("", "-"), ("val_", "--")):
                    if prefix + key in series:
                        label = name if not prefix else f"{name} (val)"
                        ax.plot(*_finite(epochs, series[prefix + key]), dashes, color=colour,
                                label=label)  # fmt: skip
        for ax, title in ((loss_ax, "Loss"), (acc_ax, "Accuracy")):
            ax.set_title(title)
            ax.set_xlabel("Epoch #")
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            if ax.lines:
                ax.legend(loc="best", fontsize="small")
        fig.suptitle("Training runs compared (solid: train, dashed: validation)")
        fig.tight_layout()
    if path is not None:
        _save_figure(fig, path)
    return fig


# ---------------------------------------------------------------- the live figure


class _LiveFigure:
    """One Agg figure with a panel per metric, drawn in two layers.

    The frame (axes, ticks, titles, the one legend above the panels) is drawn
    in full only when it changes — a panel's limits moved, a kind of line
    appeared — and kept as a bitmap; an ordinary update pastes the bitmap back
    and draws only the lines on it (blitting), several times cheaper than a
    full draw. Limits are sticky: they grow when the data
    leaves them and shrink only when the data fills less than half of them, so
    most updates keep the frame. Lines are made once and updated in place.
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
        with mpl_style.context(_STYLE):
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
        w, h = self.figure.get_size_inches() * self.figure.dpi
        return round(w), round(h)

    def _line(self, key: str, name: str):
        """The line for one log key, made the first time the key shows up."""
        if key not in self.lines:
            kind = "train (running)" if key.startswith("batch:") else (
                "validation" if key.startswith("val_") else "train")  # fmt: skip
            with mpl_style.context(_STYLE):  # "C0" means the style's first colour
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

    def update(self, epochs, history, batch_points) -> None:
        """Point every line at the current values; move a panel's limits only when needed."""
        for key, values in history.items():
            name = key[4:] if key.startswith("val_") else key
            if name in self.axes:
                line = self._line(key, name)
                line.set_data(*_finite(epochs, values))
                line.set_marker("o" if len(epochs) <= _MARKERS_UP_TO else "")  # dots would crowd
        for name in self.axes:  # the running line: this epoch's points, or none once it ends
            points, key = batch_points.get(name), f"batch:{name}"
            if points or key in self.lines:
                xs, ys = zip(*points, strict=True) if points else ((), ())
                self._line(key, name).set_data(*_finite(list(xs), list(ys)))
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
        with mpl_style.context(_STYLE):  # ticks made while drawing take the style too
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
        self._draw_legend()
        animated = list(self.lines.values())
        for artist in animated:  # savefig leaves animated artists out
            artist.set_animated(False)
        try:
            return _save_figure(self.figure, path)
        finally:
            for artist in animated:
                artist.set_animated(True)
            self._frame = None

    def close(self) -> None:
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


# ---------------------------------------------------------------- front ends


def _kernel_shell():
    """The IPython shell of a Jupyter kernel, or None (scripts, terminal IPython)."""
    ipython = sys.modules.get("IPython")  # never import IPython just to find out
    shell = ipython.get_ipython() if ipython is not None else None
    return shell if getattr(shell, "kernel", None) is not None else None


def _choose_mode() -> str:
    forced = os.environ.get(MODE_ENV, "auto").strip().lower()
    if forced not in ("", "auto", "widgets", "text"):
        raise ValueError(f"{MODE_ENV}={forced!r}: use 'widgets', 'text' or 'auto'")
    if forced == "text" or (forced != "widgets" and _kernel_shell() is None):
        return "text"
    try:  # now, not inside fit: the import takes a while
        import ipywidgets  # noqa: F401
    except ImportError as error:
        if forced == "widgets":
            raise ImportError(
                f"{MODE_ENV}=widgets needs ipywidgets: pip install ipywidgets"
            ) from error
        return "text"  # a kernel without ipywidgets still gets text progress
    return "widgets"


class _WidgetView:
    """Status line + progress bar + image, in one output that is only ever updated in place."""

    def __init__(self, total_epochs: int | None, size: tuple[int, int], png: bytes):
        import ipywidgets as widgets

        self.status = widgets.HTML(value=_status_html("starting…"))
        self.progress = widgets.FloatProgress(
            value=0.0, min=0.0, max=1.0, layout=widgets.Layout(width="180px")
        )
        # A fixed layout size: otherwise the front end stretches the PNG to the cell width.
        self.image = widgets.Image(value=png, format="png", layout=self._layout(size))
        self.image.add_class("fitlab-live-image")
        self.status.add_class("fitlab-live-status")
        self.box = widgets.VBox([widgets.HBox([self.progress, self.status]), self.image])
        shell = _kernel_shell()
        if shell is not None:
            from IPython.display import display

            # Fixed text/plain: the widget's repr would embed its state, which changes per run.
            bundle = self.box._repr_mimebundle_()
            bundle["text/plain"] = f"LivePlot(total_epochs={total_epochs})"
            display(bundle, raw=True)

    @staticmethod
    def _layout(size: tuple[int, int]):
        import ipywidgets as widgets

        return widgets.Layout(width=f"{size[0]}px", height=f"{size[1]}px")

    def show(self, png: bytes, size: tuple[int, int]) -> None:
        if self.image.layout.width != f"{size[0]}px":
            self.image.layout = self._layout(size)
        self.image.value = png

    def set_status(self, text: str, fraction: float | None) -> None:
        self.status.value = _status_html(text)
        if fraction is not None:
            self.progress.value = min(max(fraction, 0.0), 1.0)

    def finish(self, png: bytes | None) -> None:
        """Swap the live image for a plain one (survives export), keep the status line."""
        self.progress.bar_style = "success"
        self.box.children = self.box.children[:1]
        self.image.close()
        if png is not None and _kernel_shell() is not None:
            from IPython.display import Image, display

            display(Image(data=png, format="png"))


def _status_html(text: str) -> str:
    return f'<span style="font-family: monospace; white-space: pre">{html.escape(text)}</span>'


def _clock_text(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def _value_text(value: float) -> str:
    return f"{value:.4g}" if math.isfinite(value) else "nan"


# ---------------------------------------------------------------- the callback


class LivePlot(keras.callbacks.Callback):
    """Loss and metric curves, drawn while Keras trains.

    Works with ``model.fit`` (arrays, generators, ``PyDataset``, ``tf.data``),
    :func:`fitlab.train_on_batches` and :class:`fitlab.CompiledLoop`.

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
        In text mode: print a batch line instead. Default: once per epoch.
    min_interval : float
        Fewest seconds between two batch-level updates: redraws, text lines
        and the status line (elapsed, ETA, images/s) alike.
    meter : fitlab.InputMeter, optional
        The meter your data source fills; the status shows the share of
        training time spent waiting for input (and images/s from its count).
    save_to : path, optional
        Save the final figure there when training ends (atomically).

    Attributes
    ----------
    history, epoch : dict, list
        The per-epoch logs, like ``keras.callbacks.History`` (so
        ``plot_history(live)`` works).
    mode : str
        ``"widgets"`` in a Jupyter kernel, else ``"text"``; see ``FITLAB_LIVE``.
        Set it before training to override.
    redraws : int
        Figures rendered so far.

    Examples
    --------
    >>> live = LivePlot(log_loss=True, save_to="runs/fit/live.png")  # doctest: +SKIP
    >>> model.fit(x, y, epochs=5, validation_split=0.2, callbacks=[live])  # doctest: +SKIP
    """

    #: The clock; a test may swap in a fake one.
    clock: Callable[[], float] = staticmethod(time.perf_counter)

    def __init__(
        self,
        total_epochs: int | None = None,
        *,
        log_loss: bool = False,
        every_n_batches: int | None = None,
        min_interval: float = 0.5,
        meter: Any = None,
        save_to: str | os.PathLike | None = None,
    ):
        super().__init__()
        if total_epochs is not None and total_epochs < 1:
            raise ValueError(f"total_epochs={total_epochs}: needs at least 1 epoch")
        if every_n_batches is not None and every_n_batches < 1:
            raise ValueError(f"every_n_batches={every_n_batches}: use None or a positive count")
        if min_interval < 0:
            raise ValueError(f"min_interval={min_interval}: needs 0 or more seconds")
        if meter is not None and not hasattr(meter, "wait_s"):
            raise TypeError(f"meter={meter!r} has no wait_s; pass a fitlab.InputMeter")
        self.total_epochs = total_epochs
        self.log_loss = log_loss
        self.every_n_batches = every_n_batches
        self.min_interval = min_interval
        self.meter = meter
        self.save_to = save_to
        self.mode = _choose_mode()
        if every_n_batches is None:
            # No batch hook at all: Keras 3 then keeps running batch callbacks
            # asynchronously (no per-batch sync with the device), so a per-epoch
            # plot costs nothing between epochs. The status updates per epoch.
            self.on_train_batch_end = super().on_train_batch_end
        self.history: dict[str, list[float]] = {}
        self.epoch: list[int] = []
        self.redraws = self._full_draws = 0
        self.figure: Figure | None = None
        self._live: _LiveFigure | None = None
        self._view: _WidgetView | None = None
        self._batch_points: dict[str, list[tuple[float, float]]] = {}

    # -- keras hooks ----------------------------------------------------------

    def on_train_begin(self, logs=None):
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
            self._draw_figure(_metric_names(self.history) if self.history else None)
            # a cheap first image; the panels come with the first epoch
            png = self._live.placeholder_png("training… the curves appear after the first epoch")
            self.redraws += 1
            self._view = _WidgetView(self._epochs_total, self._live.pixels, png)

    def on_epoch_begin(self, epoch, logs=None):
        if self._first_epoch is None:
            self._first_epoch = epoch
        self._epoch_index = epoch
        self._batches = self._batches_since_plot = 0
        self._batch_points = {}
        self._t_epoch = self.clock()
        self._meter_at_epoch = self._meter_snapshot()
        self._train_part_done = False

    def on_train_batch_end(self, batch, logs=None):
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
        self._view.set_status(self._status_text(), self._fraction())
        if wants_plot:
            self._redraw()

    def on_test_begin(self, logs=None):
        # Validation inside fit: the training part of the epoch is over, and
        # Keras is about to reset the loss tracker that counts its images.
        if not getattr(self, "_train_part_done", True):
            self._measure(self.clock())
            self._train_part_done = True

    def on_epoch_end(self, epoch, logs=None):
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
        names = _metric_names(self.history)
        if self._live.names != names:  # the model logs other metrics than first drawn
            self._draw_figure(names)
        self._view.set_status(self._status_text(end_of_epoch=True), self._fraction(True))
        self._redraw()

    def on_train_end(self, logs=None):
        if self._view is not None:
            if self.history:
                self._view.set_status(self._status_text(end_of_epoch=True, done=True), 1.0)
            # the last epoch's image (on_epoch_end drew this very state) stays as a plain one
            self._view.finish(self._last_png if self.history else None)
            self._view = None
        if self.save_to is not None and not self.history:
            warnings.warn(f"LivePlot: no epoch ended, so nothing was saved to {self.save_to}",
                          stacklevel=2)  # fmt: skip
        if self.save_to is not None and self.history:
            if self._live is None:  # text mode draws only now, once
                self._draw_figure(_metric_names(self.history))
                self._live.update(self._epoch_numbers(), self.history, {})
            path = self._live.save(self.save_to)
            if self.mode == "text":
                self._print(f"saved figure to {path}")
        if self._live is not None:  # training is over: release the figure
            self._live.close()
            self._live = self.figure = None

    # -- bookkeeping ----------------------------------------------------------

    def _record(self, epoch: int, logs: Mapping[str, Any]) -> None:
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

    def _images_seen(self, meter_now) -> float | None:
        """Images trained on so far this epoch: the meter's count, else Keras's loss tracker."""
        if meter_now is not None and meter_now[1] > self._meter_at_epoch[1]:
            return meter_now[1] - self._meter_at_epoch[1]
        # Keras weighs its loss mean by the batch size, so the tracker's count is
        # the number of samples (fit, train_on_batch); 0 where a loop bypasses it.
        for metric in getattr(self.model, "metrics", None) or []:
            if metric.name == "loss" and hasattr(metric, "count"):
                return float(metric.count.numpy()) or None
        return None

    def _measure(self, now: float) -> None:
        """Images/s and the input-wait share of this epoch's training part, up to ``now``."""
        seconds = max(now - self._t_epoch, 1e-9)
        meter_now = self._meter_snapshot()
        images = self._images_seen(meter_now)
        if images:
            self._rate_text = f"{images / seconds:,.0f} img/s"
        elif self._batches or self._steps:
            self._rate_text = f"{(self._batches or self._steps) / seconds:,.1f} batches/s"
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
        keys = [k for k, v in logs.items() if _is_number(v) and k not in _LEARNING_RATE_KEYS]
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
            self._live = _LiveFigure(self._epochs_total, self.log_loss)
        self._live.layout(names)
        self.figure = self._live.figure

    def _redraw(self) -> bytes:
        start = self.clock()
        self._live.update(self._epoch_numbers(), self.history, self._batch_points)
        png = self._live.png()
        self.redraws += 1
        if self._view is not None:
            self._view.show(png, self._live.pixels)
        # Batch-level redraws keep to a share of the time: a slow machine gets fewer.
        cost = self.clock() - start
        self._next_redraw = start + max(self.min_interval, cost / _REDRAW_BUDGET)
        self._batches_since_plot = 0
        self._last_png = png
        self._full_draws = self._live.full_draws
        return png


def _is_number(value: Any) -> bool:
    if np.ndim(value) != 0:
        return False
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True
