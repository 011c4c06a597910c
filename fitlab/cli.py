"""The command line: ``python -m fitlab data | train | worker | bench NAME``.

Examples
--------
::

    python -m fitlab data --archive ~/Downloads/17flowers.tgz
    python -m fitlab train --method generator --epochs 75 --out runs/generator
    python -m fitlab train --backend jax --method loop --epochs 75 --out runs/loop-jax
    python -m fitlab train --method loop --workers 2 --epochs 75 --out runs/loop-2-workers
    python -m fitlab bench pipeline --json
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import sys
import time
from pathlib import Path

from fitlab.cluster import COLLECTIVE_TIMEOUT  # no heavy imports: the CLI starts at once
from fitlab.config import (
    BACKEND_ENV,
    BACKENDS,
    BENCHMARKS,
    METHODS,
    MULTI_WORKER_FIT,
    RECIPES,
    TENSORFLOW_REQUIREMENT,
    XLA_GPU_DETERMINISM,
    default_backend,
)


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the exit status.

    A mistake in the input (a bad argument, a path that cannot be written, a
    malformed CSV or archive) prints one line, ``fitlab COMMAND: error: what is
    wrong (which file) — what to do``, and returns 2; ``--debug`` shows the
    traceback instead. Anything else is a bug in fitlab and raises.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> file = pathlib.Path(tempfile.mkdtemp()) / "a-file"
    >>> _ = file.write_text("")
    >>> main(["train", "--method", "fit", "--out", str(file / "run")])
    2
    """
    parser = _parser()
    args, rest = parser.parse_known_args(argv)
    if args.command != "bench" and rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    try:
        return args.run(args, rest)
    except KeyboardInterrupt:
        if getattr(args, "debug", False):
            raise
        message = f"interrupted{_AFTER_INTERRUPT[args.command]}"
        print(f"fitlab {args.command}: {message}", file=sys.stderr)
        return 130  # 128 + SIGINT, as shells report a process stopped by Ctrl-C
    except Exception as exc:
        message = user_error(exc)
        if message is None or getattr(args, "debug", False):
            raise
        print(f"fitlab {args.command}: error: {message}", file=sys.stderr)
        return 2


def user_error(exc: BaseException) -> str | None:
    """The one-line message for an exception caused by the user's input, else None.

    Examples
    --------
    >>> user_error(NotADirectoryError(20, "Not a directory", "runs/x/out"))
    'runs/x/out: not a directory, or a file stands in its path; choose another path'
    >>> user_error(KeyError("a bug")) is None
    True
    """
    from PIL import Image

    from fitlab.cluster import WorkerFailed, lost_peer
    from fitlab.data import DatasetError

    if isinstance(exc, WorkerFailed):
        return str(exc)
    if lost_peer(exc) is not None:
        return lost_peer(exc)
    if isinstance(exc, Image.DecompressionBombError):
        return f"{exc} The archive is not the official 17flowers.tgz: use that one"
    if isinstance(exc, OSError) and exc.filename is not None:
        return f"{exc.filename}: {_OS_ERRORS.get(type(exc), exc.strerror or str(exc))}"
    if isinstance(exc, DatasetError | ValueError | OSError):
        return str(exc)
    return None


# What to do after Ctrl-C, per command (nothing was half-written in any of them).
_AFTER_INTERRUPT = {
    "data": "; nothing was half-written: run it again to build the CSVs",
    "train": "; run the same command again to resume after the last finished epoch",
    "worker": "; start the workers again to resume after the chief's last finished epoch",
    "bench": "",
}

