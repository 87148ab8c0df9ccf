"""Statistics that turn simulations into verdicts: goodness of fit, Wasserstein, slopes, CIs.

Every function takes numpy arrays, lists or torch tensors (moved to the CPU and converted to
float64), rejects empty input and NaN/inf with a ``ValueError`` that names the parameter, and
returns a small frozen result object (or a plain float for the Wasserstein distances). Test
results share one reading:

- ``statistic``, ``pvalue``, ``level`` (the significance level of the test), the sample size(s)
  and ``passed``; ``verdict`` is ``"PASS"`` or ``"FAIL"``;
- ``str(result)`` is one line for a report, e.g.
  ``KS vs Normal(mean=-0.5, var=1): D=0.0071, p=0.62, n=20000 -> PASS at level 0.001``;
- ``result.as_dict()`` holds plain ints, floats, strings, bools and lists for result files.

A test *passes* when the data give no evidence against the null hypothesis at ``level``
(``pvalue >= level``): PASS means "consistent with the theory at this sample size", never
"proved". The default ``level=1e-3`` keeps the false-alarm rate of a test suite low; size the
sample to the effect you want to resolve (the KS statistic resolves about ``1.36/sqrt(n)``).
When one check asserts many p-values, combine them with :func:`bonferroni`.

One-dimensional samples may come with singleton axes (``(n, 1)``), which are dropped; an array
with two or more non-trivial axes is refused rather than flattened, because its entries are
usually dependent (layers of one path) and flattening would silently break the independence
every test below assumes.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
from scipy import integrate, special
from scipy import stats as sps

from .errors import check_choice, check_finite_float, check_int, check_real_array

__all__ = [
    "BinomialInterval",
    "BinomialTest",
    "FamilyResult",
    "GoodnessOfFit",
    "MeanZScore",
    "SlopeFit",
    "TwoSampleResult",
    "binomial_interval",
    "binomial_test",
    "bonferroni",
    "cvm_test",
    "fit_loglog_slope",
    "ks_test",
    "mean_zscore",
    "two_sample_test",
    "wasserstein1",
    "wasserstein1_to_law",
]

# scipy.stats.anderson_ksamp interpolates p-values from tables that span [0.001, 0.25].
AD_PVALUE_FLOOR = 0.001
AD_PVALUE_CAP = 0.25

# A law's cdf may miss [0, 1] or monotonicity by rounding; anything beyond this is a bug.
_CDF_TOLERANCE = 1e-9
# A jump of the cdf larger than this, one floating-point step wide, is an atom of the law.
_ATOM_TOLERANCE = 1e-10


# --------------------------------------------------------------------------------------------
# input conversion and checks


def _to_numpy(name: str, value: Any) -> np.ndarray:
    """``value`` (array, list, scalar or torch tensor) as a float64 numpy array of real numbers
    (no strings, booleans or complex numbers); non-finite values are checked by the caller."""
    return check_real_array(name, value, allow_inf=True, allow_nan=True)


def _check_all_finite(name: str, array: np.ndarray) -> None:
    bad = int(array.size - np.count_nonzero(np.isfinite(array)))
    if bad:
        raise ValueError(
            f"{name} contains {bad} non-finite value(s) (NaN or inf) out of {array.size}; "
            "all values must be finite"
        )


def _as_sample(name: str, value: Any, *, minimum: int = 1) -> np.ndarray:
    """A finite 1-D float64 sample with at least ``minimum`` values (singleton axes dropped)."""
    array = _to_numpy(name, value)
    if sum(size > 1 for size in array.shape) > 1:
        raise ValueError(
            f"{name} must be a one-dimensional sample, got shape {array.shape}; flatten it "
            "yourself only if all its entries are independent draws"
        )
    array = array.reshape(-1)
    if array.size == 0:
        raise ValueError(f"{name} is empty; it needs at least {minimum} value(s)")
    if array.size < minimum:
        raise ValueError(f"{name} needs at least {minimum} values, got {array.size}")
    _check_all_finite(name, array)
    return array


def _check_level(name: str, value: Any) -> float:
    """A probability in the open interval (0, 1)."""
    if isinstance(value, bool):
        raise ValueError(f"{name} must be a number in the open interval (0, 1), got {value!r}")
    result = check_finite_float(name, value)
    if not 0.0 < result < 1.0:
        raise ValueError(f"{name} must be a number in the open interval (0, 1), got {value!r}")
    return result


def _check_probability(name: str, value: Any) -> float:
    """A probability in the closed interval [0, 1]."""
    result = check_finite_float(name, value)
    if not 0.0 <= result <= 1.0:
        raise ValueError(f"{name} must be a number in [0, 1], got {value!r}")
    return result


# --------------------------------------------------------------------------------------------
# laws


def _law_cdf(law: Any) -> Callable[[np.ndarray], np.ndarray]:
    """The cdf of ``law`` (a ``cdf`` method or the callable itself), checked on every call.

    The check costs one pass over the values and catches the bugs that would otherwise turn
    into silently wrong p-values: values outside [0, 1], NaN, a cdf that decreases, or one that
    is not vectorized.
    """
    method = getattr(law, "cdf", None)
    if callable(method):
        cdf = method
    elif callable(law):
        cdf = law
    else:
        raise ValueError(
            f"law must have a vectorized cdf(x) method or be a callable cdf, got {law!r:.80}"
        )

    def checked(x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        try:
            values = np.asarray(cdf(x), dtype=np.float64)
        except TypeError as error:
            raise ValueError(
                f"law's cdf must accept a numpy array and return one of the same shape ({error})"
            ) from error
        if values.shape != x.shape and values.size == 1 == x.size:
            values = values.reshape(x.shape)
        if values.shape != x.shape:
            raise ValueError(
                f"law's cdf returned shape {values.shape} for input of shape {x.shape}; "
                "it must be vectorized"
            )
        bad = int(values.size - np.count_nonzero(np.isfinite(values)))
        if bad:
            raise ValueError(f"law's cdf returned {bad} non-finite value(s) (NaN or inf)")
        outside = int(np.count_nonzero((values < -_CDF_TOLERANCE) | (values > 1 + _CDF_TOLERANCE)))
        if outside:
            raise ValueError(f"law's cdf returned {outside} value(s) outside [0, 1]")
        if values.size > 1:
            flat_x, flat_values = x.reshape(-1), values.reshape(-1)
            if np.any(np.diff(flat_x) < 0):  # callers here mostly pass sorted points
                order = np.argsort(flat_x, kind="stable")
                flat_values = flat_values[order]
            if np.any(np.diff(flat_values) < -_CDF_TOLERANCE):
                raise ValueError("law's cdf is not non-decreasing")
        return np.clip(values, 0.0, 1.0)

    return checked


def _format_value(value: Any) -> str:
    if isinstance(value, float | np.floating):
        return f"{float(value):g}"
    return str(value)


def _describe_law(law: Any) -> str:
    """A short name for ``law``: ``law.describe()``, a scipy frozen law, or a function name."""
    describe = getattr(law, "describe", None)
    if callable(describe):
        description = describe()
        if isinstance(description, Mapping):
            arguments = ", ".join(f"{k}={_format_value(v)}" for k, v in description.items())
            return f"{type(law).__name__}({arguments})"
        return str(description)
    distribution = getattr(law, "dist", None)
    if distribution is not None and hasattr(distribution, "name") and hasattr(law, "kwds"):
        arguments = [_format_value(a) for a in getattr(law, "args", ())]
        arguments += [f"{k}={_format_value(v)}" for k, v in law.kwds.items()]
        return f"scipy.stats.{distribution.name}({', '.join(arguments)})"
    if not hasattr(law, "cdf"):
        name = getattr(law, "__qualname__", None) or getattr(law, "__name__", None)
        if name:
            return str(name)
    return repr(law)


# --------------------------------------------------------------------------------------------
# results


def _plain(value: Any) -> Any:
    """``value`` with numpy scalars and arrays, tuples and results turned into JSON types."""
    if isinstance(value, _Result):
        return value.as_dict()
    if isinstance(value, np.ndarray):
        return [_plain(v) for v in value.tolist()] if value.ndim else _plain(value.item())
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        return float(value)
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if value is None or isinstance(value, str):
        return value
    as_dict = getattr(value, "as_dict", None)
    return as_dict() if callable(as_dict) else str(value)


def _frozen_array(value: Any) -> np.ndarray:
    array = np.array(value, dtype=np.float64)
    array.flags.writeable = False
    return array


def _p(pvalue: float) -> str:
    return f"{pvalue:.2g}"


class _Result:
    """Shared behaviour of the result objects: verdict and ``as_dict``."""

    passed: bool

    @property
    def verdict(self) -> str:
        """``"PASS"`` if the check passed, else ``"FAIL"``."""
        return "PASS" if self.passed else "FAIL"

    def _extra(self) -> dict[str, Any]:
        return {}

    def as_dict(self) -> dict[str, Any]:
        """The result as plain JSON-serializable values (lists for arrays), with its kind."""
        out: dict[str, Any] = {"kind": type(self).__name__}
        for item in fields(self):  # type: ignore[arg-type]
            out[item.name] = _plain(getattr(self, item.name))
        out.update({k: _plain(v) for k, v in self._extra().items()})
        if hasattr(self, "passed"):
            out["verdict"] = self.verdict
        return out


@dataclass(frozen=True)
class GoodnessOfFit(_Result):
    """A one-sample test of a sample against a fully specified law (KS or Cramér–von Mises).

    ``statistic`` is the KS distance ``D`` or the Cramér–von Mises ``T = n omega^2``; ``law``
    is the description of the law; ``note`` flags conditions that weaken the p-value.
    """

    test: str
    law: str
    statistic: float
    pvalue: float
    level: float
    n: int
    passed: bool
    note: str = ""

    def __str__(self) -> str:
        statistic = f"D={self.statistic:.2g}" if self.test == "KS" else f"T={self.statistic:.3g}"
        note = f" [{self.note}]" if self.note else ""
        return (
            f"{self.test} vs {self.law}: {statistic}, p={_p(self.pvalue)}, "
            f"n={self.n} -> {self.verdict} at level {self.level:g}{note}"
        )


@dataclass(frozen=True)
class TwoSampleResult(_Result):
    """A two-sample test that ``a`` and ``b`` come from the same law (KS, CvM or AD).

    For ``method="ad"`` the p-value is interpolated from tables and clipped to
    ``[0.001, 0.25]``; ``pvalue_clipped`` says it hit a bound, and ``pvalue_bounds`` gives the
    interval known to hold the true p-value (``(0, 0.001)`` when floored, ``(0.25, 1)`` when
    capped, ``(p, p)`` otherwise).
    """

    test: str
    statistic: float
    pvalue: float
    level: float
    n: tuple[int, int]
    passed: bool
    pvalue_clipped: bool = False
    note: str = ""

    @property
    def pvalue_bounds(self) -> tuple[float, float]:
        """An interval holding the true p-value (a point unless the AD p-value was clipped)."""
        if not self.pvalue_clipped:
            return (self.pvalue, self.pvalue)
        if self.pvalue <= AD_PVALUE_FLOOR:
            return (0.0, self.pvalue)
        return (self.pvalue, 1.0)

    def _extra(self) -> dict[str, Any]:
        return {"pvalue_bounds": self.pvalue_bounds}

    def __str__(self) -> str:
        symbol = {"KS": "D", "CvM": "T", "AD": "A2"}[self.test]
        pvalue = f"p={_p(self.pvalue)}"
        if self.pvalue_clipped:
            low, high = self.pvalue_bounds
            pvalue = f"p<={_p(high)} (floored)" if low == 0.0 else f"p>={_p(low)} (capped)"
        note = f" [{self.note}]" if self.note else ""
        return (
            f"{self.test} two-sample: {symbol}={self.statistic:.3g}, {pvalue}, "
            f"n=({self.n[0]}, {self.n[1]}) -> {self.verdict} at level {self.level:g}{note}"
        )


@dataclass(frozen=True, eq=False)
class MeanZScore(_Result):
    """A z-test of a sample mean against its expected value, one or several at once.

    ``statistic`` is ``z = (mean - expected) / standard_error``. With one expected value the
    fields are floats; with ``m`` expected values they are arrays of length ``m``, ``passed``
    requires every component to pass at the Bonferroni level ``level / m`` and
    ``family_pvalue = min(1, m * min(pvalue))`` is the p-value of the whole family.
    """

    mean: float | np.ndarray
    expected: float | np.ndarray
    standard_error: float | np.ndarray
    statistic: float | np.ndarray
    pvalue: float | np.ndarray
    level: float
    n: int
    passed: bool

    @property
    def zscore(self) -> float | np.ndarray:
        """Alias of ``statistic``."""
        return self.statistic

    @property
    def components(self) -> int:
        """How many means were tested (1 for a scalar test)."""
        return int(np.size(self.statistic))

    @property
    def family_pvalue(self) -> float:
        """Bonferroni-adjusted p-value ``min(1, m * min p)`` (the p-value itself when m = 1)."""
        return float(min(1.0, self.components * float(np.min(self.pvalue))))

    def _extra(self) -> dict[str, Any]:
        return {"family_pvalue": self.family_pvalue}

    def __str__(self) -> str:
        if np.ndim(self.statistic) == 0:
            return (
                f"mean z-test vs {self.expected:g}: mean={self.mean:.6g} "
                f"(se {self.standard_error:.2g}), z={self.statistic:.3g}, "
                f"p={_p(self.pvalue)}, n={self.n} -> {self.verdict} at level {self.level:g}"
            )
        worst = int(np.argmin(self.pvalue))
        return (
            f"mean z-test of {self.components} means (each at level "
            f"{self.level / self.components:.3g}): worst #{worst} z={self.statistic[worst]:.3g}, "
            f"p={_p(self.pvalue[worst])}, n={self.n} -> {self.verdict} at level {self.level:g}"
        )


@dataclass(frozen=True, eq=False)
class BinomialInterval(_Result):
    """A confidence interval for a success probability (floats, or arrays when vectorized).

    ``level`` is the *confidence* level (e.g. 0.95). An interval is an estimate, not a test,
    so it has no ``passed``; use :meth:`contains` to check a value.
    """

    estimate: float | np.ndarray
    low: float | np.ndarray
    high: float | np.ndarray
    successes: float | np.ndarray
    trials: float | np.ndarray
    level: float
    method: str

    def contains(self, probability: Any) -> bool | np.ndarray:
        """Whether ``low <= probability <= high`` (elementwise when vectorized)."""
        value = _to_numpy("probability", probability)
        inside = (self.low <= value) & (value <= self.high)
        return bool(inside) if np.ndim(inside) == 0 else inside

    def __str__(self) -> str:
        if np.ndim(self.estimate) == 0:
            return (
                f"{self.method} {self.level * 100:g}% interval: {int(self.successes)}/"
                f"{int(self.trials)} = {self.estimate:.4g} in [{self.low:.4g}, {self.high:.4g}]"
            )
        return (
            f"{self.method} {self.level * 100:g}% intervals for {np.size(self.estimate)} "
            f"proportions: estimates in [{np.min(self.estimate):.4g}, "
            f"{np.max(self.estimate):.4g}], widest {np.max(self.high - self.low):.3g}"
        )


@dataclass(frozen=True)
class BinomialTest(_Result):
    """An exact two-sided binomial test of ``successes ~ Binomial(trials, probability)``.

    ``statistic`` is the observed proportion ``successes / trials``.
    """

    statistic: float
    pvalue: float
    level: float
    successes: int
    trials: int
    probability: float
    passed: bool

    @property
    def n(self) -> int:
        """The number of trials."""
        return self.trials

    def __str__(self) -> str:
        return (
            f"binomial test vs p0={self.probability:g}: {self.successes}/{self.trials} = "
            f"{self.statistic:.4g}, p={_p(self.pvalue)}, n={self.trials} -> {self.verdict} "
            f"at level {self.level:g}"
        )


@dataclass(frozen=True)
class SlopeFit(_Result):
    """A least-squares fit ``log y = intercept + slope log x``, i.e. ``y = prefactor x^slope``.

    ``level`` is the *confidence* level of ``(ci_low, ci_high)``. When ``expected`` is given,
    ``tstatistic = (slope - expected) / slope_stderr`` and ``pvalue`` is its two-sided
    Student-t p-value with ``n - 2`` degrees of freedom; ``passed`` is
    ``|slope - expected| <= tolerance`` when ``tolerance`` is given, else
    ``ci_low <= expected <= ci_high`` (the same as ``pvalue >= 1 - level``). Without
    ``expected``, ``passed`` is True and ``pvalue`` is None.
    """

    slope: float
    intercept: float
    slope_stderr: float
    ci_low: float
    ci_high: float
    r_squared: float
    n: int
    level: float
    weighted: bool
    expected: float | None
    tolerance: float | None
    tstatistic: float | None
    pvalue: float | None
    passed: bool

    @property
    def statistic(self) -> float:
        """The fitted slope."""
        return self.slope

    @property
    def prefactor(self) -> float:
        """``exp(intercept)``, the ``C`` of ``y = C x^slope``."""
        return math.exp(self.intercept)

    @property
    def ci(self) -> tuple[float, float]:
        """The confidence interval of the slope at ``level``."""
        return (self.ci_low, self.ci_high)

    def predict(self, x: Any) -> np.ndarray:
        """The fitted power law ``prefactor * x ** slope`` at ``x``."""
        return self.prefactor * _to_numpy("x", x) ** self.slope

    def _extra(self) -> dict[str, Any]:
        return {"prefactor": self.prefactor}

    def __str__(self) -> str:
        text = (
            f"log-log slope {self.slope:.4g} ± {self.slope_stderr:.2g} "
            f"({self.level * 100:g}% CI [{self.ci_low:.4g}, {self.ci_high:.4g}]), "
            f"prefactor {self.prefactor:.3g}, r²={self.r_squared:.4f}, n={self.n}"
        )
        if self.expected is None:
            return text
        if self.tolerance is not None:
            check = f"expected {self.expected:g} ± {self.tolerance:g}"
        else:
            check = f"expected {self.expected:g} inside the CI"
        return f"{text}; {check}, p={_p(self.pvalue)} -> {self.verdict}"


@dataclass(frozen=True)
class FamilyResult(_Result):
    """Several tests combined by Bonferroni: each is judged at ``level / m``.

    ``pvalue = min(1, m * min p)`` is the adjusted p-value of the family, ``passed`` holds when
    every member passes at ``member_level``; ``member_passed`` gives each member's verdict.
    """

    names: tuple[str, ...]
    members: tuple[Any, ...]
    member_pvalues: tuple[float, ...]
    member_passed: tuple[bool, ...]
    level: float
    member_level: float
    pvalue: float
    passed: bool
    note: str = ""

    @property
    def m(self) -> int:
        """The number of tests in the family."""
        return len(self.members)

    @property
    def statistic(self) -> float:
        """The smallest member p-value."""
        return min(self.member_pvalues)

    def __str__(self) -> str:
        worst = int(np.argmin(self.member_pvalues))
        failed = self.m - sum(self.member_passed)
        note = f" [{self.note}]" if self.note else ""
        return (
            f"Bonferroni over {self.m} tests (each at level {self.member_level:.3g}): "
            f"{failed} failed, min p={_p(self.member_pvalues[worst])} ({self.names[worst]}), "
            f"adjusted p={_p(self.pvalue)} -> {self.verdict} at level {self.level:g}{note}"
        )


# --------------------------------------------------------------------------------------------
# one-sample tests against a law


def _tie_note(sample: np.ndarray) -> str:
    ties = sample.size - np.unique(sample).size
    if ties == 0:
        return ""
    return f"{ties} tied values: is the sample rounded (float16/32)?"


def _cdf_jumps(
    cdf: Callable[[np.ndarray], np.ndarray], values: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Where the law's cdf jumps at ``values``: ``F(v) - F(v-) > tolerance``, ``F(v-)`` taken
    one floating-point step to the left. Returns ``(F(v), F(v-), jump)``."""
    at = cdf(values)
    left = cdf(np.nextafter(values, -np.inf))
    return at, left, at - left > _ATOM_TOLERANCE


