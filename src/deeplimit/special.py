"""Special functions that neither torch nor scipy provide on tensors.

* ``dawson(x)``: Dawson's integral ``F(x) = exp(-x^2) * integral_0^x exp(s^2) ds``;
* ``erfi(x)``: the imaginary error function ``erfi(x) = (2/sqrt(pi)) * integral_0^x exp(s^2) ds``
  ``= (2/sqrt(pi)) * exp(x^2) * F(x)``;
* ``erfi_inverse(y)``: its inverse ``E`` (``erfi`` is a strictly increasing bijection of R), the
  function behind the Ornstein-Uhlenbeck activation of Hayou's Prop. 4 (hayou.md §3.3).

All three are vectorized torch functions that work on any device and keep the input dtype.
``erfi_inverse`` is accurate to about 1e-15 relative in float64 for ``|y|`` up to the largest
finite double (tested against mpmath for ``|y|`` up to 1e300).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["dawson", "erfi", "erfi_inverse", "log_erfi"]

_SQRT_PI = math.sqrt(math.pi)
_LOG_TWO_OVER_SQRT_PI = math.log(2.0 / _SQRT_PI)

# Rybicki's exponentially convergent sum (Numerical Recipes §6.10, re-derived here):
#   F(x) = lim_{h->0} pi^{-1/2} sum_{n odd} exp(-(x - n h)^2) / n.
# Shifting by an even multiple n0 of h keeps every term centred: with x' = x - n0 h in [-h, h],
#   F(x) ~= pi^{-1/2} exp(-x'^2) sum_{n odd > 0} exp(-n^2 h^2) [e^n / (n0 + n) + e^-n / (n0 - n)],
# where e = exp(2 x' h), so only two exponentials are needed per point. The discretization
# error is about exp(-(pi / (2h))^2) = 7e-18 for h = 1/4, and the terms with n h > 6.5 are
# below exp(-(6.5 - 0.25)^2) ~ 1e-17 of the leading one.
_RYBICKI_STEP = 0.25
_RYBICKI_ODD = tuple(range(1, 27, 2))
_RYBICKI_WEIGHTS = tuple(math.exp(-((n * _RYBICKI_STEP) ** 2)) for n in _RYBICKI_ODD)
# Below this |x| the shifted sum loses digits to cancellation; the Taylor series
# F(x) = sum_k (-1)^k 2^k x^(2k+1) / (2k+1)!! converges fast there.
_TAYLOR_LIMIT = 0.2
_TAYLOR_TERMS = 12
# Above this |x| the asymptotic series F(x) ~ 1/(2x) (1 + 1/(2x^2) + 3/(4x^4) + 15/(8x^6))
# is exact to double precision and avoids huge shift indices.
_ASYMPTOTIC_LIMIT = 1.0e3


def _dawson_taylor(x: Tensor) -> Tensor:
    x2 = x * x
    # Horner on coefficients c_k = (-2)^k / (2k+1)!!
    coefficients = []
    c = 1.0
    for k in range(_TAYLOR_TERMS):
        coefficients.append(c)
        c *= -2.0 / (2 * k + 3)
    acc = torch.full_like(x, coefficients[-1])
    for c in reversed(coefficients[:-1]):
        acc = acc * x2 + c
    return x * acc


def _dawson_rybicki(ax: Tensor) -> Tensor:
    h = _RYBICKI_STEP
    n0 = 2.0 * torch.round(ax / (2.0 * h))
    shifted = ax - n0 * h
    ratio = torch.exp(2.0 * h * shifted)
    ratio_squared = ratio * ratio
    power = ratio  # e^n for the current odd n
    inverse_power = 1.0 / ratio
    inverse_ratio_squared = inverse_power * inverse_power
    total = torch.zeros_like(ax)
    for n, weight in zip(_RYBICKI_ODD, _RYBICKI_WEIGHTS):
        total = total + weight * (power / (n0 + n) + inverse_power / (n0 - n))
        power = power * ratio_squared
        inverse_power = inverse_power * inverse_ratio_squared
    return torch.exp(-shifted * shifted) * total / _SQRT_PI


def _dawson_asymptotic(ax: Tensor) -> Tensor:
    w = 1.0 / (2.0 * ax * ax)
    return (1.0 + w * (1.0 + w * (3.0 + 15.0 * w))) / (2.0 * ax)


def dawson(x: Tensor) -> Tensor:
    """Dawson's integral ``F(x) = exp(-x^2) int_0^x exp(s^2) ds`` (odd, ``F(x) ~ 1/(2x)``)."""
    x = torch.as_tensor(x)
    if not x.is_floating_point():
        x = x.to(torch.get_default_dtype())
    ax = x.abs()
    small = ax < _TAYLOR_LIMIT
    large = ax > _ASYMPTOTIC_LIMIT
    middle = ~(small | large)
    # Evaluate each branch on a safe argument so that no branch produces inf/nan that
    # torch.where would then have to discard (that would poison gradients and waste work).
    mid_arg = torch.where(middle, ax, torch.ones_like(ax))
    big_arg = torch.where(large, ax, torch.full_like(ax, 2.0 * _ASYMPTOTIC_LIMIT))
    value = torch.where(
        small,
        _dawson_taylor(torch.where(small, ax, torch.zeros_like(ax))),
        torch.where(large, _dawson_asymptotic(big_arg), _dawson_rybicki(mid_arg)),
    )
    value = torch.where(torch.isinf(ax), torch.zeros_like(ax), value)
    return torch.copysign(value, x)


