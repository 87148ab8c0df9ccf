"""Memory and time estimates made before a run starts.

An entry point lists what a run must hold at once (``Need``: the returned tensors, the working
memory of the smallest chunk that can run, the parameters of a batch of networks), each with
the argument that makes it large. ``check_memory`` refuses a run whose total exceeds the memory
available on its device with a ValueError naming that argument and the estimate, instead of an
allocator traceback minutes later; ``warn_if_slow`` warns (``RuntimeWarning``) when the
estimated time is an hour or more, before anything is computed.

Time estimates use deliberately fast rates (a well-equipped machine), so the time they give is
a lower bound: a warning means the run takes at least that long.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

__all__ = [
    "SLOW_SECONDS",
    "Need",
    "Rates",
    "available_memory",
    "check_memory",
    "format_bytes",
    "format_seconds",
    "format_value",
    "rates",
    "warn_if_slow",
]

SLOW_SECONDS = 3600.0
"""Runs estimated to take at least this long warn before they start."""


@dataclass(frozen=True)
class Rates:
    """Optimistic throughput of a device: standard normals drawn, floating-point operations and
    the fixed cost of one Python-level step (one layer of one chunk), per second."""

    normals: float
    flops: float
    step_seconds: float


_CPU = Rates(normals=4e8, flops=5e10, step_seconds=2e-5)
_CUDA = Rates(normals=2e10, flops=2e13, step_seconds=1e-5)


def rates(device: torch.device) -> Rates:
    return _CUDA if torch.device(device).type == "cuda" else _CPU


@dataclass(frozen=True)
class Need:
    """``bytes`` that must be held at once, because ``parameter`` is ``value``: ``what`` says
    what they are (``"the returned tensor (samples, width)"``), ``hint`` what to change."""

    parameter: str
    value: Any
    bytes: float
    what: str
    hint: str = ""


def _meminfo_available() -> int | None:
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def available_memory(device: Any = "cpu") -> int | None:
    """Bytes a run may still allocate on ``device`` (None when the system does not say).

    CPU: ``MemAvailable`` of ``/proc/meminfo`` (Linux), else free physical pages
    (``os.sysconf``); CUDA: the driver's free memory plus what PyTorch's cache holds unused.
    """
    device = torch.device(device)
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        cached = torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
        return int(free + max(cached, 0))
    available = _meminfo_available()
    if available is not None:
        return available
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (AttributeError, OSError, ValueError):
        return None


def format_bytes(count: float) -> str:
    """``8.0 TB``, ``512 MB``: decimal units, three significant digits."""
    for unit, size in (("PB", 1e15), ("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if count >= size:
            return f"{count / size:.3g} {unit}"
    return f"{count:.0f} B"


def format_seconds(seconds: float) -> str:
    """``42 s``, ``7.5 min``, ``5.6 h``, ``3.2 days``, ``1.4e+03 years``."""
    if seconds < 60:
        return f"{seconds:.2g} s"
    if seconds < 3600:
        return f"{seconds / 60:.2g} min"
    if seconds < 86400 * 2:
        return f"{seconds / 3600:.2g} h"
    if seconds < 86400 * 365 * 2:
        return f"{seconds / 86400:.3g} days"
    return f"{seconds / (86400 * 365):.3g} years"


def format_value(value: Any) -> str:
    """``10**12`` for round powers of ten, ``repr`` otherwise (for messages)."""
    if isinstance(value, int) and abs(value) >= 10**6:
        exponent = round(math.log10(abs(value)))
        if value == 10**exponent:
            return f"10**{exponent}"
    return repr(value)


def check_memory(context: str, needs: Sequence[Need], device: Any = "cpu") -> None:
    """Refuse a run that cannot fit: a ValueError naming the argument behind the largest
    need, the total estimate and the memory available on ``device``."""
    total = float(sum(need.bytes for need in needs))
    available = available_memory(device)
    if available is None or total <= available:
        return
    need = max(needs, key=lambda n: n.bytes)
    others = total - need.bytes
    rest = f" plus {format_bytes(others)} for the rest" if others >= 0.01 * total else ""
    hint = f"; {need.hint}" if need.hint else ""
    raise ValueError(
        f"{need.parameter}={format_value(need.value)} cannot run: {context} needs about "
        f"{format_bytes(need.bytes)} for {need.what}{rest}, but {format_bytes(available)} of "
        f"memory is available on {torch.device(device).type}{hint}"
    )


def warn_if_slow(
    context: str, seconds: float, parameters: str, device: Any = "cpu", *, stacklevel: int = 3
) -> None:
    """Warn (``RuntimeWarning``) before a run estimated to take an hour or more.

    ``parameters`` names the arguments that make it long (``"samples=10000 x depth=10**6"``).
    """
    if seconds < SLOW_SECONDS:
        return
    warnings.warn(
        f"{parameters}: {context} will take at least about {format_seconds(seconds)} on "
        f"{torch.device(device).type} (estimate before starting); interrupt it and reduce "
        "them for a quicker run",
        RuntimeWarning,
        stacklevel=stacklevel,
    )