# What an OSError about a path means for the user, and what to do.
_OS_ERRORS = {
    PermissionError: "permission denied; choose a folder you can write to",
    FileExistsError: "a file stands where a folder is needed; choose another path",
    NotADirectoryError: "not a directory, or a file stands in its path; choose another path",
    IsADirectoryError: "is a folder where a file is needed; give the file's path",
    FileNotFoundError: "not found; check the path",
}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m fitlab", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)

    data = commands.add_parser("data", help="build the Flowers-17 CSVs from the archive")
    _data_options(data)
    data.add_argument("--size", type=int, default=64, help="image side in pixels (default 64)")
    data.add_argument("--force", action="store_true", help="rebuild even if up to date")
    data.add_argument("--debug", action="store_true", help="show the traceback of an error")
    data.set_defaults(run=_run_data)

    train = commands.add_parser("train", help="the tutorial's train.py, end to end")
    train.add_argument(
        "--method",
        choices=METHODS,
        required=True,
        help="fit (arrays), generator (fit on a data source), "
        "batch (train_on_batch loop), loop (CompiledLoop: a compiled step, TensorFlow or JAX)",
    )
    _train_options(train)
    train.add_argument(
        "--backend",
        choices=BACKENDS,
        default=default_backend(),
        help=f"Keras's backend; every method trains on both (default: ${BACKEND_ENV}, "
        "else tensorflow)",
    )
    train.add_argument(
        "--workers",
        type=int,
        default=1,
        help="train across this many worker processes on this machine "
        "(tf.distribute.MultiWorkerMirroredStrategy; --method loop, TensorFlow); "
        "--batch-size stays the global batch",
    )
    train.add_argument("--debug", action="store_true", help="show the traceback of an error")
    train.set_defaults(run=_run_train)

    worker = commands.add_parser(
        "worker",
        help="one worker of a multi-worker run (train --workers starts them on this machine)",
        description="Train by --method loop as one worker of the cluster described by "
        "--tf-config (or $TF_CONFIG), under tf.distribute.MultiWorkerMirroredStrategy. "
        "Every worker gets the same options; worker 0 writes --out, which every worker "
        "must see (a shared folder) to resume. See docs/multi-worker.md.",
    )
    worker.add_argument(
        "--tf-config",
        help="the cluster as JSON: "
        '\'{"cluster": {"worker": ["host1:port", "host2:port"]}, '
        '"task": {"type": "worker", "index": 0}}\' (default: $TF_CONFIG)',
    )
    worker.add_argument(
        "--collective-timeout",
        type=float,
        default=COLLECTIVE_TIMEOUT,
        help="seconds an all-reduce may wait for the other workers before this worker "
        f"gives up (default {COLLECTIVE_TIMEOUT:.0f}): how long a worker lives on after a "
        "peer on another machine died",
    )
    _train_options(worker)
    worker.add_argument("--debug", action="store_true", help="show the traceback of an error")
    worker.set_defaults(run=_run_worker)

    # No -h of its own: `bench NAME --help` is passed on, so it shows NAME's options.
    bench = commands.add_parser(
        "bench",
        help="benchmarks that print tables",
        description=f"benchmarks: {', '.join(BENCHMARKS)}; "
        "`python -m fitlab bench NAME --help` for options",
        add_help=False,
    )
    bench.add_argument("name", choices=BENCHMARKS)
    bench.set_defaults(run=_run_bench)
    return parser


def _train_options(parser: argparse.ArgumentParser) -> None:
    """The options ``train`` and ``worker`` share: what to train, and where."""
    parser.add_argument("--epochs", type=int, default=75)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--no-augment", dest="augment", action="store_false")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument(
        "--recipe",
        choices=RECIPES,
        default="tutorial",
        help="optimizer, schedule, loss and augmentation: the tutorial's (default) or the "
        "improved ones (fitlab/recipes.py)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        required=True,
        help="folder for report, plot, history, model and the checkpoint a rerun resumes from",
    )
    parser.add_argument(
        "--restart",
        action="store_true",
        help="delete the run in --out (checkpoint and outputs) and train from epoch 1",
    )
    parser.add_argument(
        "--deterministic",
        action="store_true",
        help="the same seed gives the same bits (a little slower): TensorFlow's op "
        "determinism; on JAX, XLA's deterministic GPU ops (its CPU ops are already)",
    )
    _data_options(parser)
    parser.add_argument(
        "--csv",
        nargs=2,
        type=Path,
        metavar=("TRAIN", "TEST"),
        help="train on these CSVs (the tutorial's format, any size and classes) "
        "instead of Flowers-17",
    )


