"""Claims built from the result of a check, so that what a claim states and its verdict agree.

A :class:`Claim` is one row of a claims report: statement, statistic, measured value, expected
value, tolerance, sample size and verdict. Built by hand, the ``expected`` and ``tolerance``
strings and the ``passed`` flag are three separate computations that can drift apart. The
constructors here take the *result object* of the check and read all of them from it:

- :meth:`Claim.from_test` — a test with a p-value (``stats.ks_test``, ``binomial_test``,
  ``two_sample_test``, ``mean_zscore``, or :func:`pvalue_test` for a p-value computed elsewhere):
  measured = p-value, expected ``>= level`` (or ``< level`` with ``reject=True``, for a claim
  that the data must *contradict* the law);
- :meth:`Claim.family` — several tests combined by ``stats.bonferroni``: measured = the smallest
  p-value, expected ``>= level/m`` (or every member rejected, with ``reject=True``);
- :meth:`Claim.slope` — a log-log slope (``stats.fit_loglog_slope`` with ``expected`` and
  ``tolerance``) on the finite points of ``x, y``;
- :meth:`Claim.bound` — a measured value against a bound (:func:`bound`): ``<=``, ``<``, ``>=``,
  ``>``, or ``==`` within an absolute or relative tolerance.

Every constructor takes ``requires``: further named checks (results, or plain booleans for exact
facts such as "no NaN") that must also pass; they are listed in the tolerance column. The claim
keeps the combined result in ``claim.result`` and refuses (``ValueError``) a ``passed`` flag
that differs from the result's verdict, so a claim built from a failing check cannot say PASS.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np

__all__ = [
    "AllOf",
    "Bound",
    "Claim",
    "NoFit",
    "PValueTest",
    "Rejected",
    "bound",
    "pvalue_test",
]

RELATIONS = ("<=", "<", ">=", ">", "==", "in")


# --------------------------------------------------------------------------------------------
# results that stats.py does not have: a bound, a p-value computed elsewhere, combinations


@dataclass(frozen=True)
class Bound:
    """``value`` checked against ``limit`` by ``relation``; for ``"=="``, ``|value - limit| <=
    tolerance`` (times ``|limit|`` when ``relative``); for ``"in"``, ``limit <= value <=
    upper``. A NaN value never passes."""

    value: float
    relation: str
    limit: float
    tolerance: float = 0.0
    relative: bool = False
    n: int = 0
    fmt: str = "g"
    upper: float = math.inf

    def __post_init__(self) -> None:
        if self.relation not in RELATIONS:
            raise ValueError(
                f"relation must be one of {', '.join(RELATIONS)}, got {self.relation!r}"
            )
        if self.tolerance < 0 or not math.isfinite(self.tolerance):
            raise ValueError(f"tolerance must be a finite number >= 0, got {self.tolerance!r}")

    @property
    def passed(self) -> bool:
        value, limit = float(self.value), float(self.limit)
        if math.isnan(value):
            return False
        if self.relation == "==":
            allowed = self.tolerance * (abs(limit) if self.relative else 1.0)
            return abs(value - limit) <= allowed
        if self.relation == "in":
            return limit <= value <= self.upper
        return {
            "<=": value <= limit,
            "<": value < limit,
            ">=": value >= limit,
            ">": value > limit,
        }[self.relation]

    @property
    def expected(self) -> str:
        limit = format(float(self.limit), self.fmt)
        if self.relation == "in":
            return f"in [{limit}, {format(float(self.upper), self.fmt)}]"
        return limit if self.relation == "==" else f"{self.relation} {limit}"

    @property
    def tolerance_text(self) -> str:
        if self.relation != "==":
            return "bound"
        if self.tolerance == 0:
            return "exact"
        return f"{'relative ' if self.relative else '±'}{self.tolerance:g}"


def bound(
    value: Any,
    *,
    at_most: float | None = None,
    below: float | None = None,
    at_least: float | None = None,
    above: float | None = None,
    equals: float | None = None,
    within: tuple[float, float] | None = None,
    tolerance: float = 0.0,
    relative: bool = False,
    n: int = 0,
    fmt: str = "g",
) -> Bound:
    """A :class:`Bound` on ``value``: exactly one of ``at_most`` (<=), ``below`` (<),
    ``at_least`` (>=), ``above`` (>), ``equals`` (== within ``tolerance``) or ``within``
    (a closed interval ``(low, high)``)."""
    given = {
        "<=": at_most,
        "<": below,
        ">=": at_least,
        ">": above,
        "==": equals,
        "in": None if within is None else within[0],
    }
    chosen = [(relation, limit) for relation, limit in given.items() if limit is not None]
    if len(chosen) != 1:
        raise ValueError(
            f"bound takes exactly one of at_most, below, at_least, above, equals; got {len(chosen)}"
        )
    relation, limit = chosen[0]
    upper = math.inf if within is None else float(within[1])
    return Bound(
        float(value), relation, float(limit), float(tolerance), relative, int(n), fmt, upper
    )


@dataclass(frozen=True)
class PValueTest:
    """A test whose p-value was computed elsewhere (e.g. stored in a dataset): ``passed`` is
    ``pvalue >= level``. ``test`` names it ("KS", "exact binomial", ...), ``statistic`` is its
    statistic (``None`` if not worth showing)."""

    pvalue: float
    level: float
    n: int
    test: str = ""
    statistic: float | None = None
    symbol: str = "D"

    @property
    def passed(self) -> bool:
        return bool(self.pvalue >= self.level)


def pvalue_test(
    pvalue: float,
    *,
    level: float,
    n: int,
    test: str = "",
    statistic: float | None = None,
    symbol: str = "D",
) -> PValueTest:
    """A :class:`PValueTest` (the verdict is computed here, from ``pvalue`` and ``level``)."""
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be a number in the open interval (0, 1), got {level!r}")
    return PValueTest(float(pvalue), float(level), int(n), test, statistic, symbol)


@dataclass(frozen=True)
class Rejected:
    """A claim that the data contradict a law: passes when ``result`` fails (every member fails
    at its Bonferroni level, for a family)."""

    result: Any

    @property
    def passed(self) -> bool:
        member_passed = getattr(self.result, "member_passed", None)
        if member_passed is not None:
            return not any(member_passed)
        return not self.result.passed


@dataclass(frozen=True)
class NoFit:
    """A slope that could not be fitted (fewer than 3 finite points): never passes."""

    n: int
    expected: float
    tolerance: float
    passed: bool = False


@dataclass(frozen=True)
class AllOf:
    """``main`` and every named requirement must pass (a requirement is a result or a bool)."""

    main: Any
    requires: tuple[tuple[str, Any], ...] = ()

    @property
    def passed(self) -> bool:
        return bool(self.main.passed) and all(ok for _, ok in self.checks())

    def checks(self) -> list[tuple[str, bool]]:
        return [(name, bool(getattr(check, "passed", check))) for name, check in self.requires]

    def text(self) -> str:
        """``"; name: ok"`` per requirement, for the tolerance column."""
        return "".join(f"; {name}: {'ok' if ok else 'FAILED'}" for name, ok in self.checks())


# --------------------------------------------------------------------------------------------
# the claim


def _test_name(result: Any) -> str:
    """The test's name for the report ("KS", "exact binomial", ...; "" if unnamed)."""
    if isinstance(result, PValueTest):
        return result.test
    name = getattr(result, "test", None)
    if name:
        return str(name)
    kind = type(result).__name__
    return {
        "BinomialTest": "exact binomial",
        "MeanZScore": "z-test",
        "FamilyResult": "Bonferroni",
    }.get(kind, kind)


