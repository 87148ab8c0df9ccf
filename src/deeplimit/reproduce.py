"""Reproduce an experiment end to end: run, plot, check claims, write files with provenance.

Runs go through the result store (``deeplimit.store``; ``out/store`` by default): a spec that
is already there is loaded instead of recomputed, so a second run of a report only redraws. A
study that was interrupted (Ctrl-C, a time limit, a killed process) resumes from the units it
had finished (``deeplimit.checkpoints``) when it is run again.

A study that diverged is recorded as ``diverged`` and drawn with what stayed finite;
``Reproduction.diverged`` says why (the command line then exits with status 3). One that
diverged without returning any data raises :class:`~deeplimit.errors.StudyDivergedError`.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import xarray as xr

from .errors import StudyDivergedError
from .experiments import Claim, ExperimentSpec, get_experiment, suite_members
from .experiments.base import Progress, divergence_of
from .experiments.plotting import add_footer, save_figure
from .provenance import provenance, provenance_line
from .report import ReportFiles, write_report
from .results import atomic_write_text, save_result
from .runner import run_point, run_sweep
from .store import ResultStore, StoreError, json_default
from .sweeps import Point, spec_at

__all__ = ["Reproduction", "SuiteReproduction", "reproduce", "reproduce_suite"]


@dataclass
class Reproduction:
    name: str
    title: str
    caption: str
    spec: ExperimentSpec
    dataset: xr.Dataset
    statistics: list[dict[str, Any]]
    claims: list[Claim]
    provenance: dict[str, Any]
    files: list[Path] = field(default_factory=list)
    table: dict[str, str] = field(default_factory=dict)
    store_key: str = ""
    reused: bool = False  # loaded from the store, not computed by this call
    diverged: str | None = None  # why the study diverged (recorded as such), or None
    wall_time_s: float | None = None  # of this call (computing or loading, and drawing)
    # units of the study loaded from an interrupted earlier run (deeplimit.checkpoints), not
    # computed again, when the point was computed
    resumed_units: int = 0

    @property
    def provenance_line(self) -> str:
        return provenance_line(self.provenance)

    @property
    def passed(self) -> bool:
        return all(claim.passed for claim in self.claims)

    @property
    def figure_png(self) -> Path:
        return next(path for path in self.files if path.suffix == ".png")


@dataclass
class SuiteReproduction:
    """All experiments of a suite and the claims report written from them."""

    suite: str
    reproductions: list[Reproduction]
    report: ReportFiles
    provenance: dict[str, Any]

    @property
    def claim_rows(self) -> list[dict[str, Any]]:
        return json.loads(self.report.json.read_text())["claims"]

    @property
    def passed(self) -> bool:
        return all(row["verdict"] == "PASS" for row in self.claim_rows)

    @property
    def diverged(self) -> dict[str, str]:
        """The experiments whose study diverged, with why."""
        return {r.name: r.diverged for r in self.reproductions if r.diverged}


def reproduce(
    name: str,
    *,
    full: bool = False,
    scale: str | None = None,
    out: Path | str = "results",
    overrides: dict[str, Any] | None = None,
    progress: Progress | None = None,
    store: Path | str | None = None,
) -> Reproduction:
    """Run experiment ``name`` (fast default or ``full`` paper scale) and write its outputs to
    ``out/name/``: ``name.png``, ``name.pdf``, ``name.nc`` (data) and ``name.json`` (spec,
    statistics, claims, provenance).

    The point is computed into the result store ``store`` (default ``out/store``) unless it is
    there already, in which case it is only loaded and redrawn."""
    started = time.perf_counter()
    experiment = get_experiment(name)
    overrides = dict(overrides or {})
    scale = scale or ("full" if full else "fast")
    spec = spec_at(experiment, scale, overrides)
    results = ResultStore(Path(out) / "store" if store is None else store)
    results.ensure_writable()
    point = Point.of(name, spec)
    outcome = run_point(name, point.spec_json, results.root, progress=progress, reraise=True)
    if outcome.status == "busy":
        raise StoreError(
            f"another process is computing this {name} point (key {point.key}) in "
            f"{str(results.root)!r}; run again when it has finished"
        )
    entry = results.entry(experiment.name, point.key, verify="none")
    if entry.state == "diverged" and not entry.has_data:
        raise StudyDivergedError(name, point.key, entry.error or "diverged")
    reused = outcome.reused or outcome.status not in ("ok", "diverged")
    dataset = results.load(experiment.name, point.key)
    manifest = entry.manifest or {}
    diverged = divergence_of(dataset) or (entry.error if entry.state == "diverged" else None)
    record = {
        **manifest.get("provenance", {}),
        "config": {"experiment": name, "scale": scale, "spec": spec.model_dump(mode="json")},
        "store": {"root": str(results.root), "key": point.key, "reused": reused},
    }
    statistics = experiment.statistics(dataset)
    claims = experiment.claims(dataset)
    folder = Path(out) / name
    # the figure has no caption in it: the report and the docs show this one (with the note
    # of networks that diverged, which run appended to the dataset's caption)
    caption = dataset.attrs.get("caption") or experiment.caption(spec)
    figure = experiment.plot(dataset)
    add_footer(figure, provenance_line(record))
    files = save_figure(figure, folder / name)
    files.append(save_result(dataset, folder / f"{name}.nc", record))
    summary = {
        "experiment": name,
        "title": experiment.title,
        "caption": caption,
        "spec": spec.model_dump(mode="json"),
        "statistics": statistics,
        "claims": [claim.as_dict() for claim in claims],
        "diverged": diverged,
        "provenance": record,
    }
    summary_path = folder / f"{name}.json"
    atomic_write_text(summary_path, json.dumps(summary, indent=2, default=json_default) + "\n")
    files.append(summary_path)
    return Reproduction(
        name=name,
        title=experiment.title,
        caption=caption,
        spec=spec,
        dataset=dataset,
        statistics=statistics,
        claims=claims,
        provenance=record,
        files=files,
        table=dict(experiment.table),
        store_key=point.key,
        reused=reused,
        diverged=diverged,
        wall_time_s=time.perf_counter() - started,
        resumed_units=int(manifest.get("resumed_units", 0)),
    )


def reproduce_suite(
    suite: str,
    *,
    full: bool = False,
    scale: str | None = None,
    out: Path | str = "results",
    overrides: dict[str, Any] | None = None,
    progress: Progress | None = None,
    announce: Any = None,
    store: Path | str | None = None,
    executor: Any = None,
    finished: Any = None,
    point_progress: Any = None,
) -> SuiteReproduction:
    """Reproduce every experiment of ``suite`` and write the claims report to ``out/suite/``.

    ``overrides`` may hold ``seed`` and ``device`` (applied to every experiment);
    ``announce(name)`` is called before each experiment starts, ``finished(reproduction,
    number, total)`` after each. With an ``executor`` (``deeplimit.executors``), the points the
    store lacks are first computed in parallel through it (``point_progress``: the
    ``run_sweep`` progress callback); then each figure is drawn from the store."""
    members = suite_members(suite)
    scale = scale or ("full" if full else "fast")
    overrides = dict(overrides or {})
    unknown = set(overrides) - {"seed", "device"}
    if unknown:
        raise ValueError(
            f"--set {', '.join(sorted(unknown))} applies to single experiments; a suite takes "
            "only seed and device"
        )
    start = time.perf_counter()
    store = Path(out) / "store" if store is None else Path(store)
    if executor is not None:
        points = [Point.of(e.name, spec_at(e, scale, overrides)) for e in members]
        outcome = run_sweep(points, store, executor, progress=point_progress)
        if outcome.stopped:
            raise KeyboardInterrupt
    reproductions = []
    for number, experiment in enumerate(members, 1):
        if announce is not None:
            announce(experiment.name)
        reproductions.append(
            reproduce(
                experiment.name,
                scale=scale,
                out=out,
                overrides=overrides,
                progress=progress,
                store=store,
            )
        )
        if finished is not None:
            finished(reproductions[-1], number, len(members))
    wall = time.perf_counter() - start
    record = provenance(
        {
            "suite": suite,
            "scale": scale,
            "experiments": [r.name for r in reproductions],
            "overrides": overrides,
        },
        seed=overrides.get("seed", 0),
        device=overrides.get("device", "cpu"),
        wall_time_s=wall,
    )
    report = write_report(suite, reproductions, Path(out) / suite, record=record)
    return SuiteReproduction(suite, reproductions, report, record)
