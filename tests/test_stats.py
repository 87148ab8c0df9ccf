"""Tests of deeplimit.stats: calibration under the null, power, exact cases and bad input."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import scipy.stats as sps
import torch

from deeplimit import stats
from deeplimit.stats import (
    BinomialInterval,
    FamilyResult,
    GoodnessOfFit,
    MeanZScore,
    SlopeFit,
    TwoSampleResult,
    binomial_interval,
    binomial_test,
    bonferroni,
    cvm_test,
    fit_loglog_slope,
    ks_test,
    mean_zscore,
    two_sample_test,
    wasserstein1,
    wasserstein1_to_law,
)

# ∫ sqrt(Phi (1 - Phi)) dx for the standard normal: E W1(F_n, Phi) ~ C sqrt(2 / (pi n)).
NORMAL_W1_CONSTANT = 1.6147438534296696


def band(trials: int, probability: float, confidence: float = 0.999) -> tuple[float, float]:
    """The central ``confidence`` interval of a Binomial(trials, probability) count."""
    return tuple(float(v) for v in sps.binom.interval(confidence, trials, probability))


class NormalLaw:
    """A law object in the library's style: vectorized cdf and describe()."""

    def __init__(self, mean: float, var: float) -> None:
        self.mean, self.var = mean, var

    def cdf(self, x: np.ndarray) -> np.ndarray:
        return sps.norm.cdf(x, loc=self.mean, scale=math.sqrt(self.var))

    def describe(self) -> str:
        return f"Normal(mean={self.mean:g}, var={self.var:g})"


# --------------------------------------------------------------------------------------------
# calibration under the null and power under an alternative


def _null_pvalue(method: str, rng: np.random.Generator) -> float:
    n = 200
    if method == "ks":
        return ks_test(rng.normal(size=n), sps.norm()).pvalue
    if method == "cvm":
        return cvm_test(rng.normal(size=n), sps.norm()).pvalue
    if method == "z":
        return mean_zscore(rng.exponential(size=n), 1.0).pvalue
    return two_sample_test(rng.normal(size=n), rng.normal(size=n + 37), method=method).pvalue


@pytest.mark.parametrize("method", ["ks", "cvm", "z", "two-ks", "two-cvm", "two-ad"])
def test_rejection_rate_under_the_null_is_nominal(method: str) -> None:
    rng = np.random.default_rng(20240601 + len(method))
    name = method.removeprefix("two-")
    repetitions = 200
    pvalues = np.array([_null_pvalue(name, rng) for _ in range(repetitions)])
    assert np.all((pvalues >= 0) & (pvalues <= 1))
    low, high = band(repetitions, 0.05)
    assert low <= np.count_nonzero(pvalues < 0.05) <= high


@pytest.mark.parametrize(
    "check",
    [
        lambda x, y: ks_test(x, sps.norm()),
        lambda x, y: cvm_test(x, sps.norm()),
        lambda x, y: mean_zscore(x, 0.0),
        lambda x, y: two_sample_test(x, y, method="ks"),
        lambda x, y: two_sample_test(x, y, method="cvm"),
        lambda x, y: two_sample_test(x, y, method="ad"),
    ],
    ids=["ks", "cvm", "z", "two-ks", "two-cvm", "two-ad"],
)
def test_a_shift_of_a_fifth_of_a_standard_deviation_is_rejected(check) -> None:
    rng = np.random.default_rng(7)
    shifted = rng.normal(0.2, 1.0, size=5000)
    reference = rng.normal(0.0, 1.0, size=5000)
    result = check(shifted, reference)
    assert result.pvalue <= 1e-3  # the AD p-value is floored at 0.001, meaning p < 0.001
    assert not result.passed
    assert result.verdict == "FAIL"


def test_ks_against_a_known_law_matches_scipy_and_reads_well() -> None:
    rng = np.random.default_rng(3)
    sample = rng.normal(-0.5, 1.0, size=20000)
    result = ks_test(sample, NormalLaw(-0.5, 1.0))
    reference = sps.kstest(sample, sps.norm(-0.5, 1.0).cdf)
    assert isinstance(result, GoodnessOfFit)
    assert result.statistic == pytest.approx(reference.statistic, rel=1e-12)
    assert result.pvalue == pytest.approx(reference.pvalue, rel=1e-9)
    assert result.n == 20000 and result.level == 1e-3
    assert result.passed == (result.pvalue >= 1e-3)
    text = str(result)
    assert text.startswith("KS vs Normal(mean=-0.5, var=1): D=")
    assert "n=20000 -> PASS at level 0.001" in text
    assert "\n" not in text


