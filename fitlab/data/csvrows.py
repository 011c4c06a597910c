"""Read the tutorial's CSV rows fast and strictly.

A row is ``label,v1,v2,…,vK``: the class name, then ``K = size × size × 3``
RGB values, each a base-10 integer 0–255. Files may have ``\\n`` or ``\\r\\n``
line ends, a UTF-8 byte-order mark, blank lines (skipped) and may be
gzip-compressed (``.csv.gz``, recognised by its magic bytes); all give the
same arrays as the clean file.

Parsing is vectorised over a whole batch of rows. The value parts of the rows
are joined into one buffer, each row ending in ``\\n``; one ``numpy`` pass
finds every separator, and for each field the four bytes before its separator
are read as one little-endian ``uint32``. Two 64 Ki-entry lookup tables turn
the halves of that word into the field's value, or into a sentinel above 255
when the field is empty or longer than three digits. A few counts then prove
that the buffer holds nothing but digits, commas and the row ends, and that
every row has exactly ``K`` fields. This fast path never guesses: when any
check fails, a precise row-by-row path finds the first bad line and raises
:class:`CSVFormatError` naming the file and the 1-based line (or, with
``on_bad_row="skip"``, drops and reports the bad rows). Valid but unusual
spellings the fast path does not take, such as ``0255``, are parsed there too;
a value may carry leading zeros up to :data:`MAX_DIGITS` digits in all.

The error contract, the same in every reader: whatever is wrong with the
input, the reader raises :class:`CSVFormatError` naming the file, the line
(and the column) when it can know them, what is wrong and what to do, where
the advice names only what that reader accepts. A damaged ``.csv.gz`` is one
too (:func:`gzip_error`), and so, to every reader of images or labels, is a
file with no rows (:func:`no_rows_error`); :func:`count_rows` counts 0.

Examples
--------
>>> label, values = parse_row(b"tulip,0,7,255", values=3)
>>> label, values.tolist()
('tulip', [0, 7, 255])
"""

from __future__ import annotations

import gzip
import io
import math
import os
import warnings
import zlib
from collections.abc import Iterable, Iterator, Sequence

import numpy as np

BOM = b"\xef\xbb\xbf"
GZIP_MAGIC = b"\x1f\x8b"
ON_BAD_ROW = ("raise", "skip")
WHITESPACE = frozenset(b" \t\r\n\x0b\x0c")
# Bytes before the first row, so that every field has four bytes before its separator.
PAD = b"\n" * 4
# A value is at most this many digits, leading zeros included: no writer pads
# 0–255 further, and Python's int() refuses a token of over 4,300 digits.
MAX_DIGITS = 8
# What to do about a bad row, in the readers that take on_bad_row= (the default
# advice everywhere below); the readers that do not give their own.
FIX_HINT = (
    "Fix or delete that row, or pass on_bad_row='skip' to skip bad rows "
    "(they are counted and reported)."
)
ROW_ADVICE = "Fix the row."  # parse_row: one row, nothing to skip
# load_csv, of a first row whose width is no image size.
SIZE_ADVICE = (
    "Pass size= (the image side), fix or delete that row, or pass on_bad_row='skip' "
    "to skip bad rows."
)
REBUILD_ADVICE = "Re-create the file (gzip the CSV again) or download it again."


class CSVFormatError(ValueError):
    """A row of a CSV file is not ``label,v1,…,vK`` with every value an integer 0–255.

    Attributes
    ----------
    path : str
        The file.
    line : int or None
        The 1-based line, when the reader can know it.
    reason : str
        What is wrong.
    advice : str
        What to do about it (may be empty); the message is
        ``"path, line N: reason. advice"``.

    Examples
    --------
    >>> error = CSVFormatError("t.csv", 3, "column 2 is empty", "Fix the row.")
    >>> str(error), error.line, isinstance(error, ValueError)
    ('t.csv, line 3: column 2 is empty. Fix the row.', 3, True)
    >>> str(CSVFormatError("t.csv", None, "no rows"))
    't.csv: no rows'
    """

    def __init__(self, path: str | os.PathLike, line: int | None, reason: str, advice: str = ""):
        self.path, self.line, self.reason, self.advice = str(path), line, reason, advice
        where = f"{path}, line {line}" if line is not None else str(path)
        super().__init__(f"{where}: {reason}" + (f". {advice}" if advice else ""))

    def __reduce__(self):
        # Worker processes send errors back pickled; the default would call __init__(message).
        return (type(self), (self.path, self.line, self.reason, self.advice))


