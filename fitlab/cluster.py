"""Several training processes on this machine, started and watched as one run.

``python -m fitlab train --workers N`` trains with
``tf.distribute.MultiWorkerMirroredStrategy`` across N processes. Each is a
``python -m fitlab worker`` told its place in the cluster by ``TF_CONFIG`` (a
JSON object: every worker's ``host:port``, and which one it is). On one
machine the cluster is N free ports on ``127.0.0.1``; on several machines the
user writes ``TF_CONFIG`` (``docs/multi-worker.md``).

This module owns the processes, not the training: free ports, one
``TF_CONFIG`` per worker, starting the workers, and watching them. Worker 0
(the *chief*) prints to the terminal; the others' output goes to a log file
each, shown if they fail. If any worker stops with an error or is killed, the
others would wait forever in their next all-reduce for a peer that is gone, so
the launcher stops them within :data:`STOP_WITHIN` seconds and says which
worker failed and how; the same command run again resumes from the chief's
last checkpoint. Workers die with the launcher (``PR_SET_PDEATHSIG`` on
Linux), so even a launcher killed by ``SIGKILL`` leaves no orphan.

Examples
--------
>>> ports = free_ports(2)
>>> config = json.loads(tf_config([f"127.0.0.1:{p}" for p in ports], 1))
>>> len(config["cluster"]["worker"]), config["task"]
(2, {'type': 'worker', 'index': 1})
"""

from __future__ import annotations

import ctypes
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

#: How often the launcher looks at its workers, in seconds.
POLL = 0.2
#: Seconds a worker gets to stop after SIGTERM before it is killed.
GRACE = 5.0
#: The bound on stopping every worker after one failed: a look, then the grace.
STOP_WITHIN = POLL + GRACE


#: Default seconds an all-reduce waits for the other workers before it gives up (a worker
#: of a cluster on several machines outlives a dead peer by at most this).
COLLECTIVE_TIMEOUT = 300.0


class WorkerFailed(RuntimeError):
    """A worker of a launched run stopped with an error; the others were stopped."""


