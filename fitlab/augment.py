"""The tutorial's ``ImageDataGenerator`` augmentation as Keras 3 preprocessing layers.

``make_augmentation`` takes ``ImageDataGenerator``'s argument names *and units*
and converts them to the layers' units, so ``make_augmentation(**TUTORIAL_AUGMENTATION)``
draws the same ranges of rotation, shift, shear and zoom as the tutorial's
``ImageDataGenerator(**TUTORIAL_AUGMENTATION)`` did. Copying the numbers across
unconverted would not: ``shear_range=0.15`` is 0.15 *degrees*, while
``RandomShear(x_factor=0.15)`` shears by about 8.5°.

The result is a ``keras.Sequential``: call it on a batch with ``training=True``
(without it a Keras layer runs in inference mode and returns its input
unchanged), map it over a ``tf.data`` pipeline, or pass it to
``MiniVGGNet.build(augmentation=...)`` to run it on the accelerator.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import keras
import numpy as np

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = [
    "TUTORIAL_AUGMENTATION",
    "CenteredRandomShear",
    "make_augmentation",
    "preview_augmentation",
]

# The tutorial's ImageDataGenerator(...) arguments, unchanged (old names and units).
TUTORIAL_AUGMENTATION = dict(
    rotation_range=20,
    zoom_range=0.15,
    width_shift_range=0.2,
    height_shift_range=0.2,
    shear_range=0.15,
    horizontal_flip=True,
    fill_mode="nearest",
)

FILL_MODES = ("nearest", "constant", "reflect", "wrap")
MAX_SHEAR_DEGREES = 45.0  # RandomShear accepts shear factors tan(angle) up to 1


@keras.saving.register_keras_serializable(package="fitlab")
class CenteredRandomShear(keras.layers.RandomShear):
    """``keras.layers.RandomShear`` about the image centre, as ``ImageDataGenerator`` shears.

    Keras 3's ``RandomShear`` maps an output pixel ``(x, y)`` to the input pixel
    ``(x + s_x·y, y + s_y·x)``: it shears about the top-left corner, which also
    shifts the image by up to ``s·(size − 1)`` pixels. ``ImageDataGenerator``
    sheared about the centre ``c = (size − 1) / 2``. This layer keeps
    ``RandomShear``'s random factors and adds the offset that moves the fixed
    point to the centre: ``x_in = x + s_x·(y − c_y)``, ``y_in = y + s_y·(x − c_x)``.

    Examples
    --------
    A vertical bar through the centre leans, but its middle stays put:

    >>> layer = CenteredRandomShear(x_factor=0.5, fill_mode="constant", seed=0)
    >>> image = np.zeros((1, 9, 9, 1), "float32")
    >>> image[0, :, 4] = 1.0
    >>> out = np.asarray(layer(image, training=True))
    >>> out.shape, float(out[0, 4, 4, 0])
    ((1, 9, 9, 1), 1.0)
    """

    def get_config(self):
        # RandomShear stores a factor f as (-f, f), which its own __init__ then
        # refuses (factors must be >= 0): store f again so saved models load.
        config = super().get_config()
        for name in ("x_factor", "y_factor"):
            lower, upper = config[name]
            if lower == -upper:
                config[name] = abs(upper)
        return config

    def transform_images(self, images, transformation, training=True):
        # Keras's public hook (RandomShear's own one shears about the corner).
        # The random draws stay RandomShear's: get_random_transformation is kept.
        images = self.backend.cast(images, self.compute_dtype)
        if training:
            images = self._shear_about_centre(images, transformation, self.interpolation)
        return images

    def transform_segmentation_masks(self, segmentation_masks, transformation, training=True):
        # Masks move with their images, so they are sheared about the centre too.
        if training:
            segmentation_masks = self._shear_about_centre(
                segmentation_masks, transformation, "nearest"
            )
        return segmentation_masks

    def _shear_about_centre(self, images, transformation, interpolation):
        if transformation is None:
            return images
        ops = self.backend
        unbatched = len(ops.shape(images)) == 3
        if unbatched:
            images = ops.numpy.expand_dims(images, axis=0)
        shape = ops.shape(images)
        if self.data_format == "channels_first":
            height, width = shape[-2], shape[-1]
        else:
            height, width = shape[-3], shape[-2]
        outputs = ops.image.affine_transform(
            images,
            transform=self._centered_shear_matrix(transformation["shear_factor"], height, width),
            interpolation=interpolation,
            fill_mode=self.fill_mode,
            fill_value=self.fill_value,
            data_format=self.data_format,
        )
        if unbatched:
            outputs = ops.numpy.squeeze(outputs, axis=0)
        return outputs

    def _centered_shear_matrix(self, shear_factors, height, width):
        ops = self.backend
        shear = ops.cast(shear_factors, "float32")
        s_x, s_y = shear[:, 0:1], shear[:, 1:2]
        c_x = (ops.cast(width, "float32") - 1.0) / 2.0
        c_y = (ops.cast(height, "float32") - 1.0) / 2.0
        ones = ops.numpy.ones_like(s_x)
        zeros = ops.numpy.zeros_like(s_x)
        # [a0 a1 a2 b0 b1 b2 c0 c1]: x_in = a0·x + a1·y + a2, y_in = b0·x + b1·y + b2
        return ops.numpy.concatenate(
            [ones, s_x, -s_x * c_y, s_y, ones, -s_y * c_x, zeros, zeros], axis=1
        )


def _layer_seeds(seed: int | None, count: int) -> list[int | None]:
    """One independent seed per layer, derived from ``seed`` (``None`` stays random)."""
    if seed is None:
        return [None] * count
    return [int(s) for s in np.random.SeedSequence(seed).generate_state(count) % (2**31 - 1)]


def _check_range(name: str, value: float, upper: float | None = None, hint: str = "") -> None:
    if value < 0:
        raise ValueError(f"{name} must be >= 0, got {value!r}")
    if upper is not None and value >= upper:
        raise ValueError(f"{name}={value!r} is out of range: it must be below {upper}{hint}")


def _zoom_factor(zoom_range: float | Sequence[float]) -> tuple[float, float]:
    """ImageDataGenerator's zoom_range → RandomZoom's factor ``(lo − 1, hi − 1)``."""
    if isinstance(zoom_range, int | float):
        _check_range("zoom_range", zoom_range, upper=1.0)
        lo, hi = 1.0 - zoom_range, 1.0 + zoom_range
    else:
        if len(zoom_range) != 2 or not 0 < zoom_range[0] <= zoom_range[1] <= 2:
            raise ValueError(
                f"zoom_range={zoom_range!r}: give a float z (zoom drawn from [1 - z, 1 + z]) "
                "or a pair [lo, hi] with 0 < lo <= hi <= 2"
            )
        lo, hi = float(zoom_range[0]), float(zoom_range[1])
    return lo - 1.0, hi - 1.0


def make_augmentation(
    rotation_range: float = 0,
    width_shift_range: float = 0.0,
    height_shift_range: float = 0.0,
    shear_range: float = 0.0,
    zoom_range: float | Sequence[float] = 0.0,
    horizontal_flip: bool = False,
    vertical_flip: bool = False,
    fill_mode: str = "nearest",
    cval: float = 0.0,
    seed: int | None = None,
) -> keras.Sequential:
    """Build ``ImageDataGenerator``'s random affine augmentation from Keras 3 layers.

    Arguments have ``ImageDataGenerator``'s names, units and defaults; each is
    converted to its layer's units. ``W``, ``H`` are the image width and height
    in pixels and ``c = (size − 1) / 2`` the image centre, about which both
    libraries rotate, shear and zoom. "Input coordinate" is where an output
    pixel is read from (both libraries map output → input).

    - ``rotation_range=θ`` (degrees; Keras 2 draws the angle from ``U(−θ, θ)``)
      → ``RandomRotation(factor=θ / 360)`` (a fraction of a full turn, 2π;
      the layer draws ``U(−factor, factor) · 360°``). 20° → 0.0556.
    - ``width_shift_range=f`` (fraction; Keras 2: ``dx ~ U(−f, f) · W`` pixels)
      → ``RandomTranslation(width_factor=f)``, the same; ``height_shift_range``
      → ``height_factor`` likewise with ``H``.
    - ``shear_range=φ`` (*degrees*; Keras 2 draws ``α ~ U(−φ, φ)`` and reads
      ``x_in = x − sin α · (y − c_y)``, ``y_in = cos α · (y − c_y) + c_y``)
      → ``CenteredRandomShear(x_factor=tan φ)`` (``x_in = x + s · (y − c_y)``,
      ``s ~ U(−tan φ, tan φ)``): the same horizontal shear, the same extreme
      angles. 0.15° → ``tan(0.15°) = 0.00262`` (``RandomShear(x_factor=0.15)``
      would be 8.5°). Keras 3's own ``RandomShear`` shears about the top-left
      corner; ``CenteredRandomShear`` moves the fixed point to the centre.
    - ``zoom_range=z`` (Keras 2 draws ``zx, zy ~ U(1 − z, 1 + z)``
      independently; input coordinate ``= zoom · (out − c) + c``, so a zoom
      above 1 zooms *out*) → ``RandomZoom(height_factor=(−z, z),
      width_factor=(−z, z))`` (input coordinate ``= (1 + f) · (out − c) + c``,
      ``f`` drawn per axis: ``1 + f`` has exactly Keras 2's distribution;
      without ``width_factor`` the layer would keep the aspect ratio).
      A pair ``[lo, hi]`` becomes ``(lo − 1, hi − 1)``.
    - ``horizontal_flip`` / ``vertical_flip`` (probability 0.5, independently)
      → ``RandomFlip("horizontal")`` / a second ``RandomFlip("vertical")``
      (the layer's ``"horizontal_and_vertical"`` draws one coin for both).
    - ``fill_mode``, ``cval`` → ``fill_mode``, ``fill_value`` (same names and
      meanings; the layers' default is "reflect", the old one "nearest").

    Interpolation is bilinear, as Keras 2's
    ``order=1``. Layers are applied rotation → shift → shear → zoom → flips, so
    their output→input maps compose to Keras 2's single matrix
    ``R·T·Sh·Z``, then the flips (which Keras 2 also applied after the affine
    step). Differences that remain, all small for the tutorial's values:

    - each layer resamples once, so four bilinear passes blur slightly more than
      Keras 2's one pass;
    - shear: the range of angles is the same, but the factor is drawn uniformly
      in ``tan`` rather than in degrees, and Keras 2 also scaled y by
      ``cos(angle)`` (``1 − cos 0.15° ≈ 3·10⁻⁶``);
    - shifts follow the documented meaning (width shift moves horizontally).
      ``tf_keras`` 2.21's ``ImageDataGenerator`` applies ``height_shift_range``
      horizontally (as a fraction of the height) and ``width_shift_range``
      vertically, and centres its transforms at ``(c_H, c_W)`` read as
      ``(x, y)``; for square images with equal ranges, such as the tutorial's,
      these are the same distributions.
    - pixel shift ranges (Keras 2's ints or floats >= 1) are refused: give
      ``pixels / size`` instead.

    Parameters
    ----------
    rotation_range : float
        Degrees, ``>= 0``.
    width_shift_range, height_shift_range : float
        Fractions of the width and height, in ``[0, 1)``.
    shear_range : float
        Degrees (not a factor), in ``[0, 45)``.
    zoom_range : float or (float, float)
        ``z`` in ``[0, 1)``, or ``[lo, hi]``.
    horizontal_flip, vertical_flip : bool
        Flip with probability 0.5, independently.
    fill_mode : {"nearest", "constant", "reflect", "wrap"}
        How to fill pixels that come from outside the image.
    cval : float
        Fill value for ``fill_mode="constant"``, in pixel units (0–255).
    seed : int, optional
        Each layer gets its own seed derived from this one; the same seed gives
        the same sequence of augmented batches.

    Returns
    -------
    keras.Sequential
        Named ``augmentation``. Takes a batch ``(N, H, W, C)`` of 0–255 pixels
        (``uint8`` or float) and returns floats in 0–255.

    Examples
    --------
    >>> aug = make_augmentation(**TUTORIAL_AUGMENTATION, seed=1)
    >>> [type(layer).__name__ for layer in aug.layers]  # doctest: +NORMALIZE_WHITESPACE
    ['RandomRotation', 'RandomTranslation', 'CenteredRandomShear', 'RandomZoom',
     'RandomFlip']
    >>> batch = np.full((4, 16, 16, 3), 100, dtype="uint8")
    >>> out = np.asarray(aug(batch, training=True))
    >>> out.shape, out.dtype, np.allclose(out, 100, atol=1e-3)  # "nearest" fill: no border
    ((4, 16, 16, 3), dtype('float32'), True)
    """
    _check_range("rotation_range", rotation_range)
    pixels = " (Keras 2 read values >= 1 as pixels: give pixels / size, a fraction, instead)"
    _check_range("width_shift_range", width_shift_range, upper=1.0, hint=pixels)
    _check_range("height_shift_range", height_shift_range, upper=1.0, hint=pixels)
    _check_range(
        "shear_range", shear_range, MAX_SHEAR_DEGREES, " degrees (RandomShear's tan(angle) <= 1)"
    )
    zoom_lo, zoom_hi = _zoom_factor(zoom_range)
    if fill_mode not in FILL_MODES:
        raise ValueError(f"fill_mode={fill_mode!r} is not one of {FILL_MODES}")

    fill = dict(fill_mode=fill_mode, fill_value=float(cval), interpolation="bilinear")
    makers = []
    if rotation_range:
        makers.append(lambda s: keras.layers.RandomRotation(rotation_range / 360, seed=s, **fill))
    if width_shift_range or height_shift_range:
        makers.append(
            lambda s: keras.layers.RandomTranslation(
                height_factor=height_shift_range, width_factor=width_shift_range, seed=s, **fill
            )
        )
    if shear_range:
        factor = math.tan(math.radians(shear_range))
        makers.append(lambda s: CenteredRandomShear(x_factor=factor, seed=s, **fill))
    if zoom_lo or zoom_hi:
        makers.append(
            lambda s: keras.layers.RandomZoom(
                height_factor=(zoom_lo, zoom_hi), width_factor=(zoom_lo, zoom_hi), seed=s, **fill
            )
        )
    # Two layers, not "horizontal_and_vertical": that mode draws one coin for
    # both axes, where ImageDataGenerator flipped each axis independently.
    if horizontal_flip:
        makers.append(lambda s: keras.layers.RandomFlip("horizontal", seed=s))
    if vertical_flip:
        makers.append(lambda s: keras.layers.RandomFlip("vertical", seed=s))
    if not makers:
        # Nothing to draw: still return floats, as the augmenting layers do.
        makers.append(lambda s: keras.layers.Rescaling(1.0, name="to_float"))

    seeds = _layer_seeds(seed, len(makers))
    return keras.Sequential(
        [make(s) for make, s in zip(makers, seeds, strict=True)], name="augmentation"
    )


def _as_batch(images) -> np.ndarray:
    images = np.asarray(images)
    if images.ndim == 3:
        images = images[None]
    if images.ndim != 4:
        raise ValueError(
            "preview_augmentation needs images shaped (N, H, W, C) or (H, W, C), "
            f"got {images.shape}"
        )
    return images


def _show(ax, image: np.ndarray, title: str) -> None:
    pixels = np.clip(np.asarray(image, dtype="float32"), 0, 255).astype("uint8")
    if pixels.shape[-1] == 1:
        ax.imshow(pixels[..., 0], cmap="gray", vmin=0, vmax=255)
    else:
        ax.imshow(pixels)
    ax.set_title(title, fontsize=8)
    ax.set_axis_off()


def preview_augmentation(
    images: np.ndarray, n: int = 8, augmentation: Callable | None = None, seed: int = 0
) -> Figure:
    """Draw each image next to ``n`` augmented variants, as a grid for notebooks.

    Row ``i`` shows ``images[i]`` ("original") and then ``n`` draws of the
    augmentation ("augmented 1" … "augmented n"). The figure is a plain
    ``matplotlib.figure.Figure``, not registered with ``pyplot``: it shows when
    it is a cell's value (or via ``fig.savefig``) and leaves pyplot's figures alone.

    Parameters
    ----------
    images : array-like
        ``(N, H, W, C)`` or one ``(H, W, C)`` image, pixels 0–255; at most 16 rows.
    n : int
        Augmented variants per image.
    augmentation : callable, optional
        Called as ``augmentation(batch, training=True)``. Defaults to
        ``make_augmentation(**TUTORIAL_AUGMENTATION, seed=seed)``.
    seed : int
        Seed for the default augmentation (ignored when ``augmentation`` is given).

    Returns
    -------
    matplotlib.figure.Figure
        ``len(images) × (n + 1)`` axes.

    Examples
    --------
    >>> images = np.random.default_rng(0).integers(0, 256, (3, 16, 16, 3), dtype="uint8")
    >>> fig = preview_augmentation(images, n=5)
    >>> len(fig.axes), fig.axes[0].get_title(), fig.axes[1].get_title()
    (18, 'original', 'augmented 1')
    """
    from matplotlib.figure import Figure

    batch = _as_batch(images)
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if len(batch) > 16:
        raise ValueError(f"got {len(batch)} images; preview at most 16 (for example images[:4])")
    if augmentation is None:
        augmentation = make_augmentation(**TUTORIAL_AUGMENTATION, seed=seed)

    rows, cols = len(batch), n + 1
    fig = Figure(figsize=(1.6 * cols, 1.7 * rows), layout="constrained")
    axes = np.asarray(fig.subplots(rows, cols, squeeze=False))
    # One call per variant augments every row at once.
    variants = [np.asarray(augmentation(batch, training=True)) for _ in range(n)]
    for r in range(rows):
        _show(axes[r, 0], batch[r], "original")
        for c, variant in enumerate(variants, start=1):
            _show(axes[r, c], variant[r], f"augmented {c}")
    return fig
