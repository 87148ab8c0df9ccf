"""Gaussian expectations ``E f(sqrt(q) Z)`` and ``E[phi(U) phi(V)]`` accurate at every variance.

Why not Gauss-Hermite: a fixed Hermite rule treats ``phi(sqrt(q) z)`` as polynomial-like in
``z``, but an activation bends at ``|x| ~ 1`` (tanh saturates, softplus_m turns at ``1/m``), i.e.
at ``|z| ~ 1/sqrt(q)``: between the nodes once ``q`` is large. 200 Hermite nodes are off by
1.8e-2 for ``E tanh(10 Z)^2``.

The rule here cuts the ``z`` axis at breakpoints for both scales and integrates each panel,
Gaussian density included, by an ``n = 16`` point Gauss-Legendre rule:

* Gaussian scale: panels ``[2k, 2k + 2]`` for ``|z| <= 10`` (beyond 10 the density is 7.7e-23;
  the tail of an integrand growing like ``|z|^6`` or slower is below 1e-17 relative);
* activation scale: edges at ``+-2, +-1/2, +-1/8, ..., +-2^(1 - 2J)``, a geometric grading by
  4 down to the first edge with ``2^(1 - 2J) sqrt(q) <= s/2``, where ``s`` is the activation's
  own length scale (1 for tanh, gelu, silu; ``1/m`` for softplus_m; ``1/beta`` for ou).

Error bound. The library activations are analytic off the imaginary axis (tanh: poles at
``i pi (k + 1/2)``; silu and softplus_m: singularities at ``i pi (2k + 1)`` and
``i pi (2k + 1)/m``; ou: branch points at ``+-i t/beta``, ``t >= 1``; gelu: entire, though
its growth ``exp(y^2/2)`` off the axis costs a factor ~20 on panels near ``|x| ~ 2``). On a panel
``[c, 4c]`` (or a piece of one) every point of the imaginary axis lies at normalized
coordinate ``-5/3 + i y`` or farther, so the integrand is analytic inside the Bernstein ellipse
``rho = 3`` and the ``n``-point rule's error is ``O(rho^(-2n)) = 5e-16`` relative to the
panel's largest value (Trefethen, Approximation Theory and Approximation Practice, Thm 19.3),
whatever ``q`` is: the layout is scale-free. On the first panel the nearest singularity is at
least ``pi s/2`` away against a half-length ``<= s/4``. On ``[2k, 2k + 2]`` the density's
exponent changes by ``4k + 2``, and the rule's error on ``exp(-z^2/2)`` there is below 1e-16
of ``E|f|`` (largest on ``[6, 8]``). What remains is rounding. Measured against mpmath
(tests/test_gaussian.py, four points per decade) the worst relative error over
``q in [1e-8, 1e8]`` is below 1e-14 for every library activation. The node count is
``2 n (5 + J)``, ``J ~ log4(sqrt(q) / s) + 1``: 192 at ``q <= 1``, 416 at ``q = 1e8`` (tanh).

User callables may have kinks or scales we do not know: they get the same layout made
adaptive, with tail panels out to ``|z| = 38.6`` (where the density underflows), so that even
an integrand that lives in the tail is relatively accurate. Every panel is integrated by an
18-point Gauss-Lobatto rule and as its two halves by the 16-point rule; a panel whose two
values differ by more than 1e-14 of ``E|f|`` is split (all panels of a round are evaluated in
one call) until every panel passes; a warning says so if 60 rounds do not suffice.

Joint moments ``E[phi(U_a) phi(U_b)]``, ``(U_a, U_b) ~ N(0, K)``, are computed as the nested
1-D integral ``E_A[phi(l11 A) g(l21 A)]``, ``g(m) = E_B phi(m + l22 B)`` (``l`` the Cholesky
factor of the 2 x 2 block): the outer rule is the 1-D layout for the larger of ``l11``,
``|l21|``; the inner rule for each outer node ``m`` adds the activation edges centred on the
point ``B* = -m/l22`` where ``phi``'s argument crosses 0 (clipped to ``[-10, 10]``), so the
geometric panels follow ``phi``'s bend wherever the conditional mean puts it.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from functools import lru_cache

import numpy as np
import torch

from .activations import OU, Activation, CustomActivation, SoftplusM

__all__ = ["activation_scale", "gaussian_expectation", "joint_moment", "second_moment"]

_PANEL_NODES = 16
_Z_MAX = 10
_GAUSSIAN_EDGES = np.arange(-_Z_MAX, _Z_MAX + 1, 2, dtype=float)
_TAIL_EDGES = np.array([12.0, 15.0, 20.0, 27.0, 38.6])  # adaptive rule only
_ADAPTIVE_RTOL = 1e-14
_ADAPTIVE_ROUNDS = 60
_ADAPTIVE_PANELS = 100_000  # panels in one round at most (bounds memory at ~100 MB)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


class QuadratureError(FloatingPointError):
    """A Gaussian expectation is not finite: the activation overflows (or is NaN) at a node."""


@lru_cache(maxsize=4)
def _legendre(n: int) -> tuple[np.ndarray, np.ndarray]:
    return np.polynomial.legendre.leggauss(n)


def activation_scale(activation: Activation) -> float:
    """Length scale on which ``phi`` bends: ``1/m`` for softplus_m, ``1/beta`` for ou, else 1."""
    if isinstance(activation, SoftplusM):
        return 1.0 / activation.m
    if isinstance(activation, OU):
        return 1.0 / activation.beta
    return 1.0


def _depth(spread: float, scale: float) -> int:
    """``J >= 1`` with ``2^(1 - 2J) spread <= scale / 2`` (the finest activation edge)."""
    if spread <= 0.0:
        return 1
    level = math.log2(0.5 * scale) - math.log2(spread)  # 2^level spread = scale / 2
    return min(max(1, math.ceil((1.0 - level) / 2.0)), 550)


def _edges(centers: np.ndarray, depth: int, tails: bool = False) -> np.ndarray:
    """Panel edges (rows, P + 1), sorted: the Gaussian edges and ``c``, ``c +- 2^(1 - 2j)``
    (``0 <= j <= depth``) for each centre ``c``, clipped to ``[-10, 10]``; ``tails`` adds
    edges out to ``|z| = 38.6``, where the density underflows."""
    gaussian = _GAUSSIAN_EDGES
    if tails:
        gaussian = np.concatenate([-_TAIL_EDGES[::-1], gaussian, _TAIL_EDGES])
    offsets = 2.0 ** (1 - 2 * np.arange(depth + 1))
    local = np.concatenate([-offsets, [0.0], offsets[::-1]])
    rows = np.broadcast_to(gaussian, (centers.size, gaussian.size))
    edges = np.concatenate([rows, centers[:, None] + local[None, :]], axis=1)
    return np.sort(np.clip(edges, gaussian[0], gaussian[-1]), axis=1)


@lru_cache(maxsize=4)
def _lobatto(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Gauss-Lobatto nodes (the ends and the roots of ``P'_(n-1)``) and weights on [-1, 1]."""
    legendre = np.polynomial.legendre.Legendre.basis(n - 1)
    nodes = np.concatenate([[-1.0], np.sort(legendre.deriv().roots().real), [1.0]])
    return nodes, 2.0 / (n * (n - 1) * legendre(nodes) ** 2)


