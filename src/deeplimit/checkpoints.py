"""Resume inside a long study: the finished units of a point, kept until the point is stored.

A store point (``deeplimit.store``) is written only when its whole study is done, so a study of
hours that is killed (Ctrl-C, a SLURM time limit, running out of memory) would restart from
zero. A study whose work splits into independent *units* (one (M, D) shape of a grid, one
learning-rate curve, ...) saves each finished unit through the :class:`Checkpoint` that the
runner hands it (:func:`current`), and on a re-run of the same spec loads the finished units
instead of computing them again::

    checkpoint = current()
    for width in spec.widths:
        values = checkpoint.unit(f"M{width}", lambda: {"error": compute(width)})
        ...  # use values["error"], the same arrays whether computed now or loaded

Layout: ``<store>/<experiment>/<key>/partial/<unit>.npz``, next to the point's lock, one
small NumPy archive per unit, written atomically (temporary file, fsync, rename). Each archive
carries the point's key and the unit's name, and is read with ``allow_pickle=False``: one that
does not open, whose checksums (the zip's CRC-32 of every array) fail, or that names another
key or unit is removed and recomputed, never trusted. The key is the point's (experiment,
canonical spec, library version), so a changed spec never meets another spec's units. The
runner removes the folder once the point is stored (``ok`` or ``diverged``) and keeps it when
the point failed or was interrupted, so that the next run resumes. Only the worker holding the
point's lock computes it, so two writers never share a folder; a worker that stalled and lost
its lock could still write a unit, with the same content (units are seeded by their index,
never by their order), atomically.

Outside a store (``Experiment.run`` called directly) :func:`current` is a checkpoint that keeps
nothing, so a study computes every unit as before. The units' numbers do not depend on whether
they were loaded: an archive holds the exact arrays (dtype and bits) that ``unit`` returns.
"""

from __future__ import annotations

import contextlib
import contextvars
import io
import json
import re
import shutil
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .results import atomic_write_bytes

__all__ = ["Checkpoint", "current", "notices", "resuming"]

FORMAT = 1
_META = "__unit__"
_SUFFIX = ".npz"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.=+-]{0,199}")

Notice = Callable[[str], None]


