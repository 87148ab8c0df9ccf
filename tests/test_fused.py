"""The fused engine (``method="fused"``, ``initialization/fused.py``): the law sampler compiled
by torch.compile with its normals generated in the kernels. Its numbers are not those of the
eager stream, so it is checked in law against ``method="law"`` (two-sample tests whose
tolerances come from the sample size), for reproducibility, for independence of its numbers
from the chunk size, the block's size and the record, and for its errors.

Compiling costs tens of seconds on a loaded 2-core machine (Inductor's C++ backend, cached on
disk afterwards): the default suite compiles one small graph (width 2, 4 layers per call);
the law tests, which compile more, are ``slow``."""

from __future__ import annotations

import math
import shutil

import numpy as np
import pytest
import torch

import deeplimit as dl
from deeplimit.initialization import fused
from deeplimit.stats import two_sample_test

LEVEL = 1e-3
Z = 4.0  # two-sided normal quantile of the mean and quantile comparisons (p ~ 6e-5 each)

needs_compiler = pytest.mark.skipif(
    shutil.which("g++") is None and shutil.which("c++") is None,
    reason="Inductor's CPU backend needs a C++ compiler",
)

# the small configuration of the default suite: one compiled graph of 4 layers
SMALL = dl.Fused(layers_per_call=4, block_samples=64)


def _sde(method, *, width=2, steps=4, samples=200, seed=3, **knobs):
    return dl.sample_sde(
        width, "relu", steps=steps, samples=samples, y0=[1.0] * width, seed=seed,
        method=method, **knobs,
    )  # fmt: skip


# --------------------------------------------------------------------------- errors (no compile


def test_fused_strategy_validates():
    with pytest.raises(ValueError, match="layers_per_call"):
        dl.Fused(layers_per_call=0)
    with pytest.raises(ValueError, match="block_samples"):
        dl.Fused(block_samples=-1)
    with pytest.raises(ValueError, match=r"method must be one of.*'fused'"):
        dl.Sampling(samples=10, method="fuse")
    assert dl.Sampling(samples=10, method="fused").as_dict()["method"] == "fused"
    tuned = dl.Sampling(samples=10, method=SMALL).as_dict()["method"]
    assert tuned == {"engine": "fused", "layers_per_call": 4, "block_samples": 64}


def test_fused_refuses_what_it_does_not_compute():
    with pytest.raises(ValueError, match=r"states only.*observables"):
        dl.observe_resnet(2, 4, "relu", samples=10, y0=[1.0, 1.0], method="fused")
    with pytest.raises(ValueError, match=r"states only.*gradient norms"):
        dl.gradient_norms(2, 4, "relu", samples=10, y0=[1.0, 1.0], method="fused")
    net = dl.RandomResNet(2, "relu")
    with pytest.raises(ValueError, match="states only"):
        net.collapse_probability(4, dl.Start.state([1.0, 1.0]), dl.Sampling(10, method="fused"))


def test_fused_compile_unavailable_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(fused, "_COMPILED", {})
    monkeypatch.delattr(torch, "compile")
    with pytest.raises(dl.FusedCompileError, match=r"needs torch.compile.*method='law'"):
        _sde(SMALL)


def test_fused_compile_failure_is_a_clear_error(monkeypatch):
    """A compiler that fails (no g++, no Triton) fails the first call of a compiled function."""

    def broken_compile(function, **options):
        def call(*args):
            raise RuntimeError("CppCompileError: C++ compile error: g++: not found")

        return call

    monkeypatch.setattr(fused, "_COMPILED", {})
    monkeypatch.setattr(torch, "compile", broken_compile)
    with pytest.raises(dl.FusedCompileError, match=r"could not compile.*g\+\+: not found"):
        _sde(SMALL)


# --------------------------------------------------------------------------- one small graph


