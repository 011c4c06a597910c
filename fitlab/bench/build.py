"""How fast the Flowers-17 CSVs are built: ``python -m fitlab bench build``.

One run times the whole build (``prepare_flowers17(force=True)``) and its
stages side by side with the slower alternatives they replace:

- reading the archive: the gzip stream alone (the ceiling);
- decoding: JPEG draft mode (the decoder scales by 1/2, 1/4, 1/8) vs a full
  decode, each followed by the same Lanczos resize;
- formatting rows: one lookup table and a join vs ``str()`` per value.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import tarfile
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from fitlab.data.flowers17 import decode_image, find_archive, format_rows, prepare_flowers17


def main(argv: list[str] | None = None) -> int:
    """Run the build benchmark and print its table. Returns the exit status.

    Examples
    --------
    The options (a run rebuilds both CSVs, so only the help is shown here):

    >>> main(["--help"])
    Traceback (most recent call last):
    ...
    SystemExit: 0
    """
    parser = argparse.ArgumentParser(prog="python -m fitlab bench build", description=__doc__)
    parser.add_argument("--archive", type=Path, help="17flowers.tgz (default as `fitlab data`)")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        archive = find_archive(Path(tmp), args.archive)
        rows = _measure(archive, args.size, Path(tmp))
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        _print_table(rows, archive)
    return 0


def _measure(archive: Path, size: int, workdir: Path) -> list[dict]:
    """Time the build and its stages; return one dict per row of the table."""
    members = _read_members(archive)
    rows = []

    start = time.perf_counter()
    files = prepare_flowers17(data_dir=workdir, archive=archive, size=size, force=True)
    build_s = time.perf_counter() - start
    csv_mb = (files.train.stat().st_size + files.test.stat().st_size) / 1e6
    rows.append(_row("whole build (prepare_flowers17)", build_s, len(members), csv_mb))

    start = time.perf_counter()
    _read_members(archive)
    rows.append(
        _row(
            "read + gunzip the archive",
            time.perf_counter() - start,
            len(members),
            archive.stat().st_size / 1e6,
        )
    )

    start = time.perf_counter()
    images = [decode_image(data, size) for data in members]
    rows.append(_row("decode, JPEG draft mode (used)", time.perf_counter() - start, len(members)))

    start = time.perf_counter()
    for data in members:
        _decode_full(data, size)
    rows.append(_row("decode, full size (alternative)", time.perf_counter() - start, len(members)))

    labels = ["daffodil"] * len(images)
    start = time.perf_counter()
    payload = format_rows(labels, images)
    rows.append(
        _row(
            "format rows, lookup table (used)",
            time.perf_counter() - start,
            len(images),
            len(payload) / 1e6,
        )
    )

    start = time.perf_counter()
    naive = b"".join(
        (label + "," + ",".join(str(int(v)) for v in image.ravel()) + "\n").encode()
        for label, image in zip(labels, images, strict=True)
    )
    rows.append(
        _row(
            "format rows, str() per value (alt.)",
            time.perf_counter() - start,
            len(images),
            len(naive) / 1e6,
        )
    )
    assert naive == payload, "the two formatters must write the same bytes"
    rows.append(
        {
            "stage": "peak RSS of this process",
            "seconds": None,
            "images_per_s": None,
            "mb_per_s": None,
            "peak_rss_mb": _peak_rss_mb(),
        }
    )
    return rows


def _print_table(rows: list[dict], archive: Path) -> None:
    """Print the rows and the ratios that matter."""
    print(f"Flowers-17 CSV build, {archive} ({os.cpu_count()} CPUs)")
    print(f"{'stage':<40}{'seconds':>9}{'images/s':>11}{'MB/s':>9}")
    for row in rows:
        if row["seconds"] is None:
            print(f"{row['stage']:<40}{row['peak_rss_mb']:>20.0f} MB")
            continue
        mb = f"{row['mb_per_s']:.1f}" if row["mb_per_s"] else ""
        print(f"{row['stage']:<40}{row['seconds']:>9.2f}{row['images_per_s']:>11.0f}{mb:>9}")
    seconds = {row["stage"]: row["seconds"] for row in rows}
    draft = seconds["decode, full size (alternative)"] / seconds["decode, JPEG draft mode (used)"]
    table = (
        seconds["format rows, str() per value (alt.)"] / seconds["format rows, lookup table (used)"]
    )
    print(
        f"draft-mode decoding is {draft:.1f}x faster than a full decode; the lookup-table "
        f"formatter {table:.1f}x faster than str(); whole build "
        f"{seconds['whole build (prepare_flowers17)']:.1f} s (goal <= 15 s)"
    )


def _row(stage: str, seconds: float, images: int, megabytes: float | None = None) -> dict:
    return {
        "stage": stage,
        "seconds": round(seconds, 3),
        "images_per_s": round(images / seconds, 1),
        "mb_per_s": round(megabytes / seconds, 1) if megabytes else None,
        "peak_rss_mb": None,
    }


def _read_members(archive: Path) -> list[bytes]:
    with tarfile.open(archive, mode="r|gz") as tar:
        return [tar.extractfile(m).read() for m in tar if m.isfile() and m.name.endswith(".jpg")]


def _decode_full(data: bytes, size: int) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as img:
        return np.asarray(img.convert("RGB").resize((size, size), Image.Resampling.LANCZOS))


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB
