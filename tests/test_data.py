"""fitlab.data: the Flowers-17 CSVs, their bad inputs, and the real archive."""

from __future__ import annotations

import hashlib
import http.server
import io
import itertools
import json
import os
import socket
import subprocess
import sys
import tarfile
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fitlab.data import flowers17 as data
from fitlab.data.flowers17 import (
    CLASS_NAMES,
    DatasetError,
    class_of,
    decode_image,
    format_rows,
    make_synthetic_csv,
    prepare_flowers17,
    split_rows,
)
from fitlab.files import hold_write_lock, write_atomically

N_IMAGES = 1360


def _jpeg(seed: int, side: int = 12) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (side, side + 4, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="JPEG", quality=90)
    return out.getvalue()


def _add(tar: tarfile.TarFile, name: str, payload: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(payload)
    tar.addfile(info, io.BytesIO(payload))


def make_archive(path: Path, numbers=range(1, N_IMAGES + 1), extra=()) -> Path:
    """A small stand-in for 17flowers.tgz: the official layout, tiny JPEGs."""
    with tarfile.open(path, "w:gz") as tar:
        names = "".join(f"image_{n:04d}.jpg\n" for n in numbers).encode()
        _add(tar, "jpg/files.txt", names)
        for n in numbers:
            _add(tar, f"jpg/image_{n:04d}.jpg", _jpeg(n))
        for name, payload in extra:
            _add(tar, name, payload)
    return path


@pytest.fixture(scope="module")
def archive(tmp_path_factory) -> Path:
    return make_archive(tmp_path_factory.mktemp("archive") / "17flowers.tgz")


@pytest.fixture(autouse=True)
def _no_env_archive(monkeypatch):
    # The suite runs with FITLAB_FLOWERS17_ARCHIVE set; these tests choose their own source.
    monkeypatch.delenv("FITLAB_FLOWERS17_ARCHIVE", raising=False)


def _rows(path: Path) -> list[list[str]]:
    return [line.split(",") for line in path.read_text().splitlines()]


# -- the pieces ---------------------------------------------------------------------------


def test_class_names_are_the_official_order_in_the_tutorials_spelling():
    assert len(CLASS_NAMES) == 17
    assert CLASS_NAMES[0] == "daffodil" and CLASS_NAMES[-1] == "pansy"
    assert "lilyvalley" in CLASS_NAMES and "coltsfoot" in CLASS_NAMES
    assert all(name.isalpha() and name.islower() for name in CLASS_NAMES)


def test_class_of_follows_image_numbers_in_blocks_of_80():
    assert [class_of(n) for n in (1, 80, 81, 160, 161, 1281, 1360)] == [
        "daffodil", "daffodil", "snowdrop", "snowdrop", "lilyvalley", "pansy", "pansy",
    ]  # fmt: skip


def test_split_is_stratified_60_20_disjoint_and_seeded():
    train, test = split_rows(42)
    assert len(train) == 1020 and len(test) == 340
    assert set(train).isdisjoint(test) and set(train) | set(test) == set(range(1, N_IMAGES + 1))
    for name in CLASS_NAMES:
        assert sum(class_of(n) == name for n in train) == 60
        assert sum(class_of(n) == name for n in test) == 20
    assert split_rows(42) == (train, test)
    assert split_rows(7) != (train, test)
    # Rows are mixed, not grouped by class, so a generator reading in order sees
    # every class early: with seed 42 no class has more than 3 rows in a row.
    longest = max(len(list(run)) for _, run in itertools.groupby(map(class_of, train)))
    assert longest == 3


def test_format_rows_writes_label_then_values_row_major_channels_last():
    image = np.arange(2 * 2 * 3, dtype=np.uint8).reshape(2, 2, 3)
    assert (
        format_rows(["tulip"], [image])
        == b"tulip," + b",".join(str(v).encode() for v in range(12)) + b"\n"
    )
    assert format_rows(
        ["a", "b"], [np.zeros((1, 1, 3), np.uint8), np.full((1, 1, 3), 255, np.uint8)]
    ) == (b"a,0,0,0\nb,255,255,255\n")


def test_make_synthetic_csv_is_the_tutorials_format_and_deterministic(tmp_path):
    path = make_synthetic_csv(tmp_path / "s.csv", rows=7, size=4, classes=("x", "y", "z"), seed=3)
    rows = _rows(path)
    assert len(rows) == 7 and all(len(r) == 1 + 4 * 4 * 3 for r in rows)
    assert [r[0] for r in rows] == ["x", "y", "z", "x", "y", "z", "x"]
    assert all(0 <= int(v) <= 255 for r in rows for v in r[1:])
    again = make_synthetic_csv(tmp_path / "t.csv", rows=7, size=4, classes=("x", "y", "z"), seed=3)
    assert path.read_bytes() == again.read_bytes()
    assert (
        path.read_bytes()
        != make_synthetic_csv(tmp_path / "u.csv", 7, 4, ("x", "y", "z"), 4).read_bytes()
    )
    with pytest.raises(ValueError, match="at least one class"):
        make_synthetic_csv(tmp_path / "v.csv", rows=1, classes=())


def test_decode_image_resizes_the_whole_photo():
    jpeg = _jpeg(1, side=40)  # 40 × 44: squeezed, not cropped, to 8 × 8
    image = decode_image(jpeg, size=8)
    with Image.open(io.BytesIO(jpeg)) as img:
        img.draft("RGB", (8, 8))
        expected = np.asarray(img.convert("RGB").resize((8, 8), Image.Resampling.LANCZOS))
    assert image.shape == (8, 8, 3) and image.dtype == np.uint8
    np.testing.assert_array_equal(image, expected)


def test_decode_image_names_what_it_cannot_decode():
    with pytest.raises(DatasetError, match=r"cannot decode image x\.jpg: .*archive is damaged"):
        decode_image(b"not a jpeg", size=8, name="x.jpg")


# -- prepare_flowers17 on a small archive -------------------------------------------------


def test_prepare_builds_both_csvs_and_a_manifest(tmp_path, archive):
    files = prepare_flowers17(data_dir=tmp_path, archive=archive, size=4)
    train, test, classes = files
    assert classes == CLASS_NAMES
    train_rows, test_rows = _rows(train), _rows(test)
    assert len(train_rows) == 1020 and len(test_rows) == 340
    assert all(len(r) == 1 + 4 * 4 * 3 for r in train_rows + test_rows)
    expected_train, _ = split_rows(42)
    assert [r[0] for r in train_rows] == [class_of(n) for n in expected_train]
    assert train.read_bytes().endswith(b"\n") and b"\r" not in train.read_bytes()
    manifest = json.loads((tmp_path / data.MANIFEST).read_text())
    assert manifest["files"][train.name]["sha256"] == hashlib.sha256(train.read_bytes()).hexdigest()
    assert manifest["files"][test.name]["rows"] == 340


def _inodes(*paths: Path) -> list[int]:
    # Every write is a rename of a new file over the old one: a new inode.
    return [path.stat().st_ino for path in paths]


def test_second_call_returns_at_once_without_rewriting(tmp_path, archive):
    files = prepare_flowers17(data_dir=tmp_path, archive=archive, size=4)
    before = _inodes(files.train, files.test, tmp_path / data.MANIFEST)
    assert prepare_flowers17(data_dir=tmp_path, archive=archive, size=4) == files
    assert _inodes(files.train, files.test, tmp_path / data.MANIFEST) == before


def test_a_changed_input_or_a_damaged_csv_triggers_a_rebuild(tmp_path, archive):
    files = prepare_flowers17(data_dir=tmp_path, archive=archive, size=4)
    good = files.train.read_bytes()
    files.train.write_bytes(good[:-10])
    prepare_flowers17(data_dir=tmp_path, archive=archive, size=4)
    assert files.train.read_bytes() == good
    prepare_flowers17(data_dir=tmp_path, archive=archive, size=4, seed=1)
    assert files.train.read_bytes() != good


def test_rebuilds_are_byte_identical(tmp_path, archive):
    first = prepare_flowers17(data_dir=tmp_path / "a", archive=archive, size=4)
    second = prepare_flowers17(data_dir=tmp_path / "b", archive=archive, size=4, force=True)
    assert first.train.read_bytes() == second.train.read_bytes()
    assert first.test.read_bytes() == second.test.read_bytes()


def test_archive_sources_in_order_argument_env_data_dir(tmp_path, archive, monkeypatch):
    monkeypatch.setenv("FITLAB_FLOWERS17_ARCHIVE", str(tmp_path / "nowhere.tgz"))
    assert data.find_archive(tmp_path, archive) == archive  # the argument wins
    with pytest.raises(DatasetError, match="export FITLAB_FLOWERS17_ARCHIVE="):
        data.find_archive(tmp_path)
    monkeypatch.setenv("FITLAB_FLOWERS17_ARCHIVE", str(archive))
    assert data.find_archive(tmp_path) == archive
    monkeypatch.delenv("FITLAB_FLOWERS17_ARCHIVE")
    local = tmp_path / data.ARCHIVE_NAME
    local.write_bytes(archive.read_bytes())
    assert data.find_archive(tmp_path) == local


def test_default_data_dir_comes_from_fitlab_data_dir(tmp_path, archive, monkeypatch):
    monkeypatch.setenv("FITLAB_DATA_DIR", str(tmp_path / "dd"))
    assert prepare_flowers17(archive=archive, size=2).train.parent == tmp_path / "dd"


# -- bad input: a clear error, nothing half-written ---------------------------------------


def test_missing_archive_says_how_to_set_the_variable(tmp_path):
    with pytest.raises(DatasetError, match="FITLAB_FLOWERS17_ARCHIVE") as err:
        prepare_flowers17(data_dir=tmp_path, archive=tmp_path / "missing.tgz")
    assert "missing.tgz" in str(err.value)


def left_in(folder: Path) -> list[str]:
    """What a build left in ``folder``, sorted; its lock file stays by design (empty, a lock)."""
    return sorted(p.name for p in folder.iterdir() if p.name != data.LOCK_NAME)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_failed_download_offline_leaves_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "FLOWERS17_URL", f"http://127.0.0.1:{_free_port()}/17flowers.tgz")
    with pytest.raises(DatasetError, match="could not download.*FITLAB_FLOWERS17_ARCHIVE"):
        prepare_flowers17(data_dir=tmp_path)
    assert left_in(tmp_path) == []


