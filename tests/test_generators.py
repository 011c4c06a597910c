"""csv_image_generator and CSVSequence: exact passes, wrapping, shuffling, labels, cache."""

from __future__ import annotations

import math
import pickle
import time

import keras
import numpy as np
import pytest
from resuming import assert_resuming_is_exact

from fitlab import (
    BadRowsWarning,
    CSVFormatError,
    CSVSequence,
    InputMeter,
    csv_image_generator,
    load_csv,
    make_synthetic_csv,
)
from fitlab.pipelines import is_endless

SIZE = 4
CLASSES = ["daffodil", "lilyvalley", "snowdrop"]  # sorted, as LabelBinarizer sorts them


@pytest.fixture
def csv10(tmp_path):
    return make_synthetic_csv(tmp_path / "ten.csv", rows=10, size=SIZE, seed=1)


def _label_binarizer(classes=CLASSES, **options):
    from sklearn.preprocessing import LabelBinarizer

    return LabelBinarizer(**options).fit(classes)


def _sleepy(seconds: float):
    """An augmentation that takes at least ``seconds`` a batch and changes nothing."""

    def augment(batch):
        time.sleep(seconds)
        return batch

    return augment


def _swap_digits(path) -> None:
    """Rewrite ``path`` in place, same size, every 0 and 1 swapped: other valid values."""
    path.write_bytes(path.read_bytes().translate(bytes.maketrans(b"01", b"10")))


# -- csv_image_generator ---------------------------------------------------------------
@pytest.mark.parametrize("rows, bs, sizes", [(10, 4, [4, 4, 2]), (8, 4, [4, 4]), (3, 5, [3])])
def test_eval_mode_yields_every_row_once_never_an_empty_batch(tmp_path, rows, bs, sizes):
    path = make_synthetic_csv(tmp_path / "t.csv", rows=rows, size=SIZE)
    batches = list(csv_image_generator(path, bs, _label_binarizer(), mode="eval"))
    assert [len(x) for x, _ in batches] == sizes == [len(y) for _, y in batches]
    images, labels = load_csv(path)
    np.testing.assert_array_equal(np.concatenate([x for x, _ in batches]), images)
    onehot = np.concatenate([y for _, y in batches])
    assert np.array(CLASSES)[onehot.argmax(1)].tolist() == labels.tolist()


def test_train_mode_wraps_without_losing_or_repeating_a_row(csv10):
    generator = csv_image_generator(csv10, 4, CLASSES, mode="train")
    seen = np.concatenate([next(generator)[0] for _ in range(5)])  # 20 rows: two passes
    images, _ = load_csv(csv10)
    np.testing.assert_array_equal(seen, np.concatenate([images, images]))


def test_generator_with_class_names_gives_float32_one_hot_rows(csv10):
    _, labels = load_csv(csv10)
    targets = np.concatenate([y for _, y in csv_image_generator(csv10, 4, CLASSES, mode="eval")])
    assert targets.dtype == np.float32 and targets.shape == (10, 3)
    np.testing.assert_array_equal(targets, np.eye(3)[[CLASSES.index(c) for c in labels]])


@pytest.mark.parametrize(
    "classes, options",
    [
        (CLASSES, {}),
        (["daffodil", "snowdrop"], {}),  # two classes: LabelBinarizer gives one column
        (CLASSES, {"neg_label": -1, "pos_label": 2}),
        (CLASSES, {"sparse_output": True}),
    ],
)
def test_generator_targets_are_exactly_what_the_label_binarizer_gives(tmp_path, classes, options):
    path = make_synthetic_csv(tmp_path / "t.csv", rows=7, size=SIZE, classes=classes)
    lb = _label_binarizer(classes, **options)
    _, labels = load_csv(path)
    batches = list(csv_image_generator(path, 3, lb, mode="eval"))
    assert [y.shape for _, y in batches] == [
        lb.transform(labels[i : i + 3]).shape for i in range(0, 7, 3)
    ]
    for i, (_, y) in enumerate(batches):
        expected = lb.transform(labels[3 * i : 3 * i + 3])
        assert type(y) is type(expected) and y.dtype == expected.dtype
        assert (y != expected).sum() == 0  # works for sparse and dense alike


