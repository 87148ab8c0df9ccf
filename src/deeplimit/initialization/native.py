"""A compiled kernel for one layer of the several-input chain on the CPU (issue 13).

For ``k > 1`` inputs a layer of the exact-in-law chain factors ``Phi Phi^T`` by modified
Gram-Schmidt and adds ``s C Z``: about ``3 k^2 / 2`` passes over the block with tensor
operations (``chain._factor_rows_last``). ``_factor_update.c`` does the same arithmetic per
sample in tiles of 64 samples that stay in the L1 cache, one pass over the block's memory
(and, in one pass each, the norms of a state, their range and the active counts, and the
correlations of several inputs).
It is compiled on first use with the machine's C compiler and cached (``deeplimit.compiled``:
where, keyed by what, and the fallbacks).

Where no compiler works, or with ``DEEPLIMIT_NATIVE=0``, the chain takes the tensor path:
the same law; the numbers differ from the kernel's by rounding only (the order of the sums
along the width), so a seed gives the same numbers whatever the chunk size or the threads,
the same on every x86-64 or ARM machine where the kernel loads (no fused multiply-add; the
rare samples whose squares underflow are factored again by torch, which rounds as that
machine's kernels do), and another rounding where it does not load. ``available()``
says which path runs and ``reason()`` why not.
"""

from __future__ import annotations

import ctypes
import math
import threading
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .. import compiled
from ..devices import note_compiled_kernel

TILE = 64  # samples per tile, as in the C source
_SOURCE = Path(__file__).with_name("_factor_update.c")


def _bind(library: ctypes.CDLL) -> dict[Any, Any]:
    """The kernels by dtype (and by name and dtype), with their ``ctypes`` signatures."""
    pointer, long, double = ctypes.c_void_p, ctypes.c_long, ctypes.c_double
    kernels: dict[Any, Any] = {}
    for dtype, suffix in ((torch.float64, "f64"), (torch.float32, "f32")):
        function = getattr(library, f"factor_update_{suffix}")
        function.restype = long
        function.argtypes = [pointer] * 9 + [long] * 3 + [double] * 5 + [ctypes.c_int] * 2
        kernels[dtype] = function
        norms = getattr(library, f"row_norms_{suffix}")
        norms.restype = None
        norms.argtypes = [pointer] * 2 + [long] * 3 + [ctypes.c_int] + [pointer] * 2
        norms.argtypes += [long] + [pointer] * 3
        kernels[("norms", dtype)] = norms
        positive = getattr(library, f"row_norms_{suffix}_positive")
        positive.restype = None
        positive.argtypes = [pointer] * 2 + [long] * 4
        kernels[("positive", dtype)] = positive
        correlations = getattr(library, f"correlations_{suffix}")
        correlations.restype = None
        correlations.argtypes = [pointer] * 3 + [long] * 4 + [pointer] * 2
        kernels[("correlations", dtype)] = correlations
        width_one = getattr(library, f"width_one_{suffix}")
        width_one.restype = None
        width_one.argtypes = [pointer, long, long] + [pointer] * 4 + [long] + [pointer] * 3
        kernels[("width one", dtype)] = width_one
        stretch = getattr(library, f"relu_stretch_{suffix}")
        stretch.restype = long
        stretch.argtypes = [pointer, long] + [pointer] * 3 + [long] * 2 + [double] * 2
        kernels[("relu stretch", dtype)] = stretch
        first = getattr(library, f"samples_first_{suffix}")
        first.restype = None
        first.argtypes = [pointer] + [long] * 3 + [pointer] + [long] * 2
        kernels[("samples first", dtype)] = first
    return kernels


LIBRARY = compiled.Library(_SOURCE, "factor_update", _bind)


def kernels() -> dict[Any, Any] | None:
    """The loaded kernels (loading them on the first call), or None."""
    return LIBRARY.kernels()


def available() -> bool:
    """Whether the compiled kernel runs the several-input layers on the CPU."""
    return LIBRARY.available()


