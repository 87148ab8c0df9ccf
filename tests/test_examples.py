"""Every script in examples/ runs as a user would run it (a fresh interpreter, its own working
folder), at smoke scale (``DEEPLIMIT_EXAMPLE_SCALE=smoke``), and prints what it promises."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((ROOT / "examples").glob("*.py"))


def _run(script: Path, tmp_path: Path, *args: str) -> str:
    env = {
        **os.environ,
        "DEEPLIMIT_EXAMPLE_SCALE": "smoke",
        "PYTHONPATH": str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", ""),
        "MPLBACKEND": "Agg",
    }
    done = subprocess.run(
        [sys.executable, str(script), *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, f"{script.name} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def test_every_example_is_tested_and_documented():
    names = {path.stem for path in EXAMPLES}
    assert names == {"random_resnet_law", "train_against_limit", "sweep"}
    for path in EXAMPLES:
        source = path.read_text()
        assert source.startswith('"""'), f"{path.name} needs a docstring (the docs show it)"


def test_random_resnet_law(tmp_path):
    out = _run(ROOT / "examples" / "random_resnet_law.py", tmp_path, str(tmp_path))
    assert re.search(r"KS vs gbm\(a=1, y0=1\).*n=2000", out)
    assert (tmp_path / "random_resnet_law.png").stat().st_size > 10_000


def test_train_against_limit(tmp_path):
    out = _run(ROOT / "examples" / "train_against_limit.py", tmp_path)
    errors = [float(e) for e in re.findall(r"embedding error to the limit ([0-9.]+)", out)]
    assert len(errors) == 3
    # the fluctuation term falls with M: errors decrease, at about M^-1/2
    assert errors[0] > errors[1] > errors[2] > 0
    slope = float(re.search(r"error ~ M\^(-?[0-9.]+)", out).group(1))
    assert -1.0 < slope < -0.3


def test_sweep_computes_then_reuses(tmp_path):
    script = ROOT / "examples" / "sweep.py"
    first = _run(script, tmp_path, str(tmp_path / "store"))
    assert "4 of 4 done: 4 computed, 0 already stored, 0 failed" in first
    assert first.count(" ok ") == 4
    second = _run(script, tmp_path, str(tmp_path / "store"))
    assert "4 of 4 done: 0 computed, 4 already stored, 0 failed" in second
