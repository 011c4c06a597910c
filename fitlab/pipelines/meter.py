"""InputMeter: how long training waited for its input ("is my generator starving the GPU?").

A data source (or a loop) given ``meter=`` adds, for every batch it hands
over, the seconds its consumer spent waiting for that batch, plus one batch
and the batch's images. ``LivePlot(meter=...)`` shows ``Δwait_s / Δelapsed``:
near 0 the model is the bottleneck; near 1 the input is.

What exactly is measured, source by source:

``csv_image_generator``
    Each ``next()``, through :meth:`InputMeter.timed`: the generator runs only
    while the consumer waits in ``next()``, so this is exactly its wait.
``CSVSequence`` without background workers (``workers=1``, threads)
    The time spent in ``__getitem__``, which runs in the caller's thread: again
    exactly the time the caller is blocked.
``CSVSequence`` with background workers (``workers > 1`` or
``use_multiprocessing=True``)
    Keras runs ``__getitem__`` in a pool and its queue hands batches over; a
    dataset cannot see the consumer there. Each batch then adds its
    production time divided by ``workers``: the share of the pool's capacity
    it used. ``Δwait_s / Δelapsed`` is then the pool's utilisation, which is
    near 1 exactly when the workers cannot keep up, i.e. when the consumer
    starves; it is an upper bound on the consumer's true waiting share.
``csv_dataset``
    Measured on the consumer's side of the last ``prefetch``: a timestamp is
    taken when the consumer asks for the next element and another when it
    gets it (a ``zip`` and a ``map`` that run in the consumer's own
    ``GetNext`` call), so this is the true wait, prefetching included.

For the Python sources the figure is exact when the consumer pulls from them
directly (a ``for`` loop, ``fitlab.train_on_batches``, ``CompiledLoop``,
``predict_all``). Keras's ``fit`` on the TensorFlow backend puts a
``tf.data`` prefetch in front of a generator or a worker-less ``PyDataset``;
the figure is then the time the prefetch thread waited, an upper bound on the
training step's wait. Give a meter to the source *or* to a loop that
measures its own ``next()``, not both, or the waits are counted twice.

The counters live in shared memory, so ``CSVSequence`` workers in forked
processes add to the same meter; updates are locked.

Examples
--------
>>> import numpy as np
>>> meter = InputMeter()
>>> batches = [(np.zeros((32, 2)), np.zeros(32)), (np.zeros((8, 2)), np.zeros(8))]
>>> [len(x) for x, y in meter.timed(batches)]
[32, 8]
>>> meter.batches, meter.images
(2, 40)
"""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any


class InputMeter:
    """Counts the seconds a consumer waited for input, the batches and the images.

    Attributes
    ----------
    wait_s : float
        Seconds waited, summed; never decreases except by :meth:`reset`.
    batches, images : int
        How many batches and images were handed over.

    Examples
    --------
    >>> meter = InputMeter()
    >>> meter.add(0.25, images=32)
    >>> meter.add(0.5, images=8)
    >>> meter
    InputMeter(wait_s=0.750, batches=2, images=40)
    """

    def __init__(self):
        # [wait_s, batches, images] in shared memory: forked workers share it.
        self._values = multiprocessing.RawArray("d", 3)
        self._lock = multiprocessing.Lock()

    @property
    def wait_s(self) -> float:
        return float(self._values[0])

    @property
    def batches(self) -> int:
        return int(self._values[1])

    @property
    def images(self) -> int:
        return int(self._values[2])

    def add(self, wait_s: float, images: int = 0, batches: int = 1) -> None:
        """Record ``batches`` batches of ``images`` images that kept the consumer ``wait_s`` s.

        A negative ``wait_s`` (a clock stepping back) counts as 0, so ``wait_s``
        never shrinks.

        Examples
        --------
        >>> meter = InputMeter()
        >>> meter.add(-1.0, images=4)
        >>> meter.wait_s, meter.batches, meter.images
        (0.0, 1, 4)
        """
        with self._lock:
            self._values[0] += max(0.0, float(wait_s))
            self._values[1] += batches
            self._values[2] += images

    def reset(self) -> None:
        """Start counting again from zero.

        Examples
        --------
        >>> meter = InputMeter()
        >>> meter.add(0.5, images=32)
        >>> meter.reset()
        >>> meter.wait_s, meter.batches, meter.images
        (0.0, 0, 0)
        """
        with self._lock:
            self._values[0] = self._values[1] = self._values[2] = 0.0

    def timed(self, batches: Iterable, rows: Callable[[Any], int] | None = None) -> Iterator:
        """Yield from ``batches``, timing each ``next()`` as the consumer's wait.

        ``rows(batch)`` counts a batch's images (default :func:`rows_in`).

        Examples
        --------
        >>> import numpy as np
        >>> meter = InputMeter()
        >>> [len(x) for x in meter.timed([np.zeros((3, 2)), np.zeros((1, 2))])]
        [3, 1]
        >>> meter.batches, meter.images
        (2, 4)
        """
        count = rows or rows_in
        iterator = iter(batches)
        while True:
            start = time.perf_counter()
            try:
                batch = next(iterator)
            except StopIteration:
                return
            self.add(time.perf_counter() - start, images=count(batch))
            yield batch

    def __repr__(self) -> str:
        return f"InputMeter(wait_s={self.wait_s:.3f}, batches={self.batches}, images={self.images})"


def rows_in(batch: Any) -> int:
    """The rows (samples) in a batch: the first dimension of its first array.

    A batch is ``x``, ``(x, y)`` or ``(x, y, sample_weight)``, and ``x`` may
    be an array or tensor, a list or tuple of them, or a dict of them (a model
    with several inputs); every array in a batch has the same number of rows,
    so the first one found tells. ``0`` for a batch with no array in it.

    Examples
    --------
    >>> import numpy as np
    >>> rows_in((np.zeros((32, 4)), np.zeros(32)))
    32
    >>> rows_in({"image": np.zeros((5, 2)), "meta": np.zeros((5, 1))})
    5
    >>> rows_in([])
    0
    """
    while isinstance(batch, tuple | list | dict):
        if not batch:
            return 0
        batch = next(iter(batch.values())) if isinstance(batch, dict) else batch[0]
    shape = getattr(batch, "shape", None)
    return int(shape[0]) if shape else 0
