"""One figure style for every experiment: maths labels, panel letters, legends that cover no
data, log axes with labelled ticks, error bands over seeds.

Experiments draw with ``matplotlib.figure.Figure`` (no pyplot state) in ``draw(dataset, spec)``.
The intended use:

    from .style import error_band, finish_axes, panel_letters, place_legend, styled

    with styled():  # rcParams: mathtext, sizes
        figure = Figure(figsize=(7.0, 2.6), layout="constrained")
        axes = figure.subplots(1, 3)
        # errors: (seeds, points); the band is the mean +- 1.96 se
        error_band(axes[0], depths, errors, label=r"$\\|h_L - h^\\star\\|$")
        axes[0].set(xscale="log", yscale="log", xlabel=r"depth $L$")
        for ax in axes:
            finish_axes(ax)  # log ticks, then the legend over no data
        panel_letters(axes)  # (a), (b), (c)

Captions stay out of the image: the report and the documentation show them (the title and the
caption of an experiment are text, not pixels). :func:`figure_defects` is the figure test: what
a referee would flag in a drawn figure (a legend over data, a log axis with one labelled tick,
text cut or colliding, markers cut by the frame, no panel letters, plain-text maths, a caption
in the image), one message per defect naming its panel; ``tests/test_figures.py`` runs it on
every experiment's smoke-scale figure.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import re
import string
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
from matplotlib import rc_context
from matplotlib.axes import Axes
from matplotlib.backend_bases import FigureCanvasBase
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import Collection, PathCollection
from matplotlib.container import Container
from matplotlib.figure import Figure
from matplotlib.legend import Legend
from matplotlib.lines import Line2D
from matplotlib.ticker import FixedLocator, LogFormatterSciNotation, NullLocator

__all__ = [
    "LEGEND_LOCATIONS",
    "STYLE",
    "covered_points",
    "data_points",
    "ensure_log_ticks",
    "error_band",
    "figure_defects",
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
    # plotting.save_figure saves at the figure's own size (no tight cropping: lay panels out
    # with layout="constrained" so that every label fits), with its own SAVE_STYLE
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
        if _is_span(collection, ax):
            continue
        for path in collection.get_paths():  # bands, error bars: data-space paths
            if len(path.vertices):
                chunks.append(collection.get_transform().transform(path.vertices))
    for patch in ax.patches:
        if patch.get_visible() and not _is_span(patch, ax):
            chunks.append(patch.get_transform().transform(patch.get_path().vertices))
    if not chunks:
        return np.empty((0, 2))
    points = np.concatenate(chunks)
    return points[np.isfinite(points).all(axis=1)]


def _renderer_of(figure: Figure) -> Any:
    """The renderer of ``figure``'s canvas; a figure made without pyplot gets an Agg canvas
    (no display) first."""
    if type(figure.canvas) is FigureCanvasBase:
        FigureCanvasAgg(figure)
    return figure.canvas.get_renderer()


def _is_span(artist: Any, ax: Axes) -> bool:
    """Whether ``artist`` is placed in axes coordinates along an axis (``axvspan``,
    ``axhspan``: a shaded region behind the data, not data)."""
    return not artist.get_transform().contains_branch(ax.transData)


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
    """How many plotted points of ``ax`` lie under its legend (0: the legend hides nothing),
    counted as the figure test counts them (:func:`covered_points`: lines sampled along their
    segments, markers, error bars, and bands or bars the legend sits in)."""
    legend = legend or ax.get_legend()
    if legend is None:
        return 0
    renderer = _renderer_of(ax.figure)
    return covered_points(ax, legend.get_window_extent(renderer))


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
    that hides none, in the order of ``locations``; points as :func:`covered_points` counts
    them), without entries whose artist has no finite data. Returns the legend, or ``None``
    when no entry is left."""
    handles, labels = ax.get_legend_handles_labels()
    kept = [(h, label) for h, label in zip(handles, labels) if _has_data(h)]
    if not kept:
        if ax.get_legend() is not None:
            ax.get_legend().remove()
        return None
    handles, labels = zip(*kept)
    renderer = _renderer_of(ax.figure)
    engine = ax.figure.get_layout_engine()
    if engine is not None:  # place it in the panel as laid out (constrained layout)
        engine.execute(ax.figure)
    covered = _cover_counter(ax)
    best, best_count = None, math.inf
    for location in locations:
        legend = ax.legend(handles, labels, loc=location, **kwargs)
        count = covered(legend.get_window_extent(renderer))
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


