"""Provenance: what produced a result (config, seed, library version, device, time).

Every result file deeplimit writes carries this record, and every report shows it.
"""

from __future__ import annotations

import datetime as _dt
import functools
import json
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

import torch

from ._version import __version__
from .devices import compiled_kernels, describe_device, resolve_device

__all__ = ["git_commit", "provenance", "provenance_line"]


@functools.lru_cache(maxsize=1)
def git_commit() -> str | None:
    """The commit of the deeplimit source tree when it is a git checkout (else None), with
    ``-dirty`` where tracked files differ from it. Read once per process, at its first call:
    runs ask for it when they start (``run_point``, the CLI's ``sample`` and ``train``), so
    that a result records the code that computed it even if the checkout moves meanwhile."""
    here = Path(__file__).resolve().parent
    try:
        result = subprocess.run(
            ["git", "-C", str(here), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if result.returncode != 0:
        return None
    commit = result.stdout.strip()
    dirty = subprocess.run(
        ["git", "-C", str(here), "status", "--porcelain", "--untracked-files=no"],
        capture_output=True,
        text=True,
        timeout=5,
        check=False,
    )
    return commit + ("-dirty" if dirty.returncode == 0 and dirty.stdout.strip() else "")


def provenance(
    config: dict[str, Any],
    *,
    seed: int | None = None,
    device: Any = "cpu",
    wall_time_s: float | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A JSON-serializable provenance record."""
    record: dict[str, Any] = {
        "library": "deeplimit",
        "version": __version__,
        "git_commit": git_commit(),
        "config": config,
        "seed": seed,
        "device": describe_device(resolve_device(device)),
        "created_utc": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "host": platform.node(),
        "command": " ".join(sys.argv) if sys.argv and sys.argv[0] else None,
    }
    if kernels := compiled_kernels():  # e.g. the several-input layer of the CPU chain
        record["compiled_kernels"] = kernels
    if wall_time_s is not None:
        record["wall_time_s"] = round(float(wall_time_s), 3)
    if extra:
        record.update(extra)
    json.dumps(record)  # fail early if something is not serializable
    return record


def provenance_line(record: dict[str, Any]) -> str:
    """One line for reports: version, commit, device, seed, time."""
    commit = (record.get("git_commit") or "no git")[:12]
    parts = [
        f"deeplimit {record.get('version')} ({commit})",
        f"device {record.get('device')}",
        f"seed {record.get('seed')}",
        f"torch {record.get('torch')}",
        f"{record.get('created_utc')}",
    ]
    if record.get("wall_time_s") is not None:
        parts.append(f"{record['wall_time_s']:.1f} s")
    return " · ".join(parts)