def _panel_rule(
    lo: np.ndarray, hi: np.ndarray, n: int, rule: Callable = _legendre
) -> tuple[np.ndarray, np.ndarray]:
    """Nodes and weights (..., n) of ``int_lo^hi f(z) phi(z) dz`` (standard normal density)."""
    t, w = rule(n)
    half = 0.5 * (hi - lo)[..., None]
    nodes = 0.5 * (hi + lo)[..., None] + half * t
    return nodes, half * w * np.exp(-0.5 * nodes * nodes) * _INV_SQRT_2PI


@lru_cache(maxsize=256)
def _standard_rule(depth: int) -> tuple[np.ndarray, np.ndarray]:
    """The fixed rule for ``E f(Z)`` on the layout centred on 0 with ``depth`` local edges."""
    edges = np.unique(_edges(np.zeros(1), depth)[0])
    nodes, weights = _panel_rule(edges[:-1], edges[1:], _PANEL_NODES)
    nodes.flags.writeable = weights.flags.writeable = False
    return nodes.ravel(), weights.ravel()


def _check_finite(values: np.ndarray, what: Callable[[], str]) -> None:
    if not np.all(np.isfinite(values)):
        raise QuadratureError(what())


# f(nodes (P, m), owners (P,)) -> values (P, m): the integrand at the nodes of panels P, each
# panel belonging to one of several integrals (its owner)
Integrand = Callable[[np.ndarray, np.ndarray], np.ndarray]


