"""Legitimate edge cases that used to crash or mislead: constant and integer-valued user
activations, zero training steps, size estimates, warnings before slow runs."""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import deeplimit
from deeplimit import sizes
from deeplimit.cli import app
from deeplimit.results import atomic_write_text, load_result
from deeplimit.sizes import Need, check_memory, format_bytes, format_seconds

runner = CliRunner()


# ----------------------------------------------------------------------------- activations


def test_a_constant_activation_leaves_the_resnet_at_its_start():
    y = deeplimit.sample_resnet(
        3, 7, lambda x: torch.zeros_like(x), samples=5, y0=[1.0, -2.0, 0.5], method="weights"
    )
    assert torch.equal(y, torch.tensor([[1.0, -2.0, 0.5]], dtype=torch.float64).expand(5, 3))


@pytest.mark.parametrize("method", ["law", "weights"])
def test_an_integer_valued_activation_equals_its_float_twin(method):
    """phi = 1{x > 0} as a bool/long tensor: cast to the input dtype, derivative 0."""
    arguments = dict(samples=200, x=[[1.0, -0.5], [0.3, 0.2]], method=method, seed=3)
    as_long = deeplimit.sample_resnet(4, 20, lambda x: (x > 0).long(), **arguments)
    as_bool = deeplimit.sample_resnet(4, 20, lambda x: x > 0, **arguments)
    as_float = deeplimit.sample_resnet(4, 20, lambda x: (x > 0).to(x.dtype), **arguments)
    assert torch.equal(as_long, as_float) and torch.equal(as_bool, as_float)
    norms = deeplimit.gradient_norms(4, 20, lambda x: (x > 0).long(), samples=10, x=[1.0])
    assert torch.allclose(norms, torch.ones_like(norms))  # phi' = 0: g_l = g_L, |g_L| = 1


def test_a_constant_activation_trains_without_moving():
    """A zero branch has zero gradients: the loss stays at its initial value, nothing moves."""
    result = deeplimit.train_resnet(
        3, 6, 4, activation=lambda x: torch.zeros_like(x), steps=3, record_movement=True
    )
    assert torch.equal(result.loss, result.loss[:, :1].expand(-1, 4))
    assert all(float(m.abs().max()) == 0.0 for m in result.movement.values())


def test_an_integer_valued_activation_trains_like_its_float_twin():
    step = deeplimit.train_resnet(
        3, 6, 4, activation=lambda x: (x > 0).long(), steps=3, seeds=2, record_movement=True
    )
    twin = deeplimit.train_resnet(
        3, 6, 4, activation=lambda x: (x > 0).to(x.dtype), steps=3, seeds=2
    )
    assert torch.equal(step.outputs, twin.outputs)
    assert float(step.movement["u"].abs().max()) == 0.0  # sigma' = 0: u never moves
    assert float(step.movement["v"][:, -1].min()) > 0.0


# ----------------------------------------------------------------------------- zero steps


def test_zero_training_steps_record_the_initialization():
    start = deeplimit.train_resnet(4, 8, 3, steps=0, seeds=3)
    longer = deeplimit.train_resnet(4, 8, 3, steps=2, seeds=3)
    assert start.steps == 0 and start.outputs.shape == (3, 1, 10, 5)
    assert torch.equal(start.outputs[:, 0], longer.outputs[:, 0])
    assert torch.equal(start.loss[:, 0], longer.loss[:, 0])
    limit = deeplimit.mean_ode_limit(3, activation="identity", steps=0, intervals=8)
    assert limit.steps == 0 and limit.loss.shape == (1,)
    reference = deeplimit.mean_ode_limit(3, activation="identity", steps=2, intervals=8)
    assert torch.equal(limit.outputs[0], reference.outputs[0])


