"""Shared pieces of the Chizat experiments (chizat.md §4, §6): training with divergence
bookkeeping, same-depth seed-averaged references, error measurement, slope claims, plots.

Conventions (chizat.md §1.2–§1.3): the 2LP ResNet in "Eq. (22)" units (``u, v`` entries
``N(0, D)``, residual scale ``alpha/(LM)``, raw learning rate ``lr L M D / alpha^2``); an
*error* is the RMS over (coordinates, samples, seeds) of the difference with a limit, at the
last GD step ``K`` (``limit_error``). A diverged network (``train``'s ``diverged_at``) is never
zeroed: it is excluded from the RMS, counted, and its first divergence step is reported.

A *study* diverged when a limit it compares with diverged (``LimitResult.diverged_at``, or a
``TrainingDivergenceWarning`` from a limit) or every network of some setting diverged (nothing
is left to measure there): ``ChizatExperiment.run`` then sets the dataset attribute
``diverged`` (``deeplimit.experiments.base``), so the point is recorded as diverged, whatever the
experiment; partial divergence (some networks of a setting) stays a note in the caption.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import math
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any

import numpy as np
import torch
import xarray as xr
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import NullFormatter
from pydantic import AfterValidator, ValidationInfo

from ..errors import check_choice
from ..stats import SlopeFit, fit_loglog_slope
from ..training import (
    LimitResult,
    Scaling,
    TrainingDivergedError,
    TrainingDivergenceWarning,
    TrainingResult,
    TwoLayerBlock,
    build_resnet,
    limit_error,
    synthetic_task,
    train,
)
from .base import Experiment, ExperimentSpec, Progress
from .plotting import guard_log_axes
from .spec_fields import NonNegativeInt
from .style import ensure_log_ticks, legend_overlap, panel_letters, place_legend, styled

__all__ = [
    "COLORS",
    "REFERENCE_INDEX",
    "ChizatExperiment",
    "ChizatSpec",
    "Divergence",
    "Tracker",
    "authors_grid",
    "chizat_figure",
    "clear_legend",
    "columns",
    "error_pair",
    "log_axes",
    "log_error_bars",
    "reference_network_limit",
    "rms_over",
    "slope_text",
    "synthetic_resnet",
    "train_networks",
]

COLORS = ("#1f4e79", "#c0392b", "#27855a", "#8e44ad", "#d68910", "#5d6d7e", "#17a2b8")
REFERENCE_INDEX = 100_000  # seed indices of reference networks, apart from the measured ones


def error_dataset(
    axis: str,
    values: Sequence[Any],
    errors: np.ndarray,
    budgets: np.ndarray,
    diverged: np.ndarray,
    attrs: dict[str, Any],
) -> xr.Dataset:
    """Errors against a reference along one swept ``axis``: ``errors`` and ``budgets`` (the
    reference's own CLT error) are ``(len(values), 2)`` arrays of (embedding, output)."""
    return xr.Dataset(
        {
            "embedding_error": ((axis,), errors[:, 0]),
            "output_error": ((axis,), errors[:, 1]),
            "reference_embeddings_clt": ((axis,), budgets[:, 0]),
            "reference_outputs_clt": ((axis,), budgets[:, 1]),
            "diverged": ((axis,), diverged),
        },
        coords={axis: list(values)},
        attrs=attrs,
    )


def error_rows(dataset: xr.Dataset, axis: str, cast: Callable[[Any], Any]) -> list[dict[str, Any]]:
    """The statistics rows of an :func:`error_dataset`, one per value of ``axis``."""
    return [
        {
            axis: cast(value),
            "embedding_error": float(dataset.embedding_error.sel({axis: value})),
            "output_error": float(dataset.output_error.sel({axis: value})),
            "reference_clt": float(dataset.reference_embeddings_clt.sel({axis: value})),
            "diverged": int(dataset.diverged.sel({axis: value})),
        }
        for value in dataset[axis].values
    ]


def authors_grid(low: int = 10, high: int = 500, points: int = 15) -> tuple[int, ...]:
    """``floor(10^linspace(log10 low, log10 high, points))``: the authors' log grid
    (10 … 499 for the defaults)."""
    values = np.floor(10 ** np.linspace(np.log10(low), np.log10(high), points)).astype(int)
    return tuple(int(v) for v in values)


class ChizatSpec(ExperimentSpec):
    """Common fields of the Chizat specs. ``threads``: torch intra-op threads while the
    experiment runs (restored afterwards; 0 leaves torch's setting). The default is 1: the
    per-layer products of these networks are small (N = 10 rows), a second thread gains at most
    ~1.7x on an idle machine, and on a shared CPU OpenMP barriers with 2 threads were measured
    10-30x slower than one thread (spinning threads waiting for a descheduled one)."""

    threads: NonNegativeInt = 1


@contextlib.contextmanager
def torch_threads(threads: int) -> Iterator[None]:
    """Run with ``threads`` torch intra-op threads (0: unchanged), then restore."""
    if threads <= 0:
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


_DIVERGENCES: contextvars.ContextVar[list[Divergence] | None] = contextvars.ContextVar(
    "deeplimit_chizat_divergences", default=None
)


@contextlib.contextmanager
def watching_divergence() -> Iterator[list[str]]:
    """Collect why the study run inside diverged (module docstring): the severe findings of
    every :class:`Divergence` created inside, and the limits' divergence warnings (shown as
    usual too). Yields the list, filled when the block ends."""
    reasons: list[str] = []
    seen: list[Divergence] = []
    token = _DIVERGENCES.set(seen)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", TrainingDivergenceWarning)
            yield reasons
    finally:
        _DIVERGENCES.reset(token)
        for item in caught:
            warnings.warn_explicit(item.message, item.category, item.filename, item.lineno)
    limits = {
        " ".join(str(item.message).split()).split(":")[0]
        for item in caught
        if issubclass(item.category, TrainingDivergenceWarning)
        and " limit diverged at step " in str(item.message)
    }
    for divergence in seen:
        reasons.extend(divergence.severe())
    reasons.extend(sorted(limits - set(reasons)))


class ChizatExperiment(Experiment):
    """``run`` under ``torch_threads(spec.threads)``, with the dataset attribute ``diverged``
    set when the study diverged (module docstring)."""

    suite = "chizat"

    def run(self, spec: ChizatSpec, progress: Progress | None = None) -> xr.Dataset:
        with torch_threads(spec.threads), watching_divergence() as reasons:
            dataset = super().run(spec, progress)
        if reasons:
            shown = "; ".join(reasons[:4]) + (
                f"; and {len(reasons) - 4} more" if len(reasons) > 4 else ""
            )
            dataset = dataset.assign_attrs(diverged=shown)
        return dataset


@dataclass
class Divergence:
    """Diverged networks seen by an experiment: ``count`` of ``total`` and, per label, the
    first step at which one diverged."""

    count: int = 0
    total: int = 0
    where: dict[str, int] = field(default_factory=dict)
    lost: dict[str, int] = field(default_factory=dict)  # settings where every network diverged
    limits: dict[str, int] = field(default_factory=dict)  # limits that diverged, at which step

    def __post_init__(self) -> None:
        watching = _DIVERGENCES.get()
        if watching is not None:
            watching.append(self)

    def add(self, label: str, result: TrainingResult) -> None:
        self.add_steps(label, result.diverged_at.cpu().numpy())

    def add_steps(self, label: str, diverged_at: Any) -> None:
        """Record networks by the step at which each diverged (-1: it did not), as
        ``TrainingResult.diverged_at`` has them (what a study's saved units keep)."""
        steps = np.asarray(diverged_at).reshape(-1)
        diverged = steps[steps >= 0]
        self.total += steps.size
        if diverged.size:
            self.count += int(diverged.size)
            self.where[label] = int(diverged.min())
            if diverged.size == steps.size:
                self.lost[label] = int(diverged.min())

    def add_limit(self, label: str, limit: LimitResult) -> None:
        """Record the limit ``label`` if it diverged (``limit.diverged_at >= 0``)."""
        step = int(getattr(limit, "diverged_at", -1))
        if step >= 0:
            self.limits[label] = step

    def severe(self) -> list[str]:
        """Why the study diverged: the settings where every network diverged and the limits
        that diverged (empty when neither happened)."""
        reasons = []
        if self.lost:
            places = ", ".join(f"{k} (step {v})" for k, v in list(self.lost.items())[:4])
            more = f" and {len(self.lost) - 4} more" if len(self.lost) > 4 else ""
            reasons.append(
                f"every network diverged in {len(self.lost)} setting"
                f"{'s' if len(self.lost) != 1 else ''}: {places}{more}"
            )
        if self.limits:
            places = ", ".join(f"{k} (step {v})" for k, v in list(self.limits.items())[:4])
            more = f" and {len(self.limits) - 4} more" if len(self.limits) > 4 else ""
            count = len(self.limits)
            reasons.append(f"{count} limit{'s' if count != 1 else ''} diverged: {places}{more}")
        return reasons

    def note(self) -> str:
        """One sentence for captions and claims ("" when nothing diverged)."""
        if not self.count and not self.limits:
            return ""
        parts = []
        if self.count:
            places = "; ".join(f"{k}: step {v}" for k, v in list(self.where.items())[:6])
            parts.append(
                f"{self.count} of {self.total} networks diverged and are excluded from the RMS "
                f"(NaN where none is left); first divergence step per setting: {places}"
            )
        if self.limits:
            parts.append(
                "; ".join(f"the {k} limit diverged at step {v}" for k, v in self.limits.items())
                + " (its later records are NaN)"
            )
        return " [" + "; ".join(parts) + "]"


class Tracker:
    """Progress in units of work (flops-like weights), forwarded to ``progress(done, total)``."""

    def __init__(self, total: float, progress: Callable[[int, int], None] | None) -> None:
        self.total = max(1, int(total))
        self.done = 0.0
        self.progress = progress

    def advance(self, amount: float) -> None:
        self.done += amount
        if self.progress is not None:
            self.progress(min(self.total, int(self.done)), self.total)


def train_networks(
    depth: int,
    width: int,
    dim: int,
    *,
    steps: int,
    seeds: int | Sequence[int],
    activation: str = "tanh",
    alpha: float = 1.0,
    lr: float = 0.5,
    scaling: Scaling | Sequence[Scaling] | None = None,
    seed: int = 0,
    embedding_seed: int = 0,
    antithetic: bool = False,
    record_movement: bool = False,
    device: str = "cpu",
    dtype: str = "float64",
    chunk: int | None = None,
) -> TrainingResult:
    """``train`` on the synthetic task of chizat.md §1.5, divergence recorded (never raised).

    ``chunk`` trains at most that many networks at a time (bounded memory) and concatenates the
    records; every network keeps its own seed index, so chunking does not change results.
    """
    indices = list(range(seeds)) if isinstance(seeds, int) else [int(s) for s in seeds]
    scalings = list(scaling) if isinstance(scaling, (list, tuple)) else None
    chunk = chunk or len(indices)
    results = []
    data = synthetic_task()
    for start in range(0, len(indices), chunk):
        part = indices[start : start + chunk]
        kwargs: dict[str, Any] = {}
        if scalings is not None:
            kwargs["scaling"] = scalings[start : start + chunk]
        elif scaling is not None:
            kwargs["scaling"] = scaling
        else:
            kwargs.update(alpha=alpha, lr=lr)
        model = synthetic_resnet(
            depth,
            width,
            dim,
            data,
            TwoLayerBlock(activation, antithetic=antithetic),
            seeds=part,
            seed=seed,
            embedding_seed=embedding_seed,
            device=device,
            dtype=dtype,
            **kwargs,
        )
        results.append(
            train(model, data, steps, record_movement=record_movement, on_divergence="ignore")
        )
    return concatenate_results(results)


def synthetic_resnet(
    depth: int,
    width: int,
    dim: int,
    data: Any,
    block: Any,
    *,
    seeds: int | Sequence[int],
    seed: int,
    device: str,
    dtype: str = "float64",
    **kwargs: Any,
) -> Any:
    """``build_resnet`` for ``data`` (its input and output sizes) with ``block``."""
    kwargs.update(input_dim=data.input_dim, output_dim=data.output_dim, block=block)
    kwargs.update(seeds=seeds, seed=seed, device=device, dtype=getattr(torch, dtype))
    return build_resnet(depth, width, dim, **kwargs)


def concatenate_results(parts: Sequence[TrainingResult]) -> TrainingResult:
    """The records of networks trained in chunks, concatenated along the networks (maps, data
    and sizes of the first chunk; layer states dropped)."""
    if len(parts) == 1:
        return parts[0]

    def cat(name: str) -> torch.Tensor:
        return torch.cat([getattr(p, name) for p in parts])

    return dataclasses.replace(
        parts[0],
        outputs=cat("outputs"),
        embeddings=cat("embeddings"),
        loss=cat("loss"),
        diverged_at=cat("diverged_at"),
        residual_scale=cat("residual_scale"),
        learning_rates={
            k: torch.cat([p.learning_rates[k] for p in parts]) for k in parts[0].learning_rates
        },
        movement={k: torch.cat([p.movement[k] for p in parts]) for k in parts[0].movement},
        states=None,
    )


def reference_network_limit(
    reference: TrainingResult, *, description: str
) -> tuple[LimitResult, dict[str, float]]:
    """The seed mean of large *same-depth* networks as the limit (chizat.md §2.4(1)): at equal
    ``L`` the deterministic 1/L term cancels and only the CLT term of the smaller network is
    measured. Budget: RMS standard error of the mean (embeddings, outputs) at the last step."""
    ok = ~reference.diverged
    count = int(ok.sum())
    if count < 2:
        steps = reference.diverged_at[reference.diverged_at >= 0]
        step = int(steps.min()) if steps.numel() else -1
        raise TrainingDivergedError(
            step,
            [],
            f"the reference networks diverged: {reference.seeds - count} of {reference.seeds} "
            f"(the first at step {step}), and a reference needs at least 2 that did not (try a "
            "smaller lr)",
        )
    emb, out = reference.embeddings[ok], reference.outputs[ok]
    budget = {
        "embeddings_clt": float((emb[:, -1].var(0) / count).mean().sqrt()),
        "outputs_clt": float((out[:, -1].var(0) / count).mean().sqrt()),
        "networks": float(count),
    }
    outputs = out.mean(0)
    limit = LimitResult(
        outputs=outputs,
        embeddings=emb.mean(0),
        loss=((outputs - reference.y) ** 2).flatten(-2).mean(-1),
        w_in=reference.w_in,
        w_out=reference.w_out,
        method="reference",
        description=description,
        error_budget=budget,
    )
    return limit, budget


def error_pair(result: TrainingResult, limit: LimitResult, step: int) -> tuple[float, float]:
    """(embedding, output) RMS errors at ``step`` over the non-diverged networks (NaN if none
    is left)."""
    if bool(result.diverged.all()):
        return math.nan, math.nan
    return (
        limit_error(result, limit, step=step, diverged="exclude").item(),
        limit_error(result, limit, step=step, quantity="outputs", diverged="exclude").item(),
    )


def slope_text(fit: SlopeFit) -> str:
    return f"{fit.slope:+.3f} (95% CI [{fit.ci_low:+.3f}, {fit.ci_high:+.3f}])"


def fit_or_none(x: Any, y: Any) -> SlopeFit | None:
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    keep = np.isfinite(y) & (y > 0)
    if keep.sum() < 3:
        return None
    return fit_loglog_slope(x[keep], y[keep])


def plot_series(
    ax: Axes,
    x: Any,
    y: Any,
    *,
    label: str,
    color: str,
    fit: bool = True,
    marker: str = "o",
    style: str = "-",
) -> SlopeFit | None:
    """Points (with a line) on log-log axes, plus their fitted power law (dashed) in the label."""
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    keep = np.isfinite(y) & (y > 0)
    result = fit_or_none(x, y) if fit else None
    text = label if result is None else f"{label}: slope {result.slope:+.2f}"
    ax.plot(x[keep], y[keep], marker=marker, ls=style, color=color, ms=4, lw=1.2, label=text)
    if result is not None:
        grid = np.geomspace(x[keep].min(), x[keep].max(), 50)
        ax.plot(grid, result.predict(grid), ls=":", color=color, lw=1.0)
    ax.set_xscale("log")
    ax.set_yscale("log")
    tidy_log_axes(ax)
    return result


def tidy_log_axes(ax: Axes) -> None:
    """No minor tick labels on log axes (they clutter axes spanning less than a decade)."""
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.yaxis.set_minor_formatter(NullFormatter())


def reference_line(ax: Axes, x: Any, anchor: float, slope: float, label: str) -> None:
    """A grey power law ``anchor (x / x_0)^slope`` for the eye."""
    x = np.asarray(x, dtype=float)
    grid = np.geomspace(x.min(), x.max(), 50)
    ax.plot(grid, anchor * (grid / grid[0]) ** slope, color="#999999", lw=0.9, ls="--", label=label)


# --- figures: one style (``style``) for every Chizat experiment --------------------------


FOOTER_INCHES = 0.13  # the strip below the panels left for the provenance footer


@contextlib.contextmanager
def chizat_figure(
    panels: int, *, columns: int, size: tuple[float, float] = (2.6, 2.2)
) -> Iterator[tuple[Figure, list[Axes]]]:
    """A figure in the house style (``style.styled``) with ``panels`` axes in rows of at most
    ``columns`` (each ``size`` inches), drawn by the body; on exit every panel is finished
    (:func:`finish_figure`). The caption is not drawn: it stays in ``dataset.attrs``."""
    columns = min(columns, panels)
    rows = -(-panels // columns)
    with styled():
        figure = Figure(figsize=(size[0] * columns, size[1] * rows), layout="constrained")
        # a strip at the bottom stays free for the provenance line (plotting.add_footer)
        footer = FOOTER_INCHES / figure.get_figheight()
        figure.get_layout_engine().set(rect=(0, footer, 1, 1 - footer))  # left, bottom, w, h
        FigureCanvasAgg(figure)
        grid = figure.subplots(rows, columns, squeeze=False)
        axes = [ax for row in grid for ax in row]
        for ax in axes[panels:]:
            ax.set_visible(False)
        yield figure, axes[:panels]
        finish_figure(figure, axes[:panels])


def finish_figure(figure: Figure, axes: Sequence[Axes]) -> None:
    """Panel letters with the titles left-aligned next to them, labelled log ticks (at least
    two per log axis), log axes with nothing finite made linear with a note, then every
    legend where it covers no plotted point (:func:`clear_legend`), once the layout has
    settled."""
    for ax in axes:
        title = ax.get_title()
        if title:
            ax.set_title("")
            ax.set_title(title, loc="left")
    panel_letters(axes)
    guard_log_axes(figure)
    for ax in axes:
        ensure_log_ticks(ax)
    _settle(figure, 1)
    legends = {ax: _legend_title(ax) for ax in axes if ax.get_legend_handles_labels()[0]}
    moved = [ax for ax, options in legends.items() if clear_legend(ax, **options)]
    for _ in range(2):  # a legend outside its panel changes the layout (and the ticks)
        if not moved:
            break
        _settle(figure, 2)
        moved = [
            ax
            for ax, options in legends.items()
            if legend_overlap(ax) and clear_legend(ax, **options)
        ]
    figure.set_layout_engine("none")  # keep the settled layout: saving does not redo it


def _legend_title(ax: Axes) -> dict[str, str]:
    """The title of the legend the body drew in ``ax`` (kept when the legend is placed)."""
    legend = ax.get_legend()
    title = legend.get_title().get_text() if legend is not None else ""
    return {"title": title} if title else {}


def _settle(figure: Figure, times: int) -> None:
    """Run the constrained layout ``times`` times (the tick labels depend on the axes' size
    and the layout on the tick labels: a second run settles what the first moved)."""
    engine = figure.get_layout_engine()
    for _ in range(times):
        engine.execute(figure)


def clear_legend(ax: Axes, **kwargs: Any) -> bool:
    """The legend of ``ax`` inside the panel where it covers no plotted point, or else just
    outside its right edge; entries without data are left out (``style.place_legend``).
    Returns whether the legend had to go outside."""
    legend = place_legend(ax, **kwargs)
    if legend is None or legend_overlap(ax, legend) == 0:
        return False
    place_legend(
        ax, locations=("upper left",), bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0, **kwargs
    )
    return True


def log_axes(ax: Axes, xlabel: str, ylabel: str = "", title: str = "", *, x: bool = True) -> None:
    """Logarithmic ``y`` (and ``x`` unless ``x=False``) with the labels and title given."""
    if x:
        ax.set_xscale("log")
    ax.set_yscale("log")
    tidy_log_axes(ax)
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title)


def rms_over(values: Any, axis: int = -1, *, z: float = 1.96) -> tuple[np.ndarray, np.ndarray]:
    """The RMS over ``axis`` of the finite ``values`` and the relative half-width of its
    ``z``-interval in log space: ``z se(mean of squares) / (2 mean of squares)`` (delta
    method; ``log RMS`` lies within ``± that``). NaN half-width with fewer than two values."""
    values = np.moveaxis(np.asarray(values, dtype=float), axis, -1)
    finite = np.isfinite(values)
    count = finite.sum(-1)
    squares = np.where(finite, values**2, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = squares.sum(-1) / count
        spread = np.where(finite, values**2 - mean[..., None], 0.0)
        variance = (spread**2).sum(-1) / (count - 1)
        half = np.where(count > 1, z * np.sqrt(variance / count) / (2 * mean), np.nan)
    return np.sqrt(mean), half


def log_error_bars(
    ax: Axes, x: Any, y: Any, relative: Any, *, label: str | None = None, **kwargs: Any
) -> Any:
    """Markers at ``(x, y)`` with bars ``y exp(± relative)`` (a log-space interval, symmetric
    on a log axis; see :func:`rms_over`) where ``relative`` is finite; finite ``y > 0`` only."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    relative = np.broadcast_to(np.asarray(relative, dtype=float), y.shape)
    keep = np.isfinite(y) & (y > 0)
    x, y, relative = x[keep], y[keep], np.where(np.isfinite(relative[keep]), relative[keep], 0.0)
    bars = np.stack([y - y * np.exp(-relative), y * np.exp(relative) - y])
    kwargs.setdefault("fmt", "o")
    kwargs.setdefault("capsize", 1.5)
    kwargs.setdefault("elinewidth", 0.8)
    kwargs.setdefault("ms", 3.5)
    return ax.errorbar(x, y, yerr=bars if relative.any() else None, label=label, **kwargs)


# --- the (L, M, D) grid studies (chizat-grid, chizat-scaling, chizat-joint) ----------------

PARAMETER_BUDGET = 2**31  # bytes of U, V per training batch of the grid studies
# the printed tables' usual column labels (``columns``)
COLUMN_LABELS = {
    "depth": "L",
    "width": "M",
    "dim": "D",
    "budget": "P = LMD",
    "embedding_error": "emb. error",
    "output_error": "output error",
}


def columns(*keys: str) -> dict[str, str]:
    """An experiment's ``table``: each of ``keys`` is a statistics key, shown under its usual
    label (``COLUMN_LABELS``, else the key itself), or ``"key=label"``."""
    pairs = (
        key.split("=", 1) if "=" in key else (key, COLUMN_LABELS.get(key, key)) for key in keys
    )
    return dict(pairs)


GRID_TABLE = columns("width", "dim", "budget", "embedding_error", "output_error", "diverged")
QUANTITY_TEX = {"embedding": "embedding $h_L$", "output": "output $f$"}


def _residuals(value: str, info: ValidationInfo) -> str:
    return check_choice(str(info.field_name), value, ("log", "absolute"))


Residuals = Annotated[str, AfterValidator(_residuals)]  # residuals of the chizat_fits laws


def batches(count: int, depth: int, width: int, dim: int, dtype: str) -> list[slice]:
    """``count`` networks of one shape in batches of at most ``PARAMETER_BUDGET`` bytes of
    ``U, V``."""
    per_network = 2 * depth * width * dim * (torch.finfo(getattr(torch, dtype)).bits // 8)
    chunk = max(1, min(count, PARAMETER_BUDGET // per_network))
    return [slice(first, min(count, first + chunk)) for first in range(0, count, chunk)]


def fit_laws(
    depth: Any,
    width: Any,
    dim: Any,
    error: Any,
    terms: Sequence[str],
    *,
    depth_term: bool,
    expected: tuple[float, float],
    residuals: str,
) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """The global law with the theory's exponents (``terms``) and the free-exponent law on the
    finite positive errors of a grid; ``None`` for a law there are too few points for."""
    from .chizat_fits import fit_free_law, fit_global_law  # chizat_fits may import this module

    use = np.isfinite(error) & (error > 0)
    args = (depth[use], width[use], dim[use], error[use])
    fits: list[dict[str, Any] | None] = []
    for fit in (
        lambda: fit_global_law(*args, terms, residuals=residuals),
        lambda: fit_free_law(*args, depth_term=depth_term, expected=expected, residuals=residuals),
    ):
        try:
            fits.append(fit())
        except ValueError:
            fits.append(None)
    return fits[0], fits[1]


def constants_text(fit: dict[str, Any], terms: Sequence[str]) -> str:
    """``"0.67 [0.5, 0.8]·D/(LM) + ..."``: a global law's constants with their 95% CIs."""
    return " + ".join(
        f"{fit['constants'][t]:.3g} [{fit['ci_low'][t]:.3g}, {fit['ci_high'][t]:.3g}]·{t}"
        for t in terms
    )


def grid_rows(
    coords: dict[str, Sequence[Any]],
    errors: dict[str, np.ndarray],
    diverged: np.ndarray,
    *,
    depth: int | None = None,
) -> list[dict[str, Any]]:
    """Statistics rows of an error grid over ``coords`` (name -> values, the arrays' axes in
    order): the coordinates, the budget ``P = LMD`` when a fixed ``depth`` is given, the two
    errors and the diverged networks."""
    rows = []
    for index in np.ndindex(*(len(values) for values in coords.values())):
        row: dict[str, Any] = {
            name: int(values[i]) for (name, values), i in zip(coords.items(), index, strict=True)
        }
        if depth is not None:
            row["budget"] = int(depth * row["width"] * row["dim"])
        row["embedding_error"] = float(errors["embedding"][index])
        row["output_error"] = float(errors["output"][index])
        row["diverged"] = int(diverged[index])
        rows.append(row)
    return rows


def law_panel(
    ax: Axes,
    x: Any,
    series: Sequence[tuple[str, Any, Any, tuple[Any, ...]]],
    fit: dict[str, Any] | None,
) -> None:
    """Errors against ``x``, one colour per ``(label, errors, relative half-widths, (L, M,
    D))`` of ``series``, with error bars, and the global law ``fit`` at those shapes dashed."""
    from .chizat_fits import evaluate_law  # chizat_fits may import this module

    x = np.asarray(x, dtype=float)
    fine = np.geomspace(x.min(), x.max(), 40)  # the curve as seen: what a legend must not hide
    for index, (label, y, relative, shape) in enumerate(series):
        color = COLORS[index % len(COLORS)]
        log_error_bars(ax, x, y, relative, color=color, label=label)
        if fit is not None:
            at = tuple(fine if np.ndim(v) else v for v in shape)
            law = evaluate_law(fit, *np.broadcast_arrays(*at))
            ax.plot(fine, np.broadcast_to(law, fine.shape), "--", color=color, lw=0.9)


def budget_panel(
    ax: Axes,
    budget: np.ndarray,
    error: np.ndarray,
    relative: np.ndarray,
    exponent: float,
    free: dict[str, Any] | None,
    *,
    quantity: str,
    color: str,
    anchor: str,
) -> None:
    """Every grid point's error against the budget ``P = LMD`` with the theory's power law
    ``P^-exponent`` (through the lowest point for ``anchor="lowest"``, the log-mean for
    ``"mean"``), titled with the free-exponent fit's budget exponent and its 95% CI."""
    keep = np.isfinite(error) & (error > 0)
    log_error_bars(ax, budget, error, relative, color=color, alpha=0.7, ms=2.5)
    if keep.any():
        grid = np.geomspace(budget[keep].min(), budget[keep].max(), 30)
        offsets = np.log(error[keep]) + exponent * np.log(budget[keep])
        level = np.exp(np.min(offsets) if anchor == "lowest" else np.mean(offsets))
        fraction = "1/6" if abs(exponent - 1 / 6) < 1e-9 else "1/5"
        ax.plot(grid, level * grid**-exponent, "k--", lw=0.9, label=f"$P^{{-{fraction}}}$ (theory)")
    title = f"{QUANTITY_TEX[quantity]} vs $P$"
    if free is not None:
        title += f"\nfit $e = {free['exponent']:.3f}$ [{free['ci_low']:.3f}, {free['ci_high']:.3f}]"
    log_axes(ax, r"budget $P = LMD$", "", title)


def python_lr(eta: float) -> float:
    """Our ``lr`` for the authors' Python ``eta_0`` on their task (``d_in = d_out = 3``)."""
    from ..training.authors import authors_lr

    return authors_lr(eta, code="python", input_dim=3, output_dim=3)


def authors_span_limit(
    task: Any, lr: float, steps: int, intervals: int, divergence: Divergence
) -> LimitResult:
    """The exact ``D -> infinity`` limit of the authors' linear study (their maps ``N(0, 1)``,
    continuous depth on ``intervals`` RK4 intervals), recorded in ``divergence`` if it
    diverged (never raised)."""
    from ..training import span_linear_limit

    limit = span_linear_limit(
        3,
        data=task,
        lr=lr,
        steps=steps,
        infinite_dim=True,
        embedding_variances=(1.0, 1.0),
        intervals=intervals,
        on_divergence="ignore",
    )
    divergence.add_limit("span (D -> infinity)", limit)
    return limit


def mean_over(values: Any, axis: int = -1, *, z: float = 1.96) -> np.ndarray:
    """The relative half-width ``z se / mean`` of the mean over ``axis`` of ``values`` (a
    log-space interval for :func:`log_error_bars`); NaN with fewer than two values."""
    values = np.moveaxis(np.asarray(values, dtype=float), axis, -1)
    count = values.shape[-1]
    if count < 2:
        return np.full(values.shape[:-1], np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        return z * values.std(-1, ddof=1) / np.sqrt(count) / np.abs(values.mean(-1))
