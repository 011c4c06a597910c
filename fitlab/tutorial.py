"""The tutorial's ``train.py``, end to end: the one module that uses every layer.

:func:`train_tutorial` prepares the CSVs, builds MiniVGGNet with the
tutorial's augmentation, compiles it with a recipe, trains it by one of the
four methods, and writes the report, the plot, the history and the model.
It checkpoints every epoch, so a killed run started again resumes where it
stopped. ``python -m fitlab train`` calls it. It sits on top of every other
module and nothing in the package imports it (the command line does, lazily).

Examples
--------
>>> from fitlab.config import METHODS
>>> METHODS
('fit', 'generator', 'batch', 'loop')
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import keras
from sklearn.metrics import accuracy_score, f1_score

from fitlab.callbacks.checkpoint import (
    LEFTOVERS,
    ResumableCheckpoint,
    Resumed,
    changed_settings,
    copy_checkpoint,
    resume_from,
    save_model_atomically,
)
from fitlab.config import METHODS, MULTI_WORKER_FIT, XLA_GPU_DETERMINISM
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
from fitlab.files import (
    exclusive_lock,
    remove_leftovers,
    sha256_of,
    writable_folder,
    write_atomically,
)
from fitlab.loops import train_on_batches
from fitlab.models import MiniVGGNet
from fitlab.pipelines import CSVSequence
from fitlab.plots import plot_history
from fitlab.recipes import Recipe, make_recipe, make_recipe_augmentation, recipe_named

# What a run writes into its folder, and the temp names those writes leave when
# killed (write_atomically's files, save_model_atomically's folder).
OUTPUTS = {
    "report": "report.txt",
    "plot": "plot.png",
    "history": "history.json",
    "model": "model.keras",
    "result": "result.json",
}
CHECKPOINT = "checkpoint"
_LEFTOVERS = tuple(f".{name}.*" for name in OUTPUTS.values())
# One run at a time per output folder: a second one waits, then resumes or finds it done.
_LOCK = ".fitlab-train.lock"


def train_tutorial(
    method: str,
    *,
    epochs: int = 75,
    batch_size: int = 32,
    augment: bool = True,
    seed: int = 42,
    recipe: str | Recipe = "tutorial",
    out: str | os.PathLike,
    data_dir: str | os.PathLike | None = None,
    archive: str | os.PathLike | None = None,
    files: Flowers17Files | None = None,
    deterministic: bool = False,
    restart: bool = False,
    strategy: Any = None,
    verbose: int | str = 1,
) -> dict:
    """The tutorial's ``train.py``, end to end, by one of the four methods; resumable.

    Prepares the Flowers-17 CSVs, builds MiniVGGNet, compiles it with a
    recipe (by default the tutorial's SGD: lr 1e-2, momentum 0.9, decay
    lr / epochs, per batch; see :mod:`fitlab.recipes`), trains with a progress
    bar, validating on the test CSV after each epoch as the tutorial did, then
    predicts the 340 test rows and writes to ``out``:
    ``report.txt`` (also printed), ``plot.png`` (loss and accuracy per epoch),
    ``history.json``, ``model.keras`` and, last, ``result.json`` (the
    returned dict), each written atomically. To load the model elsewhere,
    ``import fitlab.augment`` first (it registers the shear layer the
    augmentation uses), then ``keras.models.load_model(path)``.

    **Killed runs resume.** After every epoch the model, its optimizer and
    its random-seed state are saved in ``out/checkpoint``
    (:class:`fitlab.ResumableCheckpoint`). The same call made again resumes
    after the last finished epoch (and says so on its first line), at most
    the epoch that was running is trained again, and every shuffling source
    is put at the row order of the epoch it resumes at, so the run ends with
    the ``history.json``, weights and report of a run never stopped (bit for
    bit on CPU with ``deterministic=True``). Called with settings other than
    the checkpoint's it raises a ``ValueError`` naming them; ``restart=True``
    deletes the checkpoint and outputs and starts over. A run that finished
    is not trained again: its saved result comes back, with
    ``finished_before`` true.

    The methods:

    ``fit``
        ``model.fit`` on arrays loaded from the CSV (``shuffle=True``; Keras 3
        on TensorFlow shuffles them in one order for every epoch once a seed
        is set, see ``docs/keras3-traps.md``).
    ``generator``
        ``model.fit`` on a :class:`fitlab.CSVSequence` (shuffled each epoch).
    ``batch``
        :func:`train_on_batches` on the same ``CSVSequence``.
    ``loop``
        :class:`fitlab.CompiledLoop` on a :func:`fitlab.csv_dataset`
        (shuffled each epoch); on JAX, which takes no ``tf.data``, on the
        same shuffled ``CSVSequence`` as ``generator`` and ``batch``.

    All four run on TensorFlow and on JAX (``KERAS_BACKEND``; the backend is one
    of the run's settings, so a checkpoint is resumed on the backend it was made on).

    Augmentation (the recipe's; for the tutorial's recipe its ``ImageDataGenerator``
    settings, see :data:`fitlab.TUTORIAL_AUGMENTATION`) runs as the model's first layers,
    so all four methods augment with the same code, in the same graph as the
    training step, and only while training; the data sources stay plain.

    Parameters
    ----------
    method : {"fit", "generator", "batch", "loop"}
    epochs, batch_size : int
    augment : bool
        Augment with the recipe's augmentation.
    seed : int
        Seeds weights, dropout, augmentation and shuffling (the 60/20 split
        is fixed by :func:`fitlab.prepare_flowers17`).
    recipe : str or Recipe
        Optimizer, schedule, loss and augmentation: one of :data:`fitlab.RECIPES`
        or a :class:`fitlab.Recipe` (:mod:`fitlab.recipes`).
    out : path
        Folder for the outputs and the checkpoint (created; checked writable
        before anything else is done).
    data_dir, archive : path, optional
        See :func:`fitlab.prepare_flowers17`.
    files : Flowers17Files, optional
        Train on these CSVs instead (any size, any classes); ``data_dir`` and
        ``archive`` are then not used.
    deterministic : bool
        The same seed gives the same bits, a little slower. On TensorFlow this
        turns on its op determinism (for the rest of the process). On JAX,
        XLA's CPU ops are deterministic already; on a GPU XLA needs
        ``XLA_FLAGS=--xla_gpu_deterministic_ops=true`` in the environment
        before JAX starts, which no call can change afterwards, so without it
        this raises a ``ValueError`` saying so (``python -m fitlab train
        --deterministic`` sets it itself).
    restart : bool
        Delete the checkpoint and outputs in ``out`` and train from epoch 1.
    strategy : tf.distribute.Strategy, optional
        Train under it (``loop`` only; TensorFlow). Under a
        ``MultiWorkerMirroredStrategy`` every worker process calls this with
        the same arguments (``python -m fitlab worker``): the chief writes
        ``out``; the others resume from the chief's checkpoint in ``out``
        (a folder they all see) and write only to a temporary folder.
        ``batch_size`` is the *global* batch: with N workers each trains on
        ``batch_size / N`` rows a step, together the rows one process would.
    verbose : int
        0 silent, 1 progress bar and report.

    Returns
    -------
    dict
        ``accuracy``, ``macro_f1``, ``wall_s`` (training and validation in
        this call), ``epochs`` (run), ``resumed_at`` (epochs already done
        when this call began), ``finished_before``, ``method``, ``recipe``,
        ``seed``, ``batch_size``, ``augment``, ``deterministic``, ``backend``
        (Keras's, ``"tensorflow"`` or ``"jax"``), ``paths``
        (``report``, ``plot``, ``history``, ``model``, ``result``) and
        ``tta_accuracy``, ``tta_macro_f1``: the scores when each test
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
    (1, ['history', 'model', 'plot', 'report', 'result'])

    The same call again finds the run finished and trains nothing:

    >>> train_tutorial("batch", epochs=1, batch_size=17, files=files,
    ...                out=folder / "run", verbose=0)["finished_before"]
    True

    The tutorial's run on the real data (20–40 minutes on two CPU cores) is
    ``train_tutorial("fit", epochs=75, out="runs/fit")``.
    """

    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    recipe_named(recipe)  # an unknown name fails before the data is prepared, not after
    if epochs < 1 or batch_size < 1:
        raise ValueError(f"epochs and batch_size must be positive, got {epochs}, {batch_size}")
    if strategy is not None and method != "loop":
        raise ValueError(
            f"a strategy trains by method 'loop' only, not {method!r}. {MULTI_WORKER_FIT}"
        )
    out = writable_folder(out)  # before hours of training, not after
    run = {
        "method": method,
        "epochs": epochs,
        "batch_size": batch_size,
        "augment": augment,
        "seed": seed,
        "recipe": recipe,
        "data_dir": data_dir,
        "archive": archive,
        "files": files,
        "deterministic": deterministic,
        "restart": restart,
        "strategy": strategy,
        "verbose": verbose,
    }
    if strategy is not None and not strategy.extended.should_checkpoint:
        # Not the chief: train on from a copy of the chief's checkpoint, in a scratch
        # folder of its own (TensorFlow's advice: every worker saves, since saving may
        # take part in collectives, but only the chief's files count). After --restart
        # there is nothing to copy, whatever the chief has not deleted yet.
        with tempfile.TemporaryDirectory(prefix="fitlab-worker-") as scratch:
            if not restart:
                copy_checkpoint(out / CHECKPOINT, Path(scratch) / CHECKPOINT)
            return _train_in(Path(scratch), **run)
    waiting = f"waiting for the other fitlab run training in {out} (lock {out / _LOCK})…"
    with exclusive_lock(out / _LOCK, waiting=waiting):
        return _train_in(out, **run)


def _train_in(
    out: Path,
    method: str,
    *,
    epochs,
    batch_size,
    augment,
    seed,
    recipe,
    data_dir,
    archive,
    files,
    deterministic,
    restart,
    strategy,
    verbose,
) -> dict:
    """:func:`train_tutorial`'s work, once it holds ``out``'s lock."""
    if restart:
        _forget_run(out)
    # Under the lock no other process writes here: every temp entry is a leftover.
    now = time.time()
    remove_leftovers(out, _LEFTOVERS, older_than=now)
    remove_leftovers(out / CHECKPOINT, LEFTOVERS, older_than=now)
    if files is None:
        files = prepare_flowers17(data_dir=data_dir, archive=archive, progress=bool(verbose))
    settings = {
        "method": method,
        "epochs": epochs,
        "batch_size": batch_size,
        "augment": augment,
        "seed": seed,
        # A named recipe by its name (as checkpoints have always recorded it), another
        # one by its settings, so that resuming with a different one is refused.
        "recipe": recipe if isinstance(recipe, str) else recipe.settings(),
        "deterministic": deterministic,
        "backend": keras.backend.backend(),
        # Shortened: names the data a run was trained on.
        "train_csv_sha256": sha256_of(files.train)[:16],
        "test_csv_sha256": sha256_of(files.test)[:16],
    }
    resumed = _resumable(out, settings, strategy)
    if resumed is not None and resumed.initial_epoch == epochs:
        finished = _finished_result(out)
        if finished is not None:
            if verbose:
                print(
                    f"{out}: this run finished before ({epochs} of {epochs} epochs); its "
                    "report, plot, history and model are there. To train it again, "
                    "start it over (--restart, or restart=True)."
                )
            return finished
    if resumed is not None and verbose:
        print(
            f"Resuming the run in {out}: {resumed.initial_epoch} of {epochs} epochs were "
            f"done; training on from epoch {resumed.initial_epoch + 1}."
        )

    classes = classes_from_csv(files.train)  # sorted, as the tutorial's LabelBinarizer
    x_test, test_labels = load_csv(files.test)
    y_test_index = encode_labels(test_labels, classes, files.test)

    if deterministic:
        _make_deterministic()
    keras.utils.set_random_seed(seed)
    steps_per_epoch = math.ceil(count_rows(files.train) / batch_size)
    with _scope(strategy):  # under a strategy their variables are mirrored
        optimizer, loss = make_recipe(recipe, epochs=epochs, steps_per_epoch=steps_per_epoch)
        if resumed is None:
            model = _tutorial_model(
                x_test.shape[1:], len(classes), recipe if augment else None, seed, strategy
            )
    if resumed is not None:  # weights, optimizer state (the schedule's place), seed state
        model, optimizer = resumed.model, resumed.model.optimizer
    checkpoint = ResumableCheckpoint(out / CHECKPOINT, settings=settings)

    start = time.perf_counter()
    _train_by(
        method,
        model,
        optimizer,
        loss,
        files,
        classes,
        epochs=epochs,
        initial_epoch=resumed.initial_epoch if resumed else 0,
        batch_size=batch_size,
        seed=seed,
        verbose=verbose,
        test=(x_test, y_test_index),
        callbacks=[checkpoint],
        strategy=strategy,
    )
    wall_s = time.perf_counter() - start

    predictor = model if strategy is None else _OnThisWorker(model)
    probabilities = predict_all(predictor, x_test, batch_size=batch_size)
    predicted = probabilities.argmax(axis=1)
    mirrored = predict_all(predictor, x_test[:, :, ::-1], batch_size=batch_size)
    tta_predicted = (probabilities + mirrored).argmax(axis=1)
    text = report(y_test_index, predicted, classes)
    if verbose:
        print(text)
    # The checkpoint's history covers every epoch, also those of earlier calls
    # (it is empty only when this call had no epoch left to train).
    history = checkpoint.history or (resumed.history if resumed else {})
    result = {
        **settings,
        "accuracy": float(accuracy_score(y_test_index, predicted)),
        "macro_f1": float(f1_score(y_test_index, predicted, average="macro")),
        "tta_accuracy": float(accuracy_score(y_test_index, tta_predicted)),
        "tta_macro_f1": float(f1_score(y_test_index, tta_predicted, average="macro")),
        "wall_s": wall_s,
        "epochs": len(history.get("loss", [])),
        "resumed_at": resumed.initial_epoch if resumed else 0,
        "finished_before": False,
        "paths": {name: str(out / file) for name, file in OUTPUTS.items()},
    }
    params = {"epochs": epochs, "steps": steps_per_epoch}
    _write_outputs(out, model, history, params, text, result)
    return result


def _forget_run(out: Path) -> None:
    """Delete what a run wrote into ``out`` (its checkpoint and outputs), nothing else."""
    shutil.rmtree(out / CHECKPOINT, ignore_errors=True)
    for name in OUTPUTS.values():
        (out / name).unlink(missing_ok=True)


def _resumable(out: Path, settings: dict, strategy=None) -> Resumed | None:
    """The checkpoint in ``out`` to resume from, if any; refused if made with other settings."""
    with _scope(strategy):  # a loaded model's variables are mirrored under a strategy
        resumed = resume_from(out / CHECKPOINT)
    if resumed is None:
        return None
    changed = changed_settings(resumed.settings, settings)
    if changed:
        raise ValueError(
            f"{out} holds a run started with other settings: {changed}. Run it with its own "
            "settings to resume it, choose another output folder, or start it over (--restart, "
            "or restart=True)"
        )
    return resumed


def _finished_result(out: Path) -> dict | None:
    """The saved result of a finished run in ``out``, or ``None`` if any output is missing."""
    if not all((out / name).is_file() for name in OUTPUTS.values()):
        return None
    return {**json.loads((out / OUTPUTS["result"]).read_text()), "finished_before": True}


def _make_deterministic() -> None:
    """Same seed, same bits, on Keras's backend (see ``train_tutorial``'s ``deterministic``)."""
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()
    elif backend == "jax":
        import jax

        flags = os.environ.get("XLA_FLAGS", "").split()
        if jax.default_backend() == "gpu" and XLA_GPU_DETERMINISM not in flags:
            raise ValueError(
                f"deterministic training on JAX's GPU needs XLA_FLAGS={XLA_GPU_DETERMINISM} "
                "set before JAX starts: set it and start Python again (python -m fitlab "
                "train --deterministic sets it itself)"
            )
        # CPU (and TPU): XLA's ops are deterministic already.
    else:
        raise ValueError(f"deterministic training runs on TensorFlow or JAX, not {backend}")


def _tutorial_model(
    shape: tuple, classes: int, recipe: str | Recipe | None, seed: int, strategy=None
) -> keras.Model:
    """MiniVGGNet with the augmentation of ``recipe`` (none when ``recipe`` is ``None``)."""
    height, width, depth = shape
    augmentation = None if recipe is None else make_recipe_augmentation(recipe, seed=seed)
    # Several replicas normalise over the global batch, as one process does.
    synchronized = strategy is not None and strategy.num_replicas_in_sync > 1
    return MiniVGGNet.build(
        width, height, depth, classes, augmentation=augmentation, synchronized=synchronized
    )


class _OnThisWorker:
    """A model trained under a strategy, predicting on this worker alone.

    Keras's ``predict_on_batch`` runs on every replica and gathers their outputs:
    under a multi-worker strategy each worker would get every worker's rows.
    Called directly, outside ``strategy.run``, the model predicts with this
    worker's copy of the mirrored weights.
    """

    def __init__(self, model: keras.Model) -> None:
        self.model = model

    def predict_on_batch(self, x):
        return keras.ops.convert_to_numpy(self.model(x, training=False))


def _scope(strategy):
    """``strategy.scope()``, or a context that does nothing without a strategy."""
    return strategy.scope() if strategy is not None else contextlib.nullcontext()


def _train_by(
    method,
    model,
    optimizer,
    loss,
    files,
    classes,
    *,
    epochs,
    initial_epoch,
    batch_size,
    seed,
    verbose,
    test,
    callbacks,
    strategy=None,
) -> keras.callbacks.History:
    """Train ``model`` by ``method`` from ``initial_epoch``; every method validates on the test set.

    A resumed run's sources start at the row order of ``initial_epoch``.
    """
    x_test, y_test_index = test
    y_test = one_hot_rows(y_test_index, len(classes))
    common = {
        "epochs": epochs,
        "initial_epoch": initial_epoch,
        "validation_data": (x_test, y_test),
        "callbacks": callbacks,
        "verbose": verbose,
    }
    metrics = ["accuracy"]
    if method == "loop":
        from fitlab.loops.compiled import CompiledLoop

        train = _loop_source(files, classes, batch_size, seed, initial_epoch, x_test.shape[1])
        loop = CompiledLoop(model, optimizer, loss, metrics, strategy=strategy)
        return loop.fit(train, batch_size=batch_size, **common)

    model.compile(optimizer=optimizer, loss=loss, metrics=metrics)
    if method == "fit":
        x_train, train_labels = load_csv(files.train)
        y_train = one_hot_rows(encode_labels(train_labels, classes, files.train), len(classes))
        return model.fit(x_train, y_train, batch_size=batch_size, **common)
    train = _shuffled_sequence(files, classes, batch_size, seed, initial_epoch)
    if method == "generator":
        # shuffle=False: the sequence reshuffles its rows itself each epoch. Keras
        # 3's fit also calls its on_epoch_end once before the first epoch
        # (EpochIterator.reset), so "generator" trains one shuffle ahead of "batch".
        return model.fit(train, validation_batch_size=batch_size, shuffle=False, **common)
    return train_on_batches(model, train, batch_size=batch_size, **common)


def _loop_source(files, classes, batch_size, seed, initial_epoch, size):
    """What ``loop`` trains on: on TensorFlow a cached ``csv_dataset``, elsewhere a ``CSVSequence``.

    Both shuffle each epoch, starting at ``initial_epoch``'s row order.
    """
    if keras.backend.backend() != "tensorflow":  # JAX takes no tf.data
        return _shuffled_sequence(files, classes, batch_size, seed, initial_epoch)
    from fitlab.pipelines.tfdata import csv_dataset  # TensorFlow by nature: imported here only

    return csv_dataset(
        files.train,
        batch_size,
        classes=classes,
        shuffle_buffer=4096,
        seed=seed,
        first_epoch=initial_epoch,
        cache=True,
        size=size,
    )


def _shuffled_sequence(files, classes, batch_size, seed, initial_epoch) -> CSVSequence:
    """The training CSV as a ``CSVSequence`` shuffled each epoch, from ``initial_epoch``'s order."""
    train = CSVSequence(
        files.train, batch_size, classes=classes, shuffle=True, seed=seed, cache=True
    )
    train.epoch = initial_epoch  # the row order of the epoch training starts at
    return train


def _write_outputs(
    out: Path, model: keras.Model, history: dict, params: dict, text: str, result: dict
) -> None:
    """Write the outputs, each atomically; ``result.json`` last, as the mark of a finished run."""
    paths = {name: out / file for name, file in OUTPUTS.items()}
    write_atomically(paths["report"], text.encode())
    record = {"history": history, "params": params}
    write_atomically(paths["history"], json.dumps(record, indent=1).encode())
    plot_history(history, path=paths["plot"])  # written atomically
    save_model_atomically(model, paths["model"])
    write_atomically(paths["result"], json.dumps(result, indent=1).encode())
