"""What two replicas cost on this machine: ``python -m fitlab bench distributed``.

A scaling table for data-parallel training on the CPU: MiniVGGNet at 64×64×3
with 17 classes, trained by :class:`fitlab.CompiledLoop` (the legacy SGD,
categorical cross-entropy) in three *configurations*:

- ``one``: one process, no strategy (the reference);
- ``two-devices``: one process, ``MirroredStrategy`` over two logical CPU
  devices (``tf.config.set_logical_device_configuration``);
- ``two-workers``: two processes on loopback, ``MultiWorkerMirroredStrategy``
  (a cluster of :func:`fitlab.cluster.free_ports` and
  :func:`fitlab.cluster.tf_config`, joined by :func:`fitlab.cluster.join_cluster`).

With two replicas the model is built with ``synchronized=True`` (batch norm
over the *global* batch, what one process computes); with one replica it is
the plain model. The batch size is the *global* batch: each replica trains
half of it and the gradients are summed by an all-reduce.

Each configuration runs in fresh processes of its own (``python -m
fitlab.bench.distributed --child CONFIGURATION ...``; the strategy is set up
before TensorFlow does anything else, as it must be), one after the other, so
that the configurations do not share a TensorFlow runtime or compete for the
cores. The children see no GPU (``CUDA_VISIBLE_DEVICES=""``): the three rows
compare like with like, on the CPU. They write their numbers as JSON; the
parent collects them, stops them all if one fails, times out or the run is
interrupted, and they die with it (``PR_SET_PDEATHSIG``) however it dies.

Data. In-memory synthetic images (random uint8 pixels, random labels),
``--rows`` rows; ``--csv`` trains on a training CSV's first rows instead
(repeated when it has fewer). Each epoch is ``rows // batch`` whole global
batches (a ``tf.data`` dataset, the last partial batch dropped).

Speed. Per batch size, a fresh model trains one warm-up epoch (tracing), then
``--epochs`` timed epochs, each one ``loop.fit(dataset, 1)`` call. An
epoch's figure is ``loop.images_per_second``: the steady state, without the
epoch's first step. It counts this process's replicas; two workers train in
lockstep, so the chief's figure × 2 is the global images/s (worker 1's is in
the JSON). The table shows the median over the timed epochs ± half their
range as a share of it, and the speed-up against ``one`` at the same batch.

All-reduce share. In the same process and under the same strategy, after
training: a ``tf.function`` running ``strategy.run`` of a replica-context
``all_reduce("sum", ...)`` of float32 zeros shaped like the model's trainable
variables (what each step's gradient all-reduce sends, by the same path,
batched), timed over ``--repetitions`` calls after 3 warm-up calls, median.
The share is that time over the measured step time (global batch / global
images/s). It is the communication alone: the step also waits for
synchronized batch norm's small all-reduces (one per statistic, layer and
pass) and one for the batch's rows, each about the latency of a small
all-reduce (measured too, printed under the table, not in the share).

Why no speed-up is expected on a small machine: one process already uses
every core (TensorFlow's intra-op threads split each convolution across
them). Two replicas each do half the batch, but on the same cores, so the
compute per step is the same (often more: half batches use the cores less
well); the all-reduce comes on top, and for two workers the gradients also
go through gRPC on loopback (serialised, copied through the kernel) while two
processes' thread pools compete for the same cores. The table measures what
distribution costs; it pays off only when each replica has compute of its own.

Defaults: 512 rows, batch 32 and 64, 3 timed epochs, 20 all-reduce
repetitions: several minutes on two cores. ``--quick`` (32 rows, batch 8,
1 timed epoch, 5 repetitions) takes 1–2 minutes there, most of it starting
TensorFlow and tracing the step in four fresh processes: for tests, its
figures are noise. Batch sizes must be even when a configuration has two
replicas.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.metadata
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from fitlab.machine import cpu_name, load_text

SIZE, DEPTH, CLASSES = 64, 3, 17
LOSS = "categorical_crossentropy"
CONFIGS = ("one", "two-devices", "two-workers")
REPLICAS = {"one": 1, "two-devices": 2, "two-workers": 2}
PROCESSES = {"one": 1, "two-devices": 1, "two-workers": 2}
DESCRIPTION = {
    "one": "one process, no strategy",
    "two-devices": "one process, MirroredStrategy over 2 logical CPUs",
    "two-workers": "2 processes on loopback, MultiWorkerMirroredStrategy",
}
DEFAULTS = {
    "full": {"rows": 512, "batch_sizes": [32, 64], "epochs": 3, "repetitions": 20},
    "quick": {"rows": 32, "batch_sizes": [8], "epochs": 1, "repetitions": 5},
}
#: Warm-up calls before the all-reduce is timed.
ALLREDUCE_WARMUP = 3
#: How often the parent looks at its children, in seconds.
POLL = 0.2


class ConfigurationFailed(RuntimeError):
    """A configuration's process failed or ran out of time; its processes were stopped."""


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, print its table (and write ``--json``). Returns the exit status.

    Examples
    --------
    The options (a run takes minutes, so only the help is shown here):

    >>> main(["--help"])
    Traceback (most recent call last):
    ...
    SystemExit: 0
    """
    parser = argparse.ArgumentParser(
        prog="python -m fitlab bench distributed",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--configs", nargs="+", choices=CONFIGS, default=list(CONFIGS), help="default: all three"
    )
    parser.add_argument(
        "--batch-sizes", type=int, nargs="+", help="global batch sizes (default 32 64; quick 8)"
    )
    parser.add_argument("--rows", type=int, help="rows per epoch (default 512; quick 32)")
    parser.add_argument(
        "--epochs", type=int, help="timed epochs per batch size, after 1 warm-up (default 3)"
    )
    parser.add_argument(
        "--repetitions", type=int, help="timed all-reduce calls, after 3 warm-up (default 20)"
    )
    parser.add_argument(
        "--csv", type=Path, help="train on this CSV's first rows (default: synthetic images)"
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=1800.0,
        help="seconds a configuration may take before it is stopped (default 1800)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="32 rows, batch 8, 1 timed epoch, 5 all-reduce repetitions (for tests)",
    )
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the numbers here")
    # A child: one process of one configuration (the parent starts it).
    parser.add_argument("--child", choices=CONFIGS, help=argparse.SUPPRESS)
    parser.add_argument("--child-out", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--tf-config", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    defaults = DEFAULTS["quick" if args.quick else "full"]
    settings = {
        "rows": defaults["rows"] if args.rows is None else args.rows,
        "batch_sizes": args.batch_sizes or defaults["batch_sizes"],
        "epochs": defaults["epochs"] if args.epochs is None else args.epochs,
        "repetitions": defaults["repetitions"] if args.repetitions is None else args.repetitions,
        "csv": str(args.csv) if args.csv else None,
        "defaults": "quick" if args.quick else "full",
    }
    for name in ("epochs", "repetitions"):
        if settings[name] < 1:
            parser.error(f"--{name} must be at least 1")
    if min(settings["batch_sizes"]) < 1:
        parser.error("--batch-sizes must be positive")
    split = any(REPLICAS[c] > 1 for c in args.configs)
    if split and any(b % 2 for b in settings["batch_sizes"]):
        parser.error("--batch-sizes must be even (a global batch is split over 2 replicas)")
    if settings["rows"] < max(settings["batch_sizes"]):
        parser.error("--rows must be at least the largest batch size (whole batches only)")
    if args.csv is not None and not args.csv.is_file():
        parser.error(f"--csv {args.csv}: no such file")
    if args.child:
        return _child(args.child, settings, args.child_out, args.tf_config)

    load_before = os.getloadavg()
    children = {}
    try:
        with tempfile.TemporaryDirectory(prefix="fitlab-bench-distributed-") as tmp:
            for config in args.configs:
                _progress(f"{config}: {DESCRIPTION[config]} ...")
                children[config] = _run_configuration(config, settings, Path(tmp), args.timeout)
                for batch in children[config][0]["batches"]:
                    _progress(
                        f"  batch {batch['batch_size']}: "
                        f"{statistics.median(batch['images_per_second']):.1f} img/s"
                    )
    except ConfigurationFailed as error:
        print(f"bench distributed: {error}", file=sys.stderr)
        return 1
    report = {
        "machine": _machine(),
        "load_average_before": list(load_before),
        "load_average_after": list(os.getloadavg()),
        "settings": settings,
        "rows": table_rows(children),
        "children": children,
    }
    print_table(report)
    if args.json:
        from fitlab.files import write_atomically

        write_atomically(args.json, json.dumps(report, indent=2).encode() + b"\n")
    return 0


def _progress(line: str) -> None:
    # On stderr: a configuration takes from seconds to minutes.
    print(line, file=sys.stderr, flush=True)


# -- the parent: one configuration's processes ------------------------------------------
def _run_configuration(config: str, settings: dict, folder: Path, timeout: float) -> list[dict]:
    """Start ``config``'s processes, wait for all, return their reports (the chief's first)."""
    from fitlab.cluster import die_with_parent, free_ports, stop_all, tf_config

    workers = PROCESSES[config]
    addresses = [f"127.0.0.1:{port}" for port in free_ports(workers)] if workers > 1 else []
    outs = [folder / f"{config}-{index}.json" for index in range(workers)]
    logs = [folder / f"{config}-{index}.log" for index in range(workers)]
    common = [
        "--child", config,
        "--configs", config,
        "--rows", str(settings["rows"]),
        "--batch-sizes", *map(str, settings["batch_sizes"]),
        "--epochs", str(settings["epochs"]),
        "--repetitions", str(settings["repetitions"]),
        *(["--csv", settings["csv"]] if settings["csv"] else []),
    ]  # fmt: skip
    processes: list[subprocess.Popen] = []
    try:
        for index in range(workers):
            command = [sys.executable, "-m", "fitlab.bench.distributed", *common]
            command += ["--child-out", str(outs[index])]
            if addresses:
                command += ["--tf-config", tf_config(addresses, index)]
            with open(logs[index], "wb") as log:
                processes.append(
                    subprocess.Popen(
                        command,
                        env=_child_env(),
                        stdin=subprocess.DEVNULL,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        preexec_fn=die_with_parent(os.getpid()),
                    )
                )
        _wait(config, processes, logs, timeout)
    finally:  # also on Ctrl-C: no child outlives this call
        stop_all(processes)
    return [json.loads(out.read_text()) for out in outs]


def _child_env() -> dict[str, str]:
    package_root = str(Path(__file__).resolve().parents[2])
    path = os.environ.get("PYTHONPATH")
    return {
        **os.environ,
        "KERAS_BACKEND": "tensorflow",
        "CUDA_VISIBLE_DEVICES": "",
        "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2"),
        "PYTHONPATH": package_root + (os.pathsep + path if path else ""),
    }


def _wait(config: str, processes: list[subprocess.Popen], logs: list[Path], timeout: float):
    """Until every process has exited 0; raise :class:`ConfigurationFailed` otherwise."""
    deadline = time.monotonic() + timeout
    while True:
        codes = [p.poll() for p in processes]
        failed = [(i, c) for i, c in enumerate(codes) if c not in (None, 0)]
        if failed:
            index, code = min(failed, key=lambda item: (item[1] >= 0, item[0]))
            how = f"was killed by signal {-code}" if code < 0 else f"exited with status {code}"
            raise ConfigurationFailed(
                f"{config}: process {index} {how}; its log ends:\n{_tail(logs[index])}"
            )
        if all(c == 0 for c in codes):
            return
        if time.monotonic() > deadline:
            raise ConfigurationFailed(
                f"{config}: not done after {timeout:.0f} s (--timeout); stopped. "
                f"Process 0's log ends:\n{_tail(logs[0])}"
            )
        time.sleep(POLL)


def _tail(log: Path, lines: int = 20) -> str:
    try:
        text = log.read_text(errors="replace").strip()
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:]) or "(nothing yet)"


# -- a child: one process of one configuration --------------------------------------------
def _child(config: str, settings: dict, out: Path | None, cluster: str | None) -> int:
    """Train and time in this fresh process; write the report to ``out``."""
    if out is None:
        raise SystemExit("--child needs --child-out")
    started = time.perf_counter()
    # The strategy before anything else TensorFlow does: devices and collectives are set
    # up once per process.
    if config == "two-workers":
        if not cluster:
            raise SystemExit("--child two-workers needs --tf-config")
        from fitlab.cluster import join_cluster

        strategy = join_cluster(cluster)
        index = json.loads(cluster)["task"]["index"]
    elif config == "two-devices":
        import tensorflow as tf

        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * 2
        )
        strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
        index = 0
    else:
        strategy, index = None, 0
    import tensorflow as tf

    replicas = strategy.num_replicas_in_sync if strategy else 1
    local = len(strategy.extended.worker_devices) if strategy else 1
    x, y, classes = _data(settings)
    report = {
        "config": config,
        "worker": index,
        "strategy": type(strategy).__name__ if strategy else None,
        "replicas": replicas,
        "local_replicas": local,
        "synchronized_batch_norm": replicas > 1,
        "classes": classes,
        "intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads() or "default",
        "batches": [],
    }
    report["seconds_to_strategy_and_data"] = time.perf_counter() - started
    model = None
    for batch_size in settings["batch_sizes"]:
        model, batch = _train(strategy, x, y, classes, batch_size, settings["epochs"])
        # This process's replicas are local/replicas of each global batch, in lockstep.
        batch["images_per_second"] = [
            r * replicas / local for r in batch["local_images_per_second"]
        ]
        report["batches"].append(batch)
    if strategy is not None:
        report["allreduce"] = _time_allreduce(strategy, model, settings["repetitions"])
    report["seconds"] = time.perf_counter() - started
    out.write_text(json.dumps(report, indent=2))
    return 0


def _data(settings: dict) -> tuple[np.ndarray, np.ndarray, int]:
    """(uint8 images, one-hot float32 labels, classes): synthetic, or the CSV's first rows."""
    rows = settings["rows"]
    if settings["csv"] is None:
        rng = np.random.default_rng(0)
        x = rng.integers(0, 256, size=(rows, SIZE, SIZE, DEPTH), dtype=np.uint8)
        codes = rng.integers(0, CLASSES, size=rows)
        classes = CLASSES
    else:
        from fitlab.data import CLASS_NAMES, classes_from_csv, load_csv
        from fitlab.data.labels import encode_labels

        path = Path(settings["csv"])
        names = sorted(set(CLASS_NAMES) | set(classes_from_csv(path)))
        images, labels = load_csv(path)
        if images.shape[1:] != (SIZE, SIZE, DEPTH):
            raise SystemExit(f"{path}: images are {images.shape[1:]}, not {SIZE}x{SIZE}x{DEPTH}")
        repeat = np.arange(rows) % len(images)
        x, codes = images[repeat], np.asarray(encode_labels(labels, names, path))[repeat]
        classes = len(names)
    y = np.eye(classes, dtype="float32")[codes]
    return x, y, classes


