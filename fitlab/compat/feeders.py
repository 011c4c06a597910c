"""Keras 2's feeders: how ``fit_generator`` and its siblings read their data.

The batches of every epoch come from :class:`fitlab.engine.BatchStream`, the
one adapter layer; what is Keras 2's here is how a *pass* is produced:

* a generator runs on the calling thread (``workers=0``) or on one background
  thread that reads ahead while the model trains (:class:`_GeneratorFeed`);
  an epoch is its next ``steps`` batches, never a restart;
* a ``Sequence`` / ``PyDataset`` is read in a fresh order each epoch (Python's
  ``random.shuffle``, as ``tf_keras``), cut to ``steps``, on the calling thread,
  on worker threads or on forked processes (:class:`_SequencePasses`);
* ``(x, y)`` / ``(x, y, sample_weight)`` arrays are cut into batches of 32.

:class:`Source` opens one such argument for one call, and closes it after.

Examples
--------
>>> import numpy as np
>>> arrays = (np.zeros((40, 2)), np.zeros(40))
>>> with Source(arrays, None, role="validation data") as source:
...     [len(x) for x, y in source.stream.epoch()]
[32, 8]
"""

from __future__ import annotations

import collections
import concurrent.futures
import functools
import itertools
import multiprocessing
import queue
import random
import threading
import warnings
from collections.abc import Callable, Iterator
from typing import Any

from fitlab.compat._stack import caller_stacklevel
from fitlab.engine import BatchStream
from fitlab.engine.adapters import is_sequence, sequence_length

# Keras 2's batch size for (x, y) arrays (fit's batch_size default).
ARRAY_BATCH_SIZE = 32

# How long closing a background generator waits for it to finish its current batch.
_JOIN_TIMEOUT_S = 60.0

_END = object()


class Source:
    """One Keras 2 data argument, opened for one call; :attr:`stream` gives its epochs.

    Use it as a context manager: leaving it stops a generator's background
    thread and shuts down the workers of a ``Sequence`` pass cut short (by
    ``stop_training``), at once rather than whenever Python collects them.

    Parameters
    ----------
    data : generator or iterator, Sequence / PyDataset, or arrays
        What ``fit_generator`` takes as ``generator`` or ``validation_data``:
        ``(x, y)`` or ``(x, y, sample_weight)`` arrays are read 32 rows at a time.
    steps : int, optional
        Batches per epoch. Required for a generator; for a sequence, a fresh
        pass is cut to it; for arrays, at most that many batches are read.
    role : str
        Names the data in messages ("training data", …).
    shuffle, workers, use_multiprocessing, max_queue_size
        As :func:`fitlab.compat.fit_generator` documents them.
    steps_name : str
        The caller's name for ``steps``, for messages.

    Attributes
    ----------
    stream : fitlab.engine.BatchStream
    """

    def __init__(
        self,
        data: Any,
        steps: int | None,
        *,
        role: str,
        shuffle: bool = False,
        workers: int = 1,
        use_multiprocessing: bool = False,
        max_queue_size: int = 10,
        steps_name: str = "steps_per_epoch",
    ) -> None:
        # BatchStream.from_passes takes steps as given, so they are checked here.
        if steps is not None and (isinstance(steps, bool) or not isinstance(steps, int)):
            raise TypeError(f"{steps_name} must be an int or None, got {steps!r}")
        if steps is not None and steps < 1:
            raise ValueError(f"{steps_name} must be positive, got {steps}")
        self._close: Callable[[], None] = lambda: None
        if isinstance(data, tuple):
            self.stream = _array_stream(data, steps, role, steps_name)
        elif is_sequence(data):
            passes = _SequencePasses(
                data,
                steps,
                shuffle=shuffle,
                workers=workers,
                use_multiprocessing=use_multiprocessing,
                max_queue_size=max_queue_size,
            )
            self._close = passes.close
            # A pass is already this epoch (cut to steps) and is read to its end, so
            # on_epoch_end runs after every epoch, as in tf_keras 2.21 (BatchStream
            # closes a pass that it cuts itself, before on_epoch_end). Only steps
            # beyond the sequence's length are its business: keep_position=False
            # then ends the epoch short (ran_out, training stops) instead of wrapping.
            beyond = steps if steps is not None and steps > passes.batches_per_pass else None
            self.stream = BatchStream.from_passes(
                passes.new_pass,
                passes.batches_per_pass,
                beyond,
                role,
                keep_position=False,
                steps_name=steps_name,
            )
        elif hasattr(data, "__next__"):
            if steps is None:
                # Keras 2.2 refused this too; tf_keras 2.21 drains the generator in
                # epoch 1, then records an empty epoch of zeros and stops.
                raise ValueError(
                    f"{steps_name}=None needs a Sequence (its length is an epoch); a generator "
                    f"never says when an epoch ends. Pass {steps_name}=<batches per epoch>, "
                    "e.g. ceil(rows / batch_size)."
                )
            if use_multiprocessing and workers > 0:
                warnings.warn(
                    f"{role}: use_multiprocessing=True with a generator runs it on a thread: "
                    "Keras 2 copied the generator into each process, which repeats batches. "
                    "Use a keras.utils.PyDataset for multiprocessing.",
                    stacklevel=caller_stacklevel(),
                )
            feed = _GeneratorFeed(data, workers, max_queue_size, role)
            self._close = feed.close
            self.stream = BatchStream.from_passes(
                lambda: feed, None, steps, role, one_shot=True, steps_name=steps_name
            )
        else:
            raise TypeError(
                f"{role}: expected a generator (or iterator) of batches or a "
                f"keras.utils.PyDataset / Sequence, got {type(data).__name__}; for a "
                "tf.data.Dataset or arrays use model.fit"
            )

    def __enter__(self) -> Source:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._close()


