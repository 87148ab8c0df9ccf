"""The initial state ``Y_0``: given directly (``y0``) or drawn as ``W_in x`` (hayou.md §1).

Shapes follow one convention throughout deeplimit: samples first, then layers (or times),
then inputs, then width. One input is a vector (``y0`` of shape ``(width,)`` or ``x`` of shape
``(d,)``); ``k`` inputs are a matrix (``(k, width)`` or ``(k, d)``) and give an input axis of
length ``k`` in every result, even when ``k = 1``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from ..errors import check_real_array

__all__ = ["InitialState", "resolve_initial_state"]


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


def _as_matrix(
    name: str, value: Any, dtype: torch.dtype, device: torch.device
) -> tuple[Tensor, bool]:
    array = torch.from_numpy(check_real_array(name, value))
    if array.ndim == 0:
        array = array.reshape(1)
    if array.ndim not in (1, 2) or array.numel() == 0:
        raise ValueError(
            f"{name} must be one vector (shape (m,)) or k vectors (shape (k, m)), "
            f"got shape {tuple(array.shape)}"
        )
    squeeze = array.ndim == 1
    return array.reshape(-1, array.shape[-1]).to(device=device, dtype=dtype), squeeze


def resolve_initial_state(
    width: int, y0: Any, x: Any, dtype: torch.dtype, device: torch.device
) -> InitialState:
    """Validate the pair ``(y0, x)``: exactly one must be given, with matching shapes."""
    if (y0 is None) == (x is None):
        raise ValueError(
            "give exactly one of y0 (the initial state Y_0, shape (width,) or (k, width)) "
            "or x (network inputs, shape (d,) or (k, d), with Y_0 = W_in x)"
            + ("; got both" if y0 is not None else "; got neither")
        )
    if y0 is not None:
        values, squeeze = _as_matrix("y0", y0, dtype, device)
        if values.shape[1] != width:
            shape = tuple(values.shape[1:]) if squeeze else tuple(values.shape)
            raise ValueError(
                f"y0 must have shape (width,) = ({width},) or (k, {width}), got shape {shape}"
            )
        return InitialState("y0", values, squeeze)
    values, squeeze = _as_matrix("x", x, dtype, device)
    return InitialState("x", values, squeeze)
