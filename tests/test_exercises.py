"""The exercise checks: right answers pass, wrong ones fail with a hint, nothing escapes.

The pipeline check (exercise 3) times on the real clock, as a student's run
does: its tests use pipelines whose verdict has a wide margin on a busy
two-core machine, a right one waiting a fraction of what the goal allows and
one with a slow spot left at least twice what it allows.
"""

from __future__ import annotations

import itertools
import math
import sys
import time

import numpy as np
import pytest

import fitlab.exercises
from fitlab.exercises import (
    CheckResult,
    ExerciseFailed,
    check_csv_generator,
    check_input_pipeline,
    check_port,
    check_steps,
    check_train_loop,
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


# The stages of exercise 3's pipeline: one slow and one fast version of each slow spot.


def read_every_batch(path, bs):
    """The slow spot of reading: the whole file again for every batch."""
    rows = sum(1 for _ in open(path))
    for start in range(0, rows, bs):
        with open(path) as f:
            lines = f.read().splitlines()
        yield lines[start : start + bs]


def read_once(path, bs):
    with open(path) as f:
        while lines := list(itertools.islice(f, bs)):
            yield lines


def parse_per_value(line_batches):
    """The slow spot of parsing: a Python int() for each of the 12,288 values of a row."""
    for lines in line_batches:
        rows = [line.strip().split(",") for line in lines]
        images = [np.array([int(v) for v in row[1:]], dtype="float32") for row in rows]
        yield np.stack(images).reshape((-1, 64, 64, 3)), [row[0] for row in rows]


def parse_in_numpy(line_batches):
    for lines in line_batches:
        rows = [line.rstrip("\r\n").partition(",") for line in lines]
        images = [np.fromstring(values, dtype=np.uint8, sep=",") for _, _, values in rows]
        yield np.stack(images).reshape((-1, 64, 64, 3)), [label for label, _, _ in rows]


def one_hot(batches, classes):
    for images, labels in batches:
        yield images, np.eye(len(classes))[[classes.index(label) for label in labels]]


def pipeline_of(read, parse):
    return lambda path, bs, classes: one_hot(parse(read(path, bs)), classes)


def loaded_up_front(path, bs, classes):
    """Another fix altogether: the package's reader, the whole file at once."""
    images, labels = fitlab.load_csv(path)
    targets = np.eye(len(classes))[[classes.index(label) for label in labels]]
    for start in range(0, len(images), bs):
        yield images[start : start + bs], targets[start : start + bs]


def good_loop(model, train_batches, val_batches, epochs, patience):
    history = {"loss": [], "val_loss": []}
    best, waited = math.inf, 0
    for _ in range(epochs):
        losses = [model.train_on_batch(x, y) for x, y in train_batches]
        history["loss"].append(np.average(losses, weights=[len(x) for x, _ in train_batches]))
        val_losses = [model.test_on_batch(x, y) for x, y in val_batches]
        val = float(np.average(val_losses, weights=[len(x) for x, _ in val_batches]))
        history["val_loss"].append(val)
        if val < best:
            best, waited = val, 0
        else:
            waited += 1
            if waited >= patience:
                break
    return history


def unweighted_means(model, train_batches, val_batches, epochs, patience):
    """Each epoch's batch losses averaged as if every batch had as many rows."""
    history = {"loss": [], "val_loss": []}
    for _ in range(epochs):
        history["loss"].append(np.mean([model.train_on_batch(x, y) for x, y in train_batches]))
        history["val_loss"].append(np.mean([model.test_on_batch(x, y) for x, y in val_batches]))
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


def port(validation="drawn once", metrics=("accuracy",), decay=True, **fit_kwargs):
    """A ``train_modern``: the right one by default, each argument one way to get it wrong.

    ``validation``: "drawn once" (right), "generator" (Keras 3's trap), "no steps", or
    "steps - 1" (a generator with one validation step too few).
    """

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
        if validation == "drawn once":
            images, targets = zip(*itertools.islice(val_gen, validation_steps), strict=True)
            val = {"validation_data": (np.concatenate(images), np.concatenate(targets))}
        else:
            steps = {"generator": validation_steps, "steps - 1": validation_steps - 1}
            val = {"validation_data": val_gen}
            if validation in steps:
                val["validation_steps"] = steps[validation]
        kwargs = {"steps_per_epoch": steps_per_epoch, "epochs": epochs, "shuffle": False,
                  "verbose": 0} | val | fit_kwargs  # fmt: skip
        return model.fit(train_gen, **{k: v for k, v in kwargs.items() if v is not None})

    return train_modern


def compat_port(model, train_gen, val_gen, steps_per_epoch, validation_steps, epochs,
                init_lr=1e-2):  # fmt: skip
    """The shortcut: Keras 2's fit_generator, brought back by fitlab.compat."""
    from fitlab import compat

    model.compile(compat.SGD(lr=init_lr, momentum=0.9, decay=init_lr / epochs),
                  loss="categorical_crossentropy", metrics=["accuracy"])  # fmt: skip
    return compat.fit_generator(model, train_gen, steps_per_epoch=steps_per_epoch,
                                validation_data=val_gen, validation_steps=validation_steps,
                                epochs=epochs, verbose=0)  # fmt: skip


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


def test_public_names_are_the_checks_the_result_and_the_goals():
    assert sorted(fitlab.exercises.__all__) == [
        "CheckResult", "ExerciseFailed", "MAX_WAIT_SHARE", "SECONDS_PER_IMAGE",
        "check_csv_generator", "check_input_pipeline", "check_port", "check_steps",
        "check_train_loop",
    ]  # fmt: skip


def test_check_result_shows_pass_fail_and_hint():
    assert str(CheckResult("c", True, "fine.")) == "✔ PASS c: fine."
    assert str(CheckResult("c", False, "wrong")) == "✘ FAIL c: wrong"
    result = CheckResult("c", False, "wrong", "look here")
    assert repr(result) == str(result) == "✘ FAIL c: wrong\n  Hint: look here"
    assert bool(CheckResult("c", True, "")) and not CheckResult("c", False, "")


def test_a_graded_cell_prints_a_pass_line_and_returns_nothing(capsys):
    # nbgrader reads a graded cell's result as partial credit: a pass leaves none.
    assert CheckResult("c", True, "fine.").assert_passed() is None
    assert capsys.readouterr().out == "✔ PASS c: fine.\n"


def test_a_graded_cell_raises_a_failed_check_shown_as_its_two_lines():
    result = CheckResult("c", False, "wrong", "look here")
    with pytest.raises(ExerciseFailed) as raised:
        result.assert_passed()
    assert isinstance(raised.value, AssertionError)  # an error takes the cell's points away
    assert raised.value.result is result and str(raised.value) == str(result)
    # What IPython shows instead of a traceback: in the notebook and in nbgrader's feedback.
    assert raised.value._render_traceback_() == ["✘ FAIL c: wrong", "  Hint: look here"]


def test_what_the_students_code_writes_to_stderr_does_not_cost_the_points(capsys):
    # nbgrader takes a graded cell's points for any stderr line, such as a Keras warning.
    def batches_needed(rows, batch_size):
        print("UserWarning: `shuffle=True` was passed, but will be ignored", file=sys.stderr)
        return good_steps(rows, batch_size)

    check_steps(batches_needed, good_last).assert_passed()
    shown = capsys.readouterr()
    assert shown.err == "" and "UserWarning: `shuffle=True`" in shown.out
    assert shown.out.endswith("✔ PASS check_steps: batches_needed and last_batch_size are "
                              "right for all 9 cases.\n")  # fmt: skip


def test_nbgraders_blank_is_a_failed_check_without_an_empty_message():
    def batches_needed(rows, batch_size):
        raise NotImplementedError()  # what a student version holds until it is written

    result = check_steps(batches_needed, good_last)
    failed(result, "round *up*")
    assert result.message == "your code raised NotImplementedError (batches_needed(1020, 32))"


@pytest.mark.parametrize(
    ("check", "args", "during"),
    [
        (check_csv_generator, (), "calling csv_generator on a 10-row file, bs=4, mode='eval'"),
        (check_steps, (good_last,), "batches_needed(1020, 32)"),
        (check_input_pipeline, (), "calling pipeline on a 10-row file (bs=4)"),
        (check_train_loop, (), "always improving: epochs=5, patience=2"),
        (check_port, (), "steps_per_epoch=3, validation_steps=3, epochs=3"),
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
        (check_input_pipeline, ()),
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


HUGE = [(10**17 + 1, 10), (2**53 + 1, 2)]  # past 2**53 a float skips whole numbers


def exact_steps(rows, bs):
    return -(-rows // bs)


def test_steps_for_counts_too_big_for_a_float_need_integer_arithmetic():
    def exact_last(rows, bs):
        return rows - (exact_steps(rows, bs) - 1) * bs

    passed(
        check_steps(exact_steps, exact_last, sizes=HUGE),
        "batches_needed and last_batch_size are right for all 2 cases.",
    )
    result = check_steps(good_steps, good_last, sizes=HUGE)
    failed(result, "Hint: rows / batch_size is a float, exact only to about 16 digits")
    assert result.message == (
        "batches_needed(100000000000000001, 10) returned 10000000000000000, "
        "expected 10000000000000001"
    )
    result = check_steps(exact_steps, good_last, sizes=HUGE)  # the float only in the last one
    failed(result, "rows / batch_size is a float")
    assert result.message.startswith("last_batch_size(100000000000000001, 10) returned 11,")


def test_steps_accepts_numpy_integers():
    passed(
        check_steps(lambda r, b: np.int64(good_steps(r, b)), good_last),
        "batches_needed and last_batch_size are right for all 9 cases.",
    )


# ---------------------------------------------------------------- pipeline

PIPELINE_PASS = (
    "the batches are exact on a 10-row file, and over {} the stand-in model waited at most 50% "
    "of the time."
)


@pytest.mark.parametrize(
    "answer",
    [pipeline_of(read_once, parse_in_numpy), loaded_up_front],
    ids=["each slow stage fixed", "the whole file loaded by fitlab.load_csv"],
)
def test_pipeline_any_fix_that_reaches_the_goal_passes(answer):
    passed(check_input_pipeline(answer), PIPELINE_PASS.format("a synthetic file"))


@pytest.mark.parametrize(
    "answer",
    [
        pipeline_of(read_every_batch, parse_per_value),
        pipeline_of(read_once, parse_per_value),
        pipeline_of(read_every_batch, parse_in_numpy),
    ],
    ids=["nothing fixed", "only the reading fixed", "only the parsing fixed"],
)
def test_pipeline_with_a_slow_spot_left_fails_with_the_measured_wait(answer):
    result = check_input_pipeline(answer)
    failed(result, "time each stage with a fitlab.InputMeter")
    assert result.message.startswith(
        "the batches are exact, but over a synthetic file the stand-in model waited "
    )
    assert result.message.endswith("of the time for them (best of the passes); the goal is at "
                                   "most 50%")  # fmt: skip
    waited = float(result.message.split("waited ")[1].split("%")[0])
    assert waited > 55  # a slow spot costs at least twice what the goal allows: a wide margin


def test_pipeline_on_the_real_csv(flowers17_csvs):
    result = check_input_pipeline(pipeline_of(read_once, parse_in_numpy), flowers17_csvs.train)
    passed(result, PIPELINE_PASS.format("flowers17_training.csv"))


def scaled(path, bs, classes):
    for images, targets in loaded_up_front(path, bs, classes):
        yield images / 255.0, targets


def classes_in_file_order(path, bs, classes):
    return loaded_up_front(path, bs, ["daffodil", "snowdrop", "lilyvalley"])


def endless(path, bs, classes):
    return fitlab.csv_image_generator(path, bs, classes, mode="train")


def full_batches_only(path, bs, classes):
    return (batch for batch in loaded_up_front(path, bs, classes) if len(batch[0]) == bs)


def flat_images(path, bs, classes):
    for images, targets in loaded_up_front(path, bs, classes):
        yield images.reshape(len(images), -1), targets


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (scaled, "batch 1 of a 10-row file (bs=4): the pixel values of row 1 differ from the "
                 "file's"),
        (classes_in_file_order, "batch 1 of a 10-row file (bs=4): the one-hot label of row 2 is "
                                "[0, 1, 0], expected [0, 0, 1]"),
        (endless, "a 10-row file (bs=4): pipeline yielded more than 3 batches; one pass is 3 "
                  "batches, then it stops"),
        (full_batches_only, "a 10-row file (bs=4): pipeline stopped after 8 of the 10 rows"),
        (flat_images, "batch 1 of a 10-row file (bs=4): images have shape (4, 12288), expected "
                      "(rows, 64, 64, 3)"),
        (lambda path, bs, classes: None, "pipeline returned NoneType, not an iterable of batches"),
    ],
)  # fmt: skip
def test_pipeline_wrong_answers_fail_with_hint_before_any_timing(answer, message):
    start = time.perf_counter()
    result = check_input_pipeline(answer)
    failed(result)
    assert result.message == message
    assert time.perf_counter() - start < 5  # a timed pass takes longer: none was run


def test_pipeline_failing_only_while_timed_is_a_failed_check():
    def breaks_on_big_files(path, bs, classes):
        if sum(1 for _ in open(path)) > 100:
            raise MemoryError("out of memory")
        return loaded_up_front(path, bs, classes)

    result = check_input_pipeline(breaks_on_big_files)
    failed(result)
    assert result.message == (
        "your code raised MemoryError: out of memory (timing pipeline on synthetic.csv)"
    )


def test_pipeline_that_gives_part_of_the_rows_when_timed_fails():
    def first_64_rows_of_big_files(path, bs, classes):
        batches = loaded_up_front(path, bs, classes)
        return itertools.islice(batches, 2) if sum(1 for _ in open(path)) > 100 else batches

    result = check_input_pipeline(first_64_rows_of_big_files)
    failed(result, "every row of the file once")
    assert result.message == "one pass over synthetic.csv gave 64 rows of its 1020"


# ---------------------------------------------------------------- training loop

LOOP_PASS = "epochs, batch calls, means over rows and early stopping are right in 3 scripted runs"


def test_loop_right_answer_passes():
    passed(check_train_loop(good_loop), LOOP_PASS + ".")


def test_loop_with_return_dict_passes():
    def dict_loop(model, train_batches, val_batches, epochs, patience):
        class Losses:  # what train_on_batch(..., return_dict=True) gives, read as the loss
            def train_on_batch(self, x, y):
                return model.train_on_batch(x, y, return_dict=True)["loss"]

            def test_on_batch(self, x, y):
                return model.test_on_batch(x, y, return_dict=True)["loss"]

        return good_loop(Losses(), train_batches, val_batches, epochs, patience)

    passed(check_train_loop(dict_loop), LOOP_PASS + ".")


def test_loop_rejects_unweighted_means():
    result = check_train_loop(unweighted_means)
    failed(result, "weight each batch's loss by len(x)")
    assert result.message == (
        "always improving: history loss [10.1, 9.1, 8.1, 7.1, 6.1] are the plain means of each "
        "epoch's batch losses; with batches of [4, 4, 2] rows the means over rows are "
        "[10.08, 9.08, 8.08, 7.08, 6.08]"
    )


def test_loop_learns_on_a_split_of_the_training_csv_and_never_sees_test_rows(flowers17_csvs):
    seen = {}

    def recording_loop(model, train_batches, val_batches, epochs, patience):
        if train_batches[0][0].ndim == 4:  # the real run: the scripted runs' x is one column
            seen["train"], seen["val"] = train_batches, val_batches
        return good_loop(model, train_batches, val_batches, epochs, patience)

    result = check_train_loop(recording_loop, train_csv=flowers17_csvs.train)
    passed(result, LOOP_PASS + "; a real Keras model learns with it on 816 rows of "
                               "flowers17_training.csv, validated on the other 204.")  # fmt: skip
    train_rows = {row.tobytes() for x, _ in seen["train"] for row in x}
    val_rows = [row.tobytes() for x, _ in seen["val"] for row in x]
    training_csv = {row.tobytes() for row in fitlab.load_csv(flowers17_csvs.train)[0]}
    assert len(val_rows) == 204 and set(val_rows) <= training_csv  # validation: training rows,
    assert not train_rows & set(val_rows)  # none of them trained on
    assert train_rows | set(val_rows) == training_csv
    assert [len(x) for x, _ in seen["train"]][-2:] == [32, 16]  # 816 rows: the last batch short


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
        (summed_losses, ["always improving: history loss [30.24, 27.24, 24.24, 21.24, 18.24]",
                         "expected [10.08, 9.08, 8.08, 7.08, 6.08]",
                         "each epoch's batch losses, averaged over rows"]),
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

PORT_PASS = (
    "fit trained 3 epochs of 3 batches, each validated on the same 3 batches, and the learning "
    "rate decays per batch as Keras 2's SGD(decay=...) did."
)


def test_port_right_answer_passes():
    passed(check_port(port()), PORT_PASS)


def test_port_that_validates_on_the_generator_falls_into_the_trap():
    # Keras 3 wraps the validation generator again every epoch: epoch 2 replays the two
    # batches it peeked at, then draws a new one.
    result = check_port(port(validation="generator"))
    failed(result, "itertools.islice(val_gen, validation_steps)")
    assert result.message.startswith(
        "epoch 2 validated on 3 batches, but not on the first 3 that val_gen yields (val_loss "
    )
    assert result.message.endswith(
        "): Keras 3 replayed the two batches it peeked at, then drew new ones"
    )


@pytest.mark.timeout(120)  # the check from before the cut-off hangs here: fail, do not hang
@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (port(validation="no steps"),
         "validation_steps missing: validation drew 30 batches from the endless validation "
         "generator, where 3 per epoch are right; the check cut it off (without the cut-off, "
         "Keras 3's evaluate draws from it forever)"),
        (port(steps_per_epoch=None),
         "steps_per_epoch missing: fit drew 30 batches from the endless training generator, "
         "where 3 epochs of 3 need 9; the check cut it off (without the cut-off, epoch 1 never "
         "ends)"),
    ],
    ids=["validation_steps", "steps_per_epoch"],
)  # fmt: skip
def test_port_without_steps_fails_within_seconds(answer, message):
    import keras  # noqa: F401  (loaded before the clock starts)

    start = time.perf_counter()
    result = check_port(answer)
    assert time.perf_counter() - start < 20
    failed(result)
    assert result.message == message


