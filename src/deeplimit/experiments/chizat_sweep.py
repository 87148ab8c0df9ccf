"""``ErrorSweep``: the skeleton of a Chizat study of the error against one axis.

Every such study (chizat.md §6: error vs alpha, vs D, vs M, ...) does the same thing for each
value of its axis: train a seed-averaged *same-depth* reference network (the limit, with its own
CLT error as a budget), train the measured networks, take their RMS error against the reference
at the last GD step, keep track of the networks that diverged; then it stores one dataset (see
:func:`~.chizat_common.error_dataset`), fits log-log slopes of the errors against the axis and
draws them. A study declares only what differs:

- ``axis`` (the dataset dimension, e.g. ``"dim"``), ``values_field`` (the spec field holding
  the values, e.g. ``"dims"``), ``axis_label`` (the x label) and ``label(value)`` (``"D=8"``);
- :meth:`ErrorSweep.setting`: the network at one value (``depth``, ``width``, ``dim`` and the
  options of ``train_networks`` such as ``lr`` or ``scaling``);
- ``common_random_numbers``: whether every value trains the same seed indices;
- ``slopes``: the slope claims (:class:`Slope`: id, quantity, expected slope, tolerance, whether
  the reference budget is part of the claim) with :meth:`ErrorSweep.statement` for their text;
- :meth:`caption`, ``smoke_settings``/``full_settings``, ``name``/``title``/``Spec`` as usual.

The spec must have ``seeds``, ``reference_width``, ``reference_seeds``, ``steps``, ``dtype``
(see :class:`ErrorSweepSpec`). ``chizat_alpha`` and ``chizat_dim`` are complete examples in
about 100 lines each.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import xarray as xr
from matplotlib.figure import Figure

from .base import Claim, Progress
from .chizat_common import (
    COLORS,
    REFERENCE_INDEX,
    ChizatExperiment,
    ChizatSpec,
    Divergence,
    Tracker,
    error_dataset,
    error_pair,
    error_rows,
    plot_series,
    reference_line,
    reference_network_limit,
    train_networks,
)
from .claims import bound
from .plotting import add_caption, panel_grid
from .spec_fields import DType, Positive, PositiveInt, Seeds

__all__ = ["BUDGET_FRACTION", "ErrorSweep", "ErrorSweepSpec", "Slope", "budget_text"]

BUDGET_FRACTION = 0.2  # chizat.md §6: the reference's own error <= 1/5 of the measured one


class ErrorSweepSpec(ChizatSpec):
    """Fields every error sweep has; a study adds its axis and the fixed sizes."""

    seeds: Seeds = 8
    reference_width: PositiveInt = 2048
    reference_seeds: Seeds = 8
    steps: PositiveInt = 6
    lr: Positive = 0.5
    dtype: DType = "float64"


@dataclass(frozen=True)
class Slope:
    """A slope claim of an error sweep: ``quantity`` (``"embedding"`` or ``"output"``) against
    the axis has slope ``expected`` within ``tolerance``; with ``budget``, the reference's own
    error must also be at most ``BUDGET_FRACTION`` of the measured error at every value."""

    claim_id: str
    quantity: str
    expected: float
    tolerance: float
    budget: bool = False
    guide: str = ""  # legend of the dashed guide line at the expected slope ("" for none)


class ErrorSweep(ChizatExperiment):
    """Base of the Chizat error-against-one-axis studies (see the module docstring)."""

    suite = "chizat"
    axis: ClassVar[str]
    values_field: ClassVar[str]
    axis_label: ClassVar[str]
    axis_symbol: ClassVar[str]  # the axis in claim texts: "D", "alpha"
    cast: ClassVar[type] = float
    common_random_numbers: ClassVar[bool] = False
    slopes: ClassVar[tuple[Slope, ...]] = ()

    # --- what a study declares -------------------------------------------------------------

    @property
    def table(self) -> dict[str, str]:  # type: ignore[override]
        """The printed table: one row per value of the axis."""
        return {
            self.axis: self.axis_symbol,
            "embedding_error": "emb. error",
            "output_error": "output error",
            "reference_clt": "reference emb. error",
            "diverged": "diverged",
        }

    def label(self, value: Any) -> str:
        return f"{self.axis}={value:g}"

    def setting(self, spec: Any, value: Any) -> dict[str, Any]:
        """``train_networks`` arguments at ``value``: ``depth``, ``width`` (of the measured
        networks), ``dim`` and options (``lr`` or ``scaling``, ``activation``, ...)."""
        raise NotImplementedError

    def statement(self, slope: Slope, dataset: xr.Dataset, spec: Any) -> str:
        raise NotImplementedError

    # --- the skeleton ----------------------------------------------------------------------

    def values(self, spec: Any) -> tuple[Any, ...]:
        return tuple(getattr(spec, self.values_field))

    def seed_indices(self, spec: Any, index: int) -> range:
        """Measured networks' seed indices at the ``index``-th value: the same for every value
        with common random numbers, else a block of its own."""
        start = 0 if self.common_random_numbers else index * 1000
        return range(start, start + spec.seeds)

    def compute(self, spec: Any, progress: Progress | None = None) -> xr.Dataset:
        values = self.values(spec)
        settings = [self.setting(spec, value) for value in values]
        cost = [s["depth"] * s["dim"] for s in settings]
        tracker = Tracker(
            sum(
                c * (s["width"] * spec.seeds + spec.reference_width * spec.reference_seeds)
                for c, s in zip(cost, settings, strict=True)
            ),
            progress,
        )
        divergence = Divergence()
        common = dict(steps=spec.steps, seed=spec.seed, device=spec.device, dtype=spec.dtype)
        errors = np.full((len(values), 2), np.nan)
        budgets = np.full((len(values), 2), np.nan)
        diverged = np.zeros(len(values), dtype=int)
        for index, (value, setting) in enumerate(zip(values, settings, strict=True)):
            label = self.label(value)
            network = {k: v for k, v in setting.items() if k != "width"}
            reference_run = train_networks(
                width=spec.reference_width,
                seeds=range(REFERENCE_INDEX, REFERENCE_INDEX + spec.reference_seeds),
                chunk=4,
                **network,
                **common,
            )
            divergence.add(f"reference {label}", reference_run)
            reference, budget = reference_network_limit(
                reference_run, description=f"reference {label}"
            )
            budgets[index] = budget["embeddings_clt"], budget["outputs_clt"]
            tracker.advance(cost[index] * spec.reference_width * spec.reference_seeds)
            result = train_networks(
                width=setting["width"], seeds=self.seed_indices(spec, index), **network, **common
            )
            divergence.add(label, result)
            diverged[index] = int(result.diverged.sum())
            errors[index] = error_pair(result, reference, spec.steps)
            tracker.advance(cost[index] * setting["width"] * spec.seeds)
        return error_dataset(
            self.axis, values, errors, budgets, diverged, {"divergence_note": divergence.note()}
        )

    def summarize(self, dataset: xr.Dataset, spec: Any) -> list[dict[str, Any]]:
        return error_rows(dataset, self.axis, self.cast)

    def budget_ratio(self, dataset: xr.Dataset) -> np.ndarray:
        """The reference's own embedding error over the measured one, per value."""
        return dataset.reference_embeddings_clt.values / dataset.embedding_error.values

    def check(self, dataset: xr.Dataset, spec: Any) -> list[Claim]:
        ratio = self.budget_ratio(dataset)
        finite = ratio[np.isfinite(ratio)]
        worst = float(finite.max()) if finite.size else 0.0
        claims = []
        for slope in self.slopes:
            requires = None
            if slope.budget:
                requires = {
                    "reference error / measured error": bound(
                        worst, at_most=BUDGET_FRACTION, n=finite.size
                    )
                }
            claims.append(
                Claim.slope(
                    slope.claim_id,
                    self.statement(slope, dataset, spec),
                    dataset[self.axis].values,
                    dataset[f"{slope.quantity}_error"].values,
                    expected=slope.expected,
                    tolerance=slope.tolerance,
                    what=f"{slope.quantity} error vs {self.axis_symbol}",
                    note=dataset.attrs.get("divergence_note", ""),
                    requires=requires,
                )
            )
        return claims

    def draw(self, dataset: xr.Dataset, spec: Any) -> Figure:
        """Two log-log panels: embedding error (with the reference's own error) and output
        error against the axis, fitted power laws dotted, expected slopes dashed grey."""
        figure, axes = panel_grid(2, columns=2, size=(4.6, 3.5))
        x = dataset[self.axis].values
        for ax, quantity, color in (
            (axes[0], "embedding", COLORS[0]),
            (axes[1], "output", COLORS[1]),
        ):
            values = dataset[f"{quantity}_error"].values
            plot_series(ax, x, values, label="networks", color=color)
            if quantity == "embedding":
                plot_series(
                    ax,
                    x,
                    dataset.reference_embeddings_clt.values,
                    label="reference (its own error)",
                    color=COLORS[5],
                    fit=False,
                    marker="s",
                    style=":",
                )
            for slope in self.slopes:
                if slope.quantity == quantity and slope.guide and np.isfinite(values[0]):
                    reference_line(ax, x, values[0] * 0.8, slope.expected, slope.guide)
            ax.set_title(f"{quantity} error ({self.panel_title(spec)})")
            ax.set_xlabel(self.axis_label)
            ax.set_ylabel("RMS error at step K")
            ax.legend(fontsize=7, frameon=False)
        add_caption(figure, self.title, dataset.attrs["caption"])
        return figure

    def panel_title(self, spec: Any) -> str:
        return ", ".join(
            f"{name}={getattr(spec, field)}"
            for name, field in (("L", "depth"), ("M", "width"), ("D", "dim"))
            if hasattr(spec, field)
        )


def budget_text(ratio: np.ndarray) -> str:
    """``"<= 0.12 (within the 1/5 budget)"`` for the statements."""
    worst = float(np.nanmax(ratio)) if np.isfinite(ratio).any() else float("nan")
    within = "within" if worst <= BUDGET_FRACTION else "above"
    return f"<= {worst:.2f} ({within} the 1/5 budget)"
