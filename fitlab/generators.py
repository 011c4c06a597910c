"""Stream the tutorial's CSV into Keras: a fixed generator and a ``PyDataset``.

``csv_image_generator`` is the tutorial's generator with its bugs fixed; it
keeps the shape a reader can follow line by line. ``CSVSequence`` is what to
use for real work: a ``keras.utils.PyDataset`` with exact epochs, per-epoch
row shuffling, Keras's worker threads or processes, bounded memory and an
opt-in cache. Both parse with :mod:`fitlab.csvrows`.

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

import math
import mmap
import multiprocessing
import os
import sys
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from itertools import islice
from pathlib import Path

import keras
import numpy as np

from fitlab import csvrows
from fitlab.csvrows import CSVFormatError
from fitlab.meter import InputMeter

MODES = ("train", "eval")


def csv_image_generator(
    input_path: str | os.PathLike,
    bs: int,
    lb,
    mode: str = "train",
    aug=None,
    *,
    on_bad_row: str = "raise",
    meter: InputMeter | None = None,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield ``(images, one-hot labels)`` batches read from a CSV, as the tutorial did.

    The tutorial's shape is kept: open the file, loop, fill a batch line by
    line, one-hot the labels with ``lb``, optionally augment, yield. The
    tutorial's version got three things wrong, all fixed here:

    1. In ``"eval"`` mode it never stopped: at the end of the file it rewound,
       read the first row and threw it away (``break`` before appending), so
       every pass after the first lost row 1.
    2. When the row count divided by ``bs`` it yielded an *empty* batch at the
       end of the file, which made ``predict`` fail on its last step.
    3. It parsed with ``[int(x) for x in line[1:]]`` into ``float32``: slow
       (about 1/10 of this parser's speed), and it accepted ``" 12"``,
       ``"+12"``, ``"1_2"``, ``300`` or ``-5`` as pixel values.

    Here ``"train"`` loops forever and wraps at the end of the file without
    losing or repeating a row (the batch that straddles the end is filled
    from the start); ``"eval"`` yields every row exactly once — ``ceil(N / bs)``
    batches, the last one partial, never an empty one — and then stops. The
    collected lines of a batch are parsed together by the fast, strict parser
    of :mod:`fitlab.csvrows`; a bad row raises :class:`CSVFormatError` naming
    the file and line, or, with ``on_bad_row="skip"``, is skipped with a
    :class:`fitlab.csvrows.BadRowsWarning`.

    Because ``"train"`` mode never ends, Keras's finite-generator trap (only
    two batches per epoch after the first) cannot happen; give ``fit`` its
    ``steps_per_epoch = ceil(N / bs)``.

    Parameters
    ----------
    input_path : path
        The CSV (plain or ``.csv.gz``).
    bs : int
        Batch size.
    lb : LabelBinarizer or sequence of str
        A fitted ``sklearn.preprocessing.LabelBinarizer``, or the class names
        (one-hot ``float32`` in that order). A label it does not know raises
        :class:`CSVFormatError` naming the label, the file and the line.
    mode : {"train", "eval"}
    aug : callable or ImageDataGenerator, optional
        Called on the ``uint8`` batch (a Keras layer with ``training=True``),
        or a Keras-2 style object with ``.flow``. Images are then ``float32``
        in 0–255.
    on_bad_row : {"raise", "skip"}
    meter : InputMeter, optional
        Gets the time each ``next()`` took (see :mod:`fitlab.meter`).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from fitlab.data import make_synthetic_csv
    >>> path = make_synthetic_csv(pathlib.Path(tempfile.mkdtemp()) / "t.csv", rows=5, size=4)
    >>> classes = ["daffodil", "lilyvalley", "snowdrop"]
    >>> [x.shape[0] for x, y in csv_image_generator(path, 2, classes, mode="eval")]
    [2, 2, 1]
    """
    if mode not in MODES:
        raise ValueError(f"mode must be 'train' or 'eval', got {mode!r}")
    _check_batch_size(bs)
    csvrows.check_on_bad_row(on_bad_row)
    encode = _label_encoder(lb)
    rows = _Rows(input_path, forever=mode == "train", on_bad_row=on_bad_row)
    values = None
    while True:
        started = time.perf_counter()
        images, labels, lines = [], [], []
        while len(labels) < bs:  # fill a batch line by line (parsed together: much faster)
            batch = list(islice(rows, bs - len(labels)))
            if not batch:
                break  # end of the file in "eval" mode
            if values is None:
                values = csvrows.infer_values(batch[0][2], input_path, batch[0][0])
            parsed, kept, errors = csvrows.decode_rows(
                [row[2] for row in batch], values, input_path, [row[0] for row in batch],
                on_bad_row=on_bad_row, cut_off=[not row[3] for row in batch],
            )  # fmt: skip
            rows.skip(errors)
            images.append(parsed)
            labels += [row[1] for row, k in zip(batch, kept, strict=True) if k]
            lines += [row[0] for row, k in zip(batch, kept, strict=True) if k]
            rows.progress(kept.any())
        rows.report()
        if not labels:
            return  # "eval": every row was yielded once; never an empty batch
        side = csvrows.side_of(values)
        images = np.concatenate(images).reshape(-1, side, side, 3)
        targets = encode(labels, input_path, lines)
        if aug is not None:
            images, targets = apply_augmentation(aug, images, targets)
        if meter is not None:
            meter.add(time.perf_counter() - started, images=len(images))
        yield images, targets