def test_law_names_come_from_describe_scipy_or_the_function() -> None:
    sample = np.linspace(-2, 2, 50)
    assert "scipy.stats.norm(loc=1)" in str(ks_test(sample, sps.norm(loc=1)))

    def standard_normal_cdf(x: np.ndarray) -> np.ndarray:
        return sps.norm.cdf(x)

    assert "standard_normal_cdf" in str(cvm_test(sample, standard_normal_cdf))


def test_a_bad_cdf_is_caught_instead_of_giving_a_p_value() -> None:
    sample = np.linspace(-1, 1, 20)
    with pytest.raises(ValueError, match="outside"):
        ks_test(sample, lambda x: 2 * sps.norm.cdf(x))
    with pytest.raises(ValueError, match="non-decreasing"):
        ks_test(sample, lambda x: sps.norm.sf(x))
    with pytest.raises(ValueError, match="non-finite"):
        cvm_test(sample, lambda x: np.full_like(x, np.nan))
    with pytest.raises(ValueError, match="law"):
        ks_test(sample, 3.0)


def test_ties_are_flagged() -> None:
    sample = np.round(np.random.default_rng(0).normal(size=500), 1)
    assert "tied" in ks_test(sample, sps.norm()).note


def atom_at_zero_cdf(x: np.ndarray) -> np.ndarray:
    """0.3 delta_0 + 0.7 N(0, 1): a law with an atom, like a collapsed fraction of paths."""
    return 0.3 * (x >= 0) + 0.7 * sps.norm.cdf(x)


def _draw_atom_at_zero(rng: np.random.Generator, n: int) -> np.ndarray:
    return np.where(rng.random(n) < 0.3, 0.0, rng.normal(size=n))


def test_ks_uses_left_limits_at_atoms_of_the_law() -> None:
    sample = np.array([1.0, 0.0, -1.0, 0.0])
    result = ks_test(sample, atom_at_zero_cdf)
    grid = np.concatenate([np.linspace(-6, 6, 200001), sample, sample - 1e-9])
    empirical = np.searchsorted(np.sort(sample), grid, side="right") / sample.size
    brute_force = np.max(np.abs(empirical - atom_at_zero_cdf(grid)))
    assert result.statistic == pytest.approx(brute_force, abs=1e-6)
    assert result.pvalue == pytest.approx(sps.kstwo.sf(result.statistic, 4))
    assert "atoms" in result.note
    # Under the null the p-value stays valid (conservative): scipy's own formula would give
    # p ~ 1e-30 here.
    rng = np.random.default_rng(21)
    pvalues = [ks_test(_draw_atom_at_zero(rng, 300), atom_at_zero_cdf).pvalue for _ in range(200)]
    assert np.count_nonzero(np.array(pvalues) < 0.05) <= band(200, 0.05)[1]
    assert ks_test(_draw_atom_at_zero(rng, 2000), atom_at_zero_cdf).passed
    with pytest.raises(ValueError, match="law has atoms"):
        cvm_test(_draw_atom_at_zero(rng, 100), atom_at_zero_cdf)


def test_anderson_darling_reports_its_clipped_p_value() -> None:
    rng = np.random.default_rng(11)
    same = two_sample_test(rng.normal(size=3000), rng.normal(size=3000), method="ad")
    different = two_sample_test(rng.normal(size=3000), rng.normal(0.3, 1, 3000), method="ad")
    for result in (same, different):
        assert isinstance(result, TwoSampleResult)
        assert AD_RANGE[0] <= result.pvalue <= AD_RANGE[1]
    assert different.pvalue_clipped and different.pvalue_bounds == (0.0, 0.001)
    assert not different.passed  # a floored p = 0.001 at level 0.001 must not read as PASS
    assert "floored" in str(different)
    if same.pvalue_clipped:
        assert same.pvalue_bounds[0] == 0.25 and same.passed
    with pytest.raises(ValueError, match=r"level must be in \[0.001, 0.25\]"):
        two_sample_test([1.0, 2.0], [3.0, 4.0], method="ad", level=1e-4)


AD_RANGE = (stats.AD_PVALUE_FLOOR, stats.AD_PVALUE_CAP)


# --------------------------------------------------------------------------------------------
# means


