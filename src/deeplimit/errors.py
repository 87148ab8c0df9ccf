"""Exceptions of deeplimit and the checks that raise them.

Bad input raises ``ValueError`` naming the parameter, the value and what is allowed, so that
the CLI can print it as one line. A simulation whose numbers overflow raises
``NumericalBlowupError``, one whose numbers underflow ``NumericalUnderflowError`` (both
``NumericalError``), with the count of affected paths and the first layer it happened at.
"""

from __future__ import annotations

import errno
import math
import numbers
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np


__all__ = [
    "NumericalBlowupError",
    "NumericalError",
    "NumericalUnderflowError",
    "StoreFullError",
    "StudyDivergedError",
    "check_bool",
    "check_callback",
    "check_choice",
    "check_finite_float",
    "check_int",
    "check_positive_float",
    "check_real_array",
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


def _short(value: Any, limit: int = 60) -> str:
    """``repr(value)`` on one line, cut to ``limit`` characters (for messages)."""
    text = " ".join(repr(value).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


class NumericalBlowupError(NumericalError):
    """A simulation produced NaN or inf values (overflow)."""

    what = "became non-finite (NaN or inf)"


class NumericalUnderflowError(NumericalError):
    """A simulation's values fell below the smallest normal number of their dtype (underflow):
    they lost their relative precision or became exact zeros, which are not collapse."""

    what = "underflowed (their norm fell below the smallest normal number of the dtype)"
    default_hint = "try a larger input scale or a smaller depth"


class StudyDivergedError(FloatingPointError):
    """A study (an experiment's point) diverged: a training run or a limit blew up, so the
    numbers it asks for do not exist. ``experiment``, ``key`` (its store key) and ``reason``."""

    def __init__(self, experiment: str, key: str, reason: str, *, recorded: bool = True) -> None:
        self.experiment = experiment
        self.key = key
        self.reason = reason
        where = f"; recorded as diverged in the result store (key {key})" if recorded else ""
        super().__init__(f"{experiment} diverged: {reason}{where}")


def _size(count: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(count) < 1024 or unit == "TiB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    return f"{count} B"  # pragma: no cover


class StoreFullError(OSError):
    """The file system of a result store ran out of space (or quota) while a point was
    written. What was half-written is removed and the point's lock released, so running the
    same command again, once space is freed, resumes where it stopped."""

    def __init__(self, store: str, free_bytes: int | None, writing: str = "") -> None:
        self.store = str(store)
        self.free_bytes = free_bytes
        self.writing = writing
        free = "unknown space" if free_bytes is None else _size(free_bytes)
        what = f" while writing {writing}" if writing else ""
        message = (
            f"the result store {self.store!r} is full: {free} free on its file system{what}; "
            "free some space (or choose another --store) and run the same command again: "
            "finished points are kept"
        )
        super().__init__(errno.ENOSPC, message)
        self.message = message

    def __str__(self) -> str:
        return self.message

    def __reduce__(self) -> Any:  # pickled across worker processes with its own arguments
        return (type(self), (self.store, self.free_bytes, self.writing))


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _not_a_real_number(value: Any) -> str | None:
    """Why ``value`` is not a real number ("a bool", "a string", "complex"), or None.

    ``float()`` accepts ``True``, ``"0.5"`` and (with a warning) numpy complex scalars, silently
    turning a slip into a number; these are refused by name instead.
    """
    import numpy as np  # here, not at module level: the CLI loads this module for --help

    dtype = getattr(value, "dtype", None)
    if dtype is not None and not isinstance(dtype, np.dtype):  # a torch tensor
        name = str(dtype)
        if "bool" in name:
            return "a bool"
        if "complex" in name:
            return "complex"
        return None
    if isinstance(value, (bool, np.bool_)) or (dtype is not None and dtype.kind == "b"):
        return "a bool"
    if isinstance(value, (str, bytes)) or (dtype is not None and dtype.kind in "USO"):
        return "a string" if not isinstance(value, bytes) else "bytes"
    if (isinstance(value, numbers.Complex) and not isinstance(value, numbers.Real)) or (
        dtype is not None and dtype.kind == "c"
    ):
        return "complex"
    return None


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
    """Return ``value`` as a finite float, or raise a ValueError naming ``name``.

    Booleans, strings and complex numbers are refused (``float(True)`` is 1.0,
    ``float("0.5")`` is 0.5: a slip that would otherwise run as a number).
    """
    problem = _not_a_real_number(value)
    if problem is not None:
        raise ValueError(f"{name} must be a finite real number, got {problem}: {_short(value)}")
    try:
        result = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a finite number, got {_short(value)}") from None
    if not math.isfinite(result):
        raise ValueError(f"{name} must be a finite number, got {_short(value)}")
    return result


def check_positive_float(name: str, value: Any, *, allow_zero: bool = False) -> float:
    """Return ``value`` as a finite float > 0 (or >= 0), or raise a ValueError."""
    result = check_finite_float(name, value)
    if result < 0 or (result == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be a finite number {bound}, got {value!r}")
    return result


def check_real_array(
    name: str, value: Any, *, allow_inf: bool = False, allow_nan: bool = False
) -> np.ndarray:
    """``value`` (a number, nested lists, a numpy array or a torch tensor) as a float64 numpy
    array, or a ValueError naming ``name``: strings, booleans, complex numbers and ragged lists
    are refused, and so are NaN and infinities (unless ``allow_nan`` / ``allow_inf``)."""
    import numpy as np

    shown = value
    if hasattr(value, "detach"):  # a torch tensor: to the CPU, keeping its dtype for the check
        problem = _not_a_real_number(value)
        value = value.detach().cpu()
        if problem is None:
            value = value.double().numpy()
    else:
        original = value
        try:
            value = np.asarray(value)
        except (TypeError, ValueError):
            raise ValueError(
                f"{name} must be an array of real numbers with equal-length rows, "
                f"got {_short(value)}"
            ) from None
        problem = _not_a_real_number(value)
        if problem is None and value.dtype.kind not in "iuf":
            problem = f"dtype {value.dtype}"
        if problem is None and isinstance(original, (list, tuple)):  # may mix bools in
            for item in np.ravel(np.asarray(original, dtype=object)):
                problem = _not_a_real_number(item)
                if problem is not None:
                    break
    if problem is not None:
        raise ValueError(f"{name} must be an array of real numbers, got {problem}: {_short(shown)}")
    array = np.asarray(value, dtype=np.float64)
    if allow_nan and allow_inf:
        return array
    bad = np.isnan(array) if allow_inf else ~np.isfinite(array)
    if allow_nan:
        bad &= ~np.isnan(array)
    if bad.any():
        count = int(bad.sum())
        what = "NaN" if allow_inf else "inf" if allow_nan else "NaN or inf"
        raise ValueError(
            f"{name} must be {'free of NaN' if allow_inf else 'finite'}, got {count} {what} "
            f"entr{'y' if count == 1 else 'ies'}"
        )
    return array


def check_bool(name: str, value: Any) -> bool:
    """``value`` if it is ``True`` or ``False`` (numpy bools too), else a ValueError."""
    import numpy as np

    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    raise ValueError(f"{name} must be True or False, got {_short(value)}")


def check_callback(name: str, value: Any) -> Callable[..., Any] | None:
    """``value`` if it is None or callable, else a ValueError."""
    if value is None or callable(value):
        return value
    raise ValueError(
        f"{name} must be None or a callable such as progress(done, total), got {_short(value)}"
    )


def check_choice(name: str, value: Any, allowed: Iterable[str]) -> str:
    """Return ``value`` if it is one of ``allowed``, else raise a ValueError listing them."""
    allowed = tuple(allowed)
    if not isinstance(value, str) or value not in allowed:
        choices = ", ".join(repr(a) for a in allowed)
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")
    return value