def ks_test(samples: Any, law: Any, *, level: float = 1e-3) -> GoodnessOfFit:
    """One-sample Kolmogorov–Smirnov test of ``samples`` against a fully specified ``law``.

    The statistic is ``D = sup_x |F_n(x) - F(x)|`` with ``F_n`` the empirical cdf and ``F``
    the cdf of ``law`` (an object with a vectorized ``cdf`` method, e.g. a scipy frozen law, or
    a plain callable cdf). The test and p-value are ``scipy.stats.kstest`` (scipy computes the
    exact null law of ``D``, ``kstwo``) and ``passed = pvalue >= level``.

    Assumptions: i.i.d. samples and a *fully specified* law: if its parameters were fitted to
    the same samples, the p-value is far too large (that needs a Lilliefors-type test).

    Laws with atoms (e.g. a point mass where the network collapses): scipy's formula
    ``max_i F(x_(i)) - (i-1)/n`` uses ``F(x)`` where the left limit ``F(x-)`` belongs and so
    overstates ``D`` (spurious FAILs). When the cdf jumps at a sample value, ``D`` is computed
    here with left limits instead, ``D = max_j max(F_n(v_j) - F(v_j), F(v_j-) - F_n(v_j-))``
    over the distinct values ``v_j``, and the continuous-law p-value ``kstwo.sf(D, n)`` is
    then conservative (Noether 1963); ``note`` says so.
    """
    sample = _as_sample("samples", samples)
    level = _check_level("level", level)
    cdf = _law_cdf(law)
    n = sample.size
    values, counts = np.unique(sample, return_counts=True)
    at, left, jumps = _cdf_jumps(cdf, values)
    if not np.any(jumps):
        result = sps.kstest(sample, cdf)
        statistic, pvalue = float(result.statistic), float(result.pvalue)
        note = _tie_note(sample)
    else:
        cumulative = np.cumsum(counts)
        upper, lower = cumulative / n, (cumulative - counts) / n  # F_n(v), F_n(v-)
        statistic = float(max(np.max(upper - at), np.max(left - lower), 0.0))
        pvalue = float(np.clip(sps.kstwo.sf(statistic, n), 0.0, 1.0))
        note = (
            f"law has atoms at {int(np.count_nonzero(jumps))} sample value(s): D uses left "
            "limits and the p-value is conservative"
        )
    return GoodnessOfFit(
        test="KS",
        law=_describe_law(law),
        statistic=statistic,
        pvalue=pvalue,
        level=level,
        n=n,
        passed=pvalue >= level,
        note=note,
    )


