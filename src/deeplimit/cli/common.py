"""Shared pieces of the command line: parsing vectors, progress bars, printing results, and
the one-line error contract (bad input: ``error: ...`` on stderr, exit status 2)."""

from __future__ import annotations

import contextlib
import errno
import functools
import inspect
import json
import os
import re
import secrets
import signal
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table
from typer._click.exceptions import ClickException, NoArgsIsHelpError
from typer.core import TyperGroup

from .._entry import signal_name
from ..errors import StoreFullError, check_choice
from ..formatting import compact_float

console = Console()
error_console = Console(stderr=True)


def print_error(message: str) -> None:
    """``error: message`` as one line on stderr."""
    error_console.print(f"error: {message}", markup=False, highlight=False, soft_wrap=True)


def print_stop(message: str) -> None:
    """``message`` (``stopped by ...``) as one line on stderr."""
    error_console.print(message, markup=False, highlight=False, soft_wrap=True)


class QuickHelpGroup(TyperGroup):
    """A command group whose ``--help`` flag defaults to False instead of None: typer coerces
    a None through a pydantic adapter, and importing pydantic for that is a third of the time
    of ``deeplimit CMD --help`` (``cmd --help`` processes its group's absent help flag)."""

    def get_help_option(self, ctx: Any) -> Any:
        option = super().get_help_option(ctx)
        if option is not None and option.default is None:
            option.default = False
        return option


class OneLineErrors(QuickHelpGroup):
    """The root command group: usage errors (an unknown option, ``--width abc``, a missing
    ``--out``) print one line ``error: ...`` and exit 2, like the library's bad-input errors,
    instead of click's usage box.

    Every command runs under :func:`stop_signals`: Ctrl-C (SIGINT) or SIGTERM stops it with
    one line on stderr, ``stopped by SIGTERM; ...`` (what the command keeps, given to
    :func:`guarded` as ``stopped``), and exit status 130 or 143, without a traceback."""

    def main(self, args: Any = None, prog_name: Any = None, complete_var: Any = None,
             standalone_mode: bool = True, **extra: Any) -> Any:  # fmt: skip
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode, **extra)
        with stop_signals() as stop:
            try:
                result = super().main(args, prog_name, complete_var, False, **extra)
            except NoArgsIsHelpError as error:  # the help is already printed
                sys.exit(error.exit_code)
            except ClickException as error:
                command = getattr(getattr(error, "ctx", None), "command_path", None)
                hint = f" (see `{command} --help`)" if command else ""
                print_error(" ".join(error.format_message().split()) + hint)
                sys.exit(error.exit_code)
            except (typer.Abort, KeyboardInterrupt):  # click turns Ctrl-C into Abort or Exit
                if stop.signum is None:  # an Abort of the command's own (a prompt declined)
                    print_error("aborted")
                    sys.exit(1)
            except Exception:
                if stop.signum is None:
                    raise
                # an error on the way out of a stop (a module half imported): the stop
            if stop.signum is not None:
                if not stop.reported:
                    print_stop(stop.message)
                sys.exit(stop.exit_code)
        sys.exit(result if isinstance(result, int) else 0)


def parse_vector(name: str, text: str) -> list[float]:
    """``"1,0.5,-2"`` -> ``[1.0, 0.5, -2.0]``; a clear ValueError otherwise (an empty entry
    such as ``1,,2`` is an error, not a number dropped)."""
    parts = [part.strip() for part in text.split(",")]
    if not text.strip():
        raise ValueError(f"{name} must hold at least one number, got {text!r}")
    try:
        if "" in parts:
            raise ValueError
        values = [float(part) for part in parts]
    except ValueError:
        raise ValueError(
            f"{name} must be comma-separated numbers such as 1,0.5,-2, got {text!r}"
        ) from None
    return values


