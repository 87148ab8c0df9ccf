"""``ErrorSweep``: the skeleton of a Chizat study of networks measured along one axis.

Every such study (chizat.md §6: error vs alpha, vs D, vs M, vs L, ...) trains networks at the
*points* of a grid and measures them against a limit: for each point it gets the limit once per
key (by default a seed-averaged *same-depth* reference network, with its own CLT error as a
budget), trains the networks, measures them (by default the RMS errors of the embeddings and of
the outputs at the last GD step), keeps track of the networks that diverged; then it stores one
dataset, checks slope claims and draws log-log panels. A study declares only what differs:

- ``axis`` (the dataset dimension, e.g. ``"dim"``), ``values_field`` (the spec field holding
  the values, e.g. ``"dims"``), ``axis_label`` (the x label, mathtext), ``axis_symbol`` (the
  axis in claim texts) and ``label(value)`` (``"D=8"``);
- :meth:`ErrorSweep.setting`: the network at one value (``depth``, ``width``, ``dim`` and the
  options of ``train_networks`` such as ``lr``, ``scaling`` or ``activation``);
- ``common_random_numbers``: whether every value trains the same seed indices;
- ``slopes``: the slope claims (:class:`Slope`) with :meth:`ErrorSweep.statement` for their
  text (and :meth:`~ErrorSweep.requires`, :meth:`~ErrorSweep.details` where they need more);
- :meth:`caption`, ``smoke_settings``/``full_settings``, ``name``/``title``/``Spec`` as usual.

Hooks for the studies that differ more (each a few lines in the study):

- :meth:`~ErrorSweep.points`: the grid, as :class:`Point` s (several curves ``series`` with
  their own values, two axes, several values trained in one call with ``batch``);
- :meth:`~ErrorSweep.limit`: another limit per key (an exact ODE, none);
- :meth:`~ErrorSweep.measure`: other numbers per point (per network with a ``seed`` dimension);
- :meth:`~ErrorSweep.assemble`: dataset variables that are not per point;
- :meth:`~ErrorSweep.panels`: other or extra panels (:func:`loglog_panel` draws one).

``chizat_alpha`` and ``chizat_dim`` use only the declarations; ``chizat_width`` (two series, one
shared reference, an exact limit), ``chizat_depth`` (a depth x width grid against exact limits),
``chizat_lazy`` (unit movements, no limit) and ``chizat_lazy_optimum`` (an optimum over alpha per
width) use the hooks.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import math
import re
from collections.abc import Hashable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import xarray as xr
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from ..checkpoints import current
from ..training import LimitResult, TrainingResult, limit_error
from .base import Claim, Progress
from .chizat_common import (
    COLORS,
    REFERENCE_INDEX,
    ChizatExperiment,
    ChizatSpec,
    Divergence,
    Tracker,
    chizat_figure,
    error_pair,
    error_rows,
    log_error_bars,
    plot_series,
    reference_line,
    reference_network_limit,
    rms_over,
    train_networks,
)
from .claims import bound
from .spec_fields import DType, Positive, PositiveInt, Seeds

__all__ = [
    "BUDGET_FRACTION",
    "SMOKE",
    "ErrorSweep",
    "ErrorSweepSpec",
    "Point",
    "Slope",
    "budget_text",
    "loglog_panel",
    "select_networks",
]

BUDGET_FRACTION = 0.2  # chizat.md §6: the reference's own error <= 1/5 of the measured one
SMOKE = {"seeds": 2, "reference_seeds": 2, "steps": 2}  # what every smoke setting shares
Limit = tuple[LimitResult | None, dict[str, float] | None]  # a limit and its error budget


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
    """A slope claim of an error sweep: ``quantity`` (``"embedding"`` or ``"output"``) of the
    curve ``series`` against the axis has slope ``expected`` within ``tolerance``; with
    ``budget``, the reference's own error must also be at most ``BUDGET_FRACTION`` of the
    measured error at every value; ``guide`` labels a dashed line at the expected slope."""

    claim_id: str
    quantity: str
    expected: float
    tolerance: float
    budget: bool = False
    guide: str = ""
    series: str = ""
    what: str = ""  # the statistic's name, default "<quantity> error vs <axis_symbol>"


@dataclass(frozen=True, eq=False)
class Point:
    """One setting of a sweep.

    ``coords``: where its numbers go in the dataset (``{"width": 16}``; the dimensions of a
    ``series`` are prefixed with its name, ``"tanh_width"``); ``label``: its name in divergence
    notes; ``network``: ``train_networks`` arguments (``depth``, ``width``, ``dim``,
    ``activation``, ``lr`` or ``scaling``, ...); ``seeds``: seed indices of its networks;
    ``limit``: the key of its limit (:meth:`ErrorSweep.limit` runs once per key; ``None``: no
    limit); ``batch``: consecutive points with the same batch name are trained in one call
    (their networks may differ only in ``scaling``), the name labels it in divergence notes."""

    coords: dict[str, Any]
    label: str
    network: dict[str, Any]
    seeds: tuple[int, ...]
    limit: Hashable = None
    series: str = ""
    batch: str | None = None
    cost: float = field(init=False)

    def __post_init__(self) -> None:
        size = self.network["depth"] * self.network["width"] * self.network["dim"]
        object.__setattr__(self, "cost", float(size * len(self.seeds)))


class ErrorSweep(ChizatExperiment):
    """Base of the Chizat studies along one axis (see the module docstring)."""

    suite = "chizat"
    axis: ClassVar[str]
    values_field: ClassVar[str]
    axis_label: ClassVar[str]
    axis_symbol: ClassVar[str]  # the axis in claim texts: "D", "alpha"
    cast: ClassVar[type] = float
    common_random_numbers: ClassVar[bool] = False
    slopes: ClassVar[tuple[Slope, ...]] = ()
    figure_size: ClassVar[tuple[float, float]] = (3.7, 3.0)  # inches per panel

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

    def requires(self, slope: Slope, dataset: xr.Dataset, spec: Any) -> dict[str, Any] | None:
        """Further checks of a slope claim: by default, with ``slope.budget``, the reference's
        own error at most ``BUDGET_FRACTION`` of the measured one at every value."""
        if not slope.budget:
            return None
        ratio = self.budget_ratio(dataset)
        finite = ratio[np.isfinite(ratio)]
        worst = float(finite.max()) if finite.size else 0.0
        return {
            "reference error / measured error": bound(worst, at_most=BUDGET_FRACTION, n=finite.size)
        }

    def details(self, slope: Slope, dataset: xr.Dataset, spec: Any) -> dict[str, Any] | None:
        return None

    # --- the grid, the limits, the measurements ---------------------------------------------

    def values(self, spec: Any) -> tuple[Any, ...]:
        return tuple(getattr(spec, self.values_field))

    def seed_indices(self, spec: Any, index: int, count: int | None = None) -> tuple[int, ...]:
        """Measured networks' seed indices at the ``index``-th value: the same for every value
        with common random numbers, else a block of its own."""
        start = 0 if self.common_random_numbers else index * 1000
        return tuple(range(start, start + (spec.seeds if count is None else count)))

    def points(self, spec: Any) -> Iterable[Point]:
        """One point per value of the axis, each against a reference of its own."""
        for index, value in enumerate(self.values(spec)):
            yield Point(
                {self.axis: value},
                self.label(value),
                self.setting(spec, value),
                self.seed_indices(spec, index),
                limit=value,
            )

    def limit(self, spec: Any, point: Point, divergence: Divergence) -> Limit:
        """The limit of ``point`` (called for the first point of each ``limit`` key): by
        default the seed mean of ``spec.reference_seeds`` networks of width
        ``spec.reference_width`` with the point's other settings."""
        return self.reference(spec, point.network, f"reference {point.label}", divergence)

    def reference(
        self,
        spec: Any,
        network: dict[str, Any],
        label: str,
        divergence: Divergence,
        description: str | None = None,
    ) -> Limit:
        """Same-depth reference networks (chizat.md §2.4(1)) of ``network`` at width
        ``spec.reference_width``: the limit and its budget (RMS standard error of the mean)."""
        run = train_networks(
            **{**network, "width": spec.reference_width},
            seeds=range(REFERENCE_INDEX, REFERENCE_INDEX + spec.reference_seeds),
            chunk=4,
            **self.common(spec),
        )
        divergence.add(label, run)
        return reference_network_limit(run, description=description or label)

    def limit_cost(self, spec: Any, point: Point) -> float:
        """Work of computing the limit of ``point`` (for progress): reference networks."""
        if point.limit is None or not hasattr(spec, "reference_width"):
            return 0.0
        size = point.network["depth"] * point.network["dim"] * spec.reference_width
        return float(size * spec.reference_seeds)

    def common(self, spec: Any) -> dict[str, Any]:
        return {"steps": spec.steps, "seed": spec.seed, "device": spec.device, "dtype": spec.dtype}

    def measure(
        self, spec: Any, result: TrainingResult, limit: Limit, point: Point
    ) -> dict[str, Any]:
        """The numbers of one point: a scalar, or ``(dims, array)`` for per-network values.
        By default the RMS errors at step K, the reference's budget and the diverged count."""
        reference, budget = limit
        row: dict[str, Any] = dict(
            zip(("embedding_error", "output_error"), error_pair(result, reference, spec.steps))
        )
        if budget is not None:
            row["reference_embeddings_clt"] = budget["embeddings_clt"]
            row["reference_outputs_clt"] = budget["outputs_clt"]
        row["diverged"] = int(result.diverged.sum())
        if reference is not None:  # per network, for the bars of the figure
            for name, quantity in (("embedding", "embeddings"), ("output", "outputs")):
                error = limit_error(
                    result, reference, step=spec.steps, quantity=quantity, per_seed=True
                )
                row[f"{name}_errors"] = (
                    ("seed",),
                    np.where(result.diverged.numpy(), np.nan, error.double().numpy()),
                )
        return row

    def assemble(
        self,
        spec: Any,
        points: list[Point],
        rows: list[dict[str, Any]],
        divergence: Divergence,
    ) -> xr.Dataset:
        """The dataset: every measurement on the grid of its series (see :class:`Point`), and
        the divergence note."""
        parts = []
        for series in dict.fromkeys(point.series for point in points):
            chosen = [i for i, point in enumerate(points) if point.series == series]
            part = grid_dataset([points[i] for i in chosen], [rows[i] for i in chosen])
            if series:
                names = [*part.variables, *part.dims]
                part = part.rename({name: f"{series}_{name}" for name in names})
            parts.append(part)
        merged = xr.merge(parts, combine_attrs="drop")
        return merged.assign_attrs(divergence_note=divergence.note())

    # --- the skeleton ----------------------------------------------------------------------

    def compute(self, spec: Any, progress: Progress | None = None) -> xr.Dataset:
        """Each batch of points is a unit of :func:`~deeplimit.checkpoints.current`: its rows
        and the divergence records it made are saved when it finishes, and loaded instead of
        computed when an interrupted run of the same spec is resumed. A limit is computed
        when the first batch that needs it is computed (again after a resume if that batch
        was loaded); its divergence records count once."""
        points = list(self.points(spec))
        first = {}
        for point in points:
            first.setdefault(point.limit, point)
        total = sum(p.cost for p in points)
        tracker = Tracker(total + sum(self.limit_cost(spec, p) for p in first.values()), progress)
        divergence = Divergence()
        log = _DivergenceLog(divergence)
        limits: dict[Hashable, Limit] = {None: (None, None)}
        rows: list[dict[str, Any]] = []
        checkpoint = current()

        def work(batch: list[Point]) -> dict[str, Any]:
            log.start()
            for point in batch:
                if point.limit not in limits:
                    with log.limit():
                        limits[point.limit] = self.limit(spec, point, log)
                    tracker.advance(self.limit_cost(spec, point))
            result = train_batch(batch, **self.common(spec))
            log.add(batch[0].batch or batch[0].label, result)
            measured = [
                self.measure(spec, part, limits[point.limit], point)
                for point, part in zip(batch, split(result, batch), strict=True)
            ]
            return {**_pack_rows(measured), **log.pack()}

        for index, batch in enumerate(batches(points)):
            name = _unit_name(index, batch[0].batch or batch[0].label)
            arrays = checkpoint.unit(name, lambda batch=batch: work(batch))
            if log.computed is None:  # loaded from an earlier run: replay its records
                log.replay(arrays)
                skipped = [p for p in batch if p is first[p.limit] and p.limit not in limits]
                tracker.advance(sum(self.limit_cost(spec, p) for p in skipped))
            log.computed = None
            rows.extend(_unpack_rows(arrays, len(batch)))
            tracker.advance(sum(point.cost for point in batch))
        return self.assemble(spec, points, rows, divergence)

    def summarize(self, dataset: xr.Dataset, spec: Any) -> list[dict[str, Any]]:
        return error_rows(dataset, self.axis, self.cast)

    def budget_ratio(self, dataset: xr.Dataset) -> np.ndarray:
        """The reference's own embedding error over the measured one, per value."""
        return dataset.reference_embeddings_clt.values / dataset.embedding_error.values

    def check(self, dataset: xr.Dataset, spec: Any) -> list[Claim]:
        return [self.slope_claim(slope, dataset, spec) for slope in self.slopes]

    def slope_data(self, slope: Slope, dataset: xr.Dataset) -> tuple[np.ndarray, np.ndarray]:
        """The points ``(x, y)`` of a slope claim: ``<quantity>_error`` of its series."""
        prefix = f"{slope.series}_" if slope.series else ""
        return dataset[prefix + self.axis].values, dataset[f"{prefix}{slope.quantity}_error"].values

    def slope_claim(self, slope: Slope, dataset: xr.Dataset, spec: Any) -> Claim:
        return Claim.slope(
            slope.claim_id,
            self.statement(slope, dataset, spec),
            *self.slope_data(slope, dataset),
            expected=slope.expected,
            tolerance=slope.tolerance,
            what=slope.what or f"{slope.quantity} error vs {self.axis_symbol}",
            note=dataset.attrs.get("divergence_note", ""),
            requires=self.requires(slope, dataset, spec),
            details=self.details(slope, dataset, spec),
        )

    # --- the figure ------------------------------------------------------------------------

    def draw(self, dataset: xr.Dataset, spec: Any) -> Figure:
        """The panels of :meth:`panels` in one row, in the Chizat house style
        (:func:`~.chizat_common.chizat_figure`: maths labels, panel letters, labelled log
        ticks, legends over no data); no caption in the image (the report shows
        ``dataset.attrs["caption"]``)."""
        count = self.panel_count(spec)
        with chizat_figure(count, columns=count, size=self.figure_size) as (figure, axes):
            self.panels(axes, dataset, spec)
        return figure

    def panel_count(self, spec: Any) -> int:
        return 2

    def panels(self, axes: list[Axes], dataset: xr.Dataset, spec: Any) -> None:
        """Embedding and output error against the axis (with the reference's own error),
        fitted power laws dotted, expected slopes dashed grey."""
        series = list(dict.fromkeys(slope.series for slope in self.slopes)) or [""]
        for ax, quantity in zip(axes, ("embedding", "output"), strict=False):
            curves = []
            for color, name in zip(COLORS, series, strict=False):
                prefix = f"{name}_" if name else ""
                errors = dataset.get(f"{prefix}{quantity}_errors")  # absent in older datasets
                bars = {} if errors is None else {"bars": rms_over(errors.values)[1]}
                curves.append(
                    (
                        dataset[prefix + self.axis].values,
                        dataset[f"{prefix}{quantity}_error"].values,
                        self.series_label(name, spec),
                        color,
                        bars,
                    )
                )
            reference = f"reference_{quantity}s_clt"
            if not series[0] and reference in dataset:
                curves.append(
                    (
                        dataset[self.axis].values,
                        dataset[reference].values,
                        "reference (its own error)",
                        COLORS[5],
                        {"fit": False, "marker": "s", "style": ":"},
                    )
                )
            guides = [s for s in self.slopes if s.quantity == quantity and s.guide]
            loglog_panel(
                ax,
                curves,
                xlabel=self.axis_label,
                ylabel=r"RMS error at step $K$",
                title=f"{quantity} error ({self.panel_title(spec, quantity)})",
                guides=[(g.expected, g.guide, curves[series.index(g.series)]) for g in guides],
            )

    def series_label(self, series: str, spec: Any) -> str:
        return series or "networks"

    def panel_title(self, spec: Any, quantity: str) -> str:
        return ", ".join(
            f"${name}={getattr(spec, field)}$"
            for name, field in (("L", "depth"), ("M", "width"), ("D", "dim"))
            if hasattr(spec, field)
        )