def test_port_with_the_wrong_number_of_validation_batches_fails():
    result = check_port(port(validation="steps - 1"))
    failed(result, "itertools.islice(val_gen, validation_steps)")
    assert result.message == (
        "epoch 1 validated on 2 batches; expected validation_steps=3, the same batches every epoch"
    )


@pytest.mark.filterwarnings("ignore:fit_generator was deprecated:DeprecationWarning")
def test_port_refuses_the_compat_shortcut():
    import fitlab.compat

    original = fitlab.compat.fit_generator
    result = check_port(compat_port)
    failed(result, "call model.fit(train_gen, steps_per_epoch=..., validation_data=..., ...)")
    assert result.message == (
        "train_modern called fitlab.compat.fit_generator, Keras 2's meaning on Keras 3: this "
        "exercise is the port itself"
    )
    assert fitlab.compat.fit_generator is original  # put back after the check


@pytest.mark.filterwarnings("ignore:fit_generator was deprecated:DeprecationWarning")
def test_port_refuses_the_legacy_method_and_puts_it_back(monkeypatch):
    import keras

    from fitlab import compat

    for name in ("fit_generator", "evaluate_generator", "predict_generator"):
        monkeypatch.setattr(keras.Model, name, None, raising=False)  # removed again after the test
    compat.enable_legacy_methods()
    method = keras.Model.fit_generator

    def legacy_method(model, train_gen, val_gen, steps_per_epoch, validation_steps, epochs,
                      init_lr=1e-2):  # fmt: skip
        model.compile(compat.SGD(lr=init_lr, momentum=0.9, decay=init_lr / epochs),
                      loss="categorical_crossentropy", metrics=["accuracy"])  # fmt: skip
        return model.fit_generator(train_gen, steps_per_epoch=steps_per_epoch, epochs=epochs)

    result = check_port(legacy_method)
    failed(result)
    assert result.message.startswith("train_modern called model.fit_generator")
    assert keras.Model.fit_generator is method