def test_mean_zscore_formula() -> None:
    sample = np.array([1.0, 2.0, 3.0, 4.0, 6.0])
    result = mean_zscore(sample, 2.0, level=0.05)
    se = np.std(sample, ddof=1) / math.sqrt(5)
    z = (3.2 - 2.0) / se
    assert result.mean == pytest.approx(3.2)
    assert result.standard_error == pytest.approx(se)
    assert result.zscore == pytest.approx(z)
    assert result.pvalue == pytest.approx(2 * sps.norm.sf(z))
    assert result.passed == (result.pvalue >= 0.05)


def test_vector_mean_zscore_uses_bonferroni_across_columns() -> None:
    rng = np.random.default_rng(5)
    samples = rng.normal(size=(4000, 3)) + np.array([0.0, 1.0, 2.0])
    good = mean_zscore(samples, [0.0, 1.0, 2.0])
    assert isinstance(good, MeanZScore) and good.passed
    assert good.statistic.shape == (3,) and good.components == 3
    bad = mean_zscore(samples, [0.0, 1.0, 2.1])
    assert not bad.passed and bad.pvalue[2] < 1e-3 / 3
    # Each of m columns is judged at level / m: p = 4.7e-4 fails alone at 1e-3 but passes as
    # one of 3 (>= 3.3e-4); p = 2.2e-4 fails either way.
    column = samples[:, 1]
    se = column.std(ddof=1) / math.sqrt(4000)
    single = mean_zscore(column, column.mean() - 3.5 * se)
    family = mean_zscore(samples, [0.0, column.mean() - 3.5 * se, 2.0])
    assert 1e-3 / 3 < single.pvalue < 1e-3 and not single.passed
    assert family.passed
    family = mean_zscore(samples, [0.0, column.mean() - 3.7 * se, 2.0])
    assert family.pvalue[1] < 1e-3 / 3 and not family.passed
    payload = json.loads(json.dumps(family.as_dict()))
    assert payload["statistic"] == pytest.approx(list(family.statistic))
    with pytest.raises(ValueError, match="read-only"):
        family.statistic[0] = 1.0


def test_constant_samples_give_a_defined_zscore() -> None:
    assert mean_zscore([2.0, 2.0, 2.0], 2.0).pvalue == 1.0
    result = mean_zscore([2.0, 2.0, 2.0], 1.0)
    assert result.zscore == math.inf and result.pvalue == 0.0 and not result.passed


# --------------------------------------------------------------------------------------------
# Wasserstein


def _w1_to_standard_normal_exact(sample: np.ndarray) -> float:
    """W1 between an empirical law and N(0, 1) from ∫ Phi = x Phi + phi, split where
    ``F_n - Phi`` changes sign (an independent closed form)."""
    x = np.sort(sample)
    n = x.size
    integrated = lambda t: t * sps.norm.cdf(t) + sps.norm.pdf(t)
    total = integrated(x[0]) + sps.norm.pdf(x[-1]) - x[-1] * sps.norm.sf(x[-1])
    crossings = sps.norm.ppf(np.arange(1, n) / n)
    points = np.union1d(x, crossings[(crossings > x[0]) & (crossings < x[-1])])
    left, right = points[:-1], points[1:]
    height = np.searchsorted(x, 0.5 * (left + right), side="right") / n
    total += np.sum(np.abs(height * (right - left) - (integrated(right) - integrated(left))))
    return float(total)


def test_wasserstein_between_point_masses_and_shifted_samples() -> None:
    assert wasserstein1([0.0], [3.0]) == pytest.approx(3.0)
    assert wasserstein1([0.0, 1.0], [2.0, 3.0]) == pytest.approx(2.0)
    assert wasserstein1([0.0, 0.0, 1.0], [0.0, 1.0, 1.0]) == pytest.approx(1 / 3)
    n = 20000
    rng = np.random.default_rng(2)
    distance = wasserstein1(rng.normal(0, 1, n), rng.normal(1, 1, n))
    # |W1(a, b) - 1| <= W1(a, N(0,1)) + W1(b, N(1,1)), each about C sqrt(2 / (pi n)).
    tolerance = 4 * 2 * NORMAL_W1_CONSTANT * math.sqrt(2 / (math.pi * n))
    assert abs(distance - 1.0) < tolerance


