"""Tests of the closed-form limit laws (deeplimit.initialization.laws; hayou.md §3, §4.2, §5).

Statistical tests use fixed seeds. KS tests use N = 20000 samples (resolution about
1.36/sqrt(N) = 0.01) and assert p > 1e-3; moment tests allow 5 standard errors, with the standard
error of the sample variance from the law's own fourth central moment,
``SE^2 = (mu_4 - sigma^4)/N``; binomial counts must fall in the 99.9% binomial interval.
"""

from __future__ import annotations

import itertools
import json
import math
import zlib

import mpmath
import numpy as np
import pytest
import scipy.integrate
import scipy.optimize
import scipy.special as sc
import scipy.stats

from deeplimit.initialization.laws import (
    GBMLaw,
    Law,
    NormalLaw,
    OULaw,
    PointMassLaw,
    ReLUWidth1MixtureLaw,
    depth_then_width_law,
    gbm_law,
    identity_log_norm_law,
    identity_norm_law,
    normal_law,
    ou_law,
    relu_width1_collapse_probability,
    relu_width1_law,
    relu_width1_nonpositive_probability,
)

N_KS = 20_000
KS_LEVEL = 1e-3

# Every law with a density, with a name for the test ids.
CONTINUOUS_LAWS: dict[str, Law] = {
    "normal": normal_law(0.3, 2.0),
    "gbm": gbm_law(1.0, 1.0),
    "gbm_negative_start": gbm_law(-0.7, -2.0),
    "relu_fixed_start": relu_width1_law(y0=1.5),
    "relu_mixture": relu_width1_law(x=[1.0, -2.0, 0.5]),
    "ou_theta_1": ou_law(1.0, 1.0, 1.0, y0=0.5),
    "ou_theta_0.1": ou_law(alpha=1.0, beta=0.5, sigma=math.sqrt(0.1), y0=2.0),
    "identity_log_norm": identity_log_norm_law(3),
    "identity_norm": identity_norm_law(3, 2.0),
    "depth_then_width": depth_then_width_law(2.0, 0.5),
}
LAW_IDS = list(CONTINUOUS_LAWS)


@pytest.fixture(params=LAW_IDS)
def law(request: pytest.FixtureRequest) -> Law:
    return CONTINUOUS_LAWS[request.param]


def _binomial_interval(n: int, p: float, level: float = 0.999) -> tuple[float, float]:
    low, high = scipy.stats.binom.interval(level, n, p)
    return float(low), float(high)


def _breakpoints(law: Law) -> list[float]:
    """Points that split the support into pieces on which quad does well."""
    points = {float(law.ppf(q)) for q in (1e-4, 0.05, 0.5, 0.95, 1 - 1e-4)}
    if isinstance(law, ReLUWidth1MixtureLaw):
        points.add(0.0)  # the density jumps there
    return sorted(points)


def _integrate(function, law: Law) -> float:
    points = _breakpoints(law)
    edges = [-math.inf, *points, math.inf]
    total = 0.0
    for lo, hi in itertools.pairwise(edges):
        value, _ = scipy.integrate.quad(function, lo, hi, epsabs=1e-13, epsrel=1e-11, limit=200)
        total += value
    return total


# ---------------------------------------------------------------------------------------------
# Properties every law must have


def test_sample_follows_cdf(law: Law) -> None:
    # a different seed per law, so that the tests are independent (all samplers are transforms
    # of standard normals)
    samples = law.sample(N_KS, seed=zlib.crc32(law.describe().encode()))
    assert samples.shape == (N_KS,) and samples.dtype == np.float64
    p_value = scipy.stats.kstest(samples, law.cdf).pvalue
    assert p_value > KS_LEVEL, law.describe()


def test_sample_shape_and_seed(law: Law) -> None:
    a = law.sample((3, 4), seed=7)
    assert a.shape == (3, 4)
    np.testing.assert_array_equal(a, law.sample((3, 4), seed=7))
    assert not np.array_equal(a, law.sample((3, 4), seed=8))


def test_cdf_of_ppf_is_identity(law: Law) -> None:
    qs = np.array([1e-9, 1e-4, 0.01, 0.1, 0.3, 0.5, 0.7, 0.9, 0.99, 1 - 1e-4, 1 - 1e-9])
    x = law.ppf(qs)
    assert np.all(np.diff(x) > 0), law.describe()
    np.testing.assert_allclose(law.cdf(x), qs, rtol=1e-9, atol=1e-12, err_msg=law.describe())
    np.testing.assert_allclose(law.sf(x), 1 - qs, rtol=1e-7, atol=1e-12, err_msg=law.describe())
    np.testing.assert_array_equal(law.quantiles(list(qs)), x)
    assert law.cdf(law.ppf(1.0)) == 1.0 and law.cdf(law.ppf(0.0)) == 0.0


