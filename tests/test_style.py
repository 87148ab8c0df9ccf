"""The figure style module: legends placed over no data, labelled log ticks, panel letters,
error bands over seeds."""

import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import NullFormatter

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


# ------------------------------------------------------------- the figure test's checks


def _clean_figure():
    """Two panels as the style asks: letters, mathtext, legends over no data, log ticks."""
    with styled():
        figure = Figure(figsize=(6.0, 2.6), layout="constrained")
        left, right = figure.subplots(1, 2)
        x = np.array([1.0, 2.0, 4.0, 8.0, 16.0])
        error_band(left, x, [1 / x, 1.2 / x, 0.9 / x], label=r"$\|h_L - h^\star\|$")
        left.set(xscale="log", yscale="log", xlabel=r"depth $L$", ylabel="error")
        right.plot(x, np.sqrt(x), marker="o", label=r"$\sqrt{L}$")
        right.set(xlabel=r"depth $L$", ylabel=r"$Y_L$")
        for ax in (left, right):
            finish_axes(ax)
        panel_letters([left, right])
    return figure, left, right


def _defects_matching(figure, pattern, **kwargs):
    import re

    from deeplimit.experiments.style import figure_defects

    defects = figure_defects(figure, **kwargs)
    return [d for d in defects if re.search(pattern, d)], defects


def test_a_figure_drawn_in_the_style_has_no_defects():
    from deeplimit.experiments.style import figure_defects

    figure, *_ = _clean_figure()
    assert figure_defects(figure, title="A title", caption="A caption of the figure.") == []


def test_figure_defects_finds_a_legend_over_data_and_over_a_band():
    figure, _left, right = _clean_figure()
    right.legend(loc="upper left")  # the sqrt curve starts there... and crosses it
    x = np.linspace(0, 1, 50)
    right.plot(np.interp(x, [0, 1], [1, 16]), np.full(50, 3.5), label="flat")
    right.legend(loc="center")
    found, _ = _defects_matching(figure, r"panel \(b\).*: legend covers \d+ plotted point")
    assert found
    # a legend inside a band (no vertex under it) hides the band
    with styled():
        band_figure = Figure(figsize=(3, 2), layout="constrained")
        ax = band_figure.subplots()
        ax.fill_between([0, 1], [0, 0], [1, 1], alpha=0.3, label="band")
        ax.set(xlim=(-0.5, 1.5), ylim=(-0.5, 1.5))
        ax.legend(loc="center")
    assert _defects_matching(band_figure, r"legend covers 1 plotted point")[0]
    # a shaded span behind the data is not data
    with styled():
        span_figure = Figure(figsize=(3, 2), layout="constrained")
        ax = span_figure.subplots()
        ax.axhspan(-1, 2, color="0.9")
        ax.plot([0, 1], [0, 0.1], label="low")
        ax.legend(loc="upper right")
    assert not _defects_matching(span_figure, r"covers")[0]


def test_figure_defects_finds_a_legend_entry_without_data():
    figure, left, _ = _clean_figure()
    left.plot([2, 4], [np.nan, np.nan], label="$L = 30$")
    left.plot([2, 4], [-1.0, 0.0], label="negative")  # on a log axis: nothing drawn either
    left.legend()  # a plain legend keeps the entries that draw nothing
    _, defects = _defects_matching(figure, "")
    assert "panel (a): legend has the entry '$L = 30$' with no data drawn" in defects
    assert "panel (a): legend has the entry 'negative' with no data drawn" in defects


def test_figure_defects_finds_a_log_axis_with_one_labelled_tick():
    with styled():
        figure = Figure(figsize=(3, 2.4), layout="constrained")
        ax = figure.subplots()
        ax.plot([10, 20, 40], [1.1, 1.5, 2.5], marker="o")
        ax.set(xscale="log", yscale="log", xlim=(5, 100), ylim=(1.0, 3))
        ax.yaxis.set_minor_formatter(NullFormatter())  # 10^0 alone is labelled
    found, defects = _defects_matching(figure, r"log [xy] axis has [01] labelled tick")
    assert len(found) == 1 and "log y axis has 1 labelled tick" in found[0], defects
    ensure_log_ticks(ax)
    assert not _defects_matching(figure, r"labelled tick")[0]


def test_figure_defects_finds_text_cut_by_the_edge_and_colliding_panels():
    figure = Figure(figsize=(4, 2))
    left, right = figure.subplots(1, 2, gridspec_kw={"wspace": 0.02, "left": 0.01})
    for ax in (left, right):
        ax.plot([0, 1], [0, 1e5])
        ax.set_ylabel("a long y label")
    panel_letters([left, right])
    found, defects = _defects_matching(figure, r"panel \(a\): y label .* figure's edge")
    assert found, defects
    found, _ = _defects_matching(figure, r"panel \(b\): y (tick )?label .*overlaps .*panel \(a\)")
    assert found, defects


