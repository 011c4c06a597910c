"""The loops: ways of training one batch, each run by :func:`fitlab.engine.run_epochs`.

``on_batch``
    :func:`train_on_batches`: ``model.train_on_batch`` in a loop that behaves like ``fit``.
``compiled_tf``
    :class:`CompiledLoop`: a ``tf.GradientTape`` step inside ``tf.function``,
    fed from a prefetched ``tf.data`` pipeline (TensorFlow only; imported on use).

Examples
--------
>>> from fitlab.loops import train_on_batches
>>> train_on_batches.__name__
'train_on_batches'
"""

from fitlab.loops.on_batch import OnBatchSteps, train_on_batches

__all__ = ["OnBatchSteps", "train_on_batches"]
