"""A validation split carved from a training CSV: stratified, seeded, written atomically.

Choosing anything (a recipe, an epoch count, a learning rate) by its score on
the test set makes that score optimistic: the test set is then part of the
training procedure. :func:`carve_validation` holds out a fraction of each
class of the *training* CSV, so a search scores its candidates on rows the
final test never sees.
"""

from __future__ import annotations

import os
from collections import defaultdict
from pathlib import Path

import numpy as np

from fitlab.data.csvrows import iter_lines, split_label
from fitlab.data.flowers17 import Flowers17Files
from fitlab.files import write_atomically

__all__ = ["carve_validation"]


def carve_validation(
    train_csv: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    fraction: float = 0.2,
    seed: int = 0,
) -> Flowers17Files:
    """Split ``train_csv`` into a smaller training CSV and a validation CSV, per class.

    From each class, ``round(fraction · rows)`` rows (at least one, and at
    least one left to train on) are drawn by a generator seeded with
    ``seed``; both files keep the rows' order in ``train_csv``. Rows are
    copied byte for byte, so the same input and seed give the same files.

    Parameters
    ----------
    train_csv : path
        A CSV of ``label,pixel,…`` rows (``.csv`` or ``.csv.gz``).
    out_dir : path
        Where ``<stem>_fit.csv`` and ``<stem>_validation.csv`` are written (created).
    fraction : float
        Share of each class held out, in ``(0, 1)``.
    seed : int
        Which rows are held out.

    Returns
    -------
    Flowers17Files
        ``train`` the rows to train on, ``test`` the validation rows: pass it
        as ``train_tutorial(files=...)`` to score a run on the validation rows.

    Examples
    --------
    >>> import tempfile
    >>> from fitlab.data import make_synthetic_csv
    >>> folder = Path(tempfile.mkdtemp())
    >>> csv = make_synthetic_csv(folder / "train.csv", rows=40, size=8, classes=("a", "b"))
    >>> files = carve_validation(csv, folder, fraction=0.25, seed=0)
    >>> files.train.name, files.test.name
    ('train_fit.csv', 'train_validation.csv')
    >>> from fitlab.data import load_csv
    >>> labels = load_csv(files.test)[1]
    >>> int((labels == "a").sum()), int((labels == "b").sum())  # 5 of each class's 20
    (5, 5)
    """
    if not 0 < fraction < 1:
        raise ValueError(f"fraction must be between 0 and 1 (exclusive), got {fraction}")
    rows_of: dict[str, list[int]] = defaultdict(list)
    lines: list[bytes] = []
    for line_no, line, complete in iter_lines(train_csv):
        label = split_label(line, train_csv, line_no)[0]
        rows_of[label].append(len(lines))
        lines.append(line if complete else line + b"\n")
    rng = np.random.default_rng(seed)
    held_out: set[int] = set()
    for label in sorted(rows_of):
        rows = rows_of[label]
        if len(rows) < 2:
            raise ValueError(
                f"{train_csv}: class {label!r} has {len(rows)} row; "
                "a validation split needs at least 2 rows of every class"
            )
        count = min(max(1, round(fraction * len(rows))), len(rows) - 1)
        held_out.update(int(i) for i in rng.choice(rows, size=count, replace=False))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = Path(train_csv).name.split(".")[0]
    fit_csv, validation_csv = out_dir / f"{stem}_fit.csv", out_dir / f"{stem}_validation.csv"
    fit_rows = [line for row, line in enumerate(lines) if row not in held_out]
    validation_rows = [line for row, line in enumerate(lines) if row in held_out]
    write_atomically(fit_csv, b"".join(fit_rows))
    write_atomically(validation_csv, b"".join(validation_rows))
    return Flowers17Files(fit_csv, validation_csv)
