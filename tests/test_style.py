"""The figure style module: legends placed over no data, labelled log ticks, panel letters,
error bands over seeds."""

import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from deeplimit.experiments.style import (
    STYLE,
    data_points,
    ensure_log_ticks,
    error_band,
    finish_axes,
    legend_overlap,
    panel_letters,
    place_legend,
    styled,
)


def _axes(**kwargs):
    figure = Figure(figsize=(4, 3))
    FigureCanvasAgg(figure)
    return figure, figure.subplots(**kwargs)


def _labelled_ticks(ax, which):
    ax.figure.canvas.draw()
    axis = ax.xaxis if which == "x" else ax.yaxis
    low, high = sorted(ax.get_xlim() if which == "x" else ax.get_ylim())
    return [
        t.get_text()
        for t, loc in zip(axis.get_ticklabels(), axis.get_majorticklocs())
        if t.get_text() and low <= loc <= high
    ]


def test_legend_avoids_the_data_and_a_fixed_corner_would_not():
    _figure, ax = _axes()
    x = np.linspace(0, 1, 200)
    ax.plot(x, x**4, label="rising")  # fills the lower left and the upper right
    ax.plot(x, 0.9 + 0.1 * x, label="flat top")  # the whole top edge
    ax.legend(loc="upper right")
    assert legend_overlap(ax) > 0  # the default corner hides points
    legend = place_legend(ax)
    assert legend_overlap(ax, legend) == 0
    assert legend._loc not in (1, 2)  # neither upper corner


def test_legend_drops_entries_without_data():
    _figure, ax = _axes()
    ax.plot([1, 2, 3], [1, 2, 3], label="drawn")
    ax.plot([1, 2], [np.nan, np.nan], label="L = 30, nothing finite")
    ax.plot([], [], label="empty")
    legend = place_legend(ax)
    assert [t.get_text() for t in legend.get_texts()] == ["drawn"]
    _figure2, ax2 = _axes()
    ax2.plot([1, 2], [np.nan, np.nan], label="nothing")
    assert place_legend(ax2) is None and ax2.get_legend() is None


def test_data_points_see_lines_scatters_and_bands():
    _figure, ax = _axes()
    ax.plot([0, 1], [0, 1])
    ax.scatter([0.5, 0.25, 0.75], [0.5, 0.1, 0.9])
    ax.fill_between([0, 1], [0, 0], [1, 1])
    points = data_points(ax)
    assert len(points) >= 2 + 3 + 4
    assert np.isfinite(points).all()


@pytest.mark.parametrize("limits", [(2.0, 5.0), (0.3, 0.45), (120.0, 900.0), (1.001, 1.01)])
def test_log_axes_get_two_labelled_ticks(limits):
    _figure, ax = _axes()
    ax.plot([1, 2], limits)
    ax.set_yscale("log")
    ax.set_ylim(*limits)
    ensure_log_ticks(ax, "y")
    labels = _labelled_ticks(ax, "y")
    assert len(labels) >= 2, labels
    assert len(set(labels)) == len(labels)  # distinct labels


def test_wide_log_axes_are_left_alone():
    _figure, ax = _axes()
    ax.plot([1, 1000], [1e-3, 10])
    ax.set(xscale="log", yscale="log")
    locator = ax.yaxis.get_major_locator()
    ensure_log_ticks(ax)
    assert ax.yaxis.get_major_locator() is locator
    with pytest.raises(ValueError, match="axis must be"):
        ensure_log_ticks(ax, "z")


def test_panel_letters_in_order_on_visible_panels():
    _figure, axes = _axes(ncols=3)
    axes[2].set_visible(False)
    texts = panel_letters(axes)
    assert [t.get_text() for t in texts] == ["(a)", "(b)"]
    with pytest.raises(ValueError, match="start"):
        panel_letters(axes, start="A")


def test_error_band_is_mean_plus_minus_z_standard_errors():
    _figure, ax = _axes()
    values = np.array([[1.0, 2.0, 4.0], [3.0, 2.0, np.nan], [2.0, 5.0, 6.0]])
    line, band = error_band(ax, [1, 2, 3], values, z=2.0)
    mean = np.array([2.0, 3.0, 5.0])
    np.testing.assert_allclose(line.get_ydata(), mean)
    se = np.array([1.0 / np.sqrt(3), np.sqrt(3.0) / np.sqrt(3), np.sqrt(2.0) / np.sqrt(2)])
    vertices = band.get_paths()[0].vertices
    assert np.isclose(vertices[:, 1].max(), (mean + 2 * se).max())
    assert np.isclose(vertices[:, 1].min(), (mean - 2 * se).min())
    _, no_band = error_band(ax, [1, 2, 3], values[:1])  # one seed: no band
    assert no_band is None
    with pytest.raises(ValueError, match="shape"):
        error_band(ax, [1, 2], values)


def test_styled_figures_use_mathtext_and_finish_axes():
    with styled():
        figure, ax = _axes()
        _line, _ = error_band(ax, [1, 2, 4], [[1.0, 1.5, 2.0], [1.2, 1.4, 2.2]], label=r"$\phi$")
        ax.set(xscale="log", yscale="log", xlabel=r"depth $L$")
        finish_axes(ax)
        figure.canvas.draw()
        assert figure.canvas.get_renderer() is not None
        import matplotlib

        assert matplotlib.rcParams["mathtext.fontset"] == STYLE["mathtext.fontset"]
    assert legend_overlap(ax) == 0
    assert len(_labelled_ticks(ax, "x")) >= 2 and len(_labelled_ticks(ax, "y")) >= 2
