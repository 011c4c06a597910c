"""The live-plot notebook under strict nbval, and what an HTML export of it shows.

``tests/notebooks/live_two_epochs.ipynb`` is stored with the outputs of a run.
Strict nbval (``pytest --nbval``, not ``--nbval-lax``) reruns it and compares
every output: the widget output (nbval skips its model id; its text is fixed),
the final figure as a plain image (nbval skips the PNG; its text is fixed) and
the printed checks. The export test needs no kernel: it converts the stored
notebook, as a reader would after a run.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

NOTEBOOK = Path(__file__).parent / "notebooks" / "live_two_epochs.ipynb"


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_notebook_passes_strict_nbval(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "FITLAB_LIVE"}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "--nbval", str(NOTEBOOK), "-q", "-p", "no:cacheprovider",
         "--rootdir", str(tmp_path)],
        capture_output=True, text=True, env=env, timeout=280,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "5 passed" in result.stdout, result.stdout[-2000:]  # every code cell, none skipped


def test_html_export_shows_the_final_figure():
    import nbformat
    from nbconvert import HTMLExporter

    notebook = nbformat.read(NOTEBOOK, as_version=4)
    fit_cell = next(c for c in notebook.cells if "LivePlot(" in c.source and "fit(" in c.source)
    kinds = [sorted(output.get("data", {})) for output in fit_cell.outputs]
    assert kinds == [
        ["application/vnd.jupyter.widget-view+json", "text/plain"],
        ["image/png", "text/plain"],
    ]
    body, _ = HTMLExporter().from_notebook_node(notebook)
    # the live plot's final figure, and plot_history's figure shown as a cell's value
    assert len(re.findall(r'<img [^>]*src="data:image/png;base64,', body)) == 2
    assert fit_cell.outputs[1]["data"]["image/png"][:40] in body
    history_cell = notebook.cells[-1]
    assert history_cell.source == "plot_history(history)"
    assert sorted(history_cell.outputs[0]["data"]) == ["image/png", "text/plain"]
