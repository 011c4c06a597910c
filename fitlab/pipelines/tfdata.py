"""The tutorial's CSV as a ``tf.data`` pipeline: parallel parsing, shuffling, prefetching.

::

    TextLineDataset ─▶ (line number, line) ─▶ drop blank lines ─▶ [shuffle lines]
      ─▶ batch ─▶ parse (parallel map) ─▶ [cache ─▶ shuffle rows] ─▶ [repeat] ─▶ [augment]
      ─▶ prefetch

Rows are shuffled once a pass: as lines before parsing, or with ``cache=True``
as parsed rows after the cache (filled on the first pass, then reused). With a
``seed`` each pass's shuffle is seeded from the seed and the pass's epoch
number, so a resumed run can replay the orders (``first_epoch``).

The parse runs the same algorithm as :mod:`fitlab.data.csvrows` in
TensorFlow ops: the value parts of a batch of lines are joined into one
string, ``decode_raw`` turns it into bytes, ``tf.where`` finds the separators
and lookup tables turn the four bytes before each separator into its value.
The labels become class indices through :func:`fitlab.data.labels.label_codes`
(a small ``tf.py_function``), as in every other reader. The same counts prove
the batch clean; when they do not (or a label is unknown or empty), the batch
goes to :func:`fitlab.data.csvrows.strict_values` through a
``tf.py_function``, which either parses valid odd spellings (``0255``) or
raises a :class:`~fitlab.CSVFormatError` naming the file and the
line: iteration stops with that message (TensorFlow raises it as a
``tf.errors.OpError`` carrying the message), and no corrupt batch is yielded.
What is wrong with the file as a whole (no rows, a damaged ``.csv.gz``, a bad
label when the classes are read from the file) raises
:class:`~fitlab.CSVFormatError` itself, when the dataset is made.
(Why not ``decode_csv`` or ``tf.strings.split``: see ``docs/measurements.md``.)

TensorFlow by nature: where it cannot be imported (JAX without TensorFlow),
importing this module raises :func:`fitlab.config.needs_tensorflow`'s one-line
``ImportError``; :class:`~fitlab.CSVSequence` feeds every backend.

Examples
--------
>>> import tempfile, pathlib
>>> from fitlab.data import make_synthetic_csv
>>> path = make_synthetic_csv(pathlib.Path(tempfile.mkdtemp()) / "t.csv", rows=5, size=4)
>>> ds = csv_dataset(path, batch_size=2, size=4)
>>> [tuple(x.shape) for x, y in ds]
[(2, 4, 4, 3), (2, 4, 4, 3), (1, 4, 4, 3)]
"""

from __future__ import annotations

import itertools
import math
import numbers
import os
from collections.abc import Callable, Sequence

import numpy as np

from fitlab.config import needs_tensorflow

try:
    import tensorflow as tf
except ImportError as exc:  # on JAX without TensorFlow: say so in one line
    raise needs_tensorflow("csv_dataset (a tf.data pipeline)") from exc

from fitlab.data import csvrows
from fitlab.data.labels import classes_of, encode_labels, label_codes
from fitlab.data.rowindex import is_gzip
from fitlab.pipelines.generator import check_batch_size
from fitlab.pipelines.meter import InputMeter, rows_in

AUTOTUNE = tf.data.AUTOTUNE
_BLANK = "[ \t\r\x0b\x0c]*"
# What to do about a bad row: csv_dataset can neither skip rows nor infer the size.
ROW_ADVICE = (
    "Fix or delete that row (csv_dataset cannot skip rows: CSVSequence and load_csv "
    "can, with on_bad_row='skip')."
)
LABEL_ADVICE = (
    "Pass classes= naming every label, or fix or delete that row (csv_dataset cannot skip "
    "rows: CSVSequence and load_csv can, with on_bad_row='skip')."
)


