"""Keras 2's removed training API on Keras 3, with Keras 2's meaning.

A 2018 script runs with its imports changed::

    from fitlab.compat import ImageDataGenerator, SGD, enable_legacy_methods
    enable_legacy_methods()          # model.fit_generator & co. exist again
    H = model.fit_generator(gen, steps_per_epoch=..., validation_data=val, ...)
    plt.plot(H.history["acc"])       # 2018 key names still resolve

What each name does, and where it follows Keras 2:

* :func:`fit_generator`, :func:`evaluate_generator`, :func:`predict_generator`
  take every Keras 2 argument with its Keras 2 meaning. They drive
  ``train_on_batch`` / ``test_on_batch`` / ``predict_on_batch`` through
  :func:`fitlab.training.run_epochs` (``fit``'s epoch loop written out), so
  callbacks, the progress bar and the ``History`` behave as in ``fit``, and a
  generator is never handed to Keras 3's ``fit`` -- which is what makes them
  immune to Keras 3's *finite generator trap* (``fit`` on a finite generator
  trains on all its batches in epoch 1, then on only the two batches it peeked
  at in every later epoch).
* :func:`enable_legacy_methods` puts the three on ``keras.Model``.
* :func:`SGD` takes ``lr`` and ``decay`` (per batch, as Keras 2 counted).
* :class:`ImageDataGenerator` with ``.flow`` is built on
  :func:`fitlab.make_augmentation` (Keras 2's names *and units*).
* :func:`legacy_history` lets ``history["acc"]`` find ``"accuracy"``.

The reference for "Keras 2's meaning" is Keras 2 itself: ``tests/test_compat.py``
runs each scenario through ``tf_keras`` 2.21's own ``fit_generator`` and through
this module and compares what a user can observe. Where Keras 2.2 (the 2018
docs) and ``tf_keras`` 2.21 disagree, or Keras 2 did something no one wants,
the function's docstring says which way this module goes. In short:

* Followed: ``tf_keras`` 2.21 for which batches train and validate, epoch
  numbering, History keys, stopping when a generator runs dry (after the
  partial epoch), a validation generator that runs dry (later epochs go
  unvalidated), ``Sequence`` passes (``random.shuffle`` per epoch, a fresh pass
  cut to ``steps_per_epoch``, one pass then stop when it asks for more),
  ``class_weight`` times sample weights.
* Keras 2.2 (the 2018 docs) over ``tf_keras`` 2.21: ``workers=0`` runs the
  generator on the calling thread (2.21 refuses it); ``steps_per_epoch`` /
  ``validation_steps`` are required for a *generator* (2.21 drains it in epoch
  1, then records an empty epoch of zeros); validation batches are
  consecutive (2.21 throws away the batches its prefetch read ahead, so epoch
  2 validates on batches 53, 54 instead of 52, 53); a *list* batch given to
  ``predict_generator`` is the inputs of a multi-input model.
* Neither: an epoch that gets no batch at all is not recorded; a generator
  with ``use_multiprocessing=True`` runs on a thread, with a warning (Keras 2
  copied it into each process and repeated batches); ``workers > 1`` on a
  generator uses one thread (a generator runs on one thread at a time; Keras
  2's extra threads waited on a lock and could reorder batches);
  ``class_weight`` keys need not be ``0 … n-1``, only cover the classes seen.
"""

from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import functools
import itertools
import math
import multiprocessing
import queue
import random
import sys
import threading
import warnings
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import keras
import numpy as np

from fitlab.engine import BatchStream, run_epochs

__all__ = [
    "ImageDataGenerator",
    "SGD",
    "enable_legacy_methods",
    "evaluate_generator",
    "fit_generator",
    "legacy_history",
    "predict_generator",
]

# Keras 2's validation batch size for (x, y) arrays (fit's batch_size default).
ARRAY_BATCH_SIZE = 32

# How long closing a background generator waits for it to finish its current batch.
_JOIN_TIMEOUT_S = 60.0

_MODERN_CALL = {
    "fit_generator": "model.fit(data, epochs=..., steps_per_epoch=..., validation_data=...)",
    "evaluate_generator": "model.evaluate(data, steps=...)",
    "predict_generator": "model.predict(data, steps=...)",
}
_warned: set[str] = set()


# =========================================================================== warnings


def _warn_deprecated(name: str) -> None:
    """Warn once per process per function, pointing at the user's call."""
    if name in _warned:
        return
    _warned.add(name)
    warnings.warn(
        f"{name} was deprecated in Keras 2 and removed in Keras 3; call "
        f"{_MODERN_CALL[name]} on a keras.utils.PyDataset (e.g. fitlab.CSVSequence) or a "
        f"tf.data.Dataset (e.g. fitlab.csv_dataset) instead. fitlab.compat.{name} keeps "
        "Keras 2's meaning so that old scripts run unchanged.",
        DeprecationWarning,
        stacklevel=_caller_stacklevel(),
    )


def _caller_stacklevel() -> int:
    """The ``stacklevel`` of the first frame outside this module and the epoch runner."""
    frame, level = sys._getframe(1), 1
    while frame is not None and frame.f_globals.get("__name__") in (
        __name__,
        "fitlab.engine.epochs",
    ):
        frame, level = frame.f_back, level + 1
    return level


# =========================================================================== data sources


_END = object()


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

    def __next__(self):
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

    def _put(self, item) -> bool:
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


def _install_sequence(uid: int, sequence) -> None:
    _SHARED_SEQUENCES[uid] = sequence


