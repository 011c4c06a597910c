"""What every benchmark prints about the machine it ran on.

Examples
--------
>>> load_text((0.5, 1.25, 2.0))
'0.50 1.25 2.00'
"""

from __future__ import annotations

import platform
from collections.abc import Iterable


def cpu_name() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux, else what ``platform`` knows).

    Examples
    --------
    >>> isinstance(cpu_name(), str)
    True
    """
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def load_text(values: Iterable[float]) -> str:
    """A load average (``os.getloadavg()``) as the tables print it.

    Examples
    --------
    >>> load_text((1.0, 0.333, 2.5))
    '1.00 0.33 2.50'
    """
    return " ".join(f"{x:.2f}" for x in values)
