"""Training by hand: a ``train_on_batch`` loop that behaves like ``fit``.

``fit`` hides an epoch loop. :func:`train_on_batches` writes it out over
``model.train_on_batch`` / ``model.test_on_batch`` and drives Keras callbacks
exactly as ``fit`` does, so ``EarlyStopping``, ``ModelCheckpoint``, the
progress bar and :class:`fitlab.LivePlot` all work in it, and it returns the
same :class:`keras.callbacks.History`.

The pieces it is made of are shared with :class:`fitlab.CompiledLoop`:

* :class:`BatchStream` turns any source (``(x, y)`` arrays, a
  ``keras.utils.PyDataset``, a ``tf.data.Dataset``, a Python generator) into
  one epoch of batches at a time;
* :func:`run_epochs` is the loop itself: callbacks, per-epoch metric resets,
  validation, ``stop_training``.

The module also holds checkpoint-and-resume (:class:`ResumableCheckpoint`,
:func:`resume_from`) and :func:`train_tutorial`, the tutorial's ``train.py``
end to end (``python -m fitlab train``).

Only :func:`train_tutorial`'s ``"loop"`` method needs TensorFlow; everything
else here is written against ``keras`` alone.
"""

from __future__ import annotations

import io
import itertools
import json
import math
import os
import shutil
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import keras
import numpy as np

from fitlab.data import write_atomically

METHODS = ("fit", "generator", "batch", "loop")

# What a source that ran dry says (Keras 2 said much the same, then stopped).
_RAN_OUT = (
    "{role} ran out of data after {got} of {want} steps in epoch {epoch}; "
    "interrupting training. A generator must yield at least steps_per_epoch × epochs "
    "batches: make it loop forever (while True), or pass a re-iterable source "
    "(a PyDataset, a tf.data.Dataset or a list of batches)."
)


# --------------------------------------------------------------------------- sources


class BatchStream:
    """Any Keras data source, one epoch of batches at a time.

    The rule for how many batches make an epoch, and where the next epoch
    starts:

    * ``steps=None``: an epoch is one full pass over a re-iterable source
      (arrays, a ``PyDataset``, a finite ``tf.data.Dataset``, a list of
      batches). Every epoch starts a fresh pass. A one-shot generator or an
      endless source needs ``steps``.
    * ``steps=N``: an epoch is the next ``N`` batches. The position is kept
      from epoch to epoch, so a generator is never restarted and no batch is
      seen twice before the source wraps. A re-iterable source starts a new
      pass when it runs out; a one-shot generator or iterator that runs out
      ends training with a warning (Keras 2's behaviour).

    This is what makes the loops immune to Keras 3's *finite generator trap*:
    ``fit`` on a finite Python generator re-chains the two batches it peeked
    at, so every epoch after the first trains on just those two. Here a
    generator's batches are only ever pulled in order, once.

    Parameters
    ----------
    source : tuple of arrays, PyDataset, tf.data.Dataset, iterable or iterator
        ``(x, y)`` or ``(x, y, sample_weight)`` arrays are cut into batches of
        ``batch_size`` rows, in order (shuffle them yourself). Anything else
        must yield whole batches: ``(x, y)`` or ``(x, y, sample_weight)``.
    steps : int, optional
        Batches per epoch; required for a source without a length.
    batch_size : int, optional
        Only for arrays (default 32, like ``fit``).
    role : str
        Names the source in error messages ("training data", …).

    Examples
    --------
    >>> import numpy as np
    >>> stream = BatchStream((np.zeros((5, 2)), np.ones(5)), batch_size=2)
    >>> stream.num_batches, [len(x) for x, y in stream.epoch()]
    (3, [2, 2, 1])
    """

    def __init__(
        self,
        source: Any,
        steps: int | None = None,
        *,
        batch_size: int | None = None,
        role: str = "training data",
    ) -> None:
        if steps is not None and (not isinstance(steps, int) or steps < 1):
            raise ValueError(f"{role}: steps must be a positive int or None, got {steps!r}")
        new_pass, length = _passes(source, batch_size, role)
        self._setup(new_pass, length, steps, role)

    @classmethod
    def from_passes(
        cls, new_pass: Callable[[], Iterator], length: int | None, steps: int | None, role: str
    ) -> BatchStream:
        """A stream over a source given as a function that starts one new pass.

        ``length`` is the batches in a pass: an int, ``None`` when unknown
        (the pass ends by itself) or :data:`FOREVER`.
        """
        stream = cls.__new__(cls)
        stream._setup(new_pass, length, steps, role)
        return stream

    def _setup(self, new_pass, length, steps, role) -> None:
        self.role, self.steps, self._new_pass = role, steps, new_pass
        if steps is None and (length == FOREVER or getattr(new_pass, "one_shot", False)):
            what = "never ends" if length == FOREVER else "is a one-shot generator or iterator"
            raise ValueError(
                f"{role} {what}, so the loop cannot tell where an epoch ends; pass "
                "steps_per_epoch (validation_steps for validation data)"
            )
        # None: unknown until a pass ends (a tf.data pipeline with a filter, …)
        self.num_batches: int | None = steps if steps is not None else length
        self._current: Iterator | None = None
        self.ran_out = False  # a one-shot source ended before an epoch was complete

    def epoch(self) -> Iterator:
        """Yield the batches of the next epoch."""
        if self.steps is None:
            yield from self._new_pass()
            return
        for _ in range(self.steps):
            batch = self._next()
            if batch is _END:
                self.ran_out = True
                return
            yield batch

    def rows(self, batch) -> int:
        """Rows in one of this stream's batches."""
        return batch_size_of(batch)

    def _next(self):
        for _attempt in range(2):  # the current pass, then at most one fresh pass
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
        return _END  # a fresh pass that is empty

    @property
    def _one_shot(self) -> bool:
        return getattr(self._new_pass, "one_shot", False)


