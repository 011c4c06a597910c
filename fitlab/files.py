"""Writing files so that no reader ever sees half of one.

Every file fitlab writes (the CSVs, their manifest, reports, histories, plots,
checkpoints) goes through :func:`write_atomically`: the bytes go to a temp file
in the same folder, are flushed to disk, and the temp file is renamed over the
target in one step. A process killed at any instant leaves either the old file
or the new one, never a mix; what it does leave is a temp file, which
:func:`remove_leftovers` clears on the next run.

Names read back from a manifest or checkpoint go through :func:`name_inside`,
which refuses any name that would lead out of the folder.

Work that must not run twice at once on one folder (building the CSVs) holds
:func:`exclusive_lock` on a lock file there; a second process waits its turn.

Examples
--------
>>> import tempfile, pathlib
>>> path = pathlib.Path(tempfile.mkdtemp()) / "note.txt"
>>> write_atomically(path, b"hello")
>>> path.read_bytes()
b'hello'
"""

from __future__ import annotations

import contextlib
import errno
import fnmatch
import hashlib
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

# When this module was first imported: the process start time where the
# operating system does not tell it (see process_start_time).
_IMPORTED_AT = time.time()
# Clocks are read in ticks and file systems round times; a leftover must be
# this much older than the process start before it is removed.
_CLOCK_SLACK_S = 2.0


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


