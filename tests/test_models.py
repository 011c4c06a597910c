"""MiniVGGNet: the tutorial's layers, its parameter count, and scaling 0–255 inputs inside."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from fitlab import MiniVGGNet, make_augmentation

SIZE, CLASSES = 32, 5


@pytest.fixture(scope="module")
def model():
    keras.utils.set_random_seed(0)
    return MiniVGGNet.build(SIZE, SIZE, 3, classes=CLASSES)


@pytest.fixture(scope="module")
def pixels():
    return np.random.default_rng(0).integers(0, 256, (4, SIZE, SIZE, 3), dtype="uint8")


def _blocks(model):
    """(layer kind, its defining setting) for every layer after the input."""
    described = []
    for layer in model.layers[1:]:
        kind = type(layer).__name__
        setting = {
            "Rescaling": lambda la: la.scale,
            "Conv2D": lambda la: (la.filters, la.kernel_size, la.padding),
            "Activation": lambda la: la.activation.__name__,
            "BatchNormalization": lambda la: la.momentum,
            "MaxPooling2D": lambda la: la.pool_size,
            "Dropout": lambda la: la.rate,
            "Dense": lambda la: la.units,
            "Flatten": lambda la: None,
        }[kind](layer)
        described.append((kind, setting))
    return described


def test_layers_are_the_tutorials(model):
    def conv(filters):
        return [
            ("Conv2D", (filters, (3, 3), "same")),
            ("Activation", "relu"),
            ("BatchNormalization", 0.99),
        ]

    expected = (
        [("Rescaling", 1 / 255)]
        + conv(32) + conv(32) + [("MaxPooling2D", (2, 2)), ("Dropout", 0.25)]
        + conv(64) + conv(64) + [("MaxPooling2D", (2, 2)), ("Dropout", 0.25)]
        + [("Flatten", None), ("Dense", 512), ("Activation", "relu")]
        + [("BatchNormalization", 0.99), ("Dropout", 0.5)]
        + [("Dense", CLASSES), ("Activation", "softmax")]
    )  # fmt: skip
    assert _blocks(model) == expected


def test_parameter_count_matches_a_count_by_hand(model):
    def conv(c_in, c_out):
        return 3 * 3 * c_in * c_out + c_out

    def bn(c):  # gamma, beta trainable; moving mean and variance not
        return 4 * c

    flat = (SIZE // 4) * (SIZE // 4) * 64  # two 2×2 pools
    total = (
        conv(3, 32) + bn(32) + conv(32, 32) + bn(32)
        + conv(32, 64) + bn(64) + conv(64, 64) + bn(64)
        + flat * 512 + 512 + bn(512)
        + 512 * CLASSES + CLASSES
    )  # fmt: skip
    assert model.count_params() == total
    non_trainable = sum(int(np.prod(w.shape)) for w in model.non_trainable_weights)
    assert non_trainable == 2 * (32 + 32 + 64 + 64 + 512)


def test_probabilities_have_one_row_per_image_and_sum_to_one(model, pixels):
    probs = np.asarray(model.predict(pixels, verbose=0))
    assert probs.shape == (len(pixels), CLASSES)
    assert probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)


def test_uint8_and_float_pixels_give_the_same_output(model, pixels):
    from_uint8 = np.asarray(model(pixels, training=False))
    from_float = np.asarray(model(pixels.astype("float32"), training=False))
    np.testing.assert_array_equal(from_uint8, from_float)


def test_fractional_float_pixels_are_not_truncated(model):
    # Augmentation outputs floats such as 200.7; a uint8 Input would cast them
    # to 200 (and 300.0 to 44). The model must scale the float itself.
    scale = keras.Model(model.input, model.get_layer("scale").output)
    batch = np.full((1, SIZE, SIZE, 3), 200.7, dtype="float32")
    np.testing.assert_allclose(np.asarray(scale(batch)), 200.7 / 255, rtol=1e-6)


def test_bn_momentum_reaches_every_batch_norm():
    model = MiniVGGNet.build(16, 16, 1, classes=2, bn_momentum=0.5)
    momenta = {
        la.momentum for la in model.layers if isinstance(la, keras.layers.BatchNormalization)
    }
    assert momenta == {0.5}


def test_augmentation_layers_sit_before_scaling_and_only_act_while_training(pixels):
    keras.utils.set_random_seed(1)
    aug = make_augmentation(rotation_range=20, width_shift_range=0.2, horizontal_flip=True, seed=3)
    model = MiniVGGNet.build(SIZE, SIZE, 3, classes=CLASSES, augmentation=aug)
    names = [layer.name for layer in model.layers]
    assert names.index("augmentation") < names.index("scale")

    plain = MiniVGGNet.build(SIZE, SIZE, 3, classes=CLASSES)
    plain.set_weights(model.get_weights())  # augmentation adds no weights
    np.testing.assert_array_equal(
        np.asarray(model.predict(pixels, verbose=0)), np.asarray(plain.predict(pixels, verbose=0))
    )

    augmented = keras.Model(model.input, model.get_layer("augmentation").output)
    assert not np.allclose(np.asarray(augmented(pixels, training=True)), pixels)
    np.testing.assert_array_equal(np.asarray(augmented(pixels, training=False)), pixels)


# Keras's own saving code trips numpy 2's copy-keyword deprecation; not ours.
@pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")
def test_model_with_augmentation_saves_and_loads(tmp_path, pixels):
    aug = make_augmentation(
        rotation_range=20, width_shift_range=0.2, shear_range=0.15, zoom_range=0.15, seed=0
    )
    model = MiniVGGNet.build(SIZE, SIZE, 3, classes=CLASSES, augmentation=aug)
    model.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras")
    assert [type(la).__name__ for la in loaded.get_layer("augmentation").layers] == [
        type(la).__name__ for la in aug.layers
    ]
    np.testing.assert_array_equal(
        np.asarray(loaded.predict(pixels, verbose=0)), np.asarray(model.predict(pixels, verbose=0))
    )


@pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")
def test_a_saved_model_loads_in_a_fresh_process_after_importing_fitlab_augment(tmp_path):
    """What train_tutorial's docstring tells users: import fitlab.augment, then load_model."""
    import subprocess
    import sys

    aug = make_augmentation(shear_range=0.15, horizontal_flip=True, seed=0)
    MiniVGGNet.build(SIZE, SIZE, 3, classes=CLASSES, augmentation=aug).save(tmp_path / "m.keras")
    code = (
        "import sys, keras, fitlab.augment; "
        "m = keras.models.load_model(sys.argv[1]); print(m.output_shape)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "m.keras")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert out.strip().endswith(f"(None, {CLASSES})")
