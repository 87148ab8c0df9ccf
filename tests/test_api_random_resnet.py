"""One description, two objects (issue 9): ``RandomResNet`` / ``ResNetSDE`` with ``Sampling``
and ``Start``, against the functions they replace, and their closed-form laws."""

from __future__ import annotations

import dataclasses
import inspect
import math
import subprocess
import sys

import numpy as np
import pytest
import torch

import deeplimit as dl
from deeplimit import laws
from deeplimit.activations import ReLU
from deeplimit.initialization import sampling as sampling_module
from deeplimit.stats import bonferroni, ks_test, two_sample_test

LEVEL = 1e-3
TWO_INPUTS = [[1.0, 0.5, -0.2], [0.3, -1.0, 0.4]]


# ----------------------------------------------------------------- the same numbers as before


def _assert_same(a, b):
    """Bit for bit, NaN where NaN (a log-growth from ``phi(Y_0) = 0``)."""
    torch.testing.assert_close(a, b, rtol=0, atol=0, equal_nan=True)


@pytest.mark.parametrize("method", ["law", "weights"])
def test_sample_equals_sample_resnet(method):
    net = dl.RandomResNet(3, "tanh")
    sampling = dl.Sampling(samples=40, seed=3, method=method, record="all", chunk_size=16)
    got = net.sample(10, dl.Start.inputs(TWO_INPUTS), sampling)
    old = dl.sample_resnet(
        3, 10, "tanh", samples=40, x=TWO_INPUTS, seed=3, method=method, record="all", chunk_size=16
    )
    assert got.shape == (40, 11, 2, 3)
    assert torch.equal(got, old)


def test_sde_sample_equals_sample_sde_and_resnet_at_steps_equal_depth():
    sde = dl.RandomResNet(2, "relu").limit()
    start = dl.Start.state([1.0, -0.5])
    got = sde.sample(8, start, dl.Sampling(50, seed=2, record=[0.25, 1.0]))
    old = dl.sample_sde(2, "relu", steps=8, samples=50, y0=[1.0, -0.5], seed=2, record=[0.25, 1.0])
    assert torch.equal(got, old)
    # Lemma 6: the Euler scheme with steps = L is the ResNet of depth L, to the bit
    resnet = sde.resnet().sample(8, start, dl.Sampling(50, seed=2, record=[2, 8]))
    assert torch.equal(got, resnet)


def test_observe_equals_observe_resnet_and_observe_sde():
    names = ["log_growth", "collapse", "active", "quasi_gbm", "norm"]
    net = dl.RandomResNet(3, "relu")
    got = net.observe(12, [1.0, -2.0], names, dl.Sampling(60, seed=4, record=[0, 6, 12]))
    old = dl.observe_resnet(
        3, 12, "relu", samples=60, x=[1.0, -2.0], observables=names, layers=[0, 6, 12], seed=4
    )
    assert got.layers == old.layers and got.method == old.method == "law"
    assert got.values.keys() == old.values.keys()
    for name in got.values:
        _assert_same(got[name], old[name])
    sde_got = net.limit().observe(
        8, TWO_INPUTS, ["correlation", "norm"], dl.Sampling(30, seed=5, record="all")
    )
    sde_old = dl.observe_sde(
        3, "relu", steps=8, samples=30, x=TWO_INPUTS, observables=["correlation", "norm"], seed=5,
        times="all",
    )  # fmt: skip
    assert sde_got.times == sde_old.times
    for name in sde_got.values:
        _assert_same(sde_got[name], sde_old[name])


def test_collapse_probability_equals_the_function():
    net = dl.RandomResNet(2, "relu")
    got = net.collapse_probability(6, [1.0], dl.Sampling(400, seed=5), conditional=False)
    old = dl.collapse_probability(2, 6, "relu", samples=400, x=[1.0], seed=5, conditional=False)
    for field in ("probability", "low", "high", "collapsed"):
        assert np.array_equal(getattr(got, field), getattr(old, field)), field
    assert (got.trials, got.samples, got.conditional) == (old.trials, old.samples, False)
    assert got.collapsed[-1] > 0  # width 2, depth 6: some networks collapse


