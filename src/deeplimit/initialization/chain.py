"""The residual chain ``Y_l = Y_{l-1} + s W_l phi(Y_{l-1})`` simulated in chunks of samples.

This is the engine behind both the finite-depth ResNet (``s = L^{-1/2}``, hayou.md Eq. 1) and
the Euler-Maruyama scheme of its SDE limit (``s = sqrt(dt)``, Eq. 4): by Lemma 6 they are the
same chain in law, so one engine serves both.

Two ways to draw the increment ``W_l phi(Y_{l-1})`` (``W_l`` with iid ``N(0, 1/n)`` entries):

* ``"weights"``: materialize ``W_l`` for every network (the reference path; ``O(n^2)`` per
  layer and network);
* ``"law"``: exact in law. For ``k`` inputs sharing ``W_l``, stack ``Phi = phi(Y_{l-1})`` as a
  ``k x n`` matrix; given ``Y_{l-1}`` the columns of ``W_l Phi^T`` are iid ``N(0, G/n)`` with
  the Gram matrix ``G = Phi Phi^T``, so the increment is ``C Z / sqrt(n)`` with ``C C^T = G``
  and ``Z`` a ``k x n`` standard normal matrix: ``O(n k^2 + k^3)`` per layer. For one input
  this is Lemma 6, ``||phi(Y)|| Z / sqrt(n)``.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from ..activations import Activation
from ..errors import NumericalBlowupError, check_choice, check_int
from ..rng import BlockStreams, SampleBlocks
from .state import InitialState

__all__ = [
    "ChainPlan",
    "ChunkContext",
    "LayerView",
    "Observer",
    "gram_square_root",
    "simulate_chain",
]

METHODS = ("law", "weights")
ON_NONFINITE = ("raise", "warn", "ignore")
# The random stream of the chain; other consumers of the same seed use other streams.
CHAIN_STREAM = 0
DEFAULT_MEMORY_BUDGET = 2**29  # bytes of working memory per chunk (512 MiB)

ProgressCallback = Callable[[int, int], None]


def gram_square_root(gram: Tensor) -> Tensor:
    """A lower-triangular ``C`` with ``C C^T = G`` for a batch of PSD Gram matrices ``G``.

    Cholesky that tolerates singular ``G`` (a collapsed ReLU input gives a zero row, two equal
    inputs give equal rows): a pivot below ``64 eps tr(G)`` marks a direction already spanned
    by earlier columns, and its column is set to zero, which is exact for rank-deficient ``G``.
    """
    k = gram.shape[-1]
    if k == 1:
        return torch.sqrt(torch.clamp(gram, min=0))
    eps = torch.finfo(gram.dtype).eps
    tolerance = 64.0 * eps * torch.diagonal(gram, dim1=-2, dim2=-1).sum(-1)
    factor = torch.zeros_like(gram)
    for j in range(k):
        pivot = gram[..., j, j] - (factor[..., j, :j] ** 2).sum(-1)
        ok = pivot > tolerance
        root = torch.sqrt(torch.where(ok, pivot, torch.ones_like(pivot)))
        factor[..., j, j] = torch.where(ok, root, torch.zeros_like(root))
        if j + 1 < k:
            below = gram[..., j + 1 :, j] - (
                factor[..., j + 1 :, :j] * factor[..., j : j + 1, :j]
            ).sum(-1)
            factor[..., j + 1 :, j] = torch.where(
                ok.unsqueeze(-1), below / root.unsqueeze(-1), torch.zeros_like(below)
            )
    return factor


@dataclass(frozen=True)
class ChainPlan:
    """What to simulate: ``steps`` increments of scale ``scale`` on ``samples`` networks."""

    width: int
    steps: int
    scale: float
    activation: Activation
    state: InitialState
    samples: int
    method: str
    record: Sequence[int]
    seed: int
    device: torch.device
    dtype: torch.dtype
    chunk_size: int | None = None
    memory_budget: int = DEFAULT_MEMORY_BUDGET
    on_nonfinite: str = "raise"
    step_name: str = "layer"

    @classmethod
    def resnet(cls, depth: int, **fields: Any) -> ChainPlan:
        """The random ResNet of Eq. 1: ``depth`` layers with increments scaled by L^{-1/2}."""
        return cls(steps=depth, scale=depth**-0.5, **fields)

    def __post_init__(self) -> None:
        check_choice("method", self.method, METHODS)
        check_choice("on_nonfinite", self.on_nonfinite, ON_NONFINITE)
        budget = check_int("memory_budget", self.memory_budget, minimum=1)
        object.__setattr__(self, "memory_budget", budget)
        if self.chunk_size is not None:
            object.__setattr__(self, "chunk_size", check_int("chunk_size", self.chunk_size))

    @property
    def inputs(self) -> int:
        return self.state.inputs

    def numbers_per_sample(self) -> int:
        """Random numbers one network draws per step."""
        if self.method == "weights":
            return self.width * self.width
        return self.inputs * self.width

    def bytes_per_sample(self, extra_bytes_per_sample: int = 0) -> int:
        """Working memory of one network in a chunk: state, phi, noise, Gram factors."""
        itemsize = torch.finfo(self.dtype).bits // 8
        state = self.inputs * self.width
        working = 6 * state + self.numbers_per_sample() + 2 * self.inputs**2
        if self.state.kind == "x":
            working += self.width * self.state.input_dim
        return itemsize * working + 16 + extra_bytes_per_sample

    def blocks(self, extra_bytes_per_sample: int = 0) -> SampleBlocks:
        return SampleBlocks.plan(
            self.samples,
            self.numbers_per_sample(),
            self.bytes_per_sample(extra_bytes_per_sample),
            chunk_size=self.chunk_size,
            memory_budget=self.memory_budget,
        )


class LayerView:
    """The state ``Y_l`` of a chunk after layer (step) ``l``, with ``phi(Y_l)`` and its norms
    computed at most once and shared by the next increment and every observer."""

    def __init__(self, layer: int, y: Tensor, activation: Activation) -> None:
        self.layer = layer
        self.y = y
        self.activation = activation
        self._phi: Tensor | None = None
        self._phi_norm: Tensor | None = None

    @property
    def phi(self) -> Tensor:
        """``phi(Y_l)``, shape ``(chunk, k, n)``."""
        if self._phi is None:
            self._phi = self.activation.phi(self.y)
        return self._phi

    @property
    def phi_norm(self) -> Tensor:
        """``||phi(Y_l)||`` per network and input, shape ``(chunk, k)``."""
        if self._phi_norm is None:
            self._phi_norm = torch.linalg.vector_norm(self.phi, dim=-1)
        return self._phi_norm


@dataclass
class ChunkContext:
    """What observers may need about the chunk being simulated."""

    plan: ChainPlan
    start: int
    stop: int
    streams: BlockStreams

    @property
    def blocks(self) -> list[tuple[int, int, int]]:
        return self.streams.blocks

    def draw(self, out: Tensor, step: int) -> None:
        """Fill ``out`` (chunk first) with the standard normals of ``step`` (again, if asked)."""
        self.streams.draw(out, step)


class Observer:
    """Streams a quantity out of the chain while it runs (see ``observables.py``).

    ``start`` sees layer 0 of every chunk, ``observe`` every later layer, ``end`` closes the
    chunk (and may draw a layer's random numbers again through ``ChunkContext.draw``).
    ``bytes_per_sample`` is the working memory it needs per network, for chunk planning.
    """

    bytes_per_sample: int = 0

    def start(self, context: ChunkContext, view: LayerView) -> None:
        pass

    def observe(self, view: LayerView) -> None:
        pass

    def end(self) -> None:
        pass


def _increment(plan: ChainPlan, y: Tensor, view: LayerView, noise: Tensor) -> None:
    """Add ``scale * W phi(y)`` to ``y`` in place, ``noise`` holding standard normals."""
    factor = plan.scale / math.sqrt(plan.width)
    if plan.method == "weights":
        # noise = sqrt(n) W, so (W Phi^T)^T = Phi W^T = Phi noise^T / sqrt(n)
        y.baddbmm_(view.phi, noise.transpose(1, 2), alpha=factor)
    elif plan.inputs == 1:
        y.addcmul_(view.phi_norm.unsqueeze(-1), noise, value=factor)
    else:
        phi = view.phi
        root = gram_square_root(phi @ phi.transpose(1, 2))
        y.baddbmm_(root, noise, alpha=factor)


def simulate_chain(
    plan: ChainPlan,
    progress: ProgressCallback | None = None,
    observers: Sequence[Observer] = (),
) -> Tensor:
    """Run the chain; returns ``(samples, len(record), k, width)`` states at ``record`` steps
    (an empty record is allowed when only ``observers`` are wanted)."""
    n, k = plan.width, plan.inputs
    positions = {step: r for r, step in enumerate(plan.record)}
    out = torch.empty((plan.samples, len(plan.record), k, n), dtype=plan.dtype, device=plan.device)
    noise_shape = (n, n) if plan.method == "weights" else (k, n)
    first_bad = torch.full((plan.samples,), -1, dtype=torch.long, device=plan.device)
    blocks = plan.blocks(sum(o.bytes_per_sample for o in observers))
    total_work = plan.samples * plan.steps
    done_work = 0
    for start, stop, chunk_blocks in blocks.chunks():
        size = stop - start
        streams = BlockStreams(plan.seed, CHAIN_STREAM, chunk_blocks, plan.device)
        context = ChunkContext(plan, start, stop, streams)
        if plan.state.kind == "x":
            y = torch.empty((size, k, n), dtype=plan.dtype, device=plan.device)
            for index, (_, lo, hi) in enumerate(chunk_blocks):
                normals = streams.normal(index, 0, (hi - lo, n, plan.state.input_dim), plan.dtype)
                y[lo:hi] = plan.state.draw(n, hi - lo, normals)
        else:
            y = plan.state.draw(n, size, None)
        noise = torch.empty((size, *noise_shape), dtype=plan.dtype, device=plan.device)
        bad = first_bad[start:stop]
        if 0 in positions:
            out[start:stop, positions[0]] = y
        bad.masked_fill_(~torch.isfinite(y.sum(dim=(1, 2))), 0)
        view = LayerView(0, y, plan.activation)
        for observer in observers:
            observer.start(context, view)
        for step in range(1, plan.steps + 1):
            context.draw(noise, step)
            _increment(plan, y, view, noise)
            view = LayerView(step, y, plan.activation)
            newly = ~torch.isfinite(y.sum(dim=(1, 2))) & (bad < 0)
            bad.masked_fill_(newly, step)
            if step in positions:
                out[start:stop, positions[step]] = y
            for observer in observers:
                observer.observe(view)
            if progress is not None and step % 64 == 0:
                progress(done_work + size * step, total_work)
        for observer in observers:
            observer.end()
        done_work += size * plan.steps
        if progress is not None:
            progress(done_work, total_work)
    _report_nonfinite(plan, first_bad)
    return out


def _report_nonfinite(plan: ChainPlan, first_bad: Tensor) -> None:
    affected = first_bad >= 0
    count = int(affected.sum())
    if count == 0 or plan.on_nonfinite == "ignore":
        return
    first = int(first_bad[affected].min())
    context = (
        f"activation={plan.activation.spec}, width={plan.width}, {plan.step_name}s={plan.steps}, "
        f"dtype={str(plan.dtype).removeprefix('torch.')}"
    )
    hint = "try dtype=torch.float64" if plan.dtype == torch.float32 else ""
    error = NumericalBlowupError(count, plan.samples, first, context, hint)
    if plan.step_name != "layer":
        error.args = (str(error).replace("at layer", f"at {plan.step_name}"),)
    if plan.on_nonfinite == "raise":
        raise error
    warnings.warn(str(error), RuntimeWarning, stacklevel=3)
