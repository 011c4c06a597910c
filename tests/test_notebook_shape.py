"""What a student reads around the lessons: no test markers, working links, the way on.

Every notebook says first with what and where it ran, keeps nbval's markers in
cell tags (students read the sources), links only to files that exist, and each
main notebook ends by pointing to its exercises and the next notebook; the
table of contents in ``notebooks/README.md`` lists them all.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from maintainer_tools import workbook

NOTEBOOKS_DIR = Path(__file__).resolve().parent.parent / "notebooks"
MAIN = sorted(NOTEBOOKS_DIR.glob("0*.ipynb"))
EXERCISES = sorted(NOTEBOOKS_DIR.glob("exercises/*/*.ipynb"))  # nbgrader's <exercise>/<notebook>
ALL = workbook.notebooks_in_order(NOTEBOOKS_DIR)  # lessons, exercises, their sources
LINK = re.compile(r"\]\(([^)\s]+)\)")


def cells(path: Path) -> list[dict]:
    return json.loads(path.read_text())["cells"]


def source(cell: dict) -> str:
    return "".join(cell["source"])


def links(text: str) -> list[str]:
    """Relative link targets in markdown, without their #anchors."""
    return [t.split("#")[0] for t in LINK.findall(text) if "://" not in t and t[0] != "#"]


def test_there_are_five_exercises_and_their_sources():
    assert len(EXERCISES) == 5
    assert [p.relative_to(NOTEBOOKS_DIR / "exercises") for p in EXERCISES] == [
        p.relative_to(NOTEBOOKS_DIR / "solutions") for p in ALL[len(MAIN) + len(EXERCISES) :]
    ]


@pytest.mark.parametrize("path", ALL, ids=lambda p: str(p.relative_to(NOTEBOOKS_DIR)))
def test_no_test_markers_in_cell_sources(path):
    marked = [i for i, c in enumerate(cells(path)) if re.search(r"#\s*NBVAL", source(c))]
    assert marked == [], f"{path.name}: cells {marked} carry nbval markers; use cell tags"


@pytest.mark.parametrize("path", MAIN, ids=lambda p: p.name)
def test_the_first_code_cell_says_what_and_where_it_ran(path):
    first = next(c for c in cells(path) if c["cell_type"] == "code")
    assert "fitlab.show_versions()" in source(first)


@pytest.mark.parametrize(
    "path", [*ALL, NOTEBOOKS_DIR / "README.md"], ids=lambda p: str(p.relative_to(NOTEBOOKS_DIR))
)
def test_every_relative_link_points_to_a_file(path):
    if path.suffix == ".md":
        texts = [path.read_text()]
    else:
        texts = [source(c) for c in cells(path) if c["cell_type"] == "markdown"]
    broken = [t for text in texts for t in links(text) if not (path.parent / t).exists()]
    assert broken == [], f"{path.name} links to missing files: {broken}"


@pytest.mark.parametrize("index", range(len(MAIN)), ids=lambda i: MAIN[i].name)
def test_each_notebook_ends_with_its_exercises_and_the_way_on(index):
    last = source(cells(MAIN[index])[-1])
    targets = links(last)
    assert "README.md" in targets, "the last cell links back to the table of contents"
    if index + 1 < len(MAIN):
        assert MAIN[index + 1].name in targets, "the last cell links to the next notebook"
    assert "exercise" in last.lower(), "the last cell says which exercise goes with it"


def test_the_table_of_contents_lists_every_notebook_and_exercise():
    listed = set(links((NOTEBOOKS_DIR / "README.md").read_text()))
    expected = {p.relative_to(NOTEBOOKS_DIR).as_posix() for p in [*MAIN, *EXERCISES]}
    assert expected - listed == set()
