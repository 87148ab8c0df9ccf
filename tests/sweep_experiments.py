"""A tiny experiment for the sweep tests, importable by worker processes and SLURM tasks as
``sweep_experiments:Toy`` (the tests put this folder on PYTHONPATH).

Its numbers are a pure function of the spec (NumPy's generator seeded with ``seed``), so a test
can recompute any stored point. Two hooks come from the environment, not the spec, so that they
do not change the point's key:

- ``DEEPLIMIT_TOY_LOG``: a file to which every *finished* run appends one JSON line
  (seed, size, pid), so a test can count how often each point was computed;
- ``DEEPLIMIT_TOY_FAIL``: comma-separated seeds whose runs raise (as ``fail = true`` does);
- ``DEEPLIMIT_TOY_DIVERGE``: comma-separated seeds whose runs diverge: their values after the
  first are NaN and the dataset is marked ``diverged``;
- ``DEEPLIMIT_TOY_BLOWUP``: comma-separated seeds whose runs raise a ``FloatingPointError``;
- ``DEEPLIMIT_TOY_HOLD``: a folder; while ``<folder>/<seed>.hold`` exists, the run of that seed
  waits (so a test can kill or cancel it mid-point), and it writes ``<seed>.started`` with its
  pid when it begins.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr
from matplotlib.figure import Figure
from pydantic import field_validator

from deeplimit.experiments.base import Claim, Experiment, ExperimentSpec, Progress


class ToySpec(ExperimentSpec):
    size: int = 16
    scale: float = 1.0
    sleep_s: float = 0.0
    fail: bool = False

    @field_validator("size")
    @classmethod
    def _size(cls, value: int) -> int:
        if value < 1:
            raise ValueError(f"size must be an integer >= 1, got {value}")
        return value


def toy_values(seed: int, size: int, scale: float) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(size) * scale


class Toy(Experiment):
    name = "toy"
    title = "Toy experiment for the sweep tests"
    Spec = ToySpec

    def smoke_settings(self) -> dict[str, Any]:
        return {"size": 4}

    def caption(self, spec: ToySpec) -> str:
        return f"{spec.size} normal numbers times {spec.scale:g}, seed {spec.seed}"

    def run(self, spec: ToySpec, progress: Progress | None = None) -> xr.Dataset:
        hold = os.environ.get("DEEPLIMIT_TOY_HOLD")
        if hold:
            Path(hold, f"{spec.seed}.started").write_text(str(os.getpid()))
            while Path(hold, f"{spec.seed}.hold").exists():
                time.sleep(0.05)
        failing = os.environ.get("DEEPLIMIT_TOY_FAIL", "").split(",")
        if spec.fail or str(spec.seed) in failing:
            raise ValueError(f"toy failure requested for seed {spec.seed}")
        if str(spec.seed) in os.environ.get("DEEPLIMIT_TOY_BLOWUP", "").split(","):
            raise FloatingPointError(f"toy blow-up requested for seed {spec.seed}")
        diverging = str(spec.seed) in os.environ.get("DEEPLIMIT_TOY_DIVERGE", "").split(",")
        time.sleep(spec.sleep_s)
        values = toy_values(spec.seed, spec.size, spec.scale)
        log = os.environ.get("DEEPLIMIT_TOY_LOG")
        if log:
            with open(log, "a") as stream:
                line = {"seed": spec.seed, "size": spec.size, "scale": spec.scale}
                restarts = os.environ.get("SLURM_RESTART_COUNT")  # set once SLURM requeued it
                line |= {"pid": os.getpid(), "restarts": restarts}
                stream.write(json.dumps(line) + "\n")
        attrs = {"spec": spec.model_dump_json(), "caption": self.caption(spec)}
        if diverging:
            values[1:] = np.nan
            attrs["diverged"] = f"toy divergence requested for seed {spec.seed}"
        return xr.Dataset(
            {"value": (("sample",), values)},
            coords={"sample": np.arange(spec.size)},
            attrs=attrs,
        )

    def statistics(self, dataset: xr.Dataset) -> list[dict[str, Any]]:
        values = dataset.value.values
        return [
            {"statistic": "mean", "value": float(values.mean())},
            {"statistic": "max", "value": float(values.max())},
        ]

    def claims(self, dataset: xr.Dataset) -> list[Claim]:
        mean = float(dataset.value.values.mean())
        return [
            Claim(
                id="toy-mean",
                statement="the mean is finite",
                statistic="mean",
                measured=mean,
                expected="finite",
                tolerance="exact",
                n=int(dataset.sizes["sample"]),
                passed=bool(np.isfinite(mean)),
                details={"note": "toy"},
            )
        ]

    def plot(self, dataset: xr.Dataset) -> Figure:
        figure = Figure(figsize=(3, 2))
        ax = figure.subplots()
        ax.plot(dataset.sample.values, dataset.value.values)
        return figure


def visible_gpu(seconds: float) -> str | None:
    """For executor tests: the GPU a worker was given (after a pause, so calls spread out)."""
    time.sleep(seconds)
    return os.environ.get("CUDA_VISIBLE_DEVICES")


# the command line in a fresh interpreter
CLI = [sys.executable, "-m", "deeplimit"]


def log_lines(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
