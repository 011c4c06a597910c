"""How fast each way of training runs, epoch after epoch: ``python -m fitlab bench loops``.

MiniVGGNet (at the CSV's image size, one output per class of the CSV) is
trained with ``fitlab.legacy_sgd()`` and categorical cross-entropy on the
training CSV (default the Flowers-17 one of :func:`fitlab.prepare_flowers17`;
``--csv`` another, ``--rows N`` only its first N rows), at ``--batch-size``
(32), by each of these *ways*:

- ``fit_arrays``: ``model.fit`` on the arrays of :func:`fitlab.load_csv`;
- ``fit_sequence``: ``model.fit`` on a :class:`fitlab.CSVSequence`;
- ``fit_generator``: ``model.fit`` on :func:`fitlab.csv_image_generator` in
  train mode with ``steps_per_epoch = ceil(rows / batch)`` (what Keras 2's
  ``fit_generator`` became); it fills its last batch from the file's start,
  so its epoch has a few more images, counted as such;
- ``fit_dataset``: ``model.fit`` on :func:`fitlab.csv_dataset` (``tf.data``:
  TensorFlow only, skipped with a note on other backends);
- ``train_on_batches``: :func:`fitlab.train_on_batches` on the arrays;
- ``CompiledLoop``: :class:`fitlab.CompiledLoop` on the arrays, float32,
  ``jit_compile`` off on TensorFlow (on JAX every step is compiled by XLA);
- ``CompiledLoop_jit``, only when ``--ways`` names it: the same with XLA on
  TensorFlow (on JAX it would be the ``CompiledLoop`` row again: skipped).

Every source is read in file order, not shuffled and not cached, so every
way trains the same batches in the same order and the streams parse the CSV
every epoch, as training from a CSV does (shuffling and caching are timed by
``bench pipeline``). The arrays are loaded once, before any timing; the
table says how long that took.

What is measured, and why. A few batches of one short epoch measure mostly
what happens once: Keras peeking at a generator's first batches and building
a ``tf.data`` pipeline around it, tracing the step, the first batch. Epochs
2 … 75 of a real run pay none of it. So every way gets a model of its own,
built from the same seed, that it keeps, and
:func:`fitlab.bench.rounds.time_in_rounds` times whole epochs: one warm-up
epoch per way, then ``--rounds`` rounds (3) in which every way trains one
epoch, each round starting one way later, so that no way always runs first
and the machine's noise falls on all of them, in one process. An epoch is
one ``fit(epochs=1)`` (or loop) call, timed around the call: the call's own
set-up (a new data adapter; a generator's two peeked batches) is inside it,
which a 75-epoch ``fit`` pays once; beside a MiniVGGNet epoch it is small,
and the start-up column shows how small.

The table: per way, images/s and seconds per epoch, the median of the
rounds; their spread (slowest and fastest round); the first epoch's seconds
and the start-up (first epoch minus the median: first batch, tracing, the
data adapter's set-up); the median images/s over ``fit_arrays``'s. Above
it, the machine (CPU, cores, backend, versions) and the load average before
and after. A run trains (1 + rounds) epochs per way: minutes on a CPU.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import keras
import numpy as np

from fitlab.bench.rounds import RoundTimes, time_in_rounds
from fitlab.files import writable_folder, write_atomically
from fitlab.machine import cpu_name, versions

WAYS = (
    "fit_arrays",
    "fit_sequence",
    "fit_generator",
    "fit_dataset",
    "train_on_batches",
    "CompiledLoop",
    "CompiledLoop_jit",
)
DEFAULT_WAYS = WAYS[:-1]
REFERENCE = "fit_arrays"
LOSS = "categorical_crossentropy"
LABELS = {
    "fit_arrays": "fit (arrays)",
    "fit_sequence": "fit (CSVSequence)",
    "fit_generator": "fit (csv_image_generator)",
    "fit_dataset": "fit (csv_dataset)",
    "train_on_batches": "train_on_batches (arrays)",
    "CompiledLoop": "CompiledLoop (arrays, jit off)",
    "CompiledLoop_jit": "CompiledLoop (arrays, XLA)",
}


def main(argv: list[str] | None = None) -> int:
    """Run the loops benchmark; print its table (and write ``--json``). Returns the exit status.

    Examples
    --------
    The options (a run takes minutes, so only the help is shown here):

    >>> main(["--help"])
    Traceback (most recent call last):
    ...
    SystemExit: 0
    """
    parser = argparse.ArgumentParser(
        prog="python -m fitlab bench loops",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--csv", type=Path, help="training CSV or .csv.gz (default Flowers-17's)")
    parser.add_argument("--rows", type=int, help="train on the CSV's first ROWS rows only")
    parser.add_argument("--batch-size", type=int, default=32, help="default 32")
    parser.add_argument(
        "--rounds", type=int, default=3, help="timed epochs per way, after a warm-up (default 3)"
    )
    parser.add_argument(
        "--ways",
        nargs="+",
        choices=WAYS,
        default=list(DEFAULT_WAYS),
        help="default all but CompiledLoop_jit",
    )
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the numbers here")
    args = parser.parse_args(argv)
    for name in ("rows", "batch_size", "rounds"):
        value = getattr(args, name)
        if value is not None and value < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1, not {value}")
    if args.json:
        writable_folder(args.json.parent)  # before minutes of training, not after
    backend = keras.backend.backend()
    skipped = {way: why for way in args.ways if (why := skip_reason(way, backend))}
    ways = [way for way in dict.fromkeys(args.ways) if way not in skipped]
    if not ways:
        parser.error("nothing to time: " + "; ".join(skipped.values()))

    with tempfile.TemporaryDirectory(prefix="fitlab-bench-loops-") as tmp:
        source = args.csv or _flowers17_train()
        data = _Data.load(_first_rows(source, args.rows, Path(tmp), parser.error))
        trainers = {way: _Trainer(way, data, args.batch_size) for way in ways}
        _progress(f"{data.rows} rows of {source}; {len(ways)} ways, 1 + {args.rounds} epochs each")
        try:
            times = time_in_rounds(
                {way: t.epoch for way, t in trainers.items()}, args.rounds, progress=_progress
            )
        finally:
            for trainer in trainers.values():
                trainer.close()
    report = _report(times, trainers, data, source, args, backend, skipped)
    print_table(report, times)
    if args.json:
        write_atomically(args.json, json.dumps(report, indent=2).encode() + b"\n")
    return 0


def skip_reason(way: str, backend: str) -> str | None:
    """Why ``way`` cannot run on ``backend``, or None.

    Examples
    --------
    >>> skip_reason("fit_dataset", "jax")
    'fit (csv_dataset): tf.data is TensorFlow only'
    >>> skip_reason("fit_dataset", "tensorflow") is None
    True
    """
    if way == "fit_dataset" and backend != "tensorflow":
        return f"{LABELS[way]}: tf.data is TensorFlow only"
    if way == "CompiledLoop_jit" and backend != "tensorflow":
        return f"{LABELS[way]}: on {backend} every CompiledLoop step is compiled: see its row"
    return None


def _progress(line: str) -> None:
    # On stderr: an epoch of MiniVGGNet takes seconds to a minute on a CPU.
    print(line, file=sys.stderr, flush=True)


# -- the data ----------------------------------------------------------------------------
def _flowers17_train() -> Path:
    from fitlab.data import prepare_flowers17

    return prepare_flowers17().train


def _first_rows(
    source: Path, rows: int | None, folder: Path, error: Callable[[str], NoReturn]
) -> Path:
    """``source`` itself, or a CSV of its first ``rows`` rows written in ``folder``.

    ``error`` (the parser's) is called when ``source`` has fewer rows.
    """
    if rows is None:
        return source
    from fitlab.data import load_csv
    from fitlab.data.flowers17 import format_rows

    x, labels = load_csv(source)
    if rows > len(x):
        error(f"--rows {rows}: {source} has only {len(x)} rows")
    path = folder / f"first_{rows}_rows.csv"
    write_atomically(path, format_rows(labels[:rows], x[:rows]))
    return path


@dataclass
class _Data:
    """The CSV, and its arrays loaded once (``load_s``: how long that took)."""

    path: Path
    x: np.ndarray  # uint8 (rows, size, size, 3)
    y: np.ndarray  # float32 one-hot
    classes: list[str]
    load_s: float

    @property
    def rows(self) -> int:
        return len(self.x)

    @property
    def size(self) -> int:
        return self.x.shape[1]

    @classmethod
    def load(cls, path: Path) -> _Data:
        from fitlab.data import encode_labels, load_csv
        from fitlab.data.labels import classes_of, one_hot_rows

        start = time.perf_counter()
        x, labels = load_csv(path)
        classes = classes_of(labels)
        y = one_hot_rows(encode_labels(labels, classes, path), len(classes))
        return cls(path, x, y, classes, time.perf_counter() - start)


# -- the ways ----------------------------------------------------------------------------
class _Trainer:
    """One way: a model of its own (the same seed for every way), its source, its epoch.

    ``epoch()`` trains one whole epoch; ``images`` is how many images that is.
    """

    def __init__(self, way: str, data: _Data, batch_size: int) -> None:
        from fitlab.models import MiniVGGNet

        keras.utils.set_random_seed(0)
        model = MiniVGGNet.build(data.size, data.size, 3, len(data.classes))
        self.images = data.rows
        self.source = None
        self.epoch = self._epoch_of(way, model, data, batch_size)

    def _epoch_of(self, way: str, model: keras.Model, data: _Data, bs: int) -> Callable[[], object]:
        from fitlab.optim import legacy_sgd

        arrays = (data.x, data.y)
        if way.startswith("CompiledLoop"):
            from fitlab.loops.compiled import CompiledLoop

            # "auto": off on TensorFlow; JAX always compiles (it refuses False).
            jit = True if way == "CompiledLoop_jit" else "auto"
            loop = CompiledLoop(model, legacy_sgd(), LOSS, jit_compile=jit, mixed_precision=False)
            return lambda: loop.fit(arrays, 1, batch_size=bs, verbose=0)
        model.compile(optimizer=legacy_sgd(), loss=LOSS, metrics=["accuracy"])
        if way == "train_on_batches":
            from fitlab.loops import train_on_batches

            return lambda: train_on_batches(model, arrays, 1, batch_size=bs, verbose=0)
        # shuffle=False: every way trains the file's rows in the same order.
        if way == "fit_arrays":
            return lambda: model.fit(*arrays, batch_size=bs, epochs=1, verbose=0, shuffle=False)
        options = {}
        if way == "fit_sequence":
            from fitlab.pipelines import CSVSequence

            self.source = CSVSequence(data.path, bs, classes=data.classes)
        elif way == "fit_generator":
            from fitlab.pipelines import csv_image_generator

            options["steps_per_epoch"] = math.ceil(data.rows / bs)
            self.images = options["steps_per_epoch"] * bs
            self.source = csv_image_generator(data.path, bs, data.classes, mode="train")
        elif way == "fit_dataset":
            from fitlab.pipelines.tfdata import csv_dataset  # TensorFlow: imported on use only

            self.source = csv_dataset(data.path, bs, classes=data.classes, size=data.size)
        else:
            raise ValueError(f"unknown way {way!r}; the ways are {', '.join(WAYS)}")
        return lambda: model.fit(self.source, epochs=1, verbose=0, shuffle=False, **options)

    def close(self) -> None:
        """Close the source's file, if it has one."""
        close = getattr(self.source, "close", None)
        if close is not None:
            close()


# -- the report --------------------------------------------------------------------------
def _report(
    times: RoundTimes,
    trainers: dict[str, _Trainer],
    data: _Data,
    source: Path,
    args: argparse.Namespace,
    backend: str,
    skipped: dict[str, str],
) -> dict:
    """Everything the table shows, as JSON-ready numbers."""
    images = {way: trainer.images for way, trainer in trainers.items()}
    reference = REFERENCE if REFERENCE in images else None
    return {
        "machine": {"cpu": cpu_name(), "cpu_cores": os.cpu_count(), **versions()},
        "csv": str(source),
        "rows": data.rows,
        "image_size": data.size,
        "classes": len(data.classes),
        "batch_size": args.batch_size,
        "rounds": args.rounds,
        "load_csv_s": data.load_s,
        "load_average_before": list(times.load_before),
        "load_average_after": list(times.load_after),
        "orders": [list(order) for order in times.orders],
        "ways": {
            way: {"label": label(way, backend), **summary}
            for way, summary in times.summary(images).items()
        },
        "reference": reference,
        "ratios": times.ratios(images, reference) if reference else {},
        "skipped": skipped,
    }


def label(way: str, backend: str) -> str:
    """What the table calls ``way`` on ``backend``.

    Examples
    --------
    >>> label("CompiledLoop", "jax")
    'CompiledLoop (arrays, jax.jit)'
    """
    if way == "CompiledLoop" and backend == "jax":
        return "CompiledLoop (arrays, jax.jit)"
    return LABELS[way]


def print_table(report: dict, times: RoundTimes) -> None:
    """The machine and the run's settings, then ``times``' table, the skipped ways last."""
    m = report["machine"]
    backend = m["backend"]
    size = report["image_size"]
    print(
        f"fitlab bench loops — MiniVGGNet {size}x{size}x3, {report['classes']} classes; "
        f"{report['rows']} rows of {report['csv']}; batch {report['batch_size']}"
    )
    print(
        f"{m['cpu']}, {m['cpu_cores']} cores; Keras {m['keras']} on {backend} {m[backend]}, "
        f"Python {m['python']}"
    )
    images = {way: w["images_per_epoch"] for way, w in report["ways"].items()}
    labels = {way: w["label"] for way, w in report["ways"].items()}
    print(times.table(images, reference=report["reference"], labels=labels))
    print(
        f"The arrays were loaded once, by load_csv in {report['load_csv_s']:.2f} s, outside the "
        "epochs; the other sources parse the CSV every epoch."
    )
    for why in report["skipped"].values():
        print(f"skipped: {why}")
