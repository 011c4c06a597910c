"""The engine: one adapter layer (source → batches) and one epoch runner under every loop.

``adapters``
    :class:`BatchStream`: what an epoch of a source is, for arrays, a
    ``PyDataset``, a generator or a ``tf.data.Dataset``; Keras 2's rules are
    parameters of it, not a second implementation.
``epochs``
    :func:`run_epochs`: ``fit``'s epoch loop (callbacks, validation,
    ``History``) around any :class:`Steps`.

Examples
--------
>>> from fitlab.engine import BatchStream
>>> BatchStream([("x", "y")] * 3).num_batches
3
"""

from fitlab.engine.adapters import FOREVER, BatchStream, arrays_batch_size, source_length
from fitlab.engine.epochs import Steps, run_epochs

__all__ = ["FOREVER", "BatchStream", "Steps", "arrays_batch_size", "run_epochs", "source_length"]
