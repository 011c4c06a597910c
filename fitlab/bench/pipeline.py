"""How fast each data source feeds Keras: ``python -m fitlab bench pipeline``.

One run measures, on the real training CSV, images per second for:

- the tutorial's generator (``[int(x) for x in line[1:]]``, kept here as it was);
- ``fitlab.load_csv`` (the parser alone) and ``csv_image_generator``, given
  the class names and given a fitted ``LabelBinarizer`` (its targets are looked
  up in a table made once, not made by ``lb.transform`` on every batch);
- ``CSVSequence`` with 1 and 2 workers, threads and processes, cache off and on,
  driven by Keras's own ``PyDataset`` adapter as ``fit`` drives it;
- ``csv_dataset`` with cache off and on;

each without and (where it applies) with the tutorial's augmentation, plus
raw read speeds of the same file as the ceiling. Cached sources are timed
after a first pass has filled the cache; the others after one warm-up pass.

Then memory: a CSV 20× the training file (its rows repeated) is streamed
through ``CSVSequence`` and ``csv_dataset`` in child processes, and their
peak resident set size is read from the OS (``VmHWM`` in ``/proc`` and
``ru_maxrss`` from ``wait4``), beside the same run on the 1× file.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from fitlab.data import count_rows


def main(argv: list[str] | None = None) -> int:
    """Run the pipeline benchmark; print its table (or JSON). Returns the exit status.

    Examples
    --------
    The options (a run takes minutes, so only the help is shown here):

    >>> main(["--help"])
    Traceback (most recent call last):
    ...
    SystemExit: 0
    """
    parser = argparse.ArgumentParser(prog="python -m fitlab bench pipeline", description=__doc__)
    parser.add_argument("--rows", type=int, help="training rows to use (default all; more repeats)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument(
        "--tutorial-rows", type=int, default=256, help="rows timed for the tutorial"
    )
    parser.add_argument("--repeats", type=int, default=2, help="timed passes per source (best)")
    parser.add_argument("--no-augment", action="store_true", help="skip the augmentation column")
    parser.add_argument("--no-memory", action="store_true", help="skip the memory measurement")
    parser.add_argument("--times", type=int, default=20, help="the big file is this many × (20)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument(
        "--child", nargs=3, metavar=("SOURCE", "PATH", "BATCH"), help=argparse.SUPPRESS
    )
    args = parser.parse_args(argv)
    if args.child:
        return _child(*args.child)

    from fitlab.data import prepare_flowers17

    with tempfile.TemporaryDirectory(prefix="fitlab-bench-") as tmp:
        train = prepare_flowers17().train
        path = _sized_copy(train, args.rows, Path(tmp)) if args.rows else train
        result = {"machine": _machine(), "file": str(path), "rows": count_rows(path)}
        result["speed"] = _measure_speed(path, args, Path(tmp))
        if not args.no_memory:
            result["memory"] = _measure_memory(path, args.times, args.batch_size, Path(tmp))
    result["goals"] = _judge(result)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        _print_table(result)
    return 0


# -- the tutorial's generator, as it was -------------------------------------------
def _tutorial_generator(inputPath, bs, lb, mode="train", aug=None):  # noqa: N803 (as written)
    f = open(inputPath)
    while True:
        images = []
        labels = []
        while len(images) < bs:
            line = f.readline()
            if line == "":
                f.seek(0)
                line = f.readline()
                if mode == "eval":
                    break
            line = line.strip().split(",")
            label = line[0]
            image = np.array([int(x) for x in line[1:]], dtype="float32")
            image = image.reshape((64, 64, 3))
            images.append(image)
            labels.append(label)
        labels = lb.transform(np.array(labels))
        if aug is not None:
            (images, labels) = next(aug.flow(np.array(images), labels, batch_size=bs))
        yield (np.array(images), labels)


# -- speed ---------------------------------------------------------------------------
def _measure_speed(path: Path, args, tmp: Path) -> list[dict]:
    """Time every source; one dict per row of the table."""
    from fitlab.data import classes_from_csv

    bs, repeats = args.batch_size, args.repeats
    size = path.stat().st_size
    rows_n = count_rows(path)
    row_bytes = size / rows_n
    classes = classes_from_csv(path)
    aug = None if args.no_augment else _augmentation()
    rows = []

    def add(name, seconds, images, aug_result=None, note=""):
        rate = images / seconds
        row = {"source": name, "images_per_s": rate, "mb_per_s": rate * row_bytes / 1e6}
        row["aug_images_per_s"] = aug_result
        row["note"] = note
        rows.append(row)

    for name, reader in _raw_readers(path).items():
        add(name, _best(reader, repeats), rows_n, note="ceiling: bytes only, no parsing")

    tutorial_path = _sized_copy(path, min(args.tutorial_rows, rows_n), tmp)
    lb = _label_binarizer(classes)
    tut_rows = count_rows(tutorial_path)
    steps = math.ceil(tut_rows / bs)
    add("tutorial generator ([int(x) ...])",
        _best(lambda: _drain(_tutorial_generator(tutorial_path, bs, lb, "train"), steps), 1),
        steps * bs, note=f"{tut_rows} rows, train mode")  # fmt: skip

    from fitlab.data import load_csv
    from fitlab.pipelines import csv_image_generator

    add("fitlab.load_csv (the parser)", _best(lambda: load_csv(path), repeats), rows_n)

    def gen(labels=classes, a=None):
        return _drain(csv_image_generator(path, bs, labels, "eval", a), None)

    aug_rate = _rate(rows_n, _best(lambda: gen(a=aug), 1)) if aug else None
    add("csv_image_generator (eval)", _best(gen, repeats), rows_n, aug_rate)
    add("csv_image_generator (eval, LabelBinarizer)", _best(lambda: gen(lb), repeats), rows_n,
        note="lb= a fitted LabelBinarizer instead of the class names")  # fmt: skip

    for workers in (1, 2):
        for processes in (False, True):
            for cache in (False, True):
                seconds = _time_sequence(path, bs, workers, processes, cache, repeats)
                aug_rate, note = None, ""
                if aug is not None and processes:
                    note = "aug refused: TF layers hang in forked workers"
                elif aug is not None:
                    aug_rate = _rate(
                        rows_n, _time_sequence(path, bs, workers, False, cache, 1, aug)
                    )
                kind = "processes" if processes else "threads"
                name = f"CSVSequence workers={workers} {kind} cache={'on' if cache else 'off'}"
                add(name, seconds, rows_n, aug_rate, note)

    for cache in (False, True):
        seconds = _time_dataset(path, bs, cache, repeats)
        aug_rate = _rate(rows_n, _time_dataset(path, bs, cache, 1, aug)) if aug else None
        add(f"csv_dataset cache={'on' if cache else 'off'}", seconds, rows_n, aug_rate)
    return rows


def _raw_readers(path: Path) -> dict:
    def read_whole():
        with open(path, "rb") as f:
            return len(f.read())

    def read_lines():
        with open(path, "rb", buffering=1 << 20) as f:  # as fitlab.data.csvrows reads lines
            return sum(len(line) for line in f)

    def read_into():
        buf = bytearray(1 << 20)
        view = memoryview(buf)
        total = 0
        with open(path, "rb", buffering=0) as f:
            while n := f.readinto(view):
                total += n
        return total

    return {
        "raw read: readinto a 1 MiB buffer": read_into,
        "raw read: f.read() whole file": read_whole,
        "raw read: for line in f": read_lines,
    }


def _time_sequence(path, bs, workers, processes, cache, repeats, aug=None) -> float:
    """Seconds per epoch of a CSVSequence driven by Keras's PyDataset adapter."""
    from fitlab._private import pydataset_adapter
    from fitlab.pipelines import CSVSequence, rows_in

    seq = CSVSequence(path, bs, cache=cache, augment=aug, workers=workers,
                      use_multiprocessing=processes)  # fmt: skip
    adapter = pydataset_adapter(seq)

    def epoch():
        adapter.on_epoch_begin()
        count = sum(rows_in(batch) for batch in adapter.get_numpy_iterator())
        adapter.on_epoch_end()
        assert count == seq.rows, (count, seq.rows)

    epoch()  # warm-up; fills the cache
    return _best(epoch, repeats)


