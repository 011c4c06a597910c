"""What LivePlot costs: ``python -m fitlab bench live [--json]``.

One run trains the same short job (MiniVGGNet on synthetic 64×64 images, a
few epochs, one warmed-up model) without LivePlot, with per-epoch updates and
with throttled per-batch updates, and prints seconds and the overhead against
the run without it. The widget path is measured (a PNG rendered and pushed to
an ``ipywidgets.Image`` per update; outside a kernel nothing is displayed),
since that is what a notebook pays. Each setting runs ``--repeats`` times in
turn and the fastest run counts, which damps the noise of a shared machine;
the time spent inside LivePlot's own hooks is shown beside it, as a floor for
the overhead that noise cannot move.

Then it redraws the live figure ``--redraws`` times (75 epochs of history, as
in the tutorial) and reports the resident memory before and after.

Goals: ≤ 2 % per-epoch, ≤ 5 % throttled per-batch, no RSS growth.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import numpy as np

MODE_ENV = "FITLAB_LIVE"  # fitlab.callbacks.live_view.MODE_ENV, without importing Keras for --help
HOOKS = (
    "on_train_begin", "on_epoch_begin", "on_train_batch_end", "on_test_begin",
    "on_epoch_end", "on_train_end",
)  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    """Run the LivePlot benchmark and print its table."""
    parser = argparse.ArgumentParser(prog="python -m fitlab bench live", description=__doc__)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--images", type=int, default=256, help="training images per epoch")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=2, help="runs per setting (fastest counts)")
    parser.add_argument("--redraws", type=int, default=500)
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args(argv)
    if args.images % args.batch_size:
        parser.error("--images must be a multiple of --batch-size (one traced batch shape)")

    training = measure_training(args.epochs, args.images, args.batch_size, args.repeats)
    memory = measure_redraws(args.redraws)
    if args.json:
        print(json.dumps({"training": training, "redraws": memory}, indent=2))
    else:
        print_tables(training, memory, args)
    return 0


def _timed_liveplot_class():
    """LivePlot that adds up the seconds spent in its own hooks."""
    from fitlab.callbacks.live import LivePlot

    def timed(hook):
        def wrapper(self, *args, **kwargs):
            start = time.perf_counter()
            try:
                return hook(self, *args, **kwargs)
            finally:
                self.spent += time.perf_counter() - start

        return wrapper

    namespace = {name: timed(getattr(LivePlot, name)) for name in HOOKS}
    namespace["spent"] = 0.0
    return type("TimedLivePlot", (LivePlot,), namespace)


def measure_training(epochs: int, images: int, batch_size: int, repeats: int) -> list[dict]:
    """Seconds for the same training without and with LivePlot; one dict per setting."""
    import keras

    from fitlab.models import MiniVGGNet

    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    classes = 17
    x = rng.integers(0, 256, size=(images + batch_size * 2, 64, 64, 3), dtype=np.uint8)
    y = keras.utils.to_categorical(np.arange(len(x)) % classes, classes)
    train, val = (x[:images], y[:images]), (x[images:], y[images:])
    model = MiniVGGNet.build(64, 64, 3, classes)
    model.compile(
        optimizer=keras.optimizers.SGD(0.01, momentum=0.9),
        loss="categorical_crossentropy",
        metrics=["accuracy"],
    )
    # Warm up: trace the train and test steps once, so every timed run is alike.
    model.fit(*train, epochs=1, batch_size=batch_size, validation_data=val, verbose=0)

    timed_cls = _timed_liveplot_class()
    settings = {
        "no LivePlot": None,
        "LivePlot, per epoch": {},
        "LivePlot, every batch (throttled 0.5 s)": {"every_n_batches": 1},
    }
    seconds = {name: [] for name in settings}
    spent = {name: [] for name in settings}
    redraws = {name: [] for name in settings}
    for _ in range(repeats):
        for name, kwargs in settings.items():  # interleaved: drift hits all settings alike
            callbacks = []
            if kwargs is not None:
                os.environ[MODE_ENV] = "widgets"  # what a notebook pays, even here
                callbacks.append(timed_cls(**kwargs))
            start = time.perf_counter()
            model.fit(*train, epochs=epochs, batch_size=batch_size, validation_data=val,
                      verbose=0, callbacks=callbacks)  # fmt: skip
            seconds[name].append(time.perf_counter() - start)
            if callbacks:
                spent[name].append(callbacks[0].spent)
                redraws[name].append(callbacks[0].redraws)
    base = min(seconds["no LivePlot"])
    rows = []
    for name in settings:
        best = min(seconds[name])
        row = {
            "setting": name,
            "seconds": round(best, 3),
            "all_seconds": [round(s, 3) for s in seconds[name]],
            "overhead_pct": round(100 * (best - base) / base, 2),
        }
        if spent[name]:
            i = seconds[name].index(best)
            row["in_liveplot_s"] = round(spent[name][i], 3)
            row["in_liveplot_pct"] = round(100 * spent[name][i] / best, 2)
            row["redraws"] = redraws[name][i]
        rows.append(row)
    return rows


def _rss_mib() -> float:
    """Resident memory now (not the peak that ru_maxrss gives)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


