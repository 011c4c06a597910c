"""The pipelines layer: the CSV streamed into Keras, batch by batch, three ways.

``generator``
    :func:`csv_image_generator`, the tutorial's Python generator, fixed.
``sequence``
    :class:`CSVSequence`, a ``keras.utils.PyDataset`` (exact epochs, workers).
``tfdata``
    :func:`csv_dataset`, a ``tf.data`` pipeline (TensorFlow only; imported on use).
``meter``
    :class:`InputMeter`: how long the consumer waited for each batch.

Examples
--------
>>> from fitlab.pipelines import rows_in
>>> import numpy as np
>>> rows_in((np.zeros((8, 2)), np.zeros(8)))
8
"""

from fitlab.pipelines.generator import apply_augmentation, csv_image_generator, is_endless
from fitlab.pipelines.meter import InputMeter, rows_in
from fitlab.pipelines.sequence import CSVSequence

__all__ = [
    "CSVSequence",
    "InputMeter",
    "apply_augmentation",
    "csv_image_generator",
    "is_endless",
    "rows_in",
]