def test_cdf_is_monotone_and_scalar_in_scalar_out(law: Law) -> None:
    x = np.linspace(law.ppf(1e-6), law.ppf(1 - 1e-6), 2001)
    assert np.all(np.diff(law.cdf(x)) >= 0)
    assert np.ndim(law.cdf(float(x[5]))) == 0 and np.ndim(law.logpdf(float(x[5]))) == 0
    assert law.cdf(x.reshape(3, 667)).shape == (3, 667)


def test_special_points(law: Law) -> None:
    assert law.cdf(-math.inf) == 0.0 and law.cdf(math.inf) == 1.0
    assert law.sf(-math.inf) == 1.0 and law.sf(math.inf) == 0.0
    assert law.logpdf(-math.inf) == -math.inf and law.logpdf(math.inf) == -math.inf
    for method in (law.cdf, law.sf, law.logpdf, law.pdf):  # NaN is bad input, not a point
        with pytest.raises(ValueError, match="x must be free of NaN"):
            method([0.5, math.nan])
    assert np.isfinite(law.logpdf(law.median()))
    assert law.ppf(0.0) < law.ppf(1e-300) <= law.ppf(1 - 1e-16) < law.ppf(1.0)


def test_median(law: Law) -> None:
    median = law.median()
    assert isinstance(median, float)
    assert law.cdf(median) == pytest.approx(0.5, abs=1e-12), law.describe()
    assert median == pytest.approx(float(law.ppf(0.5)), rel=1e-12, abs=1e-300)


def test_logpdf_integrates_to_one(law: Law) -> None:
    total = _integrate(lambda x: float(law.pdf(x)), law)
    assert total == pytest.approx(1.0, abs=1e-8), law.describe()


def test_logpdf_is_derivative_of_cdf(law: Law) -> None:
    for q in (0.02, 0.2, 0.4, 0.6, 0.8, 0.98):
        x = float(law.ppf(q))
        h = 1e-5 * max(1.0, abs(x))
        numerical = (law.cdf(x + h) - law.cdf(x - h)) / (2 * h)
        assert float(law.pdf(x)) == pytest.approx(numerical, rel=1e-6), (law.describe(), q)


def test_moments_match_density(law: Law) -> None:
    """Raw moments E[X^k] (closed form or quadrature) against integrals of x^k pdf(x).

    Orders with E|X|^{2k} = inf are skipped: x^k pdf(x) then decays too slowly for quad.
    """
    for order in (1, 2, 3, 4):
        moment = law.moment(order)
        if not math.isfinite(law.moment(2 * order)):
            continue
        numerical = _integrate(lambda x, k=order: x**k * float(law.pdf(x)), law)
        assert moment == pytest.approx(numerical, rel=1e-7, abs=1e-9), (law.describe(), order)
    assert law.mean() == pytest.approx(law.moment(1), rel=1e-12, abs=1e-14)
    if math.isfinite(law.moment(2)):
        assert law.var() == pytest.approx(law.moment(2) - law.moment(1) ** 2, rel=1e-9)
    else:
        assert law.var() == math.inf


def test_sample_mean_and_variance(law: Law) -> None:
    if not math.isfinite(law.var()):
        pytest.skip("infinite variance: no CLT for the sample mean")
    samples = law.sample(N_KS, seed=2)
    mean, var = law.mean(), law.var()
    assert abs(samples.mean() - mean) < 5 * math.sqrt(var / N_KS), law.describe()
    m1, m2, m3, m4 = (law.moment(k) for k in (1, 2, 3, 4))
    if not math.isfinite(m4):
        pytest.skip("infinite fourth moment: no CLT for the sample variance")
    central4 = m4 - 4 * m1 * m3 + 6 * m1**2 * m2 - 3 * m1**4
    se_var = math.sqrt((central4 - var**2) / N_KS)
    assert abs(samples.var(ddof=1) - var) < 5 * se_var, law.describe()


def test_describe_and_as_dict(law: Law) -> None:
    text = law.describe()
    assert law.name in text
    for key in law.parameters:
        assert f"{key}=" in text
    record = law.as_dict()
    assert record["name"] == law.name
    assert json.loads(json.dumps(record)) == record


# ---------------------------------------------------------------------------------------------
# Normal


def test_normal_law_basics() -> None:
    law = normal_law(1.0, 4.0)
    assert isinstance(law, NormalLaw)
    assert (law.mean(), law.var(), law.median()) == (1.0, 4.0, 1.0)
    assert law.cdf(1.0 + 2.0 * 1.96) == pytest.approx(scipy.stats.norm.cdf(1.96))
    assert law.moment(4) == pytest.approx(1 + 6 * 4 + 3 * 16)
    assert law.ppf(0.0) == -math.inf and law.ppf(1.0) == math.inf


