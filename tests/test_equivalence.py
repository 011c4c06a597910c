"""The workbook's central claim: the ways to train are one computation.

One seed, one set of initial weights, one batch order, no augmentation, no
XLA, on the CPU with deterministic ops: two epochs of MiniVGGNet (dropout and
batch norm included) by

* ``fit`` on arrays (``shuffle=False``),
* ``fit`` on a Python generator,
* ``fit`` on a ``CSVSequence`` and on a ``csv_dataset`` (the package's sources),
* ``train_on_batches`` (a ``train_on_batch`` loop) on arrays,
* ``CompiledLoop`` (a ``tf.function`` ``GradientTape`` loop) on a ``csv_dataset``

give the same per-epoch losses and accuracies and bit-identical weights.

The last test pins a trap the package avoids: ``fit`` on a ``tf.data``
pipeline of *unknown* cardinality (any ``filter`` hides the length; that is
why ``csv_dataset`` counts its rows and declares it). At the end of every epoch
Keras 3 calls its step once more to find that the data has run out; that
call trains on nothing and changes no weight, but it still advances the
optimizer's iteration counter (so the legacy decay schedule runs one batch
ahead per epoch) and every dropout seed. From the second epoch on, the runs
differ. Telling TensorFlow the length
(``tf.data.experimental.assert_cardinality``) removes the phantom step.

Why the dropout masks match: every run seeds Keras before building, so each
Dropout layer's seed generator starts from the same state, and every step
(``fit``'s, ``train_on_batch``'s, ``CompiledLoop``'s) draws each mask from
that state with the same stateless op. (XLA would draw other numbers, which
is why jit is off; see test_loop.py.)
"""

from __future__ import annotations

import keras
import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from fitlab import (  # noqa: E402
    CompiledLoop,
    CSVSequence,
    MiniVGGNet,
    classes_from_csv,
    csv_dataset,
    legacy_sgd,
    load_csv,
    make_synthetic_csv,
    train_on_batches,
)

SIZE, ROWS, BATCH, EPOCHS, SEED = 32, 48, 16, 2, 7
CLASSES = ("daffodil", "snowdrop", "tulip")


@pytest.fixture(scope="module")
def deterministic():
    tf.config.experimental.enable_op_determinism()
    yield
    # No public switch back; leave the rest of the session as it was.
    from tensorflow.python.framework import config as tf_config

    tf_config.disable_op_determinism()


@pytest.fixture(scope="module")
def csv(tmp_path_factory):
    path = tmp_path_factory.mktemp("equivalence") / "rows.csv"
    return make_synthetic_csv(path, rows=ROWS, size=SIZE, classes=CLASSES, seed=3)


