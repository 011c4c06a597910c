"""``CSVSequence``: the tutorial's CSV as a ``keras.utils.PyDataset``.

What to use for real work: exact epochs, per-epoch row shuffling, Keras's
worker threads or processes, bounded memory (rows are read on demand through a
byte-offset index) and an opt-in cache shared with forked workers.

Examples
--------
>>> import tempfile, pathlib
>>> from fitlab.data import make_synthetic_csv
>>> path = make_synthetic_csv(pathlib.Path(tempfile.mkdtemp()) / "t.csv", rows=10, size=4)
>>> seq = CSVSequence(path, batch_size=4)
>>> len(seq), seq[0][0].shape, seq[0][1].shape, seq.classes
(3, (4, 4, 4, 3), (4, 3), ['daffodil', 'lilyvalley', 'snowdrop'])
"""

from __future__ import annotations

import inspect
import math
import mmap
import multiprocessing
import numbers
import os
import threading
import time
import weakref
from collections.abc import Mapping, Sequence
from pathlib import Path

import keras
import numpy as np

from fitlab._private import terminate_keras_worker_pools, thread_is_running
from fitlab.data import csvrows
from fitlab.data.csvrows import CSVFormatError
from fitlab.data.labels import classes_of, label_codes, one_hot_rows, unknown_label_reason
from fitlab.data.rowindex import index_rows, is_gzip, plain_copy
from fitlab.pipelines.generator import apply_augmentation, check_batch_size
from fitlab.pipelines.meter import InputMeter, rows_in

# What to do about an unknown label: CSVSequence takes classes= and on_bad_row=.
LABEL_ADVICE = (
    "Pass classes= naming every label, fix or delete that row, or pass on_bad_row='skip' "
    "to skip bad rows."
)


def _check_fork_safe(augment, use_multiprocessing: bool) -> None:
    if (
        use_multiprocessing
        and isinstance(augment, keras.layers.Layer)
        and keras.backend.backend() == "tensorflow"
    ):
        raise ValueError(
            "a Keras augmentation layer cannot run in forked worker processes on the TensorFlow "
            "backend: TensorFlow's thread pools do not survive fork and the workers hang. Use "
            "threads (use_multiprocessing=False), put the augmentation in the model "
            "(MiniVGGNet.build(augmentation=...)), or use csv_dataset(augment=...)."
        )


def _close(fd: int, pid: int, temp: Path | None) -> None:
    # Forked worker processes hold copies of the dataset: only its creator cleans up.
    if os.getpid() != pid:
        return
    os.close(fd)
    if temp is not None:
        temp.unlink(missing_ok=True)


class _WorkerGuard:
    """Stops Keras's worker processes when an epoch is abandoned.

    Keras 3 leaves its ``multiprocessing`` pool running when ``fit`` is left by
    an exception or a KeyboardInterrupt (``on_epoch_end`` is never called and
    the pool's feeder thread stays blocked on a full queue). Workers write
    their pid here; at ``on_epoch_begin`` a daemon thread notes the Keras
    ``fit``/``evaluate``/``predict`` call running the epoch and, once that call
    is no longer on its thread's stack while the epoch is still open,
    terminates the pools whose workers are ours.
    """

    SLOTS = 256

    def __init__(self):
        self._pids = multiprocessing.RawArray("i", self.SLOTS + 1)  # [count, pid, ...]
        self._lock = multiprocessing.Lock()
        self._watch: tuple | None = None

    def register(self) -> None:
        """Called in a worker process: remember its pid."""
        with self._lock:
            count = self._pids[0]
            self._pids[1 + count % self.SLOTS] = os.getpid()
            self._pids[0] = count + 1

    def pids(self) -> set[int]:
        with self._lock:
            return {pid for pid in self._pids[1:] if pid}

    def open_epoch(self, frame) -> None:
        anchor = _epoch_anchor(frame)
        if anchor is None:
            return
        token = object()
        self._watch = (threading.get_ident(), anchor, token)
        threading.Thread(target=self._run, args=(token,), daemon=True, name="fitlab-guard").start()

    def close_epoch(self) -> None:
        self._watch = None

    def stop_workers(self) -> int:
        """Terminate the Keras pools running our workers; return how many."""
        return terminate_keras_worker_pools(self.pids())

    def _run(self, token) -> None:
        while self._watch is not None and self._watch[2] is token:
            thread, anchor, _ = self._watch
            if not thread_is_running(thread, anchor):
                self._watch = None
                self.stop_workers()
                return
            time.sleep(0.1)


