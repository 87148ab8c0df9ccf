"""Observables streamed out of the sampler, collapse probabilities and gradient norms."""

import math

import numpy as np
import pytest
import scipy.stats
import torch

import deeplimit as dl
from deeplimit.initialization import laws
from deeplimit.initialization.chain import LayerView, Observer
from deeplimit.initialization.gradients import gradient_norms
from deeplimit.initialization.observables import collapse_probability, observe_resnet
from deeplimit.stats import binomial_test, bonferroni, ks_test, mean_zscore, two_sample_test

LEVEL = 1e-3


def test_observables_are_those_of_the_sampled_networks():
    kwargs = dict(samples=300, x=[[1.0, 0.5], [0.3, -1.0]], seed=3)
    paths = dl.sample_resnet(4, 30, "tanh", record="all", **kwargs)
    obs = observe_resnet(
        4,
        30,
        "tanh",
        observables=["log_growth", "norm", "active", "correlation"],
        layers=[0, 10, 30],
        **kwargs,
    )
    phi_norm = torch.tanh(paths).norm(dim=-1)
    assert torch.allclose(obs["log_growth"], torch.log(phi_norm[:, [0, 10, 30]] / phi_norm[:, :1]))
    assert torch.allclose(obs["y_norm"], paths[:, [0, 10, 30]].norm(dim=-1))
    assert torch.equal(obs["active"], (paths[:, [0, 10, 30]] > 0).sum(-1).int())
    average = (paths[:, :30] > 0).sum(-1).double().mean(1) / 4
    assert torch.allclose(obs["active_fraction"], average)
    a, b = paths[:, [0, 10, 30], 0], paths[:, [0, 10, 30], 1]
    correlation = (a * b).sum(-1) / (a.norm(dim=-1) * b.norm(dim=-1))
    assert torch.allclose(obs["correlation"][..., 0], correlation)
    dataset = obs.to_dataset()
    assert dataset["log_growth"].dims == ("sample", "layer", "input")
    assert list(dataset.layer.values) == [0, 10, 30]


def test_drift_of_the_identity_is_deterministic():
    """phi = id: mu = (n - 2)/(2n) and rho = 1 at every layer (Prop. 9)."""
    obs = observe_resnet(
        5, 40, "linear", samples=100, y0=[1.0, 2.0, -1.0, 0.5, 0.0], observables=["quasi_gbm"]
    )
    assert torch.allclose(obs["drift"], torch.full((100,), 3 / 10, dtype=torch.float64))
    assert torch.allclose(
        obs["quadratic_variation"], torch.full((100,), 1 / 5, dtype=torch.float64)
    )


def test_drift_of_relu_is_active_count():
    """ReLU: mu = (N - 2)/(2n), so drift = (1/L) sum (N_l - 2)/(2n) (Thm 1)."""
    obs = observe_resnet(
        6, 50, "relu", samples=500, x=[1.0], observables=["quasi_gbm", "active", "collapse"]
    )
    alive = obs["collapse_layer"] < 0
    expected = (obs["active_fraction"] * 6 - 2) / 12
    assert torch.allclose(obs["drift"][alive], expected[alive])


@pytest.mark.parametrize("width", [1, 2, 4, 16])
def test_c9_quasi_gbm_residual_is_gaussian(width):
    """C9: R = LG_1 - (1/2n)(1/L) sum_{l<L} (N_l - 2) -> N(0, 1/n); KS of sqrt(n) R at L = 300."""
    obs = observe_resnet(
        width,
        300,
        "relu",
        samples=10000,
        x=[1.0],
        observables=["log_growth", "quasi_gbm", "collapse"],
        seed=width,
    )
    alive = obs["collapse_layer"] < 0
    residual = obs.quasi_gbm_residual[alive] * math.sqrt(width)
    result = ks_test(residual, scipy.stats.norm(), level=LEVEL)
    assert result.passed, str(result)


def test_c10_regime_change_sign_fast():
    """C10: E[LG_1 | alive] < 0 for n <= 3 and > 0 for n >= 5 (one-sided z at level 1e-3).

    n = 4 (|E|/sd ~ 0.026) needs ~1e5 samples: see the slow test."""
    for width, sign in ((2, -1), (3, -1), (5, 1), (8, 1)):
        obs = observe_resnet(
            width,
            200,
            "relu",
            samples=20000,
            x=[1.0],
            observables=["log_growth", "collapse"],
            seed=50 + width,
        )
        growth = obs["log_growth"][obs["collapse_layer"] < 0].numpy()
        z = growth.mean() / (growth.std(ddof=1) / math.sqrt(growth.size))
        assert sign * z > scipy.stats.norm.isf(LEVEL), (width, z)


