"""Execute the workbook's notebooks on the real data and store their outputs (`make workbook`).

A maintainer's script, not part of the package. It runs every notebook under
``notebooks/`` in the full profile, in a fixed order (``0*.ipynb``, then the
exercises' student versions ``exercises/<exercise>/``, then their sources
``solutions/<exercise>/``, each sorted by name), each in a fresh ``python3``
kernel started in the notebook's folder, and stores the outputs
*and* the widget state, so that what the notebooks show is one run of the
package as it is. Each notebook prints the versions and the machine in its
first output itself (``fitlab.show_versions()``).

Timings in the outputs are only worth storing from a quiet machine: the script
refuses to start when the 1-minute load average is above ``--max-load``
(default 0.75 × the CPU cores), or warns and runs anyway with ``--anyway``. It
prints a table as it goes (notebook, seconds, load average before → after) and
records the same in each notebook's metadata, ``metadata["fitlab"]["workbook"]``.

A notebook is written only once it has run through, atomically (a temp file in
its folder, fsynced, renamed over it). A cell that raises stops the run, names
the notebook and the cell, and leaves that notebook as it was; the notebooks
already run keep their new outputs. Only a cell tagged ``raises-exception``
may raise (nbclient honours nbval's tag): the student versions' checks, which
fail on the blanks. ``tools/assignments.py`` (``make assignments``) runs the
student versions with the same code when it generates them.

Usage::

    python tools/workbook.py                      # all of them (make workbook)
    python tools/workbook.py --only 02_fit ex1_csv_generator
    python tools/workbook.py --anyway             # on a busy machine, with a warning

Exit status: 0 when every notebook ran; 1 when a notebook raised; 2 when the
script refused to start (an unknown ``--only`` name, a profile other than
``full``, a busy machine).
"""

from __future__ import annotations

import argparse
import datetime
import os
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

from fitlab.config import PROFILE_ENV
from fitlab.files import write_atomically
from fitlab.machine import load_text

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
PROFILE = "full"
LOAD_PER_CORE = 0.75
# The longest cell, notebook 2's 75 epochs, has taken over an hour on two shared
# cores; a cell still running after this many seconds is stuck.
CELL_TIMEOUT_S = 4 * 3600


class Refused(Exception):
    """The run cannot start; the message says why and what to do (exit status 2)."""


class NotebookFailed(Exception):
    """A cell raised; the message names the notebook and the cell (exit status 1)."""


def notebooks_in_order(folder: Path) -> list[Path]:
    """The workbook's notebooks under ``folder``, in the order they are run.

    Examples
    --------
    >>> [p.relative_to(NOTEBOOKS).as_posix() for p in notebooks_in_order(NOTEBOOKS)][:2]
    ['01_data.ipynb', '02_fit.ipynb']
    """
    return [
        *sorted(folder.glob("0*.ipynb")),
        *sorted(folder.glob("exercises/*/*.ipynb")),  # nbgrader's layout: <exercise>/<notebook>
        *sorted(folder.glob("solutions/*/*.ipynb")),
    ]


def select(notebooks: list[Path], folder: Path, names: list[str] | None) -> list[Path]:
    """The notebooks that ``names`` name, in the run's order (all of them for ``None``).

    A name is a notebook's path under ``folder`` or its file name, with or without
    ``.ipynb``: ``02_fit``, ``exercises/ex1_csv_generator/ex1_csv_generator``
    (``ex1_csv_generator`` names the student version and the source).
    """
    if names is None:
        return notebooks

    def spellings(path: Path) -> set[str]:
        relative = path.relative_to(folder).as_posix()
        return {relative, relative.removesuffix(".ipynb"), path.name, path.stem}

    unknown = [name for name in names if not any(name in spellings(p) for p in notebooks)]
    if unknown:
        known = ", ".join(p.relative_to(folder).with_suffix("").as_posix() for p in notebooks)
        names_text = ", ".join(map(repr, unknown))
        raise Refused(f"no notebook named {names_text} in {folder}; choose from: {known}")
    return [p for p in notebooks if spellings(p) & set(names)]


def check_profile() -> None:
    """Refuse any profile but the full one, then set it for the kernels."""
    name = os.environ.get(PROFILE_ENV, "").strip().lower()
    if name not in ("", PROFILE):
        raise Refused(
            f"{PROFILE_ENV}={name}: the stored outputs must come from the {PROFILE} profile; "
            f"unset {PROFILE_ENV} (or set it to {PROFILE}) and run again"
        )
    os.environ[PROFILE_ENV] = PROFILE  # inherited by every kernel


