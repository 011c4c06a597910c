"""Find the improved recipe's learning rate by a range test, on the training rows only.

A learning-rate range test (Smith, "Cyclical Learning Rates for Training
Neural Networks", 2017) trains a fresh MiniVGGNet for a hundred or so batches
while the rate grows exponentially, from one too small to move the loss to
one so large the loss explodes, and records each batch's loss. Where the
loss falls fastest the rate trains well; a little above, the loss is lowest;
past that the rate is too large. A schedule's peak is usually put between
the two, or at a tenth of the rate of the lowest loss.

Everything but the rate is the improved recipe's: its augmentation, label
smoothing, Nesterov momentum 0.9 and weight decay, batch 32. The batches are
drawn from the same 816 rows ``recipe_search.py`` trains on, carved by its code
with the same ``--train-csv`` and ``--split-seed``; neither the validation rows
nor the test CSV are read::

    python examples/lr_range_test.py                     # 1e-4 to 1 over 150 batches
    python examples/lr_range_test.py --start 1e-3 --stop 3 --batches 200

It prints the loss at every tenth batch and the two suggestions, and writes
``OUT/lr_range.json`` (every batch) and ``OUT/lr_range.png``.
"""

from __future__ import annotations

import argparse
import io
import json
import math
from pathlib import Path

import numpy as np
from recipe_search import IMPROVED, add_split_arguments, carve_split  # beside this file

from fitlab import MiniVGGNet, load_csv, make_recipe_augmentation
from fitlab.files import write_atomically

# Each batch's loss is noisy (32 augmented images); the suggestions read an
# exponential moving average of it, bias-corrected as Adam's moments are.
SMOOTHING = 0.9
# Past this multiple of the lowest smoothed loss the run has diverged: stop.
DIVERGED = 4.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--start", type=float, default=1e-4, help="the first batch's rate")
    parser.add_argument("--stop", type=float, default=1.0, help="the last batch's rate")
    parser.add_argument("--batches", type=int, default=150)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0, help="weights, augmentation, batch order")
    add_split_arguments(parser)
    parser.add_argument("--out", type=Path, default=Path("runs/lr-range"))
    args = parser.parse_args()
    if not 0 < args.start < args.stop:
        parser.error(f"--start must be above 0 and below --stop, got {args.start}, {args.stop}")
    if args.batches < 5 or args.batch_size < 1:
        parser.error("--batches must be at least 5 and --batch-size at least 1")
    split = carve_split(parser, args)
    try:
        images, labels = load_csv(split.train)
    except ValueError as error:  # a bad row: the error names the file and the line
        parser.error(str(error))

    rates, losses, smoothed = range_test(
        images,
        labels,
        start=args.start,
        stop=args.stop,
        batches=args.batches,
        batch_size=args.batch_size,
        seed=args.seed,
    )
    steepest, lowest = suggestions(rates, smoothed)
    print(f"{'batch':>5} {'rate':>9} {'loss':>7} {'smoothed':>8}")
    for batch in range(0, len(rates), 10):
        print(f"{batch:5} {rates[batch]:9.2e} {losses[batch]:7.3f} {smoothed[batch]:8.3f}")
    if len(rates) < args.batches:
        print(f"stopped after {len(rates)} batches: the loss diverged")
    print(
        f"\nsteepest descent at {steepest:.2g}; "
        f"lowest loss at {lowest:.2g}, a tenth of it: {lowest / 10:.2g}"
    )
    print(f"(the improved recipe's peak rate is {IMPROVED.learning_rate:g})")

    settings = {**vars(args), "train_csv": str(split.train), "out": str(args.out)}
    record = dict(settings=settings, rates=rates, losses=losses, smoothed=smoothed)
    record.update(steepest=steepest, lowest=lowest)
    write_atomically(args.out / "lr_range.json", json.dumps(record, indent=1).encode())
    write_atomically(args.out / "lr_range.png", plot(rates, losses, smoothed, steepest, lowest))


