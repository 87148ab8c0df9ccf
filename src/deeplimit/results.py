"""Result files: xarray datasets with their provenance, written atomically.

A result is a netCDF file (h5netcdf engine) whose global attribute ``provenance`` holds the
JSON provenance record (see ``deeplimit.provenance``). Writing goes to a temporary file in the
same folder, flushed and then renamed over the target, so a crash never leaves a half-written
result under the final name.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import xarray as xr

__all__ = ["atomic_write", "atomic_write_bytes", "atomic_write_text", "load_result", "save_result"]


def _atomic_replace(path: Path, write: Any, suffix: str) -> None:
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(
            dir=path.parent, prefix=f".{path.name}.", suffix=suffix
        )
    except OSError as error:  # name the user's path, not the temporary one
        raise type(error)(error.errno, error.strerror, str(path)) from None
    os.close(handle)
    try:
        write(Path(temporary))
        with open(temporary, "rb+") as stream:
            os.fsync(stream.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temporary, 0o666 & ~umask)  # mkstemp creates 0600; results are shared files
        os.replace(temporary, path)
    except OSError as error:
        Path(temporary).unlink(missing_ok=True)
        if error.filename != temporary:
            raise
        raise type(error)(error.errno, error.strerror, str(path)) from None
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def atomic_write(path: Path | str, write: Any, suffix: str = ".tmp") -> None:
    """``write(temporary)`` writes the file, which then replaces ``path`` whole: an error or
    a stop (Ctrl-C, SIGTERM) on the way leaves no temporary file and ``path`` as it was."""
    _atomic_replace(Path(path), write, suffix)


def atomic_write_text(path: Path | str, text: str) -> None:
    """Write ``text`` to ``path`` atomically (temporary file + rename)."""
    _atomic_replace(Path(path), lambda p: p.write_text(text, encoding="utf-8"), ".tmp")


def atomic_write_bytes(path: Path | str, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (temporary file + rename)."""
    _atomic_replace(Path(path), lambda p: p.write_bytes(data), ".tmp")


def save_result(dataset: xr.Dataset, path: Path | str, provenance: dict[str, Any]) -> Path:
    """Save ``dataset`` with ``provenance`` as a netCDF file, atomically."""
    path = Path(path)
    dataset = dataset.copy()
    dataset.attrs = {**dataset.attrs, "provenance": json.dumps(provenance, sort_keys=True)}
    _atomic_replace(path, lambda p: dataset.to_netcdf(p, engine="h5netcdf"), ".nc")
    return path


def load_result(path: Path | str) -> tuple[xr.Dataset, dict[str, Any]]:
    """Load a result file written by ``save_result``: ``(dataset, provenance)``."""
    path = Path(path)
    if not path.exists():
        raise ValueError(f"result file {str(path)!r} does not exist")
    if not path.is_file():
        raise ValueError(f"result file {str(path)!r} is not a file")
    try:
        with xr.open_dataset(path, engine="h5netcdf") as handle:
            dataset = handle.load()
    except (OSError, ValueError) as error:
        reason = " ".join(str(error).split())
        raise ValueError(
            f"{str(path)!r} is not a readable netCDF result file (truncated, or not netCDF): "
            f"{reason}"
        ) from None
    raw = dataset.attrs.pop("provenance", None)
    if raw is None:
        raise ValueError(f"{str(path)!r} has no provenance record: not a deeplimit result file")
    return dataset, json.loads(raw)
