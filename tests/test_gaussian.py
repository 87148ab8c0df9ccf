"""Gaussian expectations at every variance (deeplimit.gaussian) against mpmath and closed forms.

Tolerance. The fixed rule's error on a panel is O(3^-32) = 5e-16 of the panel's largest value
(Bernstein ellipse rho = 3, n = 16; module docstring); summing at most ~500 terms adds
rounding of at most 500 eps = 1e-13 (about sqrt(500) eps = 2.5e-15 in practice), and the
activations themselves are accurate to a few ulp. ``RTOL = 1e-12`` covers all of it with
margin, a hundred times inside the 1e-10 the mean-field ODEs need. The adaptive rule (user
callables) stops at a per-panel discrepancy of 1e-14 of ``E|f|``, so the same bound applies.
"""

import math

import mpmath as mp
import numpy as np
import pytest
import torch

from deeplimit.activations import Activation, parse_activation
from deeplimit.gaussian import (
    QuadratureError,
    activation_scale,
    gaussian_expectation,
    joint_moment,
    second_moment,
)
from deeplimit.initialization.meanfield import meanfield_log_growth
from deeplimit.special import erfi_inverse

RTOL = 1e-12
FAST_Q = [1e-8, 1e-3, 1.0, 25.0, 400.0, 1e8]  # 25, 100, 400: the examples
DENSE_Q = list(10.0 ** np.arange(-8.0, 8.01, 0.25))


def _mp_phi(spec: str):
    name, _, params = spec.partition(":")
    if name == "tanh":
        return mp.tanh
    if name == "gelu":
        return lambda x: x * mp.ncdf(x)
    if name == "silu":
        return lambda x: x / (1 + mp.exp(-x))
    if name == "erf":
        return mp.erf
    if name == "softplus_m":
        m = mp.mpf(params.split("=")[1])
        return lambda x: (mp.log1p(mp.exp(m * x)) - mp.log(2)) / m
    raise KeyError(spec)


def _mp_moment(spec: str, q: float, scale: float = 1.0) -> float:
    """``E phi(sqrt(q) Z)^2`` by mpmath's tanh-sinh rule at 20 digits (1e-18 relative against a
    40-digit run), split at the Gaussian scale (``0, 2, ..., 12``) and at the activation's
    (``scale 4^k / sqrt(q)``)."""
    phi = _mp_phi(spec)
    with mp.workdps(20):
        s = mp.sqrt(mp.mpf(q))
        points = {mp.mpf(k) for k in range(0, 13, 2)}
        points |= {mp.mpf(scale) * mp.mpf(2) ** k / s for k in range(-10, 6, 2)}
        positive = sorted(p for p in points if p < 12)
        split = [-mp.inf, *(-p for p in reversed(positive[1:])), *positive, mp.inf]
        return float(mp.quad(lambda z: phi(s * z) ** 2 * mp.npdf(z), split))


def _mp_erfi_inverse(y):
    """``erfi^-1`` by mpmath's root finder (the library's value only as the starting point)."""
    start = float(erfi_inverse(torch.tensor(float(y), dtype=torch.float64)))
    return mp.findroot(lambda u: mp.erfi(u) - y, mp.mpf(start))


def _mp_ou_moment(q: float, alpha: float, beta: float, sigma: float) -> float:
    """``E phi(sqrt(q) Z)^2`` for the ou activation, in the variable ``u = E(beta x)``
    (``x = erfi(u) / beta``, ``phi = c exp(u^2)``, ``dx = 2 exp(u^2) du / (beta sqrt(pi))``),
    where the integrand is explicit."""
    with mp.workdps(20):
        q, alpha, beta, sigma = (mp.mpf(v) for v in (q, alpha, beta, sigma))
        c = 2 * sigma / (alpha * beta * mp.sqrt(mp.pi))
        s = mp.sqrt(q)
        xs = {k * s for k in (1, 2, 3, 5, 8, 14)} | {mp.mpf(4) ** j / beta for j in range(-4, 3)}
        us = [_mp_erfi_inverse(beta * x) for x in sorted(x for x in xs if x <= 14 * s)]
        split = [-u for u in reversed(us)] + [mp.mpf(0)] + us

        def integrand(u):
            x = mp.erfi(u) / beta
            density = mp.exp(-(x**2) / (2 * q)) / mp.sqrt(2 * mp.pi * q)
            return c**2 * mp.exp(3 * u**2) * density * 2 / (beta * mp.sqrt(mp.pi))

        return float(mp.quad(integrand, split))


