"""Checkpoints a killed run resumes from: :class:`ResumableCheckpoint` and :func:`resume_from`.

Why not ``keras.callbacks.BackupAndRestore``? It restores the weights and
optimizer, but it works only inside ``fit`` (it reads ``fit``'s own
bookkeeping to skip the epochs already done) and it leaves out the state of
the random-seed generators of dropout and augmentation layers, so a resumed run
draws other random numbers than the uninterrupted one. fitlab trains in four
ways, three of them outside ``fit``, and promises resumes that end with the
same weights; this callback saves the seed state beside each model and
returns the epoch to start from, which every loop takes as ``initial_epoch``.

Examples
--------
>>> import tempfile, numpy as np
>>> keras.utils.set_random_seed(0)
>>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
>>> model.compile(optimizer="sgd", loss="mse")
>>> folder = tempfile.mkdtemp()
>>> x, y = np.ones((4, 2), "float32"), np.zeros(4, "float32")
>>> _ = model.fit(x, y, epochs=2, verbose=0, callbacks=[ResumableCheckpoint(folder)])
>>> resumed = resume_from(folder)
>>> resumed.initial_epoch, len(resumed.history["loss"])
(2, 2)
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np

from fitlab.files import (
    fsync_file,
    fsync_folder,
    name_inside,
    remove_leftovers,
    write_atomically,
)

_STATE = "checkpoint.json"
_AFRESH = "Delete the folder to start afresh (or restore it from a backup)."
#: The temp entries a save leaves when its process is killed: save_model_atomically's
#: folders and write_atomically's files.
LEFTOVERS = (".epoch-*.keras.*", ".epoch-*.rng.npz.*.tmp", f".{_STATE}.*.tmp")
_EPOCH_FILE = re.compile(r"^epoch-(\d{4,})\.keras$")


class ResumableCheckpoint(keras.callbacks.Callback):
    """Save everything needed to resume after every epoch, never half-written.

    Each epoch writes ``epoch-NNNN.keras`` (weights, optimizer state,
    compile settings) and ``epoch-NNNN.rng.npz`` (the random-seed state of
    dropout and augmentation layers, which ``.keras`` files do not keep),
    then commits them by atomically replacing ``checkpoint.json`` (the
    epochs done and the history so far). A process killed at any instant
    leaves a directory that :func:`resume_from` restarts from the last
    committed epoch: no epoch lost, none run twice. Older epoch files are
    removed only after the new commit, and the temp files of a save that was
    killed halfway are removed when training begins again (only those older
    than the current process, so a writer that started later is never
    touched).

    ``checkpoint.json`` may name only plain files in ``directory``: an
    absolute path, ``..``, a folder separator or a symbolic link leading out
    of the directory is refused (:class:`fitlab.files.EscapingNameError`)
    rather than loaded.

    Resuming is exact (same history, same final weights as an uninterrupted
    run) when the batch order of an epoch depends only on the epoch number
    and ops are deterministic (``tf.config.experimental.enable_op_determinism``).
    fitlab's shuffling sources are made so: set ``CSVSequence.epoch`` to the
    epoch you resume at, or make the ``csv_dataset`` with ``first_epoch=`` it.
    (``fit(shuffle=True)`` on arrays, once a seed is set, uses one order for
    every epoch; see ``docs/keras3-traps.md``.)

    Parameters
    ----------
    directory : path
        Where the checkpoint lives (created if needed).
    keep : int
        How many epoch files to keep (the newest).
    settings : dict, optional
        What the run was started with (plain JSON values: the arguments that
        must not change across a resume, e.g. epochs, batch size, seed).
        Saved with every epoch and returned by :func:`resume_from` as
        ``Resumed.settings``; training on into a checkpoint saved with
        other settings is refused with a ``ValueError`` naming them.

    Examples
    --------
    The pattern for a run that may be killed and started again:

    >>> import tempfile, numpy as np
    >>> folder = tempfile.mkdtemp()
    >>> def build_and_compile():
    ...     model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    ...     model.compile(optimizer="sgd", loss="mse")
    ...     return model
    >>> ckpt = resume_from(folder)  # None the first time
    >>> model = ckpt.model if ckpt else build_and_compile()
    >>> start = ckpt.initial_epoch if ckpt else 0
    >>> x, y = np.ones((4, 2), "float32"), np.zeros(4, "float32")
    >>> history = model.fit(x, y, epochs=3, initial_epoch=start, verbose=0,
    ...                     callbacks=[ResumableCheckpoint(folder)])
    >>> resume_from(folder).initial_epoch
    3
    """

    def __init__(
        self, directory: str | os.PathLike, keep: int = 1, settings: dict | None = None
    ) -> None:
        super().__init__()
        if keep < 1:
            raise ValueError(f"keep must be >= 1, got {keep}")
        self.directory = Path(directory)
        self.keep = keep
        self.settings = _as_json(settings)
        self.history: dict[str, list[float]] = {}
        self.epochs_done = 0

    def on_train_begin(self, logs=None) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        remove_leftovers(self.directory, LEFTOVERS)
        state = _read_state(self.directory)
        if state and self.settings is not None:
            changed = changed_settings(state["settings"], self.settings)
            if changed:
                raise ValueError(
                    f"{self.directory / _STATE} was saved by a run with other settings "
                    f"({changed}); resume with the same settings or use an empty directory"
                )
        self.history = state["history"] if state else {}
        self.epochs_done = state["epochs_done"] if state else 0

    def on_epoch_end(self, epoch: int, logs=None) -> None:
        if epoch != self.epochs_done:
            raise ValueError(
                f"{self.directory / _STATE} holds {self.epochs_done} epochs but epoch "
                f"{epoch + 1} just ended; resume with initial_epoch={self.epochs_done} "
                "(see fitlab.resume_from) or use an empty directory"
            )
        stem = f"epoch-{epoch + 1:04d}"
        save_model_atomically(self.model, self.directory / f"{stem}.keras")
        _save_rng_atomically(self.model, self.directory / f"{stem}.rng.npz")
        for name, value in (logs or {}).items():
            self.history.setdefault(name, []).append(float(value))
        self.epochs_done = epoch + 1
        state = {
            "epochs_done": self.epochs_done,
            "model": f"{stem}.keras",
            "rng": f"{stem}.rng.npz",
            "history": self.history,
            "settings": self.settings,
        }
        write_atomically(self.directory / _STATE, json.dumps(state, indent=1).encode())
        self._prune(epoch + 1)

    def _prune(self, newest: int) -> None:
        for path in self.directory.glob("epoch-*.keras"):
            match = _EPOCH_FILE.match(path.name)
            number = int(match.group(1)) if match else newest  # not ours: kept
            if number <= newest - self.keep:
                path.unlink(missing_ok=True)
                path.with_name(f"epoch-{number:04d}.rng.npz").unlink(missing_ok=True)


@dataclass(frozen=True)
class Resumed:
    """What :func:`resume_from` found: the model, where to start, the history so far.

    ``settings`` are the ones given to :class:`ResumableCheckpoint` (``None`` if none).
    """

    model: keras.Model
    initial_epoch: int
    history: dict[str, list[float]]
    settings: dict | None = None


def resume_from(directory: str | os.PathLike, custom_objects: dict | None = None) -> Resumed | None:
    """Load the last committed epoch of a :class:`ResumableCheckpoint`, or ``None``.

    The model comes back compiled, with its optimizer state (so the learning
    rate schedule continues from the right iteration) and its random-seed
    state. Train on with ``initial_epoch=resumed.initial_epoch`` and the same
    ``ResumableCheckpoint(directory)``; its ``history`` then covers every epoch.

    Only files inside ``directory`` are read: a ``checkpoint.json`` naming an
    absolute path, ``..``, a path with a folder separator, or a symbolic link
    that leads out of the directory is refused with a
    :class:`fitlab.files.EscapingNameError` (a ``ValueError``).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> resume_from(tempfile.mkdtemp()) is None  # nothing saved there yet
    True
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (folder / "checkpoint.json").write_text(
    ...     '{"epochs_done": 1, "model": "../elsewhere.keras", "rng": "e.rng.npz", "history": {}}')
    >>> resume_from(folder)
    Traceback (most recent call last):
    ...
    fitlab.files.EscapingNameError: ...json: the entry 'model' is '../elsewhere.keras', a path ...

    See the module's example for a checkpoint that is resumed.
    """
    directory = Path(directory)
    state = _read_state(directory)
    if state is None:
        return None
    model = keras.models.load_model(state["model"], custom_objects=custom_objects)
    with np.load(state["rng"]) as saved:
        seeds = _seed_states(model)
        if len(saved.files) != len(seeds):
            raise ValueError(
                f"{state['rng']} holds {len(saved.files)} seed states but the "
                f"model has {len(seeds)}; the checkpoint and model do not match"
            )
        for index, variable in enumerate(seeds):
            variable.assign(saved[f"s{index}"])
    return Resumed(model, int(state["epochs_done"]), state["history"], state["settings"])


def copy_checkpoint(source: str | os.PathLike, destination: str | os.PathLike) -> bool:
    """Copy the last committed epoch of ``source`` into ``destination``; ``False`` if none.

    A worker of a multi-worker run resumes from the chief's checkpoint but must
    not write into it: it resumes from a copy in its own folder. The model and
    seed files are copied first and ``checkpoint.json`` last, each atomically,
    so a copy stopped half-way is no checkpoint at all.

    Examples
    --------
    >>> import tempfile
    >>> copy_checkpoint(tempfile.mkdtemp(), tempfile.mkdtemp())  # nothing to copy
    False
    """
    source, destination = Path(source), Path(destination)
    state = _read_state(source)
    if state is None:
        return False
    destination.mkdir(parents=True, exist_ok=True)
    for key in ("model", "rng"):
        write_atomically(destination / state[key].name, state[key].read_bytes())
    write_atomically(destination / _STATE, (source / _STATE).read_bytes())
    return True


def changed_settings(saved: dict | None, wanted: dict) -> str:
    """The settings that differ, as ``name saved (now: wanted)``; ``""`` when none do.

    Examples
    --------
    >>> changed_settings({"epochs": 5, "seed": 1}, {"epochs": 6, "seed": 1})
    'epochs 5 (now: 6)'
    >>> changed_settings({"epochs": 5}, {"epochs": 5})
    ''
    """
    saved = saved or {}
    wanted = _as_json(wanted) or {}
    return ", ".join(
        f"{name} {saved.get(name, 'not set')} (now: {wanted.get(name, 'not set')})"
        for name in sorted(set(saved) | set(wanted))
        if saved.get(name) != wanted.get(name)
    )


def _as_json(settings: dict | None) -> dict | None:
    """``settings`` as they come back from ``checkpoint.json`` (tuples as lists, …)."""
    return None if settings is None else json.loads(json.dumps(settings))


def _read_state(directory: Path) -> dict | None:
    """``checkpoint.json`` read and checked, its file names as paths inside ``directory``."""
    path = directory / _STATE
    if not os.path.lexists(path):
        return None
    # checkpoint.json itself may not be a link out of the directory either.
    name_inside(directory, _STATE, source=directory, entry=None, remedy=_AFRESH)
    try:
        state = json.loads(path.read_text())
        epochs_done, history = int(state["epochs_done"]), dict(state["history"])
        names = {key: state[key] for key in ("model", "rng")}
        settings = state.get("settings")  # absent in checkpoints of earlier fitlabs
        if settings is not None and not isinstance(settings, dict):
            raise TypeError(f"settings is a {type(settings).__name__}, not an object")
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(
            f"{path} is not a fitlab checkpoint ({exc}); delete the directory to start afresh"
        ) from exc
    files = {
        key: name_inside(directory, name, source=path, entry=key, remedy=_AFRESH)
        for key, name in names.items()
    }
    return {"epochs_done": epochs_done, "history": history, "settings": settings, **files}


def _seed_states(model: keras.Model) -> list:
    """The state variables of every random-seed generator (dropout, augmentation)."""
    weights = {id(w) for w in model.weights}
    return [v for v in model.variables if id(v) not in weights and "seed" in v.path]


def _save_rng_atomically(model: keras.Model, path: Path) -> None:
    buffer = io.BytesIO()
    np.savez(buffer, **{f"s{i}": np.asarray(v) for i, v in enumerate(_seed_states(model))})
    write_atomically(path, buffer.getvalue())


def save_model_atomically(model: keras.Model, path: str | os.PathLike) -> None:
    """``model.save`` to a temp folder beside ``path``, fsync, then rename it into place.

    The file is flushed to disk before the rename and the folder after it, so
    a crash or power cut leaves the old file or the complete new one. A
    process killed mid-save leaves a ``.NAME.*`` temp folder, which
    :class:`ResumableCheckpoint` removes on its next run.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> save_model_atomically(model, folder / "m.keras")
    >>> [p.name for p in folder.iterdir()]  # no temp folder left
    ['m.keras']
    >>> keras.models.load_model(folder / "m.keras").count_params()
    3
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp_dir = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}."))
    try:
        tmp = tmp_dir / path.name  # Keras insists on the .keras suffix
        model.save(tmp)
        fsync_file(tmp)
        os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)
    fsync_folder(path.parent)
