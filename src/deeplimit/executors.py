"""Executors: where the points of a sweep run, behind one small interface.

An executor takes calls ``fn(*args)`` tagged with a string (the runner passes
:func:`deeplimit.runner.run_point` and ``(experiment, spec_json, store_path)``) and hands back
:class:`Completion` s as they finish::

    executor.submit(fn, [(tag, args), ...])   # any number of times
    executor.poll(timeout_s) -> [Completion]  # what finished meanwhile (maybe nothing)
    executor.running() -> int | None          # calls running now, when the engine knows
    executor.drop_queued() -> list[str]       # forget calls not started yet (their tags)
    executor.close(cancel=False)

A completion carries the call's return value, or ``error`` when the call did not finish (it
raised, its worker was killed, its SLURM task was cancelled or lost its node). Executors know
nothing about experiments or stores, so another engine (Ray: ``ray.remote(fn).remote(*args)``
and ``ray.wait`` in ``poll``) slots in as one more subclass.

- :class:`InlineExecutor`: in this process, one call at a time (``--workers 0``).
- :class:`LocalExecutor`: worker processes on this machine, one call per worker at a time, so
  a killed worker loses only its own call and is replaced; with several GPUs, one worker per GPU
  (``CUDA_VISIBLE_DEVICES``).
- :class:`SlurmExecutor`: SLURM job arrays through submitit, at most ``array_parallelism`` tasks
  running at once, resources from :class:`SlurmResources`, one log folder per array job, and
  requeue on preemption or timeout.
"""

from __future__ import annotations

import contextlib
import math
import multiprocessing
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from multiprocessing.connection import wait
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = [
    "Completion",
    "Executor",
    "InlineExecutor",
    "LocalExecutor",
    "SlurmExecutor",
    "SlurmResources",
]

Call = tuple[str, tuple[Any, ...]]


@dataclass(frozen=True)
class Completion:
    """A finished call: its ``value``, or ``error`` (one line) when it did not complete."""

    tag: str
    value: Any = None
    error: str | None = None


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else text.strip()


class Executor:
    """The interface every engine implements (see the module docstring)."""

    name: ClassVar[str] = ""

    def submit(self, fn: Callable[..., Any], calls: Sequence[Call]) -> None:
        raise NotImplementedError

    def poll(self, timeout: float) -> list[Completion]:
        raise NotImplementedError

    def running(self) -> int | None:
        return None

    def drop_queued(self) -> list[str]:
        """Forget the calls that have not started (they will never complete) and return
        their tags; the running ones go on. Engines that cannot tell return ``[]``."""
        return []

    def close(self, *, cancel: bool = False) -> None:
        """Release workers; ``cancel`` also stops calls still queued or running."""

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close(cancel=exc[0] is not None)


class _QueuedExecutor(Executor):
    """An engine that keeps the calls not yet started in ``self._queue``."""

    _queue: deque[tuple[str, Callable[..., Any], tuple[Any, ...]]]

    def drop_queued(self) -> list[str]:
        dropped = [tag for tag, _, _ in self._queue]
        self._queue.clear()
        return dropped


class InlineExecutor(_QueuedExecutor):
    """Runs each call in this process when polled: no parallelism, no start-up cost."""

    name = "inline"

    def __init__(self) -> None:
        self._queue: deque[tuple[str, Callable[..., Any], tuple[Any, ...]]] = deque()
        self._busy = False

    def submit(self, fn: Callable[..., Any], calls: Sequence[Call]) -> None:
        self._queue.extend((tag, fn, tuple(args)) for tag, args in calls)

    def poll(self, timeout: float) -> list[Completion]:
        if not self._queue:
            return []
        tag, fn, args = self._queue.popleft()
        self._busy = True
        try:
            return [Completion(tag, value=fn(*args))]
        except Exception:
            return [Completion(tag, error=_last_line(traceback.format_exc()))]
        finally:
            self._busy = False

    def running(self) -> int | None:
        return int(self._busy)

    def close(self, *, cancel: bool = False) -> None:
        self._queue.clear()


# ----------------------------------------------------------------------------- local


# seconds a local worker has to end after it is told to stop (SIGTERM, Ctrl-C, or its runner
# gone): enough to unwind the call and release the point's lock; then it is ended outright
STOP_GRACE_S = 5.0

_stopping: list[int] = []  # the stop signal this worker received, once it received one
_grace_s = [STOP_GRACE_S]  # this worker's (set by _worker_main)


