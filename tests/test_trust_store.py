"""Issue 8, "the store and the runner" and "divergence stored as success": a diverged study is
recorded as diverged (exit 3) and drawn with what stayed finite; a full disk stops a sweep with
one line and no lock left behind; a worker that lost its lock does not commit (fencing); a dry
run verifies checksums; an export says what it left out; GPU results read on a CPU machine;
progress lines when the output is a log."""

import errno
import json
import math
import os
import sys
from pathlib import Path

import mpmath
import numpy as np
import pytest
import xarray as xr
from matplotlib.figure import Figure
from typer.testing import CliRunner

import deeplimit.store as store_module
from deeplimit.activations import parse_activation
from deeplimit.cli import app
from deeplimit.errors import StoreFullError, StudyDivergedError
from deeplimit.experiments import get_experiment
from deeplimit.experiments.plotting import NOTHING_FINITE, guard_log_axes, save_figure
from deeplimit.runner import run_point, run_sweep
from deeplimit.store import LOCK, ResultStore
from deeplimit.sweeps import parse_sweep, resolve_experiment
from sweep_experiments import log_lines

TOY = "sweep_experiments:Toy"


@pytest.fixture
def toy_log(tmp_path, monkeypatch):
    path = tmp_path / "runs.jsonl"
    monkeypatch.setenv("DEEPLIMIT_TOY_LOG", str(path))
    return path


def _toy(seeds=3, **base):
    return parse_sweep({"experiment": TOY, "seeds": seeds, "base": base})


def _toml(tmp_path, seeds=3):
    path = tmp_path / "toy.toml"
    path.write_text(f'experiment = "{TOY}"\nseeds = {seeds}\n')
    return path


def _leftovers(root):
    """Locks, breakers and temporary files anywhere in the store."""
    return sorted(str(p) for p in Path(root).rglob(".*"))


# ----------------------------------------------------------------------------- divergence


def test_a_diverged_point_is_recorded_as_diverged_with_its_finite_data(tmp_path, monkeypatch):
    monkeypatch.setenv("DEEPLIMIT_TOY_DIVERGE", "1")
    sweep = _toy(3)
    result = run_sweep(sweep.points, tmp_path)
    key = sweep.points[1].key
    assert result.diverged == {key: "toy divergence requested for seed 1"}
    assert sorted(result.computed) == sorted([sweep.points[0].key, sweep.points[2].key])
    assert result.complete  # nothing is left to compute: the outcome is recorded
    store = ResultStore(tmp_path)
    entry = store.entry("toy", key)
    assert entry.state == "diverged" and entry.has_data and not entry.done
    assert entry.manifest["status"] == "diverged" and "toy divergence" in entry.error
    data = store.load("toy", key)
    assert np.isfinite(data.value.values[0]) and np.isnan(data.value.values[1:]).all()
    assert set(store.frame("toy").status) == {"ok", "diverged"}
    combined = store.load_all("toy")
    assert sorted(combined.status.values.tolist()) == ["diverged", "ok", "ok"]
    # recorded, so not computed again (it would diverge again)
    again = run_sweep(sweep.points, tmp_path)
    assert again.computed == [] and list(again.diverged) == [key]


def test_sweep_command_exits_3_and_says_diverged(tmp_path, monkeypatch):
    monkeypatch.setenv("DEEPLIMIT_TOY_DIVERGE", "0")
    store = str(tmp_path / "store")
    runner = CliRunner()
    result = runner.invoke(app, ["sweep", str(_toml(tmp_path)), "-s", store, "-w", "0", "-q"])
    assert result.exit_code == 3, result.output
    assert "1 diverged" in result.output and "1 of 3 points diverged" in result.output
    result = runner.invoke(app, ["results", "-s", store, "--status", "diverged"])
    assert result.exit_code == 0 and "toy: 1 point" in result.output
    result = runner.invoke(app, ["sweep", str(_toml(tmp_path)), "-s", store, "--dry-run"])
    assert result.exit_code == 0 and "1 diverged, 2 stored" in result.output


def test_an_experiment_that_blows_up_is_diverged_not_failed(tmp_path, monkeypatch):
    monkeypatch.setenv("DEEPLIMIT_TOY_BLOWUP", "0")
    point = _toy(1).points[0]
    outcome = run_point(TOY, point.spec_json, tmp_path)
    assert outcome.status == "diverged" and "toy blow-up" in outcome.error
    entry = ResultStore(tmp_path).entry("toy", point.key)
    assert entry.state == "diverged" and not entry.has_data
    assert run_point(TOY, point.spec_json, tmp_path).reused
    # in-process callers (reproduce) get a FloatingPointError naming the divergence
    other = _toy(2).points[1]
    monkeypatch.setenv("DEEPLIMIT_TOY_BLOWUP", "1")
    with pytest.raises(StudyDivergedError, match="toy diverged: FloatingPointError"):
        run_point(TOY, other.spec_json, tmp_path, reraise=True)
    assert ResultStore(tmp_path).entry("toy", other.key).state == "diverged"


