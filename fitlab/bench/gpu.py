"""How fast MiniVGGNet trains, and how well its input keeps up: ``python -m fitlab bench gpu``.

MiniVGGNet at 64×64×3 on the training CSV (``--csv``; default the Flowers-17
training CSV of :func:`fitlab.prepare_flowers17`), trained with the legacy
SGD and categorical cross-entropy by two *ways*:

- ``fit``: Keras's own ``model.fit``, with its defaults;
- ``CompiledLoop``: :class:`fitlab.CompiledLoop` (on JAX one ``jax.jit``
  step with the state donated; on TensorFlow a ``tf.function`` step);

each fed by five *feeds*:

- ``arrays``: the CSV loaded once into arrays. ``fit`` gets host NumPy
  arrays, as users give them: its data adapter slices each batch on the host
  and copies it to the device (on a GPU under JAX it starts that copy one
  batch ahead). ``CompiledLoop`` gets them already on the device where the
  backend allows it (JAX: one ``jax.device_put`` before timing; its batches
  are slices of the device array); on TensorFlow it gets host arrays and
  builds a ``tf.data`` pipeline from them (prefetched to the GPU if any);
- ``sequence`` / ``sequence-processes``: :class:`fitlab.CSVSequence`
  (``shuffle=True``), with ``--workers`` threads or processes; ``fit`` reads
  it through Keras's worker pool (on JAX, forking the processes makes JAX
  warn that ``fork`` may deadlock a multithreaded process: the workers only
  parse rows with NumPy);
- ``sequence-cached``: the same with ``cache=True`` (threads);
- ``generator``: :func:`fitlab.csv_image_generator` in train mode, the CSV
  parsed on the fly, ``steps_per_epoch = ceil(rows / batch)``.

``CompiledLoop`` reads a ``PyDataset`` through :class:`fitlab.engine.BatchStream`,
index by index, on **one feeder thread**: the sequence's ``workers`` and
``use_multiprocessing`` are not used, so its ``sequence`` row is one thread
whatever ``--workers`` says, and it has no ``sequence-processes`` row.

Precision: ``float32`` and ``mixed`` (``mixed_bfloat16`` on JAX,
``mixed_float16`` with loss scaling on TensorFlow: what ``CompiledLoop``
uses; ``fit`` gets the same layer policies through
:func:`fitlab.loops.step.use_mixed_policy`), for the feeds ``--mixed`` names.

Method. For each batch size, one model per way and precision is built,
compiled and then trained on every feed in turn (the compiled step does not
depend on the feed). Its first call, on two batches of the arrays (a full
one and the file's last, partial one, so both shapes are traced), is the
*compile* time. Then every cell (way, feed, precision) runs one warm-up epoch
(cache filled, worker pools and file pages warmed), then ``--epochs`` timed
epochs, in rounds: each round gives every cell one epoch, starting one cell
later than the round before, so that the machine's noise falls on all of
them. Every epoch is one ``fit(epochs=1)`` call, timed from the call to the
end of its ``on_epoch_end`` (metrics read back, so the device has finished):
the set-up of the call (data adapter, stream, the first batch a
``CompiledLoop`` peeks at) is inside, as it is inside every epoch's work.

Columns, per batch size:

- ``img/s ±``: training images per second, the median over the timed
  epochs, ± half their range as a share of the median;
- ``start s``: the cell's warm-up epoch minus its median epoch (the compile
  time is not in it: it is listed per way under the table);
- ``wait``: the share of the epoch the training thread waited for its next
  batch. ``CompiledLoop``: :class:`fitlab.InputMeter` (``meter=``), the time
  spent in ``next()`` on its prefetch queue. ``fit`` on JAX: the time on
  ``fit``'s training thread from the end of one ``on_train_batch_end`` call
  to the next ``on_train_batch_begin`` (plus from ``on_epoch_begin`` to the
  first one), read by a ``CallbackList`` subclass that adds no hook of its
  own and so does not make ``fit`` wait for a step's logs: getting the next
  batch from the data adapter (a slice, the worker queue, the generator)
  and starting its copy to the device, plus Keras's loop bookkeeping. ``fit``
  on TensorFlow: n/a, it reads its batches inside the compiled step (a
  ``tf.data`` iterator), so no hook lies between reading and training.
  The device idles for input only when it has caught up with the host, so
  this is an upper bound on its idle share;
- ``TFLOP/s``: img/s × the counted FLOPs of one training image.

FLOPs. Counted from the model's layers: a convolution costs
2·H_out·W_out·k·k·C_in·C_out, a dense layer 2·in·out (a multiply-add is 2
FLOPs); biases, activations, batch norm, pooling, dropout, the rescaling,
softmax, the loss and the optimizer update are left out (a few per cent at
most). A training step is taken as 3× the forward pass (the backward pass
computes the gradients of the activations and of the weights, each about
one forward pass); this overcounts by the first convolution's gradient with
respect to the image, which nobody needs (about 2%). On JAX, XLA's own count
of the gradient computation (``jax.jit(jax.grad(loss)).lower(...)
.cost_analysis()``, before optimisation) is printed beside it; MiniVGGNet:
0.213 GFLOP forward, 0.638 GFLOP counted per training image, 0.624 by XLA.
The device's dense bf16 peak comes from a small table (NVIDIA H200 and H100
SXM: 989 TFLOP/s); other devices: "peak unknown".

Defaults: on a GPU 8,192 rows (the CSV's rows repeated), batch 32, 128 and
512, 3 timed epochs, every feed also in mixed precision. On a CPU they are
smaller (256 rows, batch 32 and 128, 2 timed epochs, no mixed precision:
``--mixed arrays`` or ``all`` measures it, slowly), so that CI keeps the
benchmark working; ``--quick`` (64 rows, batch 32, 1 timed epoch, no XLA
count) runs in seconds to a minute.
"""