def csv_dataset(
    path: str | os.PathLike,
    batch_size: int = 32,
    *,
    classes: Sequence[str] | None = None,
    one_hot: bool = True,
    shuffle_buffer: int = 0,
    seed: int | None = None,
    cache: bool = False,
    repeat: bool = False,
    augment: Callable | None = None,
    size: int = 64,
    meter: InputMeter | None = None,
    first_epoch: int = 0,
) -> tf.data.Dataset:
    """A ``tf.data.Dataset`` of ``(images uint8 (b, size, size, 3), labels)`` from a CSV.

    Parameters
    ----------
    path : path
        The CSV, plain or gzip-compressed (recognised by its magic bytes).
        CRLF line ends, a UTF-8 BOM and blank lines are accepted.
    batch_size : int
    classes : sequence of str, optional
        Class order; default :func:`fitlab.classes_from_csv` of this
        file. Pass the training file's classes to a test pipeline.
    one_hot : bool
        ``float32`` one-hot labels, or ``int32`` class indices.
    shuffle_buffer : int
        Shuffle rows through a buffer of this many (0: file order). Reshuffled
        every epoch, from ``seed``.
    seed : int, optional
        With a ``seed``, every pass over the rows (each ``iter()``, and each
        repetition with ``repeat=True``) is one epoch, shuffled from ``seed``
        and that epoch's number: the dataset's first pass is ``first_epoch``,
        the next ``first_epoch + 1``, and so on. Without one, TensorFlow
        reshuffles from its own random state, which a new process cannot
        continue.
    cache : bool
        Keep the parsed ``uint8`` rows in memory after the first pass.
    repeat : bool
        Repeat forever (give ``fit`` a ``steps_per_epoch``); otherwise one
        iteration is exactly one pass over the rows, ``ceil(N / batch_size)``
        batches, the last one partial.
    augment : callable, optional
        A Keras layer (called with ``training=True`` on ``float32`` 0–255
        images) or a function of a batch, mapped in parallel.
    size : int
        Image side; each row must have ``size × size × 3`` values.
    meter : InputMeter, optional
        Gets the time the consumer waited for each batch, measured on the
        consumer's side of the prefetch (see :mod:`fitlab.pipelines.meter`).
    first_epoch : int
        The epoch number of the dataset's first pass (see ``seed``). To resume
        a run at ``initial_epoch=k`` in a new process with the row orders the
        uninterrupted run had, make its dataset with ``first_epoch=k`` and the
        same ``seed`` and ``shuffle_buffer`` (TensorFlow's global seed plays
        no part in these orders): ``fit`` reads one pass per epoch
        (under a distribution strategy also one batch of a pass before the
        first epoch, in both runs alike). A pass counts from its first batch,
        even if abandoned. With ``repeat=True`` passes are counted, not
        ``fit``'s epochs: ``first_epoch=k`` is right when ``steps_per_epoch``
        is one pass. Without shuffling every pass is in file order and
        ``first_epoch`` changes nothing.

    Raises
    ------
    CSVFormatError
        Here: a file with no rows, a damaged ``.csv.gz``, a row with no label
        (when ``classes`` is omitted). While iterating, a bad row stops the
        iteration with a ``tf.errors.OpError`` carrying the
        :class:`~fitlab.CSVFormatError` message (file, line, what to do).
    ValueError
        A bad argument; ``first_epoch`` other than 0 when rows are shuffled
        without a ``seed`` (there is no order to replay).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from fitlab.data import make_synthetic_csv
    >>> path = make_synthetic_csv(pathlib.Path(tempfile.mkdtemp()) / "t.csv", rows=5, size=2)
    >>> ds = csv_dataset(path, batch_size=4, size=2, one_hot=False, shuffle_buffer=5, seed=0)
    >>> int(ds.cardinality()), sorted(int(code) for _, y in ds for code in y)
    (2, [0, 0, 1, 2, 2])

    Passes 2 and 3 of a run, replayed by the dataset of a run resumed at epoch 2:

    >>> def labels(ds):
    ...     return [int(code) for _, y in ds for code in y]
    >>> ds = csv_dataset(path, batch_size=4, size=2, one_hot=False, shuffle_buffer=5, seed=0)
    >>> uninterrupted = [labels(ds) for epoch in range(4)]
    >>> resumed = csv_dataset(
    ...     path, batch_size=4, size=2, one_hot=False, shuffle_buffer=5, seed=0, first_epoch=2
    ... )
    >>> [labels(resumed) for epoch in range(2, 4)] == uninterrupted[2:]
    True
    """
    check_batch_size(batch_size)
    if shuffle_buffer < 0:
        raise ValueError(f"shuffle_buffer must be >= 0, got {shuffle_buffer}")
    epochs = _first_epoch_counter(first_epoch, shuffle_buffer, seed)
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no such CSV: {path}")
    compressed = is_gzip(path)
    # A whole pass when the row count or the classes are needed, and always over a
    # .csv.gz: tf.data's own error for a damaged one names no file.
    row_count, labels = _scan(
        path, labels=classes is None, whole=not repeat or compressed or classes is None
    )
    if not row_count:
        raise csvrows.no_rows_error(path)
    classes = list(classes) if classes is not None else classes_of(labels)
    parse = _batch_parser(path, classes, size, one_hot)

    compression = "GZIP" if compressed else ""
    lines = tf.data.TextLineDataset(path, compression_type=compression, buffer_size=1 << 20)
    rows = tf.data.Dataset.zip(tf.data.Dataset.counter(start=1), lines).filter(_not_blank)
    if cache:
        ds = rows.batch(batch_size).map(parse, num_parallel_calls=AUTOTUNE).cache()
        if shuffle_buffer:
            ds = _shuffled(ds.unbatch(), shuffle_buffer, seed, epochs).batch(batch_size)
    else:
        if shuffle_buffer:
            rows = _shuffled(rows, shuffle_buffer, seed, epochs)
        ds = rows.batch(batch_size).map(parse, num_parallel_calls=AUTOTUNE)
    if repeat:
        ds = ds.repeat()
    else:
        # Filtering blank lines hides the length from tf.data; without it `fit`
        # takes a phantom step at the end of every epoch (one more optimizer
        # iteration, one more dropout seed) and the progress bar has no target.
        batches = math.ceil(row_count / batch_size)
        ds = ds.apply(tf.data.experimental.assert_cardinality(batches))
    if augment is not None:
        ds = ds.map(_augmenter(augment), num_parallel_calls=AUTOTUNE)
    ds = ds.prefetch(AUTOTUNE)
    if meter is not None:
        ds = _metered(ds, meter)
    return ds


