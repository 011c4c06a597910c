"""The exercise checks: right answers pass, wrong ones fail with a hint, nothing escapes.

Speed is deterministic here: the fast-parser check takes a ``timer`` (the
seconds a parser takes over the rows), so its speed verdict is tested with
scripted seconds, and its correctness verdicts with a timer that records
that it was never called. One test keeps the real clock, with a parser
thousands of times faster than the threshold needs.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import pytest

import fitlab.exercises
from fitlab.exercises import (
    CheckResult,
    check_csv_generator,
    check_fast_parser,
    check_port,
    check_steps,
    check_train_loop,
    tutorial_parse,
)

# ---------------------------------------------------------------- answers


def good_generator(input_path, bs, mode="train"):
    with open(input_path) as f:
        while True:
            images, labels = [], []
            while len(images) < bs:
                line = f.readline()
                if line == "":
                    if mode == "eval":
                        if images:
                            yield np.array(images), np.array(labels)
                        return
                    f.seek(0)
                    continue
                label, *values = line.strip().split(",")
                images.append(np.array(values, dtype="uint8").reshape((64, 64, 3)))
                labels.append(label)
            yield np.array(images), np.array(labels)


def ignores_mode(input_path, bs, mode="train"):
    """Always loops, as the tutorial's generator did in mode 'eval'."""
    return good_generator(input_path, bs, mode="train")


def empty_batch_at_end(input_path, bs, mode="train"):
    """The tutorial's other bug: an empty batch when the rows run out."""
    yield from good_generator(input_path, bs, mode="eval")
    yield np.zeros((0, 64, 64, 3), dtype=np.uint8), np.array([])


def drops_first_row(input_path, bs, mode="train"):
    """The tutorial's third bug: a row lost."""
    batches = good_generator(input_path, bs, mode)
    images, labels = next(batches)
    yield images[1:], labels[1:]
    yield from batches


def short_batch_at_wrap(input_path, bs, mode="train"):
    """Yields the partial batch at the end of the file even in train mode."""
    while True:
        yield from good_generator(input_path, bs, mode="eval")
        if mode == "eval":
            return


def flat_images(input_path, bs, mode="train"):
    for images, labels in good_generator(input_path, bs, mode):
        yield images.reshape(len(images), -1), labels


def images_only(input_path, bs, mode="train"):
    for images, _ in good_generator(input_path, bs, mode):
        yield images


def off_by_one_pixels(input_path, bs, mode="train"):
    for images, labels in good_generator(input_path, bs, mode):
        yield images.astype("float32") + 1, labels


def not_written(*args, **kwargs):
    raise NotImplementedError("your code here")


def good_steps(rows, bs):
    return math.ceil(rows / bs)


def good_last(rows, bs):
    return rows - (good_steps(rows, bs) - 1) * bs


def fast_parse(line):
    label, _, rest = line.rstrip("\r\n").partition(",")
    return label, np.fromstring(rest, dtype=np.uint8, sep=",").reshape((64, 64, 3))


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


def impatient(model, train_batches, val_batches, epochs, patience):
    return good_loop(model, train_batches, val_batches, epochs, patience=patience - 1)


def skips_first_batch(model, train_batches, val_batches, epochs, patience):
    return good_loop(model, train_batches[1:], val_batches, epochs, patience)


def summed_losses(model, train_batches, val_batches, epochs, patience):
    history = good_loop(model, train_batches, val_batches, epochs, patience)
    return {"loss": [3 * v for v in history["loss"]], "val_loss": history["val_loss"]}


def uses_fit(model, train_batches, val_batches, epochs, patience):
    return model.fit(train_batches, epochs=epochs)


def port(metrics=("accuracy",), decay=True, **fit_kwargs):
    """A ``train_modern``: the right one by default, each argument one way to get it wrong."""

    def train_modern(model, train_gen, val_gen, steps_per_epoch, validation_steps, epochs,
                     init_lr=1e-2):  # fmt: skip
        import keras

        from fitlab import legacy_sgd

        optimizer = (
            legacy_sgd(init_lr, momentum=0.9, decay=init_lr / epochs)
            if decay
            else keras.optimizers.SGD(init_lr, momentum=0.9, decay=init_lr / epochs)
        )
        model.compile(optimizer, loss="categorical_crossentropy", metrics=list(metrics))
        kwargs = {"steps_per_epoch": steps_per_epoch, "validation_data": val_gen,
                  "validation_steps": validation_steps, "epochs": epochs, "shuffle": False,
                  "verbose": 0} | fit_kwargs  # fmt: skip
        return model.fit(train_gen, **kwargs)

    return train_modern


# ---------------------------------------------------------------- helpers