_END = object()
#: The length of a source that never ends (tf.data's INFINITE_CARDINALITY).
FOREVER = -1


def _passes(source: Any, batch_size: int | None, role: str) -> tuple[Callable | None, int | None]:
    """Return (function starting one pass over the source, batches in a pass or None)."""
    if isinstance(source, tuple):
        return _array_passes(source, batch_size or 32, role)
    if batch_size is not None:
        raise ValueError(
            f"{role}: batch_size applies to (x, y) arrays only; {type(source).__name__} "
            "already yields batches"
        )
    if isinstance(source, np.ndarray):
        raise ValueError(f"{role}: pass arrays as a tuple (x, y), not x alone")
    if isinstance(source, keras.utils.PyDataset):
        return _pydataset_passes(source)
    if hasattr(source, "__next__"):  # a generator or iterator: one pass, ever

        def one_pass():
            return source

        one_pass.one_shot = True
        return one_pass, source_length(source)
    if hasattr(source, "__iter__"):  # a tf.data.Dataset, a list of batches, …
        return (lambda: iter(source)), source_length(source)
    if hasattr(source, "__getitem__") and hasattr(source, "__len__"):  # Keras 2 Sequence
        return _pydataset_passes(source)
    raise TypeError(
        f"{role}: cannot train on a {type(source).__name__}; pass (x, y) arrays, a "
        "keras.utils.PyDataset, a tf.data.Dataset or a generator of (x, y) batches"
    )


def _array_passes(arrays: tuple, batch_size: int, role: str):
    if not 2 <= len(arrays) <= 3:
        raise ValueError(
            f"{role}: expected (x, y) or (x, y, sample_weight), got {len(arrays)} items"
        )
    if batch_size < 1:
        raise ValueError(f"{role}: batch_size must be positive, got {batch_size}")
    lengths = [len(a) for a in arrays if a is not None]
    if len(set(lengths)) != 1:
        raise ValueError(f"{role}: x, y (and sample_weight) differ in length: {lengths}")
    rows = lengths[0]

    def one_pass():
        for start in range(0, rows, batch_size):
            yield tuple(None if a is None else a[start : start + batch_size] for a in arrays)

    return one_pass, math.ceil(rows / batch_size)


def _pydataset_passes(dataset):
    if getattr(dataset, "workers", 1) > 1 or getattr(dataset, "use_multiprocessing", False):
        warnings.warn(
            f"{type(dataset).__name__} asks for workers={dataset.workers}"
            f"{', use_multiprocessing=True' if dataset.use_multiprocessing else ''}; this loop "
            "reads its batches by index on one thread and does not use them (fit does)",
            stacklevel=4,
        )
    length = dataset.num_batches if isinstance(dataset, keras.utils.PyDataset) else len(dataset)
    if length is None:  # a PyDataset that says it never ends
        length = FOREVER

    def one_pass():
        if hasattr(dataset, "on_epoch_begin"):
            dataset.on_epoch_begin()
        for index in range(length) if length != FOREVER else itertools.count():
            yield dataset[index]
        # Reached only when a pass is consumed to the end, as in Keras.
        if hasattr(dataset, "on_epoch_end"):
            dataset.on_epoch_end()

    return one_pass, length


