"""examples/legacy_train.py -- the 2018 tutorial script -- runs on Keras 3 end to end."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from fitlab import make_synthetic_csv

SCRIPT = Path(__file__).resolve().parents[1] / "examples" / "legacy_train.py"


def test_legacy_train_script_runs_one_epoch_and_plots(tmp_path: Path):
    size = 16  # tiny images: MiniVGGNet's two poolings leave 4 × 4
    train = make_synthetic_csv(tmp_path / "train.csv", rows=64, size=size, seed=1)
    # 40 rows: validation_steps = 40 // 32 = 1, and predict_generator asks for
    # 40 // 32 + 1 = 2 steps, one of them partial (8 rows).
    test = make_synthetic_csv(tmp_path / "test.csv", rows=40, size=size, seed=2)
    plot = tmp_path / "plot.png"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONWARNINGS": "default"}
    env.pop("TF_USE_LEGACY_KERAS", None)
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--train", str(train), "--test", str(test),
         "--epochs", "1", "--plot", str(plot), "--size", str(size)],
        capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path,
    )  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    assert plot.stat().st_size > 0 and plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "[INFO] training w/ generator..." in result.stdout
    # The classification report covers all 40 test rows: nothing dropped or repeated.
    report = result.stdout.split("[INFO] evaluating network...")[1]
    assert re.search(r"weighted avg(\s+[\d.]+){3}\s+40\s*$", report), report
    # The script met the deprecation warning that names the modern call.
    assert "fit_generator was deprecated" in result.stderr
    assert "model.fit(" in result.stderr
