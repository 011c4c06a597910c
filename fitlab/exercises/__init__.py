"""Checks for the classroom exercises in ``notebooks/exercises``.

Each ``check_…`` function runs the student's code on small, known inputs
(and, when given, on the real Flowers-17 CSVs) and returns a
:class:`CheckResult`. A notebook shows it as one line, ``✔ PASS …`` or
``✘ FAIL …`` followed by a hint. A check never lets the student's exception
escape as a bare traceback: an exception raised by the student's code is a
failed check that names the exception, the input that caused it, and a hint.

The checks and what they expect:

* :func:`check_csv_generator` — ``csv_generator(input_path, bs, mode="train")``
  yields ``(images (n, H, W, 3), labels (n,))``; ``"train"`` loops forever and
  wraps without losing or repeating a row; ``"eval"`` yields every row once,
  never an empty batch, then stops.
* :func:`check_steps` — ``batches_needed(rows, batch_size)`` and
  ``last_batch_size(rows, batch_size)`` for awkward sizes.
* :func:`check_fast_parser` — ``parse_line(line) -> (label, image uint8 (H, W, 3))``,
  exact, and at least 4× as fast as the tutorial's parser.
* :func:`check_train_loop` — ``train_loop(model, train_batches, val_batches,
  epochs, patience) -> {"loss": [...], "val_loss": [...]}`` with early stopping.
* :func:`check_port` — ``train_modern(model, train_gen, val_gen,
  steps_per_epoch, validation_steps, epochs, init_lr=1e-2) -> History``: the
  tutorial's ``fit_generator`` call ported to Keras 3.

Examples
--------
>>> check_steps(lambda rows, bs: -(-rows // bs), lambda rows, bs: rows - (-(-rows // bs) - 1) * bs)
✔ PASS check_steps: batches_needed and last_batch_size are right for all 9 cases.
"""

from __future__ import annotations

import itertools
import math
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fitlab.data import CLASS_NAMES, make_synthetic_csv

# The rows and values every check compares against come from the package's own
# strict reader, never from the code under test.
_CLASSES = list(CLASS_NAMES[:3])


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one check: ``bool(result)`` is whether it passed.

    Attributes
    ----------
    check : str
        The check's name.
    passed : bool
    message : str
        What was checked, or what went wrong and on which input.
    hint : str
        What to look at (empty when the check passed).
    """

    check: str
    passed: bool
    message: str
    hint: str = ""

    def __bool__(self) -> bool:
        return self.passed

    def __str__(self) -> str:
        if self.passed:
            return f"✔ PASS {self.check}: {self.message}"
        text = f"✘ FAIL {self.check}: {self.message}"
        return f"{text}\n  Hint: {self.hint}" if self.hint else text

    __repr__ = __str__


class _Failed(Exception):
    """Raised inside a check to stop at the first failure, with its hint."""

    def __init__(self, message: str, hint: str):
        super().__init__(message)
        self.message, self.hint = message, hint


def _raised(exc: BaseException, during: str) -> str:
    return f"your code raised {type(exc).__name__}: {exc} ({during})"


def _run_check(name: str, body: Callable[[], str]) -> CheckResult:
    try:
        return CheckResult(name, True, body())
    except _Failed as failure:
        return CheckResult(name, False, failure.message, failure.hint)


def _need_callable(fn: Any, what: str, example: str) -> None:
    if not callable(fn):
        raise _Failed(
            f"expected a function `{what}`, got {type(fn).__name__}",
            f"pass the function itself, without calling it: {example}",
        )


def _call(fn: Callable, args: tuple, during: str, hint: str, **kwargs):
    """Call the student's ``fn``; any exception becomes a failed check."""
    try:
        return fn(*args, **kwargs)
    except Exception as exc:  # the student's code may raise anything
        raise _Failed(_raised(exc, during), hint) from None


# ---------------------------------------------------------------- generators