class Erf(Activation):
    """erf as a library-style activation (not a CustomActivation): the fixed rules against
    ``E erf(U) erf(V) = (2/pi) asin(2 K_ab / sqrt((1 + 2 K_aa) (1 + 2 K_bb)))``."""

    name = "erf"

    def phi(self, x):
        return torch.erf(x)


def _erf_joint(kaa, kbb, kab):
    """In mpmath: in double precision asin near 1 loses up to 1e-12 at K = 1e8, rho = 1."""
    with mp.workdps(30):
        kaa, kbb, kab = mp.mpf(kaa), mp.mpf(kbb), mp.mpf(kab)
        return float(2 / mp.pi * mp.asin(2 * kab / mp.sqrt((1 + 2 * kaa) * (1 + 2 * kbb))))


def _relative_errors(spec, qs):
    act = parse_activation(spec)
    errors = []
    for q in qs:
        if spec.startswith("ou"):
            params = act.parameters
            reference = _mp_ou_moment(q, params["alpha"], params["beta"], params["sigma"])
        else:
            reference = _mp_moment(spec, q, activation_scale(act))
        errors.append(abs(second_moment(act, q) - reference) / reference)
    return np.array(errors)


@pytest.mark.parametrize("spec", ["tanh", "gelu", "silu", "softplus_m:m=10", "softplus_m:m=0.5"])
def test_second_moment_matches_mpmath_at_every_scale(spec):
    """Gauss-Hermite with 200 nodes is off by 1.8e-2 for tanh at q = 100; this rule is at
    rounding level for q from 1e-8 to 1e8."""
    errors = _relative_errors(spec, FAST_Q)
    assert errors.max() < RTOL, dict(zip(FAST_Q, errors))


@pytest.mark.parametrize("spec", ["ou:alpha=1,beta=1,sigma=1", "ou:alpha=2,beta=5,sigma=0.5"])
def test_second_moment_of_the_ou_activation_matches_mpmath(spec):
    qs = [1e-8, 1.0, 100.0, 1e8]
    errors = _relative_errors(spec, qs)
    assert errors.max() < RTOL, dict(zip(qs, errors))


@pytest.mark.slow
@pytest.mark.parametrize(
    "spec",
    [
        "tanh",
        "gelu",
        "silu",
        "softplus_m:m=10",
        "softplus_m:m=100",
        "ou:alpha=1,beta=1,sigma=1",
        "ou:alpha=1,beta=0.2,sigma=1",
    ],
)
def test_second_moment_dense_grid(spec):
    """Four points per decade over [1e-8, 1e8] (the issue's worst-case figure)."""
    errors = _relative_errors(spec, DENSE_Q)
    assert errors.max() < RTOL, max(zip(errors, DENSE_Q))


def test_user_callables_are_integrated_adaptively():
    """Kinks away from 0 (hard tanh at +-1, a shifted ReLU) against closed forms, a smooth
    callable against the library activation, and a shifted ReLU whose mass lies beyond
    |z| = 10 (q = 1e-3: E = 2.5e-26), where only the tail panels see it."""
    hardtanh = parse_activation(lambda x: torch.clamp(x, -1.0, 1.0))
    shifted = parse_activation(lambda x: torch.relu(x - 0.3))
    smooth = parse_activation(lambda x: torch.tanh(x))
    tanh = parse_activation("tanh")
    with mp.workdps(40):
        for q in [1e-6, 1e-3, 0.1, 1.0, 3.0, 50.0, 1e4, 1e8]:
            s = mp.sqrt(mp.mpf(q))
            c = 1 / s
            expected = q * (2 * mp.ncdf(c) - 1) - 2 * s * mp.npdf(c) + 2 * (1 - mp.ncdf(c))
            assert second_moment(hardtanh, q) == pytest.approx(float(expected), rel=RTOL), q
            a = mp.mpf(0.3)
            expected = mp.quad(
                lambda z, s=s, a=a: (s * z - a) ** 2 * mp.npdf(z), [a / s, a / s + 1, mp.inf]
            )
            assert second_moment(shifted, q) == pytest.approx(float(expected), rel=RTOL), q
            assert second_moment(smooth, q) == pytest.approx(second_moment(tanh, q), rel=RTOL)