def _adaptive(
    function: Integrand,
    lo: np.ndarray,
    hi: np.ndarray,
    owners: np.ndarray,
    count: int,
    what: Callable[[], str],
) -> np.ndarray:
    """Per owner, the sum over its panels of ``int f(z) phi(z) dz``, each panel split until its
    ``(n + 2)``-point Gauss-Lobatto value and the ``n``-point Gauss-Legendre values on its two
    halves agree to 1e-14 of the owner's ``E|f|``, and its parent's to 2e-14. Lobatto samples
    the panel's ends, so a kink near an end beyond which ``f`` vanishes cannot hide between the
    nodes of both rules."""
    n, m = _PANEL_NODES, _PANEL_NODES + 2
    totals = np.zeros(count)
    scale = None
    inherited = np.zeros(lo.size)  # half the parent's discrepancy
    for _ in range(_ADAPTIVE_ROUNDS):
        mid = 0.5 * (lo + hi)
        nodes_whole, w_whole = _panel_rule(lo, hi, m, _lobatto)
        nodes_left, w_left = _panel_rule(lo, mid, n)
        nodes_right, w_right = _panel_rule(mid, hi, n)
        values = function(np.concatenate([nodes_whole, nodes_left, nodes_right], axis=1), owners)
        _check_finite(values, what)
        whole = np.sum(values[:, :m] * w_whole, axis=1)
        left, right = values[:, m : m + n], values[:, m + n :]
        halves = np.sum(left * w_left + right * w_right, axis=1)
        if scale is None:  # E|f| per owner, from the first (complete) layout
            magnitude = np.sum(np.abs(left) * w_left + np.abs(right) * w_right, axis=1)
            scale = np.bincount(owners, magnitude, minlength=count)
        # The two rules' errors on a kinked panel can agree by accident (their Peano kernels
        # cross); a child panel's error is at most about half its parent's (O(h^2) at a kink,
        # O(h) at a jump), so half the parent's discrepancy bounds the estimate from below.
        # Below 1e-280 the density nears the subnormal range, where rounding is not relative.
        discrepancy = np.abs(whole - halves)
        tolerance = np.maximum(_ADAPTIVE_RTOL * scale[owners], 1e-280)
        done = np.maximum(discrepancy, inherited) <= tolerance
        totals += np.bincount(owners[done], halves[done], minlength=count)
        if done.all():
            return totals
        if 2 * np.count_nonzero(~done) > _ADAPTIVE_PANELS:
            break
        keep = ~done
        lo, hi, owners, mid = lo[keep], hi[keep], owners[keep], mid[keep]
        lo, hi, owners = np.concatenate([lo, mid]), np.concatenate([mid, hi]), np.tile(owners, 2)
        inherited = np.tile(0.5 * discrepancy[keep], 2)
    warnings.warn(
        f"{what()}: the adaptive quadrature did not reach 1e-14 within {_ADAPTIVE_ROUNDS} "
        f"rounds and {_ADAPTIVE_PANELS} panels (a discontinuous or rough integrand?); the "
        "value may be inaccurate",
        RuntimeWarning,
        stacklevel=4,
    )
    nodes, weights = _panel_rule(lo, hi, n)
    rest = np.sum(function(nodes, owners) * weights, axis=1)
    return totals + np.bincount(owners, rest, minlength=count)


def _expectations(
    function: Integrand,
    centers: np.ndarray,
    depth: int,
    adaptive: bool,
    what: Callable[[], str],
    tails: bool = True,
) -> np.ndarray:
    """For each centre ``c_i``, ``E f(Z)`` on the layout centred on ``c_i`` (owner ``i``);
    ``tails``: with the adaptive rule, integrate beyond ``|z| = 10`` too."""
    if centers.size == 1 and centers[0] == 0.0 and not adaptive:
        nodes, weights = _standard_rule(depth)
        values = function(nodes[None, :], np.zeros(1, dtype=np.intp))
        _check_finite(values, what)
        return np.array([np.dot(values[0], weights)])
    edges = _edges(centers, depth, tails=adaptive and tails)
    lo, hi = edges[:, :-1].ravel(), edges[:, 1:].ravel()
    owners = np.repeat(np.arange(centers.size), edges.shape[1] - 1)
    keep = hi > lo
    lo, hi, owners = lo[keep], hi[keep], owners[keep]
    if adaptive:
        return _adaptive(function, lo, hi, owners, centers.size, what)
    nodes, weights = _panel_rule(lo, hi, _PANEL_NODES)
    values = function(nodes, owners)
    _check_finite(values, what)
    return np.bincount(owners, np.sum(values * weights, axis=1), minlength=centers.size)