from __future__ import annotations

import argparse
import datetime
import gc
import importlib.metadata
import json
import math
import os
import platform
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import keras
import numpy as np

from fitlab.machine import cpu_name, load_text

SIZE, DEPTH = 64, 3
LOSS = "categorical_crossentropy"
WAYS = ("fit", "CompiledLoop")
FEEDS = ("arrays", "sequence", "sequence-processes", "sequence-cached", "generator")
PRECISIONS = ("float32", "mixed")
MIXED_POLICY = {"jax": "mixed_bfloat16", "tensorflow": "mixed_float16"}
SHORT_PRECISION = {"float32": "f32", "mixed_bfloat16": "bf16", "mixed_float16": "fp16"}
#: Dense bf16 peak TFLOP/s by device kind (the name the backend reports, or its start).
PEAK_BF16_TFLOPS = {
    "NVIDIA H200": 989.0,
    "NVIDIA H100 80GB HBM3": 989.0,  # the SXM card's name under CUDA
    "NVIDIA H100 SXM": 989.0,
}
DEFAULTS = {
    "gpu": {"batch_sizes": [32, 128, 512], "rows": 8192, "epochs": 3, "mixed": "all"},
    "cpu": {"batch_sizes": [32, 128], "rows": 256, "epochs": 2, "mixed": "none"},
    "quick": {"batch_sizes": [32], "rows": 64, "epochs": 1, "mixed": "none"},
}
PROCESSES_SKIPPED = (
    "CompiledLoop reads a PyDataset on its own feeder thread (fitlab.engine.BatchStream), "
    "without the PyDataset's workers: a processes row would repeat its sequence row"
)
FIT_WAIT_NA = (
    "fit on TensorFlow reads each batch inside its compiled step (a tf.data iterator): "
    "no hook lies between reading and training"
)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, print its table (and write ``--json``). Returns the exit status.

    Examples
    --------
    The options (a run takes minutes, so only the help is shown here):

    >>> main(["--help"])
    Traceback (most recent call last):
    ...
    SystemExit: 0
    """
    parser = argparse.ArgumentParser(
        prog="python -m fitlab bench gpu",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--csv", type=Path, help="training CSV or .csv.gz (default Flowers-17's)")
    parser.add_argument(
        "--rows",
        type=int,
        help="rows to train on: the CSV's first rows, repeated when it has fewer; 0: the file "
        "as it is (default 8192 on a GPU, 256 on a CPU, 64 with --quick)",
    )
    parser.add_argument(
        "--batch-sizes", type=int, nargs="+", help="default 32 128 512 on a GPU, 32 128 on a CPU"
    )
    parser.add_argument(
        "--epochs", type=int, help="timed epochs per cell, after one warm-up (GPU 3, CPU 2)"
    )
    parser.add_argument("--ways", nargs="+", choices=WAYS, default=list(WAYS))
    parser.add_argument("--feeds", nargs="+", choices=FEEDS, default=list(FEEDS))
    parser.add_argument(
        "--mixed",
        choices=("none", "arrays", "all"),
        help="feeds also measured in mixed precision (default all on a GPU, none on a CPU)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=max(1, min(8, os.cpu_count() or 1)),
        help="CSVSequence workers for fit (default: the cores, at most 8)",
    )
    parser.add_argument(
        "--no-xla-count", action="store_true", help="on JAX, skip XLA's cross-check of the FLOPs"
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="64 rows, batch 32, 1 timed epoch, no mixed precision, no XLA count (for tests)",
    )
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the numbers here")
    args = parser.parse_args(argv)
    for name in ("rows", "epochs", "workers"):
        value = getattr(args, name)
        if value is not None and value < (0 if name == "rows" else 1):
            parser.error(f"--{name} must be at least {0 if name == 'rows' else 1}")
    if args.batch_sizes and min(args.batch_sizes) < 1:
        parser.error("--batch-sizes must be positive")

    load_before = os.getloadavg()
    backend = keras.backend.backend()
    device = _device(backend)
    defaults = DEFAULTS["quick" if args.quick else device["type"]]
    settings = {
        "backend": backend,
        "ways": args.ways,
        "feeds": args.feeds,
        "workers": args.workers,
        "batch_sizes": args.batch_sizes or defaults["batch_sizes"],
        "rows": defaults["rows"] if args.rows is None else args.rows,
        "epochs": args.epochs or defaults["epochs"],
        "mixed": args.mixed or defaults["mixed"],
        "mixed_policy": MIXED_POLICY.get(backend),
        "defaults": "quick" if args.quick else device["type"],
    }
    if settings["mixed"] != "none" and backend not in MIXED_POLICY:
        parser.error(f"mixed precision is measured on JAX and TensorFlow, not on {backend!r}")

    with tempfile.TemporaryDirectory(prefix="fitlab-bench-gpu-") as tmp:
        source = args.csv or _flowers17_train()
        path = _sized_csv(source, settings["rows"], Path(tmp)) if settings["rows"] else source
        data = _Data.load(path)
        flops = _flops(data.classes, backend, xla=not args.no_xla_count and not args.quick)
        _progress(f"{data.rows} rows of {source}; {flops['training_gflop']:.3f} GFLOP/image")
        results = []
        for batch_size in settings["batch_sizes"]:
            gflop = flops["training_gflop"]
            results.append(_measure_batch_size(batch_size, data, settings, backend, gflop))
            gc.collect()  # this batch size's models and device arrays
            keras.backend.clear_session()
    report = {
        "machine": _machine(backend, device),
        "load_average_before": list(load_before),
        "load_average_after": list(os.getloadavg()),
        "csv": str(source),
        "rows": data.rows,
        "classes": len(data.classes),
        "settings": settings,
        "flops": flops,
        "peak_bf16_tflops": _peak(device["name"]),
        "cells": [cell for result in results for cell in result["cells"]],
        "compile": [entry for result in results for entry in result["compile"]],
        "skipped": _skipped(settings),
    }
    report["ratios"] = _ratios(report["cells"])
    report["goals"] = _goals(report)
    print_table(report)
    if args.json:
        from fitlab.files import write_atomically

        write_atomically(args.json, json.dumps(report, indent=2).encode() + b"\n")
    return 0


def _progress(line: str) -> None:
    # On stderr: a cell takes from seconds to minutes on a CPU.
    print(line, file=sys.stderr, flush=True)


# -- the data ------------------------------------------------------------------------
def _flowers17_train() -> Path:
    from fitlab.data import prepare_flowers17

    return prepare_flowers17().train


def _sized_csv(source: Path, rows: int, folder: Path) -> Path:
    """The first ``rows`` rows of ``source`` (plain or gzip), repeated when it has fewer."""
    from fitlab.data.csvrows import BOM, open_binary

    with open_binary(source) as f:
        lines = [line.strip(b"\r\n") for line in f if line.strip()]
    if not lines:
        raise ValueError(f"{source} has no rows")
    lines[0] = lines[0].removeprefix(BOM)
    out = folder / f"train_{rows}.csv"
    with open(out, "wb") as f:
        for i in range(rows):
            f.write(lines[i % len(lines)] + b"\n")
    return out


@dataclass
class _Data:
    path: Path
    x: np.ndarray  # uint8 (rows, 64, 64, 3)
    y: np.ndarray  # float32 one-hot
    classes: list[str]

    @property
    def rows(self) -> int:
        return len(self.x)

    @classmethod
    def load(cls, path: Path) -> _Data:
        from fitlab.data import CLASS_NAMES, classes_from_csv, load_csv
        from fitlab.data.labels import encode_labels, one_hot_rows

        # Every Flowers-17 class, so the model has its 17 outputs on a smaller CSV too.
        classes = sorted(set(CLASS_NAMES) | set(classes_from_csv(path)))
        x, labels = load_csv(path)
        if x.shape[1:] != (SIZE, SIZE, DEPTH):
            raise ValueError(f"{path}: images are {x.shape[1:]}, MiniVGGNet here takes 64x64x3")
        y = one_hot_rows(encode_labels(labels, classes, path), len(classes))
        return cls(path, x, y, classes)


# -- FLOPs -----------------------------------------------------------------------------
def forward_flops(model: keras.Model) -> dict[str, int]:
    """FLOPs of one image's forward pass, per convolution and dense layer.

    A convolution: 2·H_out·W_out·k_h·k_w·C_in·C_out (C_in per group); a dense
    layer: 2·in·out for each position it is applied at. Everything else is
    left out.

    Examples
    --------
    >>> from fitlab.models import MiniVGGNet
    >>> counted = forward_flops(MiniVGGNet.build(64, 64, 3, 17))
    >>> len(counted), sum(counted.values())
    (6, 212616192)
    >>> round(3 * sum(counted.values()) / 1e9, 2)  # a training image, GFLOP
    0.64
    """
    counted = {}
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D):
            kh, kw, c_in, c_out = layer.kernel.shape
            _, h_out, w_out, _ = layer.output.shape
            counted[layer.name] = 2 * h_out * w_out * kh * kw * c_in * c_out
        elif isinstance(layer, keras.layers.Dense):
            n_in, n_out = layer.kernel.shape
            positions = math.prod(layer.input.shape[1:-1])
            counted[layer.name] = 2 * positions * n_in * n_out
    return counted


def _flops(classes: list[str], backend: str, xla: bool) -> dict:
    from fitlab.models import MiniVGGNet

    model = MiniVGGNet.build(SIZE, SIZE, DEPTH, len(classes))
    layers = forward_flops(model)
    forward = sum(layers.values())
    result = {
        "forward_flops_per_image": forward,
        "training_flops_per_image": 3 * forward,
        "training_gflop": 3 * forward / 1e9,
        "layers": layers,
        "rule": "conv 2*Hout*Wout*k*k*Cin*Cout, dense 2*in*out; training = 3 x forward; "
        "biases, activations, batch norm, pooling, dropout, softmax, loss, optimizer left out",
        "xla_training_flops_per_image": None,
    }
    if xla and backend == "jax":
        result["xla_training_flops_per_image"] = _xla_training_flops(model)
    return result


def _xla_training_flops(model: keras.Model, batch: int = 8) -> float | None:
    """XLA's count for the gradient of the loss of one image (JAX only)."""
    import jax
    import jax.numpy as jnp

    trainable = [v.value for v in model.trainable_variables]
    non_trainable = [v.value for v in model.non_trainable_variables]

    def loss(trainable, non_trainable, x, y):
        y_pred, _ = model.stateless_call(trainable, non_trainable, x, training=True)
        return keras.ops.mean(keras.losses.categorical_crossentropy(y, y_pred))

    x = jnp.zeros((batch, SIZE, SIZE, DEPTH), "float32")
    y = jnp.zeros((batch, model.output_shape[-1]), "float32")
    try:
        cost = jax.jit(jax.grad(loss)).lower(trainable, non_trainable, x, y).cost_analysis()
    except Exception as error:  # a cross-check only: say why, go on
        _progress(f"XLA's FLOP count unavailable: {error}")
        return None
    if isinstance(cost, list | tuple):
        cost = cost[0] if cost else None
    if not cost or "flops" not in cost:
        return None
    return float(cost["flops"]) / batch


