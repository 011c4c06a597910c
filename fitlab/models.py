"""MiniVGGNet, the tutorial's network, in Keras 3 (channels last)."""

from __future__ import annotations

import keras
from keras import layers


class MiniVGGNet:
    """The tutorial's small VGG-style CNN.

    Two CONV(32)→ReLU→BN blocks, max-pool, dropout 0.25; two CONV(64)→ReLU→BN
    blocks, max-pool, dropout 0.25; FC(512)→ReLU→BN, dropout 0.5; softmax.
    Batch norm comes *after* the ReLU, as in the tutorial.

    The model takes pixels in 0–255, as ``uint8`` or as floats (augmentation
    outputs floats), and divides by 255 in its own ``scale`` layer. The tutorial
    fed unscaled 0–255 floats and saw a first-epoch val_loss near 14; scaling
    inside the model keeps the data pipeline in compact ``uint8`` and makes the
    model safe to call on raw rows. Scaling is not the main cause of that early
    val_loss, though: with scaled inputs the first epoch's val_loss is still
    large, because batch norm's moving averages (momentum 0.99) have seen only
    ~32 steps after one epoch, so inference-mode statistics still lag the
    training-mode ones (lower ``bn_momentum`` to watch them catch up sooner).

    Examples
    --------
    >>> model = MiniVGGNet.build(64, 64, 3, classes=17)
    >>> model.input_shape, model.output_shape, model.count_params()
    ((None, 64, 64, 3), (None, 17), 8466225)
    """

    @staticmethod
    def build(
        width: int,
        height: int,
        depth: int,
        classes: int,
        augmentation: keras.layers.Layer | None = None,
        bn_momentum: float = 0.99,
        synchronized: bool = False,
    ) -> keras.Model:
        """Return an uncompiled MiniVGGNet for ``height × width × depth`` inputs.

        Parameters
        ----------
        width, height, depth : int
            Input image size and channels.
        classes : int
            Number of output classes.
        augmentation : keras.layers.Layer, optional
            Augmentation to run inside the model (for example
            ``fitlab.make_augmentation(**fitlab.TUTORIAL_AUGMENTATION)``), so it
            runs on the accelerator and only while training. It sees 0–255
            pixels, the same units as outside the model.
        bn_momentum : float
            Batch-norm moving-average momentum (Keras default 0.99).
        synchronized : bool
            Batch norm computes its batch statistics over the *global* batch
            under a ``tf.distribute`` strategy with several replicas
            (``BatchNormalization(synchronized=True)``, an all-reduce per
            layer and step), so that N replicas normalise as one process
            would. Off, each replica normalises its own share of the batch.
            TensorFlow backend only (Keras refuses it on the others). With
            one replica the statistics are the same, computed another way
            (E[x²] − E[x]² from sums, which a replica can all-reduce): equal
            to float32 rounding.

        Returns
        -------
        keras.Model
            Input ``image`` (float32, 0–255; ``uint8`` is cast in the model),
            output ``probabilities`` (float32 softmax over ``classes``).

        Examples
        --------
        >>> import numpy as np
        >>> model = MiniVGGNet.build(16, 16, 3, classes=4)
        >>> probabilities = model(np.zeros((2, 16, 16, 3), "uint8"), training=False)
        >>> tuple(probabilities.shape), np.allclose(np.sum(probabilities, axis=1), 1)
        ((2, 4), True)
        """

        def conv_block(x, filters):
            for _ in range(2):
                x = layers.Conv2D(filters, (3, 3), padding="same")(x)
                x = layers.Activation("relu")(x)
                x = layers.BatchNormalization(
                    axis=-1, momentum=bn_momentum, synchronized=synchronized
                )(x)
            x = layers.MaxPooling2D(pool_size=(2, 2))(x)
            return layers.Dropout(0.25)(x)

        # The input is float32, not uint8: Keras casts whatever reaches an Input
        # to the Input's dtype, and float→uint8 truncates and wraps (200.7 → 200,
        # 300.0 → 44, -1.0 → 255), which would corrupt augmented (float) batches.
        # A uint8 batch is still accepted: the model casts it to float32 inside
        # its own (compiled) call, so the pipeline can stay in uint8.
        inputs = keras.Input(shape=(height, width, depth), dtype="float32", name="image")
        x = inputs
        if augmentation is not None:
            # Before scaling, so fill values (cval) are in pixel units everywhere.
            x = augmentation(x)
        x = layers.Rescaling(1.0 / 255, name="scale")(x)
        x = conv_block(x, 32)
        x = conv_block(x, 64)
        x = layers.Flatten()(x)
        x = layers.Dense(512)(x)
        x = layers.Activation("relu")(x)
        x = layers.BatchNormalization(momentum=bn_momentum, synchronized=synchronized)(x)
        x = layers.Dropout(0.5)(x)
        x = layers.Dense(classes)(x)
        # float32 softmax keeps the loss stable under mixed precision.
        outputs = layers.Activation("softmax", dtype="float32", name="probabilities")(x)
        return keras.Model(inputs, outputs, name="minivggnet")


class TinyNet:
    """A network whose training step costs almost nothing: a fast accelerator, seen from the input.

    Scale to 0–1, average each colour over the image, one dense softmax layer.
    With it, a CPU trains thousands of images a second, as MiniVGGNet does on a
    GPU, so whatever keeps the step waiting is the input pipeline or the loop
    around the step: what the workbook and ``bench loops`` measure with it.

    Examples
    --------
    >>> model = TinyNet.build(64, 64, 3, classes=17)
    >>> model.input_shape, model.output_shape, model.count_params()
    ((None, 64, 64, 3), (None, 17), 68)
    """

    @staticmethod
    def build(width: int, height: int, depth: int, classes: int) -> keras.Model:
        """Return the uncompiled network for ``height``×``width``×``depth`` images."""
        return keras.Sequential(
            [
                keras.Input((height, width, depth)),
                layers.Rescaling(1 / 255),
                layers.GlobalAveragePooling2D(),
                layers.Dense(classes, activation="softmax"),
            ],
            name="tinynet",
        )