def _n(result: Any) -> int:
    n = getattr(result, "n", None)
    if isinstance(n, tuple):  # two-sample tests
        return int(min(n))
    return int(n) if n is not None else 0


def _finite_points(x: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    keep = np.isfinite(y) & (y > 0)
    return x[keep], y[keep]


def _requirements(requires: Mapping[str, Any] | None) -> tuple[tuple[str, Any], ...]:
    return tuple((requires or {}).items())


@dataclass(frozen=True)
class Claim:
    """One checkable statement with its measured value and verdict.

    Build claims with the constructors (:meth:`from_test`, :meth:`family`, :meth:`slope`,
    :meth:`bound`): they read every column from the check's result, kept in ``result``. A claim
    built directly may omit ``result``; when it is given, ``passed`` must equal its verdict.
    """

    id: str
    statement: str
    statistic: str
    measured: float
    expected: str
    tolerance: str
    n: int
    passed: bool
    details: dict[str, Any] = field(default_factory=dict)
    result: Any = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.result is not None and bool(self.passed) != bool(self.result.passed):
            raise ValueError(
                f"claim {self.id}: passed={self.passed} disagrees with its result's verdict "
                f"({self.result.passed}); build the claim from the result"
            )

    @property
    def verdict(self) -> str:
        return "PASS" if self.passed else "FAIL"

    def as_dict(self) -> dict[str, Any]:
        record = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "result"}
        record["details"] = dict(self.details)
        record["verdict"] = self.verdict
        return record

    # ----------------------------------------------------------------------------------------
    # constructors

    @classmethod
    def _make(
        cls,
        claim_id: str,
        statement: str,
        statistic: str,
        measured: float,
        expected: str,
        tolerance: str,
        n: int,
        result: Any,
        requires: Mapping[str, Any] | None,
        details: Mapping[str, Any] | None,
    ) -> Claim:
        combined = AllOf(result, _requirements(requires))
        return cls(
            id=claim_id,
            statement=statement,
            statistic=statistic,
            measured=float(measured),
            expected=expected,
            tolerance=tolerance + combined.text(),
            n=int(n),
            passed=combined.passed,
            details=dict(details or {}),
            result=combined,
        )

    @classmethod
    def from_test(
        cls,
        claim_id: str,
        statement: str,
        result: Any,
        *,
        reject: bool = False,
        statistic: str | None = None,
        note: str = "",
        requires: Mapping[str, Any] | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> Claim:
        """A claim checked by one test with a p-value (``result.pvalue``, ``.level``, ``.n``,
        ``.passed``). ``reject=True``: the claim is that the data contradict the law, so it
        passes when the test fails. ``statistic`` names the p-value; ``note`` is appended to
        the tolerance column after the test's statistic."""
        name = _test_name(result) or "test"
        level = float(result.level)
        pvalue = float(result.family_pvalue if hasattr(result, "family_pvalue") else result.pvalue)
        shown = getattr(result, "statistic", None)
        tolerance = name
        if isinstance(shown, float | int) and not isinstance(result, PValueTest | type(None)):
            tolerance = f"{name} statistic = {float(shown):.4g}"
        if isinstance(result, PValueTest) and result.statistic is not None:
            tolerance = f"{name} {result.symbol} = {result.statistic:.4f}"
        if note:
            tolerance = f"{tolerance} ({note})"
        return cls._make(
            claim_id,
            statement,
            statistic or f"{name} p-value",
            pvalue,
            f"{'<' if reject else '>='} {level:g}",
            tolerance,
            _n(result),
            Rejected(result) if reject else result,
            requires,
            details,
        )

    @classmethod
    def family(
        cls,
        claim_id: str,
        statement: str,
        results: Mapping[str, Any],
        *,
        level: float,
        what: str = "tests",
        test: str | None = None,
        reject: bool = False,
        statistic: str | None = None,
        requires: Mapping[str, Any] | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> Claim:
        """A claim checked by several tests at once, combined by ``stats.bonferroni`` at
        family-wise ``level`` (each member at ``level / m``). ``results`` maps a label
        (``"L = 8"``) to a result with a p-value. Measured: the smallest p-value (the largest
        with ``reject=True``, where every member must be significant); n: its member's n."""
        from ..stats import bonferroni

        family = bonferroni(dict(results), level=level)
        pvalues = family.member_pvalues
        index = int(np.argmax(pvalues) if reject else np.argmin(pvalues))
        member = family.members[index]
        name = test or _test_name(member)
        label = family.names[index]
        which = "largest" if reject else "smallest"
        default = f"{which} {name + ' ' if name else ''}p-value ({label})"
        relation = "<" if reject else ">="
        return cls._make(
            claim_id,
            statement,
            statistic or default,
            pvalues[index],
            f"{relation} {family.member_level:.2g} (Bonferroni, level {level:g})",
            f"{name + ', ' if name else ''}Bonferroni over {family.m} {what}",
            _n(member),
            Rejected(family) if reject else family,
            requires,
            {**(details or {}), "worst": label},
        )

    @classmethod
    def slope(
        cls,
        claim_id: str,
        statement: str,
        x: Any,
        y: Any,
        *,
        expected: float,
        tolerance: float,
        what: str,
        note: str = "",
        requires: Mapping[str, Any] | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> Claim:
        """A log-log slope claim: ``stats.fit_loglog_slope`` on the points of ``(x, y)`` with a
        finite ``y > 0`` (points left out are counted in the statement); PASS iff
        ``|slope - expected| <= tolerance``. Fewer than 3 such points: no fit, FAIL."""
        from ..stats import fit_loglog_slope

        kept_x, kept_y = _finite_points(x, y)
        dropped = int(np.size(y)) - kept_x.size
        suffix = f" ({dropped} point(s) without a finite value left out)" if dropped else ""
        statement = statement + suffix + note
        if kept_x.size < 3:
            result: Any = NoFit(int(kept_x.size), expected, tolerance)
            return cls._make(
                claim_id,
                statement,
                f"log-log slope of {what}",
                math.nan,
                f"{expected:+g}",
                f"±{tolerance:g}; fewer than 3 finite points, no fit",
                kept_x.size,
                result,
                requires,
                details,
            )
        fit = fit_loglog_slope(kept_x, kept_y, expected=expected, tolerance=tolerance)
        return cls.from_slope(
            claim_id,
            statement,
            fit,
            what=what,
            requires=requires,
            details={"x": kept_x.tolist(), "y": kept_y.tolist(), **(details or {})},
        )

    @classmethod
    def from_slope(
        cls,
        claim_id: str,
        statement: str,
        fit: Any,
        *,
        what: str,
        requires: Mapping[str, Any] | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> Claim:
        """A claim on a ``stats.SlopeFit`` made with ``expected`` and ``tolerance``."""
        if fit.expected is None or fit.tolerance is None:
            raise ValueError("fit must be made with expected and tolerance to back a claim")
        return cls._make(
            claim_id,
            statement,
            f"log-log slope of {what}",
            fit.slope,
            f"{fit.expected:+g}",
            f"±{fit.tolerance:g}; {fit.level * 100:g}% CI [{fit.ci_low:+.3f}, "
            f"{fit.ci_high:+.3f}], r²={fit.r_squared:.3f}",
            fit.n,
            fit,
            requires,
            {
                "ci_low": fit.ci_low,
                "ci_high": fit.ci_high,
                "stderr": fit.slope_stderr,
                "prefactor": fit.prefactor,
                **(details or {}),
            },
        )

    @classmethod
    def bound(
        cls,
        claim_id: str,
        statement: str,
        check: Bound,
        *,
        statistic: str,
        n: int | None = None,
        note: str = "",
        requires: Mapping[str, Any] | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> Claim:
        """A claim that a measured value satisfies a :class:`Bound` (see :func:`bound`);
        ``note`` says where the bound comes from and is appended to the tolerance column."""
        tolerance = check.tolerance_text
        if note:
            tolerance = note if tolerance == "bound" else f"{tolerance}; {note}"
        return cls._make(
            claim_id,
            statement,
            statistic,
            check.value,
            check.expected,
            tolerance,
            check.n if n is None else n,
            check,
            requires,
            details,
        )