def _exit_after(code: int, seconds: float) -> None:
    """End this process with ``code`` in ``seconds`` unless it has ended by then (a daemon
    thread, so a process that ends first is not held up by it)."""

    def end() -> None:
        time.sleep(seconds)
        os._exit(code)

    threading.Thread(target=end, name="deeplimit-stop", daemon=True).start()


def _raise_exit(signum: int, _frame: Any) -> None:
    """A worker's SIGTERM and SIGINT: the first unwinds the stack (finally blocks release the
    point's lock) and ends the worker; later ones are ignored, so that the unwinding is not
    cut short (Ctrl-C reaches the worker, then the runner's SIGTERM follows). A worker still
    there ``STOP_GRACE_S`` after the first ends at once."""
    if _stopping:
        return
    _stopping.append(signum)
    _exit_after(128 + signum, _grace_s[0])
    raise SystemExit(128 + signum)


def _exit_if_unraisable(unraisable: Any) -> None:
    """A SIGTERM that lands in a finalizer cannot unwind the stack (Python prints "Exception
    ignored" and goes on): end the worker there, quietly. Its lock is then stale and is taken
    over at once (its process is gone)."""
    if isinstance(unraisable.exc_value, SystemExit):
        code = unraisable.exc_value.code
        os._exit(code if isinstance(code, int) else 1)
    sys.__unraisablehook__(unraisable)


def _watch_runner(conn: Any, finished: threading.Event) -> None:
    """While a call runs, the runner sends the worker nothing: its end of the connection
    becoming readable means it closed it or died (SIGKILL, a crash). Stop the call then as
    SIGTERM does, so that no worker outlives its runner (nor the fork server, which lives as
    long as any worker does)."""
    while not finished.is_set():
        try:
            gone = conn.poll(0.5)
        except (OSError, ValueError):
            gone = True
        if gone and not finished.is_set():
            signal.pthread_kill(threading.main_thread().ident, signal.SIGTERM)
            return


def _call(conn: Any, fn: Callable[..., Any], args: tuple[Any, ...]) -> tuple[str, Any]:
    finished = threading.Event()
    threading.Thread(
        target=_watch_runner, args=(conn, finished), name="deeplimit-watch", daemon=True
    ).start()
    try:
        return ("ok", fn(*args))
    except Exception:
        return ("error", traceback.format_exc())
    finally:
        finished.set()


def _worker_main(conn: Any, env: dict[str, str], grace_s: float = STOP_GRACE_S) -> None:
    """A local worker: receive ``(fn, args)``, send back ``("ok", value)`` or
    ``("error", traceback)``, until told to stop (None), stopped by a signal (SIGTERM, or
    SIGINT unless the runner was started with it ignored), or its runner goes away."""
    # the environment of the runner now, not of the fork server when it started
    os.environ.clear()
    os.environ.update(env)
    if "OMP_NUM_THREADS" in env and "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(int(env["OMP_NUM_THREADS"]))
    _grace_s[0] = grace_s
    # a stop signal unwinds the stack (finally blocks release the point's lock) instead of
    # killing the worker; SIGINT only when the runner reacts to it too (the fork server hands
    # its workers the runner's SIGINT: ignored in a background job of a non-interactive shell)
    signal.signal(signal.SIGTERM, _raise_exit)
    if signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:
        signal.signal(signal.SIGINT, _raise_exit)
    sys.unraisablehook = _exit_if_unraisable
    while True:
        try:
            item = conn.recv()
        except (EOFError, OSError):
            return
        if item is None:
            return
        message = _call(conn, *item)
        try:
            conn.send(message)
        except (OSError, ValueError):
            return


@dataclass
class _Worker:
    slot: int
    process: Any
    conn: Any
    tag: str | None = None


def _describe_exit(code: int | None) -> str:
    if code is None:
        return "did not report back"
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with status {code}"


