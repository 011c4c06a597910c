"""Every notebook has a text form under ``text/``, and each pair holds the same cells.

Contributors edit the text forms (MyST Markdown, paired by ``jupytext.toml``) and
reviewers read their diffs; the ``.ipynb`` keeps the stored outputs for readers and
nbval. A pair out of sync means that a review saw one lesson and students get another.
"""

from __future__ import annotations

import difflib
import json
from pathlib import Path

import jupytext
import nbformat
import pytest
from jupytext.config import load_jupytext_config
from jupytext.paired_paths import paired_paths
from maintainer_tools import workbook

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
TEXT = ROOT / "text"
TEXT_FORMAT = "md:myst"
# jupytext looks for its settings from a notebook's folder upwards: jupytext.toml at the root.
CONFIG = load_jupytext_config(str(NOTEBOOKS))
FIX = "Run `make text`: it syncs every pair, the file edited last winning."


def notebooks() -> list[Path]:
    """The workbook's notebooks, not the submissions of a teacher grading in ``notebooks/``."""
    return workbook.notebooks_in_order(NOTEBOOKS)


def text_forms() -> list[Path]:
    return sorted(TEXT.rglob("*.md"))


def text_form_of(notebook: Path) -> Path:
    return TEXT / notebook.relative_to(NOTEBOOKS).with_suffix(".md")


def notebook_of(text: Path) -> Path:
    return NOTEBOOKS / text.relative_to(TEXT).with_suffix(".ipynb")


def show(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def cells_in_text(notebook: nbformat.NotebookNode) -> list[tuple[str, str, dict]]:
    """Type, source and metadata of each cell, as far as a text form holds them."""
    as_text = jupytext.reads(
        jupytext.writes(notebook, fmt=TEXT_FORMAT, config=CONFIG), fmt=TEXT_FORMAT, config=CONFIG
    )
    return [(cell.cell_type, cell.source, dict(cell.metadata)) for cell in as_text.cells]


def first_difference(notebook: Path, text: Path) -> str | None:
    """Where a notebook and its text form part, with a short diff; None when in sync."""
    ours = cells_in_text(jupytext.read(notebook))
    theirs = cells_in_text(jupytext.read(text, fmt=TEXT_FORMAT, config=CONFIG))
    for index, (cell, text_cell) in enumerate(zip(ours, theirs, strict=False)):
        (kind, source, metadata), (text_kind, text_source, text_metadata) = cell, text_cell
        where = f"{show(text)} and {show(notebook)} differ at cell {index}"
        if kind != text_kind:
            return f"{where}: the text has a {text_kind} cell, the notebook a {kind} cell"
        if metadata != text_metadata:
            return f"{where}: the text has metadata {text_metadata}, the notebook {metadata}"
        if source != text_source:
            lines = source.splitlines(), text_source.splitlines(), show(notebook), show(text)
            diff = list(difflib.unified_diff(*lines, lineterm=""))
            return f"{where} ({kind}):\n" + "\n".join(diff[:20])
    if len(ours) != len(theirs):
        return f"{show(text)} has {len(theirs)} cells, {show(notebook)} {len(ours)}"
    return None


PAIRS = [nb for nb in notebooks() if text_form_of(nb).exists()]


def test_jupytext_pairs_each_notebook_with_its_text_form():
    assert CONFIG is not None, "jupytext finds no jupytext.toml above notebooks/"
    for name in ("02_fit", "solutions/ex1_csv_generator/ex1_csv_generator"):
        notebook = NOTEBOOKS / f"{name}.ipynb"
        pairs = paired_paths(str(notebook), "ipynb", CONFIG.default_formats(str(notebook)))
        paths = {path: fmt.get("format_name") for path, fmt in pairs}
        assert paths == {str(notebook): None, str(TEXT / f"{name}.md"): "myst"}


def test_every_notebook_has_its_text_form():
    missing = [show(text_form_of(nb)) for nb in notebooks() if not text_form_of(nb).exists()]
    assert missing == [], f"text forms missing: {missing}. {FIX}"


def test_every_text_form_has_its_notebook():
    orphans = [show(text) for text in text_forms() if not notebook_of(text).exists()]
    assert orphans == [], (
        f"text forms without a notebook: {orphans}. {FIX} It makes their notebooks "
        "(without outputs); or delete a text form whose notebook was removed."
    )


@pytest.mark.parametrize("notebook", PAIRS, ids=lambda p: str(p.relative_to(NOTEBOOKS)))
def test_notebook_and_text_form_hold_the_same_cells(notebook):
    difference = first_difference(notebook, text_form_of(notebook))
    one_pair = f"`.venv/bin/jupytext --sync {show(notebook)}` for this pair alone"
    assert difference is None, f"{difference}\n{FIX} Or {one_pair}."


def test_notebooks_carry_no_jupytext_metadata():
    # JupyterLab started above notebooks/, or a notebook made from a text form, adds it.
    marked = [show(p) for p in notebooks() if "jupytext" in json.loads(p.read_text())["metadata"]]
    assert marked == [], (
        f"{marked} carry jupytext's own metadata (the settings live in jupytext.toml); "
        """remove it with `.venv/bin/jupytext --update-metadata '{"jupytext": null}' NOTEBOOK`"""
    )


def lesson() -> nbformat.NotebookNode:
    code = nbformat.v4.new_code_cell(
        "x = 1\nx",
        metadata={"tags": ["nbval-ignore-output"], "execution": {"shell.execute_reply": "t0"}},
        outputs=[nbformat.v4.new_output("execute_result", {"text/plain": "1"}, execution_count=1)],
    )
    prose = nbformat.v4.new_markdown_cell("# Title\n\nProse.")
    return nbformat.v4.new_notebook(cells=[prose, code])


def write_pair(tmp_path: Path) -> tuple[Path, Path]:
    notebook, text = tmp_path / "lesson.ipynb", tmp_path / "lesson.md"
    nbformat.write(lesson(), notebook)
    jupytext.write(lesson(), text, fmt=TEXT_FORMAT, config=CONFIG)
    return notebook, text


def test_outputs_and_timestamps_belong_to_the_notebook_alone(tmp_path):
    notebook, text = write_pair(tmp_path)
    executed = lesson()
    executed.cells[1].outputs = []
    executed.cells[1].metadata["execution"] = {"shell.execute_reply": "t1"}
    nbformat.write(executed, notebook)
    assert "Prose." in text.read_text() and "nbval-ignore-output" in text.read_text()
    assert first_difference(notebook, text) is None


@pytest.mark.parametrize(
    "edit, expected",
    [
        (lambda t: t.replace("Prose.", "Prose, edited."), "+Prose, edited."),
        (lambda t: t.replace(":tags: [nbval-ignore-output]\n", ""), "the text has metadata {}"),
        (lambda t: t + "\n```{code-cell} ipython3\ny = 2\n```\n", "has 3 cells"),
    ],
    ids=["prose", "tag", "new cell"],
)
def test_a_text_form_edited_but_not_synced_is_caught(tmp_path, edit, expected):
    notebook, text = write_pair(tmp_path)
    text.write_text(edit(text.read_text()))
    difference = first_difference(notebook, text)
    assert difference is not None and expected in difference, difference