def _train(strategy, x, y, classes: int, batch_size: int, epochs: int):
    """A fresh model: one warm-up epoch, then ``epochs`` timed ones; (model, its numbers)."""
    import contextlib

    import keras
    import tensorflow as tf

    from fitlab.loops.compiled import CompiledLoop
    from fitlab.models import MiniVGGNet
    from fitlab.optim import legacy_sgd

    rows = len(x) // batch_size * batch_size
    dataset = tf.data.Dataset.from_tensor_slices((x[:rows], y[:rows]))
    dataset = dataset.batch(batch_size, drop_remainder=True)
    replicas = strategy.num_replicas_in_sync if strategy else 1
    start_build = time.perf_counter()
    with strategy.scope() if strategy else contextlib.nullcontext():
        keras.utils.set_random_seed(0)
        model = MiniVGGNet.build(SIZE, SIZE, DEPTH, classes, synchronized=replicas > 1)
        optimizer = legacy_sgd()
    loop = CompiledLoop(model, optimizer, LOSS, strategy=strategy)
    rates, seconds = [], []
    built = time.perf_counter()
    for _ in range(1 + epochs):
        start = time.perf_counter()
        loop.fit(dataset, 1, verbose=0)
        seconds.append(time.perf_counter() - start)
        rates.append(loop.images_per_second)
    return model, {
        "batch_size": batch_size,
        "rows": rows,
        "steps_per_epoch": rows // batch_size,
        "warmup_seconds": seconds[0],
        "build_seconds": built - start_build,
        "epoch_seconds": seconds[1:],
        "local_images_per_second": rates[1:],
    }


