"""Evaluation: one prediction per data row, the classification report, the confusion matrix.

The tutorial predicted with ``predict_generator(testGen, steps=(NUM_TEST_IMAGES // BS) + 1)``
on a generator that wraps around the file, so it could predict more or fewer
rows than the test set has, or end on an empty batch. ``predict_all`` instead
asks the source for its rows and returns exactly one prediction for each, in
order, whatever the source is.
"""

from __future__ import annotations

import warnings

import keras
import numpy as np

from fitlab.engine import BatchStream
from fitlab.engine.adapters import is_arrays
from fitlab.pipelines import rows_in

NORMALIZE = (None, "true", "pred", "all")


def _features(batch):
    """``x`` from a batch given as ``x``, ``(x,)``, ``(x, y)`` or ``(x, y, w)`` (Keras 3's rule)."""
    if isinstance(batch, tuple | list):
        if not 1 <= len(batch) <= 3:
            raise ValueError(
                f"a batch must be x, (x, y) or (x, y, sample_weight); got a {len(batch)}-tuple"
            )
        return batch[0]
    return batch


def predict_all(model, source, *, steps: int | None = None, batch_size: int = 32) -> np.ndarray:
    """Predict every row of ``source`` exactly once, in order.

    Parameters
    ----------
    model : keras.Model
        A model whose output is one row per input row (e.g. class probabilities).
    source : array, generator, PyDataset or tf.data.Dataset
        - an array or tensor ``x``, a dict of them, or a tuple ``(x, y[, w])``:
          predicted in slices of ``batch_size``;
        - a finite generator or iterable of batches, e.g. a list
          (``csv_image_generator(..., mode="eval")``):
          read until it is exhausted. A generator created with ``mode="train"``
          never ends and is refused unless ``steps`` is given; any other endless
          iterator needs ``steps`` too;
        - a ``keras.utils.PyDataset`` (``CSVSequence``): batches ``0 … len − 1``;
          one that shuffles (``shuffle=True``) is refused, as its order is not the file's;
        - a ``tf.data.Dataset`` (``csv_dataset``): read to its end; one that
          repeats forever needs ``steps``.
        Batches may be ``x``, ``(x, y)`` or ``(x, y, sample_weight)``; only ``x``
        is used. Empty batches (the tutorial's generator produced one when the
        row count divided by the batch size) are skipped.
    steps : int, optional
        Read at most this many batches. If the source ends sooner, a warning
        says how many it gave.
    batch_size : int
        Slice size for arrays; sources that batch themselves keep their batches.

    Returns
    -------
    np.ndarray
        ``model``'s outputs, shape ``(rows, outputs)``, one row per data row.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from fitlab.data import make_synthetic_csv
    >>> from fitlab.pipelines import CSVSequence
    >>> csv = make_synthetic_csv(pathlib.Path(tempfile.mkdtemp()) / "t.csv", rows=10, size=4)
    >>> model = keras.Sequential([keras.Input((4, 4, 3)), keras.layers.Flatten(),
    ...                           keras.layers.Dense(3, activation="softmax")])
    >>> predict_all(model, CSVSequence(csv, batch_size=4)).shape
    (10, 3)
    """
    if steps is not None and steps < 1:
        raise ValueError(f"steps must be a positive number of batches, got {steps}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if isinstance(source, keras.utils.PyDataset) and getattr(source, "shuffle", False):
        # Predictions in a shuffled order would not line up with the file's labels.
        raise ValueError(
            f"this {type(source).__name__} shuffles its rows, so its predictions would not "
            "line up with the labels in file order: make it with shuffle=False"
        )
    stream = BatchStream(
        source,
        steps,
        batch_size=batch_size if isinstance(source, tuple) or is_arrays(source) else None,
        role="prediction data",
        steps_name="steps",
        keep_position=False,
        single_pass=True,
        inputs_only=True,
    )
    outputs = []
    read = 0
    for read, batch in enumerate(stream.epoch(), start=1):  # noqa: B007 - read is reported
        x = _features(batch)
        if rows_in(x) == 0:
            continue
        outputs.append(np.asarray(model.predict_on_batch(x)))
    if stream.ran_out:
        warnings.warn(
            f"predict_all: steps={steps} but the source ended after {read} batches; "
            "predicted every row it gave",
            stacklevel=2,
        )
    if not outputs:
        return np.zeros((0, *model.output_shape[1:]), dtype="float32")
    return np.concatenate(outputs, axis=0)


def _class_indices(y, class_names, name: str) -> np.ndarray:
    """Class indices from ints, one-hot rows, probability rows or class-name strings."""
    y = np.asarray(y)
    if y.ndim == 2:
        if y.shape[1] != len(class_names):
            raise ValueError(
                f"{name} has {y.shape[1]} columns but there are {len(class_names)} class_names"
            )
        return y.argmax(axis=1)
    if y.ndim != 1:
        raise ValueError(f"{name} must be 1-D labels or 2-D (rows, classes), got shape {y.shape}")
    if y.dtype.kind in "USO":
        index = {str(c): i for i, c in enumerate(class_names)}
        unknown = sorted({str(v) for v in y} - set(index))
        if unknown:
            raise ValueError(f"{name} has labels that are not in class_names: {unknown[:5]}")
        return np.array([index[str(v)] for v in y], dtype="int64")
    return y.astype("int64")


def _both(y_true, y_pred, class_names) -> tuple[np.ndarray, np.ndarray]:
    true = _class_indices(y_true, class_names, "y_true")
    pred = _class_indices(y_pred, class_names, "y_pred")
    if len(true) != len(pred):
        raise ValueError(
            f"y_true has {len(true)} rows but y_pred has {len(pred)}: predict each test row "
            "exactly once (predict_all) before comparing"
        )
    return true, pred


def report(y_true, y_pred, class_names) -> str:
    """scikit-learn's classification report, one line per class name.

    ``y_true`` and ``y_pred`` may each be class indices, one-hot rows,
    probability rows (reduced with ``argmax``; ties go to the first class) or
    class-name strings. The two must have the same number of rows.

    Examples
    --------
    >>> text = report([0, 1, 1], [[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]], ["a", "b"])
    >>> print(text.splitlines()[2])
               a       0.50      1.00      0.67         1
    """
    from sklearn.metrics import classification_report

    true, pred = _both(y_true, y_pred, class_names)
    return classification_report(
        true,
        pred,
        labels=list(range(len(class_names))),
        target_names=[str(c) for c in class_names],
        zero_division=0,
    )


def plot_confusion(y_true, y_pred, class_names, ax=None, normalize: str | None = None):
    """Draw the confusion matrix: true class down, predicted class across.

    Labels take the same forms as in :func:`report`. Each cell shows its count
    (or, with ``normalize``, its share: ``"true"`` per true class, ``"pred"``
    per predicted class, ``"all"`` of everything); tick labels are rotated so
    17 class names stay readable; a colorbar gives the scale.

    Parameters
    ----------
    ax : matplotlib Axes, optional
        Draw here; by default a new ``Figure`` sized to the number of classes
        (not registered with pyplot, so nothing else is touched).
    normalize : {None, "true", "pred", "all"}
        As in ``sklearn.metrics.confusion_matrix``.

    Returns
    -------
    matplotlib.figure.Figure
        The figure holding ``ax``.

    Examples
    --------
    >>> fig = plot_confusion(["iris", "tulip", "tulip"], [0, 1, 0], ["iris", "tulip"])
    >>> [t.get_text() for t in fig.axes[0].texts]
    ['1', '0', '1', '1']
    """
    from matplotlib.figure import Figure
    from sklearn.metrics import confusion_matrix

    if normalize not in NORMALIZE:
        raise ValueError(f"normalize={normalize!r} is not one of {NORMALIZE}")
    true, pred = _both(y_true, y_pred, class_names)
    k = len(class_names)
    matrix = confusion_matrix(true, pred, labels=list(range(k)), normalize=normalize)
    if ax is None:
        side = max(4.0, 0.45 * k + 2.5)
        fig = Figure(figsize=(side + 1.0, side), layout="constrained")
        ax = fig.add_subplot()
    fig = ax.figure
    image = ax.imshow(matrix, cmap="Blues", vmin=0)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    names = [str(c) for c in class_names]
    ax.set_xticks(range(k), labels=names, rotation=60, ha="right", rotation_mode="anchor")
    ax.set_yticks(range(k), labels=names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title("confusion matrix" + (f" (normalized over {normalize})" if normalize else ""))
    fontsize = 8 if k <= 10 else 7
    threshold = matrix.max() / 2 if matrix.size and matrix.max() > 0 else 0
    for (i, j), value in np.ndenumerate(matrix):
        text = f"{value:.2f}" if normalize else str(int(value))
        color = "white" if value > threshold else "black"
        ax.text(j, i, text, ha="center", va="center", color=color, fontsize=fontsize)
    return fig