class BadRowsWarning(UserWarning):
    """Rows were skipped (``on_bad_row="skip"``); ``.errors`` lists one CSVFormatError each.

    Examples
    --------
    >>> warning = BadRowsWarning("t.csv", [CSVFormatError("t.csv", 4, "column 2 is empty")])
    >>> str(warning), [e.line for e in warning.errors]
    ('skipped 1 bad row(s) of t.csv: line 4: column 2 is empty', [4])
    """

    def __init__(self, path: str | os.PathLike, errors: Sequence[CSVFormatError]):
        self.path, self.errors = str(path), list(errors)
        shown = "; ".join(f"line {e.line}: {e.reason}" for e in self.errors[:3])
        more = f"; … and {len(self.errors) - 3} more" if len(self.errors) > 3 else ""
        super().__init__(f"skipped {len(self.errors)} bad row(s) of {path}: {shown}{more}")


def report_skipped(
    path: str | os.PathLike, errors: Sequence[CSVFormatError], stacklevel: int = 3
) -> None:
    """Warn with a :class:`BadRowsWarning` when ``errors`` is not empty.

    Examples
    --------
    >>> import warnings
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     report_skipped("t.csv", [])  # nothing skipped: no warning
    ...     report_skipped("t.csv", [CSVFormatError("t.csv", 2, "bad")])
    >>> [type(w.message).__name__ for w in caught]
    ['BadRowsWarning']
    """
    if errors:
        warnings.warn(BadRowsWarning(path, errors), stacklevel=stacklevel)


def check_on_bad_row(on_bad_row: str) -> None:
    """Refuse an ``on_bad_row`` that is not ``"raise"`` or ``"skip"``.

    Examples
    --------
    >>> check_on_bad_row("skip")
    >>> check_on_bad_row("ignore")
    Traceback (most recent call last):
    ...
    ValueError: on_bad_row must be 'raise' or 'skip', got 'ignore'
    """
    if on_bad_row not in ON_BAD_ROW:
        raise ValueError(f"on_bad_row must be 'raise' or 'skip', got {on_bad_row!r}")


def no_rows_error(path: str | os.PathLike) -> CSVFormatError:
    """The error of a reader given a file with no data rows (empty, or only blank lines).

    Every reader that yields images refuses such a file rather than yield
    nothing: an empty result only moves the failure to ``fit`` or ``predict``,
    where it no longer names the file.

    Examples
    --------
    >>> error = no_rows_error("t.csv")
    >>> error.line, error.reason
    (None, 'no rows: the file is empty or holds only blank lines')
    """
    return CSVFormatError(
        path,
        None,
        "no rows: the file is empty or holds only blank lines",
        "Check the path, or re-create the file.",
    )


def no_valid_rows_error(
    path: str | os.PathLike, errors: Sequence[CSVFormatError]
) -> CSVFormatError:
    """The error of a reader whose every row was bad and skipped (``on_bad_row="skip"``).

    Examples
    --------
    >>> str(no_valid_rows_error("t.csv", [CSVFormatError("t.csv", 2, "column 3 is empty")]))
    't.csv: no valid rows: every row is bad (1 skipped; line 2: column 3 is empty). Fix the file.'
    """
    first = f"; line {errors[0].line}: {errors[0].reason}" if errors else ""
    reason = f"no valid rows: every row is bad ({len(errors)} skipped{first})"
    return CSVFormatError(path, None, reason, "Fix the file.")


# What decompressing a damaged gzip file raises.
GZIP_ERRORS = (EOFError, gzip.BadGzipFile, zlib.error)