def failed(result: CheckResult, *fragments: str) -> None:
    assert isinstance(result, CheckResult)
    assert not result.passed, str(result)
    assert not bool(result)
    assert result.hint, "a failed check always gives a hint"
    assert str(result) == f"✘ FAIL {result.check}: {result.message}\n  Hint: {result.hint}"
    for fragment in fragments:
        assert fragment in str(result), str(result)


def passed(result: CheckResult, message: str) -> None:
    assert isinstance(result, CheckResult)
    assert result.passed, str(result)
    assert bool(result)
    assert result.hint == ""
    assert result.message == message
    assert repr(result) == str(result) == f"✔ PASS {result.check}: {message}"


# ---------------------------------------------------------------- the package


def test_public_names_are_the_checks_the_result_and_the_baseline():
    assert sorted(fitlab.exercises.__all__) == [
        "CheckResult", "check_csv_generator", "check_fast_parser", "check_port", "check_steps",
        "check_train_loop", "tutorial_parse",
    ]  # fmt: skip


def test_check_result_shows_pass_fail_and_hint():
    assert str(CheckResult("c", True, "fine.")) == "✔ PASS c: fine."
    assert str(CheckResult("c", False, "wrong")) == "✘ FAIL c: wrong"
    result = CheckResult("c", False, "wrong", "look here")
    assert repr(result) == str(result) == "✘ FAIL c: wrong\n  Hint: look here"
    assert bool(CheckResult("c", True, "")) and not CheckResult("c", False, "")


@pytest.mark.parametrize(
    ("check", "args", "during"),
    [
        (check_csv_generator, (), "calling csv_generator on a 10-row file, bs=4, mode='eval'"),
        (check_steps, (good_last,), "batches_needed(1020, 32)"),
        (check_fast_parser, (), "parsing row 1"),
        (check_train_loop, (), "always improving: epochs=5, patience=2"),
        (check_port, (), "steps_per_epoch=3, validation_steps=2, epochs=3"),
    ],
)
def test_a_students_exception_is_a_failed_check_naming_the_input(check, args, during):
    result = check(not_written, *args)
    failed(result)
    assert result.message == f"your code raised NotImplementedError: your code here ({during})"


@pytest.mark.parametrize(
    ("check", "args"),
    [
        (check_csv_generator, ()),
        (check_steps, (good_last,)),
        (check_fast_parser, ()),
        (check_train_loop, ()),
        (check_port, ()),
    ],
)
def test_a_called_function_instead_of_a_function_fails_with_hint(check, args):
    result = check(None, *args)
    failed(result, "pass the function itself, without calling it")
    assert result.message.startswith("expected a function `")
    assert result.message.endswith("`, got NoneType")


# ---------------------------------------------------------------- generator


def test_generator_right_answer_passes():
    passed(
        check_csv_generator(good_generator),
        "eval and train modes are right on 10- and 8-row files (batch size 4).",
    )


def test_generator_with_real_csv(flowers17_csvs):
    passed(
        check_csv_generator(good_generator, real_csv=flowers17_csvs.test),
        "eval and train modes are right on 10- and 8-row files (batch size 4) "
        "and on flowers17_testing.csv (batch size 32).",
    )


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (ignores_mode, "mode 'eval' on a 10-row file (10 rows, bs=4) did not stop after the "
                       "last row: it gave batch sizes [4, 4, 4] and then kept going"),
        (empty_batch_at_end, "mode 'eval' on a 10-row file (10 rows, bs=4) yielded an empty "
                             "batch (batch sizes [4, 4, 2, 0])"),
        (drops_first_row, "mode 'eval' on a 10-row file (10 rows, bs=4) gave 9 rows in batches "
                          "of [3, 4, 2]; expected every row exactly once (3 batches)"),
        (short_batch_at_wrap, "mode 'train' on a 10-row file (10 rows, bs=4) gave batch sizes "
                              "[4, 4, 2, 4, 4, 2, 4]; every training batch should hold 4 rows"),
        (flat_images, "batch 1 of a 10-row file: images have shape (4, 12288), "
                      "expected (rows, height, width, 3)"),
        (images_only, "batch 1 of a 10-row file is a ndarray, not a pair (images, labels)"),
        (off_by_one_pixels, "mode 'eval' on a 10-row file, bs=4: the pixel values of row 1 "
                            "differ from the file's"),
        (lambda path, bs, mode="train": None, "csv_generator returned NoneType, not a generator"),
    ],
)  # fmt: skip
def test_generator_wrong_answers_fail_with_hint(answer, message):
    result = check_csv_generator(answer)
    failed(result)
    assert result.message == message


