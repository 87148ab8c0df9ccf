"""Several float32 ReLU inputs of width > 1 in stretches of layers of one compiled call each
(``chain._SeveralReLU``: drawing, the several-input kernel and the norms' pass a layer, and
the per-step path's bounds checked on the way) against the same chain layer by layer
(``chain._STRETCHES = False``): the same numbers to the bit, whatever the recorded layers,
the blocks and the threads; starts near the bounds and nearly collinear inputs (tiles the
kernel leaves to mend) make stretches fail and run again layer by layer."""

from __future__ import annotations

import pytest
import torch

import deeplimit as dl
from deeplimit.initialization import chain
from stretch_reference import per_step


@pytest.fixture
def runs(monkeypatch):
    """The stretches run: True where one passed, False where it was run again."""
    found: list[bool] = []
    run = chain._SeveralReLU.run

    def counted(self, *args):
        passed = run(self, *args)
        found.append(passed)
        return passed

    monkeypatch.setattr(chain._SeveralReLU, "run", counted)
    return found


def _states(monkeypatch, width, depth, y0, record, samples, threads=2):
    monkeypatch.setattr(chain, "_threads", lambda: threads)
    return dl.sample_resnet(
        width, depth, "relu", samples=samples, y0=y0, dtype="float32", seed=8, record=record
    ).clone()


def _same(a, b):
    assert a.shape == b.shape and a.numpy().tobytes() == b.numpy().tobytes()


@pytest.mark.parametrize(("k", "width"), [(2, 2), (3, 5), (4, 16)])
@pytest.mark.parametrize("record", ["last", "sevenths", "middle"])
@pytest.mark.parametrize("threads", [1, 2])
def test_several_inputs_in_stretches_give_the_numbers_of_the_per_step_chain(
    monkeypatch, runs, k, width, record, threads
):
    """Blocks of 2^17 numbers a layer (a layer's numbers drawn in its own call: several
    blocks), 70 layers: stretches of up to 64 layers end at the recorded layers (one of
    them twice)."""
    samples = 3 * 2**17 // (k * width) + 5
    depth = 70
    rec = {"middle": [0, 35, 35, depth], "sevenths": list(range(0, depth + 1, 7))}.get(
        record, record
    )
    y0 = torch.stack([torch.linspace(-1.0, 0.5, width) + 0.3 * a for a in range(k)])
    found = _states(monkeypatch, width, depth, y0, rec, samples, threads)
    assert runs and all(runs)
    runs.clear()
    expected = per_step(monkeypatch, lambda: _states(monkeypatch, width, depth, y0, rec, samples))
    assert not runs
    _same(found, expected)


@pytest.mark.parametrize("power", [-60, -31.5, 31, 60])
def test_several_inputs_far_from_one_give_the_numbers_of_the_per_step_chain(
    monkeypatch, runs, power
):
    """Starts rescaled at layer 0 (2^+-60), or near the stretches' bounds (norms from about
    2^-31, entries near 2^31 at width 4), where some stretches fail and run again."""
    samples, width = 2**17 // 8 + 3, 4
    y0 = torch.stack([torch.linspace(-0.5, 1.0, width), torch.linspace(1.0, -0.2, width)])
    y0 = (y0 * 2.0**power).double()
    record = [0, 10, 40]
    found = _states(monkeypatch, width, 40, y0, record, samples)
    if power == -31.5:
        assert False in runs
    _same(
        found, per_step(monkeypatch, lambda: _states(monkeypatch, width, 40, y0, record, samples))
    )


def test_nearly_collinear_inputs_mend_their_tiles_layer_by_layer(monkeypatch, runs):
    """Two inputs of norm ~1e-9 equal but for one coordinate's last bit: their residual
    (~1e-17) is below the kernel's floor, which leaves those tiles to mend; the stretch
    fails and the layers run again with the per-step path's mending."""
    width = 8
    first = torch.linspace(-0.5, 1.0, width) * 1e-9
    second = first.clone()
    second[-1] = torch.nextafter(second[-1], torch.tensor(2.0))
    y0 = torch.stack([first, second, -first])
    samples = 2**17 // (3 * width) + 7
    found = _states(monkeypatch, width, 20, y0, "last", samples)
    assert False in runs
    _same(
        found, per_step(monkeypatch, lambda: _states(monkeypatch, width, 20, y0, "last", samples))
    )