def _sequence_item(uid: int, index: int):
    return _SHARED_SEQUENCES[uid][index]


def _is_sequence(source: Any) -> bool:
    """Keras 2's test: a ``Sequence`` (now ``PyDataset``), or anything indexable with a length.

    ``ImageDataGenerator.flow`` returns an object that is both an iterator and
    a sequence; Keras 2 treated it as a sequence, and so does this.
    """
    if isinstance(source, keras.utils.PyDataset):
        return True
    if hasattr(source, "__next__") or isinstance(source, list | tuple | str | bytes | Mapping):
        return False
    if isinstance(source, np.ndarray):
        return False
    return hasattr(source, "__getitem__") and hasattr(source, "__len__")


def _sequence_length(sequence) -> int | None:
    if isinstance(sequence, keras.utils.PyDataset):
        return sequence.num_batches
    return len(sequence)


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
        sequence,
        steps: int | None,
        *,
        shuffle: bool,
        workers: int,
        use_multiprocessing: bool,
        max_queue_size: int,
    ) -> None:
        self.sequence = sequence
        self.length = _sequence_length(sequence)
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

    @property
    def batches_per_pass(self) -> int:
        if self.length is None:
            return self.steps
        return self.length if self.steps is None else min(self.steps, self.length)

    def new_pass(self) -> Iterator:
        return self._run_pass()

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


def _array_passes(arrays: tuple, steps: int | None) -> tuple[Callable[[], Iterator], int]:
    """``(x, y)`` / ``(x, y, sample_weight)`` arrays (or dicts of arrays) in batches of 32."""
    if not 2 <= len(arrays) <= 3:
        raise ValueError(
            "validation_data must be a generator, a Sequence, (x, y) or (x, y, sample_weight); "
            f"got a tuple of {len(arrays)} items"
        )
    rows = {len(a) for a in keras.tree.flatten(arrays) if a is not None}
    if len(rows) != 1:
        raise ValueError(f"validation_data: x, y and sample_weight differ in length: {rows}")
    (count,) = rows
    batches = math.ceil(count / ARRAY_BATCH_SIZE)
    if steps is not None:
        batches = min(steps, batches)

    def one_pass():
        for start in range(0, batches * ARRAY_BATCH_SIZE, ARRAY_BATCH_SIZE):
            rows = slice(start, start + ARRAY_BATCH_SIZE)
            yield tuple(
                None if part is None else keras.tree.map_structure(lambda a, r=rows: a[r], part)
                for part in arrays
            )

    return one_pass, batches


class _Stream(BatchStream):
    """Epochs of batches as :func:`fitlab.training.run_epochs` reads them.

    ``one_shot`` sources (generators) continue where the last epoch stopped;
    the others start a new pass each epoch, cut to ``steps`` (for a sequence
    that is ``tf_keras`` 2.21's rule, where ``BatchStream`` would carry the
    position over). ``ran_out`` is set when an epoch got fewer than ``steps``
    batches.
    """

    def __init__(
        self, new_pass: Callable[[], Iterator], role: str, steps: int | None,
        num_batches: int | None, one_shot: bool = False,
    ) -> None:  # fmt: skip
        self.role, self.steps, self.num_batches = role, steps, num_batches
        self.ran_out = False
        self._compat_pass = new_pass
        self._compat_feed = new_pass() if one_shot else None

    def epoch(self) -> Iterator:
        if self._compat_feed is not None:
            batches = itertools.islice(self._compat_feed, self.steps)
        else:  # a pass is already cut to `steps`; it ends with the source's on_epoch_end
            batches = self._compat_pass()
        got = 0
        try:
            for batch in batches:
                got += 1
                yield batch
        finally:
            if self._compat_feed is None:
                batches.close()  # a pass cut short shuts its workers down now
        if self.steps is not None and got < self.steps:
            self.ran_out = True


class _Source:
    """One Keras 2 data argument, opened for one call: ``.stream`` of epochs, then ``close``."""

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
        if steps is not None and (isinstance(steps, bool) or not isinstance(steps, int)):
            raise TypeError(f"{steps_name} must be an int or None, got {steps!r}")
        if steps is not None and steps < 1:
            raise ValueError(f"{steps_name} must be positive, got {steps}")
        self._feed: _GeneratorFeed | None = None
        if isinstance(data, tuple):
            new_pass, length = _array_passes(data, steps)
            self.stream = _Stream(new_pass, role, None, length)
        elif _is_sequence(data):
            passes = _SequencePasses(
                data,
                steps,
                shuffle=shuffle,
                workers=workers,
                use_multiprocessing=use_multiprocessing,
                max_queue_size=max_queue_size,
            )
            self.stream = _Stream(passes.new_pass, role, steps, passes.batches_per_pass)
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
                    stacklevel=_caller_stacklevel(),
                )
            self._feed = _GeneratorFeed(data, workers, max_queue_size, role)
            feed = self._feed
            self.stream = _Stream(lambda: feed, role, steps, steps, one_shot=True)
        else:
            raise TypeError(
                f"{role}: expected a generator (or iterator) of batches or a "
                f"keras.utils.PyDataset / Sequence, got {type(data).__name__}; for a "
                "tf.data.Dataset or arrays use model.fit"
            )

    def close(self) -> None:
        if self._feed is not None:
            self._feed.close()


@contextlib.contextmanager
def _opened(*sources: _Source | None):
    try:
        yield
    finally:
        for source in sources:
            if source is not None:
                source.close()


# =========================================================================== batches


