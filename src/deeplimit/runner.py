"""The sweep runner: compute the points a store lacks, through any executor, without losing or
repeating work.

:func:`run_point` is the worker: everything it needs is the experiment (name or
``module:Class``), the spec as JSON and the store path, so any engine can run it. It claims the
point's lock, computes ``run``, ``statistics`` and ``claims``, writes the data and summaries and
then the manifest, and releases the lock; an exception from the experiment is recorded as a
failed point. A study that diverged (the dataset's attribute ``diverged``, or a
``FloatingPointError`` such as ``NumericalBlowupError`` or ``TrainingDivergedError``) is recorded
as ``diverged``, with what stayed finite when the experiment returned a dataset. A point that is
already done (or diverged) is skipped, one that another live worker holds is left to it
(``busy``). Just before committing, the worker checks that the lock is still its own (fencing):
one that stalled past the heartbeat window and lost the point to another runner discards its
result (``lost``). A full disk stops the worker with :class:`~deeplimit.errors.StoreFullError`
(``store-full``), its half-written files and lock removed.

:func:`run_sweep` plans (done points are skipped; failed ones too unless ``retry_failed``),
submits the rest to the executor, records what comes back, and waits for points that other
runners are computing, taking them over if their locks go stale. A worker that is killed, a
SLURM task that is cancelled or a lost node leaves its point *interrupted*: nothing is recorded,
and running the sweep again computes it, reusing the units its study had finished (a study runs
under the point's :mod:`~deeplimit.checkpoints` checkpoint, removed once the point is stored).
"""

from __future__ import annotations

import datetime as _dt
import platform
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .checkpoints import resuming
from .devices import resolve_device
from .errors import StoreFullError, StudyDivergedError
from .provenance import git_commit, provenance
from .store import LockLostError, ResultStore, free_bytes, is_disk_full, point_key
from .sweeps import Point, resolve_experiment
from .tasks import Progress, Task

__all__ = ["PointOutcome", "SweepProgress", "SweepResult", "run_point", "run_sweep"]


@dataclass(frozen=True)
class PointOutcome:
    """What a worker did with a point: ``ok`` (computed), ``diverged`` (computed, or found
    recorded when ``reused``: the study diverged, ``error`` says how), ``failed`` (the
    experiment raised; recorded), ``skipped`` (already done), ``busy`` (another worker holds
    it), ``lost`` (another runner took the lock over while this worker computed; nothing
    written) or ``store-full`` (the store's disk is full; ``error`` is the one-line message)."""

    key: str
    status: str
    wall_time_s: float | None = None
    error: str | None = None
    reused: bool = False


def _now_utc() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")


def run_point(
    experiment: str,
    spec_json: str,
    store: str | Path,
    *,
    progress: Progress | None = None,
    reraise: bool = False,
) -> PointOutcome:
    """Compute one point into ``store`` unless it is done or held by a live worker.

    ``reraise``: after recording a failure, raise the experiment's exception again (for
    in-process callers such as ``reproduce``); a divergence raises
    :class:`~deeplimit.errors.StudyDivergedError`, a full disk
    :class:`~deeplimit.errors.StoreFullError`. Without it, these come back as outcomes, so that
    every executor can carry them."""
    target = resolve_experiment(experiment)
    spec = target.Spec.model_validate_json(spec_json)
    resolve_device(spec.device)  # checked where the point runs, not where a spec is read
    results = ResultStore(store)
    key = point_key(target.name, spec)
    git_commit()  # read now, at the start: the commit of the code that computes the point
    try:
        return _run_point(target, experiment, spec, results, key, progress, reraise)
    except StoreFullError as error:
        if reraise:
            raise
        return PointOutcome(key, "store-full", error=str(error))


def _stored(results: ResultStore, name: str, key: str) -> PointOutcome | None:
    entry = results.entry(name, key)
    if entry.done:
        return PointOutcome(key, "skipped")
    if entry.state == "diverged":
        return PointOutcome(key, "diverged", error=entry.error, reused=True)
    return None