def parse_vectors(name: str, texts: list[str] | None) -> Any:
    """Repeated ``--x 1,2 --x 3,4`` options: one vector -> 1-D, several -> 2-D (k inputs)."""
    if not texts:
        return None
    vectors = [parse_vector(name, text) for text in texts]
    if len({len(v) for v in vectors}) > 1:
        raise ValueError(
            f"every {name} must have the same length, got lengths {[len(v) for v in vectors]}"
        )
    import numpy as np

    return np.asarray(vectors[0] if len(vectors) == 1 else vectors)


def parse_record(text: str) -> Any:
    """``last`` / ``all`` / ``7`` / ``0,10,20`` (layers) or ``0.5,1`` (times)."""
    text = text.strip()
    if text in ("last", "all"):
        return text
    parts = [p.strip() for p in text.split(",")]
    try:
        if "" in parts:
            raise ValueError
        values = [int(p) if p.lstrip("-").isdigit() else float(p) for p in parts]
    except ValueError:
        raise ValueError(
            f"record must be 'last', 'all' or comma-separated layers/times, got {text!r}"
        ) from None
    if len(values) == 1 and "," not in text:
        return values[0]
    return values


def parse_overrides(items: list[str] | None, flag: str = "--set") -> dict[str, Any]:
    """``--set samples=5000 --set depths=[5,50]``: values parsed as JSON when they can be."""
    overrides: dict[str, Any] = {}
    for item in items or []:
        key, eq, value = item.partition("=")
        if not eq or not key.strip():
            raise ValueError(f"{flag} takes key=value (e.g. samples=5000), got {item!r}")
        try:
            overrides[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            overrides[key.strip()] = value
    return overrides


def parse_dtype(text: str) -> str:
    """``--dtype``: the same check and message in every command."""
    return check_choice("--dtype", text, ("float64", "float32"))


def _nearest_existing(path: Path) -> Path:
    path = Path(os.path.abspath(path))
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _check_writable(flag: str, path: Path, folder: Path) -> None:
    """``folder`` (to be created if missing) can receive files, else a ValueError naming
    ``flag`` and the user's path."""
    existing = _nearest_existing(folder)
    if not existing.is_dir():
        raise ValueError(f"{flag} {str(path)!r} cannot be created: {str(existing)!r} is a file")
    # a name of our own, removed in ``finally``: a stop (Ctrl-C) while probing leaves no file
    probe = existing / f".deeplimit-probe-{os.getpid()}-{secrets.token_hex(6)}"
    try:
        os.close(os.open(probe, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    except OSError as error:
        reason = error.strerror or str(error)
        raise ValueError(
            f"{flag} {str(path)!r} cannot be written: {reason} in {str(existing)!r}"
        ) from None
    finally:
        with contextlib.suppress(OSError):
            os.unlink(probe)


def check_output_file(flag: str, path: Path, suffix: str = ".nc") -> Path:
    """A result file to write: ends in ``suffix`` and can be created (checked before the run,
    so that a long computation is not lost at the end)."""
    if path.is_dir():
        raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(path))
    if path.suffix.lower() != suffix:
        raise ValueError(
            f"{flag} must name a {suffix} file (the result is netCDF), got {str(path)!r}"
        )
    _check_writable(flag, path, path.parent)
    return path


def check_output_folder(flag: str, path: Path) -> Path:
    """A folder to write into (created if missing)."""
    if path.exists() and not path.is_dir():
        raise ValueError(f"{flag} must be a folder, got the file {str(path)!r}")
    _check_writable(flag, path, path)
    return path


def check_store_folder(flag: str, path: Path, *, must_exist: bool) -> Path:
    """A result store folder: never a file; when reading, it must exist."""
    if path.exists() and not path.is_dir():
        raise ValueError(f"{flag} must be a result store folder, got the file {str(path)!r}")
    if must_exist and not path.exists():
        raise ValueError(
            f"{flag} {str(path)!r} does not exist (run a sweep or a reproduction first, or "
            "give the store's folder)"
        )
    return path


def plain_line(text: str) -> None:
    """One line on stdout, flushed at once (a SLURM or CI log shows it when it happens)."""
    print(text, flush=True)


def plain_progress(
    description: str, every: int = 10, seconds: float = 60.0
) -> Callable[[int, int], None]:
    """A ``callback(done, total)`` printing ``description: 40% (12.3 s)`` each time another
    ``every`` percent is done, and ``description: 3.4% (61.0 s, about 29 min left)`` when
    ``seconds`` passed since the last line with some work done: progress for logs, where a
    live bar cannot be drawn (an hour-long study still says something every minute)."""
    start = time.perf_counter()
    shown = [0]
    last = [start, 0]  # time and work of the last line

    def callback(done: int, total: int) -> None:
        if total <= 0:
            return
        now = time.perf_counter()
        done = min(done, total)
        percent = int(100 * done / total) // every * every
        if percent > shown[0]:
            shown[0] = percent
            last[:] = [now, done]
            plain_line(f"{description}: {percent}% ({now - start:.1f} s)")
        elif now - last[0] >= seconds and done > last[1]:
            last[:] = [now, done]
            left = (now - start) * (total - done) / done
            plain_line(
                f"{description}: {100 * done / total:.1f}% ({now - start:.1f} s, about "
                f"{_duration(left)} left)"
            )

    return callback


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def interactive() -> bool:
    """Whether live progress bars can be drawn (stderr is a terminal)."""
    return bool(error_console.is_terminal)


@contextlib.contextmanager
def progress_bar(description: str, enabled: bool = True, plain: bool = False) -> Iterator[Any]:
    """A rich progress bar on a terminal; yields a ``callback(done, total)``, or None when
    disabled or when stderr is not a terminal (a live bar there only leaves blank lines): then
    ``plain`` asks for a flushed line on stdout every 10 % instead (:func:`plain_progress`)."""
    if not enabled or not interactive():
        yield plain_progress(description) if enabled and plain else None
        return
    with live_bar("{task.percentage:>5.1f}%") as bar:
        task = bar.add_task(description, total=None)

        def callback(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield callback


def live_bar(*texts: str) -> Any:
    """A transient rich ``Progress`` on stderr: the task's description in bold, a bar, the
    text columns ``texts`` (``{task...}`` templates), elapsed time and ETA. rich.progress is
    imported here, when a bar is drawn, not for ``--help``."""
    from rich.progress import (
        BarColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        *(TextColumn(text) for text in texts),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
    )
    return Progress(*columns, console=error_console, transient=True)


class StopRequest:
    """What :func:`stop_signals` saw: ``signum`` of the first stop signal (None: none yet).

    ``note`` says what a stop keeps, after the signal's name in :attr:`message` (set by the
    running command, :func:`guarded`); ``reported`` is True once the command printed its own
    account of the stop (``deeplimit sweep``: the interrupted points)."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self.note: str | None = None
        self.reported = False
        self.pending = False  # seen, not raised yet (an import, a finalizer): raised soon
        self.since = 0.0  # time.monotonic() of the first stop signal

    @property
    def name(self) -> str:
        return signal_name(signal.SIGINT if self.signum is None else self.signum)

    @property
    def exit_code(self) -> int:
        """128 + the signal's number, as a shell reports a command a signal ended: 130 after
        Ctrl-C, 143 after SIGTERM."""
        return 128 + (self.signum if self.signum is not None else signal.SIGINT)

    @property
    def message(self) -> str:
        """``stopped by SIGTERM`` and the note: the one line a stopped command prints."""
        return f"stopped by {self.name}" + (f"; {self.note}" if self.note else "")


_active: list[StopRequest] = []  # the stop_signals in force (the outermost one's request)

_RETRY_S = 0.05  # a stop that could not be raised yet is tried again this often
_IMPORT_WAIT_S = 30.0  # at most this long for an import to finish (one that hangs is stopped)


def active_stop() -> StopRequest | None:
    """The request of the :func:`stop_signals` in force, if any (the command line's)."""
    return _active[-1] if _active else None


def _importing(frame: Any) -> bool:
    """Whether ``frame`` runs inside an import: an exception raised there can leave a module
    half-initialized (a later import then fails with an unrelated error), end the process
    inside a C++ extension's initialization (torch: ``terminate called``), or make Python end
    itself with SIGINT whatever the exit status (one raised in code that an extension runs
    with ``PyRun_String``)."""
    while frame is not None:
        if frame.f_code.co_filename.startswith("<frozen importlib"):
            return True
        frame = frame.f_back
    return False


@contextlib.contextmanager
def stop_signals() -> Iterator[StopRequest]:
    """Ctrl-C (SIGINT) and SIGTERM (``kill PID``, a batch system, a CI timeout) both stop a
    command the same way: the first raises ``KeyboardInterrupt("stopped by ...")`` in the
    main thread, so that the command unwinds (finally blocks run, a result file being written
    is removed, a runner cancels its workers: each has a grace period to release its point,
    then is killed) and the command exits with :attr:`StopRequest.exit_code`; later ones are
    ignored while it stops. One that arrives during an import is raised once the import is
    done (or after ``_IMPORT_WAIT_S`` seconds, inside an import that hangs), and one that
    lands in a finalizer (where Python only prints "Exception ignored") is raised again at
    once. A signal that the command was started with ignored stays ignored, as in every
    program: a background job of a non-interactive shell (``cmd &`` in a script) ignores
    Ctrl-C, and ``kill PID`` (SIGTERM) stops it instead.

    Nested in another (a command under the command line's), it hands on the same request and
    leaves the handlers as they are."""
    if _active:
        yield _active[-1]
        return
    request = StopRequest()
    if threading.current_thread() is not threading.main_thread():
        yield request
        return

    def retry() -> None:
        """Send the stop signal again until it is raised (or the command is over)."""

        def again() -> None:
            while request.pending:
                time.sleep(_RETRY_S)
                with lock:  # not once the handlers are put back
                    if request.pending and request.signum is not None:
                        os.kill(os.getpid(), request.signum)

        threading.Thread(target=again, name="deeplimit-stop", daemon=True).start()

    def stop(signum: int, frame: Any) -> None:
        if request.signum is not None and not request.pending:
            return  # raised already: the command is stopping
        waiting = request.pending
        if request.signum is None:
            request.signum, request.since = signum, time.monotonic()
        if _importing(frame) and time.monotonic() - request.since < _IMPORT_WAIT_S:
            request.pending = True
            if not waiting:
                retry()
            return
        request.pending = False
        raise KeyboardInterrupt(f"stopped by {request.name}")

    def unraisable(info: Any) -> None:
        ours = isinstance(info.exc_value, KeyboardInterrupt) and request.signum is not None
        if ours and str(info.exc_value) == f"stopped by {request.name}":
            # raise it again from the main thread, once this hook has returned: an exception
            # raised in the hook is only reported too
            request.pending = True
            retry()
            return
        hook(info)

    previous = {}
    for signum in (signal.SIGINT, signal.SIGTERM):
        handler = signal.getsignal(signum)
        if handler is not signal.SIG_IGN:
            previous[signum] = signal.SIG_DFL if handler is None else handler
            signal.signal(signum, stop)
    lock = threading.Lock()
    hook = sys.unraisablehook
    sys.unraisablehook = unraisable
    _active.append(request)
    try:
        yield request
    finally:
        with lock:
            request.pending = False
        _active.pop()
        sys.unraisablehook = hook
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def rows_table(title: str, rows: list[dict[str, Any]], columns: list[str] | None = None) -> Table:
    columns = columns or list(rows[0]) if rows else []
    table = Table(title=title, title_justify="left")
    for column in columns:
        table.add_column(column, justify="right")
    for row in rows:
        table.add_row(*(format_number(row.get(column)) for column in columns))
    return table


def format_number(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return compact_float(value, ".4f")
    return str(value)


def _one_line(error: Exception) -> str:
    """pydantic's ValidationError spans several lines: fold it into one."""
    errors = getattr(error, "errors", None)
    if callable(errors):
        try:
            parts = [
                f"{'.'.join(str(p) for p in e.get('loc', ())) or 'value'}: "
                f"{str(e.get('msg', '')).removeprefix('Value error, ')}"
                for e in errors()
            ]
            return "; ".join(parts)
        except Exception:  # pragma: no cover - fall back to the plain message
            pass
    return " ".join(str(error).split())


# what a stop leaves behind (``guarded(..., stopped=...)``)
OUT_KEPT_WHOLE = "no partial --out file is left (it is written whole at the end, or not at all)"


def _flags(command: Callable[..., Any]) -> dict[str, str]:
    """``{python name: --flag}`` for the options of a typer command."""
    flags = {}
    for name, parameter in inspect.signature(command).parameters.items():
        declared = getattr(parameter.default, "param_decls", None) or ()
        long = [d for d in declared if isinstance(d, str) and d.startswith("--")]
        if long:
            flags[name] = long[0].split("/")[0]
    return flags


def _show_warning(message: Any, category: Any, *args: Any, **kwargs: Any) -> None:
    error_console.print(
        f"warning: {' '.join(str(message).split())}", markup=False, highlight=False, soft_wrap=True
    )


def guarded(
    command: Callable[..., Any],
    aliases: dict[str, str] | None = None,
    stopped: str | None = None,
) -> Callable[..., Any]:
    """Turn library errors into one line on stderr: bad input exits 2, a numerical
    failure (overflow, underflow, a diverged study: any ``FloatingPointError``) exits 3, a
    full result store exits 1 (run again once space is freed);
    warnings (a run that will take hours) print as one line ``warning: ...``.

    ``stopped`` says what a stop (Ctrl-C, SIGTERM) leaves behind, after ``stopped by ...``
    in the line the command line prints then (:class:`OneLineErrors`): a command that writes
    its files atomically says so, one that resumes says how; None says nothing more.

    A message that starts with a library argument names its flag instead (``depth`` ->
    ``--depth``, ``embedding_seed`` -> ``--embedding-seed``), or beside it for ``aliases``
    such as ``{"hidden_width": "--width"}`` (-> ``--width (hidden_width)``)."""
    names = dict(_flags(command))
    names |= {name: f"{flag} ({name})" for name, flag in (aliases or {}).items()}

    def flagged(message: str) -> str:
        match = re.match(r"(\w+)(?=[ =:])", message)
        if match and match.group(1) in names:
            return names[match.group(1)] + message[match.end() :]
        return message

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        stop = active_stop()
        if stop is not None:
            stop.note = stopped
        try:
            with warnings.catch_warnings():
                warnings.showwarning = _show_warning
                return command(*args, **kwargs)
        except Exception as error:
            if stop is not None and stop.signum is not None:  # broken by the stop: say so
                raise KeyboardInterrupt(stop.message) from None
            failure = _failure(error, flagged)
            if failure is None:
                raise
            print_error(failure[1])
            raise typer.Exit(code=failure[0]) from None

    return wrapper


def _failure(error: Exception, flagged: Callable[[str], str]) -> tuple[int, str] | None:
    """The exit status and the line of a library error; None for any other error."""
    if isinstance(error, FloatingPointError):  # NumericalError, a diverged study or training
        return 3, _one_line(error)
    if isinstance(error, StoreFullError):
        return 1, _one_line(error)
    if isinstance(error, ValueError):
        return 2, flagged(_one_line(error))
    if isinstance(error, OSError):  # a path that cannot be read or written: the user's input
        return 2, _os_error(error)
    return None


def _os_error(error: OSError) -> str:
    """``cannot use 'PATH': Is a directory`` (the user's path, not a temporary one)."""
    path = error.filename2 if error.filename2 is not None else error.filename
    if path is None or error.strerror is None:
        return _one_line(error)
    return f"cannot use {str(path)!r}: {error.strerror}"
