"""Keras 2's ``ImageDataGenerator(...).flow(x, y)``, built on Keras 3's augmentation layers.

Examples
--------
>>> import numpy as np
>>> images = np.zeros((5, 8, 8, 3), "uint8")
>>> x, y = next(ImageDataGenerator(rescale=1 / 255).flow(images, np.arange(5), batch_size=4))
>>> x.shape, x.dtype, len(y)
((4, 8, 8, 3), dtype('float32'), 4)
"""

from __future__ import annotations

import math
import threading
from typing import Any

import keras
import numpy as np

from fitlab.augment import make_augmentation

# Keras 2 arguments fitlab does not implement, with their defaults: passing the
# default is a no-op and allowed; anything else raises NotImplementedError.
_UNSUPPORTED_GENERATOR_ARGS = {
    "featurewise_center": False,
    "samplewise_center": False,
    "featurewise_std_normalization": False,
    "samplewise_std_normalization": False,
    "zca_whitening": False,
    "zca_epsilon": 1e-6,
    "brightness_range": None,
    "channel_shift_range": 0.0,
    "preprocessing_function": None,
    "data_format": "channels_last",
    "validation_split": 0.0,
    "interpolation_order": 1,
    "dtype": "float32",
}
_UNSUPPORTED_FLOW_ARGS = {
    "save_to_dir": None,
    "save_prefix": "",
    "save_format": "png",
    "ignore_class_split": False,
    "subset": None,
}


def _refuse_unsupported(owner: str, given: dict, defaults: dict) -> None:
    """Allow Keras 2 arguments left at their defaults; refuse the rest by name."""
    for name, value in given.items():
        if name not in defaults:
            raise TypeError(f"{owner}() got an unexpected keyword argument {name!r}")
        # None means "the Keras default" for data_format and dtype.
        if value is None and name in ("data_format", "dtype"):
            continue
        if value is defaults[name] or (value is not None and _equal(value, defaults[name])):
            continue
        raise NotImplementedError(
            f"{owner}({name}={value!r}) is not implemented by fitlab.compat; remove it "
            f"(Keras 2's default is {defaults[name]!r}) or preprocess the arrays yourself"
        )


def _equal(value: Any, default: Any) -> bool:
    try:
        return bool(value == default)
    except (TypeError, ValueError):  # arrays and other odd values are never "the default"
        return False