def source_length(source) -> int | None:
    """Batches in one pass: an int, FOREVER, or None when unknown."""
    cardinality = getattr(source, "cardinality", None)  # a tf.data.Dataset
    if callable(cardinality):
        n = int(cardinality())
        return n if n >= 0 else (FOREVER if n == FOREVER else None)
    try:
        return len(source)
    except TypeError:  # no __len__
        return None


def batch_size_of(batch) -> int:
    """Rows in a batch: the first dimension of its first input array."""
    x = batch[0] if isinstance(batch, tuple | list) else batch
    first = keras.tree.flatten(x)[0]
    return int(first.shape[0])


# --------------------------------------------------------------------------- the loop


class Steps(Protocol):
    """What :func:`run_epochs` needs from a way of training one batch.

    ``train``/``test`` run one batch and return the metrics averaged over the
    epoch so far (what ``fit`` hands to ``on_*_batch_end``); ``result`` returns
    those averages as floats; ``reset`` starts a new average.
    """

    def reset(self) -> None: ...

    def train(self, batch) -> dict: ...

    def test(self, batch) -> dict: ...

    def result(self) -> dict[str, float]: ...


def run_epochs(
    model: keras.Model,
    steps: Steps,
    train: BatchStream,
    *,
    epochs: int,
    initial_epoch: int = 0,
    validation: BatchStream | None = None,
    callbacks: Sequence[keras.callbacks.Callback] | None = None,
    verbose: int | str = 1,
    meter=None,
) -> keras.callbacks.History:
    """The epoch loop of ``fit``, written out; shared by both hand-made loops.

    Calls, in ``fit``'s order: ``on_train_begin``; per epoch ``reset`` of the
    metrics, ``on_epoch_begin``, per batch ``on_train_batch_begin/end`` (with
    the running averages), then validation (``on_test_begin``,
    ``on_test_batch_begin/end``, ``on_test_end``), ``on_epoch_end`` with
    ``loss, …, val_loss, …``; ``on_train_end``. ``model.stop_training`` set
    by a callback ends the epoch after the current batch and training after
    the epoch, as in ``fit``.

    Parameters
    ----------
    meter : fitlab.InputMeter, optional
        Gets the time spent waiting for each next training batch.
    """
    if epochs < initial_epoch:
        raise ValueError(f"epochs ({epochs}) must be >= initial_epoch ({initial_epoch})")
    if not isinstance(callbacks, keras.callbacks.CallbackList):
        callbacks = keras.callbacks.CallbackList(
            callbacks,
            add_history=True,
            add_progbar=verbose != 0,
            verbose=verbose,
            epochs=epochs,
            steps=train.num_batches,
            model=model,
        )
    model.stop_training = False
    callbacks.on_train_begin()
    epoch_logs: dict[str, float] | None = None
    for epoch in range(initial_epoch, epochs):
        steps.reset()
        callbacks.on_epoch_begin(epoch)
        done = 0
        for step, batch in enumerate(_waited(train.epoch(), meter, train.rows)):
            callbacks.on_train_batch_begin(step)
            logs = steps.train(batch)
            callbacks.on_train_batch_end(step, logs)
            done = step + 1
            if model.stop_training:
                break
        if train.ran_out:
            warnings.warn(
                _RAN_OUT.format(role=train.role, got=done, want=train.steps, epoch=epoch + 1),
                stacklevel=3,
            )
            model.stop_training = True
        if done == 0:
            break  # nothing trained this epoch: no metrics to report
        epoch_logs = steps.result()
        if validation is not None:
            val_logs = _validate(steps, validation, callbacks)
            epoch_logs.update({f"val_{name}": value for name, value in val_logs.items()})
        callbacks.on_epoch_end(epoch, epoch_logs)
        if model.stop_training:
            break
    if isinstance(getattr(model, "optimizer", None), keras.optimizers.Optimizer) and epochs > 0:
        # What fit does last: swap in EMA weights when the optimizer keeps them.
        model.optimizer.finalize_variable_values(model.trainable_weights)
    callbacks.on_train_end(logs=epoch_logs)
    return _history(callbacks)