def test_figure_defects_finds_markers_cut_by_the_frame():
    with styled():
        figure = Figure(figsize=(3, 2.4), layout="constrained")
        ax = figure.subplots()
        ax.plot([0, 1, 2, 3], [0, 1, 2, 3], marker="o")
        ax.set_xlim(0, 2.5)  # the first marker on the edge, the last outside
    cut, defects = _defects_matching(figure, r"1 marker\(s\) cut by the frame")
    hidden, _ = _defects_matching(figure, r"1 marker\(s\) outside the frame")
    assert cut and hidden, defects
    ax.errorbar([1], [1], yerr=[5], capsize=3)  # caps past the frame are not data points
    assert len(_defects_matching(figure, r"marker")[0]) == 2


def test_figure_defects_finds_captions_titles_and_plain_text_maths():
    figure, left, right = _clean_figure()
    title = "Error against depth"
    caption = "Linear ResNets at depth L in [1, 2, 4], three seeds: the error and its fit."
    figure.suptitle(title)
    figure.text(0.0, 0.0, caption[:40])
    figure.text(0.0, 0.5, "some words " * 8)
    left.set_xlabel("log(Y_L / Y_0)")
    right.set_xlabel(r"$\log(Y_L / Y_0)$ and P^-0.2")
    _, defects = _defects_matching(figure, "", title=title, caption=caption)
    assert sum("title is drawn" in d for d in defects) == 1, defects
    assert sum("is the caption" in d for d in defects) == 1, defects
    assert sum("characters) is a caption" in d for d in defects) == 1, defects
    maths = [d for d in defects if "plain-text maths" in d]
    assert len(maths) == 2, defects
    assert maths[0].startswith("panel (a)") and "log(Y_L" in maths[0]
    assert maths[1].startswith("panel (b)") and "P^-0.2" in maths[1]


def test_figure_defects_asks_for_panel_letters_on_several_panels():
    figure = Figure(figsize=(4, 2), layout="constrained")
    left, right = figure.subplots(1, 2)
    for ax in (left, right):
        ax.plot([0, 1], [0, 1])
    assert _defects_matching(figure, r"no panel letter on panel 1, panel 2")[0]
    panel_letters([left, right])
    assert not _defects_matching(figure, r"panel letter")[0]
    single = Figure(figsize=(3, 2), layout="constrained")
    single.subplots().plot([0, 1], [0, 1])
    assert not _defects_matching(single, r"panel letter")[0]


def test_figure_defects_finds_a_figure_legend_over_data():
    figure = Figure(figsize=(3, 2.4), layout="constrained")
    ax = figure.subplots()
    x = np.linspace(0, 1, 100)
    ax.plot(x, 1 - x, label="falling")
    figure.legend(loc="center")
    assert _defects_matching(figure, r"figure legend covers \d+ plotted point")[0]


def test_place_legend_keeps_clear_of_bands_and_segments():
    _figure, ax = _axes()
    ax.fill_between([0, 1], [0.0, 0.0], [0.3, 0.3], alpha=0.3, label="band")  # lower part
    ax.plot([0, 1], [0.95, 0.95], label="top")  # two vertices, a line along the top
    ax.set(xlim=(0, 1), ylim=(0, 1))
    legend = place_legend(ax)
    from deeplimit.experiments.style import covered_points

    assert covered_points(ax, legend.get_window_extent()) == 0
    assert legend._loc in (5, 6, 7)  # on the right or the left, between band and line


# ------------------------------------------------------------------- PNG and PDF alike


def test_png_and_pdf_have_the_same_size_embedded_fonts_and_the_provenance(tmp_path):
    from PIL import Image

    from deeplimit.experiments.plotting import add_footer, save_figure

    with styled():
        figure = Figure(figsize=(3.0, 2.0), layout="constrained")
        figure.subplots().set_xlabel(r"depth $L$")
    add_footer(figure, "deeplimit 1.0 commit abc  spec   {}")
    png, pdf = save_figure(figure, tmp_path / "figure")
    assert (png.suffix, pdf.suffix) == (".png", ".pdf")
    width, height = figure.get_size_inches()
    with Image.open(png) as image:
        assert image.size == (round(width * 150), round(height * 150))
        assert image.text["Source"] == "deeplimit 1.0 commit abc spec {}"
    data = pdf.read_bytes()
    import re

    box = [float(v) for v in re.search(rb"/MediaBox \[([^\]]+)\]", data).group(1).split()]
    assert box == pytest.approx([0, 0, width * 72, height * 72])
    # every font embedded: glyph outlines (Type 3), no font left to the reader's machine
    assert b"/Subtype /Type3" in data and b"/CharProcs" in data
    assert b"/Subtype /Type1" not in data and b"/Subtype /TrueType" not in data
    assert b"deeplimit 1.0 commit abc" in data
    # no footer text in the image itself, no creation date in the PDF
    assert not figure.texts and b"/CreationDate" not in data
    with pytest.raises(TypeError, match="text"):
        add_footer(figure, None)
