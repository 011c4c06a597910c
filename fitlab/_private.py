"""The Keras and Python internals fitlab's data pipelines reach into, each with its reason.

There is no public way to do what these functions do. What is here is kept
small, is checked against the Keras major version it was written for, raises
a ``RuntimeError`` naming this file when what it reaches for has moved, and is
pinned by ``tests/test_private.py`` against the installed Keras and Python.

Why each one is needed
----------------------
:func:`terminate_keras_worker_pools` (with :func:`keras_worker_pools`, :func:`pool_pids`)
    ``keras.utils.PyDataset(use_multiprocessing=True)`` makes Keras start a
    ``multiprocessing`` pool for every epoch, which it stops when the epoch
    ends normally (``on_epoch_end``). When ``fit`` is left by an exception or
    a KeyboardInterrupt the pool keeps running (the thread that feeds it stays
    blocked on a full queue), and Keras offers no public handle to it: its
    pools are listed only in the private
    ``keras.src.trainers.data_adapters.py_dataset_adapter._DATA_POOLS``, and a
    pool's worker processes only in ``multiprocessing.pool.Pool._pool``.
    :class:`fitlab.CSVSequence` uses it to stop the workers it started.
:func:`pydataset_adapter`
    Keras reads a ``PyDataset``'s batches with its worker threads or processes
    only inside ``fit``/``evaluate``/``predict``; the object that does it,
    ``PyDatasetAdapter``, is not exported. The pipeline benchmark and the
    worker tests use it to read batches exactly as ``fit`` does, without a
    model in the way.
:func:`offer_jax_state`
    On JAX a training step returns new weights instead of updating the
    model's variables, so mid-epoch the variables are out of date (and,
    with donated buffers, unreadable). Keras's own ``fit`` stores the latest
    state in the model's private ``_jax_state`` after each step, and the
    public ``keras.callbacks.Callback.model`` property calls the model's
    ``jax_state_sync()``, which copies that state into the variables when a
    callback looks. There is no public way to take part in that hand-over;
    :class:`fitlab.CompiledLoop` on JAX uses it so that callbacks which read
    the weights during an epoch (``ModelCheckpoint(save_freq=N)``) see them,
    as under ``fit``.
:func:`thread_is_running`
    To notice that ``fit`` was abandoned, the sequence's guard thread looks at
    another thread's stack. Python exposes other threads' frames only through
    ``sys._current_frames()`` (documented, but underscored and CPython-specific).

Examples
--------
>>> check_keras_version("3.15.0")
>>> check_keras_version("4.0.0")
Traceback (most recent call last):
...
RuntimeError: fitlab/_private.py was written for Keras 3 ...
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from multiprocessing.pool import Pool
from types import FrameType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import keras
    from keras.src.trainers.data_adapters.py_dataset_adapter import PyDatasetAdapter

#: The Keras major version whose internals this module reaches into.
KERAS_MAJOR = 3


def check_keras_version(version: str | None = None) -> None:
    """Refuse a Keras whose internals this module was not written for.

    Parameters
    ----------
    version : str, optional
        A Keras version string; default the installed ``keras.__version__``.

    Raises
    ------
    RuntimeError
        When the major version is not :data:`KERAS_MAJOR`.

    Examples
    --------
    >>> check_keras_version("3.0.1")
    >>> check_keras_version()  # the installed Keras
    """
    if version is None:
        import keras

        version = keras.__version__
    major = int(version.split(".")[0])
    if major != KERAS_MAJOR:
        raise RuntimeError(
            f"fitlab/_private.py was written for Keras {KERAS_MAJOR} and reaches into its "
            f"internals; Keras {version} is installed. Update fitlab/_private.py and run "
            "tests/test_private.py before using CSVSequence's worker processes"
        )


def keras_worker_pools() -> list[Pool]:
    """The ``multiprocessing`` pools Keras's ``PyDataset`` readers have started and not freed.

    Examples
    --------
    >>> isinstance(keras_worker_pools(), list)
    True
    """
    check_keras_version()
    try:
        from keras.src.trainers.data_adapters import py_dataset_adapter

        pools = py_dataset_adapter._DATA_POOLS
    except (ImportError, AttributeError) as exc:
        raise _moved("Keras's list of PyDataset worker pools (_DATA_POOLS)", exc) from exc
    return list(pools)


def pool_pids(pool: Pool) -> set[int]:
    """The process ids of a ``multiprocessing.pool.Pool``'s workers.

    Examples
    --------
    >>> import multiprocessing
    >>> with multiprocessing.get_context("fork").Pool(2) as pool:
    ...     len(pool_pids(pool))
    2
    """
    try:
        workers = pool._pool
    except AttributeError as exc:
        raise _moved("multiprocessing.pool.Pool's list of workers (_pool)", exc) from exc
    return {worker.pid for worker in workers}


def terminate_keras_worker_pools(pids: Iterable[int]) -> int:
    """Terminate the Keras worker pools that run any of ``pids``; return how many.

    Examples
    --------
    >>> terminate_keras_worker_pools([])  # no pid of ours: nothing stopped
    0
    """
    ours = set(pids)
    stopped = 0
    for pool in keras_worker_pools():
        if pool_pids(pool) & ours:
            pool.terminate()
            stopped += 1
    return stopped


def pydataset_adapter(dataset: keras.utils.PyDataset, shuffle: bool = False) -> PyDatasetAdapter:
    """Keras's own reader of a ``PyDataset`` (workers, queue), as ``fit`` builds it.

    ``on_epoch_begin()``, ``get_numpy_iterator()``, ``on_epoch_end()`` read one epoch.

    Examples
    --------
    >>> import keras, numpy as np
    >>> class Two(keras.utils.PyDataset):
    ...     def __len__(self): return 2
    ...     def __getitem__(self, i): return np.full((1, 1), i), np.zeros(1)
    >>> adapter = pydataset_adapter(Two(workers=2))
    >>> adapter.on_epoch_begin()
    >>> [int(x[0, 0]) for x, _ in adapter.get_numpy_iterator()]
    [0, 1]
    >>> adapter.on_epoch_end()
    """
    check_keras_version()
    try:
        from keras.src.trainers.data_adapters.py_dataset_adapter import PyDatasetAdapter
    except ImportError as exc:
        raise _moved("Keras's PyDatasetAdapter", exc) from exc
    return PyDatasetAdapter(dataset, shuffle=shuffle)


def offer_jax_state(
    model: keras.Model,
    trainable: list | None = None,
    non_trainable: list | None = None,
    optimizer: list | None = None,
) -> None:
    """Let callbacks copy a JAX loop's latest state into ``model``'s variables when they look.

    Called after each step with the step's new values (in the order of
    ``model.trainable_variables``, ``model.non_trainable_variables`` and
    ``model.optimizer.variables``), and with none once the variables hold
    them again.

    Examples
    --------
    >>> class JaxModel:  # what Keras's JAX trainer gives a model
    ...     def jax_state_sync(self): pass
    >>> model = JaxModel()
    >>> offer_jax_state(model, [1.0], [], [])
    >>> model._jax_state["trainable_variables"], model._jax_state_synced
    ([1.0], False)
    >>> offer_jax_state(model)
    >>> model._jax_state is None
    True
    """
    check_keras_version()
    if not hasattr(model, "jax_state_sync"):
        raise _moved("the JAX trainer's jax_state_sync", AttributeError("jax_state_sync"))
    if trainable is None:
        model._jax_state, model._jax_state_synced = None, True
        return
    model._jax_state = {
        "trainable_variables": trainable,
        "non_trainable_variables": non_trainable,
        "optimizer_variables": optimizer,
    }
    model._jax_state_synced = False


def thread_is_running(thread_id: int, frame: FrameType) -> bool:
    """Whether ``frame`` is still on the stack of thread ``thread_id``.

    Examples
    --------
    >>> import inspect, threading
    >>> thread_is_running(threading.get_ident(), inspect.currentframe())
    True
    """
    try:
        frames = sys._current_frames()
    except AttributeError as exc:
        raise _moved("sys._current_frames (other threads' stacks)", exc) from exc
    current = frames.get(thread_id)
    while current is not None:
        if current is frame:
            return True
        current = current.f_back
    return False


def _moved(what: str, error: BaseException) -> RuntimeError:
    return RuntimeError(
        f"{what} is not where fitlab/_private.py expects it ({type(error).__name__}: {error}); "
        "this Keras or Python moved it. Update fitlab/_private.py and run tests/test_private.py"
    )