_GEN_HINT = (
    "read one line at a time with f.readline(); at the end of the file (line == '') "
    "either stop (mode 'eval': yield the partial batch if it is not empty, then return) "
    "or f.seek(0) and keep filling the *same* batch (mode 'train'). "
    "Split each line into label and values, reshape the values to (64, 64, 3)."
)


def _given_or_synthetic(given: str | Path | None, fallback: Path, rows: int) -> Path:
    """The CSV the student named, else a synthetic one in the tutorial's format."""
    if given is not None:
        return Path(given)
    return make_synthetic_csv(fallback, rows, size=64, classes=_CLASSES)


def _reference_rows(path: Path) -> tuple[np.ndarray, np.ndarray]:
    from fitlab.data import load_csv

    images, labels = load_csv(path)
    return images, np.asarray(labels)


def _take_batches(fn, path: Path, bs: int, mode: str, limit: int, where: str) -> list:
    """At most ``limit`` batches from the student's generator, every failure reported."""
    gen = _call(
        fn, (str(path), bs), f"calling csv_generator on {where}, bs={bs}, mode={mode!r}",
        _GEN_HINT, mode=mode,
    )  # fmt: skip
    if gen is None or not hasattr(gen, "__next__") and not hasattr(gen, "__iter__"):
        raise _Failed(
            f"csv_generator returned {type(gen).__name__}, not a generator",
            "use `yield (images, labels)` inside the loop instead of `return`",
        )
    batches = []
    iterator = iter(gen)
    for _ in range(limit):
        try:
            batch = next(iterator)
        except StopIteration:
            break
        except Exception as exc:
            raise _Failed(
                _raised(
                    exc, f"reading batch {len(batches) + 1} of {where}, bs={bs}, mode={mode!r}"
                ),
                _GEN_HINT,
            ) from None
        batches.append(_as_batch(batch, len(batches) + 1, where))
    return batches


def _as_batch(batch, number: int, where: str) -> tuple[np.ndarray, np.ndarray]:
    if not isinstance(batch, tuple | list) or len(batch) != 2:
        raise _Failed(
            f"batch {number} of {where} is a {type(batch).__name__}, not a pair (images, labels)",
            "yield a tuple: `yield (np.array(images), np.array(labels))`",
        )
    images, labels = (np.asarray(part) for part in batch)
    if images.ndim != 4 or images.shape[-1] != 3:
        raise _Failed(
            f"batch {number} of {where}: images have shape {images.shape}, "
            "expected (rows, height, width, 3)",
            "reshape each row's values with .reshape((64, 64, 3)) before appending it",
        )
    if labels.shape != (len(images),):
        raise _Failed(
            f"batch {number} of {where}: {len(images)} images but labels of shape {labels.shape}",
            "append one label per image; yield the labels as a flat list or array of names",
        )
    return images, labels


def _check_eval(fn, path: Path, bs: int, where: str) -> None:
    images, labels = _reference_rows(path)
    rows = len(images)
    expected = math.ceil(rows / bs)
    batches = _take_batches(fn, path, bs, "eval", expected + 2, where)
    sizes = [len(x) for x, _ in batches]
    if 0 in sizes:
        raise _Failed(
            f"mode 'eval' on {where} ({rows} rows, bs={bs}) yielded an empty batch "
            f"(batch sizes {sizes})",
            "the tutorial's bug: at the end of the file, only yield the batch if it has rows",
        )
    if len(batches) > expected:
        raise _Failed(
            f"mode 'eval' on {where} ({rows} rows, bs={bs}) did not stop after the last row: "
            f"it gave batch sizes {sizes[:expected]} and then kept going",
            "in mode 'eval', return (or break out of the outer loop) at the end of the file "
            "instead of rewinding with f.seek(0)",
        )
    got_images = np.concatenate([x for x, _ in batches]) if batches else np.zeros((0,))
    got_labels = np.concatenate([y for _, y in batches]) if batches else np.zeros((0,))
    if len(got_images) != rows:
        raise _Failed(
            f"mode 'eval' on {where} ({rows} rows, bs={bs}) gave {len(got_images)} rows in "
            f"batches of {sizes}; expected every row exactly once ({expected} batches)",
            "every batch but the last is full; the last holds the remaining rows",
        )
    _same_rows(got_images, got_labels, images, labels, f"mode 'eval' on {where}, bs={bs}")


