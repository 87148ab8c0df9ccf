"""Infinite-width limits (hayou.md §5) and the correlation SDE coefficients (§6)."""

import math

import numpy as np
import pytest
import torch

import deeplimit as dl
from deeplimit.initialization.chain import ChainPlan, simulate_chain
from deeplimit.initialization.meanfield import (
    MeanFieldBlowupError,
    infinite_width_variance,
    meanfield_covariance,
    meanfield_log_growth,
    meanfield_variance,
    relu_correlation,
)
from deeplimit.initialization.observables import correlation_coefficients, observe_resnet
from deeplimit.initialization.state import resolve_initial_state
from deeplimit.stats import bonferroni, mean_zscore

LEVEL = 1e-3


def test_relu_closed_form_and_quadrature_agree():
    t = np.linspace(0, 1, 11)
    closed = meanfield_variance("relu", 2.0, t)
    numeric = meanfield_variance(lambda x: torch.relu(x), 2.0, t)  # a callable: no closed form
    assert np.allclose(closed, 2.0 * np.exp(t / 2), rtol=1e-14)
    assert np.allclose(numeric, closed, rtol=1e-8)
    assert meanfield_variance("linear:a=2", 1.0, 0.5) == pytest.approx(math.exp(2.0), rel=1e-14)
    assert meanfield_variance("leaky:alpha=1,beta=0.5", 1.0, 1.0) == pytest.approx(math.exp(0.625))


def test_log_growth_limit_is_a_quarter_for_relu():
    assert meanfield_log_growth("relu", 3.0, 1.0) == pytest.approx(0.25, rel=1e-14)
    assert np.allclose(meanfield_log_growth("relu", 1.0, [0.0, 0.4]), [0.0, 0.1])


def test_c13_infinite_width_recursion():
    """C13: q_L/q_0 = (1 + 1/(2L))^L for ReLU (1.6480 at L = 300)."""
    q = infinite_width_variance("relu", 1.0, 300)
    assert np.allclose(q, (1 + 1 / 600) ** np.arange(301), rtol=1e-13)
    assert q[-1] == pytest.approx(1.6480, abs=5e-5)


@pytest.mark.parametrize("activation", ["tanh", "gelu", "silu", "ou:alpha=2,beta=1,sigma=1"])
def test_width_first_recursion_converges_to_the_depth_first_ode(activation):
    """Thm 2 vs Thm 3: both orders of limits give the same variance (error O(1/L))."""
    limit = meanfield_variance(activation, 1.0, 1.0)
    errors = [abs(infinite_width_variance(activation, 1.0, L)[-1] - limit) for L in (50, 100, 200)]
    assert errors[0] > errors[1] > errors[2]
    assert errors[1] / errors[2] == pytest.approx(2.0, rel=0.05)  # first order in 1/L


@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_large_width_simulation_matches_the_mean_field_variance(activation):
    """C12: the empirical coordinate variance of Y_L at n = 512 is q_L up to O(1/n) corrections
    (allowed: 0.3 %, about 1.5/n) and 4 standard errors of the mean over networks."""
    width, depth = 512, 100
    obs = observe_resnet(
        width,
        depth,
        activation,
        samples=1000,
        x=[1.0, -1.0],
        observables=["norm"],
        layers=[depth],
        seed=3,
    )
    variance = (obs["y_norm"][:, 0] ** 2 / width).numpy()
    expected = infinite_width_variance(activation, 1.0, depth)[-1]
    standard_error = variance.std(ddof=1) / math.sqrt(variance.size)
    assert abs(variance.mean() - expected) < 4 * standard_error + 0.003 * expected


def test_relu_correlation_ode_values():
    """hayou.md §6: from rho_0 = -0.5, 0, 0.5, 0.9 the limit reaches -0.239, 0.141, 0.550, 0.905."""
    values = relu_correlation([-0.5, 0.0, 0.5, 0.9], 1.0)
    assert np.allclose(values, [-0.239, 0.141, 0.550, 0.905], atol=6e-4)
    assert relu_correlation(1.0, 1.0) == pytest.approx(1.0)


