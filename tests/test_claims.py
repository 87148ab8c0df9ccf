"""Claims built from results: the stated expectation, tolerance and verdict come from one check.

Also the spec field types (errors name the field) and the ``ErrorSweep`` base (a new study is a
declaration: its axis, its networks, its slope claims).
"""

from typing import Any

import numpy as np
import pydantic
import pytest
import scipy.stats as sps

from deeplimit.experiments.base import ExperimentSpec
from deeplimit.experiments.claims import Claim, bound, pvalue_test
from deeplimit.experiments.spec_fields import AtLeast, DType, IncreasingFloats, Level, Positive
from deeplimit.stats import binomial_test, bonferroni, fit_loglog_slope, ks_test

LEVEL = 1e-3


def _normal(shift: float, n: int = 2000, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(shift, 1.0, n)


def test_a_claim_from_a_failing_test_cannot_say_pass():
    failing = ks_test(_normal(0.5), sps.norm(), level=LEVEL)
    assert not failing.passed
    claim = Claim.from_test("X", "the sample is N(0, 1)", failing)
    assert not claim.passed and claim.verdict == "FAIL"
    assert claim.measured == failing.pvalue and claim.n == failing.n
    # a hand-built claim that contradicts its result is refused
    fields = {k: v for k, v in claim.as_dict().items() if k != "verdict"}
    with pytest.raises(ValueError, match="disagrees"):
        Claim(**{**fields, "passed": True}, result=claim.result)


def test_from_test_reads_expected_and_tolerance_from_the_result():
    result = ks_test(_normal(0.0), sps.norm(), level=LEVEL)
    claim = Claim.from_test("X", "the sample is N(0, 1)", result)
    assert claim.passed == result.passed
    assert claim.expected == f">= {LEVEL:g}"
    assert claim.statistic == "KS p-value"
    assert f"{result.statistic:.4g}" in claim.tolerance
    # the same data at another level: the stated level follows the result's level
    strict = ks_test(_normal(0.0), sps.norm(), level=0.5)
    assert Claim.from_test("X", "s", strict).expected == ">= 0.5"


def test_reject_claims_pass_exactly_when_the_test_fails():
    for shift in (0.0, 0.5):
        result = ks_test(_normal(shift), sps.norm(), level=LEVEL)
        claim = Claim.from_test("X", "visibly not N(0, 1)", result, reject=True)
        assert claim.passed == (not result.passed)
        assert claim.expected == f"< {LEVEL:g}"


def test_pvalue_test_computes_its_own_verdict():
    assert pvalue_test(0.01, level=LEVEL, n=10).passed
    assert not pvalue_test(1e-4, level=LEVEL, n=10).passed
    claim = Claim.from_test(
        "X", "s", pvalue_test(1e-4, level=LEVEL, n=10, test="KS", statistic=0.2)
    )
    assert claim.tolerance == "KS D = 0.2000" and not claim.passed
    with pytest.raises(ValueError, match="level"):
        pvalue_test(0.5, level=1.5, n=10)


def test_family_is_bonferroni():
    # 0.0005 < level but >= level / 2: a single test fails, the family of two passes
    members = {"a": pvalue_test(5e-4, level=LEVEL, n=100), "b": pvalue_test(0.3, level=LEVEL, n=50)}
    claim = Claim.family("F", "both hold", members, level=LEVEL, what="cases")
    family = bonferroni(members, level=LEVEL)
    assert claim.passed == family.passed is True
    assert claim.measured == 5e-4 and claim.n == 100 and claim.details["worst"] == "a"
    assert claim.expected == f">= {LEVEL / 2:.2g} (Bonferroni, level {LEVEL:g})"
    assert "Bonferroni over 2 cases" in claim.tolerance
    members["c"] = pvalue_test(3e-4, level=LEVEL, n=10)  # below level / 3
    failing = Claim.family("F", "all hold", members, level=LEVEL)
    assert not failing.passed and failing.measured == 3e-4


def test_family_of_real_results_and_rejections():
    rng = np.random.default_rng(1)
    tests = {
        f"p = {p}": binomial_test(int(rng.binomial(1000, p)), 1000, p, level=LEVEL)
        for p in (0.1, 0.5)
    }
    assert Claim.family("B", "rates", tests, level=LEVEL).passed
    # every member significant: the family of rejections passes; one not significant: fails
    strong = {"x": pvalue_test(1e-9, level=LEVEL, n=5), "y": pvalue_test(1e-8, level=LEVEL, n=5)}
    assert Claim.family("R", "both differ", strong, level=LEVEL, reject=True).passed
    weak = {**strong, "z": pvalue_test(0.2, level=LEVEL, n=5)}
    claim = Claim.family("R", "all differ", weak, level=LEVEL, reject=True)
    assert not claim.passed and claim.measured == 0.2 and claim.expected.startswith("<")


def test_slope_claims():
    x = np.array([1.0, 2.0, 4.0, 8.0, 16.0])
    y = 3.0 * x**-0.5 * np.exp(np.array([0.01, -0.02, 0.0, 0.015, -0.01]))
    good = Claim.slope("S", "slope -1/2", x, y, expected=-0.5, tolerance=0.05, what="error vs x")
    fit = fit_loglog_slope(x, y, expected=-0.5, tolerance=0.05)
    assert good.passed == fit.passed is True and good.measured == fit.slope
    assert good.expected == "-0.5" and good.tolerance.startswith("±0.05; 95% CI")
    bad = Claim.slope("S", "slope 0", x, y, expected=0.0, tolerance=0.05, what="error vs x")
    assert not bad.passed and bad.expected == "+0"
    # NaN points are left out and counted; fewer than 3 finite points: no fit, FAIL
    y_nan = y.copy()
    y_nan[[0, 1, 2]] = np.nan
    none = Claim.slope("S", "slope", x, y_nan, expected=-0.5, tolerance=0.05, what="e")
    assert not none.passed and np.isnan(none.measured) and "3 point(s)" in none.statement


def test_bound_claims():
    assert Claim.bound("B", "s", bound(0.1, at_most=0.1), statistic="v").passed
    assert not Claim.bound("B", "s", bound(0.1, below=0.1), statistic="v").passed
    assert Claim.bound("B", "s", bound(0.1, below=0.1), statistic="v").expected == "< 0.1"
    near = bound(1.0 + 1e-13, equals=1.0, tolerance=1e-12, relative=True)
    assert near.passed and bound(2.0, within=(1.0, 3.0)).passed
    assert not bound(float("nan"), at_least=0.0).passed
    assert bound(2.0, within=(1.0, 3.0)).expected == "in [1, 3]"
    claim = Claim.bound("B", "s", bound(0.0, equals=0), statistic="moved")
    assert claim.passed and claim.expected == "0" and claim.tolerance == "exact"
    with pytest.raises(ValueError, match="exactly one"):
        bound(1.0, at_most=2.0, at_least=0.0)
    with pytest.raises(ValueError, match="tolerance"):
        bound(1.0, equals=1.0, tolerance=-1.0)


def test_requirements_must_pass_too_and_are_listed():
    claim = Claim.bound(
        "B",
        "s",
        bound(0.5, at_most=1.0),
        statistic="v",
        requires={"budget": bound(0.3, at_most=0.2), "finite": True},
    )
    assert not claim.passed
    assert "budget: FAILED" in claim.tolerance and "finite: ok" in claim.tolerance
    # the report's columns are unchanged: the result object stays out of the record
    assert set(claim.as_dict()) == {
        "id",
        "statement",
        "statistic",
        "measured",
        "expected",
        "tolerance",
        "n",
        "passed",
        "details",
        "verdict",
    }
    assert claim.as_dict()["verdict"] == "FAIL"


class _Spec(ExperimentSpec):
    count: AtLeast(3) = 3  # type: ignore[valid-type]
    rate: Positive = 1.0
    level: Level = 0.01
    dtype: DType = "float64"
    alphas: IncreasingFloats = (1.0, 2.0, 4.0)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"count": 2}, "count must be an integer >= 3"),
        ({"rate": float("inf")}, "rate must be a finite number > 0"),
        ({"level": 1.0}, "level must be in"),
        ({"dtype": "float16"}, "dtype must be one of float64, float32"),
        ({"alphas": (1.0, 1.0, 2.0)}, "alphas must be at least three distinct increasing"),
    ],
)
def test_spec_field_types_name_the_field(overrides: dict[str, Any], message: str):
    with pytest.raises(pydantic.ValidationError, match=message):
        _Spec(**overrides)
    assert _Spec().count == 3


