"""What a killed or interrupted training run costs: ``python -m fitlab bench faults``.

For each method, one uninterrupted run of ``python -m fitlab train
--deterministic`` on small synthetic CSVs is the reference. Then the same
command is started in a fresh folder and stopped at a random moment (drawn
uniformly between the moment the reference began its first epoch and its
end, so stops land mid-epoch, between epochs and while the outputs are
written), started again and stopped again (``--stops-per-run`` times), then
run to the end. Each stop is scored against the reference:

- **exact**: the run went on to the reference's ``history.json``,
  ``report.txt`` and final weights and optimizer state, bit for bit, and
  the next start resumed after the last committed epoch;
- **lost**: epochs committed to the checkpoint before the stop that the next
  start trained again;
- **tracebacks**: a Python traceback on the stopped run's or the next run's stderr;
- **leftovers**: temp files left in the run's folder or its checkpoint once
  the run finished.

Kinds of stop: ``SIGKILL`` (nothing runs after it: the worst case, and what
``SIGTERM`` does to a Python process without a handler) and ``SIGINT``
(Ctrl-C: one line, exit 130). Then every user mistake the command line knows
of is made once (one line and exit 2 expected, never a traceback).

The stop times come from ``--seed``, so a rerun of the benchmark stops at
the same moments, up to the machine's speed.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from fitlab.config import METHODS

SIZE, TRAIN_ROWS, TEST_ROWS, BATCH = 16, 48, 24, 8
STOPS = {"SIGKILL": signal.SIGKILL, "SIGINT": signal.SIGINT}
TRACEBACK = "Traceback (most recent call last)"
# TensorFlow's C++ start-up log lines, which no Python setting silences.
TF_LOG = re.compile(r"^([IWEF]\d{4} |WARNING: All log messages|To enable the following)")


def main(argv: list[str] | None = None) -> int:
    """Run the fault benchmark and print its tables. Returns the exit status.

    Examples
    --------
    The options (a run takes minutes, so only the help is shown here):

    >>> main(["--help"])
    Traceback (most recent call last):
    ...
    SystemExit: 0
    """
    parser = argparse.ArgumentParser(prog="python -m fitlab bench faults", description=__doc__)
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    parser.add_argument("--kills", type=int, default=20, help="SIGKILL stops per method")
    parser.add_argument("--interrupts", type=int, default=4, help="SIGINT stops per method")
    parser.add_argument(
        "--stops-per-run", type=int, default=3, help="stops before a run may finish (default 3)"
    )
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0, help="seeds the stop times")
    parser.add_argument("--json", action="store_true", help="print JSON instead of tables")
    args = parser.parse_args(argv)

    draw = random.Random(args.seed)
    with tempfile.TemporaryDirectory(prefix="fitlab-faults-") as tmp:
        work = Path(tmp)
        csvs = make_csvs(work)
        rows = []
        for method in args.methods:
            reference = run_reference(method, csvs, work / f"{method}-reference", args.epochs)
            for stop, wanted in (("SIGKILL", args.kills), ("SIGINT", args.interrupts)):
                outcomes: list[dict] = []
                for chain in range(3 * wanted):  # runs that finish before a stop add none
                    if len(outcomes) >= wanted:
                        break
                    out = work / f"{method}-{stop}-{chain}"
                    stops = min(args.stops_per_run, wanted - len(outcomes))
                    outcomes += stop_and_resume(reference, STOPS[stop], draw, out, stops)
                rows.append(summarize(method, stop, outcomes, args.epochs))
        mistakes = make_mistakes(csvs, work / "mistakes")
    if args.json:
        print(json.dumps({"stops": rows, "mistakes": mistakes}, indent=2))
    else:
        print_tables(rows, mistakes, args)
    return 0


# --------------------------------------------------------------------- runs


@dataclass
class Run:
    """One ``python -m fitlab train`` process: how it ended and what it printed."""

    returncode: int
    stdout: str
    stderr: str
    seconds: float
    first_epoch_s: float | None  # when "Epoch 1/" appeared, from the start


@dataclass
class Reference:
    method: str
    command: list[str]
    out: Path
    run: Run
    epochs: int


def make_csvs(folder: Path) -> tuple[Path, Path]:
    """Small synthetic training and testing CSVs in the tutorial's format."""
    from fitlab.data import make_synthetic_csv

    train = make_synthetic_csv(folder / "train.csv", rows=TRAIN_ROWS, size=SIZE, seed=1)
    test = make_synthetic_csv(folder / "test.csv", rows=TEST_ROWS, size=SIZE, seed=2)
    return train, test


