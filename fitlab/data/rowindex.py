"""Random access to a CSV's rows: a byte-offset index, built in one streaming pass.

:class:`fitlab.CSVSequence` reads any batch of rows straight from the file
with ``os.preadv``; all it keeps in memory is this index, a few bytes a row.
A gzip file has no random access, so it is first decompressed to a temporary
plain copy (:func:`plain_copy`).

Examples
--------
>>> import tempfile, pathlib
>>> from fitlab.data import make_synthetic_csv
>>> path = make_synthetic_csv(pathlib.Path(tempfile.mkdtemp()) / "t.csv", rows=3, size=1)
>>> index = index_rows(path)
>>> len(index), index.values, index.lines.tolist()
(3, 3, [1, 2, 3])
"""

from __future__ import annotations

import gzip
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from fitlab.data.csvrows import (
    BOM,
    FIX_HINT,
    GZIP_ERRORS,
    GZIP_MAGIC,
    NO_COMMA,
    WHITESPACE,
    CSVFormatError,
    decode_label,
    gzip_error,
    infer_values,
)


def plain_copy(path: str | os.PathLike, directory: str | os.PathLike | None = None) -> Path:
    """Decompress a gzip CSV to a temporary plain file for random access (caller deletes it).

    A damaged ``.csv.gz`` raises :class:`CSVFormatError` naming it (see
    :func:`fitlab.data.csvrows.gzip_error`), and leaves no copy behind.

    Examples
    --------
    >>> import gzip, tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (folder / "t.csv.gz").write_bytes(gzip.compress(b"tulip,1,2\\n"))
    >>> copy = plain_copy(folder / "t.csv.gz", folder)
    >>> copy.read_bytes(), is_gzip(copy)
    (b'tulip,1,2\\n', False)
    >>> copy.unlink()
    """
    fd, name = tempfile.mkstemp(dir=directory, prefix="fitlab-", suffix=".csv")
    try:
        with os.fdopen(fd, "wb") as out, gzip.open(path, "rb") as src:
            shutil.copyfileobj(src, out, 1 << 20)
    except GZIP_ERRORS as exc:
        os.unlink(name)
        raise gzip_error(path, exc) from exc
    except BaseException:
        os.unlink(name)
        raise
    return Path(name)


def is_gzip(path: str | os.PathLike) -> bool:
    """Whether the file is gzip-compressed, by its magic bytes (not its name).

    Examples
    --------
    >>> import gzip, tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "t.csv"  # no .gz, still gzip
    >>> _ = path.write_bytes(gzip.compress(b"tulip,1,2\\n"))
    >>> is_gzip(path)
    True
    """
    with open(path, "rb") as f:
        return f.read(2) == GZIP_MAGIC


class RowIndex:
    """Where each row's values lie in a plain CSV: byte offsets, lengths, lines and labels.

    Built by :func:`index_rows`; a few bytes per row, whatever the image size.

    Attributes
    ----------
    offsets, lengths, lines : np.ndarray
        Byte offset and length of each row's values (label and line end
        excluded) and its 1-based line number.
    labels : list of str
        Each row's label.
    values : int
        Values per row (``size × size × 3``), from the first row.
    cut_off : bool
        The last row has no line end.
    errors : list of CSVFormatError
        Rows left out with ``on_bad_row="skip"``.
    file_size : int
        The file's size when indexed: a reader notices the file changing.

    Examples
    --------
    >>> index = RowIndex([6, 15], [3, 3], [1, 2], ["iris", "rose"], 3, False, [], 19)
    >>> index.keep(np.array([False, True]))
    >>> len(index), index.labels, index.offsets.tolist()
    (1, ['rose'], [15])
    """

    def __init__(
        self,
        offsets: Sequence[int] | np.ndarray,
        lengths: Sequence[int] | np.ndarray,
        lines: Sequence[int] | np.ndarray,
        labels: list[str],
        values: int,
        cut_off: bool,
        errors: list[CSVFormatError],
        file_size: int,
    ):
        self.offsets = np.asarray(offsets, dtype=np.int64)
        self.lengths = np.asarray(lengths, dtype=np.int64)
        self.lines = np.asarray(lines, dtype=np.int64)
        self.labels = labels
        self.values = values
        self.cut_off = cut_off
        self.errors = errors
        self.file_size = file_size

    def __len__(self) -> int:
        return len(self.offsets)

    def keep(self, mask: np.ndarray) -> None:
        """Drop the rows where ``mask`` is False (see the class's example)."""
        self.offsets, self.lengths, self.lines = (
            a[mask] for a in (self.offsets, self.lengths, self.lines)
        )
        self.labels = [label for label, k in zip(self.labels, mask, strict=True) if k]


def index_rows(
    path: str | os.PathLike,
    *,
    shown: str | os.PathLike | None = None,
    on_bad_row: str = "raise",
    block: int = 1 << 22,
) -> RowIndex:
    """Scan a plain CSV once, in ``block``-sized reads, and index its rows.

    Memory stays at about ``block`` bytes plus a few bytes a row. Labels are
    checked here (``shown`` is the name used in errors); values are not. A
    first row whose width is no image size is a bad row (skipped with
    ``on_bad_row="skip"``; the next row then sets the width).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "t.csv"
    >>> _ = path.write_bytes(b"iris,1,2,3\\n\\nrose,4,5,6\\n")
    >>> index = index_rows(path)
    >>> index.labels, index.lines.tolist(), index.values
    (['iris', 'rose'], [1, 3], 3)
    >>> path.read_bytes()[index.offsets[1] : index.offsets[1] + index.lengths[1]]
    b'4,5,6'
    """
    shown = shown if shown is not None else path
    offsets: list[int] = []
    lengths: list[int] = []
    lines: list[int] = []
    labels: list[str] = []
    errors: list[CSVFormatError] = []
    values = None
    line_no = 0
    base = 0  # file offset of buf[0]
    buf = b""
    cut_off = False
    with open(path, "rb", buffering=0) as f:
        while True:
            chunk = f.read(block)
            buf = buf + chunk if buf else chunk
            start = 0
            if base == 0 and line_no == 0 and buf.startswith(BOM):
                start = len(BOM)
            ends = np.flatnonzero(np.frombuffer(buf, dtype=np.uint8) == 10).tolist()
            if not chunk and start < len(buf):
                ends.append(len(buf))  # a last line with no line end
                cut_off = True
            for end in ends:
                line_no += 1
                stop = end - 1 if end > start and buf[end - 1] == 13 else end
                if start == stop or (buf[start] in WHITESPACE and not buf[start:stop].strip()):
                    start = end + 1
                    continue  # blank line
                try:
                    comma = buf.find(b",", start, stop)
                    if comma < 0:
                        raise CSVFormatError(shown, line_no, NO_COMMA, FIX_HINT)
                    label = decode_label(buf[start:comma], shown, line_no)
                    if values is None:
                        last = not chunk and end == len(buf)  # no line end
                        values = infer_values(buf[comma + 1 : stop], shown, line_no, cut_off=last)
                except CSVFormatError as exc:
                    if on_bad_row == "raise":
                        raise
                    errors.append(exc)
                else:
                    offsets.append(base + comma + 1)
                    lengths.append(stop - comma - 1)
                    lines.append(line_no)
                    labels.append(label)
                start = end + 1
            if not chunk:
                break
            base += start
            buf = buf[start:]  # the partial last line, carried into the next block
    cut_off = cut_off and bool(lines) and lines[-1] == line_no
    return RowIndex(offsets, lengths, lines, labels, values or 0, cut_off, errors, base + len(buf))
