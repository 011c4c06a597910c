"""Recipes: the tutorial's optimizer unchanged, the improved one's schedule, decay and loss;
AdamW, EMA and colour jitter as a search builds them; a recipe given as settings trains and
resumes as itself."""

from __future__ import annotations

import dataclasses
import math

import keras
import numpy as np
import pytest

from fitlab import (
    RECIPE_SETTINGS,
    RECIPES,
    Recipe,
    cli,
    make_recipe,
    make_recipe_augmentation,
    train_tutorial,
)

# The improved recipe's settings, as fitlab.recipes documents them.
PEAK_LEARNING_RATE = 0.025
WEIGHT_DECAY = 5e-3
LABEL_SMOOTHING = 0.1

EPOCHS, STEPS = 75, 32  # the tutorial's run: 1,020 rows at batch 32
WARMUP = 3 * STEPS
TOTAL = EPOCHS * STEPS


def improved_rate(step: int) -> float:
    """The improved schedule in closed form: linear warm-up, then a cosine to 0."""
    start = PEAK_LEARNING_RATE / 10
    if step < WARMUP:
        return start + (PEAK_LEARNING_RATE - start) * step / WARMUP
    progress = min(step - WARMUP, TOTAL - WARMUP) / (TOTAL - WARMUP)
    return PEAK_LEARNING_RATE * 0.5 * (1 + math.cos(math.pi * progress))


def rate_at(optimizer, step: int) -> float:
    optimizer.iterations.assign(step)
    return float(optimizer.learning_rate)


def settings(layer) -> tuple[str, dict]:
    """A layer's class and configuration, without the name Keras numbers per instance."""
    config = layer.get_config()
    return layer.__class__.__name__, {k: v for k, v in config.items() if k != "name"}


@pytest.mark.parametrize("step", [0, 1, 10, 500, 2399])
def test_the_tutorial_recipe_is_the_tutorials_sgd(step):
    optimizer, loss = make_recipe("tutorial", epochs=EPOCHS, steps_per_epoch=STEPS)
    assert loss == "categorical_crossentropy"
    assert float(optimizer.momentum) == pytest.approx(0.9)
    assert not optimizer.nesterov and optimizer.weight_decay is None
    assert rate_at(optimizer, step) == pytest.approx(1e-2 / (1 + 1e-2 / EPOCHS * step), rel=1e-6)