def erfi(x: Tensor) -> Tensor:
    """Imaginary error function ``erfi(x) = -i erf(ix) = (2/sqrt(pi)) exp(x^2) F(x)``."""
    x = torch.as_tensor(x)
    if not x.is_floating_point():
        x = x.to(torch.get_default_dtype())
    return (2.0 / _SQRT_PI) * torch.exp(x * x) * dawson(x)


def log_erfi(x: Tensor) -> Tensor:
    """``log(erfi(x))`` for ``x > 0``, finite where ``erfi`` itself overflows."""
    x = torch.as_tensor(x)
    return _LOG_TWO_OVER_SQRT_PI + x * x + torch.log(dawson(x))


def _initial_bracket(a: Tensor) -> tuple[Tensor, Tensor]:
    """Lower and upper bounds on ``E(a)`` for ``a > 0``.

    ``erfi(u) >= 2u/sqrt(pi)`` gives ``E(a) <= a sqrt(pi)/2``. For ``a >= e``,
    ``erfi(u) >= (exp(u^2) - 1) / (u sqrt(pi))`` (bound ``exp(s^2) >= (s/u) exp(s^2)``
    under the integral) shows ``erfi(sqrt(log a) + 1) >= a``.
    """
    upper_small = a * (_SQRT_PI / 2.0)
    log_a = torch.log(torch.clamp(a, min=math.e))
    upper_large = torch.sqrt(log_a) + 1.0
    upper = torch.where(a >= math.e, torch.minimum(upper_small, upper_large), upper_small)
    return torch.zeros_like(a), upper


def _initial_guess(a: Tensor, upper: Tensor) -> Tensor:
    # Small a: invert erfi(u) = (2/sqrt(pi)) (u + u^3/3 + ...), i.e. u ~ w - w^3/3.
    w = a * (_SQRT_PI / 2.0)
    small_guess = w - w**3 / 3.0
    # Large a: erfi(u) ~ exp(u^2) / (u sqrt(pi)), so u^2 = log(a sqrt(pi)) + log(u).
    base = torch.log(torch.clamp(a, min=2.0) * _SQRT_PI)
    u = torch.sqrt(base)
    for _ in range(2):
        u = torch.sqrt(base + torch.log(u))
    guess = torch.where(a < 1.0, small_guess, u)
    return torch.clamp(guess, min=torch.zeros_like(upper), max=upper)


# E as a function of z = asinh(y) is smooth on [0, asinh(max double)] (E ~ (sqrt(pi)/2) sinh z
# near 0, E ~ sqrt(z) for large z), so a cubic Hermite table in z with the exact slope
# dE/dz = (sqrt(pi)/2) exp(-E^2) cosh z gives E to ~1e-6; one Halley step then reaches full
# precision (cubic convergence), and the rare point that does not is solved from scratch.
_TABLE_NODES = 4096
_TABLE_END = math.asinh(torch.finfo(torch.float64).max)
_TABLES: dict[tuple[str, torch.dtype], tuple[Tensor, Tensor]] = {}


