"""Activation functions with their first two derivatives.

Every activation is a small frozen object with ``phi(x)``, ``derivative(x)`` (phi') and
``second_derivative(x)`` (phi''), vectorized over torch tensors on any device and dtype, and a
``spec`` string that ``parse_activation`` turns back into an equal object (the CLI syntax):

=======================================  =========================================================
spec                                     phi(x)
=======================================  =========================================================
``linear:a=1`` (``identity``)            ``a x``
``relu``                                 ``max(x, 0)``
``leaky:alpha=1,beta=0.5``               ``alpha x`` for ``x >= 0``, ``beta x`` for ``x < 0``
``tanh``                                 ``tanh(x)``
``gelu``                                 ``x Phi(x)`` (exact, with the Gaussian cdf ``Phi``)
``silu`` (``swish``)                     ``x sigmoid(x)``
``softplus_m:m=10``                      ``(log(1 + e^{m x}) - log 2) / m`` (hayou.md §4, Lemma 3)
``ou:alpha=1,beta=1,sigma=1``            ``2 sigma / (alpha beta sqrt(pi)) exp(E(beta x)^2)``
=======================================  =========================================================

``ou`` is the Ornstein-Uhlenbeck activation of Hayou's Prop. 4 (hayou.md §3.3): with it the
width-1 SDE ``dX = |phi(X)| dB`` maps through ``U = E(beta X)`` (``E`` the inverse of ``erfi``)
to the OU process ``dU = -theta U dt + sqrt(theta) dB``, ``theta = sigma^2 / alpha^2``.

At the kinks of ``relu`` and ``leaky`` the derivative takes the value of the left branch at 0
(0 for ReLU) and ``phi''`` is 0 everywhere (the Dirac mass is not represented).

Any callable ``f: Tensor -> Tensor`` acting elementwise is wrapped by ``parse_activation`` into
a ``CustomActivation`` whose derivatives come from autograd.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from .errors import check_finite_float, check_positive_float
from .special import erfi_inverse

__all__ = [
    "GELU",
    "OU",
    "Activation",
    "CustomActivation",
    "Linear",
    "PiecewiseLinear",
    "ReLU",
    "SiLU",
    "SoftplusM",
    "Tanh",
    "available_activations",
    "parse_activation",
]

_SQRT_PI = math.sqrt(math.pi)
_INV_SQRT_2 = 1.0 / math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


class Activation:
    """Base class: ``phi``, its derivatives, and a parsable ``spec``."""

    name: str = ""

    def phi(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def derivative(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def second_derivative(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def __call__(self, x: Tensor) -> Tensor:
        return self.phi(x)

    @property
    def parameters(self) -> dict[str, float]:
        return {}

    @property
    def spec(self) -> str:
        """The string ``parse_activation`` maps back to this activation."""
        params = self.parameters
        if not params:
            return self.name
        return self.name + ":" + ",".join(f"{k}={v:g}" for k, v in params.items())

    @property
    def positively_homogeneous(self) -> bool:
        """``phi(c x) = c phi(x)`` for ``c > 0`` (then log-growth does not depend on ``|x|``)."""
        return False

    def __repr__(self) -> str:
        return f"Activation({self.spec!r})"


class _PiecewiseLinearActivation(Activation):
    """Linear on each side of 0 and positively homogeneous: ``phi'' = 0`` (off the kink)."""

    def second_derivative(self, x: Tensor) -> Tensor:
        return torch.zeros_like(x)

    @property
    def positively_homogeneous(self) -> bool:
        return True


@dataclass(frozen=True, repr=False)
class Linear(_PiecewiseLinearActivation):
    """``phi(x) = a x``; ``a = 1`` is the identity of Prop. 9."""

    a: float = 1.0
    name: str = field(default="linear", init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "a", check_finite_float("linear activation parameter a", self.a))

    def phi(self, x: Tensor) -> Tensor:
        return self.a * x

    def derivative(self, x: Tensor) -> Tensor:
        return torch.full_like(x, self.a)

    @property
    def parameters(self) -> dict[str, float]:
        return {"a": self.a}


@dataclass(frozen=True, repr=False)
class ReLU(_PiecewiseLinearActivation):
    """``phi(x) = max(x, 0)``; ``phi'(0) = 0``."""

    name: str = field(default="relu", init=False)

    def phi(self, x: Tensor) -> Tensor:
        return torch.clamp(x, min=0)

    def derivative(self, x: Tensor) -> Tensor:
        return (x > 0).to(x.dtype)