# ---------------------------------------------------------------------------------------------
# GBM (hayou.md §3.1)


@pytest.mark.parametrize("a", [1.0, -0.5, 2.0])
def test_gbm_log_ratio_and_moments(a: float) -> None:
    law = gbm_law(a, 3.0)
    log_ratio = law.log_ratio()
    assert isinstance(log_ratio, NormalLaw)
    assert log_ratio.mean() == -(a**2) / 2 and log_ratio.var() == a**2
    assert law.mean() == 3.0
    assert law.var() == pytest.approx(9.0 * math.expm1(a**2), rel=1e-14)
    assert law.median() == pytest.approx(3.0 * math.exp(-(a**2) / 2), rel=1e-14)
    samples = law.sample(N_KS, seed=3)
    assert scipy.stats.kstest(np.log(samples / 3.0), log_ratio.cdf).pvalue > KS_LEVEL


def test_gbm_negative_start_keeps_sign() -> None:
    law = gbm_law(1.0, -2.0)
    samples = law.sample(1000, seed=0)
    assert np.all(samples < 0)
    assert law.cdf(0.0) == 1.0 and law.cdf(-1e-3) < 1.0 and law.sf(0.0) == 0.0
    assert law.mean() == -2.0 and law.median() == pytest.approx(-2.0 * math.exp(-0.5))
    assert law.logpdf(1.0) == -math.inf and law.logpdf(0.0) == -math.inf
    # X_1 = y0 exp(G): P(X_1 <= t) = P(G >= log(t/y0)) for t < 0
    assert law.cdf(-3.0) == pytest.approx(scipy.stats.norm.sf(math.log(1.5), loc=-0.5))


def test_gbm_zero_start_is_point_mass() -> None:
    law = gbm_law(1.0, 0.0)
    assert isinstance(law, GBMLaw)
    np.testing.assert_array_equal(law.sample(100), np.zeros(100))
    assert (law.mean(), law.var(), law.median()) == (0.0, 0.0, 0.0)
    assert law.cdf(-1e-12) == 0.0 and law.cdf(0.0) == 1.0
    with pytest.raises(ValueError, match="no density"):
        law.logpdf(0.0)
    with pytest.raises(ValueError, match="y0"):
        law.log_ratio()
    assert isinstance(gbm_law(0.0, 2.0).log_ratio(), PointMassLaw)


def test_gbm_matches_finite_depth_chain() -> None:
    """Y_L = y0 prod(1 + a Z_l / sqrt(L)) (hayou.md §3.1) at L = 500: log bias O(1/L)."""
    depth, a = 500, 1.0
    rng = np.random.default_rng(11)
    log_ratio = np.zeros(N_KS)
    for _ in range(depth):
        log_ratio += np.log(np.abs(1.0 + a * rng.standard_normal(N_KS) / math.sqrt(depth)))
    law = gbm_law(a, 1.0).log_ratio()
    assert scipy.stats.kstest(log_ratio, law.cdf).pvalue > KS_LEVEL


# ---------------------------------------------------------------------------------------------
# ReLU, width 1 (hayou.md §3.2)


def test_collapse_probability_spec_values() -> None:
    p = relu_width1_collapse_probability([1, 2, 5, 10, 20])
    assert round(float(p[0]), 3) == 0.159
    assert round(float(p[1]), 3) == 0.151
    assert round(float(p[2]), 3) == 0.062
    assert round(float(p[3]), 4) == 0.0078
    # The spec prints "~1e-4"; the exact value is 7.7e-5.
    assert 5e-5 < p[4] < 1.5e-4
    assert float(p[4]) == pytest.approx(7.74e-5, rel=1e-3)
    assert np.all(np.diff(p) < 0)


def test_collapse_probability_tiny_values_are_accurate() -> None:
    mpmath.mp.dps = 50
    for depth in (50, 100, 400):
        exact = 1 - (1 - mpmath.ncdf(-mpmath.sqrt(depth))) ** depth
        got = relu_width1_collapse_probability(depth)
        assert got > 0
        assert got == pytest.approx(float(exact), rel=1e-12)
    assert np.ndim(relu_width1_collapse_probability(3)) == 0
    assert relu_width1_collapse_probability(np.array([[1, 2]])).shape == (1, 2)


def test_collapse_probability_by_layer() -> None:
    assert relu_width1_collapse_probability(10, layer=0) == 0.0
    assert relu_width1_collapse_probability(10, layer=10) == relu_width1_collapse_probability(10)
    by_layer = relu_width1_collapse_probability(10, layer=np.arange(11))
    assert np.all(np.diff(by_layer) > 0)