def test_generator_error_while_reading_names_the_batch():
    def breaks_at_batch_2(input_path, bs, mode="train"):
        gen = good_generator(input_path, bs, mode)
        yield next(gen)
        raise OSError("disk gone")

    result = check_csv_generator(breaks_at_batch_2)
    failed(result, "read one line at a time")
    assert result.message == (
        "your code raised OSError: disk gone (reading batch 2 of a 10-row file, bs=4, mode='eval')"
    )


# ---------------------------------------------------------------- steps


def test_steps_right_answer_passes():
    passed(
        check_steps(good_steps, good_last),
        "batches_needed and last_batch_size are right for all 9 cases.",
    )


@pytest.mark.parametrize(
    ("steps", "last", "message"),
    [
        (lambda r, b: r // b, good_last, "batches_needed(1020, 32) returned 31, expected 32"),
        (lambda r, b: r // b + 1, good_last, "batches_needed(320, 32) returned 11, expected 10"),
        (lambda r, b: np.ceil(r / b), good_last,
         "batches_needed(1020, 32) returned np.float64(32.0) (float64); "
         "Keras wants a whole number of batches, an int"),
        (lambda r, b: True, good_last,
         "batches_needed(1020, 32) returned True (bool); "
         "Keras wants a whole number of batches, an int"),
        (good_steps, lambda r, b: r % b, "last_batch_size(320, 32) returned 0, expected 32"),
        (good_steps, lambda r, b: 1 / 0,
         "your code raised ZeroDivisionError: division by zero (last_batch_size(1020, 32))"),
    ],
)  # fmt: skip
def test_steps_wrong_answers_fail_with_hint(steps, last, message):
    result = check_steps(steps, last)
    failed(result)
    assert result.message == message


def test_steps_accepts_numpy_integers():
    passed(
        check_steps(lambda r, b: np.int64(good_steps(r, b)), good_last),
        "batches_needed and last_batch_size are right for all 9 cases.",
    )


# ---------------------------------------------------------------- parser

PARSER_PASS = (
    "parse_line is exact on 40 rows of {} (a CRLF line end included) "
    "and at least 4× as fast as the tutorial's parser."
)


def scripted_timer(seconds: dict):
    """A timer that answers ``seconds[parser]`` and records what it was asked to time."""
    calls = []

    def timer(parse, lines):
        calls.append((parse, list(lines)))
        return seconds[parse]

    timer.calls = calls
    return timer


@pytest.mark.parametrize(
    ("ours", "speedup"),
    [(0.25, None), (0.1, None), (0.0, None), (0.26, "3.8"), (0.5, "2.0"), (2.0, "0.5")],
)
def test_parser_speed_verdict_is_the_timed_ratio_against_4x(ours, speedup):
    timer = scripted_timer({fast_parse: ours, tutorial_parse: 1.0})
    result = check_fast_parser(fast_parse, timer=timer)
    if speedup is None:  # at least 4× (exactly 4× included) passes
        passed(result, PARSER_PASS.format("a synthetic file"))
    else:
        failed(result, "np.fromstring(values, dtype=np.uint8, sep=',')")
        assert result.message == (
            f"parse_line is exact but only {speedup}× as fast as the tutorial's parser; "
            "the goal is 4×"
        )
    # Both parsers are timed on the same 40 rows, the last one with a Windows line end.
    assert [parse for parse, _ in timer.calls] == [fast_parse, tutorial_parse]
    assert timer.calls[0][1] == timer.calls[1][1]
    rows = timer.calls[0][1]
    assert len(rows) == 40 and rows[-1].endswith("\r\n")
    assert all(row.endswith("\n") and not row.endswith("\r\n") for row in rows[:-1])


def test_parser_on_real_rows(flowers17_csvs):
    timer = scripted_timer({fast_parse: 0.1, tutorial_parse: 1.0})
    result = check_fast_parser(fast_parse, real_csv=flowers17_csvs.train, timer=timer)
    passed(result, PARSER_PASS.format("flowers17_training.csv"))
    with open(flowers17_csvs.train) as f:
        assert timer.calls[0][1][0] == f.readline()


def test_parser_speed_on_the_real_clock():
    # A parser that only looks its rows up, once the check has verified them: its
    # timed passes take microseconds against the tutorial's tenths of a second,
    # a ratio thousands of times above 4 that no load on the machine can invert.
    cached = functools.lru_cache(maxsize=None)(fast_parse)
    passed(check_fast_parser(cached), PARSER_PASS.format("a synthetic file"))


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (tutorial_parse, "row 1: image is float32 (64, 64, 3), expected uint8 (64, 64, 3)"),
        (lambda line: fast_parse(line)[1], "row 1: parse_line returned ndarray, not a pair "
                                           "(label, image)"),
        (lambda line: ("tulip", fast_parse(line)[1]), "row 1: label 'tulip', expected 'daffodil'"),
        (lambda line: (fast_parse(line)[0], 255 - fast_parse(line)[1]),
         "row 1: the pixel values differ from the file's"),
        (lambda line: fast_parse(line.rstrip("\r\n") + ",0"),
         "your code raised ValueError: cannot reshape array of size 12289 into shape (64,64,3) "
         "(parsing row 1)"),
    ],
)  # fmt: skip
def test_parser_wrong_answers_fail_before_any_timing(answer, message):
    timer = scripted_timer({})
    result = check_fast_parser(answer, timer=timer)
    failed(result)
    assert result.message == message
    assert timer.calls == []