@pytest.mark.slow
def test_c10_regime_change_width_four():
    obs = observe_resnet(
        4, 300, "relu", samples=400_000, x=[1.0], observables=["log_growth", "collapse"], seed=54
    )
    growth = obs["log_growth"][obs["collapse_layer"] < 0].numpy()
    z = growth.mean() / (growth.std(ddof=1) / math.sqrt(growth.size))
    assert z > scipy.stats.norm.isf(LEVEL), z


def test_collapse_probability_width_one_matches_exact_formula():
    result = collapse_probability(1, 10, samples=60000, y0=[1.0], seed=4)
    assert result.probability[0] == 0 and result.trials == 60000
    tests = [
        binomial_test(
            int(result.collapsed[layer]),
            result.trials,
            laws.relu_width1_collapse_probability(10, layer),
            level=LEVEL,
        )
        for layer in range(1, 11)
    ]
    assert bonferroni(tests, level=LEVEL).passed
    assert np.all(result.low <= result.probability) and np.all(result.probability <= result.high)


def test_collapse_decreases_with_depth_and_width():
    """C8: P(collapse by L | alive at 0) decreases in L and in n."""
    final = {}
    for width in (1, 2, 3):
        for depth in (1, 2, 5):
            result = collapse_probability(
                width, depth, samples=40000, x=[1.0], seed=7 * width + depth
            )
            final[width, depth] = result
    for width in (1, 2, 3):
        # decreasing in depth: the intervals separate
        assert final[width, 1].low[-1] > final[width, 5].high[-1]
    for depth in (1, 2):
        assert final[1, depth].low[-1] > final[2, depth].high[-1] > 0
        assert final[2, depth].low[-1] > final[3, depth].high[-1]
    # spec table (hayou.md §8 C8, M = 1e5): n = 2, L = 1: .054; n = 3, L = 1: .020
    assert final[2, 1].low[-1] < 0.054 < final[2, 1].high[-1]
    assert final[3, 1].low[-1] < 0.020 < final[3, 1].high[-1]


def test_unconditional_collapse_starts_at_two_to_minus_n():
    result = collapse_probability(3, 4, samples=40000, x=[1.0, -2.0], conditional=False, seed=9)
    test = binomial_test(int(result.collapsed[0]), result.trials, 2.0**-3, level=LEVEL)
    assert test.passed and not result.conditional
    assert np.all(np.diff(result.probability) >= 0)


def test_collapse_conditional_undefined_when_y0_is_dead():
    with pytest.raises(ValueError, match="conditional on a non-collapsed Y_0 is undefined"):
        collapse_probability(2, 3, samples=10, y0=[-1.0, -2.0])


def test_smooth_activations_never_collapse():
    """C16 (Lemma 2): tanh, GELU, SiLU: min_l ||phi(Y_l)|| > 0 on every path."""
    for activation in ("tanh", "gelu", "silu"):
        obs = observe_resnet(
            3, 100, activation, samples=5000, x=[1.0, 0.5], observables=["collapse"], seed=11
        )
        assert bool((obs["collapse_layer"] < 0).all()), activation


def test_correlations_exact_in_law():
    x = [[1.0, 0.0], [0.6, 0.8]]
    kwargs = dict(samples=8000, x=x, observables=["correlation"], layers=[10, 40])
    law = observe_resnet(3, 40, "relu", method="law", seed=1, **kwargs)["correlation"]
    weights = observe_resnet(3, 40, "relu", method="weights", seed=2, **kwargs)["correlation"]
    assert bool((law.abs() <= 1 + 1e-12).all())
    tests = [two_sample_test(law[:, i, 0], weights[:, i, 0], level=LEVEL) for i in range(2)]
    assert bonferroni(tests, level=LEVEL).passed


