"""Stopping any command of the command line (Ctrl-C, ``kill PID``): exit status 130 or 143,
one line on stderr naming the signal and what is kept, no traceback, no half-written file."""

from __future__ import annotations

import contextlib
import gc
import os
import signal
import subprocess
import sys
import threading
import time
from importlib.metadata import entry_points
from pathlib import Path

import pytest
from typer.testing import CliRunner

from deeplimit.cli import app
from deeplimit.cli import common as cli_common
from deeplimit.cli.common import stop_signals
from process_helpers import foreground, handles, maps, wait_for, wait_until_gone
from sweep_experiments import CLI

OUT_WHOLE = "no partial --out file is left (it is written whole at the end, or not at all)"
SIGNALS = [
    pytest.param(signal.SIGINT, 130, "Ctrl-C (SIGINT)", id="ctrl-c"),
    pytest.param(signal.SIGTERM, 143, "SIGTERM", id="sigterm"),
]


@contextlib.contextmanager
def sigterm_must_be_handled():
    """SIGTERM sent to this test process must be handled by the command: fail otherwise
    (instead of ending the test run), and check the command put the handler back."""

    def not_handled(signum, frame):
        raise AssertionError("the command did not handle SIGTERM")

    previous = signal.signal(signal.SIGTERM, not_handled)
    try:
        yield
        assert signal.getsignal(signal.SIGTERM) is not_handled
    finally:
        signal.signal(signal.SIGTERM, previous)


@pytest.mark.parametrize(("signum", "status", "name"), SIGNALS)
def test_a_sampling_command_stopped_by_a_signal_says_so_in_one_line(tmp_path, signum, status, name):
    """``deeplimit sample`` (half an hour of sampling here) in a process of its own, started
    as a terminal starts a command (SIGINT at its default action: a test run started in the
    background ignores SIGINT, and so would the command) in a session of its own, gets the
    signal once its handlers are in place (and torch is loading or the sampling running)."""
    out = tmp_path / "out"
    out.mkdir()
    command = [*CLI, "sample", "resnet", "--width", "3", "--depth", "1000000", "--samples"]
    command += ["10000", "--x", "1,0.5", "--out", str(out / "paths.nc"), "-q"]
    # output to files, not pipes: the test waits for the command, not for EOF on a pipe
    with open(tmp_path / "stdout", "w") as stdout, open(tmp_path / "stderr", "w") as stderr:
        process = subprocess.Popen(
            foreground(command), stdout=stdout, stderr=stderr, start_new_session=True
        )
    try:
        assert wait_for(lambda: handles(process.pid, signal.SIGTERM)), "no stop handler"
        wait_for(lambda: maps(process.pid, "libtorch") or process.poll() is not None)
        assert process.poll() is None, (tmp_path / "stderr").read_text()
        os.killpg(process.pid, signum)
        process.wait(timeout=120)
        left = wait_until_gone(process.pid)
    finally:
        if process.poll() is None:
            process.kill()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
    errors = (tmp_path / "stderr").read_text()
    assert process.returncode == status, errors
    assert errors == f"stopped by {name}; {OUT_WHOLE}\n"
    assert (tmp_path / "stdout").read_text() == ""
    assert list(out.iterdir()) == []  # neither the result nor a temporary file
    assert left == []


@pytest.mark.parametrize(("signum", "status", "name"), SIGNALS)
def test_a_stop_while_the_command_line_starts_is_one_line(signum, status, name):
    """A signal while the command line imports (before a command's own handlers): one line,
    exit status 130 or 143, no traceback; both entry points install that first."""
    code = (
        "import os, signal, time; from deeplimit import _entry; _entry.install(); "
        f"os.kill(os.getpid(), {int(signum)}); time.sleep(30)"
    )
    command = foreground([sys.executable, "-c", code])
    result = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert result.returncode == status, result.stderr
    assert result.stderr == f"stopped by {name} while starting; nothing was run\n"
    main = (Path(cli_common.__file__).parents[1] / "__main__.py").read_text()
    assert "from ._entry import main" in main
    scripts = {e.name: e.value for e in entry_points(group="console_scripts")}
    assert scripts.get("deeplimit") == "deeplimit._entry:main"


