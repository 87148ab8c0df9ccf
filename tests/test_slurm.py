"""The slurm executor against a real single-node SLURM cluster (slurmctld + slurmd + munged),
started here by scripts/slurm/start-cluster.sh and stopped afterwards.

Skipped when SLURM's daemons are not installed (apt-get install slurm-wlm munge) or we are not
root, unless DEEPLIMIT_REQUIRE_SLURM=1 (CI), which turns the skip into a failure.
"""

import json
import os
import shutil
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from typer.testing import CliRunner

from deeplimit.cli import app
from deeplimit.executors import SlurmExecutor, SlurmResources
from deeplimit.runner import run_sweep
from deeplimit.store import LOCK, ResultStore, lock_owner
from deeplimit.sweeps import parse_sweep
from sweep_experiments import log_lines, toy_values

pytestmark = pytest.mark.slurm

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = ROOT / "scripts" / "slurm"
TESTS = str(Path(__file__).resolve().parent)
TOY = "sweep_experiments:Toy"
DAEMONS = ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "scancel", "scontrol")


@pytest.fixture(scope="module")
def slurm_cluster(tmp_path_factory):
    """A private cluster for this module: yields its SLURM_CONF."""
    missing = [tool for tool in DAEMONS if shutil.which(tool) is None]
    reason = None
    if missing:
        reason = f"SLURM is not installed ({', '.join(missing)}): apt-get install slurm-wlm munge"
    elif os.geteuid() != 0:
        reason = "starting slurmd and munged needs root"
    if reason:
        if os.environ.get("DEEPLIMIT_REQUIRE_SLURM") == "1":
            pytest.fail(f"DEEPLIMIT_REQUIRE_SLURM=1 but {reason}")
        pytest.skip(reason)
    state = tmp_path_factory.mktemp("slurm")
    started = subprocess.run(
        [str(SCRIPTS / "start-cluster.sh"), str(state)], capture_output=True, text=True
    )
    try:
        assert started.returncode == 0, started.stdout + started.stderr
        conf = started.stdout.strip().rsplit("SLURM_CONF=", 1)[1]
        previous = os.environ.get("SLURM_CONF")
        os.environ["SLURM_CONF"] = conf
        yield conf
    finally:
        subprocess.run([str(SCRIPTS / "stop-cluster.sh"), str(state)], capture_output=True)
        if started.returncode == 0:
            if previous is None:
                os.environ.pop("SLURM_CONF", None)
            else:
                os.environ["SLURM_CONF"] = previous
    for name in ("slurmctld.pid", "slurmd.pid", "munged.pid"):
        pid_file = state / name
        if pid_file.exists():
            pid = int(pid_file.read_text().split()[0])
            assert not Path(f"/proc/{pid}").exists(), f"{name} still runs after stop-cluster.sh"


