"""Every run-dependent figure in a notebook's prose is one that its own code cells printed.

A student reads "10 epochs in 806 s" in the text and the output above it says
927 s: the prose was written for another run. So each figure the markdown of a
notebook states must appear in a stored output of that same notebook (stream
text, ``text/*`` data, errors, the stored widget state); prose that must hold
for every run states the conclusion and leaves the figure to the output.

What counts as a figure, in prose (code spans, fenced code, LaTeX, links'
targets, HTML tags and the numbering of headings are not prose):

* a number with a decimal point or thousands separators: ``0.77``, ``1,360``;
* a number with a percent sign, a ratio sign or a unit of time, throughput or
  size: ``38 %``, ``3.3×``, ``10–15 s``, ``82 images/s``, ``16 MiB``;
* a number after a word of approximation: ``about 26``, ``under 3``, ``~4``.

Plain integers ("17 classes", "notebook 5", "batch 32"), dimensions
(``64×64``, ``3×3``), fractions (``1/3``) and version numbers ("TensorFlow
2.16") are not figures. A figure is backed when some number in the outputs
rounds to it at the precision the prose gives (``3.3`` by ``3.35``, ``72 %``
by ``72.5%`` or by a fraction ``0.725``, ``1,360`` by ``1360``). Setup
constants, dataset facts and arithmetic are allowed by name, with the reason.
"""

from __future__ import annotations

import json
import re
from decimal import Decimal
from pathlib import Path
from typing import NamedTuple

import pytest
from maintainer_tools import workbook

NOTEBOOKS_DIR = Path(__file__).resolve().parent.parent / "notebooks"
NOTEBOOKS = workbook.notebooks_in_order(NOTEBOOKS_DIR)

# Figures that do not depend on a run, as the prose writes them: {figure: why}.
ALLOWED_EVERYWHERE = {
    "1,360": "Flowers-17 has 1,360 images (a dataset fact)",
    "1,020": "the training split: 60 images × 17 classes (a dataset fact)",
    "12,288": "one image's values: 64 × 64 × 3 (arithmetic)",
    "0.77": "the accuracy the tutorial reported (a tutorial constant)",
    "0.01": "the tutorial's learning rate (a tutorial constant)",
    "0.9": "the tutorial's SGD momentum, and the batch-norm momentum notebook 2 compares",
    "0.99": "Keras's default batch-norm momentum (a Keras constant)",
}
# Per notebook (its path under notebooks/): {figure: why}.
ALLOWED = {
    "02_fit.ipynb": {
        "12 KiB": "12,288 bytes (arithmetic)",
        "14": "the validation loss the tutorial's plot showed after epoch 1 (a tutorial constant)",
    },
    "06_side_by_side.ipynb": {
        "0.906": "label smoothing 0.1 over 17 classes: 1 − 0.1 + 0.1/17 (arithmetic)",
        "0.006": "label smoothing 0.1 over 17 classes: 0.1/17 (arithmetic)",
        "20 %": "carve_validation's share of each class (a setup constant)",
    },
    "07_multi_worker.ipynb": {
        "8.5": "MiniVGGNet's weights at 64×64 in millions, 8,466,225 (a fact of the model)",
        "34 MB": "8.5 million float32 weights (arithmetic)",
    },
}

