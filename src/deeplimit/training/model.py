"""Batches of ResNets with residual blocks summed over M units, forward and explicit adjoint.

The model (chizat.md §1.1, §1.2; shapes: networks ``S`` first, then samples ``N``, then width):

    h_0 = W_in x                                   W_in (D, d_in), fixed, shared by the batch
    h_l = h_{l-1} + c sum_{j<=M} phi(h_{l-1}, z_{j,l}),       l = 1..L
    f   = W_out^T h_L / D                          W_out (D, d_out), fixed
    R   = (1/(N d_out)) sum_n ||f(x_n) - y_n||^2

A *block* (``Block``) defines ``phi`` and the law of a unit ``z``; its parameters are stored as
one tensor per name of shape ``(S, L, M, *unit_shape)``. The main block is the two-layer
perceptron of §1.2, ``phi(h, (u, v)) = v sigma(<u, h>/D)`` with ``u, v`` entries ``N(0, D)``.

Adjoint (§1.4), with ``g_l = dR/dh_l``, ``g_L = W_out dR/df / D``:

    g_{l-1} = g_l + c J_h[phi]^T g_l,    dR/dz_{j,l} = c J_z[phi]^T g_l.

For the 2LP block, ``p_l = h_{l-1} U_l^T / D`` (N, M), ``q_l = c (g_l V_l^T) * sigma'(p_l)``:
``dR/dV_l = c sigma(p_l)^T g_l``, ``dR/dU_l = q_l^T h_{l-1} / D``, ``g_{l-1} = g_l + q_l U_l / D``.
The backward sweep adds ``coefficient * dR/dz_l`` into per-layer *targets* as soon as layer
``l`` is done (after ``g_{l-1}`` is formed): with ``targets = parameters`` and
``coefficient = -lr`` this is the gradient-descent update, done in place, without ever
storing a full gradient tensor; only the per-layer states ``h_{l-1}`` (and, for the 2LP,
``sigma(p_l)`` and ``sigma'(p_l)``, or for tanh ``sigma(p_l)`` alone; units-major where
that is faster, ``TwoLayerBlock.units_major``) of the forward pass are kept.
"""

from __future__ import annotations

import itertools
import math
import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..activations import Activation, Linear, Tanh, parse_activation
from ..errors import check_choice, check_int
from ..rng import derive_seed
from . import native

__all__ = [
    "Block",
    "ForwardPass",
    "ResNet",
    "TwoLayerBlock",
    "draw_parameters",
]

Coefficient = float | Tensor
"""A float shared by every network of the batch, or a per-network tensor of shape (S, 1, 1)."""

UNIT_STREAM = 0x55_56  # "UV": stream of derive_seed(seed, UNIT_STREAM, seed_index)


def _broadcast(coefficient: Coefficient, ndim: int) -> Coefficient:
    if isinstance(coefficient, Tensor):
        return coefficient.reshape(-1, *([1] * (ndim - 1)))
    return coefficient