def _same_rows(got_images, got_labels, images, labels, where: str) -> None:
    if got_images.shape != images.shape:
        raise _Failed(
            f"{where}: images have shape {got_images.shape[1:]} per row, "
            f"expected {images.shape[1:]}",
            "reshape each row's 12,288 values to (64, 64, 3)",
        )
    for i in range(len(images)):
        if str(got_labels[i]) != str(labels[i]):
            raise _Failed(
                f"{where}: row {i + 1} has label {got_labels[i]!r}, expected {labels[i]!r}",
                "the label is the first field of the line: line.strip().split(',')[0]",
            )
        if not np.array_equal(np.asarray(got_images[i], dtype=np.float64), images[i]):
            raise _Failed(
                f"{where}: the pixel values of row {i + 1} differ from the file's",
                "the values are every field after the label, in order; strip the line end "
                "before splitting",
            )


def _check_train(fn, path: Path, bs: int, where: str) -> None:
    images, labels = _reference_rows(path)
    rows = len(images)
    count = 2 * math.ceil(rows / bs) + 1  # wrap around the end of the file twice
    batches = _take_batches(fn, path, bs, "train", count, where)
    sizes = [len(x) for x, _ in batches]
    if len(batches) < count:
        raise _Failed(
            f"mode 'train' on {where} ({rows} rows, bs={bs}) stopped after {len(batches)} "
            "batches; it must loop forever",
            "in mode 'train', at the end of the file rewind with f.seek(0) and keep reading",
        )
    if any(size != bs for size in sizes):
        raise _Failed(
            f"mode 'train' on {where} ({rows} rows, bs={bs}) gave batch sizes {sizes}; "
            f"every training batch should hold {bs} rows",
            "after f.seek(0), keep filling the same batch instead of yielding a short one",
        )
    order = np.arange(count * bs) % rows
    _same_rows(
        np.concatenate([x for x, _ in batches]), np.concatenate([y for _, y in batches]),
        images[order], labels[order], f"mode 'train' on {where}, bs={bs} (wrapping the file)",
    )  # fmt: skip


def check_csv_generator(csv_generator: Callable, real_csv: str | Path | None = None) -> CheckResult:
    """Check a CSV generator with a ``mode`` (exercise 1).

    ``csv_generator(input_path, bs, mode="train")`` must yield
    ``(images, labels)``: images shaped ``(n, H, W, 3)`` with the file's
    values, labels the ``n`` class names. Checked on small files whose row
    count does and does not divide by the batch size, then on ``real_csv``
    (e.g. ``flowers17_testing.csv``) when given.

    Examples
    --------
    >>> def broken(input_path, bs, mode="train"):
    ...     raise NotImplementedError("write me")
    >>> print(check_csv_generator(broken))  # doctest: +ELLIPSIS
    ✘ FAIL check_csv_generator: your code raised NotImplementedError: write me (calling ...)
      Hint: ...
    """

    def body() -> str:
        _need_callable(csv_generator, "csv_generator", "check_csv_generator(csv_generator)")
        with tempfile.TemporaryDirectory(prefix="fitlab-check-") as tmp:
            ten = make_synthetic_csv(Path(tmp) / "ten_rows.csv", 10, size=64, classes=_CLASSES)
            eight = make_synthetic_csv(
                Path(tmp) / "eight_rows.csv", 8, size=64, classes=_CLASSES, seed=1
            )
            _check_eval(csv_generator, ten, 4, "a 10-row file")
            _check_eval(csv_generator, eight, 4, "an 8-row file")
            _check_train(csv_generator, ten, 4, "a 10-row file")
            _check_train(csv_generator, eight, 4, "an 8-row file")
        done = "eval and train modes are right on 10- and 8-row files (batch size 4)"
        if real_csv is not None:
            _check_eval(csv_generator, Path(real_csv), 32, Path(real_csv).name)
            done += f" and on {Path(real_csv).name} (batch size 32)"
        return done + "."

    return _run_check("check_csv_generator", body)


