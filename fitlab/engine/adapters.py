"""The one road from a data source to batches: what an epoch is, for every kind of source.

Keras's own trainers read every source through a *data adapter*; fitlab's
hand-made loops do the same through :class:`BatchStream`, the only code in
fitlab that turns a source into batches. :func:`fitlab.train_on_batches`,
:class:`fitlab.CompiledLoop`, :func:`fitlab.compat.fit_generator` (and its two
siblings) and :func:`fitlab.predict_all` all read their data here.

This module owns two concerns, and only these:

*How a source is read* (one function per kind of source, each returning a
function that starts one pass, and the number of batches in a pass):

* ``(x, y)`` / ``(x, y, sample_weight)`` arrays (or ``x`` alone, for
  prediction) are cut into slices of ``batch_size`` rows, in order;
* a ``keras.utils.PyDataset`` (or a Keras 2 ``Sequence``) is read by index,
  ``0 … len - 1``, with ``on_epoch_begin()`` before a pass and
  ``on_epoch_end()`` after a complete one, as Keras calls them;
* a generator or iterator is one pass, ever (a *one-shot* source);
* anything else iterable (a ``tf.data.Dataset``, a list of batches) starts a
  fresh pass with ``iter()``.

*Where an epoch starts and ends* (:class:`BatchStream`):

* ``steps=None``: an epoch is one full pass; a one-shot or endless source
  needs ``steps`` (except with ``single_pass``: read it once, to its end);
* ``steps=N`` and ``keep_position=True`` (fitlab's rule): an epoch is the
  *next* ``N`` batches, so a generator is never restarted and no batch is
  seen twice before the source wraps; a re-iterable source starts a new
  pass when one runs out;
* ``steps=N`` and ``keep_position=False`` (Keras 2's rule for a ``Sequence``,
  and prediction's): an epoch is the first ``N`` batches of a fresh pass.

A one-shot source that runs dry inside an epoch sets :attr:`BatchStream.ran_out`;
the epoch runner (:mod:`fitlab.engine.epochs`) turns that into a warning.
Counting a batch's rows is :func:`fitlab.pipelines.rows_in`; timing the
waits is :meth:`fitlab.InputMeter.timed`.

Examples
--------
>>> import numpy as np
>>> stream = BatchStream((np.zeros((5, 2)), np.ones(5)), batch_size=2)
>>> stream.num_batches, [len(x) for x, y in stream.epoch()]
(3, [2, 2, 1])
"""

from __future__ import annotations

import itertools
import math
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import keras
import numpy as np

from fitlab.pipelines import is_endless, rows_in

#: The length of a source that never ends (tf.data's INFINITE_CARDINALITY).
FOREVER = -1
#: Rows per batch for arrays when no ``batch_size`` is given (``fit``'s default).
DEFAULT_BATCH_SIZE = 32

_END = object()