@dataclass(frozen=True, repr=False)
class PiecewiseLinear(_PiecewiseLinearActivation):
    """``phi(x) = alpha x`` for ``x >= 0`` and ``beta x`` for ``x < 0`` (Prop. 10)."""

    alpha: float = 1.0
    beta: float = 0.01
    name: str = field(default="leaky", init=False)

    def __post_init__(self) -> None:
        for key in ("alpha", "beta"):
            value = check_finite_float(f"leaky activation parameter {key}", getattr(self, key))
            object.__setattr__(self, key, value)

    def phi(self, x: Tensor) -> Tensor:
        return torch.where(x >= 0, self.alpha * x, self.beta * x)

    def derivative(self, x: Tensor) -> Tensor:
        return torch.where(x > 0, torch.full_like(x, self.alpha), torch.full_like(x, self.beta))

    @property
    def parameters(self) -> dict[str, float]:
        return {"alpha": self.alpha, "beta": self.beta}


@dataclass(frozen=True, repr=False)
class Tanh(Activation):
    name: str = field(default="tanh", init=False)

    def phi(self, x: Tensor) -> Tensor:
        return torch.tanh(x)

    def derivative(self, x: Tensor) -> Tensor:
        t = torch.tanh(x)
        return 1.0 - t * t

    def second_derivative(self, x: Tensor) -> Tensor:
        t = torch.tanh(x)
        return -2.0 * t * (1.0 - t * t)


@dataclass(frozen=True, repr=False)
class GELU(Activation):
    """``phi(x) = x Phi(x)`` with the exact Gaussian cdf."""

    name: str = field(default="gelu", init=False)

    def phi(self, x: Tensor) -> Tensor:
        return x * 0.5 * torch.erfc(-x * _INV_SQRT_2)

    def derivative(self, x: Tensor) -> Tensor:
        return 0.5 * torch.erfc(-x * _INV_SQRT_2) + x * _INV_SQRT_2PI * torch.exp(-0.5 * x * x)

    def second_derivative(self, x: Tensor) -> Tensor:
        return _INV_SQRT_2PI * torch.exp(-0.5 * x * x) * (2.0 - x * x)


@dataclass(frozen=True, repr=False)
class SiLU(Activation):
    """``phi(x) = x sigmoid(x)`` (Swish)."""

    name: str = field(default="silu", init=False)

    def phi(self, x: Tensor) -> Tensor:
        return x * torch.sigmoid(x)

    def derivative(self, x: Tensor) -> Tensor:
        s = torch.sigmoid(x)
        return s * (1.0 + x * (1.0 - s))

    def second_derivative(self, x: Tensor) -> Tensor:
        s = torch.sigmoid(x)
        return s * (1.0 - s) * (2.0 + x * (1.0 - 2.0 * s))


