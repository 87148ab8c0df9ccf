"""Closed-form laws of the infinite-depth limit (hayou.md §3, §4.2, §5).

Each law is an object with NumPy (float64) methods that simulations are compared with:
``sample(size, seed)``, ``cdf``, ``sf``, ``ppf`` (quantile function), ``quantiles``, ``logpdf``
(and ``pdf``) where a density exists, ``median``, ``mean``, ``var`` and raw ``moment(k)`` (floats,
``math.inf`` when infinite), ``describe()`` (one human-readable line) and ``as_dict()``
(name and parameters, for provenance).

Factories (hayou.md section in brackets):

* ``normal_law(mean, var)``: ``N(mean, var)``;
* ``gbm_law(a, y0)``: width 1, ``phi(x) = a x``: ``X_1 = y0 exp(|a| B_1 - a^2/2)`` [§3.1];
* ``relu_width1_law(y0=... | x=...)``: width 1, ReLU:
  ``X_1 = 1{X_0>0} X_0 exp(B_1 - 1/2) + 1{X_0<=0} X_0`` [§3.2];
* ``ou_law(alpha, beta, sigma, y0)``: width 1, OU activation: ``X_1 = erfi(U_1)/beta`` with
  ``U_1`` Gaussian [§3.3];
* ``identity_log_norm_law(width)``: ``log(|X_1|/|X_0|) ~ N((n-2)/(2n), 1/n)`` [§4.2];
* ``identity_norm_law(width, norm0)``: ``|X_1|`` given ``|X_0| = norm0`` (log-normal) [§4.2];
* ``depth_then_width_law(q0, t)``: ``N(0, q0 e^{t/2})``, one coordinate as ``n -> oo`` after
  ``L -> oo`` [§5].

The finite-depth collapse probabilities of the width-1 ReLU ResNet (§3.2) are the functions
``relu_width1_collapse_probability`` and ``relu_width1_nonpositive_probability``.

All laws are of the output ``X_1`` of the SDE on ``[0, 1]`` given its start, except where the
start is random (``relu_width1_law(x=...)``), in which case ``X_0 = W_in x ~ N(0, |x|^2/d)``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import scipy.integrate
import scipy.special as sc
import torch

from ..errors import check_finite_float, check_int, check_positive_float, check_real_array
from ..sizes import Need, check_memory
from ..special import erfi_inverse

__all__ = [
    "GBMLaw",
    "Law",
    "NormalLaw",
    "OULaw",
    "PointMassLaw",
    "ReLUWidth1MixtureLaw",
    "ScaledLogNormalLaw",
    "depth_then_width_law",
    "gbm_law",
    "identity_log_norm_law",
    "identity_norm_law",
    "normal_law",
    "ou_law",
    "relu_width1_collapse_probability",
    "relu_width1_law",
    "relu_width1_nonpositive_probability",
]

ArrayLike = Any  # anything np.asarray turns into floats
Size = int | tuple[int, ...]

_SQRT_PI = math.sqrt(math.pi)
_LOG_2PI = math.log(2.0 * math.pi)
_LOG_SQRT_PI_OVER_2 = math.log(_SQRT_PI / 2.0)
# exp(x) overflows a double above this
_MAX_EXP = math.log(np.finfo(np.float64).max)
# Rows of points evaluated at once against a quadrature grid (bounds memory to a few MB).
_CHUNK = 4096


def _erfi_inverse_np(y: ArrayLike) -> np.ndarray:
    """``E = erfi^{-1}`` on NumPy arrays, through the torch implementation (about 1e-15)."""
    tensor = torch.from_numpy(np.array(y, dtype=np.float64, copy=True))
    return erfi_inverse(tensor).numpy()


def _exp_or_inf(x: float) -> float:
    return math.exp(x) if x < _MAX_EXP else math.inf


def _composite_gauss_legendre(
    start: float, stop: float, panels: int, order: int
) -> tuple[np.ndarray, np.ndarray]:
    """Nodes and weights of ``panels`` equal Gauss-Legendre panels of ``order`` points."""
    base_nodes, base_weights = np.polynomial.legendre.leggauss(order)
    edges = np.linspace(start, stop, panels + 1)
    half = 0.5 * np.diff(edges)
    centre = 0.5 * (edges[1:] + edges[:-1])
    nodes = (centre[:, None] + half[:, None] * base_nodes[None, :]).ravel()
    weights = (half[:, None] * base_weights[None, :]).ravel()
    return nodes, weights


def _scalar_or_array(values: np.ndarray) -> np.ndarray:
    # 0-d results come back as NumPy scalars (like scipy.stats), arrays keep their shape.
    return values[()]


def _elementwise(hook: Callable[[np.ndarray], np.ndarray], values: np.ndarray) -> np.ndarray:
    """Apply ``hook`` (which sees a 1-D array at least) and restore the shape of ``values``."""
    return _scalar_or_array(np.asarray(hook(np.atleast_1d(values))).reshape(values.shape))


def _check_points(x: ArrayLike) -> np.ndarray:
    """Points ``x`` of cdf, sf, logpdf: real numbers, ``+-inf`` allowed, NaN refused."""
    return check_real_array("x", x, allow_inf=True)


def _check_probabilities(q: ArrayLike, name: str) -> np.ndarray:
    try:
        values = check_real_array(name, q, allow_inf=True)
    except ValueError as error:
        raise ValueError(f"{name} must be probabilities in [0, 1]: {error}") from None
    if not np.all((values >= 0.0) & (values <= 1.0)):
        bad = float(values[~((values >= 0.0) & (values <= 1.0))].ravel()[0])
        raise ValueError(f"{name} must be probabilities in [0, 1], got {bad!r}")
    return values


def _check_size(size: Size) -> tuple[int, ...]:
    if isinstance(size, tuple | list):
        return tuple(check_int("size", s, minimum=0) for s in size)
    return (check_int("size", size, minimum=0),)


def _format_value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_format_value(v) for v in value) + "]"
    return str(value)


class Law:
    """A one-dimensional law of a limit quantity, with NumPy (float64) methods.

    Subclasses implement ``_cdf``, ``_sf``, ``_ppf``, ``_logpdf`` and ``_sample`` on float64
    arrays and ``moment``, ``mean``, ``var``; the public methods validate and convert. The
    ``name`` and ``parameters`` record where the law comes from (a factory and its arguments).
    """

    def __init__(self, name: str, parameters: Mapping[str, Any]) -> None:
        self.name = name
        self.parameters = dict(parameters)

    # -- provenance -------------------------------------------------------------------------

    def _labelled(self, name: str, parameters: Mapping[str, Any]) -> Law:
        self.name = name
        self.parameters = dict(parameters)
        return self

    def formula(self) -> str:
        """The law in symbols, with its numerical parameters."""
        raise NotImplementedError

    def describe(self) -> str:
        """One line: ``name(parameters): formula``, for reports and test messages."""
        arguments = ", ".join(f"{k}={_format_value(v)}" for k, v in self.parameters.items())
        return f"{self.name}({arguments}): {self.formula()}"

    def as_dict(self) -> dict[str, Any]:
        """``{"name": ..., **parameters}`` (JSON-serializable), for provenance."""
        return {
            "name": self.name,
            **{k: list(v) if isinstance(v, list) else v for k, v in self.parameters.items()},
        }

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.describe()}>"

    # -- public API -------------------------------------------------------------------------

    def sample(self, size: Size, seed: int | None = 0) -> np.ndarray:
        """``size`` independent draws (float64) from ``np.random.default_rng(seed)``
        (``seed=None``: fresh entropy)."""
        shape = _check_size(size)
        if seed is not None:
            seed = check_int("seed", seed, minimum=0)
        count = math.prod(shape)
        needs = [Need("size", size, 24.0 * count, "the draws and their random numbers")]
        check_memory(f"{self.name} law sample", needs)
        return self._sample(np.random.default_rng(seed), shape)

    def cdf(self, x: ArrayLike) -> np.ndarray:
        """``P(X <= x)``, elementwise (``x`` real, ``+-inf`` allowed, NaN refused)."""
        return _elementwise(self._cdf, _check_points(x))

    def sf(self, x: ArrayLike) -> np.ndarray:
        """Survival function ``P(X > x)``, elementwise (accurate in the upper tail)."""
        return _elementwise(self._sf, _check_points(x))

    def ppf(self, q: ArrayLike) -> np.ndarray:
        """Quantile function ``inf{x : P(X <= x) >= q}`` for ``q`` in ``[0, 1]``."""
        return _elementwise(self._ppf, _check_probabilities(q, "q"))

    def quantiles(self, qs: Sequence[float] | np.ndarray) -> np.ndarray:
        """``ppf`` at several probabilities, always as an array."""
        return np.atleast_1d(_elementwise(self._ppf, _check_probabilities(qs, "qs")))

    def logpdf(self, x: ArrayLike) -> np.ndarray:
        """Log-density (Lebesgue), elementwise; ``ValueError`` if the law has no density."""
        return _elementwise(self._logpdf, _check_points(x))

    def pdf(self, x: ArrayLike) -> np.ndarray:
        """Density ``exp(logpdf(x))``."""
        return np.exp(self.logpdf(x))

    def median(self) -> float:
        """``ppf(1/2)``."""
        return float(self._ppf(np.array([0.5]))[0])

    def mean(self) -> float:
        """``E[X]``."""
        return self.moment(1)

    def var(self) -> float:
        """``Var(X)``, ``math.inf`` when ``E[X^2] = inf``."""
        second = self.moment(2)
        if math.isinf(second):
            return math.inf
        return max(second - self.mean() ** 2, 0.0)

    def moment(self, order: int) -> float:
        """Raw moment ``E[X^k]``: ``math.inf`` if infinite, ``math.nan`` if undefined."""
        raise NotImplementedError

    # -- implementation hooks -----------------------------------------------------------------

    def _sample(self, rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
        return self._ppf(rng.random(shape))

    def _cdf(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _sf(self, x: np.ndarray) -> np.ndarray:
        return 1.0 - self._cdf(x)

    def _ppf(self, q: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _logpdf(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError


class NormalLaw(Law):
    """Gaussian law ``N(mean, var)`` with ``var > 0``.

    The limit laws that are Gaussian: ``log(X_1/X_0)`` for the GBM (hayou.md §3.1), the
    log-growth of the identity network (§4.2, Prop. 9), ``U_1`` of the OU activation (§3.3),
    and one coordinate after depth then width (§5, Thm 2).
    """

    def __init__(self, mean: float, var: float) -> None:
        self.loc = check_finite_float("mean", mean)
        self.variance = check_positive_float("var", var)
        self.scale = math.sqrt(self.variance)
        super().__init__("normal", {"mean": self.loc, "var": self.variance})

    def formula(self) -> str:
        return f"N({self.loc:.6g}, {self.variance:.6g})"

    def _standardize(self, x: np.ndarray) -> np.ndarray:
        return (x - self.loc) / self.scale

    def _cdf(self, x: np.ndarray) -> np.ndarray:
        return sc.ndtr(self._standardize(x))

    def _sf(self, x: np.ndarray) -> np.ndarray:
        return sc.ndtr(-self._standardize(x))

    def _ppf(self, q: np.ndarray) -> np.ndarray:
        return self.loc + self.scale * sc.ndtri(q)

    def _logpdf(self, x: np.ndarray) -> np.ndarray:
        z = self._standardize(x)
        return -0.5 * z * z - 0.5 * _LOG_2PI - math.log(self.scale)

    def _sample(self, rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
        return self.loc + self.scale * rng.standard_normal(shape)

    def median(self) -> float:
        return self.loc

    def mean(self) -> float:
        return self.loc

    def var(self) -> float:
        return self.variance

    def moment(self, order: int) -> float:
        order = check_int("order", order, minimum=1)
        # E[(mu + s Z)^k] = sum_j C(k, j) mu^(k-j) s^j E[Z^j], E[Z^j] = (j-1)!! for even j
        total = 0.0
        for j in range(0, order + 1, 2):
            double_factorial = math.prod(range(j - 1, 0, -2))
            total += (
                math.comb(order, j) * self.loc ** (order - j) * self.scale**j * double_factorial
            )
        return float(total)


class PointMassLaw(Law):
    """Dirac mass at ``value``: a collapsed or absorbed output (hayou.md §3.2, §4 Lemma 1)."""

    def __init__(self, value: float) -> None:
        self.value = check_finite_float("value", value)
        super().__init__("point_mass", {"value": self.value})

    def formula(self) -> str:
        return f"point mass at {self.value:.6g}"

    def _cdf(self, x: np.ndarray) -> np.ndarray:
        return np.where(np.isnan(x), np.nan, (x >= self.value).astype(np.float64))

    def _sf(self, x: np.ndarray) -> np.ndarray:
        return np.where(np.isnan(x), np.nan, (x < self.value).astype(np.float64))

    def _ppf(self, q: np.ndarray) -> np.ndarray:
        return np.full(q.shape, self.value)

    def _logpdf(self, x: np.ndarray) -> np.ndarray:
        raise ValueError(
            f"the point mass at {self.value:.6g} ({self.describe()}) has no density: "
            "logpdf is undefined; use cdf or ppf"
        )

    def _sample(self, rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
        return np.full(shape, self.value)

    def median(self) -> float:
        return self.value

    def mean(self) -> float:
        return self.value

    def var(self) -> float:
        return 0.0

    def moment(self, order: int) -> float:
        order = check_int("order", order, minimum=1)
        return float(self.value**order)


class ScaledLogNormalLaw(Law):
    """``X = scale * exp(G)`` with ``G ~ N(log_mean, log_var)`` and ``scale != 0``.

    The sign of ``scale`` is kept (negative ``scale``: a law on ``(-inf, 0)``). Moments:
    ``E[X^k] = scale^k exp(k log_mean + k^2 log_var / 2)``. This is the GBM law of §3.1 and the
    norm law of Prop. 9 (§4.2).
    """

    def __init__(self, scale: float, log_mean: float, log_var: float) -> None:
        self.scale = check_finite_float("scale", scale)
        if self.scale == 0.0:
            raise ValueError("scale must be a finite number != 0, got 0.0")
        self.log_mean = check_finite_float("log_mean", log_mean)
        self.log_var = check_positive_float("log_var", log_var)
        self._log_sd = math.sqrt(self.log_var)
        self._log_abs_scale = math.log(abs(self.scale))
        super().__init__(
            "scaled_lognormal",
            {"scale": self.scale, "log_mean": self.log_mean, "log_var": self.log_var},
        )

    def formula(self) -> str:
        return f"{self.scale:.6g} * exp(N({self.log_mean:.6g}, {self.log_var:.6g}))"

    def log_ratio(self) -> NormalLaw:
        """Law of ``log(X / scale) = N(log_mean, log_var)``."""
        return NormalLaw(self.log_mean, self.log_var)

    def _standardized_log(self, x: np.ndarray) -> np.ndarray:
        """``(log(x / scale) - log_mean) / sd`` where ``x / scale > 0``, ``-inf`` elsewhere."""
        ratio = x * math.copysign(1.0, self.scale)
        with np.errstate(divide="ignore", invalid="ignore"):
            z = (np.log(ratio) - self._log_abs_scale - self.log_mean) / self._log_sd
        return np.where(ratio > 0, z, np.where(np.isnan(x), np.nan, -np.inf))

    def _cdf(self, x: np.ndarray) -> np.ndarray:
        z = self._standardized_log(x)
        return sc.ndtr(z) if self.scale > 0 else sc.ndtr(-z)

    def _sf(self, x: np.ndarray) -> np.ndarray:
        z = self._standardized_log(x)
        return sc.ndtr(-z) if self.scale > 0 else sc.ndtr(z)

    def _ppf(self, q: np.ndarray) -> np.ndarray:
        z = sc.ndtri(q) if self.scale > 0 else -sc.ndtri(q)
        return self.scale * np.exp(self.log_mean + self._log_sd * z)

    def _logpdf(self, x: np.ndarray) -> np.ndarray:
        z = self._standardized_log(x)
        with np.errstate(divide="ignore", invalid="ignore"):
            log_abs = np.log(np.abs(x))
            value = -0.5 * z * z - 0.5 * _LOG_2PI - math.log(self._log_sd) - log_abs
        # outside the support (and at 0 and +-inf, where inf - inf would appear) the density is 0
        inside = (x * self.scale > 0) & np.isfinite(x)
        return np.where(inside | np.isnan(x), value, -np.inf)

    def _sample(self, rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
        return self.scale * np.exp(self.log_mean + self._log_sd * rng.standard_normal(shape))

    def median(self) -> float:
        return self.scale * math.exp(self.log_mean)

    def moment(self, order: int) -> float:
        order = check_int("order", order, minimum=1)
        exponent = order * (self._log_abs_scale + self.log_mean) + 0.5 * order**2 * self.log_var
        sign = -1.0 if (self.scale < 0 and order % 2 == 1) else 1.0
        return sign * _exp_or_inf(exponent)

    def var(self) -> float:
        # scale^2 e^{2 mu + s^2} (e^{s^2} - 1), without the cancellation of E[X^2] - E[X]^2
        exponent = 2.0 * (self._log_abs_scale + self.log_mean) + self.log_var
        if self.log_var > _MAX_EXP:
            return math.inf
        return _exp_or_inf(exponent) * math.expm1(self.log_var)


class GBMLaw(Law):
    """Width-1, linear activation ``phi(x) = a x`` (hayou.md §3.1, Prop. 2).

    The SDE ``dX = |a||X| dB`` gives ``X_1 = y0 exp(|a| B_1 - a^2/2)`` given ``X_0 = y0``: a
    log-normal law with the sign of ``y0``; ``E[X_1] = y0``, ``Var = y0^2 (e^{a^2} - 1)``,
    ``median = y0 e^{-a^2/2}``. ``y0 = 0`` or ``a = 0`` gives the point mass at ``y0``.
    """

    def __init__(self, a: float = 1.0, y0: float = 1.0) -> None:
        self.a = check_finite_float("a", a)
        self.y0 = check_finite_float("y0", y0)
        if self.y0 == 0.0 or self.a == 0.0:
            self._inner: Law = PointMassLaw(self.y0)
        else:
            self._inner = ScaledLogNormalLaw(self.y0, -0.5 * self.a**2, self.a**2)
        super().__init__("gbm", {"a": self.a, "y0": self.y0})

    def formula(self) -> str:
        return self._inner.formula()

    def log_ratio(self) -> Law:
        """Law of ``log(X_1/X_0) = |a| B_1 - a^2/2 ~ N(-a^2/2, a^2)`` (point mass 0 if a = 0)."""
        if self.y0 == 0.0:
            raise ValueError("y0 = 0: log(X_1/X_0) is undefined (X_1 = X_0 = 0); need y0 != 0")
        if self.a == 0.0:
            return PointMassLaw(0.0)
        return NormalLaw(-0.5 * self.a**2, self.a**2)

    def _sample(self, rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
        return self._inner._sample(rng, shape)

    def _cdf(self, x: np.ndarray) -> np.ndarray:
        return self._inner._cdf(x)

    def _sf(self, x: np.ndarray) -> np.ndarray:
        return self._inner._sf(x)

    def _ppf(self, q: np.ndarray) -> np.ndarray:
        return self._inner._ppf(q)

    def _logpdf(self, x: np.ndarray) -> np.ndarray:
        return self._inner._logpdf(x)

    def median(self) -> float:
        return self._inner.median()

    def mean(self) -> float:
        return self.y0

    def var(self) -> float:
        return self._inner.var()

    def moment(self, order: int) -> float:
        return self._inner.moment(order)


# Quadrature for the ReLU mixture's cdf, with Z ~ N(0, 1):
#   P(0 < X_0 e^G <= t) = E_Z[erf(t e^{1/2 - Z} / sqrt(2 q0))] / 2.
# The integrand is smooth and bounded by phi(z)/2; |z| > 10 carries < 1e-23.
_MIXTURE_Z, _MIXTURE_W = _composite_gauss_legendre(-10.0, 10.0, 40, 16)
_MIXTURE_W = _MIXTURE_W * np.exp(-0.5 * _MIXTURE_Z**2) / math.sqrt(2.0 * math.pi)
# Quadrature for the density's shape integral I(y) (see ReLUWidth1MixtureLaw._logpdf), in the
# variable s = delta * sqrt(2y + 1): the integrand is below exp(-s^2/2) for s < 0 and below
# exp(-0.28 s^2) for s > 0, so [-10, 16] loses less than e^-50 relative.
_DENSITY_S, _DENSITY_W = _composite_gauss_legendre(-10.0, 16.0, 26, 12)


def _bisect_increasing(
    function: Callable[[np.ndarray], np.ndarray],
    target: np.ndarray,
    lower: np.ndarray,
    upper: np.ndarray,
    iterations: int = 64,
) -> np.ndarray:
    """Vectorized bisection for ``function(u) = target`` with ``function`` increasing in ``u``."""
    lower, upper = lower.copy(), upper.copy()
    for _ in range(iterations):
        middle = 0.5 * (lower + upper)
        below = function(middle) < target
        lower = np.where(below, middle, lower)
        upper = np.where(below, upper, middle)
    return 0.5 * (lower + upper)


class ReLUWidth1MixtureLaw(Law):
    """Width-1 ReLU output with a random start (hayou.md §3.2, Prop. 3).

    ``X_1 = 1{X_0 > 0} X_0 exp(B_1 - 1/2) + 1{X_0 <= 0} X_0`` with ``X_0 = W_in x ~ N(0, q0)``,
    ``q0 = |x|^2/d``, independent of ``B``. With ``Phi`` the standard normal cdf and
    ``G = B_1 - 1/2 ~ N(-1/2, 1)``:

    * ``t <= 0``: ``P(X_1 <= t) = Phi(t / sqrt(q0))`` (the positive branch stays positive);
    * ``t > 0``: ``P(X_1 <= t) = 1/2 + E[Phi(t e^{-G} / sqrt(q0)) - 1/2]``
      ``= 1/2 + int_0^oo N(y; 0, q0) Phi(log(t/y) + 1/2) dy`` (quadrature, error < 1e-13).

    The density is the Gaussian one for ``t < 0`` and, for ``t > 0``,
    ``int N(t e^{-g}; 0, q0) e^{-g} N(g; -1/2, 1) dg`` (right limit ``e N(0; 0, q0)`` at 0).
    There is no atom: ``cdf(0) = 1/2`` and the median is 0. ``E[X_1] = 0``,
    ``Var(X_1) = (q0/2)(1 + e)``, ``E[X_1^k] = (E|X_0|^k / 2) ((-1)^k + e^{k(k-1)/2})``.

    Accuracy: ``cdf`` and ``sf`` to about 1e-16 absolute (``sf`` loses relative accuracy below
    about 1e-20, i.e. beyond ``t ~ 1e4 sqrt(q0)``); ``logpdf`` to about 1e-14 relative, far into
    both tails; ``ppf`` by 64 bisection steps on ``log t``.
    """

    def __init__(self, q0: float) -> None:
        self.q0 = check_positive_float("q0", q0)
        self._sd0 = math.sqrt(self.q0)
        super().__init__("relu_width1_mixture", {"q0": self.q0})

    def formula(self) -> str:
        return (
            "1{X_0>0} X_0 exp(B_1 - 1/2) + 1{X_0<=0} X_0, "
            f"X_0 ~ N(0, {self.q0:.6g}), B_1 ~ N(0, 1)"
        )

    def _positive_part(self, t: np.ndarray, upper_tail: bool) -> np.ndarray:
        """``P(0 < X_1 <= t)`` (or ``P(X_1 > t)`` if ``upper_tail``) for finite ``t > 0``."""
        out = np.empty(t.shape)
        flat, result = t.ravel(), out.reshape(-1)
        for start in range(0, flat.size, _CHUNK):
            c = flat[start : start + _CHUNK, None] * math.exp(0.5) / self._sd0
            w = c * np.exp(-_MIXTURE_Z[None, :]) / math.sqrt(2.0)
            integrand = sc.erfc(w) if upper_tail else sc.erf(w)
            result[start : start + _CHUNK] = 0.5 * (integrand @ _MIXTURE_W)
        return out

    def _cdf(self, x: np.ndarray) -> np.ndarray:
        positive = (x > 0) & np.isfinite(x)
        out = np.where(positive, 0.5, sc.ndtr(x / self._sd0))
        if np.any(positive):
            out[positive] += self._positive_part(x[positive], upper_tail=False)
        return out

    def _sf(self, x: np.ndarray) -> np.ndarray:
        positive = (x > 0) & np.isfinite(x)
        out = np.where(positive, 0.0, sc.ndtr(-x / self._sd0))
        if np.any(positive):
            out[positive] = self._positive_part(x[positive], upper_tail=True)
        return out

    def _ppf(self, q: np.ndarray) -> np.ndarray:
        out = np.where(q <= 0.5, self._sd0 * sc.ndtri(np.minimum(q, 0.5)), np.inf)
        inside = (q > 0.5) & (q < 1.0)
        if np.any(inside):
            # Bisect on log t: P(0 < X_1 <= t) = q - 1/2 (exact in floating point for q >= 1/2).
            # Bracket: the density on (0, oo) is at most ~e/sqrt(2 pi q0), so t = sqrt(q0) e^-60
            # is below any q - 1/2 >= 2^-53; above t = sqrt(q0) e^30 the mass is < 1e-50.
            target = q[inside] - 0.5
            log_sd0 = math.log(self._sd0)
            lower = np.full(target.shape, log_sd0 - 60.0)
            upper = np.full(target.shape, log_sd0 + 30.0)
            log_t = _bisect_increasing(
                lambda u: self._positive_part(np.exp(u), upper_tail=False), target, lower, upper
            )
            out[inside] = np.exp(log_t)
        return out

    def _logpdf(self, x: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore"):
            out = -0.5 * (x / self._sd0) ** 2 - 0.5 * _LOG_2PI - math.log(self._sd0)
        positive = (x > 0) & np.isfinite(x)
        if np.any(positive):
            out[positive] = self._log_density_positive(x[positive])
        out[x == np.inf] = -np.inf
        return out

    def _log_density_positive(self, t: np.ndarray) -> np.ndarray:
        """``log f(t)`` for ``t > 0``, accurate in relative terms far into the tail.

        With ``r = log(t/sqrt(q0))`` the integrand ``exp(l(g))`` has
        ``l(g) = -(g + 1/2)^2/2 - e^{2(r-g)}/2 - g - log(2 pi) - log(q0)/2``, which is strictly
        log-concave with its mode at ``g* = y - 3/2``, where ``y e^{2y} = e^{2r+3}``, i.e.
        ``2y = omega(2r + 3 + log 2)`` (Wright omega). Around the mode,
        ``l(g* + d) - l(g*) = -y (d - (1 - e^{-2d})/2) - d^2/2`` exactly, so
        ``f(t) = exp(l(g*)) I(y)`` with a one-parameter integral ``I(y)``, computed in
        ``d = s / sqrt(2y + 1)`` on a fixed grid.
        """
        r = np.log(t) - math.log(self._sd0)
        y = 0.5 * np.real(sc.wrightomega(2.0 * r + 3.0 + math.log(2.0)))
        mode = y - 1.5
        log_peak = -0.5 * (mode + 0.5) ** 2 - 0.5 * y - mode - _LOG_2PI - math.log(self._sd0)
        out = np.empty(t.shape)
        for start in range(0, t.size, _CHUNK):
            yy = y[start : start + _CHUNK, None]
            width = np.sqrt(2.0 * yy + 1.0)
            d = _DENSITY_S[None, :] / width
            psi = d + 0.5 * np.expm1(-2.0 * d)
            shape_integral = (np.exp(-yy * psi - 0.5 * d * d) @ _DENSITY_W) / width[:, 0]
            out[start : start + _CHUNK] = log_peak[start : start + _CHUNK] + np.log(shape_integral)
        return out

    def _sample(self, rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
        normals = rng.standard_normal((2, *shape))
        x0 = self._sd0 * normals[0]
        return np.where(x0 > 0, x0 * np.exp(normals[1] - 0.5), x0)

    def median(self) -> float:
        return 0.0

    def mean(self) -> float:
        return 0.0

    def var(self) -> float:
        return 0.5 * self.q0 * (1.0 + math.e)

    def moment(self, order: int) -> float:
        order = check_int("order", order, minimum=1)
        # E|X_0|^k = q0^{k/2} 2^{k/2} Gamma((k+1)/2) / sqrt(pi); E[e^{kG}] = e^{k(k-1)/2}
        log_abs = (
            0.5 * order * math.log(2.0 * self.q0)
            + math.lgamma(0.5 * (order + 1))
            - 0.5 * math.log(math.pi)
        )
        negative_branch = (-1.0) ** order * 0.5 * math.exp(log_abs)
        return negative_branch + 0.5 * _exp_or_inf(log_abs + 0.5 * order * (order - 1))


class OULaw(Law):
    """Width-1 Ornstein-Uhlenbeck activation (hayou.md §3.3, Prop. 4).

    With ``phi(x) = 2 sigma/(alpha beta sqrt(pi)) exp(E(beta x)^2)``, ``E = erfi^{-1}``, and
    ``theta = sigma^2/alpha^2``, ``U_t = E(beta X_t)`` solves ``dU = -theta U dt + sqrt(theta) dB``,
    so given ``X_0 = y0``: ``U_1 ~ N(m, s^2)`` with ``m = E(beta y0) e^{-theta}``,
    ``s^2 = (1 - e^{-2 theta})/2``, and ``X_1 = erfi(U_1)/beta``. Hence
    ``cdf(t) = Phi((E(beta t) - m)/s)``, density by ``dE/dy = (sqrt(pi)/2) exp(-E(y)^2)``,
    ``median = erfi(m)/beta``, ``E[X_1] = erfi(m/sqrt(1 - 2 s^2))/beta = y0`` (martingale).
    ``E[X_1^k]`` is finite iff ``k < 1/(2 s^2)``, i.e. the variance iff ``theta < ln(2)/2``
    (and also at ``theta = ln(2)/2`` exactly when ``y0 = 0``).
    """

    def __init__(
        self, alpha: float = 1.0, beta: float = 1.0, sigma: float = 1.0, y0: float = 1.0
    ) -> None:
        self.alpha = check_positive_float("alpha", alpha)
        self.beta = check_positive_float("beta", beta)
        self.sigma = check_positive_float("sigma", sigma)
        self.y0 = check_finite_float("y0", y0)
        self.theta = (self.sigma / self.alpha) ** 2
        if not (math.isfinite(self.theta) and self.theta > 0):
            raise ValueError(
                f"theta = sigma^2/alpha^2 must be finite and > 0, got {self.theta!r} "
                f"(sigma={self.sigma!r}, alpha={self.alpha!r})"
            )
        self.u0 = float(_erfi_inverse_np(self.beta * self.y0))
        self.u_mean = self.u0 * math.exp(-self.theta)
        self.u_var = -0.5 * math.expm1(-2.0 * self.theta)
        self._u_sd = math.sqrt(self.u_var)
        super().__init__(
            "ou",
            {"alpha": self.alpha, "beta": self.beta, "sigma": self.sigma, "y0": self.y0},
        )

    def formula(self) -> str:
        return (
            f"erfi(U_1)/{self.beta:.6g}, U_1 ~ N({self.u_mean:.6g}, {self.u_var:.6g}), "
            f"theta={self.theta:.6g}"
        )

    def u_law(self) -> NormalLaw:
        """Law of ``U_1 = E(beta X_1) ~ N(E(beta y0) e^{-theta}, (1 - e^{-2 theta})/2)``."""
        return NormalLaw(self.u_mean, self.u_var)

    def _u_standardized(self, x: np.ndarray) -> np.ndarray:
        return (_erfi_inverse_np(self.beta * x) - self.u_mean) / self._u_sd

    def _cdf(self, x: np.ndarray) -> np.ndarray:
        return sc.ndtr(self._u_standardized(x))

    def _sf(self, x: np.ndarray) -> np.ndarray:
        return sc.ndtr(-self._u_standardized(x))

    def _ppf(self, q: np.ndarray) -> np.ndarray:
        with np.errstate(over="ignore"):
            return sc.erfi(self.u_mean + self._u_sd * sc.ndtri(q)) / self.beta

    def _logpdf(self, x: np.ndarray) -> np.ndarray:
        u = _erfi_inverse_np(self.beta * x)
        z = (u - self.u_mean) / self._u_sd
        log_normal = -0.5 * z * z - 0.5 * _LOG_2PI - math.log(self._u_sd)
        return log_normal + math.log(self.beta) + _LOG_SQRT_PI_OVER_2 - u * u

    def _sample(self, rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
        u = self.u_mean + self._u_sd * rng.standard_normal(shape)
        return sc.erfi(u) / self.beta

    def median(self) -> float:
        return float(sc.erfi(self.u_mean)) / self.beta

    def mean(self) -> float:
        return self.y0

    def var(self) -> float:
        second = self.moment(2)
        if math.isinf(second):
            return math.inf
        return max(second - self.y0**2, 0.0)

    def moment(self, order: int) -> float:
        """``E[X_1^k] = beta^-k E[erfi(U)^k]``, by quadrature (``inf``/``nan`` if not finite).

        With Dawson's ``F`` (``erfi(u) = (2/sqrt(pi)) e^{u^2} F(u)``) and ``a = 1/(2 s^2) - k``,
        completing the square gives, for ``a > 0``,
        ``E[erfi(U)^k] = (2/sqrt(pi))^k e^{k m^2 a^-1 / (2 s^2)} / (s sqrt(2 pi))``
        ``* int F(u)^k exp(-a (u - c)^2) du`` with ``c = m / (2 s^2 a)``: a bounded integrand.
        For ``a < 0`` the moment is infinite (``nan`` for odd ``k``: both tails diverge);
        at ``a = 0`` it is finite only for ``m = 0`` (then ``F^k ~ (2u)^-k``).
        """
        order = check_int("order", order, minimum=1)
        m, s2 = self.u_mean, self.u_var
        a = 1.0 / (2.0 * s2) - order
        if a < 0 or (a == 0 and m != 0):
            return math.inf if order % 2 == 0 else math.nan
        centre = m / (2.0 * s2 * a) if a > 0 else 0.0
        exponent = order * m * m / (2.0 * s2 * a) if a > 0 else 0.0
        log_scale = (
            order * math.log(2.0 / _SQRT_PI)
            + exponent
            - math.log(math.sqrt(s2) * math.sqrt(2.0 * math.pi))
            - order * math.log(self.beta)
        )
        if a > 0:
            # Near theta = ln(2)/2 the exponent explodes; once a lower bound on the integral,
            # from F(u) >= 1/(3u) for u >= 1 on [c', c' + a^-1/2], c' = max(|c|, 1), is enough
            # to overflow, the moment is +-inf without integrating.
            width = 1.0 / math.sqrt(a)
            log_lower = (
                -((1.0 + math.sqrt(a)) ** 2)
                + math.log(width)
                - order * math.log(3.0 * (abs(centre) + 1.0 + width))
            )
            if log_scale + log_lower > _MAX_EXP:
                return math.copysign(math.inf, m) if order % 2 == 1 else math.inf
            integral = self._dawson_gaussian_integral(order, a, centre)
        else:
            integral = self._dawson_power_integral(order)
        if integral == 0.0:
            return 0.0
        sign = math.copysign(1.0, integral)
        return sign * _exp_or_inf(log_scale + math.log(abs(integral)))

    @staticmethod
    def _dawson_gaussian_integral(order: int, a: float, centre: float) -> float:
        """``int F(u)^k exp(-a (u - c)^2) du`` over the real line (``a > 0``)."""

        def integrand(u: float) -> float:
            return float(sc.dawsn(u)) ** order * math.exp(-a * (u - centre) ** 2)

        # Odd k: the two signs of F cancel, so also allow an absolute error relative to the
        # integral of |F|^k <= 0.55^k against the Gaussian weight (mass sqrt(pi/a)).
        tolerance = 1e-14 * 0.55**order * math.sqrt(math.pi / a)
        total = 0.0
        for lo, hi in ((-math.inf, centre), (centre, math.inf)):
            value, _ = scipy.integrate.quad(
                integrand, lo, hi, epsabs=tolerance, epsrel=1e-12, limit=200
            )
            total += value
        return total

    @staticmethod
    def _dawson_power_integral(order: int) -> float:
        """``int F(u)^k du`` over the real line (``k >= 2``; ``F(u) ~ 1/(2u)``).

        The slowly decaying tail ``u > 1`` is mapped to ``v = 1/u`` in ``(0, 1)``.
        """
        if order % 2 == 1:
            return 0.0  # odd integrand, absolutely integrable for k >= 2
        inner, _ = scipy.integrate.quad(
            lambda u: float(sc.dawsn(u)) ** order, 0.0, 1.0, epsabs=0.0, epsrel=1e-12
        )
        outer, _ = scipy.integrate.quad(
            lambda v: float(sc.dawsn(1.0 / v)) ** order / (v * v),
            0.0,
            1.0,
            epsabs=0.0,
            epsrel=1e-12,
        )
        return 2.0 * (inner + outer)


def normal_law(mean: float, var: float) -> NormalLaw:
    """The Gaussian law ``N(mean, var)``, ``var > 0`` (the Gaussian limits of hayou.md §3-5)."""
    return NormalLaw(mean, var)


def gbm_law(a: float = 1.0, y0: float = 1.0) -> GBMLaw:
    """Law of ``X_1`` given ``X_0 = y0`` for width 1 and ``phi(x) = a x`` (hayou.md §3.1, Prop. 2).

    ``dX = |a||X| dB``, so ``X_1 = y0 exp(|a| B_1 - a^2/2)``: log-normal with the sign of ``y0``,
    ``log(X_1/X_0) ~ N(-a^2/2, a^2)`` (``log_ratio()``); ``y0 = 0`` is the point mass at 0.
    """
    return GBMLaw(a, y0)


def relu_width1_law(y0: float | None = None, x: ArrayLike | None = None) -> Law:
    """Law of ``X_1`` for width 1 and ReLU (hayou.md §3.2, Prop. 3).

    ``X_1 = 1{X_0 > 0} X_0 exp(B_1 - 1/2) + 1{X_0 <= 0} X_0``. Give exactly one of

    * ``y0``: a fixed start. ``y0 > 0``: the GBM law ``y0 exp(B_1 - 1/2)`` (``gbm_law(1, y0)``);
      ``y0 <= 0``: the point mass at ``y0`` (``phi(y0) = 0`` is absorbing);
    * ``x``: the input (scalar or vector of dimension ``d``), ``X_0 = W_in x ~ N(0, q0)`` with
      ``q0 = |x|^2/d``: the continuous mixture ``ReLUWidth1MixtureLaw(q0)`` (``x = 0``: point
      mass at 0).
    """
    if (y0 is None) == (x is None):
        raise ValueError("give exactly one of y0 (a fixed X_0) and x (the input), not both/neither")
    if y0 is not None:
        start = check_finite_float("y0", y0)
        parameters = {"y0": start}
        if start > 0:
            return GBMLaw(1.0, start)._labelled("relu_width1", parameters)
        return PointMassLaw(start)._labelled("relu_width1", parameters)
    inputs = check_real_array("x", x)
    if inputs.ndim > 1 or inputs.size == 0:
        raise ValueError(f"x must be a finite scalar or non-empty 1-D vector, got {x!r}")
    inputs = inputs.reshape(-1)
    q0 = float(np.mean(inputs**2))
    parameters = {"x": inputs.tolist(), "q0": q0}
    if q0 == 0.0:
        return PointMassLaw(0.0)._labelled("relu_width1", parameters)
    return ReLUWidth1MixtureLaw(q0)._labelled("relu_width1", parameters)


def _check_depths(name: str, depth: ArrayLike, minimum: int) -> np.ndarray:
    try:
        values = check_real_array(name, depth)
    except ValueError:
        raise ValueError(f"{name} must be integers >= {minimum}, got {depth!r}") from None
    if not np.all(np.isfinite(values) & (values == np.floor(values)) & (values >= minimum)):
        raise ValueError(f"{name} must be integers >= {minimum}, got {depth!r}")
    return values


def relu_width1_collapse_probability(
    depth: ArrayLike, layer: ArrayLike | None = None
) -> float | np.ndarray:
    """``P(collapse at or before layer l | Y_0 > 0)`` for the width-1 ReLU ResNet (§3.2).

    Given ``Y_0 > 0`` the depth-``L`` chain is ``Y_l = Y_{l-1} (1 + Z_l/sqrt(L))`` until a factor
    is ``<= 0`` (collapse, absorbing). So ``P = 1 - (1 - Phi(-sqrt(L)))^l``, with ``l = L`` by
    default, computed as ``-expm1(l log Phi(sqrt(L)))``: accurate down to tiny values
    (``L = 100``: 7.6e-22). Values for ``l = L``: 1: .159, 2: .151, 5: .062, 10: .0078,
    20: 7.7e-5. ``depth`` (and ``layer``, ``0 <= layer <= depth``) may be arrays (broadcast).
    """
    depths = _check_depths("depth", depth, 1)
    layers = depths if layer is None else _check_depths("layer", layer, 0)
    if np.any(layers > depths):
        raise ValueError(f"layer must be integers in [0, depth], got layer={layer!r}")
    return _scalar_or_array(-np.expm1(layers * sc.log_ndtr(np.sqrt(depths))))


def relu_width1_nonpositive_probability(depth: ArrayLike) -> float | np.ndarray:
    """``P(Y_L <= 0) = 1/2 + p_col(L)/2`` for the width-1 ReLU ResNet with random ``Y_0``.

    hayou.md §3.2 and §8 C5: ``Y_0 = W_in x`` is ``<= 0`` with probability 1/2 (then
    ``Y_L = Y_0``), and otherwise ends ``<= 0`` iff the chain collapses
    (``relu_width1_collapse_probability``). Tends to 1/2 as ``L -> oo`` (Prop. 3).
    """
    return _scalar_or_array(0.5 + 0.5 * np.asarray(relu_width1_collapse_probability(depth)))


def ou_law(alpha: float = 1.0, beta: float = 1.0, sigma: float = 1.0, y0: float = 1.0) -> OULaw:
    """Law of ``X_1`` given ``X_0 = y0`` for width 1 and the OU activation (§3.3, Prop. 4).

    ``X_1 = erfi(U_1)/beta`` with ``U_1 ~ N(E(beta y0) e^{-theta}, (1 - e^{-2 theta})/2)``,
    ``theta = sigma^2/alpha^2``, ``E = erfi^{-1}``. ``alpha, beta, sigma > 0``.
    """
    return OULaw(alpha, beta, sigma, y0)


def identity_log_norm_law(width: int) -> NormalLaw:
    """``log(|X_1|/|X_0|) ~ N((n-2)/(2n), 1/n)`` for ``phi = id``, any width (§4.2, Prop. 9).

    ``d|X_t| = ((n-1)/(2n)) |X_t| dt + n^{-1/2} |X_t| dW_t`` is an exact GBM.
    """
    n = check_int("width", width, minimum=1)
    return NormalLaw((n - 2) / (2 * n), 1.0 / n)._labelled("identity_log_norm", {"width": n})


def identity_norm_law(width: int, norm0: float) -> ScaledLogNormalLaw:
    """``|X_1|`` given ``|X_0| = norm0`` for ``phi = id`` (§4.2, Prop. 9).

    ``|X_1| = norm0 exp(G)``, ``G ~ N((n-2)/(2n), 1/n)``: log-normal, with
    ``E|X_1| = norm0 e^{(n-1)/(2n)}`` and ``E|X_1|^2 = e norm0^2``.
    """
    n = check_int("width", width, minimum=1)
    start = check_positive_float("norm0", norm0)
    law = ScaledLogNormalLaw(start, (n - 2) / (2 * n), 1.0 / n)
    return law._labelled("identity_norm", {"width": n, "norm0": start})


def depth_then_width_law(q0: float = 1.0, t: float = 1.0) -> NormalLaw:
    """One coordinate of ``X_t`` as ``n -> oo`` after ``L -> oo``, ReLU (§5, Thm 2).

    The McKean-Vlasov limit ``dX = (E phi(X)^2)^{1/2} dB`` is Gaussian with ``q_t' = q_t/2``:
    ``N(0, q0 e^{t/2})``, ``q0 = |x|^2/d > 0``, ``t`` in ``[0, 1]``.
    """
    variance0 = check_positive_float("q0", q0)
    time = check_finite_float("t", t)
    if not 0.0 <= time <= 1.0:
        raise ValueError(f"t must be a time in [0, 1], got {t!r}")
    law = NormalLaw(0.0, variance0 * math.exp(0.5 * time))
    return law._labelled("depth_then_width", {"q0": variance0, "t": time})