def reason() -> str | None:
    """Why the kernel is not available (None where it is)."""
    return LIBRARY.reason()


def _rows_function(
    name: str,
    memory: Tensor,
    rows: Tensor,
    dtype: torch.dtype,
    strided: bool = False,
    count: int | None = None,
) -> Any:
    """The kernel ``name`` for samples-last ``memory`` ``(m, n, B)`` (contiguous, on the CPU)
    and ``rows`` ``(count, B)`` (``count`` = ``m`` unless given) of ``dtype``: contiguous, or
    with ``strided`` rows of contiguous entries at any distance (a block's columns of a
    results array); or None."""
    loaded = kernels()
    function = None if loaded is None else loaded.get((name, memory.dtype))
    if (
        function is None
        or memory.device.type != "cpu"
        or rows.device.type != "cpu"
        or rows.dtype != dtype
        or not memory.is_contiguous()
        or rows.shape != (memory.shape[0] if count is None else count, memory.shape[2])
    ):
        return None
    if rows.is_contiguous():
        return function
    m, size = rows.shape
    if strided and (size < 2 or rows.stride(1) == 1) and (m < 2 or rows.stride(0) >= size):
        return function
    return None


def _norms_function(memory: Tensor, rows: Tensor, extremes: np.ndarray | None) -> Any:
    """The norms' kernel for ``memory``, ``rows`` and ``extremes`` laid out as ``row_norms``
    reads them, or None."""
    function = _rows_function("norms", memory, rows, memory.dtype)
    if extremes is not None and not _extremes_laid_out(extremes, 6):
        return None
    return function


def row_norms_address(memory: Tensor, rows: Tensor) -> int | None:
    """The address of ``row_norms``' kernel for ``memory`` and ``rows`` (as ``row_norms``
    takes them; for a compiled call that runs it), or None where it would decline them."""
    function = _norms_function(memory, rows, None)
    return None if function is None else ctypes.cast(function, ctypes.c_void_p).value


def _extremes_laid_out(extremes: np.ndarray, count: int) -> bool:
    """Whether ``extremes`` is a writable C-contiguous float64 array of ``count`` numbers or
    more, as the kernels write the extremes they read on the way."""
    return (
        extremes.dtype == np.float64
        and extremes.size >= count
        and extremes.flags.c_contiguous
        and extremes.flags.writeable
    )


def _outputs_fit(
    memory: Tensor,
    rows: Tensor,
    relu: bool,
    counts: Tensor | None,
    plain: Tensor | None,
    divisor: Tensor | None,
    ratio: Tensor | None,
) -> bool:
    """Whether ``row_norms`` takes these optional outputs (see there)."""
    return not (
        (
            counts is not None
            and _rows_function("positive", memory, counts, torch.int32, strided=True) is None
        )
        or (
            plain is not None
            and (not relu or _rows_function("norms", memory, plain, rows.dtype) is None)
        )
        or (divisor is None) != (ratio is None)
        or any(
            out is not None and _rows_function("norms", memory, out, rows.dtype) is None
            for out in (divisor, ratio)
        )
    )