@pytest.mark.filterwarnings("ignore:fit_generator was deprecated:DeprecationWarning")
def test_port_refuses_the_shortcut_under_any_name():
    from fitlab.compat import fit_generator as imported_before_the_check

    def renamed(model, train_gen, val_gen, steps_per_epoch, validation_steps, epochs,
                init_lr=1e-2):  # fmt: skip
        from fitlab import compat

        model.compile(compat.SGD(lr=init_lr, momentum=0.9, decay=init_lr / epochs),
                      loss="categorical_crossentropy", metrics=["accuracy"])  # fmt: skip
        return imported_before_the_check(model, train_gen, steps_per_epoch=steps_per_epoch,
                                         validation_data=val_gen,
                                         validation_steps=validation_steps, epochs=epochs,
                                         verbose=0)  # fmt: skip

    result = check_port(renamed)
    failed(result, "fitlab.compat.fit_generator is for code you cannot edit")
    assert result.message == (
        "train_modern trained without model.fit: this exercise is the port to Keras 3's fit"
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
    def returns_nothing(*args, **kwargs):
        port()(*args, **kwargs)

    result = check_port(returns_nothing)
    failed(result, "return model.fit(...)")
    assert result.message == (
        "train_modern returned NoneType, expected the History that model.fit returns"
    )
