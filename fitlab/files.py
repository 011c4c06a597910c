"""Writing files so that no reader ever sees half of one.

Every file fitlab writes (the CSVs, their manifest, reports, histories, plots,
checkpoints) goes through :func:`write_atomically`: the bytes go to a temp file
in the same folder, are flushed to disk, and the temp file is renamed over the
target in one step. A process killed at any instant leaves either the old file
or the new one, never a mix.

Examples
--------
>>> import tempfile, pathlib
>>> path = pathlib.Path(tempfile.mkdtemp()) / "note.txt"
>>> write_atomically(path, b"hello")
>>> path.read_bytes()
b'hello'
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def write_atomically(path: str | os.PathLike, payload: bytes) -> None:
    """Write ``payload`` to a temp file beside ``path``, fsync it, then rename it into place.

    The folder is created if needed and fsynced after the rename, so the new
    name survives a power cut too. The file gets ordinary ``0644`` permissions.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> target = pathlib.Path(tempfile.mkdtemp()) / "sub" / "a.bin"
    >>> write_atomically(target, b"\\x00\\x01")
    >>> target.stat().st_size, sorted(p.name for p in target.parent.iterdir())
    (2, ['a.bin'])
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp_name, 0o644)  # mkstemp makes 0600; these are ordinary shared files
        os.replace(tmp_name, path)
    except BaseException:
        os.unlink(tmp_name)
        raise
    fsync_folder(path.parent)


def fsync_folder(folder: str | os.PathLike) -> None:
    """Flush a folder's entries (a rename into it) to disk; a no-op where folders can't be opened.

    Examples
    --------
    >>> import tempfile
    >>> fsync_folder(tempfile.gettempdir())
    """
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # Windows cannot open a folder
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems refuse fsync on a folder; the rename still happened
    finally:
        os.close(fd)
