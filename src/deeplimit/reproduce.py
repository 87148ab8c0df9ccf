"""Reproduce an experiment end to end: run, plot, check claims, write files with provenance."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import xarray as xr

from .experiments import Claim, ExperimentSpec, get_experiment
from .experiments.base import Progress
from .experiments.plotting import add_footer, save_figure
from .provenance import provenance, provenance_line
from .results import atomic_write_text, save_result

__all__ = ["Reproduction", "reproduce"]


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

    @property
    def provenance_line(self) -> str:
        return provenance_line(self.provenance)

    @property
    def passed(self) -> bool:
        return all(claim.passed for claim in self.claims)


def reproduce(
    name: str,
    *,
    full: bool = False,
    out: Path | str = "results",
    overrides: dict[str, Any] | None = None,
    progress: Progress | None = None,
) -> Reproduction:
    """Run experiment ``name`` (fast default or ``full`` paper scale) and write its outputs to
    ``out/name/``: ``name.png``, ``name.pdf``, ``name.nc`` (data) and ``name.json`` (spec,
    statistics, claims, provenance)."""
    experiment = get_experiment(name)
    overrides = dict(overrides or {})
    spec = experiment.full(**overrides) if full else experiment.fast(**overrides)
    start = time.perf_counter()
    dataset = experiment.run(spec, progress)
    wall = time.perf_counter() - start
    record = provenance(
        {"experiment": name, "full": full, "spec": spec.model_dump(mode="json")},
        seed=spec.seed,
        device=spec.device,
        wall_time_s=wall,
    )
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
    atomic_write_text(summary_path, json.dumps(summary, indent=2, default=_plain) + "\n")
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
    )


def _plain(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"not JSON serializable: {type(value).__name__}")
