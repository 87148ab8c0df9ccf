"""Fixed input and output maps with coupled rows (chizat.md §1.2, §2.4(1)).

``W_in`` (``D x d_in``, entries ``N(0, 1/d_in)``) and ``W_out`` (``D x d_out``, entries
``N(0, d_out)``) are drawn row by row in blocks of ``EMBEDDING_BLOCK_ROWS`` rows; block ``b`` of
a map comes from a generator seeded by ``derive_seed(embedding_seed, stream, b)``. Row ``i``
therefore depends only on ``(embedding_seed, i)`` (and the number of columns): models of
different ``D`` drawn with the same seed share the leading rows of the largest draw — the
coupling the authors use to compare a size-``D`` model with a larger reference. The numbers are
drawn in float64 on the CPU and then cast, so every dtype and device sees the same maps.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from ..errors import check_int
from ..rng import derive_seed

__all__ = ["EMBEDDING_BLOCK_ROWS", "coupled_embeddings", "coupled_rows", "resolve_embeddings"]

EMBEDDING_BLOCK_ROWS = 64
_STREAM_W_IN = 0x57_49  # "WI"
_STREAM_W_OUT = 0x57_4F  # "WO"


def coupled_rows(rows: int, columns: int, *, seed: int, stream: int) -> Tensor:
    """``rows x columns`` standard normals (float64, CPU) whose row ``i`` depends only on
    ``(seed, stream, i, columns)``."""
    blocks = []
    for block in range(-(-rows // EMBEDDING_BLOCK_ROWS)):
        generator = torch.Generator().manual_seed(derive_seed(seed, stream, block))
        blocks.append(
            torch.randn(EMBEDDING_BLOCK_ROWS, columns, generator=generator, dtype=torch.float64)
        )
    return torch.cat(blocks)[:rows].contiguous()


def coupled_embeddings(
    embedding_dim: int,
    input_dim: int,
    output_dim: int,
    *,
    embedding_seed: int = 0,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float64,
) -> tuple[Tensor, Tensor]:
    """``(W_in, W_out)`` of shapes ``(D, d_in)``, ``(D, d_out)``: entries ``N(0, 1/d_in)`` and
    ``N(0, d_out)`` (Julia 2026 code, chizat.md §1.2), rows coupled across ``D``."""
    embedding_dim = check_int("embedding_dim", embedding_dim, minimum=1)
    input_dim = check_int("input_dim", input_dim, minimum=1)
    output_dim = check_int("output_dim", output_dim, minimum=1)
    embedding_seed = check_int("embedding_seed", embedding_seed, minimum=0)
    w_in = coupled_rows(embedding_dim, input_dim, seed=embedding_seed, stream=_STREAM_W_IN)
    w_out = coupled_rows(embedding_dim, output_dim, seed=embedding_seed, stream=_STREAM_W_OUT)
    w_in = w_in / math.sqrt(input_dim)
    w_out = w_out * math.sqrt(output_dim)
    return w_in.to(device=device, dtype=dtype), w_out.to(device=device, dtype=dtype)


def _check_map(name: str, value: Any, rows: int, columns: int, what: str) -> Tensor:
    matrix = torch.as_tensor(value).detach().to("cpu", torch.float64)
    if tuple(matrix.shape) != (rows, columns):
        raise ValueError(
            f"{name} must have shape (embedding_dim, {what}) = ({rows}, {columns}), "
            f"got {tuple(matrix.shape)}"
        )
    if not bool(torch.isfinite(matrix).all()):
        raise ValueError(f"{name} must contain only finite numbers")
    return matrix


def resolve_embeddings(
    embeddings: Any,
    embedding_dim: int,
    input_dim: int,
    output_dim: int,
    *,
    embedding_seed: int,
    device: torch.device,
    dtype: torch.dtype,
) -> tuple[Tensor, Tensor]:
    """``None``: the coupled Gaussian maps; or a user pair ``(W_in, W_out)`` checked against
    ``(D, d_in)`` and ``(D, d_out)``."""
    if embeddings is None:
        return coupled_embeddings(
            embedding_dim,
            input_dim,
            output_dim,
            embedding_seed=embedding_seed,
            device=device,
            dtype=dtype,
        )
    if not isinstance(embeddings, (tuple, list)) or len(embeddings) != 2:
        raise ValueError(
            "embeddings must be None (coupled Gaussian maps) or a pair (W_in, W_out) of shapes "
            f"(embedding_dim, d_in), (embedding_dim, d_out); got {type(embeddings).__name__}"
        )
    w_in = _check_map("embeddings W_in", embeddings[0], embedding_dim, input_dim, "d_in")
    w_out = _check_map("embeddings W_out", embeddings[1], embedding_dim, output_dim, "d_out")
    return w_in.to(device=device, dtype=dtype), w_out.to(device=device, dtype=dtype)