def _time_dataset(path, bs, cache, repeats, aug=None) -> float:
    from fitlab.pipelines.tfdata import csv_dataset

    ds = csv_dataset(path, bs, cache=cache, augment=aug)

    def epoch():
        for _ in ds:
            pass

    epoch()  # warm-up: traces the functions; fills the cache
    return _best(epoch, repeats)


def _augmentation():
    import fitlab.augment

    return fitlab.augment.make_augmentation(**fitlab.augment.TUTORIAL_AUGMENTATION, seed=0)


def _label_binarizer(classes):
    from sklearn.preprocessing import LabelBinarizer

    return LabelBinarizer().fit(classes)


# -- memory --------------------------------------------------------------------------
def _measure_memory(path: Path, times: int, bs: int, tmp: Path) -> list[dict]:
    """Peak RSS of one streamed pass over the 1× and the ``times``× file, in child processes."""
    big = tmp / f"training_x{times}.csv"
    payload = path.read_bytes()
    with open(big, "wb") as f:
        for _ in range(times):
            f.write(payload)
    rows = []
    for source in ("CSVSequence", "csv_dataset"):
        for factor, csv in ((1, path), (times, big)):
            rows.append({"source": source, "times": factor, **_child_peak(source, csv, bs)})
    big.unlink()
    return rows