# ---------------------------------------------------------------- steps

#: (rows, batch size, batches needed, rows in the last batch)
_STEP_CASES = (
    (1020, 32, 32, 28),  # the training CSV
    (340, 32, 11, 20),  # the testing CSV
    (320, 32, 10, 32),  # divides: the tutorial's `// bs + 1` asks for an 11th, empty batch
    (1360, 64, 22, 16),
    (32, 32, 1, 32),
    (1, 32, 1, 1),
    (31, 32, 1, 31),
    (33, 32, 2, 1),
    (1000, 1, 1000, 1),
)


def check_steps(batches_needed: Callable, last_batch_size: Callable) -> CheckResult:
    """Check ``batches_needed`` and ``last_batch_size`` for awkward sizes (exercise 2).

    Both take ``(rows, batch_size)``.

    ``batches_needed`` is the number of batches that shows every row exactly
    once (the ``steps_per_epoch`` / ``validation_steps`` for one exact pass);
    ``last_batch_size`` is how many rows the last of them holds.
    """

    def body() -> str:
        _need_callable(
            batches_needed, "batches_needed", "check_steps(batches_needed, last_batch_size)"
        )
        _need_callable(
            last_batch_size, "last_batch_size", "check_steps(batches_needed, last_batch_size)"
        )
        for rows, bs, steps, last in _STEP_CASES:
            for fn, name, want in ((batches_needed, "batches_needed", steps),
                                   (last_batch_size, "last_batch_size", last)):  # fmt: skip
                got = _call(
                    fn, (rows, bs), f"{name}({rows}, {bs})",
                    "divide the rows by the batch size and round *up*, with integers only",
                )  # fmt: skip
                if isinstance(got, bool) or not isinstance(got, int | np.integer):
                    raise _Failed(
                        f"{name}({rows}, {bs}) returned {got!r} ({type(got).__name__}); "
                        "Keras wants a whole number of batches, an int",
                        "math.ceil returns an int; np.ceil and / return floats: wrap them in int()",
                    )
                if got != want:
                    raise _Failed(
                        f"{name}({rows}, {bs}) returned {got}, expected {want}",
                        _steps_hint(name, rows, bs),
                    )
        return f"batches_needed and last_batch_size are right for all {len(_STEP_CASES)} cases."

    return _run_check("check_steps", body)


def _steps_hint(name: str, rows: int, bs: int) -> str:
    if name == "batches_needed":
        return (
            f"{rows} // {bs} drops the last partial batch, and {rows} // {bs} + 1 asks for an "
            "empty batch when the rows divide evenly; round the division *up*"
        )
    return (
        "the last batch holds what is left after the full batches; when the rows divide "
        f"evenly it is a full batch of {bs}, never 0"
    )


# ---------------------------------------------------------------- fast parser

_PARSE_HINT = (
    "split off the label at the first comma, then let numpy turn the whole comma-separated "
    "string of values into a uint8 array in one call (numpy can read text with a separator), "
    "and reshape it to (64, 64, 3)."
)
_SPEED_HINT = (
    "avoid any Python-level loop or list over the 12,288 values: "
    "np.fromstring(values, dtype=np.uint8, sep=',') parses the whole string in C. "
    "(np.array(values.split(','), dtype=np.uint8) still makes 12,288 Python strings.)"
)
MIN_SPEEDUP = 4.0


