"""The runner: skip what is done, record failures, survive killed workers, Ctrl-C and a second
runner on the same store, without losing or repeating a point; reproduce through the store."""

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from deeplimit.cli import app
from deeplimit.executors import InlineExecutor, LocalExecutor
from deeplimit.reproduce import reproduce
from deeplimit.runner import run_sweep
from deeplimit.store import LOCK, ResultStore
from deeplimit.sweeps import parse_sweep
from process_helpers import foreground, wait_until_gone
from sweep_experiments import CLI, log_lines, toy_values

TOY = "sweep_experiments:Toy"
TESTS = str(Path(__file__).resolve().parent)


@pytest.fixture
def toy_log(tmp_path, monkeypatch):
    path = tmp_path / "runs.jsonl"
    monkeypatch.setenv("DEEPLIMIT_TOY_LOG", str(path))
    monkeypatch.setenv("PYTHONPATH", TESTS + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return path


@pytest.fixture
def hold(tmp_path, monkeypatch):
    """``hold(seed)`` makes the toy point of ``seed`` wait until ``release(seed)``."""
    folder = tmp_path / "hold"
    folder.mkdir()
    monkeypatch.setenv("DEEPLIMIT_TOY_HOLD", str(folder))

    class Hold:
        def __call__(self, seed):
            (folder / f"{seed}.hold").write_text("")

        def release(self, seed):
            (folder / f"{seed}.hold").unlink(missing_ok=True)

        def started_pid(self, seed, timeout=120):
            marker = folder / f"{seed}.started"
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if marker.exists() and marker.read_text():
                    return int(marker.read_text())
                time.sleep(0.05)
            raise AssertionError(f"the point of seed {seed} never started")

    return Hold()


def _toy(seeds, **base):
    return parse_sweep({"experiment": TOY, "seeds": seeds, "base": base})


def _computed_seeds(log):
    return sorted(line["seed"] for line in log_lines(log))


def _no_leftovers(store_root):
    """No locks, breakers or temporary files anywhere in the store."""
    return [p for p in Path(store_root).rglob(".*") if ".slurm" not in p.parts]


def test_done_points_are_skipped_and_failures_recorded(tmp_path, toy_log, monkeypatch):
    sweep = _toy(4)
    monkeypatch.setenv("DEEPLIMIT_TOY_FAIL", "2")
    first = run_sweep(sweep.points, tmp_path)
    assert len(first.computed) == 3 and not first.complete
    failed_key = sweep.points[2].key
    assert first.failed == {failed_key: "ValueError: toy failure requested for seed 2"}
    entry = ResultStore(tmp_path).entry("toy", failed_key)
    assert entry.state == "failed" and "Traceback" in entry.manifest["traceback"]
    assert not (entry.folder / "data.nc").exists()

    again = run_sweep(sweep.points, tmp_path)  # failures stay failures without --retry-failed
    assert again.computed == [] and len(again.skipped) == 3 and list(again.failed) == [failed_key]
    assert _computed_seeds(toy_log) == [0, 1, 3]

    monkeypatch.delenv("DEEPLIMIT_TOY_FAIL")
    retried = run_sweep(sweep.points, tmp_path, retry_failed=True)
    assert retried.computed == [failed_key] and retried.complete
    assert _computed_seeds(toy_log) == [0, 1, 2, 3]
    assert _no_leftovers(tmp_path) == []


def test_progress_counts_points(tmp_path):
    seen = []
    run_sweep(_toy(3).points, tmp_path, progress=seen.append)
    assert seen[-1].total == 3 and seen[-1].done == 3 and seen[-1].computed == 3
    assert [s.done for s in seen] == sorted(s.done for s in seen)
    seen.clear()
    run_sweep(_toy(5).points, tmp_path, progress=seen.append)
    assert seen[0].done == 3 and seen[-1].done == 5 and seen[-1].computed == 2


def test_local_workers_give_the_numbers_of_a_direct_call(tmp_path, toy_log):
    sweep = parse_sweep({"experiment": TOY, "seeds": 4, "grid": {"scale": [1.0, 2.5]}})
    with LocalExecutor(2) as executor:
        result = run_sweep(sweep.points, tmp_path / "local", executor)
    assert result.complete and len(result.computed) == 8
    pids = {line["pid"] for line in log_lines(toy_log)}
    assert os.getpid() not in pids and len(pids) <= 2
    store = ResultStore(tmp_path / "local")
    for point in sweep.points:
        expected = toy_values(point.spec.seed, point.spec.size, point.spec.scale)
        np.testing.assert_array_equal(store.load("toy", point.key).value.values, expected)


def test_a_killed_worker_loses_only_its_point_and_the_sweep_resumes(tmp_path, toy_log, hold):
    """SIGKILL the worker computing one point: the other points finish, the killed one is
    reported interrupted (not failed), and running the sweep again computes only it."""
    sweep = _toy(6)
    victim = sweep.points[1]
    hold(1)

    def kill_when_running():
        os.kill(hold.started_pid(1), signal.SIGKILL)

    killer = threading.Thread(target=kill_when_running)
    killer.start()
    with LocalExecutor(2) as executor:
        first = run_sweep(sweep.points, tmp_path, executor)
    killer.join()
    assert list(first.interrupted) == [victim.key]
    assert "was killed by SIGKILL" in first.interrupted[victim.key]
    assert len(first.computed) == 5 and not first.failed and not first.complete
    store = ResultStore(tmp_path)
    assert store.entry("toy", victim.key).state == "incomplete"  # dead owner: lock is stale
    assert (store.folder("toy", victim.key) / LOCK).exists()

    hold.release(1)
    with LocalExecutor(2) as executor:
        second = run_sweep(sweep.points, tmp_path, executor)
    assert second.computed == [victim.key] and len(second.skipped) == 5 and second.complete
    assert _computed_seeds(toy_log) == [0, 1, 2, 3, 4, 5]
    assert _no_leftovers(tmp_path) == []
    assert len(store.entries("toy", status="ok")) == 6


def test_ctrl_c_stops_the_sweep_and_the_next_run_finishes_it(tmp_path, toy_log, hold):
    path = tmp_path / "toy.toml"
    path.write_text(f'experiment = "{TOY}"\nseeds = 5\n')
    command = [*CLI, "sweep", str(path), "--store", str(tmp_path / "s"), "-w", "2", "-q"]
    hold(3)
    # its own session, so that the signal reaches it and its workers as a terminal's Ctrl-C
    # does, started as a terminal starts it (SIGINT not ignored, whatever this test run got);
    # the output goes to a file and the test waits for the command itself: a helper process of
    # multiprocessing (resource tracker, fork server) that outlives it for a moment would keep a
    # pipe open and block a read to EOF although the command has ended
    log = tmp_path / "sweep.log"
    with open(log, "w") as stream:
        process = subprocess.Popen(
            foreground(command),
            stdout=stream,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
    try:
        hold.started_pid(3)
        os.killpg(process.pid, signal.SIGINT)
        process.wait(timeout=120)
        left = wait_until_gone(process.pid)  # no worker, fork server or resource tracker
    finally:
        if process.poll() is None:
            process.kill()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)  # nothing of the session outlives the test
    output = log.read_text()
    assert process.returncode == 130, output
    assert "stopped by Ctrl-C (SIGINT)" in output and "run the same command again" in output
    assert left == []
    store = ResultStore(tmp_path / "s")
    stored = {e.spec["seed"] for e in store.entries("toy", status="ok")}
    assert 3 not in stored
    runs_before = len(log_lines(toy_log))

    hold.release(3)
    finished = run_sweep(parse_sweep({"experiment": TOY, "seeds": 5}).points, store)
    assert finished.complete and len(finished.computed) == 5 - len(stored)
    # nothing lost, and nothing stored before the interruption computed again
    rerun = sorted(line["seed"] for line in log_lines(toy_log)[runs_before:])
    assert rerun == sorted(set(range(5)) - stored)
    assert len(store.entries("toy", status="ok")) == 5
    assert _no_leftovers(tmp_path / "s") == []


def test_sigterm_stops_the_sweep_command_like_ctrl_c(tmp_path, toy_log, hold):
    """``kill PID`` (a batch system, a CI timeout, a sweep started in the background, where
    Ctrl-C is ignored) stops the sweep as Ctrl-C does: status 143, the held point released
    (no lock left), and the same command finishes the sweep."""
    path = tmp_path / "toy.toml"
    path.write_text(f'experiment = "{TOY}"\nseeds = 2\n')
    command = ["sweep", str(path), "--store", str(tmp_path / "s"), "-w", "0", "-q"]
    hold(1)

    def not_handled(signum, frame):  # instead of ending this test process
        raise AssertionError("the sweep command did not handle SIGTERM")

    def terminate_when_held():
        hold.started_pid(1)
        os.kill(os.getpid(), signal.SIGTERM)

    previous = signal.signal(signal.SIGTERM, not_handled)
    try:
        sender = threading.Thread(target=terminate_when_held)
        sender.start()
        result = CliRunner().invoke(app, command)
        sender.join()
        assert signal.getsignal(signal.SIGTERM) is not_handled  # the command put it back
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert result.exit_code == 143, result.output
    assert "stopped by SIGTERM" in result.output and "run the same command again" in result.output
    assert "interrupted" in result.output and "(seed=1): stopped by SIGTERM" in result.output
    store = ResultStore(tmp_path / "s")
    assert [e.spec["seed"] for e in store.entries("toy", status="ok")] == [0]
    assert _no_leftovers(tmp_path / "s") == []
    hold.release(1)
    again = CliRunner().invoke(app, command)
    assert again.exit_code == 0 and "(1 computed, 1 already stored)" in again.output


def test_stop_signals_raise_once_and_leave_an_ignored_signal_ignored():
    from deeplimit.cli.common import stop_signals

    before = {n: signal.getsignal(n) for n in (signal.SIGINT, signal.SIGTERM)}
    try:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a background job of a script
        with stop_signals() as stop:
            assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
            with pytest.raises(KeyboardInterrupt, match="stopped by SIGTERM"):
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(1.0)  # the handler runs in the main thread as soon as it can
            os.kill(os.getpid(), signal.SIGTERM)  # a second one while it stops: ignored
            time.sleep(0.05)
        assert stop.exit_code == 143
        assert signal.getsignal(signal.SIGTERM) == before[signal.SIGTERM]
        signal.signal(signal.SIGINT, signal.default_int_handler)
        with stop_signals() as stop, pytest.raises(KeyboardInterrupt, match=r"Ctrl-C"):
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(1.0)
        assert stop.exit_code == 130
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        for signum, handler in before.items():
            signal.signal(signum, handler)


def test_a_test_run_started_in_the_background_hands_on_an_ignored_sigint():
    """Why the Ctrl-C test once hung in CI: ``.ci/run`` started as a background job of a
    non-interactive shell ignores SIGINT, every process it starts inherits that, and a Python
    started with SIGINT ignored never raises KeyboardInterrupt. ``foreground`` starts a
    command with SIGINT at its default, as a terminal does."""
    probe = [sys.executable, "-c", "import signal; print(signal.getsignal(signal.SIGINT))"]
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        inherited = subprocess.run(probe, capture_output=True, text=True, check=True).stdout
        reset = subprocess.run(foreground(probe), capture_output=True, text=True, check=True)
    finally:
        signal.signal(signal.SIGINT, previous)
    assert inherited.strip() == str(signal.SIG_IGN)
    assert reset.stdout.strip() == str(signal.default_int_handler)


def _poll_until(executor, path, timeout=60.0):
    deadline = time.monotonic() + timeout
    while not (path.exists() and path.read_text()):
        assert time.monotonic() < deadline, f"{path} never appeared"
        executor.poll(0.02)
    return int(path.read_text())


def test_a_cancelled_worker_that_will_not_stop_is_killed_after_the_grace_period(tmp_path):
    from process_helpers import stubborn

    executor = LocalExecutor(1, stop_grace_s=0.5)
    executor.submit(stubborn, [("a", (str(tmp_path),))])
    pid = _poll_until(executor, tmp_path / "started")
    start = time.monotonic()
    executor.close(cancel=True)
    assert time.monotonic() - start < 4.0  # 0.5 s grace, then SIGKILL (it ignores SIGTERM)
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_the_workers_of_a_runner_that_was_killed_stop_and_no_process_is_left(tmp_path):
    """SIGKILL of the runner (nothing of it can clean up) ends its workers' calls through their
    finally blocks (a point's lock is released there), and then the fork server and the
    resource tracker end too."""
    (tmp_path / "hold").write_text("")
    runner_code = (
        "import sys\n"
        "from deeplimit.executors import LocalExecutor\n"
        "from process_helpers import hold\n"
        "executor = LocalExecutor(1, stop_grace_s=1.0)\n"
        "executor.submit(hold, [('a', (sys.argv[1],))])\n"
        "while True:\n"
        "    executor.poll(0.1)\n"
    )
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([TESTS, *sys.path]))
    runner = subprocess.Popen(
        [sys.executable, "-c", runner_code, str(tmp_path)], env=env, start_new_session=True
    )
    try:
        started = tmp_path / "started"
        deadline = time.monotonic() + 60
        while not (started.exists() and started.read_text()) and time.monotonic() < deadline:
            time.sleep(0.02)
        runner.kill()
        runner.wait(timeout=10)
        left = wait_until_gone(runner.pid)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(runner.pid, signal.SIGKILL)
    assert started.read_text() and left == []
    assert (tmp_path / "unwound").read_text() == started.read_text()