def _run_point(
    target: Task,
    experiment: str,
    spec: Any,
    results: ResultStore,
    key: str,
    progress: Progress | None,
    reraise: bool,
) -> PointOutcome:
    stored = _stored(results, target.name, key)
    if stored is not None:
        return stored
    lock = results.claim(target.name, key)
    if lock is None:
        return PointOutcome(key, "busy")
    try:
        stored = _stored(results, target.name, key)  # finished between our look and our claim
        if stored is not None:
            return stored
        try:
            results.clear(target.name, key)
        except OSError as error:
            if is_disk_full(error):
                raise results.full_error(error) from None
            raise
        manifest: dict[str, Any] = {
            "experiment": target.name,
            "experiment_ref": experiment,
            "spec": spec.model_dump(mode="json"),
            "seed": spec.seed,
            "host": platform.node(),
            "started_utc": _now_utc(),
        }
        start = time.perf_counter()
        failure: Exception | None = None
        units = resuming(results.partial(target.name, key), key, f"{target.name} point {key}")
        with lock.beating(results.heartbeat_s), units as checkpoint:
            try:
                dataset = target.run(spec, progress)
                statistics = target.statistics(dataset)
                claims = [claim.as_dict() for claim in target.claims(dataset)]
            except Exception as error:
                failure, trace = error, traceback.format_exc()
        wall = time.perf_counter() - start
        config = {"experiment": target.name, "key": key, "spec": manifest["spec"]}
        record = provenance(config, seed=spec.seed, device=spec.device, wall_time_s=wall)
        manifest.update(
            version=record["version"],
            git_commit=record["git_commit"],
            device=record["device"],
            wall_time_s=round(wall, 4),
            finished_utc=_now_utc(),
            provenance=record,
        )
        if checkpoint.reused:
            manifest["resumed_units"] = checkpoint.reused
        try:
            if failure is not None:
                message = f"{type(failure).__name__}: {' '.join(str(failure).split())}"
                if is_disk_full(failure):  # the experiment itself wrote to the full disk
                    raise results.full_error(failure)
                diverged = isinstance(failure, FloatingPointError)
                results.write_failure(
                    target.name,
                    key,
                    message,
                    trace,
                    manifest,
                    status="diverged" if diverged else "failed",
                    fence=lock.owned,
                )
                if diverged:
                    checkpoint.discard()  # recorded for good: never computed again
                if reraise and diverged:
                    raise StudyDivergedError(target.name, key, message) from failure
                if reraise:
                    raise failure
                return PointOutcome(key, "diverged" if diverged else "failed", wall, message)
            reason = target.divergence(dataset)
            if reason is not None:
                manifest["error"] = reason
            results.write_ok(
                target.name,
                key,
                dataset,
                statistics,
                claims,
                manifest,
                status="ok" if reason is None else "diverged",
                fence=lock.owned,
            )
        except LockLostError as error:
            return PointOutcome(key, "lost", wall, str(error))
        checkpoint.discard()  # the point is stored: its units are not needed any more
        if reason is not None:
            return PointOutcome(key, "diverged", wall, reason)
        return PointOutcome(key, "ok", wall)
    finally:
        lock.release()


# ----------------------------------------------------------------------------- sweeps


@dataclass(frozen=True)
class SweepProgress:
    """A snapshot for progress bars: points done (computed now or before, diverged ones
    included), running, failed, interrupted, waiting for other runners, out of ``total``."""

    total: int
    done: int
    running: int
    failed: int
    interrupted: int
    waiting: int
    computed: int
    elapsed_s: float
    diverged: int = 0


@dataclass
class SweepResult:
    """The outcome of :func:`run_sweep`, point by point (keys)."""

    total: int
    computed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # already done before this run
    failed: dict[str, str] = field(default_factory=dict)  # key -> error (recorded)
    diverged: dict[str, str] = field(default_factory=dict)  # key -> why (recorded, now or before)
    interrupted: dict[str, str] = field(default_factory=dict)  # key -> why (not recorded)
    waiting: list[str] = field(default_factory=list)  # held by other runners when we stopped
    stopped: bool = False  # interrupted by the user (Ctrl-C; the command line: SIGTERM too)
    wall_time_s: float = 0.0

    @property
    def done(self) -> int:
        """Points with a recorded outcome: computed, already stored, or diverged."""
        return len(self.computed) + len(self.skipped) + len(self.diverged)

    @property
    def complete(self) -> bool:
        """Every point is done (failures count as not done; diverged points count as done:
        their outcome is recorded and computing them again would diverge again)."""
        return self.done == self.total


def _task(point: Point, store: ResultStore) -> tuple[str, str, str]:
    return (point.experiment, point.spec_json, str(store.root))