class Block(ABC):
    """A residual block ``sum_{j<=M} phi(h, z_j)`` of chizat.md §1.1, batched over networks.

    Shapes: states ``h`` are ``(S, N, D)``; the parameters of one layer are a mapping
    ``name -> (S, M, *unit_shape)``. A new block type needs ``parameter_names``,
    ``initialize_layer`` (the law ``mu_0`` of a unit) and ``branch`` (written with
    differentiable torch operations); the adjoint then comes from autograd, one layer at a
    time. Override ``residual_forward``/``backward`` with explicit formulas for speed, as
    ``TwoLayerBlock`` does.
    """

    parameter_names: tuple[str, ...] = ()
    # True when ``initialize_layer`` touches nothing but its generator and its arguments, so
    # that networks may draw on several threads at once (``draw_parameters``); read from the
    # class that defines ``initialize_layer``, so a subclass that overrides it must say so again
    thread_safe_init: bool = False

    @property
    def spec(self) -> str:
        return type(self).__name__

    @abstractmethod
    def initialize_layer(
        self, generator: torch.Generator, hidden_width: int, embedding_dim: int
    ) -> dict[str, Tensor]:
        """The ``M`` units of one layer of one network: float64 CPU tensors ``(M, *unit)``
        drawn from ``generator``."""

    @abstractmethod
    def branch(self, h: Tensor, params: Mapping[str, Tensor]) -> Tensor:
        """``sum_j phi(h, z_j)`` of shape ``(S, N, D)``, without the residual scale."""

    def residual_forward(
        self, h: Tensor, params: Mapping[str, Tensor], scale: Coefficient
    ) -> tuple[Tensor, Any]:
        """``h + scale * branch(h)`` and what ``backward`` needs besides ``h``."""
        return h + _broadcast(scale, 3) * self.branch(h, params), None

    def backward(
        self,
        h: Tensor,
        g: Tensor,
        params: Mapping[str, Tensor],
        cache: Any,
        scale: Coefficient,
        targets: Mapping[str, Tensor],
        coefficients: Mapping[str, Coefficient],
    ) -> Tensor:
        """Given ``h = h_{l-1}`` and ``g = g_l``, add ``coefficients[name] * dR/dz_l[name]`` to
        ``targets[name]`` and return ``g_{l-1}``. Default: vector-Jacobian product by autograd.

        When ``targets`` are the parameters themselves, ``g_{l-1}`` must be computed from the
        parameters before the update (this default does: autograd runs first).
        """
        with torch.enable_grad():
            h_in = h.detach().requires_grad_(True)
            leaves = {name: params[name].detach().requires_grad_(True) for name in params}
            out = self.branch(h_in, leaves)
            cotangent = _broadcast(scale, 3) * g
            grads = torch.autograd.grad(
                out, [h_in, *leaves.values()], grad_outputs=cotangent, allow_unused=True
            )
        g_prev = g if grads[0] is None else g + grads[0]
        for name, grad in zip(leaves, grads[1:], strict=True):
            if grad is not None:
                targets[name].add_(_broadcast(coefficients[name], grad.dim()) * grad)
        return g_prev

    def forward_sweep(
        self, h: Tensor, layers: Sequence[Mapping[str, Tensor]], scale: Coefficient, keep: bool
    ) -> tuple[Tensor, list[Tensor], list[Any]]:
        """``h_L`` from ``h = h_0`` through ``layers`` (one parameter mapping per layer) and,
        with ``keep``, the states ``h_0..h_{L-1}`` and the caches of ``residual_forward``.
        Default: ``residual_forward`` layer by layer; a block may run the whole sweep in a
        tighter loop (``TwoLayerBlock`` does) as long as it computes the same numbers."""
        states: list[Tensor] = []
        caches: list[Any] = []
        for params in layers:
            h_next, cache = self.residual_forward(h, params, scale)
            if keep:
                states.append(h)
                caches.append(cache)
            h = h_next
        return h, states, caches

    def backward_sweep(
        self,
        states: list[Any],
        caches: list[Any],
        g: Tensor,
        layers: Sequence[Mapping[str, Tensor]],
        scale: Coefficient,
        targets: Callable[[int], Mapping[str, Tensor]],
        coefficients: Mapping[str, Coefficient],
        record: Callable[[int, Tensor], None] | None = None,
    ) -> Tensor:
        """The adjoint sweep ``l = L..1`` from ``g = g_L`` (``backward`` layer by layer, each
        layer's state and cache set to ``None`` once used, ``record(l - 1, g_{l-1})`` after
        it); returns ``g_0``. A block may override it with a tighter loop computing the same
        numbers."""
        for index in range(len(layers) - 1, -1, -1):
            g = self.backward(
                states[index], g, layers[index], caches[index], scale, targets(index), coefficients
            )
            states[index] = caches[index] = None  # free as we go
            if record is not None:
                record(index, g)
        return g

    def movement_sums(
        self, params: Mapping[str, Tensor], initial: Mapping[str, Tensor], h0: Tensor
    ) -> dict[str, tuple[Tensor, int]]:
        """Per network, the sum of squares and the count behind each RMS unit-movement
        statistic, for a chunk of layers (``params[name]`` of shape ``(S, Lc, M, *unit)``;
        ``h0`` the input embeddings ``(N, D)``). Default: the RMS entrywise change of each
        parameter, i.e. ``sqrt(mean_units ||z - z_0||^2 / size(z))``."""
        sums = {}
        for name in params:
            delta = (params[name] - initial[name]).flatten(1)
            sums[name] = ((delta * delta).sum(1), delta.shape[1])
        return sums


def _activate(activation: Activation, p: Tensor) -> tuple[Tensor, Tensor | float | None]:
    """``sigma(p)`` (in place of ``p`` where the activation allows it: ``p`` is scratch) and
    ``sigma'(p)``; ``None`` for tanh, whose derivative ``1 - sigma(p)^2`` the backward pass
    forms from ``sigma(p)`` in one fused ``tanh_backward`` (the same numbers as
    ``r * (1 - a * a)``, with three fewer passes over the ``(S, N, M)`` states per layer)."""
    if isinstance(activation, Tanh):
        return p.tanh_(), None
    if isinstance(activation, Linear):
        return (p if activation.a == 1.0 else activation.a * p), float(activation.a)
    return activation.phi(p), activation.derivative(p)


STATE_LAYOUTS = ("auto", "samples", "units")
ROW_PRODUCTS = ("auto", "torch", "numpy")


def _tracked(state: Tensor, layers: Sequence[Mapping[str, Tensor]]) -> bool:
    """Whether autograd tracks ``state`` or the parameters (NumPy cannot take them then)."""
    return state.requires_grad or any(value.requires_grad for value in layers[0].values())


