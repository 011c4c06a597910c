"""The tutorial's ``train.py``, end to end: the one module that uses every layer.

:func:`train_tutorial` prepares the CSVs, builds MiniVGGNet with the
tutorial's augmentation, compiles it with a recipe, trains it by one of the
four methods, and writes the report, the plot, the history and the model.
``python -m fitlab train`` calls it. It sits on top of every other module and
nothing in the package imports it (the command line does, lazily).

Examples
--------
>>> from fitlab.config import METHODS
>>> METHODS
('fit', 'generator', 'batch', 'loop')
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path

import keras
from sklearn.metrics import accuracy_score, f1_score

from fitlab.augment import TUTORIAL_AUGMENTATION, make_augmentation
from fitlab.callbacks.checkpoint import save_model_atomically
from fitlab.config import METHODS, RECIPES
from fitlab.data import (
    Flowers17Files,
    classes_from_csv,
    count_rows,
    encode_labels,
    load_csv,
    prepare_flowers17,
)
from fitlab.data.labels import one_hot_rows
from fitlab.evaluate import predict_all, report
from fitlab.files import writable_folder, write_atomically
from fitlab.loops import train_on_batches
from fitlab.models import MiniVGGNet
from fitlab.pipelines import CSVSequence
from fitlab.plots import plot_history
from fitlab.recipes import make_recipe


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
    files: Flowers17Files | None = None,
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
    files : Flowers17Files, optional
        Train on these CSVs instead (any size, any classes); ``data_dir`` and
        ``archive`` are then not used.
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
    One epoch on small synthetic CSVs:

    >>> import tempfile
    >>> from fitlab.data import Flowers17Files, make_synthetic_csv
    >>> folder = Path(tempfile.mkdtemp())
    >>> files = Flowers17Files(make_synthetic_csv(folder / "train.csv", rows=34, size=32),
    ...                        make_synthetic_csv(folder / "test.csv", rows=17, size=32), ())
    >>> result = train_tutorial("batch", epochs=1, batch_size=17, files=files,
    ...                         out=folder / "run", verbose=0)
    >>> result["epochs"], sorted(result["paths"])
    (1, ['history', 'model', 'plot', 'report'])

    The tutorial's run on the real data (20–40 minutes on two CPU cores) is
    ``train_tutorial("fit", epochs=75, out="runs/fit")``.
    """

    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if recipe not in RECIPES:  # before the data is prepared, not after
        raise ValueError(f"recipe must be one of {RECIPES}, got {recipe!r}")
    if epochs < 1 or batch_size < 1:
        raise ValueError(f"epochs and batch_size must be positive, got {epochs}, {batch_size}")
    out = writable_folder(out)  # before hours of training, not after
    if files is None:
        files = prepare_flowers17(data_dir=data_dir, archive=archive, progress=bool(verbose))
    classes = classes_from_csv(files.train)  # sorted, as the tutorial's LabelBinarizer
    x_test, test_labels = load_csv(files.test)
    y_test_index = encode_labels(test_labels, classes, files.test)

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
    height, width, depth = shape
    augmentation = make_augmentation(**TUTORIAL_AUGMENTATION, seed=seed) if augment else None
    return MiniVGGNet.build(width, height, depth, classes, augmentation=augmentation)


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
    x_test, y_test_index = test
    y_test = one_hot_rows(y_test_index, len(classes))
    if method == "loop":
        # TensorFlow by nature: imported only for this method.
        from fitlab.loops.compiled_tf import CompiledLoop
        from fitlab.pipelines.tfdata import csv_dataset

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
        x_train, train_labels = load_csv(files.train)
        y_train = one_hot_rows(encode_labels(train_labels, classes, files.train), len(classes))
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

    plot_history(history, path=paths["plot"])  # written atomically
    save_model_atomically(model, paths["model"])
    return {name: str(path) for name, path in paths.items()}


def _jsonable(params: dict | None) -> dict:
    return {k: v for k, v in (params or {}).items() if isinstance(v, int | float | str | None)}