def _first_epoch_counter(first_epoch, shuffle_buffer: int, seed: int | None):
    """``next_epoch()``: the epoch number of the pass starting now; None: no seeded shuffle."""
    if isinstance(first_epoch, bool) or not isinstance(first_epoch, numbers.Integral):
        raise ValueError(f"first_epoch must be an int >= 0, got {first_epoch!r}")
    if first_epoch < 0:
        raise ValueError(f"first_epoch must be an int >= 0, got {first_epoch}")
    if not shuffle_buffer:
        return None  # file order every pass: nothing to count
    if seed is None:
        if first_epoch:
            raise ValueError(
                f"first_epoch={first_epoch} needs a seed: without one the shuffled orders "
                "cannot be replayed. Pass the seed of the run you resume."
            )
        return None
    return itertools.count(int(first_epoch)).__next__


def _shuffled(ds: tf.data.Dataset, buffer: int, seed: int | None, next_epoch) -> tf.data.Dataset:
    """``ds`` shuffled anew on every pass: from ``seed`` and the pass's epoch number if counted.

    The epoch number lives in Python (``next_epoch``), read once a pass by a
    one-element dataset whose element ``flat_map`` expands into that pass's
    shuffle. ``ds`` itself (a cache included) is made once and only iterated again.
    """
    if next_epoch is None:
        return ds.shuffle(buffer, seed=seed)
    seed = tf.constant(seed, tf.int64)

    def epoch_number(_):
        return tf.reshape(tf.py_function(next_epoch, [], tf.int64), [])

    def one_pass(epoch):
        # A Philox hash of (seed, epoch): distinct pairs give unrelated orders.
        mixed = tf.random.stateless_uniform(
            [], tf.stack([seed, epoch]), minval=None, maxval=None, dtype=tf.int64
        )
        # This function's graph inherits TensorFlow's global seed, which `shuffle` would pair
        # with `mixed`; with a global seed of 0 it even fails (it tests the pair as a Python
        # bool). Without it the order is (seed, epoch)'s alone.
        tf.compat.v1.get_default_graph().seed = None
        return ds.shuffle(buffer, seed=mixed, reshuffle_each_iteration=False)

    return tf.data.Dataset.from_tensors(0).map(epoch_number).flat_map(one_pass)


def _scan(path: str, labels: bool, whole: bool) -> tuple[int, set[str]]:
    """``(rows, labels)`` of a CSV: every row when ``whole``, else the first (0 or 1).

    Labels are read only when ``labels``; a bad one raises :class:`~fitlab.CSVFormatError`.
    """
    count, names = 0, set()
    for line_no, line, _ in csvrows.iter_lines(path):
        count += 1
        if labels:
            names.add(csvrows.split_label(line, path, line_no, advice=ROW_ADVICE)[0])
        if not whole:
            break
    return count, names


def _not_blank(line_no, line):
    bom_line = tf.logical_and(line_no == 1, tf.strings.regex_full_match(line, "\ufeff" + _BLANK))
    return tf.logical_not(tf.logical_or(bom_line, tf.strings.regex_full_match(line, _BLANK)))