def _validate(steps: Steps, validation: BatchStream, callbacks) -> dict[str, float]:
    steps.reset()
    callbacks.on_test_begin()
    for step, batch in enumerate(validation.epoch()):
        callbacks.on_test_batch_begin(step)
        logs = steps.test(batch)
        callbacks.on_test_batch_end(step, logs)
    if validation.ran_out:
        warnings.warn(
            f"{validation.role} ran out of data; validated on fewer than "
            f"{validation.steps} batches",
            stacklevel=4,
        )
        validation.ran_out = False
    logs = steps.result()
    callbacks.on_test_end(logs)
    return logs


def _waited(batches: Iterator, meter, rows: Callable) -> Iterator:
    """Yield from ``batches``, adding each wait for the next batch to ``meter``."""
    if meter is None:
        yield from batches
        return
    while True:
        start = time.perf_counter()
        try:
            batch = next(batches)
        except StopIteration:
            return
        meter.add(time.perf_counter() - start, rows(batch))
        yield batch


def _history(callbacks: keras.callbacks.CallbackList) -> keras.callbacks.History:
    for callback in callbacks.callbacks:
        if isinstance(callback, keras.callbacks.History):
            return callback
    raise ValueError("the CallbackList passed in has no History callback (add_history=True)")


class _OnBatchSteps:
    """One batch through ``train_on_batch`` / ``test_on_batch``, averaged like ``fit``.

    ``train_on_batch`` resets the model's metrics on every call (Keras 3
    dropped Keras 2's ``reset_metrics=False``), so each call reports that
    batch alone. ``fit`` reports means over the epoch's rows, kept by
    ``keras.metrics.Mean`` in float32 with the batch size as weight; summing
    the batch values the same way, in float32, gives ``fit``'s very numbers.
    (With sample weights that vary, ``fit``'s weighted metrics such as
    accuracy weigh rows, not batches, and can differ slightly.)
    """

    def __init__(self, model: keras.Model) -> None:
        self.model = model
        self.reset()

    def reset(self) -> None:
        self._sums: dict[str, np.float32] = {}
        self._rows = np.float32(0)

    def train(self, batch) -> dict:
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(batch)
        logs = self.model.train_on_batch(x, y, sample_weight=sample_weight, return_dict=True)
        return self._add(logs, batch_size_of(batch))

    def test(self, batch) -> dict:
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(batch)
        logs = self.model.test_on_batch(x, y, sample_weight=sample_weight, return_dict=True)
        return self._add(logs, batch_size_of(batch))

    def _add(self, logs: dict, rows: int) -> dict:
        weight = np.float32(rows)
        self._rows = np.float32(self._rows + weight)
        for name, value in logs.items():
            total = self._sums.get(name, np.float32(0))
            self._sums[name] = np.float32(total + np.float32(value) * weight)
        return self.result()

    def result(self) -> dict[str, float]:
        return {name: float(total / self._rows) for name, total in self._sums.items()}


