"""The CPU chain of one ReLU input in checked stretches of steps (``chain._OneReLU``, the fast
path of ``sample_sde`` and ``sample_resnet``) against the same chain step by step
(``chain._STRETCHES = False``: every step checked, the path of every other chain), with the
same normals: the same numbers to the bit, whatever the chunk size, the threads and the
recorded times; a blow-up inside a stretch is reported at its step and path; norms whose
squares underflow inside a stretch are found and the stretch run again. The law of the
stretches against the chunk engine is in ``test_sampler_engine.py`` (``CASES``)."""

from __future__ import annotations

import math

import pytest
import torch

import deeplimit as dl
from deeplimit import rng
from deeplimit.initialization import chain
from stretch_reference import per_step


def _stretch_kind(monkeypatch, kind: str) -> list[str]:
    """Stretches in one compiled call each where they can (``default``: drawing in the call in
    float32, else a call per group of normals), in a call per group of normals (``grouped``:
    ``native.relu_stretch``), or in torch calls step by step (``torch``); returns the list
    of the ways the stretches then ran (``compiled``, ``grouped``), appended to as they run."""
    if kind in ("grouped", "torch"):
        monkeypatch.setattr(chain, "_stretch_norms", lambda *args: None)
        monkeypatch.setattr(chain, "_stretches_in_one_call", lambda *args: False)
    if kind == "torch":
        monkeypatch.setattr(chain, "_COMPILED_STRETCHES", False)
    ran: list[str] = []
    for way in ("compiled", "grouped"):
        method = getattr(chain._OneReLU, f"_run_{way}")

        def counted(self, *args, method=method, way=way):
            ran.append(way)
            return method(self, *args)

        monkeypatch.setattr(chain._OneReLU, f"_run_{way}", counted)
    return ran


@pytest.fixture
def stretches(monkeypatch):
    """Counts the stretches that passed their checks and those run again step by step."""
    counts = {"passed": 0, "again": 0}
    run = chain._OneReLU.run

    def counted(self, *args):
        passed = run(self, *args)
        counts["passed" if passed else "again"] += 1
        return passed

    monkeypatch.setattr(chain._OneReLU, "run", counted)
    return counts


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("width", [1, 2, 10])
@pytest.mark.parametrize("record", ["last", "all", [0.1, 0.5, 0.5, 1.0], [65 / 150, 0.9]], ids=str)
@pytest.mark.parametrize("kind", ["default", "grouped", "torch"])
def test_stretches_give_the_numbers_of_the_per_step_chain(
    monkeypatch, stretches, dtype, width, record, kind
):
    """Several blocks (blocks of about 2^9 numbers a step), on two threads and in chunks of one
    block, against one thread and one chunk step by step; inputs 2^+-100 times larger or
    smaller (rescaled by powers of two at the ends of stretches) give the same numbers times
    2^+-100. The ResNet of depth L is the SDE of L steps, with x as well as y0. Recording
    step 65 makes a step after a stretch of 64 that has skipped the per-step checks; 0.9,
    steps after the last recorded one."""
    monkeypatch.setattr(rng, "_NUMBERS_PER_BLOCK", 2**9)
    ran = _stretch_kind(monkeypatch, kind)
    y0 = torch.linspace(1.0, -0.45, width, dtype=torch.float64)  # no entry near 0
    samples = 3 * rng.block_size_for(width) + 5
    kwargs = dict(samples=samples, seed=7, dtype=dtype, record=record)

    def sde(scale=1.0, **extra):
        return dl.sample_sde(width, "relu", steps=150, y0=y0 * scale, **kwargs, **extra)

    monkeypatch.setattr(chain, "_threads", lambda: 2)
    fast = sde(chunk_size=1)
    assert (stretches["passed"] > 0) == (record != "all")  # "all": a step is a stretch
    expected = {"torch": set(), "grouped": {"grouped"}}.get(kind)
    if expected is None:  # default: drawn in the call in float32 (not in a block of < 16)
        expected = {"compiled" if dtype == "float32" else "grouped"}
    if record == "all":
        expected = set()
    assert expected <= set(ran) <= expected | ({"grouped"} if expected else set())
    monkeypatch.setattr(chain, "_threads", lambda: 1)
    slow = per_step(monkeypatch, sde)
    assert torch.equal(fast, slow)
    for power in (-100, 100):
        assert torch.equal(sde(2.0**power) * 2.0**-power, fast)
    resnet = dict(kwargs, record="all" if record == "all" else "last")
    x = [0.3, -1.0, 0.8]
    y = dl.sample_resnet(width, 40, "relu", x=x, method="law", **resnet)
    assert torch.equal(
        y, per_step(monkeypatch, lambda: dl.sample_resnet(width, 40, "relu", x=x, **resnet))
    )
    assert torch.equal(y, dl.sample_sde(width, "relu", steps=40, x=x, **resnet))


