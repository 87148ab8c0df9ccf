"""The result store: one content-addressed folder per finished point of a sweep.

Layout (``root`` is the store folder, ``results/store`` by default)::

    root/<experiment>/<key>/manifest.json     written last, atomically; checksums of the files
                           /data.nc           the dataset returned by Experiment.run (netCDF)
                           /summary.parquet   Experiment.statistics rows
                           /claims.parquet    Experiment.claims rows
                           /.lock             present while a worker computes the point
                           /partial/          finished units of a study not yet stored
                                              (``deeplimit.checkpoints``: resume inside a point)

``key`` is :func:`point_key`: 16 hex digits of the SHA-256 of the experiment name, the canonical
spec JSON (device reduced to its kind, ``cpu`` or ``cuda``) and the library version, so the same
spec always maps to the same folder and a new library version never reuses old numbers.

A point is *done* when its manifest says ``status: ok`` and every file it lists has the recorded
size and SHA-256. A point whose computation *diverged* (the experiment marked its dataset with
the attribute ``diverged``, or raised a ``FloatingPointError`` such as a numerical blow-up) has
``status: diverged`` and the reason in ``error``; it keeps its data (what stayed finite, checked
like an ``ok`` point) when the experiment returned some, and is not recomputed: the same spec
diverges again. A folder without a manifest is a point that was interrupted (or is being
computed); a manifest that does not parse, or files that do not match it, mark the point
*corrupt*: it is recomputed, and never loaded as data. A failed point has a manifest with
``status: failed``, the error and its traceback, and no data.

Workers claim a point by creating ``.lock`` with ``O_CREAT | O_EXCL`` and keep it fresh with a
heartbeat (its mtime); the lock holds a random token, and a worker commits a point only while
the lock still carries its token (*fencing*: a worker that stalled past the heartbeat window
and lost its lock to another runner discards its result). A lock is stale when its process is
gone (same host), when it belongs to an earlier run of the same SLURM task (requeued after
preemption), or when its heartbeat is older than ``stale_after_s``; stale locks are broken
under a second exclusive file, so two runners never both take over the same point.

A file system that fills up (``ENOSPC``, or a quota: ``EDQUOT``) while a point is written raises
:class:`deeplimit.errors.StoreFullError` naming the store and its free space, after removing
what was half-written and the lock, so the same command resumes once space is freed.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import errno
import hashlib
import io
import json
import os
import platform
import shutil
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import xarray as xr

from ._version import __version__
from .errors import StoreFullError
from .results import atomic_write_text, load_result

__all__ = [
    "DATA_STATES",
    "Entry",
    "LockLostError",
    "PointLock",
    "ResultStore",
    "StoreError",
    "StoreFullError",
    "device_kind",
    "free_bytes",
    "is_disk_full",
    "json_default",
    "lock_is_stale",
    "lock_owner",
    "point_key",
]

FORMAT = 1
MANIFEST = "manifest.json"
DATA = "data.nc"
SUMMARY = "summary.parquet"
CLAIMS = "claims.parquet"
LOCK = ".lock"
PARTIAL = "partial"
_BREAK = ".lock.break"
STATES = ("ok", "diverged", "failed", "corrupt", "running", "incomplete")
DATA_STATES = ("ok", "diverged")  # states whose data (if any) can be loaded
_VERIFY = ("none", "size", "checksum")


class StoreError(ValueError):
    """A store that cannot be used, or a stored point that cannot be loaded."""


_FULL_ERRNOS = {errno.ENOSPC, errno.EDQUOT}
_FULL_TEXTS = ("no space left", "disk quota exceeded", "errno = 28", "errno = 122")


def is_disk_full(error: BaseException) -> bool:
    """Whether ``error`` says the file system (or a quota) is full. h5py reports a failed write
    as an ``OSError`` without ``errno``, the C library's text in its message."""
    if isinstance(error, StoreFullError):
        return True
    if isinstance(error, OSError) and error.errno in _FULL_ERRNOS:
        return True
    text = str(error).lower()
    return isinstance(error, OSError | RuntimeError) and any(t in text for t in _FULL_TEXTS)


def free_bytes(path: Path | str) -> int | None:
    """Free bytes (for this user) on the file system of ``path``, or None if unknown."""
    path = Path(path)
    while not path.exists() and path != path.parent:
        path = path.parent
    try:
        return int(shutil.disk_usage(path).free)
    except OSError:
        return None


