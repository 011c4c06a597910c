"""``python -m fitlab bench gpu`` on JAX, in a child Python where TensorFlow cannot be imported.

Runs in the pytest of its own with ``KERAS_BACKEND=jax`` (see ``tests/conftest.py``).
The child refuses every ``tensorflow*`` import (a ``sys.meta_path`` finder), as on
the GPU machine, which has JAX and no TensorFlow.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import keras
import pytest
from no_tensorflow import BLOCK_TENSORFLOW

pytestmark = pytest.mark.skipif(keras.backend.backend() != "jax", reason="KERAS_BACKEND=jax only")

REPO = Path(__file__).resolve().parents[2]

CHILD = BLOCK_TENSORFLOW + textwrap.dedent(
    """
    from fitlab import make_synthetic_csv
    from fitlab.bench import gpu

    folder = sys.argv[1]
    csv = make_synthetic_csv(f"{folder}/train.csv", rows=8, size=64)
    argv = ["--csv", str(csv), "--quick", "--rows", "8", "--batch-sizes", "8"]
    code = gpu.main([*argv, "--json", f"{folder}/gpu.json"])
    leaked = sorted(name for name in sys.modules if name.startswith("tensorflow"))
    print("LEAKED", leaked)
    sys.exit(code)
    """
)


@pytest.mark.slow
def test_bench_gpu_runs_on_jax_without_tensorflow(tmp_path):
    env = {**os.environ, "KERAS_BACKEND": "jax"}
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(tmp_path)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "LEAKED []" in done.stdout, done.stdout[-2000:]

    report = json.loads((tmp_path / "gpu.json").read_text())
    assert report["machine"]["backend"] == "jax"
    assert report["machine"]["tensorflow_imported"] is False
    cells = report["cells"]
    assert len(cells) == 9  # fit: 5 feeds; CompiledLoop: 4 (it reads no worker processes)
    for c in cells:
        assert c["precision"] == "float32" and c["images_per_second"] > 0
        assert c["wait_share"] is not None and 0 <= c["wait_share"] <= 1, c  # measured on JAX
    assert {c["label"] for c in cells if c["way"] == "CompiledLoop"} >= {"arrays (on device)"}
    assert report["flops"]["training_flops_per_image"] == 3 * 212_616_192
    # quick skips XLA's cross-check; the goal of the CPU (batch 32) is not in an 8-image run
    assert report["flops"]["xla_training_flops_per_image"] is None
    assert [g["unit"] for g in report["goals"]] == ["ratio", "share"]
    assert "arrays (on device)" in done.stdout and "batch 8" in done.stdout


def test_xla_counts_about_the_flops_fitlab_counts():
    """XLA's count of the gradient computation is within 5% of 3x the counted forward pass."""
    from fitlab.bench import gpu
    from fitlab.models import MiniVGGNet

    model = MiniVGGNet.build(64, 64, 3, 17)
    counted = 3 * sum(gpu.forward_flops(model).values())
    xla = gpu._xla_training_flops(model, batch=2)
    assert xla is not None and abs(xla / counted - 1) < 0.05, (xla, counted)
