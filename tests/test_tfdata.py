"""csv_dataset: the same arrays as load_csv, exact passes, shuffling, caching, loud failures."""

from __future__ import annotations

import gzip
import math
import time

import numpy as np
import pytest
import tensorflow as tf
from resuming import assert_resuming_is_exact

from fitlab import CSVFormatError, InputMeter, csv_dataset, load_csv, make_synthetic_csv

SIZE = 4
CLASSES = ["daffodil", "lilyvalley", "snowdrop"]


@pytest.fixture
def csv10(tmp_path):
    return make_synthetic_csv(tmp_path / "ten.csv", rows=10, size=SIZE, seed=2)


def _arrays(ds):
    batches = [(x.numpy(), y.numpy()) for x, y in ds]
    return batches, np.concatenate([x for x, _ in batches]), np.concatenate([y for _, y in batches])


def test_one_exact_pass_equal_to_load_csv(csv10):
    batches, x, y = _arrays(csv_dataset(csv10, 4, size=SIZE))
    assert [len(b[0]) for b in batches] == [4, 4, 2]
    images, labels = load_csv(csv10)
    np.testing.assert_array_equal(x, images)
    assert x.dtype == np.uint8 and y.dtype == np.float32
    assert np.array(CLASSES)[y.argmax(1)].tolist() == labels.tolist()


@pytest.mark.parametrize("variant", ["crlf_bom_blank", "gzip"])
def test_variants_give_the_clean_arrays(csv10, csv_variant, variant):
    path = csv_variant(csv10, variant)
    _, x, _ = _arrays(csv_dataset(path, 3, size=SIZE))
    np.testing.assert_array_equal(x, load_csv(csv10)[0])


def test_int_labels_and_given_classes(csv10):
    _, _, y = _arrays(csv_dataset(csv10, 4, size=SIZE, one_hot=False, classes=CLASSES[::-1]))
    _, labels = load_csv(csv10)
    assert y.dtype == np.int32
    assert np.array(CLASSES[::-1])[y].tolist() == labels.tolist()


def test_shuffle_moves_rows_every_epoch_reproducibly(tmp_path):
    path = make_synthetic_csv(tmp_path / "t.csv", rows=30, size=2)
    images, _ = load_csv(path)

    def order(epoch_images):
        return [int(np.flatnonzero((images == r).all(axis=(1, 2, 3)))[0]) for r in epoch_images]

    for cache in (False, True):
        ds = csv_dataset(path, 8, size=2, shuffle_buffer=30, seed=5, cache=cache)
        first, second = (order(_arrays(ds)[1]) for _ in range(2))
        assert sorted(first) == sorted(second) == list(range(30))
        assert first != second and first != list(range(30))
        again = csv_dataset(path, 8, size=2, shuffle_buffer=30, seed=5, cache=cache)
        assert order(_arrays(again)[1]) == first


def _swap_digits(path) -> None:
    """Rewrite ``path`` in place, same size, every 0 and 1 swapped: other valid values."""
    path.write_bytes(path.read_bytes().translate(bytes.maketrans(b"01", b"10")))


@pytest.mark.parametrize("cache", [False, True])
def test_first_epoch_replays_the_later_passes_of_a_run(tmp_path, cache):
    # Today: no first_epoch; a new dataset's first pass is always the first epoch's order.
    path = make_synthetic_csv(tmp_path / "t.csv", rows=30, size=2)
    images, _ = load_csv(path)

    def order(ds):
        x = _arrays(ds)[1]
        return [int(np.flatnonzero((images == r).all(axis=(1, 2, 3)))[0]) for r in x]

    options = dict(size=2, shuffle_buffer=30, seed=5, cache=cache)
    run = csv_dataset(path, 8, **options)
    resumed = csv_dataset(path, 8, first_epoch=3, **options)
    passes, replayed = [order(run)], [order(resumed)]
    if cache:  # the cache was filled by the first pass and is reused, not read again
        _swap_digits(path)
    passes += [order(run) for _ in range(4)]
    replayed.append(order(resumed))
    assert replayed == passes[3:5]
    assert all(sorted(p) == list(range(30)) for p in passes)
    assert len({tuple(p) for p in passes}) == 5 and passes[0] != list(range(30))


def test_first_epoch_keeps_the_length_and_repeat_counts_each_pass(tmp_path):
    # Today: no first_epoch.
    path = make_synthetic_csv(tmp_path / "t.csv", rows=7, size=2)
    path.write_bytes(path.read_bytes().replace(b"\n", b"\n\n", 2))  # blank lines are skipped
    for cache in (False, True):
        options = dict(size=2, shuffle_buffer=7, seed=1, cache=cache, one_hot=False)
        ds = csv_dataset(path, 3, first_epoch=2, **options)
        assert int(ds.cardinality()) == 3 and len(list(ds)) == 3
        endless = csv_dataset(path, 3, repeat=True, first_epoch=2, **options)
        assert int(endless.cardinality()) == -1  # infinite
        taken = [y.numpy().tolist() for _, y in endless.take(6)]
        assert [len(y) for y in taken] == [3, 3, 1] * 2
        # Each repetition is the next epoch: the passes of a dataset iterated again.
        again = csv_dataset(path, 3, first_epoch=2, **options)
        assert taken == [y.numpy().tolist() for _ in range(2) for _, y in again]


