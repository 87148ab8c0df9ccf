"""Global fits of error laws over (L, M, D) grids (chizat.md §4.2–§4.3, C10, C11).

``fit_global_law``: the authors' fit with fixed exponents, ``error^2 = sum_i c_i phi_i(L, M,
D)`` with ``c_i >= 0`` (their ``curve_fit(..., bounds=(0, inf))``), e.g. ``a D/(ML) + b/D +
c/L^2`` (embedding) or ``a (D/(ML))^2 + b/D`` (output); constants with 95% CIs.

``fit_free_law``: the same with free exponents, ``error^2 = a (D/(LM))^(2 gamma) + b D^(-2 delta)
[+ c L^-2]``, whose minimum over shapes at a fixed budget ``P = LMD`` decays like ``P^-e``,
``e = 2 gamma delta / (4 gamma + 2 delta)`` (the 1/L term is negligible along the optimal
shape); ``e`` with a 95% CI (delta method) and the Wald statistic of given exponents
``(gamma_0, delta_0)`` (chi-square with 2 degrees of freedom: the data *cannot separate* the
exponents when the CI of ``e`` is wider than the tolerance, or ``gamma`` and ``delta`` are
almost collinear).

Residuals: ``"log"`` (relative, the default: the errors span decades) or ``"absolute"``
(the authors' ``curve_fit`` on the error itself).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import scipy.stats as sps
from scipy.optimize import least_squares

from ..errors import check_choice
from .claims import Claim, bound

__all__ = ["TERMS", "fit_free_law", "fit_global_law"]

Term = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]

TERMS: dict[str, Term] = {
    "D/(LM)": lambda depth, width, dim: dim / (depth * width),
    "(D/(LM))^2": lambda depth, width, dim: (dim / (depth * width)) ** 2,
    "1/(LM)": lambda depth, width, dim: 1.0 / (depth * width),
    "1/D": lambda depth, width, dim: 1.0 / dim,
    "1/L^2": lambda depth, width, dim: 1.0 / depth**2,
}


def _arrays(depth: Any, width: Any, dim: Any, error: Any) -> tuple[np.ndarray, ...]:
    arrays = [np.asarray(a, dtype=float).ravel() for a in (depth, width, dim, error)]
    if len({a.size for a in arrays}) != 1:
        raise ValueError("depth, width, dim and error must have the same number of points")
    keep = np.isfinite(arrays[3]) & (arrays[3] > 0)
    return tuple(a[keep] for a in arrays)


def _covariance(solution: Any, dof: int) -> tuple[np.ndarray, float]:
    sigma2 = float(solution.fun @ solution.fun) / max(dof, 1)
    jacobian = solution.jac
    try:
        covariance = np.linalg.pinv(jacobian.T @ jacobian) * sigma2
    except np.linalg.LinAlgError:
        covariance = np.full((jacobian.shape[1],) * 2, np.nan)
    return covariance, sigma2


def fit_global_law(
    depth: Any,
    width: Any,
    dim: Any,
    error: Any,
    terms: Sequence[str] = ("D/(LM)", "1/D", "1/L^2"),
    *,
    residuals: str = "log",
) -> dict[str, Any]:
    """``error^2 = sum_i c_i TERMS[terms[i]](L, M, D)``, ``c_i >= 0``; returns ``constants``
    (name -> value), ``stderr``, ``ci_low``/``ci_high`` (95%, Student t), ``rms_residual``,
    ``points``. Non-finite or non-positive errors are left out."""
    check_choice("residuals", residuals, ("log", "absolute"))
    unknown = [t for t in terms if t not in TERMS]
    if unknown or not terms:
        raise ValueError(f"terms must be names from {', '.join(TERMS)}, got {list(terms)}")
    depth, width, dim, error = _arrays(depth, width, dim, error)
    if error.size <= len(terms):
        raise ValueError(
            f"the fit needs more finite points than constants ({len(terms)}), got {error.size}"
        )
    basis = np.stack([TERMS[t](depth, width, dim) for t in terms], axis=1)
    # start: non-negative least squares on error^2 (scaled columns)
    scale = basis.max(0)
    start, _ = _nnls(basis / scale, error**2)
    start = np.maximum(start / scale, 1e-12 * (error**2).mean() / scale)

    def model(c: np.ndarray) -> np.ndarray:
        return np.sqrt(np.maximum(basis @ c, 1e-300))

    def fun(c: np.ndarray) -> np.ndarray:
        if residuals == "log":
            return np.log(model(c)) - np.log(error)
        return model(c) - error

    solution = least_squares(fun, start, bounds=(0.0, np.inf), x_scale=start)
    dof = error.size - len(terms)
    covariance, sigma2 = _covariance(solution, dof)
    stderr = np.sqrt(np.clip(np.diag(covariance), 0.0, None))
    half = float(sps.t.isf(0.025, max(dof, 1))) * stderr
    values = solution.x
    return {
        "terms": list(terms),
        "constants": dict(zip(terms, values.tolist(), strict=True)),
        "stderr": dict(zip(terms, stderr.tolist(), strict=True)),
        "ci_low": dict(zip(terms, (values - half).tolist(), strict=True)),
        "ci_high": dict(zip(terms, (values + half).tolist(), strict=True)),
        "rms_residual": math.sqrt(sigma2),
        "residuals": residuals,
        "points": int(error.size),
    }


def _nnls(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, float]:
    from scipy.optimize import nnls

    return nnls(a, b)


def evaluate_law(fit: dict[str, Any], depth: Any, width: Any, dim: Any) -> np.ndarray:
    """The fitted error ``sqrt(sum_i c_i phi_i)`` of ``fit_global_law`` at given shapes."""
    depth, width, dim = (np.asarray(a, dtype=float) for a in (depth, width, dim))
    total = sum(c * TERMS[t](depth, width, dim) for t, c in fit["constants"].items())
    return np.sqrt(total)


def fit_free_law(
    depth: Any,
    width: Any,
    dim: Any,
    error: Any,
    *,
    depth_term: bool = True,
    expected: tuple[float, float] = (0.5, 0.5),
    residuals: str = "log",
) -> dict[str, Any]:
    """``error^2 = a (D/(LM))^(2 gamma) + b D^(-2 delta) [+ c / L^2]`` with free ``gamma,
    delta``; returns the parameters with standard errors, the budget exponent ``exponent``
    (``e``) with ``ci_low``/``ci_high``, the Wald statistic ``wald`` of ``(gamma, delta) =
    expected`` and its p-value (chi-square, 2 dof), and ``correlation`` of gamma and delta."""
    check_choice("residuals", residuals, ("log", "absolute"))
    depth, width, dim, error = _arrays(depth, width, dim, error)
    n_params = 5 if depth_term else 4
    if error.size <= n_params:
        raise ValueError(
            f"the fit needs more finite points than parameters ({n_params}), got {error.size}"
        )
    ratio = dim / (depth * width)

    def model(p: np.ndarray) -> np.ndarray:
        total = p[0] * ratio ** (2 * p[1]) + p[2] * dim ** (-2 * p[3])
        if depth_term:
            total = total + p[4] / depth**2
        return np.sqrt(np.maximum(total, 1e-300))

    def fun(p: np.ndarray) -> np.ndarray:
        if residuals == "log":
            return np.log(model(p)) - np.log(error)
        return model(p) - error

    mean_sq = float((error**2).mean())
    start = np.array([mean_sq, expected[0], mean_sq, expected[1], 0.0][:n_params])
    if depth_term:
        start[4] = 1e-3 * mean_sq
    lower = [0.0, 0.0, 0.0, 0.0, 0.0][:n_params]
    upper = [np.inf, 4.0, np.inf, 4.0, np.inf][:n_params]
    solution = least_squares(fun, start, bounds=(lower, upper))
    dof = error.size - n_params
    covariance, sigma2 = _covariance(solution, dof)
    gamma, delta = float(solution.x[1]), float(solution.x[3])
    denominator = 4 * gamma + 2 * delta
    exponent = 2 * gamma * delta / denominator if denominator > 0 else math.nan
    gradient = np.array(
        [
            (2 * delta * denominator - 8 * gamma * delta) / denominator**2,
            (2 * gamma * denominator - 4 * gamma * delta) / denominator**2,
        ]
    )
    sub = covariance[np.ix_([1, 3], [1, 3])]
    finite = bool(np.all(np.isfinite(sub)))
    stderr = math.sqrt(max(float(gradient @ sub @ gradient), 0.0)) if finite else math.nan
    half = float(sps.t.isf(0.025, max(dof, 1))) * stderr
    diff = np.array([gamma - expected[0], delta - expected[1]])
    try:
        wald = float(diff @ np.linalg.solve(sub, diff)) if finite else math.nan
    except np.linalg.LinAlgError:
        wald = math.nan
    se = np.sqrt(np.clip(np.diag(covariance), 0.0, None))
    correlation = (
        float(sub[0, 1] / math.sqrt(sub[0, 0] * sub[1, 1]))
        if finite and sub[0, 0] > 0 and sub[1, 1] > 0
        else math.nan
    )
    return {
        "a": float(solution.x[0]),
        "gamma": gamma,
        "gamma_se": float(se[1]),
        "b": float(solution.x[2]),
        "delta": delta,
        "delta_se": float(se[3]),
        "c": float(solution.x[4]) if depth_term else 0.0,
        "exponent": exponent,
        "exponent_se": stderr,
        "ci_low": exponent - half,
        "ci_high": exponent + half,
        "wald": wald,
        "wald_pvalue": float(sps.chi2.sf(wald, 2)) if math.isfinite(wald) else math.nan,
        "correlation": correlation,
        "expected_exponents": list(expected),
        "rms_residual": math.sqrt(sigma2),
        "points": int(error.size),
    }


def separation_note(fit: dict[str, Any], tolerance: float) -> str:
    """Where the data cannot separate the exponents (empty when they can)."""
    reasons = []
    half = 0.5 * (fit["ci_high"] - fit["ci_low"])
    if not math.isfinite(half) or half > tolerance:
        reasons.append(f"the 95% CI of e (±{half:.3f}) is wider than the tolerance ±{tolerance:g}")
    if math.isfinite(fit["correlation"]) and abs(fit["correlation"]) > 0.95:
        reasons.append(
            f"gamma and delta are almost collinear (correlation {fit['correlation']:+.3f})"
        )
    if not reasons:
        return ""
    return " The data cannot separate the exponents: " + "; ".join(reasons) + "."


def budget_exponent_claim(
    claim_id: str,
    head: str,
    free: dict[str, Any],
    *,
    expected: float,
    tolerance: float,
    depth_term: bool,
    note: str,
    details: dict[str, Any],
) -> Claim:
    """The claim that the budget exponent of the free-exponent law ``free`` equals
    ``expected`` +- ``tolerance``: ``head``, then the fitted law (with its ``c/L²`` term when
    ``depth_term``) and the Wald test of the theory's exponents, then where the data cannot
    separate them, then ``note``."""
    gamma0, delta0 = free["expected_exponents"]
    law = (
        f"free fit err² = {free['a']:.3g} (D/(LM))^(2x{free['gamma']:.3f}±{free['gamma_se']:.3f})"
        f" + {free['b']:.3g} D^(-2x{free['delta']:.3f}±{free['delta_se']:.3f})"
        + (f" + {free['c']:.3g}/L²" if depth_term else "")
        + f" on {free['points']} points; Wald test of (gamma, delta) = ({gamma0:g}, {delta0:g}): "
        f"chi2 = {free['wald']:.2f}, p = {free['wald_pvalue']:.3g}."
    )
    return Claim.bound(
        claim_id,
        head + law + separation_note(free, tolerance) + note,
        bound(free["exponent"], equals=expected, tolerance=tolerance, n=free["points"], fmt=".4f"),
        statistic="budget exponent e = 2 gamma delta/(4 gamma + 2 delta) of the free-exponent "
        "law (error ∝ P^-e along the best shape); the Wald test of the theory's (gamma, delta) "
        "is in the statement",
        note=f"chizat.md §6; 95% CI of e [{free['ci_low']:.3f}, {free['ci_high']:.3f}]",
        details=details,
    )