@needs_compiler
def test_fused_reproducible_and_independent_of_chunks_and_blocks():
    first = _sde(SMALL)
    assert first.shape == (200, 2) and first.dtype == torch.float64
    assert torch.isfinite(first).all() and first.std(0).min() > 0.1
    assert torch.equal(first, _sde(SMALL))  # a seed gives the same numbers
    assert not torch.equal(first, _sde(SMALL, seed=4))
    # the chunk size plays no part; a sample's numbers do not depend on the size of its block
    # (200 samples: a last block of 8; 100 samples: a last block of 36)
    assert torch.equal(first, _sde(SMALL, chunk_size=7))
    assert torch.equal(first[:100], _sde(SMALL, samples=100))
    # the samples of other blocks are other paths
    assert not torch.equal(first[:64], first[64:128])


@needs_compiler
def test_fused_resnet_is_the_sde_with_steps_equal_depth():
    """Lemma 6 as the eager path has it: sample_sde(steps=L) is sample_resnet(depth=L)."""
    resnet = dl.sample_resnet(2, 4, "relu", samples=200, y0=[1.0, 1.0], seed=3, method=SMALL)
    assert torch.equal(resnet, _sde(SMALL))


# --------------------------------------------------------------------------- laws (slow)


def _welch(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """The difference of the means and its standard error."""
    return float(a.mean() - b.mean()), math.sqrt(a.var() / a.size + b.var() / b.size)


def _check_same_law(fused_values: np.ndarray, eager_values: np.ndarray) -> None:
    """``fused_values`` and ``eager_values`` (a statistic of independent paths) from one law:
    the means within Z standard errors; the fraction of the fused values below the eager
    p-quantile, p = 0.1, 0.5, 0.9, within Z of its spread ``sqrt(p (1 - p) (1/N_a + 1/N_b))``
    (binomial, and the eager quantile's own spread by the delta method); a KS two-sample test
    at LEVEL."""
    difference, error = _welch(fused_values, eager_values)
    assert abs(difference) <= Z * error, (difference, error)
    for p in (0.1, 0.5, 0.9):
        below = float(np.mean(fused_values <= np.quantile(eager_values, p)))
        spread = math.sqrt(p * (1 - p) * (1 / fused_values.size + 1 / eager_values.size))
        assert abs(below - p) <= Z * spread, (p, below, spread)
    result = two_sample_test(fused_values, eager_values, level=LEVEL)
    assert result.passed, result


@pytest.mark.slow
@needs_compiler
@pytest.mark.parametrize("width", [2, 12])  # the unrolled layout and the rows layout
def test_fused_sde_law_matches_eager(width):
    """dX = n^{-1/2} ||relu(X)|| dB from X_0 = 1: ||X_1||^2 / n and its logarithm in law,
    fused against eager. Checked to fail with the fused increment's scale 5 % off."""
    samples, steps = 20000, 20
    method = dl.Fused(layers_per_call=8)
    runs = {
        name: _sde(m, width=width, steps=steps, samples=samples, seed=11)
        for name, m in (("fused", method), ("law", "law"))
    }
    values = {name: (y.square().sum(-1) / width).numpy() for name, y in runs.items()}
    _check_same_law(values["fused"], values["law"])
    # the logarithm has light tails, and its square measures the spread: the tests that
    # resolve a wrong scale at a small width
    logs = {name: np.log(v) for name, v in values.items()}
    _check_same_law(logs["fused"], logs["law"])
    _check_same_law(logs["fused"] ** 2, logs["law"] ** 2)


@pytest.mark.slow
@needs_compiler
def test_fused_resnet_law_matches_eager_from_inputs():
    """A ResNet of depth 12 from inputs x (Y_0 = W_in x drawn per network), tanh, width 3:
    ||Y_0||^2 / n, the sum of the increments ||Y_L - Y_0||^2 / n and one coordinate of Y_L in
    law, fused against eager. Checked to fail with the fused increment's scale 5 % off."""
    samples, width = 20000, 3
    x = [0.7, -1.2, 0.4, 2.0]
    runs = [
        dl.sample_resnet(width, 12, "tanh", samples=samples, x=x, seed=5, method=m, record=[0, 12])
        for m in (dl.Fused(layers_per_call=8), "law")
    ]
    statistics = [
        (y[:, 0].square().sum(-1) / width, (y[:, 1] - y[:, 0]).square().sum(-1) / width, y[:, 1, 1])
        for y in runs
    ]
    for fused_values, eager_values in zip(*statistics, strict=True):
        _check_same_law(fused_values.numpy(), eager_values.numpy())


@pytest.mark.slow
@needs_compiler
def test_fused_several_inputs_law_matches_eager():
    """Three inputs sharing the Brownian matrix (the factor of Phi by Gram-Schmidt in the
    kernel), the second a repeat of the first: per input ||X_1||^2 / n and its logarithm, and
    the cosine of the first and third inputs in law, fused against eager; the repeated input
    stays equal to rounding. Checked to fail with the factor's off-diagonal part halved."""
    samples, width = 20000, 3
    y0 = [[1.0, 0.5, -0.2], [1.0, 0.5, -0.2], [0.3, 1.0, 0.8]]
    runs = [
        dl.sample_sde(width, "relu", steps=12, samples=samples, y0=y0, seed=7, method=m)
        for m in (dl.Fused(layers_per_call=4), "law")
    ]
    fused_x = runs[0]
    assert fused_x.shape == (samples, 3, width)
    assert torch.allclose(fused_x[:, 0], fused_x[:, 1], rtol=1e-12, atol=1e-12)
    for a in (0, 2):
        squares = [(x[:, a].square().sum(-1) / width).numpy() for x in runs]
        _check_same_law(*squares)
        _check_same_law(*(np.log(v) for v in squares))
    cosines = [torch.nn.functional.cosine_similarity(x[:, 0], x[:, 2], -1).numpy() for x in runs]
    _check_same_law(*cosines)


@pytest.mark.slow
@needs_compiler
def test_fused_numbers_do_not_depend_on_record_or_layers_per_call():
    """Keys belong to (block, layer): how layers are grouped into calls plays no part."""
    base = dl.Fused(layers_per_call=4, block_samples=64)
    path = _sde(base, steps=10, record="all")
    assert path.shape == (200, 11, 2)
    assert torch.equal(path[:, 0], torch.ones(200, 2, dtype=torch.float64))
    assert torch.equal(path[:, -1], _sde(base, steps=10))
    times = [0.3, 0.7, 1.0]
    assert torch.equal(path[:, [3, 7, 10]], _sde(base, steps=10, record=times))
    other = dl.Fused(layers_per_call=3, block_samples=64)
    assert torch.equal(path[:, -1], _sde(other, steps=10))


@pytest.mark.slow
@needs_compiler
def test_fused_reports_blowup_at_its_layer():
    """A linear chain from 1e307 overflows within a few layers: reported as the eager path
    reports it (NumericalBlowupError naming the first layer), or kept with a warning."""
    kwargs = dict(samples=64, y0=[1e307, 1e307], seed=0, method=SMALL)
    with pytest.raises(dl.NumericalBlowupError, match=r"at layer [1-8]\b"):
        dl.sample_resnet(2, 8, "linear:a=30", **kwargs)
    with pytest.warns(RuntimeWarning, match="sample paths"):
        y = dl.sample_resnet(2, 8, "linear:a=30", on_nonfinite="warn", **kwargs)
    assert not torch.isfinite(y).all()


@pytest.mark.gpu
def test_fused_cuda_law_matches_eager_and_is_reproducible(cuda_device):
    """On CUDA (Triton's Philox in the kernel): a seed gives the same numbers, and the SDE's
    ||X_1||^2 / n and its logarithm have the law of the eager path on the same device."""
    method = dl.Fused(layers_per_call=8)
    knobs = dict(width=4, steps=16, samples=20000, seed=11, device=cuda_device)
    first = _sde(method, **knobs)
    assert first.device.type == "cuda"
    assert torch.equal(first, _sde(method, **knobs))
    eager = _sde("law", **knobs)
    values = [(y.square().sum(-1) / 4).cpu().numpy() for y in (first, eager)]
    _check_same_law(*values)
    _check_same_law(*(np.log(v) ** 2 for v in values))