@pytest.mark.parametrize("depth", [1, 2, 5, 10])
def test_collapse_probability_matches_chain_monte_carlo(depth: int) -> None:
    """Y_l = Y_{l-1}(1 + Z_l/sqrt(L)) from Y_0 = 1 collapses iff some factor is <= 0."""
    samples = 100_000
    rng = np.random.default_rng(100 + depth)
    z = rng.standard_normal((samples, depth))
    collapsed = np.any(1.0 + z / math.sqrt(depth) <= 0.0, axis=1)
    low, high = _binomial_interval(samples, float(relu_width1_collapse_probability(depth)))
    assert low <= collapsed.sum() <= high


@pytest.mark.parametrize("depth", [1, 5])
def test_nonpositive_probability_matches_relu_chain(depth: int) -> None:
    """Y_l = Y_{l-1} + relu(Y_{l-1}) Z_l / sqrt(L) with Y_0 ~ N(0, 1): P(Y_L <= 0)."""
    samples = 100_000
    rng = np.random.default_rng(200 + depth)
    y = rng.standard_normal(samples)
    for _ in range(depth):
        y = y + np.maximum(y, 0.0) * rng.standard_normal(samples) / math.sqrt(depth)
    p = float(relu_width1_nonpositive_probability(depth))
    assert p == pytest.approx(0.5 + 0.5 * float(relu_width1_collapse_probability(depth)))
    low, high = _binomial_interval(samples, p)
    assert low <= (y <= 0).sum() <= high


def test_relu_fixed_positive_start_is_gbm() -> None:
    law = relu_width1_law(y0=2.0)
    reference = gbm_law(1.0, 2.0)
    x = np.array([0.1, 1.0, 2.0, 5.0])
    np.testing.assert_array_equal(law.cdf(x), reference.cdf(x))
    assert law.as_dict() == {"name": "relu_width1", "y0": 2.0}


@pytest.mark.parametrize("y0", [0.0, -1.5])
def test_relu_fixed_nonpositive_start_is_point_mass(y0: float) -> None:
    law = relu_width1_law(y0=y0)
    np.testing.assert_array_equal(law.sample(50, seed=1), np.full(50, y0))
    assert (law.mean(), law.var(), law.median()) == (y0, 0.0, y0)
    # median of a point mass: P(X <= m) >= 1/2 and P(X >= m) >= 1/2
    assert law.cdf(law.median()) >= 0.5 and 1.0 - law.cdf(np.nextafter(y0, -np.inf)) >= 0.5
    assert law.cdf(y0) == 1.0 and law.cdf(np.nextafter(y0, -np.inf)) == 0.0
    np.testing.assert_array_equal(law.ppf([0.0, 0.3, 1.0]), [y0, y0, y0])
    with pytest.raises(ValueError, match="no density"):
        law.logpdf(y0)


def test_relu_mixture_closed_forms() -> None:
    x = [1.0, -2.0, 0.5]
    law = relu_width1_law(x=x)
    q0 = (1 + 4 + 0.25) / 3
    assert isinstance(law, ReLUWidth1MixtureLaw) and law.q0 == pytest.approx(q0)
    assert law.cdf(0.0) == 0.5 and law.median() == 0.0 and law.mean() == 0.0
    assert law.var() == pytest.approx(q0 / 2 * (1 + math.e))
    t = np.array([-3.0, -1.0, -1e-3])
    np.testing.assert_allclose(law.cdf(t), scipy.stats.norm.cdf(t / math.sqrt(q0)), rtol=1e-15)
    # right limit of the density at 0 is e times the Gaussian one
    assert float(law.pdf(1e-300)) == pytest.approx(math.e / math.sqrt(2 * math.pi * q0))
    assert float(law.pdf(-1e-300)) == pytest.approx(1 / math.sqrt(2 * math.pi * q0))
    assert relu_width1_law(x=2.0).q0 == 4.0
    assert law.as_dict()["x"] == x


def test_relu_mixture_cdf_matches_high_precision_quadrature() -> None:
    """cdf(t) = 1/2 + int_0^oo N(y; 0, q0) Phi(log(t/y) + 1/2) dy, in 30-digit arithmetic."""
    mpmath.mp.dps = 30
    for q0 in (0.3, 2.0):
        law = ReLUWidth1MixtureLaw(q0)
        for t in (1e-8, 0.05, 0.7, 3.0, 40.0):
            sd, tt = mpmath.sqrt(q0), mpmath.mpf(t)

            def integrand(y, sd=sd, tt=tt):
                return mpmath.npdf(y, 0, sd) * mpmath.ncdf(mpmath.log(tt / y) + 0.5)

            exact = 0.5 + mpmath.quad(integrand, [0, tt / 100, tt, sd, 10 * sd, 40 * sd])
            assert abs(float(law.cdf(t)) - float(exact)) < 1e-13, (q0, t)


