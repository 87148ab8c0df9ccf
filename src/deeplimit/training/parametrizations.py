"""Named parametrizations of the ResNet as ``Scaling`` objects, each with its source.

A parametrization is usually written in "PyTorch form": a residual branch
``h <- h + m * W2' sigma(W1 h)`` with a branch multiplier ``m``, ``W1`` (M x D) of entry variance
``1/D``, ``W2'`` (D x M) of entry variance ``s2``, and plain SGD with learning rates ``eta1`` on
``W1`` and ``eta2`` on ``W2'``. deeplimit's model speaks the units of chizat.md §1.2 (``u, v``
entries ``N(0, D)``, ``h_l = h_{l-1} + c sum_j v_j sigma(<u_j, h>/D)``, raw learning rates on
``u, v``). With ``W1 = u/D`` and ``m W2' = c v`` the two are the same network and the same
gradient descent when

    c = m sqrt(s2) / sqrt(D),      lr_raw(v) = eta2 D / s2,      lr_raw(u) = eta1 D^2

(SGD on ``W2'`` moves ``m W2'`` by ``eta2 m^2`` times its gradient; the multiplier cancels).
Input-side parameters are those read through ``<., h>/D``: ``u`` of the 2LP, and ``q, k, u`` of
an attention head (training/attention.py); the output side is ``v``. Each class below gives its
PyTorch form (``pytorch_form``) and the rule follows; tests/test_parametrizations.py checks a
step of the deeplimit model against a step of the PyTorch form written with autograd.

The width is the hidden width ``M`` at fixed ``D`` (the axis of the transfer experiment), so in
muP's language ``W1`` is an input layer (fan-in ``D``) and ``W2'`` an output layer (fan-in
``M``). All learning rates are SGD ones (the models train by full-batch gradient descent).
The deviation from PyTorch's default: ``W1`` keeps the model's law ``N(0, 1/D)`` (PyTorch's
default is uniform of variance ``1/(3 D)``), a constant factor that no exponent depends on.

Exponents at fixed ``D`` (``c``; ``lr_raw(v)``; ``lr_raw(u)``), in ``L`` and ``M``:

* ``StandardParametrization``: ``M^-1/2``; ``M``; ``1``.
* ``WidthMuP``: ``M^-1``; ``M``; ``M``.
* ``DepthMuP``: ``L^-1/2 M^-1``; ``M``; ``M``.
* ``CompleteP``: ``(LM)^-1``; ``LM``; ``LM``.
* ``CriticalScaling``: ``(LM)^-1``; ``LM``; ``LM`` — ``MeanFieldScaling`` of chizat.md §1.1;
  it differs from CompleteP by the factor ``sqrt(D)`` in ``c`` and ``D`` in ``lr_raw(u)``.
"""

from __future__ import annotations

import math
from abc import abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar, NamedTuple

from ..errors import check_positive_float
from .scaling import ResolvedScaling, Scaling

__all__ = [
    "INPUT_SIDE",
    "PARAMETRIZATIONS",
    "CompleteP",
    "CriticalScaling",
    "DepthMuP",
    "Parametrization",
    "PyTorchForm",
    "StandardParametrization",
    "WidthMuP",
    "parametrization",
]

INPUT_SIDE = ("k", "q", "u")
"""Parameter names read through ``<., h>/D`` (2LP ``u``; attention ``q, k, u``)."""


class PyTorchForm(NamedTuple):
    """``h <- h + multiplier * W2' sigma(W1 h)``, ``Var W1 = 1/D``, ``Var W2' =
    output_variance``, SGD rates ``lr_input`` (``W1``) and ``lr_output`` (``W2'``)."""

    multiplier: float
    output_variance: float
    lr_input: float
    lr_output: float


