"""What the tests that kill a launcher share: its child processes, and whether one still runs."""

from __future__ import annotations

import time
from pathlib import Path


def children(pid: int) -> list[int]:
    """The pids of process ``pid``'s children, from Linux's ``/proc`` (none elsewhere)."""
    tasks = Path(f"/proc/{pid}/task")
    found = []
    for task in tasks.iterdir() if tasks.exists() else ():
        listed = task / "children"
        found += [int(c) for c in listed.read_text().split()] if listed.exists() else []
    return found


def alive(pid: int) -> bool:
    """Whether process ``pid`` still runs (a zombie, dead but not yet reaped, does not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(") ")[-1][0]
    except OSError:
        return False
    return state != "Z"


def survivors(pids: list[int], within: float) -> list[int]:
    """Those of ``pids`` still running after waiting up to ``within`` seconds for them to end."""
    deadline = time.monotonic() + within
    while any(alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    return [pid for pid in pids if alive(pid)]
