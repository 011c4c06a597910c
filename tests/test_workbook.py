"""`make workbook` (tools/workbook.py): run notebooks in the full profile and store what they print.

Each test runs the script on tiny notebooks in a temporary folder (a kernel start
or two each); the load average is scripted.
"""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
import pytest
from maintainer_tools import workbook

from fitlab.config import PROFILE_ENV

QUIET = (0.1, 0.2, 0.3)


@pytest.fixture(autouse=True)
def quiet_machine_no_profile(monkeypatch):
    """A quiet two-core machine, and no FITLAB_PROFILE (`make test` sets smoke)."""
    monkeypatch.delenv(PROFILE_ENV, raising=False)
    monkeypatch.setattr(os, "getloadavg", lambda: QUIET)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)


def notebook(path: Path, *sources: str) -> Path:
    """Write a notebook with a markdown cell, then one code cell per source."""
    cells = [nbformat.v4.new_markdown_cell("# A notebook")]
    cells += [nbformat.v4.new_code_cell(source) for source in sources]
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nbformat.v4.new_notebook(cells=cells), path)
    return path


def run(folder: Path, *args: str) -> int:
    return workbook.main(["--notebooks", str(folder), *args])


def first_output(path: Path) -> str:
    return nbformat.read(path, as_version=4).cells[1].outputs[0].text


def test_runs_in_the_full_profile_in_the_notebooks_folder_and_stores_outputs(tmp_path, capsys):
    path = notebook(
        tmp_path / "sub" / "01_a.ipynb",
        "import os, pathlib\nprint(os.environ['FITLAB_PROFILE'], pathlib.Path.cwd().name)",
    )
    inode = path.stat().st_ino
    assert run(tmp_path / "sub") == 0
    assert first_output(path) == "full sub\n"
    meta = nbformat.read(path, as_version=4).metadata["fitlab"]["workbook"]
    assert meta["profile"] == "full" and meta["load_before"] == list(QUIET) and meta["seconds"] > 0
    assert {"date", "load_after"} <= meta.keys()
    assert path.stat().st_ino != inode  # replaced by a rename, not rewritten in place
    assert [p.name for p in path.parent.iterdir()] == ["01_a.ipynb"]  # no temp file left
    table = capsys.readouterr().out
    assert "01_a.ipynb" in table and "0.10 → 0.10" in table


def test_a_cell_that_raises_stops_the_run_and_leaves_its_notebook_untouched(tmp_path, capsys):
    ok = notebook(tmp_path / "01_ok.ipynb", "print('fine')")
    bad = notebook(tmp_path / "02_bad.ipynb", "x = 1", "raise ValueError('boom')")
    after = notebook(tmp_path / "03_after.ipynb", "print('never')")
    bad_bytes, after_bytes = bad.read_bytes(), after.read_bytes()
    assert run(tmp_path) == 1
    assert bad.read_bytes() == bad_bytes and after.read_bytes() == after_bytes
    assert first_output(ok) == "fine\n"  # run before the failure: kept
    error = capsys.readouterr().err
    assert "02_bad.ipynb, cell 2 (\"raise ValueError('boom')\") raised ValueError: boom" in error
    assert "left as it was" in error and "--only 02_bad 03_after" in error


def test_the_order_is_main_notebooks_then_exercises_then_solutions(tmp_path):
    for name in ["solutions/ex1/ex1.ipynb", "exercises/ex1/ex1.ipynb", "02_b.ipynb", "01_a.ipynb"]:
        notebook(tmp_path / name)
    (tmp_path / "scratch.ipynb").write_text("{}")  # not a workbook notebook
    notebook(tmp_path / "submitted" / "ada" / "ex1" / "ex1.ipynb")  # a student's, not ours
    order = workbook.notebooks_in_order(tmp_path)
    names = [p.relative_to(tmp_path).as_posix() for p in order]
    assert names == [
        "01_a.ipynb", "02_b.ipynb", "exercises/ex1/ex1.ipynb", "solutions/ex1/ex1.ipynb"
    ]  # fmt: skip
    chosen = workbook.select(order, tmp_path, ["ex1", "01_a.ipynb"])
    assert [p.relative_to(tmp_path).as_posix() for p in chosen] == [names[0], *names[2:]]


def test_a_cell_tagged_raises_exception_may_raise_and_its_error_is_stored(tmp_path):
    path = notebook(tmp_path / "exercises" / "ex1" / "ex1.ipynb", "raise ValueError('blank')")
    tagged = nbformat.read(path, as_version=4)
    tagged.cells[1].metadata["tags"] = ["raises-exception"]
    nbformat.write(tagged, path)
    assert run(tmp_path) == 0
    [error] = nbformat.read(path, as_version=4).cells[1].outputs
    assert (error.ename, error.evalue) == ("ValueError", "blank")


def test_an_unknown_name_is_one_line_and_exit_status_2(tmp_path, capsys):
    notebook(tmp_path / "01_a.ipynb", "print(1)")
    assert run(tmp_path, "--only", "01_b") == 2
    error = capsys.readouterr().err
    assert error == f"workbook: no notebook named '01_b' in {tmp_path}; choose from: 01_a\n"


def test_a_busy_machine_is_refused_unless_anyway(tmp_path, monkeypatch, capsys):
    path = notebook(tmp_path / "01_a.ipynb", "print(1)")
    before = path.read_bytes()
    monkeypatch.setattr(os, "getloadavg", lambda: (1.6, 1.0, 0.5))  # 2 cores: the limit is 1.5
    assert run(tmp_path) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "load average is 1.60" in error and "--anyway" in error
    assert path.read_bytes() == before
    assert run(tmp_path, "--max-load", "2") == 0
    path.write_bytes(before)
    assert run(tmp_path, "--anyway") == 0
    assert "warning: the 1-minute load average is 1.60" in capsys.readouterr().err
    assert first_output(path) == "1\n"


def test_the_smoke_profile_is_refused(tmp_path, monkeypatch, capsys):
    path = notebook(tmp_path / "01_a.ipynb", "print(1)")
    before = path.read_bytes()
    monkeypatch.setenv(PROFILE_ENV, "smoke")
    assert run(tmp_path) == 2
    assert capsys.readouterr().err.startswith("workbook: FITLAB_PROFILE=smoke: the stored outputs")
    assert path.read_bytes() == before