@dataclass(frozen=True, repr=False)
class SoftplusM(Activation):
    """Smoothed ReLU ``phi_m(x) = int_0^x sigmoid(m u) du = (log(1 + e^{mx}) - log 2) / m``.

    ``sup |phi_m - relu| = log(2) / m``; the proof device of Hayou's Lemma 3 (hayou.md §4).
    """

    m: float = 10.0
    name: str = field(default="softplus_m", init=False)

    def __post_init__(self) -> None:
        object.__setattr__(
            self, "m", check_positive_float("softplus_m activation parameter m", self.m)
        )

    def phi(self, x: Tensor) -> Tensor:
        # log((1 + e^y) / 2) = log1p(expm1(y) / 2) without cancellation for |y| < 1, and
        # logaddexp(y, 0) - log 2 beyond (torch's softplus switches to y itself at y > 20, an
        # error of up to 4e-11 relative)
        y = self.m * x
        near = torch.log1p(0.5 * torch.expm1(torch.clamp(y, -1.0, 1.0)))
        far = torch.logaddexp(y, torch.zeros_like(y)) - math.log(2.0)
        return torch.where(y.abs() < 1.0, near, far) / self.m

    def derivative(self, x: Tensor) -> Tensor:
        return torch.sigmoid(self.m * x)

    def second_derivative(self, x: Tensor) -> Tensor:
        s = torch.sigmoid(self.m * x)
        return self.m * s * (1.0 - s)

    @property
    def parameters(self) -> dict[str, float]:
        return {"m": self.m}


@dataclass(frozen=True, repr=False)
class OU(Activation):
    """The Ornstein-Uhlenbeck activation of Prop. 4 (hayou.md §3.3), with ``E = erfi^{-1}``:

    ``phi(x) = 2 sigma / (alpha beta sqrt(pi)) exp(E(beta x)^2)``,
    ``phi'(x) = (2 sigma / alpha) E(beta x)``,
    ``phi''(x) = (sigma beta sqrt(pi) / alpha) exp(-E(beta x)^2)``.

    ``phi > 0`` everywhere, ``phi(0) = 2 sigma / (alpha beta sqrt(pi))``; only locally Lipschitz.
    """

    alpha: float = 1.0
    beta: float = 1.0
    sigma: float = 1.0
    name: str = field(default="ou", init=False)

    def __post_init__(self) -> None:
        for key in ("alpha", "beta", "sigma"):
            value = check_positive_float(f"ou activation parameter {key}", getattr(self, key))
            object.__setattr__(self, key, value)

    @property
    def theta(self) -> float:
        """Mean-reversion rate ``sigma^2 / alpha^2`` of ``U = E(beta X)``."""
        return self.sigma**2 / self.alpha**2

    def transform(self, x: Tensor) -> Tensor:
        """``U = E(beta x)``, the coordinate in which the width-1 SDE is an OU process."""
        return erfi_inverse(self.beta * x)

    def phi(self, x: Tensor) -> Tensor:
        u = erfi_inverse(self.beta * x)
        return (2.0 * self.sigma / (self.alpha * self.beta * _SQRT_PI)) * torch.exp(u * u)

    def derivative(self, x: Tensor) -> Tensor:
        return (2.0 * self.sigma / self.alpha) * erfi_inverse(self.beta * x)

    def second_derivative(self, x: Tensor) -> Tensor:
        u = erfi_inverse(self.beta * x)
        return (self.sigma * self.beta * _SQRT_PI / self.alpha) * torch.exp(-u * u)

    @property
    def parameters(self) -> dict[str, float]:
        return {"alpha": self.alpha, "beta": self.beta, "sigma": self.sigma}


class CustomActivation(Activation):
    """A user callable applied elementwise; derivatives by automatic differentiation.

    Integer or boolean results (a step function) are cast to the input's dtype; a result that
    does not depend on the input through autograd (a constant, a step function) has
    derivatives 0. Complex results are refused.
    """

    def __init__(self, function: Callable[[Tensor], Tensor], name: str | None = None) -> None:
        self.function = function
        self.name = name or getattr(function, "__name__", "custom")

    @property
    def spec(self) -> str:
        return f"custom:{self.name}"

    def phi(self, x: Tensor) -> Tensor:
        y = self.function(x)
        if not isinstance(y, Tensor) or y.shape != x.shape:
            raise ValueError(
                f"activation {self.name!r} must map a tensor to a tensor of the same shape "
                f"(elementwise), got {type(y).__name__} "
                f"{tuple(y.shape) if isinstance(y, Tensor) else ''} for input {tuple(x.shape)}"
            )
        if y.is_complex():
            raise ValueError(
                f"activation {self.name!r} must return real values, got dtype {y.dtype}"
            )
        return y if y.dtype == x.dtype else y.to(x.dtype)

    def _grad(self, x: Tensor, order: int) -> Tensor:
        with torch.enable_grad():
            z = x.detach().requires_grad_(True)
            y = self.phi(z)
            if not y.requires_grad:  # constant or piecewise constant: phi' = phi'' = 0
                return torch.zeros_like(x)
            (g,) = torch.autograd.grad(y.sum(), z, create_graph=order > 1)
            if order == 2:
                if not g.requires_grad:
                    return torch.zeros_like(x)
                (g,) = torch.autograd.grad(g.sum(), z)
        return g.detach()

    def derivative(self, x: Tensor) -> Tensor:
        return self._grad(x, 1)

    def second_derivative(self, x: Tensor) -> Tensor:
        return self._grad(x, 2)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CustomActivation) and other.function is self.function

    def __hash__(self) -> int:
        return hash(self.function)