def _row_product(base: Tensor, row: Tensor, matrix: Tensor, alpha: float) -> Tensor:
    """``base + alpha * row @ matrix`` for rows ``(S, 1, M)`` and matrices ``(S, M, D)`` (CPU),
    the product by NumPy's BLAS (``TwoLayerBlock.row_products``)."""
    product = torch.from_numpy(np.matmul(row.numpy(), matrix.numpy()))
    return torch.add(base, product, alpha=alpha)


class TwoLayerBlock(Block):
    """The 2LP block of chizat.md §1.2: ``phi(h, (u, v)) = v sigma(<u, h>/D)``, ``u, v`` with
    i.i.d. ``N(0, D)`` entries.

    ``antithetic=True`` draws units in pairs ``(u, v)``, ``(u, -v)`` (``M`` even), so the
    branch is exactly zero at initialization (chizat.md §2.4(4)); each unit still has law
    ``mu_0``, so the Mean ODE limit is the same.
    """

    parameter_names = ("u", "v")
    thread_safe_init = True
    state_layout: str = "auto"  # see ``units_major``; a speed setting, not part of the spec
    row_products: str = "auto"  # see ``numpy_row_products``; a speed setting too
    compiled_sweeps: bool = True  # see ``_compiled_activation``; a speed setting too

    def __init__(self, activation: Any = "tanh", *, antithetic: bool = False) -> None:
        self.activation = parse_activation(activation)
        self.antithetic = bool(antithetic)

    @property
    def spec(self) -> str:
        suffix = ", antithetic" if self.antithetic else ""
        return f"2LP({self.activation.spec}{suffix})"

    def initialize_layer(
        self, generator: torch.Generator, hidden_width: int, embedding_dim: int
    ) -> dict[str, Tensor]:
        std = math.sqrt(embedding_dim)
        if not self.antithetic:
            u = torch.randn(hidden_width, embedding_dim, generator=generator, dtype=torch.float64)
            v = torch.randn(hidden_width, embedding_dim, generator=generator, dtype=torch.float64)
            return {"u": u * std, "v": v * std}
        if hidden_width % 2:
            raise ValueError(
                f"hidden_width must be even for antithetic units (pairs (u, v), (u, -v)), "
                f"got {hidden_width}"
            )
        half = hidden_width // 2
        u = torch.randn(half, embedding_dim, generator=generator, dtype=torch.float64) * std
        v = torch.randn(half, embedding_dim, generator=generator, dtype=torch.float64) * std
        return {"u": torch.cat([u, u]), "v": torch.cat([v, -v])}

    def preactivation(self, h: Tensor, u: Tensor) -> Tensor:
        """``p = <u_j, h^n> / D`` of shape ``(S, N, M)``."""
        out = torch.empty((h.shape[0], h.shape[1], u.shape[1]), dtype=h.dtype, device=h.device)
        return torch.baddbmm(out, h, u.transpose(1, 2), beta=0.0, alpha=1.0 / h.shape[-1])

    def branch(self, h: Tensor, params: Mapping[str, Tensor]) -> Tensor:
        p = self.preactivation(h, params["u"])
        return torch.bmm(self.activation.phi(p), params["v"])

    def numpy_row_products(self, h: Tensor) -> bool:
        """Whether the sweeps form the row-times-matrix products of ``N = 1`` (``h + c a^T V``
        forward, ``g + c r^T U / D`` backward: ``y = sum_j a_j v_j``, the matrix read row by
        row) with NumPy's BLAS rather than torch's (``row_products``: ``"torch"``,
        ``"numpy"`` or ``"auto"``, the default: NumPy for float32 on the CPU with ``N = 1``).

        Measured on the CPU (AMD EPYC; torch's MKL, NumPy's OpenBLAS; ``benchmarks/
        bench_training.py --bandwidth``): MKL's float32 product of this form streams the
        matrix at ~17 GB/s against OpenBLAS's ~28 (equal in float64). The sum over ``j``
        runs in another order, so the results equal torch's to float32 rounding."""
        choice = check_choice("row_products", self.row_products, ROW_PRODUCTS)
        if h.device.type != "cpu" or h.shape[1] != 1:
            return False
        if choice == "auto":
            return h.dtype == torch.float32
        return choice == "numpy"

    def units_major(self, h: Tensor) -> bool:
        """Whether the per-layer states ``p``, ``sigma(p)`` and ``r`` of the block are kept
        units-major, ``(S, M, N)``, rather than samples-major, ``(S, N, M)``
        (``state_layout``: ``"units"``, ``"samples"`` or ``"auto"``, the default).

        Both layouts compute the same products (to rounding: BLAS sums in another order);
        which is faster is the BLAS's affair. ``"auto"`` is what was measured fastest on the
        CPU (MKL; ``benchmarks/bench_training.py --bandwidth``): units-major for ``N = 1`` in
        either dtype (matrix-vector products: ~1.5x in float32), samples-major with ``N > 1``
        (the tanh task's N = 10: 1.1x faster than units-major in float64, equal in float32,
        training on two groups of networks) and on other devices (the layout the GPU path was
        tuned and checked with). An earlier measurement that found units-major 1.2-1.6x
        faster in float64 was taken while every worker thread forked an OpenMP team per
        product (``devices.one_torch_thread``)."""
        layout = self.state_layout
        if layout == "auto":
            return h.device.type == "cpu" and h.shape[1] == 1
        return check_choice("state_layout", layout, STATE_LAYOUTS) == "units"

    def residual_forward(
        self, h: Tensor, params: Mapping[str, Tensor], scale: Coefficient
    ) -> tuple[Tensor, Any]:
        """One layer of :meth:`_forward_layers` (torch's products); the cache is
        ``(sigma(p), sigma'(p) or None for tanh, units-major)``."""
        last, _, caches = self._forward_layers(h, [params], scale, keep=True, rows=False)
        return last, caches[0]

    def backward(
        self,
        h: Tensor,
        g: Tensor,
        params: Mapping[str, Tensor],
        cache: Any,
        scale: Coefficient,
        targets: Mapping[str, Tensor],
        coefficients: Mapping[str, Coefficient],
    ) -> Tensor:
        """One layer of :meth:`_backward_layers` (torch's products)."""
        return self._backward_layers(
            [h], [cache], g, [params], scale, lambda _: targets, coefficients, None, rows=False
        )

    def _own_sweeps(self) -> bool:
        """Whether ``residual_forward`` and ``backward`` are this class's (a subclass that
        overrides either gets the generic sweeps, which call its methods)."""
        kind = type(self)
        return (
            kind.residual_forward is TwoLayerBlock.residual_forward
            and kind.backward is TwoLayerBlock.backward
        )

    def _compiled_activation(
        self, state: Tensor, layers: Sequence[Mapping[str, Tensor]]
    ) -> tuple[int, float] | None:
        """The activation's code for the compiled sweeps of one sample on the CPU
        (``training/native.py``: a whole sweep per call, each weight row read once), or None
        where they do not apply: ``compiled_sweeps`` off, ``N > 1``, another device, autograd,
        an activation other than tanh or a linear one (the kernel itself also declines
        parameters not in contiguous layers, and falls back where it does not load)."""
        if (
            not self.compiled_sweeps
            or state.shape[1] != 1
            or state.device.type != "cpu"
            or _tracked(state, layers)
        ):
            return None
        return native.activation_code(self.activation)

    def forward_sweep(
        self, h: Tensor, layers: Sequence[Mapping[str, Tensor]], scale: Coefficient, keep: bool
    ) -> tuple[Tensor, list[Tensor], list[Any]]:
        """``residual_forward`` layer after layer, the same operations on the same operands,
        with what does not change across layers (the layout, the activation's kind, the scale)
        decided once: fewer Python steps per layer, which matter where a layer's products take
        tens of microseconds (``N = 1``, float32; ``benchmarks/bench_training.py
        --bandwidth``). With one sample on the CPU, the compiled sweep where it loads."""
        if not self._own_sweeps():
            return super().forward_sweep(h, layers, scale, keep)
        code = self._compiled_activation(h, layers)
        if code is not None:
            result = native.forward(h, layers, scale, keep, code)
            if result is not None:
                return result
        rows = self.numpy_row_products(h) and not _tracked(h, layers)
        return self._forward_layers(h, layers, scale, keep, rows)

    def _forward_layers(
        self,
        h: Tensor,
        layers: Sequence[Mapping[str, Tensor]],
        scale: Coefficient,
        keep: bool,
        rows: bool,
    ) -> tuple[Tensor, list[Tensor], list[Any]]:
        """The forward loop of :meth:`forward_sweep` and :meth:`residual_forward` (``rows``:
        the row-times-matrix products by NumPy, :meth:`numpy_row_products`)."""
        units = self.units_major(h)
        activation = self.activation
        tanh = isinstance(activation, Tanh)
        identity = isinstance(activation, Linear) and activation.a == 1.0
        per_network = isinstance(scale, Tensor)
        inv_d = 1.0 / h.shape[-1]
        networks, samples = h.shape[0], h.shape[1]
        options = {"dtype": h.dtype, "device": h.device}
        empty = torch.empty
        baddbmm = torch.baddbmm
        states: list[Tensor] = []
        caches: list[Any] = []
        for params in layers:
            u = params["u"]
            if units:  # p^T (S, M, N)
                out = empty((networks, u.shape[1], samples), **options)
                p = baddbmm(out, u, h.transpose(1, 2), beta=0.0, alpha=inv_d)
            else:
                out = empty((networks, samples, u.shape[1]), **options)
                p = baddbmm(out, h, u.transpose(1, 2), beta=0.0, alpha=inv_d)
            if tanh:
                a, da = p.tanh_(), None
            elif identity:
                a, da = p, 1.0
            else:
                a, da = _activate(activation, p)
            left = a.transpose(1, 2) if units else a
            if rows:
                if per_network:
                    h_next = _row_product(h, left * scale, params["v"], 1.0)
                else:
                    h_next = _row_product(h, left, params["v"], scale)
            elif per_network:
                h_next = baddbmm(h, left * scale, params["v"])
            else:
                h_next = baddbmm(h, left, params["v"], alpha=scale)
            if keep:
                states.append(h)
                caches.append((a, da, units))
            h = h_next
        return h, states, caches

    def backward_sweep(
        self,
        states: list[Any],
        caches: list[Any],
        g: Tensor,
        layers: Sequence[Mapping[str, Tensor]],
        scale: Coefficient,
        targets: Callable[[int], Mapping[str, Tensor]],
        coefficients: Mapping[str, Coefficient],
        record: Callable[[int, Tensor], None] | None = None,
    ) -> Tensor:
        """``backward`` layer after layer (the same operations on the same operands), with
        the coefficients formed once per sweep rather than once per layer. With one sample on
        the CPU, updating the parameters themselves, the compiled sweep where it loads (then
        ``record`` sees the ``g_l`` once the sweep is done)."""
        if not self._own_sweeps():
            return super().backward_sweep(
                states, caches, g, layers, scale, targets, coefficients, record
            )
        code = self._compiled_activation(g, layers)
        if code is not None:
            first = native.adjoint(
                states, caches, g, layers, scale, targets, coefficients, code, record
            )
            if first is not None:
                return first
        rows = self.numpy_row_products(g) and not _tracked(g, layers)
        return self._backward_layers(
            states, caches, g, layers, scale, targets, coefficients, record, rows
        )

    def _backward_layers(
        self,
        states: list[Any],
        caches: list[Any],
        g: Tensor,
        layers: Sequence[Mapping[str, Tensor]],
        scale: Coefficient,
        targets: Callable[[int], Mapping[str, Tensor]],
        coefficients: Mapping[str, Coefficient],
        record: Callable[[int, Tensor], None] | None,
        rows: bool,
    ) -> Tensor:
        """The adjoint loop of :meth:`backward_sweep` and :meth:`backward`: for each layer,
        ``r = (g V^T) sigma'(p)`` (``dR/dp = c r``), then each weight updated right after its
        last read, while it is still in the cache: V after r, U after ``g_{l-1} = g + c r U /
        D`` (which needs U before it changes)."""
        inv_d = 1.0 / g.shape[-1]
        per_network = isinstance(scale, Tensor)
        r_scale = 1.0 if per_network else scale  # per-network scales are folded into r
        g_alpha = r_scale * inv_d
        v_coefficient = coefficients["v"] * scale
        u_coefficient = coefficients["u"] * g_alpha
        v_per_network = isinstance(v_coefficient, Tensor)
        u_per_network = isinstance(u_coefficient, Tensor)
        bmm, baddbmm = torch.bmm, torch.baddbmm
        tanh_backward = torch.ops.aten.tanh_backward.grad_input
        for index in range(len(layers) - 1, -1, -1):
            params = layers[index]
            u, v = params["u"], params["v"]
            h = states[index]
            a, da, units = caches[index]
            # r = (g V^T) * sigma'(p), so that dR/dp = c r: (S, N, M), or (S, M, N) units-major
            r = bmm(v, g.transpose(1, 2)) if units else bmm(g, v.transpose(1, 2))
            if da is None:  # tanh: r * (1 - a^2) in one pass
                tanh_backward(r, a, grad_input=r)
            elif not (isinstance(da, float) and da == 1.0):
                r.mul_(da)
            if per_network:
                r.mul_(scale)
            # the (S, M, N) operands of the updates and the (S, N, M) one of g_{l-1}
            if units:
                a_units, r_units, r_samples = a, r, r.transpose(1, 2)
            else:
                a_units, r_units, r_samples = a.transpose(1, 2), r.transpose(1, 2), r
            target = targets(index)
            # V right after its last read (r), U after g_{l-1} = g + c r U / D
            if v_per_network:
                target["v"].baddbmm_(a_units * v_coefficient, g)
            else:
                target["v"].baddbmm_(a_units, g, alpha=v_coefficient)
            if rows:
                g_prev = _row_product(g, r_samples, u, g_alpha)
            else:
                g_prev = baddbmm(g, r_samples, u, alpha=g_alpha)
            if u_per_network:
                target["u"].baddbmm_(r_units * u_coefficient, h)
            else:
                target["u"].baddbmm_(r_units, h, alpha=u_coefficient)
            states[index] = caches[index] = None  # free as we go
            g = g_prev
            if record is not None:
                record(index, g)
        return g

    def movement_sums(
        self, params: Mapping[str, Tensor], initial: Mapping[str, Tensor], h0: Tensor
    ) -> dict[str, tuple[Tensor, int]]:
        """Adds ``preactivation``: the RMS over units and samples of ``<u - u_0, h_0>/D``, the
        change of each unit's pre-activation on the input embeddings (chizat.md §2.2, C7)."""
        sums = super().movement_sums(params, initial, h0)
        delta = params["u"] - initial["u"]  # (S, Lc, M, D)
        shift = torch.matmul(delta.flatten(1, 2), h0.T.to(delta.dtype)) / h0.shape[-1]
        sums["preactivation"] = ((shift * shift).flatten(1).sum(1), shift[0].numel())
        return sums


