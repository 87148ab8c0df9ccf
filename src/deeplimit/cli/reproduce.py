"""``deeplimit reproduce NAME``: run a figure's experiment, write the figure and its statistics."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from ..experiments.registry import EXPERIMENTS, suite_names
from .common import (
    check_output_folder,
    check_store_folder,
    console,
    error_console,
    interactive,
    parse_overrides,
    plain_line,
    print_error,
    progress_bar,
    rows_table,
)
from .common import format_number as _number

# the experiments with what each reproduces, from the registry's table (no experiment imported)
EPILOG = "**Experiments**\n\n" + "\n".join(
    f"- `{name}`: {entry.title}" for name, entry in EXPERIMENTS.items()
)


def reproduce_command(
    name: str = typer.Argument(
        ...,
        help=f"A suite ({', '.join(suite_names())}: every figure and a claims report) or one "
        "experiment (listed below).",
    ),
    full: bool = typer.Option(
        False, "--full", help="Paper-scale setting instead of the fast default."
    ),
    smoke: bool = typer.Option(
        False, "--smoke", help="Tiny sizes to check the pipeline in seconds (verdicts meaningless)."
    ),
    out: Path = typer.Option(Path("results"), "--out", "-o", help="Folder for the outputs."),
    seed: int | None = typer.Option(None, "--seed", help="Random seed (default: the spec's, 0)."),
    device: str | None = typer.Option(None, "--device", help="cpu or cuda[:index]."),
    set_: list[str] | None = typer.Option(
        None, "--set", help="Override a spec field, e.g. --set samples=5000 --set 'depths=[5,50]'."
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
    strict: bool = typer.Option(False, "--strict", help="Exit with status 1 if a claim fails."),
    store: Path | None = typer.Option(
        None,
        "--store",
        "-s",
        help="Result store: stored points are reused, new ones added (default OUT/store).",
    ),
    workers: int | None = typer.Option(
        None,
        "--workers",
        "-w",
        help="For a suite: compute the missing figures in this many local processes first.",
    ),
) -> None:
    """Reproduce a paper figure (PNG + PDF, data as netCDF, statistics and claims as JSON), or a
    whole paper with its claims report (Markdown + self-contained HTML).

    Results go through the result store (`deeplimit results`), so running the same
    reproduction again reuses the finished points and only redraws; a long study that was
    interrupted (Ctrl-C, a time limit, a killed process) resumes from the parts it had
    finished instead of starting over. A study that diverges is
    stored as diverged, drawn with what stayed finite, and exits with status 3; Ctrl-C exits
    with 130 and SIGTERM with 143, keeping what was finished. When the
    output is not a terminal (a SLURM or CI log), progress comes as one line per 10 % or per
    finished figure.

    **Example**: `deeplimit reproduce hayou-fig1 --out results` (add `--full` for paper scale);
    `deeplimit reproduce hayou --workers 2` for every figure and the report.
    """
    from ..checkpoints import notices
    from ..reproduce import reproduce

    overrides = parse_overrides(set_)
    if seed is not None:
        overrides["seed"] = seed
    if device is not None:
        overrides["device"] = device
    if full and smoke:
        raise ValueError("give at most one of --full and --smoke")
    scale = "full" if full else "smoke" if smoke else "fast"
    if workers is not None and workers < 1:
        raise ValueError(f"--workers must be an integer >= 1, got {workers}")
    if workers is not None and name not in suite_names():
        raise ValueError(
            f"--workers computes the figures of a suite ({', '.join(suite_names())}) in "
            f"parallel; {name!r} is one experiment: drop --workers (a sweep file runs its "
            "points in parallel: `deeplimit sweep FILE --workers N`)"
        )
    check_output_folder("--out", out)
    if store is not None:
        check_store_folder("--store", store, must_exist=False)
        check_output_folder("--store", store)
    # Ctrl-C and SIGTERM: one line saying how to resume, by the command line (cli/__init__.py)
    if name in suite_names():
        with notices(_notice):
            _suite(name, scale, out, overrides, quiet, strict, store, workers)
        return
    with progress_bar(name, not quiet, plain=True) as callback, notices(_notice):
        result = reproduce(
            name, scale=scale, out=out, overrides=overrides, progress=callback, store=store
        )
    console.print(f"[bold]{result.title}[/bold]")
    console.print(result.caption, style="dim")
    if result.statistics:
        table = result.table or {key: key for key in result.statistics[0]}
        rows = [{label: row[key] for key, label in table.items()} for row in result.statistics]
        console.print(rows_table("statistics", rows))
    if scale == "smoke" and result.claims:
        console.print(_SMOKE_NOTE, style="yellow", highlight=False)
    for claim in result.claims:
        colour = "green" if claim.passed else "red" if scale != "smoke" else "yellow"
        console.print(
            f"[{colour}]{claim.verdict}[/{colour}] {claim.id}: {claim.statement}; "
            f"{claim.statistic} = {_number(claim.measured)} (expected {claim.expected}; "
            f"{claim.tolerance}; n = {claim.n})",
            highlight=False,
        )
    for path in result.files:
        console.print(f"wrote {path}")
    origin = "reused from" if result.reused else "stored in"
    console.print(f"[dim]{origin} the result store, key {result.store_key}[/dim]")
    if result.resumed_units and not result.reused:
        console.print(
            f"[dim]resumed: {result.resumed_units} unit(s) finished by an interrupted run were "
            "loaded, not computed again[/dim]"
        )
    console.print(f"[dim]{result.provenance_line}[/dim]")
    if result.diverged:
        print_error(
            f"{name} diverged: {result.diverged}; recorded as diverged in the result store "
            f"(key {result.store_key}); the figure shows what stayed finite"
        )
        raise typer.Exit(code=3)
    if strict and not result.passed:
        raise typer.Exit(code=1)


def _notice(text: str) -> None:
    """A study resuming from an interrupted run says so: above the bar on a terminal, as a
    plain line in a log."""
    if interactive():
        error_console.print(f"[dim]{text}[/dim]", highlight=False)
    else:
        plain_line(text)


_SMOKE_NOTE = (
    "smoke scale: sizes that only check the pipeline, too small for the claims; their "
    "verdicts mean nothing (the fast default is the smallest scale the claims are sized for)"
)


def _suite(
    name: str,
    scale: str,
    out: Path,
    overrides: dict,
    quiet: bool,
    strict: bool,
    store: Path | None,
    workers: int | None,
) -> None:
    from ..executors import LocalExecutor
    from ..provenance import provenance_line
    from ..reproduce import reproduce_suite

    current = {"name": name}
    lines = not quiet and not interactive()  # a log: one plain line per finished figure

    def announce(experiment: str) -> None:
        current["name"] = experiment
        if quiet:
            console.print(f"running {experiment}", style="dim")

    def finished(reproduction: Any, number: int, total: int) -> None:
        if lines:
            how = "reused from the store" if reproduction.reused else "computed"
            state = f", DIVERGED: {reproduction.diverged}" if reproduction.diverged else ""
            plain_line(
                f"[{number}/{total}] {reproduction.name}: {how}, drawn in "
                f"{reproduction.wall_time_s:.1f} s{state}"
            )

    def computed(state: Any) -> None:
        if state.done > seen[0] or state.failed + state.interrupted > seen[1]:
            seen[:] = [state.done, state.failed + state.interrupted]
            plain_line(
                f"{name}: {state.done}/{state.total} figures computed, {state.failed} failed, "
                f"{state.running} running ({state.elapsed_s:.1f} s)"
            )

    seen = [-1, 0]
    with progress_bar(name, not quiet) as callback:

        def report(done: int, total: int) -> None:
            if callback is not None:
                callback(done, total)

        result = reproduce_suite(
            name,
            scale=scale,
            out=out,
            overrides=overrides,
            progress=report,
            announce=announce,
            store=store,
            executor=LocalExecutor(workers) if workers else None,
            finished=finished,
            point_progress=computed if lines else None,
        )
    rows = [
        {
            "claim": row["id"],
            "measured": row["measured"],
            "expected": row["expected"],
            "n": row["n"],
            "verdict": row["verdict"],
            "source": row["source"],
        }
        for row in result.claim_rows
    ]
    console.print(rows_table(f"{name}: claims", rows))
    passed = sum(row["verdict"] == "PASS" for row in result.claim_rows)
    console.print(f"{passed} of {len(rows)} claim checks pass")
    if scale == "smoke":
        console.print(_SMOKE_NOTE, style="yellow", highlight=False)
    for path in (result.report.markdown, result.report.html, result.report.json):
        console.print(f"wrote {path}")
    console.print(f"[dim]{provenance_line(result.provenance)}[/dim]")
    if result.diverged:
        names = "; ".join(f"{k}: {v}" for k, v in result.diverged.items())
        print_error(
            f"{len(result.diverged)} of {len(result.reproductions)} studies diverged ({names}); "
            "recorded as diverged, their figures show what stayed finite"
        )
        raise typer.Exit(code=3)
    if strict and not result.passed:
        raise typer.Exit(code=1)
