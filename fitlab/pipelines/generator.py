"""The tutorial's generator, fixed: ``csv_image_generator`` streams the CSV in batches.

It keeps the shape a reader can follow line by line (open the file, loop,
fill a batch, one-hot the labels, augment, yield) and parses with the strict
reader of :mod:`fitlab.data.csvrows`. For real work, :class:`fitlab.CSVSequence`
(a ``PyDataset``) and :func:`fitlab.csv_dataset` (``tf.data``) serve the same
batches with exact epochs and parallel loading.

Examples
--------
>>> import tempfile, pathlib
>>> from fitlab.data import make_synthetic_csv
>>> path = make_synthetic_csv(pathlib.Path(tempfile.mkdtemp()) / "t.csv", rows=5, size=4)
>>> x, y = next(csv_image_generator(path, 4, ["daffodil", "lilyvalley", "snowdrop"]))
>>> x.shape, y.shape
((4, 4, 4, 3), (4, 3))
"""

from __future__ import annotations

import os
import weakref
from collections.abc import Callable, Iterator, Sequence
from itertools import islice
from typing import Any

import keras
import numpy as np

from fitlab.data import csvrows
from fitlab.data.csvrows import CSVFormatError
from fitlab.data.labels import encode_labels, one_hot_rows
from fitlab.pipelines.meter import InputMeter

MODES = ("train", "eval")


