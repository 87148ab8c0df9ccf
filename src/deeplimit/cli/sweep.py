"""``deeplimit sweep``, ``deeplimit results`` and ``deeplimit plot``: run sweeps into the result
store, list and export what it holds, and redraw figures from it without recomputing."""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.table import Table

from .common import (
    check_store_folder,
    console,
    format_number,
    interactive,
    live_bar,
    parse_overrides,
    plain_line,
    print_error,
    stop_signals,
)

if TYPE_CHECKING:  # the library loads when a command runs, not for --help
    from ..runner import SweepProgress, SweepResult
    from ..store import ResultStore
    from ..sweeps import Sweep

_STORE_HELP = "The result store folder."
_DEFAULT_STORE = Path("results/store")
# what a stopped sweep keeps (printed by the sweep, and the command line's note for a stop)
SWEEP_RESUMES = "run the same command again to finish the sweep; nothing done is lost"


def sweep_command(
    file: Path = typer.Argument(..., help="The sweep file (TOML); see docs/sweeps.md."),
    executor: str = typer.Option(
        "local", "--executor", "-e", help="local (processes on this machine) or slurm."
    ),
    workers: int | None = typer.Option(
        None,
        "--workers",
        "-w",
        help="Local worker processes (default 1, or one per GPU with --device cuda; 0 runs "
        "the points in this process).",
    ),
    device: str | None = typer.Option(
        None, "--device", help="cpu or cuda for every point (overrides the file's device)."
    ),
    store: Path = typer.Option(_DEFAULT_STORE, "--store", "-s", help=_STORE_HELP),
    retry_failed: bool = typer.Option(
        False, "--retry-failed", help="Compute again the points recorded as failed."
    ),
    dry_run: bool = typer.Option(
        False,
        "--dry-run",
        help="Validate and list the points with their state (stored points checked against "
        "their SHA-256 checksums); run nothing.",
    ),
    sizes_only: bool = typer.Option(
        False,
        "--sizes-only",
        help="With --dry-run: check stored files by size only (fast; a flipped bit goes "
        "unnoticed, and the listing says so).",
    ),
    wait: bool = typer.Option(
        True, "--wait/--no-wait", help="Wait for points that another runner is computing."
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
    partition: str | None = typer.Option(None, "--partition", help="SLURM partition."),
    account: str | None = typer.Option(None, "--account", help="SLURM account."),
    qos: str | None = typer.Option(None, "--qos", help="SLURM quality of service."),
    time_limit: str | None = typer.Option(
        None, "--time", help="SLURM time limit per point (HH:MM:SS or minutes)."
    ),
    mem: str | None = typer.Option(None, "--mem", help="SLURM memory per task (e.g. 4G)."),
    cpus_per_task: int | None = typer.Option(None, "--cpus-per-task", help="SLURM CPUs per task."),
    gpus_per_task: int | None = typer.Option(None, "--gpus-per-task", help="SLURM GPUs per task."),
    array_parallelism: int | None = typer.Option(
        None, "--array-parallelism", help="At most this many SLURM tasks running at once."
    ),
    logs: Path | None = typer.Option(
        None, "--logs", help="Folder for SLURM job files and per-task logs (default STORE/.slurm)."
    ),
    poll: float = typer.Option(5.0, "--poll", help="Seconds between looks at the SLURM queue."),
) -> None:
    """Run every point of a sweep file that the store lacks, locally or on SLURM.

    Points already in the store are skipped; a point whose experiment raises is recorded as
    failed and the others go on (`--retry-failed` runs them again); an interrupted sweep
    (Ctrl-C, a killed worker, a cancelled task) finishes when started again. Exit status: 0
    when every point is done, 1 when some failed or were interrupted (or the store's disk is
    full), 3 when some diverged (recorded as diverged), 130 after Ctrl-C and 143 after SIGTERM
    (`kill PID`): either cancels the running points (each worker gets a few seconds to release
    its point, then is killed) and leaves no process behind. A sweep started in the background
    by a script ignores Ctrl-C, as every program does; `kill PID` stops it. When the output is
    not a terminal (a SLURM or CI log), progress is one plain line per finished point.

    **Example**: `deeplimit sweep examples/sweeps/hayou-fig1.toml --workers 2`;
    `deeplimit sweep examples/sweeps/hayou-fig1.toml --executor slurm --partition gpu
    --time 00:20:00 --device cuda`.
    """
    from ..runner import run_sweep
    from ..store import ResultStore
    from ..sweeps import load_sweep, resolve_experiment

    check_store_folder("--store", store, must_exist=False)
    sweep = load_sweep(file, device=device)
    results = ResultStore(store)
    if "seed" in sweep.axes and "seeds" in resolve_experiment(sweep.experiment).Spec.model_fields:
        console.print(
            f"note: the top-level `seeds` is the seed axis ({len(sweep)} points); "
            f"{sweep.points[0].name}'s own field `seeds` (networks per setting) goes in [base]",
            style="dim",
            highlight=False,
            markup=False,
            soft_wrap=True,
        )
    slurm_flags = {
        "partition": partition,
        "account": account,
        "qos": qos,
        "time": time_limit,
        "mem": mem,
        "cpus_per_task": cpus_per_task,
        "gpus_per_task": gpus_per_task,
        "array_parallelism": array_parallelism,
        "logs": str(logs) if logs is not None else None,
    }
    if sizes_only and not dry_run:
        raise ValueError("--sizes-only goes with --dry-run (a sweep checks every checksum)")
    if dry_run:  # the executor's options are checked too, but nothing is started
        _executor(executor, sweep, results, workers, slurm_flags, poll, build=False)
        _print_plan(sweep, results, "size" if sizes_only else "checksum")
        return
    results.ensure_writable()
    engine = _executor(executor, sweep, results, workers, slurm_flags, poll)
    axes = " × ".join(sweep.axes) or "a single point"
    duplicates = f", {sweep.duplicates} duplicates dropped" if sweep.duplicates else ""
    console.print(
        f"[bold]{sweep.name}[/bold]: {len(sweep)} points of {sweep.points[0].name} over {axes}"
        f"{duplicates}; store {results.root}; executor {engine.name}",
        highlight=False,
        soft_wrap=True,
    )
    with stop_signals() as stop:
        try:
            with _sweep_bar(sweep.name, not quiet) as callback:
                outcome = run_sweep(
                    sweep.points,
                    results,
                    engine,
                    retry_failed=retry_failed,
                    wait_for_others=wait,
                    progress=callback,
                )
        except KeyboardInterrupt:  # before the runner took over, or after it had finished
            engine.close(cancel=True)
            outcome = None
        if stop.signum is not None or outcome is None:
            console.print(f"[yellow]stopped by {stop.name}[/yellow]", highlight=False)
            stop.reported = True  # with the interrupted points, not the command line's line
    if outcome is None:
        console.print(SWEEP_RESUMES)
        raise typer.Exit(code=stop.exit_code)
    _print_outcome(sweep, outcome)
    if outcome.stopped:
        raise typer.Exit(code=stop.exit_code)
    if not outcome.complete:
        raise typer.Exit(code=1)
    if outcome.diverged:
        print_error(
            f"{len(outcome.diverged)} of {outcome.total} points diverged (recorded as diverged; "
            "`deeplimit results --status diverged` lists them)"
        )
        raise typer.Exit(code=3)


def _executor(
    kind: str,
    sweep: Sweep,
    results: ResultStore,
    workers: int | None,
    slurm_flags: dict[str, Any],
    poll: float,
    *,
    build: bool = True,
) -> Any:
    """The executor the options ask for; ``build=False`` only checks the options."""
    from pydantic import ValidationError

    from ..executors import InlineExecutor, LocalExecutor, SlurmExecutor, SlurmResources
    from ..store import device_kind
    from ..sweeps import explain_error

    if kind == "slurm":
        settings = {**sweep.slurm, **{k: v for k, v in slurm_flags.items() if v is not None}}
        try:
            resources = SlurmResources(**settings)
        except ValidationError as error:
            raise ValueError(f"[slurm] {explain_error(error)}") from None
        if not build:
            return None
        folder = Path(resources.logs) if resources.logs else results.root / ".slurm"
        return SlurmExecutor(resources, folder, poll_s=poll)
    if kind != "local":
        raise ValueError(f"--executor must be local or slurm, got {kind!r}")
    gpus = _visible_gpus() if device_kind(sweep.device) == "cuda" else []
    if device_kind(sweep.device) == "cuda" and not gpus:
        raise ValueError(
            f"device {sweep.device!r}: no CUDA device is visible on this machine; use "
            "--device cpu, or --executor slurm with --gpus-per-task to run on GPU nodes"
        )
    if workers is None:
        workers = max(1, len(gpus))
    if workers < 0:
        raise ValueError(f"--workers must be an integer >= 0, got {workers}")
    if not build:
        return None
    if workers == 0:
        return InlineExecutor()
    return LocalExecutor(workers, gpus=gpus if len(gpus) > 1 else None)


def _visible_gpus() -> list[str]:
    import torch

    return [str(i) for i in range(torch.cuda.device_count())] if torch.cuda.is_available() else []


def _plain_lines(name: str) -> Callable[[SweepProgress], None]:
    """Progress for logs: one flushed line each time a point finishes (or fails, diverges or
    is interrupted)."""
    seen: list[int] = []

    def callback(state: SweepProgress) -> None:
        counts = [state.done, state.failed, state.interrupted]
        if counts == seen:
            return
        first = not seen
        seen[:] = counts
        if first and state.done == 0:
            return
        extra = f", {state.diverged} diverged" if state.diverged else ""
        extra += f", {state.interrupted} interrupted" if state.interrupted else ""
        plain_line(
            f"{name}: {state.done}/{state.total} done, {state.failed} failed{extra}, "
            f"{state.running} running ({state.elapsed_s:.1f} s)"
        )

    return callback


@contextlib.contextmanager
def _sweep_bar(name: str, enabled: bool) -> Iterator[Callable[[SweepProgress], None] | None]:
    """A progress bar of points: done of total, running, failed, elapsed and ETA; plain lines
    when stderr is not a terminal."""
    if not enabled:
        yield None
        return
    if not interactive():
        yield _plain_lines(name)
        return
    with live_bar(
        "{task.completed}/{task.total} done",
        "· {task.fields[running]} running · {task.fields[failed]} failed",
        "{task.fields[extra]}",
    ) as bar:
        task: list[Any] = []

        def callback(state: SweepProgress) -> None:
            extra = []
            if state.interrupted:
                extra.append(f"· {state.interrupted} interrupted")
            if state.waiting:
                extra.append(f"· {state.waiting} held by other runners")
            fields = {
                "running": state.running,
                "failed": state.failed,
                "extra": " ".join(extra),
            }
            if not task:  # start the clock at the points already done, for a fair ETA
                task.append(bar.add_task(name, total=state.total, completed=state.done, **fields))
            bar.update(task[0], completed=state.done, **fields)

        yield callback


def _print_plan(sweep: Sweep, results: ResultStore, verify: str = "checksum") -> None:
    states = {
        "ok": "stored",
        "diverged": "diverged",
        "failed": "failed",
        "running": "running elsewhere",
    }
    rows, counts = [], {}
    for number, point in enumerate(sweep.points, 1):
        entry = None
        if results.root.is_dir():
            entry = results.entry(point.name, point.key, verify=verify)
        state = states.get(entry.state, "to run") if entry else "to run"
        if entry is not None and entry.state == "corrupt":
            state = "corrupt: to run"
        counts[state] = counts.get(state, 0) + 1
        rows.append({"#": number, "key": point.key, **dict(point.params), "state": state})
    table = Table(title=f"{sweep.name}: {len(sweep)} points (dry run)", title_justify="left")
    columns = list(rows[0])
    for column in columns:
        table.add_column(column, justify="right")
    for row in rows[:200]:
        table.add_row(*(_cell(row.get(c)) for c in columns))
    console.print(table)
    if len(rows) > 200:
        console.print(f"... and {len(rows) - 200} more")
    console.print(", ".join(f"{n} {state}" for state, n in counts.items()))
    stored = counts.get("stored", 0) + counts.get("diverged", 0)
    if verify == "checksum":
        console.print(
            f"stored points checked: sizes and SHA-256 checksums of their files ({stored})",
            style="dim",
        )
    else:
        console.print(
            f"stored points checked by file size only ({stored}): checksums NOT verified "
            "(drop --sizes-only to verify them)",
            style="yellow",
        )


def _cell(value: Any) -> str:
    if isinstance(value, list | tuple | dict):
        return json.dumps(value)
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return str(int(value))  # an integer field that pandas widened to float beside a gap
    return format_number(value)


def _print_outcome(sweep: Sweep, outcome: SweepResult) -> None:
    labels = {p.key: p.label() for p in sweep.points}
    diverged = f", {len(outcome.diverged)} diverged" if outcome.diverged else ""
    line = (
        f"{outcome.done} of {outcome.total} points done ({len(outcome.computed)} computed, "
        f"{len(outcome.skipped)} already stored{diverged}), {len(outcome.failed)} failed, "
        f"{len(outcome.interrupted)} interrupted in {outcome.wall_time_s:.1f} s"
    )
    colour = "green" if outcome.complete and not outcome.diverged else "yellow"
    console.print(f"[{colour}]{line}[/{colour}]", highlight=False, soft_wrap=True)
    if outcome.failed:
        table = Table(title="failed points (--retry-failed runs them again)", title_justify="left")
        for column in ("key", "point", "error"):
            table.add_column(column)
        for key, error in outcome.failed.items():
            table.add_row(key, labels.get(key, ""), error)
        console.print(table)
    for key, reason in outcome.diverged.items():
        console.print(
            f"diverged {key} ({labels.get(key, '')}): {reason}",
            highlight=False,
            soft_wrap=True,
            markup=False,
        )
    for key, reason in outcome.interrupted.items():
        console.print(
            f"interrupted {key} ({labels.get(key, '')}): {reason}",
            highlight=False,
            soft_wrap=True,
            markup=False,
        )
    if outcome.waiting:
        console.print(f"{len(outcome.waiting)} points are being computed by another runner")
    if outcome.interrupted or outcome.stopped:
        console.print(SWEEP_RESUMES)


# ----------------------------------------------------------------------------- results


def results_command(
    store: Path = typer.Option(_DEFAULT_STORE, "--store", "-s", help=_STORE_HELP),
    experiment: str | None = typer.Option(None, "--experiment", "-x", help="Only this experiment."),
    where: list[str] | None = typer.Option(
        None, "--where", help="Only points whose spec field equals a value, e.g. --where seed=0."
    ),
    status: str | None = typer.Option(
        None,
        "--status",
        help="Only points in this state: ok, diverged, failed, corrupt, running, incomplete.",
    ),
    export: Path | None = typer.Option(
        None,
        "--export",
        help="Write the selection: .csv or .parquet (one row per point, or per statistic "
        "row with --summaries), .nc (every point's data in one dataset; needs --experiment).",
    ),
    summaries: bool = typer.Option(
        False, "--summaries", help="With --export: the statistics rows instead of the points."
    ),
) -> None:
    """List the points in a result store (state, swept fields, wall time), filter them, and
    export them as one table or one dataset.

    **Example**: `deeplimit results --experiment hayou-fig1 --where seed=0`;
    `deeplimit results -x hayou-fig1 --export fig1.nc`.
    """
    from ..store import ResultStore

    results = ResultStore(check_store_folder("--store", store, must_exist=True))
    filters = parse_overrides(where, "--where") if where else None
    if export is not None:
        _export(results, experiment, filters, status, export, summaries)
        return
    frame = results.frame(experiment, status=status, where=filters)
    if frame.empty:
        console.print(f"no points in {results.root} match", soft_wrap=True)
        return
    for name, group in frame.groupby("experiment", sort=True):
        # points without a readable spec (incomplete, corrupt) say nothing about the fields
        spec_columns = [
            c for c in group.columns if c not in _META_COLUMNS and group[c].notna().any()
        ]
        known = group[group[spec_columns].notna().any(axis=1)] if spec_columns else group[:0]
        varying = [c for c in spec_columns if known[c].astype(str).nunique() > 1]
        fixed = {c: known[c].iloc[0] for c in spec_columns if c not in varying}
        plural = "s" if len(group) != 1 else ""
        table = Table(title=f"{name}: {len(group)} point{plural}", title_justify="left")
        columns = ["key", "status", *varying, "wall_time_s", "finished_utc"]
        for column in columns:
            table.add_column(column.replace("_utc", "").replace("_time_s", " s"), justify="right")
        for _, row in group.iterrows():
            table.add_row(*(_cell(row[c]) for c in columns))
        console.print(table)
        if fixed:
            console.print(
                "fixed: " + ", ".join(f"{k}={_cell(v)}" for k, v in fixed.items()), style="dim"
            )
        for _, row in group[group.status != "ok"].iterrows():
            if isinstance(row["error"], str) and row["error"]:
                console.print(
                    f"{row['key']} {row['status']}: {row['error']}",
                    highlight=False,
                    soft_wrap=True,
                    markup=False,
                )
    console.print(
        ", ".join(f"{n} {state}" for state, n in frame.status.value_counts().items()) + " in all"
    )


_META_COLUMNS = {
    "experiment",
    "key",
    "status",
    "wall_time_s",
    "finished_utc",
    "host",
    "ran_on",
    "version",
    "error",
}


def _export(
    results: ResultStore,
    experiment: str | None,
    filters: dict[str, Any] | None,
    status: str | None,
    path: Path,
    summaries: bool,
) -> None:
    suffix = path.suffix.lower()
    if (suffix == ".nc" or summaries) and status not in (None, "ok"):
        what = "--export FILE.nc" if suffix == ".nc" else "--summaries"
        raise ValueError(
            f"{what} holds finished points only (their data and statistics): --status must be "
            f"ok or left out, got {status!r}"
        )
    if suffix == ".nc":
        if not experiment:
            raise ValueError("--export FILE.nc needs --experiment (one dataset per experiment)")
        from ..results import save_result

        left_out: list[tuple[str, str]] = []
        dataset = results.load_all(experiment, where=filters, left_out=left_out)
        save_result(dataset, path, {"store": str(results.root), "where": filters or {}})
        console.print(
            f"wrote {path} ({dataset.sizes['point']} points)", soft_wrap=True, highlight=False
        )
        _report_left_out(left_out, dataset.sizes["point"], path)
        return
    if suffix not in (".csv", ".parquet"):
        raise ValueError(f"--export must end in .csv, .parquet or .nc, got {str(path)!r}")
    left_out = []
    if summaries:
        frame = results.summaries(experiment, where=filters, left_out=left_out)
    else:
        frame = results.frame(experiment, status=status, where=filters)
    from ..results import atomic_write

    if suffix == ".csv":
        atomic_write(path, lambda p: frame.to_csv(p, index=False), suffix)
    else:
        frame = frame.astype({c: str for c in frame.columns if frame[c].dtype == object})
        atomic_write(path, lambda p: frame.to_parquet(p, index=False), suffix)
    console.print(f"wrote {path} ({len(frame)} rows)", soft_wrap=True, highlight=False)
    if summaries:
        loaded = frame["key"].nunique() if "key" in frame.columns else 0
        _report_left_out(left_out, loaded, path)


def _report_left_out(left_out: list[tuple[str, str]], loaded: int, path: Path) -> None:
    """Say how many selected points could not be loaded into ``path``, and which."""
    if not left_out:
        return
    shown = "; ".join(f"{key} ({why})" for key, why in left_out[:20])
    more = f"; and {len(left_out) - 20} more" if len(left_out) > 20 else ""
    console.print(
        f"{len(left_out)} of {len(left_out) + loaded} selected points could not be loaded and "
        f"are not in {path}: {shown}{more}",
        style="yellow",
        soft_wrap=True,
        highlight=False,
        markup=False,
    )


# ----------------------------------------------------------------------------- plot


def plot_command(
    experiment: str = typer.Argument(
        ..., help="The experiment (a name, or module:Class for one defined elsewhere)."
    ),
    key: str | None = typer.Option(None, "--key", "-k", help="The point's key (or a prefix)."),
    set_: list[str] | None = typer.Option(
        None, "--set", help="Select the point by its spec: --set samples=5000 --set seed=1."
    ),
    full: bool = typer.Option(False, "--full", help="With --set: start from the paper scale."),
    smoke: bool = typer.Option(False, "--smoke", help="With --set: start from the smoke scale."),
    store: Path = typer.Option(_DEFAULT_STORE, "--store", "-s", help=_STORE_HELP),
    out: Path = typer.Option(Path("results/plots"), "--out", "-o", help="Folder for the figure."),
) -> None:
    """Redraw a figure from a stored point, without recomputing it (PNG + PDF).

    The point is chosen by `--key` (see `deeplimit results`) or by its spec: the scale's
    defaults with `--set` overrides, exactly as `deeplimit reproduce` and sweep files build it.

    **Example**: `deeplimit plot hayou-fig1 --set seed=3`; `deeplimit plot hayou-fig1 --key 3f2a`.
    """
    from ..experiments.plotting import add_footer, save_figure
    from ..provenance import provenance_line
    from ..store import ResultStore, StoreError, point_key
    from ..sweeps import resolve_experiment, spec_at

    results = ResultStore(check_store_folder("--store", store, must_exist=True))
    if full and smoke:
        raise ValueError("give at most one of --full and --smoke")
    if key is not None:
        if set_ or full or smoke:
            raise ValueError("give --key or --set (with --full/--smoke), not both")
        entry = results.find(_stored_name(results, experiment), key)
        key = entry.key
        # the manifest says how to find the experiment (it may live outside deeplimit)
        target = resolve_experiment(entry.manifest.get("experiment_ref") or experiment)
    else:
        target = resolve_experiment(experiment)
        scale = "full" if full else "smoke" if smoke else "fast"
        spec = spec_at(target, scale, parse_overrides(set_))
        key = point_key(target.name, spec)
        entry = results.entry(target.name, key, verify="none")
        if entry.state in ("incomplete", "running"):
            raise StoreError(
                f"no stored result of {target.name} for this spec (key {key}) in "
                f"{str(results.root)!r}; the spec is the {scale} scale with the --set values "
                "(add --smoke or --full for another scale, or pick a stored point with --key: "
                f"`deeplimit results -x {target.name}` lists them); or compute it with "
                "`deeplimit sweep` or `deeplimit reproduce`"
            )
    dataset = results.load(target.name, key)
    manifest = results.entry(target.name, key, verify="none").manifest or {}
    figure = target.plot(dataset)
    add_footer(figure, provenance_line(manifest.get("provenance", {})) + f" · key {key}")
    for path in save_figure(figure, out / f"{target.name}-{key}"):
        console.print(f"wrote {path}", soft_wrap=True, highlight=False)
    if manifest.get("status") == "diverged":
        console.print(
            f"note: this point diverged ({manifest.get('error') or 'diverged'}); the figure "
            "shows what stayed finite",
            style="yellow",
            soft_wrap=True,
            highlight=False,
            markup=False,
        )


def _stored_name(results: ResultStore, experiment: str) -> str:
    """The store folder of ``experiment``: its name, also for a ``module:Class`` reference."""
    from ..sweeps import resolve_experiment

    if (results.root / experiment).is_dir() or ":" not in experiment:
        return experiment
    return resolve_experiment(experiment).name
