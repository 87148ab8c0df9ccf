"""Which layers (ResNet) or times (SDE) a simulation keeps.

``record`` is ``"last"`` (no layer axis in the result), ``"all"`` (every layer ``0..L`` or every
grid time), one integer layer / one float time (no layer axis), or a sequence of them (a layer
axis, even when the sequence has one element, as in numpy's ``a[3]`` versus ``a[[3]]``).
A layer listed twice fills both of its slots, as numpy's ``a[[3, 3]]`` does.
Only the recorded layers are kept in memory.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["Recording", "resolve_layers", "resolve_times", "slots_by_step"]


@dataclass(frozen=True)
class Recording:
    """Recorded step indices in the order asked, and whether to drop the layer axis."""

    steps: tuple[int, ...]
    squeeze: bool


def slots_by_step(steps: Sequence[int]) -> dict[int, list[int]]:
    """The output slots of every recorded step: ``(3, 5, 3)`` gives ``{3: [0, 2], 5: [1]}``,
    so that a step asked for twice fills both of its slots."""
    slots: dict[int, list[int]] = {}
    for slot, step in enumerate(steps):
        slots.setdefault(step, []).append(slot)
    return slots


def _is_sequence(record: Any) -> bool:
    return (isinstance(record, Sequence) and not isinstance(record, str)) or (
        hasattr(record, "__array__") and getattr(record, "ndim", 0) >= 1
    )


def _resolve(
    record: Any, steps: int, allowed: str, scalar: type, index: Callable[[Any], int]
) -> Recording:
    """``"last"``, ``"all"``, one ``scalar`` (no layer axis) or a sequence of them, each turned
    into a step index by ``index``; anything else is refused with ``allowed``."""
    if isinstance(record, str):
        if record == "last":
            return Recording((steps,), True)
        if record == "all":
            return Recording(tuple(range(steps + 1)), False)
        raise ValueError(f"{allowed}, got {record!r}")
    if isinstance(record, scalar) and not isinstance(record, bool):
        values, squeeze = [record], True
    elif _is_sequence(record):
        values, squeeze = list(record), False
        if not values:
            raise ValueError(f"{allowed}, got an empty list")
    else:
        raise ValueError(f"{allowed}, got {record!r}")
    return Recording(tuple(index(value) for value in values), squeeze)


def resolve_layers(record: Any, depth: int, name: str = "record") -> Recording:
    """Validate ``record`` for a ResNet of depth ``depth`` (layers ``0..depth``); ``name`` is
    the argument's name in messages."""
    allowed = f"{name} must be 'last', 'all', a layer index in [0, {depth}] or a list of them"

    def index(layer: Any) -> int:
        if isinstance(layer, float) and layer.is_integer():
            layer = int(layer)
        if (
            not isinstance(layer, numbers.Integral)
            or isinstance(layer, bool)
            or not 0 <= layer <= depth
        ):
            raise ValueError(f"{allowed}, got {layer!r} in {name}")
        return int(layer)

    return _resolve(record, depth, allowed, numbers.Integral, index)


def resolve_times(record: Any, steps: int, name: str = "record") -> Recording:
    """Validate ``record`` for an SDE on ``[0, 1]`` with ``steps`` Euler steps.

    Times must lie on the grid ``j / steps`` (to 1e-9 relative), so that no interpolation is
    silently applied.
    """
    allowed = (
        f"{name} must be 'last', 'all', a time in [0, 1] on the grid j/steps "
        f"(steps={steps}) or a list of such times"
    )

    def index(time: Any) -> int:
        if not isinstance(time, numbers.Real) or isinstance(time, bool) or not 0.0 <= time <= 1.0:
            raise ValueError(f"{allowed}, got {time!r} in {name}")
        position = float(time) * steps
        step = round(position)
        if not math.isclose(position, step, rel_tol=1e-9, abs_tol=1e-9):
            raise ValueError(
                f"{allowed}; time {time!r} is not a multiple of 1/steps = {1 / steps:g} "
                "(pick steps so that every recorded time lies on the grid)"
            )
        return int(step)

    return _resolve(record, steps, allowed, numbers.Real, index)