def test_parser_failing_only_while_timed_is_a_failed_check():
    calls = []

    def breaks_when_timed(line):
        calls.append(line)
        if len(calls) > 40:  # the 40 rows checked for exactness passed
            raise MemoryError("out of memory")
        return fast_parse(line)

    result = check_fast_parser(breaks_when_timed)
    failed(result)
    assert result.message == "your code raised MemoryError: out of memory (timing parse_line)"


# ---------------------------------------------------------------- training loop

LOOP_PASS = "epochs, batch calls, mean losses and early stopping are right in 3 scripted runs"


def test_loop_right_answer_passes():
    passed(check_train_loop(good_loop), LOOP_PASS + ".")


def test_loop_learns_on_real_images(flowers17_csvs):
    from fitlab import load_csv

    images, labels = load_csv(flowers17_csvs.test)
    classes = sorted(set(labels))
    one_hot = np.eye(len(classes), dtype="float32")[[classes.index(c) for c in labels]]
    result = check_train_loop(good_loop, data=(images[:192], one_hot[:192]))
    passed(result, LOOP_PASS + " and a real Keras model learns with it.")


@pytest.mark.parametrize(
    ("answer", "fragments"),
    [
        (no_early_stopping, ["a plateau: validation losses per epoch were "
                             "[1.0, 0.8, 0.9, 0.85, 0.7, 0.6] with patience=2; your loop ran on "
                             "after 6 epochs, expected 4"]),
        (impatient, ["a plateau:", "your loop stopped after 3 epochs, expected 4"]),
        (skips_first_batch, ["always improving: train_on_batch was called 2 times per epoch "
                             "(first batches [1, 2, 1]); expected each of the 3 training batches "
                             "once per epoch"]),
        (summed_losses, ["always improving: history loss [30.3, 27.3, 24.3, 21.3, 18.3]",
                         "expected [10.1, 9.1, 8.1, 7.1, 6.1]",
                         "the means over each epoch's batches"]),
        (lambda m, t, v, e, p: [], ["always improving: train_loop returned list, expected a "
                                    "dict with 'loss' and 'val_loss' lists"]),
        (uses_fit, ["RuntimeError: this exercise is about writing the loop: "
                    "call train_on_batch, not fit"]),
    ],
)  # fmt: skip
def test_loop_wrong_answers_fail_with_hint(answer, fragments):
    failed(check_train_loop(answer), *fragments)


def test_loop_without_validation_fails():
    def no_validation(model, train_batches, val_batches, epochs, patience):
        return good_loop(model, train_batches, val_batches[:1], epochs, patience)

    result = check_train_loop(no_validation)
    failed(result, "validate at the end of every epoch")
    assert result.message == (
        "always improving: test_on_batch was called 5 times in 5 epochs; "
        "expected each of the 2 validation batches once per epoch"
    )


# ---------------------------------------------------------------- port


def test_port_right_answer_passes():
    passed(
        check_port(port()),
        "fit trained 3 epochs of 3 batches with validation, and the learning rate decays per "
        "batch as Keras 2's SGD(decay=...) did.",
    )


# The wrong answer's own warning: Keras 3 ignores SGD(decay=...), which is what is checked.
@pytest.mark.filterwarnings("ignore:Argument `decay` is no longer supported:UserWarning")
@pytest.mark.parametrize(
    ("answer", "fragments"),
    [
        (port(decay=False), ["after 9 batches the learning rate is 0.01; Keras 2's "
                             "decay=0.003333 gives 0.00970874", "ignores decay"]),
        (port(metrics=()), ["missing ['accuracy', 'val_accuracy']", "metrics=['accuracy']"]),
        (port(workers=2), ["your code raised TypeError", "workers"]),
    ],
)  # fmt: skip
def test_port_wrong_answers_fail_with_hint(answer, fragments):
    failed(check_port(answer), *fragments)


def test_port_must_return_the_history():
    def returns_nothing(model, train_gen, val_gen, *args, **kwargs):
        return None

    result = check_port(returns_nothing)
    failed(result, "return model.fit(...)")
    assert result.message == (
        "train_modern returned NoneType, expected the History that model.fit returns"
    )