def _peak(device_name: str) -> float | None:
    for name, peak in PEAK_BF16_TFLOPS.items():
        if device_name.startswith(name):
            return peak
    return None


# -- one batch size ------------------------------------------------------------------
@dataclass
class _Cell:
    way: str
    feed: str
    precision: str
    batch_size: int
    source: Any = None
    warmup_s: float = math.nan
    seconds: list[float] = field(default_factory=list)
    waits: list[float | None] = field(default_factory=list)

    def summary(self, settings: dict, gflop: float) -> dict:
        images = self.source.images
        rates = [images / s for s in self.seconds]
        median = statistics.median(rates)
        median_s = statistics.median(self.seconds)
        waits = None if None in self.waits else sum(self.waits) / sum(self.seconds)
        return {
            "way": self.way,
            "feed": self.feed,
            "label": _feed_label(self.way, self.feed, settings["workers"]),
            "precision": _policy(self.precision, settings),
            "batch_size": self.batch_size,
            "images_per_epoch": images,
            "epoch_seconds": self.seconds,
            "epoch_images_per_second": rates,
            "images_per_second": median,
            "spread": (max(rates) - min(rates)) / 2 / median,
            "startup_s": self.warmup_s - median_s,
            "wait_share": waits,
            "wait_note": None if waits is not None else FIT_WAIT_NA,
            "tflops": median * gflop / 1e3,
        }


