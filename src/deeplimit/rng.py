"""Seeds, sample blocks and chunks: random numbers that do not depend on the chunk size.

Stream layout
-------------
Samples are split into fixed *blocks* of ``block_size_for(numbers per sample and layer)``
samples (about 2^17 numbers per layer, so that a block's state and noise fit in the CPU's
caches). Block ``b`` draws the random numbers of layer (step) ``l`` from a generator seeded
with ``layer_seed(base_b, l)``, where ``base_b = SeedSequence(seed, spawn_key=(stream, b))``
and ``layer_seed`` is a SplitMix64 hash; layer 0 holds the input weights ``W_in``. The
generator depends on the device and the dtype, the fastest exact one of each:

* CPU, float64: NumPy's SFC64 with its ziggurat normals, state set from three SplitMix64
  words of the layer seed and a counter of 1, then 12 outputs discarded (SFC64's own seeding);
* CPU, float32: torch's CPU generator (mt19937) seeded with the layer seed, ``torch.randn``
  drawn in float32 (Box-Muller on 24-bit uniforms: ``|z| <= 5.77``, a tail of 8e-9 cut).
  The same numbers are drawn 3.7x faster by a compiled copy of that algorithm
  (``_mt_normal.c``: the twister's outputs of each twist mapped while in the L1 cache, no
  call per number), used only after it gave torch's bits in this process
  (``torch_float32_normals``); elsewhere ``torch.randn`` itself;
* CUDA: torch's Philox generator seeded with the layer seed, ``torch.randn`` in the dtype.

The numbers of one block and layer fill, in order, a C-contiguous array whose shape is set by
the caller: ``(k, n, block)`` for the exact-in-law chain on the CPU (samples last: the layout
in which the chain runs, see ``chain.py``), ``(block, k, n)`` on CUDA and ``(block, n, n)``
for explicit weights. Seeding per layer costs about a microsecond, a fraction of a percent of
drawing a block, and gives random access: the numbers of any layer can be drawn again (the
backward pass regenerates the weights of the forward pass this way). The block size depends
only on the problem, never on the memory budget; a *chunk* is a run of whole blocks processed
together. So a given seed gives the same numbers on a given device, in a given dtype, whatever
the chunk size and the number of threads.

Groups of steps (the exact-in-law chain on the CPU): where a block draws few numbers a step,
the per-call costs of seeding and drawing are not small against the drawing itself, so that
chain draws the steps of a block in groups of ``group_steps(k n block)`` consecutive steps
(``_GROUP_NUMBERS`` numbers at most, 16 steps at most; one step, the layout above, for a block
of ``_GROUP_NUMBERS`` numbers a step or more). The group of steps ``s, ..., s + m - 1``
(``s = 1 + j G`` for the ``j``-th group, ``m = G`` but for the last group of the chain,
which stops at its last step) fills, in order, one C-contiguous ``(m, k, n, block)`` array from
the generator of step ``s`` (``layer_seed(base_b, s)``, drawn as above): step ``s + i`` is its
``i``-th slice. The group size depends on the block's size, ``k`` and ``n`` only, so the
numbers stay independent of the chunk size and the threads, and any step can still be drawn
again (by drawing its group).
"""

from __future__ import annotations

import ctypes
import functools
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from . import compiled
from .devices import note_compiled_kernel
from .errors import check_int

__all__ = [
    "BlockStreams",
    "SampleBlocks",
    "block_size_for",
    "derive_seed",
    "group_steps",
    "layer_seed",
    "torch_float32_normals",
    "torch_float32_update",
]

# A block draws about this many numbers per layer (1 MiB of float64): big enough for the
# per-call overhead of the generator and of each torch operation to be small, small enough
# that a block's state, noise and post-activations stay in the CPU's caches.
_NUMBERS_PER_BLOCK = 2**17
_MAX_BLOCK = 2**17