class BatchStream:
    """Any Keras data source, one epoch of batches at a time.

    Parameters
    ----------
    source : arrays, PyDataset, tf.data.Dataset, iterable or iterator
        ``(x, y)`` or ``(x, y, sample_weight)`` arrays (``x`` and ``y`` may
        be dicts or lists of arrays) are cut into batches of ``batch_size``
        rows, in order (shuffle them yourself). With ``inputs_only``, ``x``
        alone may be given too. Anything else must yield whole batches.
    steps : int, optional
        Batches per epoch; required for a source without a length.
    batch_size : int, optional
        Only for arrays (default 32, like ``fit``).
    role : str
        Names the source in error messages ("training data", …).
    steps_name : str
        The caller's name for ``steps``, used in error messages.
    keep_position : bool
        With ``steps``: go on where the last epoch stopped (True), or start
        every epoch with a fresh pass (False). See the module docstring.
    single_pass : bool
        The source is read once (prediction): a finite generator needs no
        ``steps``, and a source that never ends is refused.
    inputs_only : bool
        Accept ``x`` alone (an array or a dict of arrays) as array data.

    Attributes
    ----------
    num_batches : int or None
        Batches in an epoch (``None``: unknown until a pass ends).
    ran_out : bool
        A one-shot source ended before an epoch had its ``steps`` batches.

    Examples
    --------
    >>> import numpy as np
    >>> batches = iter([np.zeros((2, 1))] * 5)  # a one-shot source of 5 batches
    >>> stream = BatchStream(batches, steps=2)
    >>> [len(list(stream.epoch())) for _ in range(3)], stream.ran_out
    ([2, 2, 1], True)
    """

    def __init__(
        self,
        source: Any,
        steps: int | None = None,
        *,
        batch_size: int | None = None,
        role: str = "training data",
        steps_name: str = "steps_per_epoch",
        keep_position: bool = True,
        single_pass: bool = False,
        inputs_only: bool = False,
    ) -> None:
        if steps is not None and (
            isinstance(steps, bool) or not isinstance(steps, int | np.integer) or steps < 1
        ):
            raise ValueError(f"{role}: {steps_name} must be a positive int or None, got {steps!r}")
        new_pass, length, one_shot = _passes(source, batch_size, role, inputs_only)
        if single_pass and steps is None and is_endless(source):
            raise ValueError(
                f"{role} is a generator in train mode: it wraps around its file forever and "
                "never ends, so reading 'all' of it is undefined. Make it with mode='eval' "
                f"(one pass, the last batch short) or pass {steps_name}="
            )
        self._setup(new_pass, length, steps, role, one_shot, keep_position, single_pass, steps_name)

    @classmethod
    def from_passes(
        cls,
        new_pass: Callable[[], Iterator],
        length: int | None,
        steps: int | None,
        role: str,
        *,
        one_shot: bool = False,
        keep_position: bool = True,
        steps_name: str = "steps_per_epoch",
    ) -> BatchStream:
        """A stream over a source given as a function that starts one new pass.

        ``length`` is the batches in a pass: an int, ``None`` when unknown (the
        pass ends by itself) or :data:`FOREVER`. ``one_shot``: the function
        returns the same iterator every time (a generator).

        Examples
        --------
        >>> stream = BatchStream.from_passes(lambda: iter("abc"), 3, None, "letters")
        >>> list(stream.epoch()), list(stream.epoch())
        (['a', 'b', 'c'], ['a', 'b', 'c'])
        """
        stream = cls.__new__(cls)
        stream._setup(new_pass, length, steps, role, one_shot, keep_position, False, steps_name)
        return stream

    def _setup(
        self, new_pass, length, steps, role, one_shot, keep_position, single_pass, steps_name
    ) -> None:
        self.role, self.steps = role, steps
        self._new_pass, self._one_shot = new_pass, one_shot
        self._keep_position = keep_position
        endless = length == FOREVER
        if steps is None and endless and single_pass:
            raise ValueError(
                f"{role} repeats forever, so it has no last batch: build it without repeat() "
                f"(csv_dataset(..., repeat=False)) or pass {steps_name}="
            )
        if steps is None and (endless or (one_shot and not single_pass)):
            what = "never ends" if endless else "is a one-shot generator or iterator"
            raise ValueError(
                f"{role} {what}, so the loop cannot tell where an epoch ends; pass "
                f"{steps_name} (validation_steps for validation data)"
            )
        # None: unknown until a pass ends (a tf.data pipeline with a filter, …)
        known = None if length is None or endless else length
        if steps is None:
            self.num_batches: int | None = known
        elif keep_position or known is None:
            self.num_batches = steps
        else:
            self.num_batches = min(steps, known)
        self._current: Iterator | None = None
        self._peeked: Any = _END
        self.ran_out = False

    def epoch(self) -> Iterator:
        """Yield the batches of the next epoch."""
        if self.steps is None:
            yield from self._rest_of_pass()
            return
        if not self._keep_position and self._peeked is _END:
            self._close_pass()  # every epoch starts a fresh pass
        for _ in range(self.steps):
            batch = self._next(new_passes=1 if self._keep_position else 0)
            if batch is _END:
                self.ran_out = True
                return
            yield batch
        if not self._keep_position:
            self._close_pass()  # a pass cut short shuts its workers down now

    def peek(self) -> Any:
        """The first batch of the next epoch, which :meth:`epoch` will still yield.

        Examples
        --------
        >>> stream = BatchStream(iter([1, 2, 3]), steps=3)
        >>> stream.peek(), list(stream.epoch())
        (1, [1, 2, 3])
        """
        if self._peeked is _END:
            batch = self._next(new_passes=1)
            if batch is _END:
                raise ValueError(f"{self.role} is empty: it gave no batch")
            self._peeked = batch
        return self._peeked

    rows = staticmethod(rows_in)  # rows in one batch; the distributed loop counts replicas

    def _rest_of_pass(self) -> Iterator:
        if self._peeked is not _END:
            batch, self._peeked = self._peeked, _END
            yield batch
        elif self._current is None and self._new_pass is not None:
            self._current = iter(self._new_pass())
        if self._current is None:
            return
        current, self._current = self._current, None
        yield from current
        if self._one_shot:
            self._new_pass = None

    def _next(self, new_passes: int) -> Any:
        """The next batch: of the current pass, then of at most ``new_passes`` fresh ones."""
        if self._peeked is not _END:
            batch, self._peeked = self._peeked, _END
            return batch
        for _attempt in range(1 + new_passes):
            if self._current is None:
                if self._new_pass is None:
                    return _END
                self._current = iter(self._new_pass())
            try:
                return next(self._current)
            except StopIteration:
                self._current = None
                if self._one_shot:
                    self._new_pass = None
                    return _END
        return _END

    def _close_pass(self) -> None:
        if self._one_shot or self._current is None:
            return
        close = getattr(self._current, "close", None)
        if close is not None:
            close()
        self._current = None