def _cells(batch_size: int, settings: dict) -> list[_Cell]:
    cells = []
    for precision in PRECISIONS:
        if precision == "mixed" and settings["mixed"] == "none":
            continue
        for way in settings["ways"]:
            for feed in settings["feeds"]:
                if precision == "mixed" and settings["mixed"] == "arrays" and feed != "arrays":
                    continue
                if way == "CompiledLoop" and feed == "sequence-processes":
                    continue
                cells.append(_Cell(way, feed, precision, batch_size))
    return cells


def _skipped(settings: dict) -> list[dict]:
    if "CompiledLoop" in settings["ways"] and "sequence-processes" in settings["feeds"]:
        return [{"way": "CompiledLoop", "feed": "sequence-processes", "why": PROCESSES_SKIPPED}]
    return []


def _measure_batch_size(
    batch_size: int, data: _Data, settings: dict, backend: str, gflop: float
) -> dict:
    """Compile, warm up and time every cell of one batch size; their summaries."""
    cells = _cells(batch_size, settings)
    arrays = _Arrays(data, backend)
    trainers: dict[tuple[str, str], _Trainer] = {}
    compile_runs = []
    for cell in cells:
        key = (cell.way, cell.precision)
        if key in trainers:
            continue
        trainers[key] = _Trainer(cell.way, cell.precision, len(data.classes), backend)
        first = arrays.feed(cell.way, batch_size, rows=_first_call_rows(data.rows, batch_size))
        seconds, _ = trainers[key].epoch(first)
        compile_runs.append(
            {
                "way": cell.way,
                "precision": _policy(cell.precision, settings),
                "batch_size": batch_size,
                "seconds": seconds,
                "images": first.images,
            }
        )
        _progress(f"batch {batch_size}: {cell.way} {cell.precision}: first call {seconds:.1f} s")
    for cell in cells:
        cell.source = _source(cell, data, arrays, settings["workers"])

    def run(cell: _Cell) -> tuple[float, float | None]:
        return trainers[cell.way, cell.precision].epoch(cell.source)

    for cell in cells:  # warm-up epochs
        cell.warmup_s, _ = run(cell)
    _progress(f"batch {batch_size}: {len(cells)} cells warmed up")
    for round_ in range(settings["epochs"]):
        shift = round_ % len(cells)
        for cell in cells[shift:] + cells[:shift]:
            seconds, wait = run(cell)
            cell.seconds.append(seconds)
            cell.waits.append(wait)
        _progress(f"batch {batch_size}: round {round_ + 1} of {settings['epochs']} done")
    for cell in cells:
        cell.source.close()

    summaries = [cell.summary(settings, gflop) for cell in cells]
    for entry in compile_runs:
        rates = [
            s["images_per_second"]
            for s in summaries
            if (s["way"], s["precision"]) == (entry["way"], entry["precision"])
        ]
        steady = entry["images"] / max(rates) if rates else 0.0
        entry["extra_seconds"] = entry["seconds"] - steady
    for s in summaries:
        wait = "n/a" if s["wait_share"] is None else f"{s['wait_share']:.1%}"
        _progress(
            f"batch {batch_size}: {s['way']}, {s['label']}, {s['precision']}: "
            f"{s['images_per_second']:.1f} img/s, wait {wait}"
        )
    return {"cells": summaries, "compile": compile_runs}


