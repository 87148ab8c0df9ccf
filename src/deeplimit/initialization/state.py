"""The initial state ``Y_0``: given directly (``y0``) or drawn as ``W_in x`` (hayou.md §1).

Shapes follow one convention throughout deeplimit: samples first, then layers (or times),
then inputs, then width. One input is a vector (``y0`` of shape ``(width,)`` or ``x`` of shape
``(d,)``); ``k`` inputs are a matrix (``(k, width)`` or ``(k, d)``) and give an input axis of
length ``k`` in every result, even when ``k = 1``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor

if TYPE_CHECKING:
    from .sampling import Start

__all__ = ["InitialState", "initial_state", "resolve_initial_state"]


@dataclass(frozen=True)
class InitialState:
    """A validated ``y0`` or ``x``, as a ``(k, m)`` tensor plus how to read it.

    ``values`` holds ``y0`` (``m = width``) when ``kind == "y0"`` and the inputs ``x``
    (``m = d``) when ``kind == "x"``; ``squeeze`` is True when one vector was given, so results
    drop the input axis.
    """

    kind: str
    values: Tensor
    squeeze: bool

    @property
    def inputs(self) -> int:
        return int(self.values.shape[0])

    @property
    def input_dim(self) -> int:
        return int(self.values.shape[1])

    def draw(self, width: int, samples: int, normals: Tensor | None) -> Tensor:
        """``Y_0`` for ``samples`` networks, shape ``(samples, k, width)``.

        For ``x`` each network has its own ``W_in = normals / sqrt(d)`` (``normals`` of shape
        ``(samples, width, d)``, standard Gaussian), shared by its ``k`` inputs; ``y0`` is
        broadcast and ``normals`` ignored.
        """
        if self.kind == "y0":
            return self.values.expand(samples, -1, -1).clone()
        assert normals is not None
        return torch.einsum("swd,kd->skw", normals, self.values) / self.input_dim**0.5

    def describe(self) -> dict[str, Any]:
        return {self.kind: self.values.detach().cpu().numpy().tolist(), "squeeze": self.squeeze}


def initial_state(
    width: int, start: Start, dtype: torch.dtype, device: torch.device
) -> InitialState:
    """A validated ``Start`` as a ``(k, m)`` tensor; a given ``y0`` must have ``width``
    entries per input."""
    values = torch.from_numpy(np.array(start.values))  # writable: a Start keeps read-only arrays
    squeeze = values.ndim == 1
    values = values.reshape(-1, values.shape[-1]).to(device=device, dtype=dtype)
    if start.kind == "y0" and values.shape[1] != width:
        shape = tuple(values.shape[1:]) if squeeze else tuple(values.shape)
        raise ValueError(
            f"y0 must have shape (width,) = ({width},) or (k, {width}), got shape {shape}"
        )
    return InitialState(start.kind, values, squeeze)


def resolve_initial_state(
    width: int, y0: Any, x: Any, dtype: torch.dtype, device: torch.device
) -> InitialState:
    """Validate the pair ``(y0, x)``: exactly one must be given (as for ``Start``), with
    matching shapes."""
    from .sampling import Start

    return initial_state(width, Start(x=x, y0=y0), dtype, device)