def _unpack_training_batch(batch, role: str) -> tuple:
    """``(x, y)`` or ``(x, y, sample_weight)``, as Keras 2 demanded of a generator."""
    if isinstance(batch, list | tuple) and len(batch) in (2, 3):
        x, y, *rest = batch
        return x, y, (rest[0] if rest else None)
    shown = f"a {len(batch)}-tuple" if isinstance(batch, tuple) else type(batch).__name__
    raise ValueError(
        f"{role}: each batch must be a tuple (x, y) or (x, y, sample_weight), got {shown}. "
        "x and y may be arrays, or dicts keyed by input / output layer name."
    )


def _by_output_name(model: keras.Model, part, role: str):
    """Targets (or sample weights) given as ``{output layer name: array}``, as Keras 2 took them.

    Keras 3 matches a dict only to a model whose outputs are a dict; a
    functional model with one output (or a list of them) gets the arrays in
    ``model.output_names`` order.
    """
    if not isinstance(part, Mapping):
        return part
    try:
        structure = model.output
    except (AttributeError, ValueError):  # a subclassed model: leave it to Keras
        return part
    if isinstance(structure, Mapping):
        return part
    names = list(model.output_names)
    missing = [name for name in names if name not in part]
    unknown = [name for name in part if name not in names]
    if missing or unknown:
        raise ValueError(
            f"{role}: the batch's dict has keys {sorted(part)}, the model's outputs are named "
            f"{names}; name each array after its output layer"
        )
    return part[names[0]] if len(names) == 1 else [part[name] for name in names]


def _inputs_of(batch):
    """The inputs of a prediction batch: ``x``, ``(x,)``, ``(x, y)`` or ``(x, y, w)``.

    A *tuple* is unpacked; a *list* is the inputs of a multi-input model, as in
    Keras 2.2 (``tf_keras`` 2.21 turns a 2-list into ``(x, y)`` and predicts on
    its first array only).
    """
    if isinstance(batch, tuple):
        if not 1 <= len(batch) <= 3:
            raise ValueError(
                f"a prediction batch tuple must be (x,), (x, y) or (x, y, w), got {len(batch)}"
            )
        return batch[0]
    return batch


def _class_indices(y) -> np.ndarray:
    y = np.asarray(keras.ops.convert_to_numpy(y))
    if y.ndim == 2 and y.shape[1] > 1:
        return y.argmax(axis=1)
    if y.ndim == 1 or (y.ndim == 2 and y.shape[1] == 1):
        return y.reshape(-1).astype(np.int64)
    raise ValueError(f"class_weight is not supported for targets of shape {y.shape} (3+ dims)")


def _with_class_weight(y, sample_weight, class_weight: Mapping) -> np.ndarray:
    """Sample weights ``class_weight[class of each row]``, times any batch sample weights."""
    if isinstance(y, Mapping | list | tuple):
        if len(y) != 1:
            raise ValueError(
                "class_weight is only supported for models with a single output; "
                f"this batch has {len(y)} targets. Weight rows with sample weights instead."
            )
        (y,) = y.values() if isinstance(y, Mapping) else y
    classes = _class_indices(y)
    missing = sorted(set(classes.tolist()) - set(class_weight))
    if missing:
        raise ValueError(
            f"class_weight has no weight for class(es) {missing} found in the targets; "
            f"give every class a weight (got keys {sorted(class_weight)})"
        )
    weights = np.array([class_weight[c] for c in classes.tolist()], dtype="float32")
    if sample_weight is not None:
        weights = weights * np.asarray(keras.ops.convert_to_numpy(sample_weight), "float32")
    return weights


def _normalize_class_weight(class_weight) -> dict[int, float] | None:
    if class_weight is None:
        return None
    if not isinstance(class_weight, Mapping):
        raise TypeError(
            f"class_weight must be a dict {{class index: weight}}, got {type(class_weight)}"
        )
    return {int(k): float(v) for k, v in class_weight.items()}


@contextlib.contextmanager
def _metrics_accumulate(model: keras.Model):
    """Make ``train_on_batch``/``test_on_batch`` accumulate metrics as ``fit`` does.

    Keras 3's ``*_on_batch`` reset the model's metrics on every call, so each
    reports one batch. ``fit`` resets once per epoch and reports running
    averages (for every metric, weighted as the metric weighs: accuracy by
    sample weight, the loss by batch size). Shadowing ``reset_metrics`` on
    the instance for the duration of the loop gives exactly ``fit``'s
    numbers; :class:`_LegacySteps` resets at each epoch and each validation.
    """
    shadowed = "reset_metrics" in vars(model)
    previous = vars(model).get("reset_metrics")
    object.__setattr__(model, "reset_metrics", lambda: None)
    try:
        yield
    finally:
        if shadowed:
            object.__setattr__(model, "reset_metrics", previous)
        else:
            object.__delattr__(model, "reset_metrics")


