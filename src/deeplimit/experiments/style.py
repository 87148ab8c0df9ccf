"""One figure style for every experiment: maths labels, panel letters, legends that cover no
data, log axes with labelled ticks, error bands over seeds.

Experiments draw with ``matplotlib.figure.Figure`` (no pyplot state) in ``draw(dataset, spec)``.
The intended use::

    from .style import error_band, finish_axes, panel_letters, place_legend, styled

    with styled():                                   # rcParams: mathtext, sizes, no caption
        figure = Figure(figsize=(7.0, 2.6), layout="constrained")
        axes = figure.subplots(1, 3)
        error_band(axes[0], depths, errors, label=r"$\\|h_L - h^\\star\\|$")   # (seeds, points)
        axes[0].set(xscale="log", yscale="log", xlabel=r"depth $L$")
        for ax in axes:
            finish_axes(ax)           # legend where it covers no data, >= 2 labelled log ticks
        panel_letters(axes)           # (a), (b), (c)

Captions stay out of the image: the report and the documentation show them (the title and the
caption of an experiment are text, not pixels). ``legend_overlap`` is what a figure test uses
to check that a legend covers no plotted point.
"""

from __future__ import annotations

import contextlib
import math
import string
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
from matplotlib import rc_context
from matplotlib.axes import Axes
from matplotlib.collections import Collection
from matplotlib.legend import Legend
from matplotlib.lines import Line2D
from matplotlib.ticker import FixedLocator, LogFormatterSciNotation, NullLocator

__all__ = [
    "LEGEND_LOCATIONS",
    "STYLE",
    "data_points",
    "ensure_log_ticks",
    "error_band",
    "finish_axes",
    "legend_overlap",
    "panel_letters",
    "place_legend",
    "styled",
]

STYLE: dict[str, Any] = {
    # maths in labels is written $...$ and typeset by matplotlib's mathtext, Computer Modern
    "mathtext.fontset": "cm",
    "font.size": 8.5,
    "axes.titlesize": 9,
    "axes.labelsize": 9,
    "legend.fontsize": 7.5,
    "xtick.labelsize": 7.5,
    "ytick.labelsize": 7.5,
    "legend.frameon": True,
    "legend.framealpha": 0.85,
    "legend.edgecolor": "0.8",
    "axes.spines.top": False,
    "axes.spines.right": False,
    "lines.linewidth": 1.3,
    "lines.markersize": 4,
    "savefig.bbox": "tight",
    "savefig.pad_inches": 0.03,
    "pdf.fonttype": 42,  # TrueType in PDFs: same glyphs as the PNG, editable text
}

# matplotlib's codes, corners first: a legend in a corner hides the least of a panel
LEGEND_LOCATIONS = (
    "upper right",
    "upper left",
    "lower left",
    "lower right",
    "center right",
    "center left",
    "upper center",
    "lower center",
    "center",
)


@contextlib.contextmanager
def styled(**overrides: Any) -> Iterator[None]:
    """The house style (``STYLE``, updated by ``overrides``) for the figures drawn inside."""
    with rc_context({**STYLE, **overrides}):
        yield


def panel_letters(
    axes: Sequence[Axes], *, start: str = "a", template: str = "({})", size: float = 10
) -> list[Any]:
    """Letters ``(a)``, ``(b)``, ... at the top left of each visible panel, outside the data."""
    if start not in string.ascii_lowercase:
        raise ValueError(f"start must be a lowercase letter, got {start!r}")
    letters = string.ascii_lowercase[string.ascii_lowercase.index(start) :]
    visible = [ax for ax in axes if ax.get_visible()]
    if len(visible) > len(letters):
        raise ValueError(f"{len(visible)} panels but only {len(letters)} letters from {start!r}")
    texts = []
    for ax, letter in zip(visible, letters):
        texts.append(
            ax.text(
                -0.02,
                1.02,
                template.format(letter),
                transform=ax.transAxes,
                fontsize=size,
                fontweight="bold",
                ha="right",
                va="bottom",
            )
        )
    return texts


