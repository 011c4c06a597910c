"""Exercise 1: a CSV generator with a ``mode`` that neither loses nor repeats a row.

The rows the student's batches are compared with come from
:func:`fitlab.data.load_csv`, the package's strict reader, never from the
code under test.
"""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

from fitlab.data import load_csv, make_synthetic_csv
from fitlab.exercises.harness import (
    END,
    CheckResult,
    Failed,
    call_student,
    need_callable,
    run_check,
)

_GEN_HINT = (
    "read one line at a time with f.readline(); at the end of the file (line == '') "
    "either stop (mode 'eval': yield the partial batch if it is not empty, then return) "
    "or f.seek(0) and keep filling the *same* batch (mode 'train'). "
    "Split each line into label and values, reshape the values to (64, 64, 3)."
)


def check_csv_generator(
    csv_generator: Callable, real_csv: str | os.PathLike | None = None
) -> CheckResult:
    """Check a CSV generator with a ``mode`` (exercise 1).

    Parameters
    ----------
    csv_generator : callable
        ``csv_generator(input_path, bs, mode="train")`` must yield
        ``(images, labels)``: images shaped ``(n, H, W, 3)`` with the file's
        values, labels the ``n`` class names. ``"train"`` loops forever and
        wraps at the end of the file without losing or repeating a row;
        ``"eval"`` yields every row once, never an empty batch, then stops.
    real_csv : path, optional
        A real CSV (e.g. ``flowers17_testing.csv``) to check ``"eval"`` mode
        on, after the small synthetic files whose row counts do and do not
        divide by the batch size.

    Returns
    -------
    CheckResult

    Examples
    --------
    >>> import numpy as np
    >>> def csv_generator(input_path, bs, mode="train"):
    ...     with open(input_path) as f:
    ...         while True:
    ...             images, labels = [], []
    ...             while len(images) < bs:
    ...                 line = f.readline()
    ...                 if line == "" and mode == "eval":
    ...                     if images:
    ...                         yield np.array(images), np.array(labels)
    ...                     return
    ...                 if line == "":
    ...                     f.seek(0)
    ...                     continue
    ...                 label, *values = line.strip().split(",")
    ...                 images.append(np.array(values, dtype="uint8").reshape((64, 64, 3)))
    ...                 labels.append(label)
    ...             yield np.array(images), np.array(labels)
    >>> check_csv_generator(csv_generator)  # doctest: +NORMALIZE_WHITESPACE
    ✔ PASS check_csv_generator: eval and train modes are right on 10- and 8-row files
    (batch size 4).
    """

    def body() -> str:
        need_callable(csv_generator, "csv_generator", "check_csv_generator(csv_generator)")
        with tempfile.TemporaryDirectory(prefix="fitlab-check-") as tmp:
            ten = make_synthetic_csv(Path(tmp) / "ten_rows.csv", 10)
            eight = make_synthetic_csv(Path(tmp) / "eight_rows.csv", 8, seed=1)
            _check_eval(csv_generator, ten, 4, "a 10-row file")
            _check_eval(csv_generator, eight, 4, "an 8-row file")
            _check_train(csv_generator, ten, 4, "a 10-row file")
            _check_train(csv_generator, eight, 4, "an 8-row file")
        done = "eval and train modes are right on 10- and 8-row files (batch size 4)"
        if real_csv is not None:
            _check_eval(csv_generator, Path(real_csv), 32, Path(real_csv).name)
            done += f" and on {Path(real_csv).name} (batch size 32)"
        return done + "."

    return run_check("check_csv_generator", body)


def _take_batches(
    fn: Callable, path: Path, bs: int, mode: str, limit: int, where: str
) -> list[tuple[np.ndarray, np.ndarray]]:
    """At most ``limit`` batches from the student's generator, every failure reported."""
    gen = call_student(
        fn, (str(path), bs), f"calling csv_generator on {where}, bs={bs}, mode={mode!r}",
        _GEN_HINT, mode=mode,
    )  # fmt: skip
    if not isinstance(gen, Iterable):
        raise Failed(
            f"csv_generator returned {type(gen).__name__}, not a generator",
            "use `yield (images, labels)` inside the loop instead of `return`",
        )
    iterator = iter(gen)
    batches = []
    for number in range(1, limit + 1):
        batch = call_student(
            next, (iterator, END), f"reading batch {number} of {where}, bs={bs}, mode={mode!r}",
            _GEN_HINT,
        )  # fmt: skip
        if batch is END:
            break
        batches.append(_as_batch(batch, number, where))
    return batches


