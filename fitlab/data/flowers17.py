"""Flowers-17 as the tutorial's CSV files.

``17flowers.tgz`` ──▶ ``flowers17_training.csv`` / ``flowers17_testing.csv``

Each row is the class name, then ``size × size × 3`` RGB values 0–255
(row-major, channels last), comma-separated, no header, ``\\n`` line ends.
The split is stratified: 60 training and 20 testing images per class, chosen
by ``seed``. The same archive, size and seed give byte-identical files.

The archive is read as a stream in stored order and every JPEG is decoded in
memory (draft mode lets the JPEG decoder scale by 1/2, 1/4 or 1/8 while it
decodes), so nothing is ever extracted to disk.

Examples
--------
>>> CLASS_NAMES[:3], class_of(81)
(('daffodil', 'snowdrop', 'lilyvalley'), 'snowdrop')
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import sys
import tarfile
import tempfile
import time
import urllib.request
import zlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np
from PIL import Image

from fitlab import config
from fitlab.config import ARCHIVE_ENV
from fitlab.files import (
    EscapingNameError,
    exclusive_lock,
    hold_write_lock,
    name_inside,
    remove_leftovers,
    sha256_of,
    write_atomically,
)

#: The 17 classes in the official order (image numbers 1–80 are the first, …),
#: spelled as the tutorial spells them in its CSVs.
CLASS_NAMES: tuple[str, ...] = (
    "daffodil", "snowdrop", "lilyvalley", "bluebell", "crocus",
    "iris", "tigerlily", "tulip", "fritillary", "sunflower",
    "daisy", "coltsfoot", "dandelion", "cowslip", "buttercup",
    "windflower", "pansy",
)  # fmt: skip

IMAGES_PER_CLASS = 80
TRAIN_PER_CLASS = 60
TEST_PER_CLASS = 20
TRAIN_CSV = "flowers17_training.csv"
TEST_CSV = "flowers17_testing.csv"
MANIFEST = "flowers17_manifest.json"
ARCHIVE_NAME = "17flowers.tgz"
# Held by prepare_flowers17 for its whole run, so calls on one data dir take
# turns. Kept between runs (never a leftover: no pattern below matches it).
LOCK_NAME = ".flowers17.lock"
# What a killed build or download leaves in the data dir (write_atomically's
# temp files, download_archive's partial download); removed by the next build.
_LEFTOVERS = (".flowers17_*.csv.*.tmp", f".{MANIFEST}.*.tmp", f"{ARCHIVE_NAME}*.part")
# A download of the 58 MB archive that takes longer than this is given up.
DOWNLOAD_DEADLINE_S = 30 * 60.0
FLOWERS17_URL = "https://www.robots.ox.ac.uk/~vgg/data/flowers/17/17flowers.tgz"
FLOWERS17_MD5 = "b59a65d8d1a99cd66944d474e1289eab"
# Bump when the bytes written for the same inputs change.
FORMAT_VERSION = 1

_IMAGE_NAME = re.compile(r"^jpg/image_(\d{4})\.jpg$")
# "0".."255" as bytes: formatting a row is then one lookup and one join.
_DECIMAL = np.array([str(v).encode() for v in range(256)], dtype=object)


class DatasetError(RuntimeError):
    """The Flowers-17 archive is missing, damaged or not what it should be.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> find_archive(pathlib.Path(tempfile.mkdtemp()), archive="missing.tgz")
    Traceback (most recent call last):
    ...
    fitlab.data.flowers17.DatasetError: Flowers-17 archive not found: missing.tgz (given by ...
    """


@dataclass(frozen=True)
class Flowers17Files:
    """What :func:`prepare_flowers17` made.

    Attributes
    ----------
    train, test : Path
        The training and testing CSVs.
    classes : tuple of str
        The class names in the official order.

    Examples
    --------
    >>> files = Flowers17Files(Path("train.csv"), Path("test.csv"))
    >>> train, test, classes = files
    >>> train.name, len(classes)
    ('train.csv', 17)
    """

    train: Path
    test: Path
    classes: tuple[str, ...] = CLASS_NAMES

    def __iter__(self) -> Iterator:
        # Lets callers write ``train, test, classes = prepare_flowers17()``.
        return iter((self.train, self.test, self.classes))


def class_of(image_number: int) -> str:
    """Return the class of Flowers-17 image ``image_number`` (1-based).

    Examples
    --------
    >>> class_of(1), class_of(80), class_of(81), class_of(1360)
    ('daffodil', 'daffodil', 'snowdrop', 'pansy')
    """
    return CLASS_NAMES[(image_number - 1) // IMAGES_PER_CLASS]


def format_rows(labels: Iterable[str], images: Iterable[np.ndarray]) -> bytes:
    """Serialize images as CSV rows: label, then the ``uint8`` values, ``\\n`` ends.

    Examples
    --------
    >>> format_rows(["tulip"], [np.array([[[0, 7, 255]]], dtype=np.uint8)])
    b'tulip,0,7,255\\n'
    """
    lines = []
    for label, image in zip(labels, images, strict=True):
        values = np.asarray(image, dtype=np.uint8).ravel()
        lines.append(label.encode() + b"," + b",".join(_DECIMAL[values]) + b"\n")
    return b"".join(lines)


def make_synthetic_csv(
    path: str | os.PathLike,
    rows: int,
    size: int = 64,
    classes: Sequence[str] = CLASS_NAMES[:3],
    seed: int = 0,
) -> Path:
    """Write ``rows`` random images in the tutorial's CSV format, for unit tests.

    Labels cycle through ``classes`` so every class appears when
    ``rows >= len(classes)``. Never a stand-in for the real data.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = make_synthetic_csv(pathlib.Path(tempfile.mkdtemp()) / "t.csv", rows=4, size=2)
    >>> p.read_text().count("\\n"), p.read_text().split(",")[0]
    (4, 'daffodil')
    """
    if rows < 0 or size < 1 or not classes:
        raise ValueError("make_synthetic_csv needs rows >= 0, size >= 1 and at least one class")
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(rows, size, size, 3), dtype=np.uint8)
    labels = [classes[i % len(classes)] for i in range(rows)]
    path = Path(path)
    write_atomically(path, format_rows(labels, images))
    return path


def prepare_flowers17(
    data_dir: str | os.PathLike | None = None,
    archive: str | os.PathLike | None = None,
    size: int = 64,
    seed: int = 42,
    force: bool = False,
    progress: bool = False,
) -> Flowers17Files:
    """Build ``flowers17_training.csv`` and ``flowers17_testing.csv``.

    The archive comes from, in order: ``archive``; the environment variable
    ``FITLAB_FLOWERS17_ARCHIVE``; ``17flowers.tgz`` in ``data_dir``; a download
    of the official archive (md5-checked, then kept in ``data_dir``).
    A manifest beside the CSVs records the inputs and each file's sha256, so a
    second call with the same inputs returns at once. The manifest may name
    only plain files in ``data_dir``; one that names a path leading elsewhere
    is refused with a :class:`DatasetError`.

    Temp files that a build or download killed halfway left in ``data_dir``
    (``.flowers17_*.csv.*.tmp``, ``17flowers.tgz*.part``) are removed first,
    when they are older than the current process and no live download holds
    them (see :func:`fitlab.files.remove_leftovers`).

    Concurrent calls on one ``data_dir`` (from any processes, with or without
    ``force``) take turns: each holds the lock file ``.flowers17.lock`` there
    (:func:`fitlab.files.exclusive_lock`, kept between runs) from the cleanup
    of leftovers to the manifest write, so no call ever sees another's
    half-done swap of the files. A call that finds the lock held prints one
    line to stderr, ``waiting for another fitlab process building the
    Flowers-17 CSVs in DATA_DIR (lock DATA_DIR/.flowers17.lock)…``, then
    waits; it usually finds the files current afterwards and returns at once.
    A killed process's lock is released by the operating system.

    Parameters
    ----------
    data_dir : path, optional
        Where the CSVs go; default :func:`fitlab.config.data_dir`
        (``FITLAB_DATA_DIR`` or ``~/.cache/fitlab``).
    archive : path, optional
        A local ``17flowers.tgz``.
    size : int
        Images are resized to ``size × size`` (aspect not kept, as the tutorial did).
    seed : int
        Chooses the stratified 60/20 split and the row order.
    force : bool
        Rebuild even when the manifest says the files are current.
    progress : bool
        Draw a progress bar on stderr while decoding.

    Returns
    -------
    Flowers17Files
        ``(train, test, classes)``.

    Examples
    --------
    The first call builds the files; later ones find them current and return at once.
    The test suite points ``FITLAB_FLOWERS17_ARCHIVE`` at the archive, which a
    plain ``prepare_flowers17()`` reads too:

    >>> import os
    >>> train, test, classes = prepare_flowers17(archive=os.environ["FITLAB_FLOWERS17_ARCHIVE"])
    >>> train.name, test.name, len(classes)
    ('flowers17_training.csv', 'flowers17_testing.csv', 17)
    """
    if size < 1:
        raise ValueError(f"size must be a positive number of pixels, got {size}")
    out_dir = Path(data_dir) if data_dir is not None else config.data_dir()
    out_dir.mkdir(parents=True, exist_ok=True)
    lock = out_dir / LOCK_NAME
    waiting = (
        f"waiting for another fitlab process building the Flowers-17 CSVs in {out_dir} "
        f"(lock {lock})…"
    )
    with exclusive_lock(lock, waiting=waiting):
        return _prepare_locked(out_dir, archive, size, seed, force, progress)


def _prepare_locked(
    out_dir: Path,
    archive: str | os.PathLike | None,
    size: int,
    seed: int,
    force: bool,
    progress: bool,
) -> Flowers17Files:
    """The body of :func:`prepare_flowers17`, run while it holds the data dir's lock."""
    remove_leftovers(out_dir, _LEFTOVERS)
    source = find_archive(out_dir, archive)
    files = Flowers17Files(out_dir / TRAIN_CSV, out_dir / TEST_CSV)
    inputs = _manifest_inputs(source, size, seed)
    if not force and _manifest_matches(out_dir, inputs):
        return files

    images = read_archive(source, size, progress=progress)
    train_rows, test_rows = split_rows(seed)
    payloads = {
        path: format_rows([class_of(n) for n in rows], (images[n] for n in rows))
        for path, rows in ((files.train, train_rows), (files.test, test_rows))
    }
    # Everything that can fail slowly is done; now swap the files in. Without a
    # manifest the pair is not trusted, so a crash between the two renames can
    # never pass off a new training file with an old testing file.
    manifest_path = out_dir / MANIFEST
    manifest_path.unlink(missing_ok=True)
    for path, payload in payloads.items():
        write_atomically(path, payload)
    manifest = {
        "inputs": inputs,
        "files": {
            path.name: {
                "rows": payload.count(b"\n"),
                "bytes": len(payload),
                "sha256": hashlib.sha256(payload).hexdigest(),
            }
            for path, payload in payloads.items()
        },
    }
    write_atomically(manifest_path, json.dumps(manifest, indent=2).encode() + b"\n")
    return files


def find_archive(out_dir: Path, archive: str | os.PathLike | None = None) -> Path:
    """Return the archive to read, downloading the official one as a last resort.

    In order: ``archive``; ``FITLAB_FLOWERS17_ARCHIVE``; ``17flowers.tgz`` in
    ``out_dir``; :func:`download_archive` into ``out_dir``. A named archive
    that does not exist is an error, never a reason to download.

    Examples
    --------
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> _ = (folder / "mine.tgz").write_bytes(b"")
    >>> find_archive(folder, archive=folder / "mine.tgz") == folder / "mine.tgz"
    True
    """
    for origin, candidate in (("archive=", archive), (ARCHIVE_ENV, os.environ.get(ARCHIVE_ENV))):
        if candidate:
            path = Path(candidate).expanduser()
            if not path.is_file():
                what = "is a folder, not the archive file" if path.is_dir() else "not found"
                raise DatasetError(
                    f"Flowers-17 archive {what}: {path} (given by {origin}). Point it at the "
                    f"17flowers.tgz file itself, for example "
                    f"`export {ARCHIVE_ENV}=/path/to/17flowers.tgz`, or unset it to download."
                )
            return path
    local = out_dir / ARCHIVE_NAME
    if local.is_file():
        return local
    return download_archive(local)


def download_archive(
    dest: Path,
    url: str | None = None,
    md5: str | None = None,
    timeout: float = 60.0,
    deadline_s: float = DOWNLOAD_DEADLINE_S,
) -> Path:
    """Download the official archive to ``dest``: a temp file, md5-checked, then renamed.

    Parameters
    ----------
    dest : Path
        Where the archive goes; the partial download is ``dest.name*.part`` beside it.
    url, md5 : str, optional
        What to download and its md5; default the official archive.
    timeout : float
        Seconds to wait for the connection and for each read.
    deadline_s : float
        Seconds the whole download may take (default 30 minutes for the
        58 MB archive), checked between reads: a server that trickles a byte
        now and then never trips ``timeout``, but it does trip this.

    Raises
    ------
    DatasetError
        When the download fails, misses the deadline or has the wrong md5;
        nothing is kept.

    Examples
    --------
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> _ = (folder / "served.tgz").write_bytes(b"archive bytes")
    >>> url, md5 = (folder / "served.tgz").as_uri(), hashlib.md5(b"archive bytes").hexdigest()
    >>> download_archive(folder / "got.tgz", url, md5).read_bytes()
    b'archive bytes'
    >>> download_archive(folder / "bad.tgz", url, "0" * 32)
    Traceback (most recent call last):
    ...
    fitlab.data.flowers17.DatasetError: the download from file://... has md5 ..., expected 000...
    >>> download_archive(folder / "slow.tgz", url, md5, deadline_s=0)
    Traceback (most recent call last):
    ...
    fitlab.data.flowers17.DatasetError: the download from file://... did not finish within 0 s ...
    """
    url = url or FLOWERS17_URL
    md5 = md5 or FLOWERS17_MD5
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=dest.name, suffix=".part")
    hold_write_lock(fd)  # a stalled download is not a leftover for prepare_flowers17 to remove
    digest = hashlib.md5()
    received = 0
    deadline = time.monotonic() + deadline_s
    try:
        with os.fdopen(fd, "wb") as out:
            try:
                with urllib.request.urlopen(url, timeout=timeout) as response:
                    # read1 returns what has arrived (one socket read), so a
                    # trickle reaches the deadline check; read(n) would wait for n.
                    read = getattr(response, "read1", response.read)
                    while chunk := read(1 << 20):
                        digest.update(chunk)
                        out.write(chunk)
                        received += len(chunk)
                        if time.monotonic() >= deadline:
                            raise DatasetError(
                                f"the download from {url} did not finish within {deadline_s:g} s "
                                f"({received} bytes received); the connection is too slow. "
                                "Nothing was kept. Download 17flowers.tgz another way and pass "
                                f"it with --archive PATH (or `export {ARCHIVE_ENV}=PATH`), "
                                "or allow more time with deadline_s."
                            )
            except OSError as exc:  # URLError, timeouts and resets are all OSErrors
                raise DatasetError(
                    f"could not download Flowers-17 from {url}: {exc}. Offline? Download "
                    f"17flowers.tgz elsewhere and `export {ARCHIVE_ENV}=/path/to/17flowers.tgz`."
                ) from exc
        if digest.hexdigest() != md5:
            raise DatasetError(
                f"the download from {url} has md5 {digest.hexdigest()}, expected {md5}; "
                "it is damaged or not the Flowers-17 archive. Nothing was kept; try again, "
                f"or set {ARCHIVE_ENV} to a good copy."
            )
        os.replace(tmp_name, dest)
    finally:
        if os.path.exists(tmp_name):
            os.unlink(tmp_name)
    return dest