def test_generator_calls_label_binarizer_transform_once_not_per_batch(csv10):
    from sklearn.preprocessing import LabelBinarizer

    class Counting(LabelBinarizer):
        calls = 0

        def transform(self, y):
            Counting.calls += 1
            return super().transform(y)

    lb = Counting().fit(CLASSES)
    generator = csv_image_generator(csv10, 2, lb, mode="train")
    for _ in range(12):  # more than two passes over the file
        next(generator)
    assert Counting.calls == 1


def test_generator_with_a_label_binarizer_names_an_unknown_label_file_and_line(csv10):
    lb = _label_binarizer(["daffodil", "snowdrop"])
    generator = csv_image_generator(csv10, 4, lb, mode="eval")
    with pytest.raises(
        CSVFormatError, match=r"ten\.csv, line 3: unknown label 'lilyvalley'"
    ) as info:
        next(generator)
    assert (info.value.path, info.value.line) == (str(csv10), 3)


def test_generator_refuses_lb_that_is_neither_binarizer_nor_class_names(csv10):
    with pytest.raises(TypeError, match="LabelBinarizer or a sequence of class names, got str"):
        next(csv_image_generator(csv10, 4, "daffodil"))


def test_generator_augments_with_a_callable_or_a_flow_object(csv10):
    x, _ = next(csv_image_generator(csv10, 4, CLASSES, mode="eval", aug=lambda b: b / 255.0))
    images, _ = load_csv(csv10)
    np.testing.assert_allclose(x, images[:4] / 255.0)

    class Keras2Style:  # the tutorial's ImageDataGenerator interface
        def flow(self, x, y, batch_size, shuffle):
            yield 255.0 - x, y

    x, y = next(csv_image_generator(csv10, 4, CLASSES, mode="eval", aug=Keras2Style()))
    np.testing.assert_allclose(x, 255.0 - images[:4])
    assert x.dtype == np.float32 and y.shape == (4, 3)


def test_generator_skips_and_reports_bad_rows(csv10, tmp_path):
    lines = csv10.read_bytes().splitlines()
    lines[2] = lines[2] + b",7"  # too many values
    path = tmp_path / "bad.csv"
    path.write_bytes(b"\n".join(lines) + b"\n")
    with pytest.raises(CSVFormatError, match=r"line 3: 49 values"):
        list(csv_image_generator(path, 4, CLASSES, mode="eval"))
    with pytest.warns(BadRowsWarning, match=r"skipped 1 bad row\(s\) of .*line 3"):
        batches = list(csv_image_generator(path, 4, CLASSES, mode="eval", on_bad_row="skip"))
    assert [len(x) for x, _ in batches] == [4, 4, 1]  # the batch is topped up, nothing lost
    images, _ = load_csv(csv10)
    np.testing.assert_array_equal(np.concatenate([x for x, _ in batches]), np.delete(images, 2, 0))