def _array_stream(arrays: tuple, steps: int | None, role: str, steps_name: str) -> BatchStream:
    """Arrays in batches of 32, every epoch from the first row, at most ``steps`` batches.

    ``steps`` above the batches there are reads them all, without the warning
    a source that runs out gives: arrays cannot run out, they are just short.
    """
    whole = BatchStream(arrays, batch_size=ARRAY_BATCH_SIZE, role=role, steps_name=steps_name)
    if steps is None or steps >= whole.num_batches:
        return whole
    return BatchStream(
        arrays,
        steps,
        batch_size=ARRAY_BATCH_SIZE,
        keep_position=False,
        role=role,
        steps_name=steps_name,
    )


class _Failed:
    """An exception raised by a generator on a background thread, to re-raise on ours."""

    def __init__(self, error: BaseException) -> None:
        self.error = error


class _GeneratorFeed:
    """Batches from a Python generator: on this thread, or read ahead on another.

    ``workers=0`` calls ``next(generator)`` on the caller's thread, one batch
    when the loop asks for it (Keras 2.2's documented meaning; ``tf_keras``
    2.21 refuses ``workers=0``). ``workers > 0`` starts one background thread
    that runs the generator *while the model trains*, keeping up to
    ``max_queue_size`` batches ready (``0`` or less: unbounded, as
    ``queue.Queue``). One thread, not ``workers``: a Python generator cannot run
    on two threads at once, and Keras 2's extra threads only queued up on a
    lock (and could reorder batches). Batches read ahead but never used are
    lost when the feed closes, as in Keras 2.
    """

    def __init__(self, generator: Iterator, workers: int, max_queue_size: int, role: str) -> None:
        self._generator = generator
        self._finished = False
        self._queue: queue.Queue | None = None
        if workers > 0:
            self._queue = queue.Queue(max_queue_size)
            self._stop = threading.Event()
            self._thread = threading.Thread(
                target=self._produce, name=f"fitlab-{role.replace(' ', '-')}", daemon=True
            )
            self._thread.start()

    def __iter__(self) -> _GeneratorFeed:
        return self

    def __next__(self) -> Any:
        if self._finished:
            raise StopIteration
        if self._queue is None:
            try:
                return next(self._generator)
            except StopIteration:
                self._finished = True
                raise
        item = self._queue.get()
        if item is _END:
            self._finished = True
            raise StopIteration
        if isinstance(item, _Failed):
            self._finished = True
            raise item.error
        return item

    def _produce(self) -> None:
        try:
            while not self._stop.is_set():
                try:
                    batch = next(self._generator)
                except StopIteration:
                    self._put(_END)
                    return
                if not self._put(batch):
                    return
        except BaseException as error:  # re-raised on the training thread
            self._put(_Failed(error))

    def _put(self, item: Any) -> bool:
        # A timeout, so that close() can stop a producer waiting on a full queue.
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def close(self) -> None:
        """Stop reading ahead and wait for the generator to finish its current batch.

        Waiting matters: the same generator may be used again on this thread
        (``predict_generator`` after ``fit_generator``), and a generator that
        is still running on another thread would raise "generator already
        executing".
        """
        if self._queue is None or self._stop.is_set():
            return
        self._stop.set()
        self._thread.join(_JOIN_TIMEOUT_S)
        if self._thread.is_alive():
            warnings.warn(
                f"the generator on thread {self._thread.name} is still producing a batch after "
                f"{_JOIN_TIMEOUT_S:.0f} s; it is left running in the background",
                stacklevel=2,
            )