def read_archive(archive: Path, size: int = 64, progress: bool = False) -> dict[int, np.ndarray]:
    """Decode every image of the archive to a ``size × size × 3`` ``uint8`` array.

    Returns a dict keyed by image number (1…1360). Members are read in stored
    order; none is written to disk, and a member whose path would escape an
    extraction folder (absolute, ``..``, a link) is refused.

    Examples
    --------
    >>> import tempfile
    >>> empty = Path(tempfile.mkdtemp()) / "empty.tgz"
    >>> tarfile.open(empty, "w:gz").close()
    >>> read_archive(empty)
    Traceback (most recent call last):
    ...
    fitlab.data.flowers17.DatasetError: ...empty.tgz holds 0 Flowers-17 images, expected 1360 ...
    """
    images: dict[int, np.ndarray] = {}
    bar = _ProgressBar(IMAGES_PER_CLASS * len(CLASS_NAMES), enabled=progress)
    try:
        with tarfile.open(archive, mode="r|gz") as tar:
            for member in tar:
                _refuse_escaping(archive, member)
                match = _IMAGE_NAME.match(member.name)
                if not member.isfile() or not match:
                    continue
                data = tar.extractfile(member).read()
                images[int(match.group(1))] = decode_image(data, size, f"{archive}:{member.name}")
                bar.update(len(images))
    except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:
        raise DatasetError(
            f"{archive} is truncated or corrupt ({type(exc).__name__}: {exc}). "
            f"Download it again, or point {ARCHIVE_ENV} at a good copy."
        ) from exc
    finally:
        bar.close()
    expected = set(range(1, IMAGES_PER_CLASS * len(CLASS_NAMES) + 1))
    if set(images) != expected:
        missing = sorted(expected - set(images))
        extra = sorted(set(images) - expected)
        raise DatasetError(
            f"{archive} holds {len(images)} Flowers-17 images, expected {len(expected)} "
            f"(jpg/image_0001.jpg … jpg/image_1360.jpg); missing {missing[:5]}"
            f"{'…' if len(missing) > 5 else ''}, unexpected {extra[:5]}. "
            "Is it the official 17flowers.tgz?"
        )
    return images


