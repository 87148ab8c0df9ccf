"""Observers that take stretches of layers of several float32 ReLU inputs of width > 1
(``chain._SeveralReLU`` with an ``ObservedStretch``: log-growth, active counts, collapse,
quasi-GBM, correlations), whose compiled stretches write each layer's counts, ratios and
correlations, against the same chain layer by layer (``chain._STRETCHES = False``: a view a
layer, every observer's ``observe``): the same numbers to the bit, whatever the blocks, the
threads, the recorded layers and the scale of the start; paths that collapse inside a
stretch; stretches that fail their checks run again layer by layer."""

from __future__ import annotations

import functools

import pytest
import torch

from deeplimit import rng
from deeplimit.initialization import chain, observables
from stretch_reference import assert_same, observed, per_step

OBSERVERS = ("log_growth", "collapse", "active", "quasi_gbm", "correlation")


@pytest.fixture
def taken(monkeypatch):
    """The layers the observers took in stretches (``observe_stretch`` calls), appended to
    as they run, and whether each stretch run passed."""
    layers: list[int] = []
    for name in ("_Active", "_LogGrowth", "_Collapse", "_QuasiGBM", "_Correlation"):
        cls = getattr(observables, name)
        method = cls.observe_stretch

        def counted(self, stretch, method=method):
            layers.extend(range(stretch.first, stretch.last + 1))
            return method(self, stretch)

        monkeypatch.setattr(cls, "observe_stretch", counted)
    return layers


@pytest.fixture
def runs(monkeypatch):
    """True for each stretch of several inputs that passed, False for one run again."""
    found: list[bool] = []
    run = chain._SeveralReLU.run

    def counted(self, *args):
        passed = run(self, *args)
        found.append(passed)
        return passed

    monkeypatch.setattr(chain._SeveralReLU, "run", counted)
    return found


def _small_blocks(monkeypatch, threads, numbers=2**10, stretch=8):
    """Blocks of about ``numbers`` numbers a layer, each layer drawn in a call of its own
    (the several-input stretches' condition), stretches of ``stretch`` layers at most."""
    monkeypatch.setattr(rng, "_NUMBERS_PER_BLOCK", numbers)
    monkeypatch.setattr(rng, "_GROUP_NUMBERS", 16)
    monkeypatch.setattr(chain, "_OBSERVED_NUMBERS", numbers * stretch)
    monkeypatch.setattr(chain, "_OBSERVED_SEVERAL", 1)
    monkeypatch.setattr(chain, "_threads", lambda: threads)


_observed, _assert_same = observed, assert_same


def _inputs(k, width, spread=0.3):
    return torch.stack([torch.linspace(-1.0, 0.5, width) + spread * a for a in range(k)])


@pytest.mark.parametrize(("k", "width"), [(2, 2), (3, 5), (4, 16)])
@pytest.mark.parametrize(
    "names",
    [
        OBSERVERS,
        ("correlation",),
        ("active", "quasi_gbm"),
        ("collapse",),
        ("collapse", "quasi_gbm"),
    ],
    ids=str,
)
@pytest.mark.parametrize("layers", ["all", [0, 3, 3, 17, 40, 69, 70]], ids=str)
@pytest.mark.parametrize("threads", [1, 2])
def test_observed_stretches_of_several_inputs_give_the_numbers_of_the_per_step_chain(
    monkeypatch, taken, runs, k, width, names, layers, threads
):
    """Several blocks on one and two threads, 70 layers in stretches of up to 8 layers; a
    layer recorded twice fills both of its slots."""
    _small_blocks(monkeypatch, threads)
    y0 = _inputs(k, width)
    kwargs = dict(samples=700, seed=11)
    found = _observed(width, 70, y0, names, layers, **kwargs)
    assert runs and all(runs) and set(taken) == set(range(1, 71))
    taken.clear()
    runs.clear()
    expected = per_step(monkeypatch, lambda: _observed(width, 70, y0, names, layers, **kwargs))
    assert not taken and not runs
    _assert_same(found, expected)


@pytest.mark.parametrize("names", [OBSERVERS, ("collapse", "quasi_gbm"), ("collapse",)], ids=str)
def test_paths_of_several_inputs_that_collapse_inside_stretches_are_found(
    monkeypatch, taken, names
):
    """Depth 6, width 2, three inputs, one of them mostly negative: paths collapse in the
    stretch of layers 1-6 (also at the last layer), with the same collapse layers, drifts,
    counts and correlations as layer by layer."""
    _small_blocks(monkeypatch, 2, stretch=6)
    y0 = torch.tensor([[-1.0, 0.4], [0.3, -0.2], [-0.1, -0.05]])
    kwargs = dict(samples=6000, seed=4)
    found = _observed(2, 6, y0, names, "all", **kwargs)
    assert set(taken) == set(range(1, 7))
    first = found["collapse_layer"]
    assert int(((first >= 1) & (first <= 5)).sum()) >= 5 and bool((first == 6).any())
    expected = per_step(monkeypatch, lambda: _observed(2, 6, y0, names, "all", **kwargs))
    _assert_same(found, expected)