def test_wasserstein_to_a_law_is_exact_on_known_cases() -> None:
    assert wasserstein1_to_law([0.5], sps.uniform()) == pytest.approx(0.25, abs=1e-9)
    assert wasserstein1_to_law([0.2, 0.7], sps.uniform()) == pytest.approx(0.13, abs=1e-9)
    point = 0.7  # E|Z - x0| = x0 (2 Phi(x0) - 1) + 2 phi(x0)
    exact = point * (2 * sps.norm.cdf(point) - 1) + 2 * sps.norm.pdf(point)
    assert wasserstein1_to_law([point], sps.norm()) == pytest.approx(exact, rel=1e-9)
    rng = np.random.default_rng(8)
    for size in (2, 17, 400):
        sample = rng.normal(0.3, 1.2, size=size)
        value = wasserstein1_to_law(sample, NormalLaw(0.0, 1.0))
        assert value == pytest.approx(_w1_to_standard_normal_exact(sample), rel=1e-8, abs=1e-12)
    # Quantiles as a sample: F crosses k/n inside every gap.
    quantiles = sps.norm.ppf((np.arange(1, 301) - 0.5) / 300)
    assert wasserstein1_to_law(quantiles, sps.norm()) == pytest.approx(
        _w1_to_standard_normal_exact(quantiles), rel=1e-8
    )


def test_wasserstein_to_a_law_shrinks_like_one_over_root_n() -> None:
    rng = np.random.default_rng(9)
    means = {}
    for n in (1000, 20000):
        means[n] = np.mean([wasserstein1_to_law(rng.normal(size=n), sps.norm()) for _ in range(16)])
        predicted = NORMAL_W1_CONSTANT * math.sqrt(2 / (math.pi * n))
        assert 0.7 < means[n] / predicted < 1.3
    assert means[20000] < means[1000] / 3  # sqrt(20) = 4.5


def test_wasserstein_to_a_law_matches_a_huge_sample_from_it() -> None:
    rng = np.random.default_rng(10)
    law = sps.logistic(loc=0.5, scale=0.8)
    sample = law.rvs(size=300, random_state=rng)
    huge = law.rvs(size=400_000, random_state=rng)
    # Triangle inequality: |W1(sample, huge) - W1(sample, law)| <= W1(huge, law).
    floor = wasserstein1_to_law(huge, law)
    assert floor < 0.01
    assert abs(wasserstein1(sample, huge) - wasserstein1_to_law(sample, law)) <= floor + 1e-9


def test_wasserstein_to_a_law_without_a_first_moment_raises() -> None:
    with pytest.raises(ValueError, match="first moment"):
        wasserstein1_to_law([0.0, 1.0], sps.cauchy())


# --------------------------------------------------------------------------------------------
# binomial


def _exact_coverage(method: str, trials: int, probability: float) -> float:
    counts = np.arange(trials + 1)
    interval = binomial_interval(counts, trials, method=method)
    return float(
        np.sum(sps.binom.pmf(counts, trials, probability) * interval.contains(probability))
    )


def test_wilson_coverage_is_close_to_nominal() -> None:
    rng = np.random.default_rng(12)
    trials, probability, draws = 80, 0.3, 4000
    interval = binomial_interval(rng.binomial(trials, probability, size=draws), trials)
    assert isinstance(interval, BinomialInterval) and interval.low.shape == (draws,)
    exact = _exact_coverage("wilson", trials, probability)
    assert 0.93 < exact < 0.97
    low, high = band(draws, exact)
    assert low <= np.count_nonzero(interval.contains(probability)) <= high


@pytest.mark.parametrize("probability", [0.01, 0.2, 0.5, 0.93])
def test_clopper_pearson_coverage_is_at_least_nominal(probability: float) -> None:
    assert _exact_coverage("clopper-pearson", 50, probability) >= 0.95


def test_binomial_interval_edge_cases() -> None:
    alpha = 0.05
    for method in ("wilson", "clopper-pearson"):
        none = binomial_interval(0, 20, method=method)
        every = binomial_interval(20, 20, method=method)
        assert none.estimate == 0.0 and none.low == 0.0 and 0.0 < none.high < 0.25
        assert every.estimate == 1.0 and every.high == 1.0 and 0.75 < every.low < 1.0
    cp_none = binomial_interval(0, 20, method="clopper-pearson")
    assert cp_none.high == pytest.approx(1 - (alpha / 2) ** (1 / 20))
    cp_every = binomial_interval(20, 20, method="clopper-pearson")
    assert cp_every.low == pytest.approx((alpha / 2) ** (1 / 20))
    wilson = binomial_interval(3, 10)
    assert (wilson.low, wilson.high) == pytest.approx((0.1078, 0.6032), abs=1e-4)


