import math

import pytest
import torch

from deeplimit.activations import (
    GELU,
    OU,
    CustomActivation,
    Linear,
    PiecewiseLinear,
    ReLU,
    SiLU,
    SoftplusM,
    Tanh,
    available_activations,
    parse_activation,
)

SMOOTH = [
    Tanh(),
    GELU(),
    SiLU(),
    SoftplusM(m=3.0),
    OU(),
    OU(alpha=2.0, beta=0.5, sigma=1.5),
    Linear(a=-2.0),
]


def _autograd_derivatives(fn, x):
    x = x.clone().requires_grad_(True)
    (first,) = torch.autograd.grad(fn(x).sum(), x, create_graph=True)
    if not first.requires_grad:  # phi' constant: phi'' = 0
        return first.detach(), torch.zeros_like(x)
    (second,) = torch.autograd.grad(first.sum(), x)
    return first.detach(), second.detach()


@pytest.mark.parametrize("activation", SMOOTH, ids=lambda a: a.spec)
def test_derivatives_match_autograd(activation):
    x = torch.linspace(-4, 4, 801, dtype=torch.float64)
    first, second = _autograd_derivatives(activation.phi, x)
    assert torch.allclose(activation.derivative(x), first, rtol=1e-10, atol=1e-12)
    if not isinstance(activation, OU):  # autograd cannot differentiate through the solver
        assert torch.allclose(activation.second_derivative(x), second, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("activation", [*SMOOTH, OU()], ids=lambda a: a.spec)
def test_derivatives_match_finite_differences(activation):
    x = torch.linspace(-3, 3, 301, dtype=torch.float64)
    h = 1e-5
    central = (activation.phi(x + h) - activation.phi(x - h)) / (2 * h)
    assert torch.allclose(activation.derivative(x), central, rtol=1e-7, atol=1e-8)
    central2 = (activation.derivative(x + h) - activation.derivative(x - h)) / (2 * h)
    assert torch.allclose(activation.second_derivative(x), central2, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize(
    "activation", [ReLU(), PiecewiseLinear(1.0, 0.5), PiecewiseLinear(2.0, -1.0)]
)
def test_piecewise_linear_values_and_derivatives(activation):
    x = torch.tensor([-2.0, -0.5, 0.0, 0.5, 2.0], dtype=torch.float64)
    alpha, beta = (
        (1.0, 0.0) if isinstance(activation, ReLU) else (activation.alpha, activation.beta)
    )
    expected = torch.where(x >= 0, alpha * x, beta * x)
    assert torch.equal(activation.phi(x), expected)
    assert torch.equal(
        activation.derivative(x), torch.tensor([beta, beta, beta, alpha, alpha], dtype=x.dtype)
    )
    assert torch.equal(activation.second_derivative(x), torch.zeros_like(x))
    assert activation.positively_homogeneous


def test_ou_activation_properties():
    """hayou.md §3.3: phi > 0, even, phi(0) = 2 sigma / (alpha beta sqrt(pi)),
    phi ~ 2|x| sqrt(ln|x|)."""
    ou = OU(alpha=1.0, beta=1.0, sigma=1.0)
    x = torch.linspace(-10, 10, 2001, dtype=torch.float64)
    values = ou.phi(x)
    assert bool((values > 0).all())
    assert torch.allclose(values, ou.phi(-x), rtol=1e-14)
    assert ou.phi(torch.tensor(0.0, dtype=torch.float64)).item() == pytest.approx(
        2 / math.sqrt(math.pi), rel=1e-15
    )
    other = OU(alpha=2.0, beta=0.5, sigma=3.0)
    assert other.phi(torch.zeros(1, dtype=torch.float64)).item() == pytest.approx(
        2 * 3.0 / (2.0 * 0.5 * math.sqrt(math.pi)), rel=1e-15
    )
    big = torch.tensor([1e6, 1e12, 1e100], dtype=torch.float64)
    ratio = ou.phi(big) / (2 * big * torch.sqrt(torch.log(big)))
    assert bool((ratio > 1).all()) and bool((ratio[1:] < ratio[:-1]).all()) and ratio[-1] < 1.02


def test_ou_activation_turns_the_sde_into_ou():
    """g = alpha E(beta x) satisfies g' phi = sigma and g'' phi^2 / 2 = -theta g (Itô)."""
    ou = OU(alpha=1.5, beta=0.7, sigma=1.2)
    x = torch.linspace(-5, 5, 401, dtype=torch.float64)
    u = ou.transform(x)
    g_prime = ou.alpha * ou.beta * (math.sqrt(math.pi) / 2) * torch.exp(-u * u)
    assert torch.allclose(g_prime * ou.phi(x), torch.full_like(x, ou.sigma), rtol=1e-13)
    e_prime = (math.sqrt(math.pi) / 2) * torch.exp(-u * u)  # E'(y) = 1 / erfi'(E(y))
    g_second = -2 * u * ou.beta * g_prime * e_prime  # d/dx exp(-E(beta x)^2) = -2 E E' beta
    assert torch.allclose(
        0.5 * g_second * ou.phi(x) ** 2, -ou.theta * ou.alpha * u, rtol=1e-12, atol=1e-13
    )


def test_spec_round_trip():
    for name in available_activations():
        activation = parse_activation(name)
        assert parse_activation(activation.spec) == activation
    assert parse_activation("leaky:alpha=1,beta=0.5") == PiecewiseLinear(1.0, 0.5)
    assert parse_activation("ou:alpha=1,beta=2,sigma=3") == OU(1.0, 2.0, 3.0)
    assert parse_activation(" linear : a = 2 ") == Linear(2.0)
    assert parse_activation("identity") == Linear(1.0)
    assert parse_activation("swish") == SiLU()
    assert parse_activation(ReLU()) is not None


def test_custom_callable_uses_autograd():
    activation = parse_activation(torch.sin)
    assert isinstance(activation, CustomActivation)
    x = torch.linspace(-3, 3, 50, dtype=torch.float64)
    assert torch.allclose(activation.phi(x), torch.sin(x))
    assert torch.allclose(activation.derivative(x), torch.cos(x), rtol=1e-14)
    assert torch.allclose(activation.second_derivative(x), -torch.sin(x), rtol=1e-14)
    linear = parse_activation(lambda t: 3 * t)
    assert torch.equal(linear.second_derivative(x), torch.zeros_like(x))


def test_custom_callable_with_wrong_shape_is_rejected():
    activation = parse_activation(lambda t: t.sum())
    with pytest.raises(ValueError, match="same shape"):
        activation.phi(torch.ones(3))


@pytest.mark.parametrize(
    "spec, match",
    [
        ("sigmoidish", "activation must be one of"),
        ("leaky:alpha", "key=value"),
        ("leaky:gamma=1", "unknown parameter 'gamma'"),
        ("leaky:alpha=abc", "alpha must be a finite number"),
        ("leaky:alpha=nan", "alpha must be a finite number"),
        ("ou:alpha=-1", "alpha must be a finite number > 0"),
        ("ou:sigma=0", "sigma must be a finite number > 0"),
        ("softplus_m:m=0", "m must be > 0"),
        ("relu:a=1", "unknown parameter 'a' for 'relu' \\(allowed: none\\)"),
        ("linear:a=1,a=2", "given twice"),
    ],
)
def test_bad_specs_name_the_problem(spec, match):
    with pytest.raises(ValueError, match=match):
        parse_activation(spec)


def test_non_callable_is_rejected():
    with pytest.raises(ValueError, match="activation must be a name"):
        parse_activation(3.0)


@pytest.mark.parametrize("m", [0.5, 10.0, 1000.0])
def test_softplus_m_is_accurate_to_rounding(m):
    """``(log(1 + e^{mx}) - log 2) / m`` within 4 ulp of mpmath: torch's softplus returns its
    input above 20 (4e-11 relative just past ``mx = 20``), and ``softplus - log 2`` cancels
    near 0 (1e-13 at ``mx = 1e-3``)."""
    import mpmath
    import numpy as np

    y = np.concatenate([np.logspace(-12, 3, 301), np.linspace(19.0, 40.0, 211)])
    y = np.concatenate([-y, [0.0], y])
    x = torch.tensor(y / m, dtype=torch.float64)
    values = SoftplusM(m=m).phi(x)
    with mpmath.workdps(40):
        expected = [
            float((mpmath.log1p(mpmath.exp(m * mpmath.mpf(v))) - mpmath.log(2)) / m)
            for v in x.tolist()
        ]
    expected = torch.tensor(expected, dtype=torch.float64)
    error = (values - expected).abs() / expected.abs().clamp(min=1e-300)
    assert float(error.max()) < 4 * torch.finfo(torch.float64).eps