def gzip_error(path: str | os.PathLike, exc: BaseException) -> CSVFormatError:
    """A damaged ``.csv.gz`` as a :class:`CSVFormatError`, at the line where its data fails.

    ``exc`` is what decompressing raised: ``EOFError`` (the file is cut
    short), ``gzip.BadGzipFile`` or ``zlib.error`` (it is corrupt). The line
    is found by decompressing the file again, in small steps, up to the damage.

    Examples
    --------
    >>> import gzip, tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "t.csv.gz"
    >>> _ = path.write_bytes(gzip.compress(b"tulip,1,2\\n" * 3)[:-8])  # the trailer is lost
    >>> str(gzip_error(path, EOFError()))  # doctest: +ELLIPSIS
    '...t.csv.gz, line 4: the gzip file is truncated: its data ends here... download it again.'
    """
    line = _lines_before_damage(path) + 1
    if isinstance(exc, EOFError):
        reason = "the gzip file is truncated: its data ends here, before the end of the stream"
    else:
        reason = f"the gzip file is corrupt ({exc}); the damage was found reading this line"
    return CSVFormatError(path, line, reason, REBUILD_ADVICE)


def _lines_before_damage(path: str | os.PathLike, step: int = 512) -> int:
    """The line ends a damaged gzip file yields before its damage (read in ``step``-byte bites)."""
    count = 0
    inflate = zlib.decompressobj(wbits=31)
    with open(path, "rb") as f:
        while block := f.read(step):
            while block:
                try:
                    count += inflate.decompress(block).count(b"\n")
                except zlib.error:
                    return count
                if not inflate.eof:
                    break
                block = inflate.unused_data  # a next member, or trailing bytes
                if block and not block.startswith(GZIP_MAGIC[: len(block)]):
                    return count
                inflate = zlib.decompressobj(wbits=31)
    return count


def _tables() -> tuple[np.ndarray, np.ndarray]:
    """Lookup tables over byte pairs; see the module docstring.

    For a field ending just before its separator, ``B3`` is its last byte and
    ``B2, B1, B0`` the three before. ``HI[B3 * 256 + B2]`` holds the units and
    tens (bit 15 set when ``B2`` is a digit, so the hundreds count);
    ``LO[B1 * 256 + B0]`` the hundreds. ``0x4000`` marks an empty field or one
    of four or more digits: the sum then exceeds 255.
    """
    code = np.arange(256)
    digit = (code >= 48) & (code <= 57)
    invalid = 0x4000
    last, before = code[:, None], code[None, :]
    hi = np.where(digit[before], (last - 48) + 10 * (before - 48) + 0x8000, last - 48)
    hi = np.where(digit[last], hi, invalid)
    hundreds, first = code[:, None], code[None, :]
    lo = np.where(digit[hundreds], np.where(digit[first], invalid, 100 * (hundreds - 48)), 0)
    return hi.astype(np.uint16).ravel(), lo.astype(np.uint16).ravel()


HI_TABLE, LO_TABLE = _tables()


def join_rows(parts: Iterable[bytes | memoryview]) -> bytes:
    """Join value parts into the buffer :func:`decode_joined` reads.

    Examples
    --------
    >>> join_rows([b"1,2", b"3,4"])
    b'\\n\\n\\n\\n1,2\\n3,4\\n'
    """
    return PAD + b"\n".join(parts) + b"\n"


def decode_joined(blob: bytes | bytearray, rows: int, values: int) -> np.ndarray | None:
    """The fast path: ``(rows, values)`` ``uint8``, or ``None`` when any row is not clean.

    ``blob`` is four padding bytes, then each row's values followed by ``\\n``
    (as :func:`join_rows` makes it).

    Examples
    --------
    >>> decode_joined(join_rows([b"0,7,255", b"10,99,100"]), rows=2, values=3).tolist()
    [[0, 7, 255], [10, 99, 100]]
    >>> decode_joined(join_rows([b"0,7,256"]), rows=1, values=3) is None  # not clean
    True
    """
    b = np.frombuffer(blob, dtype=np.uint8)
    body = b[len(PAD) :]
    total = rows * values
    ends = np.flatnonzero(body < 48)  # every ',' and '\n' (and any stray control byte)
    if ends.size != total or total == 0:
        return None
    # There are `rows` newlines by construction, so with exactly total - rows commas
    # the bytes below '0' are all separators; nothing may lie above '9'.
    if np.count_nonzero(body == 44) != total - rows or np.count_nonzero(body > 57):
        return None
    if not np.all(body[ends[values - 1 :: values]] == 10):
        return None  # some row has too many or too few fields
    words = np.ndarray((b.size - 3,), dtype="<u4", buffer=blob, strides=(1,))
    window = words.take(ends)  # bytes e-4 … e-1 before each separator
    hi = HI_TABLE.take(window >> 16)
    lo = LO_TABLE.take(window & 0xFFFF)
    out = (hi & 0x7FFF) + lo * (hi >> 15)
    if out.max() > 255:
        return None
    return out.astype(np.uint8).reshape(rows, values)