def test_gaussian_expectation_of_a_derivative():
    """``E phi'(sqrt(q) Z)^2`` (the gradient factor chi of hayou fig. 8): for erf,
    ``phi' = (2/sqrt(pi)) exp(-x^2)`` and ``E phi'^2 = (4/pi) / sqrt(1 + 4q)``."""
    for q in [1e-8, 1.0, 1e4, 1e8]:
        value = gaussian_expectation(lambda x: 4.0 / math.pi * np.exp(-2.0 * x * x), q)
        assert value == pytest.approx(4.0 / math.pi / math.sqrt(1.0 + 4.0 * q), rel=RTOL)
        fixed = gaussian_expectation(
            lambda x: 4.0 / math.pi * np.exp(-2.0 * x * x), q, adaptive=False
        )
        assert fixed == pytest.approx(value, rel=RTOL)


KERNELS = [
    (kaa, kbb, rho)
    for kaa in (1e-8, 1.0, 1e4, 1e8)
    for kbb in (1e-6, 3.0, 1e8)
    for rho in (-0.999, 0.0, 0.5, 0.999999, 1.0)
]


def test_joint_moment_matches_the_arcsine_kernel():
    """E erf(U) erf(V) in closed form, over variances 1e-8..1e8 and correlations up to 1,
    with the fixed nested rule (an Activation subclass); errors relative to
    sqrt(E erf(U)^2 E erf(V)^2)."""
    act = Erf()
    for kaa, kbb, rho in KERNELS:
        kab = rho * math.sqrt(kaa * kbb)
        scale = math.sqrt(_erf_joint(kaa, kaa, kaa) * _erf_joint(kbb, kbb, kbb))
        error = abs(joint_moment(act, kaa, kbb, kab) - _erf_joint(kaa, kbb, kab)) / scale
        assert error < RTOL, (kaa, kbb, rho, error)


def test_joint_moment_of_callables_is_adaptive():
    """A ReLU callable (kink at 0) against the arc-cosine kernel and an erf callable against
    the arcsine kernel."""
    relu = parse_activation(lambda x: torch.relu(x))
    erf = parse_activation(lambda x: torch.erf(x))
    for kaa, kbb, rho in KERNELS[::9]:
        kab = rho * math.sqrt(kaa * kbb)
        scale = math.sqrt(kaa * kbb)
        theta = math.acos(min(1.0, rho))
        expected = scale * (math.sin(theta) + (math.pi - theta) * math.cos(theta)) / (2 * math.pi)
        assert abs(joint_moment(relu, kaa, kbb, kab) - expected) < RTOL * scale / 2
        scale = math.sqrt(_erf_joint(kaa, kaa, kaa) * _erf_joint(kbb, kbb, kbb))
        assert abs(joint_moment(erf, kaa, kbb, kab) - _erf_joint(kaa, kbb, kab)) < RTOL * scale


@pytest.mark.slow  # seconds per value: each conditional integral localizes its own kinks
def test_joint_moment_of_a_callable_with_kinks_away_from_zero():
    """A hard tanh (kinks at +-1) against a closed-form conditional mean and mpmath."""
    hardtanh = parse_activation(lambda x: torch.clamp(x, -1.0, 1.0))
    for kaa, kbb, kab in [(2.0, 0.5, 0.6), (1e6, 1e6, 0.9e6)]:
        expected = _mp_hardtanh_joint(kaa, kbb, kab)
        assert joint_moment(hardtanh, kaa, kbb, kab) == pytest.approx(expected, rel=RTOL)


