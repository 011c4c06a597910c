"""fitlab/_private.py against the installed Keras and Python: what it reaches for is still there.

Each test drives one function of ``fitlab._private`` on real objects (a Keras
worker pool, a thread's stack), so a Keras or Python release that moves an
internal fails here first, with a message that names ``fitlab/_private.py``.
"""

from __future__ import annotations

import inspect
import multiprocessing
import os
import sys
import threading
import time
from pathlib import Path

import keras
import numpy as np
import pytest

from fitlab import _private

pytestmark = pytest.mark.timeout(120)
MOVED = "Keras or Python moved what fitlab/_private.py reaches for; update fitlab/_private.py"


class Numbers(keras.utils.PyDataset):
    """Batch ``i`` is ``[[i]]``: which batches were read, and in what order, is visible."""

    def __init__(self, batches: int, **kwargs):
        super().__init__(**kwargs)
        self.batches = batches

    def __len__(self) -> int:
        return self.batches

    def __getitem__(self, i: int):
        return np.full((1, 1), i, dtype=np.int64), np.zeros(1, dtype=np.float32)


def _parent_of(pid: int) -> int | None:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None  # gone
    fields = dict(line.split(":\t", 1) for line in status.splitlines() if ":\t" in line)
    if fields["State"].startswith("Z"):
        return None  # exited, not yet reaped
    return int(fields["PPid"])


def _wait_gone(pids: set[int], timeout: float = 10.0) -> set[int]:
    deadline = time.monotonic() + timeout
    alive = set(pids)
    while alive and time.monotonic() < deadline:
        alive = {pid for pid in alive if _parent_of(pid) is not None}
        time.sleep(0.05)
    return alive


# -- the version check ------------------------------------------------------------------
def test_the_installed_keras_is_the_major_version_the_module_was_written_for():
    assert int(keras.__version__.split(".")[0]) == _private.KERAS_MAJOR, MOVED
    _private.check_keras_version()  # no error


@pytest.mark.parametrize("version", ["2.15.0", "4.0.0", "10.1"])
def test_another_major_version_is_refused_naming_the_file(version):
    with pytest.raises(RuntimeError, match=rf"fitlab/_private\.py .*Keras {version} is installed"):
        _private.check_keras_version(version)


# -- Keras's worker pools ---------------------------------------------------------------
def test_a_pydataset_with_worker_processes_registers_its_pool_where_we_look():
    # Many batches and a short queue: the pool is still working when we look,
    # as it is when fit is abandoned mid-epoch.
    dataset = Numbers(1000, workers=2, use_multiprocessing=True, max_queue_size=2)
    adapter = _private.pydataset_adapter(dataset)
    before = set(map(id, _private.keras_worker_pools()))
    adapter.on_epoch_begin()
    assert int(next(iter(adapter.get_numpy_iterator()))[0][0, 0]) == 0
    new = [pool for pool in _private.keras_worker_pools() if id(pool) not in before]
    assert len(new) == 1, f"Keras's _DATA_POOLS does not list the epoch's pool. {MOVED}"
    pids = _private.pool_pids(new[0])
    try:
        assert len(pids) == 2, f"Pool._pool does not hold the 2 workers: {pids}. {MOVED}"
        assert {_parent_of(pid) for pid in pids} == {os.getpid()}, "not our live children"
        assert _private.terminate_keras_worker_pools({os.getpid()}) == 0  # not a worker's pid
    finally:
        stopped = _private.terminate_keras_worker_pools(pids)
    assert stopped == 1
    assert _wait_gone(pids) == set(), "terminate_keras_worker_pools left workers running"


def test_keras_data_pools_missing_is_a_loud_error(monkeypatch):
    from keras.src.trainers.data_adapters import py_dataset_adapter

    monkeypatch.delattr(py_dataset_adapter, "_DATA_POOLS")
    with pytest.raises(RuntimeError, match=r"_DATA_POOLS.*fitlab/_private\.py"):
        _private.keras_worker_pools()


