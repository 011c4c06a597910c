"""predict_all gives one prediction per row from every kind of source; report and plot_confusion."""

from __future__ import annotations

import ast
import inspect

import keras
import numpy as np
import pytest

from fitlab import evaluate
from fitlab.evaluate import plot_confusion, predict_all, report

CLASSES = ("daffodil", "snowdrop", "tulip")


@pytest.fixture(scope="module")
def model():
    keras.utils.set_random_seed(0)
    return keras.Sequential(
        [
            keras.Input((8, 8, 3)),
            keras.layers.Rescaling(1 / 255),
            keras.layers.Flatten(),
            keras.layers.Dense(len(CLASSES), activation="softmax"),
        ]
    )


def rows(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 8, 8, 3)).astype("float32")


def eval_generator(x: np.ndarray, bs: int, mode: str = "eval", with_labels: bool = True):
    """A finite generator in the tutorial's style (mode="train" wraps forever)."""
    while True:
        for start in range(0, len(x), bs):
            batch = x[start : start + bs]
            yield (batch, np.zeros(len(batch))) if with_labels else batch
        if mode == "eval":
            return


def tutorial_eval_generator(x: np.ndarray, bs: int):
    """The tutorial's eval-mode bug: when len(x) divides by bs, a last empty batch."""
    for start in range(0, len(x) + 1, bs):
        yield x[start : start + bs], np.zeros(len(x[start : start + bs]))


@pytest.mark.parametrize("n, bs", [(12, 4), (10, 4), (3, 32)])
def test_arrays_give_one_row_per_row_in_order(model, n, bs):
    x = rows(n)
    expected = model.predict(x, verbose=0)
    np.testing.assert_allclose(predict_all(model, x, batch_size=bs), expected, rtol=1e-6)
    np.testing.assert_allclose(
        predict_all(model, (x, np.zeros(n)), batch_size=bs), expected, rtol=1e-6
    )
    tensor = keras.ops.convert_to_tensor(x)  # iterable too, but must not be read row by row
    np.testing.assert_allclose(predict_all(model, tensor, batch_size=bs), expected, rtol=1e-6)


@pytest.mark.parametrize("n, bs", [(12, 4), (10, 4)])  # divides / does not divide
def test_finite_generator_is_read_to_its_end(model, n, bs):
    x = rows(n)
    expected = model.predict(x, verbose=0)
    for gen in (eval_generator(x, bs), tutorial_eval_generator(x, bs)):
        out = predict_all(model, gen)
        assert out.shape == (n, len(CLASSES))
        np.testing.assert_allclose(out, expected, rtol=1e-6)


@pytest.mark.parametrize("shape", ["x", "xy", "xyw"])
def test_batches_may_be_x_or_x_y_or_x_y_w(model, shape):
    x = rows(7)
    parts = {"x": lambda b: b, "xy": lambda b: (b, b[:, 0]), "xyw": lambda b: (b, b[:, 0], b[:, 1])}
    batches = [parts[shape](x[i : i + 3]) for i in range(0, 7, 3)]  # a list of batches
    np.testing.assert_allclose(predict_all(model, batches), model.predict(x, verbose=0), rtol=1e-6)


def test_train_mode_generator_is_refused_unless_steps_are_given(model, tmp_path):
    from fitlab import csv_image_generator, load_csv, make_synthetic_csv

    path = make_synthetic_csv(tmp_path / "six.csv", rows=6, size=8, classes=CLASSES)
    x, _ = load_csv(path)
    with pytest.raises(ValueError, match="train mode.*mode='eval'.*steps="):
        predict_all(model, csv_image_generator(path, 4, CLASSES, mode="train"))
    endless = csv_image_generator(path, 4, CLASSES, mode="train")
    out = predict_all(model, endless, steps=3)  # 4 + (2 + 2 wrapped) + 4 rows
    expected = model.predict(np.concatenate([x, x[:2], x[2:6]]), verbose=0)
    np.testing.assert_allclose(out, expected, rtol=1e-6)


def test_steps_never_pulls_an_extra_batch(model):
    pulled = []

    def counting():
        for i in range(5):
            pulled.append(i)
            yield rows(2, seed=i)

    assert predict_all(model, counting(), steps=2).shape == (4, len(CLASSES))
    assert pulled == [0, 1]


