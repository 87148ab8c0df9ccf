"""The result store: content-addressed folders, manifests with checksums, corruption detection,
locks, listing and loading."""

import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from deeplimit._version import __version__
from deeplimit.cli import app
from deeplimit.experiments import get_experiment
from deeplimit.runner import run_point, run_sweep
from deeplimit.store import LOCK, ResultStore, StoreError, point_key
from deeplimit.sweeps import parse_sweep
from sweep_experiments import CLI, log_lines, toy_values

TOY = "sweep_experiments:Toy"
TESTS = str(Path(__file__).resolve().parent)


@pytest.fixture
def toy_log(tmp_path, monkeypatch):
    path = tmp_path / "runs.jsonl"
    monkeypatch.setenv("DEEPLIMIT_TOY_LOG", str(path))
    return path


def _toy_sweep(seeds=3, **base):
    return parse_sweep({"experiment": TOY, "seeds": seeds, "base": base})


# ----------------------------------------------------------------------------- keys


def test_same_spec_always_maps_to_the_same_folder():
    experiment = get_experiment("hayou-fig1")
    spec = experiment.smoke(seed=3)
    same = experiment.Spec(depths=[5, 50], samples=1000, seed=3, x=1, level=1e-3)
    assert point_key("hayou-fig1", spec) == point_key("hayou-fig1", same)
    assert point_key("hayou-fig1", spec) == point_key("hayou-fig1", spec.model_dump(mode="json"))
    # which GPU ran it does not matter; whether it ran on a GPU does
    gpu = spec.model_dump(mode="json") | {"device": "cuda:1"}
    assert point_key("hayou-fig1", gpu) == point_key("hayou-fig1", {**gpu, "device": "cuda"})
    assert point_key("hayou-fig1", gpu) != point_key("hayou-fig1", spec)
    assert point_key("hayou-fig1", spec) != point_key("hayou-fig1", experiment.smoke(seed=4))
    assert point_key("hayou-fig1", spec) != point_key("hayou-fig3", spec)
    assert point_key("hayou-fig1", spec) != point_key("hayou-fig1", spec, version="0.0.0")
    # pinned: changing how keys are computed orphans every store, so it must be deliberate.
    # The key is the SHA-256 of {"experiment", "spec" (device kind only), "version"} as compact
    # JSON with sorted keys.
    payload = {"depths": [5, 50], "samples": 1000, "seed": 3, "device": "cuda:0", "x": 1.0}
    assert point_key("demo", payload, version="0.1.0") == "8ef46c207c99a082"
    # and in another interpreter, with another hash seed
    code = (
        "from deeplimit.experiments import get_experiment; from deeplimit.store import point_key;"
        "print(point_key('hayou-fig1', get_experiment('hayou-fig1').smoke(seed=3)))"
    )
    other = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONHASHSEED": "123"},
        check=True,
    )
    assert other.stdout.strip() == point_key("hayou-fig1", spec)


def test_store_folder_is_experiment_then_key(tmp_path):
    sweep = _toy_sweep(seeds=1)
    point = sweep.points[0]
    run_sweep(sweep.points, tmp_path)
    folder = tmp_path / "toy" / point_key("toy", point.spec)
    assert folder.is_dir()
    names = {p.name for p in folder.iterdir()}
    assert names == {"manifest.json", "data.nc", "summary.parquet", "claims.parquet"}
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["status"] == "ok" and manifest["key"] == folder.name
    assert manifest["spec"] == point.spec.model_dump(mode="json")
    assert manifest["version"] == __version__ and manifest["seed"] == 0
    assert manifest["device"].startswith("cpu") and manifest["wall_time_s"] >= 0
    assert "git_commit" in manifest and manifest["experiment_ref"] == TOY
    for name, record in manifest["files"].items():
        assert (folder / name).stat().st_size == record["bytes"] and len(record["sha256"]) == 64


