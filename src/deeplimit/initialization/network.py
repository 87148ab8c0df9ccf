"""Finite-width, finite-depth random ResNets at initialization (hayou.md §1, Eq. 1):

    Y_0 = W_in x,    Y_l = Y_{l-1} + L^{-1/2} W_l phi(Y_{l-1}),    l = 1..L,

with ``W_in`` entries ``N(0, 1/d)`` and ``W_l`` entries ``N(0, 1/n)``, all independent.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from ..errors import check_callback
from ..sizes import Need, check_memory, format_value, rates, warn_if_slow
from .chain import (
    ChainPlan,
)
from .recording import Recording
from .shorthands import sample_resnet
from .state import InitialState

__all__ = ["sample_resnet"]

# bytes per recorded layer besides the data: the index tuple and the position dicts
_LAYER_BOOKKEEPING = 160


def shape_result(out: Tensor, recording: Recording, state: InitialState) -> Tensor:
    """Drop the layer axis and/or the input axis where the caller asked for a single one."""
    if state.squeeze:
        out = out.squeeze(2)
    if recording.squeeze:
        out = out.squeeze(1)
    return out


def count_recorded(record: Any, steps: int) -> int:
    """How many layers (times) ``record`` keeps, without building the list (1 for a value that
    ``resolve_layers`` / ``resolve_times`` will refuse)."""
    if isinstance(record, str):
        return steps + 1 if record == "all" else 1
    try:
        return max(1, len(record))
    except TypeError:
        return 1


def held_need(
    plan: ChainPlan,
    record: Any,
    numbers_per_layer: int,
    what: str,
    *,
    record_name: str,
    numbers_per_network: int = 0,
) -> Need:
    """The results a simulation keeps until it returns: ``numbers_per_layer`` values per
    network and layer (time) that ``record`` keeps (``numbers_per_network`` more per network)."""
    recorded = count_recorded(record, plan.steps)
    itemsize = torch.finfo(plan.dtype).bits // 8
    numbers = numbers_per_layer * recorded + numbers_per_network
    total = plan.samples * (numbers * itemsize + 8) + recorded * _LAYER_BOOKKEEPING
    plural = "s" if recorded != 1 else ""
    description = (
        f"{what} ({format_value(plan.samples)} networks x {format_value(recorded)} "
        f"{plan.step_name}{plural} x {numbers_per_layer} values, {str(plan.dtype)[6:]})"
    )
    if plan.samples >= recorded:
        return Need("samples", plan.samples, total, description, "use fewer samples")
    hint = f"record fewer {plan.step_name}s (a list of them)"
    return Need(record_name, record, total, description, hint)


def check_run(
    plan: ChainPlan,
    progress: Any,
    context: str,
    held: Need,
    *,
    stacklevel: int,
    path_bytes: int = 0,
) -> None:
    """Before a simulation starts: the progress callback, the memory it must hold at once (the
    results, and the working memory of the smallest chunk that can run, or of the chunks
    ``chunk_size`` / ``memory_budget`` ask for) against what the device has, and a warning when
    it will take an hour or more (pointing ``stacklevel`` frames up from here, at the user's
    line). ``path_bytes`` per network are kept for a second, backward pass (the gradients)."""
    check_callback("progress", progress)
    step_parameter = "depth" if plan.step_name == "layer" else "steps"
    extra_bytes_per_sample, passes = path_bytes, 2 if path_bytes else 1
    blocks = plan.blocks(extra_bytes_per_sample)
    chunk = min(plan.samples, blocks.block_size * blocks.blocks_per_chunk)
    per_sample = plan.bytes_per_sample(extra_bytes_per_sample)
    what = f"the working memory of a chunk of {chunk} networks"
    if chunk > blocks.block_size:
        name = "chunk_size" if plan.chunk_size is not None else "memory_budget"
        value = plan.chunk_size if plan.chunk_size is not None else plan.memory_budget
        working = Need(name, value, chunk * per_sample, what, f"a smaller {name} uses less")
    elif extra_bytes_per_sample > per_sample - extra_bytes_per_sample:
        working = Need(step_parameter, plan.steps, chunk * per_sample, what + " (their paths)")
    elif plan.method == "weights":
        hint = "method='law' draws W_l phi(Y) exactly in law with O(width) memory"
        working = Need("width", plan.width, chunk * per_sample, what + " (their W_l)", hint)
    else:
        working = Need("width", plan.width, chunk * per_sample, what)
    check_memory(context, [held, working], plan.device)

    speed = rates(plan.device)
    n, k = plan.width, plan.inputs
    flops = 2 * n * n * k if plan.method == "weights" else 2 * n * k * k + k**3 + 10 * n * k
    work = plan.samples * plan.steps * passes
    chunks = math.ceil(blocks.n_blocks / blocks.blocks_per_chunk)
    seconds = (
        work * plan.numbers_per_sample() / speed.normals
        + work * flops / speed.flops
        + chunks * plan.steps * passes * speed.step_seconds
    )
    parameters = (
        f"samples={format_value(plan.samples)} x {step_parameter}={format_value(plan.steps)} "
        f"x width={format_value(n)}"
    )
    warn_if_slow(context, seconds, parameters, plan.device, stacklevel=stacklevel)
