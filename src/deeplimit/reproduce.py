"""Reproduce an experiment end to end: run, plot, check claims, write files with provenance.

Runs go through the result store (``deeplimit.store``; ``out/store`` by default): a spec that
is already there is loaded instead of recomputed, so a second run of a report only redraws.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import xarray as xr

from .experiments import Claim, ExperimentSpec, get_experiment, suite_members
from .experiments.base import Progress
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
    dataset = results.load(experiment.name, point.key)
    manifest = results.entry(experiment.name, point.key, verify="none").manifest or {}
    record = {
        **manifest.get("provenance", {}),
        "config": {"experiment": name, "scale": scale, "spec": spec.model_dump(mode="json")},
        "store": {"root": str(results.root), "key": point.key, "reused": outcome.status != "ok"},
    }
    statistics = experiment.statistics(dataset)
    claims = experiment.claims(dataset)
    folder = Path(out) / name
    figure = experiment.plot(dataset)
    add_footer(figure, provenance_line(record))
    files = save_figure(figure, folder / name)
    files.append(save_result(dataset, folder / f"{name}.nc", record))
    summary = {
        "experiment": name,
        "title": experiment.title,
        "caption": experiment.caption(spec),
        "spec": spec.model_dump(mode="json"),
        "statistics": statistics,
        "claims": [claim.as_dict() for claim in claims],
        "provenance": record,
    }
    summary_path = folder / f"{name}.json"
    atomic_write_text(summary_path, json.dumps(summary, indent=2, default=json_default) + "\n")
    files.append(summary_path)
    return Reproduction(
        name=name,
        title=experiment.title,
        caption=experiment.caption(spec),
        spec=spec,
        dataset=dataset,
        statistics=statistics,
        claims=claims,
        provenance=record,
        files=files,
        table=dict(experiment.table),
        store_key=point.key,
        reused=outcome.status != "ok",
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
) -> SuiteReproduction:
    """Reproduce every experiment of ``suite`` and write the claims report to ``out/suite/``.

    ``overrides`` may hold ``seed`` and ``device`` (applied to every experiment);
    ``announce(name)`` is called before each experiment starts. With an ``executor``
    (``deeplimit.executors``), the points the store lacks are first computed in parallel
    through it; then each figure is drawn from the store."""
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
        outcome = run_sweep(points, store, executor)
        if outcome.stopped:
            raise KeyboardInterrupt
    reproductions = []
    for experiment in members:
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