def _policy(precision: str, settings: dict) -> str:
    return settings["mixed_policy"] if precision == "mixed" else "float32"


def _first_call_rows(rows: int, batch_size: int) -> int:
    """A full batch and the last, partial one (both shapes get traced), or all rows."""
    if rows <= batch_size:
        return rows
    return batch_size + rows % batch_size


def _feed_label(way: str, feed: str, workers: int) -> str:
    """The feed as the table names it: what this way really does with it."""
    if feed == "arrays":
        on_device = way == "CompiledLoop" and keras.backend.backend() == "jax"
        return "arrays (on device)" if on_device else "arrays (host NumPy)"
    if feed == "generator":
        return "CSV parsed on the fly (generator)"
    cached = " cached" if feed == "sequence-cached" else ""
    if way == "CompiledLoop":
        return f"CSVSequence{cached}, 1 feeder thread"
    kind = "processes" if feed == "sequence-processes" else "threads"
    return f"CSVSequence{cached}, {workers} {kind}"


# -- feeds -----------------------------------------------------------------------------
class _Arrays:
    """The CSV's arrays: on the host for fit, on the device for CompiledLoop under JAX."""

    def __init__(self, data: _Data, backend: str) -> None:
        self.host = (data.x, data.y)
        self.device = self.host
        if backend == "jax":
            import jax

            self.device = jax.block_until_ready(jax.device_put(self.host))

    def feed(self, way: str, batch_size: int, rows: int | None = None) -> _Feed:
        x, y = self.device if way == "CompiledLoop" else self.host
        if rows is not None:
            x, y = x[:rows], y[:rows]
        return _Feed((x, y), {"batch_size": batch_size}, len(x), math.ceil(len(x) / batch_size))


@dataclass
class _Feed:
    """What one cell trains on: the source, the fit arguments, images and batches per epoch."""

    source: Any
    kwargs: dict
    images: int
    steps: int

    def close(self) -> None:
        close = getattr(self.source, "close", None)
        if close is not None and not isinstance(self.source, tuple):
            close()


def _source(cell: _Cell, data: _Data, arrays: _Arrays, workers: int) -> _Feed:
    bs = cell.batch_size
    if cell.feed == "arrays":
        return arrays.feed(cell.way, bs)
    if cell.feed == "generator":
        from fitlab.pipelines import csv_image_generator

        steps = math.ceil(data.rows / bs)
        generator = csv_image_generator(data.path, bs, data.classes, mode="train")
        return _Feed(generator, {"steps_per_epoch": steps}, steps * bs, steps)
    from fitlab.pipelines import CSVSequence

    sequence = CSVSequence(
        data.path,
        bs,
        classes=data.classes,
        shuffle=True,
        seed=0,
        cache=cell.feed == "sequence-cached",
        workers=workers,
        use_multiprocessing=cell.feed == "sequence-processes",
    )
    return _Feed(sequence, {}, data.rows, len(sequence))