def row_norms(
    memory: Tensor,
    rows: Tensor,
    relu: bool = False,
    extremes: np.ndarray | None = None,
    counts: Tensor | None = None,
    plain: Tensor | None = None,
    divisor: Tensor | None = None,
    ratio: Tensor | None = None,
) -> bool:
    """``rows[j, b] = ||f(memory[j, :, b])||`` for samples-last ``memory`` ``(m, n, B)`` into
    ``rows`` ``(m, B)`` (both contiguous, on the CPU, of one dtype), ``f`` the ReLU where
    ``relu`` (NaN kept), in one pass, the squares summed in double along the width. In the
    same pass where given: ``extremes`` (a float64 array of 6) the smallest and largest entry
    of ``memory``, of ``rows`` and of ``plain`` (NaN where an entry of ``memory`` is NaN);
    ``counts`` (int32 ``(m, B)``, rows of contiguous entries) the entries above 0 of each
    row; with ``relu``, ``plain`` (like ``rows``) the norms of ``memory`` itself (the bits of
    ``relu=False``); with a ``divisor`` (like ``rows``), ``ratio = rows / divisor`` (like
    ``rows``; ``torch.div``'s bits). False (nothing written) where the kernel is not available
    or the tensors are not laid out so."""
    function = _norms_function(memory, rows, extremes)
    m, n, size = memory.shape
    if function is None or not _outputs_fit(memory, rows, relu, counts, plain, divisor, ratio):
        return False
    where = None if extremes is None else extremes.ctypes.data
    count, distance = (None, 0) if counts is None else (counts.data_ptr(), counts.stride(0))
    other = None if plain is None else plain.data_ptr()
    divide = [None if out is None else out.data_ptr() for out in (divisor, ratio)]
    function(
        memory.data_ptr(),
        rows.data_ptr(),
        m,
        n,
        size,
        int(relu),
        where,
        count,
        distance,
        other,
        *divide,
    )
    return True


class RowNorms:
    """``row_norms`` bound to one block's ``memory`` ``(m, n, B)``, its ``rows`` and its
    ``extremes``, checked once: a layer passes the optional outputs only, each checked at its
    first use (``row_norms``'s checks of every tensor cost about 20 us of interpreter time a
    layer, while the other thread of the chain may wait for the interpreter's lock). Made per
    block (``chain._Workspace.norms_pass``), so the tensors it keeps live no longer."""

    def __init__(self, memory: Tensor, rows: Tensor, extremes: np.ndarray | None) -> None:
        self.memory, self.rows, self.extremes = memory, rows, extremes
        self.function = _norms_function(memory, rows, extremes)
        self.checked: dict[int, Tensor] = {}
        # the arguments of a pass another compiled call has just run (``rng``'s drawing
        # update, ``chain._drawn_increment``): the next call, with exactly these, is done
        self.ready: tuple | None = None

    @property
    def address(self) -> int | None:
        """The kernel's address (for a compiled call that runs it), or None."""
        function = self.function
        return None if function is None else ctypes.cast(function, ctypes.c_void_p).value

    def arguments(
        self,
        relu: bool,
        counts: Tensor | None = None,
        plain: Tensor | None = None,
        divisor: Tensor | None = None,
        ratio: Tensor | None = None,
    ) -> tuple | None:
        """The kernel's twelve arguments for this call where it runs bound and checked, else
        None (then ``__call__`` checks the outputs first, or declines)."""
        if (
            self.function is None
            or not self._counts_fit(counts)
            or not self._outputs_checked(plain, divisor, ratio)
            or (divisor is None) != (ratio is None)
            or (plain is not None and not relu)
        ):
            return None
        m, n, size = self.memory.shape
        count, distance = (None, 0) if counts is None else (counts.data_ptr(), counts.stride(0))
        return (
            self.memory.data_ptr(),
            self.rows.data_ptr(),
            m,
            n,
            size,
            int(relu),
            None if self.extremes is None else self.extremes.ctypes.data,
            count,
            distance,
            None if plain is None else plain.data_ptr(),
            None if divisor is None else divisor.data_ptr(),
            None if ratio is None else ratio.data_ptr(),
        )

    def __call__(
        self,
        relu: bool,
        counts: Tensor | None = None,
        plain: Tensor | None = None,
        divisor: Tensor | None = None,
        ratio: Tensor | None = None,
    ) -> bool:
        """``row_norms(memory, rows, relu, extremes, counts, plain, divisor, ratio)``; nothing
        to do where ``ready`` holds exactly these arguments (``ready`` holds for this call
        only)."""
        ready, self.ready = self.ready, None
        function = self.function
        if function is None:
            return False
        arguments = self.arguments(relu, counts, plain, divisor, ratio)
        if arguments is not None:
            if arguments != ready:
                function(*arguments)
            return True
        if self._counts_fit(counts) and not self._outputs_checked(plain, divisor, ratio):
            # outputs not seen yet: ``row_norms`` checks them (and declines what it cannot)
            return row_norms(
                self.memory, self.rows, relu, self.extremes, counts, plain, divisor, ratio
            ) and self._remember(counts, plain, divisor, ratio)
        return False

    def accept(
        self,
        relu: bool,
        counts: Tensor | None = None,
        plain: Tensor | None = None,
        divisor: Tensor | None = None,
        ratio: Tensor | None = None,
    ) -> bool:
        """Check these outputs as ``row_norms`` would and keep them as checked, for a
        compiled call that runs the pass with them (``arguments``); False where it would
        decline them."""
        if self.function is None or not _outputs_fit(
            self.memory, self.rows, relu, counts, plain, divisor, ratio
        ):
            return False
        return self._remember(plain, divisor, ratio)

    def _counts_fit(self, counts: Tensor | None) -> bool:
        m, _, size = self.memory.shape
        return counts is None or _counts_laid_out(counts, m, size)

    def _outputs_checked(self, *outputs: Tensor | None) -> bool:
        """Whether every output given was checked at an earlier call (``_remember``)."""
        checked = self.checked
        return all(out is None or checked.get(id(out)) is out for out in outputs)

    def _remember(self, *outputs: Tensor | None) -> bool:
        """Keep ``outputs`` as checked (after ``row_norms`` accepted them); True."""
        if len(self.checked) >= 256:  # tensors that are not passed again
            self.checked.clear()
        for out in outputs:
            if out is not None:
                self.checked[id(out)] = out
        return True