def loglog_panel(
    ax: Axes,
    curves: Sequence[tuple],
    *,
    xlabel: str,
    ylabel: str,
    title: str = "",
    guides: Sequence[tuple[float, str, tuple]] = (),
) -> None:
    """One log-log panel: ``curves`` are ``(x, y, label, color[, plot_series options])``,
    each with its fitted power law (dotted, its slope in the label) and, with the option
    ``bars`` (relative half-widths, :func:`~.chizat_common.rms_over`), its 95% error bars;
    ``guides`` are ``(slope, label, curve)``: a dashed grey power law through the first point
    of ``curve``."""
    for x, y, label, color, *options in curves:
        options = dict(options[0]) if options else {}
        bars = options.pop("bars", None)
        plot_series(ax, x, y, label=label, color=color, **options)
        if bars is not None:
            log_error_bars(ax, x, y, bars, fmt="none", color=color)
    for slope, label, (x, y, *_) in guides:
        y = np.asarray(y, dtype=float)
        if np.isfinite(y[0]):
            reference_line(ax, x, y[0] * 0.8, slope, label)
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title)


def grid_dataset(points: Sequence[Point], rows: Sequence[dict[str, Any]]) -> xr.Dataset:
    """The measurements ``rows`` of ``points`` (in row-major order of their ``coords``) as
    arrays over those coordinates (and the extra dimensions of per-network values)."""
    dims = list(points[0].coords)
    coords = {d: list(dict.fromkeys(p.coords[d] for p in points)) for d in dims}
    shape = tuple(len(values) for values in coords.values())
    if math.prod(shape) != len(rows):
        raise ValueError(f"the points do not fill the grid {shape}: {len(rows)} of them")
    variables = {}
    for name, first in rows[0].items():
        extra, _ = first if isinstance(first, tuple) else ((), None)
        values = [row[name][1] if extra else row[name] for row in rows]
        array = np.asarray(values)
        variables[name] = ((*dims, *extra), array.reshape(shape + array.shape[1:]))
    return xr.Dataset(variables, coords=coords)