def _time_allreduce(strategy, model, repetitions: int) -> dict:
    """Median ms of one sum all-reduce of the gradients' shapes, and of one float32 scalar."""
    import tensorflow as tf

    shapes = [tuple(v.shape) for v in model.trainable_variables]

    def median_ms(tensor_shapes) -> list[float]:
        # Mirrored variables of zeros: each replica reads its own copy, on its own device,
        # as it reads its gradients (created outside the timed function, so not timed).
        with strategy.scope():
            buffers = [tf.Variable(tf.zeros(s, tf.float32), trainable=False) for s in tensor_shapes]

        def replica():
            values = [b.read_value() for b in buffers]
            return tf.distribute.get_replica_context().all_reduce("sum", values)

        reduce = tf.function(lambda: strategy.run(replica), autograph=False)
        times = []
        for i in range(ALLREDUCE_WARMUP + repetitions):
            start = time.perf_counter()
            reduced = reduce()
            for part in strategy.experimental_local_results(reduced[-1]):
                part.numpy()  # waits for the all-reduce
            if i >= ALLREDUCE_WARMUP:
                times.append(1000 * (time.perf_counter() - start))
        return times

    gradients = median_ms(shapes)
    scalar = median_ms([()])
    parameters = int(sum(np.prod(s, dtype=np.int64) for s in shapes))
    return {
        "tensors": len(shapes),
        "parameters": parameters,
        "megabytes": 4 * parameters / 1e6,
        "repetitions": repetitions,
        "ms": statistics.median(gradients),
        "ms_each": gradients,
        "scalar_ms": statistics.median(scalar),
    }


