"""The CPU engine of the exact-in-law chain (``chain._simulate_blocks``: block by block,
samples last in memory, blocks on threads, float32 normals from torch's generator) against the
chunk engine (``chain._simulate_chunks``: the accelerators' path, samples first, one layer of
a chunk at a time), in law; its numbers do not depend on the chunk size nor on the threads;
blow-up and underflow are still reported from every thread."""

from __future__ import annotations

import threading

import pytest
import scipy.stats
import torch

import deeplimit as dl
from deeplimit.activations import parse_activation
from deeplimit.initialization import chain
from deeplimit.initialization.chain import ChainPlan
from deeplimit.initialization.state import resolve_initial_state
from deeplimit.rng import block_size_for

LEVEL = 1e-3


def _plan(width, steps, activation, samples, seed, dtype, *, y0=None, x=None, record=None):
    state = resolve_initial_state(width, y0, x, dtype, torch.device("cpu"))
    return ChainPlan(
        width=width,
        steps=steps,
        scale=steps**-0.5,
        activation=parse_activation(activation),
        state=state,
        samples=samples,
        method="law",
        record=tuple(record if record is not None else (steps,)),
        seed=seed,
        device=torch.device("cpu"),
        dtype=dtype,
    )


# (name, width, steps, activation, initial state, functionals of the (samples, k, n) states)
CASES = [
    (
        "resnet, relu, one input",
        4,
        30,
        "relu",
        dict(y0=[1.0, -0.5, 0.3, 0.8]),
        [lambda y: y[:, 0, 0], lambda y: y[:, 0].norm(dim=-1), lambda y: torch.relu(y).sum(-1)],
    ),
    (
        "sde, relu, width 1 (GBM with collapse)",
        1,
        200,
        "relu",
        dict(y0=[1.0]),
        [lambda y: y[:, 0, 0]],
    ),
    (
        "sde, relu, width 10, one input (checked stretches of steps)",
        10,
        300,
        "relu",
        dict(y0=[1.0] * 10),
        [
            lambda y: y[:, 0, 0],
            lambda y: y[:, 0].norm(dim=-1),
            lambda y: (y[:, 0] > 0).sum(-1).double() + 0.1 * torch.relu(y[:, 0]).sum(-1),
        ],
    ),
    (
        "resnet, tanh, two inputs from x",
        3,
        15,
        "tanh",
        dict(x=[[1.0, 0.2], [-0.3, 1.0]]),
        [
            lambda y: y[:, 1, 0],
            lambda y: (y[:, 0] * y[:, 1]).sum(-1) / (y[:, 0].norm(dim=-1) * y[:, 1].norm(dim=-1)),
        ],
    ),
    (
        "resnet, relu, three nearly collinear inputs",
        2,
        20,
        "relu",
        dict(y0=[[1.0, 0.5], [1.0, 0.5 + 1e-6], [0.2, 1.0]]),
        [lambda y: (y[:, 1] - y[:, 0]).norm(dim=-1) * 1e6, lambda y: y[:, 2, 1]],
    ),
]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("case", CASES, ids=[case[0] for case in CASES])
def test_block_engine_matches_the_chunk_engine_in_law(case, dtype):
    """Two-sample KS per functional at a Bonferroni family level of 1e-3 (4000 paths each,
    independent seeds): KS resolves a difference of cdfs of about 1.95 sqrt(2/4000) = 0.044."""
    _, width, steps, activation, state, functionals = case
    fast = chain._simulate_blocks(
        _plan(width, steps, activation, 4000, 1, dtype, **state), None, ()
    )[:, 0]
    reference = chain._simulate_chunks(_plan(width, steps, activation, 4000, 2, dtype, **state))[
        :, 0
    ]
    assert fast.dtype == dtype and torch.isfinite(fast).all()
    p_values = [
        scipy.stats.ks_2samp(f(fast).double().numpy(), f(reference).double().numpy()).pvalue
        for f in functionals
    ]
    assert min(p_values) > LEVEL / len(p_values), p_values


def test_sde_fast_path_has_the_exact_mean_square():
    """dX = n^-1/2 |X| dB at width 1 in float32 (the issue's loop): E X_1^2 = e X_0^2 for the
    SDE; its Euler scheme with K steps has E X_K^2 = (1 + 1/K)^K exactly."""
    steps, samples = 100, 40_000
    x1 = dl.sample_sde(1, "linear", steps=steps, samples=samples, y0=[1.0], dtype="float32")
    squares = x1[:, 0].double() ** 2
    result = dl.stats.mean_zscore(squares.numpy(), (1 + 1 / steps) ** steps, level=LEVEL)
    assert result.passed, result