def _data_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--archive",
        type=Path,
        help="17flowers.tgz (default: "
        "$FITLAB_FLOWERS17_ARCHIVE, a copy in the data dir, or a download)",
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        help="where the CSVs go (default: $FITLAB_DATA_DIR or ~/.cache/fitlab)",
    )


def _run_data(args: argparse.Namespace, rest: list[str]) -> int:
    from fitlab.data import count_rows
    from fitlab.data.flowers17 import prepare_flowers17

    start = time.perf_counter()
    files = prepare_flowers17(
        data_dir=args.data_dir,
        archive=args.archive,
        size=args.size,
        force=args.force,
        progress=True,
    )
    seconds = time.perf_counter() - start
    # Read from the files, not the manifest: once prepare_flowers17 has let go of
    # the data dir's lock, another build may be replacing the manifest (the CSVs
    # themselves are swapped in by rename, so they are always whole).
    rows = [count_rows(path) for path in (files.train, files.test)]
    megabytes = sum(path.stat().st_size for path in (files.train, files.test)) / 1e6
    print(
        f"flowers17: {rows[0]:,} training + {rows[1]:,} testing rows, "
        f"{args.size}x{args.size}x3, {megabytes:.1f} MB in {files.train.parent} ({seconds:.1f} s)"
    )
    return 0


def _run_train(args: argparse.Namespace, rest: list[str]) -> int:
    from fitlab.files import writable_folder

    _use_backend(args.backend, deterministic=args.deterministic)  # before Keras is imported
    # The paths first: a mistake in them costs a moment, not the backend's start-up.
    for path in args.csv or ():
        open(path, "rb").close()  # raises the OSError that names the path
    writable_folder(args.out)

    if args.workers != 1:
        return _launch_workers(args)
    return _train(args, args.method)


def _train(args: argparse.Namespace, method: str, strategy=None) -> int:
    """Train as ``train`` (or one ``worker``) says; print the run's one-line summary."""
    from fitlab.data import Flowers17Files
    from fitlab.tutorial import train_tutorial

    files = None if args.csv is None else Flowers17Files(*args.csv, ())
    result = train_tutorial(
        method,
        epochs=args.epochs,
        batch_size=args.batch_size,
        augment=args.augment,
        seed=args.seed,
        recipe=args.recipe,
        out=args.out,
        data_dir=args.data_dir,
        archive=args.archive,
        files=files,
        deterministic=args.deterministic,
        restart=args.restart,
        strategy=strategy,
    )
    print(
        f"{method} on {result['backend']}, {args.recipe} recipe, seed {args.seed}: "
        f"accuracy {result['accuracy']:.3f}, macro F1 {result['macro_f1']:.3f} "
        f"(mirror-averaged: {result['tta_accuracy']:.3f}, {result['tta_macro_f1']:.3f}); "
        + ("" if result["finished_before"] else f"{result['wall_s'] / 60:.1f} min; ")
        + f"outputs in {args.out}"
    )
    return 0


def _launch_workers(args: argparse.Namespace) -> int:
    """``train --workers N``: N ``worker`` processes on loopback, watched as one run."""
    from fitlab.cluster import launch

    if args.workers < 1:
        raise ValueError(f"--workers must be at least 1, not {args.workers}")
    if args.method != "loop":
        raise ValueError(MULTI_WORKER_FIT)
    if args.backend != "tensorflow":
        raise ValueError(
            "several workers train with tf.distribute, on the TensorFlow backend: "
            "use --backend tensorflow (JAX spreads over devices with keras.distribution)"
        )
    if args.csv is None:  # once, here, rather than N times at once in the workers
        from fitlab.data.flowers17 import prepare_flowers17

        prepare_flowers17(data_dir=args.data_dir, archive=args.archive, progress=True)
    launch(_worker_args(args), args.workers)
    return 0