def derive_seed(seed: int, *key: int) -> int:
    """A 63-bit seed for ``torch.Generator`` derived from ``seed`` and an integer key path."""
    return _derived(int(seed), tuple(int(k) for k in key))


@functools.lru_cache(maxsize=4096)
def _derived(seed: int, key: tuple[int, ...]) -> int:
    """``derive_seed``, remembered: every block of a run derives its streams' seeds (two
    ``SeedSequence`` hashings, ~50 us a block), and the runs of a loop the same ones."""
    sequence = np.random.SeedSequence(entropy=seed, spawn_key=key)
    return int(sequence.generate_state(1, dtype=np.uint64)[0]) & 0x7FFF_FFFF_FFFF_FFFF


_MASK64 = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15


def layer_seed(base: int, layer: int) -> int:
    """SplitMix64 of ``base + (layer + 1) * golden``: a well-mixed 63-bit seed per layer."""
    z = (base + (layer + 1) * _GOLDEN) & _MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return (z ^ (z >> 31)) & 0x7FFF_FFFF_FFFF_FFFF


def _observers_laid_out(
    norm: torch.Tensor,
    steps: int,
    counts: torch.Tensor | None,
    sums: torch.Tensor | None,
    divisor: torch.Tensor | None,
    ratio: torch.Tensor | None,
) -> bool:
    """Whether the observers' arrays of ``BlockStreams.fill_stretch`` are laid out as its
    kernel writes them (or absent): CPU tensors, ``counts`` int32 rows of ``B`` contiguous
    numbers at a distance of at least ``B`` (or 0: one row for every layer, which ends with
    the last layer's counts) with ``sums`` (int32 ``(2, B)``, also alone), ``divisor``
    and ``ratio`` float32 (``B``; at least ``steps`` rows of ``B``), contiguous."""
    size = norm.shape[0]
    if (counts is not None and sums is None) or (divisor is None) != (ratio is None):
        return False
    given = [t for t in (counts, sums, divisor, ratio) if t is not None]
    if any(t.device.type != "cpu" or t.requires_grad for t in given):
        return False
    if sums is not None and (
        sums.dtype != torch.int32 or sums.shape != (2, size) or not sums.is_contiguous()
    ):
        return False
    if counts is not None:
        if counts.dtype != torch.int32:
            return False
        if counts.dim() != 2 or counts.shape[0] < steps or counts.shape[1] != size:
            return False
        if (size > 1 and counts.stride(1) != 1) or 0 < counts.stride(0) < size:
            return False
    if divisor is not None and ratio is not None:
        if divisor.dtype != torch.float32 or ratio.dtype != torch.float32:
            return False
        if divisor.shape != norm.shape or not divisor.is_contiguous():
            return False
        if ratio.dim() != 2 or ratio.shape[0] < steps or ratio.shape[1] != size:
            return False
        if not ratio.is_contiguous():
            return False
    return True


def _splitmix_words(seed: int, count: int) -> list[int]:
    return [layer_seed(seed, i) for i in range(count)]


