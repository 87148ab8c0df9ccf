"""Resume inside a study (deeplimit.checkpoints): a point interrupted after some of its units
finishes, when run again, with the numbers of an uninterrupted run, computing only the units it
lacked; unsound units and other points' units are never trusted."""

import warnings

import numpy as np
import pytest
import xarray as xr
from typer.testing import CliRunner

from deeplimit.checkpoints import Checkpoint, current, notices, resuming
from deeplimit.cli import app
from deeplimit.experiments import get_experiment
from deeplimit.reproduce import reproduce
from deeplimit.runner import run_point
from deeplimit.store import ResultStore, point_key

# every study that saves units, at its smoke setting made smaller where it has many units
SPECS = {
    "chizat-grid": {"widths": (2, 4, 8), "dims": (4, 8, 16)},  # the reference and 8 shapes
    "chizat-scaling": {"depths": (4, 8), "widths": (4, 8), "dims": (4, 8)},  # 8 shapes
    "transfer": {"parametrizations": ("critical",)},  # 5 (L, M)
    "chizat-joint": {"embedding_seeds": 2},  # one unit per (M, D) point, two draws each
    "chizat-phase": {},  # one unit per width
    # the error sweeps (chizat_sweep.ErrorSweep): one unit per batch of points
    "chizat-alpha": {},
    "chizat-dim": {},
    "chizat-width": {},
    "chizat-depth": {},
    # (chizat-lazy trains all its alphas in one batch: one unit, nothing to resume inside)
    "chizat-lazy-optimum": {},
}
GRID = SPECS["chizat-grid"]


def _run(name, spec, store, progress=None):
    return run_point(name, spec.model_dump_json(), store, progress=progress, reraise=True)


def _interrupt_after(calls):
    """A progress callback that presses Ctrl-C at its ``calls``-th call."""
    seen = [0]

    def progress(done, total):
        seen[0] += 1
        if seen[0] == calls:
            raise KeyboardInterrupt

    return progress


@pytest.fixture
def saved(monkeypatch):
    """The names of the units saved (= computed) from now on, in order."""
    names = []
    original = Checkpoint.save

    def save(self, name, arrays):
        if self.enabled:
            names.append(name)
        original(self, name, arrays)

    monkeypatch.setattr(Checkpoint, "save", save)
    return names


@pytest.mark.parametrize("name", list(SPECS))
def test_an_interrupted_study_resumes_to_the_numbers_of_an_uninterrupted_run(name, tmp_path, saved):
    experiment = get_experiment(name)
    spec = experiment.smoke(**SPECS[name])
    whole = experiment.run(spec)  # outside a store: nothing kept
    assert saved == []
    folder = tmp_path / "partial"
    with pytest.raises(KeyboardInterrupt), resuming(folder, "k"):
        experiment.run(spec, _interrupt_after(2))
    first = list(saved)
    assert first and Checkpoint(folder, "k").finished() == sorted(first)
    saved.clear()
    with resuming(folder, "k") as checkpoint:
        resumed = experiment.run(spec)
    assert checkpoint.reused == len(first) and checkpoint.computed == len(saved) >= 1
    assert not set(saved) & set(first)  # only the missing units were computed
    xr.testing.assert_identical(resumed, whole)