def csv_image_generator(
    input_path: str | os.PathLike,
    bs: int,
    lb: Any,
    mode: str = "train",
    aug: Any = None,
    *,
    on_bad_row: str = "raise",
    meter: InputMeter | None = None,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield ``(images, one-hot labels)`` batches read from a CSV, as the tutorial did.

    The tutorial's shape is kept: open the file, loop, fill a batch line by
    line, one-hot the labels with ``lb``, optionally augment, yield. The
    tutorial's version got three things wrong, all fixed here:

    1. In ``"eval"`` mode it never stopped: at the end of the file it rewound,
       read the first row and threw it away (``break`` before appending), so
       every pass after the first lost row 1.
    2. When the row count divided by ``bs`` it yielded an *empty* batch at the
       end of the file, which made ``predict`` fail on its last step.
    3. It parsed each value with ``int(x)``: slow (``python -m fitlab bench
       pipeline`` times both), and it took ``" 12"``, ``"+12"`` and ``"1_2"``
       for the pixel value 12.

    Here ``"train"`` loops forever and wraps at the end of the file without
    losing or repeating a row (the batch that straddles the end is filled
    from the start); ``"eval"`` yields every row exactly once — ``ceil(N / bs)``
    batches, the last one partial, never an empty one — and then stops. The
    collected lines of a batch are parsed together by the fast, strict parser
    of :mod:`fitlab.data.csvrows`; a bad row raises :class:`CSVFormatError` naming
    the file and line, or, with ``on_bad_row="skip"``, is skipped with a
    :class:`fitlab.BadRowsWarning`.

    Because ``"train"`` mode never ends, Keras's finite-generator trap (only
    two batches per epoch after the first) cannot happen; give ``fit`` its
    ``steps_per_epoch = ceil(N / bs)``.

    Parameters
    ----------
    input_path : path
        The CSV (plain or ``.csv.gz``).
    bs : int
        Batch size.
    lb : LabelBinarizer or sequence of str
        A fitted ``sklearn.preprocessing.LabelBinarizer``, or the class names
        (one-hot ``float32`` in that order). A label it does not know raises
        :class:`CSVFormatError` naming the label, the file and the line.
    mode : {"train", "eval"}
    aug : callable or ImageDataGenerator, optional
        Called on the ``uint8`` batch (a Keras layer with ``training=True``),
        or a Keras-2 style object with ``.flow``. Images are then ``float32``
        in 0–255.
    on_bad_row : {"raise", "skip"}
    meter : InputMeter, optional
        Gets the time each ``next()`` took (see :mod:`fitlab.pipelines.meter`).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from fitlab.data import make_synthetic_csv
    >>> path = make_synthetic_csv(pathlib.Path(tempfile.mkdtemp()) / "t.csv", rows=5, size=4)
    >>> classes = ["daffodil", "lilyvalley", "snowdrop"]
    >>> [x.shape[0] for x, y in csv_image_generator(path, 2, classes, mode="eval")]
    [2, 2, 1]
    """
    batches = _batches(input_path, bs, lb, mode, aug, on_bad_row)
    if meter is not None:
        batches = meter.timed(batches)  # the consumer waits exactly as long as each next()
    if mode == "train":
        _ENDLESS.add(batches)
    return batches


def is_endless(source: object) -> bool:
    """Whether ``source`` is a ``csv_image_generator`` in ``"train"`` mode, which never ends.

    Readers that consume a source to its end (:func:`fitlab.predict_all`) ask
    this first, instead of hanging.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from fitlab.data import make_synthetic_csv
    >>> path = make_synthetic_csv(pathlib.Path(tempfile.mkdtemp()) / "t.csv", rows=5, size=2)
    >>> classes = ["daffodil", "lilyvalley", "snowdrop"]
    >>> is_endless(csv_image_generator(path, 2, classes)), is_endless(iter([]))
    (True, False)
    """
    try:
        return source in _ENDLESS
    except TypeError:  # not weak-referenceable, so never registered
        return False


# The train-mode generators handed out and still alive (a generator object
# cannot carry an attribute of its own, so they are remembered here).
_ENDLESS: weakref.WeakSet = weakref.WeakSet()


def _batches(input_path, bs, lb, mode, aug, on_bad_row) -> Iterator:
    """The generator behind :func:`csv_image_generator` (arguments checked on first ``next``)."""
    if mode not in MODES:
        raise ValueError(f"mode must be 'train' or 'eval', got {mode!r}")
    check_batch_size(bs)
    csvrows.check_on_bad_row(on_bad_row)
    encode = _label_encoder(lb)
    rows = _Rows(input_path, forever=mode == "train", on_bad_row=on_bad_row)
    values = None
    while True:
        images, labels, lines = [], [], []
        while len(labels) < bs:  # fill a batch line by line (parsed together: much faster)
            batch = list(islice(rows, bs - len(labels)))
            if not batch:
                break  # end of the file in "eval" mode
            if values is None:
                values = csvrows.infer_values(batch[0][2], input_path, batch[0][0])
            parsed, kept, errors = csvrows.decode_rows(
                [row[2] for row in batch], values, input_path, [row[0] for row in batch],
                on_bad_row=on_bad_row, cut_off=[not row[3] for row in batch],
            )  # fmt: skip
            rows.skip(errors)
            images.append(parsed)
            labels += [row[1] for row, k in zip(batch, kept, strict=True) if k]
            lines += [row[0] for row, k in zip(batch, kept, strict=True) if k]
            rows.progress(kept.any())
        rows.report()
        if not labels:
            return  # "eval": every row was yielded once; never an empty batch
        side = csvrows.side_of(values)
        images = np.concatenate(images).reshape(-1, side, side, 3)
        targets = encode(labels, input_path, lines)
        if aug is not None:
            images, targets = apply_augmentation(aug, images, targets)
        yield images, targets


class _Rows:
    """``(line_no, label, values_part, complete)`` for each row, pass after pass if ``forever``.

    Bad rows are raised or, with ``on_bad_row="skip"``, collected by
    :meth:`skip` and reported by :meth:`report` as a ``BadRowsWarning`` (the
    warnings filter shows a repeat of the same rows on a later pass once).
    """

    def __init__(self, path, forever: bool, on_bad_row: str):
        self.path, self.forever, self.on_bad_row = path, forever, on_bad_row
        self.skipped: list[CSVFormatError] = []
        self.passes = 0  # completed passes over the file
        self._good_pass = 0
        self._iter = self._generate()

    def __iter__(self):
        return self

    def __next__(self):
        return next(self._iter)

    def skip(self, errors) -> None:
        if errors and self.on_bad_row == "raise":
            raise errors[0]
        self.skipped += errors

    def progress(self, any_good: bool) -> None:
        """Refuse to loop forever over a file whose every row is bad."""
        if any_good:
            self._good_pass = self.passes
        elif self.passes - self._good_pass >= 2:
            self.report()
            raise CSVFormatError(self.path, None, "no valid rows: every row is bad")

    def report(self) -> None:
        skipped, self.skipped = sorted(self.skipped, key=lambda e: e.line), []
        csvrows.report_skipped(self.path, skipped, stacklevel=4)

    def _generate(self):
        while True:
            rows = 0
            for line_no, line, complete in csvrows.iter_lines(self.path):
                try:
                    label, part = csvrows.split_label(line, self.path, line_no)
                except CSVFormatError as exc:
                    self.skip([exc])
                    continue
                rows += 1
                yield line_no, label, part, complete
            self.passes += 1
            if not self.forever:
                return
            if rows == 0:
                raise CSVFormatError(self.path, None, "no rows: nothing to loop over")


def _label_encoder(lb) -> Callable:
    """``encode(labels, path, lines)``: a fitted LabelBinarizer's output, or one-hot rows.

    With a ``LabelBinarizer`` the result is what ``lb.transform(labels)`` returns
    (its dtype, its single column for two classes, a sparse matrix with
    ``sparse_output=True``): rows of the table ``lb.transform(lb.classes_)``,
    made once, picked by :func:`fitlab.data.labels.encode_labels`. Calling
    scikit-learn on every batch made the generator up to about half as fast
    (``docs/measurements.md``).
    """
    if hasattr(lb, "classes_") and hasattr(lb, "transform"):
        classes = [str(c) for c in lb.classes_]
        table = lb.transform(lb.classes_)  # row i encodes classes_[i]
        return lambda labels, path, lines: table[encode_labels(labels, classes, path, lines)]
    if isinstance(lb, str) or not isinstance(lb, Sequence | np.ndarray):
        raise TypeError(
            "lb must be a fitted sklearn LabelBinarizer or a sequence of class names, "
            f"got {type(lb).__name__}"
        )
    classes = [str(c) for c in lb]
    return lambda labels, path, lines: one_hot_rows(
        encode_labels(labels, classes, path, lines), len(classes)
    )


def apply_augmentation(aug: Any, images: np.ndarray, targets: Any) -> tuple[np.ndarray, Any]:
    """Augment one batch: a Keras-2 ``.flow`` object, a Keras layer, or any callable.

    A Keras layer is called with ``training=True`` (without it, it would
    return the batch unchanged); a ``.flow`` object draws one unshuffled batch.

    Returns
    -------
    (images, targets)
        Images ``float32`` in 0–255, in the order given; targets as given.

    Examples
    --------
    >>> batch = np.zeros((2, 1, 1, 3), dtype=np.uint8)
    >>> x, y = apply_augmentation(lambda b: 255 - b, batch, [0, 1])
    >>> x.dtype, x[0, 0, 0].tolist(), y
    (dtype('float32'), [255.0, 255.0, 255.0], [0, 1])
    """
    if hasattr(aug, "flow"):  # ImageDataGenerator: one batch, unshuffled
        batch = next(
            aug.flow(images.astype(np.float32), targets, batch_size=len(images), shuffle=False)
        )
        return np.asarray(batch[0], dtype=np.float32), batch[1]
    if isinstance(aug, keras.layers.Layer):
        out = aug(images.astype(np.float32), training=True)
    else:
        out = aug(images)
    return np.asarray(keras.ops.convert_to_numpy(out), dtype=np.float32), targets


def check_batch_size(bs: Any) -> None:
    """Refuse a batch size that is not a positive integer (``True`` included).

    Examples
    --------
    >>> check_batch_size(32)
    >>> check_batch_size(2.5)
    Traceback (most recent call last):
    ...
    ValueError: the batch size must be a positive integer, got 2.5
    """
    if isinstance(bs, bool) or not isinstance(bs, int | np.integer) or bs < 1:
        raise ValueError(f"the batch size must be a positive integer, got {bs!r}")
