"""The compiled sweeps of the 2LP block for one sample on the CPU (issue 10).

With ``N = 1`` (the linear study of chizat.md) a layer of training is matrix-vector products:
the time is the time to stream ``U`` and ``V`` from memory. The tensor path makes a Python step
and a BLAS call per product and reads each matrix three times per adjoint sweep;
``_sweeps.c`` runs a whole forward pass, or a whole adjoint sweep with its in-place updates,
in one call that reads each row of each matrix once (``r_j = <v_j, g>`` and the update of
``v_j`` in one pass over the row, the product ``r^T U`` and the update of ``u_j`` in another).
Compiled on first use and cached as ``deeplimit.compiled`` says; ``ctypes`` releases the
interpreter's lock, so the training's groups of networks (``train._NetworkGroups``) run on
both cores.

Where the kernel does not load (no compiler, ``DEEPLIMIT_NATIVE=0``), or does not apply
(``N > 1``, another activation than ``tanh`` or a linear one, autograd, another device,
parameters not laid out in contiguous layers), the tensor path runs:
the same arithmetic, summed in another order, so the numbers agree to rounding
(``tests/test_training_native.py``). The provenance records which path ran
(``compiled_kernels["training_sweeps"]``).
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .. import compiled

_SOURCE = Path(__file__).with_name("_sweeps.c")
_SUFFIXES = {torch.float64: "f64", torch.float32: "f32"}

TANH, LINEAR = 1, 0  # the activation codes of the C source


def _bind(library: ctypes.CDLL) -> dict[torch.dtype, tuple[Any, Any]]:
    """``(forward, adjoint)`` by dtype, with their ``ctypes`` signatures."""
    pointer, long, double, integer = ctypes.c_void_p, ctypes.c_long, ctypes.c_double, ctypes.c_int
    kernels = {}
    for dtype, suffix in _SUFFIXES.items():
        forward = getattr(library, f"forward_sweep_{suffix}")
        forward.restype = integer
        forward.argtypes = [pointer] * 2 + [long] * 4 + [pointer, long] + [pointer] * 4
        forward.argtypes += [integer, double]
        adjoint = getattr(library, f"adjoint_sweep_{suffix}")
        adjoint.restype = integer
        adjoint.argtypes = [pointer] * 2 + [long] * 4 + [pointer] * 9 + [integer, double]
        kernels[dtype] = (forward, adjoint)
    return kernels


LIBRARY = compiled.Library(_SOURCE, "training_sweeps", _bind)


def kernels() -> dict[torch.dtype, tuple[Any, Any]] | None:
    """The loaded kernels by dtype (loading them on the first call), or None."""
    return LIBRARY.kernels()


def available() -> bool:
    """Whether the compiled sweeps can run (the C kernel loaded)."""
    return LIBRARY.available()


def reason() -> str | None:
    """Why the kernel is not available (None where it is)."""
    return LIBRARY.reason()


def _pointers(tensors: Sequence[Tensor], shape: tuple[int, ...], dtype: torch.dtype) -> Any:
    """A ctypes array of the tensors' data pointers, or None unless every one is a contiguous
    CPU tensor of ``shape`` and ``dtype``."""
    addresses = []
    for tensor in tensors:
        if (
            tensor.dtype != dtype
            or tensor.device.type != "cpu"
            or tuple(tensor.shape) != shape
            or not tensor.is_contiguous()
        ):
            return None
        addresses.append(tensor.data_ptr())
    return (ctypes.c_void_p * len(addresses))(*addresses)


def _weights(
    layers: Sequence[Mapping[str, Tensor]], shape: tuple[int, int, int], dtype: torch.dtype
) -> tuple[Any, Any] | None:
    """The pointer arrays of every layer's ``u`` and ``v`` (each ``(S, M, D)``), or None."""
    u = _pointers([params["u"] for params in layers], shape, dtype)
    v = None if u is None else _pointers([params["v"] for params in layers], shape, dtype)
    return None if v is None else (u, v)


def _per_network(value: Any, networks: int) -> np.ndarray:
    """A float or an ``(S, 1, 1)`` tensor as a float64 array of ``S`` values."""
    if isinstance(value, Tensor):
        return value.detach().reshape(-1).to(torch.float64).numpy().copy()
    return np.full(networks, float(value), dtype=np.float64)


def activation_code(activation: Any) -> tuple[int, float] | None:
    """``(code, slope)`` of an activation the kernel computes, else None."""
    from ..activations import Linear, Tanh

    if type(activation) is Tanh:
        return TANH, 1.0
    if type(activation) is Linear:
        return LINEAR, float(activation.a)
    return None