@pytest.mark.parametrize("name", ["chizat-width", "chizat-depth"])
def test_a_resumed_error_sweep_counts_each_divergence_once(name, tmp_path, saved):
    """At lr 5 some networks (chizat-width) or all networks and the Mean ODE (chizat-depth)
    diverge: the resumed run's divergence note (loaded units replay what they recorded, a limit
    computed again after a resume is not counted twice) is the uninterrupted run's."""
    experiment = get_experiment(name)
    spec = experiment.smoke(lr=5.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        whole = experiment.run(spec)
        assert "diverged" in whole.attrs["divergence_note"]
        folder = tmp_path / "partial"
        with pytest.raises(KeyboardInterrupt), resuming(folder, "k"):
            experiment.run(spec, _interrupt_after(3))
        assert saved
        with resuming(folder, "k") as checkpoint:
            resumed = experiment.run(spec)
    assert checkpoint.reused >= 1 and checkpoint.computed >= 1
    assert resumed.attrs["divergence_note"] == whole.attrs["divergence_note"]
    xr.testing.assert_identical(resumed, whole)


def test_a_resumed_store_point_trains_only_missing_shapes_and_trusts_no_other_units(
    tmp_path, monkeypatch
):
    import deeplimit.experiments.chizat_grid as module

    trained = []
    original = module.ChizatGrid._train

    def train(spec, data, width, dim, indices):
        trained.append((width, dim))
        return original(spec, data, width, dim, indices)

    monkeypatch.setattr(module.ChizatGrid, "_train", staticmethod(train))
    experiment = get_experiment("chizat-grid")
    spec = experiment.smoke(**GRID)
    key = point_key("chizat-grid", spec)
    store = ResultStore(tmp_path)
    with pytest.raises(KeyboardInterrupt):
        _run("chizat-grid", spec, tmp_path, progress=_interrupt_after(3))
    assert trained == [(8, 16), (2, 4), (2, 8)]  # the reference, then two shapes
    assert store.entry("chizat-grid", key).state == "incomplete"
    unit = store.partial("chizat-grid", key) / "M2-D8.npz"
    unit.write_bytes(unit.read_bytes()[:-20])  # a unit cut short is recomputed
    trained.clear()

    other = experiment.smoke(**GRID, seed=1)  # another spec never sees these units
    with pytest.raises(KeyboardInterrupt):
        _run("chizat-grid", other, tmp_path, progress=_interrupt_after(1))
    assert trained == [(8, 16)]
    trained.clear()

    assert _run("chizat-grid", spec, tmp_path).status == "ok"
    assert trained == [(2, 8), (2, 16), (4, 4), (4, 8), (4, 16), (8, 4), (8, 8)]
    assert store.entry("chizat-grid", key).manifest["resumed_units"] == 2
    assert not store.partial("chizat-grid", key).exists()  # the point is stored: units go
    assert store.partial("chizat-grid", point_key("chizat-grid", other)).is_dir()


@pytest.mark.slow
def test_reproduce_and_the_command_line_resume_and_say_so(tmp_path):
    overrides = {"widths": [2, 4, 8], "dims": [4, 8, 16]}
    with pytest.raises(KeyboardInterrupt):
        reproduce(
            "chizat-grid",
            scale="smoke",
            out=tmp_path,
            overrides=overrides,
            progress=_interrupt_after(3),
        )
    args = ["reproduce", "chizat-grid", "--smoke", "--out", str(tmp_path)]
    result = CliRunner().invoke(app, [*args, "--set", "widths=[2,4,8]", "--set", "dims=[4,8,16]"])
    assert result.exit_code == 0, result.output
    assert "3 finished units of an interrupted run found" in result.output
    assert "resumed: 3 unit(s) finished by an interrupted run" in result.output
    again = reproduce("chizat-grid", scale="smoke", out=tmp_path, overrides=overrides)
    assert again.reused and again.resumed_units == 3


def test_a_checkpoint_keeps_exact_arrays_and_trusts_only_sound_units_of_its_point(tmp_path):
    values = {
        "x": np.array([0.1, np.nan, 1e-300, -np.inf]),
        "n": np.int32(3),
        "f": np.array([[1.5, 2.25]], dtype=np.float32),
        "text": np.array("why"),
    }
    calls = []

    def compute():
        calls.append(1)
        return values

    first = Checkpoint(tmp_path, "a").unit("M4-D8", compute)
    loaded = Checkpoint(tmp_path, "a")
    second = loaded.unit("M4-D8", compute)
    assert len(calls) == 1 and (loaded.reused, loaded.computed) == (1, 0)
    for name, value in values.items():
        assert first[name].dtype == second[name].dtype == np.asarray(value).dtype
        assert first[name].tobytes() == second[name].tobytes() == np.asarray(value).tobytes()

    path = loaded.path("M4-D8")
    good = path.read_bytes()
    flipped = bytearray(good)
    flipped[good.index(values["x"].tobytes()) + 3] ^= 0x10  # one bit of the data: bad CRC
    for bad in (bytes(flipped), good[: len(good) // 2], b""):
        path.write_bytes(bad)
        again = Checkpoint(tmp_path, "a")
        assert again.load("M4-D8") is None and again.corrupt == 1 and not path.exists()
        path.write_bytes(good)
    other = Checkpoint(tmp_path, "b")  # a unit of another point (key) is not taken
    assert other.load("M4-D8") is None and other.corrupt == 1


def test_outside_a_store_nothing_is_kept_and_bad_units_are_refused(tmp_path):
    assert not current().enabled
    nothing = Checkpoint()
    calls = []
    nothing.unit("u", lambda: calls.append(1) or {"v": 1})
    nothing.unit("u", lambda: calls.append(1) or {"v": 1})
    assert calls == [1, 1]
    heard = []
    Checkpoint(tmp_path / "p", "k").save("done", {"v": 1})
    with notices(heard.append), resuming(tmp_path / "p", "k", "chizat-grid point k") as kept:
        assert current() is kept
        assert int(current().unit("done", lambda: {"v": 2})["v"]) == 1
    assert heard == [
        "resuming chizat-grid point k: 1 finished unit of an interrupted run found; they are "
        "loaded, not computed again"
    ]
    assert not current().enabled
    with pytest.raises(ValueError, match="unit must be a name"):
        kept.unit("../up", lambda: {"v": 1})
    with pytest.raises(TypeError, match="mapping of names to arrays"):
        kept.unit("list", lambda: [1, 2])
    with pytest.raises(TypeError, match="not Python objects"):
        kept.unit("objects", lambda: {"v": [1, "a", None]})
    with pytest.raises(ValueError, match="key must name the point"):
        Checkpoint(tmp_path, "")


def test_sigterm_stops_reproduce_with_143_and_keeps_the_finished_units(tmp_path, monkeypatch):
    """``kill PID`` (a batch system's time limit) during ``deeplimit reproduce``: one line
    saying how to resume, status 143, the units finished so far kept for the next run."""
    import os
    import signal

    original = Checkpoint.save
    count = [0]

    def save(self, name, arrays):
        original(self, name, arrays)
        count[0] += 1
        if count[0] == 2:
            os.kill(os.getpid(), signal.SIGTERM)

    def not_handled(signum, frame):  # instead of ending this test process
        raise AssertionError("deeplimit reproduce did not handle SIGTERM")

    monkeypatch.setattr(Checkpoint, "save", save)
    args = ["reproduce", "chizat-grid", "--smoke", "--out", str(tmp_path), "-q"]
    args += ["--set", "widths=[2,4,8]", "--set", "dims=[4,8,16]"]
    previous = signal.signal(signal.SIGTERM, not_handled)
    try:
        result = CliRunner().invoke(app, args)
        assert signal.getsignal(signal.SIGTERM) is not_handled  # the command put it back
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert result.exit_code == 143, result.output
    assert "stopped by SIGTERM; run the same command again to resume" in result.output
    spec = get_experiment("chizat-grid").smoke(**GRID)
    units = ResultStore(tmp_path / "store").partial("chizat-grid", point_key("chizat-grid", spec))
    assert len(list(units.glob("*.npz"))) == 2