def test_a_point_records_the_commit_of_the_code_at_its_start(tmp_path, monkeypatch):
    """The checkout moving while a point runs (a long run on an editable install) does not
    change the commit its provenance records: it is read when the point starts."""
    import sweep_experiments
    from deeplimit import provenance

    commit = {"now": "a" * 40}

    def git(args, **kwargs):
        out = commit["now"] if "rev-parse" in args else ""
        return subprocess.CompletedProcess(args, 0, stdout=out + "\n", stderr="")

    run = sweep_experiments.Toy.run

    def moving(self, spec, progress=None):
        commit["now"] = "b" * 40  # someone checks out another commit meanwhile
        return run(self, spec, progress)

    monkeypatch.setattr(provenance.subprocess, "run", git)
    monkeypatch.setattr(sweep_experiments.Toy, "run", moving)
    provenance.git_commit.cache_clear()
    try:
        point = _toy_sweep(seeds=1).points[0]
        assert run_point(TOY, point.spec_json, tmp_path).status == "ok"
        folder = tmp_path / "toy" / point_key("toy", point.spec)
        manifest = json.loads((folder / "manifest.json").read_text())
        assert manifest["git_commit"] == "a" * 40
    finally:
        provenance.git_commit.cache_clear()


# ----------------------------------------------------------------------------- reading


def test_frame_summaries_claims_and_one_dataset(tmp_path):
    sweep = parse_sweep({"experiment": TOY, "seeds": 2, "grid": {"size": [3, 5]}})
    run_sweep(sweep.points, tmp_path)
    store = ResultStore(tmp_path)
    frame = store.frame("toy")
    assert len(frame) == 4 and set(frame.status) == {"ok"}
    assert {"key", "seed", "size", "scale", "wall_time_s", "error"} <= set(frame.columns)
    assert sorted(zip(frame["size"], frame["seed"])) == [(3, 0), (3, 1), (5, 0), (5, 1)]
    assert len(store.frame("toy", where={"size": 5})) == 2
    assert len(store.frame("toy", where={"size": 5, "seed": 1})) == 1
    with pytest.raises(StoreError, match="no stored point has a field 'sise'"):
        store.frame("toy", where={"sise": 5})

    rows = store.summaries("toy", where={"seed": 1})
    assert len(rows) == 4 and set(rows.statistic) == {"mean", "max"}
    mean = rows[(rows.statistic == "mean") & (rows["size"] == 5)]["value"].item()
    assert mean == pytest.approx(toy_values(1, 5, 1.0).mean(), abs=0)
    claims = store.summaries("toy", table="claims")
    assert set(claims.id) == {"toy-mean"} and json.loads(claims.details[0]) == {"note": "toy"}

    combined = store.load_all("toy")
    assert combined.value.dims == ("point", "sample") and combined.sizes["point"] == 4
    assert combined.sizes["sample"] == 5  # outer join: size-3 points padded with NaN
    for i in range(4):
        size, seed = int(combined["size"][i]), int(combined.seed[i])
        values = combined.value[i].values
        np.testing.assert_array_equal(values[:size], toy_values(seed, size, 1.0))
        assert np.isnan(values[size:]).all()


def test_reading_a_missing_store_or_experiment_is_a_clear_error(tmp_path):
    with pytest.raises(StoreError, match="does not exist"):
        ResultStore(tmp_path / "nowhere").frame()
    run_sweep(_toy_sweep(seeds=1).points, tmp_path)
    with pytest.raises(StoreError, match=r"holds no results of 'hayou-fig1'.*toy"):
        ResultStore(tmp_path).frame("hayou-fig1")
    with pytest.raises(StoreError, match="status must be one of"):
        ResultStore(tmp_path).frame(status="done")


# ----------------------------------------------------------------------------- corruption


def _truncate(folder):
    data = folder / "data.nc"
    data.write_bytes(data.read_bytes()[:100])