def _poison(monkeypatch, where: dict[int, tuple[int, float]]):
    """Normals with ``value`` at step ``step`` of sample ``path`` (one block, first coordinate)
    for each ``step: (path, value)``, however the steps are grouped and drawn again."""
    fill = rng.BlockStreams.fill

    def poisoned(self, index, layer, out):
        fill(self, index, layer, out)
        if out.ndim == 4:  # (steps, k, n, block): a group of steps of the CPU chain
            for step, (path, value) in where.items():
                if layer <= step < layer + out.shape[0]:
                    out[step - layer, 0, 0, path] = value

    monkeypatch.setattr(rng.BlockStreams, "fill", poisoned)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("width", [1, 10])
@pytest.mark.parametrize("kind", ["grouped", "torch"])
def test_a_blowup_inside_a_stretch_is_reported_at_its_step(
    monkeypatch, stretches, dtype, width, kind
):
    """NaN and inf normals at steps 37 and 90 of two paths, inside stretches of 64 steps: the
    error counts the two paths and names step 37; the paths are NaN or inf from their step on,
    every other path as without the poison, as step by step. (Stretches whose normals
    ``rng.BlockStreams.fill`` draws: a stretch that draws its own in the compiled call gets
    numbers that are never NaN nor inf, and stops at a norm that is, as
    ``test_torch_normals`` checks.)"""
    ran = _stretch_kind(monkeypatch, kind)
    kwargs = dict(samples=200, y0=[1.0] * width, seed=3, dtype=dtype, steps=150)
    clean = dl.sample_sde(width, "relu", record="all", **kwargs)
    _poison(monkeypatch, {37: (5, math.nan), 90: (8, math.inf)})
    with pytest.raises(dl.NumericalBlowupError) as info:
        dl.sample_sde(width, "relu", **kwargs)
    assert (info.value.paths, info.value.total, info.value.first_layer) == (2, 200, 37)
    assert stretches["again"] > 0
    assert set(ran) == ({"grouped"} if kind == "grouped" else set())
    ignore = dict(kwargs, record="all", on_nonfinite="ignore")
    paths = dl.sample_sde(width, "relu", **ignore)
    finite = torch.isfinite(paths).all(-1)  # (samples, times)
    assert finite[5, :37].all() and not finite[5, 37:].any()
    assert finite[8, :90].all() and not finite[8, 90:].any()
    others = [i for i in range(200) if i not in (5, 8)]
    assert torch.equal(paths[others], clean[others])
    slow = per_step(monkeypatch, lambda: dl.sample_sde(width, "relu", **ignore))
    torch.testing.assert_close(paths, slow, rtol=0, atol=0, equal_nan=True)


@pytest.mark.parametrize(
    ("dtype", "power"), [("float32", -70), ("float32", -80), ("float64", -540), ("float64", -600)]
)
def test_norms_whose_squares_underflow_are_run_again(monkeypatch, stretches, dtype, power):
    """Width 10, one positive entry 2^power below nine entries of -1: its square is subnormal
    (2^-70, 2^-540) or 0 (2^-80, 2^-600), so a plain ||phi|| is wrong or 0 (a frozen path).
    The stretches find it on the norms they keep (a small norm, or a zero norm with a positive
    entry) and run again step by step, which takes the norm exactly: the numbers of the
    per-step chain, the positive entry moving by about its own size a step."""
    y0 = [-1.0] * 9 + [2.0**power]
    kwargs = dict(samples=300, y0=y0, seed=5, dtype=dtype, record=[0.01, 1.0])
    fast = dl.sample_sde(10, "relu", steps=100, **kwargs)
    assert stretches["again"] > 0
    assert torch.equal(
        fast, per_step(monkeypatch, lambda: dl.sample_sde(10, "relu", steps=100, **kwargs))
    )
    tiny = fast[:, 0, 9].double() * 2.0**-power  # after one step: 1 + Z / sqrt(1000)
    assert (tiny != 1.0).all() and 0.9 < tiny.mean() < 1.1 and tiny.std() > 0.01
    assert torch.isfinite(fast).all()