@pytest.fixture
def http_file(tmp_path):
    """Serve tmp_path/served/ on 127.0.0.1; yields the URL of 17flowers.tgz there."""
    root = tmp_path / "served"
    root.mkdir()

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a, **k):
            super().__init__(*a, directory=str(root), **k)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}/17flowers.tgz"
    server.shutdown()
    server.server_close()


def test_md5_mismatch_keeps_nothing(tmp_path, http_file, monkeypatch):
    root, url = http_file
    (root / "17flowers.tgz").write_bytes(b"not the archive" * 100)
    monkeypatch.setattr(data, "FLOWERS17_URL", url)
    out = tmp_path / "out"
    with pytest.raises(DatasetError, match="md5"):
        prepare_flowers17(data_dir=out)
    assert left_in(out) == []


def test_download_with_the_right_md5_is_kept_and_used(tmp_path, http_file, archive, monkeypatch):
    root, url = http_file
    (root / "17flowers.tgz").write_bytes(archive.read_bytes())
    monkeypatch.setattr(data, "FLOWERS17_URL", url)
    monkeypatch.setattr(data, "FLOWERS17_MD5", hashlib.md5(archive.read_bytes()).hexdigest())
    files = prepare_flowers17(data_dir=tmp_path / "out", size=2)
    assert (tmp_path / "out" / data.ARCHIVE_NAME).read_bytes() == archive.read_bytes()
    assert len(_rows(files.test)) == 340