@pytest.mark.parametrize("start", [[1.0, 0.5, -0.2], TWO_INPUTS])
def test_gradient_norms_equal_the_function(start):
    net = dl.RandomResNet(3, "tanh")
    got = net.gradient_norms(8, start, dl.Sampling(30, seed=6), grad_last=[1.0, -2.0, 0.5])
    old = dl.gradient_norms(3, 8, "tanh", samples=30, x=start, seed=6, grad_last=[1.0, -2.0, 0.5])
    assert got.shape[:2] == (30, 9)  # record=None: every layer for gradients
    assert torch.equal(got, old)


def test_auto_is_law_where_exact_and_weights_for_gradients_of_several_inputs():
    kwargs = dict(samples=20, seed=7)
    one = dl.gradient_norms(3, 5, "tanh", x=[1.0, 0.5], **kwargs)
    assert torch.equal(one, dl.gradient_norms(3, 5, "tanh", x=[1.0, 0.5], method="law", **kwargs))
    two = dl.gradient_norms(3, 5, "tanh", x=TWO_INPUTS, **kwargs)
    assert torch.equal(
        two, dl.gradient_norms(3, 5, "tanh", x=TWO_INPUTS, method="weights", **kwargs)
    )
    y = dl.sample_resnet(3, 5, "tanh", x=TWO_INPUTS, **kwargs)
    assert torch.equal(y, dl.sample_resnet(3, 5, "tanh", x=TWO_INPUTS, method="law", **kwargs))
    with pytest.raises(ValueError, match="method='law' gives exact gradients for one input"):
        dl.RandomResNet(3, "tanh").gradient_norms(5, TWO_INPUTS, dl.Sampling(20, method="law"))


def test_one_set_of_defaults():
    """Every shorthand takes its sampling defaults from ``Sampling``."""
    fields = {f.name: f.default for f in dataclasses.fields(dl.Sampling)}
    functions = [
        dl.sample_resnet,
        dl.sample_sde,
        dl.observe_resnet,
        dl.observe_sde,
        dl.collapse_probability,
        dl.gradient_norms,
    ]
    for function in functions:
        parameters = inspect.signature(function).parameters
        for name in ("seed", "method", "dtype", "device", "memory_budget", "on_nonfinite"):
            if name in parameters:
                assert parameters[name].default == fields[name], (function.__name__, name)
    record = sampling_module.DEFAULT_RECORD
    assert inspect.signature(dl.sample_resnet).parameters["record"].default == record["state"]
    assert inspect.signature(dl.observe_sde).parameters["times"].default == record["observables"]
    assert inspect.signature(dl.gradient_norms).parameters["layers"].default == record["gradients"]


def test_shorthands_for_sampling_and_start():
    net = dl.RandomResNet(2, "relu")
    full = net.sample(5, dl.Start.inputs([1.0, 2.0]), dl.Sampling(samples=10))
    assert torch.equal(net.sample(5, np.array([1.0, 2.0]), 10), full)
    with pytest.raises(TypeError, match="sampling must be a Sampling"):
        net.sample(5, [1.0], "10")
    with pytest.raises(ValueError, match="start must be a Start"):
        net.sample(5, None, 10)


# ----------------------------------------------------------------- frozen and validated


