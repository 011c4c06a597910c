"""``python -m fitlab``: see :mod:`fitlab.cli`."""

import sys

from fitlab.cli import main

sys.exit(main())