def train_on_batches(
    model: keras.Model,
    train: Any,
    epochs: int = 1,
    *,
    steps_per_epoch: int | None = None,
    validation_data: Any = None,
    validation_steps: int | None = None,
    callbacks: Sequence[keras.callbacks.Callback] | None = None,
    initial_epoch: int = 0,
    verbose: int | str = 1,
    meter=None,
    batch_size: int | None = None,
) -> keras.callbacks.History:
    """Train a compiled model with your own loop over ``train_on_batch``.

    The loop is ``fit``'s, written out (see :func:`run_epochs`): the same
    callbacks in the same order, ``stop_training`` honoured, and epoch logs
    named and averaged as ``fit``'s (``loss``, ``accuracy``, ``val_loss``,
    ``val_accuracy``: means over the epoch's rows).

    Parameters
    ----------
    model : keras.Model
        Compiled (``model.compile(optimizer, loss, metrics)``).
    train : (x, y) arrays, PyDataset, tf.data.Dataset, list of batches or generator
        See :class:`BatchStream`. Arrays are cut into batches in order, not
        shuffled. A generator needs ``steps_per_epoch``; its position carries
        over between epochs, and if it runs dry training stops with a warning.
        A ``PyDataset`` is read by index on this thread (its ``workers`` are
        not used) and gets ``on_epoch_end()`` after each full pass.
    epochs, initial_epoch : int
        Train epochs ``initial_epoch … epochs - 1`` (as ``fit``: ``epochs`` is
        the index to stop at, not a count).
    steps_per_epoch, validation_steps : int, optional
        Batches per epoch; needed for sources without a length.
    validation_data : same kinds as ``train``, optional
        Evaluated after every epoch. A validation *generator* with
        ``validation_steps`` gives fresh batches each epoch (as Keras 2 did),
        not the same first ones (as Keras 3's ``fit`` does).
    callbacks : list of keras.callbacks.Callback, optional
    verbose : int
        0 silent, 1 progress bar (as ``fit``).
    meter : fitlab.InputMeter, optional
        Adds the time the loop waited for each next training batch.
    batch_size : int, optional
        Rows per batch for ``(x, y)`` arrays, training or validation (default
        32, as ``fit``); an error when neither is arrays.

    Returns
    -------
    keras.callbacks.History
        Also set as ``model.history``.

    Examples
    --------
    >>> history = train_on_batches(model, (x, y), epochs=2, batch_size=32)  # doctest: +SKIP
    >>> sorted(history.history)  # doctest: +SKIP
    ['accuracy', 'loss']
    """
    if getattr(model, "optimizer", None) is None:
        raise ValueError("train_on_batches needs a compiled model: call model.compile(...) first")
    if batch_size is not None and not (
        isinstance(train, tuple) or isinstance(validation_data, tuple)
    ):
        raise ValueError("batch_size applies to (x, y) arrays only; these sources yield batches")
    stream = BatchStream(
        train,
        steps_per_epoch,
        batch_size=arrays_batch_size(train, batch_size),
        role="training data",
    )
    validation = None
    if validation_data is not None:
        validation = BatchStream(
            validation_data,
            validation_steps,
            role="validation data",
            batch_size=arrays_batch_size(validation_data, batch_size),
        )
    return run_epochs(
        model,
        _OnBatchSteps(model),
        stream,
        epochs=epochs,
        initial_epoch=initial_epoch,
        validation=validation,
        callbacks=callbacks,
        verbose=verbose,
        meter=meter,
    )


def arrays_batch_size(source, batch_size: int | None) -> int | None:
    """``batch_size`` if ``source`` is ``(x, y)`` arrays, else None (it batches itself)."""
    return batch_size if isinstance(source, tuple) else None


# --------------------------------------------------------------------------- checkpoints

_STATE = "checkpoint.json"


class ResumableCheckpoint(keras.callbacks.Callback):
    """Save everything needed to resume after every epoch, never half-written.

    Each epoch writes ``epoch-NNNN.keras`` (weights, optimizer state,
    compile settings) and ``epoch-NNNN.rng.npz`` (the random-seed state of
    dropout and augmentation layers, which ``.keras`` files do not keep),
    then commits them by atomically replacing ``checkpoint.json`` (the
    epochs done and the history so far). A process killed at any instant
    leaves a directory that :func:`resume_from` restarts from the last
    committed epoch: no epoch lost, none run twice. Older epoch files are
    removed only after the new commit.

    Resuming is exact (same history, same final weights as an uninterrupted
    run) when the batch order of an epoch depends only on the epoch number
    and ops are deterministic (``tf.config.experimental.enable_op_determinism``).

    Parameters
    ----------
    directory : path
        Where the checkpoint lives (created if needed).
    keep : int
        How many epoch files to keep (the newest).

    Examples
    --------
    >>> ckpt = resume_from("runs/ckpt")  # doctest: +SKIP
    >>> model = ckpt.model if ckpt else build_and_compile()  # doctest: +SKIP
    >>> start = ckpt.initial_epoch if ckpt else 0  # doctest: +SKIP
    >>> model.fit(x, y, epochs=75, initial_epoch=start,
    ...           callbacks=[ResumableCheckpoint("runs/ckpt")])  # doctest: +SKIP
    """

    def __init__(self, directory: str | os.PathLike, keep: int = 1) -> None:
        super().__init__()
        if keep < 1:
            raise ValueError(f"keep must be >= 1, got {keep}")
        self.directory = Path(directory)
        self.keep = keep
        self.history: dict[str, list[float]] = {}
        self.epochs_done = 0

    def on_train_begin(self, logs=None) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        state = _read_state(self.directory)
        self.history = state["history"] if state else {}
        self.epochs_done = state["epochs_done"] if state else 0

    def on_epoch_end(self, epoch: int, logs=None) -> None:
        if epoch != self.epochs_done:
            raise ValueError(
                f"{self.directory / _STATE} holds {self.epochs_done} epochs but epoch "
                f"{epoch + 1} just ended; resume with initial_epoch={self.epochs_done} "
                "(see fitlab.training.resume_from) or use an empty directory"
            )
        stem = f"epoch-{epoch + 1:04d}"
        _save_model_atomically(self.model, self.directory / f"{stem}.keras")
        _save_rng_atomically(self.model, self.directory / f"{stem}.rng.npz")
        for name, value in (logs or {}).items():
            self.history.setdefault(name, []).append(float(value))
        self.epochs_done = epoch + 1
        state = {
            "epochs_done": self.epochs_done,
            "model": f"{stem}.keras",
            "rng": f"{stem}.rng.npz",
            "history": self.history,
        }
        write_atomically(self.directory / _STATE, json.dumps(state, indent=1).encode())
        self._prune(epoch + 1)

    def _prune(self, newest: int) -> None:
        for path in self.directory.glob("epoch-*.keras"):
            number = int(path.name[6:10])
            if number <= newest - self.keep:
                path.unlink(missing_ok=True)
                path.with_name(f"epoch-{number:04d}.rng.npz").unlink(missing_ok=True)