def _hermite_table(device: torch.device, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    key = (str(device), dtype)
    if key not in _TABLES:
        z = torch.linspace(0.0, _TABLE_END, _TABLE_NODES, dtype=torch.float64)
        values = torch.zeros_like(z)
        values[1:] = _solve_log_erfi(torch.sinh(z[1:]), 100)
        log_cosh = z + torch.log1p(torch.exp(-2.0 * z)) - math.log(2.0)  # no overflow
        slopes = (_SQRT_PI / 2.0) * torch.exp(log_cosh - values * values)
        _TABLES[key] = (values.to(device, dtype), slopes.to(device, dtype))
    return _TABLES[key]


def _table_guess(a: Tensor) -> Tensor:
    values, slopes = _hermite_table(a.device, a.dtype)
    step = _TABLE_END / (_TABLE_NODES - 1)
    position = torch.asinh(a) / step
    index = torch.clamp(position.floor(), max=_TABLE_NODES - 2).long()
    t = position - index
    t2 = t * t
    t3 = t2 * t
    return (
        (2 * t3 - 3 * t2 + 1) * values[index]
        + (t3 - 2 * t2 + t) * step * slopes[index]
        + (3 * t2 - 2 * t3) * values[index + 1]
        + (t3 - t2) * step * slopes[index + 1]
    )


def erfi_inverse(y: Tensor, *, max_iter: int = 100) -> Tensor:
    """Inverse of the imaginary error function, ``E(y)`` with ``erfi(E(y)) = y``.

    A cubic Hermite table in ``asinh |y|`` gives ``E`` to about 1e-6; one Halley step on
    ``h(u) = log erfi(u) - log |y|`` (``h' = 1 / F(u)``, ``h'' = -(1 - 2u F(u)) / F(u)^2``,
    ``F`` Dawson's integral) then reaches full precision. Points where that step is not already
    at rounding level fall back to a safeguarded iteration: Halley steps kept inside a bracket
    that shrinks at every iterate, with bisection whenever a step leaves it. Working in log
    space keeps the residual finite for ``|y|`` up to the largest double.
    ``E(0) = 0``, ``E(+-inf) = +-inf``, and NaN stays NaN.
    """
    y = torch.as_tensor(y)
    if not y.is_floating_point():
        y = y.to(torch.get_default_dtype())
    a = y.abs()
    positive = (a > 0) & torch.isfinite(a)
    a_safe = torch.where(positive, a, torch.ones_like(a))
    guess = _table_guess(a_safe)
    u, _, _ = _halley_step(guess, a_safe, torch.log(a_safe))
    # The table is good to 1e-5 relative; a larger first step means the table did not apply
    # (it cannot happen for finite input, but a wrong answer must never pass silently).
    unsettled = positive & ~((u - guess).abs() <= 1e-4 * u)
    if bool(unsettled.any()):
        index = torch.nonzero(unsettled.reshape(-1)).squeeze(1)
        flat = u.reshape(-1).clone()
        flat[index] = _solve_log_erfi(a.reshape(-1)[index], max_iter)
        u = flat.reshape(u.shape)
    result = torch.where(positive, u, torch.zeros_like(u))
    result = torch.where(torch.isinf(a), torch.full_like(a, math.inf), result)
    result = torch.where(torch.isnan(a), a, result)
    return torch.copysign(result, y)


def _halley_step(u: Tensor, a: Tensor, log_a: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """One Halley step towards ``erfi(u) = a``: ``(proposal, residual, noise)``.

    For ``a > 1`` the residual is ``h = log erfi(u) - log a`` (``h' = 1/F``,
    ``h'' = -(1 - 2uF)/F^2``), which stays finite up to the largest double. For ``a <= 1`` it is
    ``g = erfi(u) - a`` (``g' = (2/sqrt(pi)) e^{u^2}``, ``g'' = 2u g'``), whose rounding error is
    relative to ``u`` even for tiny ``a``, where ``log a`` would cost digits. ``noise`` is the
    size of a step that rounding alone can cause: smaller steps mean convergence.
    """
    eps = torch.finfo(u.dtype).eps
    f = dawson(u)
    small = a <= 1.0
    log_residual = _LOG_TWO_OVER_SQRT_PI + u * u + torch.log(f) - log_a
    log_step = f * log_residual / (1.0 + 0.5 * log_residual * (1.0 - 2.0 * u * f))
    u_small = torch.where(small, u, torch.zeros_like(u))
    ratio = f - a * (_SQRT_PI / 2.0) * torch.exp(-u_small * u_small)  # g / g'
    linear_step = ratio / (1.0 - u * ratio)
    residual = torch.where(small, ratio, log_residual)
    step = torch.where(small, linear_step, log_step)
    noise = 4.0 * eps * (u + torch.where(small, torch.zeros_like(u), f * (log_a.abs() + u * u + 1)))
    return u - step, residual, noise


def _solve_log_erfi(a: Tensor, max_iter: int) -> Tensor:
    """Safeguarded Halley iteration for ``erfi(u) = a`` with ``a > 0`` finite (flat tensor)."""
    lower, upper = _initial_bracket(a)
    u = _initial_guess(a, upper)
    u = torch.where(u > 0, u, 0.5 * upper)
    log_a = torch.log(a)
    solution = u.clone()
    active = torch.arange(a.numel(), device=a.device)
    for _ in range(max_iter):
        proposal, residual, noise = _halley_step(u, a, log_a)
        upper = torch.where(residual > 0, u, upper)
        lower = torch.where(residual < 0, u, lower)
        outside = (proposal < lower) | (proposal > upper)
        proposal = torch.where(outside, 0.5 * (lower + upper), proposal)
        done = ((proposal - u).abs() <= noise) | (upper - lower <= noise)
        solution[active] = proposal
        keep = ~done
        if not bool(keep.any()):
            break
        active, u, lower, upper, a, log_a = (
            active[keep],
            proposal[keep],
            lower[keep],
            upper[keep],
            a[keep],
            log_a[keep],
        )
    return solution
