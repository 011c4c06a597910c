"""The loops: ways of training one batch, each run by :func:`fitlab.engine.run_epochs`.

``on_batch``
    :func:`train_on_batches`: ``model.train_on_batch`` in a loop that behaves like ``fit``.
``compiled``
    :class:`CompiledLoop`: one compiled step per backend, picked by
    ``KERAS_BACKEND``, with everything around it written once.
``compiled_tf``, ``compiled_jax``
    The two steps: a ``tf.GradientTape`` inside ``tf.function`` fed by
    ``tf.data``; a pure function of the training state under ``jax.jit``.
    Each imports its framework and is imported only when used.
``step``
    What both steps share: the loss over the global batch, mixed precision.

Examples
--------
>>> from fitlab.loops import train_on_batches
>>> train_on_batches.__name__
'train_on_batches'
"""

from fitlab.loops.on_batch import OnBatchSteps, train_on_batches

__all__ = ["OnBatchSteps", "train_on_batches"]
