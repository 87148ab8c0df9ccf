"""Attention heads as the hidden width: a residual block of ``M`` causal attention heads.

The papers' limits hold for any block ``sum_{j<=M} phi(h, z_j)`` whose unit ``z`` has a law
``mu_0`` not depending on ``(L, M)``; Chizat (chizat.md §1.1) names "the number of hidden units
or attention heads per layer" as ``M``. This module makes a head such a unit, in the units of
the 2LP block (``u, v`` entries ``N(0, D)``, pre-activations ``<u, h>/D``, ``h`` entries O(1)):

    states   h = (h^1 .. h^T) in R^{T x D}   (one sequence of T tokens; samples are sequences)
    query    Q_t = q h^t / D  in R^{d_k}     q: (d_k, D), entries N(0, D)
    key      K_s = k h^s / D  in R^{d_k}     k: (d_k, D), entries N(0, D)
    weights  A_ts = softmax_{s <= t}(<Q_t, K_s> / sqrt(d_k))        (causal)
    value    phi(h, z)^t = v sum_{s<=t} A_ts sigma(<u, h^s> / D)     u, v in R^D, entries N(0, D)

so a head has ``(2 d_k + 2) D`` parameters, O(D) for the fixed key-query dimension ``d_k``.
Each score is a sum of ``d_k`` products of O(1) numbers, divided by ``sqrt(d_k)``; the value is
a convex combination of 2LP-type activations, so a head's output has entries O(sqrt(D)) as a
2LP unit's (with one token, ``A = 1`` and the head *is* the 2LP unit ``v sigma(<u,h>/D)``).
Heads are summed into the residual stream with the same residual scale ``c`` (``alpha/(LM)``
for ``MeanFieldScaling``) and trained with the same raw learning rate as 2LP units.

Storage: the ``ResNet`` of ``model.py`` holds states ``(S, N T, D)`` (token rows of sequence
``n`` are ``n T .. n T + T - 1``); the block reshapes them to ``(S, N, T, D)``. The input map
``W_in`` and the readout act token-wise, and the risk averages over samples, tokens and output
coordinates. The adjoint is autograd, one layer at a time (``Block.backward``), checked against
finite differences in tests/test_attention.py.

``train_resnet(..., block="attention", key_dim=...)`` and ``TrainingProblem(D,
block="attention", key_dim=..., data=(X, Y))`` take sequence data ``X`` (N, T, d_in), ``Y``
(N, T, d_out) and return records with a token axis: ``embeddings`` (S, K+1, N, T, D),
``outputs`` (S, K+1, N, T, d_out) (``unflatten_tokens``).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from ..activations import parse_activation
from ..errors import check_int, check_real_array
from ..sizes import Need, check_memory
from .data import DEFAULT_DATA_SEED, TrainingData, gaussian_task
from .model import Block

__all__ = [
    "BLOCKS",
    "AttentionBlock",
    "SequenceData",
    "check_attention_memory",
    "resolve_sequence_data",
    "synthetic_sequence_task",
    "train_sequence_resnet",
    "unflatten_tokens",
]

BLOCKS = ("2lp", "attention")
"""Block names ``train_resnet(block=...)`` accepts besides a ``Block`` instance."""

DEFAULT_KEY_DIM = 4


class AttentionBlock(Block):
    """``M`` causal attention heads per layer over sequences of ``tokens`` tokens (module
    docstring); ``activation`` is ``sigma`` of the value path (default tanh, as the 2LP).

    ``antithetic=True`` draws heads in pairs ``(q, k, u, v)``, ``(q, k, u, -v)`` (``M`` even):
    the branch is exactly zero at initialization and each head keeps the law ``mu_0``.
    """

    parameter_names = ("q", "k", "u", "v")
    thread_safe_init = True

    def __init__(
        self,
        tokens: int,
        key_dim: int = DEFAULT_KEY_DIM,
        activation: Any = "tanh",
        *,
        antithetic: bool = False,
    ) -> None:
        self.tokens = check_int("tokens (sequence length T)", tokens, minimum=1)
        self.key_dim = check_int("key_dim", key_dim, minimum=1)
        self.activation = parse_activation(activation)
        self.antithetic = bool(antithetic)
        mask = torch.ones(self.tokens, self.tokens, dtype=torch.bool).tril()
        self._masks: dict[torch.device, Tensor] = {torch.device("cpu"): mask}

    @property
    def spec(self) -> str:
        suffix = ", antithetic" if self.antithetic else ""
        return f"attention(T={self.tokens}, d_k={self.key_dim}, {self.activation.spec}{suffix})"

    def initialize_layer(
        self, generator: torch.Generator, hidden_width: int, embedding_dim: int
    ) -> dict[str, Tensor]:
        std = math.sqrt(embedding_dim)
        count = hidden_width
        if self.antithetic:
            if hidden_width % 2:
                raise ValueError(
                    "hidden_width must be even for antithetic heads (pairs (q, k, u, v), "
                    f"(q, k, u, -v)), got {hidden_width}"
                )
            count = hidden_width // 2

        def draw(*shape: int) -> Tensor:
            return torch.randn(*shape, generator=generator, dtype=torch.float64) * std

        q = draw(count, self.key_dim, embedding_dim)
        k = draw(count, self.key_dim, embedding_dim)
        u = draw(count, embedding_dim)
        v = draw(count, embedding_dim)
        if self.antithetic:
            q, k, u, v = torch.cat([q, q]), torch.cat([k, k]), torch.cat([u, u]), torch.cat([v, -v])
        return {"q": q, "k": k, "u": u, "v": v}

    def _mask(self, device: torch.device) -> Tensor:
        if device not in self._masks:
            self._masks[device] = self._masks[torch.device("cpu")].to(device)
        return self._masks[device]

    def attention_weights(self, h: Tensor, params: Mapping[str, Tensor]) -> Tensor:
        """``A`` of shape ``(S, M, N, T, T)`` (row ``t`` sums to one over ``s <= t``) for states
        ``h`` of shape ``(S, N T, D)``."""
        s, rows, d = h.shape
        t = self.tokens
        q, k = params["q"], params["k"]
        m, dk = q.shape[1], q.shape[2]
        n = rows // t

        def project(weights: Tensor) -> Tensor:  # (S, M, N, T, d_k)
            out = torch.bmm(h, weights.reshape(s, m * dk, d).transpose(1, 2)) / d
            return out.reshape(s, n, t, m, dk).permute(0, 3, 1, 2, 4)

        scores = torch.matmul(project(q), project(k).transpose(-1, -2)) / math.sqrt(dk)
        scores = scores.masked_fill(~self._mask(h.device), float("-inf"))
        return torch.softmax(scores, dim=-1)

    def head_outputs(self, h: Tensor, params: Mapping[str, Tensor]) -> Tensor:
        """Each head's output ``phi(h, z_j)`` separately: ``(S, M, N, T, D)`` (for checks)."""
        mixed = self._mixed(h, params)  # (S, M, N, T)
        return mixed.unsqueeze(-1) * params["v"][:, :, None, None, :]

    def _mixed(self, h: Tensor, params: Mapping[str, Tensor]) -> Tensor:
        """``sum_s A_ts sigma(<u, h^s>/D)`` per head: ``(S, M, N, T)``."""
        s, rows, d = h.shape
        if rows % self.tokens:
            raise ValueError(
                f"the states have {rows} token rows, not a multiple of tokens={self.tokens}"
            )
        t = self.tokens
        m = params["u"].shape[1]
        value = self.activation.phi(torch.bmm(h, params["u"].transpose(1, 2)) / d)
        value = value.reshape(s, rows // t, t, m).permute(0, 3, 1, 2)  # (S, M, N, T)
        weights = self.attention_weights(h, params)
        return torch.matmul(weights, value.unsqueeze(-1)).squeeze(-1)

    def branch(self, h: Tensor, params: Mapping[str, Tensor]) -> Tensor:
        s, rows, _ = h.shape
        mixed = self._mixed(h, params)  # (S, M, N, T)
        m = mixed.shape[1]
        mixed = mixed.permute(0, 2, 3, 1).reshape(s, rows, m)
        return torch.bmm(mixed, params["v"])


# ----------------------------------------------------------------------------- sequence data


@dataclasses.dataclass(frozen=True)
class SequenceData:
    """Sequence regression data: ``x`` (N, T, d_in), ``y`` (N, T, d_out), float64 CPU
    (``description``: by default the shapes)."""

    x: Tensor
    y: Tensor
    description: str = ""

    def __post_init__(self) -> None:
        x = _sequence_array("data X", self.x, "d_in")
        y = _sequence_array("data Y", self.y, "d_out")
        if x.shape[:2] != y.shape[:2]:
            raise ValueError(
                f"data X and Y must have the same N and T, got X {tuple(x.shape)} and "
                f"Y {tuple(y.shape)}"
            )
        object.__setattr__(self, "x", x)
        object.__setattr__(self, "y", y)
        if not self.description:
            object.__setattr__(
                self,
                "description",
                f"user sequence data: N={x.shape[0]}, T={x.shape[1]}, d_in={x.shape[2]}, "
                f"d_out={y.shape[2]}",
            )

    @property
    def samples(self) -> int:
        return int(self.x.shape[0])

    @property
    def tokens(self) -> int:
        return int(self.x.shape[1])

    def flat(self) -> TrainingData:
        """Token rows ``(N T, d)``: sequence ``n`` is rows ``n T .. n T + T - 1``."""
        n, t = self.x.shape[:2]
        return TrainingData(
            x=self.x.reshape(n * t, -1).contiguous(),
            y=self.y.reshape(n * t, -1).contiguous(),
            description=self.description,
        )


def _sequence_array(name: str, value: Any, last: str) -> Tensor:
    if isinstance(value, Tensor) and value.dtype == torch.float64 and value.device.type == "cpu":
        array = value.detach()
        if not bool(torch.isfinite(array).all()):
            raise ValueError(f"{name} must contain only finite numbers (no NaN or inf)")
    else:
        array = torch.from_numpy(check_real_array(name, value))
    if array.ndim != 3:
        raise ValueError(
            f"{name} must be a 3-D array of shape (N, T, {last}) for block='attention' "
            f"(N sequences of T tokens), got shape {tuple(array.shape)}"
        )
    if min(array.shape) < 1:
        raise ValueError(f"{name} must have N, T, {last} >= 1, got shape {tuple(array.shape)}")
    return array.contiguous()


def synthetic_sequence_task(
    seed: int = DEFAULT_DATA_SEED,
    *,
    samples: int = 10,
    tokens: int = 4,
    input_dim: int = 5,
    output_dim: int = 5,
) -> SequenceData:
    """The synthetic task of chizat.md §1.5 with a token axis: ``X``, ``Y`` i.i.d. ``N(0, 1)``
    of shapes ``(N, T, d_in)``, ``(N, T, d_out)``, from ``numpy.random.default_rng(seed)``."""
    x, y = gaussian_task(seed, samples, input_dim, output_dim, tokens=tokens)
    return SequenceData(
        x,
        y,
        f"synthetic sequence task: N={samples}, T={tokens}, d_in={input_dim}, "
        f"d_out={output_dim}, X, Y iid N(0,1), numpy seed {seed}",
    )


def resolve_sequence_data(
    data: Any, *, data_seed: int = DEFAULT_DATA_SEED, tokens: int | None = None
) -> SequenceData:
    """``None`` (``synthetic_sequence_task(data_seed)``, of ``tokens`` tokens when given), a
    ``SequenceData`` or a pair ``(X, Y)`` of shapes ``(N, T, d_in)``, ``(N, T, d_out)``."""
    if data is None:
        if tokens is None:
            return synthetic_sequence_task(data_seed)
        return synthetic_sequence_task(data_seed, tokens=tokens)
    if isinstance(data, SequenceData):
        return data
    if not isinstance(data, (tuple, list)) or len(data) != 2:
        raise ValueError(
            "data must be None (a synthetic sequence task) or a pair (X, Y) of arrays of shapes "
            f"(N, T, d_in), (N, T, d_out) for block='attention'; got {type(data).__name__}"
        )
    return SequenceData(data[0], data[1])


def unflatten_tokens(result: Any, sequences: SequenceData) -> Any:
    """A training or limit result on the token rows of ``sequences`` with a token axis:
    ``(..., N T, d)`` -> ``(..., N, T, d)`` for ``outputs``, ``embeddings``, ``states``,
    ``adjoint``, and
    the data ``x``, ``y`` as sequences (a ``TrainingResult``)."""
    n, t = sequences.samples, sequences.tokens
    changes = {}
    for name in ("outputs", "embeddings", "states", "adjoint"):
        value = getattr(result, name, None)
        if value is not None:
            changes[name] = value.reshape(*value.shape[:-2], n, t, value.shape[-1])
    if hasattr(result, "x"):
        changes.update(x=sequences.x, y=sequences.y)
    return dataclasses.replace(result, **changes)


def check_attention_memory(
    context: str, block: AttentionBlock, networks: int, width: int, rows: int, device, dtype
) -> None:
    """The attention weights of one layer, held with their autograd graph (about four copies
    of ``(S, M, N, T, T)``), must fit in memory (``rows = N T`` token rows)."""
    weights = 4.0 * networks * width * rows * block.tokens
    check_memory(
        context,
        [Need("tokens", block.tokens, weights * torch.finfo(dtype).bits / 8, "attention weights")],
        device,
    )


def train_sequence_resnet(arguments: dict[str, Any]) -> Any:
    """``train_resnet(**arguments)`` (kept for callers of the former entry point of named
    blocks: ``train_resnet`` and ``TrainingProblem`` now take ``block="attention"`` and
    ``key_dim`` themselves)."""
    from .train import train_resnet

    return train_resnet(**arguments)