def _bind_normals(library: ctypes.CDLL) -> dict[str, Callable[..., int]]:
    kernels = {}
    fill = library.mt_normal_f32
    fill.restype = ctypes.c_int64
    fill.argtypes = [ctypes.c_uint64, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int]
    kernels["fill"] = fill
    update = library.mt_normal_addcmul_f32
    update.restype = ctypes.c_int64
    update.argtypes = [ctypes.c_uint64, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_float]
    update.argtypes += [ctypes.c_int64, ctypes.c_int64, ctypes.c_int]
    kernels["update"] = update
    # the same, then a norms' pass (``initialization/native.py``'s ``row_norms_f32``, by
    # address, with its twelve arguments) in the same call
    then = library.mt_normal_addcmul_norms_f32
    then.restype = ctypes.c_int64
    then.argtypes = [*update.argtypes, ctypes.c_void_p]
    pointer, long = ctypes.c_void_p, ctypes.c_long
    then.argtypes += [pointer, pointer, long, long, long, ctypes.c_int, pointer, pointer, long]
    then.argtypes += [pointer, pointer, pointer]
    kernels["update then norms"] = then
    # drawing into a buffer, then the several-input layer's kernel reading it
    # (``factor_update_f32``, by address, its arguments but the normals), then a norms' pass
    several = library.mt_normal_factor_norms_f32
    several.restype = ctypes.c_int64
    several.argtypes = [ctypes.c_uint64, pointer, ctypes.c_int64, ctypes.c_int, pointer]
    several.argtypes += [pointer] * 8 + [long] * 3 + [ctypes.c_double] * 5 + [ctypes.c_int] * 2
    several.argtypes += [pointer, pointer, pointer, long, long, long, ctypes.c_int, pointer]
    several.argtypes += [pointer, long, pointer, pointer, pointer]
    kernels["draw, factor, norms"] = several
    # a stretch of layers of several ReLU inputs: the same, layer after layer, checked
    stretch_several = library.mt_several_stretch_f32
    stretch_several.restype = ctypes.c_int64
    stretch_several.argtypes = [pointer, ctypes.c_int64, *several.argtypes[1:]]
    stretch_several.argtypes += [ctypes.c_float, ctypes.c_double]
    # the observers' outputs: counts' layer step, sums, ratios' layer step, the correlations'
    # kernel, its rows' addresses a layer, their distance and its scratch
    stretch_several.argtypes += [long, pointer, long, pointer, pointer, long, pointer, pointer]
    kernels["several stretch"] = stretch_several
    # a stretch of steps of one ReLU input (the drawing update and a norms' pass a step)
    stretch = library.mt_relu_stretch_f32
    stretch.restype = ctypes.c_int64
    stretch.argtypes = [pointer, pointer, ctypes.c_int64, ctypes.c_int64, pointer, pointer]
    stretch.argtypes += [pointer, pointer, ctypes.c_int64, ctypes.c_int64, ctypes.c_float]
    stretch.argtypes += [ctypes.c_float, ctypes.c_int, pointer, pointer, ctypes.c_int64]
    stretch.argtypes += [pointer, pointer, pointer, ctypes.c_double]
    kernels["relu stretch"] = stretch
    box_muller = library.mt_box_muller_f32
    box_muller.restype = ctypes.c_int64
    box_muller.argtypes = [ctypes.c_void_p, ctypes.c_int64, ctypes.c_int]
    kernels["box muller"] = box_muller
    return kernels


_NORMALS = compiled.Library(Path(__file__).with_name("_mt_normal.c"), "mt_normal", _bind_normals)
# the draws on which the compiled stream must give torch.randn's bits before it is used:
# seeds whose low 32 bits (the twister's seed) are 0, small, the twister's default and the
# largest, sizes across the first twists and with and without a tail of fewer than 16
_CHECK_SEEDS = (0, 1, 5489, 2**32 + 7, 2**63 - 1)
_CHECK_SIZES = (16, 17, 623, 624, 625, 1249, 4099)
_checked: dict[str, object] = {}
_check_lock = threading.Lock()


def _same_as_torch(fill: Callable[..., int]) -> str | None:
    """None where ``fill`` draws ``torch.randn``'s float32 numbers on every check draw, else
    where it does not."""
    generator = torch.Generator()
    for seed in _CHECK_SEEDS:
        for size in _CHECK_SIZES:
            generator.manual_seed(seed)
            expected = torch.randn(size, generator=generator, dtype=torch.float32)
            drawn = torch.empty(size, dtype=torch.float32)
            if fill(seed, drawn.data_ptr(), size, 0) != 0:
                return "not supported on this CPU (x86-64 with AVX2 and FMA)"
            if not torch.equal(expected.view(torch.int32), drawn.view(torch.int32)):
                return (
                    f"differs from torch.randn {torch.__version__} on this machine "
                    f"(seed {seed}, {size} numbers)"
                )
    return None