def _counts_laid_out(counts: Tensor, m: int, size: int) -> bool:
    """Whether ``counts`` is an int32 CPU ``(m, size)`` tensor of rows of contiguous entries
    at any distance (a block's columns of a results array), as the kernels write counts."""
    return (
        counts.dtype == torch.int32
        and counts.device.type == "cpu"
        and counts.shape == (m, size)
        and (size < 2 or counts.stride(1) == 1)
        and (m < 2 or counts.stride(0) >= size)
    )


def count_positive(memory: Tensor, rows: Tensor) -> bool:
    """``rows[j, b] = #{t: memory[j, t, b] > 0}`` (int32 ``rows`` ``(m, B)``, each row
    contiguous), as ``row_norms`` reads ``memory``; False where it cannot."""
    function = _rows_function("positive", memory, rows, torch.int32, strided=True)
    if function is None:
        return False
    m, n, size = memory.shape
    distance = rows.stride(0) if m > 1 else size
    function(memory.data_ptr(), rows.data_ptr(), m, n, size, distance)
    return True


def samples_first(memory: Tensor, out: Tensor) -> bool:
    """``out.copy_(memory.permute(2, 0, 1))`` for the samples-last CPU ``memory`` ``(k, n, B)``
    (contiguous) into ``out`` ``(B, k, n)`` of its dtype whose last axis is contiguous (a
    block's rows of a results array), in tiles that stay in the L1 cache; False (nothing
    written) where the kernel is not available or the tensors are not laid out so."""
    loaded = kernels()
    function = None if loaded is None else loaded.get(("samples first", memory.dtype))
    if (
        function is None
        or memory.dim() != 3
        or out.dim() != 3
        or memory.device.type != "cpu"
        or out.device.type != "cpu"
        or out.dtype != memory.dtype
        or not memory.is_contiguous()
        or out.shape != (memory.shape[2], memory.shape[0], memory.shape[1])
        or out.requires_grad
    ):
        return False
    k, n, size = memory.shape
    ld, lj = out.stride(0), out.stride(1)
    if (  # rows of each sample's inputs one after the other, samples apart: no overlap
        (n > 1 and out.stride(2) != 1) or (k > 1 and lj < n) or (size > 1 and ld < (k - 1) * lj + n)
    ):
        return False
    function(memory.data_ptr(), k, n, size, out.data_ptr(), ld, lj)
    return True