def _flip_a_byte(folder):
    data = folder / "data.nc"
    raw = bytearray(data.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    data.write_bytes(bytes(raw))


def _drop_manifest(folder):  # the writer died after the data, before the manifest
    (folder / "manifest.json").unlink()


def _garble_manifest(folder):
    (folder / "manifest.json").write_text('{"status": "ok", "key": ')


def _drop_summary(folder):
    (folder / "summary.parquet").unlink()


def _leave_temporary_files(folder):  # killed inside an atomic write
    (folder / ".data.nc.abc123.nc").write_bytes(b"half")
    _drop_manifest(folder)


@pytest.mark.parametrize(
    "damage, state",
    [
        (_truncate, "corrupt"),
        (_flip_a_byte, "corrupt"),
        (_drop_manifest, "incomplete"),
        (_garble_manifest, "corrupt"),
        (_drop_summary, "corrupt"),
        (_leave_temporary_files, "incomplete"),
    ],
)
def test_damaged_results_are_detected_never_loaded_and_recomputed(tmp_path, toy_log, damage, state):
    sweep = _toy_sweep(seeds=3)
    run_sweep(sweep.points, tmp_path)
    store = ResultStore(tmp_path)
    victim = sweep.points[1]
    damage(store.folder("toy", victim.key))
    assert store.entry("toy", victim.key).state == state
    with pytest.raises(StoreError, match=f"is {state}"):
        store.load("toy", victim.key)
    assert [e.state for e in store.entries("toy", status=state)] == [state]

    result = run_sweep(sweep.points, tmp_path)
    assert result.computed == [victim.key] and len(result.skipped) == 2 and result.complete
    assert [line["seed"] for line in log_lines(toy_log)] == [0, 1, 2, 1]
    folder = store.folder("toy", victim.key)
    assert {p.name for p in folder.iterdir()} == {
        "manifest.json",
        "data.nc",
        "summary.parquet",
        "claims.parquet",
    }
    np.testing.assert_array_equal(store.load("toy", victim.key).value, toy_values(1, 16, 1.0))


# ----------------------------------------------------------------------------- locks


def _dead_pid():
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def _write_lock(folder, **owner):
    folder.mkdir(parents=True, exist_ok=True)
    record = {"token": "t", "host": platform.node(), "pid": os.getpid(), "slurm_task": None}
    (folder / LOCK).write_text(json.dumps({**record, **owner}))


def test_claims_are_exclusive(tmp_path):
    store = ResultStore(tmp_path)
    lock = store.claim("toy", "k1")
    assert lock is not None and lock.owned()
    assert store.claim("toy", "k1") is None  # held by a live process (this one)
    assert store.entry("toy", "k1").state == "running"
    lock.release()
    assert not (tmp_path / "toy" / "k1" / LOCK).exists()
    assert store.entry("toy", "k1").state == "incomplete"


def test_stale_locks_are_taken_over(tmp_path, monkeypatch):
    store = ResultStore(tmp_path, stale_after_s=30)
    folder = tmp_path / "toy"
    # a dead process on this host: at once
    _write_lock(folder / "a", pid=_dead_pid())
    assert store.claim("toy", "a") is not None
    # a live process on another host: not while its heartbeat is fresh ...
    _write_lock(folder / "b", host="elsewhere", pid=1)
    assert store.claim("toy", "b") is None
    # ... but once it is older than stale_after_s
    old = time.time() - 60
    os.utime(folder / "b" / LOCK, (old, old))
    assert store.claim("toy", "b") is not None
    # an earlier run of this same SLURM task (requeued after preemption)
    _write_lock(folder / "c", host="elsewhere", pid=1, slurm_task="77_3")
    assert store.claim("toy", "c") is None
    monkeypatch.setenv("SLURM_ARRAY_JOB_ID", "77")
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "3")
    assert store.claim("toy", "c") is not None
    # a lock file that never got its content
    (folder / "d").mkdir()
    (folder / "d" / LOCK).write_text("")
    assert store.claim("toy", "d") is None
    os.utime(folder / "d" / LOCK, (old, old))
    assert store.claim("toy", "d") is not None


def test_a_breaker_that_died_does_not_block_forever(tmp_path):
    store = ResultStore(tmp_path)
    _write_lock(tmp_path / "toy" / "a", pid=_dead_pid())
    breaker = tmp_path / "toy" / "a" / ".lock.break"
    breaker.write_text("")
    assert store.claim("toy", "a") is None  # someone seems to be breaking it right now
    old = time.time() - 120
    os.utime(breaker, (old, old))
    assert store.claim("toy", "a") is None  # this look clears the dead breaker ...
    assert store.claim("toy", "a") is not None  # ... and the next one takes over