def test_pool_pids_are_the_pools_live_worker_processes():
    with multiprocessing.get_context("fork").Pool(3) as pool:
        pids = _private.pool_pids(pool)
        assert len(pids) == 3, MOVED
        assert {_parent_of(pid) for pid in pids} == {os.getpid()}
        assert pool.apply(os.getpid) in pids


def test_pool_pids_of_a_pool_without_its_worker_list_is_a_loud_error():
    with pytest.raises(RuntimeError, match=r"Pool's list of workers.*fitlab/_private\.py"):
        _private.pool_pids(object())


# -- Keras's PyDataset reader -----------------------------------------------------------
@pytest.mark.parametrize(
    "options", [{}, {"workers": 2}, {"workers": 2, "use_multiprocessing": True}]
)
def test_the_adapter_reads_every_batch_in_order_as_fit_does(options):
    dataset = Numbers(5, **options)
    adapter = _private.pydataset_adapter(dataset)
    for _ in range(2):  # two epochs: the workers are started and stopped each time
        adapter.on_epoch_begin()
        seen = [int(x[0, 0]) for x, _ in adapter.get_numpy_iterator()]
        adapter.on_epoch_end()
        assert seen == [0, 1, 2, 3, 4], f"PyDatasetAdapter read {seen}. {MOVED}"


def test_the_adapter_shuffles_batch_indices_when_asked():
    dataset = Numbers(40)
    adapter = _private.pydataset_adapter(dataset, shuffle=True)
    adapter.on_epoch_begin()
    seen = [int(x[0, 0]) for x, _ in adapter.get_numpy_iterator()]
    adapter.on_epoch_end()
    assert sorted(seen) == list(range(40)) and seen != list(range(40))


# -- another thread's stack ---------------------------------------------------------------
def test_thread_is_running_follows_a_frame_on_another_threads_stack():
    entered, leave = threading.Event(), threading.Event()
    frames = []

    def outer():
        frames.append(inspect.currentframe())
        inner()

    def inner():
        entered.set()
        leave.wait(10)

    thread = threading.Thread(target=outer)
    thread.start()
    try:
        assert entered.wait(10)
        assert _private.thread_is_running(thread.ident, frames[0]), MOVED
        here = inspect.currentframe()
        assert not _private.thread_is_running(thread.ident, here)  # not on that stack
        assert _private.thread_is_running(threading.get_ident(), here)
    finally:
        leave.set()
        thread.join(10)
    assert not _private.thread_is_running(thread.ident, frames[0])  # the thread is gone


def test_thread_is_running_without_current_frames_is_a_loud_error(monkeypatch):
    monkeypatch.delattr(sys, "_current_frames")
    with pytest.raises(RuntimeError, match=r"sys\._current_frames.*fitlab/_private\.py"):
        _private.thread_is_running(threading.get_ident(), inspect.currentframe())


# -- the JAX state hand-over ------------------------------------------------------------


def test_keras_jax_trainer_still_reads_the_state_offer_jax_state_leaves():
    """Keras's JAX trainer copies ``_jax_state`` into the variables when a callback
    reads ``self.model``; ``offer_jax_state`` fills exactly those attributes (the
    behaviour itself is driven in tests/jax/test_compiled_loop_jax.py)."""
    from keras.src.backend.jax.trainer import JAXTrainer

    sync = inspect.getsource(JAXTrainer.jax_state_sync)
    for name in ("_jax_state", "_jax_state_synced", "trainable_variables", "optimizer_variables"):
        assert name in sync, MOVED
    assert "jax_state_sync()" in inspect.getsource(keras.callbacks.Callback.model.fget), MOVED


def test_offer_jax_state_refuses_a_model_without_the_jax_trainer():
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])  # TensorFlow's trainer
    with pytest.raises(RuntimeError, match="fitlab/_private.py"):
        _private.offer_jax_state(model, [], [], [])