_STRETCH_CHECKED: dict[torch.dtype, Any] = {}
_STRETCH_LOCK = threading.Lock()


def relu_stretch(dtype: torch.dtype) -> Any:
    """``stretch(z, steps, y, norm, spare, n, B, value, bound)`` (by address): steps of the
    chain of one ReLU input on its ``(n, B)`` state with the normals of each step read from
    ``z`` (``_factor_update.c``'s ``relu_stretch``: the increment as torch's ``addcmul_``
    rounds it, the norms as ``row_norms``, every norm checked), or None where the kernel does
    not load or did not give torch's bits on the check steps of this process (then torch's
    operations run, with the same numbers: the provenance says why)."""
    if dtype not in _STRETCH_CHECKED:
        with _STRETCH_LOCK:
            if dtype not in _STRETCH_CHECKED:
                loaded = kernels()
                function = None if loaded is None else loaded.get(("relu stretch", dtype))
                why = None if function is None else _stretch_differs(function, dtype)
                if why is not None:
                    note_compiled_kernel("relu_stretch", f"torch's operations: {why}")
                    function = None
                _STRETCH_CHECKED[dtype] = function
    return _STRETCH_CHECKED[dtype]


def _stretch_differs(function: Any, dtype: torch.dtype) -> str | None:
    """None where ``function`` gives the bits of torch's ``addcmul_`` and the chain's norms
    (``torch.clamp`` at width 1, ``row_norms`` wider) on a few check steps, else how not."""
    generator = torch.Generator().manual_seed(5)
    for n, size in ((1, 37), (1, 1000), (3, 41), (16, 64)):
        y = torch.randn(n, size, generator=generator, dtype=dtype) * 3
        y[0, :2] = torch.tensor([-0.0, 0.0], dtype=dtype)
        z = torch.randn(3, n, size, generator=generator, dtype=dtype)
        norm = torch.empty(size, dtype=dtype)
        if n == 1:
            torch.clamp(y[0], min=0, out=norm)
        elif not row_norms(y.unsqueeze(0), norm.unsqueeze(0), relu=True):
            return "the norms' kernel declined its check"
        value = 0.3 / (n + 1)
        expected, last = y.clone(), norm.clone()
        for step in z:
            expected.addcmul_(last, step, value=value)
            last = torch.empty_like(norm)
            if n == 1:
                torch.clamp(expected[0], min=0, out=last)
            else:
                row_norms(expected.unsqueeze(0), last.unsqueeze(0), relu=True)
        out, first, spare = y.clone(), norm.clone(), torch.empty_like(norm)
        done = function(
            z.data_ptr(),
            3,
            out.data_ptr(),
            first.data_ptr(),
            spare.data_ptr(),
            n,
            size,
            value,
            0.0,
        )
        if done != 3 or not (torch.equal(out, expected) and torch.equal(first, last)):
            return f"differs from torch's addcmul_ here ({n} x {size})"
        if not torch.equal(out.signbit(), expected.signbit()):
            return f"differs from torch's addcmul_ in the sign of a zero ({n} x {size})"
    return None