def test_generator_refuses_to_loop_over_only_bad_rows(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_bytes(b"daffodil,1,2,300\nsnowdrop,300,1,1\n")
    generator = csv_image_generator(path, 2, CLASSES, mode="train", on_bad_row="skip")
    with pytest.warns(BadRowsWarning), pytest.raises(CSVFormatError, match="no valid rows"):
        next(generator)


def test_generator_meter_counts_batches_and_the_time_spent_making_them(csv10):
    meter = InputMeter()
    batches = csv_image_generator(csv10, 4, CLASSES, mode="eval", aug=_sleepy(0.05), meter=meter)
    assert [len(x) for x, _ in batches] == [4, 4, 2]
    assert (meter.batches, meter.images) == (3, 10)
    assert meter.wait_s >= 3 * 0.05  # each next() waited for its batch's augmentation


def test_generator_time_between_batches_is_not_a_wait(csv10):
    meter = InputMeter()
    for _ in csv_image_generator(csv10, 4, CLASSES, mode="eval", meter=meter):
        time.sleep(0.5)  # the consumer's own work: 1.5 s in all
    assert meter.batches == 3 and meter.wait_s < 0.5  # not even one pause counted


def test_train_mode_is_endless_and_eval_mode_is_not_with_or_without_a_meter(csv10):
    assert is_endless(csv_image_generator(csv10, 4, CLASSES, mode="train"))
    assert is_endless(csv_image_generator(csv10, 4, CLASSES, mode="train", meter=InputMeter()))
    assert not is_endless(csv_image_generator(csv10, 4, CLASSES, mode="eval"))
    assert not is_endless(csv_image_generator(csv10, 4, CLASSES, mode="eval", meter=InputMeter()))


def test_generator_checks_its_arguments(csv10):
    with pytest.raises(ValueError, match="mode must be 'train' or 'eval'"):
        next(csv_image_generator(csv10, 4, CLASSES, mode="test"))
    with pytest.raises(ValueError, match="positive integer"):
        next(csv_image_generator(csv10, 0, CLASSES))


# -- CSVSequence -------------------------------------------------------------------------
def _epoch(seq):
    return [seq[i] for i in range(len(seq))]


def test_sequence_is_one_exact_pass_in_file_order(csv10):
    seq = CSVSequence(csv10, batch_size=4)
    assert isinstance(seq, keras.utils.PyDataset)
    assert len(seq) == 3 and seq.rows == 10 and seq.classes == CLASSES
    batches = _epoch(seq)
    assert [len(x) for x, _ in batches] == [4, 4, 2]
    images, labels = load_csv(csv10)
    np.testing.assert_array_equal(np.concatenate([x for x, _ in batches]), images)
    y = np.concatenate([y for _, y in batches])
    assert y.dtype == np.float32 and np.array(CLASSES)[y.argmax(1)].tolist() == labels.tolist()
    with pytest.raises(IndexError):
        seq[3]


def test_sequence_reshuffles_rows_every_epoch_from_its_seed(tmp_path):
    path = make_synthetic_csv(tmp_path / "t.csv", rows=40, size=2)
    images, _ = load_csv(path)
    seq = CSVSequence(path, batch_size=8, shuffle=True, seed=7)
    orders = []
    for _ in range(3):
        epoch = np.concatenate([x for x, _ in _epoch(seq)])
        # rows, not only batches, move: match each row back to its file position
        orders.append(
            [int(np.flatnonzero((images == row).all(axis=(1, 2, 3)))[0]) for row in epoch]
        )
        seq.on_epoch_end()
    for order in orders:
        assert sorted(order) == list(range(40))
    assert orders[0] != orders[1] != orders[2]
    assert sorted(orders[0][:8]) != list(range(8))
    again = CSVSequence(path, batch_size=8, shuffle=True, seed=7)
    first = np.concatenate([x for x, _ in _epoch(again)])
    np.testing.assert_array_equal(first, images[orders[0]])


def _same_batches(a, b):
    assert len(a) == len(b)
    for batch_a, batch_b in zip(a, b, strict=True):
        for part_a, part_b in zip(batch_a, batch_b, strict=True):
            np.testing.assert_array_equal(part_a, part_b)


def test_setting_the_epoch_gives_that_epochs_order_also_to_copies(tmp_path):
    # Today: epoch is a plain attribute; setting it leaves epoch 0's order.
    path = make_synthetic_csv(tmp_path / "t.csv", rows=20, size=2)
    run = CSVSequence(path, batch_size=6, shuffle=True, seed=4, one_hot=False)
    first = _epoch(run)
    for _ in range(3):
        run.on_epoch_end()
    resumed = CSVSequence(path, batch_size=6, shuffle=True, seed=4, one_hot=False)
    resumed.epoch = np.int64(3)
    assert resumed.epoch == run.epoch == 3 and type(resumed.epoch) is int
    _same_batches(_epoch(resumed), _epoch(run))
    assert not np.array_equal(_epoch(resumed)[0][0], first[0][0])  # not epoch 0's order
    # A pickled copy ("spawn" workers) keeps the counter and its order; the count goes on.
    _same_batches(_epoch(pickle.loads(pickle.dumps(resumed))), _epoch(run))
    resumed.on_epoch_end()
    run.on_epoch_end()
    assert resumed.epoch == 4
    _same_batches(_epoch(resumed), _epoch(run))
    resumed.epoch = 0
    _same_batches(_epoch(resumed), first)
    plain = CSVSequence(path, batch_size=6)
    plain.epoch = 5  # no shuffling: stored, file order
    assert plain.epoch == 5 and plain.rows_of_batch(0).tolist() == list(range(6))


@pytest.mark.parametrize("bad", [-1, 1.5, "2", None, True])
def test_the_epoch_must_be_an_int_of_at_least_zero(csv10, bad):
    # Today: any value is taken.
    seq = CSVSequence(csv10, batch_size=4, shuffle=True, seed=1)
    with pytest.raises(ValueError, match="epoch must be an int >= 0"):
        seq.epoch = bad
    assert seq.epoch == 0


@pytest.fixture
def deterministic():
    import tensorflow as tf

    tf.config.experimental.enable_op_determinism()
    yield
    # No public switch back; leave the rest of the session as it was.
    from tensorflow.python.framework import config as tf_config

    tf_config.disable_op_determinism()


@pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")  # model.save
@pytest.mark.parametrize("loop", ["keras_fit", "train_on_batches"])
def test_training_resumed_in_a_new_sequence_with_the_epoch_set_equals_the_uninterrupted_run(
    tmp_path, deterministic, loop
):
    # Keras's fit calls on_epoch_end() once before its first epoch; train_on_batches
    # does not (today it trains a resumed epoch on epoch 0's order). Same rule for both.
    from fitlab import train_on_batches

    path = make_synthetic_csv(tmp_path / "t.csv", rows=24, size=2, seed=3)

    def sequence(epoch):
        seq = CSVSequence(path, batch_size=5, shuffle=True, seed=9)
        if epoch is not None:
            seq.epoch = epoch
        return seq

    def fit(model, seq, epochs, initial_epoch=0):
        if loop == "keras_fit":
            model.fit(seq, epochs=epochs, initial_epoch=initial_epoch, shuffle=False, verbose=0)
        else:
            train_on_batches(model, seq, epochs, initial_epoch=initial_epoch, verbose=0)

    assert_resuming_is_exact(fit, sequence, tmp_path)


def test_sequence_cache_gives_the_same_batches_and_keeps_what_it_read(csv10):
    plain = _epoch(CSVSequence(csv10, batch_size=4))
    cached = CSVSequence(csv10, batch_size=4, cache=True)
    uncached = CSVSequence(csv10, batch_size=4)
    for _ in range(2):  # filling, then from the cache
        for (x1, y1), (x2, y2) in zip(plain, _epoch(cached), strict=True):
            np.testing.assert_array_equal(x1, x2)
            np.testing.assert_array_equal(y1, y2)
    original = np.concatenate([x for x, _ in plain])
    _swap_digits(csv10)  # same size: only a sequence that reads the file again sees it
    np.testing.assert_array_equal(np.concatenate([x for x, _ in _epoch(cached)]), original)
    changed = np.concatenate([x for x, _ in _epoch(uncached)])
    np.testing.assert_array_equal(changed, load_csv(csv10)[0])
    assert not np.array_equal(changed, original)


def test_sequence_int_labels_sample_weights_and_augment(csv10):
    seq = CSVSequence(csv10, batch_size=4, one_hot=False, sample_weights={"snowdrop": 2.0})
    x, y, w = seq[0]
    assert y.tolist() == [0, 2, 1, 0] and y.dtype == np.int32
    assert w.tolist() == [1.0, 2.0, 1.0, 1.0] and w.dtype == np.float32
    per_row = np.arange(10, dtype=np.float32)
    assert CSVSequence(csv10, 4, sample_weights=per_row)[2][2].tolist() == [8.0, 9.0]
    with pytest.raises(ValueError, match="one weight per row"):
        CSVSequence(csv10, 4, sample_weights=[1.0, 2.0])
    with pytest.raises(ValueError, match="classes this CSV does not have: \\['rose'\\]"):
        CSVSequence(csv10, 4, sample_weights={"rose": 2.0})
    flipped = CSVSequence(csv10, 4, augment=lambda b: b[:, ::-1])[0][0]
    np.testing.assert_array_equal(flipped, x[:, ::-1])
    assert flipped.dtype == np.float32


def test_sequence_passes_worker_options_to_pydataset(csv10):
    seq = CSVSequence(csv10, 4, workers=3, use_multiprocessing=True, max_queue_size=5)
    assert (seq.workers, seq.use_multiprocessing, seq.max_queue_size) == (3, True, 5)


def test_sequence_unknown_label_names_label_file_and_line(csv10):
    with pytest.raises(CSVFormatError, match=r"ten\.csv, line 3: unknown label 'lilyvalley'"):
        CSVSequence(csv10, 4, classes=["daffodil", "snowdrop"])


def test_sequence_bad_rows_raise_or_are_skipped_and_reported(csv10, tmp_path):
    lines = csv10.read_bytes().splitlines()
    lines[6] = lines[6].replace(b",", b",999,", 1)
    lines[6] = lines[6].rsplit(b",", 1)[0]
    path = tmp_path / "bad.csv"
    path.write_bytes(b"\n".join(lines) + b"\n")
    seq = CSVSequence(path, 4)
    seq[0]  # rows 1-4 are fine
    with pytest.raises(CSVFormatError, match=r"bad\.csv, line 7: value 999 in column 2"):
        seq[1]
    with pytest.warns(BadRowsWarning, match=r"skipped 1 bad row\(s\) .*line 7"):
        skipping = CSVSequence(path, 4, on_bad_row="skip")
    assert skipping.rows == 9 and [e.line for e in skipping.skipped] == [7]
    images, _ = load_csv(csv10)
    got = np.concatenate([x for x, _ in _epoch(skipping)])
    np.testing.assert_array_equal(got, np.delete(images, 6, 0))


@pytest.mark.parametrize("variant", ["crlf_bom_blank", "gzip"])
def test_sequence_reads_variants_like_the_clean_file(csv10, csv_variant, variant):
    path = csv_variant(csv10, variant)
    got = np.concatenate([x for x, _ in _epoch(CSVSequence(path, 3))])
    np.testing.assert_array_equal(got, load_csv(csv10)[0])


def test_sequence_notices_the_file_changing(csv10):
    seq = CSVSequence(csv10, 4)
    with open(csv10, "ab") as f:
        f.write(b"daffodil," + b",".join([b"1"] * 48) + b"\n")
    with pytest.raises(CSVFormatError, match="changed size since"):
        seq[0]


def test_sequence_meter_counts_in_thread_loading(csv10):
    meter = InputMeter()
    _epoch(CSVSequence(csv10, 4, augment=_sleepy(0.05), meter=meter))
    assert (meter.batches, meter.images) == (3, 10)
    assert meter.wait_s >= 3 * 0.05  # __getitem__ ran in the caller's thread, all of it a wait


def test_sequence_meter_with_worker_threads_counts_each_batch_as_its_share_of_the_pool(csv10):
    meter = InputMeter()
    seq = CSVSequence(csv10, 4, augment=_sleepy(0.1), meter=meter, workers=2)
    _epoch(seq)
    assert (meter.batches, meter.images) == (3, 10)
    assert meter.wait_s >= 3 * 0.1 / 2


def test_sequence_refuses_tf_augmentation_in_forked_workers(csv10):
    if keras.backend.backend() != "tensorflow":
        pytest.skip("the hang is TensorFlow's")
    with pytest.raises(ValueError, match="cannot run in forked worker processes"):
        CSVSequence(csv10, 4, augment=keras.layers.RandomFlip(), use_multiprocessing=True)


# -- the real data ------------------------------------------------------------------------
@pytest.mark.realdata
def test_every_source_matches_load_csv_on_the_real_test_csv(flowers17_csvs):
    _, test, _ = flowers17_csvs
    images, labels = load_csv(test)
    classes = sorted(set(labels.tolist()))
    bs = 32
    batches = list(csv_image_generator(test, bs, classes, mode="eval"))
    assert len(batches) == math.ceil(340 / bs) and len(batches[-1][0]) == 340 % bs
    np.testing.assert_array_equal(np.concatenate([x for x, _ in batches]), images)
    onehot = np.concatenate([y for _, y in batches])
    assert np.array(classes)[onehot.argmax(1)].tolist() == labels.tolist()

    seq = CSVSequence(test, bs, classes=classes)
    assert len(seq) == len(batches)
    np.testing.assert_array_equal(np.concatenate([x for x, _ in _epoch(seq)]), images)


def test_input_meter_adds_times_and_resets():
    meter = InputMeter()
    meter.add(0.5, images=32)
    meter.add(-1.0)  # a clock going backwards never makes wait_s shrink
    assert (meter.wait_s, meter.batches, meter.images) == (0.5, 2, 32)
    meter.reset()
    assert (meter.wait_s, meter.batches, meter.images) == (0.0, 0, 0)


def test_input_meter_timed_counts_rows_and_times_each_next():
    def slow_batches():
        for rows in (4, 3):
            time.sleep(0.05)
            yield np.zeros((rows, 2)), np.zeros(rows)

    meter = InputMeter()
    assert [len(x) for x, _ in meter.timed(slow_batches())] == [4, 3]
    assert (meter.batches, meter.images) == (2, 7) and meter.wait_s >= 2 * 0.05
    assert len(list(meter.timed([np.zeros((5, 1))], rows=lambda batch: 1))) == 1
    assert (meter.batches, meter.images) == (3, 8)  # counted by the given rows()


# -- one error contract: every malformed input is a CSVFormatError (file, line, what to do) -------
def _eval(path, **options):
    return list(csv_image_generator(path, 4, CLASSES, mode="eval", **options))


def _readers(path):
    """Each reader of this module, reading a whole pass over ``path`` (if it can)."""

    def train():
        generator = csv_image_generator(path, 4, CLASSES, mode="train")
        return [next(generator) for _ in range(3)]

    return {
        "eval": lambda: _eval(path),
        "train": train,
        "sequence": lambda: _epoch(CSVSequence(path, 4)),
    }


def _replace_line(clean, tmp_path, at: int, row: bytes, name: str = "bad.csv"):
    lines = clean.read_bytes().splitlines()
    lines[at - 1] = row
    path = tmp_path / name
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def test_a_value_of_thousands_of_digits_is_a_bad_row_in_every_reader(csv10, tmp_path):
    # Today: int() raised "Exceeds the limit (4300 digits)", naming no file, never skipped.
    label, first, *rest = csv10.read_bytes().splitlines()[4].split(b",")
    path = _replace_line(csv10, tmp_path, 5, b",".join([label, b"0" * 5000, *rest]))
    reason = r"bad\.csv, line 5: value 0{20}… \(5,000 digits\) in column 2 has more than 8 digits"
    for read in _readers(path).values():
        with pytest.raises(CSVFormatError, match=reason):
            read()
    expected = np.delete(load_csv(csv10)[0], 4, 0)
    with pytest.warns(BadRowsWarning, match=r"line 5: value 0{20}…"):
        got = np.concatenate([x for x, _ in _eval(path, on_bad_row="skip")])
    np.testing.assert_array_equal(got, expected)
    with pytest.warns(BadRowsWarning, match=r"line 5: value 0{20}…"):
        seq = CSVSequence(path, 4, on_bad_row="skip")
    np.testing.assert_array_equal(np.concatenate([x for x, _ in _epoch(seq)]), expected)


@pytest.mark.parametrize("content", [b"", b"\n\n  \r\n"])
def test_a_file_with_no_rows_is_an_error_in_every_reader(tmp_path, content):
    # Today: "eval" yielded nothing and CSVSequence had no batches; only "train" said so.
    path = tmp_path / "empty.csv"
    path.write_bytes(content)
    for read in _readers(path).values():
        with pytest.raises(CSVFormatError, match=r"empty\.csv: no rows: .* Check the path"):
            read()


def test_a_file_of_only_bad_rows_is_an_error_with_skip(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_bytes(b"daffodil,1,2,300\nsnowdrop\n")
    with (
        pytest.warns(BadRowsWarning),
        pytest.raises(CSVFormatError, match=r"no valid rows: every row is bad \(2 skipped"),
    ):
        _eval(path, on_bad_row="skip")  # today: no batch at all, and no error
    with (
        pytest.warns(BadRowsWarning),
        pytest.raises(CSVFormatError, match=r"no valid rows: every row is bad \(2 skipped"),
    ):
        CSVSequence(path, 2, on_bad_row="skip")  # today: a sequence of no batches


@pytest.mark.parametrize("damage", ["truncated", "corrupt"])
def test_a_damaged_gzip_file_is_a_format_error_in_every_reader(csv10, tmp_path, damage):
    import gzip

    blob = gzip.compress(csv10.read_bytes())
    blob = blob[: len(blob) // 2] if damage == "truncated" else blob[:10] + b"\xff" * 64 + blob[74:]
    path = tmp_path / "damaged.csv.gz"
    path.write_bytes(blob)
    for read in _readers(path).values():  # today: a bare EOFError or zlib.error
        with pytest.raises(CSVFormatError, match=r"damaged\.csv\.gz, line \d+: the gzip file is"):
            read()


def test_first_row_width_advice_names_no_size_argument(csv10, tmp_path):
    # Today: "Pass size=", which neither csv_image_generator nor CSVSequence accepts.
    path = _replace_line(csv10, tmp_path, 1, b"daffodil,1,2")
    for read in _readers(path).values():
        with pytest.raises(
            CSVFormatError, match=r"line 1: 2 values is not size × size × 3"
        ) as info:
            read()
        assert "size=" not in info.value.advice and "on_bad_row='skip'" in info.value.advice
    expected = load_csv(csv10)[0][1:]
    with pytest.warns(BadRowsWarning, match=r"line 1: 2 values"):  # today: raised even so
        got = np.concatenate([x for x, _ in _eval(path, on_bad_row="skip")])
    np.testing.assert_array_equal(got, expected)
    with pytest.warns(BadRowsWarning, match=r"line 1: 2 values"):
        seq = CSVSequence(path, 4, on_bad_row="skip")
    np.testing.assert_array_equal(np.concatenate([x for x, _ in _epoch(seq)]), expected)


def test_generator_unknown_label_advice_names_lb_and_skip_skips_it(csv10):
    lb = _label_binarizer(["daffodil", "snowdrop"])
    with pytest.raises(CSVFormatError, match=r"line 3: unknown label 'lilyvalley'") as info:
        next(csv_image_generator(csv10, 4, lb, mode="eval"))
    assert "lb" in info.value.advice and "classes=" not in info.value.advice
    # Today on_bad_row="skip" raised all the same.
    with pytest.warns(BadRowsWarning, match=r"unknown label 'lilyvalley'") as caught:
        batches = list(csv_image_generator(csv10, 4, lb, mode="eval", on_bad_row="skip"))
    assert [e.line for w in caught for e in w.message.errors] == [3, 6, 9]
    images, labels = load_csv(csv10)
    keep = labels != "lilyvalley"
    assert [len(x) for x, _ in batches] == [4, 3]  # topped up: no row lost but the skipped
    np.testing.assert_array_equal(np.concatenate([x for x, _ in batches]), images[keep])
    assert (np.concatenate([y for _, y in batches]) == lb.transform(labels[keep])).all()


def test_sequence_unknown_label_advice_names_what_it_accepts(csv10):
    with pytest.raises(CSVFormatError, match=r"unknown label 'lilyvalley'") as info:
        CSVSequence(csv10, 4, classes=["daffodil", "snowdrop"])
    assert "classes=" in info.value.advice and "on_bad_row='skip'" in info.value.advice


def test_generator_raises_the_first_bad_row_in_file_order(csv10, tmp_path):
    lines = csv10.read_bytes().splitlines()
    lines[1] = lines[1] + b",7"  # line 2: too many values
    lines[2] = b"no comma here"  # line 3: no label
    path = tmp_path / "bad.csv"
    path.write_bytes(b"\n".join(lines) + b"\n")
    with pytest.raises(CSVFormatError, match=r"bad\.csv, line 2: 49 values"):  # today: line 3
        next(csv_image_generator(path, 4, CLASSES, mode="eval"))