# -- the two ways ----------------------------------------------------------------------
class _Trainer:
    """One model trained one way in one precision; one epoch per call of :meth:`epoch`."""

    def __init__(self, way: str, precision: str, classes: int, backend: str) -> None:
        from fitlab.models import MiniVGGNet
        from fitlab.optim import legacy_sgd

        self.way, self.backend = way, backend
        keras.utils.set_random_seed(0)
        model = MiniVGGNet.build(SIZE, SIZE, DEPTH, classes)
        mixed = precision == "mixed"
        if way == "CompiledLoop":
            from fitlab.loops.compiled import CompiledLoop
            from fitlab.pipelines import InputMeter

            self.loop = CompiledLoop(model, legacy_sgd(), LOSS, mixed_precision=mixed)
            self.meter = InputMeter()
        else:
            optimizer = legacy_sgd()
            if mixed:
                from fitlab.loops.step import use_mixed_policy

                use_mixed_policy(model, MIXED_POLICY[backend])
                if MIXED_POLICY[backend] == "mixed_float16":
                    optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
            model.compile(optimizer=optimizer, loss=LOSS, metrics=["accuracy"])
        self.model = model

    def epoch(self, feed: _Feed) -> tuple[float, float | None]:
        """One epoch: (seconds from the call to the end of ``on_epoch_end``, seconds waited)."""
        clock = EpochClock(self.model, feed.steps)
        start = time.perf_counter()
        if self.way == "CompiledLoop":
            waited = self.meter.wait_s
            self.loop.fit(
                feed.source, 1, verbose=0, callbacks=clock, meter=self.meter, **feed.kwargs
            )
            return clock.end - start, self.meter.wait_s - waited
        if isinstance(feed.source, tuple):
            x, y = feed.source
            self.model.fit(x, y, epochs=1, verbose=0, shuffle=False, callbacks=clock, **feed.kwargs)
        else:
            self.model.fit(
                feed.source, epochs=1, verbose=0, shuffle=False, callbacks=clock, **feed.kwargs
            )
        return clock.end - start, clock.wait_s if self.backend == "jax" else None


class EpochClock(keras.callbacks.CallbackList):
    """The callbacks of one ``fit(epochs=1)``: a clock on the training thread, no hooks added.

    ``end`` is when ``on_epoch_end`` returned (the epoch's logs are plain
    numbers by then: the device has finished). ``wait_s`` sums the time from
    ``on_epoch_begin`` to the first ``on_train_batch_begin`` and from each
    ``on_train_batch_end`` to the next ``on_train_batch_begin``: on JAX, the
    time ``fit``'s training thread spent getting the next batch.

    Being the ``CallbackList`` itself, it adds no ``on_train_batch_end``
    hook, so Keras still hands the step's logs to its callbacks
    asynchronously and nothing waits for the device between steps.

    Examples
    --------
    >>> model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    >>> model.compile("sgd", "mse")
    >>> clock = EpochClock(model, steps=2)
    >>> _ = model.fit(np.ones((4, 1)), np.ones((4, 1)), batch_size=2, verbose=0, callbacks=clock)
    >>> clock.end > 0, clock.wait_s >= 0
    (True, True)
    """

    def __init__(self, model: keras.Model, steps: int) -> None:
        super().__init__(
            [], add_history=True, add_progbar=False, model=model, epochs=1, steps=steps
        )
        self.wait_s = 0.0
        self.end = math.nan
        self._mark: float | None = None

    def on_epoch_begin(self, epoch, logs=None):
        super().on_epoch_begin(epoch, logs)
        self._mark = time.perf_counter()

    def on_train_batch_begin(self, batch, logs=None):
        if self._mark is not None:
            self.wait_s += time.perf_counter() - self._mark
            self._mark = None
        super().on_train_batch_begin(batch, logs)

    def on_train_batch_end(self, batch, logs=None):
        super().on_train_batch_end(batch, logs)
        self._mark = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self._mark = None
        super().on_epoch_end(epoch, logs)
        self.end = time.perf_counter()


# -- machine ---------------------------------------------------------------------------
def _device(backend: str) -> dict:
    """``{"type": "gpu" or "cpu", "name": ..., "count": ...}`` as the backend sees it."""
    if backend == "jax":
        import jax

        devices = jax.devices()
        if devices and devices[0].platform == "gpu":
            return {"type": "gpu", "name": devices[0].device_kind, "count": len(devices)}
    elif backend == "tensorflow":
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")
        if gpus:
            details = tf.config.experimental.get_device_details(gpus[0])
            return {
                "type": "gpu",
                "name": details.get("device_name", gpus[0].name),
                "count": len(gpus),
            }
    return {"type": "cpu", "name": cpu_name(), "count": 1}