def free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """``count`` distinct TCP ports free on ``host`` now (the OS picks them).

    Examples
    --------
    >>> ports = free_ports(3)
    >>> len(set(ports)), all(1024 <= p < 65536 for p in ports)
    (3, True)
    """
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((host, 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def tf_config(workers: Sequence[str], index: int) -> str:
    """The ``TF_CONFIG`` of worker ``index`` in a cluster of ``workers`` (``host:port`` each).

    Examples
    --------
    >>> tf_config(["a:1", "b:2"], 0)
    '{"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 0}}'
    """
    if not 0 <= index < len(workers):
        raise ValueError(f"worker index {index} is not in a cluster of {len(workers)}")
    return json.dumps(
        {"cluster": {"worker": list(workers)}, "task": {"type": "worker", "index": index}}
    )


def check_tf_config(text: str) -> None:
    """Refuse a ``TF_CONFIG`` that is not a cluster with this worker in it, in one line.

    Examples
    --------
    >>> check_tf_config(tf_config(["a:1", "b:2"], 1))
    >>> check_tf_config('{"cluster": {}}')
    Traceback (most recent call last):
    ...
    ValueError: TF_CONFIG '{"cluster": {}}' is not a cluster with this task in it; ...
    """
    example = (
        '{"cluster": {"worker": ["host1:port", "host2:port"]}, '
        '"task": {"type": "worker", "index": 0}}'
    )
    try:
        config = json.loads(text)
        workers = config["cluster"]["worker"]
        task = config["task"]
        ok = isinstance(workers, list) and workers and 0 <= int(task["index"]) < len(workers)
    except (ValueError, KeyError, TypeError):
        ok = False
    if not ok:
        raise ValueError(
            f"TF_CONFIG {text!r} is not a cluster with this task in it; write it as {example}"
        )


def lost_peer(error: BaseException) -> str | None:
    """The one line for the error a worker gets when a peer has gone, else ``None``.

    A worker waiting in an all-reduce for a peer that died gets
    ``UnavailableError`` ("Collective ops is aborted by: … Connection reset by
    peer"), or ``DeadlineExceededError`` after the collective timeout. That is
    the other worker's failure, not a bug here: no traceback.

    Examples
    --------
    >>> lost_peer(ValueError("a mistake")) is None
    True
    """
    tf = sys.modules.get("tensorflow")  # none loaded: no TensorFlow error either
    peer_errors = (
        () if tf is None else (tf.errors.UnavailableError, tf.errors.DeadlineExceededError)
    )
    if not isinstance(error, peer_errors):
        return None
    text = str(error)
    reason = text.split("aborted by: ", 1)[1].splitlines()[0] if "aborted by: " in text else ""
    return (
        f"another worker of this run is gone ({type(error).__name__}"
        + (f": {reason}" if reason else "")
        + "); start the workers again to resume from the chief's last checkpoint"
    )


def join_cluster(config: str, timeout: float = COLLECTIVE_TIMEOUT) -> Any:
    """This process as a worker of the cluster ``config`` (a ``TF_CONFIG``): its strategy.

    Call it before TensorFlow does anything else: ``MultiWorkerMirroredStrategy``
    sets up the devices and the collectives of the process. An all-reduce that
    waits longer than ``timeout`` seconds for a peer (one that died) fails,
    rather than hanging.
    """
    check_tf_config(config)
    os.environ["TF_CONFIG"] = config
    import tensorflow as tf

    options = tf.distribute.experimental.CommunicationOptions(timeout_seconds=timeout)
    return tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)


def launch(
    worker_args: Sequence[str],
    workers: int,
    *,
    env: dict[str, str] | None = None,
    log_dir: str | os.PathLike | None = None,
) -> None:
    """Run ``python -m fitlab worker WORKER_ARGS`` ``workers`` times on loopback; wait for all.

    Returns when every worker has finished. Raises :class:`WorkerFailed`
    (after stopping the rest) when one fails, and stops them all on
    ``KeyboardInterrupt`` before letting it through.

    Parameters
    ----------
    worker_args : sequence of str
        The arguments after ``python -m fitlab worker`` (``--tf-config`` is added).
    workers : int
        How many processes; at least 1.
    env : dict, optional
        Their environment (default: this process's).
    log_dir : path, optional
        Where workers 1… write their output (default: a temporary folder,
        deleted afterwards unless a worker failed: the error names its log).
    """
    if workers < 1:
        raise ValueError(f"--workers must be at least 1, not {workers}")
    addresses = [f"127.0.0.1:{port}" for port in free_ports(workers)]
    logs = Path(log_dir or tempfile.mkdtemp(prefix="fitlab-workers-"))
    keep_logs = log_dir is not None
    processes: list[subprocess.Popen] = []
    try:
        for index in range(workers):
            command = [sys.executable, "-m", "fitlab", "worker", *worker_args]
            command += ["--tf-config", tf_config(addresses, index)]
            output = None if index == 0 else open(logs / f"worker-{index}.log", "wb")  # noqa: SIM115
            processes.append(
                subprocess.Popen(
                    command,
                    env=env,
                    stdout=output,
                    stderr=subprocess.STDOUT if output else None,
                    preexec_fn=die_with_parent(os.getpid()),
                )
            )
            if output is not None:
                output.close()  # the child holds its own copy
        _watch(processes, logs)
    except WorkerFailed:
        keep_logs = True  # the message points to the failed worker's log
        raise
    finally:
        stop_all(processes)
        if not keep_logs:
            shutil.rmtree(logs, ignore_errors=True)


def _watch(processes: list[subprocess.Popen], logs: Path) -> None:
    """Wait until all finish; on the first failure raise :class:`WorkerFailed`.

    When a worker dies, the others soon fail too (their all-reduce lost a
    peer): of the failures seen at one look, one killed by a signal is the
    cause, else the lowest-numbered.
    """
    running = set(range(len(processes)))
    while running:
        codes = {index: processes[index].poll() for index in running}
        failed = {index: code for index, code in codes.items() if code not in (None, 0)}
        if failed:
            cause = min(failed, key=lambda index: (failed[index] >= 0, index))
            stop_all(processes)
            raise WorkerFailed(_failure(cause, failed[cause], logs))
        running -= {index for index, code in codes.items() if code == 0}
        time.sleep(POLL)


def _failure(index: int, code: int, logs: Path) -> str:
    how = (
        f"was killed by {signal.Signals(-code).name}" if code < 0 else f"exited with status {code}"
    )
    message = f"worker {index} of the run {how}; the other workers were stopped"
    log = logs / f"worker-{index}.log"
    if log.is_file():
        tail = log.read_text(errors="replace").strip().splitlines()[-1:]
        if tail:
            message += f" (its last line: {tail[0]!r}; its log: {log})"
    return message + ". Run the same command again to resume from the last checkpoint"


def stop_all(processes: list[subprocess.Popen]) -> None:
    """SIGTERM every process still running, then SIGKILL those left after :data:`GRACE`.

    Examples
    --------
    >>> sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    >>> stop_all([sleeper])
    >>> sleeper.returncode == -signal.SIGTERM
    True
    """
    alive = [p for p in processes if p.poll() is None]
    for process in alive:
        process.terminate()
    deadline = time.monotonic() + GRACE
    for process in alive:
        try:
            process.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def die_with_parent(parent: int) -> Callable[[], None]:
    """A ``preexec_fn`` for ``subprocess.Popen``: the child dies with process ``parent``.

    On Linux the child asks the kernel for ``SIGKILL`` when its parent dies
    (``PR_SET_PDEATHSIG``), however the parent dies. A parent killed between the
    fork and that request would send no signal, so the child then checks that
    ``parent`` is still its parent and kills itself if not. Elsewhere it does nothing.

    Parameters
    ----------
    parent : int
        The pid of the process that starts the child: ``os.getpid()``.

    Examples
    --------
    >>> run = [sys.executable, "-c", "print('ran')"]
    >>> done = subprocess.run(run, preexec_fn=die_with_parent(os.getpid()), capture_output=True)
    >>> done.returncode, done.stdout
    (0, b'ran\\n')
    >>> gone = subprocess.run(run, preexec_fn=die_with_parent(-1), capture_output=True)
    >>> gone.stdout  # its parent was already gone: killed before it ran anything
    b''
    """

    def die_with_it() -> None:
        if sys.platform.startswith("linux"):
            pr_set_pdeathsig = 1
            ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)
            if os.getppid() != parent:
                os.kill(os.getpid(), signal.SIGKILL)

    return die_with_it
