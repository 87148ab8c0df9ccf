"""Large CPU result buffers in anonymous mappings with transparent huge pages, pooled for
the next results (``empty``): the chain's recorded states and the observers' per-layer
results are written once into memory that a plain ``torch.empty`` would fault in 4 KiB at
a time at every run."""

from __future__ import annotations

import ctypes
import math
import mmap
import threading
import weakref

import numpy as np
import torch
from torch import Tensor

_HUGE_BYTES = 2**20  # CPU results from 1 MiB up are mapped with huge pages (``empty``)
_HUGE_PAGE = 2**21


def _transparent_huge_pages() -> bool:
    """Whether ``madvise(MADV_HUGEPAGE)`` gives huge pages (Linux, THP not ``never``)."""
    if not hasattr(mmap, "MADV_HUGEPAGE"):
        return False
    try:
        with open("/sys/kernel/mm/transparent_hugepage/enabled") as file:
            return "[never]" not in file.read()
    except OSError:
        return False


_THP = _transparent_huge_pages()
_POPULATE = getattr(mmap, "MAP_POPULATE", 0)  # Linux only


_POOL_BYTES = 2**29  # freed result mappings kept for the next results: 512 MiB at most
_pool: list[mmap.mmap] = []
_pool_lock = threading.Lock()


def _give_back(memory: mmap.mmap) -> None:
    """A mapping of results that no tensor uses any more goes to a small pool
    (``_POOL_BYTES`` in all), its pages still mapped, for the next results of about its size
    (``empty``): as a caching allocator does, so that a loop of runs (a sweep, a benchmark)
    zeroes the pages of its results once rather than at every run. Past the pool's size it
    is unmapped (when this last reference goes)."""
    with _pool_lock:
        if sum(len(m) for m in _pool) + len(memory) <= _POOL_BYTES:
            _pool.append(memory)


def _reused(nbytes: int) -> mmap.mmap | None:
    """A pooled mapping of ``nbytes`` to twice that, or None."""
    with _pool_lock:
        for index, memory in enumerate(_pool):
            if nbytes <= len(memory) <= 2 * nbytes:
                return _pool.pop(index)
    return None


def empty(shape: tuple[int, ...], dtype: torch.dtype, device: torch.device) -> Tensor:
    """``torch.empty(shape)``; on a Linux CPU, a large buffer is an anonymous mapping with
    transparent huge pages (``MADV_HUGEPAGE``, 2 MiB aligned), or else ``MAP_POPULATE``:
    a page fault per 4 KiB at first touch dominates writing large results (measured on a
    virtual machine: 64 MiB in 35-45 ms with 4 KiB pages, 8-12 ms with huge pages); a
    mapping freed by earlier results is reused (``_give_back``).

    The tensor is made on a window of the mapping (a ctypes array at its address, made for
    this tensor alone), which the tensor keeps alive; when the window goes (no tensor, view
    or array uses it any more) a finalizer hands the mapping back. A finalizer on the mapping
    itself runs once only (PEP 442): a mapping was pooled once, then unmapped at its second
    release, and every other run of a loop paid its page faults again. The tensor's storage
    cannot be resized."""
    itemsize = torch.empty((), dtype=dtype).element_size()
    count = math.prod(shape)
    nbytes = count * itemsize
    if torch.device(device).type != "cpu" or nbytes < _HUGE_BYTES or not (_THP or _POPULATE):
        return torch.empty(shape, dtype=dtype, device=device)
    size = nbytes + _HUGE_PAGE if _THP else nbytes
    memory = _reused(size)
    if memory is None:
        flags = mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | (0 if _THP else _POPULATE)
        memory = mmap.mmap(-1, size, flags=flags)
        if _THP:
            memory.madvise(mmap.MADV_HUGEPAGE)
    address = np.frombuffer(memory, dtype=np.uint8, count=1).ctypes.data
    offset = -address % _HUGE_PAGE if _THP else 0  # a multiple of the itemsize too
    window = (ctypes.c_char * nbytes).from_address(address + offset)
    weakref.finalize(window, _give_back, memory).atexit = False
    return torch.frombuffer(window, dtype=dtype, count=count).view(shape)
