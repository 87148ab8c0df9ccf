"""The figure test (issue 12): the smoke-scale figure of every registered experiment passes
``style.figure_defects`` (no legend over data, no legend entry without data, log axes with two
labelled ticks, no text cut by the edge or colliding with another panel, no marker cut by the
frame, panel letters, mathtext, no caption in the image).

The figures are the ones the suite saves anyway (tests/conftest.py checks each right after
``plotting.save_figure`` drew its PNG); this file runs last and reads those checks, drawing a
figure itself only when the suite did not (a run of this file alone: about a minute)."""

import pytest

from deeplimit.experiments import experiment_names

# Figures known to fail, with their kinds of defect (the test's message lists each one); strict:
# a fixed figure makes its entry fail (XPASS) until it is taken off this list.
# Example entry: "chizat-attention": ("legend covers data",).
KNOWN_DEFECTS: dict[str, tuple[str, ...]] = {}


def _param(name):
    if name not in KNOWN_DEFECTS:
        return name
    reason = "; ".join(KNOWN_DEFECTS[name])
    return pytest.param(name, marks=pytest.mark.xfail(strict=True, reason=reason))


def test_the_known_defects_name_registered_experiments():
    assert set(KNOWN_DEFECTS) <= set(experiment_names())


@pytest.mark.parametrize("name", [_param(name) for name in experiment_names()])
def test_figure_passes_the_figure_test(name, figure_checks, tmp_path):
    defects = figure_checks.defects(name, tmp_path)
    assert not defects, f"{name}: {len(defects)} defect(s)\n" + "\n".join(defects)