class _CaptureWeights(Observer):
    """Redraws each layer's weights and checks they reproduce the forward step."""

    def __init__(self):
        self.weights, self.states = [], []

    def start(self, context, view):
        self.context = context
        self.states = [view.y.clone()]
        self.weights = []

    def observe(self, view: LayerView):
        n = view.y.shape[-1]
        noise = torch.empty(view.y.shape[0], n, n, dtype=view.y.dtype)
        self.context.draw(noise, view.layer)
        self.weights.append(noise / math.sqrt(n))
        self.states.append(view.y.clone())


def test_weights_backward_pass_equals_autograd():
    from deeplimit.initialization.chain import ChainPlan, simulate_chain
    from deeplimit.initialization.state import resolve_initial_state

    n, depth = 4, 6
    activation = dl.parse_activation("tanh")
    state = resolve_initial_state(
        n, [0.5, -1.0, 2.0, 0.1], None, torch.float64, torch.device("cpu")
    )
    plan = ChainPlan(
        width=n,
        steps=depth,
        scale=depth**-0.5,
        activation=activation,
        state=state,
        samples=5,
        method="weights",
        record=(),
        seed=0,
        device=torch.device("cpu"),
        dtype=torch.float64,
    )
    capture = _CaptureWeights()
    simulate_chain(plan, observers=[capture])
    y = capture.states[0][:, 0].clone().requires_grad_(True)
    out = y
    for layer, weight in enumerate(capture.weights, start=1):
        out = out + depth**-0.5 * torch.einsum("sij,sj->si", weight, torch.tanh(out))
        assert torch.allclose(out, capture.states[layer][:, 0], rtol=1e-13, atol=1e-13)
    g_last = torch.tensor([1.0, -2.0, 0.5, 3.0], dtype=torch.float64)
    (grad,) = torch.autograd.grad((out * g_last).sum(), y)
    norms = gradient_norms(
        n,
        depth,
        "tanh",
        samples=5,
        y0=[0.5, -1.0, 2.0, 0.1],
        grad_last=g_last,
        layers=[0, depth],
        method="weights",
    )
    assert torch.allclose(norms[:, 0], grad.norm(dim=-1), rtol=1e-12)
    assert torch.allclose(norms[:, 1], g_last.norm().expand(5))


@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_law_gradients_match_weights_in_law(activation):
    kwargs = dict(samples=20000, y0=[1.0, -0.5, 0.3, 0.8, -1.2], layers=[0, 15])
    weights = gradient_norms(5, 30, activation, method="weights", seed=1, **kwargs)
    law = gradient_norms(5, 30, activation, method="law", seed=2, **kwargs)
    tests = [two_sample_test(weights[:, i], law[:, i], level=LEVEL) for i in range(2)]
    assert bonferroni(tests, level=LEVEL).passed


def test_c14_gradients_stay_order_one():
    """C14 (Fig. 8): median ||g_l||/||g_L|| in [0.5, 3] at every layer; E||g_0||^2 ~ e^{1/2}."""
    norms = gradient_norms(20, 100, "relu", samples=3000, x=[1.0], method="law")
    median = norms.median(dim=0).values
    assert bool(((median > 0.5) & (median < 3)).all())
    result = mean_zscore(norms[:, 0] ** 2, (1 + 1 / 200) ** 100 * 1.0, level=LEVEL)
    assert abs(result.mean - math.exp(0.5)) < 0.15, str(result)


@pytest.mark.parametrize(
    "call, match",
    [
        (
            lambda: observe_resnet(2, 3, "relu", samples=5, y0=[1.0, 1.0], observables=["speed"]),
            "observables must be among",
        ),
        (
            lambda: observe_resnet(
                2, 3, "relu", samples=5, y0=[1.0, 1.0], observables=["correlation"]
            ),
            "needs at least two inputs",
        ),
        (
            lambda: observe_resnet(2, 3, "relu", samples=5, y0=[1.0, 1.0], observables=[]),
            "at least one",
        ),
        (
            lambda: gradient_norms(
                2, 3, "relu", samples=5, y0=[[1.0, 1.0], [0.0, 1.0]], method="law"
            ),
            "one input only",
        ),
        (
            lambda: gradient_norms(
                2, 3, "relu", samples=5, y0=[1.0, 1.0], grad_last=[1.0, 2.0, 3.0]
            ),
            r"grad_last must be finite with shape \(2,\)",
        ),
    ],
)
def test_bad_observable_input(call, match):
    with pytest.raises(ValueError, match=match):
        call()