class _Rows:
    """``(line_no, label, values_part, complete)`` for each row, pass after pass if ``forever``.

    Bad rows are raised or, with ``on_bad_row="skip"``, collected by
    :meth:`skip` and reported by :meth:`report` as a ``BadRowsWarning`` (the
    warnings filter shows a repeat of the same rows on a later pass once).
    """

    def __init__(self, path, forever: bool, on_bad_row: str):
        self.path, self.forever, self.on_bad_row = path, forever, on_bad_row
        self.skipped: list[CSVFormatError] = []
        self.passes = 0  # completed passes over the file
        self._good_pass = 0
        self._iter = self._generate()

    def __iter__(self):
        return self

    def __next__(self):
        return next(self._iter)

    def skip(self, errors) -> None:
        if errors and self.on_bad_row == "raise":
            raise errors[0]
        self.skipped += errors

    def progress(self, any_good: bool) -> None:
        """Refuse to loop forever over a file whose every row is bad."""
        if any_good:
            self._good_pass = self.passes
        elif self.passes - self._good_pass >= 2:
            self.report()
            raise CSVFormatError(self.path, None, "no valid rows: every row is bad")

    def report(self) -> None:
        skipped, self.skipped = sorted(self.skipped, key=lambda e: e.line), []
        csvrows.report_skipped(self.path, skipped, stacklevel=4)

    def _generate(self):
        while True:
            rows = 0
            for line_no, line, complete in csvrows.iter_lines(self.path):
                try:
                    label, part = csvrows.split_label(line, self.path, line_no)
                except CSVFormatError as exc:
                    self.skip([exc])
                    continue
                rows += 1
                yield line_no, label, part, complete
            self.passes += 1
            if not self.forever:
                return
            if rows == 0:
                raise CSVFormatError(self.path, None, "no rows: nothing to loop over")


def _label_encoder(lb) -> Callable:
    """``encode(labels, path, lines)`` for a fitted LabelBinarizer or a list of class names."""
    if hasattr(lb, "classes_") and hasattr(lb, "transform"):
        classes = [str(c) for c in lb.classes_]

        def encode(labels, path, lines):
            csvrows.encode_labels(labels, classes, path, lines)  # unknown labels -> error
            return lb.transform(np.array(labels))

        return encode
    if isinstance(lb, str) or not isinstance(lb, Sequence | np.ndarray):
        raise TypeError(
            "lb must be a fitted sklearn LabelBinarizer or a sequence of class names, "
            f"got {type(lb).__name__}"
        )
    classes = [str(c) for c in lb]
    eye = np.eye(len(classes), dtype=np.float32)
    return lambda labels, path, lines: eye[csvrows.encode_labels(labels, classes, path, lines)]


def apply_augmentation(aug, images: np.ndarray, targets, sample_weights=None):
    """Augment one batch: a Keras-2 ``.flow`` object, a Keras layer, or any callable.

    Returns ``(images float32 0–255, targets)`` (order kept).
    """
    if hasattr(aug, "flow"):  # ImageDataGenerator: one batch, unshuffled
        batch = next(
            aug.flow(images.astype(np.float32), targets, batch_size=len(images), shuffle=False)
        )
        return np.asarray(batch[0], dtype=np.float32), batch[1]
    if isinstance(aug, keras.layers.Layer):
        out = aug(images.astype(np.float32), training=True)
    else:
        out = aug(images)
    return np.asarray(keras.ops.convert_to_numpy(out), dtype=np.float32), targets


def _check_batch_size(bs) -> None:
    if isinstance(bs, bool) or not isinstance(bs, int | np.integer) or bs < 1:
        raise ValueError(f"the batch size must be a positive integer, got {bs!r}")


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
        from keras.src.trainers.data_adapters import py_dataset_adapter

        ours = self.pids()
        stopped = 0
        for pool in list(py_dataset_adapter._DATA_POOLS):
            if any(worker.pid in ours for worker in getattr(pool, "_pool", ())):
                pool.terminate()
                stopped += 1
        return stopped

    def _run(self, token) -> None:
        while self._watch is not None and self._watch[2] is token:
            thread, anchor, _ = self._watch
            if not _on_stack(thread, anchor):
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