def tutorial_parse(line: str) -> tuple[str, np.ndarray]:
    """The tutorial's row parser: a Python ``int`` per value, as floats (the baseline)."""
    line = line.strip().split(",")
    label = line[0]
    image = np.array([int(x) for x in line[1:]], dtype="float32")
    return label, image.reshape((64, 64, 3))


def _best_time(fn: Callable, lines: list[str], repeats: int = 3) -> float:
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        for line in lines:
            fn(line)
        best = min(best, time.perf_counter() - start)
    return best


def _lines_of(path: Path, limit: int) -> list[str]:
    with open(path, encoding="utf-8") as f:
        return list(itertools.islice(f, limit))


def check_fast_parser(parse_line: Callable, real_csv: str | Path | None = None) -> CheckResult:
    """Check a fast, exact row parser (exercise 3).

    ``parse_line(line)`` gets one line as read from the file (line end
    included) and returns ``(label, image)`` with ``image`` a ``uint8`` array
    ``(64, 64, 3)`` equal to the file's values. It must be at least
    ``MIN_SPEEDUP`` times as fast as :func:`tutorial_parse` on the same rows
    (best of three timings each, so a busy machine slows both alike).
    """

    def body() -> str:
        from fitlab.data import parse_row

        _need_callable(parse_line, "parse_line", "check_fast_parser(parse_line)")
        with tempfile.TemporaryDirectory(prefix="fitlab-check-") as tmp:
            path = _given_or_synthetic(real_csv, Path(tmp) / "rows.csv", rows=40)
            lines = _lines_of(path, 40)
        lines[-1] = lines[-1].rstrip("\n") + "\r\n"  # a Windows line end must work too
        labels, images = zip(*(parse_row(line) for line in lines), strict=True)
        for i, line in enumerate(lines):
            label, image = _call(parse_line, (line,), f"parsing row {i + 1}", _PARSE_HINT)
            image = np.asarray(image)
            if str(label) != str(labels[i]):
                raise _Failed(
                    f"row {i + 1}: label {label!r}, expected {labels[i]!r}",
                    "the label is everything before the first comma",
                )
            if image.dtype != np.uint8 or image.shape != (64, 64, 3):
                raise _Failed(
                    f"row {i + 1}: image is {image.dtype} {image.shape}, "
                    "expected uint8 (64, 64, 3)",
                    "keep pixels as uint8 (4× smaller than float32; the model scales them) and "
                    "reshape to (64, 64, 3)",
                )
            if not np.array_equal(image.ravel(), images[i]):
                raise _Failed(
                    f"row {i + 1}: the pixel values differ from the file's",
                    "strip the line end (line.rstrip('\\r\\n')) before parsing the values",
                )
        ours = _best_time(parse_line, lines)
        theirs = _best_time(tutorial_parse, lines)
        speedup = theirs / max(ours, 1e-9)
        if speedup < MIN_SPEEDUP:
            raise _Failed(
                f"parse_line is exact but only {speedup:.1f}× as fast as the tutorial's parser; "
                f"the goal is {MIN_SPEEDUP:.0f}×",
                _SPEED_HINT,
            )
        source = Path(real_csv).name if real_csv is not None else "a synthetic file"
        return (
            f"parse_line is exact on {len(lines)} rows of {source} (a CRLF line end included) "
            f"and at least {MIN_SPEEDUP:.0f}× as fast as the tutorial's parser."
        )

    return _run_check("check_fast_parser", body)


# ---------------------------------------------------------------- training loop

_LOOP_HINT = (
    "for each epoch: call model.train_on_batch(x, y) on every training batch and average the "
    "losses; call model.test_on_batch(x, y) on every validation batch and average those; "
    "append both to the history; stop when val_loss has not improved on the best one for "
    "`patience` epochs in a row."
)