def _epoch_anchor(frame):
    """The outermost Keras fit/evaluate/predict frame above ``frame``, if any."""
    anchor = None
    while frame is not None:
        module = frame.f_globals.get("__name__", "")
        if module.startswith("keras") and frame.f_code.co_name in ("fit", "evaluate", "predict"):
            anchor = frame
        frame = frame.f_back
    return anchor


class CSVSequence(keras.utils.PyDataset):
    """A ``keras.utils.PyDataset`` over the tutorial's CSV.

    ``len(seq) = ceil(N / batch_size)``; batch ``i`` is ``(images uint8
    (b, H, W, 3), labels)`` (or ``(images, labels, weights)``), and one pass
    over ``range(len(seq))`` visits every row exactly once. Only a byte-offset
    index (a few bytes per row) is kept; rows are read on demand with
    ``os.preadv``, so memory does not grow with the file. A ``.csv.gz`` is
    decompressed once to a temporary plain file for random access.

    Parameters
    ----------
    path : path
        The CSV (plain or gzip).
    batch_size : int
    classes : sequence of str, optional
        Class order; default the sorted labels of this file (as
        ``LabelBinarizer`` sorts them). Pass the training file's classes to a
        test sequence: an unknown label raises :class:`CSVFormatError` naming
        the label, the file and the line.
    one_hot : bool
        ``float32`` one-hot labels, or ``int32`` class indices.
    shuffle : bool
        Reshuffle the *rows* at the end of every epoch (a permutation drawn
        from ``seed`` and :attr:`epoch`, so runs repeat and forked workers
        agree). Keep it False to evaluate or predict. Note that Keras's
        ``fit(shuffle=True)`` (its default) also reorders the batches.
    seed : int, optional
    augment : callable, optional
        Applied to each batch (see :func:`apply_augmentation`); images are
        then ``float32`` 0–255.
    cache : bool
        Keep parsed rows after their first read, in shared memory, so that
        Keras's forked worker processes fill and use one cache.
    sample_weights : mapping or array-like, optional
        ``{class name: weight}`` or one weight per row (file order, after
        skipped rows); batches then carry a third ``float32`` element.
    on_bad_row : {"raise", "skip"}
        ``"skip"`` checks every row once up front, leaves bad ones out, warns
        with a :class:`fitlab.BadRowsWarning` and lists them in
        ``.skipped``. ``"raise"`` finds a bad label here and a bad value when
        its batch is read.
    meter : InputMeter, optional
        Gets each batch's loading time (see :mod:`fitlab.pipelines.meter`).
    workers, use_multiprocessing, max_queue_size
        Passed to ``keras.utils.PyDataset``: how ``fit`` parallelises loading.

    Raises
    ------
    CSVFormatError
        A bad row (see ``on_bad_row``); a file with no rows, or no valid
        rows; a damaged ``.csv.gz``.

    Notes
    -----
    Resuming: :attr:`epoch` counts ``on_epoch_end()`` calls from 0 in each
    new sequence, and the row order follows it. Before resuming a run at
    ``initial_epoch=k`` in a new process, set ``seq.epoch = k`` (same
    ``seed``): every epoch then gets the rows in the order the uninterrupted
    run gave it.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from fitlab.data import make_synthetic_csv
    >>> path = make_synthetic_csv(pathlib.Path(tempfile.mkdtemp()) / "t.csv", rows=5, size=2)
    >>> seq = CSVSequence(path, batch_size=2, one_hot=False)
    >>> [y.tolist() for _, y in seq]
    [[0, 2], [1, 0], [2]]
    """

    def __init__(
        self,
        path: str | os.PathLike,
        batch_size: int = 32,
        *,
        classes: Sequence[str] | None = None,
        one_hot: bool = True,
        shuffle: bool = False,
        seed: int | None = None,
        augment=None,
        cache: bool = False,
        sample_weights: Mapping[str, float] | Sequence[float] | np.ndarray | None = None,
        on_bad_row: str = "raise",
        meter: InputMeter | None = None,
        workers: int = 1,
        use_multiprocessing: bool = False,
        max_queue_size: int = 10,
    ):
        super().__init__(
            workers=workers, use_multiprocessing=use_multiprocessing, max_queue_size=max_queue_size
        )
        check_batch_size(batch_size)
        csvrows.check_on_bad_row(on_bad_row)
        _check_fork_safe(augment, use_multiprocessing)
        self.path = Path(path)
        self.batch_size = int(batch_size)
        self.one_hot, self.shuffle, self.augment, self.meter = one_hot, shuffle, augment, meter
        self.seed = int(np.random.SeedSequence(seed).entropy)
        self._epoch = 0
        temp = plain_copy(self.path) if is_gzip(self.path) else None
        self._plain = temp or self.path
        self._fd = os.open(self._plain, os.O_RDONLY)
        weakref.finalize(self, _close, self._fd, os.getpid(), temp)

        index = index_rows(self._plain, shown=self.path, on_bad_row=on_bad_row)
        self.skipped: list[CSVFormatError] = list(index.errors)
        self._index = index
        if on_bad_row == "skip":
            self._drop_bad_rows()
        self.classes = list(classes) if classes is not None else classes_of(index.labels)
        self._codes = self._encode_labels(on_bad_row)
        self.skipped.sort(key=lambda e: e.line or 0)
        csvrows.report_skipped(self.path, self.skipped)
        if not len(index):
            if self.skipped:
                raise csvrows.no_valid_rows_error(self.path, self.skipped)
            raise csvrows.no_rows_error(self.path)
        self.image_shape = (csvrows.side_of(index.values),) * 2 + (3,)
        self._weights = self._row_weights(sample_weights)
        self._order = self._permutation() if shuffle else None
        self._cache = self._filled = None
        if cache and len(index):
            self._make_cache()
        self._owner = os.getpid()
        self._guard = _WorkerGuard() if use_multiprocessing else None

    # -- the PyDataset protocol -------------------------------------------------
    def __len__(self) -> int:
        return math.ceil(len(self._index) / self.batch_size)

    def __getitem__(self, i: int):
        started = time.perf_counter()
        if self._guard is not None and os.getpid() != self._owner:
            self._register_worker()
        if not 0 <= i < len(self):
            raise IndexError(f"batch {i} out of range: this CSVSequence has {len(self)} batches")
        rows = self.rows_of_batch(i)
        x = self._images(rows).reshape((-1,) + self.image_shape)
        codes = self._codes[rows]
        y = one_hot_rows(codes, len(self.classes)) if self.one_hot else codes
        if self.augment is not None:
            x, y = apply_augmentation(self.augment, x, y)
        batch = (x, y) if self._weights is None else (x, y, self._weights[rows])
        if self.meter is not None:
            background = self.workers > 1 or self.use_multiprocessing
            spent = time.perf_counter() - started
            self.meter.add(spent / self.workers if background else spent, images=rows_in(batch))
        return batch

    def on_epoch_begin(self) -> None:
        """Keras's hook at the start of an epoch: with worker processes, watch that epoch.

        Should the Keras call running it (``fit``, ``evaluate``, ``predict``) be
        left before the epoch ends, the workers are stopped (see :meth:`close`).

        Examples
        --------
        >>> import tempfile, pathlib
        >>> from fitlab.data import make_synthetic_csv
        >>> path = make_synthetic_csv(pathlib.Path(tempfile.mkdtemp()) / "t.csv", rows=4, size=1)
        >>> seq = CSVSequence(path, 2)  # no worker processes: nothing to watch
        >>> seq.on_epoch_begin(), seq.epoch
        (None, 0)
        """
        if self._guard is not None:
            self._guard.open_epoch(inspect.currentframe().f_back)

    def on_epoch_end(self) -> None:
        """Count the epoch and, with ``shuffle=True``, draw the next epoch's row order.

        Examples
        --------
        >>> import tempfile, pathlib
        >>> from fitlab.data import make_synthetic_csv
        >>> path = make_synthetic_csv(pathlib.Path(tempfile.mkdtemp()) / "t.csv", rows=6, size=1)
        >>> seq = CSVSequence(path, batch_size=6, shuffle=True, seed=1)
        >>> first = seq.rows_of_batch(0).tolist()
        >>> seq.on_epoch_end()
        >>> seq.epoch, sorted(seq.rows_of_batch(0).tolist()), seq.rows_of_batch(0).tolist() != first
        (1, [0, 1, 2, 3, 4, 5], True)
        """
        # Keras calls this after stopping its workers, so the next epoch's
        # (re-forked) workers all see the new order.
        if self._guard is not None:
            self._guard.close_epoch()
        self.epoch = self._epoch + 1

    def close(self) -> None:
        """Terminate any Keras worker processes still running for this dataset.

        ``with CSVSequence(...) as seq:`` calls it on leaving the block.

        Examples
        --------
        >>> import tempfile, pathlib
        >>> from fitlab.data import make_synthetic_csv
        >>> path = make_synthetic_csv(pathlib.Path(tempfile.mkdtemp()) / "t.csv", rows=4, size=1)
        >>> with CSVSequence(path, 2, workers=2, use_multiprocessing=True) as seq:
        ...     len(seq)
        2
        """
        if self._guard is not None:
            self._guard.close_epoch()
            self._guard.stop_workers()

    def __enter__(self) -> CSVSequence:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- public helpers ---------------------------------------------------------
    @property
    def epoch(self) -> int:
        """The epoch counter: ``on_epoch_end()`` calls so far, unless set. Settable.

        With ``shuffle=True`` the row order is drawn from ``seed`` and this
        number, and setting it draws that epoch's order. A new sequence
        starts at 0, so **before resuming at** ``initial_epoch=k`` **set**
        ``seq.epoch = k``. This holds for ``model.fit(seq, initial_epoch=k)``
        (Keras 3's ``fit`` calls ``on_epoch_end()`` once before its first
        epoch, so it trains epoch ``e`` on the order of counter ``e + 1``,
        resumed or not) and for loops that do not make that extra call
        (epoch ``e`` on counter ``e``). Set it between epochs, not while
        Keras's workers are reading one.

        Examples
        --------
        >>> import tempfile, pathlib
        >>> from fitlab.data import make_synthetic_csv
        >>> path = make_synthetic_csv(pathlib.Path(tempfile.mkdtemp()) / "t.csv", rows=6, size=1)
        >>> run = CSVSequence(path, batch_size=6, shuffle=True, seed=1)
        >>> for _ in range(3):
        ...     run.on_epoch_end()
        >>> resumed = CSVSequence(path, batch_size=6, shuffle=True, seed=1)
        >>> resumed.epoch = 3  # before model.fit(resumed, initial_epoch=3, ...)
        >>> resumed.rows_of_batch(0).tolist() == run.rows_of_batch(0).tolist()
        True
        """
        return self._epoch

    @epoch.setter
    def epoch(self, value: int) -> None:
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
            raise ValueError(f"epoch must be an int >= 0, got {value!r}")
        self._epoch = int(value)
        if self.shuffle:
            self._order = self._permutation()

    @property
    def rows(self) -> int:
        """The number of data rows (bad rows skipped with ``on_bad_row="skip"`` not counted).

        Examples
        --------
        >>> import tempfile, pathlib
        >>> from fitlab.data import make_synthetic_csv
        >>> path = make_synthetic_csv(pathlib.Path(tempfile.mkdtemp()) / "t.csv", rows=5, size=1)
        >>> CSVSequence(path, batch_size=2).rows
        5
        """
        return len(self._index)

    def rows_of_batch(self, i: int) -> np.ndarray:
        """Positions (in file order, 0-based among data rows) of batch ``i``'s rows.

        Examples
        --------
        >>> import tempfile, pathlib
        >>> from fitlab.data import make_synthetic_csv
        >>> path = make_synthetic_csv(pathlib.Path(tempfile.mkdtemp()) / "t.csv", rows=5, size=1)
        >>> [CSVSequence(path, batch_size=2).rows_of_batch(i).tolist() for i in range(3)]
        [[0, 1], [2, 3], [4]]
        """
        stop = min((i + 1) * self.batch_size, len(self._index))
        if self._order is None:
            return np.arange(i * self.batch_size, stop)
        return self._order[i * self.batch_size : stop]

    def _register_worker(self) -> None:
        if getattr(self, "_registered", None) != os.getpid():
            self._registered = os.getpid()  # this forked copy only
            self._guard.register()

    # -- reading ----------------------------------------------------------------
    def _images(self, rows: np.ndarray) -> np.ndarray:
        if self._cache is None:
            return self._read(rows)
        missing = rows[self._filled[rows] == 0]
        if len(missing):
            self._cache[missing] = self._read(missing)
            self._filled[missing] = 1  # after the data: readers never see half a row
        return self._cache[rows]

    def _read(self, rows: np.ndarray) -> np.ndarray:
        index = self._index
        if os.fstat(self._fd).st_size != index.file_size:
            raise CSVFormatError(
                self.path, None, "the file changed size since this CSVSequence indexed it",
                "Make a new CSVSequence of it.",
            )  # fmt: skip
        offsets, lengths = index.offsets[rows].tolist(), index.lengths[rows].tolist()
        blob = bytearray(len(csvrows.PAD) + sum(lengths) + len(rows))
        blob[: len(csvrows.PAD)] = csvrows.PAD
        view = memoryview(blob)
        spans = []
        pos = len(csvrows.PAD)
        for offset, length in zip(offsets, lengths, strict=True):
            os.preadv(self._fd, [view[pos : pos + length]], offset)
            spans.append((pos, length))
            pos += length
            blob[pos] = 10
            pos += 1
        images = csvrows.decode_joined(blob, len(rows), index.values)
        if images is None:  # locate the bad row precisely, and raise
            lines = index.lines[rows].tolist()
            last = len(index) - 1
            parts = [bytes(view[p : p + n]) for p, n in spans]
            view.release()
            images, _, _ = csvrows.decode_rows(
                parts, index.values, self.path, lines,
                cut_off=[index.cut_off and r == last for r in rows.tolist()],
            )  # fmt: skip
        return images

    def _drop_bad_rows(self) -> None:
        """``on_bad_row="skip"``: parse every row once and leave the bad ones out."""
        index = self._index
        keep = np.ones(len(index), dtype=bool)
        for start in range(0, len(index), 32):
            rows = np.arange(start, min(start + 32, len(index)))
            try:
                self._read(rows)
                continue
            except CSVFormatError:
                pass
            for r in rows.tolist():
                try:
                    self._read(np.array([r]))
                except CSVFormatError as exc:
                    keep[r] = False
                    self.skipped.append(exc)
        index.keep(keep)

    def _encode_labels(self, on_bad_row: str) -> np.ndarray:
        index = self._index
        codes = label_codes(index.labels, self.classes)
        unknown = np.flatnonzero(codes < 0)
        if len(unknown):
            errors = [
                CSVFormatError(
                    self.path,
                    int(index.lines[r]),
                    unknown_label_reason(index.labels[r], self.classes),
                    LABEL_ADVICE,
                )
                for r in unknown.tolist()
            ]
            if on_bad_row == "raise":
                raise errors[0]
            self.skipped += errors
            index.keep(codes >= 0)
            codes = codes[codes >= 0]
        return codes.astype(np.int32)

    def _row_weights(self, weights) -> np.ndarray | None:
        if weights is None:
            return None
        if isinstance(weights, Mapping):
            unknown = set(weights) - set(self.classes)
            if unknown:
                raise ValueError(
                    f"sample_weights names classes this CSV does not have: {sorted(unknown)}; "
                    f"the classes are {self.classes}"
                )
            per_class = np.array([float(weights.get(c, 1.0)) for c in self.classes], np.float32)
            return per_class[self._codes]
        per_row = np.asarray(weights, dtype=np.float32).reshape(-1)
        if len(per_row) != len(self._index):
            raise ValueError(
                f"sample_weights has {len(per_row)} weights but {self.path} has "
                f"{len(self._index)} data rows: give one weight per row, in file order"
            )
        return per_row

    def _permutation(self) -> np.ndarray:
        return np.random.default_rng([self.seed, self._epoch]).permutation(len(self._index))

    def _make_cache(self) -> None:
        n, values = len(self._index), self._index.values
        # An anonymous MAP_SHARED mapping: forked workers share it; pages cost
        # memory only once written.
        self._cache_map = mmap.mmap(-1, n * values + n)
        self._cache = np.frombuffer(self._cache_map, np.uint8, n * values).reshape(n, values)
        self._filled = np.frombuffer(self._cache_map, np.uint8, n, offset=n * values)

    def __getstate__(self):
        # Pickled (a "spawn" worker): reopen the file, start a private cache.
        state = self.__dict__.copy()
        for key in ("_fd", "_cache", "_filled", "_cache_map", "_guard"):
            state.pop(key, None)
        state["_had_cache"] = self._cache is not None
        return state

    def __setstate__(self, state):
        had_cache = state.pop("_had_cache")
        self.__dict__.update(state)
        self._fd = os.open(self._plain, os.O_RDONLY)
        weakref.finalize(self, _close, self._fd, os.getpid(), None)
        self._cache = self._filled = None
        self._guard = None
        if had_cache:
            self._make_cache()

    def __repr__(self) -> str:
        return (
            f"CSVSequence({str(self.path)!r}, rows={self.rows}, batch_size={self.batch_size}, "
            f"classes={len(self.classes)}, shuffle={self.shuffle}, cache={self._cache is not None})"
        )