def test_train_with_zero_steps_on_the_command_line(tmp_path):
    out = tmp_path / "run.nc"
    arguments = ["train", "-L", "2", "-M", "4", "-D", "3", "-K", "0", "--seeds", "2", "--out"]
    result = runner.invoke(app, [*arguments, str(out)])
    assert result.exit_code == 0, result.output
    dataset, _ = load_result(out)
    assert dataset.sizes["step"] == 1 and dataset.sizes["seed"] == 2


# ----------------------------------------------------------------------------- sizes


def test_formats():
    assert format_bytes(8e12) == "8 TB" and format_bytes(512) == "512 B"
    assert format_bytes(1.5e9) == "1.5 GB"
    assert format_seconds(42) == "42 s" and format_seconds(2e4) == "5.6 h"
    assert format_seconds(86400 * 10) == "10 days"


def test_check_memory_names_the_largest_need_and_the_estimate():
    needs = [Need("samples", 10**15, 8e15, "the returned tensor"), Need("width", 3, 1e3, "x")]
    with pytest.raises(ValueError) as caught:
        check_memory("sample_resnet", needs)
    message = str(caught.value)
    assert message.startswith("samples=10**15 cannot run: sample_resnet needs about 8 PB")
    assert "of memory is available on cpu" in message
    check_memory("small", [Need("samples", 10, 80.0, "x")])  # fits: no error
    assert sizes.available_memory("cpu") > 0


def test_the_memory_budget_bounds_the_chunk_it_plans():
    """A budget too large for the machine is refused rather than used; the default plans chunks
    that fit and runs."""
    with pytest.raises(ValueError, match=r"memory_budget=.* cannot run"):
        deeplimit.sample_resnet(64, 1, "relu", samples=2**20, x=np.ones(4096), memory_budget=2**60)
    with pytest.raises(ValueError, match=r"chunk_size=.* cannot run"):
        deeplimit.sample_resnet(64, 1, "relu", samples=2**20, x=np.ones(4096), chunk_size=2**20)


def test_a_run_that_takes_hours_warns_before_it_starts():
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        with pytest.raises(RuntimeWarning) as caught:
            deeplimit.sample_sde(2, "relu", steps=10**9, samples=1, y0=[1.0, 1.0])
    message = str(caught.value)
    assert message.startswith("samples=1 x steps=10**9 x width=2: sample_sde will take at least")
    assert " h " in message or " days " in message


def test_the_cli_prints_the_slow_run_warning_as_one_line(tmp_path, monkeypatch):
    monkeypatch.setattr(sizes, "SLOW_SECONDS", 0.0)  # every run is "slow"
    out = tmp_path / "r.nc"
    arguments = [
        "sample",
        "resnet",
        "--width",
        "2",
        "--depth",
        "3",
        "--samples",
        "4",
        "--y0",
        "1,1",
        "-q",
        "--out",
    ]
    result = runner.invoke(app, [*arguments, str(out)])
    assert result.exit_code == 0, result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("warning: samples=4 x depth=3 x width=2:")
    assert out.exists()


def test_a_refused_output_name_writes_nothing(tmp_path):
    out = tmp_path / "o.txt"
    arguments = ["sample", "resnet", "--width", "2", "--depth", "3", "--y0", "1,1", "-q", "--out"]
    result = runner.invoke(app, [*arguments, str(out)])
    assert result.exit_code == 2
    assert (
        result.stderr.strip()
        == f"error: --out must name a .nc file (the result is netCDF), got {str(out)!r}"
    )
    assert list(tmp_path.iterdir()) == []


def test_law_points_allow_infinities_but_not_nan():
    law = deeplimit.laws.gbm_law(1.0, 1.0)
    assert list(law.cdf([-math.inf, math.inf])) == [0.0, 1.0]
    with pytest.raises(ValueError, match="x must be free of NaN, got 1 NaN entry"):
        law.cdf([1.0, math.nan])


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux /proc")
def test_a_result_that_cannot_be_written_names_the_users_path_not_a_temporary_one():
    with pytest.raises(OSError) as caught:
        atomic_write_text("/proc/o.nc", "x")
    assert caught.value.filename == "/proc/o.nc"
