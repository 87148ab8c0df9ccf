"""Small C kernels compiled on first use (the CPU sampler's, ``initialization/native.py``, and
the training's sweeps, ``training/native.py``).

A kernel's C file is compiled with the machine's C compiler (``$CC``, else ``cc``) into a cache
folder (``$DEEPLIMIT_CACHE_DIR``, else ``$XDG_CACHE_HOME/deeplimit`` or ``~/.cache/deeplimit``),
keyed by the source, the compiler's version and the CPU's flags (a home folder shared by the
nodes of a cluster holds one build per kind of CPU), written atomically, and loaded through
``ctypes`` (which lets other threads run while it computes). Where the cache folder cannot be
written or the library there does not load, this user's own folder in the temporary folder is
tried (refused if another user could write it). No value-changing flags: no fused
multiply-add, no fast-math, so a kernel rounds the same on every CPU it loads on.

``DEEPLIMIT_NATIVE=0`` turns every kernel off; each caller keeps a tensor path beside its
kernel and records in the provenance which one ran (``devices.note_compiled_kernel``).
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import stat
import subprocess
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .devices import note_compiled_kernel

FLAGS = (
    "-O3",
    "-march=native",
    "-ffp-contract=off",  # no fused multiply-add: the same rounding on every CPU
    "-fno-math-errno",  # sqrt as one instruction
    "-fno-trapping-math",  # selects (the ReLU) vectorized; no value changes
    "-std=c99",
)
# x86 only: AVX-512 registers where the CPU has them (GCC and Clang default to 256 bits); a
# compiler that refuses them builds with FLAGS alone. The kernels' lanes are independent
# samples or fixed interleaved partial sums, so the width of a vector changes no number
# (checked against a 256-bit build: the same bits, but for the sign bit of a NaN, which no
# caller reads); the sampler's several-input layer ran ~10 % faster on an AVX-512 Xeon
X86_FLAGS = ("-mprefer-vector-width=512",)


def _flags() -> tuple[str, ...]:
    """The compiler flags for this machine: ``FLAGS``, and ``X86_FLAGS`` on x86-64."""
    x86 = platform.machine().lower() in ("x86_64", "amd64", "i386", "i686")
    return FLAGS + X86_FLAGS if x86 else FLAGS


def disabled() -> bool:
    """Whether ``DEEPLIMIT_NATIVE`` turns the compiled kernels off."""
    value = os.environ.get("DEEPLIMIT_NATIVE", "1").strip().lower()
    return value in ("0", "false", "no", "off")


def _cache_dir() -> Path:
    explicit = os.environ.get("DEEPLIMIT_CACHE_DIR")
    if explicit:
        return Path(explicit) / "native"
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "deeplimit" / "native"


def _cpu_flags() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as info:
            for line in info:
                if line.startswith(("flags", "Features")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def _compiler() -> str | None:
    name = os.environ.get("CC") or "cc"
    return shutil.which(name)


def _check_private(folder: Path) -> None:
    """Refuse (OSError) a folder in the shared temporary folder that is a link, or that
    another user could have made or could write: a library loaded from it would run their
    code."""
    status = os.lstat(folder)
    if not stat.S_ISDIR(status.st_mode):
        raise PermissionError(f"{folder} is not a folder")
    if hasattr(os, "getuid") and (status.st_uid != os.getuid() or status.st_mode & 0o022):
        raise PermissionError(f"{folder} is not this user's alone")


def _folders() -> list[Path]:
    """Where the library may be: the cache folder, then this user's own folder in the
    temporary folder (a read-only or shared home, a folder mounted without execution)."""
    uid = getattr(os, "getuid", lambda: 0)()
    return [_cache_dir(), Path(tempfile.gettempdir()) / f"deeplimit-{uid}"]


def _build(
    compiler: str,
    source_file: Path,
    stem: str,
    folder: Path,
    private: bool,
    flags: tuple[str, ...] = FLAGS,
) -> Path:
    """The shared library ``stem-<key>.so`` of ``source_file`` for this compiler, CPU and
    ``flags`` in ``folder`` (``private``: a folder of this user's own, checked), compiled there
    if not there yet."""
    source = source_file.read_bytes()
    version = subprocess.run(
        [compiler, "--version"], capture_output=True, text=True, timeout=30, check=True
    ).stdout
    key = hashlib.sha256()
    for part in (source, version.encode(), " ".join(flags).encode(), _cpu_flags().encode()):
        key.update(part)
        key.update(b"\0")
    key.update(platform.machine().encode())
    library = folder / f"{stem}-{key.hexdigest()[:20]}.so"
    if private:
        folder.mkdir(mode=0o700, exist_ok=True)
        _check_private(folder)
    if library.exists():
        return library
    folder.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(suffix=".so", dir=folder)
    os.close(handle)
    try:
        command = [compiler, *flags, "-fPIC", "-shared", "-o", temporary, str(source_file), "-lm"]
        subprocess.run(command, capture_output=True, text=True, timeout=120, check=True)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temporary, 0o755 & ~umask)  # readable by whoever shares the cache folder
        os.replace(temporary, library)  # atomic: another process sees all of it or none
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)
    return library


def load(source_file: Path, stem: str) -> tuple[ctypes.CDLL | None, str]:
    """``(library, its file name)`` for the C file ``source_file``, built where needed, or
    ``(None, why not)``."""
    if disabled():
        return None, "disabled by DEEPLIMIT_NATIVE=0"
    compiler = _compiler()
    if compiler is None:
        return None, f"no C compiler ({os.environ.get('CC') or 'cc'} not found)"
    reason = "no folder to build in"
    for position, folder in enumerate(_folders()):  # the next folder where one fails
        try:
            try:
                flags = _flags()
                path = _build(compiler, source_file, stem, folder, position > 0, flags)
            except subprocess.CalledProcessError:
                if flags == FLAGS:
                    raise
                # a compiler without the x86 extras (an old GCC or Clang): the plain flags
                path = _build(compiler, source_file, stem, folder, position > 0, FLAGS)
            return ctypes.CDLL(str(path)), path.name
        except subprocess.CalledProcessError as error:
            lines = (error.stderr or "").strip().splitlines()
            return None, "the compiler failed: " + (lines[-1] if lines else str(error))
        except (OSError, subprocess.SubprocessError) as error:
            reason = f"could not build or load the kernel: {error}"
    return None, reason


class Library:
    """The kernels of one C file, built and loaded on the first call of ``kernels()`` (once,
    under a lock: the sampler's block threads may ask at once) and bound by ``bind`` (the
    ``ctypes`` signatures), or None where they do not load; ``state`` holds ``kernels``,
    ``reason`` (why not) and ``library`` (the file's name), and the provenance of the runs
    names the path (``devices.note_compiled_kernel``)."""

    def __init__(self, source_file: Path, stem: str, bind: Callable[[ctypes.CDLL], Any]) -> None:
        self.source_file, self.stem, self.bind = source_file, stem, bind
        self.state: dict[str, Any] = {}
        self._lock = threading.Lock()

    def kernels(self) -> Any:
        """What ``bind`` made of the library (loading it on the first call), or None."""
        state = self.state
        if "kernels" not in state:
            with self._lock:
                if "kernels" not in state:
                    library, name = load(self.source_file, self.stem)
                    state["reason"] = None if library is not None else name
                    if library is not None:
                        state["library"] = name
                    loaded = None if library is None else self.bind(library)
                    note = name if library is not None else f"tensor path: {name}"
                    note_compiled_kernel(self.stem, note)
                    state["kernels"] = loaded
        return state["kernels"]

    def available(self) -> bool:
        """Whether the kernels load."""
        return self.kernels() is not None

    def reason(self) -> str | None:
        """Why the kernels do not load (None where they do)."""
        self.kernels()
        return self.state.get("reason")
