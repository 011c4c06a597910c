"""Keras 3 traps around data sources, shown on plain Keras (each is a lesson in the notebooks).

If Keras changes one of these behaviours, its test fails and the lesson needs updating.
"""

from __future__ import annotations

import random

import keras
import numpy as np
import pytest

from fitlab import InputMeter, csv_image_generator, make_synthetic_csv

X = np.arange(40, dtype="float32").reshape(20, 2)
Y = np.zeros((20, 1), dtype="float32")


def _model(inputs=(2,), outputs=1):
    model = keras.Sequential(
        [keras.Input(inputs), keras.layers.Flatten(), keras.layers.Dense(outputs)]
    )
    model.compile(optimizer="sgd", loss="mse")
    return model


class StepsPerEpoch(keras.callbacks.Callback):
    """Counts the batches trained in each epoch."""

    def __init__(self):
        super().__init__()
        self.steps: list[int] = []

    def on_epoch_begin(self, epoch, logs=None):
        self.steps.append(0)

    def on_train_batch_end(self, batch, logs=None):
        self.steps[-1] += 1


def test_finite_generator_trains_all_batches_once_then_two_per_epoch():
    drawn = []

    def five_batches():
        for i in range(5):
            drawn.append(i)
            yield X[4 * i : 4 * i + 4], Y[4 * i : 4 * i + 4]

    counter = StepsPerEpoch()
    with pytest.warns(UserWarning, match="ran out of data"):
        _model().fit(five_batches(), epochs=4, verbose=0, callbacks=[counter])
    # Epoch 1 drains the generator; Keras peeked two batches for shapes and
    # re-chains just those, so every later epoch trains on the same two.
    assert counter.steps == [5, 2, 2, 2]
    assert drawn == [0, 1, 2, 3, 4]


def test_class_weight_is_refused_for_python_generators():
    def batches():
        while True:
            yield X[:4], Y[:4]

    with pytest.raises(ValueError, match="class_weight.*not supported for Python generator"):
        _model().fit(batches(), steps_per_epoch=2, class_weight={0: 1.0}, verbose=0)


def test_fit_workers_is_a_type_error():
    with pytest.raises(TypeError, match="unexpected keyword argument 'workers'"):
        _model().fit(X, Y, workers=2, verbose=0)


class RecordsIndices(keras.utils.PyDataset):
    def __init__(self):
        super().__init__()
        self.requested: list[int] = []

    def __len__(self):
        return 10

    def __getitem__(self, i):
        self.requested.append(i)
        return X[i : i + 2], Y[i : i + 2]


@pytest.mark.parametrize("shuffle", [True, False])
def test_fit_shuffle_reorders_a_pydatasets_batches(shuffle):
    data = RecordsIndices()
    random.seed(0)  # Keras shuffles the batch indices with Python's `random`
    _model().fit(data, epochs=1, shuffle=shuffle, verbose=0)
    epoch = data.requested[-10:]  # after the batches peeked for shapes
    assert sorted(epoch) == list(range(10))
    assert (epoch != sorted(epoch)) is shuffle


def test_csv_image_generator_is_immune_to_the_finite_generator_trap(tmp_path):
    path = make_synthetic_csv(tmp_path / "t.csv", rows=10, size=4)
    classes = ["daffodil", "lilyvalley", "snowdrop"]
    meter = InputMeter()
    counter = StepsPerEpoch()
    generator = csv_image_generator(path, 4, classes, mode="train", meter=meter)
    _model((4, 4, 3), 3).fit(generator, steps_per_epoch=3, epochs=3, verbose=0, callbacks=[counter])
    assert counter.steps == [3, 3, 3]
    # Each of the 9 steps drew a fresh batch (had fit re-chained the two batches it
    # peeked, the generator would have been advanced only a few times). How many more
    # tf.data's prefetch read ahead depends on its buffer, so only the floor is pinned.
    assert meter.batches >= 9


class RowOrder(keras.Model):
    """Records the first column of every training batch (the row numbers below)."""

    orders: list

    def train_step(self, data):
        import tensorflow as tf

        x, _ = data
        tf.py_function(lambda rows: self.orders.append(rows.numpy()[:, 0].tolist()), [x], [])
        return super().train_step(data)