def _as_batch(batch: object, number: int, where: str) -> tuple[np.ndarray, np.ndarray]:
    if not isinstance(batch, tuple | list) or len(batch) != 2:
        raise Failed(
            f"batch {number} of {where} is a {type(batch).__name__}, not a pair (images, labels)",
            "yield a tuple: `yield (np.array(images), np.array(labels))`",
        )
    images, labels = (np.asarray(part) for part in batch)
    if images.ndim != 4 or images.shape[-1] != 3:
        raise Failed(
            f"batch {number} of {where}: images have shape {images.shape}, "
            "expected (rows, height, width, 3)",
            "reshape each row's values with .reshape((64, 64, 3)) before appending it",
        )
    if labels.shape != (len(images),):
        raise Failed(
            f"batch {number} of {where}: {len(images)} images but labels of shape {labels.shape}",
            "append one label per image; yield the labels as a flat list or array of names",
        )
    return images, labels


def _check_eval(fn: Callable, path: Path, bs: int, where: str) -> None:
    images, labels = load_csv(path)
    rows = len(images)
    expected = math.ceil(rows / bs)
    # Two batches past the end are enough to see a generator that never stops.
    batches = _take_batches(fn, path, bs, "eval", expected + 2, where)
    sizes = [len(x) for x, _ in batches]
    if 0 in sizes:
        raise Failed(
            f"mode 'eval' on {where} ({rows} rows, bs={bs}) yielded an empty batch "
            f"(batch sizes {sizes})",
            "the tutorial's bug: at the end of the file, only yield the batch if it has rows",
        )
    if len(batches) > expected:
        raise Failed(
            f"mode 'eval' on {where} ({rows} rows, bs={bs}) did not stop after the last row: "
            f"it gave batch sizes {sizes[:expected]} and then kept going",
            "in mode 'eval', return (or break out of the outer loop) at the end of the file "
            "instead of rewinding with f.seek(0)",
        )
    if sum(sizes) != rows:
        raise Failed(
            f"mode 'eval' on {where} ({rows} rows, bs={bs}) gave {sum(sizes)} rows in "
            f"batches of {sizes}; expected every row exactly once ({expected} batches)",
            "every batch but the last is full; the last holds the remaining rows",
        )
    _same_rows(batches, images, labels, f"mode 'eval' on {where}, bs={bs}")


def _check_train(fn: Callable, path: Path, bs: int, where: str) -> None:
    images, labels = load_csv(path)
    rows = len(images)
    count = 2 * math.ceil(rows / bs) + 1  # wrap around the end of the file twice
    batches = _take_batches(fn, path, bs, "train", count, where)
    sizes = [len(x) for x, _ in batches]
    if len(batches) < count:
        raise Failed(
            f"mode 'train' on {where} ({rows} rows, bs={bs}) stopped after {len(batches)} "
            "batches; it must loop forever",
            "in mode 'train', at the end of the file rewind with f.seek(0) and keep reading",
        )
    if any(size != bs for size in sizes):
        raise Failed(
            f"mode 'train' on {where} ({rows} rows, bs={bs}) gave batch sizes {sizes}; "
            f"every training batch should hold {bs} rows",
            "after f.seek(0), keep filling the same batch instead of yielding a short one",
        )
    order = np.arange(count * bs) % rows
    _same_rows(
        batches,
        images[order],
        labels[order],
        f"mode 'train' on {where}, bs={bs} (wrapping the file)",
    )


def _same_rows(
    batches: list[tuple[np.ndarray, np.ndarray]], images: np.ndarray, labels: np.ndarray, where: str
) -> None:
    """The batches, joined, hold exactly ``images`` and ``labels``, row by row."""
    got_images = np.concatenate([x for x, _ in batches])
    got_labels = np.concatenate([y for _, y in batches])
    if got_images.shape != images.shape:
        raise Failed(
            f"{where}: images have shape {got_images.shape[1:]} per row, "
            f"expected {images.shape[1:]}",
            "reshape each row's 12,288 values to (64, 64, 3)",
        )
    for i in range(len(images)):
        if str(got_labels[i]) != str(labels[i]):
            raise Failed(
                f"{where}: row {i + 1} has label {got_labels[i]!r}, expected {labels[i]!r}",
                "the label is the first field of the line: line.strip().split(',')[0]",
            )
        # Compared as numbers: a float32 image with the file's values is right too.
        if not np.array_equal(np.asarray(got_images[i], dtype=np.float64), images[i]):
            raise Failed(
                f"{where}: the pixel values of row {i + 1} differ from the file's",
                "the values are every field after the label, in order; strip the line end "
                "before splitting",
            )