def cvm_test(samples: Any, law: Any, *, level: float = 1e-3) -> GoodnessOfFit:
    """One-sample Cramér–von Mises test of ``samples`` against a fully specified ``law``.

    The statistic is ``T = n ∫ (F_n - F)^2 dF = 1/(12 n) + sum_i ((2i - 1)/(2n) - F(x_(i)))^2``
    (``scipy.stats.cramervonmises``, whose p-value uses the finite-n approximation of Csörgő
    and Faraway 1996); ``passed = pvalue >= level``. It weighs the whole cdf, so it is often
    more powerful than KS against shifts and scale changes.

    Assumptions: i.i.d. samples (at least 2) and a fully specified *continuous* law. A law
    whose cdf jumps at a sample value raises a ValueError, because neither the formula nor the
    null law of ``T`` hold then; :func:`ks_test` handles atoms (conservatively).
    """
    sample = _as_sample("samples", samples, minimum=2)
    level = _check_level("level", level)
    cdf = _law_cdf(law)
    jumps = _cdf_jumps(cdf, np.unique(sample))[2]
    if np.any(jumps):
        raise ValueError(
            f"law has atoms (its cdf jumps) at {int(np.count_nonzero(jumps))} sample value(s); "
            "the Cramér–von Mises p-value needs a continuous law: use ks_test, which is "
            "conservative with atoms"
        )
    result = sps.cramervonmises(sample, cdf)
    pvalue = float(np.clip(result.pvalue, 0.0, 1.0))
    return GoodnessOfFit(
        test="CvM",
        law=_describe_law(law),
        statistic=float(result.statistic),
        pvalue=pvalue,
        level=level,
        n=sample.size,
        passed=pvalue >= level,
        note=_tie_note(sample),
    )