def _unit_name(index: int, label: str) -> str:
    """The checkpoint unit of the ``index``-th batch (labelled ``label``)."""
    return f"batch{index:04d}-" + re.sub(r"[^A-Za-z0-9_.=+-]", "_", label)[:180]


def _pack_rows(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The measured ``rows`` of a batch as named arrays (per-network values keep their
    dimension names in a ``__dims`` text entry)."""
    arrays: dict[str, Any] = {}
    for i, row in enumerate(rows):
        for name, value in row.items():
            if isinstance(value, tuple):
                dims, value = value
                arrays[f"row{i}__{name}__dims"] = np.array(",".join(dims))
            arrays[f"row{i}__{name}"] = value
    return arrays


def _unpack_rows(arrays: dict[str, np.ndarray], count: int) -> list[dict[str, Any]]:
    """The inverse of :func:`_pack_rows` (the same numbers, dtypes and order of fields)."""
    rows: list[dict[str, Any]] = [{} for _ in range(count)]
    for key, value in arrays.items():
        if not key.startswith("row") or key.endswith("__dims"):
            continue
        index, name = key[3:].split("__", 1)
        dims = arrays.get(f"{key}__dims")
        if dims is not None:
            rows[int(index)][name] = (tuple(str(dims).split(",")), value)
        else:
            rows[int(index)][name] = value[()] if value.ndim == 0 else value
    return rows


class _DivergenceLog:
    """What a batch unit records into the study's :class:`Divergence` (the networks' steps of
    divergence, the limits that diverged), kept so that a loaded unit replays it. Records made
    while a limit is computed count once per label, whether the limit was computed again after
    a resume or its records came from a loaded unit."""

    def __init__(self, divergence: Divergence) -> None:
        self.divergence = divergence
        self.computed: list[tuple[str, str, Any]] | None = None
        self._in_limit = False
        self._limit_labels: set[tuple[str, str]] = set()

    def start(self) -> None:
        self.computed = []

    @contextlib.contextmanager
    def limit(self) -> Iterator[None]:
        self._in_limit = True
        try:
            yield
        finally:
            self._in_limit = False

    def _record(self, kind: str, label: str, value: Any, from_limit: bool) -> None:
        if from_limit:
            if (kind, label) in self._limit_labels:
                return
            self._limit_labels.add((kind, label))
        if kind == "steps":
            self.divergence.add_steps(label, value)
        else:
            self.divergence.limits[label] = int(value)
        if self.computed is not None:
            self.computed.append((kind if not from_limit else f"limit-{kind}", label, value))

    def add(self, label: str, result: TrainingResult) -> None:
        self.add_steps(label, result.diverged_at.cpu().numpy())

    def add_steps(self, label: str, diverged_at: Any) -> None:
        self._record("steps", label, np.asarray(diverged_at).reshape(-1), self._in_limit)

    def add_limit(self, label: str, limit: LimitResult) -> None:
        step = int(getattr(limit, "diverged_at", -1))
        if step >= 0:
            self._record("limit", label, step, self._in_limit)

    def pack(self) -> dict[str, Any]:
        records = self.computed or []
        packed: dict[str, Any] = {
            "divergence_kinds": np.array([kind for kind, _, _ in records], dtype=str),
            "divergence_labels": np.array([label for _, label, _ in records], dtype=str),
        }
        for j, (_, _, value) in enumerate(records):
            packed[f"divergence{j}"] = value
        return packed

    def replay(self, arrays: dict[str, np.ndarray]) -> None:
        kinds = arrays["divergence_kinds"].tolist()
        labels = arrays["divergence_labels"].tolist()
        for j, (kind, label) in enumerate(zip(kinds, labels, strict=True)):
            from_limit = kind.startswith("limit-")
            self._record(kind.removeprefix("limit-"), label, arrays[f"divergence{j}"], from_limit)


def batches(points: Sequence[Point]) -> list[list[Point]]:
    """Consecutive points with the same ``batch`` name together; a point without one alone."""
    groups: list[list[Point]] = []
    for point in points:
        if groups and point.batch is not None and groups[-1][0].batch == point.batch:
            groups[-1].append(point)
        else:
            groups.append([point])
    return groups


def train_batch(batch: Sequence[Point], **common: Any) -> TrainingResult:
    """The networks of ``batch`` in one ``train_networks`` call, in order."""
    network = dict(batch[0].network)
    if len(batch) > 1:
        network["scaling"] = [p.network["scaling"] for p in batch for _ in p.seeds]
    return train_networks(**network, seeds=[s for p in batch for s in p.seeds], **common)


def split(result: TrainingResult, batch: Sequence[Point]) -> list[TrainingResult]:
    """``result`` of :func:`train_batch` cut back into the networks of each point."""
    if len(batch) == 1:
        return [result]
    edges = np.cumsum([0] + [len(p.seeds) for p in batch])
    return [select_networks(result, slice(a, b)) for a, b in itertools.pairwise(edges)]


def select_networks(result: TrainingResult, which: slice) -> TrainingResult:
    """The networks ``which`` of ``result`` (records per network sliced, the rest shared)."""
    per_network = ("outputs", "embeddings", "loss", "diverged_at", "residual_scale")
    changes: dict[str, Any] = {name: getattr(result, name)[which] for name in per_network}
    changes["movement"] = {k: v[which] for k, v in result.movement.items()}
    changes["learning_rates"] = {k: v[which] for k, v in result.learning_rates.items()}
    if result.states is not None:
        changes["states"] = result.states[which]
    return dataclasses.replace(result, **changes)


def budget_text(ratio: np.ndarray) -> str:
    """``"<= 0.12 (within the 1/5 budget)"`` for the statements."""
    worst = float(np.nanmax(ratio)) if np.isfinite(ratio).any() else float("nan")
    within = "within" if worst <= BUDGET_FRACTION else "above"
    return f"<= {worst:.2f} ({within} the 1/5 budget)"