@dataclass(frozen=True)
class Parametrization(Scaling):
    """A parametrization with a tunable base learning rate ``lr`` (the number a sweep varies).

    Subclasses give ``pytorch_form``; ``residual_scale``, ``learning_rate`` (raw, of ``v``) and
    the raw rates of the input side (``relative_lrs`` per shape) follow from it.
    """

    lr: float = 0.1
    key: ClassVar[str] = ""
    source: ClassVar[str] = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "lr", check_positive_float("lr", self.lr, allow_zero=True))

    @abstractmethod
    def pytorch_form(self, depth: int, hidden_width: int, embedding_dim: int) -> PyTorchForm:
        """The parametrization as published (module docstring)."""

    def residual_scale(self, depth: int, hidden_width: int, embedding_dim: int) -> float:
        form = self.pytorch_form(depth, hidden_width, embedding_dim)
        return form.multiplier * math.sqrt(form.output_variance / embedding_dim)

    def learning_rate(self, depth: int, hidden_width: int, embedding_dim: int) -> float:
        form = self.pytorch_form(depth, hidden_width, embedding_dim)
        return form.lr_output * embedding_dim / form.output_variance

    def input_learning_rate(self, depth: int, hidden_width: int, embedding_dim: int) -> float:
        """Raw learning rate of the input side (``u``; ``q, k, u``)."""
        return self.pytorch_form(depth, hidden_width, embedding_dim).lr_input * embedding_dim**2

    def resolve(self, depth: int, hidden_width: int, embedding_dim: int) -> ResolvedScaling:
        base = super().resolve(depth, hidden_width, embedding_dim)
        if base.learning_rate == 0:
            return base
        ratio = self.input_learning_rate(depth, hidden_width, embedding_dim) / base.learning_rate
        return ResolvedScaling(
            base.residual_scale, base.learning_rate, tuple((n, ratio) for n in INPUT_SIDE)
        )


@dataclass(frozen=True)
class StandardParametrization(Parametrization):
    """Standard parametrization: PyTorch's default initialization (``nn.Linear``: variance
    ``1/(3 fan_in)``, so ``Var W2' = 1/(3M)``), residual multiplier 1, one fixed SGD learning
    rate ``lr`` for every weight. Source: PyTorch ``nn.Linear.reset_parameters``
    (Kaiming-uniform with ``a = sqrt(5)``); He et al. 2016 (ResNets, multiplier 1).
    In deeplimit units: ``c = 1/sqrt(3 M D)``, ``lr_raw(v) = 3 lr M D``, ``lr_raw(u) = lr D^2``.
    """

    key: ClassVar[str] = "standard"
    source: ClassVar[str] = "PyTorch default init (nn.Linear), multiplier 1, fixed SGD lr"

    def pytorch_form(self, depth: int, hidden_width: int, embedding_dim: int) -> PyTorchForm:
        return PyTorchForm(1.0, 1.0 / (3.0 * hidden_width), self.lr, self.lr)


@dataclass(frozen=True)
class WidthMuP(Parametrization):
    """muP in the hidden width ``M`` (Yang & Hu 2021, "Tensor Programs IV"; Yang et al. 2022,
    "Tensor Programs V", Table 3, SGD): ``W1`` an input layer (variance ``1/D``, SGD rate
    ``lr M``), ``W2'`` an output layer (variance ``1/M^2``, rate ``lr/M``), multiplier 1 — no
    depth correction. In deeplimit units: ``c = 1/(M sqrt(D))``, ``lr_raw(v) = lr M D``,
    ``lr_raw(u) = lr M D^2``: the critical scaling's exponents in ``M`` at ``L = 1``.
    """

    key: ClassVar[str] = "width-mup"
    source: ClassVar[str] = "muP in width (Tensor Programs V, Table 3, SGD), no depth scaling"

    def pytorch_form(self, depth: int, hidden_width: int, embedding_dim: int) -> PyTorchForm:
        m = float(hidden_width)
        return PyTorchForm(1.0, 1.0 / m**2, self.lr * m, self.lr / m)