@pytest.mark.parametrize("damage", ["truncated", "garbage"])
def test_truncated_or_corrupt_archive(tmp_path, archive, damage):
    bad = tmp_path / "bad.tgz"
    raw = archive.read_bytes()
    bad.write_bytes(raw[: len(raw) // 2] if damage == "truncated" else b"\x1f\x8b" + raw[100:4000])
    out = tmp_path / "out"
    with pytest.raises(DatasetError, match="truncated or corrupt"):
        prepare_flowers17(data_dir=out, archive=bad)
    assert not any(out.glob("*.csv")) and not any(out.glob("*.tmp"))


@pytest.mark.parametrize("name", ["../evil.jpg", "/etc/evil.jpg", "jpg/../../evil.jpg"])
def test_member_escaping_the_target_is_refused(tmp_path, name):
    bad = make_archive(tmp_path / "bad.tgz", numbers=range(1, 3), extra=[(name, b"x")])
    with pytest.raises(DatasetError, match="escapes"):
        prepare_flowers17(data_dir=tmp_path / "out", archive=bad)
    assert not (tmp_path / "evil.jpg").exists() and left_in(tmp_path / "out") == []


def test_symlink_member_is_refused(tmp_path):
    bad = tmp_path / "link.tgz"
    with tarfile.open(bad, "w:gz") as tar:
        link = tarfile.TarInfo("jpg/image_0001.jpg")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tar.addfile(link)
    with pytest.raises(DatasetError, match="escapes"):
        prepare_flowers17(data_dir=tmp_path / "out", archive=bad)


def test_wrong_count_of_images(tmp_path):
    short = make_archive(
        tmp_path / "short.tgz", numbers=[n for n in range(1, N_IMAGES + 1) if n != 7]
    )
    with pytest.raises(DatasetError, match=r"holds 1359 .*expected 1360.*missing \[7\]"):
        prepare_flowers17(data_dir=tmp_path / "out", archive=short)


def test_unreadable_jpeg_is_named(tmp_path):
    bad = make_archive(
        tmp_path / "bad.tgz", numbers=range(1, 5), extra=[("jpg/image_0005.jpg", b"no jpeg")]
    )
    with pytest.raises(DatasetError, match=r"image_0005\.jpg"):
        prepare_flowers17(data_dir=tmp_path / "out", archive=bad)


def test_interrupted_build_keeps_the_previous_good_files(tmp_path, archive, monkeypatch):
    files = prepare_flowers17(data_dir=tmp_path, archive=archive, size=4)
    good = (files.train.read_bytes(), files.test.read_bytes())
    calls = []

    def fail_on_second_file(labels, images):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return format_rows(labels, images)

    monkeypatch.setattr(data, "format_rows", fail_on_second_file)
    with pytest.raises(KeyboardInterrupt):
        prepare_flowers17(data_dir=tmp_path, archive=archive, size=4, force=True)
    assert (files.train.read_bytes(), files.test.read_bytes()) == good
    assert left_in(tmp_path) == sorted([data.TRAIN_CSV, data.TEST_CSV, data.MANIFEST])
    # The manifest survived too: the next call trusts the files and rewrites nothing.
    before = _inodes(files.train, files.test)
    prepare_flowers17(data_dir=tmp_path, archive=archive, size=4)
    assert _inodes(files.train, files.test) == before


def test_write_atomically_leaves_no_temp_file_when_interrupted(tmp_path, monkeypatch):
    target = tmp_path / "f.csv"
    target.write_bytes(b"old\n")
    monkeypatch.setattr(os, "replace", lambda *a: (_ for _ in ()).throw(OSError("disk full")))
    with pytest.raises(OSError, match="disk full"):
        write_atomically(target, b"new\n")
    assert target.read_bytes() == b"old\n" and [p.name for p in tmp_path.iterdir()] == ["f.csv"]


# -- what the data dir may hold: names inside it, no leftovers ------------------------------


@pytest.fixture
def built(tmp_path, archive) -> Path:
    """A data dir with current 2×2 CSVs and their manifest."""
    out = tmp_path / "out"
    prepare_flowers17(data_dir=out, archive=archive, size=2)
    return out


@pytest.mark.parametrize(
    "name, why",
    [
        ("{outside}", "an absolute path"),
        ("../outside.csv", "climbs out of the folder"),
        ("sub/flowers17_training.csv", "folder separator"),
        ("..", "not a file name"),
    ],
)
def test_manifest_naming_a_file_outside_the_data_dir_is_refused(
    tmp_path, archive, built, name, why
):
    """Today's code took such a manifest as current and returned the files."""
    outside = tmp_path / "outside.csv"
    outside.write_bytes(b"not yours\n")
    name = name.format(outside=outside)
    manifest_path = built / data.MANIFEST
    manifest = json.loads(manifest_path.read_text())
    manifest["files"][name] = {"rows": 1, "bytes": 10, "sha256": hashlib.sha256(b"").hexdigest()}
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(DatasetError) as raised:
        prepare_flowers17(data_dir=built, archive=archive, size=2)
    message = str(raised.value)
    for part in (str(manifest_path), "'files'", repr(name), why, "Delete", "to rebuild"):
        assert part in message


def test_manifest_vouching_for_a_csv_that_links_out_of_the_data_dir_is_refused(
    tmp_path, archive, built
):
    train = built / data.TRAIN_CSV
    elsewhere = tmp_path / "elsewhere.csv"
    train.rename(elsewhere)  # same bytes: today's code found them current
    train.symlink_to(elsewhere)
    with pytest.raises(DatasetError, match="symbolic link that leads out") as raised:
        prepare_flowers17(data_dir=built, archive=archive, size=2)
    assert repr(data.TRAIN_CSV) in str(raised.value)


def test_manifest_that_is_a_link_out_of_the_data_dir_is_refused(tmp_path, archive, built):
    manifest = built / data.MANIFEST
    manifest.rename(tmp_path / "elsewhere.json")
    manifest.symlink_to(tmp_path / "elsewhere.json")
    with pytest.raises(DatasetError, match=f"{data.MANIFEST}' is a symbolic link that leads out"):
        prepare_flowers17(data_dir=built, archive=archive, size=2)


def test_leftovers_of_a_killed_build_or_archive_download_are_removed(archive, built):
    long_ago, now, future = 1_000_000_000, time.time(), time.time() + 3600  # 2001 …
    names = {
        long_ago: [
            ".flowers17_training.csv.abc123.tmp",
            ".flowers17_testing.csv.def456.tmp",
            ".flowers17_manifest.json.ghi789.tmp",
            "17flowers.tgzq1w2e3r4.part",
        ],
        now: [".flowers17_training.csv.n0w000.tmp", "17flowers.tgzn0w000.part"],
        future: [".flowers17_testing.csv.future.tmp"],
    }
    not_ours = [".notes.txt.abc.tmp", "other.tgz.part", "flowers17_old.csv"]
    for mtime, group in [*names.items(), (long_ago, not_ours)]:
        for name in group:
            (built / name).write_bytes(b"half")
            os.utime(built / name, (mtime, mtime))
    # A download that started before this process and stalled: old, but still held open.
    stalled = built / "17flowers.tgzst4ll3d.part"
    stalled_fd = os.open(stalled, os.O_RDWR | os.O_CREAT)
    hold_write_lock(stalled_fd)
    os.utime(stalled, (long_ago, long_ago))
    before = _inodes(built / data.TRAIN_CSV, built / data.TEST_CSV)

    try:
        prepare_flowers17(data_dir=built, archive=archive, size=2)
    finally:
        os.close(stalled_fd)

    assert left_in(built) == sorted(
        [data.TRAIN_CSV, data.TEST_CSV, data.MANIFEST, stalled.name]
        + [*names[now], *names[future], *not_ours]
    )
    assert _inodes(built / data.TRAIN_CSV, built / data.TEST_CSV) == before  # still current


@pytest.fixture
def trickling_url():
    """A server that promises 1 MB and sends one byte every 10 ms: no read ever times out."""
    stop = threading.Event()

    class Trickle(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Length", str(10**6))
            self.end_headers()
            try:
                while not stop.is_set():
                    self.wfile.write(b"x")
                    self.wfile.flush()
                    time.sleep(0.01)
            except OSError:  # the client gave up
                pass

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Trickle)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/17flowers.tgz"
    stop.set()
    server.shutdown()
    server.server_close()


def test_archive_download_that_trickles_stops_at_its_deadline(tmp_path, trickling_url):
    start = time.monotonic()
    with pytest.raises(DatasetError) as raised:
        data.download_archive(
            tmp_path / data.ARCHIVE_NAME, trickling_url, "0" * 32, timeout=10, deadline_s=0.5
        )
    assert time.monotonic() - start < 5  # the deadline, not the timeout of each read
    message = str(raised.value)
    assert trickling_url in message and "within 0.5 s" in message and "--archive" in message
    received = int(message.split(" bytes received")[0].rsplit("(", 1)[1])
    assert 0 < received < 10**6
    assert list(tmp_path.iterdir()) == []  # no .part left behind


def test_archive_download_deadline_defaults_to_minutes_not_forever():
    import inspect

    default = inspect.signature(data.download_archive).parameters["deadline_s"].default
    assert 5 * 60 <= default <= 2 * 3600


# -- the command line ---------------------------------------------------------------------


def test_cli_data_builds_and_prints_one_summary_line(tmp_path, archive):
    run = subprocess.run(
        [sys.executable, "-m", "fitlab", "data", "--archive", str(archive),
         "--data-dir", str(tmp_path), "--size", "4"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    lines = run.stdout.strip().splitlines()
    assert len(lines) == 1 and "1,020 training + 340 testing rows" in lines[0]
    assert "1360/1360 images" in run.stderr  # the progress bar
    assert (tmp_path / data.TRAIN_CSV).is_file()


def test_cli_data_reports_a_missing_archive_without_a_traceback(tmp_path):
    run = subprocess.run(
        [sys.executable, "-m", "fitlab", "data", "--archive", str(tmp_path / "no.tgz"),
         "--data-dir", str(tmp_path)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert run.returncode == 2
    assert "FITLAB_FLOWERS17_ARCHIVE" in run.stderr and "Traceback" not in run.stderr


# -- the real archive ---------------------------------------------------------------------


@pytest.mark.realdata
def test_real_archive_builds_the_tutorials_csvs(flowers17_archive, tmp_path):
    files = prepare_flowers17(data_dir=tmp_path / "a", archive=flowers17_archive)
    train_rows, test_rows = _rows(files.train), _rows(files.test)
    assert len(train_rows) == 1020 and len(test_rows) == 340
    assert {len(r) for r in train_rows + test_rows} == {12289}
    for rows, per_class in ((train_rows, 60), (test_rows, 20)):
        labels = [r[0] for r in rows]
        assert {name: labels.count(name) for name in CLASS_NAMES} == dict.fromkeys(
            CLASS_NAMES, per_class
        )

    # One known image, decoded independently: the first training row.
    number = split_rows(42)[0][0]
    with tarfile.open(flowers17_archive) as tar:
        jpeg = tar.extractfile(f"jpg/image_{number:04d}.jpg").read()
    with Image.open(io.BytesIO(jpeg)) as img:
        img.draft("RGB", (64, 64))
        expected = np.asarray(img.convert("RGB").resize((64, 64), Image.Resampling.LANCZOS))
    row = np.array(train_rows[0][1:], dtype=np.uint8).reshape(64, 64, 3)
    assert train_rows[0][0] == class_of(number)
    np.testing.assert_array_equal(row, expected)

    again = prepare_flowers17(data_dir=tmp_path / "b", archive=flowers17_archive, force=True)
    assert again.train.read_bytes() == files.train.read_bytes()
    assert again.test.read_bytes() == files.test.read_bytes()