def decode_image(data: bytes, size: int, name: str = "<bytes>") -> np.ndarray:
    """Decode a JPEG and resize the whole photo to ``size × size`` RGB (anti-aliased).

    Draft mode lets the JPEG decoder shrink by 1/2, 1/4 or 1/8 while decoding
    (never below ``size``); Lanczos resampling then gives the final size.

    Examples
    --------
    >>> jpeg = io.BytesIO()
    >>> Image.new("RGB", (40, 30), (200, 0, 0)).save(jpeg, "JPEG")
    >>> image = decode_image(jpeg.getvalue(), size=8)
    >>> image.shape, image.dtype
    ((8, 8, 3), dtype('uint8'))
    """
    try:
        with Image.open(io.BytesIO(data)) as img:
            img.draft("RGB", (size, size))
            rgb = img.convert("RGB").resize((size, size), Image.Resampling.LANCZOS)
            return np.asarray(rgb, dtype=np.uint8)
    except (OSError, SyntaxError, ValueError) as exc:
        raise DatasetError(f"cannot decode image {name}: {exc}. The archive is damaged.") from exc


def split_rows(seed: int = 42) -> tuple[list[int], list[int]]:
    """Return the image numbers of the training and testing rows, in file order.

    Stratified: for each class, a seeded permutation gives 60 training and 20
    testing images; each file's rows are then shuffled with the same generator.

    Examples
    --------
    >>> train, test = split_rows(42)
    >>> len(train), len(test), len(set(train) | set(test))
    (1020, 340, 1360)
    """
    rng = np.random.default_rng(seed)
    train: list[int] = []
    test: list[int] = []
    for c in range(len(CLASS_NAMES)):
        numbers = c * IMAGES_PER_CLASS + 1 + rng.permutation(IMAGES_PER_CLASS)
        train.extend(int(n) for n in numbers[:TRAIN_PER_CLASS])
        test.extend(int(n) for n in numbers[TRAIN_PER_CLASS : TRAIN_PER_CLASS + TEST_PER_CLASS])
    return [train[i] for i in rng.permutation(len(train))], [
        test[i] for i in rng.permutation(len(test))
    ]