def width_one(
    state: Tensor,
    modulus: Tensor | None,
    relu: Tensor,
    sign: Tensor | None,
    counts: Tensor | None,
    extremes: np.ndarray,
    divisor: Tensor | None = None,
    ratio: Tensor | None = None,
) -> bool:
    """A layer of a width-1 ReLU state in one pass: for the contiguous CPU ``state`` (its last
    axis the ``B`` samples of a row, ``m`` rows in all), ``relu = max(state, 0)``
    (``torch.clamp(min=0)``'s bits: NaN and -0 kept) and where given ``modulus = |state|``,
    ``sign`` = 1 where ``state > 0``, else +0 (``torch.sign`` of a finite ``relu``), all
    contiguous of ``state``'s size in its memory order, and ``counts`` (int32 ``(m, B)``, rows
    of contiguous entries at any distance: the columns of a results array) = ``state > 0``;
    ``extremes`` (a float64 array of 4) the smallest and largest of ``modulus``, then of
    ``relu`` (NaN where an entry is NaN, 1 where there is none); with a ``divisor`` (laid out
    as ``state``), ``ratio = relu / divisor`` (``torch.div``'s bits). False (nothing written)
    where the kernel is not available or the tensors are not laid out so."""
    loaded = kernels()
    function = None if loaded is None else loaded.get(("width one", state.dtype))
    if (divisor is None) != (ratio is None):
        return False
    size = state.shape[-1] if state.ndim else 1
    rows = math.prod(state.shape[:-1])
    if (
        function is None
        or relu is None
        or state.device.type != "cpu"
        or not state.is_contiguous()
        or not _extremes_laid_out(extremes, 4)
        or any(
            out is not None
            and (
                out.dtype != state.dtype
                or out.device.type != "cpu"
                or not out.is_contiguous()
                or out.numel() != state.numel()
            )
            for out in (modulus, relu, sign, divisor, ratio)
        )
        or (counts is not None and not _counts_laid_out(counts, rows, size))
    ):
        return False
    pointers = [None if out is None else out.data_ptr() for out in (modulus, relu, sign, counts)]
    distance = size if counts is None or rows < 2 else counts.stride(0)
    divide = [None if out is None else out.data_ptr() for out in (divisor, ratio)]
    function(state.data_ptr(), rows, size, *pointers, distance, *divide, extremes.ctypes.data)
    return True


CORRELATION_TILE = 64  # samples per tile of the correlations, as in the C source
_local = threading.local()


def correlations_address(dtype: torch.dtype) -> int | None:
    """The address of the correlations' kernel of ``dtype`` (``correlations``), for a compiled
    call that runs it (the chain's stretches of several inputs), or None."""
    loaded = kernels()
    function = None if loaded is None else loaded.get(("correlations", dtype))
    return None if function is None else ctypes.cast(function, ctypes.c_void_p).value


