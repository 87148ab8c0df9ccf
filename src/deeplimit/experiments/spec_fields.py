"""Reusable field types of experiment specs: one place for the checks and their messages.

A spec declares each field with a type from here, e.g. ``depth: PositiveInt = 16`` or
``dims: IncreasingInts = (8, 16, 32)``; the check runs when the spec is built and its error
names the field (``depth must be an integer >= 1, got 0``). Parametrized types are made by the
functions :func:`AtLeast` and :func:`Increasing`.
"""

from __future__ import annotations

import math
from typing import Annotated, Any

from pydantic import AfterValidator, ValidationInfo

__all__ = [
    "DTYPES",
    "ActivationSpec",
    "AtLeast",
    "DType",
    "Depths",
    "Device",
    "DistinctFloats",
    "Finite",
    "Increasing",
    "IncreasingFloats",
    "IncreasingInts",
    "Level",
    "NonNegativeInt",
    "NonZero",
    "Positive",
    "PositiveFloats",
    "PositiveInt",
    "Samples",
    "Seeds",
    "Widths",
]

DTYPES = ("float64", "float32")


def AtLeast(minimum: int) -> Any:
    """An integer field ``>= minimum``."""

    def check(value: int, info: ValidationInfo) -> int:
        if value < minimum:
            raise ValueError(f"{info.field_name} must be an integer >= {minimum}, got {value}")
        return value

    return Annotated[int, AfterValidator(check)]


NonNegativeInt = AtLeast(0)
PositiveInt = AtLeast(1)
Seeds = AtLeast(2)  # seed noise is estimated from at least two networks


def _positive(value: float, info: ValidationInfo) -> float:
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{info.field_name} must be a finite number > 0, got {value}")
    return value


def _finite(value: float, info: ValidationInfo) -> float:
    if not math.isfinite(value):
        raise ValueError(f"{info.field_name} must be a finite number, got {value}")
    return value


def _non_zero(value: float, info: ValidationInfo) -> float:
    if not math.isfinite(value) or value == 0:
        raise ValueError(f"{info.field_name} must be a finite non-zero number, got {value}")
    return value


def _level(value: float, info: ValidationInfo) -> float:
    if not 0 < value < 1:
        raise ValueError(f"{info.field_name} must be in (0, 1), got {value}")
    return value


def _dtype(value: str, info: ValidationInfo) -> str:
    if value not in DTYPES:
        raise ValueError(f"{info.field_name} must be one of {', '.join(DTYPES)}, got {value!r}")
    return value


def _device(value: str, info: ValidationInfo) -> str:
    from ..devices import check_device_name

    # its form only: whether it is available here is checked when the experiment runs, so
    # results computed on a GPU can be read, plotted and checked on a laptop
    check_device_name(value)
    return value


def _activation(value: str, info: ValidationInfo) -> str:
    from ..activations import parse_activation

    parse_activation(value)
    return value


Positive = Annotated[float, AfterValidator(_positive)]
Finite = Annotated[float, AfterValidator(_finite)]
NonZero = Annotated[float, AfterValidator(_non_zero)]
Level = Annotated[float, AfterValidator(_level)]  # a significance level in (0, 1)
DType = Annotated[str, AfterValidator(_dtype)]
Device = Annotated[str, AfterValidator(_device)]  # "cpu", "cuda", "cuda:1", ...
ActivationSpec = Annotated[str, AfterValidator(_activation)]  # a name parse_activation accepts


def Increasing(kind: type = int, *, minimum: float = 1, length: int = 3) -> Any:
    """A tuple of at least ``length`` distinct increasing values: integers ``>= minimum``
    (``kind=int``) or finite numbers ``> 0`` (``kind=float``)."""
    if kind is int:
        what = f"integers >= {minimum}"

        def bad(v: Any) -> bool:
            return v < minimum
    else:
        what = "finite numbers > 0"

        def bad(v: Any) -> bool:
            return not math.isfinite(v) or v <= 0

    words = {1: "one", 2: "two", 3: "three"}

    def check(value: tuple[Any, ...], info: ValidationInfo) -> tuple[Any, ...]:
        if len(value) < length or any(map(bad, value)) or list(value) != sorted(set(value)):
            raise ValueError(
                f"{info.field_name} must be at least {words.get(length, length)} distinct "
                f"increasing {what}, got {value}"
            )
        return value

    return Annotated[tuple[kind, ...], AfterValidator(check)]


IncreasingInts = Increasing(int)
IncreasingFloats = Increasing(float)
Depths = Increasing(int, length=2)  # the first is the 'small' depth, the last the 'large' one
Widths = Increasing(int, length=1)
Samples = AtLeast(100)


def _distinct(value: tuple[float, ...], info: ValidationInfo) -> tuple[float, ...]:
    if not value or len(set(value)) != len(value) or not all(map(math.isfinite, value)):
        raise ValueError(f"{info.field_name} must be distinct finite numbers, got {value}")
    return value


def _positive_all(value: tuple[float, ...], info: ValidationInfo) -> tuple[float, ...]:
    if not value or any(not math.isfinite(v) or v <= 0 for v in value):
        raise ValueError(f"{info.field_name} must be finite numbers > 0, got {value}")
    if len(set(value)) != len(value):
        raise ValueError(f"{info.field_name} must be distinct, got {value}")
    return value


DistinctFloats = Annotated[tuple[float, ...], AfterValidator(_distinct)]
PositiveFloats = Annotated[tuple[float, ...], AfterValidator(_positive_all)]