def train_command(method: str, csvs: tuple[Path, Path], out: Path, epochs: int) -> list[str]:
    """The command line of a deterministic training run on ``csvs``."""
    return [
        sys.executable, "-m", "fitlab", "train", "--method", method,
        "--epochs", str(epochs), "--batch-size", str(BATCH), "--seed", "7",
        "--deterministic", "--csv", str(csvs[0]), str(csvs[1]), "--out", str(out),
    ]  # fmt: skip


def run(command: list[str], stop_at: float | None = None, stop: int = signal.SIGKILL) -> Run:
    """Run ``command``; send it ``stop`` after ``stop_at`` seconds if it is still running."""
    env = dict(os.environ, PYTHONUNBUFFERED="1", TF_CPP_MIN_LOG_LEVEL="2")
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        start = time.perf_counter()
        process = subprocess.Popen(
            command, stdout=out, stderr=err, env=env, text=True, preexec_fn=_default_sigint
        )
        first_epoch = None
        while process.poll() is None:
            now = time.perf_counter() - start
            if stop_at is not None and now >= stop_at:
                process.send_signal(stop)
                process.wait()
                break
            if first_epoch is None and "Epoch 1/" in _read(out):
                first_epoch = now
            time.sleep(0.02)
        seconds = time.perf_counter() - start
        return Run(process.returncode, _read(out), _read(err), seconds, first_epoch)


def _default_sigint() -> None:
    """Let the child take Ctrl-C: a shell starts background jobs with SIGINT ignored,
    and a Python started so never raises KeyboardInterrupt."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _read(file) -> str:
    file.seek(0)
    return file.read()


def run_reference(method: str, csvs, out: Path, epochs: int) -> Reference:
    command = train_command(method, csvs, out, epochs)
    result = run(command)
    if result.returncode != 0 or result.first_epoch_s is None:
        raise RuntimeError(f"the reference run of {method} failed:\n{result.stderr[-2000:]}")
    return Reference(method, command, out, result, epochs)


# ------------------------------------------------------------------ trials


def stop_and_resume(
    reference: Reference, stop: int, draw: random.Random, out: Path, stops: int = 1
) -> list[dict]:
    """Stop the reference's command at random moments, rerun it to the end, score each stop.

    The run is stopped, run again and stopped again (``stops`` times in all,
    each at a moment drawn anew), then run to the end. Each run scores the
    stop before it by where it resumed; the end scores them all: its outputs
    equal the reference's or not. Returns one dict per stop.
    """
    command = [str(out) if part == str(reference.out) else part for part in reference.command]
    runs, commits = [], []
    for _ in range(stops):
        stop_at = draw.uniform(reference.run.first_epoch_s, reference.run.seconds)
        stopped = run(command, stop_at=stop_at, stop=stop)
        if stopped.returncode == 0:  # it finished before the moment came: no stop
            runs.append(stopped)
            break
        runs.append(stopped)
        commits.append(_epochs_committed(out))
    else:
        runs.append(run(command))
    final = runs[-1]
    exact = final.returncode == 0 and same_outputs(reference.out, out)
    left = leftovers(out)
    return [
        {
            "stopped_in_epoch": committed + 1 if committed < reference.epochs else None,
            "returncode": stopped.returncode,
            "message": _last_line(stopped.stderr),
            "traceback": TRACEBACK in stopped.stderr or TRACEBACK in runs[index + 1].stderr,
            # Epochs committed before the stop that the next run to start training
            # trained again (a run stopped while it still started up said nothing).
            "epochs_lost": committed - resumed_at(_first_to_speak(runs[index + 1 :])),
            "exact": exact,
            "leftovers": left if index == len(commits) - 1 else [],
        }
        for index, (stopped, committed) in enumerate(zip(runs, commits, strict=False))
    ]


def _first_to_speak(runs: list[Run]) -> str:
    """The stdout of the first of ``runs`` that printed anything."""
    return next((r.stdout for r in runs if r.stdout.strip()), "")


def resumed_at(stdout: str) -> int:
    """The epochs a run found done, from its first line (0 when it started afresh).

    Examples
    --------
    >>> resumed_at("Resuming the run in r: 2 of 3 epochs were done; training on from epoch 3.")
    2
    >>> resumed_at("r: this run finished before (3 of 3 epochs); its report ...")
    3
    >>> resumed_at("Epoch 1/3")
    0
    """
    first = stdout.strip().splitlines()[0] if stdout.strip() else ""
    found = re.search(r"(\d+) of \d+ epochs were done|finished before \((\d+) of", first)
    return int(found.group(1) or found.group(2)) if found else 0


def _epochs_committed(out: Path) -> int:
    state = _json(out / "checkpoint" / "checkpoint.json")
    return int(state["epochs_done"]) if state else 0


def _json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None


def _own_lines(stderr: str) -> int:
    """Lines on stderr that are not TensorFlow's start-up log."""
    return sum(not TF_LOG.match(line) for line in stderr.strip().splitlines())


