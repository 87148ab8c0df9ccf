"""Exceptions of deeplimit and the checks that raise them.

Bad input raises ``ValueError`` naming the parameter, the value and what is allowed, so that
the CLI can print it as one line. A simulation whose numbers overflow raises
``NumericalBlowupError``, one whose numbers underflow ``NumericalUnderflowError`` (both
``NumericalError``), with the count of affected paths and the first layer it happened at.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable
from typing import Any

__all__ = [
    "NumericalBlowupError",
    "NumericalError",
    "NumericalUnderflowError",
    "check_choice",
    "check_finite_float",
    "check_int",
    "check_positive_float",
]


class NumericalError(FloatingPointError):
    """A simulation produced numbers the floating-point type cannot represent.

    ``paths`` is the number of affected sample paths, ``total`` the number simulated and
    ``first_layer`` the first layer (or step) at which it happened.
    """

    what = "became non-representable"
    default_hint = "try a smaller input scale or depth"

    def __init__(
        self, paths: int, total: int, first_layer: int, context: str = "", hint: str = ""
    ) -> None:
        self.paths = paths
        self.total = total
        self.first_layer = first_layer
        message = f"{paths} of {total} sample paths {self.what}, the first at layer {first_layer}"
        if context:
            message += f" ({context})"
        message += (
            "; " + (hint or self.default_hint) + (", or on_nonfinite='warn' to keep the paths")
        )
        super().__init__(message)


class NumericalBlowupError(NumericalError):
    """A simulation produced NaN or inf values (overflow)."""

    what = "became non-finite (NaN or inf)"


class NumericalUnderflowError(NumericalError):
    """A simulation's values fell below the smallest normal number of their dtype (underflow):
    they lost their relative precision or became exact zeros, which are not collapse."""

    what = "underflowed (their norm fell below the smallest normal number of the dtype)"
    default_hint = "try a larger input scale or a smaller depth"


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def check_int(name: str, value: Any, minimum: int = 1, maximum: int | None = None) -> int:
    """Return ``value`` as an int, or raise a ValueError naming ``name`` and the range."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    allowed = (
        f"an integer >= {minimum}" if maximum is None else (f"an integer in [{minimum}, {maximum}]")
    )
    if not _is_int(value):
        raise ValueError(f"{name} must be {allowed}, got {value!r}")
    value = int(value)
    if value < minimum or (maximum is not None and value > maximum):
        raise ValueError(f"{name} must be {allowed}, got {value}")
    return value


def check_finite_float(name: str, value: Any) -> float:
    """Return ``value`` as a finite float, or raise a ValueError naming ``name``."""
    try:
        result = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a finite number, got {value!r}") from None
    if not math.isfinite(result):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    return result


def check_positive_float(name: str, value: Any, *, allow_zero: bool = False) -> float:
    """Return ``value`` as a finite float > 0 (or >= 0), or raise a ValueError."""
    result = check_finite_float(name, value)
    if result < 0 or (result == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be a finite number {bound}, got {value!r}")
    return result


def check_choice(name: str, value: Any, allowed: Iterable[str]) -> str:
    """Return ``value`` if it is one of ``allowed``, else raise a ValueError listing them."""
    allowed = tuple(allowed)
    if value not in allowed:
        choices = ", ".join(repr(a) for a in allowed)
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")
    return value
