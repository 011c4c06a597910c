"""One data dir, many processes: fitlab.files.exclusive_lock and prepare_flowers17 taking turns."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from test_data import make_archive  # the small stand-in for 17flowers.tgz

import fitlab
from fitlab.data.flowers17 import MANIFEST
from fitlab.files import exclusive_lock

fcntl = pytest.importorskip("fcntl", reason="exclusive_lock is a no-op without flock")

# A test that deadlocks fails here instead of hanging the suite.
pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def archive(tmp_path_factory) -> Path:
    return make_archive(tmp_path_factory.mktemp("archive") / "17flowers.tgz")


def _held(lock: Path) -> bool:
    """Whether some open file holds a flock on ``lock`` (probed from a fresh descriptor)."""
    fd = os.open(lock, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def _python(script: str, *args: object) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(script), *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _stamps(*paths: Path) -> list[tuple[int, int]]:
    # Every write renames a new file into place: a new inode and a new mtime.
    return [(os.stat(p).st_ino, os.stat(p).st_mtime_ns) for p in paths]


def _readline(stream, timeout: float = 30.0) -> str:
    """The next line of ``stream``, or fail after ``timeout`` seconds."""
    got: list[str] = []
    reader = threading.Thread(target=lambda: got.append(stream.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    assert got, f"no line within {timeout} s"
    return got[0]


# -- the lock ------------------------------------------------------------------------------

_WAITER = """
    import sys, time
    from fitlab.files import exclusive_lock
    with exclusive_lock(sys.argv[1], waiting="waiting for the other one..."):
        print(time.time(), flush=True)
"""


def test_a_second_process_says_it_waits_and_goes_on_only_after_release(tmp_path):
    lock = tmp_path / "x.lock"
    with exclusive_lock(lock, waiting="nobody holds it: never printed"):
        waiter = _python(_WAITER, lock)
        try:
            assert _readline(waiter.stderr) == "waiting for the other one...\n"
            time.sleep(0.3)
            assert waiter.poll() is None  # still blocked
            released = time.time()
        except BaseException:
            waiter.kill()
            raise
    out, err = waiter.communicate(timeout=30)
    assert waiter.returncode == 0, err
    assert float(out) >= released
    assert err == ""  # the message came once
    assert lock.exists() and not _held(lock)  # the lock file stays, unlocked


def test_the_lock_is_released_on_an_exception_and_when_its_holder_is_killed(tmp_path, capsys):
    lock = tmp_path / "x.lock"
    with pytest.raises(RuntimeError), exclusive_lock(lock):
        assert _held(lock)
        raise RuntimeError("the work failed")
    assert not _held(lock)

    holder = _python(
        """
        import sys, time
        from fitlab.files import exclusive_lock
        with exclusive_lock(sys.argv[1]):
            print("held", flush=True)
            time.sleep(600)
        """,
        lock,
    )
    try:
        assert _readline(holder.stdout) == "held\n"
        assert _held(lock)
    finally:
        holder.kill()
        holder.communicate(timeout=30)
    with exclusive_lock(lock, waiting="a dead process's lock must not make anyone wait"):
        pass
    assert capsys.readouterr().err == ""


# -- prepare_flowers17 from several processes at once ----------------------------------------

# What `python -m fitlab data [--force]` does: build (or find) the CSVs, then read the
# manifest's summary. It starts when the file `go` appears and calls `rounds` times
# (0: until the file `stop` appears); then it prints what its last call returned (the
# inode and mtime of both CSVs and the manifest). With `hold` a file name, a rebuild
# stops just before it writes the first CSV (the old manifest is gone by then), says
# "swapping" on stderr and waits for `hold` to appear.
_DATA_COMMAND = f"""
    import json, os, sys, time
    from pathlib import Path
    import fitlab.data.flowers17 as flowers17
    data_dir, archive, force, rounds, go, stop, hold = sys.argv[1:]

    def wait_for(path):
        while not Path(path).exists():
            time.sleep(0.002)

    write_atomically = flowers17.write_atomically
    def held_write(path, payload):
        if hold != "-" and path.suffix == ".csv" and not Path(hold).exists():
            print("swapping", file=sys.stderr, flush=True)
            wait_for(hold)
        write_atomically(path, payload)
    flowers17.write_atomically = held_write

    print("ready", flush=True)
    wait_for(go)
    done = 0
    while done < int(rounds) if int(rounds) else not Path(stop).exists():
        files = flowers17.prepare_flowers17(
            data_dir, archive=archive, size=4, force=force == "force"
        )
        info = json.loads((files.train.parent / {MANIFEST!r}).read_text())["files"]
        assert info[files.train.name]["rows"] == 1020 and info[files.test.name]["rows"] == 340
        done += 1
        time.sleep(0.005)  # let the others at the lock
    paths = (files.train, files.test, files.train.parent / {MANIFEST!r})
    print(json.dumps([[os.stat(p).st_ino, os.stat(p).st_mtime_ns] for p in paths]))
