"""A fused engine for the exact-in-law chain: many layers per compiled call (issue 13, item 4).

``Sampling(method="fused")`` (or ``method=Fused(...)`` to tune it) runs the chain of
``chain.py``, ``Y_l = Y_{l-1} + s W_l phi(Y_{l-1})`` with the increment drawn exactly in law
(one input: ``||phi(Y)|| n^{-1/2} Z``, Lemma 6; ``k`` inputs: ``C Z n^{-1/2}`` with
``C C^T = Phi Phi^T``), through a function compiled by
``torch.compile`` (TorchInductor) that advances a block of samples by ``layers_per_call``
layers (steps) at a time, with the standard normals generated inside the compiled code. The
ResNet (``s = L^{-1/2}``) and the Euler scheme of its SDE (``s = sqrt(dt)``) share it.

Three layouts of the state, chosen by the width ``n`` and the number of inputs ``k``:

* ``n <= UNROLLED_WIDTH``: the width is unrolled, each coordinate a tensor over the samples.
  Every operation of the call is then elementwise over the samples, and Inductor fuses the
  whole call into one kernel: each path stays in registers across the call's layers, and its
  normals are generated where they are used (Triton's Philox on CUDA, Inductor's Philox4x32
  ``randn_cpu`` on the CPU), never written to memory;
* one input, wider: the state is ``(samples, n)`` and each layer is one kernel (a per-path
  reduction for ``||phi(Y)||`` with the update fused into it), normals generated inside;
* ``k > 1`` inputs: the state is ``(samples, k, n)``; each layer factors ``Phi`` by modified
  Gram-Schmidt over its ``k`` rows inside the compiled code (a residual within
  ``4 sqrt(n) eps`` of its row's norm, a repeated input, set to zero: repeated inputs stay
  equal to rounding, not bit for bit as in the eager path, which copies their factor rows).

Random numbers. Counter-based: the normal of layer ``l``, sample ``i`` of block ``b`` and
coordinate ``j`` of input ``a`` is Philox(key, counter) with the key
``base + b * steps + (l - 1)`` (``base`` derived from the seed, ``steps`` the run's number of
layers) and the counter ``(i k + a) n + j``,
Box-Muller in float32 (both backends draw float32 normals, converted to the dtype; in float64
the normals thus carry float32 resolution, which no test of a law resolves). Keys are distinct
within a run (Inductor's CPU code keeps 32 bits of a key: the run is refused past 2^32 block
layers there). Blocks hold ``Fused.block_samples`` samples, a number that depends on the width
and the device only, and a sample's numbers do not depend on the size of its block: a seed
gives the same numbers on the same device (and backend), whatever the chunk size, the record
or ``layers_per_call``. They are *not* the numbers of the eager ``method="law"`` stream
(``rng.py``), nor the same on the CPU and on CUDA: the two paths agree in law, not bit for
bit (``tests/test_fused.py`` checks the law). ``Y_0 = W_in x`` is drawn as the eager chunked
path draws it, from the block's generator at layer 0.

Numerics. The state is not rescaled by powers of two (the eager path does that for positively
homogeneous activations): a path whose state overflows (an entry NaN or inf) or underflows
(its largest entry falls below the smallest normal number) is reported at the first layer it
does so, as ``on_nonfinite`` asks (``report_numerics``). ``||phi(Y)||`` is computed scaled by
the largest entry, so squares neither overflow nor underflow.

Scope: states (``sample`` / ``sample_resnet`` / ``sample_sde``), one or several inputs.
Observables, collapse probabilities and gradient norms are refused with a ValueError (use
``method="law"``). Not the default: its speed on a GPU is unmeasured (no GPU was at hand
when it was written; ``benchmarks/gpu_check.sh`` measures it against ``torch.randn`` on the
device), and on the CPU Inductor's per-number Philox makes it slower than the eager path.
If ``torch.compile`` is unavailable or fails (no C++ compiler, no Triton), the first call
raises ``FusedCompileError`` naming the cause.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from ..activations import CustomActivation
from ..errors import check_int
from ..rng import BlockStreams, derive_seed
from .chain import CHAIN_STREAM, ChainPlan, ProgressCallback, report_numerics
from .recording import slots_by_step

__all__ = [
    "FUSED",
    "UNROLLED_WIDTH",
    "Fused",
    "FusedCompileError",
    "as_fused",
    "is_fused",
    "simulate_fused",
]

FUSED = "fused"
# the width up to which the width is unrolled (one kernel per call); the code of a call grows
# as layers_per_call * width, and with it the compile time
UNROLLED_WIDTH = 8
# the stream of the compiled generator's keys (``derive_seed(seed, FUSED_STREAM)``)
FUSED_STREAM = 0xF5
# standard normals per layer that a block draws by default (a power of two of samples):
# on the CPU a block stays in the caches, on CUDA it fills the device
_BLOCK_NUMBERS = {"cpu": 2**16, "cuda": 2**24}


class FusedCompileError(RuntimeError):
    """``method="fused"`` could not compile its kernels (``torch.compile`` is missing, or
    Inductor failed: no C++ compiler on the CPU, no Triton on CUDA)."""


@dataclass(frozen=True)
class Fused:
    """The fused engine as a strategy object: ``Sampling(method=Fused(layers_per_call=32))``.
    ``method="fused"`` is ``Fused()``.

    ``layers_per_call``
        Layers (steps) a compiled call advances, ``>= 1`` (default 16); calls end at recorded
        layers, and a remainder shorter than this runs one layer per call. Longer calls save
        launches and memory traffic but compile longer (the code grows with it).
    ``block_samples``
        Samples per block, ``>= 1``; by default ``2^16`` (CPU) or ``2^24`` (CUDA) numbers per
        layer, rounded down to a power of two of samples. It sets which samples share keys:
        the numbers of a seed depend on it (and on nothing else but the device).
    """

    layers_per_call: int = 16
    block_samples: int | None = None

    def __post_init__(self) -> None:
        check = check_int("layers_per_call", self.layers_per_call, minimum=1)
        object.__setattr__(self, "layers_per_call", check)
        if self.block_samples is not None:
            block = check_int("block_samples", self.block_samples, minimum=1)
            object.__setattr__(self, "block_samples", block)

    def block_size(self, numbers_per_sample: int, device: torch.device) -> int:
        """Samples per block for ``numbers_per_sample`` normals per sample and layer."""
        if self.block_samples is not None:
            return self.block_samples
        budget = _BLOCK_NUMBERS["cpu" if device.type == "cpu" else "cuda"]
        size = max(1, budget // max(1, numbers_per_sample))
        return 1 << (size.bit_length() - 1)

    def as_dict(self) -> dict[str, Any]:
        return {
            "engine": FUSED,
            "layers_per_call": self.layers_per_call,
            "block_samples": self.block_samples,
        }


def is_fused(method: Any) -> bool:
    """Whether ``method`` (a ``Sampling.method``) asks for the fused engine."""
    return isinstance(method, Fused) or method == FUSED


def as_fused(method: Any) -> Fused:
    """``method`` as a ``Fused`` (``"fused"`` gives the defaults)."""
    return method if isinstance(method, Fused) else Fused()


def refuse_fused(method: Any, what: str) -> None:
    """A ValueError for the quantities the fused engine does not compute."""
    if is_fused(method):
        raise ValueError(
            f"method='fused' samples states only (sample, sample_resnet, sample_sde); {what} "
            "need method='law', 'weights' or 'auto'"
        )


# --------------------------------------------------------------------------- compiled calls


def _row_norm(values: Tensor) -> tuple[Tensor, Tensor]:
    """``||values||`` over the last axis and the largest ``|entry|``, the squares taken of
    the entries divided by the largest (no overflow or underflow of the squares)."""
    largest = values.abs().amax(-1, keepdim=True)
    divisor = torch.where(largest > 0, largest, torch.ones_like(largest))
    scaled = values / divisor
    return (scaled * scaled).sum(-1, keepdim=True).sqrt() * largest, largest


def _rows_call(phi: Callable[[Tensor], Tensor], layers: int, tiny: float) -> Callable[..., Any]:
    """``layers`` layers of the chain on a ``(samples, n)`` state."""

    def call(
        y: Tensor, keys: Tensor, scale: Tensor, layer: Tensor, bad: Tensor, lost: Tensor
    ) -> tuple[Tensor, Tensor, Tensor]:
        previous = y.abs().amax(-1)
        for j in range(layers):
            norm, _ = _row_norm(phi(y))
            z = torch.ops.prims.inductor_random(list(y.shape), keys[j], "randn").to(y.dtype)
            y = y + scale * norm * z
            largest = y.abs().amax(-1)
            bad, lost = _first_failures(largest, previous, layer + j, bad, lost, tiny)
            previous = largest
        return y, bad, lost

    return call


def _unrolled_call(phi: Callable[[Tensor], Tensor], layers: int, tiny: float) -> Callable[..., Any]:
    """``layers`` layers of the chain with the width unrolled: every operation elementwise
    over the samples, so that Inductor emits one kernel."""

    def call(
        y: Tensor, keys: Tensor, scale: Tensor, layer: Tensor, bad: Tensor, lost: Tensor
    ) -> tuple[Tensor, Tensor, Tensor]:
        columns = list(y.unbind(-1))
        previous = _largest([c.abs() for c in columns])
        for j in range(layers):
            # the layout of the rows path: the counter of coordinate i of sample s is s n + i
            z = torch.ops.prims.inductor_random(list(y.shape), keys[j], "randn").to(y.dtype)
            values = [phi(c) for c in columns]
            largest_phi = _largest([v.abs() for v in values])
            divisor = torch.where(largest_phi > 0, largest_phi, torch.ones_like(largest_phi))
            squares = None
            for v in values:
                term = (v / divisor) * (v / divisor)
                squares = term if squares is None else squares + term
            assert squares is not None
            step = scale * squares.sqrt() * largest_phi
            columns = [c + step * z[:, i] for i, c in enumerate(columns)]
            largest = _largest([c.abs() for c in columns])
            bad, lost = _first_failures(largest, previous, layer + j, bad, lost, tiny)
            previous = largest
        return torch.stack(columns, -1), bad, lost

    return call


def _inputs_call(
    phi: Callable[[Tensor], Tensor], layers: int, tiny: float, eps: float
) -> Callable[..., Any]:
    """``layers`` layers of the chain of ``k`` inputs on a ``(samples, k, n)`` state: the
    increment is ``C Z`` with ``C`` the lower-triangular factor of ``Phi`` by modified
    Gram-Schmidt over its rows (``C C^T = Phi Phi^T``, as ``chain.factor_rows``), a residual
    row within ``4 sqrt(n) eps`` of its row's norm (in the span of the earlier rows to
    rounding: a repeated input) set to zero, a perturbation of a few roundings of ``phi``."""

    def call(
        y: Tensor, keys: Tensor, scale: Tensor, layer: Tensor, bad: Tensor, lost: Tensor
    ) -> tuple[Tensor, Tensor, Tensor]:
        k, n = y.shape[1], y.shape[2]
        previous = y.abs().amax(-1).amax(-1)
        for j in range(layers):
            z = torch.ops.prims.inductor_random(list(y.shape), keys[j], "randn").to(y.dtype)
            rows = list(phi(y).unbind(1))  # k rows (samples, n)
            noise = list(z.unbind(1))
            units: list[Tensor] = []
            increments = []
            for a in range(k):
                residual = rows[a]
                increment = torch.zeros_like(residual)
                for b in range(a):
                    coefficient = (residual * units[b]).sum(-1, keepdim=True)
                    residual = residual - coefficient * units[b]
                    increment = increment + coefficient * noise[b]
                norm, _ = _row_norm(residual)
                spanned = norm <= eps * 4 * n**0.5 * _row_norm(rows[a])[0]
                norm = torch.where(spanned, torch.zeros_like(norm), norm)
                divisor = torch.where(norm > 0, norm, torch.ones_like(norm))
                units.append(residual / divisor * (norm > 0).to(y.dtype))
                increments.append(increment + norm * noise[a])
            y = y + scale * torch.stack(increments, 1)
            largest = y.abs().amax(-1).amax(-1)
            bad, lost = _first_failures(largest, previous, layer + j, bad, lost, tiny)
            previous = largest
        return y, bad, lost

    return call


def _largest(values: list[Tensor]) -> Tensor:
    """The elementwise maximum of a list (NaN where any is NaN)."""
    out = values[0]
    for value in values[1:]:
        out = torch.maximum(out, value)
    return out


def _first_failures(
    largest: Tensor, previous: Tensor, layer: Tensor, bad: Tensor, lost: Tensor, tiny: float
) -> tuple[Tensor, Tensor]:
    """The first layer of a blow-up (the largest ``|entry|`` not finite) and of an underflow
    (the largest entry falls below ``tiny`` from a nonzero state), per sample (-1: none)."""
    largest, previous = largest.reshape(bad.shape), previous.reshape(bad.shape)
    bad = torch.where((bad < 0) & ~torch.isfinite(largest), layer, bad)
    lost = torch.where((lost < 0) & (largest < tiny) & (previous > 0), layer, lost)
    return bad, lost


_COMPILED: dict[tuple[Any, ...], Callable[..., Any]] = {}


def _compiled(plan: ChainPlan, layers: int, layout: str) -> tuple[Callable[..., Any], bool]:
    """The compiled call of ``layers`` layers for ``plan`` (cached per process), and whether
    it is new (not yet called: its first call compiles)."""
    activation = plan.activation
    which = id(activation) if isinstance(activation, CustomActivation) else activation.spec
    key = (which, plan.width, layers, layout, plan.dtype, plan.device.type)
    if key in _COMPILED:
        return _COMPILED[key], False
    compile_ = getattr(torch, "compile", None)
    if compile_ is None:
        raise FusedCompileError(
            f"method='fused' needs torch.compile, which torch {torch.__version__} lacks; "
            "use method='law'"
        )
    import torch._inductor.config as inductor_config

    if inductor_config.fallback_random:
        raise FusedCompileError(
            "method='fused' generates its normals in Inductor's kernels, but "
            "torch._inductor.config.fallback_random is set (random numbers from eager torch, "
            "which ignore the keys); unset it or use method='law'"
        )
    tiny, eps = torch.finfo(plan.dtype).tiny, torch.finfo(plan.dtype).eps
    if layout == "inputs":
        call = _inputs_call(activation.phi, layers, tiny, eps)
    else:
        call = (_unrolled_call if layout == "unrolled" else _rows_call)(
            activation.phi, layers, tiny
        )
    try:
        function = compile_(call, fullgraph=True, dynamic=None)
    except Exception as error:  # torch.compile itself refuses (e.g. an unsupported Python)
        raise _compile_error(error) from error
    _COMPILED[key] = function
    return function, True


def _compile_error(error: BaseException) -> FusedCompileError:
    cause = f"{type(error).__name__}: {error}".strip().splitlines()
    return FusedCompileError(
        "method='fused' could not compile its kernels with torch.compile (Inductor needs a "
        "C++ compiler on the CPU and Triton on CUDA; a custom activation must be traceable); "
        f"use method='law'. Cause: {' '.join(cause)[:500]}"
    )


def _call(function: Callable[..., Any], new: bool, *args: Tensor) -> Any:
    """Call a compiled function; its first call compiles, and any failure there is a
    ``FusedCompileError``. Recompiling past dynamo's limit is an error, never a silent eager
    fallback (whose random numbers would ignore the keys)."""
    with torch._dynamo.config.patch(recompile_limit=64, fail_on_recompile_limit_hit=True):
        if not new:
            return function(*args)
        try:
            return function(*args)
        except Exception as error:
            raise _compile_error(error) from error


# --------------------------------------------------------------------------- the engine


def _segments(recorded: list[int], steps: int, layers: int) -> list[tuple[int, int]]:
    """Calls ``(first layer, layers)``: up to each recorded layer (and the last), runs of
    ``layers`` layers, then single layers for the remainder."""
    calls = []
    done = 0
    for stop in sorted({s for s in recorded if s > 0} | {steps}):
        while stop - done >= layers:
            calls.append((done + 1, layers))
            done += layers
        while done < stop:
            calls.append((done + 1, 1))
            done += 1
    return calls


def simulate_fused(
    plan: ChainPlan, fused: Fused, progress: ProgressCallback | None = None
) -> Tensor:
    """Run the chain of ``plan`` (``method="law"``) with the fused engine; returns
    ``(samples, len(record), k, width)`` states at ``record`` steps, as ``simulate_chain``."""
    n, k = plan.width, plan.inputs
    device, dtype = plan.device, plan.dtype
    size = fused.block_size(k * n, device)
    blocks = -(-plan.samples // size)
    limit = 2**32 if device.type == "cpu" else 2**63
    if blocks * plan.steps > limit:
        raise ValueError(
            f"method='fused' keys each block and layer: {blocks} blocks x {plan.steps} steps "
            f"exceeds the {limit} keys of the generator on {device.type}; use fewer samples "
            "or a larger Fused(block_samples=...)"
        )
    layout = "inputs" if k > 1 else "unrolled" if n <= UNROLLED_WIDTH else "rows"
    slots = slots_by_step(plan.record)
    calls = _segments(list(plan.record), plan.steps, fused.layers_per_call)
    functions = {count: _compiled(plan, count, layout) for _, count in calls}
    fresh = {count: new for count, (_, new) in functions.items()}
    base = derive_seed(plan.seed, FUSED_STREAM)
    scale = torch.tensor(plan.scale * n**-0.5, dtype=dtype, device=device)
    out = torch.empty((plan.samples, len(plan.record), k, n), dtype=dtype, device=device)
    first_bad = torch.full((plan.samples,), -1, dtype=torch.long, device=device)
    first_lost = torch.full_like(first_bad, -1)
    total = plan.samples * plan.steps
    for block in range(blocks):
        start, stop = block * size, min(plan.samples, (block + 1) * size)
        rows = max(2, stop - start)  # a dimension of size 1 would be specialized: pad to 2
        y = _initial(plan, block, start, stop, rows)
        bad = torch.full((rows,), -1, dtype=torch.long, device=device)
        lost = torch.full_like(bad, -1)
        for slot in slots.get(0, []):
            out[start:stop, slot] = y[: stop - start].view(-1, k, n)
        for first, count in calls:
            # in Python integers: base + ... may pass 2^63, which int64 arithmetic would wrap
            counters = range(first - 1, first - 1 + count)
            values = [(base + block * plan.steps + counter) % limit for counter in counters]
            keys = torch.tensor(values, dtype=torch.int64, device=device)
            layer = torch.tensor(first, dtype=torch.long, device=device)
            for tensor in (y, bad, lost):
                torch._dynamo.mark_dynamic(tensor, 0)
            function, _ = functions[count]
            y, bad, lost = _call(function, fresh[count], y, keys, scale, layer, bad, lost)
            fresh[count] = False
            last = first + count - 1
            for slot in slots.get(last, []):
                out[start:stop, slot] = y[: stop - start].view(-1, k, n)
            if progress is not None:
                progress(start * plan.steps + (stop - start) * last, total)
        first_bad[start:stop] = bad[: stop - start]
        first_lost[start:stop] = lost[: stop - start]
    report_numerics(plan, first_bad, first_lost)
    return out


def _initial(plan: ChainPlan, block: int, start: int, stop: int, rows: int) -> Tensor:
    """``Y_0`` of the block's samples as a ``(rows, n)`` tensor for one input, ``(rows, k, n)``
    for several (rows past ``stop - start`` repeat the first sample: padding, never
    returned)."""
    n, size = plan.width, stop - start
    if plan.state.kind == "x":
        streams = BlockStreams(plan.seed, CHAIN_STREAM, [(block, 0, size)], plan.device)
        normals = streams.normal(0, 0, (size, n, plan.state.input_dim), plan.dtype)
        y = plan.state.draw(n, size, normals)
    else:
        y = plan.state.draw(n, size, None)
    if plan.inputs == 1:
        y = y[:, 0]
    if rows > size:
        y = torch.cat([y, y[:1].expand(rows - size, *y.shape[1:])])
    return y.contiguous()