class _ScriptedModel:
    """A stand-in model whose losses follow a script, so the check knows the answer."""

    def __init__(self, train_losses: Iterable[float], val_losses: Iterable[float]):
        self._train, self._val = iter(train_losses), iter(val_losses)
        self.train_calls: list[Any] = []
        self.test_calls: list[Any] = []

    def train_on_batch(self, x, y=None, **kwargs):
        self.train_calls.append(x)
        return self._next(self._train, "train_on_batch")

    def test_on_batch(self, x, y=None, **kwargs):
        self.test_calls.append(x)
        return self._next(self._val, "test_on_batch")

    @staticmethod
    def _next(script, name: str) -> float:
        try:
            return next(script)
        except StopIteration:
            raise RuntimeError(
                f"{name} was called more often than `epochs` epochs of these batches allow"
            ) from None

    def fit(self, *args, **kwargs):
        raise RuntimeError("this exercise is about writing the loop: call train_on_batch, not fit")

    def evaluate(self, *args, **kwargs):
        raise RuntimeError("use test_on_batch on each validation batch, not evaluate")


def _scenario(epoch_val: list[float], train_batches: int = 3, val_batches: int = 2):
    """Scripted losses: epoch e's training batches give e+0.1, e+0.2, …; validation
    batches average to ``epoch_val[e]``."""
    train = [10.0 - e + 0.1 * b for e in range(len(epoch_val)) for b in range(train_batches)]
    offsets = np.linspace(-0.05, 0.05, val_batches) if val_batches > 1 else [0.0]
    val = [v + o for v in epoch_val for o in offsets]
    return train, val


def _expected(epoch_val: list[float], patience: int, epochs: int, train_batches: int = 3):
    best, waited, run = math.inf, 0, 0
    for value in epoch_val[:epochs]:
        run += 1
        if value < best:
            best, waited = value, 0
        else:
            waited += 1
            if waited >= patience:
                break
    loss = [float(np.mean([10.0 - e + 0.1 * b for b in range(train_batches)])) for e in range(run)]
    return loss, [float(v) for v in epoch_val[:run]]


def _run_scripted(train_loop, epoch_val, epochs, patience, what):
    train, val = _scenario(epoch_val)
    model = _ScriptedModel(train, val)
    xs = [np.full((2, 1), i, dtype=np.float32) for i in range(5)]
    train_batches = [(xs[i], np.zeros((2, 1))) for i in range(3)]
    val_batches = [(xs[3 + i], np.zeros((2, 1))) for i in range(2)]
    history = _call(
        train_loop, (model, train_batches, val_batches, epochs, patience),
        f"{what}: epochs={epochs}, patience={patience}", _LOOP_HINT,
    )  # fmt: skip
    if not isinstance(history, dict) or "loss" not in history or "val_loss" not in history:
        raise _Failed(
            f"{what}: train_loop returned {type(history).__name__}, expected a dict with "
            "'loss' and 'val_loss' lists",
            "start with history = {'loss': [], 'val_loss': []} and return it at the end",
        )
    loss, val_loss = _expected(epoch_val, patience, epochs)
    got_loss = [float(v) for v in history["loss"]]
    got_val = [float(v) for v in history["val_loss"]]
    if len(got_val) != len(val_loss):
        stop = "stopped" if len(got_val) < len(val_loss) else "ran on"
        raise _Failed(
            f"{what}: validation losses per epoch were {[round(v, 3) for v in epoch_val[:epochs]]} "
            f"with patience={patience}; your loop {stop} after {len(got_val)} epochs, "
            f"expected {len(val_loss)}",
            "count epochs since the best val_loss; an epoch that does not beat the best adds one; "
            "stop when the count reaches patience (and never run more than `epochs`)",
        )
    per_epoch = len(model.train_calls) / max(len(got_val), 1)
    seen = [int(x[0, 0]) for x in model.train_calls[:3]]
    if len(model.train_calls) != 3 * len(got_val) or seen != [0, 1, 2]:
        raise _Failed(
            f"{what}: train_on_batch was called {per_epoch:g} times per epoch "
            f"(first batches {seen}); expected each of the 3 training batches once per epoch",
            "loop over all of train_batches inside the epoch loop",
        )
    if len(model.test_calls) != 2 * len(got_val):
        raise _Failed(
            f"{what}: test_on_batch was called {len(model.test_calls)} times in "
            f"{len(got_val)} epochs; expected each of the 2 validation batches once per epoch",
            "validate at the end of every epoch, over all of val_batches",
        )
    if not np.allclose(got_loss, loss) or not np.allclose(got_val, val_loss):
        raise _Failed(
            f"{what}: history loss {[round(v, 3) for v in got_loss]}, val_loss "
            f"{[round(v, 3) for v in got_val]}; expected {[round(v, 3) for v in loss]} and "
            f"{[round(v, 3) for v in val_loss]} (the means over each epoch's batches)",
            "append the *mean* of the epoch's batch losses, once per epoch",
        )