def test_chizat_depth_at_a_huge_learning_rate_is_stored_and_drawn_as_diverged(tmp_path):
    """lr = 1e6 used to be stored as ok with all-NaN data and then fail to draw ("Data cannot
    be log-scaled", exit 2, the bad-input code)."""
    runner = CliRunner()
    args = ["reproduce", "chizat-depth", "--smoke", "--set", "lr=1e6", "-o", str(tmp_path), "-q"]
    result = runner.invoke(app, args)
    assert result.exit_code == 3, result.output
    assert "error: chizat-depth diverged:" in result.output
    assert "limits diverged: Mean ODE (step 1)" in result.output
    assert (tmp_path / "chizat-depth" / "chizat-depth.png").stat().st_size > 0
    (manifest,) = (tmp_path / "store" / "chizat-depth").glob("*/manifest.json")
    assert json.loads(manifest.read_text())["status"] == "diverged"


def test_a_log_axis_with_nothing_finite_is_drawn_linear_with_a_note(tmp_path):
    figure = Figure(figsize=(3, 2))
    ax = figure.subplots()
    ax.plot([1.0, 2.0, 4.0], [math.nan, -1.0, 0.0])
    ax.set_xscale("log")
    with pytest.warns(UserWarning, match="cannot be log-scaled"):
        ax.set_yscale("log")
    paths = save_figure(figure, tmp_path / "nothing")
    assert all(path.stat().st_size > 0 for path in paths)
    assert ax.get_yscale() == "linear" and NOTHING_FINITE in [t.get_text() for t in ax.texts]
    finite = Figure(figsize=(3, 2))
    ax = finite.subplots()
    ax.plot([1.0, 2.0], [1.0, math.nan])
    ax.set_yscale("log")
    assert guard_log_axes(finite) == 0 and ax.get_yscale() == "log"


# ----------------------------------------------------------------------------- full disk


def _disk_full_on_data(monkeypatch, message=None):
    """Writing a data file fails as on a full disk (errno ENOSPC, or h5py's way: an OSError
    without errno whose text carries the C library's)."""
    calls = []

    def full(self, path, *args, **kwargs):
        calls.append(path)
        Path(path).write_bytes(b"\0" * 100)  # a partial file, as a real failure leaves
        print("Traceback: h5py echo of the failure", file=sys.stderr)  # as h5py does
        if message:
            raise OSError(message)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(xr.Dataset, "to_netcdf", full)
    return calls


@pytest.mark.parametrize("message", [None, "Can't write data (file write failed: errno = 28)"])
def test_a_full_disk_stops_the_sweep_with_one_line_and_no_lock(
    tmp_path, toy_log, monkeypatch, message
):
    store = tmp_path / "store"
    calls = _disk_full_on_data(monkeypatch, message)
    runner = CliRunner()
    command = ["sweep", str(_toml(tmp_path)), "-s", str(store), "-w", "0", "-q"]
    result = runner.invoke(app, command)
    assert result.exit_code == 1, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in result.output
    assert f"the result store {str(store)!r} is full" in errors[0] and "free" in errors[0]
    assert len(calls) == 1  # it stopped at the first point, not one error per point
    assert _leftovers(store) == []  # no lock, no temporary file
    assert all(not (folder / "manifest.json").exists() for folder in store.glob("toy/*"))
    monkeypatch.undo()  # space freed
    monkeypatch.setenv("DEEPLIMIT_TOY_LOG", str(toy_log))
    result = runner.invoke(app, command)
    assert result.exit_code == 0, result.output
    assert "3 of 3 points done (3 computed" in result.output
    assert len(log_lines(toy_log)) == 4  # the first point twice (lost to the full disk)


def test_a_full_disk_while_taking_a_lock_leaves_no_empty_lock(tmp_path, monkeypatch):
    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(store_module.json, "dump", full)
    with pytest.raises(StoreFullError, match="is full"):
        run_sweep(_toy(2).points, tmp_path)
    assert list(tmp_path.rglob(LOCK)) == []


def test_store_full_error_survives_pickling():
    import pickle

    error = pickle.loads(pickle.dumps(StoreFullError("/x", 0, "a lock")))
    assert str(error) == str(StoreFullError("/x", 0, "a lock")) and error.errno == errno.ENOSPC
    assert "0 B free" in str(error)