class _LegacySteps:
    """One batch through ``train_on_batch``/``test_on_batch`` (the ``Steps`` of run_epochs)."""

    def __init__(
        self, model: keras.Model, class_weight: dict[int, float] | None, role: str = "fit_generator"
    ) -> None:
        self.model = model
        self.class_weight = class_weight
        self.role = role
        self._logs: dict = {}

    def reset(self) -> None:
        type(self.model).reset_metrics(self.model)
        self._logs = {}

    def _unpack(self, batch, role: str) -> tuple:
        x, y, sample_weight = _unpack_training_batch(batch, role)
        y = _by_output_name(self.model, y, role)
        sample_weight = _by_output_name(self.model, sample_weight, role)
        return x, y, sample_weight

    def train(self, batch) -> dict:
        x, y, sample_weight = self._unpack(batch, self.role)
        if self.class_weight is not None:
            sample_weight = _with_class_weight(y, sample_weight, self.class_weight)
        self._logs = self.model.train_on_batch(x, y, sample_weight=sample_weight, return_dict=True)
        return self._logs

    def test(self, batch) -> dict:
        x, y, sample_weight = self._unpack(batch, f"{self.role} (validation)")
        self._logs = self.model.test_on_batch(x, y, sample_weight=sample_weight, return_dict=True)
        return self._logs

    def result(self) -> dict[str, float]:
        """The running averages since the last reset; ``{}`` when no batch ran."""
        return {name: float(value) for name, value in self._logs.items()}


# =========================================================================== the three methods


def _check_common(model: keras.Model, workers: int, max_queue_size: int, name: str) -> None:
    if not isinstance(model, keras.Model):
        raise TypeError(f"{name} needs a keras.Model, got {type(model).__name__}")
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 0:
        raise ValueError(f"workers must be an int >= 0, got {workers!r}")
    if not isinstance(max_queue_size, int):
        raise TypeError(f"max_queue_size must be an int, got {max_queue_size!r}")


def _check_compiled(model: keras.Model, name: str) -> None:
    if not getattr(model, "compiled", False):
        raise ValueError(f"{name} needs a compiled model: call model.compile(...) first")


def fit_generator(
    model: keras.Model,
    generator,
    steps_per_epoch: int | None = None,
    epochs: int = 1,
    verbose: int | str = 1,
    callbacks: list[keras.callbacks.Callback] | None = None,
    validation_data=None,
    validation_steps: int | None = None,
    class_weight: Mapping[int, float] | None = None,
    max_queue_size: int = 10,
    workers: int = 1,
    use_multiprocessing: bool = False,
    shuffle: bool = True,
    initial_epoch: int = 0,
) -> keras.callbacks.History:
    """Keras 2's ``model.fit_generator``, on a Keras 3 model.

    Parameters
    ----------
    model : keras.Model
        Compiled.
    generator : generator / iterator, or keras.utils.PyDataset / Sequence
        Yields ``(inputs, targets)`` or ``(inputs, targets, sample_weights)``;
        inputs and targets may be dicts keyed by input / output layer name.
        A generator must keep yielding (``while True``): epoch ``e`` trains on
        its next ``steps_per_epoch`` batches, never restarting it. If it runs
        dry, training stops after the epoch in progress with a warning (as
        ``tf_keras`` 2.21; an epoch that got no batch at all is not recorded,
        where ``tf_keras`` records one full of zeros).
    steps_per_epoch : int, optional
        Batches per epoch. Required for a generator (as Keras 2.2 required it).
        For a sequence it defaults to ``len(sequence)``; every epoch starts a
        fresh pass and takes its first ``steps_per_epoch`` items, and a value
        above ``len`` trains one pass and then stops with a warning (both as
        ``tf_keras`` 2.21; Keras 2.2 wrapped around instead).
    epochs, initial_epoch : int
        Trains epochs ``initial_epoch … epochs - 1``: ``epochs`` is the index to
        stop at, not a count, and callbacks and ``History.epoch`` see those
        numbers.
    verbose : int
        0 silent, 1 progress bar, 2 one line per epoch.
    callbacks : list of keras.callbacks.Callback, optional
        Called as ``fit`` calls them, validation included (``on_test_*``).
    validation_data : generator, sequence, (x, y) or (x, y, sample_weights)
        Evaluated after every epoch. A generator gives its *next*
        ``validation_steps`` batches each epoch -- fresh batches, as Keras 2
        drew them (Keras 3's ``fit`` re-validates on the same first batches).
        If it runs dry, that epoch is validated on the batches it had and later
        epochs are not validated (no ``val_*`` for them), as ``tf_keras`` 2.21.
        A sequence is read from index 0 each epoch (``validation_steps``
        items, default its length, never shuffled). Arrays are evaluated in
        batches of 32.
    validation_steps : int, optional
        Required for a validation generator (as Keras 2.2).
    class_weight : dict, optional
        ``{class index: weight}``, applied to the training batches as sample
        weights (class = ``argmax`` of one-hot targets, or the integer label),
        *multiplied* by any sample weights the batch brings -- ``tf_keras``
        2.21's rule (its generator path crashes on that combination; Keras 2.2
        ignored ``class_weight`` when sample weights were given). Keras 3's
        ``fit`` refuses ``class_weight`` for generators. Single-output models.
    max_queue_size : int
        Batches kept ready ahead of training (``workers > 0``).
    workers : int
        ``0``: the generator runs on this thread, one batch when needed (the
        2018 documentation's meaning; ``tf_keras`` 2.21 rejects ``workers=0``).
        ``> 0``: it runs on a background thread while the model trains (one
        thread for a generator, ``workers`` threads or processes computing
        items of a sequence).
    use_multiprocessing : bool
        With a sequence and ``workers > 0``: forked worker processes (a new pool
        each epoch). A generator is run on a thread instead, with a warning:
        Keras 2 copied it into each process, so batches repeated.
    shuffle : bool
        Reorder a sequence's items each epoch (Python's ``random.shuffle``, as
        Keras 2). Generators are never shuffled.

    Returns
    -------
    keras.callbacks.History
        ``history.history`` has ``fit``'s keys (``loss``, ``accuracy``,
        ``val_loss``, …) and also answers 2018 code that asks for ``"acc"`` /
        ``"val_acc"`` (see :func:`legacy_history`).

    Warns
    -----
    DeprecationWarning
        Once per process, naming the Keras 3 call to use instead.

    Examples
    --------
    >>> def batches():  # doctest: +SKIP
    ...     while True:
    ...         yield x[:32], y[:32]
    >>> H = fit_generator(model, batches(), steps_per_epoch=10, epochs=3)  # doctest: +SKIP
    >>> len(H.history["loss"]), len(H.history["acc"])  # doctest: +SKIP
    (3, 3)
    """
    _warn_deprecated("fit_generator")
    _check_common(model, workers, max_queue_size, "fit_generator")
    _check_compiled(model, "fit_generator")
    class_weight = _normalize_class_weight(class_weight)
    options = dict(workers=workers, use_multiprocessing=use_multiprocessing)
    options["max_queue_size"] = max_queue_size
    train = _Source(generator, steps_per_epoch, role="training data", shuffle=shuffle, **options)
    validation = None
    if isinstance(validation_data, list):  # Keras 2 took [x, y] as it took (x, y)
        validation_data = tuple(validation_data)
    with _opened(train):
        if validation_data is not None:
            validation = _Source(
                validation_data,
                validation_steps,
                role="validation data",
                steps_name="validation_steps",
                **options,
            )
        with _opened(validation), _metrics_accumulate(model):
            history = run_epochs(
                model,
                _LegacySteps(model, class_weight),
                train.stream,
                epochs=epochs,
                initial_epoch=initial_epoch,
                validation=None if validation is None else validation.stream,
                callbacks=callbacks,
                verbose=verbose,
            )
    return legacy_history(history)


