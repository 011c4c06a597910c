"""Ways of training timed against each other: whole epochs, in rounds, after a warm-up.

A few batches of one short run measure mostly what happens once (the first
batch, tracing the step, a data adapter peeking at its source) and whatever
else the machine was doing at that moment. :func:`time_in_rounds` times ways
as ``python -m fitlab bench loops`` and the notebooks' tables do:

1. every way trains one epoch as a warm-up, kept apart: its excess over a
   steady epoch is the way's start-up;
2. then ``rounds`` rounds, each training every way for one epoch, the order
   rotated by one way each round so that no way always runs first and the
   machine's noise falls on all of them;
3. per way, the median epoch of the rounds and their spread, with the load
   average before and after, so that a busy machine shows in the table.

A way is a callable with no arguments that trains ONE whole epoch on a model
of its own, which it keeps between calls (so later calls reuse its traced
step, as epochs 2 … N of one ``fit`` do).

Examples
--------
>>> import time
>>> ways = {"a": lambda: time.sleep(0.002), "b": lambda: time.sleep(0.001)}
>>> times = time_in_rounds(ways, rounds=2)
>>> times.ways, [len(times.seconds[way]) for way in times.ways]
(['a', 'b'], [2, 2])
>>> times.orders
[('a', 'b'), ('b', 'a')]
>>> sorted(times.summary(images_per_epoch=32)["a"])[:4]
['epoch_s', 'first_epoch_s', 'images_per_epoch', 'images_per_second']
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from fitlab.machine import load_text

ROUNDS_NOTE = "img/s, s/epoch: medians of the rounds, each a whole epoch; min–max: slowest, fastest"
START_UP_NOTE = (
    "start-up s: first epoch minus median (first batch, tracing, the data adapter's set-up)"
)


def time_in_rounds(
    ways: Mapping[str, Callable[[], object]],
    rounds: int = 3,
    *,
    progress: Callable[[str], None] | None = None,
    clock: Callable[[], float] = time.perf_counter,
) -> RoundTimes:
    """Time one warm-up epoch of every way, then ``rounds`` rounds of one epoch each.

    Parameters
    ----------
    ways : mapping of str to callable
        Name → a callable with no arguments that trains one whole epoch
        (its return value is ignored). Each keeps its own model between
        calls. The warm-up runs them in this order.
    rounds : int
        Timed epochs per way after the warm-up. Round ``r`` starts with way
        ``r mod len(ways)`` and runs the others in their order after it.
    progress : callable, optional
        Given a line such as ``"round 2/3: fit 17.20 s"`` after every epoch
        (a run on a CPU takes minutes).
    clock : callable
        Seconds, monotonic; ``time.perf_counter`` unless a test fakes time.

    Returns
    -------
    RoundTimes

    Examples
    --------
    A fake clock that each way moves on: the warm-up takes 5 s, later epochs 1 s.

    >>> now = [0.0]
    >>> def epoch_of(first, later):
    ...     calls = []
    ...     def epoch():
    ...         now[0] += later if calls else first
    ...         calls.append(now[0])
    ...     return epoch
    >>> ways = {"x": epoch_of(5.0, 1.0), "y": epoch_of(2.0, 3.0)}
    >>> times = time_in_rounds(ways, rounds=3, clock=lambda: now[0])
    >>> times.first_s["x"], times.seconds["x"], times.startup_s("x")
    (5.0, [1.0, 1.0, 1.0], 4.0)
    """
    names = list(ways)
    if not names:
        raise ValueError("time_in_rounds needs at least one way")
    if rounds < 1:
        raise ValueError(f"rounds must be at least 1, not {rounds}")
    load_before = os.getloadavg()

    def timed(name: str, stage: str) -> float:
        start = clock()
        ways[name]()
        seconds = clock() - start
        if progress is not None:
            progress(f"{stage}: {name} {seconds:.2f} s")
        return seconds

    first = {name: timed(name, "warm-up") for name in names}
    seconds: dict[str, list[float]] = {name: [] for name in names}
    orders = []
    for r in range(rounds):
        shift = r % len(names)
        order = tuple(names[shift:] + names[:shift])
        for name in order:
            seconds[name].append(timed(name, f"round {r + 1}/{rounds}"))
        orders.append(order)
    return RoundTimes(first, seconds, orders, tuple(load_before), tuple(os.getloadavg()))


@dataclass(frozen=True)
class RoundTimes:
    """Seconds per epoch of each way: its warm-up epoch, and one epoch per round.

    Attributes
    ----------
    first_s : dict of str to float
        Each way's first (warm-up) epoch, start-up included.
    seconds : dict of str to list of float
        Each way's timed epochs, one per round, in round order.
    orders : list of tuple of str
        The order the ways ran in, round by round.
    load_before, load_after : tuple of float
        ``os.getloadavg()`` (1, 5 and 15 minutes) before the warm-up and
        after the last round.

    Examples
    --------
    >>> times = RoundTimes({"a": 3.0}, {"a": [1.0, 2.0, 1.5]}, [("a",)] * 3, (0, 0, 0), (1, 1, 1))
    >>> times.median_s("a"), times.startup_s("a")
    (1.5, 1.5)
    >>> info = times.summary(images_per_epoch=30)["a"]
    >>> info["images_per_second"], info["images_per_second_min"], info["images_per_second_max"]
    (20.0, 15.0, 30.0)
    """

    first_s: dict[str, float]
    seconds: dict[str, list[float]]
    orders: list[tuple[str, ...]]
    load_before: tuple[float, ...]
    load_after: tuple[float, ...]

    @property
    def ways(self) -> list[str]:
        """The ways' names, in the order they were given."""
        return list(self.first_s)

    def median_s(self, way: str) -> float:
        """The median of ``way``'s timed epochs (the warm-up is not among them)."""
        return statistics.median(self.seconds[way])

    def startup_s(self, way: str) -> float:
        """``way``'s first epoch minus its median epoch: what it pays once."""
        return self.first_s[way] - self.median_s(way)

    def summary(self, images_per_epoch: int | Mapping[str, int]) -> dict[str, dict]:
        """Per way, its numbers as plain floats (for JSON).

        ``images_per_epoch`` is one count for all ways, or one per way (a
        generator given ``steps_per_epoch`` fills its last batch from the
        file's start, so it trains a few more images per epoch).

        Each way's dict: ``images_per_epoch``; ``first_epoch_s``; ``epoch_s``
        (the rounds); ``median_s``, ``min_s``, ``max_s``; ``startup_s``;
        ``images_per_second`` (images over the median epoch) with
        ``images_per_second_min`` and ``_max`` (the slowest and fastest round)
        and ``spread`` (half their range over the median).
        """
        out = {}
        for way in self.ways:
            images = _images(images_per_epoch, way)
            epochs = self.seconds[way]
            rate = images / self.median_s(way)
            slowest, fastest = images / max(epochs), images / min(epochs)
            out[way] = {
                "images_per_epoch": images,
                "first_epoch_s": self.first_s[way],
                "epoch_s": list(epochs),
                "median_s": self.median_s(way),
                "min_s": min(epochs),
                "max_s": max(epochs),
                "startup_s": self.startup_s(way),
                "images_per_second": rate,
                "images_per_second_min": slowest,
                "images_per_second_max": fastest,
                "spread": (fastest - slowest) / 2 / rate,
            }
        return out

    def ratios(self, images_per_epoch: int | Mapping[str, int], reference: str) -> dict[str, float]:
        """Each way's median images/s over ``reference``'s.

        Examples
        --------
        >>> times = RoundTimes({"a": 1, "b": 1}, {"a": [2.0], "b": [1.0]}, [], (0,), (0,))
        >>> times.ratios(10, reference="a")
        {'a': 1.0, 'b': 2.0}
        """
        rates = {way: s["images_per_second"] for way, s in self.summary(images_per_epoch).items()}
        return {way: rate / rates[reference] for way, rate in rates.items()}

    def table(
        self,
        images_per_epoch: int | Mapping[str, int],
        *,
        reference: str | None = None,
        labels: Mapping[str, str] | None = None,
    ) -> str:
        """The text table: the load average, a row per way, and what the columns mean.

        Parameters
        ----------
        images_per_epoch : int or mapping of str to int
            As for :meth:`summary`.
        reference : str, optional
            A way: the last column is every way's median images/s over its.
        labels : mapping of str to str, optional
            What the rows call the ways (default their names).

        Examples
        --------
        >>> times = RoundTimes({"a": 3.0}, {"a": [1.0, 2.0]}, [("a",)] * 2, (0, 0, 0), (1, 1, 1))
        >>> print(times.table(32, reference="a"))
        load average 0.00 0.00 0.00 before, 1.00 1.00 1.00 after (1, 5, 15 min); 2 round(s)
        way     img/s    min–max   s/epoch  first epoch s  start-up s  × a
        ------------------------------------------------------------------
        a        21.3  16.0–32.0      1.50           3.00        1.50  1.00
        img/s, s/epoch: medians of the rounds, each a whole epoch; min–max: slowest, fastest
        start-up s: first epoch minus median (first batch, tracing, the data adapter's set-up)
        """
        labels = labels or {}
        names = {way: labels.get(way, way) for way in self.ways}
        summary = self.summary(images_per_epoch)
        ratios = self.ratios(images_per_epoch, reference) if reference else {}
        width = max(len(name) for name in [*names.values(), "way"]) + 2
        spread = {
            way: f"{s['images_per_second_min']:.1f}–{s['images_per_second_max']:.1f}"
            for way, s in summary.items()
        }
        spread_width = max(len(text) for text in [*spread.values(), "min–max"]) + 2
        header = (
            f"{'way':<{width}}{'img/s':>8}{'min–max':>{spread_width}}{'s/epoch':>10}"
            f"{'first epoch s':>15}{'start-up s':>12}"
        )
        if reference:
            header += f"  × {names[reference]}"
        lines = [
            f"load average {load_text(self.load_before)} before, {load_text(self.load_after)} "
            f"after (1, 5, 15 min); {len(self.orders)} round(s)",
            header,
            "-" * len(header),
        ]
        for way, s in summary.items():
            row = (
                f"{names[way]:<{width}}{s['images_per_second']:>8.1f}{spread[way]:>{spread_width}}"
                f"{s['median_s']:>10.2f}{s['first_epoch_s']:>15.2f}{s['startup_s']:>12.2f}"
            )
            if reference:
                row += f"  {ratios[way]:.2f}"
            lines.append(row)
        lines += [ROUNDS_NOTE, START_UP_NOTE]
        return "\n".join(lines)


def _images(images_per_epoch: int | Mapping[str, int], way: str) -> int:
    if isinstance(images_per_epoch, Mapping):
        return images_per_epoch[way]
    return images_per_epoch
