"""The infinite-depth limit of the ResNet (hayou.md §2, Eq. 4, Prop. 1 and Prop. 5):

    dX_t = n^{-1/2} ||phi(X_t)|| dB_t,   X_0 = W_in x,   t in [0, 1],

and for ``k`` inputs ``dX_t(x_a) = dM_t phi(X_t(x_a))`` with ``M`` an ``n x n`` matrix of
independent Brownian motions of variance rate ``1/n``, solved by Euler-Maruyama with
``steps`` equal steps. The Euler increment over ``dt`` is ``dM phi(X)``, whose law given ``X``
is the ResNet increment with ``L^{-1/2}`` replaced by ``sqrt(dt)``: the Euler scheme with
``steps = L`` *is* the ResNet in law (Lemma 6). With the same seed, ``sample_sde(steps=L)``
returns exactly the numbers of ``sample_resnet(depth=L, method="law")``; an SDE reference for a
depth-``L`` ResNet therefore needs ``steps`` much larger than ``L`` (or the closed-form laws).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
from torch import Tensor

from ..errors import check_int
from .chain import DEFAULT_MEMORY_BUDGET, ChainPlan, ProgressCallback, simulate_chain
from .network import check_run, common_arguments, count_recorded, held_need, shape_result
from .recording import resolve_times
from .state import resolve_initial_state

__all__ = ["sample_sde"]


def sample_sde(
    width: int,
    activation: Any,
    *,
    steps: int,
    samples: int,
    y0: Any = None,
    x: Any = None,
    record: Any = "last",
    seed: int = 0,
    device: Any = "cpu",
    dtype: Any = torch.float64,
    chunk_size: int | None = None,
    memory_budget: int = DEFAULT_MEMORY_BUDGET,
    on_nonfinite: str = "raise",
    progress: ProgressCallback | None = None,
) -> Tensor:
    """Euler-Maruyama paths of the infinite-depth SDE on ``[0, 1]``.

    Arguments are those of ``sample_resnet`` with ``steps`` (Euler steps, ``dt = 1/steps``) in
    place of ``depth``, and ``record`` given in time: ``"last"`` (t = 1), ``"all"`` (every grid
    time ``j/steps``), a time, or a list of times on that grid (a time listed twice fills both
    slots). The increments are drawn exactly in law through a factor of ``phi(X_t)`` with the
    Gram matrix ``C C^T = phi(X_t) phi(X_t)^T`` (one and several inputs alike).

    Returns a tensor of shape ``(samples, [times,] [k,] width)``.

    Example
    -------
    >>> x1 = sample_sde(1, "linear", steps=1000, samples=10000, y0=[1.0])
    >>> x1.shape
    torch.Size([10000, 1])
    """
    width, act, samples, seed, dev, dt = common_arguments(
        width, activation, samples, seed, device, dtype, "law", on_nonfinite
    )
    steps = check_int("steps", steps, minimum=1)
    state = resolve_initial_state(width, y0, x, dt, dev)
    plan = ChainPlan(
        width=width,
        steps=steps,
        scale=steps**-0.5,
        activation=act,
        state=state,
        samples=samples,
        method="law",
        record=(),
        seed=seed,
        device=dev,
        dtype=dt,
        chunk_size=chunk_size,
        memory_budget=memory_budget,
        on_nonfinite=on_nonfinite,
        step_name="step",
    )
    recorded = count_recorded(record, steps)
    what = f"the returned tensor of {state.inputs * width} numbers per time"
    held = held_need(
        plan, recorded, state.inputs * width, what, record_name="record", record=record
    )
    check_run(plan, progress, "sample_sde", held, step_parameter="steps")
    recording = resolve_times(record, steps)
    plan = dataclasses.replace(plan, record=recording.steps)
    return shape_result(simulate_chain(plan, progress), recording, state)