def _worker_args(args: argparse.Namespace) -> list[str]:
    """The ``worker`` options that train as ``train``'s ``args`` say."""
    argv = ["--epochs", str(args.epochs), "--batch-size", str(args.batch_size)]
    argv += ["--seed", str(args.seed), "--recipe", args.recipe, "--out", str(args.out)]
    flags = {"--no-augment": not args.augment, "--restart": args.restart}
    flags |= {"--deterministic": args.deterministic, "--debug": args.debug}
    argv += [flag for flag, on in flags.items() if on]
    for option, value in (("--archive", args.archive), ("--data-dir", args.data_dir)):
        if value is not None:
            argv += [option, str(value)]
    if args.csv is not None:
        argv += ["--csv", *map(str, args.csv)]
    return argv


def _run_worker(args: argparse.Namespace, rest: list[str]) -> int:
    """One worker of a ``MultiWorkerMirroredStrategy`` run (see ``docs/multi-worker.md``)."""
    from fitlab.cluster import check_tf_config, join_cluster
    from fitlab.files import writable_folder

    config = args.tf_config or os.environ.get("TF_CONFIG")
    if not config:
        raise ValueError(
            "a worker needs to know its cluster: pass --tf-config JSON or set TF_CONFIG "
            "(or let `python -m fitlab train --workers N` start the workers)"
        )
    check_tf_config(config)
    _use_backend("tensorflow", deterministic=args.deterministic)
    for path in args.csv or ():
        open(path, "rb").close()
    writable_folder(args.out)
    return _train(args, "loop", join_cluster(config, args.collective_timeout))


# How to install each backend's package, for the line that says it is missing.
_INSTALL = {
    "tensorflow": f'pip install "{TENSORFLOW_REQUIREMENT}"',
    "jax": 'pip install "jax[cpu]"',
}


def _use_backend(name: str, *, deterministic: bool) -> None:
    """Make ``name`` the backend Keras loads (``KERAS_BACKEND``), or refuse it in one line.

    Refused (``ValueError``, which ``main`` prints as one line) when fitlab does not
    train on it (a ``KERAS_BACKEND`` of another name), when its package is not
    installed, or when Keras is already loaded on another backend in this process.
    With ``deterministic`` on JAX it adds XLA's deterministic GPU ops to
    ``XLA_FLAGS``, which JAX reads once, when it starts (see ``train_tutorial``).
    """
    if name not in BACKENDS:
        raise ValueError(
            f"{BACKEND_ENV}={name}: fitlab trains on {' or '.join(BACKENDS)}; "
            "choose one with --backend"
        )
    try:
        installed = importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        installed = False
    if not installed:
        others = " or ".join(b for b in BACKENDS if b != name)
        raise ValueError(
            f"the {name} backend needs the {name} package, which is not installed: "
            f"{_INSTALL[name]}, or train on another backend (--backend {others})"
        )
    keras = sys.modules.get("keras")
    if keras is not None and keras.backend.backend() != name:
        raise ValueError(
            f"Keras is already loaded on {keras.backend.backend()} in this process; to train "
            f"on {name}, start a new Python with {BACKEND_ENV}={name}"
        )
    os.environ[BACKEND_ENV] = name
    if deterministic and name == "jax" and "jax" not in sys.modules:
        flags = os.environ.get("XLA_FLAGS", "").split()
        if XLA_GPU_DETERMINISM not in flags:
            os.environ["XLA_FLAGS"] = " ".join([*flags, XLA_GPU_DETERMINISM])


def _run_bench(args: argparse.Namespace, rest: list[str]) -> int:
    return importlib.import_module(f"fitlab.bench.{args.name}").main(rest)