def data_points(ax: Axes) -> np.ndarray:
    """Display coordinates ``(n, 2)`` of every finite plotted point of ``ax``: line vertices,
    scatter offsets, error-bar and band vertices (what a legend must not hide)."""
    chunks = []
    for line in ax.get_lines():
        if not line.get_visible():
            continue
        xy = np.asarray(line.get_xydata(), dtype=float)
        if xy.size:
            chunks.append(line.get_transform().transform(xy))
    for collection in ax.collections:
        if not collection.get_visible():
            continue
        offsets = np.asarray(collection.get_offsets(), dtype=float).reshape(-1, 2)
        if len(offsets) > 1 or np.any(offsets):  # a scatter: one marker per offset
            chunks.append(collection.get_offset_transform().transform(offsets))
            continue
        for path in collection.get_paths():  # bands, error bars: data-space paths
            if len(path.vertices):
                chunks.append(collection.get_transform().transform(path.vertices))
    for patch in ax.patches:
        if patch.get_visible():
            chunks.append(patch.get_transform().transform(patch.get_path().vertices))
    if not chunks:
        return np.empty((0, 2))
    points = np.concatenate(chunks)
    return points[np.isfinite(points).all(axis=1)]


def _inside(points: np.ndarray, box: Any, ax: Axes) -> int:
    # only points that are drawn (inside the axes) count
    frame = ax.get_window_extent()
    shown = (
        (points[:, 0] >= frame.x0)
        & (points[:, 0] <= frame.x1)
        & (points[:, 1] >= frame.y0)
        & (points[:, 1] <= frame.y1)
    )
    inside = (
        (points[:, 0] >= box.x0)
        & (points[:, 0] <= box.x1)
        & (points[:, 1] >= box.y0)
        & (points[:, 1] <= box.y1)
    )
    return int((shown & inside).sum())


def legend_overlap(ax: Axes, legend: Legend | None = None) -> int:
    """How many plotted points of ``ax`` lie under its legend (0: the legend hides nothing).

    Lines are sampled at their vertices, so draw a curve with enough points to be seen this
    way (the experiments' curves have one vertex per measured point or a fine grid)."""
    legend = legend or ax.get_legend()
    if legend is None:
        return 0
    renderer = ax.figure.canvas.get_renderer()
    return _inside(data_points(ax), legend.get_window_extent(renderer), ax)


def _has_data(artist: Any) -> bool:
    if isinstance(artist, Line2D):
        xy = np.asarray(artist.get_xydata(), dtype=float)
        return bool(xy.size) and bool(np.isfinite(xy).all(axis=1).any())
    if isinstance(artist, Collection):
        offsets = np.asarray(artist.get_offsets(), dtype=float)
        paths = artist.get_paths()
        finite = offsets.size and np.isfinite(offsets).all(axis=1).any()
        return bool(finite) or any(len(p.vertices) for p in paths)
    if hasattr(artist, "patches"):  # a bar container
        return any(_has_data(p) for p in artist.patches)
    if hasattr(artist, "get_path"):
        return bool(len(artist.get_path().vertices))
    if isinstance(artist, tuple | list):  # error bar containers
        return any(_has_data(a) for a in artist if a is not None)
    return True


def place_legend(ax: Axes, *, locations: Sequence[str] = LEGEND_LOCATIONS, **kwargs: Any):
    """A legend at the location that hides the fewest plotted points (the first location
    that hides none, in the order of ``locations``), without entries whose artist has no
    finite data. Returns the legend, or ``None`` when no entry is left."""
    handles, labels = ax.get_legend_handles_labels()
    kept = [(h, label) for h, label in zip(handles, labels) if _has_data(h)]
    if not kept:
        if ax.get_legend() is not None:
            ax.get_legend().remove()
        return None
    handles, labels = zip(*kept)
    points = data_points(ax)
    renderer = ax.figure.canvas.get_renderer()
    best, best_count = None, math.inf
    for location in locations:
        legend = ax.legend(handles, labels, loc=location, **kwargs)
        count = _inside(points, legend.get_window_extent(renderer), ax)
        if count < best_count:
            best, best_count = location, count
        if count == 0:
            return legend
    return ax.legend(handles, labels, loc=best, **kwargs)


def _visible_ticks(ax: Axes, which: str) -> list[float]:
    axis = ax.xaxis if which == "x" else ax.yaxis
    low, high = sorted(ax.get_xlim() if which == "x" else ax.get_ylim())
    ticks = axis.get_majorticklocs()
    return [t for t in ticks if low * (1 - 1e-9) <= t <= high * (1 + 1e-9)]


def _nice(value: float) -> float:
    return float(f"{value:.2g}")