def run_sweep(
    points: Sequence[Point],
    store: ResultStore | Path | str,
    executor: Any = None,
    *,
    retry_failed: bool = False,
    wait_for_others: bool = True,
    progress: Callable[[SweepProgress], None] | None = None,
    poll_s: float = 0.5,
) -> SweepResult:
    """Compute every point of ``points`` that ``store`` lacks through ``executor`` (default:
    one after the other in this process) and return what happened to each.

    Points that another runner holds are waited for (``wait_for_others``) and taken over if
    that runner dies. Ctrl-C (any KeyboardInterrupt; its message, when it has one, is the
    interrupted points' reason) cancels what was submitted and returns with ``stopped`` set;
    any other exception cancels it too and propagates. A
    full disk cancels what was submitted and raises :class:`~deeplimit.errors.StoreFullError`
    (one line: the store and its free space); the same call resumes once space is freed."""
    from .executors import InlineExecutor

    store = store if isinstance(store, ResultStore) else ResultStore(store)
    store.ensure_writable()
    executor = executor if executor is not None else InlineExecutor()
    by_key = {p.key: p for p in points}
    result = SweepResult(total=len(by_key))
    start = time.perf_counter()
    outstanding: set[str] = set()
    waiting: set[str] = set()
    to_submit: list[Point] = []
    for key, point in by_key.items():
        entry = store.entry(point.name, key)
        if entry.state == "ok":
            result.skipped.append(key)
        elif entry.state == "diverged":
            result.diverged[key] = entry.error or "diverged"
        elif entry.state == "failed" and not retry_failed:
            result.failed[key] = entry.error or "failed"
        elif entry.state == "running":
            waiting.add(key)
        else:
            to_submit.append(point)

    def report() -> None:
        if progress is not None:
            running = executor.running()
            progress(
                SweepProgress(
                    total=result.total,
                    done=result.done,
                    running=len(outstanding) if running is None else running,
                    failed=len(result.failed),
                    interrupted=len(result.interrupted),
                    waiting=len(waiting),
                    computed=len(result.computed),
                    elapsed_s=time.perf_counter() - start,
                    diverged=len(result.diverged),
                )
            )

    def submit(batch: list[Point]) -> None:
        if batch:
            executor.submit(run_point, [(p.key, _task(p, store)) for p in batch])
            outstanding.update(p.key for p in batch)

    last_look = time.perf_counter()
    full: list[str] = []
    try:
        submit(to_submit)
        report()
        while outstanding or (waiting and wait_for_others):
            for done in executor.poll(poll_s if outstanding else 0.0):
                outstanding.discard(done.tag)
                if _store_full(done):
                    full.append(done.tag)
                    continue
                _record(result, waiting, done)
            if full:
                break
            if waiting and time.perf_counter() - last_look >= (poll_s if outstanding else 1.0):
                last_look = time.perf_counter()
                submit(_look_at_waiting(store, by_key, waiting, result))
            if not outstanding and waiting and wait_for_others:
                time.sleep(min(1.0, max(poll_s, 0.05)))
            report()
    except KeyboardInterrupt as stop:
        result.stopped = True
        executor.close(cancel=True)
        for key in sorted(outstanding):
            result.interrupted.setdefault(key, str(stop) or "stopped by the user")
        outstanding.clear()
    except BaseException:  # nothing this sweep started outlives it
        executor.close(cancel=True)
        raise
    else:
        if full:  # the other points would fail the same way: stop, with one line
            _drain(executor, outstanding, result, waiting, poll_s)
        executor.close(cancel=bool(full))
    if full:
        raise StoreFullError(str(store.root), free_bytes(store.root))
    result.waiting = sorted(waiting)
    result.wall_time_s = time.perf_counter() - start
    report()
    return result


def _drain(
    executor: Any,
    outstanding: set[str],
    result: SweepResult,
    waiting: set[str],
    poll_s: float,
    limit_s: float = 60.0,
) -> None:
    """After a full disk: start nothing more, and let the points already running end on
    their own (each removes what it half-wrote and its lock; a worker killed mid-write could
    not), for at most ``limit_s`` seconds."""
    outstanding.difference_update(executor.drop_queued())
    deadline = time.perf_counter() + limit_s
    while outstanding and executor.running() != 0 and time.perf_counter() < deadline:
        for done in executor.poll(poll_s):
            outstanding.discard(done.tag)
            if not _store_full(done):
                _record(result, waiting, done)


def _store_full(done: Any) -> bool:
    """Whether a completion says the store's disk is full (an outcome, or a worker that
    crashed on it outside the point's own writes)."""
    if done.error is not None:
        return any(text in done.error.lower() for text in ("no space left", "quota exceeded"))
    return getattr(done.value, "status", None) == "store-full"


def _record(result: SweepResult, waiting: set[str], done: Any) -> None:
    key = done.tag
    if done.error is not None:
        result.interrupted[key] = done.error
        return
    outcome: PointOutcome = done.value
    if outcome.status == "ok":
        result.computed.append(key)
    elif outcome.status == "skipped":
        result.skipped.append(key)
    elif outcome.status == "diverged":
        result.diverged[key] = outcome.error or "diverged"
    elif outcome.status == "failed":
        result.failed[key] = outcome.error or "failed"
    elif outcome.status in ("busy", "lost"):  # another runner has it: look at it later
        waiting.add(key)
    result.interrupted.pop(key, None)


def _look_at_waiting(
    store: ResultStore,
    by_key: dict[str, Point],
    waiting: set[str],
    result: SweepResult,
) -> list[Point]:
    """Points that other runners held: collect the finished (their failures too: a failure
    recorded while we waited is not retried), return the abandoned."""
    abandoned = []
    for key in sorted(waiting):
        point = by_key[key]
        entry = store.entry(point.name, key, verify="size")
        if entry.state == "running":
            continue
        waiting.discard(key)
        if entry.state == "ok" and store.entry(point.name, key).done:
            result.skipped.append(key)
        elif entry.state == "diverged" and store.entry(point.name, key).state == "diverged":
            result.diverged[key] = entry.error or "diverged"
        elif entry.state == "failed":
            result.failed[key] = entry.error or "failed"
        else:
            abandoned.append(point)
    return abandoned
