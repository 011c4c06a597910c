"""The machine a run was made on: its CPU, its load, the versions it ran with.

Every benchmark prints the CPU name and the load average beside its figures, and
every notebook starts with :func:`show_versions`, so that a stored output says
where and with what it was made (keras-io's habit of a header per example).

Examples
--------
>>> load_text((0.5, 1.25, 2.0))
'0.50 1.25 2.00'
"""

from __future__ import annotations

import datetime
import importlib
import os
import platform
from collections.abc import Iterable

from fitlab.config import get_profile


def cpu_name() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux, else what ``platform`` knows).

    Examples
    --------
    >>> isinstance(cpu_name(), str)
    True
    """
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def load_text(values: Iterable[float]) -> str:
    """A load average (``os.getloadavg()``) as the tables print it.

    Examples
    --------
    >>> load_text((1.0, 0.333, 2.5))
    '1.00 0.33 2.50'
    """
    return " ".join(f"{x:.2f}" for x in values)


def accelerators() -> list[str]:
    """The GPUs (or TPUs) the Keras backend sees; empty on a CPU-only machine.

    Examples
    --------
    >>> isinstance(accelerators(), list)
    True
    """
    import keras

    backend = keras.config.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        return [d.name for d in tf.config.list_physical_devices("GPU")]
    if backend == "jax":
        import jax

        return [str(d) for d in jax.devices() if d.platform != "cpu"]
    return []


def versions() -> dict[str, str]:
    """fitlab, Python, Keras and its backend, with their versions.

    Examples
    --------
    >>> sorted(versions())[:3]
    ['backend', 'fitlab', 'keras']
    """
    import keras

    import fitlab

    backend = keras.config.backend()
    found = {
        "fitlab": fitlab.__version__,
        "python": platform.python_version(),
        "keras": keras.__version__,
        "backend": backend,
    }
    found[backend] = getattr(importlib.import_module(backend), "__version__", "?")
    return found


def show_versions() -> None:
    """Print when, where and with what this process runs: a notebook's first output.

    One line for the software (fitlab, Keras, its backend, Python, the notebook
    profile), one for the machine (CPU, cores, accelerators, load average) and
    the time, in UTC.

    Examples
    --------
    >>> show_versions()  # doctest: +ELLIPSIS
    fitlab ... · Keras ... on ... · Python ... · profile ...
    Run ... UTC on ... cores, ...; load average ...
    """
    found = versions()
    backend = found["backend"]
    print(
        f"fitlab {found['fitlab']} · Keras {found['keras']} on {backend} {found[backend]} · "
        f"Python {found['python']} · profile {get_profile().name}"
    )
    devices = ", ".join(accelerators()) or "no GPU"
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M")
    print(
        f"Run {now} UTC on {cpu_name()}, {os.cpu_count()} cores, {devices}; "
        f"load average {load_text(os.getloadavg())}"
    )
