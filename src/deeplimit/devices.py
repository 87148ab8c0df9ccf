"""Device and dtype arguments: validation and normalization."""

from __future__ import annotations

from typing import Any

import torch

__all__ = [
    "check_device_name",
    "compiled_kernels",
    "describe_device",
    "note_compiled_kernel",
    "one_torch_thread",
    "resolve_device",
    "resolve_dtype",
]

_DTYPES = {
    "float32": torch.float32,
    "float64": torch.float64,
    "float": torch.float32,
    "double": torch.float64,
}


def _parse_device(device: Any) -> torch.device:
    """``torch.device(device)``, with a ValueError naming the allowed forms when it fails."""
    try:
        return torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(
            f"device must be 'cpu', 'cuda' or 'cuda:<index>', got {device!r}"
        ) from None


def check_device_name(device: Any) -> str:
    """``device`` if it has the form ``cpu``, ``cuda`` or ``cuda:<index>`` (a ValueError
    otherwise), without asking whether it is available here (:func:`resolve_device` does)."""
    resolved = _parse_device(device)
    if resolved.type not in ("cpu", "cuda"):
        raise ValueError(f"device must be 'cpu' or 'cuda[:<index>]', got {device!r}")
    return device


def resolve_device(device: Any) -> torch.device:
    """Turn ``"cpu"``, ``"cuda"``, ``"cuda:1"`` or a ``torch.device`` into a usable device.

    Raises a ValueError when CUDA is asked for but not available, or the index is too large.
    """
    resolved = _parse_device(device)
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(
                f"device={device!r} asks for CUDA, but no CUDA device is available on this "
                "machine; use device='cpu'"
            )
        count = torch.cuda.device_count()
        if resolved.index is not None and resolved.index >= count:
            raise ValueError(
                f"device={device!r} asks for CUDA device {resolved.index}, but only {count} "
                f"{'is' if count == 1 else 'are'} visible (indices 0..{count - 1})"
            )
        if resolved.index is None:
            resolved = torch.device("cuda", torch.cuda.current_device())
    elif resolved.type != "cpu":
        raise ValueError(f"device must be 'cpu' or 'cuda[:<index>]', got {device!r}")
    return resolved


def resolve_dtype(dtype: Any) -> torch.dtype:
    """Accept ``torch.float32``/``torch.float64`` or their names; anything else is an error."""
    if isinstance(dtype, torch.dtype):
        if dtype in (torch.float32, torch.float64):
            return dtype
    elif isinstance(dtype, str) and dtype.removeprefix("torch.") in _DTYPES:
        return _DTYPES[dtype.removeprefix("torch.")]
    raise ValueError(f"dtype must be torch.float32 or torch.float64, got {dtype!r}")


def describe_device(device: torch.device) -> str:
    """A human-readable device name for provenance records (e.g. 'cuda:0 (NVIDIA H100)')."""
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    import platform

    return f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


_COMPILED: dict[str, str] = {}


def note_compiled_kernel(name: str, state: str) -> None:
    """Record which path a compiled CPU kernel of this process takes (``state``: the library
    it loaded, or why the tensor path runs instead), for provenance records: the two paths
    give the same law but not the same rounding (except ``mt_normal``, whose two paths give
    the same numbers: ``rng.torch_float32_normals``)."""
    _COMPILED[name] = state


def compiled_kernels() -> dict[str, str]:
    """The compiled kernels this process has loaded or tried to, by name."""
    return dict(_COMPILED)


def one_torch_thread() -> None:
    """Run torch's CPU operations of the calling thread on that thread alone: the initializer of
    every pool whose threads each run their own operations (blocks of the chain, groups of
    networks) and the start of every helper thread.

    ``torch.set_num_threads(1)`` on the main thread does not reach the other threads: OpenMP
    keeps its thread count per thread, and a new thread starts at the default, one per core.
    A worker's operations then each fork a team of that size, and two workers on two cores
    run four threads that wait on each other (measured on 2 cores: two workers doing small
    float32 products finished their work 0.8x as fast as one worker alone, at 2.8x the CPU
    time per product; 1.8x faster with this call in each worker)."""
    torch.set_num_threads(1)
