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

from typing import Any

from torch import Tensor

from .chain import DEFAULT_MEMORY_BUDGET, ProgressCallback
from .sampling import (
    DEFAULT_DEVICE,
    DEFAULT_DTYPE,
    DEFAULT_ON_NONFINITE,
    DEFAULT_RECORD,
    DEFAULT_SEED,
)

__all__ = ["sample_sde"]


def sample_sde(
    width: int,
    activation: Any,
    *,
    steps: int,
    samples: int,
    y0: Any = None,
    x: Any = None,
    record: Any = DEFAULT_RECORD["state"],
    seed: int = DEFAULT_SEED,
    device: Any = DEFAULT_DEVICE,
    dtype: Any = DEFAULT_DTYPE,
    chunk_size: int | None = None,
    memory_budget: int = DEFAULT_MEMORY_BUDGET,
    on_nonfinite: str = DEFAULT_ON_NONFINITE,
    progress: ProgressCallback | None = None,
) -> Tensor:
    """Euler-Maruyama paths of the infinite-depth SDE on ``[0, 1]``.

    Shorthand for ``ResNetSDE(width, activation).sample(steps, Start(x=x, y0=y0),
    Sampling(samples, ..., record=record))``, with the same numbers.

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
    arguments = dict(locals())  # first: the arguments only
    from .random_resnet import shorthand

    return shorthand("sample_sde", arguments)