def device_kind(device: Any) -> str:
    """``"cuda:1"`` -> ``"cuda"``: which GPU ran a point does not change what it is."""
    return str(device).split(":", 1)[0]


def point_key(experiment: str, spec: Any, version: str = __version__) -> str:
    """The store key of ``spec`` (a spec model or its JSON dict) of ``experiment``."""
    payload = spec if isinstance(spec, Mapping) else spec.model_dump(mode="json")
    payload = dict(payload)
    if "device" in payload:
        payload["device"] = device_kind(payload["device"])
    text = json.dumps(
        {"experiment": experiment, "spec": payload, "version": version},
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _now_utc() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")


def json_default(value: Any) -> Any:
    """``json.dumps(..., default=json_default)``: numpy scalars and arrays as plain values."""
    if hasattr(value, "item") and getattr(value, "ndim", 0) == 0:
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


def _same(a: Any, b: Any) -> bool:
    """Equality of JSON values, with tuples and lists alike and 1 == 1.0."""

    def normal(value: Any) -> Any:
        return json.loads(json.dumps(value, default=json_default))

    return normal(a) == normal(b)


def _rows_parquet(rows: Sequence[Mapping[str, Any]]) -> bytes:
    """Rows of scalars as parquet bytes. Nested values become JSON text, and a column that
    mixes text with numbers is kept as text (a parquet column has one type)."""
    clean = []
    for row in rows:
        record = {}
        for name, value in row.items():
            if hasattr(value, "item") and getattr(value, "ndim", 0) == 0:
                value = value.item()
            if value is not None and not isinstance(value, bool | int | float | str):
                value = json.dumps(value, default=json_default, sort_keys=True)
            record[str(name)] = value
        clean.append(record)
    for name in {name for record in clean for name in record}:
        kinds = {type(r[name]) for r in clean if r.get(name) is not None}
        if len(kinds) > 1 and not kinds <= {int, float}:
            for record in clean:
                if record.get(name) is not None:
                    record[name] = str(record[name])
    buffer = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(clean), buffer)
    return buffer.getvalue()


# ----------------------------------------------------------------------------- locks


def _process_start(pid: int) -> str | None:
    """The start time of ``pid`` (Linux), so that a recycled pid is not taken for the owner."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stream:
            return stream.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _slurm_task() -> str | None:
    """This process's SLURM task (``job_task`` for arrays), or None outside SLURM."""
    array_job = os.environ.get("SLURM_ARRAY_JOB_ID")
    if array_job:
        return f"{array_job}_{os.environ.get('SLURM_ARRAY_TASK_ID', '0')}"
    return os.environ.get("SLURM_JOB_ID")


def _owner() -> dict[str, Any]:
    pid = os.getpid()
    return {
        "token": uuid.uuid4().hex,
        "host": platform.node(),
        "pid": pid,
        "pid_start": _process_start(pid),
        "slurm_task": _slurm_task(),
        "created_utc": _now_utc(),
    }


