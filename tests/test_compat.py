"""Conformance of fitlab.compat with Keras 2 itself (tf_keras 2.21).

Each scenario runs twice: through ``tf_keras``'s own ``fit_generator`` /
``evaluate_generator`` / ``predict_generator`` (the reference) and through
``fitlab.compat`` on a Keras 3 model with the *same initial weights*. What a
user can observe is compared: which batches each epoch trained and validated
on, epoch numbers, History keys and lengths, predictions, losses.

How batches are observed: every batch carries its number in column 0 of its
first row (``id / 100``), and both models start with a ``Recorder`` layer (an
identity) that writes that number down each time the model runs on a batch.
The models run eagerly so the recorder sees values. Counting what the model
*ran on* rather than what the generator *gave* matters: ``tf_keras`` reads a
couple of batches ahead (``tf.data`` prefetch) and ``fitlab.compat`` with
``workers > 0`` reads up to ``max_queue_size`` ahead, as Keras 2.2 did.

``tf_keras`` 2.21 rejects ``workers=0``; its side runs with ``workers=1``.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import subprocess
import sys
import threading
import warnings
from pathlib import Path

import keras
import numpy as np
import pytest

import fitlab
from fitlab import compat

try:
    import tf_keras
except ImportError:  # a dev dependency: CI must never pass by skipping the suite
    if os.environ.get("CI", "").lower() == "true":
        raise
    pytest.skip("tf_keras (pip install tf-keras) is the Keras 2 reference", allow_module_level=True)

ROWS = 4  # rows per batch
LR = 0.1


@pytest.fixture(autouse=True)
def _quiet_and_seeded():
    random.seed(1234)
    keras.utils.set_random_seed(1234)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tf_keras's own deprecation chatter
        yield


# --------------------------------------------------------------------------- data


def make_batch(batch_id: int, rows: int = ROWS, weights: bool = False):
    """Batch number ``batch_id``: features (id/100 in column 0 of row 0), one-hot targets."""
    rng = np.random.default_rng(batch_id)
    x = rng.normal(size=(rows, 2)).astype("float32")
    x[0, 0] = batch_id / 100
    y = np.eye(2, dtype="float32")[(np.arange(rows) + batch_id) % 2]
    if weights:
        return x, y, rng.uniform(0.2, 3.0, size=rows).astype("float32")
    return x, y


def batches(start: int = 0, count: int | None = None, drawn: list | None = None, **kw):
    """Batches ``start, start+1, …`` (forever, or ``count`` of them); ``drawn`` lists them."""
    ids = itertools.count(start) if count is None else range(start, start + count)
    for batch_id in ids:
        if drawn is not None:
            drawn.append(batch_id)
        yield make_batch(batch_id, **kw)


def batch_id_of(x) -> int:
    return int(round(float(np.asarray(x)[0, 0]) * 100))


class _IdSequence:
    """A Sequence of ``n`` id batches, for either Keras; counts on_epoch_end calls."""

    def __init__(self, n: int):
        self.n, self.epoch_ends = n, 0

    def __len__(self):
        return self.n

    def __getitem__(self, index):
        return make_batch(index)

    def on_epoch_end(self):
        self.epoch_ends += 1


class K2Sequence(_IdSequence, tf_keras.utils.Sequence):
    pass


class K3Sequence(_IdSequence, keras.utils.PyDataset):
    def __init__(self, n: int):
        keras.utils.PyDataset.__init__(self)
        _IdSequence.__init__(self, n)


# --------------------------------------------------------------------------- models


def _recorder(base, log: list):
    class Recorder(base):
        """Identity layer that logs ("train"/"infer", batch id) when run on values."""

        def __init__(self, **kw):
            super().__init__(**kw)
            self.record = log.append  # a bound method: Keras would copy a list attribute

        def compute_output_shape(self, shape):
            return shape

        def call(self, x, training=None):
            try:
                value = np.asarray(keras.ops.convert_to_numpy(x[0, 0]))
            except Exception:  # symbolic (tracing) call: nothing to record
                return x
            self.record(("train" if training else "infer", int(round(float(value) * 100))))
            return x

    return Recorder()


def _epoch_marker(base, log: list):
    class EpochMarker(base):
        def __init__(self):
            super().__init__()
            self.record = log.append

        def on_epoch_begin(self, epoch, logs=None):
            self.record(("epoch", epoch))

    return EpochMarker()


def _build(lib, log: list, inputs: str = "single"):
    layers = lib.layers
    if inputs == "single":
        ins = lib.Input((2,), name="x")
        hidden = _recorder(lib.layers.Layer, log)(ins)
    else:  # two named inputs, joined
        ins = [lib.Input((2,), name="a"), lib.Input((1,), name="b")]
        hidden = _recorder(lib.layers.Layer, log)(layers.Concatenate()(ins))
    out = layers.Dense(2, activation="softmax", name="out")(hidden)
    return lib.Model(ins, out)


class Pair:
    """The same tiny model in Keras 2 (``k2``) and Keras 3 (``k3``), same initial weights."""

    def __init__(self, inputs: str = "single", metrics=("accuracy",), optimizers=None):
        self.log2: list = []
        self.log3: list = []
        self.k2 = _build(tf_keras, self.log2, inputs)
        self.k3 = _build(keras, self.log3, inputs)
        self.k3.set_weights(self.k2.get_weights())
        opt2, opt3 = optimizers or (tf_keras.optimizers.SGD(LR), keras.optimizers.SGD(LR))
        self.k2.compile(opt2, "categorical_crossentropy", metrics=list(metrics), run_eagerly=True)
        self.k3.compile(opt3, "categorical_crossentropy", metrics=list(metrics), run_eagerly=True)

    def callbacks2(self, *extra):
        return [_epoch_marker(tf_keras.callbacks.Callback, self.log2), *extra]

    def callbacks3(self, *extra):
        return [_epoch_marker(keras.callbacks.Callback, self.log3), *extra]


def by_epoch(log: list) -> dict[int, dict[str, list[int]]]:
    """``{epoch: {"train": [ids], "infer": [ids]}}`` from a recorder + marker log."""
    epochs: dict[int, dict[str, list[int]]] = {}
    current = None
    for kind, value in log:
        if kind == "epoch":
            current = epochs.setdefault(value, {"train": [], "infer": []})
        elif current is not None:
            current[kind].append(value)
    return epochs


def fit2(pair: Pair, generator, **kw):
    kw.setdefault("workers", 1)  # tf_keras 2.21 rejects workers=0
    return pair.k2.fit_generator(generator, verbose=0, callbacks=pair.callbacks2(), **kw)


def fit3(pair: Pair, generator, **kw):
    return compat.fit_generator(pair.k3, generator, verbose=0, callbacks=pair.callbacks3(), **kw)


def assert_same_history(h2, h3, rtol=1e-5, values_of=None):
    """Same keys, epochs and lengths; the same numbers for ``values_of`` (default: all keys)."""
    assert set(h3.history) == set(h2.history)
    assert h3.epoch == h2.epoch
    for key, values in h2.history.items():
        if values_of is not None and key not in values_of:
            assert len(h3.history[key]) == len(values), key
            continue
        assert len(h3.history[key]) == len(values), key
        np.testing.assert_allclose(h3.history[key], values, rtol=rtol, err_msg=key)


# --------------------------------------------------------------------------- environment


def test_both_kerases_live_in_one_process():
    assert not os.environ.get("TF_USE_LEGACY_KERAS"), "TF_USE_LEGACY_KERAS would make keras 2"
    assert keras.__version__.startswith("3.")
    assert tf_keras.__version__.startswith("2.")
    assert not hasattr(keras.Model, "fit_generator")  # until enable_legacy_methods()


# --------------------------------------------------------------------------- scenarios


def test_1_batches_per_epoch_and_in_total():
    pair = Pair()
    drawn2, drawn3 = [], []
    h2 = fit2(pair, batches(drawn=drawn2), steps_per_epoch=3, epochs=3)
    h3 = fit3(pair, batches(drawn=drawn3), steps_per_epoch=3, epochs=3, workers=0)

    expected = {e: {"train": [3 * e, 3 * e + 1, 3 * e + 2], "infer": []} for e in range(3)}
    assert by_epoch(pair.log2) == expected
    assert by_epoch(pair.log3) == expected
    # On this thread nothing is read ahead: exactly the 9 batches trained on.
    assert drawn3 == list(range(9))
    assert drawn2[:9] == list(range(9))  # tf_keras prefetches a few more
    assert_same_history(h2, h3)


def test_2_finite_generator_trap_is_avoided():
    # Keras 3's own fit on a finite generator: all 6 batches in epoch 1, then
    # only the two it peeked at, again and again. Shown here so this test
    # would notice if compat handed the generator to fit.
    trapped = Pair()
    trapped.k3.fit(batches(count=6), epochs=3, verbose=0, callbacks=trapped.callbacks3())
    trap = "Keras 3's fit no longer falls into the trap: update docs/keras3-traps.md and this test"
    assert [e["train"] for e in by_epoch(trapped.log3).values()] == [
        [0, 1, 2, 3, 4, 5], [0, 1], [0, 1],
    ], trap  # fmt: skip

    pair = Pair()
    h2 = fit2(pair, batches(count=6), steps_per_epoch=2, epochs=3)
    h3 = fit3(pair, batches(count=6), steps_per_epoch=2, epochs=3, workers=0)
    expected = [[0, 1], [2, 3], [4, 5]]
    assert [e["train"] for e in by_epoch(pair.log2).values()] == expected
    assert [e["train"] for e in by_epoch(pair.log3).values()] == expected
    assert_same_history(h2, h3)


def test_3_generator_running_dry_stops_training_like_keras2():
    pair = Pair()
    h2 = fit2(pair, batches(count=5), steps_per_epoch=2, epochs=4)
    with pytest.warns(UserWarning, match="ran out"):
        h3 = fit3(pair, batches(count=5), steps_per_epoch=2, epochs=4, workers=1)
    # Epoch 3 gets the last batch, is recorded, and training stops.
    expected = [[0, 1], [2, 3], [4]]
    assert [e["train"] for e in by_epoch(pair.log2).values()] == expected
    assert [e["train"] for e in by_epoch(pair.log3).values()] == expected
    assert_same_history(h2, h3)


def test_4_initial_epoch_numbering():
    pair = Pair()
    h2 = fit2(pair, batches(), steps_per_epoch=2, epochs=5, initial_epoch=3)
    h3 = fit3(pair, batches(), steps_per_epoch=2, epochs=5, initial_epoch=3)
    assert list(by_epoch(pair.log2)) == list(by_epoch(pair.log3)) == [3, 4]
    assert h2.epoch == h3.epoch == [3, 4]
    assert [e["train"] for e in by_epoch(pair.log3).values()] == [[0, 1], [2, 3]]
    assert_same_history(h2, h3)


def test_5_history_keys_lengths_and_legacy_names():
    pair = Pair()
    kw = dict(steps_per_epoch=2, epochs=3, validation_steps=1)
    h2 = fit2(pair, batches(), validation_data=batches(start=50), **kw)
    h3 = fit3(pair, batches(), validation_data=batches(start=50), **kw)
    assert set(h3.history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert all(len(v) == 3 for v in h3.history.values())
    # Training numbers agree; validation ones only in epoch 1, because tf_keras
    # validates later epochs on other batches (see test_6).
    assert_same_history(h2, h3, values_of=("loss", "accuracy"))
    assert h3.history["val_loss"][0] == pytest.approx(h2.history["val_loss"][0], rel=1e-5)
    # 2018 plotting code: H.history["acc"] resolves without changing the keys.
    assert h3.history["acc"] is h3.history["accuracy"]
    assert h3.history["val_acc"] is h3.history["val_accuracy"]
    assert "acc" not in h3.history


def test_6_validation_generator_gives_fresh_batches_each_epoch():
    pair = Pair()
    kw = dict(steps_per_epoch=1, epochs=3, validation_steps=2)
    fit2(pair, batches(), validation_data=batches(start=50), **kw)
    fit3(pair, batches(), validation_data=batches(start=50), **kw)
    seen2 = [e["infer"] for e in by_epoch(pair.log2).values()]
    seen3 = [e["infer"] for e in by_epoch(pair.log3).values()]
    # Both: validation_steps batches per epoch, never one seen before (Keras
    # 3's fit re-chains the first ones instead).
    for seen in (seen2, seen3):
        assert [len(s) for s in seen] == [2, 2, 2]
        flat = list(itertools.chain(*seen))
        assert flat == sorted(set(flat))
    # Documented difference: compat draws consecutive batches (as Keras 2.2);
    # tf_keras 2.21 discards the batches its prefetch read ahead each epoch.
    assert seen3 == [[50, 51], [52, 53], [54, 55]]
    assert seen2[0] == [50, 51]


def test_7_validation_generator_shorter_than_validation_steps():
    pair = Pair()
    kw = dict(steps_per_epoch=1, epochs=3, validation_steps=5)
    h2 = fit2(pair, batches(), validation_data=batches(start=50, count=3), **kw)
    with pytest.warns(UserWarning, match="validation data ran out"):
        h3 = fit3(pair, batches(), validation_data=batches(start=50, count=3), **kw)
    # Keras 2: epoch 1 validates on the 3 batches there are; later epochs are
    # not validated at all (no val_* entries), and training goes on.
    for log in (pair.log2, pair.log3):
        assert [e["infer"] for e in by_epoch(log).values()] == [[50, 51, 52], [], []]
    assert len(h3.history["loss"]) == 3 and len(h3.history["val_loss"]) == 1
    assert_same_history(h2, h3)


def test_8_validation_arrays_with_sample_weights():
    pair = Pair()
    x, y, w = make_batch(70, rows=40, weights=True)
    kw = dict(steps_per_epoch=2, epochs=2, validation_data=(x, y, w))
    h2 = fit2(pair, batches(), **kw)
    h3 = fit3(pair, batches(), **kw)
    assert_same_history(h2, h3)
    # 40 rows are evaluated in batches of 32 (Keras 2's default), each epoch.
    for log in (pair.log2, pair.log3):
        assert [len(e["infer"]) for e in by_epoch(log).values()] == [2, 2]


def test_9_predict_generator_one_row_per_input_row():
    pair = Pair()
    sizes = [3, 1, 4]

    def uneven():
        for batch_id, rows in enumerate(sizes):
            yield make_batch(batch_id, rows=rows)[0]  # inputs only

    p2 = pair.k2.predict_generator(uneven(), steps=3)
    p3 = compat.predict_generator(pair.k3, uneven(), steps=3, workers=0)
    assert p3.shape == p2.shape == (sum(sizes), 2)
    np.testing.assert_allclose(p3, p2, rtol=1e-5)
    # One model call per step, in order.
    assert [v for _, v in pair.log2] == [v for _, v in pair.log3] == [0, 1, 2]
    # Asking for more steps than there are: both return the rows there were.
    p2 = pair.k2.predict_generator(uneven(), steps=5)
    with pytest.warns(UserWarning, match="ran out"):
        p3 = compat.predict_generator(pair.k3, uneven(), steps=5)
    assert p3.shape == p2.shape == (sum(sizes), 2)
    # (x, y) batches: the targets are ignored. A Sequence: its length is the steps.
    p3 = compat.predict_generator(pair.k3, batches(count=2), steps=2)
    assert p3.shape == (2 * ROWS, 2)
    p2 = pair.k2.predict_generator(K2Sequence(3))
    p3 = compat.predict_generator(pair.k3, K3Sequence(3), workers=2)
    assert p3.shape == p2.shape == (3 * ROWS, 2)
    np.testing.assert_allclose(p3, p2, rtol=1e-5)


def test_10_evaluate_generator_returns_keras2_list():
    pair = Pair()
    r2 = pair.k2.evaluate_generator(batches(start=20), steps=3)
    r3 = compat.evaluate_generator(pair.k3, batches(start=20), steps=3, workers=0)
    assert isinstance(r3, list) and len(r3) == len(r2) == 2  # [loss, accuracy]
    np.testing.assert_allclose(r3, r2, rtol=1e-5)
    for log in (pair.log2, pair.log3):
        assert [v for k, v in log if k == "infer"] == [20, 21, 22]
    loss_only = Pair(metrics=())
    r3 = compat.evaluate_generator(loss_only.k3, batches(), steps=2)
    assert isinstance(r3, float)


def test_11_class_weight_changes_the_loss_as_in_keras2():
    weights = {0: 1.0, 1: 4.0}
    plain, weighted = Pair(), Pair()
    kw = dict(steps_per_epoch=3, epochs=2)
    h2 = fit2(weighted, batches(), class_weight=weights, **kw)
    h3 = fit3(weighted, batches(), class_weight=weights, **kw)
    assert_same_history(h2, h3)
    unweighted = fit3(plain, batches(), **kw)
    assert h3.history["loss"][0] != pytest.approx(unweighted.history["loss"][0], rel=1e-3)
    # Keras 3's own fit refuses class_weight for a generator.
    with pytest.raises(ValueError, match="class_weight"):
        plain.k3.fit(batches(), steps_per_epoch=1, class_weight=weights, verbose=0)


def test_12_sample_weights_from_the_generator():
    pair = Pair()
    kw = dict(steps_per_epoch=3, epochs=2)
    h2 = fit2(pair, batches(weights=True), **kw)
    h3 = fit3(pair, batches(weights=True), **kw)
    assert_same_history(h2, h3)
    unweighted = fit3(Pair(), batches(), **kw)
    assert h3.history["loss"][0] != pytest.approx(unweighted.history["loss"][0], rel=1e-3)


def test_13_class_weight_multiplies_sample_weights():
    # tf_keras 2.21 means to multiply them (its generator path crashes on it);
    # compat does, so class_weight + w equals training on w * class weight.
    weights = {0: 0.5, 1: 2.0}

    def premultiplied():
        for x, y, w in batches(weights=True):
            yield x, y, w * np.array([weights[c] for c in y.argmax(1)], "float32")

    a, b = Pair(), Pair()
    b.k3.set_weights(a.k3.get_weights())
    ha = fit3(a, batches(weights=True), steps_per_epoch=2, epochs=2, class_weight=weights)
    hb = fit3(b, premultiplied(), steps_per_epoch=2, epochs=2)
    assert ha.history["loss"] == hb.history["loss"]


def test_14_workers_zero_and_threads_train_on_the_same_batches():
    runs = {}
    for workers in (0, 1, 3):
        pair = Pair()
        fit3(pair, batches(), steps_per_epoch=3, epochs=2, workers=workers, max_queue_size=2)
        runs[workers] = by_epoch(pair.log3)
    reference = Pair()
    fit2(reference, batches(), steps_per_epoch=3, epochs=2, workers=1)
    assert runs[0] == runs[1] == runs[3] == by_epoch(reference.log2)


def test_15_workers_run_the_generator_beside_training():
    """workers=1: batch 2 is produced *while* the model is on batch 1; workers=0: main thread."""
    second_drawn = threading.Event()
    threads = []

    def watched():
        for batch_id in itertools.count():
            threads.append(threading.current_thread())
            if batch_id == 1:
                second_drawn.set()
            yield make_batch(batch_id)

    class WaitForProducer(keras.callbacks.Callback):
        def on_train_batch_end(self, step, logs=None):
            if step == 0:  # training is blocked here; only a parallel producer gets on
                self.overlapped = second_drawn.wait(timeout=20)

    waiter = WaitForProducer()
    compat.fit_generator(
        Pair().k3, watched(), steps_per_epoch=2, epochs=1, verbose=0, workers=1,
        max_queue_size=1, callbacks=[waiter],
    )  # fmt: skip
    assert waiter.overlapped
    assert threading.main_thread() not in threads

    threads.clear()
    compat.fit_generator(Pair().k3, watched(), steps_per_epoch=2, verbose=0, workers=0)
    assert threads == [threading.main_thread()] * 2


def test_16_multi_input_model_fed_dicts_from_a_file(tmp_path: Path):
    # One sample per line: a1,a2,b,label -- read line by line, as tutorials did.
    path = tmp_path / "samples.csv"
    rng = np.random.default_rng(0)
    lines = []
    for i in range(10):
        a1, a2, b = rng.normal(size=3)
        lines.append(f"{a1:.4f},{a2:.4f},{b:.4f},{i % 2}")
    path.write_text("\n".join(lines) + "\n")

    def file_batches(bs=3):
        batch_id = 0
        with open(path) as f:
            while True:
                rows = []
                while len(rows) < bs:
                    line = f.readline()
                    if not line:  # wrap around at the end of the file
                        f.seek(0)
                        continue
                    rows.append([float(v) for v in line.strip().split(",")])
                rows = np.array(rows, dtype="float32")
                a = rows[:, :2].copy()
                a[0, 0] = batch_id / 100  # the batch number, for the recorder
                batch_id += 1
                targets = np.eye(2, dtype="float32")[rows[:, 3].astype(int)]
                yield {"a": a, "b": rows[:, 2:3]}, {"out": targets}

    pair = Pair(inputs="multi")
    h2 = fit2(pair, file_batches(), steps_per_epoch=3, epochs=2)
    h3 = fit3(pair, file_batches(), steps_per_epoch=3, epochs=2, workers=0)
    assert by_epoch(pair.log2) == by_epoch(pair.log3)
    assert [e["train"] for e in by_epoch(pair.log3).values()] == [[0, 1, 2], [3, 4, 5]]
    assert_same_history(h2, h3)
    preds = compat.predict_generator(pair.k3, (x for x, _ in file_batches()), steps=2)
    assert preds.shape == (6, 2)


@pytest.mark.parametrize("shuffle", [True, False])
def test_17_sequence_with_shuffle(shuffle: bool):
    pair = Pair()
    seq2, seq3 = K2Sequence(4), K3Sequence(4)
    random.seed(7)
    h2 = fit2(pair, seq2, epochs=2, shuffle=shuffle)
    random.seed(7)  # both use Python's random.shuffle, once per epoch
    h3 = fit3(pair, seq3, epochs=2, shuffle=shuffle, workers=0)
    orders = [e["train"] for e in by_epoch(pair.log3).values()]
    assert orders == [e["train"] for e in by_epoch(pair.log2).values()]
    assert all(sorted(order) == [0, 1, 2, 3] for order in orders)
    assert (orders != [[0, 1, 2, 3]] * 2) is shuffle
    assert seq2.epoch_ends == seq3.epoch_ends == 2
    assert_same_history(h2, h3)


def test_18_sequence_steps_shorter_and_longer_than_its_length():
    pair = Pair()
    seq2, seq3 = K2Sequence(4), K3Sequence(4)
    random.seed(3)
    fit2(pair, seq2, epochs=3, steps_per_epoch=2)
    random.seed(3)
    fit3(pair, seq3, epochs=3, steps_per_epoch=2)
    # Each epoch: a fresh shuffle, its first 2 items; on_epoch_end after each.
    assert by_epoch(pair.log2) == by_epoch(pair.log3)
    assert seq2.epoch_ends == seq3.epoch_ends == 3

    longer = Pair()
    seq2, seq3 = K2Sequence(3), K3Sequence(3)
    h2 = fit2(longer, seq2, epochs=3, steps_per_epoch=5, shuffle=False)
    with pytest.warns(UserWarning, match="ran out"):
        h3 = fit3(longer, seq3, epochs=3, steps_per_epoch=5, shuffle=False)
    # One pass, then training stops (tf_keras 2.21; Keras 2.2 wrapped around).
    assert [e["train"] for e in by_epoch(longer.log3).values()] == [[0, 1, 2]]
    assert by_epoch(longer.log2) == by_epoch(longer.log3)
    assert seq2.epoch_ends == seq3.epoch_ends == 1
    assert_same_history(h2, h3)


@pytest.mark.parametrize("use_multiprocessing", [False, True])
def test_19_sequence_in_parallel_keeps_order(use_multiprocessing: bool):
    serial, parallel = Pair(), Pair()
    random.seed(11)
    fit3(serial, K3Sequence(6), epochs=2, workers=0)
    random.seed(11)
    seq = K3Sequence(6)
    fit3(parallel, seq, epochs=2, workers=2, use_multiprocessing=use_multiprocessing)
    assert by_epoch(parallel.log3) == by_epoch(serial.log3)
    assert seq.epoch_ends == 2  # called in this process, once per epoch


def test_20_legacy_sgd_decay_matches_keras2():
    opt2 = tf_keras.optimizers.legacy.SGD(lr=0.2, momentum=0.9, decay=0.5, nesterov=True)
    opt3 = compat.SGD(lr=0.2, momentum=0.9, decay=0.5, nesterov=True)
    pair = Pair(optimizers=(opt2, opt3))
    h2 = fit2(pair, batches(), steps_per_epoch=4, epochs=2)
    h3 = fit3(pair, batches(), steps_per_epoch=4, epochs=2)
    assert_same_history(h2, h3)
    for w2, w3 in zip(pair.k2.get_weights(), pair.k3.get_weights(), strict=True):
        np.testing.assert_allclose(w3, w2, rtol=1e-5, atol=1e-6)
    # Without decay the weights end elsewhere: the test can tell.
    plain = Pair(optimizers=(tf_keras.optimizers.SGD(0.2), compat.SGD(lr=0.2)))
    fit3(plain, batches(), steps_per_epoch=4, epochs=2)
    assert not np.allclose(plain.k3.get_weights()[0], pair.k3.get_weights()[0])


def test_21_sgd_refuses_what_it_does_not_implement():
    with pytest.raises(NotImplementedError, match="clipnorm"):
        compat.SGD(lr=0.1, clipnorm=1.0)
    assert float(keras.ops.convert_to_numpy(compat.SGD().learning_rate)) == pytest.approx(0.01)


# --------------------------------------------------------------------------- ImageDataGenerator


def _images(n=6, size=8):
    return np.random.default_rng(0).integers(0, 256, size=(n, size, size, 3), dtype=np.uint8)


def test_22_image_data_generator_rescale_matches_keras2():
    x, y = _images(), np.arange(6)
    ours = next(compat.ImageDataGenerator(rescale=1 / 255).flow(x, y, batch_size=6, shuffle=False))
    theirs = next(
        tf_keras.preprocessing.image.ImageDataGenerator(rescale=1 / 255).flow(
            x, y, batch_size=6, shuffle=False
        )
    )
    assert ours[0].dtype == theirs[0].dtype == np.float32
    np.testing.assert_allclose(ours[0], theirs[0], rtol=1e-6)
    np.testing.assert_array_equal(ours[1], theirs[1])


def test_23_flow_batches_shuffle_seed_and_sample_weight():
    x, y, w = _images(5), np.arange(5), np.linspace(1, 2, 5)
    aug = compat.ImageDataGenerator(horizontal_flip=True)
    flow = aug.flow(x, y, batch_size=2, sample_weight=w, seed=3)
    got = [next(flow) for _ in range(3)]  # one pass: 2 + 2 + 1 rows
    assert [len(b[0]) for b in got] == [2, 2, 1]
    labels = np.concatenate([b[1] for b in got])
    assert sorted(labels) == [0, 1, 2, 3, 4]
    for images, ids, weights in got:
        np.testing.assert_allclose(weights, w[ids])
        for image, i in zip(images, ids, strict=True):  # each row: itself or its mirror
            assert np.array_equal(image, x[i]) or np.array_equal(image, x[i][:, ::-1])
    again = [next(aug.flow(x, y, batch_size=2, sample_weight=w, seed=3)) for _ in range(1)]
    np.testing.assert_array_equal(again[0][0], got[0][0])
    assert len(flow) == 3 and isinstance(flow, keras.utils.PyDataset)
    assert isinstance(flow, compat.NumpyArrayIterator)


def test_24_image_data_generator_refuses_unsupported_arguments():
    with pytest.raises(NotImplementedError, match="featurewise_center"):
        compat.ImageDataGenerator(featurewise_center=True)
    with pytest.raises(NotImplementedError, match="brightness_range"):
        compat.ImageDataGenerator(rotation_range=10, brightness_range=(0.5, 1.5))
    with pytest.raises(TypeError, match="not_an_argument"):
        compat.ImageDataGenerator(not_an_argument=1)
    with pytest.raises(NotImplementedError, match="save_to_dir"):
        compat.ImageDataGenerator().flow(_images(), save_to_dir="/tmp")
    compat.ImageDataGenerator(featurewise_center=False, data_format="channels_last")  # defaults


def test_25_tutorial_augmentation_keeps_shapes_and_range():
    aug = compat.ImageDataGenerator(
        rotation_range=20, zoom_range=0.15, width_shift_range=0.2, height_shift_range=0.2,
        shear_range=0.15, horizontal_flip=True, fill_mode="nearest",
    )  # fmt: skip
    x = _images(4, size=16)
    images, labels = next(aug.flow(x, np.arange(4), batch_size=4, seed=0))
    assert images.shape == x.shape and images.dtype == np.float32
    assert images.min() >= 0 and images.max() <= 255
    assert not np.array_equal(images[np.argsort(labels)], x.astype("float32"))
    # Keras 2's pixel units for shifts >= 1 are accepted (2 px of 16).
    compat.ImageDataGenerator(width_shift_range=2).flow(x, batch_size=2)


# --------------------------------------------------------------------------- API surface


def test_25b_the_same_names_from_fitlab_and_fitlab_compat():
    names = {"fit_generator", "evaluate_generator", "predict_generator", "enable_legacy_methods",
             "legacy_history", "SGD", "ImageDataGenerator"}  # fmt: skip
    assert names < set(compat.__all__)
    assert all(getattr(fitlab, name) is getattr(compat, name) for name in names)


# A 2018 script, run in a fresh process: the warning is once per process.
LEGACY_SCRIPT = """\
import json, warnings
import keras, numpy as np
from fitlab import compat