def _on_stack(thread: int, anchor) -> bool:
    frame = sys._current_frames().get(thread)
    while frame is not None:
        if frame is anchor:
            return True
        frame = frame.f_back
    return False


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
        from ``seed`` and the epoch number, so runs repeat and forked workers
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
        with a :class:`fitlab.csvrows.BadRowsWarning` and lists them in
        ``.skipped``. ``"raise"`` finds a bad row when its batch is read.
    meter : InputMeter, optional
        Gets each batch's loading time (see :mod:`fitlab.meter`).
    workers, use_multiprocessing, max_queue_size
        Passed to ``keras.utils.PyDataset``: how ``fit`` parallelises loading.

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
        _check_batch_size(batch_size)
        csvrows.check_on_bad_row(on_bad_row)
        _check_fork_safe(augment, use_multiprocessing)
        self.path = Path(path)
        self.batch_size = int(batch_size)
        self.one_hot, self.shuffle, self.augment, self.meter = one_hot, shuffle, augment, meter
        self.seed = int(np.random.SeedSequence(seed).entropy)
        self.epoch = 0
        temp = csvrows.plain_copy(self.path) if csvrows.is_gzip(self.path) else None
        self._plain = temp or self.path
        self._fd = os.open(self._plain, os.O_RDONLY)
        weakref.finalize(self, _close, self._fd, os.getpid(), temp)

        index = csvrows.index_rows(self._plain, shown=self.path, on_bad_row=on_bad_row)
        self.skipped: list[CSVFormatError] = list(index.errors)
        self._index = index
        if on_bad_row == "skip":
            self._drop_bad_rows()
        self.classes = list(classes) if classes is not None else sorted(set(index.labels))
        self._codes = self._encode_labels(on_bad_row)
        self.skipped.sort(key=lambda e: e.line or 0)
        csvrows.report_skipped(self.path, self.skipped)
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
        y = np.eye(len(self.classes), dtype=np.float32)[codes] if self.one_hot else codes
        if self.augment is not None:
            x, y = apply_augmentation(self.augment, x, y)
        batch = (x, y) if self._weights is None else (x, y, self._weights[rows])
        if self.meter is not None:
            background = self.workers > 1 or self.use_multiprocessing
            spent = time.perf_counter() - started
            self.meter.add(spent / self.workers if background else spent, images=len(x))
        return batch

    def on_epoch_begin(self) -> None:
        if self._guard is not None:
            self._guard.open_epoch(sys._getframe(1))

    def on_epoch_end(self) -> None:
        # Keras calls this after stopping its workers, so the next epoch's
        # (re-forked) workers all see the new order.
        if self._guard is not None:
            self._guard.close_epoch()
        self.epoch += 1
        if self.shuffle:
            self._order = self._permutation()

    def close(self) -> None:
        """Terminate any Keras worker processes still running for this dataset."""
        if self._guard is not None:
            self._guard.close_epoch()
            self._guard.stop_workers()

    def __enter__(self) -> CSVSequence:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- public helpers ---------------------------------------------------------
    @property
    def rows(self) -> int:
        """The number of data rows."""
        return len(self._index)

    def rows_of_batch(self, i: int) -> np.ndarray:
        """Positions (in file order, 0-based among data rows) of batch ``i``'s rows."""
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
                self.path, None,
                "the file changed size since this CSVSequence indexed it; make a new one",
            )  # fmt: skip
        offsets, lengths = index.offsets[rows].tolist(), index.lengths[rows].tolist()
        blob = bytearray(len(csvrows._PAD) + sum(lengths) + len(rows))
        blob[: len(csvrows._PAD)] = csvrows._PAD
        view = memoryview(blob)
        spans = []
        pos = len(csvrows._PAD)
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
        lookup = {name: i for i, name in enumerate(self.classes)}
        known = np.array([label in lookup for label in index.labels], dtype=bool)
        if not known.all():
            bad = np.flatnonzero(~known)
            errors = [
                CSVFormatError(
                    self.path,
                    int(index.lines[r]),
                    csvrows.unknown_label_reason(index.labels[r], self.classes),
                )  # fmt: skip
                for r in bad.tolist()
            ]
            if on_bad_row == "raise":
                raise errors[0]
            self.skipped += errors
            index.keep(known)
        return np.array([lookup[label] for label in index.labels], dtype=np.int32)

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
        return np.random.default_rng([self.seed, self.epoch]).permutation(len(self._index))

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