@pytest.mark.parametrize("width", [1, 2, 10])
@pytest.mark.parametrize("start", ["plain", "huge", "tiny", "near the bound"])
@pytest.mark.parametrize("record", ["last", [0.1, 0.5, 0.5, 1.0], [65 / 150, 0.9]], ids=str)
@pytest.mark.parametrize("groups", ["a step", "16 steps"])
def test_compiled_stretches_give_the_numbers_of_the_per_step_chain(
    monkeypatch, stretches, width, start, record, groups
):
    """float32 stretches in one compiled call each (``_Normals.stretch``; several blocks on
    two threads, chunks of one block) against stretches of a call per step and against the
    per-step chain: the same numbers to the bit, with a stream of normals per step (drawn
    into the update) or per group of 16 steps (stretches that start inside a group at the
    recorded steps). Starts 2^+-100 (rescaled at step 0) and one just above the stretches'
    bound 2^-32, where paths fall below it inside stretches: the compiled call stops there
    and the stretch is run again step by step (then stretches again, inside a group)."""
    monkeypatch.setattr(rng, "_NUMBERS_PER_BLOCK", 2**9)
    if groups == "a step":  # a stream of its own per step (another stream layout)
        monkeypatch.setattr(rng, "_GROUP_NUMBERS", 16)
    calls = []
    stretch = chain._Normals.stretch

    def counted(self, step, steps, *args):
        done = stretch(self, step, steps, *args)
        calls.append((steps, done))
        return done

    monkeypatch.setattr(chain._Normals, "stretch", counted)
    y0 = torch.linspace(1.0, -0.45, width, dtype=torch.float64)
    # near the bound: ||relu(y0)|| a little above it (fewer samples at width > 1), so that
    # paths fall below it inside the first stretch, after its first step
    near = (2.0 if width == 1 else 1.25) * 2.0**-32 / float(y0.clamp(min=0).norm())
    y0 *= {"plain": 1.0, "huge": 2.0**100, "tiny": 2.0**-100, "near the bound": near}[start]
    samples = 3 * rng.block_size_for(width) + 5
    kwargs = dict(samples=samples, seed=11, dtype="float32", record=record, on_nonfinite="warn")

    def sde(**extra):
        return dl.sample_sde(width, "relu", steps=150, y0=y0, **kwargs, **extra)

    monkeypatch.setattr(chain, "_threads", lambda: 2)
    fast = sde(chunk_size=1)
    if start == "near the bound":  # the compiled call stopped inside a stretch
        assert any(0 < done < steps for steps, done in calls)
        assert stretches["again"] > 0
    else:
        assert any(done == steps for steps, done in calls)
    monkeypatch.setattr(chain, "_COMPILED_STRETCHES", False)
    assert torch.equal(sde(), fast)
    monkeypatch.setattr(chain, "_threads", lambda: 1)
    assert torch.equal(per_step(monkeypatch, sde), fast)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("width", [1, 3])
def test_stretches_that_fail_inside_groups_drawn_ahead_keep_the_stream(monkeypatch, dtype, width):
    """One block on two cores draws its normals ahead, 16 steps a group, while its stretches
    of a call per group (``grouped``) fail inside their first group (a start just above the
    bound): every group of the stretch is still taken from the drawing thread, so the steps
    after the stretch, run again step by step, get their own numbers — those of the
    per-step chain."""
    _stretch_kind(monkeypatch, "grouped")
    drawn_ahead = []

    class Spy(chain._Normals):
        def __init__(self, *args):
            super().__init__(*args)
            drawn_ahead.append(self.thread is not None)

    monkeypatch.setattr(chain, "_Normals", Spy)
    monkeypatch.setattr(chain, "_threads", lambda: 2)
    y0 = torch.linspace(1.0, -0.45, width, dtype=torch.float64)
    y0 *= 2.0 * 2.0**-32 / float(y0.clamp(min=0).norm())  # paths fall below the bound
    if dtype == "float64":
        y0 *= 2.0**-224  # the float64 bound is 2^-256
    kwargs = dict(samples=300, seed=2, dtype=dtype, y0=y0, record=[0.5, 1.0], steps=150)
    fast = dl.sample_sde(width, "relu", **kwargs)
    assert drawn_ahead == [True]
    assert torch.equal(fast, per_step(monkeypatch, lambda: dl.sample_sde(width, "relu", **kwargs)))