def writable_folder(path: str | os.PathLike) -> Path:
    """Create the folder ``path`` if needed and prove it can be written; return it.

    Called before work whose results go there, so that a read-only folder, a
    file standing where the folder should be or a path under a file fails in
    the first second, not after the work is done. Raises the ``OSError`` that
    the operating system gives (``PermissionError``, ``FileExistsError``,
    ``NotADirectoryError``), naming the path.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> base = pathlib.Path(tempfile.mkdtemp())
    >>> writable_folder(base / "runs" / "fit").is_dir()
    True
    >>> _ = (base / "a-file").write_text("")
    >>> writable_folder(base / "a-file")
    Traceback (most recent call last):
    ...
    FileExistsError: [Errno 17] a file stands where a folder is needed: '...a-file'
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise FileExistsError(17, "a file stands where a folder is needed", str(path))
    path.mkdir(parents=True, exist_ok=True)
    fd, probe = tempfile.mkstemp(dir=path, prefix=".fitlab-probe.", suffix=".tmp")
    os.close(fd)
    os.unlink(probe)
    return path


def sha256_of(path: str | os.PathLike) -> str:
    """The SHA-256 of a file's bytes, as 64 hex digits; read in chunks, so any size is fine.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "a.txt"
    >>> _ = path.write_bytes(b"abc")
    >>> sha256_of(path)[:16]
    'ba7816bf8f01cfea'
    """
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def fsync_file(path: str | os.PathLike) -> None:
    """Flush a file's bytes to disk (``os.fsync``), by its name.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "f.bin"
    >>> _ = path.write_bytes(b"x")
    >>> fsync_file(path)
    """
    # Windows refuses to flush a file opened read-only.
    fd = os.open(path, os.O_RDWR if os.name == "nt" else os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class EscapingNameError(ValueError):
    """A name read from a manifest or checkpoint would lead out of its folder.

    Examples
    --------
    >>> import tempfile
    >>> name_inside(tempfile.mkdtemp(), "../x", source="state.json", entry="model", remedy="")
    Traceback (most recent call last):
    ...
    fitlab.files.EscapingNameError: state.json: the entry 'model' is '../x', a path ...
    """


def name_inside(
    folder: str | os.PathLike, name: object, *, source: object, entry: str | None, remedy: str
) -> Path:
    """Return ``folder / name`` for a plain file ``name`` read from ``source``, or refuse it.

    Refused, with an :class:`EscapingNameError` naming ``source``, ``entry``,
    the name and ``remedy``: anything but a non-empty string; ``.`` and
    ``..``; an absolute path; a name with a folder separator (``/`` or
    ``\\``); a symbolic link in ``folder`` that leads out of it (a link to
    another file in ``folder`` is accepted).

    Parameters
    ----------
    folder : path
        The folder the name must stay in.
    name : object
        The name as read (from JSON it may be anything).
    source : path or str
        The file the name was read from, for the message.
    entry : str or None
        Which entry of ``source`` held the name, for the message; ``None``
        when ``source`` is the folder and ``name`` a fixed name in it.
    remedy : str
        What the user should do, the last sentence of the message.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> path = name_inside(folder, "epoch-0001.keras", source="c.json", entry="m", remedy="")
    >>> path == folder / "epoch-0001.keras"
    True
    >>> name_inside(folder, "/etc/passwd", source="c.json", entry="model",
    ...             remedy="Delete the folder to start afresh.")
    Traceback (most recent call last):
    ...
    fitlab.files.EscapingNameError: c.json: the entry 'model' is '/etc/passwd', an absolute ...
    """
    reason = _why_not_inside(Path(folder), name)
    if reason is None:
        return Path(folder) / name
    what = f"{name!r} is" if entry is None else f"the entry {entry!r} is {name!r},"
    raise EscapingNameError(
        f"{source}: {what} {reason}; only a plain file name inside {folder} is read. "
        f"{remedy}".rstrip()
    )


def _why_not_inside(folder: Path, name: object) -> str | None:
    if not isinstance(name, str) or name in ("", ".", ".."):
        return "not a file name"
    if "\0" in name:
        return "a name with a NUL byte"
    if os.path.isabs(name) or name.startswith(("/", "\\")) or Path(name).drive:
        return "an absolute path"
    separators = [sep for sep in ("/", "\\", os.sep, os.altsep) if sep]
    parts = name.replace("\\", "/").split("/")
    if ".." in parts:
        return "a path that climbs out of the folder with .."
    if any(sep in name for sep in separators):
        return "a path with a folder separator, not a plain file name"
    path = folder / name
    if path.is_symlink():
        real_folder = Path(os.path.realpath(folder))
        target = Path(os.path.realpath(path))
        if real_folder not in target.parents:
            return f"a symbolic link that leads out of the folder (to {target})"
    return None


def process_start_time() -> float:
    """When the current process started, in seconds since the epoch (the clock of ``time.time``).

    Read from ``/proc`` on Linux, else from ``psutil`` when it is installed,
    else the time :mod:`fitlab.files` was first imported (a little late, so
    :func:`remove_leftovers` may then spare a leftover it could have removed,
    never the other way round for files written after that import).

    Examples
    --------
    >>> import time
    >>> process_start_time() <= time.time()
    True
    """
    try:
        with open("/proc/self/stat") as f:
            stat = f.read()
        # Fields after the command name (which may hold spaces and parentheses);
        # the 22nd field of the line, starttime, is the 20th of these.
        ticks = int(stat[stat.rindex(")") + 2 :].split()[19])
        with open("/proc/stat") as f:
            boot = next(int(line.split()[1]) for line in f if line.startswith("btime "))
        return boot + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration, AttributeError):
        pass
    try:
        import psutil

        return psutil.Process().create_time()
    except Exception:  # not installed, or it cannot tell on this system
        return _IMPORTED_AT


def remove_leftovers(
    folder: str | os.PathLike, patterns: Iterable[str], older_than: float | None = None
) -> list[Path]:
    """Remove the temp files and folders a killed process left in ``folder``.

    An entry of ``folder`` (not its subfolders) is removed when its name
    matches one of the ``fnmatch`` ``patterns``, it and everything in it were
    last modified before ``older_than`` (by default the start of the current
    process, less two seconds of clock slack) and no process holds a
    :func:`hold_write_lock` on it. A writer that started after this process,
    or one that still holds its lock, is therefore never touched. Removal is
    best effort: an entry that vanishes or cannot be removed is left alone.

    Parameters
    ----------
    folder : path
        Where to look; a folder that does not exist holds no leftovers.
    patterns : iterable of str
        ``fnmatch`` patterns of the temp names, e.g. ``".report.json.*.tmp"``.
    older_than : float, optional
        Seconds since the epoch; entries modified at or after it are kept.

    Returns
    -------
    list of Path
        The entries removed, sorted.

    Examples
    --------
    >>> import os, tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> old, new = folder / ".a.json.x1.tmp", folder / ".a.json.x2.tmp"
    >>> _ = old.write_bytes(b""), new.write_bytes(b"")
    >>> os.utime(old, (1e9, 1e9))  # 2001: left by a process long gone
    >>> [p.name for p in remove_leftovers(folder, [".a.json.*.tmp"])]
    ['.a.json.x1.tmp']
    >>> sorted(p.name for p in folder.iterdir())  # the new one may be being written
    ['.a.json.x2.tmp']
    """
    if older_than is None:
        older_than = process_start_time() - _CLOCK_SLACK_S
    patterns = list(patterns)
    try:
        entries = list(os.scandir(folder))
    except (FileNotFoundError, NotADirectoryError):
        return []
    removed = []
    for entry in entries:
        if not any(fnmatch.fnmatchcase(entry.name, p) for p in patterns):
            continue
        try:
            if _newest_mtime(entry.path) >= older_than or _write_locked(entry.path):
                continue
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path)
            else:
                os.unlink(entry.path)
        except OSError:
            continue  # gone already, or not ours to remove: leave it
        removed.append(Path(entry.path))
    return sorted(removed)


def hold_write_lock(fd: int) -> None:
    """Mark the open temp file ``fd`` as being written, until it is closed (or its process dies).

    An exclusive ``flock``: :func:`remove_leftovers` spares a locked file
    however old it is, so a slow writer that started before the cleaning
    process (a stalled download) keeps its file. A no-op where ``flock`` is
    missing (Windows) or refused; the age rule then applies alone.

    Examples
    --------
    >>> import os, tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> fd, name = tempfile.mkstemp(dir=folder, suffix=".part")
    >>> hold_write_lock(fd)
    >>> os.utime(name, (1e9, 1e9))  # looks long abandoned, but it is open and locked
    >>> remove_leftovers(folder, ["*.part"])
    []
    >>> os.close(fd)
    >>> len(remove_leftovers(folder, ["*.part"]))
    1
    """
    try:
        import fcntl

        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except (ImportError, OSError):
        pass


@contextlib.contextmanager
def exclusive_lock(path: str | os.PathLike, waiting: str | None = None) -> Iterator[None]:
    """Hold an exclusive ``flock`` on the lock file ``path`` while the ``with`` block runs.

    The file is created if needed (``0644``, empty) and never deleted, so every
    process locks the same file. When another process holds the lock,
    ``waiting`` (if given) is printed once to stderr, as one line, and the call
    blocks until that process lets go. The lock is released when the block
    exits, also on an exception; the operating system releases the lock of a
    process that dies, so a killed process never leaves a stale lock.

    Not reentrant: taking the same lock again inside the block, in the same
    process, waits forever. A no-op where ``flock`` is missing (Windows) or
    refused (some network file systems), as :func:`hold_write_lock` is, and
    where the folder is read-only and holds no lock file (the work under the
    lock can write nothing there either).

    Parameters
    ----------
    path : path
        The lock file; its folder must exist.
    waiting : str, optional
        The line printed to stderr when the lock is busy, e.g. ``"waiting for
        another process building the CSVs in DIR (lock DIR/.x.lock)…"``.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> lock = pathlib.Path(tempfile.mkdtemp()) / ".build.lock"
    >>> with exclusive_lock(lock, waiting="waiting for the other build…"):
    ...     _write_locked(str(lock))  # held: a second process would wait here
    True
    >>> _write_locked(str(lock)), lock.exists()  # released; the file stays
    (False, True)
    """
    try:
        import fcntl
    except ImportError:  # Windows: no flock
        yield
        return
    fd = _open_lock_file(path)
    if fd is None:  # a read-only folder without a lock file: nothing can be written here
        yield
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if waiting:
                print(waiting, file=sys.stderr, flush=True)
            fcntl.flock(fd, fcntl.LOCK_EX)
        except OSError:
            pass  # locks unsupported here: run unlocked, as hold_write_lock does
        yield
    finally:
        os.close(fd)  # closing the only descriptor releases the lock


def _open_lock_file(path: str | os.PathLike) -> int | None:
    """Open (creating it if needed) the lock file ``path``; ``None`` where that cannot be done."""
    cloexec = getattr(os, "O_CLOEXEC", 0)
    try:
        return os.open(path, os.O_RDWR | os.O_CREAT | cloexec, 0o644)
    except OSError as exc:
        if not isinstance(exc, PermissionError) and exc.errno != errno.EROFS:
            raise
    try:  # a lock file that another user made, in a folder this one may only read
        return os.open(path, os.O_RDONLY | cloexec)
    except OSError:
        return None


def _write_locked(path: str) -> bool:
    """Whether a process holds a ``flock`` on the file ``path`` (see :func:`hold_write_lock`)."""
    try:
        import fcntl
    except ImportError:
        return False
    if os.path.islink(path) or not os.path.isfile(path):
        return False
    fd = os.open(path, os.O_RDONLY)
    try:
        # A shared probe works on a read-only descriptor (also where NFS emulates flock).
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return False  # locks unsupported here: the age rule decides
    finally:
        os.close(fd)
    return False


def _newest_mtime(path: str) -> float:
    """The latest modification time of ``path`` and, for a folder, of everything in it."""
    newest = os.lstat(path).st_mtime
    if os.path.isdir(path) and not os.path.islink(path):
        for root, dirs, files in os.walk(path):
            for name in dirs + files:
                try:
                    newest = max(newest, os.lstat(os.path.join(root, name)).st_mtime)
                except FileNotFoundError:
                    pass
    return newest