def test_first_epoch_needs_a_seed_to_replay_and_is_an_int(csv10):
    # Today: TypeError, an unexpected keyword.
    with pytest.raises(ValueError, match="first_epoch=2 needs a seed"):
        csv_dataset(csv10, 4, size=SIZE, shuffle_buffer=10, first_epoch=2)
    for bad in (-1, 1.5, True):
        with pytest.raises(ValueError, match="first_epoch must be an int >= 0"):
            csv_dataset(csv10, 4, size=SIZE, shuffle_buffer=10, seed=1, first_epoch=bad)
    # Nothing to replay, nothing refused: without shuffling every pass is in file order.
    _, x, _ = _arrays(csv_dataset(csv10, 4, size=SIZE, first_epoch=3))
    np.testing.assert_array_equal(x, load_csv(csv10)[0])
    csv_dataset(csv10, 4, size=SIZE, shuffle_buffer=10, first_epoch=0)  # seed=None: as before


@pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")  # model.save
def test_fit_resumed_with_first_epoch_equals_the_uninterrupted_run(tmp_path):
    path = make_synthetic_csv(tmp_path / "t.csv", rows=24, size=2, seed=3)

    def dataset(first_epoch):
        return csv_dataset(path, 5, size=2, shuffle_buffer=24, seed=9, first_epoch=first_epoch or 0)

    def fit(model, ds, epochs, initial_epoch=0):
        model.fit(ds, epochs=epochs, initial_epoch=initial_epoch, shuffle=False, verbose=0)

    assert_resuming_is_exact(fit, dataset, tmp_path)


def test_cache_and_repeat(csv10):
    ds = csv_dataset(csv10, 4, size=SIZE, cache=True)
    np.testing.assert_array_equal(_arrays(ds)[1], _arrays(ds)[1])
    repeated = csv_dataset(csv10, 4, size=SIZE, repeat=True)
    taken = [len(x) for x, _ in repeated.take(7)]
    assert taken == [4, 4, 2, 4, 4, 2, 4]


def test_augment_is_mapped_on_float_batches(csv10):
    _, x, _ = _arrays(csv_dataset(csv10, 4, size=SIZE, augment=lambda b: 255.0 - b))
    np.testing.assert_allclose(x, 255.0 - load_csv(csv10)[0])


def test_meter_counts_the_consumers_waits_and_nothing_else(csv10):
    def sleepy(batch):  # at least 0.2 s a batch, in tf.data's own threads
        return tf.py_function(lambda b: (time.sleep(0.2), b)[1], [batch], tf.float32)

    meter = InputMeter()
    asked = 0.0
    batches = iter(csv_dataset(csv10, 4, size=SIZE, augment=sleepy, meter=meter))
    while True:  # the consumer times its own next() calls, around the meter's
        start = time.perf_counter()
        try:
            next(batches)
        except StopIteration:
            break
        finally:
            asked += time.perf_counter() - start
    assert (meter.batches, meter.images) == (3, 10)
    # tf.data starts its threads on the first request, so the consumer waits at
    # least one augmentation; the meter's clock runs inside the consumer's calls.
    assert 0.2 <= meter.wait_s <= asked


@pytest.mark.parametrize(
    "bad, reason",
    [
        (lambda v: v.replace(b",", b",256,", 1).rsplit(b",", 1)[0], "value 256 in column 2"),
        (lambda v: v + b",1", "49 values after the label, expected 48"),
        (lambda v: v.rsplit(b",", 1)[0], "47 values after the label, expected 48"),
        (lambda v: v.replace(b",", b",x,", 1).rsplit(b",", 1)[0], "b'x' in column 2 is not"),
        (lambda v: v.replace(b",", b",,", 1).rsplit(b",", 1)[0], "column 2 is empty"),
        (lambda v: b"," + v.split(b",", 1)[1], r"the label \(column 1\) is empty"),
        (lambda v: b"rose," + v.split(b",", 1)[1], "unknown label 'rose'"),
        (lambda v: bytes(range(1, 256)) * 2, "line 7"),
    ],
)
def test_bad_rows_fail_loudly_naming_file_and_line(csv10, tmp_path, bad, reason):
    lines = csv10.read_bytes().splitlines()
    lines[6] = bad(lines[6])
    path = tmp_path / "bad.csv"
    path.write_bytes(b"\n".join(lines) + b"\n")
    good = load_csv(csv10)[0]
    seen = []
    with pytest.raises(tf.errors.OpError, match=rf"bad\.csv, line 7: .*{reason}|{reason}"):
        for x, _ in csv_dataset(path, 4, size=SIZE, classes=CLASSES):
            seen.append(x.numpy())
    # Only the clean batch before the bad row came out, and it was right.
    assert len(seen) == 1
    np.testing.assert_array_equal(seen[0], good[:4])