@pytest.fixture
def small_blocks(monkeypatch):
    """Blocks of about 2^9 numbers per layer, so that a small run spans several blocks."""
    from deeplimit import rng

    monkeypatch.setattr(rng, "_NUMBERS_PER_BLOCK", 2**9)
    return lambda numbers_per_sample: block_size_for(numbers_per_sample)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_same_numbers_whatever_the_threads_and_the_chunk_size(monkeypatch, small_blocks, dtype):
    samples = 3 * small_blocks(2 * 16) + 5  # three whole blocks and a part
    kwargs = dict(samples=samples, x=[[1.0, 0.5, -0.2], [0.1, 0.3, 1.0]], seed=3, dtype=dtype)
    names = ["log_growth", "collapse", "active", "quasi_gbm", "correlation", "norm"]
    runs = []
    for threads, chunk_size in ((1, None), (2, None), (2, 1), (3, 10**6)):
        monkeypatch.setattr(chain, "_threads", lambda threads=threads: threads)
        y = dl.sample_resnet(16, 6, "relu", record="all", chunk_size=chunk_size, **kwargs)
        obs = dl.observe_resnet(16, 6, "relu", observables=names, layers=[0, 3, 6], **kwargs)
        sde = dl.sample_sde(16, "relu", steps=6, record="all", **kwargs)
        runs.append((y, obs.values, sde))
    (y, values, sde), others = runs[0], runs[1:]
    assert torch.equal(y, sde)  # the SDE with steps = depth is the ResNet, number for number
    assert torch.allclose(values["y_norm"], y[:, [0, 3, 6]].norm(dim=-1), rtol=1e-5)
    for other_y, other_values, other_sde in others:
        assert torch.equal(other_y, y) and torch.equal(other_sde, sde)
        for name, tensor in values.items():
            torch.testing.assert_close(other_values[name], tensor, rtol=0, atol=0, equal_nan=True)


def test_float32_normals_are_drawn_in_float32_and_standard():
    """Y_0 = e_1, phi = identity, one layer: Y_1 = e_1 + Z / 8 at width 64, so the float32
    chain's noise is read off Y_1 (KS against the standard normal, 2000 x 63 numbers)."""
    plan = _plan(64, 1, "linear", 2000, 0, torch.float32, y0=[1.0] + [0.0] * 63)
    y = chain._simulate_blocks(plan, None, ())
    assert y.dtype == torch.float32
    z = (y[:, 0, 0, 1:] * 8.0).double().flatten()
    assert scipy.stats.kstest(z.numpy(), "norm").pvalue > LEVEL


@pytest.mark.parametrize("threads", [1, 2])
def test_blowup_and_underflow_are_reported_from_every_thread(monkeypatch, small_blocks, threads):
    monkeypatch.setattr(chain, "_threads", lambda: threads)
    samples = 3 * small_blocks(2) + 7
    explode = lambda t: t * 1e200
    with pytest.raises(dl.NumericalBlowupError) as info:
        dl.sample_resnet(2, 4, explode, samples=samples, y0=[1.0, 1.0])
    assert info.value.paths == samples and info.value.total == samples
    # width 1, phi = 25 y, not known to be homogeneous (no rescaling): E log|1 + 25 Z / sqrt(L)|
    # is about -0.24 a layer at L = 1000, below float32's range for every path (test_chain_numerics)
    samples = 3 * small_blocks(1) + 7
    times_25 = lambda t: 25.0 * t
    with pytest.raises(dl.NumericalUnderflowError) as info:
        dl.sample_resnet(1, 1000, times_25, samples=samples, y0=[1.0], dtype="float32")
    assert info.value.total == samples and info.value.paths > 0.9 * samples