def correlation_scratch(pairs: int, k: int, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    """The kernel's scratch for ``k`` inputs, one per thread and shape, kept: a torch call
    lets go of the interpreter's lock, which another thread of the chain may hold when it is
    taken back."""
    cache = getattr(_local, "scratch", None)
    if cache is None:
        cache = _local.scratch = {}
    key = (pairs, k, dtype)
    scratch = cache.get(key)
    if scratch is None:
        acc = torch.empty(pairs * CORRELATION_TILE, dtype=torch.float64)
        scratch = cache[key] = (acc, torch.empty(k * CORRELATION_TILE, dtype=dtype))
    return scratch


def correlations(memory: Tensor, norms: Tensor | None, rows: Tensor) -> bool:
    """``rows[p, b] = <y_a / ||y_a||, y_b / ||y_b||>`` for the pairs ``p = (a, b > a)`` of the
    samples-last state ``memory`` ``(k, n, B)`` with its norms ``(k, B)`` (contiguous; None at
    width 1, where the norm is ``|y|``, taken in the kernel), into ``rows`` ``(pairs, B)`` (rows
    of contiguous entries); False where it cannot."""
    k, n, size = memory.shape
    pairs = k * (k - 1) // 2
    function = _rows_function("correlations", memory, rows, memory.dtype, True, pairs)
    if (
        function is None
        or k < 2
        or (norms is None and n != 1)
        or (
            norms is not None
            and (
                norms.dtype != memory.dtype or norms.shape != (k, size) or not norms.is_contiguous()
            )
        )
    ):
        return False
    acc, unit = correlation_scratch(pairs, k, memory.dtype)
    distance = rows.stride(0) if pairs > 1 else size
    function(
        memory.data_ptr(),
        None if norms is None else norms.data_ptr(),
        rows.data_ptr(),
        k,
        n,
        size,
        distance,
        acc.data_ptr(),
        unit.data_ptr(),
    )
    return True


class FactorUpdate:
    """The kernel bound to one block's buffers (``norms`` and ``factor`` samples-last memory of
    ``chain._Workspace``, shape ``(k, n, block)`` of its state): ``run(phi, y, z, scale,
    relu)`` factors ``phi`` (with ``relu``: ``phi`` is the state ``y`` itself and its ReLU is
    taken on the way) and updates ``y``, returning the number of tiles it left for the tensor
    path (their samples' factor needs care, see the C source); ``finish(y, z, scale)`` then
    updates those tiles with the factor as mended. The chain passes ``keep=False`` (mode 2):
    only the left tiles' factor is written to ``factor``, which it reads for those alone."""

    def __init__(self, function: Any, shape: tuple[int, int, int], norms: Tensor, factor: Tensor):
        k, n, size = shape
        self.function = function
        self.shape = (k, n, size)
        self.norms, self.factor = norms, factor
        dtype = factor.dtype
        self.scratch = torch.empty((k * n * TILE + 2 * k * k * TILE + 3 * k * TILE,), dtype=dtype)
        self.accumulators = torch.empty((k * TILE,), dtype=torch.float64)
        self.close = np.zeros(k, dtype=np.intc)
        self.deferred = np.zeros(-(-size // TILE), dtype=np.uint8)
        # tensors checked by ``_call`` (the block's state and buffers of normals, passed at
        # every layer: their checks cost more than a small layer); per block, like the kernel
        self.checked: dict[int, Tensor] = {}
        info = torch.finfo(dtype)
        self.tiny, self.eps = float(info.tiny), float(info.eps)
        self.floor = float(np.sqrt(self.tiny) / self.eps)
        self.large = self.floor * float(np.sqrt(n))
        self.pointers = [
            None,
            norms.data_ptr(),
            None,
            None,
            factor.data_ptr(),
            self.scratch.data_ptr(),
            self.accumulators.data_ptr(),
            self.close.ctypes.data,
            self.deferred.ctypes.data,
        ]

    @property
    def address(self) -> int:
        """The kernel's address (for a compiled call that runs it: ``rng``'s ``fill_then``)."""
        return ctypes.cast(self.function, ctypes.c_void_p).value

    def _call(self, phi: Tensor, y: Tensor, z: Tensor, scale: float, mode: int, relu: bool) -> int:
        return int(self.function(*self.arguments(phi, y, z, scale, mode, relu)))

    def arguments(
        self, phi: Tensor, y: Tensor, z: Tensor, scale: float, mode: int, relu: bool
    ) -> list:
        """The kernel's nineteen arguments for ``phi``, ``y`` and ``z`` (checked: ValueError
        where they are not laid out as it reads them)."""
        k, n, size = self.shape
        checked = self.checked
        for values in (phi, y, z):
            if checked.get(id(values)) is values:  # the block's tensors, checked once
                continue
            if (
                values.shape != self.shape
                or not values.is_contiguous()
                or values.dtype != self.factor.dtype
                or values.device.type != "cpu"
            ):
                raise ValueError(
                    f"the kernel reads ({k}, {n}, {size}) contiguous CPU memory of "
                    f"{self.factor.dtype}"
                )
            if len(checked) >= 64:  # tensors that are not passed again
                checked.clear()
            checked[id(values)] = values
        pointers = self.pointers
        pointers[0], pointers[2], pointers[3] = phi.data_ptr(), z.data_ptr(), y.data_ptr()
        return [
            *pointers,
            k,
            n,
            size,
            scale,
            self.tiny,
            self.eps,
            self.floor,
            self.large,
            mode,
            int(relu),
        ]

    def run(
        self, phi: Tensor, y: Tensor, z: Tensor, scale: float, relu: bool = False, keep: bool = True
    ) -> int:
        """``keep=False``: the factor is written out only for the tiles left (the ones
        ``finish`` reads), not for every sample (mode 2 of the C source)."""
        return self._call(phi, y, z, scale, 0 if keep else 2, relu)

    def finish(self, y: Tensor, z: Tensor, scale: float) -> None:
        self._call(y, y, z, scale, 1, False)
