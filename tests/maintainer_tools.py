"""The maintainer's scripts under ``tools/``, imported as modules for the tests.

They are scripts, not part of the package. Running one puts its own folder on
``sys.path`` (``assignments.py`` imports ``workbook.py``); importing them here
does the same, once.
"""

import sys
from pathlib import Path

TOOLS = Path(__file__).resolve().parent.parent / "tools"

sys.path.insert(0, str(TOOLS))
import assignments  # noqa: E402
import workbook  # noqa: E402

sys.path.remove(str(TOOLS))

__all__ = ["assignments", "workbook"]
