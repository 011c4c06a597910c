"""The exercises as nbgrader assignments: generated from one source each, graded end to end.

The committed student versions must be what nbgrader generates from the sources
today (``make assignments``). Then the teacher's loop, in a temporary course and
exchange, with the README's commands ("For teachers") run in this process
(``tools/assignments.py``'s ``nbgrader``: the command line, without a
five-second start per command). For each exercise: generate and release it; two
students fetch it, ``ada`` submits the source's solution and ``bob`` a plausible
wrong answer written here; collect, autograde (one run grades both), generate
and release the feedback, which each student fetches; the scores come from
``nbgrader export``. Ada gets every point, Bob fewer, and the feedback Bob
fetched shows the failed check's line and its hint.
"""

from __future__ import annotations

import csv
import html
import re
from pathlib import Path
from typing import NamedTuple

import nbformat
import pytest
from maintainer_tools import assignments

NOTEBOOKS = assignments.NOTEBOOKS
EXERCISES = assignments.exercises(NOTEBOOKS)


class Wrong(NamedTuple):
    """A plausible wrong answer to an exercise."""

    cell: str  # the solution cell it fills, by nbgrader's grade id
    code: str
    hint: str  # what the failed check's hint says about it


WRONG = {
    "ex1_csv_generator": Wrong(
        "csv_generator",
        code='''
import numpy as np


def csv_generator(input_path, bs, mode="train"):
    """The tutorial's generator: it rewinds at the end of the file whatever the mode."""
    with open(input_path) as f:
        while True:
            images, labels = [], []
            while len(images) < bs:
                line = f.readline()
                if line == "":
                    f.seek(0)
                    continue
                label, _, values = line.rstrip("\\r\\n").partition(",")
                images.append(np.fromstring(values, dtype=np.uint8, sep=",").reshape((64, 64, 3)))
                labels.append(label)
            yield np.array(images), np.array(labels)
''',
        hint="in mode 'eval', return (or break out of the outer loop) at the end of the file",
    ),
    "ex2_steps": Wrong(
        "batches_needed_and_last_batch_size",
        code="""
import math


def batches_needed(rows, batch_size):
    return math.ceil(rows / batch_size)


def last_batch_size(rows, batch_size):
    return rows - (batches_needed(rows, batch_size) - 1) * batch_size
""",
        hint="rows / batch_size is a float, exact only to about 16 digits",
    ),
    "ex3_starving_pipeline": Wrong(
        "fast_pipeline",
        code='''
def fast_pipeline(path, bs, classes):
    """Fast, but scaled to [0, 1] out of habit: not the file's values."""
    images, labels = fitlab.load_csv(path)
    targets = np.eye(len(classes))[[classes.index(label) for label in labels]]
    for start in range(0, len(images), bs):
        yield images[start : start + bs] / 255.0, targets[start : start + bs]
''',
        hint="the values are every field after the label, in order, unscaled",
    ),
    "ex4_train_loop": Wrong(
        "train_loop",
        code='''
import numpy as np


def train_loop(model, train_batches, val_batches, epochs, patience):
    """Each epoch's loss the plain mean of its batches' losses, whatever their sizes."""
    history = {"loss": [], "val_loss": []}
    best, waited = np.inf, 0
    for _ in range(epochs):
        history["loss"].append(np.mean([model.train_on_batch(x, y) for x, y in train_batches]))
        history["val_loss"].append(np.mean([model.test_on_batch(x, y) for x, y in val_batches]))
        if history["val_loss"][-1] < best:
            best, waited = history["val_loss"][-1], 0
        else:
            waited += 1
            if waited >= patience:
                break
    return history
''',
        hint="weight each batch's loss by len(x)",
    ),
    "ex5_port_fit_generator": Wrong(
        "train_modern",
        code='''
def train_modern(
    model, train_gen, val_gen, steps_per_epoch, validation_steps, epochs, init_lr=1e-2
):
    """The port, validating on the generator itself: Keras 3's trap."""
    opt = fitlab.legacy_sgd(init_lr, momentum=0.9, decay=init_lr / epochs)
    model.compile(loss="categorical_crossentropy", optimizer=opt, metrics=["accuracy"])
    return model.fit(
        train_gen,
        steps_per_epoch=steps_per_epoch,
        validation_data=val_gen,
        validation_steps=validation_steps,
        epochs=epochs,
        verbose=0,
    )
''',
        hint="itertools.islice(val_gen, validation_steps)",
    ),
}


def test_every_exercise_has_a_wrong_answer_here():
    assert sorted(WRONG) == EXERCISES and len(EXERCISES) == 5


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    """A temporary copy of the course, every exercise generated: (root, {name: student version})."""
    root = assignments.new_course(tmp_path_factory.mktemp("course"))
    return root, {name: assignments.generate(root, name) for name in EXERCISES}