def test_run_point_leaves_a_busy_point_alone(tmp_path, toy_log):
    point = _toy_sweep(seeds=1).points[0]
    store = ResultStore(tmp_path)
    lock = store.claim("toy", point.key)
    outcome = run_point(TOY, point.spec_json, tmp_path)
    assert outcome.status == "busy" and log_lines(toy_log) == []
    lock.release()
    assert run_point(TOY, point.spec_json, tmp_path).status == "ok"
    assert run_point(TOY, point.spec_json, tmp_path).status == "skipped"
    assert len(log_lines(toy_log)) == 1


# ----------------------------------------------------------------------------- writability


def test_store_that_is_a_file_is_a_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(StoreError, match="is a file, not a folder"):
        run_sweep(_toy_sweep(seeds=1).points, blocker)
    with pytest.raises(StoreError, match="not writable"):
        run_sweep(_toy_sweep(seeds=1).points, blocker / "store")


def test_store_that_is_not_writable_is_one_line_on_the_command_line(tmp_path):
    """A read-only store folder; as root (who may write anywhere) the command runs without the
    capability to override file permissions."""
    store = tmp_path / "store"
    store.mkdir()
    os.chmod(store, 0o555)
    sweep = tmp_path / "s.toml"
    sweep.write_text('experiment = "hayou-fig1"\nscale = "smoke"\n')
    command = [*CLI, "sweep", str(sweep), "--store", str(store)]
    if os.geteuid() == 0:
        if shutil.which("setpriv") is None:
            pytest.skip("running as root without setpriv (util-linux) to drop CAP_DAC_OVERRIDE")
        drop = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search", "--inh-caps=-all"]
        command = [*drop, "--", *command]
    result = subprocess.run(command, capture_output=True, text=True)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2, result.stderr
    assert len(lines) == 1 and "is not writable" in lines[0] and "--store" in lines[0]
    assert list(store.iterdir()) == []