_FACTORIES: dict[str, tuple[type[Activation], tuple[str, ...]]] = {
    "linear": (Linear, ("a",)),
    "identity": (Linear, ()),
    "relu": (ReLU, ()),
    "leaky": (PiecewiseLinear, ("alpha", "beta")),
    "piecewise": (PiecewiseLinear, ("alpha", "beta")),
    "tanh": (Tanh, ()),
    "gelu": (GELU, ()),
    "silu": (SiLU, ()),
    "swish": (SiLU, ()),
    "softplus_m": (SoftplusM, ("m",)),
    "ou": (OU, ("alpha", "beta", "sigma")),
}


def available_activations() -> list[str]:
    """Names accepted by ``parse_activation`` (before an optional ``:key=value,...``)."""
    return sorted(_FACTORIES)


def _parse_spec(spec: str) -> Activation:
    text = spec.strip()
    name, _, arguments = text.partition(":")
    name = name.strip().lower()
    if name not in _FACTORIES:
        raise ValueError(
            f"activation must be one of {', '.join(available_activations())} (optionally "
            f"with parameters, e.g. 'leaky:alpha=1,beta=0.5'), or a callable; got {spec!r}"
        )
    factory, allowed = _FACTORIES[name]
    params: dict[str, float] = {}
    if arguments.strip():
        for item in arguments.split(","):
            key, eq, value = item.partition("=")
            key = key.strip()
            if not eq or not key:
                raise ValueError(
                    f"activation {spec!r}: parameters must be written key=value, separated by "
                    f"commas, got {item.strip()!r}"
                )
            if key not in allowed:
                allowed_text = ", ".join(allowed) if allowed else "none"
                raise ValueError(
                    f"activation {spec!r}: unknown parameter {key!r} for {name!r} "
                    f"(allowed: {allowed_text})"
                )
            if key in params:
                raise ValueError(f"activation {spec!r}: parameter {key!r} given twice")
            try:
                params[key] = check_finite_float(f"activation parameter {key}", float(value))
            except ValueError:
                raise ValueError(
                    f"activation {spec!r}: parameter {key} must be a finite number, "
                    f"got {value.strip()!r}"
                ) from None
    if name == "softplus_m" and params.get("m", 1.0) <= 0:
        raise ValueError(f"activation {spec!r}: parameter m must be > 0, got {params['m']:g}")
    try:
        return factory(**params)
    except ValueError as error:
        raise ValueError(f"activation {spec!r}: {error}") from None


def parse_activation(activation: Any) -> Activation:
    """Turn a name, a spec string, an ``Activation`` or a callable into an ``Activation``."""
    if isinstance(activation, Activation):
        return activation
    if isinstance(activation, str):
        return _parse_spec(activation)
    if callable(activation):
        return CustomActivation(activation)
    raise ValueError(
        "activation must be a name or spec string (e.g. 'relu', 'leaky:alpha=1,beta=0.5'), "
        f"an Activation or a callable, got {type(activation).__name__}"
    )
