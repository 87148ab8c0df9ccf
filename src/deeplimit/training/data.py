"""Training data: the synthetic task of the authors' experiments and validation of user data.

The task of chizat.md §1.5 (Julia 2026 notebook): ``N = 10`` samples, ``d_in = d_out = 5``,
inputs and targets i.i.d. ``N(0, 1)``, full batch. The authors seed Julia's generator
(``Random.seed!(1)``), which NumPy cannot reproduce; ``synthetic_task(seed)`` draws the same law
from ``numpy.random.default_rng(seed)`` (``X`` first, then ``Y``), so its numbers differ from
the authors' but the task is the same.

Data are kept as float64 CPU tensors; the model casts them to its dtype and device.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..errors import check_int, check_real_array
from .defaults import DEFAULT_DATA_SEED

__all__ = ["DEFAULT_DATA_SEED", "TrainingData", "resolve_data", "synthetic_task"]


@dataclass(frozen=True)
class TrainingData:
    """A full-batch regression task: inputs ``x`` of shape ``(N, d_in)``, targets ``y`` of
    shape ``(N, d_out)`` (float64, CPU)."""

    x: Tensor
    y: Tensor
    description: str = "user data"

    def __post_init__(self) -> None:
        x, y = _as_matrix("data X", self.x), _as_matrix("data Y", self.y)
        if x.shape[0] != y.shape[0]:
            raise ValueError(
                f"data X and Y must have the same number of rows N, got X {tuple(x.shape)} and "
                f"Y {tuple(y.shape)}"
            )
        object.__setattr__(self, "x", x)
        object.__setattr__(self, "y", y)

    @property
    def samples(self) -> int:
        return int(self.x.shape[0])

    @property
    def input_dim(self) -> int:
        return int(self.x.shape[1])

    @property
    def output_dim(self) -> int:
        return int(self.y.shape[1])

    def null_risk(self) -> float:
        """Risk of the zero predictor, ``mean(y^2)``: a scale for the divergence threshold."""
        return float((self.y**2).mean())


def synthetic_task(
    seed: int = DEFAULT_DATA_SEED,
    *,
    samples: int = 10,
    input_dim: int = 5,
    output_dim: int = 5,
) -> TrainingData:
    """The synthetic task of chizat.md §1.5: ``X ~ N(0,1)^{N x d_in}``, ``Y ~ N(0,1)^{N x d_out}``.

    Drawn from ``numpy.random.default_rng(seed)``, ``X`` first then ``Y``.
    """
    x, y = gaussian_task(seed, samples, input_dim, output_dim)
    return TrainingData(
        x=x,
        y=y,
        description=(
            f"synthetic task (chizat.md §1.5): N={samples}, d_in={input_dim}, "
            f"d_out={output_dim}, X, Y iid N(0,1), numpy seed {seed}"
        ),
    )


def gaussian_task(
    seed: int, samples: int, input_dim: int, output_dim: int, *, tokens: int | None = None
) -> tuple[Tensor, Tensor]:
    """``X``, ``Y`` with i.i.d. ``N(0, 1)`` entries, of shapes ``(N, d_in)``, ``(N, d_out)``
    (``(N, T, .)`` with ``tokens=T``), drawn from ``numpy.random.default_rng(seed)``, ``X``
    first: the synthetic task of chizat.md §1.5 and its sequence version."""
    seed = check_int("data_seed", seed, minimum=0)
    leading = (check_int("samples", samples, minimum=1),)
    if tokens is not None:
        leading += (check_int("tokens", tokens, minimum=1),)
    input_dim = check_int("input_dim", input_dim, minimum=1)
    output_dim = check_int("output_dim", output_dim, minimum=1)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((*leading, input_dim))
    y = rng.standard_normal((*leading, output_dim))
    return torch.from_numpy(x), torch.from_numpy(y)


def _as_matrix(name: str, value: Any) -> Tensor:
    if isinstance(value, Tensor) and value.dtype == torch.float64 and value.device.type == "cpu":
        array = value.detach()
    else:
        array = torch.from_numpy(check_real_array(name, value, allow_inf=True, allow_nan=True))
    if array.ndim != 2:
        raise ValueError(
            f"{name} must be a 2-D array of shape (N, {'d_in' if name == 'data X' else 'd_out'}), "
            f"got shape {tuple(array.shape)}"
        )
    if array.shape[0] < 1 or array.shape[1] < 1:
        raise ValueError(
            f"{name} must have at least one row and one column, got {tuple(array.shape)}"
        )
    if not bool(torch.isfinite(array).all()):
        raise ValueError(f"{name} must contain only finite numbers (no NaN or inf)")
    return array.contiguous()


def resolve_data(data: Any, *, data_seed: int = DEFAULT_DATA_SEED) -> TrainingData:
    """Turn ``None`` (the synthetic task), a ``TrainingData`` or a pair ``(X, Y)`` into data.

    ``X`` must have shape ``(N, d_in)`` and ``Y`` shape ``(N, d_out)`` with the same ``N``;
    anything else raises a ``ValueError`` naming ``data``.
    """
    if data is None:
        return synthetic_task(data_seed)
    if isinstance(data, TrainingData):
        return data
    if not isinstance(data, (tuple, list)) or len(data) != 2:
        raise ValueError(
            "data must be None (the synthetic task of chizat.md §1.5) or a pair (X, Y) of "
            f"arrays of shapes (N, d_in), (N, d_out); got {type(data).__name__}"
        )
    x = _as_matrix("data X", data[0])
    y = _as_matrix("data Y", data[1])
    if x.shape[0] != y.shape[0]:
        raise ValueError(
            f"data X and Y must have the same number of rows N, got X {tuple(x.shape)} and "
            f"Y {tuple(y.shape)}"
        )
    return TrainingData(
        x=x, y=y, description=f"user data: N={x.shape[0]}, d_in={x.shape[1]}, d_out={y.shape[1]}"
    )
