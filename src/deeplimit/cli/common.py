"""Shared pieces of the command line: parsing vectors, progress bars, printing results."""

from __future__ import annotations

import contextlib
import functools
import json
from collections.abc import Callable, Iterator
from typing import Any

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from ..errors import NumericalError

console = Console()
error_console = Console(stderr=True)


def parse_vector(name: str, text: str) -> list[float]:
    """``"1,0.5,-2"`` -> ``[1.0, 0.5, -2.0]``; a clear ValueError otherwise."""
    try:
        values = [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise ValueError(
            f"{name} must be comma-separated numbers such as 1,0.5,-2, got {text!r}"
        ) from None
    if not values:
        raise ValueError(f"{name} must hold at least one number, got {text!r}")
    return values


def parse_vectors(name: str, texts: list[str] | None) -> Any:
    """Repeated ``--x 1,2 --x 3,4`` options: one vector -> 1-D, several -> 2-D (k inputs)."""
    if not texts:
        return None
    vectors = [parse_vector(name, text) for text in texts]
    if len({len(v) for v in vectors}) > 1:
        raise ValueError(
            f"every {name} must have the same length, got lengths {[len(v) for v in vectors]}"
        )
    import numpy as np

    return np.asarray(vectors[0] if len(vectors) == 1 else vectors)


def parse_record(text: str) -> Any:
    """``last`` / ``all`` / ``7`` / ``0,10,20`` (layers) or ``0.5,1`` (times)."""
    text = text.strip()
    if text in ("last", "all"):
        return text
    parts = [p.strip() for p in text.split(",") if p.strip()]
    try:
        values = [int(p) if p.lstrip("-").isdigit() else float(p) for p in parts]
    except ValueError:
        raise ValueError(
            f"record must be 'last', 'all' or comma-separated layers/times, got {text!r}"
        ) from None
    if len(values) == 1 and "," not in text:
        return values[0]
    return values


def parse_overrides(items: list[str] | None) -> dict[str, Any]:
    """``--set samples=5000 --set depths=[5,50]``: values parsed as JSON when they can be."""
    overrides: dict[str, Any] = {}
    for item in items or []:
        key, eq, value = item.partition("=")
        if not eq or not key.strip():
            raise ValueError(f"--set takes key=value (e.g. samples=5000), got {item!r}")
        try:
            overrides[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            overrides[key.strip()] = value
    return overrides


@contextlib.contextmanager
def progress_bar(description: str, enabled: bool = True) -> Iterator[Any]:
    """A rich progress bar; yields a ``callback(done, total)`` (or None when disabled)."""
    if not enabled:
        yield None
        return
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.percentage:>5.1f}%"),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=error_console, transient=True) as bar:
        task = bar.add_task(description, total=None)

        def callback(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield callback


def rows_table(title: str, rows: list[dict[str, Any]], columns: list[str] | None = None) -> Table:
    columns = columns or list(rows[0]) if rows else []
    table = Table(title=title, title_justify="left")
    for column in columns:
        table.add_column(column, justify="right")
    for row in rows:
        table.add_row(*(format_number(row.get(column)) for column in columns))
    return table


def format_number(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if value != 0 and (abs(value) < 1e-3 or abs(value) >= 1e5):
            return f"{value:.3g}"
        return f"{value:.4f}"
    return str(value)


def _one_line(error: Exception) -> str:
    """pydantic's ValidationError spans several lines: fold it into one."""
    errors = getattr(error, "errors", None)
    if callable(errors):
        try:
            parts = [
                f"{'.'.join(str(p) for p in e.get('loc', ())) or 'value'}: "
                f"{str(e.get('msg', '')).removeprefix('Value error, ')}"
                for e in errors()
            ]
            return "; ".join(parts)
        except Exception:  # pragma: no cover - fall back to the plain message
            pass
    return " ".join(str(error).split())


def guarded(command: Callable[..., Any]) -> Callable[..., Any]:
    """Turn library errors into one line on stderr: bad input exits 2, a numerical failure
    (overflow or underflow) exits 3."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except NumericalError as error:
            error_console.print(
                f"error: {_one_line(error)}", markup=False, highlight=False, soft_wrap=True
            )
            raise typer.Exit(code=3) from None
        except ValueError as error:
            error_console.print(
                f"error: {_one_line(error)}", markup=False, highlight=False, soft_wrap=True
            )
            raise typer.Exit(code=2) from None
        except OSError as error:  # a path that cannot be read or written: the user's input
            error_console.print(
                f"error: {_os_error(error)}", markup=False, highlight=False, soft_wrap=True
            )
            raise typer.Exit(code=2) from None

    return wrapper


def _os_error(error: OSError) -> str:
    """``cannot use 'PATH': Is a directory`` (the user's path, not a temporary one)."""
    path = error.filename2 if error.filename2 is not None else error.filename
    if path is None or error.strerror is None:
        return _one_line(error)
    return f"cannot use {str(path)!r}: {error.strerror}"