@pytest.fixture
def toy_env(tmp_path, monkeypatch, slurm_cluster):
    """The toy's run log and hold folder, in the environment the SLURM tasks inherit."""
    log = tmp_path / "runs.jsonl"
    hold = tmp_path / "hold"
    hold.mkdir()
    monkeypatch.setenv("DEEPLIMIT_TOY_LOG", str(log))
    monkeypatch.setenv("DEEPLIMIT_TOY_HOLD", str(hold))
    monkeypatch.setenv("PYTHONPATH", TESTS + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return log, hold


def _resources():
    return SlurmResources(time=10, cpus_per_task=1, array_parallelism=2, job_name="deeplimit-test")


def _wait_for(path: Path, timeout=180):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.read_text():
            return path.read_text()
        time.sleep(0.1)
    raise AssertionError(f"{path} did not appear within {timeout} s")


def _slurm_task_of(store: Path, key: str) -> str:
    """The SLURM task (job_task) holding a point, from its lock."""
    owner = lock_owner(store / "toy" / key / LOCK)
    assert owner is not None and owner["slurm_task"], owner
    return owner["slurm_task"]


def _queue_state(task: str) -> str:
    listing = subprocess.run(
        ["squeue", "--noheader", "--array", "--format=%i|%T", f"--jobs={task.split('_')[0]}"],
        capture_output=True,
        text=True,
    )
    states = dict(line.split("|", 1) for line in listing.stdout.split() if "|" in line)
    return states.get(task, "")


def test_cancelled_task_is_interrupted_and_the_resumed_sweep_completes(tmp_path, toy_env):
    log, hold = toy_env
    sweep = parse_sweep({"experiment": TOY, "seeds": 4, "base": {"size": 8}})
    victim = sweep.points[2]
    (hold / "2.hold").write_text("")
    store = tmp_path / "store"
    logs = tmp_path / "logs"
    cancelled = []

    def cancel_when_running():
        _wait_for(hold / "2.started")
        task = _slurm_task_of(store, victim.key)
        subprocess.run(["scancel", task], check=True)
        cancelled.append(task)

    canceller = threading.Thread(target=cancel_when_running)
    canceller.start()
    first = run_sweep(sweep.points, store, SlurmExecutor(_resources(), logs, poll_s=1.0))
    canceller.join()
    assert cancelled and list(first.interrupted) == [victim.key], first
    assert "ended without a result" in first.interrupted[victim.key]
    assert len(first.computed) == 3 and not first.failed

    (hold / "2.hold").unlink()
    second = run_sweep(sweep.points, store, SlurmExecutor(_resources(), logs, poll_s=1.0))
    assert second.computed == [victim.key] and len(second.skipped) == 3 and second.complete

    # every point in the store exactly once, computed exactly once, with the right numbers
    results = ResultStore(store)
    assert sorted(results.keys("toy")) == sorted(p.key for p in sweep.points)
    assert [e.state for e in results.entries("toy")] == ["ok"] * 4
    assert sorted(line["seed"] for line in log_lines(log)) == [0, 1, 2, 3]
    for point in sweep.points:
        stored = results.load("toy", point.key).value.values
        np.testing.assert_array_equal(stored, toy_values(point.spec.seed, 8, 1.0))
        assert results.entry("toy", point.key).manifest["host"]
    assert not list(store.rglob(".lock"))
    # one log folder per array job, a log per task
    task_logs = sorted(logs.glob("*/*_log.out"))
    assert len(task_logs) == 5, task_logs


def test_preempted_task_is_requeued_and_finishes(tmp_path, toy_env):
    """Signal a running task as SLURM does before preempting it (submitit: USR2): the task
    requeues itself, runs again and finishes; the driver never reports it interrupted."""
    log, hold = toy_env
    sweep = parse_sweep({"experiment": TOY, "seeds": [5], "base": {"size": 4}})
    point = sweep.points[0]
    (hold / "5.hold").write_text("")
    store = tmp_path / "store"
    requeued = []

    def preempt_then_release():
        _wait_for(hold / "5.started")
        task = _slurm_task_of(store, point.key)
        (hold / "5.started").unlink()
        subprocess.run(["scancel", "--signal=USR2", task], check=True)
        deadline = time.monotonic() + 120
        while _queue_state(task) != "PENDING" and time.monotonic() < deadline:
            time.sleep(0.2)
        requeued.append(_queue_state(task))
        # it starts again once its old credential expires (cred_expire=10 in start-cluster.sh)
        _wait_for(hold / "5.started")
        (hold / "5.hold").unlink()

    helper = threading.Thread(target=preempt_then_release)
    helper.start()
    executor = SlurmExecutor(_resources(), tmp_path / "logs", poll_s=1.0)
    result = run_sweep(sweep.points, store, executor)
    helper.join()
    assert requeued == ["PENDING"]
    assert result.computed == [point.key] and result.complete, result
    lines = log_lines(log)
    assert len(lines) == 1 and lines[0]["restarts"] == "1"
    stored = ResultStore(store).load("toy", point.key).value.values
    np.testing.assert_array_equal(stored, toy_values(5, 4, 1.0))


def test_paper_figure_sweep_gives_identical_numbers_on_slurm_and_locally(tmp_path, slurm_cluster):
    """examples/sweeps/hayou-fig1-smoke.toml through both executors: the same points, the same
    arrays bit for bit, the same statistics; the figure redrawn from the SLURM store."""
    sweep_file = str(ROOT / "examples" / "sweeps" / "hayou-fig1-smoke.toml")
    runner = CliRunner()
    on_slurm = runner.invoke(
        app,
        [
            "sweep",
            sweep_file,
            "--executor",
            "slurm",
            "--store",
            str(tmp_path / "slurm"),
            "--poll",
            "1",
            "--time",
            "00:10:00",
            "--cpus-per-task",
            "1",
            "-q",
        ],
    )
    assert on_slurm.exit_code == 0, on_slurm.output
    assert "executor slurm" in on_slurm.output and "4 of 4 points done" in on_slurm.output
    local = runner.invoke(
        app, ["sweep", sweep_file, "--store", str(tmp_path / "local"), "-w", "2", "-q"]
    )
    assert local.exit_code == 0, local.output

    slurm_store, local_store = ResultStore(tmp_path / "slurm"), ResultStore(tmp_path / "local")
    keys = slurm_store.keys("hayou-fig1")
    assert len(keys) == 4 and keys == local_store.keys("hayou-fig1")
    for key in keys:
        xr.testing.assert_identical(
            slurm_store.load("hayou-fig1", key), local_store.load("hayou-fig1", key)
        )
        host = slurm_store.entry("hayou-fig1", key).manifest
        assert json.dumps(host["spec"]) == json.dumps(
            local_store.entry("hayou-fig1", key).manifest["spec"]
        )
    a, b = slurm_store.summaries("hayou-fig1"), local_store.summaries("hayou-fig1")
    assert (
        a.sort_values(["key", "depth"])
        .reset_index(drop=True)
        .equals(b.sort_values(["key", "depth"]).reset_index(drop=True))
    )
    redraw = runner.invoke(
        app,
        [
            "plot",
            "hayou-fig1",
            "--smoke",
            "--set",
            "seed=1",
            "--set",
            "samples=2000",
            "--store",
            str(tmp_path / "slurm"),
            "--out",
            str(tmp_path / "plots"),
        ],
    )
    assert redraw.exit_code == 0, redraw.output
    assert len(list((tmp_path / "plots").glob("hayou-fig1-*.png"))) == 1