def range_test(
    images: np.ndarray,
    labels: np.ndarray,
    *,
    start: float,
    stop: float,
    batches: int,
    batch_size: int,
    seed: int,
) -> tuple[list[float], list[float], list[float]]:
    """Each batch's rate, loss and smoothed loss, training a fresh MiniVGGNet as the rate grows.

    The rate grows exponentially from ``start`` at the first batch to ``stop`` at
    batch ``batches``; fewer batches come back if the loss diverged first.
    """
    import keras  # after fitlab, whose import keeps TensorFlow's start-up lines off stderr

    classes, codes = np.unique(labels, return_inverse=True)
    targets = keras.utils.to_categorical(codes, len(classes))
    keras.utils.set_random_seed(seed)
    height, width, depth = images.shape[1:]
    augmentation = make_recipe_augmentation(IMPROVED, seed=seed)
    model = MiniVGGNet.build(width, height, depth, len(classes), augmentation=augmentation)
    # Batch b trains at start · (stop / start) ** (b / (batches − 1)): ExponentialDecay
    # with a "decay" rate above 1 grows instead.
    schedule = keras.optimizers.schedules.ExponentialDecay(
        start, decay_steps=batches - 1, decay_rate=stop / start
    )
    optimizer = keras.optimizers.SGD(
        schedule, momentum=0.9, nesterov=True, weight_decay=IMPROVED.weight_decay
    )
    loss = keras.losses.CategoricalCrossentropy(label_smoothing=IMPROVED.label_smoothing)
    model.compile(optimizer=optimizer, loss=loss)

    order = np.random.default_rng(seed)
    queue = np.empty(0, dtype=int)
    rates: list[float] = []
    losses: list[float] = []
    for batch in range(batches):
        if len(queue) < batch_size:  # a new epoch's order after the last one's rows
            queue = np.concatenate([queue, order.permutation(len(images))])
        rows, queue = queue[:batch_size], queue[batch_size:]
        rates.append(float(schedule(batch)))
        # Keras 3's train_on_batch reports this batch's loss alone (it resets the metrics).
        losses.append(float(model.train_on_batch(images[rows], targets[rows])))
        smoothed = smooth(losses)
        if not math.isfinite(losses[-1]) or smoothed[-1] > DIVERGED * min(smoothed):
            break
    return rates, losses, smoothed


def smooth(losses: list[float]) -> list[float]:
    """The bias-corrected exponential moving average of ``losses`` at each batch.

    Examples
    --------
    >>> smooth([2.0, 2.0, 2.0])  # a constant stays itself, from the first batch
    [2.0, 2.0, 2.0]
    """
    average, smoothed = 0.0, []
    for count, loss in enumerate(losses, start=1):
        average = SMOOTHING * average + (1 - SMOOTHING) * loss
        smoothed.append(average / (1 - SMOOTHING**count))
    return smoothed


def suggestions(rates: list[float], smoothed: list[float]) -> tuple[float, float]:
    """The rate where the smoothed loss falls fastest (per factor of rate), and where it is lowest.

    Only the batches up to the lowest loss count for the steepest descent, and
    not the first tenth, where the moving average is still settling.

    Examples
    --------
    >>> rates = [10.0**-k for k in (4, 3, 2, 1, 0)]
    >>> suggestions(rates, [2.0, 1.9, 1.2, 1.0, 3.0])  # falls fastest into 1e-2
    (0.01, 0.1)
    """
    lowest = int(np.argmin(smoothed))
    first = len(smoothed) // 10
    slopes = np.diff(smoothed[: lowest + 1]) / np.diff(np.log(rates[: lowest + 1]))
    steepest = first + 1 + int(np.argmin(slopes[first:])) if lowest > first else lowest
    return rates[steepest], rates[lowest]


def plot(
    rates: list[float], losses: list[float], smoothed: list[float], steepest: float, lowest: float
) -> bytes:
    """The loss against the rate (log scale), the suggestions marked, as PNG bytes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(6, 4))
    axes.plot(rates, losses, color="0.75", label="batch loss")
    axes.plot(rates, smoothed, label="smoothed")
    axes.axvline(steepest, linestyle="--", color="C1", label=f"steepest: {steepest:.2g}")
    axes.axvline(lowest, linestyle=":", color="C2", label=f"lowest loss: {lowest:.2g}")
    # Up to half again the first loss: the divergence would flatten the rest of the curve.
    axes.set(xscale="log", ylim=(0.9 * min(losses), 1.5 * smoothed[0]))
    axes.set(xlabel="learning rate", ylabel="training loss (one batch)")
    axes.set_title("Learning-rate range test: MiniVGGNet, the improved recipe")
    axes.legend()
    figure.tight_layout()
    png = io.BytesIO()
    figure.savefig(png, format="png", dpi=100)
    plt.close(figure)
    return png.getvalue()


if __name__ == "__main__":
    main()
