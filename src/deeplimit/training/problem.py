"""One description of a training problem → the finite networks and their limit (chizat.md §1–§2).

``TrainingProblem`` holds everything but the shape of the networks and the seeds: the embedding
dimension ``D``, the data, the residual block (or its activation), the parametrization, the
number of GD steps, the input/output maps and the divergence threshold. It is immutable and
validated when it is built (a bad value raises a ``ValueError``/``TypeError`` naming it).

* ``problem.train(depth, hidden_width, seeds)`` trains ``seeds`` networks of shape
  ``(L, M, D)`` by full-batch GD (``TrainingResult``);
* ``problem.limit(method)`` computes their limit with a method object (``LimitResult``):

  ================  ==========================================================================
  ``Exact()``       exact fixed-``D`` Mean ODE, linear sigma (§2.4(2)); ``solver="span"``
                    (default: in the span of ``W_in, W_out``, cost independent of ``D``) or
                    ``"matrix"`` (the ``O(D^3)`` matrix ODE); ``depth=L``: the ``M -> infinity``
                    limit at depth ``L`` (``"exact-layers"``)
  ``Span()``        the span solver itself, also for ``D -> infinity`` (``infinite_dim=True``)
  ``Lazy()``        the lazy ODE (``alpha -> infinity`` at fixed ``lr``, §2.3), linear sigma
  ``Reference()``   seed mean of large reference networks, any block, with an error budget
  ``Particles()``   the same with antithetic units and depth extrapolation (§2.4(4))
  ================  ==========================================================================

  ``problem.limit()`` picks the exact and fastest method that applies (``default_method``):
  ``Exact()`` (span solver) for a linear 2LP block with ``MeanFieldScaling``, ``Lazy()`` with
  ``LazyScaling``, and otherwise, as no exact solver exists, ``Reference()`` networks — an
  *estimate* of the limit whose ``description`` and ``error_budget`` say so.

Results carry the problem they came from (``result.problem``, ``limit.problem``, and
``limit.strategy`` the method object), and ``limit_error(run, limit)`` refuses a run and a limit
of different problems. The function shorthands (``train_resnet``, ``mean_ode_limit``,
``exact_linear_limit``, ``span_linear_limit``, ``reference_limit``) build a ``TrainingProblem``
from their arguments (``problem_from_arguments``) and call these methods.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor

from ..activations import Linear
from ..devices import resolve_device, resolve_dtype
from ..errors import check_bool, check_choice, check_int, check_positive_float
from .attention import (
    AttentionBlock,
    check_attention_memory,
    resolve_sequence_data,
    unflatten_tokens,
)
from .data import TrainingData, resolve_data
from .defaults import (
    DEFAULT_ACTIVATION,
    DEFAULT_DATA_SEED,
    DEFAULT_EXPLOSION_FACTOR,
    DEFAULT_STEPS,
)
from .embeddings import resolve_embeddings
from .model import Block, ResNet, TwoLayerBlock, check_shape_arguments
from .scaling import LazyScaling, MeanFieldScaling, Scaling, resolve_scaling
from .train import (
    ON_DIVERGENCE,
    TrainingResult,
    _descend,
    build_resnet,
    check_training_size,
    seed_count,
)

__all__ = [
    "Exact",
    "Lazy",
    "LimitMethod",
    "Particles",
    "Reference",
    "Span",
    "TrainingProblem",
    "method_from_name",
    "problem_from_arguments",
    "resolve_block",
    "resolve_block_and_data",
    "scaling_from_arguments",
]

REFERENCE_SEED = 0x5EF  # default seed base of reference networks, apart from user runs
METHOD_NAMES = ("auto", "exact", "span", "reference", "particles")


# --------------------------------------------------------------------------------------------
# argument resolution shared by the object and the function shorthands


def resolve_block(
    activation: Any, block: Any, key_dim: Any = None, *, tokens: int | None = None
) -> Block:
    """The residual block: ``block`` (a ``Block``), the 2LP block ``TwoLayerBlock(activation)``
    (``block`` ``None`` or ``"2lp"``; ``activation=None``: ``DEFAULT_ACTIVATION``) or, for
    ``block="attention"`` and sequences of ``tokens`` tokens, ``AttentionBlock(tokens,
    key_dim, activation)`` (``key_dim=None``: 4). Giving a ``Block`` and an activation is an
    error, whatever their values (``activation=None`` means "not given"), and so is
    ``key_dim`` without ``block="attention"``."""
    from .attention import BLOCKS, DEFAULT_KEY_DIM

    if key_dim is not None and not (isinstance(block, str) and block == "attention"):
        what = "None (the 2LP block)" if block is None else repr(block)
        if isinstance(block, Block):
            what = type(block).__name__
        raise ValueError(f"key_dim applies to block='attention' only, got block={what}")
    if isinstance(block, str):
        if block not in BLOCKS:
            raise ValueError(
                f"block must be a Block instance, None or one of {', '.join(map(repr, BLOCKS))}"
                f", got {block!r}"
            )
        sigma = DEFAULT_ACTIVATION if activation is None else activation
        if block == "2lp":
            return TwoLayerBlock(sigma)
        if tokens is None:
            raise ValueError(
                "block='attention' needs sequences to know T: give data=(X, Y) of shapes "
                "(N, T, d_in), (N, T, d_out) to train_resnet or TrainingProblem, or pass "
                "AttentionBlock(tokens, key_dim) here"
            )
        key_dim = DEFAULT_KEY_DIM if key_dim is None else key_dim
        return AttentionBlock(tokens, check_int("key_dim", key_dim, minimum=1), sigma)
    if block is None:
        return TwoLayerBlock(DEFAULT_ACTIVATION if activation is None else activation)
    if not isinstance(block, Block):
        raise ValueError(
            "block must be a Block instance, None or one of '2lp', 'attention', got "
            f"{type(block).__name__}"
        )
    if activation is not None:
        raise ValueError("give either block or activation, not both (the block has its own)")
    return block


def resolve_block_and_data(
    activation: Any, block: Any, key_dim: Any, data: Any, data_seed: int
) -> tuple[Block, TrainingData, Any]:
    """``(block, data, sequences)`` of a problem: attention heads (``block="attention"`` or an
    ``AttentionBlock``) on sequences (``None``: ``synthetic_sequence_task(data_seed)`` with the
    block's ``T``; ``(X, Y)`` of shapes ``(N, T, d_in)``, ``(N, T, d_out)``; a
    ``SequenceData``) train on their token rows ``data`` (``sequences.flat()``) and keep
    ``sequences``; any other block (or an ``AttentionBlock`` on token rows given as 2-D data)
    has ``sequences=None``."""
    named = isinstance(block, str) and block == "attention"
    given = isinstance(block, AttentionBlock)
    if not (named or (given and (data is None or _is_sequence_data(data)))):
        return (
            resolve_block(activation, block, key_dim),
            resolve_data(data, data_seed=data_seed),
            None,
        )
    sequences = resolve_sequence_data(
        data, data_seed=data_seed, tokens=block.tokens if given else None
    )
    resolved = resolve_block(activation, block, key_dim, tokens=sequences.tokens)
    if resolved.tokens != sequences.tokens:
        raise ValueError(
            f"data X has T={sequences.tokens} tokens per sequence but the AttentionBlock "
            f"expects tokens={resolved.tokens}"
        )
    return resolved, sequences.flat(), sequences


def _is_sequence_data(data: Any) -> bool:
    """Whether ``data`` are sequences: a ``SequenceData`` or a pair whose ``X`` is 3-D."""
    from .attention import SequenceData

    if isinstance(data, SequenceData):
        return True
    if not isinstance(data, (tuple, list)) or len(data) != 2:
        return False
    try:
        return int(getattr(data[0], "ndim", None) or np.ndim(data[0])) == 3
    except (TypeError, ValueError):
        return False


def scaling_from_arguments(scaling: Any, alpha: Any, lr: Any) -> Any:
    """``scaling`` (one ``Scaling`` or a sequence of them, one per network), or
    ``MeanFieldScaling(alpha, lr)`` when it is ``None``. ``alpha``/``lr`` are ``None`` when not
    given: any explicit value next to a ``scaling`` is an error, even the default one."""
    if scaling is None:
        kwargs = {k: v for k, v in (("alpha", alpha), ("lr", lr)) if v is not None}
        return MeanFieldScaling(**kwargs)
    if alpha is not None or lr is not None:
        raise ValueError(
            "give either scaling or alpha/lr, not both (alpha and lr only build the default "
            "MeanFieldScaling(alpha, lr))"
        )
    if isinstance(scaling, (list, tuple)):
        if not scaling:
            raise ValueError("scaling must be one Scaling or a non-empty sequence, got []")
        return tuple(resolve_scaling(s) for s in scaling)
    return resolve_scaling(scaling)


def problem_from_arguments(arguments: Mapping[str, Any]) -> TrainingProblem:
    """The ``TrainingProblem`` described by a function's arguments (``locals()`` of a shorthand):
    the keys it knows are taken (``embedding_dim``, ``data``, ``activation``, ``block``,
    ``scaling``, ``alpha``, ``lr``, ``steps``, ``embedding_seed``, ``embeddings``,
    ``data_seed``, ``explosion_factor``), the others ignored."""
    known = {k: arguments[k] for k in _PROBLEM_ARGUMENTS if k in arguments}
    return TrainingProblem(known.pop("embedding_dim"), **known)


_PROBLEM_ARGUMENTS = (
    "embedding_dim",
    "data",
    "activation",
    "block",
    "key_dim",
    "scaling",
    "alpha",
    "lr",
    "steps",
    "embedding_seed",
    "embeddings",
    "data_seed",
    "explosion_factor",
)


def _block_key(block: Block, *, for_limit: bool) -> str:
    """What identifies a block; for a limit the antithetic pairing of 2LP units does not matter
    (each unit still has law mu_0, chizat.md §2.4(4))."""
    if isinstance(block, TwoLayerBlock):
        return block.activation.spec if for_limit else block.spec.removeprefix("2LP(")[:-1]
    return block.spec


TRAINING_OPTIONS = (
    "seed",
    "device",
    "dtype",
    "record_movement",
    "record_layers",
    "on_divergence",
    "record_adjoint",
)


def training_options(arguments: Mapping[str, Any]) -> dict[str, Any]:
    """The options of ``TrainingProblem.train`` (``TRAINING_OPTIONS``) among a function's
    arguments (``locals()`` of ``train`` or ``train_resnet``)."""
    return {name: arguments[name] for name in TRAINING_OPTIONS}


# --------------------------------------------------------------------------------------------
# the problem


@dataclass(frozen=True, eq=False, init=False)
class TrainingProblem:
    """A training problem of chizat.md §1.2 without its depth, width and seeds.

    ``TrainingProblem(embedding_dim, *, data=None, activation=None, block=None, scaling=None,
    alpha=None, lr=None, steps=10, embedding_seed=0, embeddings=None, data_seed=1,
    explosion_factor=1e6)``:

    embedding_dim:
        ``D >= 1``.
    data:
        ``None`` (the synthetic task of §1.5, numpy seed ``data_seed``), ``(X, Y)`` of shapes
        ``(N, d_in)``, ``(N, d_out)``, or a ``TrainingData``; for attention heads, sequences
        ``(X, Y)`` of shapes ``(N, T, d_in)``, ``(N, T, d_out)`` or a ``SequenceData``
        (``None``: ``synthetic_sequence_task(data_seed)``, ``T = 4``).
    activation, block, key_dim:
        sigma of the 2LP block ``v sigma(<u, h>/D)`` (default ``"tanh"``), or another ``Block``
        (not both); ``block="attention"``: ``M`` causal attention heads per layer with
        key-query dimension ``key_dim`` (default 4) and sigma on their value path
        (``training/attention.py``); ``block="2lp"``: the 2LP block by name.
    scaling, alpha, lr:
        the parametrization: a ``Scaling`` (or one per network, for ``train`` only), or
        ``MeanFieldScaling(alpha, lr)`` (defaults ``alpha = 1``, ``lr = 0.5``); not both.
    steps:
        ``K >= 0`` full-batch GD steps.
    embedding_seed, embeddings:
        the coupled Gaussian maps ``W_in, W_out`` of seed ``embedding_seed``, or a given pair.
    explosion_factor:
        a run diverges when its loss exceeds this times ``max(R_0, mean(y^2))``.

    Stored resolved: ``data`` is a ``TrainingData``, ``block`` a ``Block``, ``scaling`` a
    ``Scaling`` (or a tuple of them); ``activation``, ``alpha``, ``lr`` read them back. Two
    problems are equal when they describe the same task (``differences`` lists what differs).
    Attention heads on sequences train on their token rows (``data``, ``N T`` rows) and keep
    the sequences (``sequences``, a ``SequenceData``; ``tokens`` is ``T``): their training
    records and limits get a token axis (``embeddings`` ``(S, K+1, N, T, D)``); copy such a
    problem with ``problem.replace`` (``dataclasses.replace`` passes the token rows alone).
    """

    embedding_dim: int
    data: TrainingData
    block: Block
    sequences: Any = dataclasses.field(init=False, compare=False)
    scaling: Any
    steps: int
    embedding_seed: int
    embeddings: tuple[Tensor, Tensor] | None
    data_seed: int
    explosion_factor: float

    def __init__(
        self,
        embedding_dim: int,
        *,
        data: Any = None,
        activation: Any = None,
        block: Block | str | None = None,
        scaling: Scaling | Sequence[Scaling] | None = None,
        alpha: float | None = None,
        lr: float | None = None,
        steps: int = DEFAULT_STEPS,
        embedding_seed: int = 0,
        embeddings: Any = None,
        data_seed: int = DEFAULT_DATA_SEED,
        explosion_factor: float = DEFAULT_EXPLOSION_FACTOR,
        key_dim: int | None = None,
    ) -> None:
        put = object.__setattr__
        embedding_dim = check_int("embedding_dim", embedding_dim, minimum=1)
        put(self, "embedding_dim", embedding_dim)
        put(self, "steps", check_int("steps", steps, minimum=0))
        put(self, "embedding_seed", check_int("embedding_seed", embedding_seed, minimum=0))
        put(self, "data_seed", check_int("data_seed", data_seed, minimum=0))
        resolved, dataset, sequences = resolve_block_and_data(
            activation, block, key_dim, data, self.data_seed
        )
        put(self, "data", dataset)
        put(self, "block", resolved)
        put(self, "sequences", sequences)
        put(self, "scaling", scaling_from_arguments(scaling, alpha, lr))
        put(self, "explosion_factor", check_positive_float("explosion_factor", explosion_factor))
        if embeddings is not None:  # checked against (D, d_in), (D, d_out), kept float64 CPU
            embeddings = resolve_embeddings(
                embeddings,
                embedding_dim,
                dataset.input_dim,
                dataset.output_dim,
                embedding_seed=self.embedding_seed,
                device=torch.device("cpu"),
                dtype=torch.float64,
            )
        put(self, "embeddings", embeddings)

    # -- reading -------------------------------------------------------------------------------

    @property
    def activation(self) -> Any:
        """sigma of the 2LP block (``None`` for another block)."""
        return getattr(self.block, "activation", None)

    @property
    def tokens(self) -> int | None:
        """``T`` of a problem on sequences (attention heads), else ``None``."""
        return None if self.sequences is None else self.sequences.tokens

    @property
    def alpha(self) -> float | None:
        """``alpha`` of a ``MeanFieldScaling`` (``None`` for another scaling)."""
        return self.scaling.alpha if isinstance(self.scaling, MeanFieldScaling) else None

    @property
    def lr(self) -> float | None:
        """``lr`` of a ``MeanFieldScaling`` or ``LazyScaling`` (``None`` otherwise)."""
        scaling = self.scaling
        return scaling.lr if isinstance(scaling, (MeanFieldScaling, LazyScaling)) else None

    def maps(self, *, device: Any = "cpu", dtype: Any = torch.float64) -> tuple[Tensor, Tensor]:
        """``(W_in, W_out)`` of shapes ``(D, d_in)``, ``(D, d_out)``."""
        return resolve_embeddings(
            self.embeddings,
            self.embedding_dim,
            self.data.input_dim,
            self.data.output_dim,
            embedding_seed=self.embedding_seed,
            device=resolve_device(device),
            dtype=resolve_dtype(dtype),
        )

    def __repr__(self) -> str:
        scaling = self.scaling
        scaling_text = (
            repr(scaling) if not isinstance(scaling, tuple) else (f"({len(scaling)} scalings)")
        )
        maps = "given" if self.embeddings is not None else f"embedding_seed={self.embedding_seed}"
        return (
            f"TrainingProblem(embedding_dim={self.embedding_dim}, block={self.block.spec}, "
            f"scaling={scaling_text}, steps={self.steps}, data=<{self.data.description}>, "
            f"maps: {maps}, explosion_factor={self.explosion_factor:g})"
        )

    def replace(self, **changes: Any) -> TrainingProblem:
        """A copy with some arguments changed; ``activation`` replaces the block (attention
        heads keep their other settings, as with ``key_dim``) and ``alpha``/``lr`` the scaling
        (a ``MeanFieldScaling`` keeps the other of the two)."""
        arguments: dict[str, Any] = {
            "data": self.data if self.sequences is None else self.sequences,
            "block": self.block,
            "scaling": self.scaling,
            "steps": self.steps,
            "embedding_seed": self.embedding_seed,
            "embeddings": self.embeddings,
            "data_seed": self.data_seed,
            "explosion_factor": self.explosion_factor,
        }
        block = self.block
        if isinstance(block, AttentionBlock) and "block" not in changes:
            if {"activation", "key_dim"} & set(changes):  # the same heads otherwise
                arguments["block"] = AttentionBlock(
                    block.tokens,
                    changes.pop("key_dim", block.key_dim),
                    changes.pop("activation", block.activation),
                    antithetic=block.antithetic,
                )
        elif "activation" in changes:
            arguments.pop("block")
        if ("alpha" in changes or "lr" in changes) and "scaling" not in changes:
            arguments.pop("scaling")
            if isinstance(self.scaling, MeanFieldScaling):
                changes.setdefault("alpha", self.scaling.alpha)
                changes.setdefault("lr", self.scaling.lr)
        if "data_seed" in changes and "data" not in changes:
            arguments.pop("data")
        arguments.update(changes)
        return TrainingProblem(arguments.pop("embedding_dim", self.embedding_dim), **arguments)

    def differences(self, other: TrainingProblem, *, for_limit: bool = False) -> list[str]:
        """What differs between two problems, one ``"name: mine vs theirs"`` per item (names:
        ``embedding_dim``, ``data``, ``activation`` or ``block``, ``alpha``, ``lr``,
        ``relative_lrs`` or ``scaling``, ``steps``, ``embedding_seed`` or ``embeddings``).
        ``for_limit``: ignore what a limit does not depend on (antithetic 2LP units)."""
        if not isinstance(other, TrainingProblem):
            raise TypeError(f"other must be a TrainingProblem, got {type(other).__name__}")
        found: list[str] = []

        def note(name: str, mine: Any, theirs: Any) -> None:
            if mine != theirs:
                found.append(f"{name}: {mine} vs {theirs}")

        note("embedding_dim", self.embedding_dim, other.embedding_dim)
        if not (
            self.data.x.shape == other.data.x.shape
            and self.data.y.shape == other.data.y.shape
            and torch.equal(self.data.x, other.data.x)
            and torch.equal(self.data.y, other.data.y)
        ):
            found.append(f"data: <{self.data.description}> vs <{other.data.description}>")
        both_2lp = isinstance(self.block, TwoLayerBlock) and isinstance(other.block, TwoLayerBlock)
        note(
            "activation" if both_2lp else "block",
            _block_key(self.block, for_limit=for_limit),
            _block_key(other.block, for_limit=for_limit),
        )
        a, b = self.scaling, other.scaling
        if isinstance(a, MeanFieldScaling) and isinstance(b, MeanFieldScaling):
            note("alpha", a.alpha, b.alpha)
            note("lr", a.lr, b.lr)
            note("relative_lrs", dict(a.relative_lrs), dict(b.relative_lrs))
        else:
            note("scaling", a, b)
        note("steps", self.steps, other.steps)
        if self.embeddings is None and other.embeddings is None:
            note("embedding_seed", self.embedding_seed, other.embedding_seed)
        elif not _same_maps(self.maps(), other.maps()):
            found.append("embeddings: the maps W_in, W_out differ")
        return found

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, TrainingProblem):
            return NotImplemented
        return not self.differences(other)

    __hash__ = None  # type: ignore[assignment]  # holds tensors

    # -- the finite networks -------------------------------------------------------------------

    def build(
        self,
        depth: int,
        hidden_width: int,
        seeds: int | Sequence[int] = 1,
        *,
        seed: int = 0,
        device: Any = "cpu",
        dtype: Any = torch.float64,
    ) -> ResNet:
        """``seeds`` freshly initialized networks of shape ``(depth, hidden_width, D)``
        (``build_resnet``)."""
        scaling = list(self.scaling) if isinstance(self.scaling, tuple) else self.scaling
        return build_resnet(
            depth,
            hidden_width,
            self.embedding_dim,
            input_dim=self.data.input_dim,
            output_dim=self.data.output_dim,
            block=self.block,
            scaling=scaling,
            seeds=seeds,
            seed=seed,
            embedding_seed=self.embedding_seed,
            embeddings=self.embeddings,
            device=device,
            dtype=dtype,
        )

    def train(
        self,
        depth: int,
        hidden_width: int,
        seeds: int | Sequence[int] = 1,
        *,
        seed: int = 0,
        device: Any = "cpu",
        dtype: Any = torch.float64,
        record_movement: bool = False,
        record_layers: bool = False,
        on_divergence: str = "warn",
        record_adjoint: bool = False,
    ) -> TrainingResult:
        """Train ``seeds`` networks of shape ``(L, M, D) = (depth, hidden_width,
        embedding_dim)`` for ``steps`` GD steps (see ``train_resnet`` for the model, the
        seeds and the records). ``record_movement``: unit-movement statistics (one more copy of
        the parameters, and time); ``record_layers``: every layer's state at every step;
        ``record_adjoint``: every layer's backward variable ``D dR/dh_l`` at every step. The
        result carries this problem (``result.problem``)."""
        return self._train(depth, hidden_width, seeds, "train", training_options(locals()))

    def _train(
        self, depth: Any, hidden_width: Any, seeds: Any, context: str, options: dict[str, Any]
    ) -> TrainingResult:
        """``train`` for ``context`` (the name bad sizes are reported under) with the options
        ``training_options`` picks."""
        seed, device, dtype, record_movement, record_layers, on_divergence, record_adjoint = (
            options[name] for name in TRAINING_OPTIONS
        )
        depth, hidden_width, _ = check_shape_arguments(depth, hidden_width, self.embedding_dim)
        record_movement = check_bool("record_movement", record_movement)
        record_layers = check_bool("record_layers", record_layers)
        record_adjoint = check_bool("record_adjoint", record_adjoint)
        check_choice("on_divergence", on_divergence, ON_DIVERGENCE)
        device, dtype = resolve_device(device), resolve_dtype(dtype)
        check_training_size(
            context,
            depth=depth,
            hidden_width=hidden_width,
            embedding_dim=self.embedding_dim,
            networks=seed_count(seeds),
            samples=self.data.samples,
            output_dim=self.data.output_dim,
            steps=self.steps,
            device=device,
            dtype=dtype,
            unit_numbers=len(self.block.parameter_names) * self.embedding_dim,
            record_movement=record_movement,
            record_layers=record_layers,
            record_adjoint=record_adjoint,
        )
        if isinstance(self.block, AttentionBlock):
            check_attention_memory(
                f"{context}(block='attention')",
                self.block,
                seed_count(seeds),
                hidden_width,
                self.data.samples,
                device,
                dtype,
            )
        model = self.build(depth, hidden_width, seeds, seed=seed, device=device, dtype=dtype)
        result = _descend(
            model,
            self.data,
            self.steps,
            record_movement,
            record_layers,
            self.explosion_factor,
            on_divergence,
            record_adjoint=record_adjoint,
        )
        return self._with_tokens(dataclasses.replace(result, problem=self))

    def _with_tokens(self, result: Any) -> Any:
        """A result on token rows with a token axis (problems on sequences)."""
        return result if self.sequences is None else unflatten_tokens(result, self.sequences)

    # -- the limit -----------------------------------------------------------------------------

    def default_method(self) -> LimitMethod:
        """The exact and fastest method that applies (see the module docstring)."""
        return method_from_name("auto", self)

    def limit(self, method: LimitMethod | None = None, *, on_divergence: str = "warn") -> Any:
        """The limit of this problem's networks after each GD step (``LimitResult``), by
        ``method`` (``Exact()``, ``Span()``, ``Lazy()``, ``Reference()``, ``Particles()``) or,
        with ``None``, by ``default_method()``. ``result.strategy`` is the method object used,
        ``result.method`` its short name, ``result.description`` says what was computed (for
        reference networks: an estimate, with its ``error_budget``), and
        ``result.details["chosen_automatically"]`` whether ``method`` was ``None``.

        Divergence, as in ``train``: the first step whose loss is non-finite or above
        ``explosion_factor * max(R_0, mean(y^2))`` sets ``diverged_at`` (later records NaN);
        ``on_divergence`` = ``"warn"`` | ``"ignore"`` | ``"raise"``.
        """
        check_choice("on_divergence", on_divergence, ON_DIVERGENCE)
        chosen = method is None
        if chosen:
            method = self.default_method()
        elif not isinstance(method, LimitMethod):
            raise TypeError(
                "method must be a limit method (Exact(), Span(), Lazy(), Reference(), "
                f"Particles()) or None for the default, got {type(method).__name__}"
            )
        result = self._with_tokens(method.compute(self, on_divergence))
        description = result.description
        if chosen:
            description += f" [chosen automatically: {method.reason(self)}]"
        return dataclasses.replace(
            result,
            problem=self,
            strategy=method,
            description=description,
            details={**result.details, "chosen_automatically": chosen},
        )


def _same_maps(a: tuple[Tensor, Tensor], b: tuple[Tensor, Tensor]) -> bool:
    """Whether two pairs of maps agree on their common rows (coupled maps: row ``i`` depends on
    the seed and ``i`` only), to float32 rounding (a float32 run stores rounded maps)."""
    rows = min(a[0].shape[0], b[0].shape[0])
    return all(
        x.shape[1] == y.shape[1] and torch.allclose(x[:rows], y[:rows], rtol=1e-6, atol=1e-8)
        for x, y in zip(a, b, strict=True)
    )


# --------------------------------------------------------------------------------------------
# limit methods (strategy objects)


class LimitMethod(ABC):
    """How to compute the limit of a ``TrainingProblem`` (a small immutable object)."""

    name: ClassVar[str] = ""

    @abstractmethod
    def compute(self, problem: TrainingProblem, on_divergence: str) -> Any:
        """The ``LimitResult`` of ``problem`` (without ``problem``/``strategy`` filled in)."""

    def reason(self, problem: TrainingProblem) -> str:
        """Why ``default_method`` picks this method for ``problem``."""
        return f"{self.name} is the method that applies"


def _check_intervals(intervals: Any) -> int:
    return check_int("intervals", intervals, minimum=4)


def _check_depth(depth: Any) -> int | None:
    return None if depth is None else check_int("depth", depth, minimum=1)


@dataclass(frozen=True)
class Exact(LimitMethod):
    """The exact fixed-``D`` Mean ODE limit for a linear sigma (chizat.md §2.4(2)), on
    ``intervals`` RK4 depth steps; ``depth=L`` gives instead the exact ``M -> infinity`` limit
    at depth ``L`` (method ``"exact-layers"``). ``solver``: ``"span"`` (default; the same
    numbers to rounding in the span of ``W_in, W_out``, at a cost independent of ``D``) or
    ``"matrix"`` (the ``O(D^3)`` matrix ODE). ``estimate_error``: the discretization budget
    ``|result(n) - result(n/2)| / 15`` (one more solve at half the intervals)."""

    intervals: int = 128
    depth: int | None = None
    estimate_error: bool = True
    solver: str = "span"

    name: ClassVar[str] = "exact"

    def __post_init__(self) -> None:
        put = object.__setattr__
        put(self, "intervals", _check_intervals(self.intervals))
        put(self, "depth", _check_depth(self.depth))
        put(self, "estimate_error", check_bool("estimate_error", self.estimate_error))
        check_choice("solver", self.solver, ("span", "matrix"))

    def compute(self, problem: TrainingProblem, on_divergence: str) -> Any:
        from .limit import exact_limit_of

        return exact_limit_of(problem, self, on_divergence)

    def reason(self, problem: TrainingProblem) -> str:
        return (
            f"sigma = {problem.activation.spec} is linear, so the limit is exact; the span solver "
            "is the fastest (cost independent of D)"
        )


@dataclass(frozen=True)
class Span(LimitMethod):
    """The span solver for a linear sigma (``span_linear_limit``): the exact limit in the span
    of ``W_in, W_out``, at fixed ``D`` or, with ``infinite_dim``, for ``D -> infinity`` (the
    coupled Gaussian maps); ``depth=L``: discrete layers (``M -> infinity`` at depth ``L``)."""

    infinite_dim: bool = False
    depth: int | None = None
    intervals: int = 128
    embedding_variances: tuple[float, float] | None = None

    name: ClassVar[str] = "span"
    lazy: ClassVar[bool] = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "infinite_dim", check_bool("infinite_dim", self.infinite_dim))
        object.__setattr__(self, "depth", _check_depth(self.depth))
        object.__setattr__(self, "intervals", _check_intervals(self.intervals))
        variances = self.embedding_variances
        if variances is not None:
            if not isinstance(variances, (tuple, list)) or len(variances) != 2:
                raise ValueError(
                    f"embedding_variances must be a pair (s_in, s_out), got {variances!r}"
                )
            variances = (
                check_positive_float("embedding_variances[0]", variances[0]),
                check_positive_float("embedding_variances[1]", variances[1]),
            )
            object.__setattr__(self, "embedding_variances", variances)

    def compute(self, problem: TrainingProblem, on_divergence: str) -> Any:
        from .limit import span_limit_of

        return span_limit_of(problem, self, on_divergence)


@dataclass(frozen=True)
class Lazy(Span):
    """The lazy ODE (chizat.md §2.3): the linearized limit ``alpha -> infinity`` at fixed
    ``lr``, for a linear sigma, by the span solver (any ``D``, or ``D -> infinity``). It is the
    limit of ``LazyScaling`` networks and the large-``alpha`` limit of ``MeanFieldScaling``."""

    lazy: ClassVar[bool] = True

    def reason(self, problem: TrainingProblem) -> str:
        return "linear sigma with LazyScaling: the lazy ODE is its exact limit"


@dataclass(frozen=True)
class Reference(LimitMethod):
    """An *estimate* of the Mean ODE limit for any block: the seed mean of ``seeds`` networks
    of shape ``(depth, hidden_width, D)`` with the same data, scaling and maps, plus ``seeds``
    at depth ``depth // 2`` for the budget (``reference_limit``). ``error_budget``: ``clt``
    (standard error of the mean), ``euler`` (the 1/L term), ``total``. ``antithetic``: unit
    pairs ``(u, +-v)`` (2LP); ``extrapolate``: ``2 mean_L - mean_{L/2}`` (cancels 1/L)."""

    depth: int = 64
    hidden_width: int = 1024
    seeds: int = 8
    seed: int = REFERENCE_SEED
    antithetic: bool = False
    extrapolate: bool = False
    device: Any = "cpu"
    dtype: Any = torch.float64

    name: ClassVar[str] = "reference"

    def __post_init__(self) -> None:
        put = object.__setattr__
        put(self, "depth", check_int("depth", self.depth, minimum=2))
        put(self, "hidden_width", check_int("hidden_width", self.hidden_width, minimum=1))
        put(self, "seeds", check_int("seeds", self.seeds, minimum=2))
        put(self, "seed", check_int("seed", self.seed, minimum=0))
        put(self, "antithetic", check_bool("antithetic", self.antithetic))
        put(self, "extrapolate", check_bool("extrapolate", self.extrapolate))
        put(self, "device", resolve_device(self.device))
        put(self, "dtype", resolve_dtype(self.dtype))

    @property
    def label(self) -> str:
        return "particles" if (self.antithetic and self.extrapolate) else "reference"

    def compute(self, problem: TrainingProblem, on_divergence: str) -> Any:
        from .limit import reference_limit_of

        return reference_limit_of(problem, self, on_divergence)

    def reason(self, problem: TrainingProblem) -> str:
        what = (
            f"sigma = {problem.activation.spec}"
            if isinstance(problem.block, TwoLayerBlock)
            else f"block {problem.block.spec}"
        )
        return (
            f"no exact solver exists for {what}: this is an estimate of the Neural Mean ODE "
            "limit by reference networks, accurate to its error_budget"
        )


@dataclass(frozen=True)
class Particles(Reference):
    """``Reference`` with antithetic units and depth extrapolation: the "particle solver"
    (chizat.md §2.4(4)); its budget is the CLT part alone."""

    antithetic: bool = True
    extrapolate: bool = True

    name: ClassVar[str] = "particles"


def method_from_name(
    name: str,
    problem: TrainingProblem,
    *,
    intervals: int = 128,
    depth: int | None = None,
    infinite_dim: bool = False,
    lazy: bool = False,
    reference_depth: int = 64,
    reference_width: int = 1024,
    reference_seeds: int = 8,
    reference_seed: int = REFERENCE_SEED,
    device: Any = "cpu",
    dtype: Any = torch.float64,
) -> LimitMethod:
    """The method object for a name of ``mean_ode_limit`` / ``deeplimit limit``: ``"exact"``,
    ``"span"`` (``Lazy`` with ``lazy``), ``"reference"``, ``"particles"`` or ``"auto"``:
    ``Exact`` for a linear 2LP block with ``MeanFieldScaling``, ``Lazy`` with ``LazyScaling``,
    else ``Reference`` (an estimate: no exact solver). Every option is checked, used or not."""
    check_choice("method", name, METHOD_NAMES)
    intervals = _check_intervals(intervals)
    depth = _check_depth(depth)
    infinite_dim = check_bool("infinite_dim", infinite_dim)
    lazy = check_bool("lazy", lazy)
    reference = dict(
        depth=check_int("reference_depth", reference_depth, minimum=2),
        hidden_width=check_int("reference_width", reference_width, minimum=1),
        seeds=check_int("reference_seeds", reference_seeds, minimum=2),
        seed=check_int("reference_seed", reference_seed, minimum=0),
        device=resolve_device(device),
        dtype=resolve_dtype(dtype),
    )
    if (infinite_dim or lazy) and name != "span":
        raise ValueError(f"infinite_dim and lazy need method 'span', got method {name!r}")
    if depth is not None and name in ("reference", "particles"):
        raise ValueError(f"depth applies to method 'exact' or 'span', got method {name!r}")
    if isinstance(problem.scaling, tuple):
        raise ValueError(
            "scaling must be one Scaling for a limit, got one per network "
            f"({len(problem.scaling)}): a limit describes one problem"
        )
    linear = isinstance(problem.block, TwoLayerBlock) and isinstance(problem.activation, Linear)
    if name == "auto":
        if linear and isinstance(problem.scaling, LazyScaling):
            return Lazy(infinite_dim=False, depth=depth, intervals=intervals)
        if linear:
            name = "exact"
        elif isinstance(problem.scaling, MeanFieldScaling) and depth is None:
            name = "reference"
        else:
            what = "depth" if depth is not None else "scaling"
            raise ValueError(
                f"no limit method applies to {what}: the block is {problem.block.spec} (not a "
                f"linear 2LP, so there is no exact solver) and the scaling {problem.scaling!r} "
                "(reference networks need a MeanFieldScaling and the ODE, not a depth)"
            )
    if name == "exact":
        return Exact(intervals=intervals, depth=depth)
    if name == "span":
        kind = Lazy if lazy else Span
        return kind(infinite_dim=infinite_dim, depth=depth, intervals=intervals)
    if name == "particles":
        return Particles(**reference)
    return Reference(**reference)