# --- the figure test: what a referee would flag, found on the drawn figure ---

_PANEL_LETTER = re.compile(r"^\(?[a-z]\)$")  # (a) or a)
_CAPTION_LENGTH = 60  # characters: longer figure-level text is a caption, not a title
_TOLERANCE = 1.0  # pixels at the figure's dpi: overlaps and cuts smaller than this are noise
# markers that draw error-bar caps and ticks, not data points
_CAP_MARKERS = {"_", "|", 0, 1, 2, 3, "none", "None", "", " ", None}


CHECK_DPI = 150  # what figure_defects measures at: plotting.save_figure's PNG


@contextlib.contextmanager
def _measured(figure: Figure, draw: bool) -> Iterator[Any]:
    """A renderer at ``CHECK_DPI`` for ``figure``, drawn first (Agg, no display) unless
    ``draw`` is false (then the layout is that of the figure's last drawing)."""
    dpi, canvas = figure.dpi, figure.canvas
    try:
        figure.dpi = CHECK_DPI  # the PNG's: text metrics cached by its drawing are reused
        if type(figure.canvas) is FigureCanvasBase:
            FigureCanvasAgg(figure)
        if draw:
            figure.canvas.draw()
        yield figure.canvas.get_renderer()
    finally:
        figure.dpi = dpi
        if type(canvas) is FigureCanvasBase:
            figure.set_canvas(canvas)


def _panels(figure: Figure) -> list[Axes]:
    # colour bars are axes too, but not panels: they get no letter and hold no data points
    return [
        ax
        for ax in figure.axes
        if ax.get_visible() and ax.axison and getattr(ax, "_colorbar", None) is None
    ]


def _short(text: str, limit: int = 40) -> str:
    text = " ".join(text.split())
    return repr(text if len(text) <= limit else text[: limit - 1] + "…")


def _panel_names(panels: list[Axes]) -> dict[Axes, str]:
    names = {}
    for index, ax in enumerate(panels):
        letters = [t.get_text() for t in ax.texts if _PANEL_LETTER.match(t.get_text().strip())]
        name = f"panel {letters[0]}" if letters else f"panel {index + 1}"
        title = ax.get_title() or ax.get_title("left") or ax.get_title("right")
        names[ax] = f"{name} {_short(title)}" if title else name
    return names


def _overlap(a: Any, b: Any, tolerance: float = _TOLERANCE) -> bool:
    return (
        min(a.x1, b.x1) - max(a.x0, b.x0) > tolerance
        and min(a.y1, b.y1) - max(a.y0, b.y0) > tolerance
    )


def _in_frame(points: np.ndarray, frame: Any, margin: float = 0.5) -> np.ndarray:
    return (
        (points[:, 0] >= frame.x0 - margin)
        & (points[:, 0] <= frame.x1 + margin)
        & (points[:, 1] >= frame.y0 - margin)
        & (points[:, 1] <= frame.y1 + margin)
    )


def _display(transform: Any, xy: Any) -> np.ndarray:
    xy = np.asarray(xy, dtype=float).reshape(-1, 2)
    if not len(xy):
        return np.empty((0, 2))
    with np.errstate(all="ignore"):
        points = np.asarray(transform.transform(xy), dtype=float)
    return points[np.isfinite(points).all(axis=1)]


def _shows(points: np.ndarray, frame: Any, joined: bool) -> bool:
    """Whether points (display) show in ``frame``: one inside, or for joined points (a line, a
    polygon) a box that crosses the frame."""
    if not len(points):
        return False
    if _in_frame(points, frame).any():
        return True
    if not joined or len(points) < 2:
        return False
    low, high = points.min(axis=0), points.max(axis=0)
    return bool(
        low[0] <= frame.x1 and high[0] >= frame.x0 and low[1] <= frame.y1 and high[1] >= frame.y0
    )