def _passes(
    source: Any, batch_size: int | None, role: str, inputs_only: bool
) -> tuple[Callable[[], Iterator] | None, int | None, bool]:
    """(function starting one pass, batches in a pass or None or FOREVER, one-shot?)."""
    if isinstance(source, tuple) or (inputs_only and is_arrays(source)):
        return (*_array_passes(source, batch_size or DEFAULT_BATCH_SIZE, role), False)
    if batch_size is not None:
        raise ValueError(
            f"{role}: batch_size applies to (x, y) arrays only; {type(source).__name__} "
            "already yields batches"
        )
    if isinstance(source, np.ndarray):
        raise ValueError(f"{role}: pass arrays as a tuple (x, y), not x alone")
    if is_sequence(source):
        return (*_sequence_passes(source), False)
    if hasattr(source, "__next__"):  # a generator or iterator: one pass, ever
        return (lambda: source), source_length(source), True
    if hasattr(source, "__iter__"):  # a tf.data.Dataset, a list of batches, …
        return (lambda: iter(source)), source_length(source), False
    raise TypeError(
        f"{role}: a {type(source).__name__} is not a data source; pass (x, y) arrays, a "
        "keras.utils.PyDataset, a tf.data.Dataset or a generator of (x, y) batches"
    )


def is_arrays(source: Any) -> bool:
    """``x`` given alone: an array or tensor, or a dict of them.

    Examples
    --------
    >>> is_arrays(np.zeros(3)), is_arrays({"image": np.zeros(3)}), is_arrays([np.zeros(3)])
    (True, True, False)
    """
    if isinstance(source, dict):
        return bool(source) and all(hasattr(v, "shape") for v in source.values())
    return isinstance(source, np.ndarray) or (
        hasattr(source, "shape") and hasattr(source, "__array__")
    )


def is_sequence(source: Any) -> bool:
    """Keras's test for an indexed source: a ``PyDataset``, or anything with ``[i]`` and ``len``.

    ``ImageDataGenerator.flow`` returns an object that is both an iterator and
    a sequence; Keras 2 treated it as a sequence, and so does this.

    Examples
    --------
    >>> is_sequence([1, 2]), is_sequence(iter([1, 2]))
    (False, False)
    """
    if isinstance(source, keras.utils.PyDataset):
        return True
    if isinstance(source, list | tuple | str | bytes | dict | np.ndarray):
        return False
    if hasattr(source, "__next__"):
        return False
    return hasattr(source, "__getitem__") and hasattr(source, "__len__")


