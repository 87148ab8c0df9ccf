"""Helpers for the tests that start, stop and watch processes, in a module that imports
nothing heavy, so that a worker (or a fork server) that loads it starts in a fraction of a
second.

The calls for local workers take a folder: each writes ``started`` (its pid) when it begins
and, for ``hold``, ``unwound`` from its finally block however it ends (as a point releases its
lock there)."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path


def hold(folder: str) -> str:
    """Wait while ``<folder>/hold`` exists."""
    path = Path(folder)
    try:
        (path / "started").write_text(str(os.getpid()))
        while (path / "hold").exists():
            time.sleep(0.02)
        return "released"
    finally:
        (path / "unwound").write_text(str(os.getpid()))


def stubborn(folder: str) -> None:
    """Ignore SIGTERM and SIGINT and never return: only SIGKILL ends it."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    Path(folder, "started").write_text(str(os.getpid()))
    while True:
        time.sleep(0.05)


def foreground(command: list[str]) -> list[str]:
    """``command`` as a terminal starts a foreground job: SIGINT at its default action (Python
    then raises KeyboardInterrupt on Ctrl-C), also when the test run itself was started with
    SIGINT ignored, as a background job of a non-interactive shell is (``make test &``, a CI
    log): an ignored signal stays ignored across fork and exec, and a Python started with
    SIGINT ignored never raises KeyboardInterrupt."""
    reset = (
        "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); "
        "os.execv(sys.argv[1], sys.argv[1:])"
    )
    return [sys.executable, "-c", reset, *command]


def session_processes(session: int) -> list[str]:
    """The live processes (not zombies) of a session, as ``"pid command"`` (Linux /proc)."""
    found = []
    for folder in Path("/proc").glob("[0-9]*"):
        try:
            stat = (folder / "stat").read_text()
            command = (folder / "cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:  # it ended meanwhile
            continue
        fields = stat.rsplit(")", 1)[1].split()  # after the command name, which may hold spaces
        if fields[0] != "Z" and int(fields[3]) == session:
            found.append(f"{folder.name} {command.decode(errors='replace').strip()}")
    return found


def wait_until_gone(session: int, timeout: float = 30.0) -> list[str]:
    """Wait until no process of ``session`` is left (a fork server with torch loaded takes a
    moment to end), for at most ``timeout`` seconds; return what is left."""
    deadline = time.monotonic() + timeout
    while (left := session_processes(session)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return left


def handles(pid: int, signum: int) -> bool:
    """Whether process ``pid`` has a handler of its own for ``signum`` (Linux /proc: the
    SigCgt mask); False once it has ended."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    for line in status.splitlines():
        if line.startswith("SigCgt:"):
            return bool(int(line.split()[1], 16) >> (signum - 1) & 1)
    return False


def maps(pid: int, library: str) -> bool:
    """Whether process ``pid`` has loaded a shared library whose path holds ``library``."""
    try:
        return library in Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return False


def wait_for(condition, timeout: float = 60.0) -> bool:
    """Poll ``condition()`` until it holds, for at most ``timeout`` seconds; return it."""
    deadline = time.monotonic() + timeout
    while not (held := condition()) and time.monotonic() < deadline:
        time.sleep(0.02)
    return held