def _artist_shows(artist: Any, ax: Axes) -> bool:
    """Whether ``artist`` (a legend entry's artist in ``ax``) draws anything visible there."""
    frame = ax.get_window_extent()
    if isinstance(artist, Line2D):
        if not artist.get_visible():
            return False
        points = _display(artist.get_transform(), artist.get_xydata())
        joined = artist.get_linestyle() not in ("None", "none", "", " ")
        return _shows(points, frame, joined)
    if isinstance(artist, Collection):
        if not artist.get_visible():
            return False
        offsets = np.asarray(artist.get_offsets(), dtype=float).reshape(-1, 2)
        if len(offsets) > 1 or np.any(offsets):
            return _shows(_display(artist.get_offset_transform(), offsets), frame, False)
        return any(
            _shows(_display(artist.get_transform(), p.vertices), frame, True)
            for p in artist.get_paths()
        )
    if isinstance(artist, Container):
        return any(_artist_shows(child, ax) for child in artist.get_children() if child is not None)
    if hasattr(artist, "get_path") and hasattr(artist, "get_transform"):
        if not artist.get_visible():
            return False
        return _shows(_display(artist.get_transform(), artist.get_path().vertices), frame, True)
    return True


def _labelled(ax: Axes, label: str) -> list[Any]:
    """The artists of ``ax`` that carry the legend label ``label`` (a bar or an error-bar
    container in place of its first patch)."""
    found = [c for c in ax.containers if c.get_label() == label]
    for artist in (*ax.lines, *ax.collections, *ax.patches):
        if artist.get_label() != label:
            continue
        owner = next((c for c in ax.containers if artist in c.get_children()), None)
        found.append(owner if owner is not None else artist)
    return found


def _filled(ax: Axes) -> list[Any]:
    """Display-space paths of the filled areas of ``ax``: bands, bars, histogram bins (not
    the shaded spans behind the data)."""
    paths = []
    for collection in ax.collections:
        if not collection.get_visible() or _is_span(collection, ax):
            continue
        offsets = np.asarray(collection.get_offsets(), dtype=float).reshape(-1, 2)
        if len(offsets) > 1 or np.any(offsets):  # markers, not areas
            continue
        facecolors = np.atleast_2d(collection.get_facecolor())
        if not facecolors.size or facecolors[:, 3].max() == 0:
            continue
        transform = collection.get_transform()
        paths.extend(p.transformed(transform) for p in collection.get_paths())
    for patch in ax.patches:
        if not patch.get_visible() or _is_span(patch, ax):
            continue
        if patch.get_fill() and patch.get_facecolor()[3] > 0:
            paths.append(patch.get_path().transformed(patch.get_transform()))
    return paths


_SAMPLE_SPACING = 2.0  # pixels between the points sampled along a drawn line


def _line_samples(ax: Axes) -> np.ndarray:
    """Display points every ``_SAMPLE_SPACING`` pixels along the drawn segments of the
    lines of ``ax`` (a legend must not cross a curve between its vertices either)."""
    chunks = []
    for line in ax.get_lines():
        if not line.get_visible() or line.get_linestyle() in ("None", "none", "", " "):
            continue
        with np.errstate(all="ignore"):
            points = line.get_transform().transform(np.asarray(line.get_xydata(), dtype=float))
        if len(points) < 2:
            continue
        start, end = points[:-1], points[1:]
        drawn = np.isfinite(start).all(axis=1) & np.isfinite(end).all(axis=1)
        start, end = start[drawn], end[drawn]
        if not len(start):
            continue
        steps = np.ceil(np.hypot(*(end - start).T) / _SAMPLE_SPACING).astype(int).clip(1, 10_000)
        fractions = np.concatenate([np.arange(n) / n for n in steps])
        origins = np.repeat(start, steps, axis=0)
        chunks.append(origins + fractions[:, None] * np.repeat(end - start, steps, axis=0))
    return np.concatenate(chunks) if chunks else np.empty((0, 2))


def _cover_counter(ax: Axes) -> Any:
    """``covered(box)``: :func:`covered_points` of ``ax`` for many boxes, its points and
    areas gathered once."""
    points = np.concatenate([data_points(ax), _line_samples(ax)])
    areas = _filled(ax)
    frame = ax.get_window_extent()

    def covered(box: Any) -> int:
        count = _inside(points, box, ax)
        probes = np.array(
            [
                [box.x0, box.y0],
                [box.x0, box.y1],
                [box.x1, box.y0],
                [box.x1, box.y1],
                [(box.x0 + box.x1) / 2, (box.y0 + box.y1) / 2],
            ]
        )
        probes = probes[_in_frame(probes, frame, margin=0.0)]
        if len(probes):
            count += sum(bool(path.contains_points(probes).any()) for path in areas)
        return count

    return covered


