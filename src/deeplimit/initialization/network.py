"""Finite-width, finite-depth random ResNets at initialization (hayou.md §1, Eq. 1):

    Y_0 = W_in x,    Y_l = Y_{l-1} + L^{-1/2} W_l phi(Y_{l-1}),    l = 1..L,

with ``W_in`` entries ``N(0, 1/d)`` and ``W_l`` entries ``N(0, 1/n)``, all independent.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ..activations import Activation, parse_activation
from ..devices import resolve_device, resolve_dtype
from ..errors import check_choice, check_int
from .chain import (
    DEFAULT_MEMORY_BUDGET,
    METHODS,
    ON_NONFINITE,
    ChainPlan,
    ProgressCallback,
    simulate_chain,
)
from .recording import Recording, resolve_layers
from .state import InitialState, resolve_initial_state

__all__ = ["sample_resnet"]


def shape_result(out: Tensor, recording: Recording, state: InitialState) -> Tensor:
    """Drop the layer axis and/or the input axis where the caller asked for a single one."""
    if state.squeeze:
        out = out.squeeze(2)
    if recording.squeeze:
        out = out.squeeze(1)
    return out


def common_arguments(
    width: Any,
    activation: Any,
    samples: Any,
    seed: Any,
    device: Any,
    dtype: Any,
    method: Any,
    on_nonfinite: Any,
) -> tuple[int, Activation, int, int, torch.device, torch.dtype]:
    width = check_int("width", width, minimum=1)
    samples = check_int("samples", samples, minimum=1)
    seed = check_int("seed", seed, minimum=0)
    check_choice("method", method, METHODS)
    check_choice("on_nonfinite", on_nonfinite, ON_NONFINITE)
    return (
        width,
        parse_activation(activation),
        samples,
        seed,
        resolve_device(device),
        resolve_dtype(dtype),
    )


def sample_resnet(
    width: int,
    depth: int,
    activation: Any,
    *,
    samples: int,
    y0: Any = None,
    x: Any = None,
    method: str = "law",
    record: Any = "last",
    seed: int = 0,
    device: Any = "cpu",
    dtype: Any = torch.float64,
    chunk_size: int | None = None,
    memory_budget: int = DEFAULT_MEMORY_BUDGET,
    on_nonfinite: str = "raise",
    progress: ProgressCallback | None = None,
) -> Tensor:
    """Sample ``samples`` independent random ResNets of Eq. 1 and return their pre-activations.

    Parameters
    ----------
    width, depth:
        ``n >= 1`` and ``L >= 1``.
    activation:
        A name or spec string (``"relu"``, ``"leaky:alpha=1,beta=0.5"``), an ``Activation`` or
        an elementwise callable.
    y0, x:
        Exactly one: the initial state ``Y_0`` (shape ``(width,)``, or ``(k, width)`` for ``k``
        inputs sharing the weights), or inputs ``x`` (shape ``(d,)`` or ``(k, d)``) from which
        each network draws ``Y_0 = W_in x``.
    method:
        ``"law"`` (default): exact in law, ``O(n k^2)`` per layer and network through a
        factor of the post-activations ``Phi`` with ``C C^T = Phi Phi^T`` (Lemma 6 for one
        input), accurate down to rounding for nearly collinear inputs. ``"weights"``: explicit
        Gaussian matrices ``W_l``, the reference path, ``O(n^2 k)``.
    record:
        ``"last"`` (layer ``L``), ``"all"`` (layers ``0..L``), a layer index, or a list of
        indices (a layer listed twice fills both slots). Unrecorded layers are never stored.
    seed, device, dtype:
        A given seed gives the same numbers on the same device whatever ``chunk_size``.
    chunk_size, memory_budget:
        Samples are processed in chunks of ``chunk_size`` samples (rounded up to whole random
        blocks), by default as many as fit in ``memory_budget`` bytes of working memory.
    on_nonfinite:
        ``"raise"`` (default) raises ``NumericalBlowupError`` when paths become NaN/inf and
        ``NumericalUnderflowError`` when they underflow (the norm of the state falls below
        the dtype's smallest normal number; an underflowed path is never counted as
        collapsed), ``"warn"`` warns and returns them, ``"ignore"`` returns them silently.
        For linear, ReLU and leaky activations the chain is rescaled by exact powers of two,
        so only the recorded layers have to be in range.
    progress:
        Optional callback ``progress(done, total)`` in units of network-layers.

    Returns
    -------
    Tensor of shape ``(samples, [layers,] [k,] width)``: the layer axis is present when
    ``record`` is ``"all"`` or a list, the input axis when ``y0`` / ``x`` was 2-D.

    Example
    -------
    >>> y = sample_resnet(3, 100, "relu", samples=1000, x=[1.0, -0.5])
    >>> y.shape
    torch.Size([1000, 3])
    """
    width, act, samples, seed, dev, dt = common_arguments(
        width, activation, samples, seed, device, dtype, method, on_nonfinite
    )
    depth = check_int("depth", depth, minimum=1)
    recording = resolve_layers(record, depth)
    state = resolve_initial_state(width, y0, x, dt, dev)
    plan = ChainPlan.resnet(
        depth,
        width=width,
        activation=act,
        state=state,
        samples=samples,
        method=method,
        record=recording.steps,
        seed=seed,
        device=dev,
        dtype=dt,
        chunk_size=chunk_size,
        memory_budget=memory_budget,
        on_nonfinite=on_nonfinite,
    )
    return shape_result(simulate_chain(plan, progress), recording, state)