# --------------------------------------------------------------------------------------------
# two-sample tests


def _anderson_two_sample(a: np.ndarray, b: np.ndarray) -> tuple[float, float, bool]:
    """``(statistic, pvalue, clipped)`` of scipy's midrank k-sample Anderson–Darling test."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            result = sps.anderson_ksamp([a, b], variant="midrank")
        except TypeError:  # scipy < 1.17 has no `variant`; midrank=True is the same test
            result = sps.anderson_ksamp([a, b], midrank=True)
    messages = " ".join(str(w.message) for w in caught)
    pvalue = float(result.pvalue)
    clipped = (
        "floored" in messages
        or "capped" in messages
        or pvalue <= AD_PVALUE_FLOOR
        or pvalue >= AD_PVALUE_CAP
    )
    return float(result.statistic), pvalue, clipped


def two_sample_test(a: Any, b: Any, *, method: str = "ks", level: float = 1e-3) -> TwoSampleResult:
    """Two-sample test of the null hypothesis that ``a`` and ``b`` are drawn from one law.

    ``method``:

    - ``"ks"``: Kolmogorov–Smirnov, ``D = sup_x |F_a(x) - F_b(x)|`` (``scipy.stats.ks_2samp``,
      exact or asymptotic p-value as scipy chooses);
    - ``"cvm"``: Cramér–von Mises, ``T = (n_a n_b / (n_a + n_b)) ∫ (F_a - F_b)^2 dH`` with ``H``
      the pooled empirical cdf (``scipy.stats.cramervonmises_2samp``); at least 2 values each;
    - ``"ad"``: Anderson–Darling k-sample test, midrank variant (Scholz and Stephens 1987,
      ``scipy.stats.anderson_ksamp``). Its p-value is *interpolated from tables and clipped to
      [0.001, 0.25]*: ``pvalue_clipped`` flags a bound, and a floored p-value is read as
      ``p < 0.001``, a capped one as ``p > 0.25``. A permutation p-value would remove the
      clipping but costs about a second per thousand resamples at n = 1000, too slow here.
      Because of the clipping, ``level`` must lie in [0.001, 0.25] for ``"ad"``.

    ``passed = pvalue >= level`` (for a clipped AD p-value, the verdict its bound implies).
    Assumptions: both samples i.i.d. and independent of each other. KS and CvM p-values assume
    a continuous law: with ties the KS p-value is conservative and the CvM one approximate
    (``note`` counts the ties); the AD midrank variant is built for ties.
    """
    method = check_choice("method", method, ("ks", "cvm", "ad"))
    minimum = 2 if method == "cvm" else 1
    first = _as_sample("a", a, minimum=minimum)
    second = _as_sample("b", b, minimum=minimum)
    level = _check_level("level", level)
    clipped = False
    pooled = np.concatenate([first, second])
    ties = pooled.size - np.unique(pooled).size
    note = ""
    if ties and method == "ks":
        note = f"{ties} tied values: the p-value is conservative"
    elif ties and method == "cvm":
        note = f"{ties} tied values: the p-value assumes no ties (use method='ad')"
    if method == "ks":
        result = sps.ks_2samp(first, second)
        statistic, pvalue = float(result.statistic), float(result.pvalue)
    elif method == "cvm":
        result = sps.cramervonmises_2samp(first, second)
        statistic, pvalue = float(result.statistic), float(np.clip(result.pvalue, 0.0, 1.0))
    else:
        if not AD_PVALUE_FLOOR <= level <= AD_PVALUE_CAP:
            raise ValueError(
                f"level must be in [{AD_PVALUE_FLOOR}, {AD_PVALUE_CAP}] for method='ad' "
                f"(scipy clips its p-values to that range), got {level!r}; use method='ks' or "
                "'cvm' for other levels"
            )
        if pooled.size - ties < 2:
            raise ValueError("a and b together need at least two distinct values for method='ad'")
        statistic, pvalue, clipped = _anderson_two_sample(first, second)
        note = "p interpolated from tables, clipped to [0.001, 0.25]"
    passed = pvalue >= level
    if clipped:
        # floored: true p < 0.001 <= level; capped: true p > 0.25 >= level.
        passed = pvalue >= AD_PVALUE_CAP
    return TwoSampleResult(
        test={"ks": "KS", "cvm": "CvM", "ad": "AD"}[method],
        statistic=statistic,
        pvalue=pvalue,
        level=level,
        n=(first.size, second.size),
        passed=passed,
        pvalue_clipped=clipped,
        note=note,
    )


# --------------------------------------------------------------------------------------------
# Wasserstein distances


def wasserstein1(a: Any, b: Any) -> float:
    """Wasserstein-1 distance between the empirical laws of samples ``a`` and ``b``.

    ``W1 = ∫ |F_a(x) - F_b(x)| dx`` (``scipy.stats.wasserstein_distance``), exact for the
    empirical laws. A plain float: as an estimate of the distance between the underlying laws
    it is biased upwards by about ``C / sqrt(n)``, so compare it with that noise floor.
    """
    first = _as_sample("a", a)
    second = _as_sample("b", b)
    return float(sps.wasserstein_distance(first, second))


def _gauss_legendre_integral(
    cdf: Callable[[np.ndarray], np.ndarray],
    left: np.ndarray,
    right: np.ndarray,
    height: np.ndarray,
    nodes: np.ndarray,
    weights: np.ndarray,
) -> float:
    """``sum_j ∫_{left_j}^{right_j} |height_j - F(x)| dx`` by Gauss–Legendre, in chunks."""
    total = 0.0
    chunk = max(1, 2**20 // nodes.size)
    for start in range(0, left.size, chunk):
        part = slice(start, start + chunk)
        lo, hi, c = left[part], right[part], height[part]
        half = 0.5 * (hi - lo)
        points = (0.5 * (hi + lo))[:, None] + half[:, None] * nodes[None, :]
        values = np.abs(c[:, None] - cdf(points.reshape(-1)).reshape(points.shape))
        total += float(np.sum(half * (values @ weights)))
    return total


def _crossing_points(
    cdf: Callable[[np.ndarray], np.ndarray],
    left: np.ndarray,
    right: np.ndarray,
    height: np.ndarray,
) -> np.ndarray:
    """Points in ``[left, right]`` where the non-decreasing ``F`` crosses ``height``
    (vectorized bisection to the last representable digit)."""
    lo, hi = left.copy(), right.copy()
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        active = (mid > lo) & (mid < hi)
        if not np.any(active):
            break
        below = cdf(mid) < height
        lo = np.where(below, mid, lo)
        hi = np.where(below, hi, mid)
    return 0.5 * (lo + hi)


def _tail_integral(function: Callable[[float], float], start: float, stop: float) -> float:
    """``∫ function`` over an infinite half line, raising if it does not converge."""
    value, error, _info, *message = integrate.quad(function, start, stop, limit=100, full_output=1)
    if message or not math.isfinite(value) or error > 1e-6 + 1e-6 * abs(value):
        raise ValueError(
            "law's tail integral for W1 did not converge (W1 needs a law with a finite first "
            f"moment): integral {value:.3g} ± {error:.2g}"
        )
    return float(value)


def wasserstein1_to_law(samples: Any, law: Any, *, grid: int = 8) -> float:
    """Wasserstein-1 distance between the empirical law of ``samples`` and a law with a cdf.

    ``W1 = ∫ |F_n(x) - F(x)| dx`` over the real line, computed on the sorted sample
    ``x_(1) <= ... <= x_(n)``:

    - between consecutive order statistics ``F_n = k/n`` is constant; the point where ``F``
      crosses ``k/n`` (if inside) is found by bisection, and ``|k/n - F|`` is integrated on
      each side of it by Gauss–Legendre with ``grid`` nodes (exact up to the smoothness of
      ``F``, not up to a grid spacing);
    - the tails ``∫_{-inf}^{x_(1)} F dx`` and ``∫_{x_(n)}^{inf} (1 - F) dx`` are integrated by
      adaptive quadrature (``scipy.integrate.quad``); a law with an infinite first moment
      raises a ValueError.

    ``law`` is an object with a vectorized ``cdf`` or a callable cdf. Returns a plain float.
    Even for samples drawn from ``law`` it is positive, about ``sqrt(2/(pi n)) ∫ sqrt(F (1-F))``
    on average, so a small value is "small compared with that floor".
    """
    sample = np.sort(_as_sample("samples", samples))
    grid = check_int("grid", grid, minimum=1, maximum=64)
    cdf = _law_cdf(law)
    n = sample.size

    def scalar_cdf(x: float) -> float:
        return float(cdf(np.array([x]))[0])

    lower_tail = _tail_integral(scalar_cdf, -math.inf, float(sample[0]))
    upper_tail = _tail_integral(lambda x: 1.0 - scalar_cdf(x), float(sample[-1]), math.inf)
    if n == 1:
        return lower_tail + upper_tail

    left, right = sample[:-1], sample[1:]
    height = np.arange(1, n, dtype=np.float64) / n
    keep = right > left  # tied order statistics enclose no mass
    left, right, height = left[keep], right[keep], height[keep]
    cdf_left, cdf_right = cdf(left), cdf(right)
    crossing = (cdf_left < height) & (height < cdf_right)
    nodes, weights = np.polynomial.legendre.leggauss(grid)

    middle = _gauss_legendre_integral(
        cdf, left[~crossing], right[~crossing], height[~crossing], nodes, weights
    )
    if np.any(crossing):
        lo, hi, c = left[crossing], right[crossing], height[crossing]
        point = _crossing_points(cdf, lo, hi, c)
        middle += _gauss_legendre_integral(cdf, lo, point, c, nodes, weights)
        middle += _gauss_legendre_integral(cdf, point, hi, c, nodes, weights)
    return lower_tail + middle + upper_tail


# --------------------------------------------------------------------------------------------
# means


def mean_zscore(samples: Any, expected: Any, *, level: float = 1e-3) -> MeanZScore:
    """Two-sided z-test that the mean of ``samples`` equals ``expected``.

    ``mean = sum x_i / n``, ``se = std(x, ddof=1) / sqrt(n)``, ``z = (mean - expected) / se``
    and ``p = 2 (1 - Phi(|z|))``; ``passed = p >= level``.

    With ``expected`` a vector of length ``m``, ``samples`` must have shape ``(n, m)``: one
    z-score per column, and ``passed`` requires every column to pass at the Bonferroni level
    ``level / m`` (the family-wise error rate stays below ``level`` whatever the dependence
    between columns).

    Assumptions: i.i.d. rows with finite variance and n large enough for the central limit
    theorem: the normal p-value is asymptotic and anti-conservative for small n or heavy
    tails (for Gaussian data the exact law of ``z`` is Student t with ``n - 1`` degrees of
    freedom; at n = 30 a nominal 0.001 is really about 0.003). If a column is constant
    (``se = 0``), ``z`` is 0 when the mean equals ``expected`` exactly and ``±inf`` otherwise.
    """
    level = _check_level("level", level)
    target = _to_numpy("expected", expected)
    _check_all_finite("expected", target)
    if target.ndim == 0:
        data = _as_sample("samples", samples, minimum=2)[:, None]
        target = target.reshape(1)
        scalar = True
    elif target.ndim == 1 and target.size >= 1:
        data = _to_numpy("samples", samples)
        if data.ndim != 2 or data.shape[1] != target.size:
            raise ValueError(
                f"samples must have shape (n, {target.size}) to match expected of length "
                f"{target.size}, got shape {data.shape}"
            )
        if data.shape[0] < 2:
            raise ValueError(f"samples needs at least 2 rows, got {data.shape[0]}")
        _check_all_finite("samples", data)
        scalar = False
    else:
        raise ValueError(f"expected must be a number or a 1-D array, got shape {target.shape}")

    n, m = data.shape
    mean = data.mean(axis=0)
    standard_error = data.std(axis=0, ddof=1) / math.sqrt(n)
    difference = mean - target
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(
            standard_error > 0,
            difference / np.where(standard_error > 0, standard_error, 1.0),
            np.where(difference == 0, 0.0, np.sign(difference) * np.inf),
        )
    pvalue = 2.0 * special.ndtr(-np.abs(z))
    passed = bool(np.all(pvalue >= level / m))

    def pack(values: np.ndarray) -> float | np.ndarray:
        return float(values[0]) if scalar else _frozen_array(values)

    return MeanZScore(
        mean=pack(mean),
        expected=pack(target),
        standard_error=pack(standard_error),
        statistic=pack(z),
        pvalue=pack(pvalue),
        level=level,
        n=n,
        passed=passed,
    )


# --------------------------------------------------------------------------------------------
# binomial


def _as_counts(name: str, value: Any, minimum: int) -> np.ndarray:
    array = _to_numpy(name, value)
    if array.size == 0:
        raise ValueError(f"{name} is empty")
    _check_all_finite(name, array)
    if np.any(array != np.round(array)) or np.any(array < minimum):
        raise ValueError(f"{name} must hold integers >= {minimum}, got {value!r:.80}")
    return array


def binomial_interval(
    successes: Any, trials: Any, *, level: float = 0.95, method: str = "wilson"
) -> BinomialInterval:
    """Confidence interval at confidence ``level`` for a success probability ``p``.

    ``estimate = k / n``. ``method``:

    - ``"wilson"`` (score interval): with ``z = Phi^{-1}(1 - (1 - level)/2)``,
      ``(k/n + z^2/(2n) ± z sqrt(k/n (1 - k/n)/n + z^2/(4 n^2))) / (1 + z^2/n)``; coverage close
      to nominal on average, a little below it for some ``p``;
    - ``"clopper-pearson"`` (exact): ``[B(a/2; k, n-k+1), B(1-a/2; k+1, n-k)]`` with ``B`` the
      beta quantile and ``a = 1 - level``, lower end 0 when ``k = 0`` and upper end 1 when
      ``k = n``; coverage is at least ``level`` for every ``p`` (conservative).

    ``successes`` and ``trials`` broadcast against each other (e.g. a collapse count per layer);
    the fields are arrays then, floats for scalar input. Assumes independent trials.
    """
    level = _check_level("level", level)
    method = check_choice("method", method, ("wilson", "clopper-pearson"))
    k = _as_counts("successes", successes, 0)
    n = _as_counts("trials", trials, 1)
    try:
        k, n = np.broadcast_arrays(k, n)
    except ValueError:
        raise ValueError(
            f"successes and trials must have broadcastable shapes, got {k.shape} and {n.shape}"
        ) from None
    if np.any(k > n):
        raise ValueError("successes must be <= trials")
    alpha = 1.0 - level
    estimate = k / n
    if method == "wilson":
        z = float(sps.norm.isf(alpha / 2))
        denominator = 1.0 + z**2 / n
        center = (estimate + z**2 / (2 * n)) / denominator
        half = z / denominator * np.sqrt(estimate * (1 - estimate) / n + z**2 / (4 * n**2))
        low, high = center - half, center + half
    else:
        low = sps.beta.ppf(alpha / 2, np.maximum(k, 1), n - k + 1)
        high = sps.beta.ppf(1 - alpha / 2, k + 1, np.maximum(n - k, 1))
    low = np.where(k == 0, 0.0, np.clip(low, 0.0, 1.0))
    high = np.where(k == n, 1.0, np.clip(high, 0.0, 1.0))

    def pack(values: np.ndarray) -> float | np.ndarray:
        return float(values) if values.ndim == 0 else _frozen_array(values)

    return BinomialInterval(
        estimate=pack(estimate),
        low=pack(low),
        high=pack(high),
        successes=pack(k),
        trials=pack(n),
        level=level,
        method=method,
    )


def binomial_test(
    successes: int, trials: int, probability: float, *, level: float = 1e-3
) -> BinomialTest:
    """Exact two-sided binomial test of ``successes ~ Binomial(trials, probability)``.

    The p-value (``scipy.stats.binomtest``) sums the probabilities of all outcomes no more
    likely than the observed one; ``passed = pvalue >= level``. Assumes independent trials
    with a common success probability.
    """
    trials = check_int("trials", trials, minimum=1)
    successes = check_int("successes", successes, minimum=0, maximum=trials)
    probability = _check_probability("probability", probability)
    level = _check_level("level", level)
    pvalue = float(sps.binomtest(successes, trials, probability).pvalue)
    pvalue = min(1.0, max(0.0, pvalue))
    return BinomialTest(
        statistic=successes / trials,
        pvalue=pvalue,
        level=level,
        successes=successes,
        trials=trials,
        probability=probability,
        passed=pvalue >= level,
    )


# --------------------------------------------------------------------------------------------
# power laws


def _positive_vector(name: str, value: Any) -> np.ndarray:
    array = _as_sample(name, value)
    bad = int(np.count_nonzero(array <= 0))
    if bad:
        raise ValueError(f"{name} must be > 0 for a log-log fit; {bad} value(s) are <= 0")
    return array


def fit_loglog_slope(
    x: Any,
    y: Any,
    *,
    level: float = 0.95,
    expected: float | None = None,
    tolerance: float | None = None,
    weights: Any = None,
) -> SlopeFit:
    """Least-squares fit of ``log y = intercept + slope log x`` (a power law ``y = C x^slope``).

    With ``u = log x``, ``v = log y`` and weights ``w`` (all 1 by default; otherwise
    ``1/sigma^2`` of ``log y``), weighted means ``ū, v̄`` and ``S_uu = sum w (u - ū)^2``:
    ``slope = sum w (u - ū)(v - v̄) / S_uu``, ``intercept = v̄ - slope ū``,
    ``s^2 = sum w r^2 / (n - 2)`` with residuals ``r``, ``se = sqrt(s^2 / S_uu)`` and the
    confidence interval ``slope ± t_{n-2, (1+level)/2} se``.

    The interval is exact when the residuals of ``log y`` are independent Gaussian with variance
    ``sigma^2 / w`` for an unknown ``sigma`` (weights are relative: the scale comes from the
    residuals, so a model that misfits widens the interval instead of shrinking the p-value).
    ``r_squared = 1 - sum w r^2 / sum w (v - v̄)^2``. ``expected`` and ``tolerance`` decide
    ``passed`` as described in :class:`SlopeFit`. Needs ``x, y > 0``, at least 3 points and
    two distinct ``x``.
    """
    log_x = np.log(_positive_vector("x", x))
    log_y = np.log(_positive_vector("y", y))
    if log_x.size != log_y.size:
        raise ValueError(f"x and y must have the same length, got {log_x.size} and {log_y.size}")
    n = log_x.size
    if n < 3:
        raise ValueError(f"x and y need at least 3 points for a slope and its error, got {n}")
    level = _check_level("level", level)
    if weights is None:
        w = np.ones(n)
    else:
        w = _as_sample("weights", weights)
        if w.size != n:
            raise ValueError(f"weights must have the same length as x ({n}), got {w.size}")
        if np.any(w <= 0):
            raise ValueError("weights must be > 0 (they are 1/sigma^2 of log y)")
    if expected is not None:
        expected = check_finite_float("expected", expected)
    if tolerance is not None:
        if expected is None:
            raise ValueError("tolerance needs expected: give the slope it is a tolerance around")
        tolerance = check_finite_float("tolerance", tolerance)
        if tolerance < 0:
            raise ValueError(f"tolerance must be a finite number >= 0, got {tolerance!r}")

    w_sum = float(np.sum(w))
    mean_u = float(np.sum(w * log_x) / w_sum)
    mean_v = float(np.sum(w * log_y) / w_sum)
    du, dv = log_x - mean_u, log_y - mean_v
    s_uu = float(np.sum(w * du**2))
    if s_uu <= 1e-24 * float(np.sum(w * log_x**2)) or s_uu == 0.0:
        raise ValueError("x must contain at least two distinct values")
    slope = float(np.sum(w * du * dv) / s_uu)
    intercept = mean_v - slope * mean_u
    residuals = dv - slope * du
    ss_residual = float(np.sum(w * residuals**2))
    ss_total = float(np.sum(w * dv**2))
    dof = n - 2
    stderr = math.sqrt(ss_residual / dof / s_uu)
    quantile = float(sps.t.isf((1 - level) / 2, dof))
    r_squared = 1.0 - ss_residual / ss_total if ss_total > 0 else 1.0

    tstatistic = pvalue = None
    passed = True
    if expected is not None:
        difference = slope - expected
        if stderr > 0:
            tstatistic = difference / stderr
            pvalue = float(2 * sps.t.sf(abs(tstatistic), dof))
        else:  # noise-free data: the slope is known exactly (use a tolerance for such data)
            tstatistic = 0.0 if difference == 0 else math.copysign(math.inf, difference)
            pvalue = 1.0 if difference == 0 else 0.0
        if tolerance is not None:
            passed = abs(difference) <= tolerance
        else:
            passed = slope - quantile * stderr <= expected <= slope + quantile * stderr
    return SlopeFit(
        slope=slope,
        intercept=intercept,
        slope_stderr=stderr,
        ci_low=slope - quantile * stderr,
        ci_high=slope + quantile * stderr,
        r_squared=r_squared,
        n=n,
        level=level,
        weighted=weights is not None,
        expected=expected,
        tolerance=tolerance,
        tstatistic=tstatistic,
        pvalue=pvalue,
        passed=bool(passed),
    )


# --------------------------------------------------------------------------------------------
# families of tests


def _member_pvalue(name: str, result: Any) -> tuple[float, tuple[float, float]]:
    """The p-value of one family member and an interval known to hold its true value."""
    if isinstance(result, SlopeFit) and result.tolerance is not None:
        raise ValueError(
            f"results[{name}] is judged by a tolerance window, not a p-value; Bonferroni "
            "needs p-values (combine tolerance checks with all())"
        )
    if isinstance(result, MeanZScore | FamilyResult):
        pvalue = result.family_pvalue if isinstance(result, MeanZScore) else result.pvalue
        return pvalue, (pvalue, pvalue)
    pvalue = getattr(result, "pvalue", None)
    if pvalue is None or np.ndim(pvalue) != 0:
        raise ValueError(
            f"results[{name}] has no scalar p-value ({type(result).__name__}); Bonferroni "
            "combines tests with p-values"
        )
    pvalue = float(pvalue)
    bounds = getattr(result, "pvalue_bounds", (pvalue, pvalue))
    return pvalue, (float(bounds[0]), float(bounds[1]))


def bonferroni(results: Iterable[Any] | Mapping[str, Any], *, level: float = 1e-3) -> FamilyResult:
    """Combine ``m`` test results into one verdict with family-wise error rate ``level``.

    Each member is judged at ``level / m``: the family passes when every member has
    ``p >= level / m``, and ``pvalue = min(1, m * min p)``. By the union bound the probability
    that any true null fails is at most ``level``, whatever the dependence between the tests.

    ``results`` is a sequence of results (named by position) or a mapping ``name -> result``.
    Members need a p-value: any result here with one (a vector :class:`MeanZScore` or a nested
    :class:`FamilyResult` enters with its own Bonferroni-adjusted p-value), or any object with
    a float ``pvalue``. A :class:`SlopeFit` judged by a tolerance and results without a
    p-value are refused. A clipped AD p-value that cannot be judged at ``level / m`` (floored at
    0.001 while ``level / m < 0.001``) raises a ValueError: use ``method="ks"`` or ``"cvm"``.
    """
    level = _check_level("level", level)
    if isinstance(results, Mapping):
        names = tuple(str(k) for k in results)
        members = tuple(results.values())
    else:
        members = tuple(results)
        names = tuple(str(i) for i in range(len(members)))
    if not members:
        raise ValueError("results must hold at least one test result, got none")
    m = len(members)
    member_level = level / m
    pvalues, verdicts = [], []
    clipped = False
    for name, result in zip(names, members, strict=True):
        pvalue, (low, high) = _member_pvalue(name, result)
        if low >= member_level:
            verdicts.append(True)
        elif high < member_level:
            verdicts.append(False)
        else:
            raise ValueError(
                f"results[{name}] has a clipped p-value in [{low:g}, {high:g}] that cannot be "
                f"judged at level / m = {member_level:.3g}; use an unclipped test"
            )
        clipped = clipped or low != high
        pvalues.append(pvalue)
    return FamilyResult(
        names=names,
        members=members,
        member_pvalues=tuple(pvalues),
        member_passed=tuple(verdicts),
        level=level,
        member_level=member_level,
        pvalue=min(1.0, m * min(pvalues)),
        passed=all(verdicts),
        note="clipped AD p-values enter by their bounds" if clipped else "",
    )