def covered_points(ax: Axes, box: Any) -> int:
    """How many plotted points of ``ax`` a box (display coordinates: a legend's) hides:
    points of markers, error bars, bands and bars and points every 2 pixels along the lines
    inside it, plus one for each filled area (a band, a bar) holding a corner or the centre
    of the box. Shaded spans behind the data (``axvspan``) do not count."""
    return _cover_counter(ax)(box)


def _texts_of(ax: Axes, renderer: Any) -> tuple[list[tuple[str, Any]], list[tuple[str, Any]]]:
    """``(labels, notes)`` of ``ax`` as ``(description, box)``: its labels (titles, axis
    labels, tick labels, offset texts, panel letters: around the frame) and its notes (texts
    placed in the panel)."""
    labels, notes = [], []

    def add(target: list, what: str, text: Any) -> None:
        if text.get_visible() and text.get_text().strip():
            target.append((f"{what} {_short(text.get_text())}", text.get_window_extent(renderer)))

    for where in ("center", "left", "right"):
        title = {"center": ax.title, "left": ax._left_title, "right": ax._right_title}[where]
        add(labels, "title", title)
    for name, axis in (("x", ax.xaxis), ("y", ax.yaxis)):
        add(labels, f"{name} label", axis.label)
        add(labels, f"{name} offset", axis.get_offset_text())
        for text in _tick_labels(ax, name):
            add(labels, f"{name} tick label", text)
    for text in ax.texts:
        letter = _PANEL_LETTER.match(text.get_text().strip())
        add(labels if letter else notes, "panel letter" if letter else "text", text)
    return labels, notes


def _tick_labels(ax: Axes, which: str, *, minor: bool | None = None) -> list[Any]:
    """The tick label texts of ``ax``'s ``which`` axis drawn inside its limits (major and
    minor unless ``minor`` says which)."""
    axis = ax.xaxis if which == "x" else ax.yaxis
    low, high = sorted(axis.get_view_interval())
    span = (high - low) * 1e-9
    texts = []
    for is_minor in (False, True) if minor is None else (minor,):
        locations = axis.get_minorticklocs() if is_minor else axis.get_majorticklocs()
        ticks = (
            axis.get_minor_ticks(len(locations))
            if is_minor
            else axis.get_major_ticks(len(locations))
        )
        for location, tick in zip(locations, ticks):
            if not (low - span <= location <= high + span):
                continue
            for text in (tick.label1, tick.label2):
                if text.get_visible() and text.get_text().strip():
                    texts.append(text)
    return texts


def _log_tick_defects(ax: Axes, name: str) -> list[str]:
    defects = []
    for which in ("x", "y"):
        axis = ax.xaxis if which == "x" else ax.yaxis
        if axis.get_scale() != "log":
            continue
        labelled = {t.get_text() for t in _tick_labels(ax, which)}
        if not labelled:
            siblings = ax.get_shared_x_axes() if which == "x" else ax.get_shared_y_axes()
            if len(siblings.get_siblings(ax)) > 1:
                continue  # labels hidden on purpose: a shared axis labelled on its neighbour
        if len(labelled) < 2:
            shown = ", ".join(sorted(labelled)) or "none"
            defects.append(
                f"{name}: log {which} axis has {len(labelled)} labelled tick(s) ({shown}); "
                "at least two are needed (style.ensure_log_ticks)"
            )
    return defects


def _clipped_marker_defects(ax: Axes, name: str) -> list[str]:
    """Markers the frame cuts in half or hides: data points at or beyond the axes' edge."""
    frame = ax.get_window_extent()
    pixels = ax.figure.dpi / 72.0
    cut = hidden = 0
    for artist in (*ax.lines, *ax.collections):
        if not artist.get_visible() or not artist.get_clip_on():
            continue
        if isinstance(artist, Line2D):
            if artist.get_marker() in _CAP_MARKERS:
                continue
            points = _display(artist.get_transform(), artist.get_xydata())
            radius = np.full(len(points), artist.get_markersize() / 2 * pixels)
        elif isinstance(artist, PathCollection):
            offsets = np.asarray(artist.get_offsets(), dtype=float).reshape(-1, 2)
            finite = np.isfinite(offsets).all(axis=1)
            sizes = np.resize(np.asarray(artist.get_sizes(), dtype=float), len(offsets))
            with np.errstate(all="ignore"):
                display = artist.get_offset_transform().transform(offsets)
            keep = finite & np.isfinite(display).all(axis=1)
            points, radius = display[keep], np.sqrt(sizes[keep]) / 2 * pixels
        else:
            continue
        if not len(points):
            continue
        gap = np.minimum.reduce(
            [
                points[:, 0] - frame.x0,
                frame.x1 - points[:, 0],
                points[:, 1] - frame.y0,
                frame.y1 - points[:, 1],
            ]
        )
        hidden += int((gap < -_TOLERANCE).sum())
        cut += int(((gap >= -_TOLERANCE) & (gap < radius - _TOLERANCE)).sum())
    defects = []
    if cut:
        defects.append(f"{name}: {cut} marker(s) cut by the frame (widen the limits)")
    if hidden:
        defects.append(f"{name}: {hidden} marker(s) outside the frame, not drawn")
    return defects


