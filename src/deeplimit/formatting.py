"""How numbers are written in tables, reports and the command line (one rule for all)."""

from __future__ import annotations


def compact_float(value: float, usual: str) -> str:
    """``value`` with three significant digits when it is very small (below 1e-3, not 0) or
    very large (1e5 or more), and in the format ``usual`` (``".4g"``, ``".4f"``) otherwise."""
    if value != 0 and (abs(value) < 1e-3 or abs(value) >= 1e5):
        return f"{value:.3g}"
    return format(value, usual)
