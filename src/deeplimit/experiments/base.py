"""What an experiment is: a typed spec, ``run``, ``plot``, ``claims`` and a caption.

An experiment reproduces one figure or study. Its spec is a frozen pydantic model whose
defaults are the fast setting and whose ``full()`` is the paper-scale one; the spec
round-trips through JSON and hashes stably, so results can be stored under it. ``run(spec)``
returns an ``xarray.Dataset`` with named dimensions, ``plot`` draws the figure from the dataset
alone (so figures can be redrawn from stored results), and ``claims`` turns the dataset into the
checkable statements of the paper with a measured value, the expected value, a tolerance and a
verdict.

A study that *diverged* (its training runs or limits blew up, so some of the numbers it asks
for do not exist) says so in its dataset: the attribute ``diverged`` is a one-line reason
(:func:`divergence_of` reads it). The runner then records the point as ``diverged`` instead of
``ok``, the figure is drawn with what stayed finite, and the command line exits with status 3.

A spec's ``device`` is checked for its form when the spec is built or read, and for being
available on this machine only when the experiment runs, so that results computed on a GPU can
be read, plotted and checked on a laptop.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Callable
from typing import Any, ClassVar

import xarray as xr
from matplotlib.figure import Figure
from pydantic import BaseModel, ConfigDict

from ..devices import resolve_device
from ..tasks import Progress
from .claims import Claim
from .spec_fields import Device, NonNegativeInt

__all__ = ["SCALES", "Claim", "Experiment", "ExperimentSpec", "Progress", "divergence_of"]

SCALES = ("fast", "full", "smoke")


class ExperimentSpec(BaseModel):
    """Base of every experiment spec: frozen, no unknown fields, JSON round trip."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    seed: NonNegativeInt = 0
    device: Device = "cpu"  # its form; whether it is available here is checked by run

    def canonical_json(self) -> str:
        return json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))

    def spec_hash(self) -> str:
        """A stable 16-hex-digit hash of the spec's content."""
        return hashlib.sha256(self.canonical_json().encode()).hexdigest()[:16]


def divergence_of(dataset: xr.Dataset) -> str | None:
    """Why the study of ``dataset`` diverged (its attribute ``diverged``), or None."""
    reason = dataset.attrs.get("diverged")
    if reason is None or (isinstance(reason, str) and not reason.strip()):
        return None
    if not isinstance(reason, str):  # a flag or a count stored by hand
        return "diverged" if bool(reason) else None
    return " ".join(reason.split())


def _checking_device(run: Callable[..., xr.Dataset]) -> Callable[..., xr.Dataset]:
    @functools.wraps(run)
    def checked(self: Experiment, spec: ExperimentSpec, *args: Any, **kwargs: Any) -> xr.Dataset:
        resolve_device(spec.device)
        return run(self, spec, *args, **kwargs)

    checked._checks_device = True  # type: ignore[attr-defined]
    return checked


class Experiment:
    """Base class; subclasses set ``name``, ``title``, ``Spec`` and implement the methods.

    Every subclass's ``run`` first checks that ``spec.device`` is available here."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        run = cls.__dict__.get("run")
        if run is not None and not getattr(run, "_checks_device", False):
            cls.run = _checking_device(run)  # type: ignore[method-assign]

    name: ClassVar[str]
    title: ClassVar[str]
    Spec: ClassVar[type[ExperimentSpec]]
    # the report this experiment belongs to ("hayou", "chizat") and its place in it
    suite: ClassVar[str] = ""
    order: ClassVar[float] = 0.0
    # statistics() row keys shown in printed tables, with their column labels
    table: ClassVar[dict[str, str]] = {}

    def fast(self, **overrides: Any) -> ExperimentSpec:
        """The default, fast setting (minutes at most on a laptop CPU)."""
        return self.Spec(**overrides)

    def full(self, **overrides: Any) -> ExperimentSpec:
        """The paper-scale setting."""
        return self.Spec(**{**self.full_settings(), **overrides})

    def full_settings(self) -> dict[str, Any]:
        return {}

    def smoke(self, **overrides: Any) -> ExperimentSpec:
        """A tiny setting that exercises the whole pipeline in seconds (verdicts meaningless)."""
        return self.Spec(**{**self.smoke_settings(), **overrides})

    def smoke_settings(self) -> dict[str, Any]:
        return {}

    def spec_for(self, scale: str, **overrides: Any) -> ExperimentSpec:
        """The spec at ``scale``: ``"fast"`` (default), ``"full"`` (paper) or ``"smoke"``."""
        if scale not in SCALES:
            raise ValueError(f"scale must be one of {', '.join(SCALES)}, got {scale!r}")
        return {"fast": self.fast, "full": self.full, "smoke": self.smoke}[scale](**overrides)

    # --- what a study implements: compute, summarize, check, draw (each given the spec) ---

    def compute(self, spec: Any, progress: Progress | None = None) -> xr.Dataset:
        """The dataset of ``spec`` (``run`` adds the attributes ``spec`` and ``caption``)."""
        raise NotImplementedError

    def summarize(self, dataset: xr.Dataset, spec: Any) -> list[dict[str, Any]]:
        """Rows of numbers worth printing and saving (one per depth, width, ...)."""
        return []

    def check(self, dataset: xr.Dataset, spec: Any) -> list[Claim]:
        """The claims the dataset supports (built with the ``Claim`` constructors)."""
        return []

    def draw(self, dataset: xr.Dataset, spec: Any) -> Figure:
        raise NotImplementedError

    def caption(self, spec: Any) -> str:
        raise NotImplementedError

    # --- what callers use: the spec is read back from the dataset once, here ---

    def run(self, spec: ExperimentSpec, progress: Progress | None = None) -> xr.Dataset:
        """``compute(spec)``, stamped with the spec (JSON) and the caption; a dataset attribute
        ``divergence_note`` (networks that diverged) is appended to the caption. The device is
        checked for being available here first."""
        resolve_device(spec.device)
        dataset = self.compute(spec, progress)
        dataset.attrs["spec"] = spec.model_dump_json()
        dataset.attrs["caption"] = self.caption(spec) + dataset.attrs.get("divergence_note", "")
        return dataset

    def plot(self, dataset: xr.Dataset) -> Figure:
        return self.draw(dataset, self.spec_from_dataset(dataset))

    def statistics(self, dataset: xr.Dataset) -> list[dict[str, Any]]:
        """Rows of numbers worth printing and saving (one per depth, width, ...)."""
        return self.summarize(dataset, self.spec_from_dataset(dataset))

    def claims(self, dataset: xr.Dataset) -> list[Claim]:
        return self.check(dataset, self.spec_from_dataset(dataset))

    def divergence(self, dataset: xr.Dataset) -> str | None:
        """Why the study of ``dataset`` diverged, or None (what the runner records)."""
        return divergence_of(dataset)

    def spec_from_dataset(self, dataset: xr.Dataset) -> ExperimentSpec:
        """Every dataset an experiment returns stores its spec as the attribute ``spec``."""
        return self.Spec.model_validate_json(dataset.attrs["spec"])
