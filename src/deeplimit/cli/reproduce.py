"""``deeplimit reproduce NAME``: run a figure's experiment, write the figure and its statistics."""

from __future__ import annotations

from pathlib import Path

import typer

from ..experiments import experiment_names
from ..reproduce import reproduce
from .common import console, parse_overrides, progress_bar, rows_table
from .common import format_number as _number


def reproduce_command(
    name: str = typer.Argument(..., help=f"Experiment: {', '.join(experiment_names())}."),
    full: bool = typer.Option(
        False, "--full", help="Paper-scale setting instead of the fast default."
    ),
    out: Path = typer.Option(Path("results"), "--out", "-o", help="Folder for the outputs."),
    seed: int | None = typer.Option(None, "--seed", help="Random seed (default: the spec's, 0)."),
    device: str | None = typer.Option(None, "--device", help="cpu or cuda[:index]."),
    set_: list[str] | None = typer.Option(
        None, "--set", help="Override a spec field, e.g. --set samples=5000 --set 'depths=[5,50]'."
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Reproduce a paper figure: figure (PNG + PDF), data (netCDF), statistics and claims (JSON).

    **Example**: `deeplimit reproduce hayou-fig1 --out results` (add `--full` for paper scale)
    """
    overrides = parse_overrides(set_)
    if seed is not None:
        overrides["seed"] = seed
    if device is not None:
        overrides["device"] = device
    with progress_bar(name, not quiet) as callback:
        result = reproduce(name, full=full, out=out, overrides=overrides, progress=callback)
    console.print(f"[bold]{result.title}[/bold]")
    console.print(result.caption, style="dim")
    if result.statistics:
        table = result.table or {key: key for key in result.statistics[0]}
        rows = [{label: row[key] for key, label in table.items()} for row in result.statistics]
        console.print(rows_table("statistics", rows))
    for claim in result.claims:
        colour = "green" if claim.passed else "red"
        console.print(
            f"[{colour}]{claim.verdict}[/{colour}] {claim.id}: {claim.statement}; "
            f"{claim.statistic} = {_number(claim.measured)} (expected {claim.expected}; "
            f"{claim.tolerance}; n = {claim.n})",
            highlight=False,
        )
    for path in result.files:
        console.print(f"wrote {path}")
    console.print(f"[dim]{result.provenance_line}[/dim]")