@dataclass(frozen=True)
class Resumed:
    """What :func:`resume_from` found: the model, where to start, the history so far."""

    model: keras.Model
    initial_epoch: int
    history: dict[str, list[float]]


def resume_from(directory: str | os.PathLike, custom_objects: dict | None = None) -> Resumed | None:
    """Load the last committed epoch of a :class:`ResumableCheckpoint`, or ``None``.

    The model comes back compiled, with its optimizer state (so the learning
    rate schedule continues from the right iteration) and its random-seed
    state. Train on with ``initial_epoch=resumed.initial_epoch`` and the same
    ``ResumableCheckpoint(directory)``; its ``history`` then covers every epoch.

    Examples
    --------
    >>> resumed = resume_from("runs/ckpt")  # doctest: +SKIP
    >>> resumed.initial_epoch, len(resumed.history["loss"])  # doctest: +SKIP
    (3, 3)
    """
    directory = Path(directory)
    state = _read_state(directory)
    if state is None:
        return None
    model = keras.models.load_model(directory / state["model"], custom_objects=custom_objects)
    with np.load(directory / state["rng"]) as saved:
        seeds = _seed_states(model)
        if len(saved.files) != len(seeds):
            raise ValueError(
                f"{directory / state['rng']} holds {len(saved.files)} seed states but the "
                f"model has {len(seeds)}; the checkpoint and model do not match"
            )
        for index, variable in enumerate(seeds):
            variable.assign(saved[f"s{index}"])
    return Resumed(model, int(state["epochs_done"]), state["history"])


def _read_state(directory: Path) -> dict | None:
    path = directory / _STATE
    if not path.exists():
        return None
    try:
        state = json.loads(path.read_text())
        return {
            "epochs_done": int(state["epochs_done"]),
            "model": state["model"],
            "rng": state["rng"],
            "history": dict(state["history"]),
        }
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(
            f"{path} is not a fitlab checkpoint ({exc}); delete the directory to start afresh"
        ) from exc


def _seed_states(model: keras.Model) -> list:
    """The state variables of every random-seed generator (dropout, augmentation)."""
    weights = {id(w) for w in model.weights}
    return [v for v in model.variables if id(v) not in weights and "seed" in v.path]


def _save_rng_atomically(model: keras.Model, path: Path) -> None:
    buffer = io.BytesIO()
    np.savez(buffer, **{f"s{i}": np.asarray(v) for i, v in enumerate(_seed_states(model))})
    write_atomically(path, buffer.getvalue())