compat.enable_legacy_methods()
model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(2, activation="softmax")])
model.compile("sgd", "categorical_crossentropy", metrics=["accuracy"])

def batches():
    while True:
        yield np.ones((4, 2), "float32"), np.eye(2, dtype="float32")[[0, 1, 0, 1]]

with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    history = model.fit_generator(batches(), steps_per_epoch=1, epochs=2, verbose=0)
    model.fit_generator(batches(), steps_per_epoch=1, verbose=0)
    model.predict_generator(batches(), steps=1)
    model.evaluate_generator(batches(), steps=1)
print(json.dumps({
    "acc": len(history.history["acc"]),
    "warnings": [(w.filename, w.lineno, str(w.message)) for w in caught
                 if issubclass(w.category, DeprecationWarning) and "Keras 2" in str(w.message)],
}))
"""


def test_26_enable_legacy_methods_and_warn_once(tmp_path: Path):
    script = tmp_path / "legacy.py"
    script.write_text(LEGACY_SCRIPT)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    env.pop("TF_USE_LEGACY_KERAS", None)
    run = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=300, env=env
    )
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(run.stdout.splitlines()[-1])
    assert result["acc"] == 2  # the method returns a History that answers "acc"
    caught = result["warnings"]
    assert len(caught) == 3  # once per function
    assert "model.fit(" in caught[0][2] and "model.predict(" in caught[1][2]
    lines = script.read_text().splitlines()
    calls = ("fit_generator", "predict_generator", "evaluate_generator")
    for (filename, lineno, _), call in zip(caught, calls, strict=True):
        assert filename == str(script)  # points at the caller's line, not into fitlab
        assert f"model.{call}(" in lines[lineno - 1]


def test_27_clear_errors():
    model = Pair().k3
    with pytest.raises(ValueError, match="steps_per_epoch"):
        compat.fit_generator(model, batches(), epochs=1, verbose=0)
    with pytest.raises(ValueError, match="validation_steps"):
        compat.fit_generator(
            model, batches(), steps_per_epoch=1, validation_data=batches(), verbose=0
        )
    with pytest.raises(ValueError, match=r"\(x, y\)"):
        compat.fit_generator(model, (x for x, y in batches()), steps_per_epoch=1, verbose=0)
    with pytest.raises(ValueError, match="workers"):
        compat.fit_generator(model, batches(), steps_per_epoch=1, workers=-1, verbose=0)
    with pytest.raises(ValueError, match=r"no weight for class\(es\) \[1\]"):
        compat.fit_generator(model, batches(), steps_per_epoch=1, class_weight={0: 1.0})
    with pytest.raises(TypeError, match="generator"):
        compat.fit_generator(model, [make_batch(0)], steps_per_epoch=1, verbose=0)

    def broken():
        yield make_batch(0)
        raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError, match="disk on fire"):  # from the worker thread
        compat.fit_generator(model, broken(), steps_per_epoch=3, verbose=0, workers=1)


def test_28_legacy_history_on_a_modern_fit():
    model = Pair().k3
    x, y = make_batch(0, rows=8)
    history = compat.legacy_history(model.fit(x, y, epochs=2, verbose=0))
    assert history.history["acc"] == history.history["accuracy"]
    assert history.history.get("val_acc") is None
    with pytest.raises(KeyError):
        history.history["nope"]


# --------------------------------------------------------------------------- callbacks

_HOOKS = (
    "on_train_begin", "on_train_end", "on_epoch_begin", "on_epoch_end",
    "on_train_batch_begin", "on_train_batch_end", "on_test_begin", "on_test_end",
    "on_test_batch_begin", "on_test_batch_end",
)  # fmt: skip


def _hook_recorder(base, calls: list, stop_at: tuple[int, int] | None = None):
    """A callback that lists every hook called (with its epoch / step number)."""

    class HookRecorder(base):
        epoch = None

    def hook(name):
        def method(self, *args, **kwargs):
            number = args[0] if args and isinstance(args[0], int) else None
            calls.append((name, number))
            if name == "on_epoch_begin":
                self.epoch = number
            if name == "on_train_batch_end" and stop_at == (self.epoch, number):
                self.model.stop_training = True

        return method

    for name in _HOOKS:
        setattr(HookRecorder, name, hook(name))
    return HookRecorder()


def test_29_callbacks_see_the_hooks_keras2_calls():
    pair = Pair()
    calls2, calls3 = [], []
    kw = dict(steps_per_epoch=2, epochs=2, validation_steps=2, verbose=0)
    pair.k2.fit_generator(
        batches(), validation_data=batches(start=50), workers=1,
        callbacks=[_hook_recorder(tf_keras.callbacks.Callback, calls2)], **kw,
    )  # fmt: skip
    compat.fit_generator(
        pair.k3, batches(), validation_data=batches(start=50),
        callbacks=[_hook_recorder(keras.callbacks.Callback, calls3)], **kw,
    )  # fmt: skip
    assert calls3 == calls2
    assert calls3.count(("on_test_batch_end", 1)) == 2  # validation steps, each epoch


def test_30_stop_training_from_a_callback():
    pair = Pair()
    calls2, calls3 = [], []
    kw = dict(steps_per_epoch=3, epochs=3, verbose=0)
    h2 = pair.k2.fit_generator(
        batches(), workers=1, **kw,
        callbacks=[*pair.callbacks2(), _hook_recorder(tf_keras.callbacks.Callback, calls2, (1, 0))],
    )  # fmt: skip
    h3 = compat.fit_generator(
        pair.k3, batches(), **kw,
        callbacks=[*pair.callbacks3(), _hook_recorder(keras.callbacks.Callback, calls3, (1, 0))],
    )  # fmt: skip
    # Epoch 2 ends after its first batch, is recorded, and training ends.
    for log in (pair.log2, pair.log3):
        assert [e["train"] for e in by_epoch(log).values()] == [[0, 1, 2], [3]]
    assert calls3 == calls2
    assert_same_history(h2, h3)


def test_31_an_epoch_cut_short_by_a_callback_ends_its_sequence_pass():
    pair = Pair()
    seq2, seq3 = K2Sequence(6), K3Sequence(6)
    kw = dict(epochs=3, shuffle=False, verbose=0)
    pair.k2.fit_generator(
        seq2, workers=1, callbacks=[_hook_recorder(tf_keras.callbacks.Callback, [], (1, 0))], **kw
    )
    compat.fit_generator(
        pair.k3, seq3, workers=2, callbacks=[_hook_recorder(keras.callbacks.Callback, [], (1, 0))],
        **kw,
    )  # fmt: skip
    # Epoch 2 stops after one batch: on_epoch_end for epoch 1 only, as tf_keras
    # reading on its own thread (with workers=2 its enqueuer finishes the pass
    # in the background and calls it again: a read-ahead artefact) ...
    assert seq2.epoch_ends == seq3.epoch_ends == 1
    # ... and compat's worker threads are gone when fit_generator returns.
    assert not [t for t in threading.enumerate() if t.name.startswith("fitlab-sequence")]


# --------------------------------------------------------------------------- one way to average


def test_32_history_is_averaged_as_train_on_batches_averages_it():
    # fitlab averages train_on_batch logs one way: fit_generator's History equals
    # train_on_batches' on the same batches, to the bit, also for a weighted
    # metric under sample weights that vary (where tf_keras, accumulating the
    # metric over the epoch, reports other numbers: see fitlab.compat's docstring).
    data = [make_batch(batch_id, weights=True) for batch_id in range(4)]
    models = []
    for _ in range(2):
        model = _build(keras, [])
        model.compile(
            keras.optimizers.SGD(LR), "categorical_crossentropy",
            weighted_metrics=["accuracy"], run_eagerly=True,
        )  # fmt: skip
        models.append(model)
    models[1].set_weights(models[0].get_weights())
    kw = dict(steps_per_epoch=2, epochs=2, verbose=0)
    legacy = compat.fit_generator(models[0], iter(data), workers=0, **kw)
    modern = fitlab.train_on_batches(models[1], iter(data), **kw)
    assert legacy.history == modern.history
    assert set(legacy.history) == {"loss", "accuracy"}
