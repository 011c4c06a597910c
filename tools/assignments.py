"""Generate the exercises' student versions from their sources (`make assignments`).

A maintainer's script, not part of the package. Each exercise has one source,
``notebooks/solutions/<exercise>/<exercise>.ipynb``: the task, the solution
between nbgrader's ``### BEGIN SOLUTION`` / ``### END SOLUTION`` markers and
the graded check cells. For each one the script

1. runs ``nbgrader generate_assignment`` in a temporary copy of the course
   (``notebooks/nbgrader_config.py`` and the sources), so that no gradebook is
   left in the repository;
2. runs the student version in a fresh kernel in its folder, in the full
   profile, with ``make workbook``'s code (``tools/workbook.py``), and tags each
   cell that raised :class:`fitlab.exercises.ExerciseFailed` (a check failing
   on the blanks, as it should) ``raises-exception`` for nbval; any other
   error stops the run and names the cell;
3. records the run in the notebook's metadata as ``make workbook`` does,
   writes ``notebooks/exercises/<exercise>/<exercise>.ipynb`` atomically and
   syncs its text form under ``text/`` (``make text``'s pairing).

With ``--check`` it writes nothing: it generates the student versions and
names each committed one that differs from its source's (cell types, sources
and metadata; outputs and timestamps aside). ``tests/test_classroom.py`` makes
the same comparison.

Usage::

    python tools/assignments.py                    # all of them (make assignments)
    python tools/assignments.py --only ex2_steps
    python tools/assignments.py --check

Exit status: 0 when every student version was written (or, with ``--check``, is
up to date); 1 when a cell raised where only a check may, or a student version
is out of date; 2 when the script refused to start (an unknown ``--only`` name,
a profile other than ``full``).
"""

from __future__ import annotations

import argparse
import contextlib
import difflib
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import nbformat
import workbook  # tools/workbook.py, beside this script

NOTEBOOKS = workbook.NOTEBOOKS
CONFIG = "nbgrader_config.py"
SOURCES = "solutions"  # the course's source and release folders, as CONFIG names them
RELEASE = "exercises"
# What a check failing gracefully raises (fitlab.exercises.ExerciseFailed), and nbval's tag
# for a cell that is expected to raise.
GRACEFUL = "ExerciseFailed"
RAISES = "raises-exception"
CELL_TIMEOUT_S = 600


class NbgraderFailed(Exception):
    """An nbgrader command failed; nbgrader's log above says why (exit status 1)."""


def exercises(folder: Path) -> list[str]:
    """The exercises under ``folder``: each ``solutions/<name>/<name>.ipynb``, sorted.

    Examples
    --------
    >>> exercises(NOTEBOOKS)[:2]
    ['ex1_csv_generator', 'ex2_steps']
    """
    return sorted(p.stem for p in folder.glob(f"{SOURCES}/*/*.ipynb") if p.stem == p.parent.name)