# -- the report ------------------------------------------------------------------------
def table_rows(children: dict[str, list[dict]]) -> list[dict]:
    """One row per batch size and configuration (the chief's numbers), batch sizes first.

    Examples
    --------
    >>> one = {"replicas": 1, "batches": [{"batch_size": 8, "images_per_second": [90, 110]}]}
    >>> two = {"replicas": 2, "allreduce": {"ms": 10.0},
    ...        "batches": [{"batch_size": 8, "images_per_second": [80.0]}]}
    >>> rows = table_rows({"one": [one], "two-devices": [two]})
    >>> [(r["configuration"], r["images_per_second"], round(r["speedup"], 2)) for r in rows]
    [('one', 100.0, 1.0), ('two-devices', 80.0, 0.8)]
    >>> rows[0]["spread"], rows[1]["step_ms"], rows[1]["allreduce_share_percent"]
    (0.1, 100.0, 10.0)
    """
    rows = []
    for config, reports in children.items():
        chief = reports[0]
        for batch in chief["batches"]:
            rates = batch["images_per_second"]
            median = float(statistics.median(rates))
            step_ms = 1000 * batch["batch_size"] / median
            allreduce = chief.get("allreduce", {}).get("ms")
            rows.append(
                {
                    "configuration": config,
                    "replicas": chief["replicas"],
                    "batch_size": batch["batch_size"],
                    "images_per_second": median,
                    "spread": (max(rates) - min(rates)) / 2 / median,
                    "step_ms": step_ms,
                    "allreduce_ms": allreduce,
                    "allreduce_share_percent": None
                    if allreduce is None
                    else 100 * allreduce / step_ms,
                }
            )
    reference = {r["batch_size"]: r for r in rows if r["configuration"] == "one"}
    for row in rows:
        one = reference.get(row["batch_size"])
        row["speedup"] = row["images_per_second"] / one["images_per_second"] if one else None
    order = {config: i for i, config in enumerate(CONFIGS)}
    return sorted(rows, key=lambda r: (r["batch_size"], order[r["configuration"]]))