def strict_values(
    part: bytes | memoryview,
    values: int,
    path: str | os.PathLike,
    line: int | None,
    cut_off: bool = False,
    *,
    advice: str = FIX_HINT,
) -> np.ndarray:
    """Parse one row's values the slow, precise way, or raise :class:`CSVFormatError`.

    ``cut_off`` says the row is the file's last and has no line end, so that a
    short row is reported as a cut-off file. ``advice`` ends the message of a
    bad row: what the calling reader's user can do.

    Examples
    --------
    >>> strict_values(b"007,0255,1", 3, "t.csv", 1).tolist()
    [7, 255, 1]
    >>> strict_values(b"1,+2,3", 3, "t.csv", 5)
    Traceback (most recent call last):
    ...
    fitlab.data.csvrows.CSVFormatError: t.csv, line 5: b'+2' in column 3 is not a base-10 integer...
    >>> strict_values(b"1,000000000,3", 3, "t.csv", 6, advice="Fix the row.")
    Traceback (most recent call last):
    ...
    fitlab.data.csvrows.CSVFormatError: t.csv, line 6: value 000000000 in column 3 has more than...
    """
    fields = bytes(part).split(b",")
    for column, token in enumerate(fields[:values], start=2):
        reason = _value_problem(token, column)
        if reason:
            raise CSVFormatError(path, line, reason, advice)
    if len(fields) != values:
        if cut_off and len(fields) < values:
            raise CSVFormatError(path, line, _cut_off_reason(len(fields), values), REBUILD_ADVICE)
        reason = f"{len(fields)} values after the label, expected {values}"
        raise CSVFormatError(path, line, reason, advice)
    # Every token is now 1 to MAX_DIGITS ASCII digits: int() is safe and exact.
    return np.array([int(token) for token in fields], dtype=np.uint8)


def _value_problem(token: bytes, column: int) -> str | None:
    """What is wrong with one value (``None``: it is a valid 0–255 integer)."""
    if not token:
        return f"column {column} is empty"
    if not token.isdigit():  # ASCII digits only: no sign, space, dot or '_'
        if token[:1] == b"-" and token[1:].isdigit():
            return f"value -{_digits(token[1:])} in column {column} is outside 0–255"
        return f"{_show(token)} in column {column} is not a base-10 integer"
    significant = token.lstrip(b"0")
    if len(significant) > 3 or int(significant or b"0") > 255:  # int() of 3 digits at most
        return f"value {_digits(token)} in column {column} is outside 0–255"
    if len(token) > MAX_DIGITS:
        return f"value {_digits(token)} in column {column} has more than {MAX_DIGITS} digits"
    return None


def _cut_off_reason(found: int, values: int | None = None) -> str:
    of = f" of {values}" if values is not None else ""
    return (
        f"the file ends in the middle of this row ({found}{of} values, no line end): it was cut off"
    )


def decode_rows(
    parts: Sequence[bytes | memoryview],
    values: int,
    path: str | os.PathLike,
    lines: Sequence[int | None],
    *,
    on_bad_row: str = "raise",
    cut_off: Sequence[bool] | None = None,
    advice: str = FIX_HINT,
) -> tuple[np.ndarray, np.ndarray, list[CSVFormatError]]:
    """Parse many rows' value parts into ``uint8``.

    Returns ``(images, kept, errors)``: ``images`` has one row per kept row,
    ``kept`` is a boolean mask over ``parts``, ``errors`` the skipped rows'
    errors (always empty with ``on_bad_row="raise"``, which raises the first).
    ``advice`` ends each error's message (see :func:`strict_values`).

    Examples
    --------
    >>> images, kept, errors = decode_rows([b"1,2", b"3,x", b"5,6"], 2, "t.csv", [1, 2, 3],
    ...                                    on_bad_row="skip")
    >>> images.tolist(), kept.tolist(), [e.line for e in errors]
    ([[1, 2], [5, 6]], [True, False, True], [2])
    """
    n = len(parts)
    fast = decode_joined(join_rows(parts), n, values) if n else None
    if fast is not None:
        return fast, np.ones(n, dtype=bool), []
    images = np.empty((n, values), dtype=np.uint8)
    kept = np.ones(n, dtype=bool)
    errors: list[CSVFormatError] = []
    for i, part in enumerate(parts):
        try:
            images[i] = strict_values(
                part, values, path, lines[i], bool(cut_off and cut_off[i]), advice=advice
            )
        except CSVFormatError as exc:
            if on_bad_row == "raise":
                raise
            kept[i] = False
            errors.append(exc)
    return images[kept], kept, errors


