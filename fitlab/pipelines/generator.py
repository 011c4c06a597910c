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
from fitlab.data.labels import label_codes, one_hot_rows, unknown_label_reason
from fitlab.pipelines.meter import InputMeter

MODES = ("train", "eval")
# What to do about an unknown label: csv_image_generator takes lb, not classes=.
LABEL_ADVICE = (
    "Give lb every class (the full list of names, or a LabelBinarizer fitted on all the "
    "labels), fix or delete that row, or pass on_bad_row='skip' to skip bad rows."
)


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
        (one-hot ``float32`` in that order). A label it does not know is a bad
        row: :class:`CSVFormatError` naming the label, the file and the line.
    mode : {"train", "eval"}
    aug : callable or ImageDataGenerator, optional
        Called on the ``uint8`` batch (a Keras layer with ``training=True``),
        or a Keras-2 style object with ``.flow``. Images are then ``float32``
        in 0–255.
    on_bad_row : {"raise", "skip"}
        ``"raise"``: the first bad row raises :class:`CSVFormatError`.
        ``"skip"``: bad rows (bad values, a bad or unknown label) are left out
        and reported with a :class:`fitlab.BadRowsWarning`.
    meter : InputMeter, optional
        Gets the time each ``next()`` took (see :mod:`fitlab.pipelines.meter`).

    Raises
    ------
    CSVFormatError
        On the ``next()`` that meets it: a bad row (``on_bad_row="raise"``), a
        file with no rows or no valid rows, a damaged ``.csv.gz``.

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
    classes, targets_of = _label_encoder(lb)
    rows = _Rows(input_path, forever=mode == "train", on_bad_row=on_bad_row)
    values = None
    yielded = False
    while True:
        images, codes = [], []
        count = 0
        while count < bs:  # fill a batch line by line (parsed together: much faster)
            chunk = list(islice(rows, bs - count))
            if not chunk:
                break  # end of the file in "eval" mode
            # Every bad row of the chunk (label, width, values, class), so "raise" names the first.
            errors = [row[2] for row in chunk if row[1] is None]
            chunk = [row for row in chunk if row[1] is not None]
            if values is None:
                values, chunk = _first_width(input_path, chunk, errors, on_bad_row)
            good = 0
            if chunk:
                parsed, kept, bad_values = csvrows.decode_rows(
                    [row[2] for row in chunk], values, input_path, [row[0] for row in chunk],
                    on_bad_row="skip", cut_off=[not row[3] for row in chunk],
                )  # fmt: skip
                chunk = [row for row, k in zip(chunk, kept, strict=True) if k]
                chunk_codes = label_codes([row[1] for row in chunk], classes)
                known = chunk_codes >= 0
                errors += bad_values + [
                    CSVFormatError(
                        input_path, row[0], unknown_label_reason(row[1], classes), LABEL_ADVICE
                    )
                    for row, k in zip(chunk, known, strict=True)
                    if not k
                ]
                images.append(parsed[known])
                codes.append(chunk_codes[known])
                good = int(known.sum())
            rows.skip(sorted(errors, key=lambda e: e.line))
            rows.progress(good > 0)
            count += good
        rows.report()
        if not count:
            if not yielded:  # "eval": the whole file, and not one good row
                raise csvrows.no_valid_rows_error(input_path, rows.bad())
            return  # "eval": every row was yielded once; never an empty batch
        side = csvrows.side_of(values)
        images = np.concatenate(images).reshape(-1, side, side, 3)
        targets = targets_of(np.concatenate(codes))
        if aug is not None:
            images, targets = apply_augmentation(aug, images, targets)
        yielded = True
        yield images, targets


def _first_width(path, chunk, errors, on_bad_row) -> tuple[int | None, list]:
    """The values per row, from the first row that tells; the rows before it are bad."""
    while chunk:
        line_no, _, part, complete = chunk[0]
        try:
            return csvrows.infer_values(part, path, line_no, cut_off=not complete), chunk
        except CSVFormatError as exc:
            errors.append(exc)
            if on_bad_row == "raise":
                raise min(errors, key=lambda e: e.line) from None
            chunk = chunk[1:]
    return None, chunk


class _Rows:
    """``(line_no, label, values_part, complete)`` for each row, pass after pass if ``forever``.

    A row whose label cannot be read comes as ``(line_no, None, error,
    complete)``. Bad rows are raised or, with ``on_bad_row="skip"``, collected
    by :meth:`skip` and reported by :meth:`report` as a ``BadRowsWarning``
    (the warnings filter shows a repeat of the same rows on a later pass
    once); :meth:`bad` lists them for the error of a file with no good row.
    """

    def __init__(self, path, forever: bool, on_bad_row: str):
        self.path, self.forever, self.on_bad_row = path, forever, on_bad_row
        self.skipped: list[CSVFormatError] = []
        self._bad: dict[int | None, CSVFormatError] = {}  # by line: each bad row once
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
        for error in errors:
            self._bad.setdefault(error.line, error)

    def bad(self) -> list[CSVFormatError]:
        return sorted(self._bad.values(), key=lambda e: e.line or 0)

    def progress(self, any_good: bool) -> None:
        """Refuse to loop forever over a file whose every row is bad."""
        if any_good:
            self._good_pass = self.passes
        elif self.passes - self._good_pass >= 2:
            self.report()
            raise csvrows.no_valid_rows_error(self.path, self.bad())

    def report(self) -> None:
        skipped, self.skipped = sorted(self.skipped, key=lambda e: e.line), []
        csvrows.report_skipped(self.path, skipped, stacklevel=4)

    def _generate(self):
        while True:
            rows = 0
            for line_no, line, complete in csvrows.iter_lines(self.path):
                rows += 1
                try:
                    label, part = csvrows.split_label(line, self.path, line_no)
                except CSVFormatError as exc:
                    yield line_no, None, exc, complete  # so "raise" can name the first bad row
                    continue
                yield line_no, label, part, complete
            if not rows:
                raise csvrows.no_rows_error(self.path)
            self.passes += 1
            if not self.forever:
                return


def _label_encoder(lb) -> tuple[list[str], Callable]:
    """``(classes, targets_of)``: the class names, and class indices → ``lb``'s targets.

    With a ``LabelBinarizer`` the targets are what ``lb.transform(labels)``
    returns (its dtype, its single column for two classes, a sparse matrix
    with ``sparse_output=True``): rows of the table ``lb.transform(lb.classes_)``,
    made once, picked by the indices that
    :func:`fitlab.data.labels.label_codes` gives. Calling scikit-learn on
    every batch made the generator up to about half as fast
    (``docs/measurements.md``). With class names, one-hot ``float32`` rows.
    """
    if hasattr(lb, "classes_") and hasattr(lb, "transform"):
        classes = [str(c) for c in lb.classes_]
        table = lb.transform(lb.classes_)  # row i encodes classes_[i]
        return classes, lambda codes: table[codes]
    if isinstance(lb, str) or not isinstance(lb, Sequence | np.ndarray):
        raise TypeError(
            "lb must be a fitted sklearn LabelBinarizer or a sequence of class names, "
            f"got {type(lb).__name__}"
        )
    classes = [str(c) for c in lb]
    return classes, lambda codes: one_hot_rows(codes, len(classes))


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