def _machine(backend: str, device: dict) -> dict:
    versions = {}
    for package in ("keras", "jax", "jaxlib", "tensorflow"):
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = None
    return {
        "device": device,
        "cpu": cpu_name(),
        "cpu_cores": os.cpu_count(),
        "backend": backend,
        "versions": versions,
        "tensorflow_imported": "tensorflow" in sys.modules,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
    }


# -- goals and output ------------------------------------------------------------------
def _ratios(cells: list[dict]) -> list[dict]:
    """CompiledLoop's images/s over fit's, for every feed, precision and batch size both ran."""
    fit = {(c["feed"], c["precision"], c["batch_size"]): c for c in cells if c["way"] == "fit"}
    ratios = []
    for c in cells:
        other = fit.get((c["feed"], c["precision"], c["batch_size"]))
        if c["way"] == "CompiledLoop" and other:
            ratios.append(
                {
                    "feed": c["feed"],
                    "precision": c["precision"],
                    "batch_size": c["batch_size"],
                    "CompiledLoop/fit": c["images_per_second"] / other["images_per_second"],
                }
            )
    return ratios


def _goals(report: dict) -> list[dict]:
    """The issue's goals, from this run's numbers; judged only on the machine each is for."""
    m = report["machine"]
    on_h200_jax = m["backend"] == "jax" and m["device"]["name"].startswith("NVIDIA H200")
    on_cpu_jax = m["backend"] == "jax" and m["device"]["type"] == "cpu"
    cells = report["cells"]
    goals = []

    def goal(text: str, value: float, unit: str, target: str, met: bool, judged: bool) -> None:
        goals.append(
            {
                "goal": text,
                "value": value,
                "unit": unit,
                "target": target,
                "met": met if judged else None,
            }
        )

    for batch_size in report["settings"]["batch_sizes"]:
        ratios = [r for r in report["ratios"] if r["batch_size"] == batch_size]
        if not ratios:
            continue
        low = min(ratios, key=lambda r: r["CompiledLoop/fit"])
        ratio = low["CompiledLoop/fit"]
        goal(
            f"CompiledLoop / fit, batch {batch_size}, lowest ({low['feed']}, {low['precision']})",
            ratio,
            "ratio",
            ">= 1 on an H200 (JAX)",
            ratio >= 1,
            on_h200_jax,
        )
        arrays = [
            r["CompiledLoop/fit"]
            for r in ratios
            if (r["feed"], r["precision"]) == ("arrays", "float32")
        ]
        if batch_size == 32 and arrays:
            goal(
                "CompiledLoop / fit, batch 32, arrays, float32",
                arrays[0],
                "ratio",
                ">= 0.95 on a CPU (JAX)",
                arrays[0] >= 0.95,
                on_cpu_jax,
            )
    mixed = [c for c in cells if c["batch_size"] == 512 and c["precision"] != "float32"]
    if mixed:
        best = max(mixed, key=lambda c: c["images_per_second"])
        rate = best["images_per_second"]
        goal(
            f"mixed precision, batch 512, best ({best['way']}, {best['feed']})",
            rate,
            "img/s",
            ">= 50,000 on an H200 (JAX)",
            rate >= 50_000,
            on_h200_jax,
        )
    waits = [c for c in cells if c["feed"].startswith("sequence") and c["wait_share"] is not None]
    if waits:
        worst = max(waits, key=lambda c: c["wait_share"])
        where = (
            f"{worst['way']}, {worst['feed']}, {worst['precision']}, batch {worst['batch_size']}"
        )
        goal(
            f"CSVSequence input wait after epoch 1, highest ({where})",
            worst["wait_share"],
            "share",
            "< 5% on an H200 (JAX)",
            worst["wait_share"] < 0.05,
            on_h200_jax,
        )
    return goals


