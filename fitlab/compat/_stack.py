"""Where a warning raised inside :mod:`fitlab.compat` should point: at the user's line.

A compat function may be called directly, as a model method
(:func:`fitlab.compat.enable_legacy_methods`) or from inside the epoch runner;
a fixed ``stacklevel`` would point into fitlab for some of these routes.
"""

from __future__ import annotations

import inspect

# The epoch runner calls back into compat (its Steps), so its frames are skipped too.
_SKIPPED = ("fitlab.compat", "fitlab.engine.epochs")


def caller_stacklevel() -> int:
    """The ``stacklevel`` of the first frame outside fitlab.compat and the epoch runner.

    Counted from the function that calls this one, as ``warnings.warn``
    counts from the function that calls it.
    """
    frame = inspect.currentframe()
    frame = frame.f_back if frame is not None else None  # the caller: stacklevel 1
    level = 1
    while frame is not None and _skipped(frame.f_globals.get("__name__", "")):
        frame, level = frame.f_back, level + 1
    return level


def _skipped(module: str) -> bool:
    return any(module == name or module.startswith(name + ".") for name in _SKIPPED)
