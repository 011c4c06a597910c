"""Figures of a finished training: ``plot_history`` and ``plot_runs``.

Both read a history in any form training leaves behind: the
``keras.callbacks.History`` that ``model.fit`` returns (or a
:class:`fitlab.LivePlot`, which is one), its ``.history`` dict, or a
``history.json`` holding that dict. Both can save the figure as they draw it,
atomically (:func:`save_figure`).

The figures are made without pyplot (``Figure`` + Agg canvas), so no figure
manager keeps them alive: a figure is freed with its last reference. In a
Jupyter kernel they still show as images when they are a cell's value.

Examples
--------
>>> fig = plot_history({"loss": [1.2, 0.8], "val_loss": [1.3, 1.0],
...                     "accuracy": [0.4, 0.6], "val_accuracy": [0.35, 0.5]})
>>> fig.axes[0].get_title()
'Training Loss and Accuracy'
"""

from __future__ import annotations

import io
import json
import math
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib import style as mpl_style
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from fitlab.files import write_atomically

#: The matplotlib style of every fitlab figure, the live one included.
STYLE = "ggplot"

__all__ = ["STYLE", "finite_points", "kernel_shell", "plot_history", "plot_runs", "save_figure"]


# ---------------------------------------------------------------- the figures


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
    with mpl_style.context(STYLE):
        fig = Figure(figsize=(6.4, 4.8), dpi=100)
        FigureCanvasAgg(fig)
        ax = fig.add_subplot()
        for key, label in curves:
            if key in series:
                ax.plot(*finite_points(epochs, series[key]), label=label)
        ax.set_title("Training Loss and Accuracy")
        ax.set_xlabel("Epoch #")
        ax.set_ylabel("Loss/Accuracy")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.legend(loc="best")
        fig.tight_layout()
    if path is not None:
        save_figure(fig, path)
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
    with mpl_style.context(STYLE):
        fig = Figure(figsize=(11, 4.2), dpi=100)
        FigureCanvasAgg(fig)
        loss_ax, acc_ax = fig.subplots(1, 2)
        colours = [c["color"] for c in mpl_style.library[STYLE]["axes.prop_cycle"]]
        for i, (name, (epochs, series)) in enumerate(loaded.items()):
            colour = colours[i % len(colours)]
            acc = _accuracy_key(series)
            for ax, key in ((loss_ax, "loss"), (acc_ax, acc)):
                if key is None:
                    continue
                for prefix, dashes in (("", "-"), ("val_", "--")):
                    if prefix + key in series:
                        label = name if not prefix else f"{name} (val)"
                        ax.plot(*finite_points(epochs, series[prefix + key]), dashes,
                                color=colour, label=label)  # fmt: skip
        for ax, title in ((loss_ax, "Loss"), (acc_ax, "Accuracy")):
            ax.set_title(title)
            ax.set_xlabel("Epoch #")
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            if ax.lines:
                ax.legend(loc="best", fontsize="small")
        fig.suptitle("Training runs compared (solid: train, dashed: validation)")
        fig.tight_layout()
    if path is not None:
        save_figure(fig, path)
    return fig


def finite_points(xs: Sequence[float], ys: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """The points that have a value: a line then joins the epochs around a gap.

    An epoch without a value (NaN, e.g. validation every other epoch) is left
    out, where matplotlib would break the line there.

    Examples
    --------
    >>> x, y = finite_points([1, 2, 3, 4], [float("nan"), 0.5, float("nan"), 0.4])
    >>> x.tolist(), y.tolist()
    ([2.0, 4.0], [0.5, 0.4])
    """
    x, y = np.asarray(xs, dtype=float), np.asarray(ys, dtype=float)
    keep = np.isfinite(y)
    return x[keep], y[keep]


# ---------------------------------------------------------------- saving and showing


def save_figure(fig: Figure, path: str | os.PathLike, dpi: float | None = None) -> Path:
    """Save ``fig`` atomically (a reader never sees half a file), in fitlab's style.

    Parameters
    ----------
    fig : matplotlib.figure.Figure
    path : path
        The format follows the suffix (``.png`` when there is none); missing
        folders are made.
    dpi : float, optional
        Defaults to the figure's own.

    Returns
    -------
    pathlib.Path
        ``path``.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> fig = plot_history({"loss": [1.0, 0.5]})
    >>> save_figure(fig, folder / "plots" / "loss.svg").read_text()[:5]
    '<?xml'
    """
    path = Path(path)
    fmt = path.suffix[1:].lower() or "png"
    buf = io.BytesIO()
    with mpl_style.context(STYLE):
        fig.savefig(buf, format=fmt, dpi=dpi)
    write_atomically(path, buf.getvalue())
    return path


def kernel_shell() -> Any:
    """The IPython shell of a Jupyter kernel, or None (scripts, terminal IPython).

    ipykernel runs JupyterLab, Notebook and VS Code, but also nbval and
    ``nbconvert --execute``, which cannot be told apart from a live front end.
    IPython is never imported just to find out.

    Examples
    --------
    >>> kernel_shell() is None  # a doctest runs in no kernel
    True
    """
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    return shell if getattr(shell, "kernel", None) is not None else None


def _displayable_in_notebooks() -> None:
    """Let a kernel show these pyplot-free figures as images, e.g. as a cell's value.

    ``%matplotlib inline`` registers that only once pyplot is imported; a
    formatter already there (png, svg, …) is left alone.
    """
    shell = kernel_shell()
    if shell is None:
        return
    formatters = shell.display_formatter.formatters
    if not any(Figure in f.type_printers for f in formatters.values()):
        formatters["image/png"].for_type(Figure, _figure_png)


def _figure_png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    with mpl_style.context(STYLE):
        fig.savefig(buf, format="png")
    return buf.getvalue()


# ---------------------------------------------------------------- reading a history


def _as_history(history: Any, what: str = "history") -> tuple[list[int], dict[str, list[float]]]:
    """Epoch numbers (1-based) and ``{name: values}`` from a History, a dict or a JSON path."""
    epochs = None
    if isinstance(history, str | os.PathLike):
        history = _read_history_json(Path(history))
    if hasattr(history, "history") and not isinstance(history, Mapping):
        # a keras History (a LivePlot too) keeps 0-based epoch numbers beside the dict
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