def _refuse_escaping(archive: Path, member: tarfile.TarInfo) -> None:
    path = PurePosixPath(member.name)
    if path.is_absolute() or ".." in path.parts or member.issym() or member.islnk():
        raise DatasetError(
            f"{archive} has a member whose path escapes the archive folder: {member.name!r}. "
            "Refusing it; nothing was extracted. Use the official 17flowers.tgz."
        )


def _manifest_inputs(archive: Path, size: int, seed: int) -> dict:
    stat = archive.stat()
    return {
        "archive": str(archive.resolve()),
        "archive_bytes": stat.st_size,
        "archive_mtime_ns": stat.st_mtime_ns,
        "size": size,
        "seed": seed,
        "format_version": FORMAT_VERSION,
    }


def _manifest_matches(out_dir: Path, inputs: dict) -> bool:
    """Whether the manifest in ``out_dir`` vouches for both CSVs, built from ``inputs``.

    A manifest that is missing, unreadable or stale means "rebuild"; one that
    names a file outside ``out_dir`` (or is, or vouches for, a link leading
    out of it) is refused. ``inputs["archive"]`` is an absolute path by
    design: it is compared, never opened.
    """
    manifest_path = out_dir / MANIFEST
    if not os.path.lexists(manifest_path):
        return False
    _inside(out_dir, MANIFEST, source=out_dir, entry=None)
    try:
        manifest = json.loads(manifest_path.read_text())
    except (OSError, ValueError):
        return False
    files = manifest.get("files") if isinstance(manifest, dict) else None
    if not isinstance(files, dict):
        return False
    for name in files:
        _inside(out_dir, name, source=manifest_path, entry="files")
    if manifest.get("inputs") != inputs:
        return False
    for name in (TRAIN_CSV, TEST_CSV):
        info = files.get(name)
        path = _inside(out_dir, name, source=manifest_path, entry="files")
        if not isinstance(info, dict) or not path.is_file():
            return False
        if path.stat().st_size != info.get("bytes"):
            return False
        if sha256_of(path) != info.get("sha256"):
            return False
    return True


def _inside(out_dir: Path, name: object, source: Path, entry: str | None) -> Path:
    try:
        return name_inside(
            out_dir,
            name,
            source=source,
            entry=entry,
            remedy=f"Delete {out_dir / MANIFEST} (or the whole folder) to rebuild the CSVs.",
        )
    except EscapingNameError as exc:
        raise DatasetError(str(exc)) from exc


class _ProgressBar:
    """A one-line text progress bar on stderr (no dependency, safe in notebooks)."""

    def __init__(self, total: int, enabled: bool, width: int = 30):
        self.total, self.enabled, self.width = total, enabled, width
        self.start = time.perf_counter()
        self.shown = -1

    def update(self, done: int) -> None:
        if not self.enabled or done == self.shown or (done % 20 and done != self.total):
            return
        self.shown = done
        filled = int(self.width * min(done, self.total) / self.total)
        elapsed = time.perf_counter() - self.start
        sys.stderr.write(
            f"\rdecoding [{'#' * filled}{'.' * (self.width - filled)}] "
            f"{done}/{self.total} images {elapsed:5.1f}s"
        )
        sys.stderr.flush()

    def close(self) -> None:
        if self.enabled and self.shown >= 0:
            sys.stderr.write("\n")
            sys.stderr.flush()