def ensure_log_ticks(ax: Axes, axis: str = "both", *, minimum: int = 2) -> None:
    """Make every logarithmic ``axis`` (``"x"``, ``"y"`` or ``"both"``) show at least
    ``minimum`` labelled major ticks, also when it spans less than a decade: ticks at
    1, 2, 5 × 10^k inside the limits, or else values spread evenly in log scale, labelled
    with two significant digits."""
    if axis not in ("x", "y", "both"):
        raise ValueError(f"axis must be 'x', 'y' or 'both', got {axis!r}")
    for which in ("x", "y") if axis == "both" else (axis,):
        target = ax.xaxis if which == "x" else ax.yaxis
        if target.get_scale() != "log":
            continue
        if len(_visible_ticks(ax, which)) >= minimum:
            continue
        low, high = sorted(ax.get_xlim() if which == "x" else ax.get_ylim())
        if not (low > 0 and high > low):
            continue
        ticks = []
        for exponent in range(math.floor(math.log10(low)), math.ceil(math.log10(high)) + 1):
            for mantissa in (1, 2, 5):
                value = mantissa * 10.0**exponent
                if low <= value <= high:
                    ticks.append(value)
        if len(ticks) < minimum:
            ticks = [_nice(v) for v in np.geomspace(low, high, minimum + 2)[1:-1]]
            ticks = sorted({t for t in ticks if low <= t <= high})
            if len(ticks) < minimum:  # a span too narrow for two 2-digit values
                ticks = list(np.geomspace(low, high, minimum + 2)[1:-1])
        target.set_major_locator(FixedLocator(ticks))
        target.set_major_formatter(_TickLabels())
        target.set_minor_locator(NullLocator())


class _TickLabels(LogFormatterSciNotation):
    """Plain numbers for ticks between 0.01 and 1000, scientific notation outside."""

    def __call__(self, x: float, pos: int | None = None) -> str:
        if 1e-2 <= abs(x) < 1e3:
            return f"{x:.3g}"
        mantissa, exponent = f"{x:.2e}".split("e")
        mantissa = mantissa.rstrip("0").rstrip(".")
        power = f"10^{{{int(exponent)}}}"
        return f"${power}$" if mantissa == "1" else rf"${mantissa}\times{power}$"


def error_band(
    ax: Axes,
    x: Any,
    values: Any,
    *,
    z: float = 1.96,
    label: str | None = None,
    alpha: float = 0.25,
    marker: str = "o",
    **line_kwargs: Any,
):
    """The mean over seeds of ``values`` (shape ``(seeds, points)``) against ``x``, with a band
    of ``± z`` standard errors of that mean (``z = 1.96``: a 95 % normal interval); with one
    seed, the line alone. Non-finite values are left out seed by seed. Returns
    ``(line, band)`` (``band`` is ``None`` without a band)."""
    x = np.asarray(x, dtype=float)
    values = np.asarray(values, dtype=float)
    if values.ndim == 1:
        values = values[None, :]
    if values.ndim != 2 or values.shape[1] != x.size:
        raise ValueError(f"values must have shape (seeds, {x.size}) to match x, got {values.shape}")
    if not (z > 0 and math.isfinite(z)):
        raise ValueError(f"z must be a positive number, got {z}")
    finite = np.isfinite(values)
    count = finite.sum(axis=0)
    total = np.where(finite, values, 0.0).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(count > 0, total / np.maximum(count, 1), np.nan)
        deviations = np.where(finite, values - mean, 0.0)
        variance = (deviations**2).sum(axis=0) / np.maximum(count - 1, 1)
        half = np.where(count > 1, z * np.sqrt(variance / np.maximum(count, 1)), np.nan)
    (line,) = ax.plot(x, mean, marker=marker, label=label, **line_kwargs)
    band = None
    if np.isfinite(half).any():
        band = ax.fill_between(
            x, mean - half, mean + half, color=line.get_color(), alpha=alpha, linewidth=0
        )
    return line, band


def finish_axes(ax: Axes, *, legend: bool = True, **legend_kwargs: Any) -> None:
    """The last touches of a panel: labelled log ticks on both axes, and the legend (when
    any artist has a label) where it hides the fewest points."""
    ensure_log_ticks(ax, "both")
    if legend and ax.get_legend_handles_labels()[0]:
        place_legend(ax, **legend_kwargs)