def test_binomial_intervals_contain_the_estimate_and_are_vectorized() -> None:
    counts = np.arange(31)
    wilson = binomial_interval(counts, 30)
    exact = binomial_interval(counts, 30, method="clopper-pearson")
    for interval in (wilson, exact):
        assert np.all(interval.contains(counts / 30))
    assert np.all(exact.contains(wilson.estimate))
    assert np.all(exact.high - exact.low >= wilson.high - wilson.low - 1e-12)
    per_layer = binomial_interval(torch.tensor([[1, 5], [9, 10]]), np.array([10, 10]))
    assert per_layer.estimate.shape == (2, 2)
    assert per_layer.low[1, 0] == pytest.approx(binomial_interval(9, 10).low)
    assert "intervals for 4 proportions" in str(per_layer)
    json.dumps(per_layer.as_dict(), allow_nan=False)


def test_binomial_test_matches_scipy() -> None:
    result = binomial_test(530, 1000, 0.5)
    assert result.pvalue == pytest.approx(sps.binomtest(530, 1000, 0.5).pvalue)
    assert result.passed and result.statistic == 0.53 and result.n == 1000
    assert not binomial_test(600, 1000, 0.5).passed
    assert "530/1000" in str(result)


# --------------------------------------------------------------------------------------------
# slopes


def test_exact_power_law_slope() -> None:
    depth = np.array([4.0, 8, 16, 32, 64, 128])
    error = 3.7 * depth**-1.25
    fit = fit_loglog_slope(depth, error)
    assert isinstance(fit, SlopeFit)
    assert fit.slope == pytest.approx(-1.25, abs=1e-12)
    assert fit.prefactor == pytest.approx(3.7, rel=1e-12)
    assert fit.r_squared == pytest.approx(1.0)
    assert fit.passed and fit.pvalue is None
    assert fit.predict([256.0]) == pytest.approx(3.7 * 256.0**-1.25, rel=1e-12)


@pytest.mark.parametrize("weighted", [False, True])
def test_slope_confidence_interval_covers_the_truth_at_the_nominal_rate(weighted: bool) -> None:
    rng = np.random.default_rng(13 + weighted)
    x = 2.0 ** np.arange(1, 9)
    sigma = 0.05 * (1 + np.arange(8)) if weighted else np.full(8, 0.1)
    replications = 400
    covered = 0
    for _ in range(replications):
        y = 0.5 * x**1.5 * np.exp(sigma * rng.normal(size=8))
        fit = fit_loglog_slope(x, y, expected=1.5, weights=1 / sigma**2 if weighted else None)
        covered += fit.ci_low <= 1.5 <= fit.ci_high
        assert fit.passed == (fit.ci_low <= 1.5 <= fit.ci_high)
        assert fit.passed == (fit.pvalue >= 0.05 - 1e-12)
    low, high = band(replications, 0.95)
    assert low <= covered <= high


def test_weighted_fit_matches_weighted_least_squares() -> None:
    rng = np.random.default_rng(14)
    x = np.arange(1.0, 11.0)
    y = x**0.7 * np.exp(0.1 * rng.normal(size=10))
    weights = rng.uniform(0.5, 2.0, size=10)
    design = np.column_stack([np.ones(10), np.log(x)]) * np.sqrt(weights)[:, None]
    coefficients = np.linalg.lstsq(design, np.log(y) * np.sqrt(weights), rcond=None)[0]
    fit = fit_loglog_slope(x, y, weights=weights)
    assert (fit.intercept, fit.slope) == pytest.approx(tuple(coefficients), rel=1e-10)
    assert fit.weighted