def _machine() -> dict:
    versions = {}
    for package in ("tensorflow", "keras"):
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = None
    return {
        "cpu": cpu_name(),
        "cpu_cores": os.cpu_count(),
        "versions": versions,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
    }


def print_table(report: dict) -> None:
    """The report as text: machine and load, the table, the notes."""
    m, s = report["machine"], report["settings"]
    versions = ", ".join(f"{k} {v}" for k, v in m["versions"].items() if v)
    data = (
        f"{s['rows']} rows of {s['csv']} (its first rows, repeated if fewer)"
        if s["csv"]
        else f"{s['rows']} rows of synthetic uint8 images in memory"
    )
    for line in (
        f"fitlab bench distributed — MiniVGGNet {SIZE}x{SIZE}x{DEPTH} by CompiledLoop, "
        f"{data}; synchronized batch norm where replicas > 1",
        f"machine: CPU {m['cpu']}, {m['cpu_cores']} cores (children see no GPU); {versions}; "
        f"Python {m['python']}; {m['date']}",
        f"{s['epochs']} timed epoch(s) per batch size after 1 warm-up; all-reduce timed over "
        f"{s['repetitions']} calls after {ALLREDUCE_WARMUP}; defaults: {s['defaults']}",
        "load average before: " + load_text(report["load_average_before"]),
    ):
        print(line)
    print()
    head = (
        f"{'configuration':<15}{'replicas':>9}{'batch':>7}{'img/s':>10}{'±':>6}"
        f"{'speed-up':>10}{'all-reduce ms':>15}{'share':>8}"
    )
    print(head)
    print("-" * len(head))
    for r in report["rows"]:
        speedup = "—" if r["speedup"] is None else f"{r['speedup']:.2f}x"
        allreduce = "—" if r["allreduce_ms"] is None else f"{r['allreduce_ms']:.1f}"
        share = (
            "—" if r["allreduce_share_percent"] is None else f"{r['allreduce_share_percent']:.1f}%"
        )
        print(
            f"{r['configuration']:<15}{r['replicas']:>9}{r['batch_size']:>7}"
            f"{r['images_per_second']:>10.1f}{r['spread']:>6.0%}{speedup:>10}"
            f"{allreduce:>15}{share:>8}"
        )
    print()
    for note in _notes(report):
        print(note)
    print()
    print("load average after: " + load_text(report["load_average_after"]))