class ImageDataGenerator:
    """Keras 2's ``ImageDataGenerator`` for random affine augmentation, on Keras 3 layers.

    Supports ``rotation_range``, ``width_shift_range``, ``height_shift_range``,
    ``shear_range``, ``zoom_range``, ``horizontal_flip``, ``vertical_flip``,
    ``fill_mode``, ``cval`` -- with Keras 2's meanings and units (degrees for
    rotation *and shear*, fractions of the size for shifts below 1 and pixels
    from 1 up, ``[1 - z, 1 + z]`` per axis for zoom), converted by
    :func:`fitlab.make_augmentation` -- and ``rescale``, applied after the
    transform, as Keras 2 did. Any other Keras 2 argument with a non-default
    value raises ``NotImplementedError`` naming it; unknown names raise
    ``TypeError``. Differences: pixel shifts are drawn uniformly in
    ``(-r, r)`` (Keras 2 drew whole pixels for an ``int`` range), and the
    random numbers are Keras 3's, so the same seed does not give Keras 2's
    images (see :func:`fitlab.make_augmentation` for the small rest).

    Only :meth:`flow` (arrays in memory) is provided.

    Examples
    --------
    >>> import numpy as np
    >>> aug = ImageDataGenerator(rotation_range=20, zoom_range=0.15,
    ...                          horizontal_flip=True, fill_mode="nearest")
    >>> images = np.random.default_rng(0).integers(0, 256, (6, 16, 16, 3), dtype="uint8")
    >>> batch, labels = next(aug.flow(images, np.arange(6), batch_size=4, seed=0))
    >>> batch.shape, sorted(labels) == sorted(set(labels))
    ((4, 16, 16, 3), True)
    >>> ImageDataGenerator(brightness_range=(0.5, 1.5))
    Traceback (most recent call last):
    ...
    NotImplementedError: ImageDataGenerator(brightness_range=(0.5, 1.5)) is not implemented ...
    """

    def __init__(
        self,
        rotation_range: float = 0,
        width_shift_range: float = 0.0,
        height_shift_range: float = 0.0,
        shear_range: float = 0.0,
        zoom_range: float | tuple[float, float] = 0.0,
        horizontal_flip: bool = False,
        vertical_flip: bool = False,
        fill_mode: str = "nearest",
        cval: float = 0.0,
        rescale: float | None = None,
        **unsupported: Any,
    ) -> None:
        _refuse_unsupported("ImageDataGenerator", unsupported, _UNSUPPORTED_GENERATOR_ARGS)
        for name, value in (("width_shift_range", width_shift_range),
                            ("height_shift_range", height_shift_range)):  # fmt: skip
            if isinstance(value, list | tuple | np.ndarray):
                raise NotImplementedError(
                    f"ImageDataGenerator({name}={value!r}): a list of allowed shifts is not "
                    "implemented by fitlab.compat; give a range (fraction < 1, or pixels)"
                )
        self.augmentation_args = dict(
            rotation_range=rotation_range,
            width_shift_range=width_shift_range,
            height_shift_range=height_shift_range,
            shear_range=shear_range,
            zoom_range=zoom_range,
            horizontal_flip=horizontal_flip,
            vertical_flip=vertical_flip,
            fill_mode=fill_mode,
            cval=cval,
        )
        self.rescale = rescale
        self._layers: dict[tuple[int, int], keras.Sequential] = {}
        # Bad values fail here, as in Keras 2's constructor (pixel shifts are
        # checked against the image size in flow()).
        self.augmentation(64, 64)

    def _layer_args(self, height: int, width: int) -> dict:
        args = dict(self.augmentation_args)
        for name, size in (("width_shift_range", width), ("height_shift_range", height)):
            if args[name] >= 1:  # Keras 2: a range of 1 or more is in pixels
                if args[name] >= size:
                    raise ValueError(
                        f"{name}={args[name]} pixels is not below the image size {size}"
                    )
                args[name] = args[name] / size
        return args

    def augmentation(self, height: int, width: int, seed: int | None = None) -> keras.Sequential:
        """The Keras 3 layers this generator applies to ``height × width`` images.

        Unseeded layers are built once per image size and reused; a ``seed``
        builds a fresh copy, so the same seed draws the same transforms.
        """
        if seed is not None:
            return make_augmentation(**self._layer_args(height, width), seed=seed)
        key = (height, width)
        if key not in self._layers:
            self._layers[key] = make_augmentation(**self._layer_args(height, width))
        return self._layers[key]

    def standardize(self, x: np.ndarray) -> np.ndarray:
        """Keras 2's ``standardize``; here only ``rescale`` (after the transform)."""
        if self.rescale:
            x = x * np.float32(self.rescale)
        return x

    def flow(
        self,
        x: Any,
        y: Any = None,
        batch_size: int = 32,
        shuffle: bool = True,
        sample_weight: Any = None,
        seed: int | None = None,
        **unsupported: Any,
    ) -> NumpyArrayIterator:
        """Augmented batches from arrays, as Keras 2's ``flow``.

        Returns a :class:`NumpyArrayIterator`: ``next()`` gives batches
        forever (a new order each pass when ``shuffle``; the last batch of a
        pass may be short), and it is also a ``keras.utils.PyDataset`` of
        ``ceil(len(x) / batch_size)`` batches, so ``model.fit`` and
        :func:`fit_generator` take it directly. Batches are ``x`` (no ``y``),
        ``(x, y)``, or ``(x, y, sample_weight)``; images come back as
        ``float32``. The same ``seed`` gives the same order and transforms.

        Examples
        --------
        >>> import numpy as np
        >>> x, y = np.zeros((10, 4, 4, 1)), np.arange(10)
        >>> flow = ImageDataGenerator(horizontal_flip=True).flow(x, y, batch_size=4, seed=1)
        >>> [len(next(flow)[0]) for _ in range(4)]  # 4 + 4 + 2, then a new pass
        [4, 4, 2, 4]
        >>> len(flow), isinstance(flow, keras.utils.PyDataset)
        (3, True)
        """
        _refuse_unsupported("flow", unsupported, _UNSUPPORTED_FLOW_ARGS)
        return NumpyArrayIterator(
            x, y, self, batch_size=batch_size, shuffle=shuffle,
            sample_weight=sample_weight, seed=seed,
        )  # fmt: skip