PARALLEL_DRAW_NUMBERS = 2**16  # numbers per network above which networks draw on threads


def _thread_safe_init(block: Block) -> bool:
    """Whether the class that defines ``block.initialize_layer`` declares it thread-safe
    (``thread_safe_init = True`` in that class itself: a subclass that overrides the method
    draws serially unless it says so again)."""
    for klass in type(block).__mro__:
        if "initialize_layer" in vars(klass):
            return bool(vars(klass).get("thread_safe_init", False))
    return False


def _cores() -> int:
    """The CPU cores this process may run on (its affinity mask: a SLURM allocation's)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on this platform
        return max(1, os.cpu_count() or 1)


def draw_parameters(
    block: Block,
    depth: int,
    hidden_width: int,
    embedding_dim: int,
    seed_indices: Sequence[int],
    *,
    seed: int = 0,
    device: torch.device,
    dtype: torch.dtype,
    workers: int | None = None,
) -> dict[str, Tensor]:
    """Parameters for networks ``seed_indices``, stored layer-major: ``(L, S, M, *unit)``
    (each layer one contiguous block, for the per-layer batched products).

    Network ``s`` draws its layers in order from one float64 CPU generator seeded by
    ``derive_seed(seed, UNIT_STREAM, seed_indices[s])``, so a batch equals separate runs with
    the same indices, every dtype and device sees the same (rounded) numbers, and a network of
    depth ``L' < L`` equals the first ``L'`` layers of the deeper one.

    Each network's generator is its own, so networks draw on ``workers`` threads at once
    (default: the cores this process may run on, whatever torch's intra-op threads; torch's
    normal sampler is serial and releases the GIL) when the block says its
    ``initialize_layer`` is thread-safe (``Block.thread_safe_init``, declared by the class that
    defines the method) and a network holds more than ``PARALLEL_DRAW_NUMBERS`` numbers; the
    numbers are the same whatever ``workers``.
    """
    indices = [int(index) for index in seed_indices]
    workers = _cores() if workers is None else check_int("workers", workers, minimum=1)
    numbers = depth * hidden_width * embedding_dim * max(len(block.parameter_names), 1)
    parallel = (
        _thread_safe_init(block)
        and workers > 1
        and len(indices) > 1
        and numbers > PARALLEL_DRAW_NUMBERS
    )
    params: dict[str, Tensor] = {}

    def allocate(drawn: Mapping[str, Tensor]) -> None:
        for name, value in drawn.items():
            if name not in params:
                shape = (depth, len(indices), *value.shape)
                params[name] = torch.empty(shape, device=device, dtype=dtype)

    if parallel:  # the shapes from a throwaway layer, so that no thread allocates
        allocate(block.initialize_layer(torch.Generator(), hidden_width, embedding_dim))

    def draw(s: int) -> None:
        generator = torch.Generator().manual_seed(derive_seed(seed, UNIT_STREAM, indices[s]))
        for layer in range(depth):
            drawn = block.initialize_layer(generator, hidden_width, embedding_dim)
            allocate(drawn)  # (serial draws: at the first layer)
            for name, value in drawn.items():
                params[name][layer, s].copy_(value)

    if not parallel:
        for s in range(len(indices)):
            draw(s)
        return params
    with ThreadPoolExecutor(min(workers, len(indices)), "deeplimit-draw") as pool:
        for done in [pool.submit(draw, s) for s in range(len(indices))]:
            done.result()  # re-raises a worker's error here
    return params


@dataclass
class ForwardPass:
    """``last``: ``h_L`` (S, N, D); ``states[l]`` = ``h_l`` for ``l < L`` and ``caches[l]`` the
    block's per-layer cache (kept only when a backward pass follows)."""

    last: Tensor
    states: list[Tensor]
    caches: list[Any]