# the increments on which the drawing update must give the bits of torch.randn and
# torch's addcmul_ before it is used: (rows, columns), with and without a tail
_CHECK_UPDATES = ((1, 16), (1, 17), (3, 7), (4, 1000), (64, 40))


def _update_same_as_torch(update: Callable[..., int]) -> str | None:
    """None where ``update`` gives ``y.addcmul_(t1, torch.randn(...), value=v)``'s bits on
    every check increment, else where it does not."""
    generator = torch.Generator()
    for seed in _CHECK_SEEDS[:3]:
        for rows, columns in _CHECK_UPDATES:
            generator.manual_seed(seed + rows)
            y = torch.randn(rows, columns, generator=generator, dtype=torch.float32)
            t1 = torch.rand(columns, generator=generator, dtype=torch.float32)
            value = 0.3 / (rows + 1)
            generator.manual_seed(seed)
            noise = torch.randn(rows * columns, generator=generator, dtype=torch.float32)
            expected = y.clone().addcmul_(t1, noise.view(rows, columns), value=value)
            if update(seed, y.data_ptr(), t1.data_ptr(), value, rows, columns, 0) != 0:
                return "refused a check increment"
            if not torch.equal(expected.view(torch.int32), y.view(torch.int32)):
                return f"differs from torch.randn and addcmul_ (seed {seed}, {rows} x {columns})"
    return None


_SEEDS = range(-(2**63), 2**64)  # what torch.Generator.manual_seed takes
_NO_NORMS = (None, None, 0, 0, 0, 0, None, None, 0, None, None, None)


def _checked_fill(kernel: Callable[..., int]) -> Callable[[int, int, int], None]:
    def fill(seed: int, address: int, size: int) -> None:
        if seed not in _SEEDS:
            raise ValueError(f"seed must be an integer in [-2^63, 2^64), got {seed}")
        if not 16 <= size < 2**62:
            raise ValueError(
                f"size must be at least 16 (torch draws fewer another way), got {size}"
            )
        if kernel(seed % 2**64, address, size, 0) != 0:
            raise RuntimeError("the compiled copy of torch.randn refused a checked draw")

    return fill


def torch_float32_normals() -> Callable[[int, int, int], None] | None:
    """``fill(seed, address, size)``: the compiled drawer of ``torch.randn``'s float32 numbers
    for a CPU generator seeded with ``seed`` (as ``manual_seed`` takes it), into ``size >= 16``
    contiguous float32 numbers at ``address`` (a ``data_ptr()``), or None where it does not
    load or did not give torch's bits on the check draws of this process (then
    ``torch.randn`` draws; the provenance names the path:
    ``devices.compiled_kernels()["mt_normal"]``). The check draws are a sample: the tests
    (``tests/test_torch_normals.py``, every uniform in the slow one) are the proof for the
    torch they run with, and are to be run again with a new torch."""
    if "fill" not in _checked:
        with _check_lock:
            if "fill" not in _checked:
                kernels = _NORMALS.kernels()
                kernel = None if kernels is None else kernels["fill"]
                fill = None
                if kernel is not None:
                    why = _same_as_torch(kernel)
                    if why is None:
                        fill = _checked_fill(kernel)
                    else:
                        note_compiled_kernel("mt_normal", f"torch.randn: the compiled copy {why}")
                _checked["fill"] = fill
                update = None
                if fill is not None:
                    why = _update_same_as_torch(kernels["update"])
                    if why is None:
                        update = kernels["update"]
                    else:
                        note_compiled_kernel("mt_normal", f"the drawing update {why}")
                _checked["update"] = update
    return _checked["fill"]  # type: ignore[return-value]