def test_covariance_ode_agrees_with_the_arc_cosine_ode():
    kernel = meanfield_covariance("relu", [[1.0, 0.5], [0.5, 2.0]], [0.5, 1.0])
    rho = kernel[:, 0, 1] / np.sqrt(kernel[:, 0, 0] * kernel[:, 1, 1])
    assert np.allclose(rho, relu_correlation(0.5 / math.sqrt(2.0), [0.5, 1.0]), rtol=1e-8)
    assert np.allclose(kernel[:, 0, 0], np.exp([0.25, 0.5]), rtol=1e-9)


def test_tanh_correlation_against_large_width_simulation():
    x = np.array([[1.0, 0.0], [0.6, 0.8]])
    kernel = meanfield_covariance("tanh", x @ x.T / 2, 1.0)
    expected = kernel[0, 1] / math.sqrt(kernel[0, 0] * kernel[1, 1])
    obs = observe_resnet(1024, 100, "tanh", samples=100, x=x, observables=["correlation"], seed=5)
    measured = obs["correlation"][:, 0, 0].numpy()
    assert abs(measured.mean() - expected) < 0.01


@pytest.mark.parametrize("activation", ["relu", "tanh", "gelu", "linear"])
def test_correlation_coefficients_against_one_step_monte_carlo(activation):
    """mu_c and sigma_c^2 of §6 against one step of length dt = 1e-3 of the exact-in-law chain.

    The drift is estimated with the control variate grad(c) . dY, which has mean 0 (martingale)
    and removes the O(sqrt(dt)) noise, so the estimator's error is O(1) per sample, not
    O(dt^-1/2)."""
    a = torch.tensor([1.0, -0.5, 0.3], dtype=torch.float64)
    b = torch.tensor([0.2, 0.9, -0.4], dtype=torch.float64)
    drift, variance = correlation_coefficients(a, b, activation)
    dt = 1e-3
    state = resolve_initial_state(3, torch.stack([a, b]), None, torch.float64, torch.device("cpu"))
    plan = ChainPlan(
        width=3,
        steps=1,
        scale=dt**0.5,
        activation=dl.parse_activation(activation),
        state=state,
        samples=200_000,
        method="law",
        record=(1,),
        seed=8,
        device=torch.device("cpu"),
        dtype=torch.float64,
    )
    y = simulate_chain(plan)[:, 0]
    big_a, big_b = a @ a, b @ b
    c0 = float(a @ b / torch.sqrt(big_a * big_b))
    c1 = (y[:, 0] * y[:, 1]).sum(-1) / (y[:, 0].norm(dim=-1) * y[:, 1].norm(dim=-1))
    grad_a = b / torch.sqrt(big_a * big_b) - c0 * a / big_a
    grad_b = a / torch.sqrt(big_a * big_b) - c0 * b / big_b
    linear = (y[:, 0] - a) @ grad_a + (y[:, 1] - b) @ grad_b
    drift_test = mean_zscore((c1 - c0 - linear) / dt, float(drift), level=LEVEL)
    relative_se = math.sqrt(2 / y.shape[0])
    assert bonferroni([drift_test], level=LEVEL).passed, str(drift_test)
    assert abs(float(linear.var() / dt) / float(variance) - 1) < 4 * relative_se + 2 * dt