def _tiny_model(shape: tuple[int, ...], classes: int):
    """A seeded, uncompiled model small enough to train in a second on CPU."""
    import keras

    keras.utils.set_random_seed(0)
    return keras.Sequential(
        [
            keras.Input(shape=shape),
            keras.layers.Rescaling(1.0 / 255),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(classes, activation="softmax"),
        ]
    )


def check_train_loop(train_loop: Callable, data: tuple | None = None) -> CheckResult:
    """Check a hand-written ``train_on_batch`` loop with validation and early stopping (exercise 4).

    ``train_loop(model, train_batches, val_batches, epochs, patience)`` gets
    lists of ``(x, y)`` batches and returns ``{"loss": [...], "val_loss":
    [...]}``, one mean per epoch. First run against a scripted model whose
    losses are known, then, when ``data=(images, one_hot)`` is given, on a
    small real Keras model, whose training loss must fall.
    """

    def body() -> str:
        _need_callable(train_loop, "train_loop", "check_train_loop(train_loop)")
        _run_scripted(train_loop, [1.0, 0.8, 0.7, 0.6, 0.5], 5, 2, "always improving")
        _run_scripted(train_loop, [1.0, 0.8, 0.9, 0.85, 0.7, 0.6], 6, 2, "a plateau")
        _run_scripted(train_loop, [1.0, 0.9, 0.95, 0.8, 0.85, 0.9, 0.7], 7, 3, "patience 3")
        done = "epochs, batch calls, mean losses and early stopping are right in 3 scripted runs"
        if data is not None:
            images, targets = (np.asarray(a) for a in data)
            import keras

            model = _tiny_model(images.shape[1:], targets.shape[1])
            model.compile(optimizer=keras.optimizers.Adam(0.05), loss="categorical_crossentropy")
            batches = [(images[i : i + 32], targets[i : i + 32]) for i in range(0, len(images), 32)]
            history = _call(
                train_loop, (model, batches[:-2], batches[-2:], 4, 10),
                "training a small Keras model on the real images", _LOOP_HINT,
            )  # fmt: skip
            loss = [float(v) for v in history.get("loss", [])] if isinstance(history, dict) else []
            if len(loss) != 4 or not loss[-1] < loss[0]:
                raise _Failed(
                    f"on a real Keras model the training loss per epoch was {loss}; expected "
                    "4 epochs with the loss falling",
                    "call model.train_on_batch(x, y): it updates the weights and returns the loss",
                )
            done += " and a real Keras model learns with it"
        return done + "."

    return _run_check("check_train_loop", body)


# ---------------------------------------------------------------- porting fit_generator

_PORT_HINT = (
    "Keras 3: model.fit(train_gen, steps_per_epoch=..., validation_data=val_gen, "
    "validation_steps=..., epochs=...) with no workers/max_queue_size; the decay "
    "becomes a schedule: fitlab.legacy_sgd(init_lr, decay=init_lr / epochs) or "
    "keras.optimizers.schedules.InverseTimeDecay(init_lr, decay_steps=1, decay_rate=...)."
)


