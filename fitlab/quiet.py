"""TensorFlow's start-up lines, kept out of notebooks and terminals.

Importing TensorFlow on a machine without CUDA writes lines like these to the
process's standard error, from C++, before TensorFlow's own log settings apply::

    WARNING: All log messages before absl::InitializeLog() is called are written to STDERR
    I0000 00:00:1796041069.754938   29917 cudart_stub.cc:31] Could not find cuda drivers …
    E0000 00:00:1796041102.622397   29917 cuda_platform.cc:52] failed call to cuInit: …

``TF_CPP_MIN_LOG_LEVEL`` cannot hide them: the first two come before TensorFlow
reads it, the third when the first operation looks for a GPU. They say nothing
a student or a CPU-only CI needs, and in a notebook they land in whichever cell
first touches TensorFlow, with a timestamp that changes every run.

:func:`silence_tensorflow_startup` (called by ``import fitlab``) therefore points
file descriptor 2 at ``/dev/null`` while TensorFlow is imported and looks for
its GPUs — no longer — and sets ``TF_CPP_MIN_LOG_LEVEL=2`` (errors only) for
what follows, unless it is set already. Import ``fitlab`` before ``keras`` for
it to apply. ``TF_CPP_MIN_LOG_LEVEL=0`` turns all of it off: every line shows.
A TensorFlow import that fails still raises its ``ImportError`` as usual; only
what it printed to the descriptor is lost.
"""

from __future__ import annotations

import contextlib
import importlib.abc
import importlib.util
import logging
import os
import sys
from collections.abc import Iterator

LOG_LEVEL_ENV = "TF_CPP_MIN_LOG_LEVEL"


def silence_tensorflow_startup() -> bool:
    """Silence TensorFlow's start-up lines when it is next imported; True if it will be.

    Does nothing and returns False when TensorFlow is already imported or
    ``TF_CPP_MIN_LOG_LEVEL`` is ``0``; a second call before TensorFlow's import
    adds nothing and returns True.
    """
    if os.environ.get(LOG_LEVEL_ENV, "").strip() == "0":
        return False
    os.environ.setdefault(LOG_LEVEL_ENV, "2")
    if "tensorflow" in sys.modules:
        return False
    if not any(isinstance(finder, _QuietImport) for finder in sys.meta_path):
        sys.meta_path.insert(0, _QuietImport())
    return True


class _QuietImport(importlib.abc.MetaPathFinder):
    """Finds ``tensorflow`` as usual, and wraps the one import in :func:`stderr_silenced`."""

    def find_spec(self, name, path=None, target=None):
        if name != "tensorflow":
            return None
        sys.meta_path.remove(self)  # once: later imports are plain dictionary lookups
        # The other finders, in their order: one that refuses TensorFlow still refuses it.
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.loader is not None:
            run = spec.loader.exec_module

            def exec_module(module):
                with stderr_silenced():
                    run(module)
                    # The CUDA probe (and its cuInit error) happens on first device use.
                    module.config.list_physical_devices("GPU")
                # TensorFlow's Python logger says INFO lines (a strategy's devices) by default.
                logging.getLogger("tensorflow").setLevel(logging.WARNING)

            spec.loader.exec_module = exec_module  # this spec's loader only
        return spec


@contextlib.contextmanager
def stderr_silenced() -> Iterator[None]:
    """Point file descriptor 2 at ``/dev/null`` for the ``with`` block, then restore it.

    The descriptor, not ``sys.stderr``: C++ libraries write to it directly.

    Examples
    --------
    >>> with stderr_silenced():
    ...     os.write(2, b"not shown")
    9
    """
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
