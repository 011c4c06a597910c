"""Callbacks and what they draw: live training plots and resumable checkpoints.

``live``
    :class:`LivePlot`: the training curves while training runs (widgets in a
    notebook, one text line per epoch elsewhere).
``checkpoint``
    :class:`ResumableCheckpoint` and :func:`resume_from`: every epoch saved so
    that a killed run resumes where it stopped.

Examples
--------
>>> from fitlab.callbacks import ResumableCheckpoint
>>> ResumableCheckpoint("runs/ckpt").keep
1
"""

from fitlab.callbacks.checkpoint import ResumableCheckpoint, Resumed, resume_from
from fitlab.callbacks.live import LivePlot

__all__ = ["LivePlot", "ResumableCheckpoint", "Resumed", "resume_from"]