def test_errors_and_progress_cross_the_threads(monkeypatch, small_blocks):
    """An error in one block's thread reaches the caller (the other threads stop); progress
    reaches the total, in order, from every thread."""
    monkeypatch.setattr(chain, "_threads", lambda: 2)
    samples = 4 * small_blocks(8) + 3

    def failing(t):
        if t.shape[0] < small_blocks(8):  # the last, partial block
            raise RuntimeError("boom in one block")
        return torch.tanh(t)

    with pytest.raises(RuntimeError, match="boom in one block"):
        dl.sample_resnet(8, 50, failing, samples=samples, y0=[1.0] * 8)
    seen = []
    dl.sample_resnet(
        8, 130, "relu", samples=samples, y0=[1.0] * 8, progress=lambda d, t: seen.append((d, t))
    )
    assert seen[-1] == (samples * 130, samples * 130)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_relu_bounds_skip_checks_without_changing_a_number(monkeypatch, dtype):
    """One input of width 2, ReLU: most layers skip the per-path norms of the state (one
    ``aminmax`` and the phi norms bound them); with the host checks off every layer computes
    them and checks (the accelerators' branch): the same bits. Inputs 2^+-100 times larger
    or smaller (past float32's rescaling bound 2^32) are rescaled by powers of two: the same
    numbers times 2^+-100, collapsed paths (frozen, never rescaled) included."""
    # width 2, three layers: the positive coordinate y_1 (1 + c z) turns negative (collapse)
    # where z < -1/c = -sqrt(6), probability 0.7 % a layer: about 13 of 600 paths
    kwargs = dict(samples=600, seed=11, dtype=dtype)
    y0 = torch.tensor([0.2, -1.0], dtype=torch.float64)
    names = ["log_growth", "collapse", "active", "quasi_gbm", "norm"]

    def run(scale):
        y = dl.sample_resnet(2, 3, "relu", y0=y0 * scale, record="all", **kwargs)
        obs = dl.observe_resnet(
            2, 3, "relu", y0=y0 * scale, observables=names, layers=[0, 1, 3], **kwargs
        )
        return y, obs.values

    y, values = run(1.0)
    assert (values["collapse_layer"] >= 0).any() and (values["collapse_layer"] < 0).any()
    for power in (-100, 100):
        scaled, scaled_values = run(2.0**power)
        assert torch.equal(scaled * 2.0**-power, y)
        for name in ("log_growth", "collapse_layer", "active", "drift"):
            torch.testing.assert_close(
                scaled_values[name], values[name], rtol=0, atol=0, equal_nan=True
            )
    monkeypatch.setattr(chain, "_host_checks", lambda device: False)
    every, every_values = run(1.0)
    assert torch.equal(every, y)
    for name, tensor in values.items():
        torch.testing.assert_close(every_values[name], tensor, rtol=0, atol=0, equal_nan=True)


def test_relu_drift_and_active_fraction_are_the_sums_of_the_active_counts():
    """The integer sums of the streamed observers against the recorded counts, layer by
    layer: drift = dt sum_{l<L} (N_l - 2) / (2n) (NaN once collapsed), active_fraction =
    sum_{l<L} N_l / (n L)."""
    width, depth = 2, 3  # collapse has probability about 2 % (test above)
    obs = dl.observe_resnet(
        width,
        depth,
        "relu",
        samples=2000,
        y0=[0.2, -1.0],
        observables=["active", "quasi_gbm", "collapse"],
        layers="all",
        seed=2,
    )
    counts = obs["active"][:, :depth].double()  # one input: (samples, layers)
    drift = ((counts - 2.0) / (2 * width)).sum(-1) / depth
    collapsed = (obs["collapse_layer"] >= 0) & (obs["collapse_layer"] < depth)
    assert collapsed.any() and (~collapsed).any()
    assert torch.isnan(obs["drift"][collapsed]).all()
    torch.testing.assert_close(obs["drift"][~collapsed], drift[~collapsed])
    torch.testing.assert_close(obs["active_fraction"], counts.sum(-1) / (width * depth))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_several_inputs_scale_by_powers_of_two_without_changing_a_number(dtype):
    """Three ReLU inputs (two of them equal), width 4: the CPU chain's factor of several
    inputs commutes with powers of two, the inputs scaled together or one alone (each input
    has its own exponent): the same numbers times 2^+-100, the equal inputs equal."""
    y0 = torch.tensor([[0.9, -0.3, 0.5, 1.2], [0.9, -0.3, 0.5, 1.2], [-0.2, 1.0, 0.4, 0.1]])
    kwargs = dict(samples=300, seed=5, dtype=dtype, record="all")
    y = dl.sample_resnet(4, 6, "relu", y0=y0.double(), **kwargs)
    assert torch.equal(y[:, :, 0], y[:, :, 1]) and not torch.equal(y[:, :, 0], y[:, :, 2])
    for power in (-100, 100):
        scaled = dl.sample_resnet(4, 6, "relu", y0=y0.double() * 2.0**power, **kwargs)
        assert torch.equal(scaled * 2.0**-power, y)
        alone = y0.double().clone()
        alone[2] *= 2.0**power
        one = dl.sample_resnet(4, 6, "relu", y0=alone, **kwargs)
        assert torch.equal(one[:, :, :2], y[:, :, :2])
        assert torch.equal(one[:, :, 2] * 2.0**-power, y[:, :, 2])