def _batch_parser(path: str, classes: list[str], size: int, one_hot: bool):
    """``parse(line_nos, lines) -> (images, labels)`` for one batch; see the module docstring."""
    values = csvrows.values_for(size)
    hi = tf.constant(csvrows.HI_TABLE.astype(np.int32))
    lo = tf.constant(csvrows.LO_TABLE.astype(np.int32))
    pad = csvrows.PAD.decode()
    # The labels arrive as bytes: look them up among the class names as bytes.
    class_bytes = [name.encode("utf-8") for name in classes]

    def known_codes(labels):
        # The one label encoder, fitlab.data.labels; -1 (unknown) sends the
        # batch to the strict path, which names the file and the line.
        return label_codes(labels.numpy().tolist(), class_bytes).astype(np.int32)

    def strict(line_nos, lines):
        # The precise path: exact values for odd but valid rows, or CSVFormatError(file, line).
        line_nos, lines = line_nos.numpy().tolist(), lines.numpy().tolist()
        images = np.empty((len(lines), values), dtype=np.uint8)
        labels = []
        for i, (line_no, line) in enumerate(zip(line_nos, lines, strict=True)):
            if line_no == 1 and line.startswith(csvrows.BOM):
                line = line[len(csvrows.BOM) :]
            label, part = csvrows.split_label(line, path, line_no, advice=ROW_ADVICE)
            images[i] = csvrows.strict_values(part, values, path, line_no, advice=ROW_ADVICE)
            labels.append(label)
        codes = encode_labels(labels, classes, path, line_nos, advice=LABEL_ADVICE)
        codes = codes.astype(np.int32)
        return images.reshape(-1, size, size, 3), codes

    def parse(line_nos, lines):
        n = tf.shape(lines)[0]
        # Labels from each line's head (a longer label fails the class match: slow path).
        head = tf.strings.substr(lines, 0, 256)
        head = tf.where(line_nos == 1, tf.strings.regex_replace(head, "^\ufeff", ""), head)
        labels = tf.strings.regex_replace(head, ",.*", "")
        rest = tf.strings.regex_replace(lines, "^[^,]*,", "", replace_global=False)
        blob = tf.strings.join([pad, tf.strings.reduce_join(rest, separator="\n"), "\n"])
        # One DFA pass proves every byte a digit, a comma or a row end.
        clean = tf.strings.regex_full_match(blob, "[0-9,\n]*")
        b = tf.cast(tf.io.decode_raw(blob, tf.uint8), tf.int32)
        ends = tf.cast(tf.where(b[len(pad) :] < 48)[:, 0], tf.int32) + len(pad)  # separators
        clean = tf.logical_and(clean, tf.size(ends) == n * values)
        row_ends = tf.gather(b, ends[values - 1 :: values])
        clean = tf.logical_and(clean, tf.reduce_all(row_ends == 10))  # `values` fields a row
        digits = tf.gather(hi, tf.gather(b, ends - 1) * 256 + tf.gather(b, ends - 2))
        hundreds = tf.gather(lo, tf.gather(b, ends - 3) * 256 + tf.gather(b, ends - 4))
        low = tf.bitwise.bitwise_and(digits, 0x7FFF)
        pixels = low + hundreds * tf.bitwise.right_shift(digits, 15)
        codes = tf.reshape(tf.py_function(known_codes, [labels], tf.int32), [n])
        clean = tf.logical_and(clean, tf.reduce_all(pixels <= 255))
        clean = tf.logical_and(clean, tf.reduce_all(codes >= 0))  # every label a class

        def fast():
            return tf.reshape(tf.cast(pixels, tf.uint8), [n, size, size, 3]), codes

        def slow():
            images, codes = tf.py_function(strict, [line_nos, lines], [tf.uint8, tf.int32])
            return tf.reshape(images, [n, size, size, 3]), tf.reshape(codes, [n])

        images, codes = tf.cond(clean, fast, slow)
        targets = tf.one_hot(codes, len(classes), dtype=tf.float32) if one_hot else codes
        return images, targets

    return parse


def _augmenter(augment):
    import keras

    def apply(images, targets):
        x = tf.cast(images, tf.float32)
        x = augment(x, training=True) if isinstance(augment, keras.layers.Layer) else augment(x)
        return x, targets

    return apply


def _metered(ds: tf.data.Dataset, meter: InputMeter) -> tf.data.Dataset:
    """Time each ``GetNext`` on the consumer's side of the prefetch.

    ``zip`` pulls its inputs in order inside the consumer's call: first a
    timestamp (the request), then the batch (the wait); the map after it,
    sequential and stateful, runs in the same call and records the gap.
    """

    def record(waited, *batch):
        meter.add(float(waited), images=rows_in(batch))
        return np.int32(0)

    def done(asked, batch):
        waited = tf.timestamp() - asked
        recorded = tf.py_function(record, [waited, *tf.nest.flatten(batch)], tf.int32)
        with tf.control_dependencies([recorded]):
            return tf.nest.map_structure(tf.identity, batch)

    asked = tf.data.Dataset.from_tensors(0).repeat().map(lambda _: tf.timestamp())
    return tf.data.Dataset.zip(asked, ds).map(done)