"""


def _data_command(data_dir: Path, archive: Path, kind: str, rounds: int, hold: object = "-"):
    go, stop = data_dir.parent / "go", data_dir.parent / "stop"
    return _python(_DATA_COMMAND, data_dir, archive, kind, rounds, go, stop, hold)


def test_a_plain_call_during_a_forced_rebuild_waits_and_takes_its_files(tmp_path, archive):
    data_dir, hold = tmp_path / "data", tmp_path / "hold"
    fitlab.prepare_flowers17(data_dir, archive=archive, size=4)
    forced = _data_command(data_dir, archive, "force", 1, hold=hold)
    plain = None
    try:
        assert _readline(forced.stdout) == "ready\n"
        (tmp_path / "go").touch()
        assert _readline(forced.stderr) == "swapping\n"  # the manifest is gone now
        assert not (data_dir / MANIFEST).exists()
        plain = _data_command(data_dir, archive, "plain", 1)
        assert _readline(plain.stdout) == "ready\n"
        said = _readline(plain.stderr)  # without the lock: "" (it rebuilt at once and ended)
        time.sleep(0.2)
        assert plain.poll() is None, f"it did not wait for the forced rebuild: {said!r}"
        hold.touch()
        forced_out, forced_err = forced.communicate(timeout=60)
        plain_out, plain_err = plain.communicate(timeout=60)
    finally:
        for proc in (forced, plain):
            if proc is not None:
                proc.kill()
    assert forced.returncode == 0, forced_err
    assert plain.returncode == 0, plain_err
    lock = data_dir / ".flowers17.lock"
    assert said == (
        f"waiting for another fitlab process building the Flowers-17 CSVs in {data_dir} "
        f"(lock {lock})…\n"
    )
    assert plain_err == ""  # said once, and did not rebuild ("swapping")
    # The plain call returned the very files the forced one built, without rewriting them.
    assert json.loads(plain_out) == json.loads(forced_out)
    assert json.loads(forced_out) == [
        list(s) for s in _stamps(*_csvs(data_dir), data_dir / MANIFEST)
    ]


def _csvs(data_dir: Path) -> tuple[Path, Path]:
    return data_dir / "flowers17_training.csv", data_dir / "flowers17_testing.csv"


def test_concurrent_forced_and_plain_builds_all_succeed_and_leave_a_current_manifest(
    tmp_path, archive
):
    data_dir = tmp_path / "data"
    # Two callers rebuild twice each; three plain ones keep calling meanwhile.
    forced = [_data_command(data_dir, archive, "force", 2) for _ in range(2)]
    plain = [_data_command(data_dir, archive, "plain", 0) for _ in range(3)]
    try:
        for proc in forced + plain:
            assert _readline(proc.stdout) == "ready\n"
        (tmp_path / "go").touch()
        results = [proc.communicate(timeout=60) for proc in forced]
        (tmp_path / "stop").touch()
        results += [proc.communicate(timeout=60) for proc in plain]
    finally:
        for proc in forced + plain:
            proc.kill()
    failed = [
        err for proc, (_, err) in zip(forced + plain, results, strict=True) if proc.returncode
    ]
    assert not failed, f"{len(failed)} of 5 callers failed; the first said:\n{failed[0]}"

    # The manifest vouches for both CSVs: a plain call finds them current, writes nothing.
    train, test = _csvs(data_dir)
    before = _stamps(train, test, data_dir / MANIFEST)
    files = fitlab.prepare_flowers17(data_dir, archive=archive, size=4)
    assert (files.train, files.test) == (train, test)
    assert _stamps(train, test, data_dir / MANIFEST) == before
    assert json.loads((data_dir / MANIFEST).read_text())["files"][train.name]["rows"] == 1020
    # Only the CSVs, their manifest and the kept lock file: no temp file was left behind.
    assert sorted(p.name for p in data_dir.iterdir()) == [
        ".flowers17.lock",
        "flowers17_manifest.json",
        "flowers17_testing.csv",
        "flowers17_training.csv",
    ]