def test_a_new_error_sweep_is_a_declaration():
    """A study on the ErrorSweep base declares its axis, network and slopes; the base trains,
    measures, stores, claims and draws (here: the error against the depth L, tiny sizes)."""
    from deeplimit.experiments.chizat_sweep import ErrorSweep, ErrorSweepSpec, Slope
    from deeplimit.experiments.spec_fields import IncreasingInts, PositiveInt

    class DepthSpec(ErrorSweepSpec):
        depths: IncreasingInts = (2, 4, 8)
        width: PositiveInt = 4
        dim: PositiveInt = 4

    class Depth(ErrorSweep):
        name, title, Spec = "toy-depth", "toy", DepthSpec
        axis, values_field, axis_label, axis_symbol = "depth", "depths", "depth L", "L"
        cast = int
        slopes = (Slope("T1", "embedding", -0.5, 10.0, guide="slope -1/2"),)

        def setting(self, spec: DepthSpec, value: int) -> dict[str, Any]:
            return {"depth": value, "width": spec.width, "dim": spec.dim, "lr": spec.lr}

        def caption(self, spec: DepthSpec) -> str:
            return f"toy sweep over L in {list(spec.depths)}"

        def statement(self, slope: Slope, dataset: Any, spec: DepthSpec) -> str:
            return "embedding error vs L"

    study = Depth()
    spec = study.Spec(seeds=2, reference_width=8, reference_seeds=2, steps=1)
    dataset = study.run(spec)
    assert dataset.attrs["caption"].startswith("toy sweep") and "spec" in dataset.attrs
    assert list(dataset.depth.values) == [2, 4, 8]
    assert np.all(dataset.embedding_error.values > 0)
    (claim,) = study.claims(dataset)
    assert claim.id == "T1" and claim.passed == claim.result.passed
    assert [row["depth"] for row in study.statistics(dataset)] == [2, 4, 8]
    assert study.plot(dataset) is not None