def test_the_command_line_keeps_an_ignored_signal_ignored():
    """Started with SIGINT ignored (a background job), the start-up handler leaves it so."""
    code = (
        "import signal; signal.signal(signal.SIGINT, signal.SIG_IGN); from deeplimit import "
        "_entry; _entry.install(); print(signal.getsignal(signal.SIGINT) is signal.SIG_IGN)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.strip() == "True", result.stderr


@pytest.mark.parametrize("after", [0, 1])
def test_a_stop_while_the_result_file_is_written_leaves_no_file(tmp_path, monkeypatch, after):
    """SIGTERM halfway through writing the result (a first write, or over an older result):
    the temporary file is removed and an older result is left as it was."""
    import xarray as xr

    original = xr.Dataset.to_netcdf
    out = tmp_path / "paths.nc"
    args = ["sample", "resnet", "-n", "2", "-L", "3", "-s", "10", "--x", "1", "-q"]
    args += ["--out", str(out)]
    calls = [0]

    def to_netcdf(self, path, *rest, **options):
        calls[0] += 1
        if calls[0] <= after:
            return original(self, path, *rest, **options)
        with open(path, "wb") as stream:
            stream.write(b"half a file")
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(30)  # the stop arrives here
        raise AssertionError("SIGTERM did not stop the command")

    monkeypatch.setattr(xr.Dataset, "to_netcdf", to_netcdf)
    if after:
        assert CliRunner().invoke(app, args).exit_code == 0
        before = out.read_bytes()
    with sigterm_must_be_handled():
        result = CliRunner().invoke(app, args)
    assert result.exit_code == 143, result.output
    assert result.stderr == f"stopped by SIGTERM; {OUT_WHOLE}\n"
    assert "Traceback" not in result.output
    assert [p.name for p in tmp_path.iterdir()] == ([out.name] if after else [])
    if after:
        assert out.read_bytes() == before


# what each command says after "stopped by SIGTERM"
NOTES = {
    ("sample", "resnet", "-n", "2", "-L", "3", "-o", "x.nc"): f"; {OUT_WHOLE}",
    ("sample", "sde", "-n", "2", "-o", "x.nc"): f"; {OUT_WHOLE}",
    ("law", "gbm"): "",
    ("reproduce", "hayou-fig1"): "; run the same command again to resume: finished figures "
    "and the finished parts of a long study are kept",
    ("train", "-L", "2", "-M", "4", "-D", "4", "-o", "x.nc"): f"; {OUT_WHOLE}",
    ("limit", "-D", "4", "-o", "x.nc"): f"; {OUT_WHOLE}",
    ("sweep", "x.toml"): "; run the same command again to finish the sweep; nothing done is lost",
    ("results",): "; no partial --export file is left (it is written whole, or not at all)",
    ("plot", "hayou-fig1"): "; no partial figure file is left (each is written whole, or not "
    "at all)",
}


@pytest.mark.parametrize(("args", "note"), NOTES.items(), ids=[" ".join(a[:2]) for a in NOTES])
def test_every_command_stopped_as_it_starts_exits_143_with_one_line(
    tmp_path, monkeypatch, args, note
):
    """Each command sets what a stop keeps as it starts (the command line prints it): the
    stop arrives right then."""
    real = cli_common.active_stop

    class StopWhenNoted:
        def __setattr__(self, name, value):
            setattr(real(), name, value)
            if name == "note":
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(30)
                raise AssertionError("SIGTERM did not stop the command")

    monkeypatch.setattr(cli_common, "active_stop", StopWhenNoted)
    monkeypatch.chdir(tmp_path)
    with sigterm_must_be_handled():
        result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 143, result.output
    assert result.stderr == f"stopped by SIGTERM{note}\n"
    assert result.stdout == ""
    assert list(tmp_path.iterdir()) == []


def test_a_stop_that_lands_in_a_finalizer_is_raised_again():
    """Python only reports ("Exception ignored") an exception raised in a finalizer: the stop
    is raised again in the main thread at once, not lost, and not reported."""
    reported = []
    hook = __import__("sys").unraisablehook

    class Slow:
        def __del__(self):
            time.sleep(5)  # SIGTERM lands here

    previous = signal.signal(signal.SIGTERM, signal.SIG_DFL)
    __import__("sys").unraisablehook = reported.append
    try:
        with stop_signals() as stop:
            timer = threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGTERM))
            with pytest.raises(KeyboardInterrupt, match="stopped by SIGTERM"):
                timer.start()
                slow = Slow()
                del slow
                gc.collect()
                time.sleep(10)
            timer.join()
        assert stop.exit_code == 143 and reported == []
    finally:
        __import__("sys").unraisablehook = hook
        signal.signal(signal.SIGTERM, previous)