def evaluate_generator(
    model: keras.Model,
    generator,
    steps: int | None = None,
    callbacks: list[keras.callbacks.Callback] | None = None,
    max_queue_size: int = 10,
    workers: int = 1,
    use_multiprocessing: bool = False,
    verbose: int = 0,
) -> float | list[float]:
    """Keras 2's ``model.evaluate_generator``: loss (and metrics) over ``steps`` batches.

    ``steps`` is required for a generator and defaults to ``len`` for a
    sequence. A generator that runs dry early ends the evaluation with a
    warning; the result covers the batches it gave (as ``tf_keras`` 2.21).
    ``workers`` and ``use_multiprocessing`` as in :func:`fit_generator`.

    Returns
    -------
    float or list of float
        The loss alone when the model has no metrics, else ``[loss, metric, …]``
        in ``model.metrics_names`` order (Keras 2's return).

    Examples
    --------
    >>> loss, acc = evaluate_generator(model, test_batches(), steps=11)  # doctest: +SKIP
    """
    _warn_deprecated("evaluate_generator")
    _check_common(model, workers, max_queue_size, "evaluate_generator")
    _check_compiled(model, "evaluate_generator")
    source, callbacks = _single_pass(
        model, generator, steps, "evaluation data", callbacks, verbose,
        workers=workers, use_multiprocessing=use_multiprocessing, max_queue_size=max_queue_size,
    )  # fmt: skip
    steps_run = _LegacySteps(model, None, role="evaluate_generator")
    with _opened(source), _metrics_accumulate(model):
        steps_run.reset()
        callbacks.on_test_begin()
        for step, batch in enumerate(source.stream.epoch()):
            callbacks.on_test_batch_begin(step)
            callbacks.on_test_batch_end(step, steps_run.test(batch))
        logs = steps_run.result()
        callbacks.on_test_end(logs)
    if source.stream.ran_out:
        warnings.warn(
            f"evaluation data ran out after fewer than steps={steps} batches; "
            "the result covers the batches it gave",
            stacklevel=_caller_stacklevel(),
        )
    if not logs:
        raise ValueError("evaluate_generator: the generator yielded no batches")
    return _in_metrics_order(model, logs)


def _single_pass(model, generator, steps, role, callbacks, verbose, **loading):
    """The source and callbacks of one pass (evaluate_generator, predict_generator)."""
    source = _Source(generator, steps, role=role, steps_name="steps", **loading)
    callbacks = keras.callbacks.CallbackList(
        callbacks, add_progbar=verbose != 0, verbose=verbose, epochs=1,
        steps=source.stream.num_batches, model=model,
    )  # fmt: skip
    return source, callbacks


def _in_metrics_order(model: keras.Model, logs: dict[str, float]) -> float | list[float]:
    """Keras 2's ``evaluate`` return: ``loss`` first, then metrics in compile order."""
    names: list[str] = []
    for metric in model.metrics:
        inner = getattr(metric, "metrics", None)  # Keras 3 groups compiled metrics
        names.extend(m.name for m in inner) if inner is not None else names.append(metric.name)
    ordered = [logs[n] for n in names if n in logs]
    ordered += [logs[n] for n in sorted(logs) if n not in names]
    return ordered[0] if len(ordered) == 1 else ordered