def _last_line(text: str) -> str:
    """The last line of ``text`` that is not TensorFlow's start-up log."""
    lines = [line for line in text.strip().splitlines() if not TF_LOG.match(line)]
    return lines[-1] if lines else ""


def same_outputs(reference: Path, out: Path) -> bool:
    """Equal ``history.json`` and ``report.txt`` bytes and equal final weights."""
    for name in ("history.json", "report.txt"):
        if (reference / name).read_bytes() != (out / name).read_bytes():
            return False
    return same_weights(reference / "model.keras", out / "model.keras")


def same_weights(first: Path, second: Path) -> bool:
    """Whether two saved models hold the same weights and optimizer state, bit for bit."""
    import keras
    import numpy as np

    import fitlab.augment  # noqa: F401  (registers the shear layer the models use)

    a, b = (keras.models.load_model(path) for path in (first, second))
    pairs = [(a.weights, b.weights), (a.optimizer.variables, b.optimizer.variables)]
    return all(
        len(x) == len(y) and all(np.array_equal(u, v) for u, v in zip(x, y, strict=True))
        for x, y in pairs
    )


def leftovers(out: Path) -> list[str]:
    """Temp entries (dot-names) left in a run's folder and its checkpoint.

    The run's lock file is not one: it stays by design (a lock, not data).
    """
    return sorted(
        str(entry.relative_to(out))
        for folder in (out, out / "checkpoint")
        if folder.is_dir()
        for entry in folder.iterdir()
        if entry.name.startswith(".") and not entry.name.endswith(".lock")
    )


def summarize(method: str, stop: str, outcomes: list[dict], epochs: int) -> dict:
    """One row of the table: counts over the stops of one method and kind of stop."""
    where = [o["stopped_in_epoch"] for o in outcomes]
    return {
        "method": method,
        "stop": stop,
        "stops": len(outcomes),
        "stopped_in_epoch": {str(e): where.count(e) for e in range(1, epochs + 1)},
        "stopped_writing_outputs": where.count(None),
        "resumed_exactly": sum(o["exact"] and o["epochs_lost"] == 0 for o in outcomes),
        "epochs_lost": sum(o["epochs_lost"] for o in outcomes),
        "tracebacks": sum(o["traceback"] for o in outcomes),
        "leftovers": sum(len(o["leftovers"]) for o in outcomes),
        "messages": sorted({o["message"] for o in outcomes}),
        "details": outcomes,
    }


# ---------------------------------------------------------------- mistakes