# ----------------------------------------------------------------------------- fencing


def test_a_worker_that_lost_its_lock_does_not_commit(tmp_path, monkeypatch):
    """A worker stalled past the heartbeat window; another runner broke its lock and took the
    point. When the first resumes, it must not write the point a second time."""
    point = _toy(1).points[0]
    target = resolve_experiment(TOY)
    original = type(target).run

    def stalled(self, spec, progress=None):
        dataset = original(self, spec, progress)
        lock = tmp_path / "toy" / point.key / LOCK
        owner = json.loads(lock.read_text())
        lock.write_text(json.dumps({**owner, "token": "another-runner"}))  # taken over
        return dataset

    monkeypatch.setattr(type(target), "run", stalled)
    outcome = run_point(TOY, point.spec_json, tmp_path)
    assert outcome.status == "lost" and "taken over" in outcome.error
    folder = tmp_path / "toy" / point.key
    assert not (folder / "manifest.json").exists() and not (folder / "data.nc").exists()
    assert json.loads((folder / LOCK).read_text())["token"] == "another-runner"  # not released
    assert [p.name for p in folder.iterdir()] == [LOCK]  # its staged files are gone too


def test_a_heartbeat_does_not_keep_someone_elses_lock_alive(tmp_path):
    store = ResultStore(tmp_path)
    lock = store.claim("toy", "0" * 16)
    old = lock.path.stat().st_mtime - 100
    lock.path.write_text(json.dumps({"token": "another-runner"}))
    os.utime(lock.path, (old, old))
    lock.heartbeat()
    assert abs(lock.path.stat().st_mtime - old) < 1  # untouched


# ----------------------------------------------------------------------------- dry run, export


def _flip_a_byte(path):
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    path.write_bytes(bytes(raw))


