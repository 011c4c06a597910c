"""The only Keras and Python internals fitlab touches, each with the reason no public way exists.

Everything else in fitlab uses public APIs. What is here is kept small, is
checked against the Keras version it was written for, and is pinned by
``tests/test_private.py``, which fails loudly (naming this module) when a
new Keras moves what these functions reach for.

Why each one is needed
----------------------
:func:`terminate_keras_worker_pools`
    ``keras.utils.PyDataset(use_multiprocessing=True)`` makes Keras start a
    ``multiprocessing`` pool that ``fit`` stops only when an epoch ends
    normally. When ``fit`` is left by an exception or a KeyboardInterrupt the
    pool keeps running (its feeder thread blocked on a full queue), and Keras
    offers no public handle to it: its pools are listed only in the private
    ``keras.src.trainers.data_adapters.py_dataset_adapter._DATA_POOLS``, and a
    pool's worker processes only in ``multiprocessing.pool.Pool._pool``.
    :class:`fitlab.CSVSequence` uses it to stop the workers it started.
:func:`pydataset_adapter`
    Keras reads a ``PyDataset``'s batches with its worker threads or processes
    only inside ``fit``/``evaluate``/``predict``; its adapter, the object that
    does it, is not exported. The pipeline benchmark and the worker tests use it
    to time and check that parallel reading without a model in the way.
:func:`thread_is_running`
    To notice that ``fit`` was abandoned, the sequence's guard thread looks at
    another thread's stack. Python exposes other threads' frames only through
    ``sys._current_frames()`` (documented, but underscored: CPython-specific).

Examples
--------
>>> check_keras_version("3.15.0")
>>> check_keras_version("4.0.0")
Traceback (most recent call last):
...
RuntimeError: fitlab._private was written for Keras 3 ...
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from types import FrameType

#: The Keras major version whose internals this module reaches into.
KERAS_MAJOR = 3


def check_keras_version(version: str | None = None) -> None:
    """Refuse a Keras whose internals this module was not written for.

    Examples
    --------
    >>> check_keras_version("3.0.1")
    """
    if version is None:
        import keras

        version = keras.__version__
    major = int(version.split(".")[0])
    if major != KERAS_MAJOR:
        raise RuntimeError(
            f"fitlab._private was written for Keras {KERAS_MAJOR} and reaches into its "
            f"internals; Keras {version} is installed. Update fitlab/_private.py (and run "
            "tests/test_private.py) before using CSVSequence(use_multiprocessing=True)"
        )


def keras_worker_pools() -> list:
    """The ``multiprocessing`` pools Keras's ``PyDataset`` adapter has running now.

    Examples
    --------
    >>> isinstance(keras_worker_pools(), list)
    True
    """
    check_keras_version()
    from keras.src.trainers.data_adapters import py_dataset_adapter

    return list(py_dataset_adapter._DATA_POOLS)


def pool_pids(pool) -> set[int]:
    """The process ids of a ``multiprocessing.pool.Pool``'s workers.

    Examples
    --------
    >>> import multiprocessing
    >>> with multiprocessing.get_context("fork").Pool(1) as pool:
    ...     len(pool_pids(pool))
    1
    """
    return {worker.pid for worker in getattr(pool, "_pool", ())}


def terminate_keras_worker_pools(pids: Iterable[int]) -> int:
    """Terminate the Keras worker pools that run any of ``pids``; return how many.

    Examples
    --------
    >>> terminate_keras_worker_pools([])
    0
    """
    ours = set(pids)
    stopped = 0
    for pool in keras_worker_pools():
        if pool_pids(pool) & ours:
            pool.terminate()
            stopped += 1
    return stopped


def pydataset_adapter(dataset, shuffle: bool = False):
    """Keras's own reader of a ``PyDataset`` (workers, queue), as ``fit`` builds it.

    ``on_epoch_begin()``, ``get_numpy_iterator()``, ``on_epoch_end()`` read one epoch.

    Examples
    --------
    >>> import keras, numpy as np
    >>> class Two(keras.utils.PyDataset):
    ...     def __len__(self): return 2
    ...     def __getitem__(self, i): return np.full((1, 1), i), np.zeros(1)
    >>> adapter = pydataset_adapter(Two())
    >>> [int(x[0, 0]) for x, _ in adapter.get_numpy_iterator()]
    [0, 1]
    """
    check_keras_version()
    from keras.src.trainers.data_adapters.py_dataset_adapter import PyDatasetAdapter

    return PyDatasetAdapter(dataset, shuffle=shuffle)


def thread_is_running(thread_id: int, frame: FrameType) -> bool:
    """Whether ``frame`` is still on the stack of thread ``thread_id``.

    Examples
    --------
    >>> import inspect, threading
    >>> thread_is_running(threading.get_ident(), inspect.currentframe())
    True
    """
    current = sys._current_frames().get(thread_id)
    while current is not None:
        if current is frame:
            return True
        current = current.f_back
    return False
