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
from typing import Any

import torch
from torch import Tensor

from ..errors import check_int, check_real_array
from ..rng import BlockStreams
from .chain import (
    DEFAULT_MEMORY_BUDGET,
    ChainPlan,
    ChunkContext,
    LayerView,
    Observer,
    ProgressCallback,
    simulate_chain,
)
from .network import check_run, common_arguments, count_recorded, held_need
from .recording import resolve_layers
from .state import resolve_initial_state

__all__ = ["gradient_norms"]

# random stream of the fresh Gaussians of the conditional-law backward pass
GRADIENT_STREAM = 1


class _Backward(Observer):
    def __init__(self, plan: ChainPlan, grad_last: Tensor, layers: tuple[int, ...]) -> None:
        self.plan = plan
        self.grad_last = grad_last  # (k, n)
        self.positions = {layer: r for r, layer in enumerate(layers)}
        self.norms = torch.empty(
            (plan.samples, len(layers), plan.inputs), dtype=plan.dtype, device=plan.device
        )
        itemsize = torch.finfo(plan.dtype).bits // 8
        self.bytes_per_sample = itemsize * (plan.steps + 3) * plan.inputs * plan.width
        self.path: list[Tensor] = []
        self.context: ChunkContext | None = None

    def start(self, context: ChunkContext, view: LayerView) -> None:
        self.context = context
        self.path = [view.y.clone()]

    def observe(self, view: LayerView) -> None:
        self.path.append(view.y.clone())

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
        for layer in range(plan.steps, 0, -1):
            if layer in self.positions:
                self.norms[rows, self.positions[layer]] = torch.linalg.vector_norm(g, dim=-1)
            previous = self.path[layer - 1]
            derivative = plan.activation.derivative(previous)
            if plan.method == "weights":
                context.draw(noise, layer)  # the forward pass's sqrt(n) W_l, drawn again
                transposed = g @ noise / math.sqrt(n)  # rows: W_l^T g per input
            else:
                phi = plan.activation.phi(previous)
                increment = (self.path[layer] - previous) / scale  # W_l phi(Y_{l-1})
                fresh.draw(noise, layer)
                transposed = _conditional_transpose(phi, increment, g, noise)
            g = g + scale * derivative * transposed
        if 0 in self.positions:
            self.norms[rows, self.positions[0]] = torch.linalg.vector_norm(g, dim=-1)
        self.path = []


def _conditional_transpose(phi: Tensor, increment: Tensor, g: Tensor, xi: Tensor) -> Tensor:
    """A draw of ``W^T g`` given ``W phi = increment`` (one input, shapes ``(S, 1, n)``)."""
    n = phi.shape[-1]
    norm2 = phi.pow(2).sum(-1, keepdim=True)
    alive = norm2 > 0
    safe = torch.where(alive, norm2, torch.ones_like(norm2))
    along = phi * ((increment * g).sum(-1, keepdim=True) / safe)
    free = xi * (torch.linalg.vector_norm(g, dim=-1, keepdim=True) / math.sqrt(n))
    projected = free - phi * ((phi * free).sum(-1, keepdim=True) / safe)
    return torch.where(alive, along + projected, free)


def gradient_norms(
    width: int,
    depth: int,
    activation: Any,
    *,
    samples: int,
    y0: Any = None,
    x: Any = None,
    grad_last: Any = None,
    layers: Any = "all",
    method: str = "weights",
    seed: int = 0,
    device: Any = "cpu",
    dtype: Any = torch.float64,
    chunk_size: int | None = None,
    memory_budget: int = DEFAULT_MEMORY_BUDGET,
    progress: ProgressCallback | None = None,
) -> Tensor:
    """Norms ``||g_l||`` of the gradient back-propagated from a fixed ``g_L`` (Fig. 8).

    ``grad_last`` is ``g_L`` (shape ``(width,)``, or ``(k, width)`` for ``k`` inputs; default the
    unit vector ``(1, ..., 1)/sqrt(n)`` for every input). ``layers`` as in ``sample_resnet``
    (default ``"all"``). The networks are those ``sample_resnet`` draws with the same seed and
    method. ``method="law"`` is exact for one input (see the module docstring); for several
    inputs use ``method="weights"``.

    Returns ``(samples, layers[, k])`` (the layer axis dropped for a single layer index).
    """
    width, act, samples, seed, dev, dt = common_arguments(
        width, activation, samples, seed, device, dtype, method, "raise"
    )
    depth = check_int("depth", depth, minimum=1)
    state = resolve_initial_state(width, y0, x, dt, dev)
    if method == "law" and state.inputs > 1:
        raise ValueError(
            "method='law' gives exact gradients for one input only (given all increments "
            "W_l Phi, the conditional law of W_l couples the inputs through their Gram matrix, "
            "which is not implemented); use method='weights' for several inputs"
        )
    if grad_last is None:
        g_last = torch.full((state.inputs, width), width**-0.5, dtype=dt, device=dev)
    else:
        given = torch.from_numpy(check_real_array("grad_last", grad_last))
        g_last = given.to(device=dev, dtype=dt)
        if g_last.ndim == 1:
            g_last = g_last.expand(state.inputs, -1)
        if g_last.shape != (state.inputs, width):
            raise ValueError(
                f"grad_last must be finite with shape ({width},) or ({state.inputs}, {width}), "
                f"got shape {tuple(given.shape)}"
            )
    plan = ChainPlan.resnet(
        depth,
        width=width,
        activation=act,
        state=state,
        samples=samples,
        method=method,
        record=(),
        seed=seed,
        device=dev,
        dtype=dt,
        chunk_size=chunk_size,
        memory_budget=memory_budget,
    )
    held = held_need(
        plan,
        count_recorded(layers, depth),
        state.inputs,
        "the gradient norms",
        record_name="layers",
        record=layers,
    )
    itemsize = torch.finfo(dt).bits // 8
    path = itemsize * (depth + 3) * state.inputs * width  # _Backward.bytes_per_sample
    check_run(
        plan,
        progress,
        "gradient_norms",
        held,
        step_parameter="depth",
        extra_bytes_per_sample=path,
        extra_name="depth",
        passes=2,
    )
    recording = resolve_layers(layers, depth, "layers")
    backward = _Backward(plan, g_last.contiguous(), recording.steps)
    simulate_chain(plan, progress, [backward])
    out = backward.norms
    if state.squeeze:
        out = out.squeeze(-1)
    if recording.squeeze:
        out = out.squeeze(1)
    return out