NUMBER = r"[0-9]{1,3}(?:,[0-9]{3})+(?:\.[0-9]+)?|[0-9]+(?:\.[0-9]+)?"
# A number standing alone: not inside a word (float32, ex5), a version (3.15.1), a list
# of values (197,189) or a fraction (1/3).
PROSE_NUMBER = re.compile(rf"(?<![\w.,/])(?:{NUMBER})(?![0-9]|[.,/][0-9])")
OUTPUT_NUMBER = re.compile(rf"(?<![0-9.])(?:{NUMBER})")
RANGE_END = re.compile(rf"^\s*[–-]\s*(?:{NUMBER})")
RANGE_START = re.compile(rf"(?:{NUMBER})\s*[–-]\s*$")
UNITS = {  # kind of figure: how its unit is written
    "percent": r"%|per\s?cent\b",
    "ratio": r"×(?!\s*[0-9])|x(?![\w×])",
    "time": r"(?:ms|µs|s|sec|seconds?|min|minutes?|h|hours?)\b(?!/)",  # not 3s/step
    "rate": r"(?:images?|img|steps?|batches|rows)\s*(?:/\s*s\b|a second|per second)",
    "size": r"(?:[KMGT]i?B|bytes)\b",
}
UNIT = re.compile(r"^\s*(?:" + "|".join(f"(?P<{k}>{v})" for k, v in UNITS.items()) + ")")
# Times in seconds and sizes in bytes, so that "7.5 min" is backed by "447 s".
SCALES = {
    "µs": Decimal("0.000001"),
    "ms": Decimal("0.001"),
    **dict.fromkeys(["min", "minute", "minutes"], Decimal(60)),
    **dict.fromkeys(["h", "hour", "hours"], Decimal(3600)),
    **{f"{p}B": Decimal(1000) ** (i + 1) for i, p in enumerate("KMGT")},
    **{f"{p}iB": Decimal(1024) ** (i + 1) for i, p in enumerate("KMGT")},
}
APPROXIMATELY = re.compile(
    r"(?:\b(?:about|roughly|around|nearly|almost|approximately|over|under)\s+|[~≈]\s*)$",
    re.IGNORECASE,
)
DIMENSION = re.compile(r"[0-9]\s*×\s*$")
VERSION = re.compile(
    r"\b(?:keras|tensorflow|tf_keras|python|jax|numpy)\s*(?:[0-9]+\s*\(\s*)?(?:≥|>=)?\s*$",
    re.IGNORECASE,
)
NOT_PROSE = [
    re.compile(r"^ {0,3}(```|~~~).*?^ {0,3}\1", re.MULTILINE | re.DOTALL),  # fenced code
    re.compile(r"(`+).+?\1", re.DOTALL),  # inline code
    re.compile(r"\$\$.+?\$\$|\$[^$\n]+\$", re.DOTALL),  # LaTeX
    re.compile(r"(?<=\])\([^)\s]*(?:\s+\"[^\"]*\")?\)"),  # a link's target
    re.compile(r"<https?://[^>]*>|https?://\S+"),  # bare links
    re.compile(r"<[^>\n]+>"),  # HTML tags
]
HEADING_NUMBER = re.compile(r"^( {0,3}#{1,6}\s*)([0-9]+(?:\.[0-9]+)*)", re.MULTILINE)
SENTENCE_END = re.compile(r"[.!?](?=\s)|\n\s*\n|\n\s*[*-]\s|\n#")
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"


def _mask(text: str, start: int, end: int) -> str:
    """Blank text[start:end] (newlines kept), so positions still point into the source."""
    return text[:start] + re.sub(r"[^\n]", " ", text[start:end]) + text[end:]


def prose_of(source: str) -> str:
    """The markdown ``source`` with everything but prose blanked out, positions kept."""
    text = source
    for pattern in NOT_PROSE:
        for match in reversed(list(pattern.finditer(text))):
            text = _mask(text, *match.span())
    for match in reversed(list(HEADING_NUMBER.finditer(text))):
        text = _mask(text, *match.span(2))
    return text


class Unit(NamedTuple):
    kind: str | None  # a key of UNITS, or None for a bare number
    scale: Decimal  # in seconds or bytes for times and sizes, else 1
    end: int  # where it ends in the text after the number


def unit_at(after: str) -> Unit:
    """The unit at the start of ``after``, the text that follows a number."""
    match = UNIT.match(after)
    if not match:
        return Unit(None, Decimal(1), 0)
    return Unit(match.lastgroup, SCALES.get(match.group().strip(), Decimal(1)), match.end())


class Figure(NamedTuple):
    number: str  # as written: "1,360", "10" (one end of "10–15 s")
    text: str  # the figure as written, with its range and unit: "10–15 s"
    unit: Unit
    sentence: str  # the sentence around it, on one line


def figures_in(source: str) -> list[Figure]:
    """The figures the markdown ``source`` states, in order."""
    text = prose_of(source)
    found = []
    for match in PROSE_NUMBER.finditer(text):
        number, start, end = match.group(), match.start(), match.end()
        before, after, first, last = text[:start], text[end:], start, end
        if range_end := RANGE_END.match(after):  # "10–15 s": the unit follows the range
            after, last = after[range_end.end() :], end + range_end.end()
        if range_start := RANGE_START.search(before):
            before, first = before[: range_start.start()], range_start.start()
        unit = unit_at(after)
        if VERSION.search(before) or DIMENSION.search(text[:start]):
            continue  # TensorFlow 2.16; the second side of 64 × 64
        if unit.kind == "ratio" and DIMENSION.search(before):
            continue
        if unit.kind or "." in number or "," in number or APPROXIMATELY.search(before):
            figure = " ".join(text[first : last + unit.end].split())
            found.append(Figure(number, figure, unit, _sentence(source, start, end)))
    return found


