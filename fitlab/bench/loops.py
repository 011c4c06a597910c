"""How fast each way of training runs: ``python -m fitlab bench loops``.

One run, MiniVGGNet at 64×64×3 with 17 classes on in-memory random images,
images per second at batch 32 and 128 for:

- ``fit`` on arrays;
- ``fit`` on a Python generator (what ``fit_generator`` became);
- :func:`fitlab.train_on_batches` (the ``train_on_batch`` loop);
- :class:`fitlab.CompiledLoop` with ``jit_compile`` off and on.

Every way gets a fresh model from the same seed and the same
``legacy_sgd``; the clock runs from the start of the second batch (the first
one traces and builds the step) to the end of the epoch, over ``--steps``
batches, timed by the same callback for all. Data loading is not measured
here (the arrays are in memory; see ``bench pipeline``), so the table shows
what each loop itself costs around the same training step.

A second table times the same loops around a step that costs almost nothing
(one dense layer on the pooled pixels, ``--overhead-steps`` batches): its
milliseconds per step are the loop's own overhead, which is all a faster loop
can save around MiniVGGNet's step.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

import keras
import numpy as np

SIZE, CLASSES = 64, 17
BATCH_SIZES = (32, 128)
WAYS = ("fit", "fit_generator", "train_on_batches", "CompiledLoop", "CompiledLoop_jit")
LABELS = {
    "fit": "fit (arrays)",
    "fit_generator": "fit (generator)",
    "train_on_batches": "train_on_batches",
    "CompiledLoop": "CompiledLoop (jit off)",
    "CompiledLoop_jit": "CompiledLoop (jit on)",
}


def main(argv: list[str] | None = None) -> int:
    """Run the loops benchmark and print its table (or JSON)."""
    parser = argparse.ArgumentParser(prog="python -m fitlab bench loops", description=__doc__)
    parser.add_argument(
        "--steps", type=int, default=10, help="timed batches per way and batch size (default 10)"
    )
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=list(BATCH_SIZES))
    parser.add_argument(
        "--overhead-steps",
        type=int,
        default=100,
        help="timed batches per cell of the loop-overhead table (default 100; 0 skips it)",
    )
    parser.add_argument("--ways", nargs="+", choices=WAYS, default=list(WAYS))
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args(argv)
    if args.steps < 1 or args.overhead_steps < 0:
        parser.error("--steps must be at least 1 and --overhead-steps at least 0")

    results = {way: {} for way in args.ways}
    overhead = {way: {} for way in args.ways} if args.overhead_steps else {}
    for batch_size in args.batch_sizes:
        for way in args.ways:
            results[way][batch_size] = measure(way, batch_size, args.steps)
            _progress(f"{LABELS[way]}, batch {batch_size}: {results[way][batch_size]:.1f} img/s")
            if overhead:
                rate = measure(way, batch_size, args.overhead_steps, model="tiny")
                overhead[way][batch_size] = 1000 * batch_size / rate
                _progress(f"  loop overhead: {overhead[way][batch_size]:.2f} ms/step")
    report = {
        "machine": machine(),
        "steps": args.steps,
        "overhead_steps": args.overhead_steps,
        "images_per_second": results,
        "overhead_ms_per_step": overhead,
        "ratios_at_32": ratios(results),
    }
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print_table(report, args.batch_sizes)
    return 0


def _progress(line: str) -> None:
    # On stderr: a cell takes from seconds to minutes on a CPU.
    print(line, file=sys.stderr, flush=True)


def measure(way: str, batch_size: int, steps: int, model: str = "MiniVGGNet") -> float:
    """Images per second of ``way`` over ``steps`` timed batches (after one warm-up).

    ``model`` is ``"MiniVGGNet"`` or ``"tiny"`` (a step that costs almost nothing).
    """
    from fitlab.optim import legacy_sgd

    rows = (steps + 1) * batch_size
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(rows, SIZE, SIZE, 3), dtype=np.uint8)
    y = keras.utils.to_categorical(rng.integers(0, CLASSES, size=rows), CLASSES)
    keras.utils.set_random_seed(0)
    model = _build(model)
    clock = Stopwatch()
    loss = "categorical_crossentropy"
    if way.startswith("CompiledLoop"):
        from fitlab.loops.compiled import CompiledLoop

        loop = CompiledLoop(model, legacy_sgd(), loss, jit_compile=way.endswith("jit"))
        loop.fit((x, y), 1, batch_size=batch_size, verbose=0, callbacks=[clock])
    else:
        model.compile(optimizer=legacy_sgd(), loss=loss, metrics=["accuracy"])
        if way == "fit":
            model.fit(
                x, y, batch_size=batch_size, epochs=1, shuffle=False, verbose=0, callbacks=[clock]
            )
        elif way == "fit_generator":
            model.fit(
                _batches(x, y, batch_size),
                steps_per_epoch=steps + 1,
                epochs=1,
                shuffle=False,  # a generator cannot be shuffled; say so, no warning
                verbose=0,
                callbacks=[clock],
            )
        else:
            from fitlab.loops import train_on_batches

            train_on_batches(model, (x, y), 1, batch_size=batch_size, verbose=0, callbacks=[clock])
    return steps * batch_size / clock.seconds


def _build(name: str) -> keras.Model:
    if name == "MiniVGGNet":
        from fitlab.models import MiniVGGNet

        return MiniVGGNet.build(SIZE, SIZE, 3, CLASSES)
    if name != "tiny":
        raise ValueError(f'model must be "MiniVGGNet" or "tiny", not {name!r}')
    return keras.Sequential(
        [
            keras.Input((SIZE, SIZE, 3)),
            keras.layers.Rescaling(1 / 255),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(CLASSES, activation="softmax"),
        ]
    )


class Stopwatch(keras.callbacks.Callback):
    """From the start of the second batch to the end of the epoch.

    Only ``*_begin`` and epoch hooks: a ``on_train_batch_end`` hook would make
    ``fit`` wait for every batch's logs, which it otherwise avoids.
    """

    def __init__(self) -> None:
        super().__init__()
        self._start = None
        self.seconds = float("nan")

    def on_train_batch_begin(self, batch, logs=None):
        if batch == 1:
            self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        # Epoch logs are plain floats by now: every step has finished.
        self.seconds = time.perf_counter() - self._start


def _batches(x, y, batch_size):
    while True:
        for start in range(0, len(x), batch_size):
            yield x[start : start + batch_size], y[start : start + batch_size]


def ratios(results: dict) -> dict:
    """CompiledLoop (jit off) against fit and train_on_batches, at batch 32."""
    loop = results.get("CompiledLoop", {}).get(32)
    out = {}
    for other in ("fit", "train_on_batches"):
        value = results.get(other, {}).get(32)
        if loop and value:
            out[f"CompiledLoop/{other}"] = loop / value
    return out


def machine() -> dict:
    import tensorflow as tf

    gpus = [d.name for d in tf.config.list_physical_devices("GPU")]
    return {
        "cpu_cores": os.cpu_count(),
        "gpus": gpus,
        "platform": platform.platform(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
    }


def print_table(report: dict, batch_sizes: list[int]) -> None:
    m = report["machine"]
    device = ", ".join(m["gpus"]) or f"CPU only ({m['cpu_cores']} cores)"
    print(
        f"MiniVGGNet {SIZE}x{SIZE}x3, {CLASSES} classes; {report['steps']} timed batches "
        f"per cell; {device}; TensorFlow {m['tensorflow']}, Keras {m['keras']}"
    )
    _print_cells(report["images_per_second"], batch_sizes, "img/s", ".1f")
    for name, value in report["ratios_at_32"].items():
        print(f"{name} at batch 32: {value:.2f}x")
    overhead = report["overhead_ms_per_step"]
    if not overhead:
        return
    print(
        f"\nLoop overhead: ms per step around a one-dense-layer step, "
        f"{report['overhead_steps']} timed batches per cell"
    )
    _print_cells(overhead, batch_sizes, "ms/step", ".2f")
    if "fit" in report["images_per_second"]:
        step = {b: 1000 * b / report["images_per_second"]["fit"][b] for b in batch_sizes}
        print(
            "A MiniVGGNet step under fit takes "
            + ", ".join(f"{step[b]:.0f} ms at batch {b}" for b in batch_sizes)
        )


def _print_cells(table: dict, batch_sizes: list[int], unit: str, spec: str) -> None:
    """A way a row, a batch size a column."""
    header = f"{'way':<26}" + "".join(f"{f'batch {b} {unit}':>18}" for b in batch_sizes)
    print(header)
    print("-" * len(header))
    for way, cells in table.items():
        print(f"{LABELS[way]:<26}" + "".join(f"{cells[b]:>18{spec}}" for b in batch_sizes))