def torch_float32_update() -> Callable[..., int] | None:
    """``update(seed, y, t1, value, rows, columns, 0)``: ``y.addcmul_(t1, z, value=value)``
    with ``z`` the ``rows x columns`` numbers ``torch.randn`` draws for ``seed`` (float32,
    CPU; ``y`` a contiguous ``(rows, columns)`` array and ``t1`` a row of ``columns``, by
    address), in one pass that never stores ``z``: the bits of the two torch calls, checked
    as ``torch_float32_normals`` is; or None (then draw and add)."""
    if torch_float32_normals() is None:
        return None
    return _checked.get("update")  # type: ignore[return-value]


class BlockStreams:
    """The normal generators of a run of blocks, reseeded per layer (random access by layer);
    see the module docstring for the stream layout."""

    def __init__(
        self, seed: int, stream: int, blocks: list[tuple[int, int, int]], device: torch.device
    ) -> None:
        self.blocks = blocks
        self.bases = [derive_seed(seed, stream, b) for b, _, _ in blocks]
        self.device = torch.device(device)
        self._bit: np.random.SFC64 | None = None
        self._numpy: np.random.Generator | None = None
        self._torch = torch.Generator(device=self.device)

    def _numpy_generator(self, seed: int) -> np.random.Generator:
        if self._numpy is None:
            self._bit = np.random.SFC64(0)
            self._numpy = np.random.Generator(self._bit)
        assert self._bit is not None
        words = np.array([*_splitmix_words(seed, 3), 1], dtype=np.uint64)
        self._bit.state = {
            "bit_generator": "SFC64",
            "state": {"state": words},
            "has_uint32": 0,
            "uinteger": 0,
        }
        self._bit.random_raw(12)
        return self._numpy

    def fill(self, index: int, layer: int, out: torch.Tensor) -> None:
        """Fill the contiguous tensor ``out``, in memory order, with the standard normals of
        block ``index`` at ``layer`` (of the group of steps from ``layer`` on, for a group)."""
        seed = layer_seed(self.bases[index], layer)
        if self.device.type == "cpu" and out.dtype == torch.float64:
            self._numpy_generator(seed).standard_normal(out=out.numpy(), dtype=np.float64)
        else:
            if self.device.type == "cpu" and out.dtype == torch.float32 and out.numel() >= 16:
                fill = torch_float32_normals()
                # through the pointer: no autograd (torch.randn refuses such a tensor)
                if fill is not None and out.is_contiguous() and not out.requires_grad:
                    fill(seed, out.data_ptr(), out.numel())  # torch.randn's numbers
                    return
            self._torch.manual_seed(seed)
            torch.randn(out.shape, generator=self._torch, out=out, dtype=out.dtype)

    def fill_update(
        self,
        index: int,
        layer: int,
        y: torch.Tensor,
        row: torch.Tensor,
        value: float,
        then: tuple[int, tuple] | None = None,
    ) -> bool:
        """``y.addcmul_(row, z, value=value)`` with ``z`` the numbers ``fill`` would draw into
        a tensor of ``y``'s shape (float32 on the CPU, ``y`` contiguous ``(rows, columns)``,
        ``row`` contiguous ``(columns,)``), in one compiled pass: the same bits; False (and
        nothing done) where that pass does not apply. ``then``: ``(address, arguments)`` of a
        compiled norms' pass (``native.RowNorms.address``/``arguments``) run after it in the
        same call."""
        if (
            self.device.type != "cpu"
            or y.dtype != torch.float32
            or row.dtype != torch.float32
            or y.dim() != 2
            or row.shape != y.shape[1:]
            or y.numel() < 16
            or not (y.is_contiguous() and row.is_contiguous())
            or y.requires_grad
            or row.requires_grad
        ):
            return False
        update = torch_float32_update()
        if update is None:
            return False
        seed = layer_seed(self.bases[index], layer)
        rows, columns = y.shape
        if then is None:
            return update(seed, y.data_ptr(), row.data_ptr(), value, rows, columns, 0) == 0
        kernels = _NORMALS.kernels()
        assert kernels is not None  # the update is there
        address, arguments = then
        status = kernels["update then norms"](
            seed, y.data_ptr(), row.data_ptr(), value, rows, columns, 0, address, *arguments
        )
        return status == 0

    def fill_then(
        self,
        index: int,
        layer: int,
        out: torch.Tensor,
        factor: tuple[int, list],
        then: tuple[int, tuple] | None = None,
    ) -> int | None:
        """``fill(index, layer, out)``, then in the same compiled call the several-input
        layer's kernel ``factor = (address, arguments)`` (``native.FactorUpdate.address`` and
        its ``arguments`` but the normals, which are ``out``'s) and, where it left no tile,
        the norms' pass ``then`` (as in ``fill_update``): what the kernel returns (the tiles
        it left), or None (nothing done) where this does not apply."""
        if not self._drawable(out):
            return None
        kernels = _NORMALS.kernels()
        assert kernels is not None
        seed = layer_seed(self.bases[index], layer)
        address, arguments = factor
        norms, norms_arguments = then if then is not None else (None, _NO_NORMS)
        left = kernels["draw, factor, norms"](
            seed, out.data_ptr(), out.numel(), 0, address, *arguments, norms, *norms_arguments
        )
        return None if left == -2 else left

    def _drawable(self, out: torch.Tensor) -> bool:
        """Whether the compiled copy of ``torch.randn`` draws into ``out`` in a call of ours
        (``fill_then``, ``fill_several_stretch``): 16 float32 numbers or more, contiguous, on
        the CPU."""
        return (
            self.device.type == "cpu"
            and out.dtype == torch.float32
            and out.numel() >= 16
            and out.is_contiguous()
            and not out.requires_grad
            and torch_float32_normals() is not None
        )

    def fill_several_stretch(
        self,
        index: int,
        first: int,
        steps: int,
        out: torch.Tensor,
        factor: tuple[int, list],
        then: tuple[int, tuple],
        bound: float,
        top: float,
        observed: tuple = (0, None, 0, None, None, 0, None, None),
    ) -> int | None:
        """The layers ``first .. first + steps - 1`` of several ReLU inputs in one compiled
        call (``chain._SeveralReLU``): at each, ``fill_then`` with that layer's numbers (drawn
        into ``out``), the kernel ``factor`` and the norms' pass ``then`` (its extremes given),
        then the per-step path's bounds checked (entries within ``[-top, top]``, norms 0 or
        at least ``bound``); stops after the first layer that fails them or in which the
        kernel left tiles. Returns the layers done that passed, or None (nothing done) where
        this does not apply. ``observed``: the observers' outputs (``mt_several_stretch_f32``'s
        last eight arguments: the counts' layer step, the sums, the ratios' layer step, the
        correlations' kernel, its rows' addresses a layer, their distance, its scratch)."""
        if steps < 0 or not self._drawable(out):
            return None
        kernels = _NORMALS.kernels()
        assert kernels is not None
        base = self.bases[index]
        seeds = (ctypes.c_uint64 * max(1, steps))(
            *(layer_seed(base, layer) for layer in range(first, first + steps))
        )
        address, arguments = factor
        norms, norms_arguments = then
        done = kernels["several stretch"](
            seeds,
            steps,
            out.data_ptr(),
            out.numel(),
            0,
            address,
            *arguments,
            norms,
            *norms_arguments,
            bound,
            top,
            *observed,
        )
        return None if done < 0 else int(done)

    def fill_stretch(
        self,
        index: int,
        first: int,
        steps: int,
        y: torch.Tensor,
        norm: torch.Tensor,
        spare: torch.Tensor,
        value: float,
        bound: float,
        norms: int | None,
        groups: tuple[int, int] = (1, 0),
        buffer: torch.Tensor | None = None,
        counts: torch.Tensor | None = None,
        sums: torch.Tensor | None = None,
        divisor: torch.Tensor | None = None,
        ratio: torch.Tensor | None = None,
        top: float = 0.0,
    ) -> int | None:
        """The layers ``first .. first + steps - 1`` of one ReLU input in one compiled call
        (``chain._OneReLU``): at each, ``y.addcmul_(norm, z, value=value)`` with ``z`` the
        layer's numbers and then the new norms ``||relu(y)||`` of the samples: ``relu(y)``
        itself at width 1, else the norms' pass at address ``norms`` (``native.row_norms``'
        float32 kernel, as the chain calls it: ``relu=True``, nothing else) into ``norm`` or
        ``spare``. ``groups = (G, L)``: the layers are drawn in groups of ``G`` from layer 1
        on, as ``fill(index, g, out)`` draws a group into ``out`` of ``min(G, L - g + 1)``
        layers (``group_steps``; ``L`` the last layer); a group of one layer is drawn into
        the update (as ``fill_update``, never stored), larger ones into ``buffer`` (at least
        ``G`` layers of numbers). ``y`` is the contiguous ``(n, B)`` state, ``norm`` and
        ``spare`` contiguous rows of ``B``: ``norm`` holds the norms at the start (not read
        at width 1) and ends with the last (unless the first fail). Each norm, the first
        included, is checked: the call stops after a layer with a norm in ``(0, bound)`` or
        not finite. Returns the layers done whose norms all passed (``steps``: all; fewer:
        the state is that of the layer that failed, to be run again by the caller), or None
        (nothing done) where this does not apply.

        For the observers of the stretch (width > 1): ``counts`` (int32, at least ``steps``
        contiguous rows of ``B`` at any distance: the rows of a results array; a distance
        of 0: one row, which ends with the last layer's counts) gets the
        active counts ``#{t: y[t, b] > 0}`` of layer ``first + i`` in row ``i``, and ``sums``
        (int32 ``(2, B)``) their sum over the layers done and the number of those layers
        with a positive count (a layer with a positive count and a norm of 0 fails; without
        ``counts``, ``sums[1]`` alone: the layers with a positive norm); with
        ``divisor`` (``B``), ``ratio`` (float32, at least ``steps`` rows of ``B``) each
        layer's norms divided by ``divisor``: as the norms' pass of the chain's per-step view
        computes them. ``top > 0`` (width > 1): a layer with an entry of ``y`` outside
        ``[-top, top]`` (or NaN) fails too."""
        group, last = groups
        tensors = (y, norm, spare) if group == 1 else (y, norm, spare, buffer)
        if (
            self.device.type != "cpu"
            or any(t is None or t.dtype != torch.float32 for t in tensors)
            or not all(t.is_contiguous() and not t.requires_grad for t in tensors)
            or y.dim() != 2
            or norm.shape != y.shape[1:]
            or spare.shape != norm.shape
            or not _observers_laid_out(norm, steps, counts, sums, divisor, ratio)
            or (
                (counts is not None or sums is not None or ratio is not None or top > 0)
                and y.shape[0] < 2
            )
            or y.numel() < 16
            or steps < 0
            or group < 1
            or (group > 1 and buffer.numel() < group * y.numel())  # type: ignore[union-attr]
            or (norms is None and y.shape[0] > 1)
            or torch_float32_update() is None
        ):
            return None
        kernels = _NORMALS.kernels()
        assert kernels is not None  # the update is there
        base = self.bases[index]
        starts = range(first - (first - 1) % group, first + steps, group) if steps else []
        if group > 1 and steps and first + steps - 1 > last:
            return None
        seeds = (ctypes.c_uint64 * max(1, len(starts)))(*(layer_seed(base, g) for g in starts))
        lengths = (ctypes.c_int64 * max(1, len(starts)))(
            *(1 if group == 1 else min(group, last - g + 1) for g in starts)
        )
        n, size = y.shape
        done = kernels["relu stretch"](
            seeds,
            lengths,
            (first - 1) % group,
            steps,
            None if buffer is None else buffer.data_ptr(),
            y.data_ptr(),
            norm.data_ptr(),
            spare.data_ptr(),
            n,
            size,
            value,
            bound,
            0,
            norms,
            None if counts is None else counts.data_ptr(),
            0 if counts is None else counts.stride(0),
            None if sums is None else sums.data_ptr(),
            None if divisor is None else divisor.data_ptr(),
            None if ratio is None else ratio.data_ptr(),
            top,
        )
        return None if done < 0 else int(done)

    def draw(self, out: torch.Tensor, layer: int) -> None:
        """Fill ``out`` (chunk first, contiguous) with the standard normals of ``layer``."""
        for index, (_, lo, hi) in enumerate(self.blocks):
            self.fill(index, layer, out[lo:hi])

    def normal(
        self, index: int, layer: int, shape: tuple[int, ...], dtype: torch.dtype
    ) -> torch.Tensor:
        """A fresh tensor of standard normals from block ``index`` at ``layer``."""
        out = torch.empty(shape, dtype=dtype, device=self.device)
        self.fill(index, layer, out)
        return out