class _SteppedClock:
    """A clock the benchmark moves by hand."""

    now = 0.0

    def __call__(self) -> float:
        return self.now


def measure_redraws(count: int, epochs: int = 75, warmup: int = 50) -> dict:
    """RSS before and after ``count`` redraws of a 75-epoch live figure (widget path).

    ``warmup`` redraws come first: the first ones fill caches (fonts, text layout).
    """
    import gc

    from fitlab.callbacks.live import LivePlot

    clock = _SteppedClock()
    os.environ[MODE_ENV] = "widgets"
    live = LivePlot(every_n_batches=1, min_interval=0.0)
    live.clock = clock  # each batch is 1,000 s after the last: no throttle skips a redraw
    live.set_params({"epochs": epochs, "steps": count + warmup, "verbose": 0})
    live.on_train_begin()
    rng = np.random.default_rng(0)
    for epoch in range(epochs):  # a full tutorial-length history to draw
        live.on_epoch_begin(epoch)
        loss, acc = 2.5 / (1 + 0.1 * epoch), 0.9 - 0.8 / (1 + 0.1 * epoch)
        live.on_epoch_end(epoch, {"loss": loss, "accuracy": acc, "val_loss": loss * 1.2,
                                  "val_accuracy": acc * 0.9})  # fmt: skip
    live.on_epoch_begin(epochs - 1)
    costs = []
    rss_before = None
    for batch in range(count + warmup):
        if batch == warmup:
            gc.collect()
            rss_before = _rss_mib()
        logs = {"loss": float(rng.uniform(0.5, 1.0)), "accuracy": float(rng.uniform(0.6, 0.9))}
        clock.now += 1000.0
        start = time.perf_counter()
        live.on_train_batch_end(batch, logs)
        costs.append(time.perf_counter() - start)
    gc.collect()
    rss_after = _rss_mib()
    redraws = live.redraws
    live.on_train_end()
    return {
        "redraws_done": redraws - 1 - epochs,
        "redraws": count,
        "rss_before_mib": round(rss_before, 1),
        "rss_after_mib": round(rss_after, 1),
        "rss_growth_mib": round(rss_after - rss_before, 1),
        "redraw_ms_median": round(1000 * statistics.median(costs[warmup:]), 1),
    }


def print_tables(training: list[dict], memory: dict, args) -> None:
    print(
        f"LivePlot overhead: MiniVGGNet 64x64, {args.images} images/epoch + validation, "
        f"batch {args.batch_size}, {args.epochs} epochs, fastest of {args.repeats} "
        "(widget path: PNG rendered and sent per update)"
    )
    header = (
        f"{'setting':42} {'seconds':>8} {'overhead':>9} {'in LivePlot':>12} {'redraws':>8}"
        "  all runs (s)"
    )
    print(header)
    print("-" * len(header))
    for row in training:
        inside = f"{row['in_liveplot_pct']:.2f} %" if "in_liveplot_pct" in row else "-"
        overhead = "-" if row["setting"] == "no LivePlot" else f"{row['overhead_pct']:+.2f} %"
        runs = ", ".join(f"{v:.1f}" for v in row["all_seconds"])
        print(f"{row['setting']:42} {row['seconds']:8.2f} {overhead:>9} {inside:>12} "
              f"{row.get('redraws', '-'):>8}  {runs}")  # fmt: skip
    print(
        "overhead: wall time against the fastest run without LivePlot (noisy on a shared "
        "machine); in LivePlot: time inside its own hooks (the floor)"
    )
    print()
    print(
        f"memory over {memory['redraws']} redraws of a 75-epoch figure: RSS "
        f"{memory['rss_before_mib']:.1f} -> {memory['rss_after_mib']:.1f} MiB "
        f"({memory['rss_growth_mib']:+.1f} MiB); median redraw {memory['redraw_ms_median']:.1f} ms"
    )
