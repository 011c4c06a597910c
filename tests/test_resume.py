"""Checkpoint and resume: a run SIGKILLed at a random epoch resumes exactly.

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

import numpy as np
import pytest

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