# The exact-in-law chain on the CPU draws at most this many numbers (512 KiB of float32, 1 MiB
# of float64: in the caches) and at most ``_MAX_GROUP`` steps of a block in one call.
_GROUP_NUMBERS = 2**17
_MAX_GROUP = 16  # two buffers of 16 steps: the 32 the chain's rows_last cache holds


def group_steps(numbers_per_step: int) -> int:
    """Steps a block that draws ``numbers_per_step`` numbers a step draws in one group (see
    the module docstring): ``_GROUP_NUMBERS // numbers_per_step``, between 1 and 16."""
    return max(1, min(_MAX_GROUP, _GROUP_NUMBERS // max(1, numbers_per_step)))


def block_size_for(numbers_per_sample: int) -> int:
    """Samples per block for a problem that draws ``numbers_per_sample`` numbers per layer."""
    size = max(1, _NUMBERS_PER_BLOCK // max(1, numbers_per_sample))
    return int(min(_MAX_BLOCK, 1 << (size.bit_length() - 1)))


@dataclass(frozen=True)
class SampleBlocks:
    """``samples`` split into blocks of ``block_size`` and chunks of ``blocks_per_chunk``."""

    samples: int
    block_size: int
    blocks_per_chunk: int

    @classmethod
    def plan(
        cls,
        samples: int,
        numbers_per_sample: int,
        bytes_per_sample: int,
        *,
        chunk_size: int | None = None,
        memory_budget: int = 2**29,
    ) -> SampleBlocks:
        """Plan blocks for ``samples``; chunks hold ``chunk_size`` samples (rounded up to
        whole blocks) or, by default, as many as fit in ``memory_budget`` bytes."""
        block = block_size_for(numbers_per_sample)
        if chunk_size is None:
            per_chunk = max(1, memory_budget // max(1, bytes_per_sample))
        else:
            per_chunk = check_int("chunk_size", chunk_size, minimum=1)
        blocks_per_chunk = max(1, -(-per_chunk // block) if chunk_size else per_chunk // block)
        return cls(samples=samples, block_size=block, blocks_per_chunk=blocks_per_chunk)

    @property
    def n_blocks(self) -> int:
        return -(-self.samples // self.block_size)

    def chunks(self) -> Iterator[tuple[int, int, list[tuple[int, int, int]]]]:
        """Yield ``(start, stop, blocks)`` per chunk, ``blocks`` as ``(index, start, stop)``
        with positions relative to the chunk start."""
        for first in range(0, self.n_blocks, self.blocks_per_chunk):
            last = min(self.n_blocks, first + self.blocks_per_chunk)
            start = first * self.block_size
            stop = min(self.samples, last * self.block_size)
            blocks = [
                (
                    b,
                    b * self.block_size - start,
                    min(self.samples, (b + 1) * self.block_size) - start,
                )
                for b in range(first, last)
            ]
            yield start, stop, blocks
