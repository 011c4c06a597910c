"""The live-plot notebook under strict nbval.

``tests/notebooks/live_two_epochs.ipynb`` is stored with the outputs of a run.
Strict nbval (``pytest --nbval``, not ``--nbval-lax``) reruns it and compares
every output: the widget output (nbval skips its model id; its text is fixed),
the final figure as a plain image (nbval skips the PNG; its text is fixed),
the final status line and the printed checks. Only what cannot be the same
twice is masked: the status line's elapsed time and images/s. What an HTML
export of the notebook shows is ``test_html_export.py``'s.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

NOTEBOOK = Path(__file__).parent / "notebooks" / "live_two_epochs.ipynb"
# nbval's sanitizer format: the status line's numbers that differ per run
STATUS_SANITIZER = r"""regex: elapsed \d+(?::\d\d)+
replace: elapsed H:MM
regex: \d[\d,]*(?:\.\d+)? (img|batches)/s
replace: N \1/s
"""


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_notebook_passes_strict_nbval(tmp_path):
    sanitizer = tmp_path / "status.cfg"
    sanitizer.write_text(STATUS_SANITIZER)
    env = {k: v for k, v in os.environ.items() if k != "FITLAB_LIVE"}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "--nbval", str(NOTEBOOK), "-q", "-p", "no:cacheprovider",
         "--nbval-sanitize-with", str(sanitizer), "--rootdir", str(tmp_path)],
        capture_output=True, text=True, env=env, timeout=280,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "5 passed" in result.stdout, result.stdout[-2000:]  # every code cell, none skipped
