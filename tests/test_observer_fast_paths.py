"""The observers' fast paths (``observables.py``: branch-free arithmetic on finite states,
buffers reused across layers, pairs from slices) give the bits of the reference formulas,
degenerate inputs included: collapsed paths (phi = 0, -0), inputs dead at layer 0,
subnormal ratios, identical inputs, states rescaled by powers of two."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

import deeplimit as dl
from deeplimit.activations import ReLU, parse_activation
from deeplimit.initialization.chain import LayerView
from deeplimit.initialization.observables import _Correlation, _empty, _log_, _RatioLog

NAMES = ["log_growth", "collapse", "active", "quasi_gbm", "norm"]
CASES = [  # (width, initial state[, activation]): every kind of path the fast paths take
    (1, [[-0.5]]),  # every path collapsed at layer 0: log-growth NaN everywhere
    (1, [[-0.0]]),  # phi(Y_0) = -0 for the width-1 ReLU norm
    (1, [[0.3]]),  # about half the paths collapse, at every layer
    (1, [[-0.5], [-0.0], [-(2.0**-120)]]),  # several inputs, every one collapsed at layer 0
    (1, [[-(2.0**100)], [-0.5]]),  # a huge collapsed input beside a normal one
    (1, [[-0.5], [0.3], [-0.5], [2.0**-100]]),  # dead and live inputs, two identical, tiny
    (1, [[-0.5], [0.3], [2.0**-100], [-0.0]]),  # live inputs between dead ones
    (2, [[0.2, -1.0]]),  # a few collapse (the rare event of test_sampler_engine)
    (3, [[1.0, 0.5, -1.0], [-1.0, -2.0, 0.0], [1.0, 0.5, -1.0]]),  # one dead, two identical
    (5, [[2.0**-100, 1.0, -1.0, 0.5, 0.0], [1.0, 2.0, 3.0, -4.0, 5.0]]),  # rescaled up
    (4, [[2.0**100, -1.0, 1.0, 0.0]]),  # rescaled down
    (2, [[0.0, 0.0], [1.0, -1.0]], "tanh"),  # phi(Y_0) = 0 for a smooth activation
    (3, [[0.5, -1.0, 0.0]], "leaky:alpha=0.1"),
    (1, [[1.0]], "linear:a=3"),
]


def _observe(dtype, width, y0, activation="relu"):
    names = NAMES + (["correlation"] if len(y0) > 1 else [])
    return dl.observe_resnet(
        width,
        12,
        activation,
        samples=200,
        y0=y0,
        dtype=dtype,
        seed=7,
        layers="all",
        observables=names,
    ).values


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float32", "float64"])
def test_fast_paths_give_the_bits_of_the_reference_path(monkeypatch, dtype):
    """With no view known to be finite (as on an accelerator, which reads no check back to
    the host) every observer takes its reference formula: the same bits, NaN and infinities
    included. (The chain itself runs as on the CPU: without host checks it computes the phi
    norms of several inputs in another memory layout, which may change their last bit.)"""
    fast = [_observe(dtype, *case) for case in CASES]
    initialize = LayerView.__init__

    def unknown(self, *args, **kwargs):
        initialize(self, *args, **kwargs)
        self.finite = False

    monkeypatch.setattr(LayerView, "__init__", unknown)
    for case, values in zip(CASES, fast, strict=True):
        for name, reference in _observe(dtype, *case).items():
            torch.testing.assert_close(
                values[name], reference, rtol=0, atol=0, equal_nan=True, msg=f"{case} {name}"
            )
            assert torch.equal(torch.signbit(values[name]), torch.signbit(reference))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float32", "float64"])
def test_ratio_log_is_the_log_of_the_ratio_for_every_special_value(dtype):
    """The branch-free float64 log-growth has the bits of ``_log_(p / q)``, the reference, NaN
    signs included: zeros of ``p`` (+0 and -0), zeros of ``q``, ratios that are subnormal,
    that overflow, or exactly 1; and ``_log_`` is the logarithm to an ulp."""
    info = torch.finfo(dtype)
    tiny, big = info.tiny, info.max
    p = [0.0, -0.0, 1.0, 3.5, 0.0, 2.0, 1e-3, tiny, 0.0, 7.0, tiny, big, 0.0, -0.0, 5.0]
    q = [1.0, 2.0, 1.0, 0.5, 0.0, 0.0, 4.0, 1.0, 3.0, 7.0, 8.0, 0.5, 0.0, 0.0, big]
    p, q = torch.tensor(p, dtype=dtype), torch.tensor(q, dtype=dtype)
    reference = _log_(p / q)
    for known in (False, True):
        view = LayerView(1, p.unsqueeze(-1), ReLU(), finite=True)
        view._phi_norm = p  # a width-1 ReLU norm may be -0
        logs = _RatioLog.start(view, q)
        if dtype == torch.float32:  # NumPy's float32 log is fast on every value: the reference
            assert logs is None
            break
        assert logs is not None
        out = torch.empty_like(p)
        fast = logs(view, out)
        assert fast.data_ptr() == out.data_ptr()
        torch.testing.assert_close(fast, reference, rtol=0, atol=0, equal_nan=True)
        assert torch.equal(torch.signbit(fast), torch.signbit(reference))
        if known:  # no zero anywhere and the range known: the plain log of the ratio
            view = LayerView(1, q[:4].unsqueeze(-1), ReLU(), finite=True)
            view._phi_norm, view.phi_range = q[:4], (0.5, 3.5)
            plain = _RatioLog.start(view, q[:4].flip(0))
            assert plain is not None
            expected = _log_(q[:4] / q[:4].flip(0))
            assert torch.equal(plain(view, torch.empty(4, dtype=dtype)), expected)
    exact = torch.log((p / q).double())
    finite = torch.isfinite(exact)
    assert torch.equal(torch.isnan(reference), torch.isnan(exact))
    assert torch.equal(
        reference[~finite & ~torch.isnan(exact)], exact[~finite & ~torch.isnan(exact)].to(dtype)
    )
    torch.testing.assert_close(reference[finite].double(), exact[finite], rtol=2 * info.eps, atol=0)
    # q not finite, or a state not known to be finite: no fast path
    view = LayerView(1, p.unsqueeze(-1), ReLU(), finite=True)
    assert _RatioLog.start(view, torch.tensor([1.0, math.inf], dtype=dtype)) is None
    assert _RatioLog.start(LayerView(1, p.unsqueeze(-1), ReLU()), q) is None


@pytest.mark.parametrize("width", [1, 3, 8])
def test_active_count_from_the_sign_of_phi_is_the_count_of_positive_entries(width):
    generator = torch.Generator().manual_seed(1)
    y = torch.randn(50, 2, width, generator=generator, dtype=torch.float64)
    y[y < -0.5] = 0.0
    y[y > 1.5] = -0.0
    y[0, 0, 0] = 5e-324  # the smallest subnormal is positive
    fast = LayerView(0, y, ReLU(), finite=True).active
    assert fast.dtype == torch.int32
    assert torch.equal(fast, (y > 0).sum(-1, dtype=torch.int32))
    assert torch.equal(LayerView(0, y, ReLU()).active, fast)  # the reference branch


@pytest.mark.parametrize("inputs", [2, 3, 4])
@pytest.mark.parametrize("width", [1, 16, 64])
def test_correlations_from_slices_are_the_gathered_reduction(inputs, width):
    """The pairs' products written from slices into a buffer laid out like the gather: the
    reduction over the width is the same, bit for bit, for the samples-last CPU layout."""
    size = 300
    memory = torch.randn(inputs, width, size, generator=torch.Generator().manual_seed(width))
    y = memory.permute(2, 0, 1)
    y[:, -1] = y[:, 0]  # identical inputs: correlation exactly 1
    norm = y.square().sum(-1).sqrt()
    plan = type("Plan", (), {"samples": size, "inputs": inputs, "dtype": y.dtype})()
    plan.device = y.device
    observer = _Correlation((0,), plan)  # type: ignore[arg-type]
    context = type("Context", (), {"start": 0, "stop": size})()
    observer.start(context, LayerView(0, y, parse_activation("relu"), y_norm=norm))
    observer.end()
    unit = y / norm.unsqueeze(-1)
    pairs = list(itertools.combinations(range(inputs), 2))
    first, second = torch.tensor([a for a, _ in pairs]), torch.tensor([b for _, b in pairs])
    reference = (unit[:, first] * unit[:, second]).sum(-1)
    assert torch.equal(observer.results()["correlation"][:, 0], reference)


def test_large_results_are_populated_mappings_of_the_asked_shape():
    big = _empty((1024, 65, 17), torch.int32, torch.device("cpu"))
    assert big.shape == (1024, 65, 17) and big.dtype == torch.int32 and big.is_contiguous()
    big.fill_(3)
    assert int(big.sum()) == 3 * big.numel()
    small = _empty((4, 5), torch.float64, torch.device("cpu"))
    assert small.shape == (4, 5) and small.dtype == torch.float64


STATES = [  # (width, inputs): distinct, identical, opposite, rescaled by 2^+-100, dead
    (1, [[0.3], [-0.2], [0.3], [2.0**-100], [-(2.0**100)]]),
    (5, [[1.0, -0.5, 0.2, 0.0, 2.0], [1.0, -0.5, 0.2, 0.0, 2.0], [-1.0, 0.5, -0.2, 0.0, -2.0]]),
    (5, [[2.0**-100, 1.0, -1.0, 0.5, 0.0], [1.0, 2.0, 3.0, -4.0, 5.0], [-1.0] * 5]),
    (16, [[(-1.0) ** i * (i + 1) * 2.0**60 for i in range(16)], [0.5] * 16]),
    (3, [[1.0, 1.0, 1.0], [1.0, 1.0, 1.0 + 2.0**-20]]),  # nearly collinear
]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("width,y0", STATES, ids=[f"n{n}-k{len(y)}" for n, y in STATES])
def test_streamed_correlations_are_those_of_the_sampled_states(dtype, width, y0):
    """The correlations streamed at every layer are ``<y_a, y_b> / |y_a| |y_b|`` of the states
    that ``sample_resnet`` returns for the same seed (computed in float64), to a few ulps of
    the dtype, for every chunk size alike (the same bits), and exactly +-1 at width 1."""
    common = dict(samples=300, y0=y0, dtype=dtype, seed=5)
    y = dl.sample_resnet(width, 8, "relu", record="all", **common).double()
    pairs = list(itertools.combinations(range(len(y0)), 2))
    dots = torch.stack([(y[..., a, :] * y[..., b, :]).sum(-1) for a, b in pairs], -1)
    norm = y.norm(dim=-1)
    exact = dots / torch.stack([norm[..., a] * norm[..., b] for a, b in pairs], -1)
    runs = [
        dl.observe_resnet(
            width, 8, "relu", observables="correlation", layers="all", chunk_size=c, **common
        )["correlation"]
        for c in (None, 64, 7)
    ]
    for run in runs[1:]:
        assert torch.equal(run, runs[0])
    streamed = runs[0]
    assert streamed.shape == exact.shape and streamed.dtype == dtype
    eps = torch.finfo(dtype).eps
    torch.testing.assert_close(streamed.double(), exact, rtol=0, atol=4 * eps * width**0.5)
    if width == 1:
        assert torch.equal(streamed.abs(), torch.ones_like(streamed))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float32", "float64"])
@pytest.mark.parametrize(
    "width,y0,activation",
    [
        (1, [[0.3]], "relu"),
        (2, [[0.2, -1.0], [0.05, 0.1], [-1.0, -1.0]], "relu"),
        (3, [[0.0, 0.0, 0.0], [1.0, -2.0, 0.5]], "leaky:alpha=0.1"),
        (1, [[0.0], [1.0]], "linear:a=2"),
    ],
)
def test_counted_collapse_layers_are_the_first_layers_with_phi_zero(dtype, width, y0, activation):
    """The collapse layers counted from the signs of ``phi_norm`` (collapse is absorbing) are
    the first layers at which ``phi`` of the sampled states vanishes, -1 where it never does,
    for every chunk size; and ``active`` is the count of positive entries of those states."""
    common = dict(samples=400, y0=y0, dtype=dtype, seed=11)
    y = dl.sample_resnet(width, 4, activation, record="all", **common)
    zero = (parse_activation(activation).phi(y) == 0).all(-1)  # (samples, layers, k)
    layers = torch.arange(zero.shape[1]).view(1, -1, 1).expand_as(zero)
    expected = torch.where(zero, layers, zero.shape[1]).amin(1)
    expected = torch.where(expected == zero.shape[1], -1, expected)
    assert bool((expected >= 0).any()) and bool((expected != 0).any())
    for chunk in (None, 64):
        obs = dl.observe_resnet(
            width,
            4,
            activation,
            observables=["collapse", "active"],
            layers="all",
            chunk_size=chunk,
            **common,
        )
        assert torch.equal(obs["collapse_layer"], expected)
        assert torch.equal(obs["active"], (y > 0).sum(-1, dtype=torch.int32))


def test_a_loop_of_runs_reuses_its_result_mappings_at_every_run(monkeypatch):
    """A mapping of results goes back to the pool every time its tensors are freed, not only
    the first time (a finalizer on the mapping itself runs once: PEP 442), so that every run
    of a loop writes its results into the pages of the run before; per-sample results of
    1 MiB and more are pooled too."""
    from deeplimit.initialization import mapped

    monkeypatch.setattr(mapped, "_pool", [])
    common = dict(samples=2**18, y0=[0.5], layers="all", dtype=torch.float32)
    names = ["log_growth", "collapse", "active", "quasi_gbm"]
    pointers = []
    for seed in range(4):
        obs = dl.observe_resnet(1, 4, "relu", seed=seed, observables=names, **common)
        pointers.append({name: t.data_ptr() for name, t in obs.values.items()})
        del obs
    assert all(pointers[i] == pointers[1] for i in (2, 3)), pointers
    assert mapped._pool  # the last run's mappings are back


def test_results_in_reused_mappings_are_those_of_fresh_memory(monkeypatch):
    """Results of more than 1 MiB live in mappings that return to a pool once freed and are
    reused, stale values included, by the next results: every value is written again (the
    same numbers as in fresh memory), and a mapping in use is never handed out twice."""
    from deeplimit.initialization import mapped

    names = ["log_growth", "active", "correlation", "norm"]
    common = dict(samples=2**14, y0=[[0.5, -0.2], [0.1, 0.3]], layers="all", observables=names)
    first = dl.observe_resnet(2, 40, "relu", seed=1, **common)
    kept = {name: tensor.clone() for name, tensor in first.values.items()}
    del first  # its mappings go to the pool
    assert mapped._pool
    again = dl.observe_resnet(2, 40, "relu", seed=2, **common)  # in the reused mappings
    other = dl.observe_resnet(2, 40, "relu", seed=1, **common)  # while ``again`` is alive
    monkeypatch.setattr(mapped, "_pool", [])
    monkeypatch.setattr(mapped, "_POOL_BYTES", 0)
    fresh = dl.observe_resnet(2, 40, "relu", seed=2, **common)
    for name, tensor in fresh.values.items():
        torch.testing.assert_close(again[name], tensor, rtol=0, atol=0, equal_nan=True)
        torch.testing.assert_close(other[name], kept[name], rtol=0, atol=0, equal_nan=True)
    pointers = {t.data_ptr() for t in again.values.values()}
    assert not pointers & {t.data_ptr() for t in other.values.values()}


@pytest.mark.parametrize(
    "width, y0", [(1, [0.5]), (1, [[0.5], [0.2], [-0.1]]), (4, [1.0, -0.5, 0.2, 0.7])]
)
def test_layers_in_any_order_and_repeated_fill_every_slot(width, y0):
    """``layers`` given out of order and with repeats: every slot holds its layer's values,
    those of ``layers="all"`` (per-chunk views of the slots, several chunks and threads)."""
    names = [n for n in ("log_growth", "active", "correlation", "norm") if n != "correlation"]
    if isinstance(y0[0], list):
        names.append("correlation")
    common = dict(samples=700, y0=y0, seed=5, observables=names, chunk_size=256)
    layers = [3, 0, 3, 7, 7, 1]
    some = dl.observe_resnet(width, 7, "relu", layers=layers, **common)
    every = dl.observe_resnet(width, 7, "relu", layers="all", **common)
    assert set(some.values) == set(every.values)
    for name, values in some.values.items():
        if values.ndim >= 2 and values.shape[1] == len(layers):
            expected = every.values[name][:, layers]
        else:  # per-sample results
            expected = every.values[name]
        torch.testing.assert_close(values, expected, rtol=0, atol=0, equal_nan=True)


@pytest.mark.parametrize("inputs", [1, 3])
@pytest.mark.parametrize("width", [1, 4])
def test_active_counts_written_by_the_pass_into_the_results(width, inputs):
    """The compiled pass of a layer counts straight into the results of ``active`` (the next
    recorded layer's slot): at consecutive, repeated and isolated layers, across chunks, the
    counts are those of the sampled states, and the time average their mean."""
    y0 = torch.linspace(-0.5, 1.0, width) if width > 1 else torch.tensor([0.6])
    y0 = torch.stack([y0 + 0.3 * a for a in range(inputs)]) if inputs > 1 else y0
    layers = (0, 1, 2, 2, 3, 7, 11, 12)
    kwargs = dict(samples=301, y0=y0, seed=8, chunk_size=100)
    observed = dl.observe_resnet(width, 12, "relu", observables=["active"], layers=layers, **kwargs)
    states = dl.sample_resnet(width, 12, "relu", record="all", **kwargs)
    states = states if inputs > 1 else states.unsqueeze(2)  # (samples, layers, k, n)
    counts = (states > 0).sum(-1, dtype=torch.int32)  # (samples, layers, k)
    fraction = counts[:, :12].sum(1).double() / (width * 12)
    if inputs == 1:  # one input: no axis of inputs
        counts, fraction = counts.squeeze(-1), fraction.squeeze(-1)
    assert torch.equal(observed.values["active"], counts[:, list(layers)])
    assert torch.equal(observed.values["active_fraction"], fraction)