def test_two_runners_on_one_store_compute_each_point_once(tmp_path, toy_log):
    sweep = _toy(10, sleep_s=0.2)
    results = []

    def runner():
        with LocalExecutor(2) as executor:
            results.append(run_sweep(sweep.points, tmp_path, executor, poll_s=0.1))

    threads = [threading.Thread(target=runner) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert len(results) == 2 and all(r.complete for r in results)
    assert _computed_seeds(toy_log) == list(range(10))
    assert sorted(results[0].computed + results[1].computed) == sorted(p.key for p in sweep.points)
    assert len(ResultStore(tmp_path).entries("toy", status="ok")) == 10
    assert _no_leftovers(tmp_path) == []


def test_a_runner_waits_for_points_another_holds_and_takes_over_abandoned_ones(tmp_path, toy_log):
    sweep = _toy(2)
    store = ResultStore(tmp_path, stale_after_s=1.0)
    lock = store.claim("toy", sweep.points[0].key)  # a live "other runner"

    def finish_other():
        time.sleep(1.0)
        lock.release()  # it gave up without a result: the waiting runner takes over

    other = threading.Thread(target=finish_other)
    other.start()
    result = run_sweep(sweep.points, store, poll_s=0.1)
    other.join()
    assert result.complete and sorted(result.computed) == sorted(p.key for p in sweep.points)
    # without waiting, a held point is reported, not computed
    store2 = ResultStore(tmp_path / "b")
    held = store2.claim("toy", sweep.points[0].key)
    partial = run_sweep(sweep.points, store2, wait_for_others=False)
    assert partial.waiting == [sweep.points[0].key] and not partial.complete
    held.release()


def test_sweep_command_end_to_end(tmp_path, toy_log):
    path = tmp_path / "toy.toml"
    path.write_text(
        f'experiment = "{TOY}"\nseeds = 2\n[grid]\nsize = [3, 4]\n[zip]\nfail = [false]\n'
    )
    store = str(tmp_path / "store")
    runner = CliRunner()
    result = runner.invoke(app, ["sweep", str(path), "--store", store, "--dry-run"])
    assert result.exit_code == 0 and "4 to run" in result.output
    result = runner.invoke(app, ["sweep", str(path), "--store", store, "-w", "0", "-q"])
    assert result.exit_code == 0, result.output
    assert "4 points of toy over size × fail × seed" in result.output
    assert "4 of 4 points done (4 computed, 0 already stored), 0 failed" in result.output
    result = runner.invoke(app, ["sweep", str(path), "--store", store, "--dry-run"])
    assert "4 stored" in result.output
    result = runner.invoke(app, ["sweep", str(path), "--store", store, "-q"])
    assert result.exit_code == 0 and "(0 computed, 4 already stored)" in result.output
    assert len(log_lines(toy_log)) == 4
    path.write_text(f'experiment = "{TOY}"\nseeds = 2\n[base]\nfail = true\n')
    result = runner.invoke(app, ["sweep", str(path), "--store", store, "-q", "-w", "0"])
    assert result.exit_code == 1 and "2 failed" in result.output
    assert "toy failure requested for seed 1" in result.output
    result = runner.invoke(app, ["sweep", str(path), "--store", store, "--executor", "ray"])
    assert result.exit_code == 2 and "--executor must be local or slurm" in result.output


def test_reproduce_goes_through_the_store_and_a_second_run_only_redraws(tmp_path, monkeypatch):
    first = reproduce("hayou-fig1", scale="smoke", out=tmp_path)
    assert not first.reused
    store = ResultStore(tmp_path / "store")
    assert [e.key for e in store.entries("hayou-fig1")] == [first.store_key]

    import deeplimit.experiments.hayou_fig1 as module

    def refuse(*args, **kwargs):
        raise AssertionError("the second reproduction must not recompute")

    monkeypatch.setattr(module.HayouFig1, "run", refuse)
    (tmp_path / "hayou-fig1" / "hayou-fig1.png").unlink()
    second = reproduce("hayou-fig1", scale="smoke", out=tmp_path)
    assert second.reused and second.store_key == first.store_key
    assert (tmp_path / "hayou-fig1" / "hayou-fig1.png").stat().st_size > 0
    np.testing.assert_array_equal(second.dataset.y_last.values, first.dataset.y_last.values)
    assert [c.as_dict() for c in second.claims] == [c.as_dict() for c in first.claims]
    summary = json.loads((tmp_path / "hayou-fig1" / "hayou-fig1.json").read_text())
    assert summary["provenance"]["store"] == {
        "root": str(tmp_path / "store"),
        "key": first.store_key,
        "reused": True,
    }


def test_reproduce_recomputes_a_corrupted_stored_point(tmp_path):
    first = reproduce("hayou-fig1", scale="smoke", out=tmp_path)
    data = tmp_path / "store" / "hayou-fig1" / first.store_key / "data.nc"
    data.write_bytes(data.read_bytes()[:-10] + b"0123456789")
    second = reproduce("hayou-fig1", scale="smoke", out=tmp_path)
    assert not second.reused
    np.testing.assert_array_equal(second.dataset.y_last.values, first.dataset.y_last.values)


def test_inline_executor_reports_calls_that_raise(tmp_path):
    executor = InlineExecutor()
    executor.submit(int, [("a", ("12",)), ("b", ("x",))])
    done = executor.poll(0) + executor.poll(0)
    assert done[0].value == 12 and done[1].error.startswith("ValueError: invalid literal")


def test_a_suite_computes_missing_figures_in_parallel_then_reuses_them(tmp_path, monkeypatch):
    import deeplimit.reproduce as module
    from deeplimit.experiments import get_experiment
    from deeplimit.reproduce import reproduce_suite

    members = [get_experiment("hayou-fig1"), get_experiment("hayou-fig3")]
    monkeypatch.setattr(module, "suite_members", lambda suite: members)
    with LocalExecutor(2) as executor:
        first = reproduce_suite("hayou", scale="smoke", out=tmp_path, executor=executor)
    # the figures were computed by the workers, so the drawing pass found them stored
    assert [r.reused for r in first.reproductions] == [True, True]
    assert first.report.markdown.exists()
    second = reproduce_suite("hayou", scale="smoke", out=tmp_path)
    assert [r.reused for r in second.reproductions] == [True, True]
    assert [r.store_key for r in second.reproductions] == [r.store_key for r in first.reproductions]
    stored = ResultStore(tmp_path / "store").frame()
    assert sorted(stored.experiment) == ["hayou-fig1", "hayou-fig3"]


def test_reproduce_command_says_where_the_result_came_from(tmp_path):
    runner = CliRunner()
    args = ["reproduce", "hayou-fig1", "--smoke", "--out", str(tmp_path), "-q"]
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    assert "stored in the result store, key" in first.output
    second = runner.invoke(app, [*args, "--store", str(tmp_path / "store")])
    assert second.exit_code == 0 and "reused from the result store, key" in second.output


def test_local_executor_gives_each_worker_its_own_gpu():
    from sweep_experiments import visible_gpu

    with LocalExecutor(2, gpus=["0", "1"]) as executor:
        executor.submit(visible_gpu, [("a", (0.5,)), ("b", (0.5,))])
        done = []
        deadline = time.monotonic() + 120
        while len(done) < 2 and time.monotonic() < deadline:
            done += executor.poll(1.0)
    assert sorted(c.value for c in done) == ["0", "1"]


def test_cuda_sweep_without_a_gpu_is_refused_up_front(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA device is visible here")
    path = tmp_path / "s.toml"
    path.write_text('experiment = "hayou-fig1"\nscale = "smoke"\n')
    result = CliRunner().invoke(
        app, ["sweep", str(path), "--device", "cuda", "--store", str(tmp_path / "s")]
    )
    assert result.exit_code == 2 and "no CUDA device is visible" in result.output


def test_in_process_callers_see_the_experiments_error_after_it_is_recorded(tmp_path):
    from deeplimit.runner import run_point

    point = parse_sweep({"experiment": TOY, "base": {"fail": True}}).points[0]
    with pytest.raises(ValueError, match="toy failure requested"):
        run_point(TOY, point.spec_json, tmp_path, reraise=True)
    entry = ResultStore(tmp_path).entry("toy", point.key)
    assert entry.state == "failed" and "toy failure requested" in entry.error
    assert not (entry.folder / LOCK).exists()


def test_a_sigterm_inside_a_finalizer_ends_the_worker_quietly():
    """SystemExit raised where Python cannot propagate it (a __del__) would be printed as
    "Exception ignored" and the worker would go on; the worker's hook ends it instead."""
    code = (
        "import sys\n"
        "from deeplimit.executors import _exit_if_unraisable\n"
        "sys.unraisablehook = _exit_if_unraisable\n"
        "class Finalized:\n"
        "    def __del__(self):\n"
        "        raise SystemExit(143)\n"
        "Finalized()\n"
        "print('went on')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 143 and "went on" not in done.stdout
    assert "Exception ignored" not in done.stderr