def test_descriptions_are_frozen_values():
    net = dl.RandomResNet(3, "relu")
    assert net == dl.RandomResNet(3.0, ReLU()) and hash(net) == hash(dl.RandomResNet(3, "relu"))
    assert net.limit() == dl.ResNetSDE(3, "relu") and net.limit().resnet() == net
    assert net.as_dict() == {"width": 3, "activation": "relu"}
    sampling = dl.Sampling(10, record=[1, 2])
    assert sampling.record == (1, 2) and sampling == dl.Sampling(10, record=(1, 2))
    assert sampling.replace(seed=3).seed == 3 and sampling.seed == 0
    given = np.array([1.0, 2.0])
    start = dl.Start.state(given)
    given[0] = 99.0  # the Start keeps its own copy
    assert start.y0.tolist() == [1.0, 2.0] and start == dl.Start(y0=[1.0, 2.0])
    for obj, name in [(net, "width"), (net.limit(), "width"), (sampling, "seed"), (start, "x")]:
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(obj, name, 1)
    with pytest.raises(ValueError, match="read-only"):
        start.y0[0] = 5.0


@pytest.mark.parametrize(
    "build, token",
    [
        (lambda: dl.RandomResNet(0, "relu"), "width"),
        (lambda: dl.ResNetSDE(2.5, "relu"), "width"),
        (lambda: dl.RandomResNet(2, "no_such_activation"), "activation"),
        (lambda: dl.Sampling(samples=0), "samples"),
        (lambda: dl.Sampling(10, seed=-1), "seed"),
        (lambda: dl.Sampling(10, method="exact"), "method"),
        (lambda: dl.Sampling(10, record="first"), "record"),
        (lambda: dl.Sampling(10, record={1: 2}), "record"),
        (lambda: dl.Sampling(10, dtype="int32"), "dtype"),
        (lambda: dl.Sampling(10, device="tpu"), "device"),
        (lambda: dl.Sampling(10, chunk_size=0), "chunk_size"),
        (lambda: dl.Sampling(10, memory_budget=0), "memory_budget"),
        (lambda: dl.Sampling(10, on_nonfinite="skip"), "on_nonfinite"),
        (lambda: dl.Sampling(10, progress="yes"), "progress"),
        (lambda: dl.Start(), "exactly one of y0"),
        (lambda: dl.Start(x=[1.0], y0=[1.0]), "exactly one of y0"),
        (lambda: dl.Start.inputs([math.nan]), "x must be finite"),
        (lambda: dl.Start.state([[[1.0]]]), "y0 must be one vector"),
        (lambda: dl.RandomResNet(2, "relu").sample(0, [1.0], 5), "depth"),
        (lambda: dl.ResNetSDE(2, "relu").sample(0, [1.0], 5), "steps"),
        (lambda: dl.RandomResNet(2, "relu").sample(3, dl.Start.state([1.0]), 5), "y0"),
        (lambda: dl.RandomResNet(2, "relu").sample(3, [1.0], dl.Sampling(5, record=[9])), "record"),
        (
            lambda: dl.ResNetSDE(2, "relu").observe(
                4, [1.0], ["log_growth"], dl.Sampling(5, record=[0.3])
            ),
            "record",
        ),
        (lambda: dl.RandomResNet(2, "relu").observe(3, [1.0], ["speed"], 5), "observables"),
        (
            lambda: dl.RandomResNet(2, "relu").collapse_probability(3, [1.0], 5, level=2.0),
            "level",
        ),
        (
            lambda: dl.RandomResNet(2, "relu").gradient_norms(3, [1.0], 5, grad_last=[1.0] * 3),
            "grad_last",
        ),
        (lambda: dl.RandomResNet(2, "relu").law([1.0], statistic="mean"), "statistic"),
        (  # refused before it allocates: the recorded layers cannot fit in memory
            lambda: dl.RandomResNet(2, "relu").sample(
                10**9, [1.0], dl.Sampling(10**6, record="all")
            ),
            "record",
        ),
    ],
)
def test_bad_input_names_the_parameter(build, token):
    with pytest.raises((ValueError, TypeError)) as caught:
        build()
    message = str(caught.value)
    assert token in message and "\n" not in message, message