class Checkpoint:
    """The finished units of one point, in ``folder`` (None: keep nothing).

    ``key``: the point's store key, written into every unit and checked when one is read;
    ``label``: how notices name the point. ``reused``, ``computed`` and ``corrupt`` count the
    units loaded, computed (and saved) and found unreadable (then recomputed) by this run."""

    def __init__(self, folder: Path | str | None = None, key: str = "", label: str = "") -> None:
        if folder is not None and not key:
            raise ValueError("key must name the point whose units a checkpoint keeps, got ''")
        self.folder = None if folder is None else Path(folder)
        self.key = key
        self.label = label or key
        self.reused = 0
        self.computed = 0
        self.corrupt = 0
        self._announced = False

    def __repr__(self) -> str:
        where = "nothing kept" if self.folder is None else str(self.folder)
        return f"Checkpoint({where}, reused={self.reused}, computed={self.computed})"

    @property
    def enabled(self) -> bool:
        """Whether units are kept (the study runs for a store point)."""
        return self.folder is not None

    def path(self, unit: str) -> Path:
        if not isinstance(unit, str) or not _NAME.fullmatch(unit):
            raise ValueError(
                "unit must be a name of letters, digits and _ . = + - (at most 200, starting "
                f"with a letter or digit), got {unit!r}"
            )
        if self.folder is None:
            raise ValueError("this checkpoint keeps nothing (no folder): it has no unit paths")
        return self.folder / f"{unit}{_SUFFIX}"

    def finished(self) -> list[str]:
        """The names of the units on disk (not yet checked: :meth:`load` checks each)."""
        if self.folder is None or not self.folder.is_dir():
            return []
        return sorted(p.name[: -len(_SUFFIX)] for p in self.folder.glob(f"*{_SUFFIX}"))

    def unit(self, name: str, compute: Callable[[], Mapping[str, Any]]) -> dict[str, np.ndarray]:
        """The arrays of unit ``name``: loaded when an earlier run of this point finished it,
        else ``compute()`` (a mapping of names to arrays or numbers), saved, and returned as
        the same NumPy arrays that loading would give."""
        self._announce()
        found = self.load(name)
        if found is not None:
            self.reused += 1
            return found
        arrays = _arrays(compute())
        self.save(name, arrays)
        self.computed += 1
        return arrays

    def load(self, name: str) -> dict[str, np.ndarray] | None:
        """The saved arrays of unit ``name``, or None when it is not there or not sound (then
        it is removed, and counted in ``corrupt``)."""
        if self.folder is None:
            return None
        path = self.path(name)
        if not path.is_file():
            return None
        try:
            with np.load(path, allow_pickle=False) as archive:
                arrays = {field: archive[field] for field in archive.files}
            meta = json.loads(str(arrays.pop(_META)))
            if meta != self._meta(name):
                raise ValueError(f"it belongs to {meta}")
        except Exception:  # unreadable in any way (truncated, bad CRC, not a zip): recompute
            self.corrupt += 1
            path.unlink(missing_ok=True)
            return None
        return arrays

    def save(self, name: str, arrays: Mapping[str, Any]) -> None:
        """Write unit ``name`` atomically (nothing when this checkpoint keeps nothing)."""
        if self.folder is None:
            return
        path = self.path(name)
        arrays = _arrays(arrays)
        meta = json.dumps(self._meta(name), sort_keys=True)
        buffer = io.BytesIO()
        np.savez(buffer, **arrays, **{_META: np.array(meta)})
        atomic_write_bytes(path, buffer.getvalue())

    def _meta(self, name: str) -> dict[str, Any]:
        """What every archive of unit ``name`` of this point says about itself."""
        return {"format": FORMAT, "key": self.key, "unit": name}

    def discard(self) -> None:
        """Remove every unit (the point is stored: they are not needed any more)."""
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)

    def _announce(self) -> None:
        if self._announced:
            return
        self._announced = True
        found = len(self.finished())
        notice = _NOTICE.get()
        if found and notice is not None:
            notice(
                f"resuming {self.label}: {found} finished unit{'s' if found != 1 else ''} of an "
                "interrupted run found; they are loaded, not computed again"
            )


def _arrays(values: Mapping[str, Any]) -> dict[str, np.ndarray]:
    if not isinstance(values, Mapping):
        raise TypeError(f"a unit's values must be a mapping of names to arrays, got {values!r}")
    arrays = {}
    for field, value in values.items():
        if not isinstance(field, str) or not field.isidentifier() or field == _META:
            raise ValueError(f"a unit's field names must be identifiers, got {field!r}")
        if hasattr(value, "detach"):  # a torch tensor, wherever it lives
            value = value.detach().cpu().numpy()
        array = np.asarray(value)
        if array.dtype == object:
            raise TypeError(f"unit field {field!r} must be numbers or text, not Python objects")
        arrays[field] = array
    return arrays


_CURRENT: contextvars.ContextVar[Checkpoint | None] = contextvars.ContextVar(
    "deeplimit_checkpoint", default=None
)
_NOTICE: contextvars.ContextVar[Notice | None] = contextvars.ContextVar(
    "deeplimit_checkpoint_notice", default=None
)


def current() -> Checkpoint:
    """The checkpoint of the point being computed, or one that keeps nothing."""
    checkpoint = _CURRENT.get()
    return checkpoint if checkpoint is not None else Checkpoint()


@contextlib.contextmanager
def resuming(folder: Path | str, key: str, label: str = "") -> Iterator[Checkpoint]:
    """Make a checkpoint of the units in ``folder`` (of the point ``key``) the current one in
    the body (what the runner does around a point's computation)."""
    checkpoint = Checkpoint(folder, key, label)
    token = _CURRENT.set(checkpoint)
    try:
        yield checkpoint
    finally:
        _CURRENT.reset(token)


@contextlib.contextmanager
def notices(callback: Notice | None) -> Iterator[None]:
    """Send the one-line notices of checkpoints in the body (a study resuming) to
    ``callback`` (the command line prints them)."""
    token = _NOTICE.set(callback)
    try:
        yield
    finally:
        _NOTICE.reset(token)
