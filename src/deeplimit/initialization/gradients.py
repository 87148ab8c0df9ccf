"""Gradient norms of random ResNets at initialization (hayou.md §6, Fig. 8).

With ``g_l = d loss / d Y_l`` and a fixed last-layer gradient ``g_L`` ("fix the last layer's
gradient to a constant value and back-propagate"), the backward recursion of Eq. 1 is

    g_{l-1} = g_l + L^{-1/2} phi'(Y_{l-1}) * (W_l^T g_l),

which needs the same ``W_l`` as the forward pass. Two exact ways to get them:

* ``method="weights"``: the forward pass draws explicit ``W_l``; the backward pass draws them
  again from the same per-layer seeds (``rng.BlockStreams`` gives random access by layer), so
  nothing but the forward states is stored.
* ``method="law"`` (one input): the forward pass only reveals ``v_l = W_l phi(Y_{l-1})``. Given
  it, the rows of ``W_l`` are Gaussian conditioned on one linear constraint each:
  ``W_l = v_l phi^T / ||phi||^2 + Z (I - P_phi)`` with ``Z`` iid ``N(0, 1/n)`` independent of
  everything, ``P_phi`` the projection on ``phi = phi(Y_{l-1})``. Hence
  ``W_l^T g = phi (v_l . g) / ||phi||^2 + (I - P_phi) xi ||g|| / sqrt(n)`` with ``xi ~ N(0, I_n)``
  fresh; the ``W_l`` of different layers stay independent given the whole forward path, so the
  joint law of forward and backward passes is exact.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ..rng import BlockStreams
from .chain import (
    ChainPlan,
    ChunkContext,
    LayerView,
    Observer,
    stable_norm,
    times_power_of_two,
)
from .recording import slots_by_step
from .shorthands import gradient_norms

__all__ = ["gradient_norms"]

# random stream of the fresh Gaussians of the conditional-law backward pass
GRADIENT_STREAM = 1


class _Backward(Observer):
    def __init__(self, plan: ChainPlan, grad_last: Tensor, layers: tuple[int, ...]) -> None:
        self.plan = plan
        self.grad_last = grad_last  # (k, n)
        self.positions = slots_by_step(layers)  # a layer listed twice fills both slots
        self.norms = torch.empty(
            (plan.samples, len(layers), plan.inputs), dtype=plan.dtype, device=plan.device
        )
        self.bytes_per_sample = self.path_bytes(plan)
        self.path: list[Tensor] = []
        self.exponents: list[Tensor | None] = []
        self.context: ChunkContext | None = None
        # per sample, the highest layer whose gradient overflowed / underflowed (-1: none)
        self.first_bad = torch.full((plan.samples,), -1, dtype=torch.long, device=plan.device)
        self.first_lost = torch.full_like(self.first_bad, -1)
        self.tiny = torch.finfo(plan.dtype).tiny

    @staticmethod
    def path_bytes(plan: ChainPlan) -> int:
        """Memory per network of the forward path kept for the backward pass."""
        itemsize = torch.finfo(plan.dtype).bits // 8
        return itemsize * (plan.steps + 3) * plan.inputs * plan.width

    def start(self, context: ChunkContext, view: LayerView) -> None:
        self.context = context
        self.path, self.exponents = [], []
        self.observe(view)

    def observe(self, view: LayerView) -> None:
        # a homogeneous chain keeps Y_l = y 2^exponent (chain.py); phi' is scale-free and the
        # law path below rescales Y_l to the units of Y_{l-1}, so the gradients are exact
        self.path.append(view.y.clone())
        self.exponents.append(view.exponent)

    def _next_in_units_of_previous(self, layer: int) -> Tensor:
        after, before = self.exponents[layer], self.exponents[layer - 1]
        if after is None or before is None or after is before:  # (unchanged: 2^0)
            return self.path[layer]
        return times_power_of_two(self.path[layer], (after - before).unsqueeze(-1))

    def _check(self, g: Tensor, norm_before: Tensor | None, layer: int, rows: slice) -> Tensor:
        """Record where ``g`` left the dtype's range; returns its norm for the next check."""
        norm = stable_norm(g)
        lost = norm < self.tiny
        lost &= (norm > 0) if norm_before is None else torch.maximum(norm, norm_before) > 0
        first_bad, first_lost = self.first_bad[rows], self.first_lost[rows]
        first_bad.masked_fill_(~torch.isfinite(norm).all(-1) & (first_bad < 0), layer)
        first_lost.masked_fill_(lost.any(-1) & (first_lost < 0), layer)
        return norm

    def end(self) -> None:
        assert self.context is not None
        plan, context = self.plan, self.context
        n, k, scale = plan.width, plan.inputs, plan.scale
        size = context.stop - context.start
        rows = slice(context.start, context.stop)
        g = self.grad_last.expand(size, k, n).clone()
        noise = torch.empty(
            (size, n, n) if plan.method == "weights" else (size, k, n),
            dtype=plan.dtype,
            device=plan.device,
        )
        fresh = BlockStreams(plan.seed, GRADIENT_STREAM, context.blocks, plan.device)
        norm = self._check(g, None, plan.steps, rows)
        for layer in range(plan.steps, 0, -1):
            if layer in self.positions:
                self.norms[rows, self.positions[layer]] = norm.unsqueeze(1)
            previous = self.path[layer - 1]
            derivative = plan.activation.derivative(previous)
            if plan.method == "weights":
                context.draw(noise, layer)  # the forward pass's sqrt(n) W_l, drawn again
                transposed = g @ noise / math.sqrt(n)  # rows: W_l^T g per input
            else:
                phi = plan.activation.phi(previous)
                increment = (self._next_in_units_of_previous(layer) - previous) / scale
                fresh.draw(noise, layer)
                transposed = _conditional_transpose(phi, increment, g, noise)
            g = g + scale * derivative * transposed
            norm = self._check(g, norm, layer - 1, rows)
        if 0 in self.positions:
            self.norms[rows, self.positions[0]] = norm.unsqueeze(1)
        self.path, self.exponents = [], []


def _conditional_transpose(phi: Tensor, increment: Tensor, g: Tensor, xi: Tensor) -> Tensor:
    """A draw of ``W^T g`` given ``W phi = increment`` (one input, shapes ``(S, 1, n)``)."""
    n = phi.shape[-1]
    norm = stable_norm(phi).unsqueeze(-1)  # in units of |phi|, so that nothing underflows
    alive = norm > 0
    safe = torch.where(alive, norm, torch.ones_like(norm))
    unit = phi / safe
    along = unit * ((increment / safe) * g).sum(-1, keepdim=True)
    free = xi * (stable_norm(g).unsqueeze(-1) / math.sqrt(n))
    projected = free - unit * (unit * free).sum(-1, keepdim=True)
    return torch.where(alive, along + projected, free)