def test_leading_zeros_take_the_precise_path(tmp_path):
    path = tmp_path / "z.csv"
    path.write_bytes(b"iris,007,0255,1\ntulip,1,2,3\n")
    _, x, _ = _arrays(csv_dataset(path, 2, size=1))
    assert x.reshape(2, 3).tolist() == [[7, 255, 1], [1, 2, 3]]


def test_arguments_are_checked(csv10, tmp_path):
    with pytest.raises(ValueError, match="positive integer"):
        csv_dataset(csv10, 0)
    with pytest.raises(FileNotFoundError, match="no such CSV"):
        csv_dataset(tmp_path / "missing.csv")


@pytest.mark.realdata
def test_real_training_csv_equals_load_csv(flowers17_csvs):
    train, _, _ = flowers17_csvs
    images, labels = load_csv(train)
    batches, x, y = _arrays(csv_dataset(train, 32))
    assert len(batches) == math.ceil(1020 / 32)
    np.testing.assert_array_equal(x, images)
    classes = sorted(set(labels.tolist()))
    assert np.array(classes)[y.argmax(1)].tolist() == labels.tolist()


def test_a_single_pass_declares_its_length_so_fit_takes_no_phantom_step(tmp_path):
    path = make_synthetic_csv(tmp_path / "t.csv", rows=7, size=4)
    path.write_bytes(path.read_bytes().replace(b"\n", b"\n\n", 2))  # blank lines are skipped
    ds = csv_dataset(path, batch_size=3, size=4)
    assert int(ds.cardinality()) == 3
    assert int(csv_dataset(path, batch_size=3, size=4, repeat=True).cardinality()) == -1  # infinite


# -- one error contract: what is wrong is a CSVFormatError, with advice csv_dataset can take ------
@pytest.mark.parametrize("content", [b"", b"\n \r\n"])
def test_a_file_with_no_rows_is_an_error_when_the_dataset_is_made(tmp_path, content):
    # Today: a dataset of no batches, which fit cannot train on.
    path = tmp_path / "empty.csv"
    path.write_bytes(content)
    for options in ({}, {"classes": CLASSES, "repeat": True}):
        with pytest.raises(CSVFormatError, match=r"empty\.csv: no rows: .* Check the path"):
            csv_dataset(path, 4, size=SIZE, **options)


@pytest.mark.parametrize("damage", ["truncated", "corrupt"])
def test_a_damaged_gzip_file_is_an_error_naming_it_when_the_dataset_is_made(
    csv10, tmp_path, damage
):
    # Today (classes given, repeat=True): tf.data's DataLossError while iterating, naming no file.
    blob = gzip.compress(csv10.read_bytes())
    blob = blob[: len(blob) // 2] if damage == "truncated" else blob[:10] + b"\xff" * 64 + blob[74:]
    path = tmp_path / "damaged.csv.gz"
    path.write_bytes(blob)
    with pytest.raises(
        CSVFormatError, match=r"damaged\.csv\.gz, line \d+: the gzip file is"
    ) as info:
        csv_dataset(path, 4, size=SIZE, classes=CLASSES, repeat=True)
    assert "Re-create the file" in info.value.advice


def _bad_dataset(csv10, tmp_path, row, **options):
    lines = csv10.read_bytes().splitlines()
    lines[2] = row(lines[2])
    path = tmp_path / "bad.csv"
    path.write_bytes(b"\n".join(lines) + b"\n")
    return [x for x, _ in csv_dataset(path, 4, size=SIZE, **options)]


@pytest.mark.parametrize(
    "row, reason",
    [
        (lambda v: v + b",1", "49 values after the label, expected 48"),
        (lambda v: b"rose," + v.split(b",", 1)[1], "unknown label 'rose'"),
        (  # Today: "Exceeds the limit (4300 digits)", with no file or line.
            lambda v: v.replace(b",", b"," + b"0" * 5000 + b",", 1).rsplit(b",", 1)[0],
            r"value 0{20}… \(5,000 digits\) in column 2 has more than 8 digits",
        ),
    ],
)
def test_bad_row_advice_is_what_csv_dataset_accepts(csv10, tmp_path, row, reason):
    # Today: "or pass on_bad_row='skip'", which csv_dataset does not accept.
    with pytest.raises(tf.errors.OpError, match=rf"bad\.csv, line 3: {reason}") as info:
        _bad_dataset(csv10, tmp_path, row, classes=CLASSES)
    message = info.value.message
    assert "csv_dataset cannot skip rows" in message and "or pass on_bad_row" not in message


def test_bad_label_found_reading_the_classes_is_an_error_with_its_advice(csv10, tmp_path):
    no_label = lambda v: b"," + v.split(b",", 1)[1]  # noqa: E731
    with pytest.raises(
        CSVFormatError, match=r"bad\.csv, line 3: the label \(column 1\) is empty"
    ) as info:
        _bad_dataset(csv10, tmp_path, no_label)  # the classes are read from the file
    assert "csv_dataset cannot skip rows" in info.value.advice  # today: "or pass on_bad_row="
