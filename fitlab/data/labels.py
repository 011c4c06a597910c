"""Class names and the class indices of labels: the one place labels are encoded.

A CSV row starts with its class name. Training needs a class *index*: its
position in a fixed list of class names, by default the sorted names, as
scikit-learn's ``LabelBinarizer`` orders them. Every reader in fitlab turns
names into indices here, and an unknown name is always an error naming the
file and the line.

Examples
--------
>>> encode_labels(["iris", "tulip", "iris"], ["iris", "tulip"], "t.csv", [1, 2, 3]).tolist()
[0, 1, 0]
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence

import numpy as np

from fitlab.data.csvrows import (
    CSVFormatError,
    check_on_bad_row,
    iter_lines,
    no_rows_error,
    no_valid_rows_error,
    report_skipped,
    split_label,
)

# What to do about an unknown label, for a reader that takes classes= but cannot skip rows.
CLASSES_ADVICE = "Pass classes= naming every label, or fix or delete that row."


def label_codes(labels: Sequence[str], classes: Sequence[str]) -> np.ndarray:
    """Each label's index in ``classes`` (``int64``), or -1 where the label is not a class.

    Examples
    --------
    >>> label_codes(["b", "x", "a"], ["a", "b"]).tolist()
    [1, -1, 0]
    """
    lookup = {name: i for i, name in enumerate(classes)}
    return np.fromiter((lookup.get(label, -1) for label in labels), np.int64, count=len(labels))


def encode_labels(
    labels: Sequence[str],
    classes: Sequence[str],
    path: str | os.PathLike,
    lines: Sequence[int | None] | None = None,
    *,
    advice: str = CLASSES_ADVICE,
) -> np.ndarray:
    """Class indices of ``labels``; an unknown label is a :class:`CSVFormatError` at its line.

    ``lines`` gives each label's 1-based line in ``path`` (``None`` when not
    known); ``advice`` ends the message: what the calling reader accepts.

    Examples
    --------
    >>> encode_labels(["rose"], ["iris", "tulip"], "t.csv", [7])
    Traceback (most recent call last):
    ...
    fitlab.data.csvrows.CSVFormatError: t.csv, line 7: unknown label 'rose': ...
    """
    codes = label_codes(labels, classes)
    unknown = np.flatnonzero(codes < 0)
    if len(unknown):
        first = int(unknown[0])
        line = None if lines is None else lines[first]
        raise CSVFormatError(path, line, unknown_label_reason(labels[first], classes), advice)
    return codes


def one_hot_rows(codes: np.ndarray, classes: int) -> np.ndarray:
    """``float32`` one-hot rows of class indices ``codes``, ``classes`` columns.

    Examples
    --------
    >>> one_hot_rows(np.array([1, 0]), 3).tolist()
    [[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]]
    """
    return np.eye(classes, dtype=np.float32)[codes]


def unknown_label_reason(label: str, classes: Sequence[str]) -> str:
    """What is wrong with a label that is not among ``classes`` (the reader adds what to do).

    Examples
    --------
    >>> unknown_label_reason("rose", ["iris"])
    "unknown label 'rose': the classes are ['iris']"
    """
    return f"unknown label {label!r}: the classes are {list(classes)}"


def classes_of(labels: Iterable[str]) -> list[str]:
    """The distinct labels, sorted as scikit-learn's ``LabelBinarizer`` sorts them.

    Examples
    --------
    >>> classes_of(["tulip", "iris", "tulip"])
    ['iris', 'tulip']
    """
    return sorted(set(labels))


def classes_from_csv(path: str | os.PathLike, *, on_bad_row: str = "raise") -> list[str]:
    """The sorted distinct labels of a CSV, as scikit-learn's ``LabelBinarizer`` sorts them.

    Only the labels are read (values are not checked).

    Parameters
    ----------
    path : path
        A plain or gzip-compressed CSV.
    on_bad_row : {"raise", "skip"}
        ``"raise"``: a row with no comma, or an empty or non-UTF-8 label,
        raises :class:`CSVFormatError`. ``"skip"``: such rows are left out and
        reported with a :class:`fitlab.BadRowsWarning`.

    Raises
    ------
    CSVFormatError
        A bad label (``on_bad_row="raise"``); a file with no rows, or no
        valid labels; a damaged ``.csv.gz``.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from fitlab.data import make_synthetic_csv
    >>> p = make_synthetic_csv(pathlib.Path(tempfile.mkdtemp()) / "t.csv", rows=3, size=1)
    >>> classes_from_csv(p)
    ['daffodil', 'lilyvalley', 'snowdrop']
    """
    check_on_bad_row(on_bad_row)
    labels: set[str] = set()
    skipped: list[CSVFormatError] = []
    rows = 0
    for line_no, line, _ in iter_lines(path):
        rows += 1
        try:
            labels.add(split_label(line, path, line_no)[0])
        except CSVFormatError as exc:
            if on_bad_row == "raise":
                raise
            skipped.append(exc)
    if not rows:
        raise no_rows_error(path)
    report_skipped(path, skipped)
    if not labels:
        raise no_valid_rows_error(path, skipped)
    return classes_of(labels)