def test_relu_mixture_matches_finite_depth_chain() -> None:
    """Width-1 ReLU ResNet, L = 500, Y_0 ~ N(0, q0): Y_L against the mixture law."""
    depth, q0 = 500, 2.0
    rng = np.random.default_rng(12)
    y0 = math.sqrt(q0) * rng.standard_normal(N_KS)
    log_factor = np.zeros(N_KS)
    for _ in range(depth):
        log_factor += np.log(np.abs(1.0 + rng.standard_normal(N_KS) / math.sqrt(depth)))
    # at L = 500 no factor is <= 0 (probability 500 Phi(-sqrt(500)), about 1e-109)
    y_last = np.where(y0 > 0, y0 * np.exp(log_factor), y0)
    law = relu_width1_law(x=[math.sqrt(q0)])
    assert scipy.stats.kstest(y_last, law.cdf).pvalue > KS_LEVEL


def test_relu_zero_input_is_point_mass() -> None:
    law = relu_width1_law(x=[0.0, 0.0])
    assert isinstance(law, PointMassLaw) and law.median() == 0.0


# ---------------------------------------------------------------------------------------------
# OU activation (hayou.md §3.3)


def test_ou_u_law_spec_values() -> None:
    """§8 C7: alpha = beta = sigma = 1, Y_0 = 0.5: U_1 mean .1536 and variance .4323."""
    law = ou_law(1.0, 1.0, 1.0, y0=0.5)
    u_law = law.u_law()
    assert round(u_law.mean(), 4) == 0.1536
    assert round(u_law.var(), 4) == 0.4323
    assert sc.erfi(law.u0) == pytest.approx(0.5, rel=1e-14)
    assert law.median() == pytest.approx(sc.erfi(math.exp(-1.0) * law.u0), rel=1e-14)
    assert law.theta == 1.0


def test_ou_theta_and_scale_parameters() -> None:
    law = ou_law(alpha=2.0, beta=3.0, sigma=1.0, y0=-0.7)
    assert law.theta == 0.25
    assert law.u_var == pytest.approx((1 - math.exp(-0.5)) / 2)
    assert law.u_mean == pytest.approx(math.exp(-0.25) * law.u0)
    assert sc.erfi(law.u0) == pytest.approx(3.0 * -0.7, rel=1e-14)
    assert law.mean() == -0.7


@pytest.mark.parametrize("theta", [0.1, 0.2])
def test_ou_mean_and_median_against_monte_carlo_of_u(theta: float) -> None:
    law = ou_law(alpha=1.0, beta=1.3, sigma=math.sqrt(theta), y0=0.8)
    assert math.isfinite(law.var())
    rng = np.random.default_rng(21)
    u = law.u_mean + math.sqrt(law.u_var) * rng.standard_normal(N_KS)
    x = sc.erfi(u) / law.beta
    # martingale: E[X_1] = y0 (finite variance, so the CLT applies)
    assert abs(x.mean() - 0.8) < 5 * math.sqrt(law.var() / N_KS)
    low, high = _binomial_interval(N_KS, 0.5)
    assert low <= (x <= law.median()).sum() <= high


def test_ou_moments_match_quadrature_in_u() -> None:
    """E[X_1^k] = E[erfi(U_1)^k]/beta^k against a 20-digit quadrature over U_1 (theta = 0.1).

    For order k the integrand peaks near c = m / (1 - 2 k s^2) with width (1/(2s^2) - k)^-1/2
    (completing the square), far above m for k = 5.
    """
    law = ou_law(alpha=1.0, beta=0.5, sigma=math.sqrt(0.1), y0=2.0)
    m, s2 = law.u_mean, law.u_var
    s = math.sqrt(s2)
    mpmath.mp.dps = 20
    for order in (1, 2, 3, 4, 5):
        a = 1 / (2 * s2) - order
        centre, width = m / (2 * s2 * a), 1 / math.sqrt(2 * a)
        points = sorted({m - 15 * s, m, centre, centre + 6 * width, max(m, centre) + 15 * width})
        direct = mpmath.quad(
            lambda u, k=order: (mpmath.erfi(u) / law.beta) ** k * mpmath.npdf(u, m, s), points
        )
        assert law.moment(order) == pytest.approx(float(direct), rel=1e-10), order
    assert law.moment(6) == math.inf  # 6 > 1/(2 s^2) = 5.5
    assert math.isnan(law.moment(7))