def _child_peak(source: str, csv: Path, bs: int) -> dict:
    """Run one streamed pass in a fresh process; its peak RSS as the OS accounts it.

    The child reports its own ``VmHWM``. For ``ru_maxrss`` a small launcher
    process starts it and reads ``RUSAGE_CHILDREN``: a child forked straight
    from this (large) process would inherit this process's RSS in ``ru_maxrss``.
    """
    command = [sys.executable, "-m", "fitlab.bench.pipeline", "--child", source, str(csv), str(bs)]
    launcher = (
        "import resource, subprocess, sys; code = subprocess.call(sys.argv[1:]); "
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); sys.exit(code)"
    )
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    done = subprocess.run([sys.executable, "-c", launcher, *command], capture_output=True, env=env)
    lines = done.stdout.decode().strip().splitlines()
    if done.returncode or len(lines) < 2:
        raise RuntimeError(
            f"memory child for {source} on {csv} failed: {done.stderr.decode()[-2000:]}"
        )
    report = json.loads(lines[-2])
    report["ru_maxrss_mb"] = int(lines[-1]) / 1024  # Linux reports KiB
    return report


def _child(source: str, csv: str, bs: str) -> int:
    """In the child: stream one pass, print the images seen and VmHWM."""
    from fitlab.pipelines import rows_in

    start = time.perf_counter()
    if source == "CSVSequence":
        from fitlab.pipelines import CSVSequence

        seq = CSVSequence(csv, int(bs))
        images = sum(rows_in(seq[i]) for i in range(len(seq)))
    else:
        from fitlab.pipelines.tfdata import csv_dataset

        images = sum(rows_in(batch) for batch in csv_dataset(csv, int(bs)))
    seconds = time.perf_counter() - start
    print(json.dumps({"images": images, "seconds": seconds, "vmhwm_mb": _vmhwm_mb()}))
    return 0


def _vmhwm_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


