"""The benchmarks run on small data and report what they measure.

``bench loops`` times whole epochs in rounds after a warm-up (``fitlab.bench.rounds``).
"""

from __future__ import annotations

import json

import pytest

from fitlab.bench import loops
from fitlab.bench.rounds import time_in_rounds


def test_time_in_rounds_rotates_the_ways_and_leaves_the_warm_up_out_of_the_median():
    now = 0.0
    calls: list[str] = []
    # Seconds of each call of each way: the warm-up first, then one per round.
    durations = {"a": [10.0, 1.0, 5.0, 2.0], "b": [20.0, 2.0, 2.0, 2.0], "c": [30.0, 3.0, 4.0, 9.0]}

    def way(name):
        def epoch():
            nonlocal now
            now += durations[name][calls.count(name)]
            calls.append(name)

        return epoch

    times = time_in_rounds({name: way(name) for name in "abc"}, rounds=3, clock=lambda: now)

    assert calls == list("abcabcbcacab")  # warm-up, then each round one way later
    assert times.orders == [tuple("abc"), tuple("bca"), tuple("cab")]
    assert {name: calls.count(name) for name in "abc"} == {"a": 4, "b": 4, "c": 4}
    assert times.first_s == {"a": 10.0, "b": 20.0, "c": 30.0}
    assert times.seconds["a"] == [1.0, 5.0, 2.0]  # in round order, the warm-up not among them
    assert times.median_s("a") == 2.0 and times.startup_s("a") == 8.0
    a = times.summary(images_per_epoch={"a": 64, "b": 64, "c": 80})["a"]
    assert (a["images_per_second"], a["images_per_second_min"], a["images_per_second_max"]) == (
        32.0,
        12.8,
        64.0,
    )
    assert times.ratios(64, reference="b") == {"a": 1.0, "b": 1.0, "c": 0.5}
    table = times.table(64, reference="b", labels={"b": "fit (arrays)"})
    assert "× fit (arrays)" in table and "start-up s" in table and "load average" in table
    with pytest.raises(ValueError, match="rounds must be at least 1"):
        time_in_rounds({"a": way("a")}, rounds=0)


@pytest.mark.slow
def test_bench_loops_times_every_way_in_rounds_on_a_small_csv(tmp_path, capsys):
    from fitlab import make_synthetic_csv

    csv = make_synthetic_csv(tmp_path / "train.csv", rows=40, size=16)
    out = tmp_path / "report" / "loops.json"
    argv = ["--csv", str(csv), "--rows", "24", "--batch-size", "8", "--rounds", "1"]
    assert loops.main([*argv, "--json", str(out)]) == 0

    report = json.loads(out.read_text())
    assert report["rows"] == 24 and report["batch_size"] == 8 and report["rounds"] == 1
    assert list(report["ways"]) == list(loops.DEFAULT_WAYS)  # every way, on TensorFlow
    for way, result in report["ways"].items():
        assert result["images_per_epoch"] == 24, way
        assert len(result["epoch_s"]) == 1 and result["median_s"] == result["epoch_s"][0]
        assert result["images_per_second"] > 0 and result["spread"] == 0.0
        assert result["first_epoch_s"] > 0
        assert result["startup_s"] == result["first_epoch_s"] - result["median_s"]
    assert report["ratios"]["fit_arrays"] == 1.0 and set(report["ratios"]) == set(report["ways"])
    assert len(report["load_average_before"]) == 3 and report["machine"]["backend"]

    table = capsys.readouterr().out
    for way in loops.DEFAULT_WAYS:
        assert loops.LABELS[way] in table
    assert "load average" in table and "start-up s" in table and "× fit (arrays)" in table


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--rounds", "0"], "--rounds must be at least 1"),
        (["--batch-size", "0"], "--batch-size must be at least 1"),
        (["--rows", "-3"], "--rows must be at least 1"),
        (["--ways", "fit_everything"], "invalid choice: 'fit_everything'"),
    ],
)
def test_bench_loops_refuses_bad_options(argv, message, capsys):
    with pytest.raises(SystemExit) as stop:
        loops.main(argv)
    assert stop.value.code == 2
    assert message in capsys.readouterr().err


def test_bench_loops_refuses_more_rows_than_the_csv_has(tmp_path, capsys):
    from fitlab import make_synthetic_csv

    csv = make_synthetic_csv(tmp_path / "train.csv", rows=5, size=4)
    with pytest.raises(SystemExit) as stop:
        loops.main(["--csv", str(csv), "--rows", "6"])
    assert stop.value.code == 2
    assert f"--rows 6: {csv} has only 5 rows" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.realdata