def test_ou_martingale_mean_by_quadrature_when_variance_is_infinite() -> None:
    """theta = 1: Var = inf, but E[erfi(U_1)] = erfi(m / sqrt(1 - 2 s^2)) = beta y0 exactly."""
    law = ou_law(1.0, 2.0, 1.0, y0=0.9)
    assert law.var() == math.inf
    m, s = law.u_mean, math.sqrt(law.u_var)
    assert sc.erfi(m / math.sqrt(1 - 2 * s**2)) == pytest.approx(2.0 * 0.9, rel=1e-14)
    # erfi(u) N(u; m, s^2) is F(u) times a Gaussian bump at c = m/(1 - 2s^2) = 2.84 of width
    # 1.79: beyond |u| = 26 it is below e^-80 of its peak (and erfi(u) would overflow).
    centre = m / (1 - 2 * s**2)
    value, _ = scipy.integrate.quad(
        lambda u: sc.erfi(u) * scipy.stats.norm.pdf(u, m, s),
        -26.0,
        26.0,
        points=[m, centre],
        epsabs=0.0,
        epsrel=1e-12,
        limit=200,
    )
    assert value / law.beta == pytest.approx(0.9, rel=1e-10)


@pytest.mark.parametrize("theta", [math.log(2) / 2, 0.35, 1.0, 5.0])
def test_ou_variance_infinite_above_threshold(theta: float) -> None:
    law = ou_law(alpha=1.0, beta=1.0, sigma=math.sqrt(theta), y0=0.5)
    assert law.var() == math.inf
    assert law.moment(2) == math.inf
    assert math.isfinite(law.mean())


def test_ou_variance_at_threshold_with_zero_start_is_finite() -> None:
    """At theta = ln(2)/2 and y0 = 0, U_1 ~ N(0, 1/4) and erfi(u)^2 N(u; 0, 1/4) ~ 1/(pi u^2).

    So E[X_1^2] = (4/pi) int F(u)^2 du / (0.5 sqrt(2 pi)) is finite (Dawson's F, here in
    25-digit arithmetic as x 1F1(1; 3/2; -x^2)); it equals 1.
    """
    law = ou_law(alpha=1.0, beta=1.0, sigma=math.sqrt(math.log(2) / 2), y0=0.0)
    assert law.u_var == pytest.approx(0.25, rel=1e-15)
    mpmath.mp.dps = 25

    def dawson(x):
        return x * mpmath.hyp1f1(1, 1.5, -x * x)

    half = mpmath.quad(lambda x: dawson(x) ** 2, [0, 1, 5, 30]) + mpmath.quad(
        lambda v: dawson(1 / v) ** 2 / v**2, [0, mpmath.mpf(1) / 30]
    )
    exact = float(4 / mpmath.pi * 2 * half / (0.5 * mpmath.sqrt(2 * mpmath.pi)))
    assert law.var() == pytest.approx(exact, rel=1e-12)
    assert exact == pytest.approx(1.0, rel=1e-15)
    # just above the threshold, or at it with y0 != 0, the variance is infinite
    assert ou_law(1.0, 1.0, math.sqrt(math.log(2) / 2), y0=1e-3).var() == math.inf


def test_ou_variance_theta_0_2_matches_quadrature_and_importance_sampling() -> None:
    """theta = 0.2 < ln(2)/2: finite variance, but E[X^4] = inf (4 > 1/(2 s^2) = 3.03).

    The plain sample variance then has no CLT, so E[(X_1 - y0)^2] is estimated by importance
    sampling from a wider Gaussian N(m, 0.35), whose weighted terms have finite variance
    (4 + 1/(2*0.35) < 1/s^2).
    """
    y0, beta = 0.5, 1.0
    law = ou_law(alpha=1.0, beta=beta, sigma=math.sqrt(0.2), y0=y0)
    var = law.var()
    assert math.isfinite(var) and law.moment(4) == math.inf
    m, s = law.u_mean, math.sqrt(law.u_var)
    direct, _ = scipy.integrate.quad(
        lambda u: (sc.erfi(u) / beta - y0) ** 2 * scipy.stats.norm.pdf(u, m, s),
        m - 25 * s,
        m + 25 * s,
        epsabs=0.0,
        epsrel=1e-12,
        limit=200,
    )
    assert var == pytest.approx(direct, rel=1e-10)
    wide = math.sqrt(0.35)
    rng = np.random.default_rng(22)
    u = m + wide * rng.standard_normal(200_000)
    weights = scipy.stats.norm.pdf(u, m, s) / scipy.stats.norm.pdf(u, m, wide)
    terms = (sc.erfi(u) / beta - y0) ** 2 * weights
    assert abs(terms.mean() - var) < 5 * terms.std() / math.sqrt(terms.size)