def test_stop_signals_nested_hand_on_the_outer_request():
    before = signal.getsignal(signal.SIGTERM)
    with stop_signals() as outer:
        handler = signal.getsignal(signal.SIGTERM)
        assert handler is not before
        with stop_signals() as inner:
            assert inner is outer and signal.getsignal(signal.SIGTERM) is handler
        assert signal.getsignal(signal.SIGTERM) is handler
    assert signal.getsignal(signal.SIGTERM) is before and cli_common.active_stop() is None


def test_an_atomic_write_stopped_halfway_leaves_the_old_file(tmp_path):
    from deeplimit.results import atomic_write

    path = tmp_path / "table.csv"
    path.write_text("old\n")

    def write(temporary):
        temporary.write_text("new, half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write(path, write, ".csv")
    assert [p.name for p in tmp_path.iterdir()] == ["table.csv"]
    assert path.read_text() == "old\n"


def test_a_stop_during_an_import_is_raised_once_the_import_is_done(tmp_path, monkeypatch):
    """An exception raised inside an import can leave a module half-initialized (a later
    import fails with an unrelated error) or end the process in a C++ extension's
    initialization: the stop waits for the import to finish."""
    import importlib
    import sys

    (tmp_path / "slow_module_for_stop.py").write_text(
        "import os, signal, time\n"
        "os.kill(os.getpid(), signal.SIGTERM)\n"
        "time.sleep(0.5)\n"
        "finished = True\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "slow_module_for_stop", raising=False)
    imported = []
    with sigterm_must_be_handled(), stop_signals() as stop:
        with pytest.raises(KeyboardInterrupt, match="stopped by SIGTERM"):
            module = importlib.import_module("slow_module_for_stop")
            imported.append(module.finished)
            time.sleep(10)
        assert imported == [True] and stop.exit_code == 143 and not stop.pending


@pytest.mark.parametrize("error", [ValueError, RuntimeError])
def test_an_error_that_follows_a_swallowed_stop_is_reported_as_the_stop(monkeypatch, error):
    """Code that swallows the stop (``except BaseException``) and then fails: the command
    still ends as stopped, not with that error or a traceback."""
    from deeplimit.cli import law

    def rows_table(*args, **kwargs):
        with contextlib.suppress(BaseException):
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(10)
        raise error("broken on the way out")

    monkeypatch.setattr(law, "rows_table", rows_table)
    with sigterm_must_be_handled():
        result = CliRunner().invoke(app, ["law", "gbm", "--a", "1", "--y0", "1"])
    assert result.exit_code == 143, result.output
    assert result.stderr == "stopped by SIGTERM\n"


def test_a_stop_inside_an_import_that_hangs_is_raised_after_a_while(tmp_path, monkeypatch):
    import importlib
    import sys

    (tmp_path / "hanging_module_for_stop.py").write_text(
        "import os, signal, time\nos.kill(os.getpid(), signal.SIGTERM)\ntime.sleep(30)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(cli_common, "_IMPORT_WAIT_S", 0.3)
    stopped = pytest.raises(KeyboardInterrupt, match="stopped by SIGTERM")
    with sigterm_must_be_handled(), stop_signals(), stopped:
        importlib.import_module("hanging_module_for_stop")
    assert "hanging_module_for_stop" not in sys.modules
