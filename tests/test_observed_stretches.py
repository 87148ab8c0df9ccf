"""Observers that take stretches of layers (``chain.ObservedStretch``: log-growth, active
counts, collapse, quasi-GBM) on the float32 chain of one ReLU input of width > 1, run in
compiled stretches that write each layer's counts and ratios, against the same chain step by
step (``chain._STRETCHES = False``: a view a layer, every observer's ``observe``): the same
numbers to the bit, whatever the blocks, the threads, the recorded layers and the scale of the
start; paths that collapse inside a stretch; stretches that fail their checks run again
layer by layer."""

from __future__ import annotations

import pytest
import torch

from deeplimit import rng
from deeplimit.initialization import chain, observables
from stretch_reference import assert_same, observed, per_step

OBSERVERS = ("log_growth", "collapse", "active", "quasi_gbm")


@pytest.fixture
def taken(monkeypatch):
    """The layers observers took in stretches (``observe_stretch`` calls of ``_Active`` and
    ``_LogGrowth``, ``_Collapse``, ``_QuasiGBM``), appended to as they run."""
    layers: list[int] = []
    for name in ("_Active", "_LogGrowth", "_Collapse", "_QuasiGBM"):
        cls = getattr(observables, name)
        method = cls.observe_stretch

        def counted(self, stretch, method=method):
            layers.extend(range(stretch.first, stretch.last + 1))
            return method(self, stretch)

        monkeypatch.setattr(cls, "observe_stretch", counted)
    return layers


_observed, _assert_same = observed, assert_same


@pytest.mark.parametrize("width", [2, 5, 16])
@pytest.mark.parametrize(
    "names",
    [
        OBSERVERS,
        ("log_growth",),
        ("active", "quasi_gbm"),
        ("collapse",),
        ("collapse", "quasi_gbm"),
    ],
    ids=str,
)
@pytest.mark.parametrize("layers", ["all", [0, 3, 3, 17, 40, 69, 70]], ids=str)
@pytest.mark.parametrize("threads", [1, 2])
def test_observed_stretches_give_the_numbers_of_the_per_step_chain(
    monkeypatch, taken, width, names, layers, threads
):
    """Several blocks (about 2^9 numbers a layer each), on one and two threads, 70 layers:
    stretches of up to 8 layers; a layer recorded twice fills both slots."""
    monkeypatch.setattr(rng, "_NUMBERS_PER_BLOCK", 2**9)
    monkeypatch.setattr(chain, "_OBSERVED_NUMBERS", 2**9 * 8)
    monkeypatch.setattr(chain, "_threads", lambda: threads)
    y0 = torch.linspace(-1.0, 0.4, width)
    kwargs = dict(samples=700, seed=11)
    found = _observed(width, 70, y0, names, layers, **kwargs)
    assert set(taken) == set(range(1, 71))  # (recorded layers do not end stretches)
    taken.clear()
    expected = per_step(monkeypatch, lambda: _observed(width, 70, y0, names, layers, **kwargs))
    assert not taken
    _assert_same(found, expected)


@pytest.mark.parametrize("names", [OBSERVERS, ("collapse", "quasi_gbm"), ("collapse",)], ids=str)
def test_paths_that_collapse_inside_stretches_are_found(monkeypatch, taken, names):
    """Depth 6, width 2: a path collapses where a layer's normal is below -sqrt(L n) ~ -3.5
    (about 3e-4 a layer), in the stretch of layers 1-6: the same collapse layers (at the last
    layer too), drifts (NaN where collapsed by layer 5, not by layer 6 alone) and counts as
    step by step; without the active counts the kernel keeps one row of counts, the last
    layer's, and the quasi-GBM's collapsed paths come from the counts of layer 5 all the
    same (``reads_counts``); collapse alone counts none (the layers alive from the norms)."""
    y0 = torch.tensor([-1.0, 0.4])
    kwargs = dict(samples=20000, seed=4)
    found = _observed(2, 6, y0, names, "all", **kwargs)
    assert set(taken) == set(range(1, 7))
    first = found["collapse_layer"]
    assert int(((first >= 1) & (first <= 5)).sum()) >= 5 and bool((first == 6).any())
    assert "drift" not in found or bool(found["drift"].isnan().any())
    expected = per_step(monkeypatch, lambda: _observed(2, 6, y0, names, "all", **kwargs))
    _assert_same(found, expected)


@pytest.mark.parametrize("power", [-60, -31.5, 31, 60])
def test_starts_far_from_one_give_the_numbers_of_the_per_step_chain(monkeypatch, taken, power):
    """Starts ``2^power`` times larger or smaller: rescaled by powers of two at layer 0 (then
    no stretches with observers: the log-growth's exponents change), or just inside the
    stretches' bounds (2^-32 for the norms, 2^32 / sqrt(n) for the entries), where a stretch
    fails its checks and is run again layer by layer, each layer a view for the observers:
    the same numbers as step by step."""
    monkeypatch.setattr(rng, "_NUMBERS_PER_BLOCK", 2**10)
    monkeypatch.setattr(chain, "_OBSERVED_NUMBERS", 2**12)  # stretches of 4 layers
    again = []
    run = chain._OneReLU.run

    def counted(self, *args):
        passed = run(self, *args)
        again.append(not passed)
        return passed

    monkeypatch.setattr(chain._OneReLU, "run", counted)
    y0 = (torch.linspace(-0.5, 1.0, 8) * 2.0**power).double()
    kwargs = dict(samples=300, seed=5)
    found = _observed(8, 40, y0, OBSERVERS, "all", **kwargs)
    if power == -31.5:  # norms from 2^-30.9: some fall below 2^-32 inside stretches
        assert any(again) and taken  # stretches that failed, and others that passed
    expected = per_step(monkeypatch, lambda: _observed(8, 40, y0, OBSERVERS, "all", **kwargs))
    _assert_same(found, expected)


def test_observers_that_do_not_take_stretches_run_every_layer_as_a_view(monkeypatch, taken):
    """``norm`` reads values: with it, every observer goes layer by layer (the same numbers)."""
    y0 = torch.linspace(-1.0, 1.0, 4)
    names = (*OBSERVERS, "norm")
    found = _observed(4, 30, y0, names, "all", samples=500, seed=3)
    assert not taken
    expected = per_step(
        monkeypatch, lambda: _observed(4, 30, y0, names, "all", samples=500, seed=3)
    )
    _assert_same(found, expected)


def test_the_default_observed_run_takes_stretches(monkeypatch, taken):
    """The benchmark's run (one float32 input, width 16, every layer recorded) takes all its
    layers but the first in stretches, whose kernel writes the active counts straight into
    the results (the same numbers as the chain's own buffer and a copy)."""
    into = []
    stretch_counts = observables._Active.stretch_counts

    def counted(self, *args):
        found = stretch_counts(self, *args)
        into.append(found is not None)
        return found

    monkeypatch.setattr(observables._Active, "stretch_counts", counted)
    y0 = torch.linspace(-1.0, 1.0, 16) + 0.5
    found = _observed(16, 64, y0, OBSERVERS, "all", samples=5000, seed=1)
    assert set(taken) == set(range(1, 65)) and into and all(into)
    monkeypatch.setattr(observables._Active, "stretch_counts", lambda *args: None)
    _assert_same(found, _observed(16, 64, y0, OBSERVERS, "all", samples=5000, seed=1))