@pytest.mark.parametrize("step", [0, 48, WARMUP, 1000, TOTAL // 2, TOTAL - 1, TOTAL])
def test_the_improved_rate_warms_up_then_anneals_to_zero(step):
    optimizer, _ = make_recipe("improved", epochs=EPOCHS, steps_per_epoch=STEPS)
    assert rate_at(optimizer, step) == pytest.approx(improved_rate(step), rel=1e-5, abs=1e-9)


def test_the_improved_rate_peaks_after_the_warmup_and_ends_at_zero():
    optimizer, _ = make_recipe("improved", epochs=EPOCHS, steps_per_epoch=STEPS)
    rates = [rate_at(optimizer, step) for step in range(TOTAL + 1)]
    assert max(rates) == pytest.approx(PEAK_LEARNING_RATE) and np.argmax(rates) == WARMUP
    assert rates[-1] == pytest.approx(0.0, abs=1e-9)
    assert all(a >= b for a, b in zip(rates[WARMUP:], rates[WARMUP + 1 :], strict=False))


def test_a_run_shorter_than_the_warmup_warms_up_over_half_of_it():
    optimizer, _ = make_recipe("improved", epochs=1, steps_per_epoch=8)
    rates = [rate_at(optimizer, step) for step in range(9)]
    assert np.argmax(rates) == 4 and rates[-1] == pytest.approx(0.0, abs=1e-9)


def test_the_improved_weight_decay_shrinks_weights_by_rate_times_decay():
    optimizer, _ = make_recipe("improved", epochs=EPOCHS, steps_per_epoch=STEPS)
    weight = keras.Variable(np.ones(3, "float32"))
    optimizer.build([weight])
    optimizer.iterations.assign(WARMUP)  # at the peak rate
    optimizer.apply_gradients([(np.zeros(3, "float32"), weight)])  # no gradient: decay only
    expected = 1 - PEAK_LEARNING_RATE * WEIGHT_DECAY
    np.testing.assert_allclose(weight.numpy(), expected, rtol=1e-6)
    assert optimizer.nesterov and float(optimizer.momentum) == pytest.approx(0.9)


def test_the_improved_loss_is_cross_entropy_on_smoothed_targets():
    _, loss = make_recipe("improved", epochs=EPOCHS, steps_per_epoch=STEPS)
    y = keras.utils.to_categorical([0, 3], 17)
    p = np.random.default_rng(0).dirichlet(np.ones(17), size=2).astype("float32")
    smoothed = y * (1 - LABEL_SMOOTHING) + LABEL_SMOOTHING / 17
    expected = -(smoothed * np.log(p)).sum(axis=1).mean()
    assert float(loss(y, p)) == pytest.approx(expected, rel=1e-5)


def test_bad_arguments_say_what_is_allowed():
    named = (
        r"recipe must be one of \('tutorial', 'improved', 'improved-colour',"
        r" 'improved-colour-wd'\)"
    )
    with pytest.raises(ValueError, match=named):
        make_recipe("adam", epochs=1, steps_per_epoch=1)
    with pytest.raises(ValueError, match="must be positive"):
        make_recipe("improved", epochs=0, steps_per_epoch=32)


def test_train_tutorial_refuses_an_unknown_recipe_before_touching_the_data(tmp_path):
    with pytest.raises(ValueError, match="recipe must be one of"):
        train_tutorial("fit", recipe="better", out=tmp_path, archive=tmp_path / "none")


def test_the_cli_offers_every_method_and_recipe(capsys):
    with pytest.raises(SystemExit):
        cli.main(["train", "--help"])
    shown = capsys.readouterr().out
    for name in (*RECIPES, "fit", "generator", "batch", "loop"):
        assert name in shown


def test_every_named_recipe_has_its_settings():
    assert tuple(RECIPE_SETTINGS) == RECIPES


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"optimizer": "adam"}, "optimizer must be one of"),
        ({"learning_rate": 0.0}, "learning_rate must be > 0"),
        ({"ema_momentum": 1.0}, "ema_momentum must be in"),
        ({"label_smoothing": 1.0}, "label_smoothing must be in"),
        ({"erasing": 1.5}, "erasing is a probability"),
        ({"randaugment": -0.1}, "randaugment is a strength"),
    ],
)
def test_a_recipe_with_bad_settings_says_which(changes, message):
    with pytest.raises(ValueError, match=message):
        Recipe(**{"optimizer": "sgd", "learning_rate": 0.01, **changes})


def test_adamw_and_ema_recipes_build_what_they_say():
    recipe = Recipe("adamw", 2e-3, warmup_epochs=1, weight_decay=0.05, ema_momentum=0.99)
    optimizer, loss = make_recipe(recipe, epochs=10, steps_per_epoch=4)
    assert isinstance(optimizer, keras.optimizers.AdamW)
    assert optimizer.weight_decay == pytest.approx(0.05)
    assert optimizer.use_ema and optimizer.ema_momentum == pytest.approx(0.99)
    assert rate_at(optimizer, 4) == pytest.approx(2e-3)  # the peak, after one epoch
    assert loss.get_config()["label_smoothing"] == 0.0


def test_the_recipe_augmentation_adds_colour_after_the_geometry():
    recipe = Recipe("sgd", 0.01, contrast=0.3, brightness=0.1)
    names = [layer.__class__.__name__ for layer in make_recipe_augmentation(recipe).layers]
    assert names[-2:] == ["RandomContrast", "RandomBrightness"]
    assert "RandomContrast" not in [
        layer.__class__.__name__ for layer in make_recipe_augmentation("improved").layers
    ]