def test_the_old_keyword_names_stay_in_messages():
    with pytest.raises(ValueError, match=r"^layers must be"):
        dl.observe_resnet(2, 3, "relu", samples=4, x=[1.0], layers=[9])
    with pytest.raises(ValueError, match=r"^times must be"):
        dl.observe_sde(2, "relu", steps=4, samples=4, x=[1.0], times=[0.3])
    with pytest.raises(ValueError, match=r"^record must be"):
        dl.RandomResNet(2, "relu").observe(3, [1.0], ["norm"], dl.Sampling(4, record=[9]))


# ----------------------------------------------------------------- closed-form laws


def _ks_family(pairs):
    return bonferroni([ks_test(sample, law, level=LEVEL) for sample, law in pairs], level=LEVEL)


def test_law_matches_the_simulated_limit():
    """The Euler scheme with K steps is within O(1/K) of the limit in law; KS at N samples
    resolves ~1.36/sqrt(N) (0.02 here), far above the few 1e-3 of bias of K = 250 steps."""
    samples, steps = 4000, 250
    gbm = dl.ResNetSDE(1, "linear")
    y0 = dl.Start.state([1.5])
    x1 = gbm.sample(steps, y0, dl.Sampling(samples, seed=11))[:, 0].numpy()
    relu = dl.ResNetSDE(1, "relu")
    r1 = relu.sample(steps, [1.0, -2.0], dl.Sampling(samples, seed=12))[:, 0].numpy()
    identity = dl.RandomResNet(4, "identity")
    state = dl.Start.state([1.0, 0.5, -0.2, 0.3])
    norms = identity.limit().sample(steps, state, dl.Sampling(samples, seed=13)).norm(dim=-1)
    family = _ks_family(
        [
            (x1, gbm.law(y0)),
            (r1, relu.law([1.0, -2.0])),
            (norms.numpy(), identity.law(state, "norm")),
        ]
    )
    assert family.passed, str(family)
    # the same test has the power to see a slightly different law at this sample size
    assert not ks_test(x1, laws.gbm_law(1.15, 1.5), level=LEVEL).passed


def test_law_dispatch_agrees_with_the_laws_module():
    identity = dl.RandomResNet(5, "identity")
    assert (
        identity.law([1.0, 2.0], "log_growth").as_dict() == laws.identity_log_norm_law(5).as_dict()
    )
    norm = identity.law(dl.Start.state([3.0, 0.0, 4.0, 0.0, 0.0]), "norm")
    assert norm.as_dict() == laws.identity_norm_law(5, 5.0).as_dict()
    # linear phi = a x at width 1: the general-width log-growth formula is the GBM's log-ratio
    wide = dl.RandomResNet(1, "linear:a=2").law(dl.Start.state([0.5]), "log_growth")
    gbm = laws.gbm_law(2.0, 0.5).log_ratio()
    assert math.isclose(wide.mean(), gbm.mean()) and math.isclose(wide.var(), gbm.var())
    ou = dl.RandomResNet(1, "ou:alpha=2,beta=1,sigma=1").law(dl.Start.state([0.3]))
    assert ou.as_dict() == laws.ou_law(2.0, 1.0, 1.0, 0.3).as_dict()
    relu = dl.RandomResNet(1, "relu").law(dl.Start.state([2.0]), "log_growth")
    assert (relu.mean(), relu.var()) == (-0.5, 1.0)


@pytest.mark.parametrize(
    "width, activation, start, statistic",
    [
        (4, "relu", [1.0], "state"),
        (2, "tanh", [1.0], "log_growth"),
        (1, "linear", [1.0], "state"),  # random X_0: a GBM mixture, not in deeplimit.laws
        (3, "linear", [1.0, 2.0], "norm"),  # random X_0
        (1, "relu", TWO_INPUTS, "state"),
    ],
)
def test_missing_law_is_a_clear_error(width, activation, start, statistic):
    net = dl.RandomResNet(width, activation)
    with pytest.raises(ValueError, match="no closed-form law") as caught:
        net.law(start, statistic)
    message = str(caught.value)
    assert f"width={width}" in message and f"statistic={statistic!r}" in message, message


