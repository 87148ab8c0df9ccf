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
  and ``Z`` a ``k x n`` standard normal matrix: ``O(n k^2)`` per layer. ``C`` is factored
  from ``Phi`` itself (``factor_rows``), never from ``G``, so nearly collinear inputs keep
  their orthogonal parts to rounding. For one input this is Lemma 6,
  ``||phi(Y)|| Z / sqrt(n)``.

Numbers out of the floating-point range are reported, never returned silently: a path whose
state becomes NaN/inf raises ``NumericalBlowupError``, one whose state underflows (every
coordinate below the smallest normal number) ``NumericalUnderflowError`` (``on_nonfinite``
chooses raise / warn / ignore). For a positively homogeneous activation (linear, ReLU, leaky)
the chain is scale-equivariant, ``phi(c y) = c phi(y)`` for ``c > 0``: the state of each path
and input is then kept as ``y 2^e`` with ``y`` rescaled by a power of two whenever its largest
entry leaves ``[2^-T, 2^T]`` (``T`` a quarter of the dtype's exponent range). Scaling by a
power of two is exact in floating point, so the numbers are those of the plain chain wherever
that one stays in range, and scale-free observables (log-growth in log space, collapse,
correlations) stay exact where the plain state would underflow or overflow; values in absolute
units are only reported as out of range at the layers where they are asked for.
"""

from __future__ import annotations

import bisect
import contextlib
import copy
import ctypes
import functools
import itertools
import math
import os
import threading
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import Tensor

from ..activations import Activation, ReLU
from ..devices import one_torch_thread
from ..errors import NumericalBlowupError, NumericalUnderflowError, check_choice, check_int
from ..rng import BlockStreams, SampleBlocks, group_steps, torch_float32_update
from . import mapped, native
from .recording import slots_by_step
from .state import InitialState

__all__ = [
    "ChainPlan",
    "ChunkContext",
    "LayerView",
    "ObservedStretch",
    "Observer",
    "canonical",
    "factor_rows",
    "gram_square_root",
    "report_numerics",
    "simulate_chain",
    "stable_norm",
    "times_power_of_two",
]

METHODS = ("law", "weights")
ON_NONFINITE = ("raise", "warn", "ignore")
# The random stream of the chain; other consumers of the same seed use other streams.
CHAIN_STREAM = 0
DEFAULT_MEMORY_BUDGET = 2**29  # bytes of working memory per chunk (512 MiB)

ProgressCallback = Callable[[int, int], None]


def _host_checks(device: torch.device) -> bool:
    """Whether the chain may read a check back to the host to skip work that is not needed.

    On the CPU a check is cheap and the work it skips is not; on an accelerator each read is a
    synchronization, which costs more than the work. Every branch that a check guards is exact
    for the rows that do not need it, so both choices give the same numbers."""
    return device.type == "cpu"


_NUMPY_RANGE = (torch.float32, torch.float64)


def _range(values: Tensor, space: _Workspace | None = None) -> tuple[float, float]:
    """Smallest and largest entry (NaN if any entry is NaN, or without host checks, which then
    takes every branch), in one reduction and one sync. ``space``: the block's workspace, which
    keeps the NumPy view of ``values`` (a buffer of the block) from one layer to the next."""
    if values.numel() == 0:
        return 1.0, 1.0
    device = values.device
    if not _host_checks(device):
        return math.nan, math.nan
    if space is not None and (array := space.array(values)) is not None:
        return float(array.min()), float(array.max())
    memory = _memory_order(values)
    if (array := _numpy(memory)) is not None:
        return float(array.min()), float(array.max())
    low, high = torch.aminmax(memory)
    if device.type == "cpu":  # no sync to save: two reads are cheaper than a stack
        return low.item(), high.item()
    return tuple(torch.stack([low, high]).tolist())  # type: ignore[return-value]


def _memory_order(values: Tensor) -> Tensor:
    """``values`` permuted to memory order where that is contiguous: a reduction over a
    permuted view (the CPU chain's samples-last state) is an order of magnitude slower."""
    if not values.is_contiguous():
        memory = values.permute(*range(1, values.ndim), 0)  # samples last, the usual case
        if not memory.is_contiguous():
            memory = values.permute(sorted(range(values.ndim), key=lambda a: -values.stride(a)))
        return memory
    return values


def _numpy(values: Tensor) -> np.ndarray | None:
    """The NumPy view of a contiguous CPU tensor of float32 or float64, else None: NumPy's
    ``min`` and ``max`` (NaN-propagating like ``aminmax``) are twice as fast on the CPU."""
    if values.device.type != "cpu" or values.dtype not in _NUMPY_RANGE:
        return None
    if not values.is_contiguous():
        return None
    return values.detach().numpy() if values.requires_grad else values.numpy()


def _some(mask: Tensor) -> bool:
    """Whether ``mask`` has a True entry (always True without host checks)."""
    return bool(mask.any()) if _host_checks(mask.device) else True


def canonical(values: Tensor) -> Tensor:
    """``values`` with the strides of a C-contiguous tensor where it is one in memory but
    not in its strides (axes of length 1 with other strides, as the samples-last state of one
    input has): ``copy_`` takes such a tensor for a transposed one and runs its transposing
    kernel, an order of magnitude slower than a plain copy."""
    if values.is_contiguous() and values.numel() > 0:
        return values.view(-1).view(values.shape)
    return values


def stable_norm(x: Tensor) -> Tensor:
    """``||x||`` over the last axis, to rounding even where the squares of the entries
    underflow or overflow (``torch.linalg.vector_norm`` returns 0 for entries ~1e-170 in
    float64). Rows whose plain norm is suspect (below ``sqrt(tiny)/eps``, or inf) are computed
    again scaled by a power of two that brings every nonzero square into range; scaling by a
    power of two is exact, so every row gets the bits the plain norm gives where it is valid.
    A row of zeros (a collapsed ReLU input) is not suspect; a row of one entry is its modulus.
    """
    return _norm_and_range(x)[0]


def _norm_and_range(
    x: Tensor,
    work: Tensor | None = None,
    out: Tensor | None = None,
    space: _Workspace | None = None,
) -> tuple[Tensor, float, float]:
    """``stable_norm(x)`` and the smallest and largest of its entries (``_range``); ``work``
    (shaped like ``x``) and ``out`` (like the norm) are buffers to compute it in, if given,
    ``space`` the workspace they belong to."""
    if x.shape[-1] == 1:  # sqrt(x^2) = |x| in floating point wherever x^2 is in range
        norm = x.squeeze(-1).abs() if out is None else torch.abs(x.squeeze(-1), out=out)
        return (norm, *_range(norm, space if norm is out else None))
    return _checked_norm(_plain_norm(x, work, out), lambda: x, out, space)


def _checked_norm(
    norm: Tensor,
    values: Callable[[], Tensor],
    out: Tensor | None,
    space: _Workspace | None,
    known: tuple[float, float] | None = None,
) -> tuple[Tensor, float, float]:
    """The end of ``_norm_and_range`` for the plain norm ``norm`` of the rows of
    ``values()`` (called only where a norm may be wrong: rows of zeros to confirm, squares
    out of range); ``known``: the range of ``norm`` where already read (``_range``)."""
    info, floor = _floor(norm.dtype)
    low, high = known if known is not None else _range(norm, space if norm is out else None)
    if low >= floor and high < math.inf:
        return norm, low, high
    if low == 0 and high < math.inf and _zeros_are_exact(x := values(), norm, floor):
        return norm, low, high
    x = values()
    # a power of two that makes the squares of a row's entries normal numbers: up for rows
    # whose squares may underflow (the smallest subnormal, scaled up, squares to a normal),
    # down for rows whose squares overflowed; 2^0 = 1 for every other row
    exponent = torch.zeros_like(norm)
    if not low >= floor:  # NaN-safe: a NaN norm makes low NaN
        exponent += (norm < floor).to(x.dtype) * (int(info.minexp) // 2 - info.minexp + info.nmant)
    if not high < math.inf:
        exponent -= torch.isinf(norm).to(x.dtype) * (int(info.maxexp) // 2 + 16)
    scale = torch.exp2(exponent)
    rescaled = _plain_norm(x * scale.unsqueeze(-1)) / scale
    norm = torch.where(exponent == 0, norm, rescaled)  # the valid rows keep their bits
    return (norm, *_range(norm))


@functools.cache
def _floor(dtype: torch.dtype) -> tuple[Any, float]:
    """The dtype's ``np.finfo`` and ``sqrt(tiny) / eps``, below which a plain norm is suspect."""
    info = np.finfo(str(dtype).removeprefix("torch."))
    return info, math.sqrt(float(info.tiny)) / float(info.eps)


def _zeros_are_exact(x: Tensor, norm: Tensor, floor: float) -> bool:
    """Whether every row of ``x`` with a norm below ``floor`` is a row of zeros (so that the
    plain norm is exact): the rows of a collapsed ReLU chain, which the CPU chain then need not
    compute twice at every layer."""
    positive = torch.where(norm > 0, norm, math.inf)
    if not float(positive.min()) >= floor:
        return False
    return not bool(x[norm == 0].ne(0).any())  # reads only the rows of zero norm


def _plain_norm(x: Tensor, work: Tensor | None = None, out: Tensor | None = None) -> Tensor:
    """``sqrt(sum(x^2))`` over the last axis, with no care for under/overflow (``stable_norm``
    adds it). On the CPU chain's samples-last layout (``x`` of memory ``(k, n, block)``), the
    compiled row norms where they load (``native.row_norms``: one pass, the squares summed in
    double), into ``out`` if given; otherwise a square and a sum rather than
    ``torch.linalg.vector_norm``, which is an order of magnitude slower where the last axis
    is not contiguous in memory; in the buffers ``work`` and ``out`` where given (no
    allocation)."""
    if x.dim() == 3 and x.device.type == "cpu" and (memory := _memory(x)) is not None:
        k, _, size = memory.shape
        norm = out if out is not None else torch.empty((k, size), dtype=x.dtype).t()
        if native.row_norms(memory, norm.t()):
            return norm
    if work is None or out is None:
        return x.square().sum(-1).sqrt_()
    return torch.sum(torch.mul(x, x, out=work), -1, out=out).sqrt_()


def times_power_of_two(values: Tensor, exponent: Tensor) -> Tensor:
    """``values * 2^exponent`` (exact unless the result leaves the dtype's range), in two
    factors so that ``2^exponent`` itself cannot overflow where the product does not."""
    half = torch.div(exponent, 2, rounding_mode="floor")
    return (
        values * torch.exp2(half.to(values.dtype)) * torch.exp2((exponent - half).to(values.dtype))
    )


def factor_rows(phi: Tensor) -> Tensor:
    """A lower-triangular ``C`` with ``C C^T = Phi Phi^T`` for a batch of ``k x n`` matrices
    ``Phi`` (shape ``(batch, k, n)``), computed without forming ``Phi Phi^T``.

    ``C = R^T`` for the QR factorization ``Phi^T = Q R``, by modified Gram-Schmidt over the
    ``k`` rows, which computes ``R`` as accurately as Householder QR (Bjorck and Paige 1992):
    ``C C^T`` is exactly ``(Phi + E)(Phi + E)^T`` with each row of ``E`` a few ``u`` (the unit
    roundoff) times that row of ``Phi``, the same kind of error as rounding ``phi`` itself.
    ``C[j, j]``, the norm of the part of row ``j`` orthogonal to the earlier rows, is thus
    exact to ``~u ||phi_j||``: a relative error ``~u / eps`` for a part of relative size
    ``eps``. A Cholesky factor of ``Phi Phi^T`` works on the squared scale and resolves such
    parts only down to ``eps ~ sqrt(u)``, which biases the joint law of nearly collinear
    inputs. A zero row (a collapsed ReLU input) gives a zero column, never NaN; a row equal to
    an earlier one gets that row's factor row, so that identical inputs stay identical (as
    with explicit weights) rather than drifting apart by rounding.
    """
    size, k = phi.shape[:2]
    factor = phi.new_zeros((size, k, k))
    work = phi.clone()  # row i is orthogonalized against rows 0..i-1 in place
    for i in range(k):
        row = work[:, i]
        norm = stable_norm(row)  # zero only for a zero row
        factor[:, i, i] = norm
        if i + 1 < k:
            unit = row / torch.where(norm > 0, norm, torch.ones_like(norm)).unsqueeze(-1)
            rest = work[:, i + 1 :]
            # (batch, k - i - 1, 1); a product and a sum rather than bmm, so that a batch
            # stored samples-last (the CPU chain's layout) needs no copy
            coefficients = (rest * unit.unsqueeze(1)).sum(-1, keepdim=True)
            factor[:, i + 1 :, i] = coefficients.squeeze(-1)
            rest.addcmul_(coefficients, unit.unsqueeze(1), value=-1.0)
    if k > 1:
        _copy_repeated_rows(phi, factor)
    return factor


def _copy_repeated_rows(phi: Tensor, factor: Tensor) -> None:
    """Give a row of ``Phi`` equal to an earlier one that row's factor row. Only rows within
    ``sqrt(u)`` of the span of the earlier ones (a cheap test) are compared entry by entry."""
    diagonal = torch.diagonal(factor, dim1=-2, dim2=-1)[:, 1:]
    lengths = torch.linalg.vector_norm(factor, dim=-1)[:, 1:]
    if not _some(diagonal <= math.sqrt(torch.finfo(phi.dtype).eps) * lengths):
        return
    everyone = torch.arange(phi.shape[0], device=phi.device)
    for j in range(1, phi.shape[1]):
        same = (phi[:, j : j + 1] == phi[:, :j]).all(-1)
        if _some(same):
            earlier_row = factor[everyone, same.int().argmax(-1)]
            factor[:, j] = torch.where(same.any(-1).unsqueeze(-1), earlier_row, factor[:, j])


def _memory(values: Tensor) -> Tensor | None:
    """The samples-last memory ``(k, n, block)`` of a ``(block, k, n)`` view, or None where
    ``values`` is not stored that way (the layout of the CPU chain's state and workspace)."""
    memory = values.permute(1, 2, 0)
    return memory if memory.is_contiguous() else None


def _factor_rows_last(
    phi: Tensor, phi_norm: Tensor, space: _Workspace, phi_low: float = math.nan
) -> Tensor:
    """``factor_rows`` for ``Phi`` stored samples-last, ``phi`` its memory ``(k, n, block)``;
    returns ``C`` as ``(k, k, block)`` memory (``C[a, b]`` the entries of all samples).

    The same modified Gram-Schmidt, every operation on whole rows ``(n, block)`` of contiguous
    memory (per-sample reductions over the width run along memory, one sample per lane) in
    buffers of ``space``: about ``3 k^2 / 2`` passes over a row, where ``factor_rows`` on the
    same memory takes strided reductions an order of magnitude slower. ``phi_norm``
    (``(block, k)``, ``||phi||`` as ``stable_norm`` gives it) is the first diagonal entry and
    screens for repeated rows. A residual row of norm at most ``eps ||phi_j||`` (a row in the
    span of the earlier ones to rounding: repeated, collinear or more rows than the width) is
    set to zero, a perturbation of ``phi_j`` of the size of its rounding, so that no later row
    is projected on a direction of rounding errors. The other diagonal entries are plain
    norms, valid where at least ``sqrt(tiny) / eps`` and finite; the samples with an entry
    that is not (squares that underflow or overflow) are factored again by ``factor_rows``.
    Every sample thus gets a factor of ``Phi`` to rounding, as ``factor_rows`` does. The
    checks are float reductions (comparisons and boolean reductions are an order of magnitude
    slower on the CPU).

    Those checks need a row's residual before the next rows are projected on it, a host
    read per row; a block whose rows are all far from the span of the earlier ones (every
    ``C[i, i] > sqrt(eps) ||phi_i||``, the usual case) needs none of them, and is factored
    without them and checked once at the end (one reduction over the diagonal): where a row
    turns out close, the block is factored again with the checks, and so are its next layers
    until one has no close row (``space.careful``). Both give the same numbers wherever no row
    is close, so the numbers do not depend on which ran. ``phi_low`` (the smallest
    ``||phi_i||``, NaN if unknown) lets that end check also stand for the range check of the
    diagonal: ``C[i, i] >= sqrt(eps) ||phi_i|| >= floor``.
    """
    k = phi.shape[0]
    factor, diagonal = space.factor()
    norms = space.norm_rows if phi_norm is space.phi_norm else phi_norm.t()  # (k, block)
    info, floor = _floor(phi.dtype)
    root = math.sqrt(float(info.eps))
    space.rest_views(norms)
    close = _gram_schmidt_last(phi, norms, space, space.careful)
    if k == 1:
        return factor
    margin, kept = space.margin_kept()
    if not space.careful:
        torch.add(space.diagonal_rest, space.norm_rest, alpha=-root, out=space.margin_rest)
        low, high = _range(space.margin_rest, space)
        if not low >= 0:  # a row within sqrt(eps) of the span of the earlier ones (or NaN)
            space.careful = True
            close = _gram_schmidt_last(phi, norms, space, True)
        elif high < math.inf and root * phi_low >= floor:
            return factor
    elif not close:
        space.careful = False
    low, high = _range(diagonal[1:])
    if not (low >= floor and high < math.inf):
        temporary = (margin[1:], kept[1:])
        large = floor * math.sqrt(phi.shape[1])
        _refactor_suspect_samples(phi, factor, diagonal[1:], norms[1:], floor, large, temporary)
    if close:
        _copy_repeated_rows_last(phi, factor, diagonal, norms, close, (margin, kept))
    return factor


def _mend_factor(
    source: Tensor, relu: bool, phi_norm: Tensor, space: _Workspace, kernel: native.FactorUpdate
) -> None:
    """The end of ``_factor_rows_last`` for the samples of the tiles the compiled kernel left
    (``kernel.deferred``; ``native.py``), whose state it has not updated yet: ``phi`` is
    ``source`` (its ReLU with ``relu``) at those samples only; the samples whose plain diagonal
    entries may be wrong are factored again, then repeated rows get their earlier row's factor
    row, and the factor is written back at those samples."""
    k, n, size = source.shape
    tile = native.TILE
    starts = np.flatnonzero(kernel.deferred) * tile
    columns = np.concatenate([np.arange(a, min(a + tile, size)) for a in starts])
    index = torch.from_numpy(columns).to(source.device)
    phi = source[:, :, index]
    if relu:
        phi.clamp_(min=0)
    whole = space.factor()[0]
    factor = whole[:, :, index]
    diagonal = torch.diagonal(factor, 0, 0, 1).t()  # (k, samples), a view of ``factor``
    rows = space.norm_rows if phi_norm is space.phi_norm else phi_norm.t()  # (k, block)
    norms = rows[:, index]
    floor = _floor(source.dtype)[1]
    margin, kept = torch.empty((2, k, index.numel()), dtype=source.dtype, device=source.device)
    temporary = (margin[1:], kept[1:])
    _refactor_suspect_samples(
        phi, factor, diagonal[1:], norms[1:], floor, floor * math.sqrt(n), temporary
    )
    _copy_repeated_rows_last(phi, factor, diagonal, norms, list(range(1, k)), (margin, kept))
    whole[:, :, index] = factor


def _gram_schmidt_last(phi: Tensor, norms: Tensor, space: _Workspace, careful: bool) -> list[int]:
    """One modified Gram-Schmidt pass of ``_factor_rows_last`` into ``space.factor()``; with
    ``careful`` the per-row checks (zeroing spanned residuals), returning the rows that may
    repeat an earlier one, else none. Each step ``i`` takes the products of rows ``i..k-1``
    with residual ``i`` in one pass, whose first sum is ``||r_i||^2``."""
    k, n = phi.shape[:2]
    factor = space.factor()[0]
    margin, kept, inverse = space.scratch()
    info, _ = _floor(phi.dtype)
    tiny, eps = float(info.tiny), float(info.eps)
    # a plain norm is short of the squares that underflowed, sqrt(n tiny) at most: a norm below
    # eps ||phi_j|| is known to be small only where that is above sqrt(n tiny)
    large = _floor(phi.dtype)[1] * math.sqrt(n)
    factor[0, 0].copy_(norms[0])
    close: list[int] = []  # the rows that may repeat an earlier one (within sqrt(eps))
    residual = phi[0]  # row i of the residuals, orthogonal to rows 0..i-1 of phi
    rest = phi[1:]
    for i, step in enumerate(space.gram_schmidt()):
        if i == 0:
            if k == 1:
                break
            torch.sum(torch.mul(rest, residual, out=step.products), 1, out=step.dots)
        else:
            residual, rest = step.residual, step.rest
            torch.sum(torch.mul(step.rows, residual, out=step.products), 1, out=step.dots)
            norm = step.diagonal
            if step.diagonal_array is None:
                norm.sqrt_()
            else:  # NumPy's: correctly rounded, and on zeros (collapsed inputs, spanned
                # rows) an order of magnitude faster than torch's
                np.sqrt(step.diagonal_array, out=step.diagonal_array)
            # < 0 where close (a row of zeros is not); then <= 0 where spanned (eps < sqrt(eps))
            if (
                careful
                and not _smallest(torch.add(norm, norms[i], alpha=-math.sqrt(eps), out=margin)) >= 0
            ):
                close.append(i)
                spanned = torch.add(norm, norms[i], alpha=-eps, out=margin)
                if not _smallest(spanned) > 0:
                    keep = _positive_(spanned)
                    if not _smallest(norms[i]) >= large:  # keep the rows whose norm is small
                        small = _positive_(torch.add(norms[i], -large, out=kept).neg_())
                        keep = torch.maximum(keep, small, out=keep)
                    residual.mul_(keep)
                    step.dots.mul_(keep)  # the norm, and the products with the residual
        if i + 1 == k:
            break
        # r_j . r_i / ||r_i|| for the rows j > i; 1 / ||r_i|| (below tiny: a zero row, or suspect)
        reciprocal = torch.reciprocal(
            torch.clamp(step.diagonal, min=tiny, out=inverse), out=inverse
        )
        step.coefficients.mul_(reciprocal)
        torch.mul(step.coefficients, reciprocal, out=step.projection)
        torch.addcmul(rest, step.projection_column, residual, value=-1.0, out=step.rest)
    return close


def _smallest(values: Tensor) -> float:
    """The smallest entry (NaN if any is NaN; NaN without host checks, which then takes every
    branch)."""
    return float(values.min()) if _host_checks(values.device) else math.nan


def _positive_(values: Tensor) -> Tensor:
    """In place: 1 where ``values > 0``, 0 where ``values <= 0`` (NaN where NaN), in float
    arithmetic."""
    return values.clamp_(min=0).sign_()


def _refactor_suspect_samples(
    phi: Tensor,
    factor: Tensor,
    diagonal: Tensor,
    norms: Tensor,
    floor: float,
    large: float,
    temporary: tuple[Tensor, Tensor],
) -> None:
    """Factor again with ``factor_rows`` the samples whose plain diagonal entries may be wrong
    (``_factor_rows_last``; ``diagonal`` and ``norms`` are those of rows 1..k-1, ``(k - 1,
    block)``): an entry below ``floor`` or not finite, except a zero for a row of zeros or a
    row of norm at least ``large`` (whose residual was set to zero). Zero entries are common
    (collapsed inputs, more inputs than the width): where no norm is below ``large`` but zero
    and no diagonal entry below ``floor`` but zero, that is seen on float reductions."""
    # zeros counted as floor (large): then the smallest entry is at least floor (large)?
    first, second = temporary  # (k - 1, block) buffers

    def zeros_as(values: Tensor, value: float) -> Tensor:  # values + value (1 - sign(values))
        torch.sign(values, out=first).neg_().add_(1)
        return torch.add(values, first, alpha=value, out=second)

    if (
        _smallest(torch.mul(diagonal, 0, out=second)) == 0  # no entry is inf or NaN
        and _smallest(zeros_as(diagonal, floor)) >= floor
        and _smallest(zeros_as(norms, large)) >= large
    ):
        return
    zero = (diagonal == 0) & ((norms == 0) | (norms >= large))
    valid = ((diagonal >= floor) & (diagonal < math.inf)) | zero
    suspect = ~valid.all(0)
    if not _some(suspect):
        return
    rows = suspect.nonzero().squeeze(-1)
    factor[:, :, rows] = _factor_rows_grouped(phi[:, :, rows].permute(2, 0, 1)).permute(1, 2, 0)


_REFACTOR_GROUP = 64  # samples per call of ``factor_rows`` in ``_factor_rows_grouped``


def _factor_rows_grouped(phi: Tensor) -> Tensor:
    """``factor_rows(phi)`` (``phi`` ``(count, k, n)``) in contiguous groups of exactly
    ``_REFACTOR_GROUP`` samples (the last one padded with copies of its last sample): torch
    picks its reduction kernels by the shape of a batch, so a sample factored among another
    number of others may get other bits; in groups of one shape, a sample's factor depends on
    its own numbers only, not on which of its block's samples needed factoring again (nor,
    so, on the chunk size)."""
    count = phi.shape[0]
    padded = -(-count // _REFACTOR_GROUP) * _REFACTOR_GROUP
    if padded > count:
        phi = torch.cat([phi, phi[-1:].expand(padded - count, -1, -1)])
    phi = phi.contiguous()
    parts = [factor_rows(phi[i : i + _REFACTOR_GROUP]) for i in range(0, padded, _REFACTOR_GROUP)]
    return torch.cat(parts)[:count]


def _copy_repeated_rows_last(
    phi: Tensor,
    factor: Tensor,
    diagonal: Tensor,
    norms: Tensor,
    rows: list[int],
    temporary: tuple[Tensor, Tensor],
) -> None:
    """``_copy_repeated_rows`` for the samples-last memory of ``_factor_rows_last``
    (``diagonal`` and ``norms`` ``(k, block)``): a row of ``Phi`` equal to an earlier one gets
    that row's factor row (any earlier equal row has the same factor row by then). Only the
    ``rows`` with a diagonal entry within ``sqrt(u)`` of their norm are candidates, and only
    where their norm equals an earlier row's are they compared entry by entry."""
    root = math.sqrt(torch.finfo(phi.dtype).eps)
    close = temporary[0][0]  # (block,) buffer; temporary[1] is (k, block)
    for j in rows:
        # 0 where row j is close and has the norm of row i (a row of zeros is not close)
        torch.sign(norms[j], out=close).neg_().add_(1)
        close.add_(diagonal[j]).sub_(norms[j], alpha=root).clamp_(min=0)
        apart = torch.sub(norms[j], norms[:j], out=temporary[1][:j]).abs_().add_(close)
        for i, distance in enumerate(apart.amin(-1).tolist()):
            if distance == 0:
                same = (apart[i] == 0) & ((phi[j] - phi[i]).abs_().amax(0) == 0)
                columns = same.nonzero().squeeze(-1)
                factor[j][:, columns] = factor[i][:, columns]


def gram_square_root(gram: Tensor) -> Tensor:
    """A lower-triangular ``C`` with ``C C^T = G`` for a batch of PSD Gram matrices ``G``.

    The chain no longer uses it: ``factor_rows`` factors ``Phi`` itself, which keeps
    orthogonal parts that this factor of ``G`` drops (below ``~8 sqrt(eps)`` in relative size).

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
        working = 9 * state + self.numbers_per_sample() + 2 * self.inputs**2
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
    computed at most once and shared by the next increment and every observer.

    ``y`` is the working state: for a positively homogeneous activation it is ``Y_l`` divided
    by ``2^exponent`` (one integer exponent per network and input, see the module docstring),
    and ``phi``, ``phi_norm``, ``y_norm`` are in the same units; ``exponent`` is None
    otherwise. ``lost`` marks the networks and inputs whose state has underflowed (None when
    none can).
    """

    def __init__(
        self,
        layer: int,
        y: Tensor,
        activation: Activation,
        exponent: Tensor | None = None,
        lost: Tensor | None = None,
        y_norm: Tensor | None = None,
        workspace: _Workspace | None = None,
        finite: bool = False,
    ) -> None:
        self.layer = layer
        self.y = y
        self.activation = activation
        self.exponent = exponent
        # False where the chain knows ``exponent`` to be all zeros (no path ever rescaled):
        # ``absolute`` is then the identity, bit for bit
        self.scaled = True
        self.lost = lost
        self.workspace = workspace
        # True where the chain has checked (on a reduction it computes anyway, on the host)
        # that every entry of ``y`` is finite: observers may then take branch-free paths
        # that are exact for finite numbers only; False otherwise (and on accelerators)
        self.finite = finite
        # quantities of this layer that several observers use, computed once (observables.py)
        self.shared: dict[str, Any] = {}
        self._phi: Tensor | None = None
        self._phi_norm: Tensor | None = None
        self.phi_range = (math.nan, math.nan)  # smallest and largest phi_norm (NaN: unknown)
        # smallest and largest entry of y, where read in the pass that computed phi_norm
        self.y_range: tuple[float, float] | None = None
        self._active: Tensor | None = None
        self._y_norm = y_norm

    @property
    def y_norm(self) -> Tensor:
        """``||y||`` per network and input, shape ``(chunk, k)``."""
        if self._y_norm is None:
            space = self.workspace
            if space is not None:  # the next layers take it in the pass of phi_norm
                space.reads_y_norm = True
            if space is None:
                self._y_norm = stable_norm(self.y)
            else:
                self._y_norm = _norm_and_range(
                    self.y, space.square, space.y_norm(self.layer), space
                )[0]
        return self._y_norm

    @property
    def phi(self) -> Tensor:
        """``phi(Y_l)``, shape ``(chunk, k, n)``."""
        if self._phi is None:
            if self.workspace is not None and isinstance(self.activation, ReLU):
                self._phi = torch.clamp(self.y, min=0, out=self.workspace.phi)
            else:
                self._phi = self.activation.phi(self.y)
        return self._phi

    @property
    def phi_norm(self) -> Tensor:
        """``||phi(Y_l)||`` per network and input, shape ``(chunk, k)``."""
        if self._phi_norm is None:
            space = self.workspace
            if space is None:
                self._phi_norm = stable_norm(self.phi)
            elif self.y.shape[-1] == 1 and isinstance(self.activation, ReLU):
                # |relu(y)| = relu(y); canonical strides, or every kernel that reads it (and
                # the results it allocates like it) takes the slow path of permuted tensors
                self._phi_norm = canonical(self.phi.squeeze(-1))
            elif (
                isinstance(self.activation, ReLU)
                and (memory := space.memory(self.y)) is not None
                and space.norms_pass(memory)(
                    True,
                    counts := self._counts(),
                    plain := self._plain_rows(),
                    *(division := space.division()),
                )
            ):  # ||relu(y)|| in one pass over y, with the range of y (and the active counts,
                # ||y|| and the log-growth's ratio where an observer reads them); phi only
                # where asked for
                low, high, *extremes = space.extremes.tolist()
                self.y_range = (low, high)
                if counts is not None:
                    self._active = space.active_for(self.layer)[1]
                if plain is not None:
                    buffer = space.y_norm(self.layer)
                    known = (extremes[2], extremes[3])
                    self._y_norm = _checked_norm(buffer, lambda: self.y, buffer, space, known)[0]
                self._phi_norm, *range_ = _checked_norm(
                    space.phi_norm,
                    lambda: self.phi,
                    space.phi_norm,
                    space,
                    (extremes[0], extremes[1]),
                )
                self.phi_range = tuple(range_)
                if division[0] is not None and self._phi_norm is space.phi_norm:
                    # the kernel's norms stand (none computed again): so does the ratio
                    self.shared["phi ratio"] = space.divided()
            else:
                self._phi_norm, *range_ = _norm_and_range(
                    self.phi, space.square, space.phi_norm, space
                )
                self.phi_range = tuple(range_)
        return self._phi_norm

    def take_width_one(self, space: _Workspace, phi_range: tuple[float, float]) -> None:
        """Take ``phi`` (and ``phi_norm``), with its range, and where computed the signs and
        the active counts from the compiled pass of a width-1 ReLU state
        (``_Workspace.width_one``); the signs only for a finite state (``torch.sign`` of a
        NaN is not the kernel's)."""
        self._phi = space.phi
        self._phi_norm = canonical(space.phi.squeeze(-1))
        self.phi_range = phi_range
        if space.signs and self.finite:
            self.shared["phi_sign"] = self.buffer("phi sign")
        if space.counts_active:
            self._active = space.active_for(self.layer)[1]
        if (divided := space.divided()) is not None:
            self.shared["phi ratio"] = divided

    def _plain_rows(self) -> Tensor | None:
        """The ``(k, chunk)`` rows of the ``y_norm`` buffer where an observer of the block reads
        ``y_norm`` and it is not known yet (``_Workspace.reads_y_norm``), else None."""
        space = self.workspace
        if space is None or not space.reads_y_norm or self._y_norm is not None:
            return None
        return space.transposed(space.y_norm(self.layer))

    def _counts(self) -> Tensor | None:
        """The ``(k, chunk)`` rows of the active counts' buffer where an observer of the block
        counts them (``_Workspace.counts_active``) and they are not known yet, else None."""
        space = self.workspace
        if space is None or not space.counts_active or self._active is not None:
            return None
        return space.active_for(self.layer)[0]

    @property
    def active(self) -> Tensor:
        """``#{i: Y_l^i > 0}`` per network and input (int32), shape ``(chunk, k)``."""
        return self.count_active()

    def count_active(self, out: Tensor | None = None) -> Tensor:
        """``active``, computed into ``out`` (an int32 ``(chunk, k)`` tensor) where given and
        not computed yet (then ``active`` is ``out``), else copied into it."""
        if self._active is not None:
            if out is None or out is self._active:  # counted where they go (``count_into``)
                return self._active
            return out.copy_(self._active)
        if self.workspace is not None:  # the next layers count in the pass of phi_norm
            self.workspace.counts_active = True
        if self.finite and isinstance(self.activation, ReLU) and self._sums_exact():
            # for finite y, relu(y) > 0 exactly where y > 0: the sign of phi (computed
            # anyway for the increment) is the indicator, and a float sum of n zeros and
            # ones is exact; on the CPU a comparison and an integer sum of booleans are
            # several times slower than these vectorized kernels
            if self.y.shape[-1] == 1:  # phi_norm = relu(y): its sign is the count
                counts = self.phi_sign
            elif (
                self.workspace is not None
                and (memory := self.workspace.memory(self.y)) is not None
                and native.count_positive(
                    memory,
                    (target := out if out is not None else self.buffer("active", torch.int32)).t(),
                )
            ):  # one compiled pass over y (phi is not needed)
                self._active = target
                return target
            else:
                space = self.workspace
                signs = torch.sign(self.phi, out=None if space is None else space.square)
                counts = torch.sum(signs, -1, out=self.buffer("active sum"))
            if out is None:
                out = self.buffer("active", torch.int32)
            self._active = out.copy_(counts)
        elif self.y.shape[-1] == 1:  # a sum over one entry is a slow reduction: a cast
            counts = self.y[..., 0] > 0
            self._active = counts.to(torch.int32) if out is None else out.copy_(counts)
        else:
            counts = (self.y > 0).sum(-1, dtype=torch.int32)
            self._active = counts if out is None else out.copy_(counts)
        return self._active

    @property
    def phi_sign(self) -> Tensor:
        """``sign(phi_norm)``: 1 where ``phi_norm > 0``, zero where it is zero (a collapsed
        path; -0 where the norm is, as the norm of a width-1 ReLU state, ``relu(y)``, may
        be), NaN where NaN, per network and input; computed once per layer, in a buffer."""
        sign = self.shared.get("phi_sign")
        if sign is None:
            if self.workspace is not None:  # the next layers of width 1 take it in one pass
                self.workspace.signs = True
            sign = torch.sign(self.phi_norm, out=self.buffer("phi sign"))
            self.shared["phi_sign"] = sign
        return sign

    def buffer(self, name: str, dtype: torch.dtype | None = None) -> Tensor:
        """A ``(chunk, k)`` buffer named ``name`` (of the state's dtype unless given) to compute
        into: the same memory at every layer of a CPU block (``_Workspace.buffer``), a fresh
        tensor otherwise. Its values last until the next layer's view asks for it again."""
        dtype = self.y.dtype if dtype is None else dtype
        if self.workspace is None:
            return torch.empty(self.y.shape[:-1], dtype=dtype, device=self.y.device)
        return self.workspace.buffer(name, dtype)

    def _sums_exact(self) -> bool:
        """Whether a sum of ``n`` zeros and ones is exact in the dtype (below 2^(mantissa
        bits + 1))."""
        return self.y.shape[-1] <= 2.0 / torch.finfo(self.y.dtype).eps

    def absolute(self, values: Tensor) -> Tensor:
        """``values`` (samples first, then inputs) of degree one in ``Y``, back in the units of
        ``Y_l``: out of the dtype's range where ``Y_l`` is (the chain reports it)."""
        if self.exponent is None or not self.scaled:
            return values
        exponent = self.exponent.reshape(*self.exponent.shape, *(1,) * (values.ndim - 2))
        return times_power_of_two(values, exponent)


class _Step(NamedTuple):
    """The views of step ``i`` of ``_gram_schmidt_last`` in a block's buffers: ``residual``
    (row ``i``'s, for ``i > 0``), ``rows`` (the residuals of rows ``i..k-1``, for ``i > 0``),
    ``rest`` (those of the rows after ``i``), scratch ``products`` of ``rows`` (of ``rest``
    for ``i = 0``) with ``residual``, their sums ``dots`` in the factor's column ``i`` (from
    the diagonal for ``i > 0``), ``diagonal`` ``C[i, i]``, the ``coefficients``
    ``C[i + 1:, i]`` and the ``projection`` coefficients (also as a column)."""

    residual: Tensor
    rows: Tensor
    rest: Tensor
    products: Tensor
    dots: Tensor
    diagonal: Tensor
    diagonal_array: np.ndarray | None
    coefficients: Tensor
    projection: Tensor
    projection_column: Tensor


class _Update(NamedTuple):
    """``_Workspace.rows_last``: the memory of ``phi`` and the terms of the increment."""

    phi: Tensor
    terms: list[tuple[Tensor, Tensor, Tensor]]


def _kept(
    cache: dict[int, tuple[Tensor, Any]], values: Tensor, make: Callable[[], Any], limit: int = 64
) -> Any:
    """``make()`` for ``values``, kept in ``cache`` (by identity: the tensors a block passes
    at every layer) so that it is made once; a cache of ``limit`` entries is emptied first
    (tensors that are not passed again)."""
    hit = cache.get(id(values))
    if hit is None or hit[0] is not values:
        if len(cache) >= limit:
            cache.clear()
        hit = cache[id(values)] = (values, make())
    return hit[1]


class _Workspace:
    """Buffers of one block of the CPU chain, samples last in memory like its state, reused
    at every layer so that a layer allocates nothing: ``phi`` and ``square`` shaped like the
    state ``(block, k, n)``, ``phi_norm`` and two ``y_norm`` buffers ``(block, k)`` (the
    numerics compare a layer's norms with the previous layer's)."""

    def __init__(self, k: int, n: int, size: int, dtype: torch.dtype, device: torch.device):
        def state() -> Tensor:
            return torch.empty((k, n, size), dtype=dtype, device=device).permute(2, 0, 1)

        def norms() -> Tensor:  # canonical: for one input, plain strides (see ``canonical``)
            return canonical(torch.empty((k, size), dtype=dtype, device=device).t())

        self.phi, self.square = state(), state()
        self.phi_norm = norms()
        self.phi_norm_column = self.phi_norm.unsqueeze(-1)  # as the one-input increment reads it
        self.y_norms = (norms(), norms())
        self.buffers: dict[tuple[str, torch.dtype], Tensor] = {}
        self.shape = (k, n, size)
        self.dtype, self.device = dtype, device
        self.state: Tensor | None = None  # the memory (k, n, block) of the block's state
        self._factor: Tensor | None = None
        self._rows: Tensor | None = None
        self._temporaries: Tensor | None = None
        self._steps: list[_Step] | None = None
        self._scratch: tuple[Tensor, Tensor, Tensor] | None = None
        self._rows_last: dict[tuple[int, int, int], tuple[Tensor, Tensor, Tensor, Any]] = {}
        self._arrays: dict[int, tuple[Tensor, np.ndarray | None]] = {}
        self._margin_kept: tuple[Tensor, Tensor] | None = None
        self._norms: Tensor | None = None
        self._native: tuple[Tensor, native.FactorUpdate | None] | None = None
        # whether the factor of the next layer checks every row as it goes (a layer had a
        # row close to the span of the earlier ones; see ``_factor_rows_last``)
        self.careful = False
        self.norm_rows = self.phi_norm.t()  # (k, block)
        # the smallest and largest entry of the state, of ||relu(y)|| and of ||y||, read in a
        # compiled pass (``native.row_norms``)
        self.extremes = np.empty(6)
        # whether an observer of the block reads the active counts at every layer (then the
        # compiled pass that computes ||relu(y)|| counts them too)
        self.counts_active = False
        self.reads_y_norm = False  # the same for ||y||
        self.signs = False  # the same for the signs of ||relu(y)|| (``LayerView.phi_sign``)
        # (layer, rows, values): where the pass of that layer writes its active counts (an
        # observer's results, ``count_into``), else the block's buffer
        self._count_into: tuple[int, Tensor, Tensor] | None = None
        # (divisor, its (k, block) rows, out): width 1's pass also divides relu(y) by it
        self._divide: tuple[Tensor, Tensor, Tensor] | None = None
        self._width_one: tuple[Tensor, Tensor, np.ndarray] | None = None
        self._memories: dict[int, tuple[Tensor, Tensor | None]] = {}
        self._transposed: dict[int, tuple[Tensor, Tensor]] = {}
        self._row_arrays: dict[int, tuple[Tensor, np.ndarray]] = {}
        self._norms_pass: native.RowNorms | None = None

    def factor(self) -> tuple[Tensor, Tensor]:
        """``(k, k, block)`` memory for the factor of several inputs (strictly upper part 0)
        and its diagonal as a ``(k, block)`` view (each row contiguous)."""
        if self._factor is None:
            k, _, size = self.shape
            self._factor = torch.zeros((k, k, size), dtype=self.dtype, device=self.device)
            self._diagonal = torch.diagonal(self._factor, 0, 0, 1).t()
        return self._factor, self._diagonal

    def gram_schmidt(self) -> list[_Step]:
        """The views each step of ``_gram_schmidt_last`` works in, made once per block
        (indexing a tensor costs about as much as a small operation)."""
        if self._steps is None:
            factor = self.factor()[0]
            work, scratch = self.rows(), self.square.permute(1, 2, 0)
            projection = self.temporaries()[3]
            k = self.shape[0]
            self._steps = [
                _Step(
                    residual=work[i - 1] if i else work[:0],
                    rows=work[i - 1 :] if i else work[:0],
                    rest=work[i:],
                    products=scratch[: k - i] if i else scratch[: k - 1],
                    dots=factor[i:, i] if i else factor[1:, 0],
                    diagonal=factor[i, i],
                    diagonal_array=_numpy(factor[i, i]) if self.device.type == "cpu" else None,
                    coefficients=factor[i + 1 :, i],
                    projection=projection[: k - i - 1],
                    projection_column=projection[: k - i - 1].unsqueeze(1),
                )
                for i in range(k)
            ]
        return self._steps

    def array(self, values: Tensor) -> np.ndarray | None:
        """The NumPy view of ``values`` in memory order (``_numpy``), kept for the next
        layers: ``values`` is one of the block's buffers, passed again at every layer."""
        return _kept(self._arrays, values, lambda: _numpy(_memory_order(values)), 16)

    def memory(self, values: Tensor) -> Tensor | None:
        """``_memory(values)``, kept for the tensors passed again at every layer (the state,
        the buffers of normals): a permuted view and its check cost about a microsecond."""
        return _kept(self._memories, values, lambda: _memory(values))

    def margin_kept(self) -> tuple[Tensor, Tensor]:
        """The first two ``(k, block)`` buffers of ``temporaries``."""
        if self._margin_kept is None:
            temporaries = self.temporaries()
            self._margin_kept = (temporaries[0], temporaries[1])
        return self._margin_kept

    def rest_views(self, norms: Tensor) -> None:
        """Set ``norm_rest`` (``norms[1:]``), ``diagonal_rest`` (the factor's diagonal but its
        first entry) and ``margin_rest`` (a ``(k - 1, block)`` buffer) for ``norms``."""
        if self._norms is not norms:
            self._norms = norms
            self.norm_rest = norms[1:]
            self.diagonal_rest = self.factor()[1][1:]
            self.margin_rest = self.margin_kept()[0][1:]

    def scratch(self) -> tuple[Tensor, Tensor, Tensor]:
        """Three ``(block,)`` rows of ``temporaries`` (margin, kept, inverse)."""
        if self._scratch is None:
            margin, kept, inverse, _ = self.temporaries()
            self._scratch = (margin[0], kept[0], inverse[0])
        return self._scratch

    def rows_last(self, y: Tensor, phi: Tensor, noise: Tensor) -> _Update | None:
        """The samples-last memory ``(k, n, block)`` of ``phi`` and, per input ``b``, the
        views of the increment of several inputs: the state's rows ``b..k-1``, the factor's
        column ``C[b:, b]`` and the noise's row ``b``; or None where the state, ``phi`` or the
        noise is not stored samples-last. Made once per block and buffer of normals (the
        chain passes the same tensors at every layer)."""
        key = (id(y), id(phi), id(noise))
        hit = self._rows_last.get(key)
        if hit is not None and hit[0] is y and hit[1] is phi and hit[2] is noise:
            return hit[3]
        memory = (_memory(y), _memory(phi), _memory(noise))
        update = None
        if all(m is not None for m in memory):
            state, phi_memory, normals = memory
            factor = self.factor()[0]
            rows = range(state.shape[0])
            terms = [(state[b:], factor[b:, b].unsqueeze(1), normals[b]) for b in rows]
            update = _Update(phi_memory, terms)  # type: ignore[arg-type]
        if len(self._rows_last) >= 64:  # tensors not passed again (the chain passes <= 32)
            self._rows_last.clear()
        self._rows_last[key] = (y, phi, noise, update)
        return update

    def native(self, phi_norm: Tensor) -> native.FactorUpdate | None:
        """The compiled layer of several inputs (``native.py``) bound to this block's buffers
        (the factor, and the norms ``phi_norm`` ``(block, k)`` of ``phi``, copied into rows the
        kernel reads where they are not); None where the kernel is not available."""
        norms = self.norm_rows if phi_norm is self.phi_norm else phi_norm.t()
        if not norms.is_contiguous():  # a view's own norms
            norms = self.buffer("kernel norms", self.dtype).t().copy_(norms)
        hit = self._native
        if hit is not None and (
            hit[0] is norms
            or (  # the same memory in a view made again (width 1's phi_norm)
                hit[0].data_ptr() == norms.data_ptr()
                and hit[0].shape == norms.shape
                and hit[0].stride() == norms.stride()
            )
        ):
            return hit[1]
        kernel = None
        factor = self.factor()[0]
        if (
            self.device.type == "cpu"
            and (function := (native.kernels() or {}).get(self.dtype)) is not None
            and norms.dtype == self.dtype
        ):
            kernel = native.FactorUpdate(function, self.shape, norms, factor)
        self._native = (norms, kernel)
        return kernel

    def temporaries(self) -> Tensor:
        """Four ``(k, block)`` buffers for the per-sample temporaries of the factor."""
        if self._temporaries is None:
            k, _, size = self.shape
            shape = (4, k, size)
            self._temporaries = torch.empty(shape, dtype=self.dtype, device=self.device)
        return self._temporaries

    def rows(self) -> Tensor:
        """``(k - 1, n, block)`` memory for the Gram-Schmidt residuals of rows 1..k-1."""
        if self._rows is None:
            k, n, size = self.shape
            self._rows = torch.empty((k - 1, n, size), dtype=self.dtype, device=self.device)
        return self._rows

    def y_norm(self, layer: int) -> Tensor:
        return self.y_norms[layer % 2]

    def count_into(self, layer: int, rows: Tensor, values: Tensor) -> None:
        """Have the compiled pass of ``layer`` (if it counts, ``counts_active``) write the
        active counts straight into ``rows`` (int32 ``(k, block)``, each row contiguous: the
        columns of a results array), ``values`` being the same memory as ``(block, k)``, which
        then is the layer's ``active``: no copy from the block's buffer into the results."""
        self._count_into = (layer, rows, values)

    def divide_into(self, divisor: Tensor, out: Tensor) -> bool:
        """Have the compiled pass of every later layer of a ReLU chain also write
        ``||relu(y)|| / divisor`` into ``out`` (both ``(block, k)``, laid out as the block's
        buffers), which the view then shares as ``"phi ratio"`` (``(divisor, out)``): the
        log-growth's division in the pass that reads ``y`` anyway. False where ``divisor`` is
        not laid out so (nothing changes)."""
        rows = divisor.t()
        if not rows.is_contiguous() or out.shape != divisor.shape:
            return False
        self._divide = (divisor, rows, out)
        return True

    def division(self) -> tuple[Tensor | None, Tensor | None]:
        """The ``(k, block)`` rows of the divisor and of the ratio of ``divide_into`` (the
        arguments of the compiled passes), or two None."""
        divide = self._divide
        return (None, None) if divide is None else (divide[1], self.transposed(divide[2]))

    def divided(self) -> tuple[Tensor, Tensor] | None:
        """``(divisor, out)`` of ``divide_into``, as a view shares them once computed, or
        None where nothing is divided."""
        divide = self._divide
        return None if divide is None else (divide[0], divide[2])

    def active_for(self, layer: int) -> tuple[Tensor, Tensor]:
        """The ``(k, block)`` rows and the ``(block, k)`` values where the active counts of
        ``layer`` go: those of ``count_into`` for that layer, else the block's buffer."""
        into = self._count_into
        if into is not None and into[0] == layer:
            return into[1], into[2]
        values = self.buffer("active", torch.int32)
        return self.transposed(values), values

    def norms_pass_done(self) -> None:
        """After a view: no norms' pass stands computed for a next call
        (``native.RowNorms.ready``)."""
        if self._norms_pass is not None:
            self._norms_pass.ready = None

    def norms_pass(self, memory: Tensor) -> native.RowNorms:
        """``native.row_norms`` into ``norm_rows`` and ``extremes``, bound to ``memory`` (the
        block's state, passed at every layer) and checked once."""
        bound = self._norms_pass
        if bound is None or bound.memory is not memory:
            bound = self._norms_pass = native.RowNorms(memory, self.norm_rows, self.extremes)
        return bound

    def rows_array(self, buffer: Tensor) -> np.ndarray:
        """The NumPy view of ``transposed(buffer)`` (a CPU buffer of the block), made once."""
        return _kept(self._row_arrays, buffer, lambda: self.transposed(buffer).numpy())

    def transposed(self, buffer: Tensor) -> Tensor:
        """The ``(k, block)`` rows of a ``(block, k)`` buffer of the block (its ``.t()``),
        made once: every torch call, a view's too, lets go of the interpreter's lock, and
        with blocks on several threads each taking of it back may wait for another thread."""
        return _kept(self._transposed, buffer, buffer.t)

    def width_one(self, y: Tensor, layer: int) -> tuple[float, ...] | None:
        """One compiled pass over a width-1 ReLU state ``y`` (``native.width_one``):
        ``relu(y)`` into ``phi``, and ``|y|`` into ``y_norm(layer)``, the signs and the active
        counts into their buffers where an observer reads them (``reads_y_norm``, ``signs``,
        ``counts_active``);
        returns the range of ``|y|``, then of ``relu(y)`` (NaN where an entry is NaN), or
        None where the kernel is not available (nothing written)."""
        state = self.memory(y)
        if state is None or not _host_checks(y.device):
            return None
        if self._width_one is None or self._width_one[0] is not state:
            self._width_one = (state, _memory(self.phi), np.empty(4))
        _, phi, extremes = self._width_one
        sign = self.transposed(self.buffer("phi sign", self.dtype)) if self.signs else None
        counts = self.active_for(layer)[0] if self.counts_active else None
        modulus = self.transposed(self.y_norm(layer)) if self.reads_y_norm else None
        divisor, ratio = self.division()
        if phi is None or not native.width_one(
            state, modulus, phi, sign, counts, extremes, divisor, ratio
        ):
            return None
        return tuple(extremes.tolist())

    def buffer(self, name: str, dtype: torch.dtype) -> Tensor:
        """A ``(block, k)`` buffer laid out like the norms, allocated at its first use in the
        block and reused at every layer (observers write into it rather than allocate: a
        fresh tensor of a block's size costs a page fault per 4 KiB on the CPU)."""
        buffer = self.buffers.get((name, dtype))
        if buffer is None:
            like = self.phi_norm
            size, k = like.shape
            memory = torch.empty((k, size), dtype=dtype, device=like.device)
            buffer = self.buffers[(name, dtype)] = canonical(memory.t())
        return buffer


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
    ``value_layers`` are the layers at which it reads values in the units of ``Y`` (not
    scale-free ones): there a state out of the dtype's range is reported.
    """

    bytes_per_sample: int = 0
    value_layers: frozenset[int] = frozenset()
    # True when a shallow copy per chunk may run in a thread of its own: ``start`` sets every
    # per-chunk attribute and the shared results are only written at the chunk's rows
    parallel_safe: bool = False

    # True where ``observe_stretch`` reads the active counts summed over a stretch
    totals: bool = False
    # True where the observer may take a stretch of layers at once (``observe_stretch``):
    # the chain of one ReLU input of width > 1 then runs in compiled stretches with observers
    # (``_OneReLU``), each stretch taken where every observer ``takes_stretch`` just then
    stretches: bool = False

    def start(self, context: ChunkContext, view: LayerView) -> None:
        pass

    def observe(self, view: LayerView) -> None:
        pass

    def takes_stretch(self) -> bool:
        """Whether the next layers may come as a stretch (``observe_stretch``) rather than a
        view each (asked before each stretch, where ``stretches``)."""
        return False

    def observe_stretch(self, stretch: ObservedStretch) -> None:
        """The layers of ``stretch``, in place of their views (``observe``)."""
        raise NotImplementedError

    def stretch_counts(self, first: int, count: int) -> Tensor | None:
        """Where the next stretch's kernel is to write the active counts of its layers
        ``first .. first + count - 1``: an int32 ``(count, block)`` tensor of contiguous rows
        (in the observer's results), or None (the chain's own buffer)."""
        return None

    def reads_counts(self, first: int, count: int) -> bool:
        """Whether ``observe_stretch`` reads the active counts of layers of the stretch
        ``first .. first + count - 1`` but its last (``ObservedStretch.counts``): where no
        observer does, the kernel keeps one row of counts, the last layer's, or none."""
        return False

    def stretch_correlations(self, first: int, count: int) -> tuple[list[int], int] | None:
        """Where the next stretch of several inputs (``_SeveralReLU``) is to write the
        correlations of its layers ``first .. first + count - 1``: per layer the address of
        ``(pairs, block)`` float rows (an observer's results), 0 for a layer it does not
        record, and the rows' distance in numbers; None where this observer reads none."""
        return None

    def end(self) -> None:
        pass


@dataclass
class ObservedStretch:
    """Layers ``first .. last`` of a block of ReLU inputs (width > 1) run in one compiled
    call (``_OneReLU``: one input, ``_SeveralReLU``: ``k`` inputs) in place of a view each:
    the state finite and within the per-step bounds at every one of them (checked on the
    way), never rescaled (``exponent``: the chain's exponents, unchanged since they were
    made).
    ``counts[i]`` holds the active counts ``N`` of layer ``first + i`` (int32 ``(block,)``
    for one input, ``(k, block)`` for several: ``layer_counts``) where an observer
    ``reads_counts``; else where one reads their ``totals`` only ``counts[-1]``, the last
    layer's; else ``counts`` is None. ``ratio[i]`` holds the layer's ``||relu(Y)||``
    divided by ``divisor`` (the tensor of ``_Workspace.divide_into``; None: nothing
    divided), laid out as ``counts[i]``, as the per-step view's pass computes them, bit for
    bit; ``arrays`` are the NumPy views of ``counts`` and ``ratio``; ``norms`` the last
    layer's ``||relu(Y)||`` ``(block, k)``. The correlations of several inputs are written
    by the kernel straight into their observer's results (``stretch_correlations``)."""

    first: int
    count: int
    counts: Tensor | None
    ratio: Tensor | None
    divisor: Tensor | None
    exponent: Tensor | None
    arrays: tuple[np.ndarray | None, np.ndarray | None]
    # int32 (2, block, k): the counts summed over the stretch (where counted), and the
    # layers at which each path is alive, ``N > 0`` (for a checked stretch
    # ``||relu(Y)|| > 0``)
    sums: Tensor
    norms: Tensor

    def layer_counts(self, index: int) -> Tensor:
        """The active counts of the stretch's layer ``first + index`` as ``(block, k)``
        (where counted)."""
        assert self.counts is not None
        counts = self.counts[index]
        return counts.unsqueeze(-1) if counts.dim() == 1 else counts.t()

    def below(self, steps: int) -> tuple[int, Tensor, Tensor]:
        """The layers of the stretch below ``steps`` (the chain's last layer, which the
        time averages leave out): how many, their summed counts (where counted) and their
        layers alive."""
        if self.last < steps:
            return self.count, self.sums[0], self.sums[1]
        assert self.last == steps
        total = self.sums[0]
        if self.counts is not None:
            total = total - self.layer_counts(-1)
        return self.count - 1, total, self.sums[1] - (self.norms > 0).int()

    @property
    def last(self) -> int:
        return self.first + self.count - 1


def _increment(plan: ChainPlan, y: Tensor, view: LayerView, noise: Tensor) -> None:
    """Add ``scale * W phi(y)`` to ``y`` in place, ``noise`` holding standard normals."""
    factor = plan.scale / math.sqrt(plan.width)
    if plan.method == "weights":
        # noise = sqrt(n) W, so (W Phi^T)^T = Phi W^T = Phi noise^T / sqrt(n)
        y.baddbmm_(view.phi, noise.transpose(1, 2), alpha=factor)
    elif plan.inputs == 1:
        space, norm = view.workspace, view.phi_norm
        column = space.phi_norm_column if space and norm is space.phi_norm else norm[..., None]
        y.addcmul_(column, noise, value=factor)
    elif (space := view.workspace) is not None and _increment_rows_last(
        space, y, view, noise, factor, isinstance(plan.activation, ReLU)
    ):
        pass
    else:
        y.baddbmm_(factor_rows(view.phi), noise, alpha=factor)


def _drawn_increment(
    plan: ChainPlan,
    y: Tensor,
    view: LayerView,
    draws: _Normals,
    step: int,
    numerics: _Numerics,
) -> bool:
    """``_increment`` of one input with the normals of ``step`` drawn into it in one compiled
    pass (``_Normals.update``: the same numbers), where it applies; False: nothing done."""
    space = view.workspace
    if not draws.fusable or space is None:
        return False
    memory = space.memory(y)
    norm = view.phi_norm
    if memory is None or not norm.is_contiguous():
        return False
    factor = plan.scale / math.sqrt(plan.width)
    bound, then = _next_norms(plan, space, memory, step, numerics, y)
    if not draws.update(step, memory[0], norm.view(-1), factor, then):
        return False
    if then is not None:
        assert bound is not None
        bound.ready = then[1]
    return True


def _next_norms(
    plan: ChainPlan, space: _Workspace, memory: Tensor, step: int, numerics: _Numerics, y: Tensor
) -> tuple[native.RowNorms | None, tuple | None]:
    """The norms' pass that the view of ``step`` will ask for first (``_bounded_view``), to
    run in the compiled call of the layer: ``(the bound pass, (its address, the arguments the
    view will pass))``, or ``(None, None)``. Its outputs are then that call's, which only
    reads them (``RowNorms.ready``: for that one call, with exactly these arguments)."""
    if not (
        plan.width > 1
        and type(plan.activation) is ReLU
        and step not in numerics.value_layers
        and native.available()
        and _host_checks(y.device)
    ):
        return None, None
    bound = space.norms_pass(memory)
    counts = space.active_for(step)[0] if space.counts_active else None
    plain = space.transposed(space.y_norm(step)) if space.reads_y_norm else None
    arguments = bound.arguments(True, counts, plain, *space.division())
    address = bound.address
    if arguments is None or address is None:
        return None, None
    return bound, (address, arguments)


def _drawn_factor_arguments(
    kernel: native.FactorUpdate, state: Tensor, draws: _Normals, scale: float
) -> list:
    """The several-input kernel's arguments for a ReLU ``state`` (``phi`` taken from it on the
    way, no factor kept: mode 2) but the normals, which a compiled call draws into
    ``draws.memory_for_several()`` first (``fill_then``, ``several_stretch``)."""
    arguments = kernel.arguments(state, state, draws.memory_for_several(), scale, 2, True)
    del arguments[2]  # the normals: the buffer the call draws into
    return arguments


def _drawn_factor_increment(
    plan: ChainPlan,
    y: Tensor,
    view: LayerView,
    draws: _Normals,
    step: int,
    numerics: _Numerics,
) -> bool:
    """``_increment`` of several ReLU inputs by the compiled kernel, with the normals of
    ``step`` drawn and the next view's norms' pass run in the same compiled call
    (``_Normals.fill_then``: the same numbers); False: nothing done."""
    space = view.workspace
    if not draws.several or space is None or type(plan.activation) is not ReLU:
        return False
    state = space.memory(y)
    if state is None or view.y is not y:
        return False
    kernel = space.native(view.phi_norm)
    if kernel is None:
        return False
    scale = plan.scale / math.sqrt(plan.width)
    arguments = _drawn_factor_arguments(kernel, state, draws, scale)
    bound, then = _next_norms(plan, space, state, step, numerics, y)
    left = draws.fill_then(step, (kernel.address, arguments), then)
    if left is None:
        return False
    if left:  # tiles to mend (the norms' pass did not run): as ``_increment_rows_last``
        _mend_factor(state, True, view.phi_norm, space, kernel)
        kernel.finish(state, draws.memory_for_several(), scale)
    elif then is not None:
        assert bound is not None
        bound.ready = then[1]
    return True


def _increment_rows_last(
    space: _Workspace,
    y: Tensor,
    view: LayerView,
    noise: Tensor,
    scale: float,
    relu: bool,
    compiled: bool = True,
    keep_factor: bool = False,
) -> bool:
    """The increment of several inputs stored samples-last (the CPU chain): ``y_a += scale
    C[a, b] z_b``, column ``b`` on the rows ``a >= b``, ``C`` the factor of ``view.phi``; by
    the compiled kernel where it loads (``native.py``; ``compiled=False``: never), which takes
    a ReLU's ``phi`` from ``y`` on the way, else by tensor operations
    (``_factor_rows_last``). False where the state or the noise is not stored samples-last.
    The compiled kernel leaves ``space.factor()`` as it was but for the samples it left to
    the tensor path, unless ``keep_factor`` (the tests compare the factors)."""
    state, normals = space.memory(y), space.memory(noise)
    if state is None or normals is None:
        return False
    phi_norm = view.phi_norm
    kernel = space.native(phi_norm) if compiled else None
    if kernel is not None:  # tiles of samples that stay in the L1 cache
        source = state if relu and view.y is y else space.memory(view.phi)
        if source is not None:
            relu = source is state
            if kernel.run(source, state, normals, scale, relu, keep_factor):
                _mend_factor(source, relu, phi_norm, space, kernel)
                kernel.finish(state, normals, scale)
            return True
    memory = space.rows_last(y, view.phi, noise)
    if memory is None:
        return False
    _factor_rows_last(memory.phi, phi_norm, space, view.phi_range[0])  # (k, k, block)
    for rows, column, normal in memory.terms:
        rows.addcmul_(column, normal, value=scale)
    return True


class _Numerics:
    """Per-layer range checks of the state (its norm per network and input, one pass), the
    power-of-two rescaling of positively homogeneous chains, and the first layer of each
    failure per network."""

    def __init__(self, plan: ChainPlan, value_layers: set[int]) -> None:
        # per-chunk attributes are set in ``start``: a shallow copy per chunk may run in a
        # thread of its own (``first_bad`` / ``first_lost`` are shared, written at its rows)
        self.plan = plan
        self.value_layers = value_layers
        self.rescale = plan.activation.positively_homogeneous
        info = np.finfo(str(plan.dtype).removeprefix("torch."))
        self.tiny = float(info.tiny)
        self.minexp, self.maxexp = int(info.minexp), int(info.maxexp)
        self.bound = self.maxexp // 4  # keep ||y|| in [2^-bound, 2^bound]
        # a ReLU path with phi(y) = 0 has collapsed: its state no longer changes (the
        # increment is 0), so it is never rescaled, and ||y|| >= ||phi(y)|| bounds the others
        self.relu = isinstance(plan.activation, ReLU)
        self._failures: list[Tensor] = []  # [first_bad, first_lost] once a path fails
        self._lock = threading.Lock()

    def _first(self) -> tuple[Tensor, Tensor]:
        """Per sample the first layer of a blow-up / underflow (-1 where none), allocated at
        the first failure (shared by the copies of other threads)."""
        with self._lock:
            if not self._failures:
                samples, device = self.plan.samples, self.plan.device
                first_bad = torch.full((samples,), -1, dtype=torch.long, device=device)
                self._failures.extend([first_bad, torch.full_like(first_bad, -1)])
            return self._failures[0], self._failures[1]

    def report(self) -> None:
        """``report_numerics`` for the paths that failed, if any did."""
        if self._failures:
            report_numerics(self.plan, *self._first())

    def start(self, start: int, stop: int) -> None:
        self.rows = slice(start, stop)
        self.norm: Tensor | None = None
        self.exponent: Tensor | None = None
        self.scaled = False  # whether a power of two has moved some path of the chunk
        self.lost: Tensor | None = None

    def view(self, layer: int, y: Tensor, workspace: _Workspace | None = None) -> LayerView:
        """Check (and for a homogeneous chain rescale, in place) the state after ``layer``.
        The masks are only formed when the range of the norms calls for them."""
        if (
            workspace is not None
            and self.relu
            and y.shape[-1] > 1  # at width 1, ||y|| = |y| costs less than the bounds
            and layer not in self.value_layers
        ):
            view = self._bounded_view(layer, y, workspace)
            if view is not None:
                return view
        # (chunk, k): NaN/inf exactly where the state is
        fused = None
        if workspace is None:
            norm, low, high = _norm_and_range(y)
        elif self.relu and y.shape[-1] == 1 and (fused := workspace.width_one(y, layer)):
            low, high = fused[0], fused[1]
            norm = workspace.y_norm(layer)
            lazy = 2.0**-self.bound <= low <= high <= 2.0**self.bound
            if not workspace.reads_y_norm and not (lazy and layer not in self.value_layers):
                torch.abs(y.squeeze(-1), out=norm)  # read by the checks below
        else:
            norm, low, high = _norm_and_range(
                y, workspace.square, workspace.y_norm(layer), workspace
            )
        bad = lost = None
        if self.rescale:
            if self.exponent is None:
                self.exponent = torch.zeros(norm.shape, dtype=torch.int32, device=norm.device)
            in_range = 2.0**-self.bound <= low <= high <= 2.0**self.bound  # NaN-safe
            if not in_range:
                power = torch.frexp(norm).exponent  # 0 for 0, inf and NaN
                far = power.abs() > self.bound
                if self.relu:  # a collapsed path is frozen (``_bounded_view``)
                    far &= (y > 0).any(-1)
                if _some(far):  # else a factor 2^0 = 1 would leave every number as it is
                    shift = torch.where(far, power, 0).clamp(-self.maxexp + 2, self.maxexp - 2)
                    y.mul_(torch.exp2(-shift.to(y.dtype)).unsqueeze(-1))
                    fused = None  # of the state before this rescaling
                    norm = stable_norm(y)  # as the unscaled chain computes it, bit for bit
                    self.exponent = self.exponent + shift
                    self.scaled = True
            # is Y = y 2^exponent in range? (norms in range never scaled: yes)
            if layer in self.value_layers and (self.scaled or not in_range):
                total = torch.frexp(norm).exponent + self.exponent
                bad = total > self.maxexp
                lost = (total <= self.minexp) & (norm > 0)
        elif not low >= self.tiny:
            lost = norm < self.tiny
            lost &= (norm > 0) if self.norm is None else torch.maximum(norm, self.norm) > 0
            self.lost = lost if self.lost is None else self.lost | lost
        if not high < math.inf:  # inf or NaN somewhere
            bad = ~torch.isfinite(norm) if bad is None else bad | ~torch.isfinite(norm)
        self.norm = norm
        for index, failed in enumerate((bad, lost)):
            if failed is not None:
                failed = failed.any(-1)
                if _some(failed):
                    first = self._first()[index][self.rows]
                    first.masked_fill_(failed & (first < 0), layer)
        finite = high < math.inf  # NaN-safe: a norm is NaN or inf where an entry is
        if fused is not None and not workspace.reads_y_norm:  # type: ignore[union-attr]
            norm = None  # not computed, or for the checks only: the view's own if asked for
        view = LayerView(
            layer, y, self.plan.activation, self.exponent, self.lost, norm, workspace, finite
        )
        view.scaled = self.scaled
        if fused is not None:
            assert workspace is not None
            view.take_width_one(workspace, fused[2:])
        return view

    def _bounded_view(self, layer: int, y: Tensor, workspace: _Workspace) -> LayerView | None:
        """The view of a ReLU state that needs no check nor rescaling, or None (then ``view``
        computes every norm): checked on the range of ``y`` (read in the compiled pass that
        computes ``phi_norm``, else one ``aminmax``), on bounds that imply ``view``'s
        conditions. Every entry finite and ``sqrt(n) max|y| <= 2^bound``
        bound every ``||y||`` above; ``||y|| >= ||phi(y)|| >= 2^-bound`` below, for the paths
        that have not collapsed (collapsed ones are frozen, never rescaled). ``phi(y)`` and
        its norms are computed anyway for the next increment."""
        if self.exponent is None:
            self.exponent = torch.zeros(y.shape[:-1], dtype=torch.int32, device=y.device)
        view = LayerView(
            layer, y, self.plan.activation, self.exponent, self.lost, None, workspace, True
        )
        view.scaled = self.scaled
        if native.available() and _host_checks(y.device):
            _ = view.phi_norm  # with the range of y, in one pass (``native.row_norms``)
        if view.y_range is not None:
            low, high = view.y_range
        else:
            low, high = _range(y if workspace.state is None else workspace.state, workspace)
        if not (math.isfinite(low) and math.isfinite(high)):  # NaN or inf, or no host checks
            return None
        if not max(-low, high) * math.sqrt(y.shape[-1]) <= 2.0**self.bound:
            return None
        phi_norm = view.phi_norm
        small = view.phi_range[0]
        if not small >= 2.0**-self.bound:
            positive = torch.where(phi_norm > 0, phi_norm, math.inf)
            if not float(positive.min()) >= 2.0**-self.bound:
                return None
        self.norm = None
        return view


def simulate_chain(
    plan: ChainPlan,
    progress: ProgressCallback | None = None,
    observers: Sequence[Observer] = (),
) -> Tensor:
    """Run the chain; returns ``(samples, len(record), k, width)`` states at ``record`` steps
    (an empty record is allowed when only ``observers`` are wanted).

    The exact-in-law chain on the CPU runs block by block (``_simulate_blocks``); explicit
    weights and accelerators run chunk by chunk, one layer of a whole chunk at a time."""
    if plan.method == "law" and plan.device.type == "cpu":
        return _simulate_blocks(plan, progress, observers)
    return _simulate_chunks(plan, progress, observers)


def _simulate_chunks(
    plan: ChainPlan,
    progress: ProgressCallback | None = None,
    observers: Sequence[Observer] = (),
) -> Tensor:
    """The chain chunk by chunk, one layer of a whole chunk at a time, samples first in
    memory: explicit weights, accelerators, and the reference for ``_simulate_blocks``."""
    n, k = plan.width, plan.inputs
    slots = slots_by_step(plan.record)
    out = torch.empty((plan.samples, len(plan.record), k, n), dtype=plan.dtype, device=plan.device)
    noise_shape = (n, n) if plan.method == "weights" else (k, n)
    numerics = _Numerics(plan, set(plan.record).union(*(o.value_layers for o in observers)))
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
        numerics.start(start, stop)
        view = numerics.view(0, y)
        if 0 in slots:
            out[start:stop, slots[0]] = view.absolute(y).unsqueeze(1)
        for observer in observers:
            observer.start(context, view)
        for step in range(1, plan.steps + 1):
            context.draw(noise, step)
            _increment(plan, y, view, noise)
            view = numerics.view(step, y)
            if step in slots:
                out[start:stop, slots[step]] = view.absolute(y).unsqueeze(1)
            for observer in observers:
                observer.observe(view)
            if progress is not None and step % 64 == 0:
                progress(done_work + size * step, total_work)
        for observer in observers:
            observer.end()
        done_work += size * plan.steps
        if progress is not None:
            progress(done_work, total_work)
    numerics.report()
    return out


class _Progress:
    """``progress(done, total)`` from any thread, in order, at most every 64 steps a block."""

    def __init__(self, callback: ProgressCallback | None, total: int) -> None:
        self.callback = callback
        self.total = total
        self.done = 0
        self.lock = threading.Lock()

    def add(self, work: int) -> None:
        if self.callback is None:
            return
        with self.lock:
            self.done += work
            self.callback(self.done, self.total)


def _threads() -> int:
    """Threads for the blocks: ``torch.get_num_threads()``, or one on a machine whose load
    average is above 1.5 per core: there the threads of a process are descheduled while they
    hold the GIL and wait on each other, which costs more than a second core gives (measured
    on a 2-core machine at load 10: two threads ran at half the rate of one)."""
    threads = max(1, torch.get_num_threads())
    try:
        load = os.getloadavg()[0]
    except OSError:  # not available on this platform
        return threads
    return 1 if load > 1.5 * (os.cpu_count() or 1) else threads


def _simulate_blocks(
    plan: ChainPlan, progress: ProgressCallback | None, observers: Sequence[Observer]
) -> Tensor:
    """The exact-in-law chain on the CPU, as fast as the machine draws normals.

    Each block of samples (``rng.SampleBlocks``, about 2^17 numbers per layer, so that it
    stays in the caches) runs through every layer on its own, its state and noise stored
    samples-last (memory ``(k, n, block)``: per-network reductions over the width and the
    per-network scale of the increment then run along contiguous memory whatever the width),
    and its noise drawn straight into that memory from the block's generator (``rng.py``).
    Blocks run on ``torch.get_num_threads()`` threads (``_threads``), each torch operation
    on one thread (no parallel region per operation, whose barriers dominate small operations
    and collapse when other processes share the cores); observers that are not
    ``parallel_safe`` run on one thread. The numbers of a block depend neither on the chunk
    size nor on the threads.
    """
    n, k = plan.width, plan.inputs
    slots = slots_by_step(plan.record)
    # (large records in pooled huge-page mappings: a page fault per 4 KiB of a fresh buffer
    # cost more than writing it)
    out = mapped.empty((plan.samples, len(plan.record), k, n), plan.dtype, plan.device)
    numerics = _Numerics(plan, set(plan.record).union(*(o.value_layers for o in observers)))
    blocks = plan.blocks(sum(o.bytes_per_sample for o in observers))
    size = blocks.block_size
    count = blocks.n_blocks
    parallel = all(observer.parallel_safe for observer in observers)
    cores = _threads()
    threads = min(cores, count) if parallel else 1
    if threading.current_thread().name.startswith(_POOL_PREFIX):
        threads = 1  # a chain run inside a block's thread: the kept pool may be all busy
    paired = plan.dtype in _PAIRED_DTYPES and plan.inputs >= _PAIRED[0]
    if paired and plan.width >= _PAIRED[1] and cores >= 2:
        threads = max(1, min(threads, cores // 2))  # a block and its drawer on each pair
    # a core to spare for the normals of each running block, unless its stretches run in one
    # compiled call each (a thread that draws ahead has nothing to hand them)
    ahead = cores >= 2 * threads and not _stretches_in_one_call(plan, observers)
    meter = _Progress(progress, plan.samples * plan.steps)
    failed = threading.Event()
    cpus = _spread_over(threads)

    def run(block: int) -> None:
        if failed.is_set():
            return
        start, stop = block * size, min(plan.samples, (block + 1) * size)
        copies = [copy.copy(o) for o in observers] if threads > 1 else list(observers)
        mine = copy.copy(numerics) if threads > 1 else numerics
        try:
            # NumPy's floating-point warnings off for the block: the chain reports states
            # that leave the range itself (``report_numerics``), and the log of a collapsed
            # path's zero norm is -inf by design (observables._log_ then needs no context of
            # its own at every layer)
            with np.errstate(divide="ignore", invalid="ignore"), _own_cpu(cpus):
                _run_block(plan, block, start, stop, slots, out, mine, copies, meter, failed, ahead)
        except BaseException:
            failed.set()
            raise

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        if threads == 1:
            for block in range(count):
                run(block)
        else:
            futures = [_block_pool(threads).submit(run, block) for block in range(count)]
            try:
                for future in futures:
                    future.result()
            except BaseException:  # an error or Ctrl-C: the other threads stop at a layer
                failed.set()
                for future in futures:
                    future.cancel()  # the blocks not started
                wait(futures)  # the others, stopped at a layer: none runs on after the call
                raise
    finally:
        torch.set_num_threads(previous)
    numerics.report()
    return out


# The chain's worker threads, one pool per thread count, kept for the next runs: each new
# thread gets its own malloc arena, whose pages a thread that lives for one run faults in
# afresh for every block's buffers (measured: two blocks on two threads, 64 layers of
# 2^17 numbers each, 1,180 page faults and ~1.8 ms a run, 6 %; a kept pool reuses them).
_POOL_PREFIX = "deeplimit-chain"
_POOLS: dict[int, ThreadPoolExecutor] = {}
_POOLS_LOCK = threading.Lock()


def _block_pool(threads: int) -> ThreadPoolExecutor:
    """The kept pool of ``threads`` workers, each running its torch operations on itself
    (``devices.one_torch_thread``) and numbered within the pool (``_own_cpu``); made at its
    first use (and again in a forked child, where the threads of the parent do not exist)."""
    with _POOLS_LOCK:
        pool = _POOLS.get(threads)
        if pool is None:
            pool = _POOLS[threads] = ThreadPoolExecutor(
                threads,
                thread_name_prefix=_POOL_PREFIX,
                initializer=_start_pool_thread,
                initargs=(itertools.count(),),
            )
        return pool


# The number of the calling thread in its kept pool (0, 1, ...), unset in other threads.
_POOL_THREAD = threading.local()


def _start_pool_thread(numbers: itertools.count) -> None:
    one_torch_thread()
    _POOL_THREAD.number = next(numbers)


# Kept threads woken for a run are placed by the scheduler next to the thread that woke them,
# and after the machine has idled a while both block threads of a 2-core VM often shared one
# core for much of the run (measured 2026-12-03: 64 layers of 2^18 float32 numbers, run after
# 50 ms of idle, 4 of 10 runs took 43-52 ms instead of 28-29; back to back 27 ms). Threads
# made for one run are spread at their start, kept ones are not; so a run that uses as many
# threads as the process may use CPUs puts each block thread on a CPU of its own for the block
# (and gives it back the whole set after): the same 28-29 ms after idle.
def _spread_over(threads: int) -> tuple[int, ...] | None:
    """The CPUs to spread a run's block threads over (thread ``i`` on ``cpus[i]``), or None:
    only where the run uses more than one thread and as many as the CPUs this process may run
    on (where the threads would share the CPUs with no one but each other anyway); on a
    machine with more CPUs than threads the scheduler is left to place them."""
    if threads < 2 or not hasattr(os, "sched_getaffinity"):
        return None
    try:
        cpus = tuple(sorted(os.sched_getaffinity(0)))
    except OSError:
        return None
    return cpus if len(cpus) == threads else None


@contextlib.contextmanager
def _own_cpu(cpus: tuple[int, ...] | None):
    """Within: the calling kept pool thread runs on ``cpus[its number]`` alone (``_spread_over``);
    after: on all of ``cpus`` again. Nothing outside a kept pool's thread, or without ``cpus``,
    or where the system refuses."""
    number = getattr(_POOL_THREAD, "number", None)
    if cpus is None or number is None:
        yield
        return
    try:
        os.sched_setaffinity(0, (cpus[number % len(cpus)],))
    except OSError:
        yield
        return
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            os.sched_setaffinity(0, cpus)


def _forget_pools() -> None:
    """In a forked child: the parent's worker threads are not there."""
    global _POOLS_LOCK
    _POOLS.clear()
    _POOLS_LOCK = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pools)


# Blocks of the dtypes in ``_PAIRED_DTYPES``, from this many inputs and this width, run on half
# the cores, each drawing its normals on another (``_simulate_blocks``): worth it where the
# update of several inputs costs about as much as drawing. With the compiled layer
# (``native.py``) it costs much less, and two block threads, each drawing its own normals, are
# faster in both dtypes (float32, four inputs, n = 16-256, 2 cores: 1.2-1.3x the rate of
# pairs; float64: 1.03-1.41x already with the tensor path); with the tensor path, float32 pairs
# and two blocks are within 3 % of each other (n = 4-256). So no dtype is paired by default;
# the pairs remain for tests and for experiments on other machines. (An earlier measurement,
# which found pairs 1.5-2.9x faster, was taken while every worker thread forked an OpenMP team
# per operation: ``devices.one_torch_thread``.)
_PAIRED = (2, 16)
_PAIRED_DTYPES: tuple[torch.dtype, ...] = ()


class _Normals:
    """The standard normals of one block, step by step, drawn in the groups of steps of the
    stream layout (``rng``: ``group_steps`` steps a ``BlockStreams.fill``). ``layer(step)`` is
    the noise of ``step`` as ``(block, k, n)`` (samples last in memory); ``planes_from(step)``
    the same numbers as the memory ``(n, block)`` of one input, with those of the following
    steps of the group; steps are asked for in order, from 1, each once (by these methods,
    ``update``, ``fill_then`` and ``stretch`` alike; without a drawing thread a group is drawn
    again where a stretch drew over its buffer). ``again(step)`` draws the numbers of a step
    again, in a buffer of its own (for a stretch of steps run a second time, ``_OneReLU``).

    With ``ahead`` a thread of its own draws the groups ahead of the chain into two buffers in
    turn (a handoff per group): where the machine has a core to spare (a run of fewer blocks
    than cores, such as a small SDE), a step then costs the longer of drawing its normals and
    the update, not their sum. Drawing releases the GIL (torch and NumPy alike). The numbers
    are those of the stream layout whatever ``ahead``."""

    def __init__(self, plan: ChainPlan, block: int, size: int, ahead: bool) -> None:
        self.shape = (plan.inputs, plan.width, size)
        self.plan, self.block = plan, block
        self.streams = BlockStreams(plan.seed, CHAIN_STREAM, [(block, 0, size)], plan.device)
        self.steps = plan.steps
        # a chain shorter than a group draws it up to its last step: the same numbers
        self.group = min(group_steps(math.prod(self.shape)), max(1, self.steps))
        count = 2 if ahead and self.steps > 0 else 1
        # drawn on this thread in float32 on the CPU: a compiled call may draw the numbers
        here = (
            count == 1
            and plan.method == "law"
            and plan.dtype == torch.float32
            and torch.device(plan.device).type == "cpu"
        )
        # one input, in groups of any size: a stretch of steps in one call (``stretch``)
        self.stretchable = here and plan.inputs == 1
        # one input, a step a group: a step's numbers drawn into its increment (``update``)
        alone = here and self.group == 1
        self.fusable = alone and plan.inputs == 1
        # without a drawing thread: the group whose numbers ``buffers[0]`` holds (a stretch
        # or ``fill_then`` may draw over it)
        self.held: int | None = None
        # several inputs: a step's numbers may be drawn in the compiled call of its layer
        # (``fill_then``), into the buffer of the step's group
        self.several = alone and plan.inputs > 1
        self.buffers = [self._buffer() for _ in range(count)]
        self.views = [[step.permute(2, 0, 1) for step in buffer] for buffer in self.buffers]
        self.planes = [[step[0] for step in buffer] for buffer in self.buffers]
        self.spare: tuple[BlockStreams, Tensor, list[Tensor]] | None = None
        self.spare_first = 0
        self.thread: threading.Thread | None = None
        if count == 2:
            self.free = threading.Semaphore(2)  # buffers the drawer may fill
            self.ready = threading.Semaphore(0)  # buffers filled and not yet handed over
            self.cancelled = False
            self.error: BaseException | None = None
            self.thread = threading.Thread(target=self._draw, name="deeplimit-normals", daemon=True)
            self.thread.start()

    def _buffer(self) -> Tensor:
        """Memory ``(group, k, n, block)`` for a group of steps."""
        plan = self.plan
        return torch.empty((self.group, *self.shape), dtype=plan.dtype, device=plan.device)

    def _fill(self, streams: BlockStreams, first: int, buffer: Tensor) -> None:
        """Draw the group of steps from ``first`` on (up to the chain's last step)."""
        streams.fill(0, first, buffer[: min(self.group, self.steps - first + 1)])

    def _draw(self) -> None:
        one_torch_thread()
        try:
            for number, first in enumerate(range(1, self.steps + 1, self.group)):
                self.free.acquire()
                if self.cancelled:
                    return
                self._fill(self.streams, first, self.buffers[number % 2])
                self.ready.release()
        except BaseException as error:  # handed to the chain's thread at its next group
            self.error = error
            self.ready.release()

    def _slot(self, step: int) -> tuple[int, int]:
        """The buffer and the position in it of the numbers of ``step``."""
        offset = (step - 1) % self.group
        number = (step - 1) // self.group
        if self.thread is None:  # (a stretch may have drawn into the buffer: ``stretch``)
            if self.held != number:
                self._fill(self.streams, step - offset, self.buffers[0])
                self.held = number
        elif offset == 0:  # a new group: the previous one is used up
            if step > 1:
                self.free.release()
            self.ready.acquire()
            if self.error is not None:
                raise self.error
        return number % len(self.buffers), offset

    def layer(self, step: int) -> Tensor:
        """The noise of ``step`` as ``(block, k, n)``."""
        buffer, offset = self._slot(step)
        return self.views[buffer][offset]

    def planes_from(self, step: int) -> list[Tensor]:
        """The noise of ``step`` and of the following steps of its group, as memories
        ``(n, block)`` of the first input; the caller uses a prefix of them and asks for the
        step after that prefix next."""
        buffer, offset = self._slot(step)
        return self.planes[buffer][offset : min(self.group, self.steps - step + 1 + offset)]

    def update(
        self, step: int, y: Tensor, row: Tensor, factor: float, then: tuple | None = None
    ) -> bool:
        """Where ``fusable``: ``y.addcmul_(row, noise, value=factor)`` with the noise of
        ``step`` as the memory ``(n, block)`` of the one input, ``y`` that memory's
        ``(n, block)`` and ``row`` the ``(block,)`` norms, the numbers drawn into the update
        in one compiled pass (``rng.BlockStreams.fill_update``: the same bits, the normals
        never stored); False (nothing drawn) where it does not apply. Steps are asked for in
        order, each once, by ``update`` or the other methods alike."""
        return self.fusable and self.streams.fill_update(0, step, y, row, factor, then)

    def stretch(
        self,
        step: int,
        steps: int,
        y: Tensor,
        norm: Tensor,
        spare: Tensor,
        factor: float,
        bound: float,
        norms: int | None,
        observed: dict[str, Any] | None = None,
    ) -> int | None:
        """Where ``stretchable``: the steps ``step .. step + steps - 1`` of one ReLU input in
        one compiled call (``rng.BlockStreams.fill_stretch``: the increment and the norms'
        pass at each step, every norm checked against ``bound``; a group of steps drawn into
        ``buffers[0]``): the steps whose norms all passed, or None (nothing drawn) where it
        does not apply. ``observed``: the observers' arguments of ``fill_stretch``."""
        if not self.stretchable:
            return None
        if self.group > 1:
            self.held = None  # the buffer is the stretch's
        return self.streams.fill_stretch(
            0,
            step,
            steps,
            y,
            norm,
            spare,
            factor,
            bound,
            norms,
            (self.group, self.steps),
            self.buffers[0],
            **(observed or {}),
        )

    def several_stretch(
        self,
        step: int,
        steps: int,
        factor: tuple[int, list],
        then: tuple,
        bound: float,
        top: float,
        observed: tuple | None = None,
    ) -> int | None:
        """Where ``several``: the steps ``step .. step + steps - 1`` of several ReLU inputs in
        one compiled call (``rng.BlockStreams.fill_several_stretch``: ``fill_then`` a layer,
        then the per-step bounds checked), drawing into ``memory_for_several()``: the steps
        that passed, or None (nothing drawn). ``observed``: the observers' arguments of
        ``fill_several_stretch``."""
        if not self.several:
            return None
        self.held = None  # (the buffer is the stretch's)
        extra = () if observed is None else (observed,)
        return self.streams.fill_several_stretch(
            0, step, steps, self.memory_for_several(), factor, then, bound, top, *extra
        )

    def fill_then(self, step: int, factor: tuple[int, list], then: tuple | None) -> int | None:
        """Where ``several``: the numbers of ``step`` drawn into ``memory_for_several()``, the
        several-input kernel ``factor`` (its arguments but the normals) and the norms' pass
        ``then`` run after it, in one compiled call (``rng.BlockStreams.fill_then``): the tiles
        the kernel left, or None (nothing drawn)."""
        if not self.several:
            return None
        return self.streams.fill_then(0, step, self.memory_for_several(), factor, then)

    def memory_for_several(self) -> Tensor:
        """The memory ``(k, n, block)`` into which ``fill_then`` draws."""
        return self.buffers[0][0]

    def again(self, step: int) -> Tensor:
        """The noise of ``step`` as ``(block, k, n)``, drawn again (any step, any order)."""
        first = step - (step - 1) % self.group
        if self.spare is None:
            streams = BlockStreams(
                self.plan.seed, CHAIN_STREAM, [(self.block, 0, self.shape[-1])], self.plan.device
            )
            buffer = self._buffer()
            self.spare = (streams, buffer, [step.permute(2, 0, 1) for step in buffer])
            self.spare_first = 0
        streams, buffer, views = self.spare
        if self.spare_first != first:
            self._fill(streams, first, buffer)
            self.spare_first = first
        return views[step - first]

    def close(self) -> None:
        """Stop the drawing thread, if any (at the end of the block or on an error)."""
        if self.thread is not None:
            self.cancelled = True
            self.free.release()
            self.thread.join()
            self.thread = None


# Steps of a stretch of ``_OneReLU`` and numbers of its per-step norms at most; False in
# ``_STRETCHES``: every chain step by step (the reference the tests compare stretches with);
# False in ``_COMPILED_STRETCHES``: a stretch a call per step (``_OneReLU._run_compiled``).
_STRETCH_STEPS = 64
_STRETCH_NUMBERS = 2**18
# numbers of a block times steps of a stretch with observers (``_OneReLU.observed``): its
# counts and ratios, 8 bytes a number, stay in the caches
_OBSERVED_NUMBERS = 2**18
# several inputs (``_SeveralReLU.observed``): stretches this many times longer, whose five
# observers' Python a stretch weighs more (3-7 % faster at k = 4, n = 4, on a 2-core AVX2
# machine whose caches hold neither length; no change at n >= 16)
_OBSERVED_SEVERAL = 4
_STRETCHES = True
_COMPILED_STRETCHES = True


def _stretches_in_one_call(plan: ChainPlan, observers: Sequence[Observer]) -> bool:
    """Whether the chain runs in stretches of one compiled call each (``_OneReLU``,
    ``_Normals.stretch``) where its normals are drawn on the block's own thread."""
    return (
        _STRETCHES
        and _COMPILED_STRETCHES
        and (not observers or _observed_stretches(plan, observers))
        and plan.inputs == 1
        and plan.method == "law"
        and type(plan.activation) is ReLU
        and plan.dtype == torch.float32
        and _host_checks(torch.device(plan.device))
        and torch_float32_update() is not None
        and (plan.width == 1 or native.available())  # the norms' kernel (``_stretch_norms``)
    )


def _observed_stretches(plan: ChainPlan, observers: Sequence[Observer]) -> bool:
    """Whether a chain of one ReLU input with ``observers`` may run in compiled stretches
    (``ObservedStretch``): width > 1 (at width 1 the per-layer quantities are as large as the
    state: no faster so) and every observer takes stretches and reads no values (those
    layers need views)."""
    return plan.width > 1 and all(
        observer.stretches and not observer.value_layers for observer in observers
    )


def _stretch_norms(plan: ChainPlan, y: Tensor, draws: _Normals) -> int | None:
    """Where a stretch of one ReLU input runs in one compiled call (``_Normals.stretch``):
    the address of the norms' kernel it calls at each step (0 at width 1, where it needs
    none), else None."""
    if not (
        _COMPILED_STRETCHES
        and draws.stretchable
        and y.numel() >= 16  # as torch draws fewer numbers another way
        and torch_float32_update() is not None
    ):
        return None
    if plan.width == 1:
        return 0
    return native.row_norms_address(y.unsqueeze(0), y[:1])


class _Stretches:
    """What ``_run_block`` asks of stretches of layers (``_OneReLU``, ``_SeveralReLU``):
    ``length`` (layers at most), ``run(step, last, draws)`` (True, or False with the state as
    it was at ``step``), ``ready()`` (False while backing off after failures: ``2^f`` layers
    layer by layer after ``f`` failures in a row, at most 1024), ``in_bounds`` (the last
    stretch ended within the per-step path's bounds), ``carried`` (the norms of the state
    kept from the last stretch), ``observed`` (observers take the stretches)."""

    observed = False

    def _start(self) -> None:
        self.carried = False
        self.in_bounds = False
        self.backoff = 0
        self.failures = 0

    def ready(self) -> bool:
        """Whether to try the next stretch (False: step by step, after a failure)."""
        if self.backoff > 0:
            self.backoff -= 1
            return False
        return True

    def _passed(self) -> bool:
        self.failures = 0
        self.carried = True
        return True

    def _failed(self) -> bool:
        self.carried = False
        self.failures += 1
        self.backoff = 2 ** min(self.failures, 10)
        return False

    def observation(self, first: int, count: int, exponent: Tensor | None) -> ObservedStretch:
        """The layers ``first .. first + count - 1`` of the observed stretch just run
        (``observed``: its ``space``, ``counts_into``, ``ratio`` and ``ratios``, and
        ``_ends``), for the observers."""
        divided = self.space.divided()
        ratio = None if divided is None else self.ratio[:count]
        counts = self.counts_into
        return ObservedStretch(
            first,
            count,
            counts,
            ratio,
            None if divided is None else divided[0],
            exponent,
            (
                None if counts is None else counts.numpy(),
                None if ratio is None else self.ratios[:count],
            ),
            *self._ends(),
        )

    def _ends(self) -> tuple[Tensor, Tensor]:
        raise NotImplementedError

    @staticmethod
    def _applies(plan: ChainPlan, observers: Sequence[Observer]) -> bool:
        """What stretches of either kind need (``make``): stretches on, no observers or
        observers that take stretches, a ReLU chain, checks on the host."""
        return (
            _STRETCHES
            and (not observers or _observed_stretches(plan, observers))
            and type(plan.activation) is ReLU
            and _host_checks(plan.device)
        )


class _OneReLU(_Stretches):
    """The exact-in-law chain of one ReLU input on the CPU, with no observers, in stretches of
    steps checked once (``run``): a step is then the update ``y += s n^-1/2 ||phi|| z`` and the
    next ``||phi||`` (``phi = relu(y)``, ``||phi||^2`` summed along the width, its square
    root: one compiled pass, ``native.row_norms``, or four operations), on the samples-last
    memory ``(n, block)`` of the state (a reduction along contiguous rows) with the normals of
    ``_Normals.planes_from``.

    Those are the operations and the numbers of the chain's per-step path (``_increment`` and
    ``_Numerics.view``) wherever the per-step checks would find nothing to do, which the end
    of a stretch verifies on reductions of numbers computed anyway (the norms of every step,
    kept in a small buffer) and on the final state:

    * every entry of the state is finite (NaN and inf persist: a blow-up anywhere in the
      stretch is still there at its end);
    * every nonzero ``||phi||`` of the stretch is at least ``2^-bound`` (the per-step path's
      bound for skipping its checks, far above the ``sqrt(tiny) / eps`` under which a plain
      norm may have lost squares to underflow); a zero norm is a collapsed path, and
    * a path with ``||phi|| = 0`` at the end has no positive entry: a nonzero ``phi`` whose
      squares all underflowed would have a norm of 0, a zero increment, and so a state frozen
      up to the end of the stretch with a positive entry.

    A stretch that fails a check is run again from its saved initial state by the per-step
    path (its normals drawn again), which reports blow-ups and underflows at the step where
    they happen and rescales by powers of two as it does; after ``f`` failures in a row the
    next ``2^f`` steps (at most 1024) go step by step (``backoff``), so that a path that stays
    near a bound costs little more than the per-step path. The per-step checks themselves
    (``_Numerics.view``) come at the recorded steps (a stretch ends at each) and where the
    largest entry leaves the per-step path's bound (``sqrt(n) max |y| <= 2^bound``), which
    also rescales by powers of two; elsewhere the end of a stretch has checked all they would
    (``in_bounds``), and its last norm is the first of the next stretch. Scaling by powers
    of two is exact, so the numbers do not depend on where stretches end, nor on the chunk
    size or the threads.
    """

    def __init__(
        self,
        plan: ChainPlan,
        memory: Tensor,
        space: _Workspace,
        bound: int,
        draws: _Normals,
        observed: bool = False,
    ) -> None:
        n, size = plan.width, memory.shape[-1]
        self.width = n
        self.space = space
        self.y = memory[0]  # (n, block)
        self.row = self.y[0]  # (block,): the state of width 1
        self.factor = plan.scale / math.sqrt(n)
        # one compiled call a stretch (``_Normals.stretch``), which checks the norms on the
        # way and keeps only the last: the norms' kernel by address (none needed at width 1)
        self.address = _stretch_norms(plan, self.y, draws)
        self.compiled = self.address is not None
        # else the steps of each group of normals in one compiled call (the increment, the
        # norms and their checks: ``_run_grouped``), where that kernel gives torch's bits
        self.grouped = None
        if not self.compiled and _COMPILED_STRETCHES and self.y.numel() > 0:
            self.grouped = native.relu_stretch(plan.dtype)
        # with observers (compiled stretches only): each layer's counts and ratio in rows of
        # scratch that stay in the caches until the observers have read them
        self.observed = observed and self.compiled
        if self.observed:
            self.length = max(2, min(_STRETCH_STEPS, _OBSERVED_NUMBERS // max(1, size)))
            self.counts = torch.empty((self.length, size), dtype=torch.int32)
            self.sums = torch.empty((2, size), dtype=torch.int32)  # (``ObservedStretch``)
            self.ratio = torch.empty((self.length, size), dtype=plan.dtype)
            self.ratios = self.ratio.numpy()
            # where the next stretch's counts go (``_take_stretch``: an observer's results,
            # ``counts``, one row of it, or None: not counted)
            self.counts_into: Tensor | None = None
        elif self.compiled or self.grouped is not None:
            self.length = _STRETCH_STEPS
        else:
            self.length = max(2, min(_STRETCH_STEPS, _STRETCH_NUMBERS // max(1, size)))
        # norms[i]: ||phi|| after step i of the stretch (norms[0]: at its start); compiled:
        # the norms at the start, then the last (norms[0]), and the kernel's spare row
        rows = 2 if self.compiled or self.grouped is not None else self.length + 1
        self._last = 0  # the row of the last norms of the stretch (``_checked``)
        self.norms = torch.empty((rows, size), dtype=plan.dtype, device=plan.device)
        self.rows = list(self.norms.unbind(0))
        self.work = torch.empty_like(self.norms)  # scratch for the checks, like ``norms``
        self.top, self.sign = torch.empty_like(self.rows[0]), torch.empty_like(self.rows[0])
        self.phi = space.phi.permute(1, 2, 0)[0]  # (n, block) memory
        self.square = space.square.permute(1, 2, 0)[0]
        self.saved = torch.empty_like(self.y)
        self.bound = 2.0**-bound
        self.largest = 2.0**bound / math.sqrt(n)  # of |y| for the per-step path's bound
        self._start()  # (``carried``: whether norms[0] is the norm of the state)

    @classmethod
    def make(
        cls,
        plan: ChainPlan,
        memory: Tensor,
        space: _Workspace,
        numerics: _Numerics,
        observers: Sequence[Observer],
        draws: _Normals,
    ) -> _OneReLU | None:
        """The stretches of one ReLU input on the CPU, without observers or with observers
        that take stretches (``_observed_stretches``, compiled stretches only), or None."""
        if not cls._applies(plan, observers) or plan.inputs != 1:
            return None
        stretches = cls(plan, memory, space, numerics.bound, draws, bool(observers))
        return None if observers and not stretches.observed else stretches

    def _norm(self, out: Tensor) -> None:
        """``||relu(y)||`` of the state into ``out``."""
        if self.width == 1:  # ||relu(y)|| = relu(y)
            torch.clamp(self.row, min=0, out=out)
        elif not native.row_norms(self.y.unsqueeze(0), out.unsqueeze(0), relu=True):
            # (the per-step path's numbers: ``LayerView.phi_norm``)
            torch.clamp(self.y, min=0, out=self.phi)
            torch.sum(torch.mul(self.phi, self.phi, out=self.square), 0, out=out).sqrt_()

    def run(self, step: int, last: int, draws: _Normals) -> bool:
        """Steps ``step + 1 .. last`` (at most ``length``) in place; False, the state as it was
        at ``step``, where a check fails (see the class docstring)."""
        y, row, factor = self.y, self.row, self.factor
        self.saved.copy_(y)
        count = last - step
        self.in_bounds = False
        in_one_call = self.compiled or self.grouped is not None
        # the state was rescaled or run step by step since (a compiled call takes relu(y)
        # itself at width 1)
        if not self.carried and (self.width > 1 or not in_one_call):
            self._norm(self.rows[0])
        if self.compiled:
            return self._run_compiled(step, count, draws)
        if self.grouped is not None:
            return self._run_grouped(step, count, draws)
        done = 0
        while done < count:  # the steps of one group of normals at a time
            norm, following = self.rows[done], self.rows[done + 1]
            if draws.update(step + 1 + done, y, norm, factor):  # drawn into the update
                self._norm(following)
                done += 1
                continue
            noises = draws.planes_from(step + 1 + done)[: count - done]
            norms = self.rows[done : done + len(noises) + 1]
            if self.width == 1:  # ||relu(y)|| = relu(y)
                for noise, norm, following in zip(noises, norms, norms[1:]):
                    y.addcmul_(norm, noise, value=factor)
                    torch.clamp(row, min=0, out=following)
            else:
                for noise, norm, following in zip(noises, norms, norms[1:]):
                    y.addcmul_(norm, noise, value=factor)
                    self._norm(following)
            done += len(noises)
        return self._ended(self._checked(count))

    def _run_compiled(self, step: int, count: int, draws: _Normals) -> bool:
        """``run`` in one compiled call (``_Normals.stretch``), which checks every norm of the
        stretch on the way (a step with a norm that fails ends the call) and leaves the last
        in ``rows[0]``; ``observed``: with each layer's counts and ratio (``observation``)."""
        observed = None
        if self.observed:
            divisor, _ = self.space.division()
            # every entry of every layer within the per-step path's bound (``largest``, a
            # hair below), so that it would rescale at none of them: the observers' numbers
            # (log-growth: the log of rescaled norms plus the exponents') are then its own
            top = self.largest * (1 - 2.0**-20)
            observed = dict(counts=self.counts_into, sums=self.sums, top=top)
            if divisor is not None:
                observed.update(divisor=divisor[0], ratio=self.ratio)
        done = draws.stretch(
            step + 1,
            count,
            self.y,
            self.rows[0],
            self.rows[1],
            self.factor,
            self.bound,
            self.address or None,
            observed,
        )
        return self._ended(done == count and self._checked(count, norms=False))

    def _ends(self) -> tuple[Tensor, Tensor]:
        """The sums ``(2, block, k)`` and the last layer's norms ``(block, k)`` of the
        stretch just run (``ObservedStretch``)."""
        return self.sums.unsqueeze(-1), self.rows[0].unsqueeze(-1)

    def _run_grouped(self, step: int, count: int, draws: _Normals) -> bool:
        """``run`` with one compiled call per group of normals (``native.relu_stretch``: the
        increments, the norms and their checks, as ``_run_compiled`` but with the normals
        drawn into the group's buffer first); the last norms in ``rows[0]``."""
        y, first, spare = self.y, self.rows[0], self.rows[1]
        done, passed = 0, True
        while done < count:  # every group of the stretch taken, also after a failure: a
            # thread that draws ahead hands them over in turn
            noises = draws.planes_from(step + 1 + done)[: count - done]
            steps = len(noises)
            passed = passed and steps == self.grouped(
                noises[0].data_ptr(),
                steps,
                y.data_ptr(),
                first.data_ptr(),
                spare.data_ptr(),
                self.width,
                y.shape[-1],
                self.factor,
                self.bound,
            )
            done += steps
        return self._ended(passed and self._checked(count, norms=False))

    def _ended(self, passed: bool) -> bool:
        """The end of a stretch that ``passed`` its checks (its last norm kept: ``carried``),
        or that did not (the state as it was at its start)."""
        if passed:
            if self._last:
                self.rows[0].copy_(self.rows[self._last])
            return self._passed()
        self.y.copy_(self.saved)
        return self._failed()

    def _checked(self, count: int, norms: bool = True) -> bool:
        """The checks of the class docstring, in float arithmetic (comparisons, masks and
        ``torch.where`` are an order of magnitude slower on the CPU); sets ``in_bounds``.
        ``norms=False``: the norms were checked on the way (the compiled stretch), the last
        is in ``rows[0]``."""
        self._last = count if norms else 0
        if self.observed:  # the kernel checked every step: a finite state, within the
            # per-step bounds (``top``), no norm that underflowed to 0 (a positive count)
            self.in_bounds = True
            return True
        low, high = torch.aminmax(self.y)
        low, high = low.item(), high.item()
        if not (math.isfinite(low) and math.isfinite(high)):
            return False
        # x - x^2 / bound is > 0 exactly for x in (0, bound) (x^2 / bound < x there, and it
        # underflows to 0 only where x itself is tiny), 0 for 0 and bound, < 0 above bound
        if norms:
            rows, scratch = self.norms[: count + 1], self.work[: count + 1]
            torch.addcmul(rows, rows, rows, value=-1.0 / self.bound, out=scratch)
            if not float(scratch.max()) <= 0:
                return False
        if self.width > 1:  # relu(y) > 0 wherever y > 0 at width 1: no norm underflows to 0
            # relu(largest entry) where the last norm is 0 (sign 0), 0 where it is positive
            top = torch.amax(self.y, 0, out=self.top).clamp_(min=0)
            sign = torch.sign(self.rows[self._last], out=self.sign)
            if float(torch.addcmul(top, top, sign, value=-1.0, out=sign).max()) > 0:
                return False
        self.in_bounds = max(-low, high) <= self.largest
        return True


class _SeveralReLU(_Stretches):
    """The exact-in-law chain of several float32 ReLU inputs of width > 1 on the CPU, in
    stretches of layers of one compiled call each (``_Normals.several_stretch``): at each
    layer the call of ``_drawn_factor_increment`` (drawing, the several-input kernel, the
    norms' pass), then the checks of the per-step path's bounds (``_bounded_view``: every
    entry within ``2^T / sqrt(n)``, every norm 0 or at least ``2^-T``, nothing NaN), so that
    every layer of a stretch that passes is one the per-step path would have left as it is:
    the same numbers. A stretch that fails, or in which the kernel left tiles to mend, is
    run again from its saved state layer by layer (``_OneReLU``'s protocol: ``_Stretches``).

    With observers that take stretches (``_observed_stretches``; ``observed``), the norms'
    pass of each layer also writes what they read (``ObservedStretch``): the active counts
    (into the results where an observer records every layer of the stretch one after the
    other, ``_take_stretch``), the log-growth's ratios, the sums of the counts and of the
    layers alive, and the norms of ``y``, from which the kernel writes the correlations of
    the recorded layers straight into their results; a layer then also fails where a norm
    of ``y`` is neither 0 nor within the bounds (the per-step view would look at it again)."""

    def __init__(
        self,
        plan: ChainPlan,
        memory: Tensor,
        space: _Workspace,
        bound: int,
        draws: _Normals,
        observed: bool = False,
    ) -> None:
        self.plan, self.memory, self.space = plan, memory, space
        k, _, size = memory.shape
        self.length = _STRETCH_STEPS
        self.scale = plan.scale / math.sqrt(plan.width)
        self.bound = 2.0**-bound
        self.top = 2.0**bound / math.sqrt(plan.width) * (1 - 2.0**-20)
        self.saved = torch.empty_like(memory)
        self.observed = observed
        if observed:  # each layer's counts and ratios in scratch of the stretch
            most = _OBSERVED_NUMBERS * _OBSERVED_SEVERAL // max(1, k * size)
            self.length = max(2, min(_STRETCH_STEPS, most))
            self.counts = torch.empty((self.length, k, size), dtype=torch.int32)
            self.sums = torch.empty((2, k, size), dtype=torch.int32)  # (``ObservedStretch``)
            self.ratio = torch.empty((self.length, k, size), dtype=plan.dtype)
            self.ratios = self.ratio.numpy()
            self.plain = torch.empty((k, size), dtype=plan.dtype)  # the norms of y
            # where the next stretch's counts go (``_take_stretch``) and its correlations
            self.counts_into: Tensor | None = None
            self.correlations_into: tuple[list[int], int] | None = None
            self.rows_out = (ctypes.c_int64 * self.length)()
        self._start()

    @classmethod
    def make(
        cls,
        plan: ChainPlan,
        memory: Tensor,
        space: _Workspace,
        numerics: _Numerics,
        observers: Sequence[Observer],
        draws: _Normals,
    ) -> _SeveralReLU | None:
        if (
            not (cls._applies(plan, observers) and _COMPILED_STRETCHES)
            or plan.inputs < 2
            or plan.width < 2
            or not draws.several
            or not native.available()
        ):
            return None
        return cls(plan, memory, space, numerics.bound, draws, bool(observers))

    def run(self, step: int, last: int, draws: _Normals) -> bool:
        """Layers ``step + 1 .. last`` in place; False, the state as it was at ``step``,
        where a layer fails the checks or leaves tiles to mend (see the class docstring)."""
        space, memory = self.space, self.memory
        self.saved.copy_(memory)
        self.in_bounds = False
        bound_pass = space.norms_pass(memory)
        observed = outputs = None
        if self.observed:
            observed, outputs = self._observed(last - step)
            arguments = None
            if outputs is not None and bound_pass.accept(True, *outputs):
                arguments = bound_pass.arguments(True, *outputs)
        else:
            arguments = bound_pass.arguments(True)
        kernel = space.native(space.phi_norm)
        done = None
        if arguments is not None and bound_pass.address is not None and kernel is not None:
            if not self.carried:  # the norms of the state, which the kernel reads
                bound_pass(True)
            factor = _drawn_factor_arguments(kernel, memory, draws, self.scale)
            done = draws.several_stretch(
                step + 1,
                last - step,
                (kernel.address, factor),
                (bound_pass.address, arguments),
                self.bound,
                self.top,
                observed,
            )
        space.norms_pass_done()
        if done == last - step:
            self.in_bounds = True
            return self._passed()
        memory.copy_(self.saved)
        return self._failed()

    def _observed(self, count: int) -> tuple[tuple | None, tuple | None]:
        """The observers' arguments of ``several_stretch`` for ``count`` layers and the
        outputs of the first layer's norms' pass (counts, norms of y, divisor, ratios), as
        ``native.RowNorms.arguments`` checks them; two None where they cannot be laid out
        so."""
        counts = self.counts_into
        divisor, _ = self.space.division()
        ratio = None if divisor is None else self.ratio[0]
        into = self.correlations_into
        correlate, rows_distance = 0, 0
        plain = acc = unit = None
        if into is not None:
            addresses, rows_distance = into
            correlate = native.correlations_address(self.plan.dtype) or 0
            if len(addresses) != count or not correlate:
                return None, None
            for index, address in enumerate(addresses):
                self.rows_out[index] = address
            k = self.memory.shape[0]  # (the kernel's scratch, kept per thread)
            acc, unit = native.correlation_scratch(k * (k - 1) // 2, k, self.plan.dtype)
            plain = self.plain
        k, _, size = self.memory.shape
        layer_step = 0
        if counts is not None:
            if counts.shape != (count, k, size) or counts.stride(2) != 1:
                return None, None
            layer_step = counts.stride(0)
        observed = (
            layer_step,
            self.sums.data_ptr(),
            k * size,
            correlate or None,
            self.rows_out if correlate else None,
            rows_distance,
            None if acc is None else acc.data_ptr(),
            None if unit is None else unit.data_ptr(),
        )
        first = None if counts is None else counts[0]
        return observed, (first, plain, divisor, ratio)

    def _ends(self) -> tuple[Tensor, Tensor]:
        """The sums ``(2, block, k)`` and the last layer's norms ``(block, k)`` of the
        stretch just run (``ObservedStretch``)."""
        return self.sums.permute(0, 2, 1), self.space.phi_norm


def _take_stretch(
    numerics: _Numerics,
    observers: Sequence[Observer],
    stretches: _OneReLU | _SeveralReLU,
    step: int,
    last: int,
) -> bool:
    """Whether the layers ``step + 1 .. last`` may run as a stretch with ``observers`` (a
    chain never rescaled, each observer taking it), with the results of an observer that
    takes their active counts as the kernel writes them (``counts_into``), else a row of
    counts a layer where an observer reads them, one row where observers read their totals
    only, no counts where none reads them; for several inputs with the results into which
    the kernel writes the correlations (``correlations_into``)."""
    if numerics.scaled or numerics.lost is not None:
        return False
    if not all(observer.takes_stretch() for observer in observers):
        return False
    first, count = step + 1, last - step
    found = (observer.stretch_counts(first, count) for observer in observers)
    into = next((into for into in found if into is not None), None)
    if into is None:
        if any(observer.reads_counts(first, count) for observer in observers):
            into = stretches.counts[:count]  # the chain's buffer, a row a layer
        elif any(observer.totals for observer in observers):
            row = stretches.counts[0]  # one row, the last layer's counts
            into = row.expand(count, *row.shape)
    stretches.counts_into = into  # (None: the layers alive are counted from the norms)
    if isinstance(stretches, _SeveralReLU):
        rows = (observer.stretch_correlations(first, count) for observer in observers)
        stretches.correlations_into = next((r for r in rows if r is not None), None)
    return True


def _run_block(
    plan: ChainPlan,
    block: int,
    start: int,
    stop: int,
    slots: dict[int, list[int]],
    out: Tensor,
    numerics: _Numerics,
    observers: Sequence[Observer],
    meter: _Progress,
    stop_now: threading.Event,
    ahead: bool = False,
) -> None:
    """Every layer of one block (``_simulate_blocks``); returns early once ``stop_now`` is set
    (another thread failed, or the caller was interrupted). ``ahead``: draw the normals on a
    thread of their own, ahead of the layers (``_Normals``). One ReLU input without observers
    runs in checked stretches of steps (``_OneReLU``), every other chain step by step."""
    n, k, size = plan.width, plan.inputs, stop - start
    streams = BlockStreams(plan.seed, CHAIN_STREAM, [(block, 0, size)], plan.device)
    context = ChunkContext(plan, start, stop, streams)
    normals = None
    if plan.state.kind == "x":
        normals = streams.normal(0, 0, (size, n, plan.state.input_dim), plan.dtype)
    memory = torch.empty((k, n, size), dtype=plan.dtype, device=plan.device)
    y = memory.permute(2, 0, 1)  # (size, k, n), samples last in memory
    if plan.state.kind == "y0":  # Y_0 broadcast along each contiguous row of the memory
        memory.copy_(plan.state.values.unsqueeze(-1).expand(k, n, size))
    else:
        y.copy_(plan.state.draw(n, size, normals))
    draws = _Normals(plan, block, size, ahead)
    workspace = _Workspace(k, n, size, plan.dtype, plan.device)
    workspace.state = memory
    numerics.start(start, stop)
    view = numerics.view(0, y, workspace)

    def record(step: int, view: LayerView) -> None:
        """The state of ``step`` into its slots of ``out``: a plain copy into each (indexing
        by a list of slots is a scatter, 4x slower, at every recorded layer), by the compiled
        samples-first copy where the state is not rescaled (torch's copy of the transposed
        memory took as long as drawing the layer's normals)."""
        if step in slots:
            state = view.absolute(y)
            for slot in slots[step]:
                target = out[start:stop, slot]
                if not (state is y and native.samples_first(memory, target)):
                    target.copy_(canonical(state))

    record(0, view)
    for observer in observers:
        observer.start(context, view)
    stretches = _OneReLU.make(
        plan, memory, workspace, numerics, observers, draws
    ) or _SeveralReLU.make(plan, memory, workspace, numerics, observers, draws)
    recorded = sorted(step for step in slots if step > 0)  # (stretches end there)

    def checked_view(step: int) -> LayerView:
        """A view of a state that the end of a stretch has checked (``_OneReLU``)."""
        activation, exponent, lost = plan.activation, numerics.exponent, numerics.lost
        return LayerView(step, y, activation, exponent, lost, None, workspace, True)

    step = done = 0
    current = True  # whether ``view`` is the view of the state (not of an earlier step)
    try:
        while step < plan.steps:
            if stop_now.is_set():
                return
            last = plan.steps
            if stretches is not None:
                last = min(last, step + stretches.length)
                following = bisect.bisect_right(recorded, step)
                if following < len(recorded):
                    last = min(last, recorded[following])
            if (
                stretches is not None
                and last - step >= 2
                and view.finite
                and stretches.ready()
                and (not observers or _take_stretch(numerics, observers, stretches, step, last))
            ):
                if stretches.run(step, last, draws):
                    if observers:
                        stretch = stretches.observation(step + 1, last - step, numerics.exponent)
                        for observer in observers:
                            observer.observe_stretch(stretch)
                    step = last
                    current = step in slots or not stretches.in_bounds
                    if current:  # the per-step checks (the state may be rescaled)
                        stretches.carried = False
                        view = numerics.view(step, y, workspace)
                        record(step, view)
                else:  # again, step by step, from a fresh view (the stretch used its buffers)
                    view = checked_view(step)
                    while step < last:
                        step += 1
                        _increment(plan, y, view, draws.again(step))
                        view = numerics.view(step, y, workspace)
                        record(step, view)
                        for observer in observers:
                            observer.observe(view)
                    current = True
            else:
                if not current:
                    view, current = checked_view(step), True
                if stretches is not None:
                    stretches.carried = False  # the norm of the next state is not kept
                step += 1
                if not (
                    _drawn_increment(plan, y, view, draws, step, numerics)
                    or _drawn_factor_increment(plan, y, view, draws, step, numerics)
                ):
                    _increment(plan, y, view, draws.layer(step))
                view = numerics.view(step, y, workspace)
                workspace.norms_pass_done()
                record(step, view)
                for observer in observers:
                    observer.observe(view)
            if step - done >= 64:
                meter.add(size * (step - done))
                done = step
    finally:
        draws.close()
    for observer in observers:
        observer.end()
    meter.add(size * (plan.steps - done))


def report_numerics(
    plan: ChainPlan, first_bad: Tensor, first_lost: Tensor, *, backward: bool = False
) -> None:
    """Raise (or warn about) the paths that left the dtype's range, as ``plan.on_nonfinite``
    asks: ``first_bad`` / ``first_lost`` hold per sample the first layer at which its numbers
    overflowed (NaN/inf) / underflowed, -1 where they did not; for the backward pass of a
    gradient (``backward=True``) the first layer is the highest one."""
    if plan.on_nonfinite == "ignore":
        return
    name = "backward pass, " if backward else ""
    context = (
        f"{name}activation={plan.activation.spec}, width={plan.width}, "
        f"{plan.step_name}s={plan.steps}, dtype={str(plan.dtype).removeprefix('torch.')}"
    )
    float32 = "try dtype=torch.float64" if plan.dtype == torch.float32 else ""
    homogeneous = plan.activation.positively_homogeneous
    errors: list[Exception] = []
    for first, kind in ((first_bad, NumericalBlowupError), (first_lost, NumericalUnderflowError)):
        affected = first >= 0
        count = int(affected.sum())
        if count == 0:
            continue
        layer = int(first[affected].max() if backward else first[affected].min())
        hints = [float32] if float32 else []
        if kind is NumericalUnderflowError and homogeneous and not backward:
            hints.append(
                "the values are below the float range, but observe_resnet's scale-free "
                "observables (log_growth, collapse, correlation, active, quasi_gbm) are "
                "computed exactly for this activation"
            )
        error = kind(count, plan.samples, layer, context, "; ".join(hints))
        if plan.step_name != "layer":
            error.args = (str(error).replace("at layer", f"at {plan.step_name}"),)
        errors.append(error)
    for error in errors:
        if plan.on_nonfinite == "raise":
            raise error
        warnings.warn(str(error), RuntimeWarning, stacklevel=3)