def test_ou_law_matches_euler_maruyama_of_the_width1_sde() -> None:
    """dX = phi(X) dB with phi(x) = 2 sigma/(alpha beta sqrt(pi)) exp(E(beta x)^2) (Prop. 4).

    The width-1 ResNet with this activation at depth L = 400 (Euler-Maruyama with step 1/L).
    E(beta Y_l) is tracked by Newton steps on erfi from its previous value (increments are
    O(L^-1/2)), so the test does not rely on the law's own inversion of erfi.
    """
    alpha, beta, sigma, y0, depth = 1.0, 1.0, 1.0, 0.5, 400
    law = ou_law(alpha, beta, sigma, y0)
    scale = 2 * sigma / (alpha * beta * math.sqrt(math.pi))
    rng = np.random.default_rng(23)
    y = np.full(N_KS, y0)
    u = np.full(N_KS, law.u0)
    for _ in range(depth):
        y = y + scale * np.exp(u * u) * rng.standard_normal(N_KS) / math.sqrt(depth)
        for _ in range(30):  # Newton from the previous value: 2-4 steps in practice
            residual = sc.erfi(u) - beta * y
            if np.max(np.abs(residual) / (1 + np.abs(beta * y))) < 1e-13:
                break
            u = u - residual * (math.sqrt(math.pi) / 2) * np.exp(-u * u)
    assert np.max(np.abs(sc.erfi(u) - beta * y) / (1 + np.abs(beta * y))) < 1e-12
    assert scipy.stats.kstest(y, law.cdf).pvalue > KS_LEVEL


def test_ou_cdf_and_logpdf_special_points() -> None:
    law = ou_law(1.0, 1.0, 1.0, y0=0.5)
    assert law.cdf(-math.inf) == 0.0 and law.cdf(math.inf) == 1.0
    assert law.logpdf(math.inf) == -math.inf
    x = np.linspace(-50, 50, 1001)
    assert np.all(np.diff(law.cdf(x)) > 0)
    # cdf(t) = P(U_1 <= E(beta t)); E(2) by bisection on scipy's erfi
    e_of_2 = scipy.optimize.brentq(lambda u: sc.erfi(u) - 2.0, 0.0, 3.0, xtol=1e-15)
    assert law.cdf(2.0) == pytest.approx(law.u_law().cdf(e_of_2), rel=1e-13)


# ---------------------------------------------------------------------------------------------
# Identity activation, any width (hayou.md §4.2, Prop. 9)


@pytest.mark.parametrize(
    ("width", "mean", "var"), [(1, -0.5, 1.0), (2, 0.0, 0.5), (8, 0.375, 0.125)]
)
def test_identity_log_norm_values(width: int, mean: float, var: float) -> None:
    law = identity_log_norm_law(width)
    assert law.mean() == mean and law.var() == var
    norm_law = identity_norm_law(width, 2.0)
    assert norm_law.median() == pytest.approx(2.0 * math.exp(mean))
    # E|X_1| = |X_0| e^{(n-1)/(2n)} (the GBM drift of Prop. 9) and E|X_1|^2 = e |X_0|^2 (C3)
    assert norm_law.mean() == pytest.approx(2.0 * math.exp((width - 1) / (2 * width)))
    assert norm_law.moment(2) == pytest.approx(4.0 * math.e)


@pytest.mark.parametrize("width", [1, 2, 8])
def test_identity_log_norm_matches_finite_depth_chain(width: int) -> None:
    """phi = id, L = 400: |Y_l|^2 = |Y_{l-1}|^2 ((1 + Z/sqrt(nL))^2 + chi2_{n-1}/(nL)), Lemma 6."""
    depth = 400
    rng = np.random.default_rng(30 + width)
    log_growth = np.zeros(N_KS)
    scale = 1 / math.sqrt(width * depth)
    for _ in range(depth):
        along = (1 + scale * rng.standard_normal(N_KS)) ** 2
        across = scale**2 * rng.chisquare(width - 1, N_KS) if width > 1 else 0.0
        log_growth += 0.5 * np.log(along + across)
    law = identity_log_norm_law(width)
    assert scipy.stats.kstest(log_growth, law.cdf).pvalue > KS_LEVEL / 3


# ---------------------------------------------------------------------------------------------
# Depth then width (hayou.md §5, Thm 2)


def test_depth_then_width_variance() -> None:
    law = depth_then_width_law(1.0, 1.0)
    assert round(law.var(), 4) == 1.6487
    assert law.var() == pytest.approx(math.exp(0.5), rel=1e-15)
    assert law.mean() == 0.0 and law.median() == 0.0
    assert depth_then_width_law(2.0, 0.0).var() == 2.0
    assert depth_then_width_law(3.0, 0.5).var() == pytest.approx(3.0 * math.exp(0.25))
    assert law.as_dict() == {"name": "depth_then_width", "q0": 1.0, "t": 1.0}