NO_COMMA = "no comma: a row is 'label,v1,v2,…'"


def split_label(
    line: bytes, path: str | os.PathLike, line_no: int | None, *, advice: str = FIX_HINT
) -> tuple[str, memoryview]:
    """``b"tulip,1,2"`` → ``("tulip", view of b"1,2")``; a missing or binary label is an error.

    Examples
    --------
    >>> label, rest = split_label(b"tulip,1,2\\r\\n", "t.csv", 1)
    >>> label, bytes(rest)
    ('tulip', b'1,2')
    """
    end = len(line)
    while end and line[end - 1] in b"\r\n":  # a line end may still be there
        end -= 1
    comma = line.find(b",", 0, end)
    if comma < 0:
        raise CSVFormatError(path, line_no, NO_COMMA, advice)
    # A view, not a copy: the values are copied once, when a batch is joined.
    return (
        decode_label(line[:comma], path, line_no, advice=advice),
        memoryview(line)[comma + 1 : end],
    )


def decode_label(
    label: bytes, path: str | os.PathLike, line_no: int | None, *, advice: str = FIX_HINT
) -> str:
    """A row's label as text; an empty or non-UTF-8 label is a :class:`CSVFormatError`.

    Examples
    --------
    >>> decode_label(b"tulip", "t.csv", 1)
    'tulip'
    >>> decode_label(b"\\xff\\xfe", "t.csv", 2)
    Traceback (most recent call last):
    ...
    fitlab.data.csvrows.CSVFormatError: t.csv, line 2: the label b'\\xff\\xfe' is not UTF-8 text...
    """
    if not label.strip():
        raise CSVFormatError(path, line_no, "the label (column 1) is empty", advice)
    try:
        return label.decode("utf-8")
    except UnicodeDecodeError:
        raise CSVFormatError(
            path, line_no, f"the label {_show(label)} is not UTF-8 text (binary data?)", advice
        ) from None


def parse_row(
    line: bytes | str,
    *,
    values: int | None = None,
    path: str | os.PathLike = "<row>",
    line_no: int | None = None,
) -> tuple[str, np.ndarray]:
    """Parse one CSV row into its label and a flat ``uint8`` array of values.

    Parameters
    ----------
    line : bytes or str
        One row, with or without its line end.
    values : int, optional
        How many values the row must have; any count when omitted.
    path, line_no
        Named in the error message.

    Raises
    ------
    CSVFormatError
        The row is not ``label,v1,…`` with every value an integer 0–255.

    Examples
    --------
    >>> parse_row("iris,1,2,3\\r\\n")[1]
    array([1, 2, 3], dtype=uint8)
    >>> parse_row("iris,1,256,3", path="x.csv", line_no=7)
    Traceback (most recent call last):
    ...
    fitlab.data.csvrows.CSVFormatError: x.csv, line 7: value 256 in column 3 is outside 0–255...
    """
    if isinstance(line, str):
        line = line.encode("utf-8")
    line = line.rstrip(b"\r\n")
    label, rest = split_label(line, path, line_no, advice=ROW_ADVICE)
    count = values if values is not None else bytes(rest).count(b",") + 1
    images, _, _ = decode_rows([rest], count, path, [line_no], advice=ROW_ADVICE)
    return label, images[0]


