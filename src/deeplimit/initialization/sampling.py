"""How to simulate, and from where: the two small objects every random-ResNet call shares.

``Sampling`` is the strategy object (diffrax's ``SaveAt`` idea): how many networks, which seed,
which exact sampler, what to record, on which device and dtype, in which chunks. ``Start`` is
the starting point, one argument: inputs ``x`` (``Y_0 = W_in x``, drawn per network) or a
given initial state ``y0``. Both are frozen and validated when they are built, so a bad value
is refused with a ValueError naming the parameter before anything runs.

The defaults below are the only ones: ``RandomResNet``, ``ResNetSDE`` and the functions
``sample_resnet``, ``sample_sde``, ``observe_resnet``, ``observe_sde``,
``collapse_probability`` and ``gradient_norms`` all read them from here.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ..devices import resolve_device, resolve_dtype
from ..errors import check_callback, check_choice, check_int, check_real_array
from .chain import DEFAULT_MEMORY_BUDGET, ProgressCallback
from .fused import FUSED, Fused

__all__ = [
    "DEFAULT_DEVICE",
    "DEFAULT_DTYPE",
    "DEFAULT_MEMORY_BUDGET",
    "DEFAULT_METHOD",
    "DEFAULT_ON_NONFINITE",
    "DEFAULT_RECORD",
    "DEFAULT_SEED",
    "SAMPLING_METHODS",
    "Sampling",
    "Start",
    "as_sampling",
    "as_start",
]

# "auto": exact in law wherever deeplimit has an exact-in-law sampler (every state and
# observable, and the gradient norms of one input); explicit weights otherwise (the gradient
# norms of several inputs). Both are exact; "law" is O(n k^2) per layer, "weights" O(n^2 k).
# "fused" (opt-in, ``fused.py``): the law sampler compiled by torch.compile, many layers per
# kernel call with the normals generated inside; states only.
SAMPLING_METHODS = ("law", "weights", "auto", FUSED)
DEFAULT_METHOD = "auto"
DEFAULT_SEED = 0
DEFAULT_DEVICE = "cpu"
DEFAULT_DTYPE = torch.float64
DEFAULT_ON_NONFINITE = "raise"
# record=None means: the last layer (time 1) for states and observables; every layer for
# gradient norms, whose last layer is the fixed g_L and carries no information.
DEFAULT_RECORD = {"state": "last", "observables": "last", "gradients": "all"}
_ON_NONFINITE = ("raise", "warn", "ignore")


def resolve_method(method: str, quantity: str, inputs: int) -> str:
    """The concrete sampler (``"law"`` or ``"weights"``) for ``method``: ``"auto"`` takes the
    exact-in-law path wherever one exists, i.e. everywhere but the gradient norms of several
    inputs (the conditional law of ``W_l`` given ``W_l Phi`` is implemented for one input);
    the fused engine (``"fused"`` or a ``Fused``) is an engine of the law sampler."""
    if isinstance(method, Fused) or method == FUSED:
        return "law"
    if method != "auto":
        return method
    return "weights" if quantity == "gradients" and inputs > 1 else "law"


def _frozen_record(record: Any) -> Any:
    """``record`` as an immutable value, refusing what no recording can mean (the layers or
    times themselves are checked against the depth or the steps when a run starts)."""
    if record is None or isinstance(record, str):
        if record not in (None, "last", "all"):
            raise ValueError(
                f"record must be 'last', 'all', a layer (time) or a list of them, got {record!r}"
            )
        return record
    if isinstance(record, numbers.Real) and not isinstance(record, bool):
        return record
    if isinstance(record, (list, tuple)):
        return tuple(record)
    if hasattr(record, "__array__") and getattr(record, "ndim", 0) >= 1:
        return tuple(record.tolist())
    raise ValueError(
        f"record must be 'last', 'all', a layer (time) or a list of them, got {record!r}"
    )


@dataclass(frozen=True)
class Sampling:
    """How to simulate random ResNets and their SDE: a frozen, validated strategy object.

    ``samples``
        Independent networks (paths), ``>= 1``.
    ``seed``
        ``>= 0``; a seed gives the same numbers on the same device whatever ``chunk_size``.
    ``method``
        ``"auto"`` (default: exact in law wherever possible, see ``resolve_method``),
        ``"law"`` (the increment ``W_l phi(Y)`` drawn exactly in law, ``O(n k^2)``) or
        ``"weights"`` (explicit Gaussian ``W_l``, the reference path, ``O(n^2 k)``), or
        ``"fused"`` / ``Fused(layers_per_call=..., block_samples=...)``: the law sampler
        compiled by ``torch.compile``, many layers per kernel call with counter-based normals
        generated inside (opt-in; states only; the same law as ``"law"``, other numbers; see
        ``deeplimit.initialization.fused``).
    ``record``
        Which layers (ResNet) or times on the grid ``j/steps`` (SDE) to keep: ``"last"``,
        ``"all"``, one layer / time (no layer axis) or a list (a layer axis). ``None``
        (default): the last one for states and observables, all of them for gradient norms.
    ``dtype``, ``device``
        ``torch.float64`` (default) or ``torch.float32``; ``"cpu"`` (default) or ``"cuda[:i]"``.
    ``chunk_size``, ``memory_budget``
        Networks per chunk (rounded up to whole random blocks), by default as many as fit in
        ``memory_budget`` bytes (512 MiB) of working memory.
    ``on_nonfinite``
        ``"raise"`` (default), ``"warn"`` or ``"ignore"`` paths that overflow or underflow.
    ``progress``
        ``None`` or a callback ``progress(done, total)`` in network-layers.
    """

    samples: int
    seed: int = DEFAULT_SEED
    method: str | Fused = DEFAULT_METHOD
    record: Any = None
    dtype: Any = DEFAULT_DTYPE
    device: Any = DEFAULT_DEVICE
    chunk_size: int | None = None
    memory_budget: int = DEFAULT_MEMORY_BUDGET
    on_nonfinite: str = DEFAULT_ON_NONFINITE
    progress: ProgressCallback | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        put = object.__setattr__
        put(self, "samples", check_int("samples", self.samples, minimum=1))
        put(self, "seed", check_int("seed", self.seed, minimum=0))
        if not isinstance(self.method, Fused):
            check_choice("method", self.method, SAMPLING_METHODS)
        put(self, "record", _frozen_record(self.record))
        put(self, "dtype", resolve_dtype(self.dtype))
        put(self, "device", resolve_device(self.device))
        if self.chunk_size is not None:
            put(self, "chunk_size", check_int("chunk_size", self.chunk_size))
        put(self, "memory_budget", check_int("memory_budget", self.memory_budget, minimum=1))
        check_choice("on_nonfinite", self.on_nonfinite, _ON_NONFINITE)
        check_callback("progress", self.progress)

    def replace(self, **changes: Any) -> Sampling:
        """A copy with some fields changed (validated again)."""
        values = {name: getattr(self, name) for name in self.__dataclass_fields__}
        values.update(changes)
        return Sampling(**values)

    def record_for(self, quantity: str) -> Any:
        """``record``, or the default of ``quantity`` (see ``DEFAULT_RECORD``) when None."""
        return DEFAULT_RECORD[quantity] if self.record is None else self.record

    def as_dict(self) -> dict[str, Any]:
        """The settings, for provenance (the progress callback left out)."""
        return {
            "samples": self.samples,
            "seed": self.seed,
            "method": self.method if isinstance(self.method, str) else self.method.as_dict(),
            "record": list(self.record) if isinstance(self.record, tuple) else self.record,
            "dtype": str(self.dtype).removeprefix("torch."),
            "device": str(self.device),
            "chunk_size": self.chunk_size,
            "memory_budget": self.memory_budget,
            "on_nonfinite": self.on_nonfinite,
        }


def _start_array(name: str, value: Any) -> np.ndarray:
    array = check_real_array(name, value)
    if array.ndim == 0:
        array = array.reshape(1)
    if array.ndim not in (1, 2) or array.size == 0:
        raise ValueError(
            f"{name} must be one vector (shape (m,)) or k vectors (shape (k, m)), "
            f"got shape {tuple(array.shape)}"
        )
    array = array.copy()
    array.flags.writeable = False
    return array


@dataclass(frozen=True, eq=False)
class Start:
    """The starting point of the networks: exactly one of

    * ``x``: inputs, shape ``(d,)`` for one input or ``(k, d)`` for ``k`` inputs sharing the
      weights; each network draws ``Y_0 = W_in x`` with ``W_in`` entries ``N(0, 1/d)``;
    * ``y0``: the initial state ``Y_0`` itself, shape ``(width,)`` or ``(k, width)``.

    ``Start.inputs(x)`` and ``Start.state(y0)`` say which; wherever a ``Start`` is expected a
    plain array is taken as inputs ``x``. The values are copied and read-only.
    """

    x: Any = None
    y0: Any = None

    def __post_init__(self) -> None:
        if (self.y0 is None) == (self.x is None):
            raise ValueError(
                "give exactly one of y0 (the initial state Y_0, shape (width,) or (k, width)) "
                "or x (network inputs, shape (d,) or (k, d), with Y_0 = W_in x)"
                + ("; got both" if self.y0 is not None else "; got neither")
            )
        name = "x" if self.x is not None else "y0"
        object.__setattr__(self, name, _start_array(name, getattr(self, name)))

    @classmethod
    def inputs(cls, x: Any) -> Start:
        """Inputs ``x``: ``Y_0 = W_in x`` drawn with each network."""
        return cls(x=x)

    @classmethod
    def state(cls, y0: Any) -> Start:
        """A given initial state ``Y_0 = y0``, the same for every network."""
        return cls(y0=y0)

    @property
    def kind(self) -> str:
        """``"x"`` or ``"y0"``."""
        return "x" if self.x is not None else "y0"

    @property
    def values(self) -> np.ndarray:
        """The array given (``x`` or ``y0``), float64, read-only."""
        return self.x if self.x is not None else self.y0

    @property
    def count(self) -> int:
        """How many inputs (``k``): 1 for a vector."""
        return 1 if self.values.ndim == 1 else int(self.values.shape[0])

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Start):
            return NotImplemented
        return self.kind == other.kind and np.array_equal(self.values, other.values)

    def __hash__(self) -> int:
        return hash((self.kind, self.values.shape, self.values.tobytes()))

    def __repr__(self) -> str:
        return f"Start({self.kind}={self.values.tolist()!r})"


def as_start(start: Any, name: str = "start") -> Start:
    """``start`` if it is a ``Start``, else the inputs ``x = start`` (an array)."""
    if isinstance(start, Start):
        return start
    if start is None:
        raise ValueError(
            f"{name} must be a Start (Start.inputs(x) or Start.state(y0)) or an array of "
            "inputs x, got None"
        )
    return Start(x=start)


def as_sampling(sampling: Any) -> Sampling:
    """``sampling`` if it is a ``Sampling``, else ``Sampling(samples=sampling)`` (an int)."""
    if isinstance(sampling, Sampling):
        return sampling
    if isinstance(sampling, numbers.Integral) and not isinstance(sampling, bool):
        return Sampling(samples=int(sampling))
    raise TypeError(
        "sampling must be a Sampling(samples=..., seed=..., ...) or a number of samples, "
        f"got {type(sampling).__name__}"
    )
