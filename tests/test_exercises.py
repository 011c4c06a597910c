"""The exercise checks: right answers pass, wrong ones fail with a hint, nothing escapes."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fitlab import exercises
from fitlab.exercises import (
    CheckResult,
    check_csv_generator,
    check_fast_parser,
    check_port,
    check_steps,
    check_train_loop,
)

# ---------------------------------------------------------------- answers


def good_generator(input_path, bs, mode="train"):
    f = open(input_path)
    while True:
        images, labels = [], []
        while len(images) < bs:
            line = f.readline()
            if line == "":
                if mode == "eval":
                    if images:
                        yield np.array(images), np.array(labels)
                    f.close()
                    return
                f.seek(0)
                continue
            label, *values = line.strip().split(",")
            images.append(np.array(values, dtype="uint8").reshape((64, 64, 3)))
            labels.append(label)
        yield np.array(images), np.array(labels)


def tutorial_generator(input_path, bs, mode="train"):
    """The tutorial's version (labels left unencoded): eval never stops, drops row 1."""
    f = open(input_path)
    while True:
        images, labels = [], []
        while len(images) < bs:
            line = f.readline()
            if line == "":
                f.seek(0)
                line = f.readline()
                if mode == "eval":
                    break
            line = line.strip().split(",")
            labels.append(line[0])
            images.append(
                np.array([int(x) for x in line[1:]], dtype="float32").reshape((64, 64, 3))
            )
        yield np.array(images), labels


def short_batch_at_wrap(input_path, bs, mode="train"):
    """Yields the partial batch at the end of the file even in train mode."""
    while True:
        yield from good_generator(input_path, bs, mode="eval")
        if mode == "eval":
            return


def flat_images(input_path, bs, mode="train"):
    for images, labels in good_generator(input_path, bs, mode):
        yield images.reshape(len(images), -1), labels


def not_written(*args, **kwargs):
    raise NotImplementedError("your code here")


def good_steps(rows, bs):
    return math.ceil(rows / bs)


def good_last(rows, bs):
    return rows - (good_steps(rows, bs) - 1) * bs


def fast_parse(line):
    label, _, rest = line.rstrip("\r\n").partition(",")
    return label, np.fromstring(rest, dtype=np.uint8, sep=",").reshape((64, 64, 3))


def slow_uint8_parse(line):
    label, *values = line.strip().split(",")
    return label, np.array([int(v) for v in values], dtype=np.uint8).reshape((64, 64, 3))


def good_loop(model, train_batches, val_batches, epochs, patience):
    history = {"loss": [], "val_loss": []}
    best, waited = math.inf, 0
    for _ in range(epochs):
        history["loss"].append(np.mean([model.train_on_batch(x, y) for x, y in train_batches]))
        val = float(np.mean([model.test_on_batch(x, y) for x, y in val_batches]))
        history["val_loss"].append(val)
        if val < best:
            best, waited = val, 0
        else:
            waited += 1
            if waited >= patience:
                break
    return history


def no_early_stopping(model, train_batches, val_batches, epochs, patience):
    return good_loop(model, train_batches, val_batches, epochs, patience=epochs + 1)


def summed_losses(model, train_batches, val_batches, epochs, patience):
    history = good_loop(model, train_batches, val_batches, epochs, patience)
    return {"loss": [3 * v for v in history["loss"]], "val_loss": history["val_loss"]}


def good_port(model, train_gen, val_gen, steps_per_epoch, validation_steps, epochs, init_lr=1e-2):
    from fitlab import legacy_sgd

    model.compile(
        optimizer=legacy_sgd(init_lr, momentum=0.9, decay=init_lr / epochs),
        loss="categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model.fit(
        train_gen,
        steps_per_epoch=steps_per_epoch,
        validation_data=val_gen,
        validation_steps=validation_steps,
        epochs=epochs,
        verbose=0,
    )


def port_with_ignored_decay(model, train_gen, val_gen, steps_per_epoch, validation_steps, epochs,
                            init_lr=1e-2):  # fmt: skip
    import keras

    model.compile(
        optimizer=keras.optimizers.SGD(init_lr, momentum=0.9, decay=init_lr / epochs),
        loss="categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model.fit(train_gen, steps_per_epoch=steps_per_epoch, validation_data=val_gen,
                     validation_steps=validation_steps, epochs=epochs, verbose=0)  # fmt: skip


def port_with_workers(model, train_gen, val_gen, steps_per_epoch, validation_steps, epochs,
                      init_lr=1e-2):  # fmt: skip
    from fitlab import legacy_sgd

    model.compile(optimizer=legacy_sgd(init_lr, decay=init_lr / epochs),
                  loss="categorical_crossentropy", metrics=["accuracy"])  # fmt: skip
    return model.fit(train_gen, steps_per_epoch=steps_per_epoch, validation_data=val_gen,
                     validation_steps=validation_steps, epochs=epochs, workers=2)  # fmt: skip


# ---------------------------------------------------------------- helpers