def test_depth_then_width_matches_particle_system() -> None:
    """dX^i = ((1/n) sum_j relu(X^j)^2)^{1/2} dB^i (Eq. 4), n = 1000, 100 steps, 20 systems.

    The coordinate variance of each system estimates q0 e^{1/2}; the 20 systems are independent,
    so their spread gives the standard error (it includes the O(n^-1/2) finite-width noise).
    """
    systems, width, steps, q0 = 20, 1000, 100, 1.0
    rng = np.random.default_rng(40)
    x = math.sqrt(q0) * rng.standard_normal((systems, width))
    for _ in range(steps):
        vol = np.sqrt(np.mean(np.maximum(x, 0.0) ** 2, axis=1, keepdims=True))
        x = x + vol * rng.standard_normal((systems, width)) / math.sqrt(steps)
    per_system = np.mean(x**2, axis=1)
    expected = depth_then_width_law(q0, 1.0).var()
    standard_error = per_system.std(ddof=1) / math.sqrt(systems)
    assert abs(per_system.mean() - expected) < 5 * standard_error


# ---------------------------------------------------------------------------------------------
# Bad input


@pytest.mark.parametrize(
    ("factory", "kwargs", "parameter"),
    [
        (normal_law, {"mean": 0.0, "var": 0.0}, "var"),
        (normal_law, {"mean": 0.0, "var": -1.0}, "var"),
        (normal_law, {"mean": math.nan, "var": 1.0}, "mean"),
        (normal_law, {"mean": 0.0, "var": math.inf}, "var"),
        (gbm_law, {"a": math.nan}, "a"),
        (gbm_law, {"y0": math.inf}, "y0"),
        (relu_width1_law, {}, "exactly one of y0"),
        (relu_width1_law, {"y0": 1.0, "x": [1.0]}, "exactly one of y0"),
        (relu_width1_law, {"y0": math.nan}, "y0"),
        (relu_width1_law, {"x": []}, "x must"),
        (relu_width1_law, {"x": [[1.0, 2.0]]}, "x must"),
        (relu_width1_law, {"x": [1.0, math.inf]}, "x must"),
        (ou_law, {"alpha": 0.0}, "alpha"),
        (ou_law, {"beta": -1.0}, "beta"),
        (ou_law, {"sigma": math.inf}, "sigma"),
        (ou_law, {"sigma": math.nan}, "sigma"),
        (ou_law, {"y0": math.nan}, "y0"),
        (identity_log_norm_law, {"width": 0}, "width"),
        (identity_log_norm_law, {"width": 2.5}, "width"),
        (identity_norm_law, {"width": 2, "norm0": 0.0}, "norm0"),
        (identity_norm_law, {"width": 0, "norm0": 1.0}, "width"),
        (depth_then_width_law, {"q0": 0.0}, "q0"),
        (depth_then_width_law, {"q0": math.nan}, "q0"),
        (depth_then_width_law, {"t": 1.5}, "t must"),
        (depth_then_width_law, {"t": -0.1}, "t must"),
        (relu_width1_collapse_probability, {"depth": 0}, "depth"),
        (relu_width1_collapse_probability, {"depth": 2.5}, "depth"),
        (relu_width1_collapse_probability, {"depth": [1, -1]}, "depth"),
        (relu_width1_collapse_probability, {"depth": "10"}, "depth"),
        (relu_width1_collapse_probability, {"depth": 5, "layer": 6}, "layer"),
        (relu_width1_collapse_probability, {"depth": 5, "layer": -1}, "layer"),
        (relu_width1_nonpositive_probability, {"depth": 0}, "depth"),
    ],
)
def test_bad_input_raises_value_error_naming_parameter(factory, kwargs, parameter) -> None:
    with pytest.raises(ValueError, match=parameter):
        factory(**kwargs)


@pytest.mark.parametrize("q", [-0.1, 1.1, math.nan, [0.5, 2.0]])
def test_ppf_rejects_non_probabilities(law: Law, q) -> None:
    with pytest.raises(ValueError, match=r"q must be probabilities in \[0, 1\]"):
        law.ppf(q)


def test_quantiles_and_sample_and_moment_reject_bad_input() -> None:
    law = gbm_law()
    with pytest.raises(ValueError, match="qs"):
        law.quantiles([0.5, -1.0])
    with pytest.raises(ValueError, match="size"):
        law.sample(-1)
    with pytest.raises(ValueError, match="size"):
        law.sample((2, 1.5))
    with pytest.raises(ValueError, match="order"):
        law.moment(0)


def test_point_mass_ppf_accepts_only_probabilities() -> None:
    with pytest.raises(ValueError, match="q must"):
        PointMassLaw(1.0).ppf(1.5)
    assert isinstance(OULaw(), Law)
