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