def failed(result: CheckResult, *fragments: str) -> None:
    assert isinstance(result, CheckResult)
    assert not result.passed, str(result)
    assert not bool(result)
    assert result.hint, "a failed check always gives a hint"
    text = str(result)
    assert text.startswith(f"✘ FAIL {result.check}: ")
    assert "\n  Hint: " in text
    for fragment in fragments:
        assert fragment in text, text


def passed(result: CheckResult) -> None:
    assert result.passed, str(result)
    assert str(result).startswith(f"✔ PASS {result.check}: ")
    assert repr(result) == str(result)


# ---------------------------------------------------------------- generator


def test_generator_right_answer_passes():
    passed(check_csv_generator(good_generator))


def test_generator_with_real_csv(flowers17_csvs):
    result = check_csv_generator(good_generator, real_csv=flowers17_csvs.test)
    passed(result)
    assert "flowers17_testing.csv" in result.message


@pytest.mark.parametrize(
    ("answer", "fragments"),
    [
        (not_written, ["NotImplementedError: your code here", "mode='eval'"]),
        (tutorial_generator, ["did not stop after the last row"]),
        (short_batch_at_wrap, ["mode 'train'", "batch sizes"]),
        (flat_images, ["expected (rows, height, width, 3)"]),
        ("not a function", ["expected a function"]),
    ],
)
def test_generator_wrong_answers_fail_with_hint(answer, fragments):
    failed(check_csv_generator(answer), *fragments)


def test_generator_that_returns_a_list_fails():
    failed(check_csv_generator(lambda path, bs, mode="train": None), "not a generator")


# ---------------------------------------------------------------- steps


def test_steps_right_answer_passes():
    passed(check_steps(good_steps, good_last))


@pytest.mark.parametrize(
    ("steps", "last", "fragments"),
    [
        (lambda r, b: r // b, good_last, ["batches_needed(1020, 32) returned 31, expected 32"]),
        (lambda r, b: r // b + 1, good_last, ["batches_needed(320, 32) returned 11, expected 10"]),
        (lambda r, b: np.ceil(r / b), good_last, ["an int"]),
        (good_steps, lambda r, b: r % b, ["last_batch_size(320, 32) returned 0, expected 32"]),
        (not_written, good_last, ["NotImplementedError"]),
        (good_steps, lambda r, b: 1 / 0, ["ZeroDivisionError"]),
    ],
)
def test_steps_wrong_answers_fail_with_hint(steps, last, fragments):
    failed(check_steps(steps, last), *fragments)


# ---------------------------------------------------------------- parser


def test_parser_right_answer_passes():
    passed(check_fast_parser(fast_parse))


def test_parser_on_real_rows(flowers17_csvs):
    result = check_fast_parser(fast_parse, real_csv=flowers17_csvs.train)
    passed(result)
    assert "flowers17_training.csv" in result.message


@pytest.mark.parametrize(
    ("answer", "fragments"),
    [
        (exercises.tutorial_parse, ["float32", "expected uint8 (64, 64, 3)"]),
        (slow_uint8_parse, ["as fast as the tutorial's parser"]),
        (lambda line: fast_parse(line.rstrip("\r\n") + ",0"), ["row 1"]),
        (lambda line: (line.split(",")[1], fast_parse(line)[1]), ["label"]),
        (not_written, ["NotImplementedError", "parsing row 1"]),
    ],
)
def test_parser_wrong_answers_fail_with_hint(answer, fragments):
    failed(check_fast_parser(answer), *fragments)


# ---------------------------------------------------------------- training loop


def test_loop_right_answer_passes():
    passed(check_train_loop(good_loop))


def test_loop_learns_on_real_images(flowers17_csvs):
    from fitlab import load_csv

    images, labels = load_csv(flowers17_csvs.test)
    classes = sorted(set(labels))
    one_hot = np.eye(len(classes), dtype="float32")[[classes.index(c) for c in labels]]
    result = check_train_loop(good_loop, data=(images[:192], one_hot[:192]))
    passed(result)
    assert "real Keras model" in result.message


@pytest.mark.parametrize(
    ("answer", "fragments"),
    [
        (no_early_stopping, ["a plateau", "ran on after 6 epochs, expected 4"]),
        (summed_losses, ["the means over each epoch's batches"]),
        (lambda m, t, v, e, p: [], ["expected a dict"]),
        (not_written, ["NotImplementedError"]),
    ],
)
def test_loop_wrong_answers_fail_with_hint(answer, fragments):
    failed(check_train_loop(answer), *fragments)


def test_loop_calling_fit_fails_with_hint():
    def uses_fit(model, train_batches, val_batches, epochs, patience):
        model.fit(train_batches, epochs=epochs)

    failed(check_train_loop(uses_fit), "call train_on_batch, not fit")


# ---------------------------------------------------------------- port


def test_port_right_answer_passes():
    passed(check_port(good_port))


@pytest.mark.parametrize(
    ("answer", "fragments"),
    [
        (port_with_ignored_decay, ["learning rate is 0.01", "ignores decay"]),
        (port_with_workers, ["TypeError", "workers"]),
        (not_written, ["NotImplementedError"]),
    ],
)
def test_port_wrong_answers_fail_with_hint(answer, fragments):
    failed(check_port(answer), *fragments)