def _save_model_atomically(model: keras.Model, path: Path) -> None:
    """``model.save`` to a temp file beside ``path``, then rename it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp_dir = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}."))
    try:
        tmp = tmp_dir / path.name  # Keras insists on the .keras suffix
        model.save(tmp)
        os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)


def train_tutorial(
    method: str,
    *,
    epochs: int = 75,
    batch_size: int = 32,
    augment: bool = True,
    seed: int = 42,
    recipe: str = "tutorial",
    out: str | os.PathLike,
    data_dir: str | os.PathLike | None = None,
    archive: str | os.PathLike | None = None,
    verbose: int | str = 1,
) -> dict:
    """The tutorial's ``train.py``, end to end, by one of the four methods.

    Prepares the Flowers-17 CSVs, builds MiniVGGNet, compiles it with a
    recipe (by default the tutorial's SGD: lr 1e-2, momentum 0.9, decay
    lr / epochs, per batch; see :mod:`fitlab.recipes`), trains with a progress
    bar, validating on the test CSV after each epoch as the tutorial did, then
    predicts the 340 test rows and writes to ``out``:
    ``report.txt`` (also printed), ``plot.png`` (loss and accuracy per epoch),
    ``history.json`` and ``model.keras``, each written atomically. To load the
    model elsewhere, ``import fitlab.augment`` first (it registers the shear
    layer the augmentation uses), then ``keras.models.load_model(path)``.

    The methods:

    ``fit``
        ``model.fit`` on arrays loaded from the CSV (shuffled each epoch).
    ``generator``
        ``model.fit`` on a :class:`fitlab.CSVSequence` (shuffled each epoch).
    ``batch``
        :func:`train_on_batches` on the same ``CSVSequence``.
    ``loop``
        :class:`fitlab.CompiledLoop` on a :func:`fitlab.csv_dataset`.

    Augmentation (the tutorial's ``ImageDataGenerator`` settings, see
    :data:`fitlab.TUTORIAL_AUGMENTATION`) runs as the model's first layers,
    so all four methods augment with the same code, in the same graph as the
    training step, and only while training; the data sources stay plain.

    Parameters
    ----------
    method : {"fit", "generator", "batch", "loop"}
    epochs, batch_size : int
    augment : bool
        Use the tutorial's augmentation.
    seed : int
        Seeds weights, dropout, augmentation and shuffling (the 60/20 split
        is fixed by :func:`fitlab.prepare_flowers17`).
    recipe : {"tutorial", "improved"}
        Optimizer, schedule and loss (:func:`fitlab.make_recipe`).
    out : path
        Folder for the outputs (created).
    data_dir, archive : path, optional
        See :func:`fitlab.prepare_flowers17`.
    verbose : int
        0 silent, 1 progress bar and report.

    Returns
    -------
    dict
        ``accuracy``, ``macro_f1``, ``wall_s`` (training and validation),
        ``epochs`` (run), ``method``, ``recipe``, ``seed``, ``batch_size``,
        ``augment``, ``paths`` (``report``, ``plot``, ``history``, ``model``)
        and ``tta_accuracy``, ``tta_macro_f1``: the scores when each test
        image's prediction is averaged with its mirror image's (test-time
        augmentation by the horizontal flip training already used;
        ``report.txt`` has the plain predictions).

    Examples
    --------
    >>> result = train_tutorial("fit", epochs=75, out="runs/fit")  # doctest: +SKIP
    >>> round(result["accuracy"], 2)  # doctest: +SKIP
    0.74
    """
    from sklearn.metrics import accuracy_score, f1_score

    from fitlab.csvrows import classes_from_csv, count_rows, load_csv
    from fitlab.data import prepare_flowers17
    from fitlab.evaluate import predict_all, report
    from fitlab.recipes import RECIPES, make_recipe

    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if recipe not in RECIPES:  # before the data is prepared, not after
        raise ValueError(f"recipe must be one of {RECIPES}, got {recipe!r}")
    if epochs < 1 or batch_size < 1:
        raise ValueError(f"epochs and batch_size must be positive, got {epochs}, {batch_size}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    files = prepare_flowers17(data_dir=data_dir, archive=archive, progress=bool(verbose))
    classes = classes_from_csv(files.train)  # sorted, as the tutorial's LabelBinarizer
    x_test, test_labels = load_csv(files.test)
    y_test_index = _label_indices(test_labels, classes, files.test)

    keras.utils.set_random_seed(seed)
    model = _tutorial_model(x_test.shape[1:], len(classes), augment, seed)
    steps_per_epoch = math.ceil(count_rows(files.train) / batch_size)
    optimizer, loss = make_recipe(recipe, epochs=epochs, steps_per_epoch=steps_per_epoch)
    metrics = ["accuracy"]

    start = time.perf_counter()
    history = _train_by(
        method,
        model,
        optimizer,
        loss,
        metrics,
        files,
        classes,
        epochs=epochs,
        batch_size=batch_size,
        seed=seed,
        verbose=verbose,
        test=(x_test, y_test_index),
    )
    wall_s = time.perf_counter() - start

    probabilities = predict_all(model, x_test, batch_size=batch_size)
    predicted = probabilities.argmax(axis=1)
    mirrored = predict_all(model, x_test[:, :, ::-1], batch_size=batch_size)
    tta_predicted = (probabilities + mirrored).argmax(axis=1)
    text = report(y_test_index, predicted, classes)
    if verbose:
        print(text)
    paths = _write_outputs(out, model, history, text)
    return {
        "accuracy": float(accuracy_score(y_test_index, predicted)),
        "macro_f1": float(f1_score(y_test_index, predicted, average="macro")),
        "tta_accuracy": float(accuracy_score(y_test_index, tta_predicted)),
        "tta_macro_f1": float(f1_score(y_test_index, tta_predicted, average="macro")),
        "wall_s": wall_s,
        "epochs": len(history.history.get("loss", [])),
        "method": method,
        "recipe": recipe,
        "seed": seed,
        "batch_size": batch_size,
        "augment": augment,
        "paths": paths,
    }


def _tutorial_model(shape: tuple, classes: int, augment: bool, seed: int) -> keras.Model:
    from fitlab.augment import TUTORIAL_AUGMENTATION, make_augmentation
    from fitlab.models import MiniVGGNet

    height, width, depth = shape
    augmentation = make_augmentation(**TUTORIAL_AUGMENTATION, seed=seed) if augment else None
    return MiniVGGNet.build(width, height, depth, classes, augmentation=augmentation)


def _label_indices(labels: np.ndarray, classes: Sequence[str], path) -> np.ndarray:
    index = {name: i for i, name in enumerate(classes)}
    unknown = sorted(set(labels.tolist()) - index.keys())
    if unknown:
        raise ValueError(
            f"{path}: labels {unknown} are not among the training classes {list(classes)}; "
            "rebuild both CSVs with `python -m fitlab data --force`"
        )
    return np.array([index[label] for label in labels.tolist()], dtype=np.int64)


def _train_by(
    method,
    model,
    optimizer,
    loss,
    metrics,
    files,
    classes,
    *,
    epochs,
    batch_size,
    seed,
    verbose,
    test,
) -> keras.callbacks.History:
    """Train ``model`` by ``method``; every method validates on the test set."""
    from fitlab.generators import CSVSequence

    x_test, y_test_index = test
    y_test = keras.utils.to_categorical(y_test_index, len(classes))
    if method == "loop":
        from fitlab.loop import CompiledLoop
        from fitlab.tfdata import csv_dataset

        size = x_test.shape[1]
        train = csv_dataset(
            files.train,
            batch_size,
            classes=classes,
            shuffle_buffer=4096,
            seed=seed,
            cache=True,
            size=size,
        )
        loop = CompiledLoop(model, optimizer, loss, metrics)
        return loop.fit(
            train, epochs, validation_data=(x_test, y_test), batch_size=batch_size, verbose=verbose
        )

    model.compile(optimizer=optimizer, loss=loss, metrics=metrics)
    if method == "fit":
        from fitlab.csvrows import load_csv

        x_train, train_labels = load_csv(files.train)
        y_train = keras.utils.to_categorical(
            _label_indices(train_labels, classes, files.train), len(classes)
        )
        return model.fit(
            x_train,
            y_train,
            batch_size=batch_size,
            epochs=epochs,
            validation_data=(x_test, y_test),
            verbose=verbose,
        )
    train = CSVSequence(
        files.train, batch_size, classes=classes, shuffle=True, seed=seed, cache=True
    )
    if method == "generator":
        # shuffle=False: the sequence reshuffles its rows itself each epoch. Keras
        # 3's fit also calls its on_epoch_end once before the first epoch
        # (EpochIterator.reset), so "generator" trains one shuffle ahead of "batch".
        return model.fit(
            train,
            epochs=epochs,
            validation_data=(x_test, y_test),
            validation_batch_size=batch_size,
            shuffle=False,
            verbose=verbose,
        )
    return train_on_batches(
        model,
        train,
        epochs,
        validation_data=(x_test, y_test),
        batch_size=batch_size,
        verbose=verbose,
    )


def _write_outputs(out: Path, model: keras.Model, history, text: str) -> dict[str, str]:
    paths = {
        name: out / file
        for name, file in (
            ("report", "report.txt"),
            ("plot", "plot.png"),
            ("history", "history.json"),
            ("model", "model.keras"),
        )
    }
    write_atomically(paths["report"], text.encode())
    record = {"history": history.history, "params": _jsonable(history.params)}
    write_atomically(paths["history"], json.dumps(record, indent=1).encode())
    from fitlab.live import plot_history

    plot_history(history, path=paths["plot"])  # written atomically
    _save_model_atomically(model, paths["model"])
    return {name: str(path) for name, path in paths.items()}


def _jsonable(params: dict | None) -> dict:
    return {k: v for k, v in (params or {}).items() if isinstance(v, int | float | str | None)}