def _notes(report: dict) -> list[str]:
    cores = report["machine"]["cpu_cores"]
    notes = [f"{c}: {DESCRIPTION[c]}." for c in report["children"]]
    notes.append(
        "img/s: global training images per second, the median over the timed epochs "
        "(CompiledLoop.images_per_second, each epoch without its first step), ± half their "
        "range; two-workers: the chief's figure x 2 (the workers train in lockstep)."
    )
    for config, reports in report["children"].items():
        allreduce = reports[0].get("allreduce")
        if allreduce:
            notes.append(
                f"all-reduce ms ({config}): one sum all-reduce of zeros shaped like the "
                f"{allreduce['tensors']} trainable variables ({allreduce['parameters']:,} "
                f"float32, {allreduce['megabytes']:.1f} MB), median of "
                f"{allreduce['repetitions']}, same process and strategy: the communication "
                f"alone; share = that / step time. One small (scalar) all-reduce takes "
                f"{allreduce['scalar_ms']:.2f} ms; synchronized batch norm adds several per "
                "layer and step, not counted in the share."
            )
    notes.append(
        "two-workers: each worker reads every row and keeps its half of each global batch "
        "(tf.data AutoShardPolicy.DATA, as CompiledLoop sets it)."
    )
    notes.append(
        f"Why no speed-up is expected here: one process already spreads each step over all "
        f"{cores} cores (TensorFlow's intra-op threads). Two replicas each do half the global "
        f"batch, but on the same {cores} cores, so the machine's total compute per step is the "
        "same (or worse: half batches keep the cores less busy) and the step can only get "
        "slower: the gradient all-reduce and synchronized batch norm's all-reduces come on "
        "top, and two workers also send the gradients through gRPC on loopback (serialised "
        "and copied through the kernel) while their two thread pools compete for the same "
        "cores. A speed-up above 1.00x on such a machine is noise (other load; --quick's few "
        "steps). Replicas pay off only when each has compute of its own (machines or "
        "accelerators)."
    )
    return notes


if __name__ == "__main__":
    sys.exit(main())