# The Sequence each worker process reads, installed once per process by the
# pool's initializer: with "fork" nothing is pickled, so a Sequence need not be
# picklable (as with Keras 2's OrderedEnqueuer).
_SHARED_SEQUENCES: dict[int, Any] = {}
_sequence_ids = itertools.count()


def _install_sequence(uid: int, sequence: Any) -> None:
    _SHARED_SEQUENCES[uid] = sequence


def _sequence_item(uid: int, index: int) -> Any:
    return _SHARED_SEQUENCES[uid][index]


class _SequencePasses:
    """Passes over a ``Sequence``/``PyDataset``, as Keras 2 (``tf_keras`` 2.21) read them.

    Every epoch is a fresh pass: indices ``0 … len-1``, reordered with Python's
    ``random.shuffle`` when ``shuffle`` (``tf_keras``'s own convention, so the
    same ``random.seed`` gives the same order), cut to ``steps`` when given.
    ``on_epoch_begin()`` (Keras 3's ``PyDataset`` has one) runs before a pass
    and ``on_epoch_end()`` after a complete one.

    ``workers=0`` reads items on the caller's thread; ``workers > 0`` computes
    up to ``max_queue_size`` items ahead on ``workers`` threads, or forked
    processes with ``use_multiprocessing`` (a new pool each epoch, so what
    ``on_epoch_end`` changes reaches the workers, as in Keras 2). Items come
    back in order either way.
    """

    def __init__(
        self,
        sequence: Any,
        steps: int | None,
        *,
        shuffle: bool,
        workers: int,
        use_multiprocessing: bool,
        max_queue_size: int,
    ) -> None:
        self.sequence = sequence
        self.length = sequence_length(sequence)
        if self.length is None and steps is None:
            raise ValueError(
                f"{type(sequence).__name__} has no length (num_batches is None): "
                "pass steps_per_epoch / validation_steps / steps"
            )
        self.steps = steps
        self.shuffle = shuffle
        self.workers = workers
        self.use_multiprocessing = use_multiprocessing
        self.max_queue_size = max_queue_size
        self._pass: Iterator | None = None

    @property
    def batches_per_pass(self) -> int:
        if self.length is None:
            return self.steps
        return self.length if self.steps is None else min(self.steps, self.length)

    def new_pass(self) -> Iterator:
        self._pass = self._run_pass()
        return self._pass

    def close(self) -> None:
        """End the current pass if it was cut short: its worker pool shuts down now."""
        if self._pass is not None:
            self._pass.close()

    def _order(self) -> list[int]:
        if self.length is None:  # an infinite PyDataset: Keras 3 starts again at 0
            return list(range(self.steps))
        order = list(range(self.length))
        if self.shuffle:
            random.shuffle(order)
        return order if self.steps is None else order[: self.steps]

    def _run_pass(self) -> Iterator:
        if callable(getattr(self.sequence, "on_epoch_begin", None)):
            self.sequence.on_epoch_begin()
        order = self._order()
        if self.workers == 0:
            for index in order:
                yield self.sequence[index]
        else:
            yield from self._in_parallel(order)
        # Not reached when the pass is closed early (stop_training), as in Keras 2.
        if callable(getattr(self.sequence, "on_epoch_end", None)):
            self.sequence.on_epoch_end()

    def _in_parallel(self, order: list[int]) -> Iterator:
        window = self.max_queue_size if self.max_queue_size > 0 else len(order)
        if self.use_multiprocessing:
            uid = next(_sequence_ids)
            methods = multiprocessing.get_all_start_methods()
            context = multiprocessing.get_context("fork" if "fork" in methods else None)
            executor = concurrent.futures.ProcessPoolExecutor(
                self.workers,
                mp_context=context,
                initializer=_install_sequence,
                initargs=(uid, self.sequence),
            )
            submit = functools.partial(executor.submit, _sequence_item, uid)
        else:
            executor = concurrent.futures.ThreadPoolExecutor(self.workers, "fitlab-sequence")
            submit = functools.partial(executor.submit, self.sequence.__getitem__)
        pending: collections.deque = collections.deque()
        indices = iter(order)
        try:
            for index in itertools.islice(indices, max(1, window)):
                pending.append(submit(index))
            while pending:
                item = pending.popleft().result()
                for index in itertools.islice(indices, 1):
                    pending.append(submit(index))
                yield item
        finally:
            executor.shutdown(wait=True, cancel_futures=True)