def test_improved_colour_is_improved_with_colour_jitter_after_the_tutorials_geometry():
    optimizer, loss = make_recipe("improved-colour", epochs=200, steps_per_epoch=32)
    reference, _ = make_recipe("improved", epochs=200, steps_per_epoch=32)
    for step in (0, 96, 3200, 6399):
        assert rate_at(optimizer, step) == pytest.approx(rate_at(reference, step))
    assert loss.get_config()["label_smoothing"] == 0.1
    layers = make_recipe_augmentation("improved-colour", seed=0).layers
    tutorial = make_recipe_augmentation("tutorial", seed=0).layers

    assert [settings(layer) for layer in layers[:-2]] == [settings(layer) for layer in tutorial]
    (contrast, contrast_config), (brightness, brightness_config) = map(settings, layers[-2:])
    assert (contrast, brightness) == ("RandomContrast", "RandomBrightness")
    assert brightness_config["factor"] == (-0.1, 0.1)
    # contrast: each image's spread about its mean times U(1, 1.3), raised, never lowered
    images = np.random.default_rng(0).uniform(64, 192, (256, 8, 8, 3)).astype("float32")
    jittered = np.asarray(layers[-2](images, training=True))
    ratio = jittered.std(axis=(1, 2)) / images.std(axis=(1, 2))
    assert 1.0 - 1e-4 < ratio.min() < 1.02 and 1.28 < ratio.max() < 1.3 + 1e-4


def test_improved_colour_wd_is_improved_colour_with_five_times_the_weight_decay():
    optimizer, _ = make_recipe("improved-colour-wd", epochs=250, steps_per_epoch=32)
    reference, _ = make_recipe("improved-colour", epochs=250, steps_per_epoch=32)
    assert optimizer.weight_decay == pytest.approx(0.025)
    assert reference.weight_decay == pytest.approx(0.005)
    for step in (0, 96, 4000, 7999):
        assert rate_at(optimizer, step) == pytest.approx(rate_at(reference, step))
    configs = [
        [settings(layer) for layer in make_recipe_augmentation(name, seed=0).layers]
        for name in ("improved-colour-wd", "improved-colour")
    ]
    assert len(configs[0]) == 7 and configs[0] == configs[1]


def test_the_same_seed_gives_the_same_augmented_batch():
    recipe = Recipe("sgd", 0.01, contrast=0.3, brightness=0.1)
    images = np.random.default_rng(0).uniform(0, 255, (4, 16, 16, 3)).astype("float32")
    first, second = (
        np.asarray(make_recipe_augmentation(recipe, seed=5)(images, training=True))
        for _ in range(2)
    )
    np.testing.assert_array_equal(first, second)
    assert not np.allclose(first, images)


def test_erasing_replaces_one_rectangle_of_noise_in_that_share_of_the_images():
    layer = make_recipe_augmentation(Recipe("sgd", 0.01, erasing=0.5), seed=0).layers[-1]
    assert layer.__class__.__name__ == "RandomErasing"
    images = np.full((400, 32, 32, 3), 100.0, dtype="float32")
    erased = np.asarray(layer(images, training=True))
    changed = (erased != images).any(axis=-1)
    hit = changed.any(axis=(1, 2))
    assert 0.4 < hit.mean() < 0.6  # p = 0.5, not the 0.25 a bare 0.5 would give
    for mask in changed[hit]:
        rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
        # one rectangle, each side sqrt(U(0.02, 0.33)) of the image's: 0.14-0.57 of 32 pixels
        assert 4 <= rows.size <= 19 and 4 <= cols.size <= 19
        assert mask[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1].mean() > 0.9
    assert erased.min() >= 0 and erased.max() <= 255
    np.testing.assert_array_equal(np.asarray(layer(images, training=False)), images)


