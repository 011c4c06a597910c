"""The loops benchmark runs every way and reports images/s and the loop's overhead."""

from __future__ import annotations

import json

import pytest

from fitlab.bench import loops


@pytest.mark.slow
def test_bench_loops_reports_every_way_and_its_overhead(capsys):
    ways = ["fit", "train_on_batches", "CompiledLoop"]
    argv = ["--steps", "1", "--overhead-steps", "2", "--batch-sizes", "4", "--ways", *ways]
    assert loops.main([*argv, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert list(report["images_per_second"]) == ways
    for table in ("images_per_second", "overhead_ms_per_step"):
        for way in ways:
            assert report[table][way]["4"] > 0
    assert set(report["ratios_at_32"]) == set()  # no batch 32 in this run, so no ratio

    assert loops.main(argv) == 0
    table = capsys.readouterr().out
    assert "CompiledLoop (jit off)" in table and "Loop overhead" in table
    assert "A MiniVGGNet step under fit takes" in table


def test_bench_loops_refuses_a_run_with_no_timed_steps(capsys):
    with pytest.raises(SystemExit):
        loops.main(["--steps", "0"])
    assert "--steps must be at least 1" in capsys.readouterr().err


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