@pytest.fixture(scope="module")
def runs(deterministic, csv):
    """(history, final weights) of every way to train, from the same start."""
    classes = classes_from_csv(csv)
    images, labels = load_csv(csv)
    y = keras.utils.to_categorical([classes.index(label) for label in labels], len(classes))
    keras.utils.set_random_seed(SEED)
    initial = MiniVGGNet.build(SIZE, SIZE, 3, len(classes)).get_weights()

    def fresh_model():
        keras.utils.set_random_seed(SEED)  # same seed-generator state for dropout
        model = MiniVGGNet.build(SIZE, SIZE, 3, len(classes))
        model.set_weights(initial)
        return model

    def compiled():
        model = fresh_model()
        model.compile(
            optimizer=legacy_sgd(),
            loss="categorical_crossentropy",
            metrics=["accuracy"],
            jit_compile=False,
        )
        return model

    def generator():
        while True:
            for start in range(0, ROWS, BATCH):
                yield images[start : start + BATCH], y[start : start + BATCH]

    steps = ROWS // BATCH
    results = {"initial": (None, initial)}

    model = compiled()
    history = model.fit(images, y, batch_size=BATCH, epochs=EPOCHS, shuffle=False, verbose=0)
    results["fit(arrays)"] = history, model.get_weights()

    model = compiled()
    history = model.fit(generator(), steps_per_epoch=steps, epochs=EPOCHS, verbose=0)
    results["fit(generator)"] = history, model.get_weights()

    model = compiled()
    sequence = CSVSequence(csv, BATCH, classes=classes)
    history = model.fit(sequence, epochs=EPOCHS, shuffle=False, verbose=0)
    results["fit(CSVSequence)"] = history, model.get_weights()

    model = compiled()
    dataset = csv_dataset(csv, BATCH, classes=classes, size=SIZE)
    history = model.fit(dataset, epochs=EPOCHS, verbose=0)
    results["fit(csv_dataset)"] = history, model.get_weights()

    model = compiled()
    history = train_on_batches(model, (images, y), EPOCHS, batch_size=BATCH, verbose=0)
    results["train_on_batches"] = history, model.get_weights()

    model = fresh_model()
    loop = CompiledLoop(
        model, legacy_sgd(), "categorical_crossentropy", jit_compile=False, mixed_precision=False
    )
    history = loop.fit(csv_dataset(csv, BATCH, classes=classes, size=SIZE), EPOCHS, verbose=0)
    results["CompiledLoop"] = history, model.get_weights()

    # The trap: fit on a pipeline whose length tf.data cannot know (any filter hides it).
    model = compiled()
    unknown = csv_dataset(csv, BATCH, classes=classes, size=SIZE).filter(lambda x, y: True)
    model.fit(unknown, epochs=1, verbose=0)
    results["fit(csv_dataset, unknown length), 1 epoch"] = model, None

    model = compiled()
    model.fit(images, y, batch_size=BATCH, epochs=1, shuffle=False, verbose=0)
    results["fit(arrays), 1 epoch"] = model, None
    return results


WAYS = [
    "fit(generator)",
    "fit(CSVSequence)",
    "fit(csv_dataset)",
    "train_on_batches",
    "CompiledLoop",
]


@pytest.mark.slow
@pytest.mark.parametrize("way", WAYS)
def test_same_epoch_losses_as_fit(runs, way):
    reference, _ = runs["fit(arrays)"]
    history, _ = runs[way]
    assert history.epoch == list(range(EPOCHS))
    np.testing.assert_allclose(history.history["loss"], reference.history["loss"], rtol=1e-5)
    np.testing.assert_allclose(
        history.history["accuracy"], reference.history["accuracy"], rtol=1e-5
    )


@pytest.mark.slow
@pytest.mark.parametrize("way", WAYS)
def test_bit_identical_weights(runs, way):
    _, reference = runs["fit(arrays)"]
    _, weights = runs[way]
    assert len(weights) == len(reference)
    for got, want in zip(weights, reference, strict=True):
        np.testing.assert_array_equal(got, want)  # largest difference 0.0


@pytest.mark.slow
def test_training_moved_the_weights(runs):
    """The claim is not vacuous: two epochs changed the network."""
    _, initial = runs["initial"]
    _, trained = runs["fit(arrays)"]
    assert any(not np.array_equal(a, b) for a, b in zip(initial, trained, strict=True))


@pytest.mark.slow
def test_fit_on_a_pipeline_of_unknown_length_takes_a_phantom_step(runs):
    """Same weights after epoch 1, but one extra optimizer iteration and dropout draw."""
    phantom, _ = runs["fit(csv_dataset, unknown length), 1 epoch"]
    clean, _ = runs["fit(arrays), 1 epoch"]
    for got, want in zip(phantom.get_weights(), clean.get_weights(), strict=True):
        np.testing.assert_array_equal(got, want)
    steps = ROWS // BATCH
    assert int(clean.optimizer.iterations) == steps
    assert int(phantom.optimizer.iterations) == steps + 1
    seeds = [v for v in phantom.variables if "seed_generator" in v.path]
    clean_seeds = [v for v in clean.variables if "seed_generator" in v.path]
    assert seeds and all(not np.array_equal(a, b) for a, b in zip(seeds, clean_seeds, strict=True))
