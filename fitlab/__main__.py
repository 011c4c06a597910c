"""``python -m fitlab``: see :mod:`fitlab.cli`."""

import sys

from fitlab.cli import main

if __name__ == "__main__":
    sys.exit(main())
