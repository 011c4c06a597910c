"""Checkpoint and resume: a run SIGKILLed at a random epoch resumes exactly.

The in-process tests below pin what a checkpoint folder may and may not hold:
``checkpoint.json`` names only files inside it, a killed save's temp files are
cleared on the next run, and a saved model is flushed to disk.

Two workers (tests/resume_worker.py) start together: one trains straight
through, the other is killed with SIGKILL once a randomly chosen number of
epochs is committed to its checkpoint. A third process resumes the killed
run from its last checkpoint (model, optimizer state and random-seed state)
with ``initial_epoch``. On the CPU with deterministic ops, the resumed run's
history and final weights must equal the uninterrupted run's: no epoch lost,
none run twice.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import keras
import numpy as np
import pytest

from fitlab import ResumableCheckpoint, resume_from
from fitlab.callbacks.checkpoint import save_model_atomically
from fitlab.files import EscapingNameError

EPOCHS = 5
WORKER = Path(__file__).with_name("resume_worker.py")
REPO = WORKER.parents[1]


def start_worker(directory: Path) -> subprocess.Popen:
    directory.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": ""}
    return subprocess.Popen(
        [sys.executable, str(WORKER), str(directory), str(EPOCHS)],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def committed_epochs(directory: Path) -> int:
    state = directory / "ckpt" / "checkpoint.json"
    try:
        return json.loads(state.read_text())["epochs_done"]
    except (FileNotFoundError, ValueError):  # not written yet
        return 0


def log_lines(directory: Path) -> list[tuple[str, int]]:
    lines = (directory / "epochs.log").read_text().split()
    return [(lines[i], int(lines[i + 1])) for i in range(0, len(lines), 2)]


def finish(process: subprocess.Popen, what: str) -> None:
    output, _ = process.communicate(timeout=300)
    assert process.returncode == 0, f"{what} failed:\n{output[-3000:]}"


def final(directory: Path) -> tuple[dict, list[np.ndarray]]:
    history = json.loads((directory / "final.json").read_text())
    with np.load(directory / "final.npz") as saved:
        weights = [saved[f"arr_{i}"] for i in range(len(saved.files))]
    return history, weights


@pytest.mark.slow
def test_killed_run_resumes_to_the_same_history_and_weights(tmp_path):
    kill_after = random.Random().randint(1, EPOCHS - 2)  # epochs committed before the kill
    why = f"(killed once {kill_after} epochs were committed)"
    straight_dir, victim_dir = tmp_path / "straight", tmp_path / "victim"
    straight = start_worker(straight_dir)
    victim = start_worker(victim_dir)
    deadline = time.monotonic() + 300
    while committed_epochs(victim_dir) < kill_after:
        assert victim.poll() is None, f"the worker ended before it could be killed {why}"
        assert time.monotonic() < deadline, f"no checkpoint in time {why}"
        time.sleep(0.01)
    victim.send_signal(signal.SIGKILL)
    victim.communicate(timeout=60)
    assert victim.returncode == -signal.SIGKILL
    done_at_kill = committed_epochs(victim_dir)
    assert kill_after <= done_at_kill < EPOCHS, why
    assert not (victim_dir / "final.json").exists()
    ended_before_kill = [epoch for event, epoch in log_lines(victim_dir) if event == "end"]
    log_length = len(log_lines(victim_dir))

    finish(start_worker(victim_dir), "the resumed run")
    finish(straight, "the uninterrupted run")

    resumed_events = log_lines(victim_dir)[log_length:]
    # The resumed process starts at the first uncommitted epoch and runs each once.
    assert [e for k, e in resumed_events if k == "begin"] == list(range(done_at_kill, EPOCHS))
    assert set(ended_before_kill) <= set(range(done_at_kill)), why

    want_history, want_weights = final(straight_dir)
    got_history, got_weights = final(victim_dir)
    assert len(got_history["loss"]) == EPOCHS, why
    assert got_history == want_history, why  # every epoch once: same numbers, same order
    assert len(got_weights) == len(want_weights)
    for got, want in zip(got_weights, want_weights, strict=True):
        np.testing.assert_array_equal(got, want, err_msg=why)


# -- in process: what a checkpoint folder may hold ------------------------------------------


def tiny_model() -> keras.Model:
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dropout(0.1), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse", jit_compile=False)
    return model


def train(directory: Path, epochs: int = 1, initial_epoch: int = 0, model=None) -> None:
    x, y = np.ones((4, 2), "float32"), np.zeros(4, "float32")
    (model or tiny_model()).fit(
        x,
        y,
        epochs=epochs,
        initial_epoch=initial_epoch,
        verbose=0,
        callbacks=[ResumableCheckpoint(directory)],
    )


@pytest.fixture
def checkpoint(tmp_path) -> Path:
    """A checkpoint folder with one committed epoch, and a copy of its files outside it."""
    directory = tmp_path / "ckpt"
    train(directory)
    outside = tmp_path / "outside"
    outside.mkdir()
    for name in ("epoch-0001.keras", "epoch-0001.rng.npz", "checkpoint.json"):
        (outside / name).write_bytes((directory / name).read_bytes())
    return directory


def rewrite_state(directory: Path, **entries) -> Path:
    path = directory / "checkpoint.json"
    state = json.loads(path.read_text())
    path.write_text(json.dumps({**state, **entries}))
    return path


@pytest.mark.parametrize("entry", ["model", "rng"])
@pytest.mark.parametrize(
    "name, why",
    [
        ("{outside}/epoch-0001.SUFFIX", "an absolute path"),
        ("../outside/epoch-0001.SUFFIX", "climbs out of the folder"),
        ("sub/epoch-0001.SUFFIX", "folder separator"),
        ("..", "not a file name"),
    ],
)
def test_resume_from_refuses_a_checkpoint_naming_a_file_outside_its_folder(
    checkpoint, entry, name, why
):
    """Each of these names leads to a loadable copy; today's code loaded it."""
    suffix = "keras" if entry == "model" else "rng.npz"
    sub = checkpoint / "sub"
    sub.mkdir()
    (sub / f"epoch-0001.{suffix}").write_bytes((checkpoint / f"epoch-0001.{suffix}").read_bytes())
    name = name.format(outside=checkpoint.parent / "outside").replace("SUFFIX", suffix)
    state = rewrite_state(checkpoint, **{entry: name})
    with pytest.raises(EscapingNameError) as raised:
        resume_from(checkpoint)
    message = str(raised.value)
    for part in (str(state), repr(entry), repr(name), why, "Delete the folder to start afresh"):
        assert part in message
    assert isinstance(raised.value, ValueError)  # what resume_from raised for bad checkpoints
    # The callback reads the same file when training begins, and refuses it too.
    with pytest.raises(EscapingNameError, match=why):
        train(checkpoint, epochs=2, initial_epoch=1)