def test_randaugment_comes_last_as_keras_ships_it_and_leaves_the_colour_seeds_alone():
    colour = RECIPE_SETTINGS["improved-colour"]
    stronger = dataclasses.replace(colour, randaugment=0.5)
    layers = make_recipe_augmentation(stronger, seed=3).layers
    config = layers[-1].get_config()
    assert layers[-1].__class__.__name__ == "RandAugment"
    assert (config["num_ops"], config["factor"], tuple(config["value_range"])) == (
        2,
        (0.0, 0.5),
        (0, 255),
    )
    # the colour runs recorded before RandAugment keep their draws
    before = make_recipe_augmentation(colour, seed=3).layers
    assert [layer.get_config()["seed"] for layer in layers[:-1]] == [
        layer.get_config()["seed"] for layer in before
    ]
    images = np.random.default_rng(0).uniform(0, 255, (8, 16, 16, 3)).astype("float32")
    augmented = np.asarray(layers[-1](images, training=True))
    assert augmented.min() >= 0 and augmented.max() <= 255 and not np.allclose(augmented, images)
    np.testing.assert_array_equal(np.asarray(layers[-1](images, training=False)), images)


@pytest.mark.parametrize("setting", ["erasing", "randaugment"])
def test_a_setting_added_later_is_recorded_only_when_set(setting):
    """Runs recorded before the setting existed still match their recipe, so they resume."""
    assert setting not in RECIPE_SETTINGS["improved-colour"].settings()
    assert Recipe("sgd", 0.01, **{setting: 0.5}).settings()[setting] == 0.5


def test_a_recipe_given_as_settings_is_recorded_and_a_different_one_refused(tiny_flowers, tmp_path):
    recipe = Recipe("sgd", 0.01, contrast=0.2)
    run = dict(epochs=1, batch_size=6, files=tiny_flowers, out=tmp_path / "run", verbose=0)
    result = train_tutorial("loop", recipe=recipe, **run)
    assert result["recipe"] == recipe.settings() and result["recipe"]["contrast"] == 0.2
    again = train_tutorial("loop", recipe=Recipe("sgd", 0.01, contrast=0.2), **run)
    assert again["finished_before"]
    with pytest.raises(ValueError, match="other settings: .*recipe"):
        train_tutorial("loop", recipe=Recipe("sgd", 0.01, contrast=0.3), **run)


SEARCH_CHANGES = {
    "tutorial": {"optimizer", "learning_rate", "warmup_epochs", "weight_decay", "label_smoothing"},
    "improved": set(),
    "crop": {"augmentation"},
    "crop-light": {"augmentation"},
    "colour": {"contrast", "brightness"},
    "crop+colour": {"augmentation", "contrast", "brightness"},
    "adamw": {"optimizer", "learning_rate", "weight_decay"},
    "ema": {"ema_momentum"},
    "lr0.05": {"learning_rate"},
    "lr0.01": {"learning_rate"},
    "wd0.001": {"weight_decay"},
    "ls0": {"label_smoothing"},
    "colour+erasing": {"contrast", "brightness", "erasing"},
    "colour+erasing0.25": {"contrast", "brightness", "erasing"},
    "colour+randaugment": {"contrast", "brightness", "randaugment"},
    "colour+lr0.05": {"contrast", "brightness", "learning_rate"},
    "colour+wd0.001": {"contrast", "brightness", "weight_decay"},
    "colour+wd0.025": {"contrast", "brightness", "weight_decay"},
}


def test_each_candidate_of_the_search_changes_what_its_name_says_and_builds():
    """examples/recipe_search.py: an ablation by addition, so each candidate changes one thing."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "examples" / "recipe_search.py"
    spec = importlib.util.spec_from_file_location("recipe_search", path)
    search = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(search)
    improved = RECIPE_SETTINGS["improved"]
    changed = {
        name: {
            f.name
            for f in dataclasses.fields(Recipe)
            if getattr(recipe, f.name) != getattr(improved, f.name)
        }
        for name, recipe in search.CANDIDATES.items()
    }
    assert changed == SEARCH_CHANGES
    for recipe in search.CANDIDATES.values():
        optimizer, _ = make_recipe(recipe, epochs=2, steps_per_epoch=3)
        assert float(optimizer.learning_rate) > 0
        make_recipe_augmentation(recipe, seed=0)
