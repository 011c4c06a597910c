"""What a notebook that trained with LivePlot shows once exported to HTML.

A reader of ``jupyter nbconvert --to html`` gets no live widgets, so the run's
record must be plain outputs: the final figure, and under it the final status
line (``epoch 2 / 2 · … · done · … img/s``), each once. nbclient runs
``tests/notebooks/live_two_epochs.ipynb`` as ``nbconvert --execute`` does,
keeping the widget state, and the notebook is exported twice: with that state
(the export embeds the widget views, which need the widget manager's
JavaScript from a CDN: offline they stay blank) and without it, as JupyterLab
saves a notebook by default (a widget output then shows its ``text/plain``).
Only what a browser shows is read: the text outside ``<script>`` and
``<style>``, and the images.
"""

from __future__ import annotations

import copy
import os
from html.parser import HTMLParser
from pathlib import Path

import nbformat
import pytest

NOTEBOOK = Path(__file__).parent / "notebooks" / "live_two_epochs.ipynb"


class _Page(HTMLParser):
    """The shown content of an HTML page, in order: text lines and image sources."""

    def __init__(self, html: str):
        super().__init__()
        self.shown: list[str] = []
        self._hidden_depth = 0
        self.feed(html)
        self.close()

    def handle_starttag(self, tag, attrs):
        if tag in ("script", "style"):
            self._hidden_depth += 1
        elif tag == "img":
            self.shown.append(f"<img {dict(attrs).get('src', '')}>")

    def handle_endtag(self, tag):
        if tag in ("script", "style"):
            self._hidden_depth -= 1

    def handle_data(self, data):
        if not self._hidden_depth:
            self.shown.extend(line.strip() for line in data.splitlines() if line.strip())


@pytest.fixture(scope="module")
def executed(tmp_path_factory) -> nbformat.NotebookNode:
    from nbclient import NotebookClient

    notebook = nbformat.read(NOTEBOOK, as_version=4)
    env = {k: v for k, v in os.environ.items() if k != "FITLAB_LIVE"}  # a kernel: widgets mode
    folder = tmp_path_factory.mktemp("run")
    NotebookClient(notebook, timeout=240, resources={"metadata": {"path": str(folder)}}).execute(
        env=env
    )
    assert "widgets" in notebook.metadata  # nbclient kept the widget state
    return notebook


@pytest.mark.slow
@pytest.mark.timeout(300)
@pytest.mark.parametrize("widget_state", [True, False], ids=["widget-state", "no-widget-state"])
def test_html_export_shows_the_final_figure_and_status_line(executed, widget_state):
    from nbconvert import HTMLExporter

    notebook = copy.deepcopy(executed)
    if not widget_state:
        del notebook.metadata["widgets"]
    body, _ = HTMLExporter().from_notebook_node(notebook)
    shown = _Page(body).shown
    fit_cell = next(c for c in notebook.cells if "model.fit(" in c.source)
    figure = next(o.data["image/png"] for o in fit_cell.outputs if "image/png" in o.get("data", {}))

    statuses = [i for i, line in enumerate(shown) if line.startswith("epoch 2 / 2 · ")]
    assert len(statuses) == 1, [shown[i] for i in statuses]  # shown once
    status = shown[statuses[0]]
    assert " · done · " in status and status.endswith(" img/s"), status
    # the figure, then the status line under it
    assert shown.index(f"<img data:image/png;base64,{figure}>") < statuses[0]
    assert body.count(figure) == 1  # not a second copy in the saved state of the live image
    assert "LivePlot(total_epochs=" not in body
