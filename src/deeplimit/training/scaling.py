"""Parametrizations: residual scale and learning rate as functions of the shape (chizat.md §1).

All objects here speak the units of the 2LP model of chizat.md §1.2 ("Eq. (22)" units:
``u, v`` entries ``N(0, D)``, ``||h|| ~ sqrt(D)``):

    h_l = h_{l-1} + c * sum_{j<=M} phi(h_{l-1}, z_{j,l}),     Z <- Z - lr_raw * dR/dZ,

and resolve, for a shape ``(L, M, D)``, to the residual scale ``c`` and the raw learning rate
``lr_raw`` (the number that multiplies the gradient; ``relative_lrs`` can scale it per
parameter name, e.g. ``{"u": 2.0}`` for ``eta_u = 2 eta_v``).

* ``MeanFieldScaling(alpha, lr)``: ``c = alpha/(LM)``, ``lr_raw = lr * L M D / alpha^2``
  (chizat.md §1.1 Eq. (5), §1.2). ``alpha = 1`` is the paper's critical 2LP scale: in the
  normalized units of §1.3 (``h~ = h/sqrt(D)``, ``u~ = u/sqrt(D)``, ``v^ = v/D``) the residual
  scale reads ``alpha sqrt(D)/(LM)``, i.e. ``sqrt(D)/(LM)`` — see ``normalized_residual_scale``.
  ``lr = 0.5`` is the authors' Julia ``eta = 1`` (their loss carries a factor 1/2).
* ``LazyScaling(exponent)``: the same family with ``alpha = alpha0 (LM)^exponent``,
  ``0 < exponent < 1/2``: the lazy ODE regime ``1 << alpha << sqrt(LM)`` (§2.3, §3 "Lazy").
* ``PowerLawScaling``: ``c = c0 L^a_L M^a_M D^a_D``, ``lr_raw = eta0 L^b_L M^b_M D^b_D``. Its
  ``phase_point(a, b)`` is the two-number family ``c = alpha (LM)^-a``,
  ``lr_raw = (lr/alpha^2) D (LM)^b`` that a phase diagram sweeps; ``(a, b) = (1, 1)`` is
  ``MeanFieldScaling``, and the line ``b = 2a - 1`` is ``alpha = (LM)^(1-a)``.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import check_finite_float, check_positive_float

__all__ = [
    "LazyScaling",
    "MeanFieldScaling",
    "PowerLawScaling",
    "ResolvedScaling",
    "Scaling",
    "predicted_regime",
    "resolve_scaling",
]


def _relative_lrs(value: Mapping[str, float] | None) -> tuple[tuple[str, float], ...]:
    if value is None:
        return ()
    if not isinstance(value, Mapping):
        raise ValueError(
            "relative_lrs must be a mapping from parameter name to a positive factor, e.g. "
            f"{{'u': 1.0, 'v': 0.5}}; got {type(value).__name__}"
        )
    return tuple(
        sorted(
            (str(name), check_positive_float(f"relative_lrs[{name!r}]", factor))
            for name, factor in value.items()
        )
    )


@dataclass(frozen=True)
class ResolvedScaling:
    """Numbers for one shape: ``h += residual_scale * branch``; ``Z -= lr(Z) * dR/dZ``."""

    residual_scale: float
    learning_rate: float
    relative_lrs: tuple[tuple[str, float], ...] = ()

    def lr_for(self, name: str) -> float:
        """The raw learning rate of parameter ``name``."""
        return self.learning_rate * dict(self.relative_lrs).get(name, 1.0)


class Scaling(ABC):
    """A parametrization: residual scale and raw learning rate as functions of ``(L, M, D)``."""

    relative_lrs: tuple[tuple[str, float], ...] = ()

    @abstractmethod
    def residual_scale(self, depth: int, hidden_width: int, embedding_dim: int) -> float:
        """``c`` in ``h_l = h_{l-1} + c sum_j phi(h_{l-1}, z_{j,l})``."""

    @abstractmethod
    def learning_rate(self, depth: int, hidden_width: int, embedding_dim: int) -> float:
        """Raw learning rate: ``Z <- Z - lr_raw dR/dZ`` (before ``relative_lrs``)."""

    def resolve(self, depth: int, hidden_width: int, embedding_dim: int) -> ResolvedScaling:
        c = self.residual_scale(depth, hidden_width, embedding_dim)
        lr = self.learning_rate(depth, hidden_width, embedding_dim)
        if not (math.isfinite(c) and math.isfinite(lr)):
            raise ValueError(
                f"{self!r} gives a non-finite residual scale ({c}) or learning rate ({lr}) at "
                f"depth={depth}, hidden_width={hidden_width}, embedding_dim={embedding_dim}"
            )
        return ResolvedScaling(c, lr, self.relative_lrs)

    def effective_alpha(self, depth: int, hidden_width: int, embedding_dim: int) -> float:
        """``alpha = c L M``: the richness dial of the general model (chizat.md §1.1)."""
        return self.residual_scale(depth, hidden_width, embedding_dim) * depth * hidden_width

    def effective_lr(self, depth: int, hidden_width: int, embedding_dim: int) -> float:
        """``eta`` with ``lr_raw = eta L M D / alpha^2`` (the ``lr`` of ``MeanFieldScaling``)."""
        alpha = self.effective_alpha(depth, hidden_width, embedding_dim)
        raw = self.learning_rate(depth, hidden_width, embedding_dim)
        return raw * alpha**2 / (depth * hidden_width * embedding_dim)

    def normalized_residual_scale(self, depth: int, hidden_width: int, embedding_dim: int) -> float:
        """The residual scale in the normalized units of chizat.md §1.3 (``||h~|| = O(1)``):
        ``c sqrt(D)``; ``sqrt(D)/(LM)`` for the critical 2LP scaling."""
        return self.residual_scale(depth, hidden_width, embedding_dim) * math.sqrt(embedding_dim)


@dataclass(frozen=True)
class MeanFieldScaling(Scaling):
    """``c = alpha/(LM)``, ``lr_raw = lr L M D / alpha^2`` (chizat.md §1.1 Eq. (5), §1.2).

    Each unit moves ``O(lr/alpha)`` per step, the function ``O(lr)``. ``alpha = 1`` (default) is
    the critical / maximal-local-update scale ``sqrt(D)/(LM)`` of the 2LP (§1.3, Thm 3).
    """

    alpha: float = 1.0
    lr: float = 0.5
    relative_lrs: Any = field(default=None)

    def __post_init__(self) -> None:
        object.__setattr__(self, "alpha", check_positive_float("alpha", self.alpha))
        object.__setattr__(self, "lr", check_positive_float("lr", self.lr, allow_zero=True))
        object.__setattr__(self, "relative_lrs", _relative_lrs(self.relative_lrs))

    def residual_scale(self, depth: int, hidden_width: int, embedding_dim: int) -> float:
        return self.alpha / (depth * hidden_width)

    def learning_rate(self, depth: int, hidden_width: int, embedding_dim: int) -> float:
        return self.lr * depth * hidden_width * embedding_dim / self.alpha**2


@dataclass(frozen=True)
class LazyScaling(Scaling):
    """The lazy ODE regime (chizat.md §2.3): ``MeanFieldScaling`` with
    ``alpha = alpha0 (LM)^exponent``, ``0 < exponent < 1/2`` so that ``1 << alpha << sqrt(LM)``.

    Units move ``O(1/alpha)``, the function ``O(lr)``; [T] predicts the best approximation of
    the Neural Tangent ODE at ``exponent = 1/4`` (error ``(LM)^(-1/4)``), unverified.
    """

    exponent: float = 0.25
    alpha0: float = 1.0
    lr: float = 0.5
    relative_lrs: Any = field(default=None)

    def __post_init__(self) -> None:
        exponent = check_finite_float("exponent", self.exponent)
        if not 0.0 < exponent < 0.5:
            raise ValueError(
                f"exponent must be in (0, 1/2) for the lazy regime 1 << alpha << sqrt(LM), "
                f"got {self.exponent!r}"
            )
        object.__setattr__(self, "exponent", exponent)
        object.__setattr__(self, "alpha0", check_positive_float("alpha0", self.alpha0))
        object.__setattr__(self, "lr", check_positive_float("lr", self.lr, allow_zero=True))
        object.__setattr__(self, "relative_lrs", _relative_lrs(self.relative_lrs))

    def alpha(self, depth: int, hidden_width: int) -> float:
        return self.alpha0 * float(depth * hidden_width) ** self.exponent

    def residual_scale(self, depth: int, hidden_width: int, embedding_dim: int) -> float:
        return self.alpha(depth, hidden_width) / (depth * hidden_width)

    def learning_rate(self, depth: int, hidden_width: int, embedding_dim: int) -> float:
        alpha = self.alpha(depth, hidden_width)
        return self.lr * depth * hidden_width * embedding_dim / alpha**2


def _exponents(name: str, value: Any) -> tuple[float, float, float]:
    try:
        values = tuple(value)
    except TypeError:
        values = ()
    if len(values) != 3:
        raise ValueError(f"{name} must be three exponents (on L, M, D), got {value!r}")
    a_l, a_m, a_d = (check_finite_float(f"{name}[{i}]", v) for i, v in enumerate(values))
    return a_l, a_m, a_d


@dataclass(frozen=True)
class PowerLawScaling(Scaling):
    """The general family ``c = c0 L^a_L M^a_M D^a_D``, ``lr_raw = eta0 L^b_L M^b_M D^b_D``.

    Defaults reproduce ``MeanFieldScaling(1, 0.5)``. ``phase_point(a, b)`` gives the
    two-parameter slice a phase diagram sweeps.
    """

    residual_constant: float = 1.0
    residual_exponents: Any = (-1.0, -1.0, 0.0)
    lr_constant: float = 0.5
    lr_exponents: Any = (1.0, 1.0, 1.0)
    relative_lrs: Any = field(default=None)

    def __post_init__(self) -> None:
        object.__setattr__(
            self,
            "residual_constant",
            check_positive_float("residual_constant", self.residual_constant),
        )
        object.__setattr__(
            self,
            "lr_constant",
            check_positive_float("lr_constant", self.lr_constant, allow_zero=True),
        )
        object.__setattr__(
            self, "residual_exponents", _exponents("residual_exponents", self.residual_exponents)
        )
        object.__setattr__(self, "lr_exponents", _exponents("lr_exponents", self.lr_exponents))
        object.__setattr__(self, "relative_lrs", _relative_lrs(self.relative_lrs))

    @classmethod
    def phase_point(
        cls, a: float, b: float, *, alpha: float = 1.0, lr: float = 0.5
    ) -> PowerLawScaling:
        """``c = alpha (LM)^(-a)``, ``lr_raw = (lr / alpha^2) D (LM)^b``.

        ``(1, 1)``: mean-field / critical (``MeanFieldScaling(alpha, lr)``); the line
        ``b = 2a - 1`` is the ``alpha/(LM)`` family with ``alpha = (LM)^(1-a)``.
        """
        a = check_finite_float("a (residual-scale exponent)", a)
        b = check_finite_float("b (learning-rate exponent)", b)
        alpha = check_positive_float("alpha", alpha)
        lr = check_positive_float("lr", lr, allow_zero=True)
        return cls(
            residual_constant=alpha,
            residual_exponents=(-a, -a, 0.0),
            lr_constant=lr / alpha**2,
            lr_exponents=(b, b, 1.0),
        )

    def residual_scale(self, depth: int, hidden_width: int, embedding_dim: int) -> float:
        a_l, a_m, a_d = self.residual_exponents
        return (
            self.residual_constant
            * float(depth) ** a_l
            * float(hidden_width) ** a_m
            * float(embedding_dim) ** a_d
        )

    def learning_rate(self, depth: int, hidden_width: int, embedding_dim: int) -> float:
        b_l, b_m, b_d = self.lr_exponents
        return (
            self.lr_constant
            * float(depth) ** b_l
            * float(hidden_width) ** b_m
            * float(embedding_dim) ** b_d
        )


def predicted_regime(a: float, b: float, *, atol: float = 1e-9) -> str:
    """Regime of ``PowerLawScaling.phase_point(a, b)`` as ``LM -> infinity`` (fixed D, K).

    Editorial, by counting orders (chizat.md §3 "Phase diagram" table, not from the paper):
    a GD step moves each unit by ``lr_raw c ~ (LM)^(b-a)`` and the function by
    ``LM lr_raw c^2 ~ (LM)^(1+b-2a)``; the initial branch sum has size ``c sqrt(LM) ~
    (LM)^(1/2-a)``. So ``b > 2a - 1``: the function step blows up; ``b < 2a - 1``: the function
    freezes; on ``b = 2a - 1``: ``a = 1`` Mean ODE (complete feature learning), ``1/2 < a < 1``
    lazy ODE, ``a = 1/2`` O(1) fluctuations (no ODE limit), ``a < 1/2`` the initial output
    blows up, ``a > 1`` units move unboundedly per step (outside the theory).
    """
    a = check_finite_float("a", a)
    b = check_finite_float("b", b)
    excess = b - (2 * a - 1)
    if excess > atol:
        return "unstable: function step grows like (LM)^(1+b-2a)"
    if excess < -atol:
        return "frozen: function step vanishes like (LM)^(1+b-2a), no learning in the limit"
    if abs(a - 1) <= atol:
        return "mean ODE: complete feature learning (alpha = Theta(1))"
    if a > 1:
        return "units move unboundedly per step (alpha -> 0): outside the theory"
    if a > 0.5 + atol:
        return "lazy ODE: linearized dynamics (1 << alpha << sqrt(LM))"
    if abs(a - 0.5) <= atol:
        return "critical fluctuations: alpha ~ sqrt(LM), SDE-type limit, no ODE limit"
    return "initial output blows up: alpha >> sqrt(LM)"


def resolve_scaling(scaling: Any, *, alpha: Any = 1.0, lr: Any = 0.5) -> Scaling:
    """``scaling`` if it is a ``Scaling``, else ``MeanFieldScaling(alpha, lr)``."""
    if scaling is None:
        return MeanFieldScaling(alpha=alpha, lr=lr)
    if not isinstance(scaling, Scaling):
        raise ValueError(
            "scaling must be a Scaling (MeanFieldScaling, LazyScaling, PowerLawScaling) or None, "
            f"got {type(scaling).__name__}"
        )
    return scaling