def test_identity_correlation_drift_is_explicit():
    a, b = torch.randn(10, 6, dtype=torch.float64), torch.randn(10, 6, dtype=torch.float64)
    drift, _ = correlation_coefficients(a, b, "linear")
    c = (a * b).sum(-1) / (a.norm(dim=-1) * b.norm(dim=-1))
    assert torch.allclose(drift, -c * (1 - c * c) / 6, atol=1e-14)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: meanfield_variance("relu", 0.0, 1.0), "q0 must be a finite number > 0"),
        (
            lambda: meanfield_variance("relu", 1.0, [0.5, 1.5]),
            r"t must be finite times in \[0, 1\]",
        ),
        (lambda: infinite_width_variance("tanh", 1.0, 0), "depth must be an integer >= 1"),
        (
            lambda: meanfield_covariance("relu", [[1.0, 2.0], [2.0, 1.0]], 1.0),
            "positive semi-definite",
        ),
        (lambda: meanfield_covariance("relu", [1.0, 2.0], 1.0), "square matrix"),
        (lambda: relu_correlation(1.5, 1.0), r"rho0 must lie in \[-1, 1\]"),
        (lambda: correlation_coefficients([1.0, 2.0], [1.0], "relu"), "same shape"),
    ],
)
def test_bad_input(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def _square(x):
    return x * x


def test_superlinear_activation_blows_up_with_a_clear_error():
    """phi(x) = x^2: q' = E (q Z^2)^2 = 3 q^2, so q = q0 / (1 - 3 q0 t), infinite at
    t = 1/(3 q0). Before the blow-up the value is right; past it the functions raise,
    naming the activation, q0 and the time (before: 1.43 returned for every t)."""
    assert meanfield_variance(_square, 1.0, 0.2) == pytest.approx(1 / 0.4, rel=1e-9)
    message = r"'custom:_square' from q0=1 blows up \(becomes infinite or NaN\) at t = 0\.333"
    with pytest.raises(MeanFieldBlowupError, match=message) as info:
        meanfield_variance(_square, 1.0, [0.1, 0.5, 1.0])
    assert info.value.time == pytest.approx(1 / 3, abs=1e-3)
    assert info.value.activation == "custom:_square"
    with pytest.raises(MeanFieldBlowupError, match="q0=1 blows up"):
        meanfield_log_growth(_square, 1.0, 1.0)
    with pytest.raises(MeanFieldBlowupError, match=r"blows up .* at layer \d+") as info:
        infinite_width_variance(_square, 1.0, 100)
    assert info.value.layer is not None and 30 <= info.value.layer <= 100
    assert info.value.time == info.value.layer / 100


@pytest.mark.slow  # ~4600 right-hand sides on the way to the singularity
def test_exponential_activation_blows_up_at_the_right_time():
    """phi = exp: q' = E exp(2 sqrt(q) Z) = e^{2q}, so e^{-2 q0} - e^{-2q} = 2t: infinite at
    t = e^{-2 q0} / 2."""
    with pytest.raises(MeanFieldBlowupError) as info:
        meanfield_variance(torch.exp, 1.0, 1.0)
    assert info.value.time == pytest.approx(math.exp(-2.0) / 2, abs=1e-3)


def test_overflow_and_nan_raise_instead_of_returning_inf():
    # q0 e^{t/2} passes the largest float (1.797e308) at t = 2 log(1.7977 / 1.5) = 0.3621
    with pytest.raises(MeanFieldBlowupError, match=r"'relu' from q0=1\.5e\+308 .* at t = 0\.362"):
        meanfield_variance("relu", 1.5e308, 1.0)
    assert meanfield_variance("relu", 1.5e308, 0.2) == pytest.approx(1.5e308 * math.exp(0.1))
    with pytest.raises(MeanFieldBlowupError, match=r"'gelu' from q0=1e\+308 .* not finite"):
        meanfield_variance("gelu", 1e308, 1.0)
    with pytest.raises(MeanFieldBlowupError, match=r"'gelu' from kernel0=\[\[1e\+307"):
        meanfield_covariance("gelu", [[1e307, 0.0], [0.0, 1e307]], 1.0)
    with pytest.raises(MeanFieldBlowupError, match="NaN"):
        meanfield_variance(torch.sqrt, 1.0, 0.5)  # sqrt of negative arguments
    with pytest.raises(MeanFieldBlowupError, match="layer 1 "):
        infinite_width_variance("gelu", 1e308, 10)