def test_meanfield_of_the_description():
    x = [1.0, -2.0, 0.5]
    mean_field = dl.RandomResNet(3, "tanh").meanfield()
    q0 = float(np.mean(np.square(x)))
    assert mean_field.variance(dl.Start.inputs(x), 0.5) == dl.meanfield_variance("tanh", q0, 0.5)
    kernel = mean_field.covariance(dl.Start.inputs(TWO_INPUTS), 1.0)
    values = np.array(TWO_INPUTS)
    expected = dl.meanfield_covariance("tanh", values @ values.T / 3, 1.0)
    assert np.array_equal(kernel, expected)


def test_observables_module_imports_no_file_format():
    code = (
        "import sys, deeplimit.initialization.observables, "
        "deeplimit.initialization.random_resnet;"
        "print(sorted(m for m in ('xarray', 'pandas') if m in sys.modules))"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert run.stdout.strip() == "[]", run.stdout


# ----------------------------------------------------------------- the SDE's gradient norms


def test_sde_gradient_norms_are_the_resnet_s_at_steps_equal_depth():
    """The backward variable of the Euler scheme with steps = L is the ResNet's gradient of
    depth L (Lemma 6, backwards), to the bit, with either sampler."""
    sde = dl.RandomResNet(3, "tanh").limit()
    for method in ("law", "weights"):
        sampling = dl.Sampling(40, seed=8, method=method)
        got = sde.gradient_norms(8, [1.0, -0.5], sampling.replace(record=[0.0, 0.5, 1.0]))
        net = sde.resnet().gradient_norms(8, [1.0, -0.5], sampling.replace(record=[0, 4, 8]))
        assert got.shape == (40, 3)
        assert torch.equal(got, net)
        assert torch.allclose(got[:, 2], torch.tensor(1.0, dtype=got.dtype))  # ||g_1|| fixed


@pytest.mark.parametrize(
    ("steps", "depth", "samples"),
    [(128, 32, 3000), pytest.param(512, 128, 20_000, marks=pytest.mark.slow)],
)
def test_sde_gradient_norms_match_deep_networks_in_law(steps, depth, samples):
    """||g_t|| of the SDE (``steps`` Euler steps) against ||g_l|| of independent networks of
    depth ``depth`` at l = t L (t = 0, 1/2): two-sample KS per time, Bonferroni over the two.
    With n paths each the KS test resolves a distance of about 2.04 sqrt(2/n) between the two
    cdfs at the family level 1e-3 (0.075 for n = 3000, 0.029 for n = 20000); the
    discretisation error of the depths is far below."""
    sde = dl.RandomResNet(4, "tanh").limit()
    start = dl.Start.inputs([1.0, -0.5])
    times, layers = [0.0, 0.5], [0, depth // 2]
    limit = sde.gradient_norms(steps, start, dl.Sampling(samples, seed=1, record=times))
    deep = sde.resnet().gradient_norms(depth, start, dl.Sampling(samples, seed=2, record=layers))
    assert limit.shape == deep.shape == (samples, 2)
    assert float(limit[:, 0].std()) > 0.05  # ||g_0|| is random: the test has something to see
    family = bonferroni(
        [two_sample_test(limit[:, j].numpy(), deep[:, j].numpy(), level=LEVEL) for j in (0, 1)],
        level=LEVEL,
    )
    assert family.passed, str(family)


def test_sde_gradient_norms_of_several_inputs_need_the_weights():
    sde = dl.ResNetSDE(3, "tanh")
    with pytest.raises(ValueError, match=r"one input only .* Brownian increment dM"):
        sde.gradient_norms(5, TWO_INPUTS, dl.Sampling(20, method="law"))
    both = sde.gradient_norms(5, TWO_INPUTS, dl.Sampling(20, record="last"))  # auto: weights
    assert both.shape == (20, 2)
    with pytest.raises(ValueError, match="record must be 'last', 'all', a time in"):
        sde.gradient_norms(5, [1.0], dl.Sampling(20, record=[0.3]))