def forward(
    h: Tensor,
    layers: Sequence[Mapping[str, Tensor]],
    scale: Any,
    keep: bool,
    activation: tuple[int, float],
) -> tuple[Tensor, list[Tensor], list[Any]] | None:
    """The forward sweep of ``TwoLayerBlock`` for ``h`` ``(S, 1, D)`` (its networks may share
    one embedding: stride 0): ``(h_L, states, caches)`` as ``_forward_layers`` returns them
    (``caches[l] = (sigma(p_l) (S, M, 1), sigma'(p_l), True)``, views of one buffer), or
    None where the kernel does not apply."""
    loaded = kernels()
    networks, samples, dim = h.shape
    if loaded is None or samples != 1 or h.dtype not in loaded or not layers:
        return None
    width = int(layers[0]["u"].shape[1])
    weights = _weights(layers, (networks, width, dim), h.dtype)
    if weights is None or h.device.type != "cpu" or h.stride(2) != 1:
        return None
    u, v = weights
    depth = len(layers)
    code, slope = activation
    last = torch.empty((networks, 1, dim), dtype=h.dtype)
    states: list[Tensor] = []
    caches: list[Any] = []
    state_pointers = act_pointers = None
    if keep:
        states_buffer = torch.empty((depth, networks, 1, dim), dtype=h.dtype)
        acts_buffer = torch.empty((depth, networks, width, 1), dtype=h.dtype)
        states = list(states_buffer.unbind(0))
        derivative = None if code == TANH else slope
        caches = [(a, derivative, True) for a in acts_buffer.unbind(0)]
        state_pointers = _pointers(states, (networks, 1, dim), h.dtype)
        act_pointers = _pointers([a for a, _, _ in caches], (networks, width, 1), h.dtype)
    scales = _per_network(scale, networks)
    status = loaded[h.dtype][0](
        u,
        v,
        depth,
        networks,
        width,
        dim,
        h.data_ptr(),
        h.stride(0),
        state_pointers,
        act_pointers,
        last.data_ptr(),
        scales.ctypes.data,
        code,
        slope,
    )
    if status != 0:
        raise MemoryError(
            f"the compiled forward sweep could not allocate {3 * dim + width} numbers"
        )
    return last, states, caches


def adjoint(
    states: list[Any],
    caches: list[Any],
    g: Tensor,
    layers: Sequence[Mapping[str, Tensor]],
    scale: Any,
    targets: Callable[[int], Mapping[str, Tensor]],
    coefficients: Mapping[str, Any],
    activation: tuple[int, float],
    record: Callable[[int, Tensor], None] | None = None,
) -> Tensor | None:
    """The adjoint sweep of ``TwoLayerBlock`` with the parameters updated in place
    (``targets(l)`` is layer ``l`` itself) from ``g_L`` ``(S, 1, D)``: ``g_0``, or None (nothing
    done) where the kernel does not apply. ``record(l, g_l)`` sees ``g_l`` for ``l = L-1..0``
    in that order, once the sweep is done (the kernel writes them into one buffer)."""
    loaded = kernels()
    networks, samples, dim = g.shape
    if loaded is None or samples != 1 or g.dtype not in loaded or not layers:
        return None
    depth = len(layers)
    if len(states) != depth or len(caches) != depth:
        return None
    code, slope = activation
    derivative = None if code == TANH else slope
    for index, params in enumerate(layers):
        cache = caches[index]
        if (
            targets(index) is not params
            or cache is None
            or len(cache) != 3
            or cache[2] is not True
            or not (cache[1] is derivative or cache[1] == derivative)
        ):
            return None
    width = int(layers[0]["u"].shape[1])
    weights = _weights(layers, (networks, width, dim), g.dtype)
    u, v = weights if weights is not None else (None, None)
    h = None if v is None else _pointers(states, (networks, 1, dim), g.dtype)
    a = None if h is None else _pointers([c[0] for c in caches], (networks, width, 1), g.dtype)
    if a is None or g.device.type != "cpu" or not g.is_contiguous():
        return None
    per_network = isinstance(scale, Tensor)
    inv_d = 1.0 / dim
    r_scale = 1.0 if per_network else scale
    g_alpha = r_scale * inv_d
    r_mult = _per_network(scale if per_network else 1.0, networks)
    alphas = _per_network(g_alpha, networks)
    v_coefficient = _per_network(coefficients["v"] * scale, networks)
    u_coefficient = _per_network(coefficients["u"] * g_alpha, networks)
    first = torch.empty_like(g)
    adjoints = buffer = None
    if record is not None:
        buffer = torch.empty((depth, networks, 1, dim), dtype=g.dtype)
        adjoints = _pointers(list(buffer.unbind(0)), (networks, 1, dim), g.dtype)
    status = loaded[g.dtype][1](
        u,
        v,
        depth,
        networks,
        width,
        dim,
        h,
        a,
        g.data_ptr(),
        first.data_ptr(),
        adjoints,
        r_mult.ctypes.data,
        alphas.ctypes.data,
        v_coefficient.ctypes.data,
        u_coefficient.ctypes.data,
        code,
        slope,
    )
    if status != 0:
        raise MemoryError(
            f"the compiled adjoint sweep could not allocate {3 * dim + width} numbers"
        )
    for index in range(depth):  # freed, as the tensor path frees them as it goes
        states[index] = caches[index] = None
    if buffer is not None:
        for index in range(depth - 1, -1, -1):
            record(index, buffer[index])
    return first