def _legend_defects(
    legend: Legend, axes: list[Axes], name: str, names: dict[Axes, str], renderer: Any
) -> list[str]:
    defects = []
    box = legend.get_window_extent(renderer)
    for ax in axes:
        count = covered_points(ax, box)
        if count:
            where = "" if len(axes) == 1 else f" of {names[ax]}"
            defects.append(f"{name} covers {count} plotted point(s){where}")
    for label in (t.get_text() for t in legend.get_texts()):
        artists = [(ax, artist) for ax in axes for artist in _labelled(ax, label)]
        if artists and not any(_artist_shows(artist, ax) for ax, artist in artists):
            defects.append(f"{name} has the entry {_short(label)} with no data drawn")
    return defects


_PLAIN_MATHS = re.compile(r"[A-Za-z0-9)\]}|]\s?[_^]\s?-?[{A-Za-z0-9(]")


def _plain_maths(text: str) -> bool:
    """Whether ``text`` has a subscript or superscript written outside ``$...$``."""
    outside = re.sub(r"(?<!\\)\$.*?(?<!\\)\$", " ", text)
    return bool(_PLAIN_MATHS.search(outside))


def figure_defects(
    figure: Figure, *, title: str | None = None, caption: str | None = None, draw: bool = True
) -> list[str]:
    """What a referee would flag in ``figure``, one message per defect naming its panel
    (empty: the figure passes the figure test). The figure is laid out and drawn once.

    Per panel (visible axes, colour bars aside): a legend hiding plotted points (lines,
    markers, error bars, bands, bars: :func:`covered_points`) or a text placed in the panel;
    a legend entry whose artists draw nothing (no finite value inside the limits); a log axis
    with fewer than two labelled ticks; markers cut or hidden by the frame. Over the figure:
    text (titles, axis and tick labels, panel letters, legends) cut by the figure's edge or
    overlapping the labels or the frame of another panel, tick labels overlapping each other,
    sub- or superscripts written outside ``$...$`` (plain-text maths), no panel letters on a
    figure of several panels, and figure-level text that is a caption (longer than
    ``_CAPTION_LENGTH`` characters or several lines, or the experiment's ``title`` or part
    of its ``caption``): the report and the documentation show those as text.

    With ``draw=False`` the figure is not drawn again: it is checked as it was last drawn
    (by ``plotting.save_figure``, say), which saves the one drawing that costs most."""
    with _measured(figure, draw) as renderer:
        return _figure_defects(figure, renderer, title, caption)