def print_table(report: dict) -> None:
    """The report as text: machine, a row per way+feed+precision, a column per batch size."""
    m, s, f = report["machine"], report["settings"], report["flops"]
    versions = ", ".join(f"{k} {v}" for k, v in m["versions"].items() if v)
    device = m["device"]
    where = device["name"] if device["type"] == "gpu" else f"no GPU, CPU {m['cpu']}"
    peak = report["peak_bf16_tflops"]
    xla = f["xla_training_flops_per_image"]
    mixed = "not measured" if s["mixed"] == "none" else f"{s['mixed_policy']} for {s['mixed']}"
    for line in (
        f"fitlab bench gpu — MiniVGGNet {SIZE}x{SIZE}x{DEPTH}, {report['classes']} classes, "
        f"{report['rows']} rows of {report['csv']}",
        f"machine: {where}; {m['cpu_cores']} CPU cores; Keras backend {m['backend']}; "
        f"{versions}; tensorflow imported: {m['tensorflow_imported']}; Python {m['python']}; "
        f"{m['date']}",
        "load average before: " + load_text(report["load_average_before"]),
        f"FLOPs per image: {f['forward_flops_per_image'] / 1e9:.3f} G forward, "
        f"{f['training_gflop']:.3f} G a training step (3x forward)"
        + (f"; XLA counts {xla / 1e9:.3f} G" if xla else "")
        + "; device bf16 peak: "
        + (f"{peak:,.0f} TFLOP/s dense" if peak else "peak unknown"),
        f"{s['epochs']} timed epoch(s) per cell after 1 warm-up, in rounds; "
        f"fit's CSVSequence workers: {s['workers']}; mixed precision: {mixed}; "
        f"defaults: {s['defaults']}",
    ):
        print(line)
    print()
    _print_cells(report)
    print()
    print("compile: first call (a full and the last partial batch) minus its images' steady time")
    for entry in report["compile"]:
        print(
            f"  {entry['way']:<13}{entry['precision']:<16}batch {entry['batch_size']:<6}"
            f"{entry['extra_seconds']:>8.1f} s"
        )
    best = _best_per_batch_size(report["cells"])
    if best:
        print("fastest cell per batch size:")
        for c in best:
            share = f" = {c['tflops'] / peak:.1%} of the bf16 peak" if peak else ""
            print(
                f"  batch {c['batch_size']:<6}{c['way']}, {c['label']}, {c['precision']}: "
                f"{c['images_per_second']:,.0f} img/s, {c['tflops']:.3g} TFLOP/s{share}"
            )
    print()
    for note in _notes(report):
        print(note)
    if report["goals"]:
        print()
        print("goals")
        verdicts = {True: "met", False: "NOT met", None: "not judged on this machine"}
        for goal in report["goals"]:
            value = goal["value"]
            shown = {"ratio": f"{value:.2f}", "img/s": f"{value:,.0f} img/s"}.get(
                goal["unit"], f"{value:.1%}"
            )
            print(f"  {goal['goal']}: {shown}; target {goal['target']}: {verdicts[goal['met']]}")
    print()
    print("load average after: " + load_text(report["load_average_after"]))


def _print_cells(report: dict) -> None:
    batch_sizes = report["settings"]["batch_sizes"]
    cells = {(c["way"], c["label"], c["precision"], c["batch_size"]): c for c in report["cells"]}
    rows = list(dict.fromkeys((c["way"], c["label"], c["precision"]) for c in report["cells"]))
    head = f"{'way':<13}{'feed':<36}{'prec':<5}"
    group = f"{'img/s':>9} {'±':>4} {'start s':>7} {'wait':>6} {'TFLOP/s':>8}"
    print(" " * len(head) + "".join(f"  {f'batch {b}':^{len(group)}}" for b in batch_sizes))
    print(head + "".join(f"  {group}" for _ in batch_sizes))
    print("-" * (len(head) + (len(group) + 2) * len(batch_sizes)))
    for way, label, precision in rows:
        line = f"{way:<13}{label:<36}{SHORT_PRECISION.get(precision, precision):<5}"
        for b in batch_sizes:
            c = cells.get((way, label, precision, b))
            if c is None:
                line += f"  {'—':>{len(group)}}"
                continue
            wait = "n/a" if c["wait_share"] is None else f"{c['wait_share']:.1%}"
            line += (
                f"  {c['images_per_second']:>9,.1f} {c['spread']:>4.0%} "
                f"{c['startup_s']:>7.2f} {wait:>6} {c['tflops']:>8.3g}"
            )
        print(line)


def _best_per_batch_size(cells: list[dict]) -> list[dict]:
    best: dict[int, dict] = {}
    for c in cells:
        if c["batch_size"] not in best or c["tflops"] > best[c["batch_size"]]["tflops"]:
            best[c["batch_size"]] = c
    return list(best.values())


def _notes(report: dict) -> list[str]:
    notes = [
        "img/s: median over the timed epochs, ± half their range; an epoch is one "
        "fit(epochs=1) call, from the call to the end of on_epoch_end.",
        "start s: the cell's warm-up epoch minus its median epoch (cache fill, worker start, "
        "first reads); compilation is listed above instead.",
        "wait: share of the epoch the training thread waited for its next batch (CompiledLoop: "
        "InputMeter; fit on JAX: from on_train_batch_end to the next on_train_batch_begin, i.e. "
        "its data adapter and loop bookkeeping); an upper bound on the device's idle share.",
    ]
    if any(c["wait_share"] is None for c in report["cells"]):
        notes.append(f"wait n/a: {FIT_WAIT_NA}.")
    notes.append(
        "fit gets host NumPy arrays (sliced on the host, each batch copied to the device); "
        "CompiledLoop reads a CSVSequence on one feeder thread, without its workers."
    )
    notes += [f"not run: {s['way']} {s['feed']}: {s['why']}." for s in report["skipped"]]
    return notes


if __name__ == "__main__":
    sys.exit(main())