def test_a_dry_run_verifies_checksums(tmp_path):
    store = tmp_path / "store"
    run_sweep(_toy(3).points, store)
    _flip_a_byte(store / "toy" / _toy(3).points[1].key / "data.nc")  # same size
    runner = CliRunner()
    toml = str(_toml(tmp_path))
    result = runner.invoke(app, ["sweep", toml, "-s", str(store), "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "2 stored, 1 corrupt: to run" in result.output
    assert "SHA-256 checksums" in result.output
    result = runner.invoke(app, ["sweep", toml, "-s", str(store), "--dry-run", "--sizes-only"])
    assert result.exit_code == 0 and "3 stored" in result.output
    assert "checksums NOT verified" in result.output
    result = runner.invoke(app, ["sweep", toml, "-s", str(store), "--sizes-only"])
    assert result.exit_code == 2 and "--sizes-only goes with --dry-run" in result.output


def test_an_export_says_which_points_it_could_not_load(tmp_path):
    store = tmp_path / "store"
    points = _toy(3).points
    run_sweep(points, store)
    _flip_a_byte(store / "toy" / points[2].key / "data.nc")
    runner = CliRunner()
    netcdf = tmp_path / "toy.nc"
    result = runner.invoke(app, ["results", "-s", str(store), "-x", "toy", "--export", str(netcdf)])
    assert result.exit_code == 0, result.output
    assert "(2 points)" in result.output
    assert "1 of 3 selected points could not be loaded" in result.output
    assert points[2].key in result.output and "does not match its checksum" in result.output
    table = tmp_path / "stats.csv"
    result = runner.invoke(
        app, ["results", "-s", str(store), "--export", str(table), "--summaries"]
    )
    assert result.exit_code == 0 and "1 of 3 selected points could not be loaded" in result.output
    left_out = []
    ResultStore(store).load_all("toy", left_out=left_out)
    assert [key for key, _ in left_out] == [points[2].key]


# ----------------------------------------------------------------------------- device


def test_gpu_results_are_read_on_a_cpu_machine(tmp_path, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    experiment = get_experiment("hayou-fig1")
    stored = experiment.smoke().model_dump(mode="json") | {"device": "cuda"}
    spec = experiment.Spec.model_validate_json(json.dumps(stored))  # reading: no check
    assert spec.device == "cuda"
    with pytest.raises(ValueError, match="no CUDA device is available"):
        experiment.run(spec)  # running: checked
    with pytest.raises(ValueError, match="no CUDA device is available"):
        run_point("hayou-fig1", spec.model_dump_json(), tmp_path)
    assert not (tmp_path / "hayou-fig1").exists()  # refused before claiming anything
    # a point computed elsewhere on a GPU: plot, statistics and claims work here
    toy = resolve_experiment(TOY)
    gpu_spec = toy.Spec.model_validate({"device": "cuda", "size": 4})
    dataset = toy.run(toy.Spec(size=4)).assign_attrs(spec=gpu_spec.model_dump_json())
    store = ResultStore(tmp_path / "store")
    key = store_module.point_key("toy", gpu_spec)
    store.folder("toy", key).mkdir(parents=True)
    manifest = {"experiment": "toy", "experiment_ref": TOY, "spec": gpu_spec.model_dump()}
    store.write_ok("toy", key, dataset, toy.statistics(dataset), [], manifest)
    assert toy.spec_from_dataset(store.load("toy", key)).device == "cuda"
    result = CliRunner().invoke(
        app, ["plot", "toy", "--key", key, "-s", str(store.root), "-o", str(tmp_path / "p")]
    )
    assert result.exit_code == 0, result.output
    assert len(store.summaries("toy")) == 2


# ----------------------------------------------------------------------------- progress


def test_a_sweep_prints_a_line_per_finished_point_when_not_a_terminal(tmp_path):
    result = CliRunner().invoke(
        app, ["sweep", str(_toml(tmp_path)), "-s", str(tmp_path / "store"), "-w", "0"]
    )
    assert result.exit_code == 0, result.output
    lines = [line for line in result.output.splitlines() if " done, " in line]
    assert [line.split(":")[1].split()[0] for line in lines] == ["1/3", "2/3", "3/3"]


def test_a_suite_prints_a_line_per_finished_figure_when_not_a_terminal(tmp_path, monkeypatch):
    import deeplimit.reproduce as module

    class Figure_:
        def __init__(self, name):
            self.name, self.reused, self.diverged, self.wall_time_s = name, False, None, 0.5

    class Suite:
        def __init__(self):
            self.claim_rows, self.passed, self.diverged, self.provenance = [], True, {}, {}

        class report:
            markdown = html = json = Path("report")

    def fake_suite(name, *, finished=None, **kwargs):
        for number, figure in enumerate(("hayou-fig1", "hayou-fig2"), 1):
            finished(Figure_(figure), number, 2)
        return Suite()

    monkeypatch.setattr(module, "reproduce_suite", fake_suite)
    result = CliRunner().invoke(app, ["reproduce", "hayou", "-o", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "[1/2] hayou-fig1: computed, drawn in 0.5 s" in result.output
    assert "[2/2] hayou-fig2: computed" in result.output


# ----------------------------------------------------------------------------- quadrature


def _exact(function, q):
    mpmath.mp.dps = 30
    density = lambda z: mpmath.exp(-z * z / 2) / mpmath.sqrt(2 * mpmath.pi)
    return float(
        mpmath.quad(
            lambda z: function(mpmath.sqrt(q) * z) * density(z), [-mpmath.inf, -1, 0, 1, mpmath.inf]
        )
    )


def test_hayou_fig8_gradient_factors_are_accurate_at_large_variance():
    """chi = E tanh'(sqrt(q) Z)^2 by 200 Gauss-Hermite nodes was 99 % off at q = 400."""
    from deeplimit.experiments.hayou_fig8 import infinite_width_gradient
    from deeplimit.initialization.meanfield import infinite_width_variance

    tanh = parse_activation("tanh")
    q = infinite_width_variance(tanh, 400.0, 2)[1]
    chi = _exact(lambda x: mpmath.sech(x) ** 4, q)
    gradient = infinite_width_gradient(tanh, 400.0, 2)
    assert gradient[1] == pytest.approx(1 + chi / 2, rel=1e-10)


def test_chizat_init_prediction_is_accurate_at_large_variance():
    """E tanh(g)^2, Var g = 400, by 80 Gauss-Hermite nodes was off by 3 %."""
    from deeplimit.experiments.chizat_init import predicted_mean_square

    h0 = np.full((2, 4), 20.0)  # ||h0||^2 / D = 400
    exact = _exact(lambda x: mpmath.tanh(x) ** 2, 400.0)
    predicted = predicted_mean_square("tanh", 2, 3, 4, h0)
    assert predicted == pytest.approx(4 / 6 * exact, rel=1e-10)


def test_the_claims_report_marks_a_diverged_study(tmp_path):
    from types import SimpleNamespace

    from deeplimit.report import write_report

    png = tmp_path / "figure.png"
    png.write_bytes(b"not really a png")
    section = SimpleNamespace(
        name="chizat-depth",
        title="depth",
        caption="caption",
        figure_png=png,
        statistics=[],
        table={},
        claims=[],
        provenance={},
        diverged="2 limits diverged: Mean ODE (step 1)",
    )
    files = write_report("chizat", [section], tmp_path / "report", record={})
    assert "**Diverged** (drawn with what stayed finite): 2 limits" in files.markdown.read_text()
    assert '<p class="diverged">' in files.html.read_text()