def test_steps_beyond_the_end_warn(model):
    with pytest.warns(UserWarning, match="steps=5 but the source ended after 2 batches"):
        out = predict_all(model, eval_generator(rows(6), 3), steps=5)
    assert len(out) == 6


class Batches(keras.utils.PyDataset):
    def __init__(self, x, bs):
        super().__init__()
        self.x, self.bs = x, bs

    def __len__(self):
        return -(-len(self.x) // self.bs)

    def __getitem__(self, i):
        batch = self.x[i * self.bs : (i + 1) * self.bs]
        return batch, np.zeros(len(batch))


@pytest.mark.parametrize("n, bs", [(12, 4), (10, 4)])
def test_pydataset_gives_each_batch_once(model, n, bs):
    x = rows(n)
    out = predict_all(model, Batches(x, bs))
    np.testing.assert_allclose(out, model.predict(x, verbose=0), rtol=1e-6)
    assert len(predict_all(model, Batches(x, bs), steps=1)) == bs


@pytest.mark.parametrize("n, bs", [(12, 4), (10, 4)])
def test_tf_dataset_is_read_to_its_end(model, n, bs):
    import tensorflow as tf

    x = rows(n)
    ds = tf.data.Dataset.from_tensor_slices((x, np.zeros(n))).batch(bs)
    np.testing.assert_allclose(predict_all(model, ds), model.predict(x, verbose=0), rtol=1e-6)
    with pytest.raises(ValueError, match="repeats forever"):
        predict_all(model, ds.repeat())
    sizes = [min(bs, n - start) for start in range(0, n, bs)] * 2  # two passes
    assert len(predict_all(model, ds.repeat(), steps=4)) == sum(sizes[:4])


def test_fitlab_sources_give_one_prediction_per_csv_row(model, tmp_path):
    from fitlab import CSVSequence, csv_dataset, csv_image_generator, load_csv, make_synthetic_csv

    path = make_synthetic_csv(tmp_path / "test.csv", rows=10, size=8, classes=CLASSES, seed=1)
    images, _ = load_csv(path)
    expected = model.predict(images, verbose=0)
    sources = {
        "CSVSequence": CSVSequence(path, batch_size=4, classes=CLASSES),
        "csv_image_generator": csv_image_generator(path, 5, list(CLASSES), mode="eval"),
        "csv_dataset": csv_dataset(path, batch_size=4, classes=CLASSES, size=8),
    }
    for name, source in sources.items():
        out = predict_all(model, source)
        assert out.shape == (10, len(CLASSES)), name
        np.testing.assert_allclose(out, expected, rtol=1e-5, err_msg=name)
    with pytest.raises(ValueError, match="train mode"):
        predict_all(model, csv_image_generator(path, 5, list(CLASSES), mode="train"))
    with pytest.raises(ValueError, match="shuffle=False"):
        predict_all(model, CSVSequence(path, batch_size=4, classes=CLASSES, shuffle=True))


def test_empty_source_and_bad_sources(model):
    assert predict_all(model, iter([])).shape == (0, len(CLASSES))
    with pytest.raises(TypeError, match="a int is not a data source"):
        predict_all(model, 3)
    with pytest.raises(ValueError, match="steps must be a positive"):
        predict_all(model, rows(2), steps=0)


def test_evaluate_does_not_import_tensorflow_at_module_level():
    tree = ast.parse(inspect.getsource(evaluate))
    top = [n for n in tree.body if isinstance(n, ast.Import | ast.ImportFrom)]
    names = [a.name for n in top for a in n.names] + [
        n.module or "" for n in top if isinstance(n, ast.ImportFrom)
    ]
    assert not any(name.split(".")[0] == "tensorflow" for name in names)


# -- report -------------------------------------------------------------------

Y_TRUE = np.array([0, 0, 1, 1, 2, 2, 2])
Y_PRED = np.array([0, 1, 1, 1, 2, 0, 2])


def test_report_accepts_ints_one_hot_probabilities_and_names():
    from sklearn.metrics import classification_report

    expected = classification_report(Y_TRUE, Y_PRED, target_names=list(CLASSES), zero_division=0)
    probs = np.full((len(Y_PRED), 3), 0.1)
    probs[np.arange(len(Y_PRED)), Y_PRED] = 0.8
    names = np.array(CLASSES)[Y_TRUE]
    assert report(Y_TRUE, Y_PRED, CLASSES) == expected
    assert report(np.eye(3)[Y_TRUE], probs, CLASSES) == expected
    assert report(names, Y_PRED, CLASSES) == expected
    assert "snowdrop" in expected


def test_report_lists_every_class_even_when_absent():
    text = report([0, 0], [0, 0], CLASSES)
    assert all(name in text for name in CLASSES)


def test_report_refuses_mismatched_rows_and_unknown_names():
    with pytest.raises(ValueError, match="y_true has 7 rows but y_pred has 6"):
        report(Y_TRUE, Y_PRED[:-1], CLASSES)
    with pytest.raises(ValueError, match="not in class_names.*rose"):
        report(["rose"], [0], CLASSES)
    with pytest.raises(ValueError, match="4 columns but there are 3"):
        report(Y_TRUE, np.zeros((7, 4)), CLASSES)


# -- plot_confusion -------------------------------------------------------------


def _cell_texts(ax, k):
    texts = {
        (round(t.get_position()[1]), round(t.get_position()[0])): t.get_text() for t in ax.texts
    }
    return np.array([[texts[i, j] for j in range(k)] for i in range(k)])


def test_confusion_counts_are_written_in_the_cells():
    fig = plot_confusion(Y_TRUE, Y_PRED, CLASSES)
    ax = fig.axes[0]
    assert len(fig.axes) == 2  # the matrix and its colorbar
    assert _cell_texts(ax, 3).tolist() == [["1", "1", "0"], ["0", "2", "0"], ["1", "0", "2"]]
    assert [t.get_text() for t in ax.get_xticklabels()] == list(CLASSES)
    assert ax.get_xlabel() == "predicted" and ax.get_ylabel() == "true"


def test_confusion_with_17_classes_is_readable_and_normalizes():
    import matplotlib.pyplot as plt

    from fitlab import CLASS_NAMES

    rng = np.random.default_rng(0)
    y_true = np.repeat(np.arange(17), 20)
    y_pred = np.where(rng.random(len(y_true)) < 0.7, y_true, rng.integers(0, 17, len(y_true)))
    before = plt.get_fignums()
    fig = plot_confusion(y_true, y_pred, CLASS_NAMES, normalize="true")
    assert plt.get_fignums() == before  # not registered with pyplot
    ax = fig.axes[0]
    assert len(ax.texts) == 17 * 17
    assert {t.get_rotation() for t in ax.get_xticklabels()} == {60.0}
    shares = _cell_texts(ax, 17).astype(float)
    np.testing.assert_allclose(shares.sum(axis=1), 1.0, atol=17 * 0.005)  # 2-decimal cells
    assert fig.get_size_inches()[1] >= 9  # grows with the number of classes


def test_confusion_draws_into_a_given_axes():
    from matplotlib.figure import Figure

    fig = Figure()
    ax = fig.add_subplot()
    assert plot_confusion(Y_TRUE, Y_PRED, CLASSES, ax=ax) is fig
    with pytest.raises(ValueError, match="normalize='rows'"):
        plot_confusion(Y_TRUE, Y_PRED, CLASSES, normalize="rows")


@pytest.mark.realdata
def test_every_source_predicts_the_340_test_rows_once(flowers17_csvs):
    from fitlab import CSVSequence, MiniVGGNet, csv_dataset, csv_image_generator, load_csv

    train, test, classes = flowers17_csvs
    keras.utils.set_random_seed(0)
    model = MiniVGGNet.build(64, 64, 3, classes=len(classes))
    images, labels = load_csv(test)
    expected = predict_all(model, images, batch_size=34)  # 340 = 10 × 34: no short batch
    assert expected.shape == (340, 17)
    sources = {
        "CSVSequence": CSVSequence(test, batch_size=34, classes=classes),
        "csv_image_generator": csv_image_generator(test, 32, list(classes), mode="eval"),
        "csv_dataset": csv_dataset(test, batch_size=32, classes=classes),
    }
    for name, source in sources.items():
        np.testing.assert_allclose(predict_all(model, source), expected, atol=1e-5, err_msg=name)
    text = report(labels, expected, classes)  # labels are the CSV's class-name strings
    assert all(f"{name} " in text for name in classes) and "340" in text