def open_binary(path: str | os.PathLike) -> io.BufferedIOBase:
    """Open a CSV for reading bytes, decompressing it when it is gzip (by its magic bytes).

    Examples
    --------
    >>> import gzip, tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "t.csv.gz"
    >>> _ = path.write_bytes(gzip.compress(b"tulip,1,2\\n"))
    >>> with open_binary(path) as f:
    ...     f.read()
    b'tulip,1,2\\n'
    """
    f = open(path, "rb", buffering=1 << 20)  # rows are ~40 kB: read far ahead of them
    if f.read(2) == GZIP_MAGIC:
        f.close()
        return io.BufferedReader(gzip.GzipFile(path, "rb"), buffer_size=1 << 20)
    f.seek(0)
    return f


def iter_lines(path: str | os.PathLike) -> Iterator[tuple[int, bytes, bool]]:
    """Yield ``(line_no, line, complete)`` for every non-blank line.

    ``line_no`` is 1-based; a leading UTF-8 BOM is dropped; the line keeps its
    line end (:func:`split_label` drops it, without copying the row);
    ``complete`` is False only for a last line with no line end. A damaged
    ``.csv.gz`` raises :class:`CSVFormatError` (see :func:`gzip_error`).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "t.csv"
    >>> _ = path.write_bytes(b"\\xef\\xbb\\xbfa,1\\r\\n\\n  \\nb,2")
    >>> list(iter_lines(path))
    [(1, b'a,1\\r\\n', True), (4, b'b,2', False)]
    """
    try:
        with open_binary(path) as f:
            for line_no, raw in enumerate(f, start=1):
                if line_no == 1 and raw.startswith(BOM):
                    raw = raw[len(BOM) :]
                # Blank: only whitespace. (strip() would copy every long row: test the first byte.)
                if raw[0] not in WHITESPACE or raw.strip():
                    yield line_no, raw, raw.endswith(b"\n")
    except GZIP_ERRORS as exc:  # a plain file raises none of these
        raise gzip_error(path, exc) from exc


def count_rows(path: str | os.PathLike) -> int:
    """The number of data rows (non-blank lines) in a CSV: 0 for an empty file.

    Rows are counted, not checked; a damaged ``.csv.gz`` raises
    :class:`CSVFormatError`.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from fitlab.data import make_synthetic_csv
    >>> count_rows(make_synthetic_csv(pathlib.Path(tempfile.mkdtemp()) / "t.csv", 5, size=2))
    5
    """
    return sum(1 for _ in iter_lines(path))


def values_for(size: int) -> int:
    """The values in a row of a ``size × size`` RGB image.

    Examples
    --------
    >>> values_for(64)
    12288
    """
    return size * size * 3