@dataclass(frozen=True)
class DepthMuP(Parametrization):
    """Depth-muP: muP in width plus the branch multiplier ``1/sqrt(L)``, SGD learning rates
    constant in ``L`` (Yang et al. 2023, "Tensor Programs VI: Feature learning in infinite-depth
    neural networks"; Bordelon et al. 2023, "Depthwise hyperparameter transfer in residual
    networks"). In deeplimit units: ``c = 1/(sqrt(L) M sqrt(D))``, ``lr_raw(v) = lr M D``,
    ``lr_raw(u) = lr M D^2``.
    """

    key: ClassVar[str] = "depth-mup"
    source: ClassVar[str] = "Depth-muP (Tensor Programs VI; Bordelon et al. 2023): 1/sqrt(L)"

    def pytorch_form(self, depth: int, hidden_width: int, embedding_dim: int) -> PyTorchForm:
        m = float(hidden_width)
        return PyTorchForm(1.0 / math.sqrt(depth), 1.0 / m**2, self.lr * m, self.lr / m)


@dataclass(frozen=True)
class CompleteP(Parametrization):
    """CompleteP: muP in width plus the branch multiplier ``1/L`` (``alpha = 1`` of Dey et al.
    2025, "Don't be lazy: CompleteP enables compute-efficient deep transformers"), with the SGD
    learning rate ``lr L`` (``lr L^(2 alpha - 1)``: the SGD rule that keeps each step's function
    change O(1) as ``L`` grows; the paper states the AdamW one). In deeplimit units:
    ``c = 1/(L M sqrt(D))``, ``lr_raw(v) = lr L M D``, ``lr_raw(u) = lr L M D^2``.
    """

    key: ClassVar[str] = "completep"
    source: ClassVar[str] = "CompleteP (Dey et al. 2025): multiplier 1/L, SGD lr ∝ L"

    def pytorch_form(self, depth: int, hidden_width: int, embedding_dim: int) -> PyTorchForm:
        m, ell = float(hidden_width), float(depth)
        return PyTorchForm(1.0 / ell, 1.0 / m**2, self.lr * m * ell, self.lr * ell / m)


@dataclass(frozen=True)
class CriticalScaling(Parametrization):
    """The papers' critical scaling (chizat.md §1.1 Eq. (5), §1.3; ``MeanFieldScaling``):
    ``c = alpha/(LM)`` in deeplimit units, i.e. ``alpha sqrt(D)/(LM)`` in the normalized units
    of §1.3 (the ``sqrt(D)`` factor), and ``lr_raw = lr L M D / alpha^2`` for every parameter.
    PyTorch form: ``Var W2' = 1``, multiplier ``alpha sqrt(D)/(LM)``, SGD rates
    ``lr L M / (alpha^2 D)`` on ``W1`` and ``lr L M / alpha^2`` on ``W2'``.
    """

    alpha: float = 1.0
    key: ClassVar[str] = "critical"
    source: ClassVar[str] = "Chizat critical scaling alpha/(LM), lr ∝ LMD/alpha^2"

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "alpha", check_positive_float("alpha", self.alpha))

    def pytorch_form(self, depth: int, hidden_width: int, embedding_dim: int) -> PyTorchForm:
        lm = float(depth) * hidden_width
        rate = self.lr * lm / self.alpha**2
        return PyTorchForm(
            self.alpha * math.sqrt(embedding_dim) / lm, 1.0, rate / embedding_dim, rate
        )


PARAMETRIZATIONS: dict[str, type[Parametrization]] = {
    cls.key: cls
    for cls in (StandardParametrization, WidthMuP, DepthMuP, CompleteP, CriticalScaling)
}
"""The parametrizations by key, in the order figures show them."""


def parametrization(key: Any, lr: float = 0.1) -> Parametrization:
    """The parametrization ``key`` (one of ``PARAMETRIZATIONS``) with base learning rate ``lr``."""
    if not isinstance(key, str) or key not in PARAMETRIZATIONS:
        raise ValueError(
            f"parametrization must be one of {', '.join(PARAMETRIZATIONS)}, got {key!r}"
        )
    return PARAMETRIZATIONS[key](lr=lr)