def _sentence(source: str, start: int, end: int, width: int = 200) -> str:
    """The sentence of ``source`` around ``source[start:end]``, on one line, at most ``width``."""
    head = max((m.end() for m in SENTENCE_END.finditer(source, 0, start)), default=0)
    tail = next((m.end() for m in SENTENCE_END.finditer(source, end)), len(source))
    sentence = " ".join(source[head:tail].split())
    if len(sentence) > width:
        first = max(0, sentence.find(source[start:end]) - width // 2)
        sentence = ("…" if first else "") + sentence[first : first + width] + "…"
    return sentence


def outputs_text(notebook: dict) -> str:
    """Every stored output of ``notebook`` as text, the stored widget state included."""
    parts = []
    for cell in notebook["cells"]:
        for output in cell.get("outputs", []):
            parts += [output.get("text", ""), output.get("ename", ""), output.get("evalue", "")]
            parts += output.get("traceback", [])
            data = output.get("data", {})
            parts += [value for mime, value in data.items() if mime.startswith("text/")]
    parts += widget_texts(notebook)
    return ANSI.sub("", "\n".join("".join(p) if isinstance(p, list) else p for p in parts))


def widget_texts(notebook: dict) -> list[str]:
    """The texts the stored widgets show (a status line, a label), not their layout or images."""
    stored = notebook.get("metadata", {}).get("widgets", {})
    models = stored.get(WIDGET_STATE, {}).get("state", {})
    return [
        text
        for model in models.values()
        for key in ("value", "description")
        if isinstance(text := model.get("state", {}).get(key), str)
    ]


def numbers_in(text: str) -> set[tuple[Decimal, str | None]]:
    """Every number in ``text``, scaled by its unit, with the unit's kind; "1,360" is 1360."""
    found = set()
    for match in OUTPUT_NUMBER.finditer(text):
        unit = unit_at(text[match.end() :])
        found.add((Decimal(match.group().replace(",", "")) * unit.scale, unit.kind))
    return found


def is_backed(figure: Figure, printed: set[tuple[Decimal, str | None]]) -> bool:
    """Whether a printed number rounds to the figure at its precision, with a unit of its kind.

    A percentage is also backed by a fraction (0.381 for 38 %), a ratio by a bare
    number; a bare figure by any number.
    """
    kind, scale = figure.unit.kind, figure.unit.scale
    value = Decimal(figure.number.replace(",", "")) * scale
    half_unit = scale * Decimal(5) / Decimal(10) ** (len(figure.number.partition(".")[2]) + 1)
    candidates = {x for x, printed_kind in printed if kind in (None, printed_kind)}
    if kind == "percent":
        candidates |= {100 * x for x, printed_kind in printed if printed_kind is None and x <= 1}
    if kind == "ratio":
        candidates |= {x for x, printed_kind in printed if printed_kind is None}
    return any(abs(x - value) <= half_unit for x in candidates)


def unbacked_figures(path: Path) -> list[str]:
    """Lines ``cell N: FIGURE in “SENTENCE”`` for each figure no output of ``path`` backs."""
    notebook = json.loads(path.read_text(encoding="utf-8"))
    printed = numbers_in(outputs_text(notebook))
    allowed = ALLOWED_EVERYWHERE | ALLOWED.get(_name(path), {})
    lines = []
    for index, cell in enumerate(notebook["cells"]):
        if cell["cell_type"] != "markdown":
            continue
        for figure in figures_in("".join(cell["source"])):
            line = f"cell {index}: {figure.text!r} in “{figure.sentence}”"
            if figure.text not in allowed and not is_backed(figure, printed) and line not in lines:
                lines.append(line)  # a range is listed once, if either end is not printed
    return lines


def _name(path: Path) -> str:
    """The notebook's path under notebooks/, as ALLOWED names it."""
    inside = NOTEBOOKS_DIR in path.parents
    return path.relative_to(NOTEBOOKS_DIR).as_posix() if inside else path.name


# ------------------------------------------------------------------ the rule itself


def test_figures_are_decimals_percentages_ratios_units_and_approximations():
    prose = (
        "It reached 0.668 after 75 epochs in 73.4 min, 1,360 images at 82 images/s; "
        "the CSV is 3.3× larger, 38 % waited, about 26 with 0.99, each epoch 10–15 s."
    )
    assert [figure.text for figure in figures_in(prose)] == [
        "0.668", "73.4 min", "1,360", "82 images/s", "3.3×", "38 %", "26", "0.99",
        "10–15 s", "10–15 s",
    ]  # fmt: skip


def test_plain_integers_code_links_headings_dimensions_and_versions_are_not_figures():
    prose = (
        "# 3 · The 17 classes\n\nNotebook 5 trains `0.77` of 64×64 (64 × 64 × 3) images, "
        "step 3 of [the docs](https://example.com/v2.5/x.html), about 1/3 of them, "
        "on TensorFlow 2.21 and Keras 3 (3.15).\n\n```python\nlr = 0.01\n```\n$x = 0.5$"
    )
    assert figures_in(prose) == []


@pytest.mark.parametrize(
    "prose, printed, backed",
    [
        ("3.3× larger", "ratio 3.35×", True),  # rounded
        ("3.4× larger", "ratio 3.349×", False),
        ("72 % of it", "share 72.5%", True),
        ("38 % of it", "accuracy 0.381", True),  # a fraction
        ("0.38 of it", "accuracy 0.381", True),
        ("0.39 of it", "accuracy 0.381", False),
        ("all 1,360 of them", "1360 images", True),
        ("in 7.5 min", "done in 447 s", True),  # another unit
        ("in 806 s", "10 epochs in 927 s", False),
        ("in 10 s", "step 10 of 32", False),  # a number, but not a time
        ("at 82 images/s", "82 images a second", True),
        ("about 26 at first", "val_loss 26.04", True),
    ],
)
def test_a_figure_is_backed_by_a_printed_number_that_rounds_to_it(prose, printed, backed):
    [figure] = figures_in(prose)
    assert is_backed(figure, numbers_in(printed)) is backed


def test_the_stored_widget_state_counts_as_output_but_not_its_images():
    state = {
        "a": {"state": {"value": "<b>epoch 3/10</b> · 82 images/s"}},
        "b": {"state": {"value": "", "layout": "IPY_MODEL_c"}, "buffers": [{"data": "OTk5"}]},
        "c": {"state": {"width": "806px"}},
    }
    notebook = {"cells": [], "metadata": {"widgets": {WIDGET_STATE: {"state": state}}}}
    printed = numbers_in(outputs_text(notebook))
    [seen] = figures_in("at 82 images/s")
    [not_seen] = figures_in("about 806 of them")
    assert is_backed(seen, printed) and not is_backed(not_seen, printed)


def test_the_failure_names_the_cell_the_figure_and_its_sentence(tmp_path):
    notebook = {
        "cells": [
            {"cell_type": "code", "source": "", "outputs": [{"text": "done in 927 s"}]},
            {"cell_type": "markdown", "source": "It learned.\nThe run took 806 s. It is done."},
        ],
        "metadata": {},
    }
    path = tmp_path / "x.ipynb"
    path.write_text(json.dumps(notebook))
    assert unbacked_figures(path) == ["cell 1: '806 s' in “The run took 806 s.”"]


# ------------------------------------------------------------------ the notebooks


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_name)
def test_every_figure_in_the_prose_is_printed_by_the_notebook(path):
    unbacked = unbacked_figures(path)
    assert not unbacked, (
        f"{path.relative_to(NOTEBOOKS_DIR.parent)}: {len(unbacked)} figure(s) in the prose that "
        "no stored output of this notebook prints:\n  "
        + "\n  ".join(unbacked)
        + "\nPrint the figure from a code cell and re-run the notebook, or state what holds "
        "across runs; a setup constant, dataset fact or arithmetic goes in ALLOWED with why."
    )


def test_every_allowed_figure_is_stated_where_it_is_allowed():
    stated = {
        _name(path): {
            figure.text
            for cell in json.loads(path.read_text(encoding="utf-8"))["cells"]
            if cell["cell_type"] == "markdown"
            for figure in figures_in("".join(cell["source"]))
        }
        for path in NOTEBOOKS
    }
    stale = [f"{name}: {f}" for name, allowed in ALLOWED.items() for f in allowed]
    stale = [e for e in stale if e.split(": ", 1)[1] not in stated.get(e.split(": ", 1)[0], ())]
    stale += [f for f in ALLOWED_EVERYWHERE if not any(f in texts for texts in stated.values())]
    assert not stale, f"allowed, but no notebook states them (remove them from ALLOWED): {stale}"
