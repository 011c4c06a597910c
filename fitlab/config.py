"""Where fitlab keeps its data, how long the notebooks train, and the names the CLI offers.

This module imports nothing heavy (no Keras), so ``python -m fitlab --help``
answers at once.

Two environment variables steer everything a notebook or a test does:

``FITLAB_PROFILE``
    ``full`` (default) trains as the tutorial did (75 epochs); ``smoke`` trains
    a few epochs so that every notebook runs in about a minute on two CPU cores.
    The profiles differ in epoch counts only: same data, same code paths.
``FITLAB_DATA_DIR``
    Where the CSVs (and a downloaded archive) live; default
    ``$XDG_CACHE_HOME/fitlab`` or ``~/.cache/fitlab``.

``FITLAB_FLOWERS17_ARCHIVE`` points at a local copy of ``17flowers.tgz``; see
:func:`fitlab.prepare_flowers17`. Keras's own ``KERAS_BACKEND`` chooses the backend
(:data:`BACKENDS`); the parts of fitlab that need TensorFlow say so, in one line,
where it is missing (:func:`needs_tensorflow`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

#: The four ways ``python -m fitlab train`` trains (see :func:`fitlab.train_tutorial`).
METHODS = ("fit", "generator", "batch", "loop")
#: The training recipes of :func:`fitlab.make_recipe`.
RECIPES = ("tutorial", "improved", "improved-colour", "improved-colour-wd")
#: The benchmarks of ``python -m fitlab bench NAME``.
BENCHMARKS = ("build", "pipeline", "loops", "live", "faults", "gpu", "distributed")
#: The Keras backends fitlab trains on (``python -m fitlab train --backend``).
BACKENDS = ("tensorflow", "jax")
#: The TensorFlow that fitlab's TensorFlow-only parts are written for (as in pyproject.toml).
TENSORFLOW_REQUIREMENT = "tensorflow>=2.21,<2.22"
#: XLA's flag for deterministic GPU ops (``deterministic=True`` on JAX); JAX reads
#: ``XLA_FLAGS`` once, when it starts its GPU backend.
XLA_GPU_DETERMINISM = "--xla_gpu_deterministic_ops=true"
#: Why several workers train by ``loop`` only (tests/test_distributed.py pins the failure).
MULTI_WORKER_FIT = (
    "Keras 3's fit does not work under tf.distribute.MultiWorkerMirroredStrategy (it fails "
    "with 'Attempt to convert a value (PerReplica…) … to a Tensor', an open regression "
    "since TensorFlow 2.16); train with several workers by --method loop"
)

ARCHIVE_ENV = "FITLAB_FLOWERS17_ARCHIVE"
DATA_DIR_ENV = "FITLAB_DATA_DIR"
PROFILE_ENV = "FITLAB_PROFILE"
#: Keras's own variable: the backend it loads on its first import.
BACKEND_ENV = "KERAS_BACKEND"


@dataclass(frozen=True)
class Profile:
    """How much training a notebook does.

    Attributes
    ----------
    name : str
        ``"full"`` or ``"smoke"``.
    epochs : int
        Epochs of the tutorial's main training run (75 in ``full``).
    compare_epochs : int
        Epochs of each run in a side-by-side comparison of training methods.
    batch_size : int
        The tutorial's batch size.
    max_steps : int or None
        At most this many training batches per epoch (``None``: whole epochs).
        The notebooks pass ``profile.steps(n)`` as ``steps_per_epoch``, so the
        smoke profile runs the same calls on fewer batches.

    Examples
    --------
    >>> PROFILES["full"].epochs, PROFILES["smoke"].epochs, PROFILES["smoke"].max_steps
    (75, 2, 4)
    """

    name: str
    epochs: int
    compare_epochs: int
    batch_size: int = 32
    max_steps: int | None = None

    def steps(self, n: int) -> int:
        """Return ``n`` training batches per epoch, capped at ``max_steps``.

        Examples
        --------
        >>> Profile("smoke", epochs=2, compare_epochs=1, max_steps=4).steps(32)
        4
        >>> Profile("full", epochs=75, compare_epochs=10).steps(32)
        32
        """
        return n if self.max_steps is None else min(n, self.max_steps)


PROFILES = {
    "full": Profile("full", epochs=75, compare_epochs=10),
    "smoke": Profile("smoke", epochs=2, compare_epochs=1, max_steps=4),
}


def get_profile() -> Profile:
    """Return the profile named by ``FITLAB_PROFILE`` (default ``full``).

    Examples
    --------
    >>> from unittest import mock
    >>> with mock.patch.dict(os.environ, {PROFILE_ENV: "smoke"}):
    ...     get_profile().epochs
    2
    """
    name = os.environ.get(PROFILE_ENV, "full").strip().lower() or "full"
    if name not in PROFILES:
        raise ValueError(f"{PROFILE_ENV}={name!r} is not a profile; use one of {sorted(PROFILES)}")
    return PROFILES[name]


def data_dir() -> Path:
    """Return the directory that holds the CSVs: ``FITLAB_DATA_DIR`` or the user cache.

    Examples
    --------
    >>> from unittest import mock
    >>> with mock.patch.dict(os.environ, {DATA_DIR_ENV: "/data/flowers"}):
    ...     str(data_dir())
    '/data/flowers'
    >>> with mock.patch.dict(os.environ, {DATA_DIR_ENV: "", "XDG_CACHE_HOME": "/cache"}):
    ...     str(data_dir())
    '/cache/fitlab'
    """
    configured = os.environ.get(DATA_DIR_ENV)
    if configured:
        return Path(configured).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache).expanduser() / "fitlab"


def default_backend() -> str:
    """The backend ``python -m fitlab train`` trains on by default: ``KERAS_BACKEND`` or TensorFlow.

    Whatever ``KERAS_BACKEND`` says is returned as written (lower-cased), so that
    the command line can refuse a backend fitlab does not train on by its name.

    Examples
    --------
    >>> from unittest import mock
    >>> with mock.patch.dict(os.environ, {BACKEND_ENV: "jax"}):
    ...     default_backend()
    'jax'
    >>> with mock.patch.dict(os.environ, {BACKEND_ENV: ""}):
    ...     default_backend()
    'tensorflow'
    """
    return os.environ.get(BACKEND_ENV, "").strip().lower() or "tensorflow"


def needs_tensorflow(what: str, instead: str = "CSVSequence or load_csv's arrays") -> ImportError:
    """The ``ImportError`` for a part of fitlab that needs TensorFlow when it cannot be imported.

    One line: what needs TensorFlow, how to install it, what to use on JAX instead.
    Raise it from the failed import, so that the original error stays in the
    traceback::

        try:
            import tensorflow as tf
        except ImportError as exc:
            raise needs_tensorflow("csv_dataset (a tf.data pipeline)") from exc

    Parameters
    ----------
    what : str
        The part that needs TensorFlow, as the user knows it.
    instead : str
        What to use instead on another backend.

    Examples
    --------
    >>> print(needs_tensorflow("csv_dataset"))  # doctest: +NORMALIZE_WHITESPACE
    csv_dataset needs TensorFlow, which cannot be imported here:
    pip install "tensorflow>=2.21,<2.22", or on JAX use CSVSequence or load_csv's arrays instead
    """
    return ImportError(
        f"{what} needs TensorFlow, which cannot be imported here: "
        f'pip install "{TENSORFLOW_REQUIREMENT}", or on JAX use {instead} instead',
        name="tensorflow",
    )