@pytest.mark.parametrize("entry", ["model", "rng"])
def test_resume_from_refuses_a_checkpoint_file_that_is_a_link_out_of_its_folder(checkpoint, entry):
    suffix = "keras" if entry == "model" else "rng.npz"
    link = checkpoint / f"epoch-0001.{suffix}"
    link.unlink()
    link.symlink_to(checkpoint.parent / "outside" / link.name)
    with pytest.raises(EscapingNameError, match="symbolic link that leads out") as raised:
        resume_from(checkpoint)
    assert str(checkpoint / "checkpoint.json") in str(raised.value)
    assert repr(link.name) in str(raised.value)


def test_resume_from_refuses_a_checkpoint_json_that_is_a_link_out_of_its_folder(checkpoint):
    state = checkpoint / "checkpoint.json"
    state.unlink()
    state.symlink_to(checkpoint.parent / "outside" / "checkpoint.json")
    with pytest.raises(EscapingNameError, match="'checkpoint.json' is a symbolic link"):
        resume_from(checkpoint)


def test_resume_from_accepts_a_link_that_stays_inside_the_checkpoint(checkpoint):
    (checkpoint / "epoch-0001.keras").rename(checkpoint / "kept.keras")
    (checkpoint / "epoch-0001.keras").symlink_to("kept.keras")
    assert resume_from(checkpoint).initial_epoch == 1


def leftover(path: Path, mtime: float, folder: bool = False) -> Path:
    """A temp file, or a temp folder holding a half-saved model, last modified at ``mtime``."""
    if folder:
        path.mkdir()
        inner = path / path.name[1:].rsplit(".", 1)[0]  # .epoch-0002.keras.* holds epoch-0002.keras
        inner.write_bytes(b"half a zip")
        os.utime(inner, (mtime, mtime))
    else:
        path.write_bytes(b"half")
    os.utime(path, (mtime, mtime))
    return path


def test_checkpoint_removes_leftovers_of_a_killed_save_but_not_a_live_one(checkpoint):
    long_ago, now, future = 1_000_000_000, time.time(), time.time() + 3600  # 2001 …
    killed = [
        leftover(checkpoint / ".epoch-0002.keras.k1ll3d00", long_ago, folder=True),
        leftover(checkpoint / ".epoch-0002.rng.npz.abc123.tmp", long_ago),
        leftover(checkpoint / ".checkpoint.json.def456.tmp", long_ago),
    ]
    live = [  # written by a process that started after this one: never touched
        leftover(checkpoint / ".epoch-0002.keras.l1ve0000", now, folder=True),
        leftover(checkpoint / ".checkpoint.json.n0w000.tmp", now),
        leftover(checkpoint / ".epoch-0002.rng.npz.future.tmp", future),
    ]
    # A folder whose own mtime is old but which something wrote into just now.
    busy = leftover(checkpoint / ".epoch-0003.keras.busy0000", long_ago, folder=True)
    os.utime(busy / "epoch-0003.keras", (now, now))
    not_ours = [
        leftover(checkpoint / "notes.txt", long_ago),
        leftover(checkpoint / ".other.json.xyz.tmp", long_ago),
    ]

    train(checkpoint, epochs=2, initial_epoch=1, model=resume_from(checkpoint).model)

    names = {p.name for p in checkpoint.iterdir()}
    assert not names & {p.name for p in killed}
    assert names == {p.name for p in live + not_ours + [busy]} | {
        "checkpoint.json",
        "epoch-0002.keras",
        "epoch-0002.rng.npz",
    }
    assert (live[0] / "epoch-0002.keras").read_bytes() == b"half a zip"


def test_save_model_atomically_fsyncs_the_checkpoint_file_and_its_folder(tmp_path, monkeypatch):
    synced = set()
    real_fsync = os.fsync

    def fsync(fd):
        info = os.fstat(fd)
        synced.add((info.st_dev, info.st_ino))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    model = tiny_model()
    path = tmp_path / "epoch-0001.keras"
    save_model_atomically(model, path)
    assert [p.name for p in tmp_path.iterdir()] == ["epoch-0001.keras"]  # no temp folder left
    for synced_path in (path, tmp_path):
        info = synced_path.stat()
        assert (info.st_dev, info.st_ino) in synced, f"{synced_path} was not fsynced"
    loaded = keras.models.load_model(path)
    for got, want in zip(loaded.get_weights(), model.get_weights(), strict=True):
        np.testing.assert_array_equal(got, want)