def predict_generator(
    model: keras.Model,
    generator,
    steps: int | None = None,
    callbacks: list[keras.callbacks.Callback] | None = None,
    max_queue_size: int = 10,
    workers: int = 1,
    use_multiprocessing: bool = False,
    verbose: int = 0,
):
    """Keras 2's ``model.predict_generator``: one prediction per input row of ``steps`` batches.

    Each batch may be ``x`` (an array, a list of arrays for a multi-input model,
    or a dict), or a tuple ``(x,)``, ``(x, y)``, ``(x, y, w)`` whose targets are
    ignored. ``steps`` is required for a generator (default ``len`` for a
    sequence); a generator that runs dry early ends prediction with a warning,
    returning the rows it gave (as ``tf_keras`` 2.21). Nothing is dropped or
    padded: step ``i``'s rows follow step ``i-1``'s.

    Returns
    -------
    numpy.ndarray, or a list / dict of them for a multi-output model

    Examples
    --------
    >>> probs = predict_generator(model, test_batches(), steps=11)  # doctest: +SKIP
    >>> probs.shape  # doctest: +SKIP
    (340, 17)
    """
    _warn_deprecated("predict_generator")
    _check_common(model, workers, max_queue_size, "predict_generator")
    source, callbacks = _single_pass(
        model, generator, steps, "prediction data", callbacks, verbose,
        workers=workers, use_multiprocessing=use_multiprocessing, max_queue_size=max_queue_size,
    )  # fmt: skip
    outputs = []
    with _opened(source):
        callbacks.on_predict_begin()
        for step, batch in enumerate(source.stream.epoch()):
            callbacks.on_predict_batch_begin(step)
            outputs.append(model.predict_on_batch(_inputs_of(batch)))
            callbacks.on_predict_batch_end(step, {"outputs": outputs[-1]})
        callbacks.on_predict_end()
    if source.stream.ran_out:
        warnings.warn(
            f"prediction data ran out after {len(outputs)} of steps={steps} batches; "
            "returning the predictions for those",
            stacklevel=_caller_stacklevel(),
        )
    if not outputs:
        raise ValueError("predict_generator: the generator yielded no batches")
    return keras.tree.map_structure(lambda *parts: np.concatenate(parts), *outputs)


# =========================================================================== model methods


def _as_method(function: Callable) -> Callable:
    @functools.wraps(function)
    def method(self, *args, **kwargs):
        return function(self, *args, **kwargs)

    method.__doc__ = f"fitlab.compat.{function.__name__} as a method (see there).\n\n" + (
        function.__doc__ or ""
    )
    return method


_LEGACY_METHODS = {
    "fit_generator": fit_generator,
    "evaluate_generator": evaluate_generator,
    "predict_generator": predict_generator,
}


def enable_legacy_methods() -> None:
    """Put ``fit_generator``, ``evaluate_generator``, ``predict_generator`` on ``keras.Model``.

    Opt-in and global for the process (every model, Sequential and functional
    included), so ``model.fit_generator(...)`` code runs unchanged. Calling it
    again is harmless.

    Examples
    --------
    >>> enable_legacy_methods()
    >>> hasattr(keras.Model, "fit_generator")
    True
    """
    for name, function in _LEGACY_METHODS.items():
        setattr(keras.Model, name, _as_method(function))


# =========================================================================== history


class _LegacyKeys(dict):
    """A history dict that also answers Keras 2.2's names (``acc``, ``val_acc``).

    The keys themselves stay Keras 3's (and ``tf_keras`` 2.21's): iterating,
    ``len`` and ``in`` see ``accuracy`` / ``val_accuracy`` only; looking up
    ``"acc"`` returns the ``"accuracy"`` list itself.
    """

    ALIASES = {"acc": "accuracy", "val_acc": "val_accuracy"}

    def __missing__(self, key):
        target = self.ALIASES.get(key)
        if target is not None and dict.__contains__(self, target):
            return self[target]
        raise KeyError(key)

    def get(self, key, default=None):
        try:
            return self[key]
        except KeyError:
            return default


def legacy_history(history: keras.callbacks.History) -> keras.callbacks.History:
    """Let ``history.history["acc"]`` and ``["val_acc"]`` work, as in 2018 plotting code.

    Keras 2.2 named the ``"accuracy"`` metric ``acc``; Keras 3 (and
    ``tf_keras`` 2.21) name it ``accuracy``. The same ``History`` is returned,
    its ``history`` dict now also answering the old names; its keys are
    unchanged, so code that lists them sees Keras 3's names.

    Examples
    --------
    >>> H = legacy_history(model.fit(x, y, epochs=2))  # doctest: +SKIP
    >>> H.history["acc"] is H.history["accuracy"]  # doctest: +SKIP
    True
    """
    if not isinstance(history, keras.callbacks.History):
        raise TypeError(f"legacy_history needs a keras.callbacks.History, got {type(history)}")
    if not isinstance(history.history, _LegacyKeys):
        history.history = _LegacyKeys(history.history)
    return history


# =========================================================================== SGD


def SGD(  # noqa: N802 - Keras 2's class name, called like a constructor
    lr: float | None = None,
    momentum: float = 0.0,
    decay: float = 0.0,
    nesterov: bool = False,
    *,
    learning_rate: float | None = None,
    **unsupported,
) -> keras.optimizers.SGD:
    """Keras 2's ``SGD(lr=0.01, momentum=0., decay=0., nesterov=False)``.

    ``decay`` divides the rate by ``1 + decay * iterations``, counted in
    batches, as Keras 2 did (Keras 3's ``SGD`` accepts ``decay=`` with a
    warning and ignores it). Built by :func:`fitlab.legacy_sgd`; Keras 2.3's
    ``learning_rate=`` is accepted too.

    Raises
    ------
    NotImplementedError
        For any other Keras 2 argument (``clipnorm``, ``clipvalue``), rather
        than ignore it.

    Examples
    --------
    >>> opt = SGD(lr=1e-2, momentum=0.9, decay=1e-2 / 75)  # doctest: +SKIP
    """
    from fitlab.optim import legacy_sgd

    if unsupported:
        raise NotImplementedError(
            f"fitlab.compat.SGD does not implement {sorted(unsupported)}; use "
            "keras.optimizers.SGD(...) with a schedule from fitlab.legacy_sgd for those"
        )
    if lr is not None and learning_rate is not None:
        raise TypeError("give lr or learning_rate, not both")
    rate = lr if lr is not None else learning_rate if learning_rate is not None else 0.01
    return legacy_sgd(learning_rate=rate, momentum=momentum, decay=decay, nesterov=nesterov)