def make_mistakes(csvs: tuple[Path, Path], folder: Path) -> list[dict]:
    """Each user mistake once: its exit status, lines on stderr, and any traceback."""
    folder.mkdir(parents=True)
    a_file = folder / "a-file"
    a_file.write_text("")
    bad_csv = folder / "bad.csv"
    lines = csvs[0].read_text().splitlines()
    lines[3] = lines[3].replace(",", ",x", 1)
    bad_csv.write_text("\n".join(lines) + "\n")
    base = ["--method", "batch", "--epochs", "1", "--batch-size", str(BATCH)]
    finished = folder / "finished"
    done = train_command("batch", csvs, finished, 1)
    subprocess.run(done, capture_output=True, check=True)
    cases = {
        "--out is a file": [*base, "--csv", *map(str, csvs), "--out", str(a_file)],
        "--out under a file": [*base, "--csv", *map(str, csvs), "--out", str(a_file / "run")],
        "--out not writable": [*base, "--csv", *map(str, csvs), "--out", "/sys/fitlab-run"],
        "--data-dir under a file": [*base, "--data-dir", str(a_file / "d"), "--out",
                                    str(folder / "r1")],
        "--archive is a folder": [*base, "--archive", str(folder), "--data-dir",
                                  str(folder / "data"), "--out", str(folder / "r2")],
        "a CSV that does not exist": [*base, "--csv", str(folder / "none.csv"),
                                      str(csvs[1]), "--out", str(folder / "r3")],
        "a malformed row in a CSV": [*base, "--csv", str(bad_csv), str(csvs[1]), "--out",
                                     str(folder / "r4")],
        "other settings than the run's": train_command("batch", csvs, finished, 2),
    }  # fmt: skip
    results = []
    for name, argv in cases.items():
        command = argv if argv[0] == sys.executable else [*done[:4], *argv]
        completed = run(command)
        results.append(
            {
                "mistake": name,
                "returncode": completed.returncode,
                "stderr_lines": _own_lines(completed.stderr),
                "traceback": TRACEBACK in completed.stderr,
                "message": _last_line(completed.stderr),
            }
        )
    rerun = run(done)
    results.append(
        {
            "mistake": "a finished run, run again (exit 0)",
            "returncode": rerun.returncode,
            "stderr_lines": _own_lines(rerun.stderr),
            "traceback": TRACEBACK in rerun.stderr,
            "message": rerun.stdout.strip().splitlines()[0] if rerun.stdout.strip() else "",
        }
    )
    return results


# ------------------------------------------------------------------ tables


def print_tables(rows: list[dict], mistakes: list[dict], args: argparse.Namespace) -> None:
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"fitlab bench faults: python -m fitlab train --deterministic, {args.epochs} epochs of "
        f"{TRAIN_ROWS} rows ({SIZE}x{SIZE}, batch {BATCH}); stop times seeded {args.seed}; "
        f"load average {load:.2f} at the end"
    )
    print()
    where_title = "stopped in epoch " + "/".join(map(str, range(1, args.epochs + 1))) + "/outputs"
    header = (
        f"{'method':<10} {'stop':<8} {'stops':>5}  {where_title:<31}"
        f"{'exact':>6} {'lost':>5} {'tracebacks':>11} {'leftovers':>10}"
    )
    print(header)
    print("-" * len(header))
    for row in rows:
        where = "/".join(str(n) for n in row["stopped_in_epoch"].values())
        where += f"/{row['stopped_writing_outputs']}"
        print(
            f"{row['method']:<10} {row['stop']:<8} {row['stops']:>5}  {where:<31}"
            f"{row['resumed_exactly']:>6} {row['epochs_lost']:>5} {row['tracebacks']:>11} "
            f"{row['leftovers']:>10}"
        )
    print()
    print("exact: the run went on to the reference's history.json, report.txt and weights,")
    print("bit for bit, with no committed epoch trained twice. lost: committed epochs trained")
    print("again. leftovers: temp files in the run's folder once it finished.")
    print()
    print(f"{'user mistake':<34} {'exit':>4} {'lines':>5} {'traceback':>9}  message")
    for case in mistakes:
        print(
            f"{case['mistake']:<34} {case['returncode']:>4} {case['stderr_lines']:>5} "
            f"{'yes' if case['traceback'] else 'no':>9}  {case['message'][:100]}"
        )
