"""Figure helpers shared by the experiments: panel grids, provenance, and saving to files.

Figures are built with ``matplotlib.figure.Figure`` directly (no pyplot state), so they can
be drawn in worker processes and tests without a display.

The title and the caption of an experiment are text in the report and the documentation, not
pixels in its figure; the provenance line (:func:`add_footer`) travels with the files as
metadata. :func:`save_figure` writes the PNG and the PDF with the same look: the figure's own
size in both (no tight cropping: the PDF page is the figure, the PNG is that size at 150 dpi)
and the same glyphs, embedded in the PDF (``SAVE_STYLE``).

A study that diverged leaves NaN (or non-positive) values where numbers were expected; figures
are drawn with what stayed finite. :func:`finite_positive` masks what a log axis cannot show,
and :func:`save_figure` turns a log axis left with nothing to show into a linear one with a
note, instead of failing with matplotlib's "Data cannot be log-scaled".
"""

from __future__ import annotations

import io
import math
import weakref
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib import rc_context
from matplotlib.axes import Axes
from matplotlib.backend_bases import FigureCanvasBase
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ..results import atomic_write_bytes

__all__ = [
    "SAVE_STYLE",
    "add_footer",
    "finite_positive",
    "footer_of",
    "guard_log_axes",
    "panel_grid",
    "save_figure",
]


def panel_grid(
    panels: int, *, columns: int = 4, size: tuple[float, float] = (3.6, 3.0)
) -> tuple[Figure, list[Axes]]:
    """A figure with ``panels`` axes in rows of at most ``columns`` (each panel ``size``
    inches, constrained layout); unused axes hidden."""
    columns = min(columns, panels)
    rows = -(-panels // columns)
    figure = Figure(figsize=(size[0] * columns, size[1] * rows), layout="constrained")
    grid = figure.subplots(rows, columns, squeeze=False)
    axes = [ax for row in grid for ax in row]
    for ax in axes[panels:]:
        ax.set_visible(False)
    return figure, axes[:panels]


# the provenance line of a figure, written by save_figure into the files' metadata
_FOOTERS: weakref.WeakKeyDictionary[Figure, str] = weakref.WeakKeyDictionary()

PNG_DPI = 150

# what save_figure saves with, whatever the caller's rcParams: the figure's size, and the
# PNG's glyphs embedded in the PDF (Type 3: each glyph's outline from the same font files;
# TrueType embedding, pdf.fonttype 42, subsets the fonts with fontTools at about half a
# second per figure, which every reproduce would pay)
SAVE_STYLE: dict[str, Any] = {
    "savefig.bbox": "standard",
    "savefig.facecolor": "white",
    "savefig.edgecolor": "white",
    "pdf.fonttype": 3,
}


def add_footer(figure: Figure, text: str) -> None:
    """The provenance line of ``figure`` (one line: version, commit, spec, time), written by
    :func:`save_figure` into the metadata of the files it saves (PNG ``Source``, PDF
    ``Subject``) rather than drawn: the image is the figure alone, as it goes into a paper."""
    if not isinstance(text, str):
        raise TypeError(f"text must be a string, got {type(text).__name__}")
    _FOOTERS[figure] = " ".join(text.split())


def footer_of(figure: Figure) -> str | None:
    """The provenance line given to :func:`add_footer` for ``figure``, or None."""
    return _FOOTERS.get(figure)


def finite_positive(*arrays: Any) -> np.ndarray:
    """The mask of the positions where every array is finite and > 0 (what log axes show)."""
    keep = None
    for array in arrays:
        values = np.asarray(array, dtype=float)
        with np.errstate(invalid="ignore"):
            ok = np.isfinite(values) & (values > 0)
        keep = ok if keep is None else keep & ok
    return np.asarray(keep, dtype=bool)


NOTHING_FINITE = "no finite positive values to show (diverged?)"


def guard_log_axes(figure: Figure) -> int:
    """Make every log axis of ``figure`` that has no finite positive data linear, with a note
    in its panel (matplotlib cannot draw such an axis); returns how many were changed."""
    changed = 0
    for ax in figure.axes:
        if not ax.get_visible():
            continue
        noted = False
        for name in ("x", "y"):
            if getattr(ax, f"get_{name}scale")() != "log":
                continue
            low = getattr(ax.dataLim, f"minpos{name}")
            if math.isfinite(low) and low > 0:
                continue
            getattr(ax, f"set_{name}scale")("linear")
            changed += 1
            if not noted:
                ax.text(
                    0.5,
                    0.5,
                    NOTHING_FINITE,
                    transform=ax.transAxes,
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="#b00020",
                    wrap=True,
                )
                noted = True
    return changed


def save_figure(figure: Figure, stem: Path) -> list[Path]:
    """Write ``stem.pdf`` and ``stem.png`` (150 dpi) atomically, with the same look
    (``SAVE_STYLE``: the figure's size in both, fonts embedded in the PDF); return the paths
    (PNG first). Log axes with nothing finite to show become linear first
    (:func:`guard_log_axes`). The provenance line (:func:`add_footer`) goes into the files'
    metadata; the PDF carries no creation date, so the same figure gives the same bytes.

    The PNG is drawn last: afterwards the figure holds the layout of the PNG (what
    :func:`deeplimit.experiments.style.figure_defects` with ``draw=False`` checks)."""
    guard_log_axes(figure)
    footer = footer_of(figure)
    metadata = {
        "pdf": {"CreationDate": None, **({"Subject": footer} if footer else {})},
        "png": {"Source": footer} if footer else {},
    }
    if type(figure.canvas) is FigureCanvasBase:
        # an Agg canvas of its own keeps the PNG's renderer (and its text metrics) afterwards
        FigureCanvasAgg(figure)
    paths = {}
    for extension, options in (("pdf", {}), ("png", {"dpi": PNG_DPI})):
        buffer = io.BytesIO()
        with rc_context(SAVE_STYLE):
            figure.savefig(buffer, format=extension, metadata=metadata[extension], **options)
        path = stem.with_suffix(f".{extension}")
        atomic_write_bytes(path, buffer.getvalue())
        paths[extension] = path
    return [paths["png"], paths["pdf"]]