def load_limit() -> float:
    """The default ``--max-load``: 0.75 × the CPU cores this process may use."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return LOAD_PER_CORE * (cores or 1)


def check_quiet(max_load: float, anyway: bool) -> None:
    """Refuse (or, with ``anyway``, warn) when the 1-minute load average is above ``max_load``."""
    load = os.getloadavg()
    if load[0] <= max_load:
        return
    why = (
        f"the 1-minute load average is {load[0]:.2f} (load average {load_text(load)}), above "
        f"{max_load:.2f}: other work on this machine would be timed with the notebooks"
    )
    if not anyway:
        raise Refused(f"{why}. Wait until it is quiet, or pass --anyway to run regardless")
    print(f"workbook: warning: {why}; running anyway (--anyway)", file=sys.stderr, flush=True)


def execute(
    path: Path, timeout: int, *, folder: Path | None = None, allow_errors: bool = False
) -> nbformat.NotebookNode:
    """Run the notebook at ``path`` in a fresh kernel, in its folder; return it with its outputs.

    Raises :class:`NotebookFailed` naming the notebook and the cell when a cell
    raises (unless tagged ``raises-exception``, or ``allow_errors``: then its
    error is an output like any other), times out or kills the kernel. The
    kernel starts in ``folder`` when given (a notebook written elsewhere first).
    The file itself is not touched.
    """
    notebook = nbformat.read(path, as_version=4)
    started = {"cell": None}
    client = NotebookClient(
        notebook,
        timeout=timeout,
        kernel_name="python3",
        store_widget_state=True,
        allow_errors=allow_errors,
        resources={"metadata": {"path": str(folder or path.parent)}},
        on_cell_start=lambda cell, cell_index: started.update(cell=cell_index),
    )
    try:
        client.execute()
    except (CellExecutionError, CellTimeoutError, DeadKernelError) as error:
        index = started["cell"]
        source = notebook.cells[index].source if index is not None else ""
        first_line = (source.strip().splitlines() or [""])[0]
        if isinstance(error, CellExecutionError):
            what = f"raised {error.ename}: {error.evalue}"
        elif isinstance(error, CellTimeoutError):
            what = f"ran longer than {timeout} s (--timeout)"
        else:
            what = "killed the kernel (out of memory?)"
        raise NotebookFailed(
            f"{path}, cell {index} ({first_line!r}) {what}. The notebook is left as it was"
        ) from error
    return notebook


def record(notebook: nbformat.NotebookNode, seconds: float, before, after) -> None:
    """Write when, how long and on how loaded a machine the notebook ran into its metadata."""
    notebook.metadata.setdefault("fitlab", {})["workbook"] = {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "seconds": round(seconds, 1),
        "load_before": [round(x, 2) for x in before],
        "load_after": [round(x, 2) for x in after],
        "profile": PROFILE,
    }


def save(notebook: nbformat.NotebookNode, path: Path) -> None:
    """Replace the file at ``path`` with ``notebook`` in one step, laid out as nbformat writes."""
    text = nbformat.writes(notebook)
    write_atomically(path, (text if text.endswith("\n") else text + "\n").encode("utf-8"))


def run(paths: list[Path], folder: Path, timeout: int) -> None:
    """Execute, record and save each notebook in turn, printing a row of the table for each."""
    width = max(len(p.relative_to(folder).as_posix()) for p in paths) + 2
    print(f"{'notebook':<{width}}{'seconds':>9}   load average (1 min) before → after")
    for index, path in enumerate(paths):
        name = path.relative_to(folder).as_posix()
        # Whole lines only: the kernels write to the same terminal (stderr) meanwhile.
        print(f"workbook: running {name} …", file=sys.stderr, flush=True)
        before, start = os.getloadavg(), time.perf_counter()
        try:
            notebook = execute(path, timeout)
        except NotebookFailed as failure:
            rest = " ".join(p.relative_to(folder).with_suffix("").as_posix() for p in paths[index:])
            raise NotebookFailed(f"{failure}; fix it, then run --only {rest}") from failure
        seconds, after = time.perf_counter() - start, os.getloadavg()
        record(notebook, seconds, before, after)
        save(notebook, path)
        print(f"{name:<{width}}{seconds:>9.0f}   {before[0]:.2f} → {after[0]:.2f}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="workbook", description=__doc__.split("\n\n")[0].removesuffix(".")
    )
    parser.add_argument("--only", nargs="+", metavar="NAME", help="run only these notebooks")
    parser.add_argument(
        "--max-load",
        type=float,
        default=None,
        help=f"refuse above this 1-minute load average (default: {LOAD_PER_CORE} × CPU cores)",
    )
    parser.add_argument(
        "--anyway", action="store_true", help="run on a busy machine, with a warning"
    )
    parser.add_argument(
        "--timeout", type=int, default=CELL_TIMEOUT_S, help="seconds a cell may run (default 4 h)"
    )
    parser.add_argument(
        "--notebooks", type=Path, default=NOTEBOOKS, help="the folder (default: the repo's)"
    )
    args = parser.parse_args(argv)
    try:
        paths = select(notebooks_in_order(args.notebooks), args.notebooks, args.only)
        if not paths:
            raise Refused(f"no notebooks in {args.notebooks}")
        check_profile()
        check_quiet(load_limit() if args.max_load is None else args.max_load, args.anyway)
        print(f"load average before: {load_text(os.getloadavg())}", flush=True)
        run(paths, args.notebooks, args.timeout)
    except Refused as refusal:
        print(f"workbook: {refusal}", file=sys.stderr)
        return 2
    except NotebookFailed as failure:
        print(f"workbook: {failure}", file=sys.stderr)
        return 1
    print(f"load average after: {load_text(os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