def infer_values(
    rest: bytes | memoryview,
    path: str | os.PathLike,
    line_no: int,
    *,
    cut_off: bool = False,
    advice: str = FIX_HINT,
) -> int:
    """The values per row, from a first row; it must be ``size × size × 3``.

    ``cut_off``: the row is the file's last and has no line end. ``advice``
    ends the message: what the calling reader accepts.

    Examples
    --------
    >>> infer_values(b"1,2,3,4,5,6,7,8,9,10,11,12", "t.csv", 1)  # a 2 × 2 image
    12
    >>> infer_values(b"1,2", "t.csv", 1, advice="Fix the row.")
    Traceback (most recent call last):
    ...
    fitlab.data.csvrows.CSVFormatError: t.csv, line 1: 2 values is not size × size × 3 for any...
    """
    count = bytes(rest).count(b",") + 1
    side = math.isqrt(count // 3)
    if count % 3 or side * side * 3 != count:
        if cut_off:
            raise CSVFormatError(path, line_no, _cut_off_reason(count), REBUILD_ADVICE)
        raise CSVFormatError(
            path,
            line_no,
            f"{count} values is not size × size × 3 for any size, so the image size cannot be "
            "inferred from this first row",
            advice,
        )
    return count


def side_of(values: int) -> int:
    """The image side of a row of ``values`` values (the inverse of :func:`values_for`).

    Examples
    --------
    >>> side_of(12288)
    64
    """
    return math.isqrt(values // 3)


class LoadedCSV(tuple):
    """``(images, labels)`` as :func:`load_csv` returns it; ``.skipped`` lists skipped rows.

    Examples
    --------
    >>> result = LoadedCSV(np.zeros((0, 1, 1, 3), np.uint8), np.array([], str), [])
    >>> images, labels = result
    >>> images.shape, result.skipped
    ((0, 1, 1, 3), [])
    """

    skipped: list[CSVFormatError]

    def __new__(cls, images: np.ndarray, labels: np.ndarray, skipped: list[CSVFormatError]):
        self = super().__new__(cls, (images, labels))
        self.skipped = skipped
        return self


def load_csv(
    path: str | os.PathLike,
    *,
    on_bad_row: str = "raise",
    size: int | None = None,
    chunk_rows: int = 32,
) -> LoadedCSV:
    """Load a whole CSV into memory: ``(images uint8 (N, H, W, 3), labels str (N,))``.

    Parameters
    ----------
    path : path
        A plain or gzip-compressed CSV.
    on_bad_row : {"raise", "skip"}
        ``"raise"``: the first bad row raises :class:`CSVFormatError` (file and
        line named). ``"skip"``: bad rows are dropped, a :class:`BadRowsWarning`
        lists them and the result's ``.skipped`` holds their errors.
    size : int, optional
        The image side; inferred from the first row when omitted.

    Raises
    ------
    CSVFormatError
        A bad row (``on_bad_row="raise"``); a file with no rows, or no valid
        rows; a damaged ``.csv.gz``.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from fitlab.data import make_synthetic_csv
    >>> p = make_synthetic_csv(pathlib.Path(tempfile.mkdtemp()) / "t.csv", rows=5, size=4)
    >>> images, labels = load_csv(p)
    >>> images.shape, images.dtype, labels[:2].tolist()
    ((5, 4, 4, 3), dtype('uint8'), ['daffodil', 'snowdrop'])
    """
    check_on_bad_row(on_bad_row)
    values = values_for(size) if size is not None else None
    chunks: list[np.ndarray] = []
    labels: list[str] = []
    skipped: list[CSVFormatError] = []
    pending: list[tuple[int, str, bytes, bool]] = []
    rows = 0

    def flush():
        nonlocal values
        while values is None and pending:  # with "skip", a bad first row is one more bad row
            line_no, _, rest, complete = pending[0]
            try:
                values = infer_values(rest, path, line_no, cut_off=not complete, advice=SIZE_ADVICE)
            except CSVFormatError as exc:
                if on_bad_row == "raise":
                    raise
                skipped.append(exc)
                pending.pop(0)
        if not pending:
            return
        images, kept, errors = decode_rows(
            [p[2] for p in pending], values, path, [p[0] for p in pending],
            on_bad_row=on_bad_row, cut_off=[not p[3] for p in pending],
        )  # fmt: skip
        chunks.append(images)
        labels.extend(p[1] for p, k in zip(pending, kept, strict=True) if k)
        skipped.extend(errors)
        pending.clear()

    for line_no, line, complete in iter_lines(path):
        rows += 1
        try:
            label, rest = split_label(line, path, line_no)
        except CSVFormatError as exc:
            if on_bad_row == "raise":
                raise
            skipped.append(exc)
            continue
        pending.append((line_no, label, rest, complete))
        if len(pending) >= chunk_rows:
            flush()
    flush()
    if not rows:
        raise no_rows_error(path)
    skipped.sort(key=lambda e: e.line or 0)
    report_skipped(path, skipped)
    if not labels:
        raise no_valid_rows_error(path, skipped)
    side = side_of(values)
    images = np.concatenate(chunks).reshape(-1, side, side, 3)
    return LoadedCSV(images, np.array(labels, dtype=str), skipped)


def _show(token: bytes | memoryview, limit: int = 20) -> str:
    """``token`` quoted as a bytes literal; a long one cut, with ``…`` and its length.

    Examples
    --------
    >>> _show(b"1.5"), _show(b"x" * 30, limit=4)
    ("b'1.5'", "b'xxxx'… (30 bytes)")
    """
    if len(token) <= limit:
        return repr(bytes(token))
    return f"{bytes(token[:limit])!r}… ({len(token):,} bytes)"


def _digits(token: bytes, limit: int = 20) -> str:
    """A token of ASCII digits as text; a long one cut, with ``…`` and its length.

    Examples
    --------
    >>> _digits(b"256"), _digits(b"9" * 30, limit=4)
    ('256', '9999… (30 digits)')
    """
    if len(token) <= limit:
        return token.decode("ascii")
    return f"{token[:limit].decode('ascii')}… ({len(token):,} digits)"