# -- goals and output ------------------------------------------------------------------
def _judge(result: dict) -> dict:
    """The issue's goals, as ratios from this run."""
    speed = {row["source"]: row for row in result["speed"]}
    tutorial = speed["tutorial generator ([int(x) ...])"]["images_per_s"]
    goals = {}
    for name in ("fitlab.load_csv (the parser)", "csv_image_generator (eval)",
                 "CSVSequence workers=1 threads cache=off"):  # fmt: skip
        goals[f"{name} / tutorial"] = speed[name]["images_per_s"] / tutorial
    goals["csv_image_generator LabelBinarizer / class names"] = (
        speed["csv_image_generator (eval, LabelBinarizer)"]["images_per_s"]
        / speed["csv_image_generator (eval)"]["images_per_s"]
    )
    parser_mb = speed["fitlab.load_csv (the parser)"]["mb_per_s"]
    for name in (n for n in speed if n.startswith("raw read")):
        goals[f"parser MB/s / {name}"] = parser_mb / speed[name]["mb_per_s"]
    goals["csv_dataset cache=on images/s"] = speed["csv_dataset cache=on"]["images_per_s"]
    for source in ("CSVSequence", "csv_dataset"):
        runs = {r["times"]: r for r in result.get("memory", []) if r["source"] == source}
        if len(runs) == 2:
            small, big = (runs[k] for k in sorted(runs))
            goals[f"{source} peak RSS growth MB (VmHWM)"] = big["vmhwm_mb"] - small["vmhwm_mb"]
    return goals


def _print_table(result: dict) -> None:
    m = result["machine"]
    print(f"fitlab bench pipeline — {result['file']} ({result['rows']} rows)")
    print(f"machine: {m['cpus']} CPUs, {m['platform']}, Python {m['python']}, "
          f"load average {m['loadavg']}")  # fmt: skip
    print()
    print(f"{'source':<46}{'images/s':>11}{'MB/s':>9}{'aug img/s':>11}  note")
    for row in result["speed"]:
        aug = row["aug_images_per_s"]
        aug_text = f"{aug:>11.0f}" if aug else f"{'—':>11}"
        print(f"{row['source']:<46}{row['images_per_s']:>11.0f}{row['mb_per_s']:>9.0f}"
              f"{aug_text}  {row['note']}")  # fmt: skip
    if "memory" in result:
        print()
        print(f"{'memory: one streamed pass':<34}{'file':>6}{'images':>8}{'s':>7}"
              f"{'VmHWM MB':>10}{'ru_maxrss MB':>14}")  # fmt: skip
        for r in result["memory"]:
            print(f"{r['source']:<34}{str(r['times']) + '×':>6}{r['images']:>8}{r['seconds']:>7.1f}"
                  f"{r['vmhwm_mb']:>10.0f}{r['ru_maxrss_mb']:>14.0f}")  # fmt: skip
    print()
    print("goals")
    for name, value in result["goals"].items():
        print(f"  {name:<60}{value:>10.2f}")


def _machine() -> dict:
    return {
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "loadavg": " ".join(f"{x:.1f}" for x in os.getloadavg()),
    }


def _best(fn, repeats: int) -> float:
    best = math.inf
    for _ in range(max(1, repeats)):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def _rate(images: int, seconds: float) -> float:
    return images / seconds


def _drain(generator, steps: int | None) -> int:
    from fitlab.pipelines import rows_in  # imports Keras: not for `--help`

    count = 0
    for i, batch in enumerate(generator):
        count += rows_in(batch)
        if steps is not None and i + 1 >= steps:
            break
    return count


def _sized_copy(path: Path, rows: int, tmp: Path) -> Path:
    """The first ``rows`` rows of ``path`` (repeating them when there are fewer)."""
    lines = [line for line in path.read_bytes().splitlines(keepends=True) if line.strip()]
    out = tmp / f"{path.stem}_{rows}.csv"
    with open(out, "wb") as f:
        for i in range(rows):
            f.write(lines[i % len(lines)])
    return out


if __name__ == "__main__":
    sys.exit(main())