@pytest.mark.parametrize("name", EXERCISES)
def test_the_committed_student_version_is_generated_from_its_source(course, name):
    _, generated = course
    committed = NOTEBOOKS / "exercises" / name / f"{name}.ipynb"
    stale = assignments.difference(committed, generated[name])
    assert stale is None, f"out of date: {stale}. Run `make assignments`"


def test_only_a_failed_check_may_raise_in_a_student_version(tmp_path):
    def raised(ename: str) -> nbformat.NotebookNode:
        cell = nbformat.v4.new_code_cell("check(answer).assert_passed()")
        cell.outputs = [nbformat.v4.new_output("error", ename=ename, evalue="…", traceback=[])]
        return cell

    notebook = nbformat.v4.new_notebook(cells=[raised("ExerciseFailed")])
    assignments.tag_failed_checks(notebook, tmp_path / "ex.ipynb")
    assert notebook.cells[0].metadata["tags"] == ["raises-exception"]  # nbval: expected
    notebook.cells.append(raised("NameError"))
    with pytest.raises(assignments.workbook.NotebookFailed, match="cell 1 raised NameError"):
        assignments.tag_failed_checks(notebook, tmp_path / "ex.ipynb")


def answer(student_version: Path, wrong: Wrong | None = None) -> None:
    """Fill each solution cell of the student's notebook: the source's, or the wrong one."""
    notebook = nbformat.read(student_version, as_version=4)
    source = NOTEBOOKS / "solutions" / student_version.stem / student_version.name
    solutions = {
        cell.metadata["nbgrader"]["grade_id"]: cell.source
        for cell in nbformat.read(source, as_version=4).cells
        if cell.metadata.get("nbgrader", {}).get("solution")
    }
    for cell in notebook.cells:
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        if cell.metadata.get("nbgrader", {}).get("solution"):
            right = wrong is None or wrong.cell != grade_id
            cell.source = solutions[grade_id] if right else wrong.code.strip()
    nbformat.write(notebook, student_version)


STUDENTS = ("ada", "bob")  # ada submits the solution, bob the wrong answer


class Graded(NamedTuple):
    score: float
    max_score: float
    feedback: str  # the text of the feedback page the student fetched


@pytest.fixture(scope="module")
def graded(course, flowers17_csvs, tmp_path_factory) -> dict[tuple[str, str], Graded]:
    """The teacher's loop for every exercise, as the README gives it: {(exercise, student): …}."""
    root, _ = course
    tmp = tmp_path_factory.mktemp("classroom")
    exchange = f"--Exchange.root={tmp / 'exchange'}"
    homes = {student: tmp / student for student in STUDENTS}

    def teacher(*argv: str) -> None:
        assignments.nbgrader(*argv, cwd=root)

    def student(name: str, *argv: str) -> None:  # as `name`, in their own folder and cache
        cache = f"--Exchange.cache={homes[name] / '.nbgrader'}"
        homes[name].mkdir(exist_ok=True)
        assignments.nbgrader(*argv, "--course=fitlab", f"--student={name}", exchange, cache,
                             cwd=homes[name])  # fmt: skip

    with pytest.MonkeyPatch.context() as env:
        env.setenv("FITLAB_PROFILE", "smoke")  # inherited by the autograder's kernels
        for name in EXERCISES:
            teacher("release_assignment", name, exchange)
            for who in STUDENTS:
                student(who, "fetch_assignment", name)
                answer(homes[who] / name / f"{name}.ipynb", WRONG[name] if who == "bob" else None)
                student(who, "submit", name)
            teacher("collect", name, exchange)
            teacher("autograde", name)
            teacher("generate_feedback", name)
            teacher("release_feedback", name, exchange)
            for who in STUDENTS:
                student(who, "fetch_feedback", name)
        teacher("export")
    with open(root / "grades.csv", newline="") as grades:
        scores = {(row["assignment"], row["student_id"]): row for row in csv.DictReader(grades)}
    results = {}
    for name in EXERCISES:
        for who in STUDENTS:
            [page] = (homes[who] / name / "feedback").glob(f"*/{name}.html")
            row = scores[name, who]
            results[name, who] = Graded(
                float(row["score"]), float(row["max_score"]), text_of(page.read_text())
            )
    return results


def text_of(page: str) -> str:
    """What an HTML page says: no styles, scripts or tags, its whitespace collapsed."""
    page = re.sub(r"<(style|script)[^>]*>.*?</\1>", " ", page, flags=re.DOTALL)
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page)).split())


@pytest.mark.realdata
@pytest.mark.parametrize("name", EXERCISES)
def test_the_solution_gets_every_point_and_a_wrong_answer_fewer_with_its_hint(graded, name):
    solution, wrong = graded[name, "ada"], graded[name, "bob"]
    assert solution.max_score == wrong.max_score == 3
    assert solution.score == 3, solution.feedback
    assert "✘ FAIL" not in solution.feedback
    assert wrong.score < 3
    failed_check = re.escape("✘ FAIL") + "[^✔✘]*? Hint: [^✔✘]*?" + re.escape(WRONG[name].hint)
    assert re.search(failed_check, wrong.feedback), wrong.feedback