def test_fit_shuffle_on_arrays_repeats_one_order_every_epoch_once_a_seed_is_set():
    """Keras 3 on TensorFlow draws fit's permutation with a stateful op inside the
    tf.data pipeline; each epoch's new iterator restarts it from the global seed."""
    keras.utils.set_random_seed(1)
    inputs = keras.Input((1,))
    model = RowOrder(inputs, keras.layers.Dense(1)(inputs))
    model.orders = []
    model.compile(optimizer="sgd", loss="mse")
    rows = np.arange(16, dtype="float32")[:, None]
    model.fit(rows, rows, batch_size=16, epochs=3, shuffle=True, verbose=0)
    first, *later = model.orders
    assert first != sorted(first)  # shuffled …
    assert later == [first, first]  # … but in the same order every epoch


class BatchesEvaluated(keras.Model):
    """Records the number of every batch it evaluates (the first value of ``x``)."""

    evaluated: list

    def test_step(self, data):
        import tensorflow as tf

        x, _ = data
        tf.py_function(lambda x: self.evaluated[-1].append(int(x.numpy()[0, 0])), [x], [])
        return super().test_step(data)


def _evaluating_model():
    inputs = keras.Input((2,))
    model = BatchesEvaluated(inputs, keras.layers.Dense(1)(inputs))
    model.evaluated = []
    model.compile(optimizer="sgd", loss="mse")
    return model


def numbered_batches(count=None):
    """Batch 0, 1, 2, … (every value of batch ``i`` is ``i``); endless unless ``count`` is given."""
    i = 0
    while count is None or i < count:
        yield np.full((2, 2), i, dtype="float32"), np.zeros((2, 1), dtype="float32")
        i += 1


class NewListPerValidation(keras.callbacks.Callback):
    def on_test_begin(self, logs=None):
        self.model.evaluated.append([])


def test_fit_restarts_a_validation_generator_at_the_two_peeked_batches_every_epoch():
    model = _evaluating_model()
    model.fit(
        X[:4], Y[:4], batch_size=2, epochs=3, verbose=0, callbacks=[NewListPerValidation()],
        validation_data=numbered_batches(), validation_steps=3,
    )  # fmt: skip
    epochs = model.evaluated
    # Keras 3.15 on TensorFlow validated on [0, 1, 2], [0, 1, 4], [0, 1, 6]: every
    # evaluation re-chains the two batches the adapter peeked at for the shapes, then
    # reads on in the generator, past the batch tf.data prefetched and dropped last
    # time. How many it drops depends on the prefetch buffer, so that is not pinned.
    assert epochs[0] == [0, 1, 2]
    assert [e[:2] for e in epochs] == [[0, 1]] * 3  # the same two batches every epoch
    fresh = [e[2] for e in epochs]
    assert fresh == sorted(set(fresh))  # only the third batch is new each epoch


def test_fit_validates_on_a_finite_generator_once_then_on_the_two_peeked_batches():
    model = _evaluating_model()
    with pytest.warns(UserWarning, match="ran out of data"):
        model.fit(
            X[:4], Y[:4], batch_size=2, epochs=3, verbose=0, callbacks=[NewListPerValidation()],
            validation_data=numbered_batches(5),
        )  # fmt: skip
    assert model.evaluated == [[0, 1, 2, 3, 4], [0, 1], [0, 1]]


def test_evaluate_twice_on_one_generator_reads_on_but_drops_what_tf_data_prefetched():
    model = _evaluating_model()
    batches = numbered_batches()
    for _ in range(2):
        model.evaluated.append([])
        model.evaluate(batches, steps=3, verbose=0)
    first, second = model.evaluated
    # Each call builds a new adapter, which peeks two fresh batches: no restart, but
    # the batch(es) the first call's tf.data prefetched (Keras 3.15: batch 3) are lost.
    assert first == [0, 1, 2]
    assert second[0] > 3 and second == list(range(second[0], second[0] + 3))