def _array_passes(arrays: Any, batch_size: int, role: str) -> tuple[Callable, int]:
    parts = arrays if isinstance(arrays, tuple) else (arrays,)
    if isinstance(arrays, tuple) and not 2 <= len(arrays) <= 3:
        raise ValueError(
            f"{role}: expected (x, y) or (x, y, sample_weight), got {len(arrays)} items"
        )
    if batch_size < 1:
        raise ValueError(f"{role}: batch_size must be positive, got {batch_size}")
    lengths = sorted({len(a) for a in keras.tree.flatten(parts) if a is not None})
    if len(lengths) != 1:
        raise ValueError(f"{role}: x, y (and sample_weight) differ in length: {lengths}")
    rows = lengths[0]

    def one_pass() -> Iterator:
        for start in range(0, rows, batch_size):
            cut = slice(start, start + batch_size)
            batch = tuple(
                None if part is None else keras.tree.map_structure(lambda a, c=cut: a[c], part)
                for part in parts
            )
            yield batch if isinstance(arrays, tuple) else batch[0]

    return one_pass, math.ceil(rows / batch_size)


def _sequence_passes(dataset) -> tuple[Callable, int]:
    length = sequence_length(dataset)
    if length is None:  # a PyDataset that says it never ends
        length = FOREVER

    def one_pass() -> Iterator:
        if callable(getattr(dataset, "on_epoch_begin", None)):
            dataset.on_epoch_begin()
        for index in range(length) if length != FOREVER else itertools.count():
            yield dataset[index]
        # Reached only when a pass is consumed to the end, as in Keras.
        if callable(getattr(dataset, "on_epoch_end", None)):
            dataset.on_epoch_end()

    return one_pass, length


def sequence_length(dataset) -> int | None:
    """Batches in a ``PyDataset`` (``None`` when it never ends) or a Keras 2 ``Sequence``.

    Examples
    --------
    >>> sequence_length(range(4))
    4
    """
    if isinstance(dataset, keras.utils.PyDataset):
        return dataset.num_batches
    return len(dataset)


def source_length(source) -> int | None:
    """Batches in one pass: an int, :data:`FOREVER`, or None when unknown.

    Examples
    --------
    >>> source_length([1, 2, 3]), source_length(iter([1, 2, 3]))
    (3, None)
    """
    cardinality = getattr(source, "cardinality", None)  # a tf.data.Dataset
    if callable(cardinality):
        n = int(cardinality())
        return n if n >= 0 else (FOREVER if n == FOREVER else None)
    try:
        return len(source)
    except TypeError:  # no __len__
        return None


def check_batch_size(train: Any, validation_data: Any, batch_size: int | None) -> None:
    """``fit``'s rule: ``batch_size`` cuts ``(x, y)`` arrays; a source of batches keeps its own.

    Examples
    --------
    >>> check_batch_size(iter([]), None, 32)
    Traceback (most recent call last):
    ...
    ValueError: batch_size applies to (x, y) arrays only; these sources yield batches
    """
    if batch_size is not None and not (
        isinstance(train, tuple) or isinstance(validation_data, tuple)
    ):
        raise ValueError("batch_size applies to (x, y) arrays only; these sources yield batches")


def arrays_batch_size(source, batch_size: int | None) -> int | None:
    """``batch_size`` if ``source`` is ``(x, y)`` arrays, else None (it batches itself).

    Examples
    --------
    >>> arrays_batch_size(([0], [1]), 8), arrays_batch_size(iter([]), 8)
    (8, None)
    """
    return batch_size if isinstance(source, tuple) else None


def warn_pydataset_workers(dataset, stacklevel: int = 3) -> None:
    """Say that a loop reading a ``PyDataset`` by index does not use its workers."""
    workers = getattr(dataset, "workers", 1)
    multiprocessing = getattr(dataset, "use_multiprocessing", False)
    if workers > 1 or multiprocessing:
        warnings.warn(
            f"{type(dataset).__name__} asks for workers={workers}"
            f"{', use_multiprocessing=True' if multiprocessing else ''}; this loop "
            "reads its batches by index on one thread and does not use them (fit does)",
            stacklevel=stacklevel,
        )
