"""Infinite-width limits (hayou.md §5, Thm 2 and Thm 3) for any activation.

* Depth first, then width (Thm 2): every coordinate of ``X_t`` tends to the McKean-Vlasov
  process ``dX = (E phi(X)^2)^{1/2} dB``, which is Gaussian ``N(0, q_t)`` with
  ``q_t' = E_{Z ~ N(0,1)}[phi(sqrt(q_t) Z)^2]`` (``meanfield_variance``). For several inputs the
  covariance kernel solves ``K_ab' = E[phi(U_a) phi(U_b)]``, ``(U_a, U_b) ~ N(0, K)``
  (``meanfield_covariance``); for ReLU the correlation solves the arc-cosine ODE
  ``rho' = (sqrt(1 - rho^2) - rho arccos rho) / (2 pi)`` (``relu_correlation``).
* Width first, then depth (Thm 3): at fixed depth ``L`` the coordinates are iid Gaussian with
  ``q_l = q_{l-1} + (1/L) E phi(N(0, q_{l-1}))^2`` (``infinite_width_variance``); for ReLU
  ``q_l = q_0 (1 + 1/(2L))^l -> q_0 e^{t/2}``: the same limit.
* The log-growth ``log(||phi(X_t)|| / ||phi(X_0)||)`` concentrates at
  ``(1/2) log(E phi(X_t)^2 / E phi(X_0)^2)`` (``meanfield_log_growth``), ``t/4`` for ReLU.

Expectations use closed forms where the activation is positively homogeneous and otherwise the
panel quadrature of ``deeplimit.gaussian`` (accurate to ~1e-15 relative at every variance; a
fixed Gauss-Hermite rule is not: 200 nodes are 2 % off for tanh at ``q = 100``). The ODEs use an
adaptive 8th-order Runge-Kutta (DOP853) at relative tolerance 1e-11 (1e-10 for kernels).

A solution that blows up (``q -> infinity`` in finite time for a super-linear activation, an
overflow, or a NaN from the activation) raises ``MeanFieldBlowupError`` naming the activation,
the initial value and the time (or layer) at which it happened; no function returns ``inf``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from scipy.integrate import solve_ivp

from ..activations import Activation, parse_activation
from ..errors import check_int, check_positive_float, check_real_array
from ..gaussian import QuadratureError, joint_moment, second_moment
from ..sizes import Need, check_memory

__all__ = [
    "MeanFieldBlowupError",
    "infinite_width_variance",
    "meanfield_covariance",
    "meanfield_log_growth",
    "meanfield_variance",
    "relu_correlation",
]

_RTOL, _ATOL = 1e-11, 1e-13


class MeanFieldBlowupError(FloatingPointError):
    """A mean-field solution became infinite or NaN: ``activation`` (its spec), ``start`` (the
    initial ``q0`` or kernel), ``time`` (the time in ``[0, 1]`` it was reached; for the
    finite-depth recursion ``layer / L``) and ``layer`` (the recursion's layer, else None)."""

    def __init__(
        self, activation: str, start: Any, time: float, detail: str, layer: int | None = None
    ) -> None:
        self.activation = activation
        self.start = start
        self.time = time
        self.layer = layer
        where = f"layer {layer} (t = {time:.6g})" if layer is not None else f"t = {time:.6g}"
        super().__init__(
            f"the mean-field solution for activation {activation!r} from {start} blows up "
            f"(becomes infinite or NaN) at {where}: {detail}"
        )


def _phi(activation: Activation, values: np.ndarray) -> np.ndarray:
    return activation.phi(torch.from_numpy(np.ascontiguousarray(values, dtype=np.float64))).numpy()


def _second_moment_factor(activation: Activation) -> float | None:
    """``E phi(Z)^2`` when ``E phi(sqrt(q) Z)^2 = q E phi(Z)^2`` (positively homogeneous phi)."""
    if not activation.positively_homogeneous:
        return None
    # phi(x) = phi(1) x for x >= 0 and -phi(-1) x for x < 0
    slope_positive, slope_negative = _phi(activation, np.array([1.0, -1.0]))
    return 0.5 * (slope_positive**2 + slope_negative**2)


def _second_moment(activation: Activation, q: float) -> float:
    """``E[phi(sqrt(q) Z)^2]``: closed form for homogeneous phi, else ``gaussian.second_moment``."""
    factor = _second_moment_factor(activation)
    if factor is None:
        return second_moment(activation, q)
    value = factor * q
    if not math.isfinite(value):
        raise QuadratureError(f"E phi(sqrt(q) Z)^2 = {factor:.6g} q overflows at q={q:.6g}")
    return value


def _solve(
    rhs: Any, start: np.ndarray, times: np.ndarray, blowup: Any, rtol: float, atol: float
) -> np.ndarray:
    """DOP853 from ``t = 0`` to ``max(times)``; values (size, len(times)) in the order of
    ``times.ravel()``. A non-finite right-hand side (an overflow, a NaN), a failed integration
    (step size underflow: a finite-time blow-up) or a non-finite value raises
    ``blowup(time, detail)``."""
    flat = times.ravel()
    order = np.argsort(flat)
    last = {"t": 0.0, "size": float(np.max(np.abs(start)))}

    def guarded(s: float, y: np.ndarray) -> Any:
        last["t"], last["size"] = s, float(np.max(np.abs(y)))
        if not np.all(np.isfinite(y)):
            raise blowup(s, "the solution overflowed")
        try:
            return rhs(s, y)
        except QuadratureError as error:
            raise blowup(s, f"{error}; max |value| {last['size']:.3g}") from None

    end = float(flat.max()) if flat.max() > 0 else 1.0
    solution = solve_ivp(
        guarded, (0.0, end), start, method="DOP853", t_eval=flat[order], rtol=rtol, atol=atol
    )
    if solution.status != 0:
        raise blowup(
            last["t"],
            f"the ODE solver stopped short of t = {end:g} ({solution.message}) with max "
            f"|value| {last['size']:.3g}: the solution diverges in finite time",
        )
    if not np.all(np.isfinite(solution.y)):
        bad = int(np.argmax(~np.all(np.isfinite(solution.y), axis=0)))
        raise blowup(float(solution.t[bad]), "the solution overflowed")
    values = np.empty((start.size, flat.size))
    values[:, order] = solution.y
    return values


def _check_times(t: Any) -> np.ndarray:
    times = check_real_array("t", t)
    if times.size == 0 or np.any((times < 0) | (times > 1)):
        raise ValueError(f"t must be finite times in [0, 1], got {t!r}")
    return times


def meanfield_variance(activation: Any, q0: float, t: Any) -> np.ndarray | float:
    """``q_t`` of the McKean-Vlasov variance ODE ``q' = E[phi(sqrt(q) Z)^2]``, ``q(0) = q0``.

    ``q0 = ||x||^2 / d`` is the variance of ``Y_0 = W_in x``; ``t`` is a time or an array of
    times in ``[0, 1]``. Positively homogeneous activations (linear, ReLU, leaky) have the
    closed form ``q0 exp(c t)`` with ``c = (phi(1)^2 + phi(-1)^2)/2`` (``e^{t/2}`` for ReLU).
    """
    act = parse_activation(activation)
    q0 = check_positive_float("q0", q0)
    times = _check_times(t)
    factor = _second_moment_factor(act)

    def blowup(time: float, detail: str) -> MeanFieldBlowupError:
        return MeanFieldBlowupError(act.spec, f"q0={q0:.6g}", time, detail)

    if factor is not None:
        with np.errstate(over="ignore"):
            values = q0 * np.exp(factor * times)
        if not np.all(np.isfinite(values)):
            reached = (math.log(np.finfo(float).max) - math.log(q0)) / factor
            raise blowup(reached, f"q0 exp({factor:.6g} t) exceeds the largest float")
    else:
        values = _solve(
            lambda _s, q: [_second_moment(act, float(q[0]))],
            np.array([q0]),
            times,
            blowup,
            _RTOL,
            _ATOL,
        ).reshape(times.shape)
    return float(values) if np.ndim(t) == 0 else values


def infinite_width_variance(activation: Any, q0: float, depth: int) -> np.ndarray:
    """``q_l``, ``l = 0..L``, of the infinite-width recursion at finite depth (Thm 3):
    ``q_l = q_{l-1} + (1/L) E[phi(sqrt(q_{l-1}) Z)^2]``; ReLU: ``q_0 (1 + 1/(2L))^l``."""
    act = parse_activation(activation)
    q0 = check_positive_float("q0", q0)
    depth = check_int("depth", depth, minimum=1)
    check_memory("infinite_width_variance", [Need("depth", depth, 8.0 * (depth + 1), "q_0..q_L")])
    values = np.empty(depth + 1)
    values[0] = q0
    for layer in range(1, depth + 1):
        try:
            values[layer] = values[layer - 1] + _second_moment(act, values[layer - 1]) / depth
        except QuadratureError as error:
            detail = str(error)
        else:
            if math.isfinite(values[layer]):
                continue
            detail = "q_l overflowed"
        raise MeanFieldBlowupError(act.spec, f"q0={q0:.6g}", layer / depth, detail, layer)
    return values


def meanfield_log_growth(activation: Any, q0: float, t: Any) -> np.ndarray | float:
    """The limit of ``log(||phi(X_t)|| / ||phi(X_0)||)`` as ``n -> oo`` (after ``L -> oo``):
    ``(1/2) log(E phi(sqrt(q_t) Z)^2 / E phi(sqrt(q0) Z)^2)``; ``t/4`` for ReLU (Thm 2)."""
    act = parse_activation(activation)
    q = np.asarray(meanfield_variance(act, q0, t), dtype=float)
    q0 = float(q0)
    times = np.broadcast_to(_check_times(t), q.shape)

    def moment(value: float, time: float) -> float:
        try:
            return _second_moment(act, value)
        except QuadratureError as error:
            raise MeanFieldBlowupError(act.spec, f"q0={q0:.6g}", time, str(error)) from None

    start = moment(q0, 0.0)
    if start == 0:
        raise ValueError("E phi(sqrt(q0) Z)^2 = 0: the log-growth is undefined for this activation")
    growth = 0.5 * np.log(np.vectorize(lambda v, s: moment(float(v), float(s)))(q, times) / start)
    return float(growth) if np.ndim(t) == 0 else growth


def _slopes(activation: Activation) -> tuple[float, float] | None:
    """``(alpha, beta)`` with ``phi(x) = alpha x`` (x >= 0), ``beta x`` (x < 0), if homogeneous."""
    if not activation.positively_homogeneous:
        return None
    positive, negative = _phi(activation, np.array([1.0, -1.0]))
    return float(positive), float(-negative)


def _piecewise_linear_moment(
    alpha: float, beta: float, kaa: float, kbb: float, kab: float
) -> float:
    """``E[phi(U) phi(V)]`` in closed form for piecewise-linear phi (kinks defeat quadrature).

    ``phi(x) = beta x + (alpha - beta) relu(x)``, ``E[U relu(V)] = K_ab / 2`` and the arc-cosine
    kernel ``E[relu(U) relu(V)] = sqrt(K_aa K_bb) (sin th + (pi - th) cos th) / (2 pi)``,
    ``cos th = K_ab / sqrt(K_aa K_bb)``."""
    scale = math.sqrt(max(kaa, 0.0) * max(kbb, 0.0))
    if scale == 0.0:
        return beta * beta * kab + beta * (alpha - beta) * kab
    theta = math.acos(min(1.0, max(-1.0, kab / scale)))
    relu_relu = scale * (math.sin(theta) + (math.pi - theta) * math.cos(theta)) / (2.0 * math.pi)
    return beta * beta * kab + beta * (alpha - beta) * kab + (alpha - beta) ** 2 * relu_relu


def _joint_moment(activation: Activation, kernel: np.ndarray) -> np.ndarray:
    """``E[phi(U) phi(U)^T]`` for ``U ~ N(0, kernel)``: closed forms for piecewise-linear phi,
    else the nested panel rule of ``gaussian.joint_moment`` for each pair."""
    k = kernel.shape[0]
    out = np.empty((k, k))
    slopes = _slopes(activation)
    for a in range(k):
        out[a, a] = _second_moment(activation, kernel[a, a])
        for b in range(a + 1, k):
            if slopes is not None:
                value = _piecewise_linear_moment(*slopes, kernel[a, a], kernel[b, b], kernel[a, b])
            else:
                value = joint_moment(activation, kernel[a, a], kernel[b, b], kernel[a, b])
            out[a, b] = out[b, a] = value
    if not np.all(np.isfinite(out)):
        raise QuadratureError("E[phi(U_a) phi(U_b)] overflows")
    return out


def meanfield_covariance(activation: Any, kernel0: Any, t: Any) -> np.ndarray:
    """The covariance kernel ``K_t`` of the McKean-Vlasov limit for several inputs:
    ``K_ab' = E[phi(U_a) phi(U_b)]``, ``U ~ N(0, K)``, ``K(0) = kernel0`` (``<x_a, x_b>/d``).

    Returns ``K_t`` with shape ``(len(t), k, k)`` (``(k, k)`` for a scalar ``t``). Cost: a
    few ms per pair and right-hand side for library activations; a user callable is integrated
    adaptively (tens of ms, seconds if it has kinks away from 0, e.g. a hard tanh)."""
    act = parse_activation(activation)
    start = check_real_array("kernel0", kernel0)
    if start.ndim != 2 or start.shape[0] != start.shape[1]:
        raise ValueError(f"kernel0 must be a finite square matrix, got shape {start.shape}")
    if not np.allclose(start, start.T) or (
        np.linalg.eigvalsh(start).min() < -1e-12 * np.abs(start).max()
    ):
        raise ValueError("kernel0 must be symmetric positive semi-definite")
    times = _check_times(t)
    k = start.shape[0]

    def rhs(_s: float, flat: np.ndarray) -> np.ndarray:
        kernel = flat.reshape(k, k)
        return _joint_moment(act, 0.5 * (kernel + kernel.T)).ravel()

    def blowup(time: float, detail: str) -> MeanFieldBlowupError:
        return MeanFieldBlowupError(act.spec, f"kernel0={start.tolist()}", time, detail)

    values = _solve(rhs, start.ravel(), times, blowup, 1e-10, 1e-12)
    result = values.T.reshape(-1, k, k)
    return result[0] if np.ndim(t) == 0 else result


def relu_correlation(rho0: Any, t: Any) -> np.ndarray | float:
    """Correlation of the ReLU McKean-Vlasov limit (arc-cosine kernel; hayou.md §6):
    ``rho' = (sqrt(1 - rho^2) - rho arccos rho) / (2 pi)``; ``rho0`` in ``[-1, 1]``,
    ``t`` in ``[0, 1]``."""
    start = check_real_array("rho0", rho0)
    if np.any(np.abs(start) > 1):
        raise ValueError(f"rho0 must lie in [-1, 1], got {rho0!r}")
    times = _check_times(t)

    def rhs(_s: float, rho: np.ndarray) -> np.ndarray:
        r = np.clip(rho, -1.0, 1.0)
        return (np.sqrt(1.0 - r * r) - r * np.arccos(r)) / (2.0 * math.pi)

    order = np.argsort(times.ravel())
    solution = solve_ivp(
        rhs,
        (0.0, float(times.max()) if times.max() > 0 else 1.0),
        start.ravel(),
        method="DOP853",
        t_eval=times.ravel()[order],
        rtol=_RTOL,
        atol=_ATOL,
        vectorized=False,
    )
    values = np.empty((start.size, times.size))
    values[:, order] = solution.y
    values = values.reshape(start.shape + times.shape)
    return float(values) if values.ndim == 0 else values