# =========================================================================== ImageDataGenerator

# Keras 2 arguments fitlab does not implement, with their defaults: passing the
# default is a no-op and allowed; anything else raises NotImplementedError.
_UNSUPPORTED_GENERATOR_ARGS = {
    "featurewise_center": False,
    "samplewise_center": False,
    "featurewise_std_normalization": False,
    "samplewise_std_normalization": False,
    "zca_whitening": False,
    "zca_epsilon": 1e-6,
    "brightness_range": None,
    "channel_shift_range": 0.0,
    "preprocessing_function": None,
    "data_format": "channels_last",
    "validation_split": 0.0,
    "interpolation_order": 1,
    "dtype": "float32",
}
_UNSUPPORTED_FLOW_ARGS = {
    "save_to_dir": None,
    "save_prefix": "",
    "save_format": "png",
    "ignore_class_split": False,
    "subset": None,
}


def _refuse_unsupported(owner: str, given: dict, defaults: dict) -> None:
    """Allow Keras 2 arguments left at their defaults; refuse the rest by name."""
    for name, value in given.items():
        if name not in defaults:
            raise TypeError(f"{owner}() got an unexpected keyword argument {name!r}")
        # None means "the Keras default" for data_format and dtype.
        if value is None and name in ("data_format", "dtype"):
            continue
        if value is defaults[name] or (value is not None and _equal(value, defaults[name])):
            continue
        raise NotImplementedError(
            f"{owner}({name}={value!r}) is not implemented by fitlab.compat; remove it "
            f"(Keras 2's default is {defaults[name]!r}) or preprocess the arrays yourself"
        )


def _equal(value, default) -> bool:
    try:
        return bool(value == default)
    except (TypeError, ValueError):  # arrays and other odd values are never "the default"
        return False


class ImageDataGenerator:
    """Keras 2's ``ImageDataGenerator`` for random affine augmentation, on Keras 3 layers.

    Supports ``rotation_range``, ``width_shift_range``, ``height_shift_range``,
    ``shear_range``, ``zoom_range``, ``horizontal_flip``, ``vertical_flip``,
    ``fill_mode``, ``cval`` -- with Keras 2's meanings and units (degrees for
    rotation *and shear*, fractions of the size for shifts below 1 and pixels
    from 1 up, ``[1 - z, 1 + z]`` per axis for zoom), converted by
    :func:`fitlab.make_augmentation` -- and ``rescale``, applied after the
    transform, as Keras 2 did. Any other Keras 2 argument with a non-default
    value raises ``NotImplementedError`` naming it; unknown names raise
    ``TypeError``. Differences: pixel shifts are drawn uniformly in
    ``(-r, r)`` (Keras 2 drew whole pixels for an ``int`` range), and the
    random numbers are Keras 3's, so the same seed does not give Keras 2's
    images (see :func:`fitlab.make_augmentation` for the small rest).

    Only :meth:`flow` (arrays in memory) is provided.

    Examples
    --------
    >>> aug = ImageDataGenerator(rotation_range=20, zoom_range=0.15,  # doctest: +SKIP
    ...                          horizontal_flip=True, fill_mode="nearest")
    >>> images, labels = next(aug.flow(images, labels, batch_size=32))  # doctest: +SKIP
    """

    def __init__(
        self,
        rotation_range: float = 0,
        width_shift_range: float = 0.0,
        height_shift_range: float = 0.0,
        shear_range: float = 0.0,
        zoom_range: float | tuple[float, float] = 0.0,
        horizontal_flip: bool = False,
        vertical_flip: bool = False,
        fill_mode: str = "nearest",
        cval: float = 0.0,
        rescale: float | None = None,
        **unsupported,
    ) -> None:
        _refuse_unsupported("ImageDataGenerator", unsupported, _UNSUPPORTED_GENERATOR_ARGS)
        for name, value in (("width_shift_range", width_shift_range),
                            ("height_shift_range", height_shift_range)):  # fmt: skip
            if isinstance(value, list | tuple | np.ndarray):
                raise NotImplementedError(
                    f"ImageDataGenerator({name}={value!r}): a list of allowed shifts is not "
                    "implemented by fitlab.compat; give a range (fraction < 1, or pixels)"
                )
        self.augmentation_args = dict(
            rotation_range=rotation_range,
            width_shift_range=width_shift_range,
            height_shift_range=height_shift_range,
            shear_range=shear_range,
            zoom_range=zoom_range,
            horizontal_flip=horizontal_flip,
            vertical_flip=vertical_flip,
            fill_mode=fill_mode,
            cval=cval,
        )
        self.rescale = rescale
        self._layers: dict[tuple[int, int], keras.Sequential] = {}
        # Bad values fail here, as in Keras 2's constructor (pixel shifts are
        # checked against the image size in flow()).
        self.augmentation(64, 64)

    def _layer_args(self, height: int, width: int) -> dict:
        args = dict(self.augmentation_args)
        for name, size in (("width_shift_range", width), ("height_shift_range", height)):
            if args[name] >= 1:  # Keras 2: a range of 1 or more is in pixels
                if args[name] >= size:
                    raise ValueError(
                        f"{name}={args[name]} pixels is not below the image size {size}"
                    )
                args[name] = args[name] / size
        return args

    def augmentation(self, height: int, width: int, seed: int | None = None) -> keras.Sequential:
        """The Keras 3 layers this generator applies to ``height × width`` images.

        Unseeded layers are built once per image size and reused; a ``seed``
        builds a fresh copy, so the same seed draws the same transforms.
        """
        from fitlab.augment import make_augmentation

        if seed is not None:
            return make_augmentation(**self._layer_args(height, width), seed=seed)
        key = (height, width)
        if key not in self._layers:
            self._layers[key] = make_augmentation(**self._layer_args(height, width))
        return self._layers[key]

    def standardize(self, x: np.ndarray) -> np.ndarray:
        """Keras 2's ``standardize``; here only ``rescale`` (after the transform)."""
        if self.rescale:
            x = x * np.float32(self.rescale)
        return x

    def flow(
        self,
        x,
        y=None,
        batch_size: int = 32,
        shuffle: bool = True,
        sample_weight=None,
        seed: int | None = None,
        **unsupported,
    ) -> NumpyArrayIterator:
        """Augmented batches from arrays, as Keras 2's ``flow``.

        Returns a :class:`NumpyArrayIterator`: ``next()`` gives batches
        forever (a new order each pass when ``shuffle``; the last batch of a
        pass may be short), and it is also a ``keras.utils.PyDataset`` of
        ``ceil(len(x) / batch_size)`` batches, so ``model.fit`` and
        :func:`fit_generator` take it directly. Batches are ``x`` (no ``y``),
        ``(x, y)``, or ``(x, y, sample_weight)``; images come back as
        ``float32``. The same ``seed`` gives the same order and transforms.

        Examples
        --------
        >>> aug = ImageDataGenerator(horizontal_flip=True)
        >>> flow = aug.flow(x, y, batch_size=8, seed=1)  # doctest: +SKIP
        >>> images, labels = next(flow)  # doctest: +SKIP
        """
        _refuse_unsupported("flow", unsupported, _UNSUPPORTED_FLOW_ARGS)
        return NumpyArrayIterator(
            x, y, self, batch_size=batch_size, shuffle=shuffle,
            sample_weight=sample_weight, seed=seed,
        )  # fmt: skip