def _per_network(values: Tensor, batch: Tensor | None = None) -> Coefficient:
    """A float when every network shares the value (scalar fast paths), else ``(S, 1, 1)``.
    ``values`` may be a group's part of ``batch``'s (``ResNet.split``): the float then only
    when the whole batch shares it, so that a group computes exactly as the batch does."""
    whole = values if batch is None else batch
    first = whole[0]
    if bool((whole == first).all()):
        return float(first)
    return values.reshape(-1, 1, 1)


class ResNet:
    """``S`` independent ResNets of equal shape (chizat.md §1.1–§1.2) trained together.

    ``storage[name]`` holds the parameters layer-major, ``(L, S, M, *unit)`` (as
    ``draw_parameters`` returns them); ``parameters[name]`` is the ``(S, L, M, *unit)`` view.
    ``residual_scale`` and each ``learning_rates[name]`` have shape ``(S,)`` (networks may
    differ in scale and learning rate, e.g. a sweep over ``alpha`` at one shape); ``w_in``
    ``(D, d_in)`` and ``w_out`` ``(D, d_out)`` are shared.
    """

    def __init__(
        self,
        block: Block,
        storage: dict[str, Tensor],
        w_in: Tensor,
        w_out: Tensor,
        residual_scale: Tensor,
        learning_rates: dict[str, Tensor],
    ) -> None:
        self.block = block
        self.storage = storage
        self.w_in = w_in
        self.w_out = w_out
        self.residual_scale = residual_scale
        self.learning_rates = learning_rates
        first = next(iter(storage.values()))
        self.depth, self.networks, self.hidden_width = (int(n) for n in first.shape[:3])
        self.embedding_dim = int(w_in.shape[0])
        self.provenance: dict[str, Any] = {}
        self.batch: ResNet | None = None  # the batch this model is a group of (``split``)

    @property
    def parameters(self) -> dict[str, Tensor]:
        """``name -> (S, L, M, *unit)`` views of the parameters (writes go through)."""
        return {name: value.transpose(0, 1) for name, value in self.storage.items()}

    @property
    def device(self) -> torch.device:
        return self.w_in.device

    @property
    def dtype(self) -> torch.dtype:
        return self.w_in.dtype

    @property
    def input_dim(self) -> int:
        return int(self.w_in.shape[1])

    @property
    def output_dim(self) -> int:
        return int(self.w_out.shape[1])

    def split(self, groups: int) -> list[ResNet]:
        """The networks in ``groups`` consecutive groups (sizes differing by at most one), each
        a ``ResNet`` whose parameters, scales and learning rates are views of this one's: a
        group's forward passes and adjoint sweeps compute each network exactly as this batch
        does (every product is per network; ``readout`` is not batch-invariant in float32, so
        compute it on the whole batch), and its layer ``l`` is one contiguous block of the
        layer-major storage."""
        groups = check_int("groups", groups, minimum=1)
        bounds = [self.networks * i // groups for i in range(groups + 1)]
        parts = []
        for start, stop in itertools.pairwise(bounds):
            if stop > start:
                part = ResNet(
                    self.block,
                    {name: value[:, start:stop] for name, value in self.storage.items()},
                    self.w_in,
                    self.w_out,
                    self.residual_scale[start:stop],
                    {name: lr[start:stop] for name, lr in self.learning_rates.items()},
                )
                part.batch = self
                parts.append(part)
        return parts

    def _scale(self) -> Coefficient:
        batch = None if self.batch is None else self.batch.residual_scale
        return _per_network(self.residual_scale, batch)

    def _descent_coefficients(self) -> dict[str, Coefficient]:
        """``-lr`` per parameter name, for the in-place update of the adjoint sweep."""
        return {
            name: -_per_network(lr, None if self.batch is None else self.batch.learning_rates[name])
            for name, lr in self.learning_rates.items()
        }

    def layer(self, index: int) -> dict[str, Tensor]:
        """Contiguous views ``(S, M, *unit)`` of layer ``index`` (0-based)."""
        return {name: value[index] for name, value in self.storage.items()}

    def layers(self) -> list[dict[str, Tensor]]:
        """``[layer(0), ..., layer(L - 1)]`` (the same views, made in one call per name)."""
        names = list(self.storage)
        views = zip(*(value.unbind(0) for value in self.storage.values()), strict=True)
        return [dict(zip(names, layer, strict=True)) for layer in views]

    def embed(self, x: Tensor) -> Tensor:
        """``h_0 = W_in x`` for inputs ``x`` (N, d_in): shape (N, D)."""
        return x @ self.w_in.T

    def forward(self, x: Tensor, *, keep: bool = False) -> ForwardPass:
        """Forward pass of every network on inputs ``x`` (N, d_in); ``keep`` stores what the
        backward sweep needs."""
        h = self.embed(x).expand(self.networks, -1, -1)
        last, states, caches = self.block.forward_sweep(h, self.layers(), self._scale(), keep)
        return ForwardPass(last=last, states=states, caches=caches)

    def readout(self, h_last: Tensor) -> Tensor:
        """``f = W_out^T h_L / D``: shape (S, N, d_out)."""
        return (h_last @ self.w_out) / self.embedding_dim

    @staticmethod
    def risk(outputs: Tensor, y: Tensor) -> Tensor:
        """``R = (1/(N d_out)) sum_n ||f_n - y_n||^2`` per network: shape (S,)."""
        return ((outputs - y) ** 2).flatten(1).mean(1)

    def last_gradient(self, outputs: Tensor, y: Tensor) -> Tensor:
        """``g_L = dR/dh_L = W_out dR/df / D`` with ``dR/df = 2 (f - y)/(N d_out)``."""
        n, d_out = y.shape
        residual = (2.0 / (n * d_out * self.embedding_dim)) * (outputs - y)
        # W_out @ residual^T rather than residual @ W_out^T: with the (S, ...) batch on the
        # right, BLAS blocks every network the same way, so a batch equals separate runs
        return torch.matmul(self.w_out, residual.transpose(1, 2)).transpose(1, 2)

    def backward(
        self,
        forward: ForwardPass,
        g_last: Tensor,
        targets: Callable[[int], Mapping[str, Tensor]] | None,
        coefficients: Mapping[str, Coefficient],
        record: Callable[[int, Tensor], None] | None = None,
    ) -> Tensor:
        """Adjoint sweep ``l = L..1``: adds ``coefficients[name] * dR/dz_l`` into
        ``targets(l)`` (``None``: the parameters themselves) right after layer ``l``; returns
        ``g_0 = dR/dh_0``. ``record(l, g_l)``,
        if given, sees every ``g_l = dR/dh_l`` (``l = L..0``) as it is formed."""
        if record is not None:
            record(self.depth, g_last)
        layers = self.layers()
        if targets is None:  # the parameters themselves
            targets = layers.__getitem__
        return self.block.backward_sweep(
            forward.states,
            forward.caches,
            g_last,
            layers,
            self._scale(),
            targets,
            coefficients,
            record,
        )

    def gradients(self, x: Tensor, y: Tensor) -> dict[str, Tensor]:
        """Full gradients ``dR/dz`` (S, L, M, *unit) by the explicit adjoint (for checks and
        analysis; training never materializes them)."""
        forward = self.forward(x, keep=True)
        g_last = self.last_gradient(self.readout(forward.last), y)
        grads = {name: torch.zeros_like(value) for name, value in self.storage.items()}
        self.backward(
            forward,
            g_last,
            lambda index: {name: grad[index] for name, grad in grads.items()},
            dict.fromkeys(grads, 1.0),
        )
        return {name: grad.transpose(0, 1) for name, grad in grads.items()}

    def descent_step(
        self,
        forward: ForwardPass,
        y: Tensor,
        record: Callable[[int, Tensor], None] | None = None,
    ) -> Tensor:
        """One full-batch GD step ``z <- z - lr * dR/dz``, updating each layer in place during
        the backward sweep of ``forward`` (which must have been run with ``keep=True``);
        ``record`` as in ``backward``. Returns ``g_0``."""
        return self.descend(forward, self.last_gradient(self.readout(forward.last), y), record)

    def descend(
        self,
        forward: ForwardPass,
        g_last: Tensor,
        record: Callable[[int, Tensor], None] | None = None,
    ) -> Tensor:
        """``descent_step`` given ``g_L`` (``last_gradient``)."""
        return self.backward(forward, g_last, None, self._descent_coefficients(), record)

    def risk_of(self, parameters: Mapping[str, Tensor], x: Tensor, y: Tensor) -> Tensor:
        """``R`` per network as a differentiable function of ``parameters`` (reference path for
        autograd checks)."""
        h = self.embed(x).expand(self.networks, -1, -1)
        scale = self.residual_scale.reshape(-1, 1, 1)
        for index in range(self.depth):
            layer = {name: value[:, index] for name, value in parameters.items()}
            h = h + scale * self.block.branch(h, layer)
        return self.risk(self.readout(h), y)

    def freeze(self, networks: Tensor) -> None:
        """Stop networks (bool mask ``(S,)``): zero learning rate and zero parameters, so a
        diverged network costs nothing numerically and cannot leak NaN/inf."""
        if not bool(networks.any()):
            return
        for lr in self.learning_rates.values():
            lr[networks] = 0.0
        for value in self.storage.values():
            value[:, networks] = 0.0


def check_shape_arguments(
    depth: Any, hidden_width: Any, embedding_dim: Any
) -> tuple[int, int, int]:
    return (
        check_int("depth", depth, minimum=1),
        check_int("hidden_width", hidden_width, minimum=1),
        check_int("embedding_dim", embedding_dim, minimum=1),
    )