def test_results_command_lists_and_exports(tmp_path):
    sweep = parse_sweep({"experiment": TOY, "seeds": 2, "grid": {"size": [3, 5]}})
    run_sweep(sweep.points, tmp_path)
    run_sweep(parse_sweep({"experiment": TOY, "base": {"fail": True}}).points, tmp_path)
    runner = CliRunner()
    result = runner.invoke(app, ["results", "--store", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "toy: 5 points" in result.output and "4 ok, 1 failed in all" in result.output
    assert "ValueError: toy failure requested for seed 0" in result.output
    result = runner.invoke(
        app, ["results", "--store", str(tmp_path), "--where", "size=5", "--status", "ok"]
    )
    assert result.exit_code == 0 and "toy: 2 points" in result.output
    csv = tmp_path / "out" / "points.csv"
    result = runner.invoke(app, ["results", "-s", str(tmp_path), "--export", str(csv)])
    assert result.exit_code == 0 and csv.read_text().count("\n") == 6
    parquet = tmp_path / "out" / "stats.parquet"
    result = runner.invoke(
        app, ["results", "-s", str(tmp_path), "--export", str(parquet), "--summaries"]
    )
    assert result.exit_code == 0 and "(8 rows)" in result.output
    netcdf = tmp_path / "out" / "toy.nc"
    result = runner.invoke(
        app, ["results", "-s", str(tmp_path), "-x", "toy", "--export", str(netcdf)]
    )
    assert result.exit_code == 0 and "(4 points)" in result.output
    result = runner.invoke(app, ["results", "-s", str(tmp_path), "--where", "sise=5"])
    assert result.exit_code == 2 and "no stored point has a field 'sise'" in result.output
    result = runner.invoke(app, ["results", "-s", str(tmp_path / "none")])
    assert result.exit_code == 2 and "does not exist" in result.output


def test_plot_redraws_from_the_store_without_recomputing(tmp_path, toy_log):
    sweep = parse_sweep({"experiment": "hayou-fig1", "scale": "smoke", "seeds": 2})
    run_sweep(sweep.points, tmp_path / "store")
    runner = CliRunner()
    out = tmp_path / "plots"
    common = ["--store", str(tmp_path / "store"), "--out", str(out)]
    result = runner.invoke(app, ["plot", "hayou-fig1", "--smoke", "--set", "seed=1", *common])
    assert result.exit_code == 0, result.output
    key = sweep.points[1].key
    assert (out / f"hayou-fig1-{key}.png").stat().st_size > 0
    assert (out / f"hayou-fig1-{key}.pdf").stat().st_size > 0
    result = runner.invoke(app, ["plot", "hayou-fig1", "--key", key[:6], *common])
    assert result.exit_code == 0 and key in result.output
    result = runner.invoke(app, ["plot", "hayou-fig1", "--set", "seed=1", *common])
    assert result.exit_code == 2 and "no stored result of hayou-fig1 for this spec" in result.output
    result = runner.invoke(app, ["plot", "hayou-fig1", "--key", "ffff", *common])
    assert result.exit_code == 2 and "no point of 'hayou-fig1'" in result.output
    # an experiment defined outside deeplimit, found through its manifest
    run_sweep(_toy_sweep(seeds=1).points, tmp_path / "store")
    toy_key = _toy_sweep(seeds=1).points[0].key
    result = runner.invoke(app, ["plot", "toy", "--key", toy_key, *common])
    assert result.exit_code == 0, result.output
    assert len(log_lines(toy_log)) == 1


def test_points_of_different_sizes_combine_by_position(tmp_path):
    """Fig. 1 has a `sample` dimension without coordinates: a sweep over `samples` still loads
    into one dataset (and exports as one .nc), shorter points padded with NaN."""
    sweep = parse_sweep(
        {"experiment": "hayou-fig1", "scale": "smoke", "grid": {"samples": [100, 150]}}
    )
    run_sweep(sweep.points, tmp_path)
    store = ResultStore(tmp_path)
    combined = store.load_all("hayou-fig1")
    assert combined.sizes["point"] == 2 and combined.sizes["sample"] == 150
    assert "sample" not in combined.coords
    for i, point in enumerate(combined.key.values):
        alone = store.load("hayou-fig1", str(point))
        n = alone.sizes["sample"]
        np.testing.assert_array_equal(combined.y_last[i, :, :n].values, alone.y_last.values)
        assert np.isnan(combined.y_last[i, :, n:].values).all()
    result = CliRunner().invoke(
        app,
        ["results", "-s", str(tmp_path), "-x", "hayou-fig1", "--export", str(tmp_path / "a.nc")],
    )
    assert result.exit_code == 0 and "(2 points)" in result.output, result.output


def test_exports_of_data_refuse_a_status_other_than_ok(tmp_path):
    run_sweep(_toy_sweep(seeds=1).points, tmp_path)
    runner = CliRunner()
    for extra in (
        ["-x", "toy", "--export", str(tmp_path / "f.nc")],
        ["--export", str(tmp_path / "f.csv"), "--summaries"],
    ):
        result = runner.invoke(app, ["results", "-s", str(tmp_path), "--status", "failed", *extra])
        assert result.exit_code == 2 and "--status must be ok" in result.output, result.output
    assert not (tmp_path / "f.nc").exists() and not (tmp_path / "f.csv").exists()


def test_results_table_ignores_points_without_a_spec(tmp_path):
    """An interrupted point's empty folder and a foreign folder are listed with their state,
    without turning the table's fields into NaN."""
    run_sweep(_toy_sweep(seeds=2).points, tmp_path)
    (tmp_path / "toy" / "0123456789abcdef").mkdir()
    (tmp_path / "other" / "abc").mkdir(parents=True)
    result = CliRunner().invoke(app, ["results", "-s", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "nan" not in result.output.lower()
    lines = [line.rstrip() for line in result.output.splitlines()]
    assert "toy: 3 points" in lines and "other: 1 point" in lines
    fixed = next(line for line in lines if line.startswith("fixed:"))
    assert "size=16" in fixed and "scale=1" in fixed
    assert "2 ok" in lines[-1] and "2 incomplete" in lines[-1]


def test_an_ambiguous_key_prefix_lists_the_matches(tmp_path):
    run_sweep(_toy_sweep(seeds=40).points, tmp_path)
    store = ResultStore(tmp_path)
    keys = store.keys("toy")
    prefix = next(k[0] for k in keys if sum(o.startswith(k[0]) for o in keys) > 1)
    with pytest.raises(StoreError, match="give more digits") as error:
        store.find("toy", prefix)
    assert all(k in str(error.value) for k in keys if k.startswith(prefix))