_ORIGIN = np.zeros(1)


def _phi(activation: Activation, values: np.ndarray) -> np.ndarray:
    x = torch.from_numpy(np.ascontiguousarray(values, dtype=np.float64))
    return activation.phi(x).to(torch.float64).numpy()


def _square(values: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):  # an overflow is reported by _check_finite
        return values * values


def gaussian_expectation(
    function: Callable[[np.ndarray], np.ndarray],
    variance: float,
    *,
    scale: float = 1.0,
    adaptive: bool = True,
) -> float:
    """``E f(sqrt(variance) Z)``, ``Z ~ N(0, 1)``, for an elementwise ``f: ndarray -> ndarray``.

    ``scale``: the length on which ``f`` bends (module docstring). ``adaptive=False`` uses the
    fixed rule, accurate to ~1e-15 when ``f`` is analytic off the imaginary axis."""
    spread = math.sqrt(max(variance, 0.0))
    return float(
        _expectations(
            lambda z, _owners: function(spread * z),
            _ORIGIN,
            _depth(spread, scale),
            adaptive,
            lambda: f"E f(sqrt(q) Z) is not finite at q={variance:.6g}",
        )[0]
    )


def second_moment(activation: Activation, q: float) -> float:
    """``E[phi(sqrt(q) Z)^2]`` (module docstring); adaptive for user callables."""
    spread = math.sqrt(max(q, 0.0))
    return float(
        _expectations(
            lambda z, _owners: _square(_phi(activation, spread * z)),
            _ORIGIN,
            _depth(spread, activation_scale(activation)),
            isinstance(activation, CustomActivation),
            lambda: (
                f"E phi(sqrt(q) Z)^2 is not finite for activation {activation.spec!r} at "
                f"q={q:.6g} (phi overflows or is NaN for some |x| <= {_Z_MAX * spread:.3g})"
            ),
        )[0]
    )


def joint_moment(activation: Activation, kaa: float, kbb: float, kab: float) -> float:
    """``E[phi(U) phi(V)]``, ``(U, V) ~ N(0, [[kaa, kab], [kab, kbb]])``, by the nested rule
    ``E_A[phi(l11 A) g(l21 A)]``, ``g(m) = E_B phi(m + l22 B)`` (module docstring)."""
    l11 = math.sqrt(max(kaa, 0.0))
    l21 = kab / l11 if l11 > 0 else 0.0
    l22 = math.sqrt(max(kbb - l21 * l21, 0.0))
    scale = activation_scale(activation)
    adaptive = isinstance(activation, CustomActivation)

    def what() -> str:
        return (
            f"E[phi(U) phi(V)] is not finite for activation {activation.spec!r} at "
            f"K = [[{kaa:.6g}, {kab:.6g}], [{kab:.6g}, {kbb:.6g}]]"
        )

    inner_depth = _depth(l22, scale)

    def conditional(means: np.ndarray) -> np.ndarray:
        """``g(m) = E phi(m + l22 B)`` at every entry of ``means``."""
        flat = means.ravel()
        if l22 == 0.0:
            return _phi(activation, flat).reshape(means.shape)
        values = _expectations(
            lambda b, owners: _phi(activation, flat[owners][:, None] + l22 * b),
            -flat / l22,
            inner_depth,
            adaptive,
            what,
            tails=False,
        )
        return values.reshape(means.shape)

    return float(
        _expectations(
            lambda a, _owners: _phi(activation, l11 * a) * conditional(l21 * a),
            _ORIGIN,
            _depth(max(l11, abs(l21)), scale),
            adaptive,
            what,
            tails=False,
        )[0]
    )