class LocalExecutor(_QueuedExecutor):
    """``workers`` processes on this machine.

    ``gpus``: device indices (e.g. ``["0", "1"]``); worker ``i`` sees only ``gpus[i % n]``.
    ``threads``: torch threads per worker (default: the cores shared out among the workers).
    ``stop_grace_s``: seconds a worker told to stop (``close(cancel=True)``: SIGTERM) has to
    unwind its call and release its point's lock before it is killed (SIGKILL); a worker ends
    its call the same way by itself when its runner dies. Workers start from a fork server
    that has imported ``fn``'s module once, so starting and replacing them is cheap; the fork
    server ends once the runner and its workers have."""

    name = "local"

    def __init__(
        self,
        workers: int = 1,
        *,
        gpus: Sequence[str] | None = None,
        threads: int | None = None,
        start_method: str = "forkserver",
        stop_grace_s: float = STOP_GRACE_S,
    ) -> None:
        if not isinstance(workers, int) or workers < 1:
            raise ValueError(f"workers must be an integer >= 1, got {workers!r}")
        if not isinstance(stop_grace_s, int | float) or not 0 < stop_grace_s < math.inf:
            raise ValueError(f"stop_grace_s must be a number of seconds > 0, got {stop_grace_s!r}")
        self.workers = workers
        self.gpus = [str(g) for g in gpus or []]
        cores = os.cpu_count() or 1
        self.threads = threads if threads is not None else max(1, cores // workers)
        self.stop_grace_s = float(stop_grace_s)
        self._context = multiprocessing.get_context(start_method)
        self._start_method = start_method
        self._pool: list[_Worker] = []
        self._queue: deque[tuple[str, Callable[..., Any], tuple[Any, ...]]] = deque()
        self._preloaded = False

    def submit(self, fn: Callable[..., Any], calls: Sequence[Call]) -> None:
        if not self._preloaded and self._start_method == "forkserver":
            # must happen before the first worker starts the fork server
            self._context.set_forkserver_preload([fn.__module__])
            self._preloaded = True
        self._queue.extend((tag, fn, tuple(args)) for tag, args in calls)

    def _env(self, slot: int) -> dict[str, str]:
        env = dict(os.environ)
        if self.gpus:
            env["CUDA_VISIBLE_DEVICES"] = self.gpus[slot % len(self.gpus)]
        if "OMP_NUM_THREADS" not in os.environ:
            env["OMP_NUM_THREADS"] = str(self.threads)
        return env

    def _start(self, slot: int) -> _Worker:
        parent, child = self._context.Pipe()
        process = self._context.Process(
            target=_worker_main,
            args=(child, self._env(slot), self.stop_grace_s),
            daemon=True,
            name=f"worker-{slot}",
        )
        process.start()
        child.close()
        worker = _Worker(slot, process, parent)
        self._pool.append(worker)
        return worker

    def _dispatch(self) -> list[Completion]:
        lost = []
        while self._queue:
            idle = next((w for w in self._pool if w.tag is None), None)
            if idle is None:
                if len(self._pool) >= self.workers:
                    break
                used = {w.slot for w in self._pool}
                idle = self._start(min(set(range(self.workers)) - used))
            tag, fn, args = self._queue.popleft()
            try:
                idle.conn.send((fn, args))
                idle.tag = tag
            except (OSError, ValueError):
                self._remove(idle)
                self._queue.appendleft((tag, fn, args))
            except Exception as error:  # the call cannot be pickled
                lost.append(Completion(tag, error=f"cannot send the call to a worker: {error}"))
        return lost

    def _remove(self, worker: _Worker) -> None:
        """Forget a worker that has ended or closed its connection; one that is somehow still
        there after the grace period is killed, so that none outlives the executor."""
        self._pool.remove(worker)
        worker.conn.close()
        _end([worker.process], time.monotonic() + self.stop_grace_s)

    def poll(self, timeout: float) -> list[Completion]:
        done = self._dispatch()
        busy = [w for w in self._pool if w.tag is not None]
        if not busy:
            return done
        ready = set(wait([w.conn for w in busy] + [w.process.sentinel for w in busy], timeout))
        for worker in busy:
            if worker.conn not in ready and worker.process.sentinel not in ready:
                continue
            tag, message = worker.tag, None
            try:
                if worker.conn.poll():
                    message = worker.conn.recv()
            except (EOFError, OSError):
                message = None
            worker.tag = None
            if message is None:
                self._remove(worker)
                reason = _describe_exit(worker.process.exitcode)
                done.append(Completion(tag, error=f"worker process {worker.process.pid} {reason}"))
            elif message[0] == "ok":
                done.append(Completion(tag, value=message[1]))
            else:
                done.append(Completion(tag, error=_last_line(message[1])))
        done += self._dispatch()
        return done

    def running(self) -> int | None:
        return sum(w.tag is not None for w in self._pool)

    def close(self, *, cancel: bool = False) -> None:
        """Stop the idle workers; with ``cancel``, SIGTERM the busy ones. Every worker has
        ``stop_grace_s`` (10 s for a busy one without ``cancel``) to end, then is killed."""
        self._queue.clear()
        busy = False
        for worker in self._pool:
            if worker.tag is None:
                with contextlib.suppress(OSError, ValueError):
                    worker.conn.send(None)
            elif cancel:
                with contextlib.suppress(OSError):
                    worker.process.terminate()
            else:
                busy = True
        grace = max(self.stop_grace_s, 10.0) if busy else self.stop_grace_s
        _end([w.process for w in self._pool], time.monotonic() + grace)
        for worker in self._pool:
            worker.conn.close()
        self._pool.clear()


def _end(processes: Sequence[Any], deadline: float) -> None:
    """Wait for ``processes`` until ``deadline`` (monotonic), then kill those still alive."""
    for process in processes:
        process.join(timeout=max(0.0, deadline - time.monotonic()))
    for process in processes:
        if process.is_alive():
            with contextlib.suppress(OSError):
                process.kill()
            process.join(timeout=5)


# ----------------------------------------------------------------------------- SLURM

_TIME = re.compile(r"^(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?$")
_MEM = re.compile(r"^\d+(\.\d+)?[KMGT]?B?$", re.IGNORECASE)


class SlurmResources(BaseModel):
    """What each SLURM task asks for (the sweep file's ``[slurm]`` table, or CLI flags).

    ``time``: ``"HH:MM:SS"``, ``"D-HH:MM:SS"``, ``"MM"`` or minutes as an integer, per task
    (one point). ``mem``: as sbatch takes it (``"4G"``). ``setup``: shell lines run before the
    task (``module load ...``). ``python``: the interpreter on the nodes (default: this one).
    ``extra``: any other sbatch option, ``{"mail-type": "END"}``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    time: str | int = "01:00:00"
    mem: str | None = None
    cpus_per_task: int | None = Field(default=None, ge=1)
    gpus_per_task: int | None = Field(default=None, ge=0)
    constraint: str | None = None
    array_parallelism: int = Field(default=64, ge=1)
    job_name: str = "deeplimit"
    setup: tuple[str, ...] = ()
    python: str | None = None
    requeue: bool = True
    max_requeues: int = Field(default=3, ge=0)
    logs: str | None = None
    extra: dict[str, str | int | bool] = Field(default_factory=dict)

    @field_validator("time")
    @classmethod
    def _time(cls, value: str | int) -> str | int:
        cls._minutes(value)
        return value

    @field_validator("mem")
    @classmethod
    def _mem(cls, value: str | None) -> str | None:
        if value is not None and not _MEM.match(value):
            raise ValueError(f"mem must look like 4G, 500M or 16000 (MB), got {value!r}")
        return value

    @staticmethod
    def _minutes(value: str | int) -> int:
        if isinstance(value, int) and not isinstance(value, bool):
            if value < 1:
                raise ValueError(f"time must be at least 1 minute, got {value}")
            return value
        match = _TIME.match(str(value).strip())
        if match is None:
            raise ValueError(f"time must be minutes or HH:MM:SS (or D-HH:MM:SS), got {value!r}")
        days, first, second, third = (int(g) if g else 0 for g in match.groups())
        if match.group(1) is not None or match.group(4) is not None:
            # days-hours[:minutes[:seconds]] or hours:minutes:seconds
            seconds = first * 3600 + second * 60 + third
        elif match.group(3) is not None:  # minutes:seconds
            seconds = first * 60 + second
        else:  # minutes
            seconds = first * 60
        minutes = math.ceil((days * 86400 + seconds) / 60)
        if minutes < 1:
            raise ValueError(f"time must be at least 1 minute, got {value!r}")
        return minutes

    @property
    def minutes(self) -> int:
        return self._minutes(self.time)


class _Requeueable:
    """``fn`` for submitit: on preemption or timeout submitit calls ``checkpoint`` and requeues
    the same call; a point restarts from scratch (its lock passes to the requeued task)."""

    def __init__(self, fn: Callable[..., Any]) -> None:
        self.fn = fn

    def __call__(self, *args: Any) -> Any:
        return self.fn(*args)

    def checkpoint(self, *args: Any) -> Any:
        from submitit.helpers import DelayedSubmission

        return DelayedSubmission(self, *args)


class SlurmExecutor(Executor):
    """Job arrays on a SLURM cluster through submitit.

    ``folder``: where submitit keeps each array job's pickles and per-task logs
    (``folder/<job id>/<job>_<task>_0_log.{out,err}``); it must be on a file system the nodes
    share, like the store. Tasks are watched through their result files and ``squeue`` (no
    accounting database needed): a task that leaves the queue without a result (cancelled,
    killed, node lost) completes with an error."""

    name = "slurm"
    max_array_size = 1000  # SLURM's default MaxArraySize is 1001

    def __init__(
        self, resources: SlurmResources, folder: Path | str, *, poll_s: float = 5.0
    ) -> None:
        missing = [tool for tool in ("sbatch", "squeue", "scancel") if shutil.which(tool) is None]
        if missing:
            raise ValueError(
                f"the slurm executor needs SLURM's {', '.join(missing)} on PATH: run the sweep "
                "on a cluster's login node (or start a test cluster with "
                "scripts/slurm/start-cluster.sh)"
            )
        import submitit

        self.resources = resources
        self.folder = Path(folder)
        self.poll_s = poll_s
        self._executor = submitit.SlurmExecutor(
            folder=self.folder / "%j",
            python=resources.python,
            max_num_timeout=resources.max_requeues,
        )
        extra: dict[str, Any] = dict(resources.extra)
        if resources.mem:
            extra["mem"] = resources.mem
        if resources.requeue:
            extra["requeue"] = True
        parameters: dict[str, Any] = {
            "job_name": resources.job_name,
            "time": resources.minutes,
            "array_parallelism": resources.array_parallelism,
            "additional_parameters": extra,
        }
        for name in ("partition", "account", "qos", "cpus_per_task", "gpus_per_task", "constraint"):
            if getattr(resources, name) is not None:
                parameters[name] = getattr(resources, name)
        if resources.setup:
            parameters["setup"] = list(resources.setup)
        self._executor.update_parameters(**parameters)
        self._jobs: dict[str, Any] = {}  # tag -> submitit job
        self._states: dict[str, str] = {}  # task id -> squeue state
        self._missing: dict[str, int] = {}  # tag -> polls without the task in the queue
        self._last_look = 0.0

    def submit(self, fn: Callable[..., Any], calls: Sequence[Call]) -> None:
        calls = list(calls)
        wrapped = _Requeueable(fn)
        for start in range(0, len(calls), self.max_array_size):
            chunk = calls[start : start + self.max_array_size]
            columns = list(zip(*(args for _, args in chunk)))
            try:
                jobs = self._executor.map_array(wrapped, *columns)
            except Exception as error:  # sbatch refused: bad partition, account, time...
                message = _last_line(str(error))
                raise ValueError(f"sbatch refused the job array: {message}") from None
            for (tag, _), job in zip(chunk, jobs):
                self._jobs[tag] = job
                self._missing[tag] = 0
        self._last_look = 0.0  # look at the queue again soon

    def _look_at_queue(self) -> None:
        bases = sorted({job.job_id.split("_")[0] for job in self._jobs.values()})
        if not bases:
            return
        command = ["squeue", "--noheader", "--array", "--format=%i|%T", f"--jobs={','.join(bases)}"]
        try:
            listing = subprocess.run(command, capture_output=True, text=True, timeout=60)
        except (OSError, subprocess.SubprocessError):
            return  # the controller may be busy: look again later
        if listing.returncode != 0 and "invalid job id" not in listing.stderr.lower():
            return
        self._states = dict(
            line.strip().split("|", 1) for line in listing.stdout.splitlines() if "|" in line
        )
        for tag, job in self._jobs.items():
            if job.job_id in self._states:
                self._missing[tag] = 0
            else:
                self._missing[tag] += 1

    def poll(self, timeout: float) -> list[Completion]:
        deadline = time.monotonic() + timeout
        while True:
            if time.monotonic() - self._last_look >= self.poll_s:
                self._look_at_queue()
                self._last_look = time.monotonic()
            done = [self._complete(tag) for tag in list(self._jobs) if self._finished(tag)]
            if done or time.monotonic() >= deadline:
                return done
            time.sleep(min(0.5, max(0.0, deadline - time.monotonic())))

    def _finished(self, tag: str) -> bool:
        job = self._jobs[tag]
        # a task gone from the queue for two looks, still without a result, ended without one
        return job.paths.result_pickle.exists() or self._missing[tag] >= 2

    def _complete(self, tag: str) -> Completion:
        job = self._jobs.pop(tag)
        self._missing.pop(tag, None)
        if not job.paths.result_pickle.exists():
            time.sleep(1.0)  # a result written just now may not be visible yet on NFS
        if job.paths.result_pickle.exists():
            try:
                return Completion(tag, value=job.result())
            except Exception as error:
                return Completion(tag, error=f"SLURM task {job.job_id}: {_last_line(str(error))}")
        return Completion(
            tag,
            error=f"SLURM task {job.job_id} ended without a result (cancelled, killed or its "
            f"node was lost); log: {job.paths.stderr}",
        )

    def running(self) -> int | None:
        return sum(self._states.get(job.job_id) == "RUNNING" for job in self._jobs.values())

    def close(self, *, cancel: bool = False) -> None:
        if cancel and self._jobs:
            tasks = sorted({job.job_id for job in self._jobs.values()})
            subprocess.run(["scancel", *tasks], capture_output=True, timeout=60, check=False)
        self._jobs.clear()