def nbgrader(*argv: str, cwd: Path) -> None:
    """Run the command line ``nbgrader *argv`` in ``cwd``, in this process.

    nbgrader takes seconds to import, so a loop of commands runs them all in
    one process. Raises :class:`NbgraderFailed` when the command fails.
    """
    from jupyter_core.application import NoStart
    from nbgrader.apps import NbGraderApp

    # nbgrader's gradebook runs the `alembic` command, installed beside this Python, which
    # is not on PATH when the venv is not active (`make`, `.venv/bin/python -m pytest`).
    app, path, shell_path = NbGraderApp(), sys.path[:], os.environ.get("PATH", "")
    os.environ["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), shell_path])
    try:
        with contextlib.chdir(cwd):  # nbgrader reads nbgrader_config.py from here
            app.initialize(list(argv))
            app.start()
    except NoStart:  # how a Jupyter app says that its subcommand ran
        pass
    except SystemExit as exit_:  # how nbgrader's commands fail
        if exit_.code:
            raise NbgraderFailed(f"`nbgrader {' '.join(argv)}` failed in {cwd}") from None
    finally:
        sys.path[:] = path  # each command puts its folder first on sys.path
        os.environ["PATH"] = shell_path
        if app.subapp is not None:
            type(app.subapp).clear_instance()  # the next command gets a fresh one


def new_course(course: Path, folder: Path = NOTEBOOKS) -> Path:
    """Copy the course under ``folder`` (its config and sources) into ``course``; return it."""
    shutil.copytree(folder / SOURCES, course / SOURCES, ignore=shutil.ignore_patterns(".*"))
    shutil.copy2(folder / CONFIG, course / CONFIG)
    return course


def generate(course: Path, name: str) -> Path:
    """``nbgrader generate_assignment name`` in ``course``; the student version's path."""
    nbgrader("generate_assignment", name, "--force", "--log-level=WARN", cwd=course)
    return course / RELEASE / name / f"{name}.ipynb"


def cells(notebook: nbformat.NotebookNode) -> list[tuple[str, str, dict]]:
    """Each cell's type, source and metadata, without what a run adds or changes.

    A run adds outputs, the ``execution`` timestamps and, to the checks that
    fail on the blanks, nbval's ``raises-exception`` tag.
    """
    found = []
    for cell in notebook.cells:
        metadata = {k: v for k, v in cell.metadata.items() if k != "execution"}
        tags = [tag for tag in metadata.pop("tags", []) if tag != RAISES]
        found.append((cell.cell_type, cell.source, metadata | ({"tags": tags} if tags else {})))
    return found


def difference(committed: Path, generated: Path) -> str | None:
    """Where ``committed`` first differs from ``generated``, with a short diff; None if nowhere.

    Examples
    --------
    >>> import tempfile
    >>> tmp = Path(tempfile.mkdtemp())
    >>> def notebook(name, *sources):
    ...     cells = [nbformat.v4.new_code_cell(source) for source in sources]
    ...     nbformat.write(nbformat.v4.new_notebook(cells=cells), tmp / name)
    ...     return tmp / name
    >>> print(difference(notebook("old.ipynb", "x = 1", "y = 2"), notebook("new.ipynb", "x = 1")))
    /tmp/.../old.ipynb has 2 cells, its source's student version 1
    >>> print(difference(notebook("old.ipynb", "x = 1"), notebook("new.ipynb", "x = 2")))
    /tmp/.../old.ipynb, cell 0 (code): - x = 1 + x = 2
    """
    if not committed.exists():
        return f"{committed} is missing"
    ours = cells(nbformat.read(committed, as_version=4))
    theirs = cells(nbformat.read(generated, as_version=4))
    for index, (mine, fresh) in enumerate(zip(ours, theirs, strict=False)):
        if mine != fresh:
            lines = [f"{part}\n".splitlines() for part in (repr(mine[::2]), repr(fresh[::2]))]
            if mine[1] != fresh[1]:  # the sources differ: show their lines
                lines = [mine[1].splitlines(), fresh[1].splitlines()]
            diff = [d for d in difflib.ndiff(*lines) if d[0] in "+-"]
            return f"{committed}, cell {index} ({fresh[0]}): {' '.join(diff)[:300]}"
    if len(ours) != len(theirs):
        return f"{committed} has {len(ours)} cells, its source's student version {len(theirs)}"
    return None


def tag_failed_checks(notebook: nbformat.NotebookNode, path: Path) -> None:
    """Tag each cell that raised ExerciseFailed ``raises-exception``; refuse any other error."""
    for index, cell in enumerate(notebook.cells):
        errors = [o for o in cell.get("outputs", []) if o.output_type == "error"]
        if not errors:
            continue
        if errors[0].ename != GRACEFUL:
            raise workbook.NotebookFailed(
                f"{path}, cell {index} raised {errors[0].ename}: {errors[0].evalue}; in a student "
                "version only a check may fail (ExerciseFailed). Fix the source and run again"
            )
        tags = cell.metadata.setdefault("tags", [])
        if RAISES not in tags:
            tags.append(RAISES)


def write(name: str, generated: Path, folder: Path) -> None:
    """Run the student version ``generated`` in its folder, tag it, record the run, save it."""
    path = folder / RELEASE / name / f"{name}.ipynb"
    path.parent.mkdir(parents=True, exist_ok=True)
    before, start = os.getloadavg(), time.perf_counter()
    notebook = workbook.execute(generated, CELL_TIMEOUT_S, folder=path.parent, allow_errors=True)
    seconds, after = time.perf_counter() - start, os.getloadavg()
    tag_failed_checks(notebook, path)
    workbook.record(notebook, seconds, before, after)
    workbook.save(notebook, path)
    sync_text_form(path)
    print(f"{path.relative_to(folder).as_posix()}: {seconds:.0f} s", flush=True)


def sync_text_form(path: Path) -> None:
    """Write the text form of the student version just saved (``text/``, by jupytext.toml).

    Reviewers see what students get in the text's diff; like the notebook, it
    is generated: edit the source's text form, ``text/solutions/...``.
    """
    from jupytext.cli import jupytext

    jupytext(["--sync", "--quiet", str(path)])


def run(names: list[str], folder: Path, check: bool) -> list[str]:
    """Generate each exercise in a temporary course; write it, or with ``check`` compare it.

    Returns what is out of date (nothing unless ``check``).
    """
    stale = []
    with tempfile.TemporaryDirectory(prefix="fitlab-course-") as tmp:
        course = new_course(Path(tmp), folder)
        for name in names:
            generated = generate(course, name)
            if not check:
                write(name, generated, folder)
            elif found := difference(folder / RELEASE / name / f"{name}.ipynb", generated):
                stale.append(found)
    return stale


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="assignments", description=__doc__.split("\n\n")[0].removesuffix(".")
    )
    parser.add_argument("--only", nargs="+", metavar="NAME", help="only these exercises")
    parser.add_argument(
        "--check", action="store_true", help="write nothing; fail if a student version is stale"
    )
    parser.add_argument(
        "--notebooks", type=Path, default=NOTEBOOKS, help="the course (default: the repo's)"
    )
    args = parser.parse_args(argv)
    names = exercises(args.notebooks)
    try:
        if unknown := sorted(set(args.only or ()) - set(names)):
            raise workbook.Refused(
                f"no exercise named {', '.join(unknown)} in {args.notebooks / SOURCES}; "
                f"choose from: {', '.join(names)}"
            )
        if not args.check:
            workbook.check_profile()
        stale = run(args.only or names, args.notebooks, args.check)
    except workbook.Refused as refusal:
        print(f"assignments: {refusal}", file=sys.stderr)
        return 2
    except (workbook.NotebookFailed, NbgraderFailed) as failure:
        print(f"assignments: {failure}", file=sys.stderr)
        return 1
    for found in stale:
        print(f"assignments: out of date: {found}; run `make assignments`", file=sys.stderr)
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