class NumpyArrayIterator(keras.utils.PyDataset):
    """What :meth:`ImageDataGenerator.flow` returns (Keras 2's class of the same name).

    Both an endless iterator (``next``) and a ``PyDataset`` (index, ``len``,
    ``on_epoch_end`` draws a new order), as Keras 2's was.
    """

    def __init__(
        self,
        x,
        y,
        image_data_generator: ImageDataGenerator,
        *,
        batch_size: int = 32,
        shuffle: bool = True,
        sample_weight=None,
        seed: int | None = None,
    ) -> None:
        super().__init__()
        x = np.asarray(x)
        if x.ndim != 4:
            raise ValueError(
                f"flow() needs images shaped (N, height, width, channels), got {x.shape}"
            )
        for name, other in (("y", y), ("sample_weight", sample_weight)):
            if other is not None and len(other) != len(x):
                raise ValueError(
                    f"flow(): x has {len(x)} rows but {name} has {len(other)}; they must match"
                )
        if batch_size < 1:
            raise ValueError(f"flow(): batch_size must be positive, got {batch_size}")
        self.x = x
        self.y = None if y is None else np.asarray(y)
        self.sample_weight = None if sample_weight is None else np.asarray(sample_weight)
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.image_data_generator = image_data_generator
        self._rng = np.random.default_rng(seed)
        self._augmentation = image_data_generator.augmentation(x.shape[1], x.shape[2], seed)
        self._lock = threading.Lock()
        self._index_array = self._new_order()
        self._position = 0  # next batch of the current pass, for next()

    def __len__(self) -> int:
        return math.ceil(len(self.x) / self.batch_size)

    def _new_order(self) -> np.ndarray:
        return self._rng.permutation(len(self.x)) if self.shuffle else np.arange(len(self.x))

    def on_epoch_end(self) -> None:
        self._index_array = self._new_order()

    def __getitem__(self, index: int):
        if not 0 <= index < len(self):
            raise IndexError(f"batch {index} is out of range for {len(self)} batches")
        return self._batch(self._rows(index))

    def _rows(self, index: int) -> np.ndarray:
        return self._index_array[index * self.batch_size : (index + 1) * self.batch_size]

    def __iter__(self) -> NumpyArrayIterator:
        return self

    def __next__(self):
        with self._lock:  # one pass position, shared by every thread that calls next()
            if self._position >= len(self):
                self.on_epoch_end()
                self._position = 0
            rows = self._rows(self._position)
            self._position += 1
        return self._batch(rows)

    def _batch(self, rows: np.ndarray):
        images = self._augmentation(self.x[rows].astype("float32"), training=True)
        images = self.image_data_generator.standardize(
            np.asarray(keras.ops.convert_to_numpy(images), dtype="float32")
        )
        if self.y is None:
            return images
        if self.sample_weight is None:
            return images, self.y[rows]
        return images, self.y[rows], self.sample_weight[rows]