def _counting(batches: Iterable, counter: list[int]):
    for batch in batches:
        counter[0] += 1
        yield batch


def check_port(train_modern: Callable, train_csv: str | Path | None = None) -> CheckResult:
    """Check the tutorial's ``fit_generator`` call ported to Keras 3 (exercise 5).

    ``train_modern(model, train_gen, val_gen, steps_per_epoch, validation_steps,
    epochs, init_lr=1e-2)`` compiles ``model`` as the tutorial did (SGD,
    momentum 0.9, ``decay = init_lr / epochs`` per batch, categorical
    cross-entropy, accuracy) and trains it; it returns the ``History``. The
    check feeds endless generators that count the batches drawn, then reads
    the optimizer's learning rate after training: Keras 2's decay must have
    been applied (Keras 3 accepts ``SGD(decay=…)`` and ignores it).
    """

    def body() -> str:
        _need_callable(train_modern, "train_modern", "check_port(train_modern)")
        from fitlab.data import classes_from_csv
        from fitlab.pipelines import csv_image_generator

        with tempfile.TemporaryDirectory(prefix="fitlab-check-") as tmp:
            path = _given_or_synthetic(train_csv, Path(tmp) / "train.csv", rows=24)
            classes = classes_from_csv(path)
            model = _tiny_model((64, 64, 3), len(classes))  # the student compiles it
            drawn, val_drawn = [0], [0]
            train_gen = _counting(csv_image_generator(path, 8, classes), drawn)
            val_gen = _counting(csv_image_generator(path, 8, classes), val_drawn)
            steps, val_steps, epochs, init_lr = 3, 2, 3, 1e-2
            history = _call(
                train_modern, (model, train_gen, val_gen, steps, val_steps, epochs),
                f"steps_per_epoch={steps}, validation_steps={val_steps}, epochs={epochs}",
                _PORT_HINT, init_lr=init_lr,
            )  # fmt: skip
        logs = getattr(history, "history", None)
        if not isinstance(logs, dict):
            raise _Failed(
                f"train_modern returned {type(history).__name__}, expected the History "
                "that model.fit returns",
                "return model.fit(...)",
            )
        missing = [k for k in ("loss", "accuracy", "val_loss", "val_accuracy") if k not in logs]
        if missing:
            raise _Failed(
                f"the History has {sorted(logs)}, missing {missing}",
                "compile with metrics=['accuracy'] and pass validation_data and validation_steps",
            )
        if len(logs["loss"]) != epochs:
            raise _Failed(
                f"the History has {len(logs['loss'])} epochs, expected {epochs}",
                "pass epochs=epochs to fit",
            )
        if drawn[0] < steps * epochs:
            raise _Failed(
                f"only {drawn[0]} training batches were drawn for {epochs} epochs of {steps} steps",
                "pass steps_per_epoch=steps_per_epoch to fit",
            )
        iterations = int(model.optimizer.iterations.numpy())
        decay = init_lr / epochs
        want = init_lr / (1 + decay * iterations)
        rate = model.optimizer.learning_rate
        got = float(np.asarray(rate(iterations) if callable(rate) else rate))
        if not math.isclose(got, want, rel_tol=1e-5):
            raise _Failed(
                f"after {iterations} batches the learning rate is {got:.6g}; Keras 2's "
                f"decay={decay:.4g} gives {want:.6g}",
                "Keras 3's SGD(decay=...) ignores decay (with only a warning). " + _PORT_HINT,
            )
        momentum = float(getattr(model.optimizer, "momentum", 0.0))
        if not math.isclose(momentum, 0.9):
            raise _Failed(f"the optimizer's momentum is {momentum}, expected 0.9", _PORT_HINT)
        return (
            f"fit trained {epochs} epochs of {steps} batches with validation, and the learning "
            "rate decays per batch as Keras 2's SGD(decay=...) did."
        )

    return _run_check("check_port", body)