class NumpyArrayIterator(keras.utils.PyDataset):
    """What :meth:`ImageDataGenerator.flow` returns (Keras 2's class of the same name).

    Both an endless iterator (``next``) and a ``PyDataset`` (index, ``len``,
    ``on_epoch_end`` draws a new order), as Keras 2's was.

    Examples
    --------
    >>> import numpy as np
    >>> flow = ImageDataGenerator().flow(np.zeros((5, 2, 2, 3)), batch_size=2, shuffle=False)
    >>> flow[2].shape  # by index: the short last batch of x alone
    (1, 2, 2, 3)
    """

    def __init__(
        self,
        x: Any,
        y: Any,
        image_data_generator: ImageDataGenerator,
        *,
        batch_size: int = 32,
        shuffle: bool = True,
        sample_weight: Any = None,
        seed: int | None = None,
    ) -> None:
        super().__init__()
        x = np.asarray(x)
        if x.ndim != 4:
            raise ValueError(
                f"flow() needs images shaped (N, height, width, channels), got {x.shape}"
            )
        for name, other in (("y", y), ("sample_weight", sample_weight)):
            if other is not None and len(other) != len(x):
                raise ValueError(
                    f"flow(): x has {len(x)} rows but {name} has {len(other)}; they must match"
                )
        if batch_size < 1:
            raise ValueError(f"flow(): batch_size must be positive, got {batch_size}")
        self.x = x
        self.y = None if y is None else np.asarray(y)
        self.sample_weight = None if sample_weight is None else np.asarray(sample_weight)
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.image_data_generator = image_data_generator
        self._rng = np.random.default_rng(seed)
        self._augmentation = image_data_generator.augmentation(x.shape[1], x.shape[2], seed)
        self._lock = threading.Lock()
        self._index_array = self._new_order()
        self._position = 0  # next batch of the current pass, for next()

    def __len__(self) -> int:
        return math.ceil(len(self.x) / self.batch_size)

    def _new_order(self) -> np.ndarray:
        return self._rng.permutation(len(self.x)) if self.shuffle else np.arange(len(self.x))

    def on_epoch_end(self) -> None:
        self._index_array = self._new_order()

    def __getitem__(self, index: int) -> Any:
        if not 0 <= index < len(self):
            raise IndexError(f"batch {index} is out of range for {len(self)} batches")
        return self._batch(self._rows(index))

    def _rows(self, index: int) -> np.ndarray:
        return self._index_array[index * self.batch_size : (index + 1) * self.batch_size]

    def __iter__(self) -> NumpyArrayIterator:
        return self

    def __next__(self) -> Any:
        with self._lock:  # one pass position, shared by every thread that calls next()
            if self._position >= len(self):
                self.on_epoch_end()
                self._position = 0
            rows = self._rows(self._position)
            self._position += 1
        return self._batch(rows)

    def _batch(self, rows: np.ndarray) -> Any:
        images = self._augmentation(self.x[rows].astype("float32"), training=True)
        images = self.image_data_generator.standardize(
            np.asarray(keras.ops.convert_to_numpy(images), dtype="float32")
        )
        if self.y is None:
            return images
        if self.sample_weight is None:
            return images, self.y[rows]
        return images, self.y[rows], self.sample_weight[rows]