@dataclass
class PointLock:
    """A claimed point: ``.lock`` holds the owner (host, pid, token); its mtime is the heartbeat."""

    path: Path
    token: str

    def heartbeat(self) -> None:
        """Refresh the lock, unless another runner took it over meanwhile (its heartbeat is
        not ours to keep alive)."""
        if self.owned():
            with contextlib.suppress(OSError):
                os.utime(self.path)

    def owned(self) -> bool:
        owner = lock_owner(self.path)
        return owner is not None and owner.get("token") == self.token

    def release(self) -> None:
        if self.owned():
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()

    @contextlib.contextmanager
    def beating(self, every_s: float) -> Iterator[None]:
        """Touch the lock every ``every_s`` seconds from a daemon thread while the body runs."""
        stop = threading.Event()

        def beat() -> None:
            while not stop.wait(every_s):
                self.heartbeat()

        thread = threading.Thread(target=beat, name="deeplimit-heartbeat", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join(timeout=5)


def lock_owner(path: Path) -> dict[str, Any] | None:
    """The owner record of a lock file, or None if it cannot be read (yet)."""
    try:
        owner = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return owner if isinstance(owner, dict) else None


def lock_is_stale(path: Path, stale_after_s: float) -> bool:
    """Whether the lock at ``path`` may be broken (see the module docstring)."""
    try:
        age = time.time() - path.stat().st_mtime
    except FileNotFoundError:
        return True
    owner = lock_owner(path)
    if owner is None:  # created but not yet written, or garbage
        return age > min(stale_after_s, 10.0)
    mine = _slurm_task()
    if mine is not None and owner.get("slurm_task") == mine and owner.get("pid") != os.getpid():
        return True  # an earlier run of this very SLURM task, requeued
    if owner.get("host") == platform.node() and isinstance(owner.get("pid"), int):
        pid = owner["pid"]
        if not _pid_alive(pid):
            return True
        started = owner.get("pid_start")
        if started is not None and _process_start(pid) not in (None, started):
            return True  # the pid was recycled
    return age > stale_after_s


# ----------------------------------------------------------------------------- entries


@dataclass(frozen=True)
class Entry:
    """One point folder as found in the store."""

    experiment: str
    key: str
    folder: Path
    state: str  # one of STATES
    manifest: dict[str, Any] | None = None
    problem: str | None = None  # why a point is corrupt

    @property
    def spec(self) -> dict[str, Any]:
        return dict((self.manifest or {}).get("spec") or {})

    @property
    def error(self) -> str | None:
        return (self.manifest or {}).get("error") or self.problem

    @property
    def done(self) -> bool:
        return self.state == "ok"

    @property
    def has_data(self) -> bool:
        """Whether the point's data can be loaded (``ok``, or ``diverged`` with data)."""
        return self.state in DATA_STATES and bool((self.manifest or {}).get("files"))


class ResultStore:
    """A folder of results, one content-addressed sub-folder per point.

    ``stale_after_s``: a lock whose heartbeat is older than this is taken over (locks of dead
    processes on this host are taken over at once); ``heartbeat_s``: how often a running point
    refreshes its lock.
    """

    def __init__(
        self, root: Path | str, *, stale_after_s: float = 60.0, heartbeat_s: float = 10.0
    ) -> None:
        self.root = Path(root)
        self.stale_after_s = float(stale_after_s)
        self.heartbeat_s = float(heartbeat_s)

    def __repr__(self) -> str:
        return f"ResultStore({str(self.root)!r})"

    # ------------------------------------------------------------------ checks

    def ensure_writable(self) -> None:
        """Create the store folder if needed and check that files can be written in it."""
        if self.root.exists() and not self.root.is_dir():
            raise StoreError(f"store {str(self.root)!r} is a file, not a folder")
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            handle, probe = tempfile.mkstemp(dir=self.root, prefix=".probe-")
            os.close(handle)
            os.unlink(probe)
        except OSError as error:
            raise StoreError(
                f"store folder {str(self.root)!r} is not writable ({error.strerror or error}); "
                "choose another with --store"
            ) from None

    def _ensure_readable(self) -> None:
        if not self.root.is_dir():
            raise StoreError(
                f"store folder {str(self.root)!r} does not exist (run a sweep first, or pass "
                "--store)"
            )

    # ------------------------------------------------------------------ paths

    def folder(self, experiment: str, key: str) -> Path:
        return self.root / experiment / key

    def partial(self, experiment: str, key: str) -> Path:
        """The folder of a point's finished units while its study runs (kept by
        :class:`deeplimit.checkpoints.Checkpoint`; :meth:`clear` leaves it)."""
        return self.folder(experiment, key) / PARTIAL

    def experiments(self) -> list[str]:
        self._ensure_readable()
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and p.name[0] not in "._")

    def keys(self, experiment: str) -> list[str]:
        folder = self.root / experiment
        if not folder.is_dir():
            return []
        return sorted(p.name for p in folder.iterdir() if p.is_dir() and p.name[0] not in "._")

    # ------------------------------------------------------------------ reading

    def entry(self, experiment: str, key: str, *, verify: str = "checksum") -> Entry:
        """The state of one point; ``verify``: ``none``, ``size`` or ``checksum`` of its files."""
        if verify not in _VERIFY:
            raise ValueError(f"verify must be one of {', '.join(_VERIFY)}, got {verify!r}")
        folder = self.folder(experiment, key)
        manifest_path = folder / MANIFEST
        if not manifest_path.exists():
            lock = folder / LOCK
            running = lock.exists() and not lock_is_stale(lock, self.stale_after_s)
            return Entry(experiment, key, folder, "running" if running else "incomplete")
        try:
            manifest = json.loads(manifest_path.read_text())
            if not isinstance(manifest, dict) or manifest.get("key") != key:
                raise ValueError("it does not describe this point")
        except (OSError, ValueError) as error:
            return Entry(experiment, key, folder, "corrupt", None, f"bad manifest: {error}")
        status = manifest.get("status")
        if status == "failed" or (status == "diverged" and not manifest.get("files")):
            return Entry(experiment, key, folder, status, manifest)
        if status not in DATA_STATES:
            return Entry(experiment, key, folder, "corrupt", manifest, f"status {status!r}")
        problem = self._check_files(folder, manifest.get("files") or {}, verify)
        if problem:
            return Entry(experiment, key, folder, "corrupt", manifest, problem)
        return Entry(experiment, key, folder, status, manifest)

    @staticmethod
    def _check_files(folder: Path, files: Mapping[str, Any], verify: str) -> str | None:
        if DATA not in files:
            return f"the manifest lists no {DATA}"
        for name, record in files.items():
            path = folder / name
            if verify == "none":
                continue
            try:
                size = path.stat().st_size
            except FileNotFoundError:
                return f"{name} is missing"
            if size != record.get("bytes"):
                return f"{name} has {size} bytes, the manifest says {record.get('bytes')}"
            if verify == "checksum" and _sha256(path) != record.get("sha256"):
                return f"{name} does not match its checksum"
        return None

    def entries(
        self,
        experiment: str | None = None,
        *,
        status: str | None = None,
        where: Mapping[str, Any] | None = None,
        verify: str = "checksum",
    ) -> list[Entry]:
        """Every point (of ``experiment``), optionally only those in state ``status`` whose
        spec fields equal ``where``; ``verify="size"`` skips the checksums (faster)."""
        self._ensure_readable()
        if status is not None and status not in STATES:
            raise StoreError(f"status must be one of {', '.join(STATES)}, got {status!r}")
        names = [experiment] if experiment else self.experiments()
        if experiment and not (self.root / experiment).is_dir():
            known = ", ".join(self.experiments()) or "none yet"
            raise StoreError(
                f"the store {str(self.root)!r} holds no results of {experiment!r} "
                f"(experiments stored: {known})"
            )
        found = [self.entry(n, k, verify=verify) for n in names for k in self.keys(n)]
        if status is not None:
            found = [e for e in found if e.state == status]
        if where:
            fields = set().union(*(e.spec for e in found)) if found else set()
            unknown = sorted(set(where) - fields)
            if unknown and found:
                raise StoreError(
                    f"where: no stored point has a field {unknown[0]!r}; fields: "
                    f"{', '.join(sorted(fields))}"
                )
            found = [
                e
                for e in found
                if all(name in e.spec and _same(e.spec[name], v) for name, v in where.items())
            ]
        return found

    def find(self, experiment: str, key: str) -> Entry:
        """The point of ``experiment`` whose key is ``key`` or starts with it."""
        matches = [k for k in self.keys(experiment) if k.startswith(key)]
        if not matches:
            raise StoreError(f"no point of {experiment!r} in {str(self.root)!r} has a key {key!r}")
        if len(matches) > 1:
            shown = ", ".join(matches[:5]) + (", ..." if len(matches) > 5 else "")
            raise StoreError(
                f"{len(matches)} points of {experiment!r} have keys starting with {key!r} "
                f"({shown}): give more digits"
            )
        return self.entry(experiment, matches[0])

    def load(self, experiment: str, key: str) -> xr.Dataset:
        """The dataset of a finished point (``ok``, or ``diverged`` with data: its attribute
        ``diverged`` says why), after checking it against its manifest."""
        entry = self.entry(experiment, key, verify="checksum")
        if entry.state == "diverged" and not entry.has_data:
            raise StoreError(
                f"point {key} of {experiment!r} diverged and kept no data ({entry.error})"
            )
        if not entry.has_data:
            reason = entry.problem or entry.error or entry.state
            raise StoreError(
                f"point {key} of {experiment!r} is {entry.state} ({reason}); run its sweep again "
                "to compute it"
            )
        dataset, _ = load_result(entry.folder / DATA)
        return dataset

    def frame(
        self,
        experiment: str | None = None,
        *,
        status: str | None = None,
        where: Mapping[str, Any] | None = None,
    ) -> pd.DataFrame:
        """One row per point: experiment, key, state, the spec fields, wall time, error."""
        rows = []
        for entry in self.entries(experiment, status=status, where=where):
            manifest = entry.manifest or {}
            spec = {k: tuple(v) if isinstance(v, list) else v for k, v in entry.spec.items()}
            rows.append(
                {
                    "experiment": entry.experiment,
                    "key": entry.key,
                    "status": entry.state,
                    **spec,
                    "wall_time_s": manifest.get("wall_time_s"),
                    "finished_utc": manifest.get("finished_utc"),
                    "host": manifest.get("host"),
                    "ran_on": manifest.get("device"),
                    "version": manifest.get("version"),
                    "error": entry.error,
                }
            )
        return pd.DataFrame.from_records(rows)

    def summaries(
        self,
        experiment: str | None = None,
        *,
        where: Mapping[str, Any] | None = None,
        table: str = "statistics",
        left_out: list[tuple[str, str]] | None = None,
    ) -> pd.DataFrame:
        """The statistics (or ``table="claims"``) rows of every finished point, each with the
        point's key, status and spec fields (a spec field named like a statistic gets
        ``spec_``). ``left_out``: a list that receives ``(key, why)`` for every selected point
        that could not be loaded (failed, corrupt, unfinished, unreadable)."""
        name = {"statistics": SUMMARY, "claims": CLAIMS}.get(table)
        if name is None:
            raise StoreError(f"table must be 'statistics' or 'claims', got {table!r}")
        frames = []
        for entry in self._with_data(experiment, where, left_out):
            try:
                rows = pd.read_parquet(entry.folder / name)
            except (OSError, ValueError) as error:
                _leave_out(left_out, entry, " ".join(str(error).split()))
                continue
            rows.insert(0, "status", entry.state)
            rows.insert(0, "key", entry.key)
            rows.insert(0, "experiment", entry.experiment)
            for field, value in entry.spec.items():
                column = f"spec_{field}" if field in rows.columns else field
                rows[column] = [tuple(value) if isinstance(value, list) else value] * len(rows)
            frames.append(rows)
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()

    def _with_data(
        self,
        experiment: str | None,
        where: Mapping[str, Any] | None,
        left_out: list[tuple[str, str]] | None = None,
    ) -> list[Entry]:
        found = []
        for entry in self.entries(experiment, where=where):
            if entry.has_data:
                found.append(entry)
            else:
                _leave_out(left_out, entry, entry.error or "")
        return found

    def load_all(
        self,
        experiment: str,
        *,
        where: Mapping[str, Any] | None = None,
        left_out: list[tuple[str, str]] | None = None,
    ) -> xr.Dataset:
        """Every finished point of ``experiment`` (``ok``, and ``diverged`` ones with data) in
        one dataset along a new dimension ``point``, with the key, the status and the spec
        fields as coordinates along it. ``left_out``: a list that receives ``(key, why)`` for
        every selected point that could not be loaded."""
        entries, datasets = [], []
        for entry in self._with_data(experiment, where, left_out):
            try:
                datasets.append(load_result(entry.folder / DATA)[0])  # verified just now
            except (OSError, ValueError) as error:
                _leave_out(left_out, entry, " ".join(str(error).split()))
                continue
            entries.append(entry)
        if not entries:
            raise StoreError(f"no finished point of {experiment!r} matches in {str(self.root)!r}")
        # dimensions without coordinates (sample, ...) get positions, so that points of
        # different sizes (a sweep over samples) align by position, padded with NaN
        positional = {d for ds in datasets for d in ds.dims if d not in ds.coords}
        datasets = [
            ds.assign_coords({d: np.arange(ds.sizes[d]) for d in positional if d in ds.dims})
            for ds in datasets
        ]
        try:
            combined = xr.concat(
                datasets, dim="point", join="outer", combine_attrs="drop_conflicts"
            )
        except (ValueError, TypeError) as error:
            raise StoreError(f"the points of {experiment!r} cannot be combined: {error}") from None
        combined = combined.drop_vars(sorted(positional))
        coords: dict[str, Any] = {
            "key": ("point", [e.key for e in entries]),
            "status": ("point", [e.state for e in entries]),
        }
        for field in entries[0].spec:
            values = [e.spec.get(field) for e in entries]
            if any(isinstance(v, list | dict) for v in values):
                values = [json.dumps(v) for v in values]
            coords[field if field not in combined.variables else f"spec_{field}"] = (
                "point",
                values,
            )
        return combined.assign_coords(coords)

    # ------------------------------------------------------------------ writing

    def full_error(self, error: BaseException, writing: str = "") -> StoreFullError:
        """The one-line error for a write that failed because the store's disk is full."""
        if isinstance(error, StoreFullError):
            return error
        return StoreFullError(str(self.root), free_bytes(self.root), writing)

    def claim(self, experiment: str, key: str) -> PointLock | None:
        """Claim a point for computing: a lock, or None when a live worker holds it."""
        folder = self.folder(experiment, key)
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            if is_disk_full(error):
                raise self.full_error(error, "a point folder") from None
            raise
        path = folder / LOCK
        for _ in range(3):
            owner = _owner()
            try:
                handle = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                if not self._break_stale(path):
                    return None
                continue
            try:
                with os.fdopen(handle, "w") as stream:
                    json.dump(owner, stream)
            except OSError as error:  # a full disk: no empty lock may stay behind
                path.unlink(missing_ok=True)
                if is_disk_full(error):
                    raise self.full_error(error, "a lock") from None
                raise
            return PointLock(path, owner["token"])
        return None

    def _break_stale(self, path: Path) -> bool:
        """Remove the lock at ``path`` if it is stale; True when it is gone."""
        if not lock_is_stale(path, self.stale_after_s):
            return False
        seen = lock_owner(path)
        breaker = path.with_name(_BREAK)
        try:
            handle = os.open(breaker, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            # someone else is breaking it; a breaker that died long ago is cleared
            with contextlib.suppress(FileNotFoundError):
                if time.time() - breaker.stat().st_mtime > 30:
                    breaker.unlink()
            return False
        os.close(handle)
        try:
            # the lock may have changed hands between our look and our exclusive turn
            if lock_owner(path) == seen and lock_is_stale(path, self.stale_after_s):
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
            return not path.exists()
        finally:
            breaker.unlink()

    def clear(self, experiment: str, key: str) -> None:
        """Remove what an earlier attempt left (manifest first), keeping the lock."""
        folder = self.folder(experiment, key)
        with contextlib.suppress(FileNotFoundError):
            (folder / MANIFEST).unlink()
        for path in folder.iterdir():
            if path.name in (LOCK, _BREAK) or path.is_dir():
                continue
            path.unlink()

    def write_ok(
        self,
        experiment: str,
        key: str,
        dataset: xr.Dataset,
        statistics: Sequence[Mapping[str, Any]],
        claims: Sequence[Mapping[str, Any]],
        manifest: Mapping[str, Any],
        *,
        status: str = "ok",
        fence: Callable[[], bool] | None = None,
    ) -> Entry:
        """Write a finished point: data, summaries, then the manifest with their checksums.

        ``status``: ``ok``, or ``diverged`` (data kept, ``manifest["error"]`` says why).
        ``fence``: called after the files are written to temporary names and before any of
        them is put in place; when it returns False (the worker lost its lock) nothing is
        committed and :class:`LockLostError` is raised. A full disk raises
        :class:`StoreFullError` after removing what this call wrote."""
        if status not in DATA_STATES:
            raise ValueError(f"status must be one of {', '.join(DATA_STATES)}, got {status!r}")
        folder = self.folder(experiment, key)
        # the data file carries its provenance too, as every deeplimit result file does
        provenance = json.dumps(manifest.get("provenance") or {}, sort_keys=True)
        dataset = dataset.assign_attrs(provenance=provenance)
        staged: dict[str, Path] = {}
        full: StoreFullError | None = None
        _quiet_when_full()
        with _stderr_held() as quiet:
            try:
                staged[DATA] = _stage(
                    folder, DATA, lambda p: dataset.to_netcdf(p, engine="h5netcdf")
                )
                for name, rows in ((SUMMARY, statistics), (CLAIMS, claims)):
                    data = _rows_parquet(rows)
                    staged[name] = _stage(folder, name, lambda p, data=data: p.write_bytes(data))
                files = {
                    name: {"bytes": path.stat().st_size, "sha256": _sha256(path)}
                    for name, path in staged.items()
                }
                record = {**manifest, "format": FORMAT, "key": key, "status": status}
                record["files"] = files
                if fence is not None and not fence():
                    raise LockLostError(
                        f"the lock of point {key} of {experiment!r} was taken over by another "
                        "runner while this worker computed it; its result is discarded"
                    )
                for name, path in staged.items():
                    os.replace(path, folder / name)
                staged.clear()
                self._commit(folder, record)
            except BaseException as error:
                for path in staged.values():
                    path.unlink(missing_ok=True)
                if not is_disk_full(error):
                    raise
                self._discard_partial(folder)
                full = self.full_error(error, f"point {key} of {experiment!r}")
                quiet[0] = True
        if full is not None:  # raised out here, so that it does not keep h5py's objects alive
            raise full
        return Entry(experiment, key, folder, status, record)

    def write_failure(
        self,
        experiment: str,
        key: str,
        error: str,
        trace: str,
        manifest: Mapping[str, Any],
        *,
        status: str = "failed",
        fence: Callable[[], bool] | None = None,
    ) -> Entry:
        """Record that computing a point raised ``error`` (nothing else is kept); ``status``
        ``diverged`` when the error was a numerical divergence. ``fence``: as in
        :meth:`write_ok`."""
        folder = self.folder(experiment, key)
        record = {
            **manifest,
            "format": FORMAT,
            "key": key,
            "status": status,
            "error": error,
            "traceback": trace,
            "files": {},
        }
        if fence is not None and not fence():
            raise LockLostError(
                f"the lock of point {key} of {experiment!r} was taken over by another runner "
                "while this worker computed it; its outcome is discarded"
            )
        try:
            self._commit(folder, record)
        except OSError as failure:
            if is_disk_full(failure):
                raise self.full_error(failure, f"point {key} of {experiment!r}") from None
            raise
        return Entry(experiment, key, folder, status, record)

    @staticmethod
    def _commit(folder: Path, record: Mapping[str, Any]) -> None:
        _write_manifest(folder, record)

    def _discard_partial(self, folder: Path) -> None:
        """After a failed write: the point's files go (they would be recomputed anyway, and
        they hold space a full disk needs); the manifest first, so nothing half is trusted."""
        with contextlib.suppress(OSError):
            self.clear(folder.parent.name, folder.name)


def _quiet_when_full() -> None:
    """h5py reports a failed write once more from every HDF5 object it frees afterwards
    ("Exception ignored in ObjectID.__dealloc__": a traceback each, dozens on a full disk),
    whenever the garbage collector gets to them. Those echoes of a full disk are dropped from
    then on (the write's own error is raised as usual); every other unraisable exception goes
    to the hook that was there before."""
    current = sys.unraisablehook
    if getattr(current, "_drops_disk_full", False):
        return

    def hook(unraisable: Any) -> None:
        if not is_disk_full(unraisable.exc_value):
            current(unraisable)

    hook._drops_disk_full = True  # type: ignore[attr-defined]
    sys.unraisablehook = hook


@contextlib.contextmanager
def _stderr_held() -> Iterator[list[bool]]:
    """Hold what is printed to ``sys.stderr`` in the body and pass it on at the end, unless
    the body sets the yielded flag ``[True]``: on a full disk, what was printed is h5py's echo
    of the failure (Cython prints a traceback for every HDF5 object freed while the write
    unwinds, before any hook sees it) and is dropped."""
    real, held = sys.stderr, io.StringIO()
    drop = [False]
    sys.stderr = held
    try:
        yield drop
    finally:
        sys.stderr = real
        if not drop[0]:
            real.write(held.getvalue())


def _leave_out(left_out: list[tuple[str, str]] | None, entry: Entry, why: str) -> None:
    if left_out is not None:
        left_out.append((entry.key, f"{entry.state}: {why}" if why else entry.state))


class LockLostError(StoreError):
    """A worker's lock was taken over by another runner before it committed its point."""


def _stage(folder: Path, name: str, write: Callable[[Path], Any]) -> Path:
    """Write ``folder/.name.XXXX`` (a temporary, readable by others) and return its path; the
    caller renames it into place. No fsync: a data file that a crash left incomplete fails its
    checksum in the manifest (written and synced last) and is recomputed, and fsync costs
    10-100 ms per file on network file systems. (``deeplimit.results`` syncs every file: it
    has no manifest to fall back on.)"""
    handle, temporary = tempfile.mkstemp(dir=folder, prefix=f".{name}.")
    os.close(handle)
    try:
        write(Path(temporary))
        os.chmod(temporary, 0o666 & ~_UMASK)  # mkstemp makes 0600; results are shared files
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return Path(temporary)


def _write_manifest(folder: Path, record: Mapping[str, Any]) -> None:
    """The commit point of a point: written (and synced) last, atomically."""
    atomic_write_text(folder / MANIFEST, json.dumps(record, indent=1, default=json_default) + "\n")


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _current_umask()