@pytest.mark.parametrize("power", [-60, -31.5, 31, 60])
def test_several_inputs_far_from_one_give_the_numbers_of_the_per_step_chain(
    monkeypatch, taken, runs, power
):
    """Starts ``2^power`` times larger or smaller: rescaled at layer 0 (no stretches with
    observers then), or near the stretches' bounds, where stretches fail and run again
    layer by layer: the same numbers as layer by layer."""
    _small_blocks(monkeypatch, 2, stretch=4)
    y0 = torch.stack([torch.linspace(-0.5, 1.0, 8), torch.linspace(1.0, -0.2, 8)])
    y0 = (y0 * 2.0**power).double()
    kwargs = dict(samples=300, seed=5)
    found = _observed(8, 40, y0, OBSERVERS, "all", **kwargs)
    if power == -31.5:  # norms from 2^-30.9: some fall below 2^-32 inside stretches
        assert False in runs and True in runs and taken
    expected = per_step(monkeypatch, lambda: _observed(8, 40, y0, OBSERVERS, "all", **kwargs))
    _assert_same(found, expected)


@pytest.mark.parametrize(
    "y0",
    [
        torch.tensor([[0.5, -0.25, 1.0], [0.5, -0.25, 1.0]]),  # identical inputs
        torch.tensor([[0.5, -0.25, 1.0], [0.5, -0.25, 1.0 + 2.0**-23]]),  # a last bit apart
        torch.tensor([[0.5, -0.25, 1.0], [0.0, 0.0, 0.0]]),  # an input of zeros
        torch.tensor([[0.5, -0.25, 1.0], [-1.0, -2.0, -0.5]]),  # an input collapsed at 0
        torch.tensor([[0.5, -0.25, 1.0], [-1e-14, -2e-14, -3e-14]]),  # collapsed, ||y|| tiny
        torch.tensor([[0.5, -0.25, 1.0], [-1e-40, -2e-40, -3.3e-40]]),  # subnormal
    ],
    ids=["identical", "last-bit", "zeros", "collapsed", "tiny-collapsed", "subnormal"],
)
def test_degenerate_inputs_give_the_numbers_of_the_per_step_chain(monkeypatch, runs, y0):
    """Identical and nearly identical inputs (tiles the several-input kernel leaves to mend:
    the stretch runs again), an input of zeros (a norm of y of 0: correlations NaN) and one
    collapsed from the start."""
    _small_blocks(monkeypatch, 2)
    kwargs = dict(samples=400, seed=9)
    found = _observed(3, 20, y0, OBSERVERS, "all", **kwargs)
    assert runs
    expected = per_step(monkeypatch, lambda: _observed(3, 20, y0, OBSERVERS, "all", **kwargs))
    _assert_same(found, expected)


def test_observers_that_read_values_run_several_inputs_layer_by_layer(monkeypatch, taken):
    """``norm`` reads values: with it, no stretches (the same numbers)."""
    _small_blocks(monkeypatch, 2)
    y0 = _inputs(3, 4)
    names = (*OBSERVERS, "norm")
    found = _observed(4, 30, y0, names, "all", samples=500, seed=3)
    assert not taken
    expected = per_step(
        monkeypatch, lambda: _observed(4, 30, y0, names, "all", samples=500, seed=3)
    )
    _assert_same(found, expected)


def test_the_default_observed_run_of_several_inputs_takes_stretches(monkeypatch, taken, runs):
    """The benchmark's run (four float32 inputs, width 16, every layer recorded, blocks as
    they are) takes all its layers but the first in stretches whose kernel writes the active
    counts and the correlations straight into the results."""
    into = []
    stretch_counts = observables._Active.stretch_counts

    def counted(self, *args):
        found = stretch_counts(self, *args)
        into.append(found is not None)
        return found

    monkeypatch.setattr(observables._Active, "stretch_counts", counted)
    y0 = _inputs(4, 16, 0.1) + 0.5
    found = _observed(16, 64, y0, OBSERVERS, "all", samples=4096, seed=1)
    assert set(taken) == set(range(1, 65)) and runs and all(runs) and into and all(into)
    monkeypatch.setattr(observables._Active, "stretch_counts", lambda *args: None)
    _assert_same(found, _observed(16, 64, y0, OBSERVERS, "all", samples=4096, seed=1))
    _assert_same(
        found,
        per_step(
            monkeypatch, lambda: _observed(16, 64, y0, OBSERVERS, "all", samples=4096, seed=1)
        ),
    )


def test_stretches_that_record_no_correlations_do_not_check_the_norms_of_y(monkeypatch, runs):
    """An input collapsed at 1e-14 keeps its norm of y below the stretches' bound: a stretch
    that records correlations runs again layer by layer, one that records none (layer 0
    only) needs no norms of y and passes (the same numbers either way)."""
    _small_blocks(monkeypatch, 1)
    y0 = torch.tensor([[0.5, -0.25, 1.0], [-1e-14, -2e-14, -3e-14]])
    kwargs = dict(samples=400, seed=2)

    def run(layers):
        return _observed(3, 40, y0, ("correlation",), layers, **kwargs)

    for layers in ([0], "all"):
        runs.clear()
        found = run(layers)
        assert runs and all(runs) == (layers == [0]) and any(runs) == (layers == [0])
        _assert_same(found, per_step(monkeypatch, functools.partial(run, layers)))