def test_slope_expected_and_tolerance() -> None:
    rng = np.random.default_rng(15)
    x = np.array([10.0, 20, 40, 80, 160])
    y = x**-0.5 * np.exp(0.02 * rng.normal(size=5))
    fit = fit_loglog_slope(x, y, expected=-0.5)
    assert fit.passed and fit.tstatistic is not None
    assert fit.pvalue == pytest.approx(2 * sps.t.sf(abs(fit.tstatistic), 3))
    far = fit_loglog_slope(x, y, expected=-0.8)
    assert not far.passed and far.pvalue < 0.05
    assert fit_loglog_slope(x, y, expected=-0.8, tolerance=0.5).passed
    assert not fit_loglog_slope(x, y, expected=-0.8, tolerance=0.1).passed
    exact = fit_loglog_slope(x, x**2.0, expected=2.01, tolerance=0.02)
    assert exact.passed and "expected 2.01 ± 0.02" in str(exact)
    with pytest.raises(ValueError, match="tolerance"):
        fit_loglog_slope(x, y, tolerance=0.1)
    with pytest.raises(ValueError, match="tolerance"):
        fit_loglog_slope(x, y, expected=1.0, tolerance=-0.1)


@pytest.mark.parametrize(
    ("x", "y", "match"),
    [
        ([0.0, 1, 2], [1.0, 2, 3], "x must be > 0"),
        ([1.0, 2, 3], [1.0, -2, 3], "y must be > 0"),
        ([1.0, 2], [1.0, 2], "at least 3 points"),
        ([1.0, 2, 3], [1.0, 2], "x and y must have the same length"),
        ([2.0, 2, 2], [1.0, 2, 3], "two distinct values"),
    ],
)
def test_slope_fit_rejects_bad_points(x, y, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        fit_loglog_slope(x, y)


def test_slope_fit_rejects_bad_weights() -> None:
    with pytest.raises(ValueError, match="weights must have the same length"):
        fit_loglog_slope([1.0, 2, 3], [1.0, 2, 3], weights=[1.0, 1.0])
    with pytest.raises(ValueError, match="weights must be > 0"):
        fit_loglog_slope([1.0, 2, 3], [1.0, 2, 3], weights=[1.0, 0.0, 1.0])


# --------------------------------------------------------------------------------------------
# families


def test_bonferroni_judges_each_test_at_level_over_m() -> None:
    rng = np.random.default_rng(16)
    clean = [ks_test(rng.normal(size=500), sps.norm()) for _ in range(4)]
    family = bonferroni(clean)
    assert isinstance(family, FamilyResult) and family.passed and family.m == 4
    assert family.member_level == pytest.approx(2.5e-4)
    assert family.pvalue == pytest.approx(min(1.0, 4 * min(r.pvalue for r in clean)))
    # In a family of 2 at level 1e-3 each member is judged at 5e-4.
    lenient = binomial_test(0, 1, 0.9993)  # p = 7e-4: fails alone, passes as one of 2
    assert not lenient.passed and bonferroni([clean[0], lenient]).passed
    borderline = binomial_test(0, 1, 0.9998)  # p = 2e-4 < 5e-4
    named = bonferroni({"clean": clean[0], "borderline": borderline}, level=1e-3)
    assert not named.passed and named.member_passed == (True, False)
    assert "borderline" in str(named)
    payload = json.loads(json.dumps(named.as_dict(), allow_nan=False))
    assert payload["members"][1]["kind"] == "BinomialTest"
    nested = bonferroni([family, mean_zscore(rng.normal(size=(100, 2)), [0.0, 0.0])])
    assert nested.passed


def test_bonferroni_refuses_what_is_not_a_p_value() -> None:
    x = np.array([1.0, 2, 4, 8])
    with pytest.raises(ValueError, match="tolerance"):
        bonferroni([fit_loglog_slope(x, x**2, expected=2.0, tolerance=0.1)])
    with pytest.raises(ValueError, match="p-value"):
        bonferroni([fit_loglog_slope(x, x**2)])
    with pytest.raises(ValueError, match="results"):
        bonferroni([])
    rng = np.random.default_rng(17)
    floored = two_sample_test(rng.normal(size=2000), rng.normal(1, 1, 2000), method="ad")
    with pytest.raises(ValueError, match="clipped"):
        bonferroni([floored, floored], level=1e-3)
    assert not bonferroni([floored], level=0.01).passed


# --------------------------------------------------------------------------------------------
# input handling


def test_torch_tensors_are_accepted() -> None:
    generator = torch.Generator().manual_seed(0)
    sample = torch.randn(2000, generator=generator, dtype=torch.float64, requires_grad=True)
    other = torch.randn(2000, 1, generator=generator)
    assert ks_test(sample, sps.norm()).n == 2000
    assert cvm_test(sample * 1, sps.norm()).passed
    assert two_sample_test(sample, other, method="cvm").n == (2000, 2000)
    assert mean_zscore(torch.stack([sample, sample + 1], dim=1), [0.0, 1.0]).passed
    assert wasserstein1(sample, other) < 0.1
    assert wasserstein1_to_law(other, sps.norm()) < 0.1
    x = torch.tensor([1.0, 2.0, 4.0])
    assert fit_loglog_slope(x, x**3).slope == pytest.approx(3.0)
    assert binomial_test(torch.tensor(3).item(), 10, 0.3).passed


def test_results_serialize_to_plain_json() -> None:
    rng = np.random.default_rng(18)
    sample = rng.normal(size=300)
    results = [
        ks_test(sample, sps.norm()),
        cvm_test(sample, sps.norm()),
        two_sample_test(sample, rng.normal(size=300), method="ad"),
        mean_zscore(sample, 0.0),
        binomial_interval(3, 10),
        binomial_test(3, 10, 0.5),
        fit_loglog_slope([1.0, 2, 3, 4], [1.0, 4.2, 8.9, 16.1], expected=2.0),
    ]
    for result in results:
        payload = json.loads(json.dumps(result.as_dict(), allow_nan=False))
        assert payload["kind"] == type(result).__name__
        assert isinstance(str(result), str) and "\n" not in str(result)
        if hasattr(result, "passed"):
            assert payload["verdict"] in ("PASS", "FAIL")


GOOD = np.linspace(-1, 1, 10)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: ks_test([], sps.norm()), "samples is empty"),
        (lambda: ks_test(np.array([0.0, np.nan, np.inf]), sps.norm()), "samples contains 2 non"),
        (lambda: cvm_test([0.5], sps.norm()), "samples needs at least 2"),
        (lambda: ks_test(np.zeros((5, 3)), sps.norm()), "samples must be a one-dimensional"),
        (lambda: ks_test(["a", "b"], sps.norm()), "samples must be an array of real"),
        (lambda: ks_test(GOOD, sps.norm(), level=0.0), r"level must be .*\(0, 1\)"),
        (lambda: ks_test(GOOD, sps.norm(), level=1.5), r"level must be .*\(0, 1\)"),
        (lambda: cvm_test(GOOD, sps.norm(), level=float("nan")), "level must be"),
        (lambda: two_sample_test(GOOD, [], method="ks"), "b is empty"),
        (lambda: two_sample_test([np.nan], GOOD), "a contains 1 non-finite"),
        (lambda: two_sample_test(GOOD, GOOD, method="t"), "method must be one of"),
        (lambda: two_sample_test(GOOD, GOOD, level=-1), "level must be"),
        (lambda: wasserstein1([], GOOD), "a is empty"),
        (lambda: wasserstein1_to_law(GOOD, sps.norm(), grid=0), "grid must be"),
        (lambda: mean_zscore([1.0], 0.0), "samples needs at least 2"),
        (lambda: mean_zscore(np.ones((10, 2)), [0.0, 0.0, 0.0]), r"samples must have shape"),
        (lambda: mean_zscore(GOOD, np.nan), "expected contains 1 non-finite"),
        (lambda: mean_zscore(GOOD, 0.0, level=1.0), "level must be"),
        (lambda: binomial_interval(11, 10), "successes must be <= trials"),
        (lambda: binomial_interval(-1, 10), "successes must hold integers"),
        (lambda: binomial_interval(1.5, 10), "successes must hold integers"),
        (lambda: binomial_interval(1, 0), "trials must hold integers >= 1"),
        (lambda: binomial_interval([1, 2, 3], [4, 5]), "successes and trials"),
        (lambda: binomial_interval([], 5), "successes is empty"),
        (lambda: binomial_interval(1, 5, level=95), "level must be"),
        (lambda: binomial_interval(1, 5, method="wald"), "method must be one of"),
        (lambda: binomial_test(3, 10, 1.2), r"probability must be a number in \[0, 1\]"),
        (lambda: binomial_test(11, 10, 0.5), "successes must be an integer in"),
        (lambda: binomial_test(3, 10, 0.5, level=0), "level must be"),
        (lambda: fit_loglog_slope([1.0, 2, np.nan], [1.0, 2, 3]), "x contains 1 non-finite"),
        (lambda: fit_loglog_slope([1.0, 2, 3], [1.0, 2, 3], level=2), "level must be"),
        (lambda: bonferroni([ks_test(GOOD, sps.norm())], level=0), "level must be"),
    ],
)
def test_bad_input_raises_a_value_error_naming_the_parameter(call, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        call()
