"""The sweep runner: compute the points a store lacks, through any executor, without losing or
repeating work.

:func:`run_point` is the worker: everything it needs is the experiment (name or
``module:Class``), the spec as JSON and the store path, so any engine can run it. It claims the
point's lock, computes ``run``, ``statistics`` and ``claims``, writes the data and summaries and
then the manifest, and releases the lock; an exception from the experiment is recorded as a
failed point. A point that is already done is skipped, one that another live worker holds is
left to it (``busy``).

:func:`run_sweep` plans (done points are skipped; failed ones too unless ``retry_failed``),
submits the rest to the executor, records what comes back, and waits for points that other
runners are computing, taking them over if their locks go stale. A worker that is killed, a
SLURM task that is cancelled or a lost node leaves its point *interrupted*: nothing is recorded,
and running the sweep again computes it.
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

from .experiments.base import Progress
from .provenance import provenance
from .store import ResultStore, point_key
from .sweeps import Point, resolve_experiment

__all__ = ["PointOutcome", "SweepProgress", "SweepResult", "run_point", "run_sweep"]


@dataclass(frozen=True)
class PointOutcome:
    """What a worker did with a point: ``ok`` (computed), ``failed`` (the experiment raised;
    recorded), ``skipped`` (already done) or ``busy`` (another worker holds it)."""

    key: str
    status: str
    wall_time_s: float | None = None
    error: str | None = None


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
    in-process callers such as ``reproduce``)."""
    target = resolve_experiment(experiment)
    spec = target.Spec.model_validate_json(spec_json)
    results = ResultStore(store)
    key = point_key(target.name, spec)
    if results.entry(target.name, key).done:
        return PointOutcome(key, "skipped")
    lock = results.claim(target.name, key)
    if lock is None:
        return PointOutcome(key, "busy")
    try:
        if results.entry(target.name, key).done:  # finished between our look and our claim
            return PointOutcome(key, "skipped")
        results.clear(target.name, key)
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
        with lock.beating(results.heartbeat_s):
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
        if failure is not None:
            message = f"{type(failure).__name__}: {' '.join(str(failure).split())}"
            results.write_failure(target.name, key, message, trace, manifest)
            if reraise:
                raise failure
            return PointOutcome(key, "failed", wall, message)
        results.write_ok(target.name, key, dataset, statistics, claims, manifest)
        return PointOutcome(key, "ok", wall)
    finally:
        lock.release()


# ----------------------------------------------------------------------------- sweeps


@dataclass(frozen=True)
class SweepProgress:
    """A snapshot for progress bars: points done (computed now or before), running, failed,
    interrupted, waiting for other runners, out of ``total``."""

    total: int
    done: int
    running: int
    failed: int
    interrupted: int
    waiting: int
    computed: int
    elapsed_s: float


@dataclass
class SweepResult:
    """The outcome of :func:`run_sweep`, point by point (keys)."""

    total: int
    computed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # already done before this run
    failed: dict[str, str] = field(default_factory=dict)  # key -> error (recorded)
    interrupted: dict[str, str] = field(default_factory=dict)  # key -> why (not recorded)
    waiting: list[str] = field(default_factory=list)  # held by other runners when we stopped
    stopped: bool = False  # interrupted by the user (Ctrl-C)
    wall_time_s: float = 0.0

    @property
    def done(self) -> int:
        return len(self.computed) + len(self.skipped)

    @property
    def complete(self) -> bool:
        """Every point is done (failures count as not done)."""
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
    that runner dies. Ctrl-C cancels what was submitted and returns with ``stopped`` set."""
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
                )
            )

    def submit(batch: list[Point]) -> None:
        if batch:
            executor.submit(run_point, [(p.key, _task(p, store)) for p in batch])
            outstanding.update(p.key for p in batch)

    last_look = time.perf_counter()
    try:
        submit(to_submit)
        report()
        while outstanding or (waiting and wait_for_others):
            for done in executor.poll(poll_s if outstanding else 0.0):
                outstanding.discard(done.tag)
                _record(result, waiting, done)
            if waiting and time.perf_counter() - last_look >= (poll_s if outstanding else 1.0):
                last_look = time.perf_counter()
                submit(_look_at_waiting(store, by_key, waiting, result))
            if not outstanding and waiting and wait_for_others:
                time.sleep(min(1.0, max(poll_s, 0.05)))
            report()
    except KeyboardInterrupt:
        result.stopped = True
        executor.close(cancel=True)
        for key in sorted(outstanding):
            result.interrupted.setdefault(key, "stopped by the user")
        outstanding.clear()
    else:
        executor.close(cancel=False)
    result.waiting = sorted(waiting)
    result.wall_time_s = time.perf_counter() - start
    report()
    return result


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
    elif outcome.status == "failed":
        result.failed[key] = outcome.error or "failed"
    elif outcome.status == "busy":
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
        elif entry.state == "failed":
            result.failed[key] = entry.error or "failed"
        else:
            abandoned.append(point)
    return abandoned