def _figure_defects(
    figure: Figure, renderer: Any, title: str | None, caption: str | None
) -> list[str]:
    panels = _panels(figure)
    names = _panel_names(panels)
    defects: list[str] = []
    edge = figure.bbox
    # (owner, kind, description, box): owner None is the figure; kind label/note/legend
    items: list[tuple[Axes | None, str, str, Any]] = []
    texts_to_read: list[tuple[str, str]] = []  # (where, text) for plain-text maths
    for ax in panels:
        name = names[ax]
        labels, notes = _texts_of(ax, renderer)
        items += [(ax, "label", what, box) for what, box in labels]
        items += [(ax, "note", what, box) for what, box in notes]
        legend = ax.get_legend()
        if legend is not None and legend.get_visible():
            box = legend.get_window_extent(renderer)
            items.append((ax, "legend", "legend", box))
            defects += _legend_defects(legend, [ax], f"{name}: legend", names, renderer)
            for what, note in notes:
                if _overlap(box, note):
                    defects.append(f"{name}: legend covers the {what}")
            texts_to_read += [(f"{name} legend", t.get_text()) for t in legend.get_texts()]
        defects += _log_tick_defects(ax, name)
        defects += _clipped_marker_defects(ax, name)
        for which in ("x", "y"):
            boxes = sorted(
                (t.get_window_extent(renderer) for t in _tick_labels(ax, which)),
                key=lambda b: (b.x0, b.y0),
            )
            if any(_overlap(a, b) for a, b in itertools.combinations(boxes, 2)):
                defects.append(f"{name}: {which} tick labels overlap each other")
        texts_to_read += [
            (name, t.get_text())
            for t in (ax.title, ax.xaxis.label, ax.yaxis.label, *ax.texts)
            if t.get_visible()
        ]
    for index, legend in enumerate(figure.legends):
        if not legend.get_visible():
            continue
        what = "figure legend" + (f" {index + 1}" if len(figure.legends) > 1 else "")
        items.append((None, "legend", what, legend.get_window_extent(renderer)))
        defects += _legend_defects(legend, panels, what, names, renderer)
        texts_to_read += [(what, t.get_text()) for t in legend.get_texts()]
    figure_texts = [t for t in figure.texts if t.get_visible() and t.get_text().strip()]
    for attribute in ("_suptitle", "_supxlabel", "_supylabel"):
        text = getattr(figure, attribute, None)
        if text is not None and text.get_visible() and text.get_text().strip():
            figure_texts.append(text)
    for text in figure_texts:
        content = text.get_text()
        items.append(
            (None, "label", f"figure text {_short(content)}", text.get_window_extent(renderer))
        )
        flat = " ".join(content.split())
        if title and flat == " ".join(title.split()):
            defects.append("the experiment's title is drawn in the figure (the report shows it)")
        elif caption and len(flat) > 20 and flat in " ".join(caption.split()):
            defects.append(
                f"figure text {_short(content)} is the caption (the report shows captions)"
            )
        elif len(flat) > _CAPTION_LENGTH or "\n" in content.strip():
            defects.append(
                f"figure text {_short(content)} ({len(flat)} characters) is a caption: "
                "captions stay out of the image"
            )
        else:
            texts_to_read.append(("figure text", content))
    for owner, _kind, what, box in items:
        where = names[owner] if owner is not None else "figure"
        if (
            box.x0 < edge.x0 - _TOLERANCE
            or box.y0 < edge.y0 - _TOLERANCE
            or box.x1 > edge.x1 + _TOLERANCE
            or box.y1 > edge.y1 + _TOLERANCE
        ):
            defects.append(f"{where}: {what} is cut by the figure's edge")
    frames = {ax: ax.get_window_extent() for ax in panels}
    reported = set()
    for i, (owner, kind, what, box) in enumerate(items):
        where = names[owner] if owner is not None else "figure"
        for other_owner, other_kind, other_what, other_box in items[i + 1 :]:
            if other_owner is owner and "legend" not in (kind, other_kind):
                continue  # labels of one panel: tick labels are checked above
            if other_owner is owner and "note" in (kind, other_kind):
                continue  # a panel's legend over its notes: reported above
            if "note" in (kind, other_kind) and None in (owner, other_owner):
                continue
            if _overlap(box, other_box):
                other = names[other_owner] if other_owner is not None else "figure"
                key = (where, what, other, other_what)
                if key not in reported:
                    reported.add(key)
                    defects.append(f"{where}: {what} overlaps the {other_what} of {other}")
        for ax, frame in frames.items():
            if ax is owner or (owner is None and kind == "legend"):
                continue  # a figure legend over a frame: its data are checked above
            if _overlap(box, frame):
                defects.append(f"{where}: {what} overlaps the frame of {names[ax]}")
    if len(panels) > 1:
        unlettered = [
            names[ax]
            for ax in panels
            if not any(_PANEL_LETTER.match(t.get_text().strip()) for t in ax.texts)
            and not re.match(r"^\(?[a-z]\)", ax.get_title().strip())
        ]
        if unlettered:
            defects.append(f"no panel letter on {', '.join(unlettered)} (style.panel_letters)")
    for where, text in texts_to_read:
        if _plain_maths(text):
            defects.append(f"{where}: plain-text maths in {_short(text)} (write it in $...$)")
    return list(dict.fromkeys(defects))