def test_several_inputs_whose_squares_underflow_are_factored_again():
    """phi = y (a callable: no rescaling) on inputs of size 2^-560 in float64, whose squares
    underflow: the samples whose plain norms are suspect are factored by ``factor_rows`` with
    its rescaled norms, so the chain is the one of inputs of size 1 times 2^-560 to rounding."""
    y0 = torch.tensor([[0.9, -0.3, 0.5], [0.8, -0.2, 0.6]], dtype=torch.float64)
    kwargs = dict(samples=200, seed=9, record="all")
    identity = lambda t: 1.0 * t
    y = dl.sample_resnet(3, 5, identity, y0=y0, **kwargs)
    tiny = dl.sample_resnet(3, 5, identity, y0=y0 * 2.0**-560, **kwargs)
    assert (tiny != 0).all()
    assert ((tiny * 2.0**560 - y).abs() <= 1e-12 * y.abs()).all()


@pytest.mark.parametrize("group_numbers", [16 * 300, 1], ids=["groups", "layer_by_layer"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_normals_drawn_ahead_are_the_same_numbers(monkeypatch, dtype, group_numbers):
    """One block (a small SDE) with a core to spare draws its normals on a thread of its own,
    groups of steps ahead (40 steps of 2 x 3 x 50 numbers: groups of 16, 16, 8 in two buffers),
    or step by step: the same numbers as drawn in turn, for two inputs (step by step) and one
    ReLU input (``_OneReLU``'s stretches; in float32 compiled stretches draw their own, and
    draw ahead only as stretches of a call per step); an error in a step stops the drawing
    thread."""
    from deeplimit import rng

    monkeypatch.setattr(rng, "_GROUP_NUMBERS", group_numbers)
    drawn_ahead = []

    class Spy(chain._Normals):
        def __init__(self, *args):
            super().__init__(*args)
            drawn_ahead.append(self.thread is not None)
            assert self.group == (16 if group_numbers > 1 else 1)

    monkeypatch.setattr(chain, "_Normals", Spy)
    kwargs = dict(samples=50, y0=[[1.0, 0.5, -0.2], [0.1, 0.3, 1.0]], seed=4, dtype=dtype)
    one = dict(kwargs, y0=[1.0, 0.5, -0.2, 0.3, 0.1, -1.0], samples=50)  # 6 x 50 numbers a step
    runs = []
    for threads in (1, 2):
        monkeypatch.setattr(chain, "_threads", lambda threads=threads: threads)
        runs.append(dl.sample_sde(3, "relu", steps=40, record="all", **kwargs))
        runs.append(dl.sample_sde(6, "relu", steps=40, record=[0.5, 1.0], **one))
    compiled = dtype == "float32" and rng.torch_float32_update() is not None
    assert drawn_ahead == [False, False, True, not compiled]
    assert torch.equal(runs[0], runs[2]) and torch.equal(runs[1], runs[3])
    if compiled:  # stretches of a call per step: drawn ahead, the same numbers
        monkeypatch.setattr(chain, "_COMPILED_STRETCHES", False)
        again = dl.sample_sde(6, "relu", steps=40, record=[0.5, 1.0], **one)
        assert drawn_ahead[-1] and torch.equal(again, runs[1])

    def failing(t):
        if failing.calls == 20:
            raise RuntimeError("boom at a layer")
        failing.calls += 1
        return torch.tanh(t)

    failing.calls = 0
    with pytest.raises(RuntimeError, match="boom at a layer"):
        dl.sample_sde(3, failing, steps=40, **kwargs)
    assert drawn_ahead[-1] and not any(
        thread.name == "deeplimit-normals" for thread in threading.enumerate()
    )


# Four inputs, two of them nearly collinear (orthogonal parts of relative size 1e-3 and 1e-5)
WIDE = [
    lambda y: y[:, 0, 0],
    lambda y: y[:, 3].norm(dim=-1),
    lambda y: (y[:, 1] - y[:, 0]).norm(dim=-1) / y[:, 0].norm(dim=-1),
    lambda y: (y[:, 2] - y[:, 0]).norm(dim=-1) / y[:, 0].norm(dim=-1),
]


def _wide_inputs(width):
    grid = torch.linspace(-1.0, 1.0, width, dtype=torch.float64) + 0.5
    wave = torch.cos(torch.arange(width, dtype=torch.float64))
    return torch.stack([grid, grid + 1e-3 * wave, grid + 1e-5 * wave, grid.flip(0)])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("width", [64, 256])
def test_several_wide_inputs_match_the_chunk_engine_in_law(monkeypatch, dtype, width):
    """Four inputs at widths 64 and 256 (several blocks, run in pairs of a block thread and its
    drawer where two cores are given): the CPU block engine against the chunk engine
    (samples first, ``factor_rows``), 3000 paths each, independent seeds, two-sample KS per
    functional at a Bonferroni family level of 1e-3; the distances between nearly collinear
    inputs test the factor's orthogonal parts."""
    monkeypatch.setattr(chain, "_threads", lambda: 2)
    y0 = _wide_inputs(width)
    fast = chain._simulate_blocks(_plan(width, 12, "relu", 3000, 1, dtype, y0=y0), None, ())
    reference = chain._simulate_chunks(_plan(width, 12, "relu", 3000, 2, dtype, y0=y0))
    fast, reference = fast[:, 0], reference[:, 0]
    assert fast.dtype == dtype and torch.isfinite(fast).all()
    p_values = [
        scipy.stats.ks_2samp(f(fast).double().numpy(), f(reference).double().numpy()).pvalue
        for f in WIDE
    ]
    assert min(p_values) > LEVEL / len(p_values), p_values


def test_several_inputs_match_explicit_weights_in_law():
    """Four inputs at width 64, float32: the exact-in-law chain against explicit weights
    (``method="weights"``, a fresh Gaussian matrix per layer), 3000 paths each, KS as above."""
    y0 = _wide_inputs(64)
    kwargs = dict(samples=3000, y0=y0, dtype="float32")
    law = dl.sample_resnet(64, 8, "relu", seed=1, **kwargs)
    weights = dl.sample_resnet(64, 8, "relu", seed=2, method="weights", **kwargs)
    p_values = [
        scipy.stats.ks_2samp(f(law).double().numpy(), f(weights).double().numpy()).pvalue
        for f in WIDE
    ]
    assert min(p_values) > LEVEL / len(p_values), p_values


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_several_inputs_same_numbers_whatever_the_schedule(monkeypatch, small_blocks, dtype):
    """Four inputs at width 16 over several blocks, among them two equal inputs and one
    within rounding of them (a block factored with per-row checks, then without): the same
    numbers on one thread, on block threads, on pairs of a block thread and its drawer, and
    whatever the chunk size; the equal inputs stay equal at every layer."""
    samples = 3 * small_blocks(4 * 16) + 7
    base = torch.linspace(-1.0, 1.0, 16, dtype=torch.float64) + 0.3
    y0 = torch.stack([base, base.flip(0), base, base * (1 + 2e-16)])
    kwargs = dict(samples=samples, y0=y0, seed=6, dtype=dtype, record="all")
    runs = []
    for threads, paired, chunk_size in (
        (1, True, None),
        (2, True, None),
        (2, False, 1),
        (4, True, 3),
    ):
        monkeypatch.setattr(chain, "_threads", lambda threads=threads: threads)
        monkeypatch.setattr(chain, "_PAIRED", (2, 16) if paired else (99, 0))
        monkeypatch.setattr(chain, "_PAIRED_DTYPES", (torch.float32, torch.float64))
        runs.append(dl.sample_resnet(16, 8, "relu", chunk_size=chunk_size, **kwargs))
    y = runs[0]
    assert torch.equal(y[:, :, 0], y[:, :, 2]) and not torch.equal(y[:, :, 0], y[:, :, 1])
    for other in runs[1:]:
        assert torch.equal(other, y)