def test_bench_pipeline_compares_the_generator_given_a_label_binarizer(capsys, flowers17_csvs):
    from fitlab.bench import pipeline

    argv = ["--rows", "64", "--tutorial-rows", "32", "--repeats", "1", "--no-augment"]
    assert pipeline.main([*argv, "--no-memory", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    sources = [row["source"] for row in report["speed"]]
    assert "csv_image_generator (eval, LabelBinarizer)" in sources
    assert "csv_image_generator LabelBinarizer / class names" in report["goals"]


def test_bench_name_help_shows_that_benchmarks_options(capsys):
    from fitlab import cli

    with pytest.raises(SystemExit) as stop:
        cli.main(["bench", "pipeline", "--help"])
    assert stop.value.code == 0
    assert "python -m fitlab bench pipeline" in capsys.readouterr().out


@pytest.mark.slow
def test_bench_gpu_times_every_way_feed_and_precision(tmp_path, capsys):
    """The smallest run: 8 rows, batch 8, one timed epoch; a row per way, feed and precision."""
    from fitlab import make_synthetic_csv
    from fitlab.bench import gpu

    csv = make_synthetic_csv(tmp_path / "train.csv", rows=8, size=64)
    out = tmp_path / "gpu.json"
    argv = ["--csv", str(csv), "--quick", "--rows", "8", "--batch-sizes", "8", "--mixed", "arrays"]
    assert gpu.main([*argv, "--json", str(out)]) == 0
    table = capsys.readouterr().out
    report = json.loads(out.read_text())

    assert report["machine"]["backend"] == "tensorflow"
    assert report["rows"] == 8 and report["classes"] == 17
    assert report["flops"]["training_flops_per_image"] == 3 * 212_616_192
    cells = {(c["way"], c["feed"], c["precision"]) for c in report["cells"]}
    fed = {("fit", feed) for feed in gpu.FEEDS} | {
        ("CompiledLoop", feed) for feed in gpu.FEEDS if feed != "sequence-processes"
    }
    assert cells == {(way, feed, "float32") for way, feed in fed} | {
        ("fit", "arrays", "mixed_float16"),
        ("CompiledLoop", "arrays", "mixed_float16"),
    }
    for c in report["cells"]:
        assert c["batch_size"] == 8 and len(c["epoch_seconds"]) == 1
        assert c["images_per_second"] > 0 and c["tflops"] > 0
        assert (c["wait_share"] is None) == (c["way"] == "fit"), c  # fit on TF: n/a
    assert [g["unit"] for g in report["goals"]] == ["ratio", "share"]
    assert report["skipped"][0]["feed"] == "sequence-processes"

    lines = table.splitlines()
    header = next(line for line in lines if line.startswith("way "))
    assert header.split()[:3] == ["way", "feed", "prec"]
    assert "batch 8" in lines[lines.index(header) - 1]
    assert {"img/s", "start", "wait", "TFLOP/s"} <= set(header.split())
    top = lines.index(header) + 2  # below the dashes
    rows = lines[top : lines.index("", top)]
    assert len(rows) == len(report["cells"])
    assert sum("fp16" in row for row in rows) == 2
    assert any(row.startswith("fit ") and " n/a " in row for row in rows)
    assert "peak unknown" in table and "load average after" in table


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_bench_distributed_tables_one_process_two_devices_and_two_workers(tmp_path, capsys):
    """The quick run: each configuration in fresh processes, images/s and the all-reduce share."""
    import os
    from pathlib import Path

    from fitlab.bench import distributed

    def children() -> set[str]:
        tasks = Path(f"/proc/{os.getpid()}/task")
        found = (t / "children" for t in tasks.iterdir()) if tasks.exists() else ()
        return {pid for path in found if path.exists() for pid in path.read_text().split()}

    before = children()
    out = tmp_path / "distributed.json"
    assert distributed.main(["--quick", "--json", str(out)]) == 0
    table = capsys.readouterr().out
    report = json.loads(out.read_text())

    rows = {row["configuration"]: row for row in report["rows"]}
    assert list(rows) == ["one", "two-devices", "two-workers"]
    for row in rows.values():
        assert row["batch_size"] == 8 and row["images_per_second"] > 0
    assert rows["one"]["replicas"] == 1 and rows["one"]["speedup"] == 1
    assert rows["one"]["allreduce_share_percent"] is None
    for name in ("two-devices", "two-workers"):
        assert rows[name]["replicas"] == 2 and rows[name]["allreduce_ms"] > 0
        assert 0 < rows[name]["allreduce_share_percent"] < 100
        assert report["children"][name][0]["synchronized_batch_norm"] is True
    assert [w["worker"] for w in report["children"]["two-workers"]] == [0, 1]
    assert set(report["load_average_before"]) and set(report["load_average_after"])

    lines = table.splitlines()
    header = next(line for line in lines if line.startswith("configuration"))
    assert header.split() == [
        "configuration", "replicas", "batch", "img/s", "±", "speed-up", "all-reduce", "ms", "share"
    ]  # fmt: skip
    top = lines.index(header) + 2  # below the dashes
    body = lines[top : lines.index("", top)]
    assert [line.split()[0] for line in body] == ["one", "two-devices", "two-workers"]
    assert "load average before" in table and "load average after" in table
    assert "Why no speed-up is expected here" in table
    assert children() <= before  # every child was waited for: none running or unreaped
