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