def _mp_hardtanh_joint(kaa: float, kbb: float, kab: float) -> float:
    """``E[clip(U) clip(V)]``, ``clip = clamp(., -1, 1)``: the conditional mean
    ``E[clip(m + s B)] = P(X > 1) - P(X < -1) + m (Phi(b) - Phi(a)) - s (phi(b) - phi(a))``
    (``X ~ N(m, s^2)``, ``a, b = (-+1 - m)/s``) in closed form, the outer integral by mpmath."""
    with mp.workdps(25):
        l11 = mp.sqrt(kaa)
        l21 = kab / l11
        s = mp.sqrt(kbb - l21**2)

        def integrand(z):
            m = l21 * z
            a, b = (-1 - m) / s, (1 - m) / s
            inner = 1 - mp.ncdf(b) - mp.ncdf(a) + m * (mp.ncdf(b) - mp.ncdf(a))
            inner -= s * (mp.npdf(b) - mp.npdf(a))
            return max(-1, min(1, l11 * z)) * inner * mp.npdf(z)

        cuts = {mp.mpf(k) for k in range(-12, 13, 2)} | {-1 / l11, 1 / l11}
        return float(mp.quad(integrand, [-mp.inf, *sorted(c for c in cuts if abs(c) < 12), mp.inf]))


@pytest.mark.parametrize(
    "spec", ["tanh", "gelu", "silu", "softplus_m:m=10", "ou:alpha=2,beta=1,sigma=1"]
)
def test_joint_moment_reduces_to_the_second_moment(spec):
    """Identical inputs (``K_ab = K_aa = K_bb``) and independent ones
    (``K_ab = 0``: ``E phi(U) E phi(V)``) at variances 1e-8..1e8."""
    act = parse_activation(spec)
    for q in [1e-8, 1e-3, 1.0, 50.0, 1e4, 1e8]:
        assert joint_moment(act, q, q, q) == pytest.approx(second_moment(act, q), rel=RTOL)
        mean_a = gaussian_expectation(lambda x: act.phi(torch.from_numpy(x)).numpy(), q)
        mean_b = gaussian_expectation(lambda x: act.phi(torch.from_numpy(x)).numpy(), 2.0)
        value = joint_moment(act, q, 2.0, 0.0)
        scale = math.sqrt(second_moment(act, q) * second_moment(act, 2.0))
        assert abs(value - mean_a * mean_b) < RTOL * scale


def test_tanh_log_growth_at_large_variance_matches_mpmath():
    """meanfield_log_growth('tanh', 100) was 48 % off with Gauss-Hermite. Reference: with
    m(q) = E tanh(sqrt(q) Z)^2 (mpmath), q(1) solves int_100^q(1) dq / m(q) = 1; 1/m is
    interpolated on [100, 101] at 10 Chebyshev points (interpolation error ~ (1/200)^10) and
    integrated exactly. The ODE's tolerance (rtol 1e-11 on q) bounds the result's error by
    about 1e-9 relative."""
    with mp.workdps(30):
        lo, hi = mp.mpf(100), mp.mpf(101)
        nodes = [(lo + hi) / 2 + (hi - lo) / 2 * mp.cos(mp.pi * (k + 0.5) / 10) for k in range(10)]
        inverse = [1 / mp.mpf(_mp_moment("tanh", float(q))) for q in nodes]
        coefficients = mp.lu_solve(mp.matrix([[q**j for j in range(10)] for q in nodes]), inverse)

        def elapsed(q):  # int_100^q dq / m(q)
            return sum(
                c * (q ** (j + 1) - lo ** (j + 1)) / (j + 1) for j, c in enumerate(coefficients)
            )

        end = mp.findroot(lambda q: elapsed(q) - 1, mp.mpf(100.9))
        expected = 0.5 * mp.log(mp.mpf(_mp_moment("tanh", float(end))) / _mp_moment("tanh", 100.0))
    value = meanfield_log_growth("tanh", 100.0, 1.0)
    assert value == pytest.approx(float(expected), rel=1e-8)


def test_non_finite_integrand_raises():
    act = parse_activation(lambda x: torch.sqrt(x))
    with pytest.raises(QuadratureError, match="not finite for activation 'custom:<lambda>'"):
        second_moment(act, 1.0)
    with pytest.raises(QuadratureError, match="not finite"):
        second_moment(parse_activation("gelu"), 1e308)
