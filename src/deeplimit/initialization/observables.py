"""Observables of random ResNets, streamed out of the chain while it runs (hayou.md §4-6).

Nothing here keeps whole paths: each observable keeps per-network values at the layers asked
for, or running sums, chunk by chunk. Available observables (``observables=`` names):

``log_growth``
    ``LG_l = log(||phi(Y_l)|| / ||phi(Y_0)||)`` (-inf once collapsed, NaN when ``phi(Y_0) = 0``);
    computed in log space for positively homogeneous activations (linear, ReLU, leaky), so it
    stays finite and exact where ``Y_l`` itself under- or overflows the dtype.
``collapse``
    the first layer at which every post-activation vanishes, ``phi(Y_l) = 0`` (-1 if never);
    for ReLU, all pre-activations ``<= 0``. Collapse is absorbing (Lemma 1). A state that
    underflowed to zero is not a collapse: it is reported (``NumericalUnderflowError``).
``active``
    ``N_l = #{i: Y_l^i > 0}`` at the recorded layers and its time average
    ``(1/L) sum_{l<L} N_l / n``.
``quasi_gbm``
    the drift and quadratic variation of ``log ||phi(Y)||`` integrated along the path (Thm 1 for
    ReLU, Prop. 10 for piecewise-linear, Lemma 2's Itô formula for smooth phi):
    ``mu(y) = (1/2n) [||phi'(y)||^2 + <phi(y), phi''(y)> - 2 rho(y)]`` and
    ``rho(y) = ||phi(y) * phi'(y)||^2 / ||phi(y)||^2``; ``drift = dt sum_{l<L} mu(Y_l)``,
    ``quadratic_variation = dt sum_{l<L} rho(Y_l) / n``. For ReLU ``mu = (N - 2)/(2n)``,
    ``rho = 1``, so ``LG_L - drift`` is the quasi-GBM residual of C9,
    ``~ N(0, 1/n)`` as ``L -> oo``.
``correlation``
    ``c_l(x_a, x_b) = <Y_l(x_a), Y_l(x_b)> / (||Y_l(x_a)|| ||Y_l(x_b)||)`` for every pair ``a < b``.
``norm``
    ``||Y_l||`` and ``||phi(Y_l)||`` at the recorded layers.

Everything works for any activation of the library, user callables included.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor

from ..activations import ReLU
from ..errors import check_real_array
from ..sizes import Need
from ..stats import binomial_interval
from . import native
from .chain import (
    ChainPlan,
    ChunkContext,
    LayerView,
    ObservedStretch,
    Observer,
    ProgressCallback,
    simulate_chain,
)
from .mapped import empty as _empty
from .network import held_need
from .recording import slots_by_step
from .shorthands import collapse_probability, observe_resnet, observe_sde

if TYPE_CHECKING:  # a file format: imported by to_dataset only
    import xarray as xr

__all__ = [
    "OBSERVABLES",
    "CollapseProbability",
    "Observations",
    "collapse_probability",
    "correlation_coefficients",
    "observe_resnet",
    "observe_sde",
]

OBSERVABLES = ("log_growth", "collapse", "active", "quasi_gbm", "correlation", "norm")


def _layer_major(
    samples: int, layers: int, columns: int, dtype: torch.dtype, device: torch.device
) -> Tensor:
    """Memory ``(layers, columns, samples)`` for a per-layer result: a layer of a block of
    samples is written as ``columns`` contiguous runs (the chain's samples-last layout), and
    the result is its view ``(samples, layers, columns)`` (``_Recorder.results_view``)."""
    return _empty((layers, columns, samples), dtype, device)


def _start_total(count: Tensor, width: int, steps: int) -> Tensor:
    """A running sum of active counts (each at most ``width``) over ``steps`` layers,
    starting at ``count``: int32 (an addition of the same dtype, the fast one) wherever the
    sum cannot overflow it."""
    dtype = torch.int32 if width * steps < 2**31 else torch.int64
    return count.to(dtype, copy=True)


class _Recorder(Observer):
    """Base for observers that keep per-network values at a set of layers (a layer listed
    twice fills both of its slots).

    Per-layer results are stored layer-major, memory ``(slots, columns, samples)``
    (``_layer_major``), and returned as its view ``(samples, slots, columns)``: the values
    of a layer of a block are written where they are computed, as a few contiguous runs,
    with no staging and no transposing copy (a samples-first result takes one cache line
    per network and layer; at width 1 that costs more than the layer itself)."""

    parallel_safe = True  # per-chunk state is set in ``start``; results written at its rows

    def __init__(self, layers: tuple[int, ...], samples: int) -> None:
        self.positions = slots_by_step(layers)
        self.samples = samples
        self.context: ChunkContext | None = None
        # ``_slot``'s views (a tuple, indexed with no torch call), of the chunk ``_views_chunk``
        self._views: dict[Any, tuple[Any, ...]] = {}
        self._views_chunk: ChunkContext | None = None
        self._out: tuple[int, Tensor] | None = None  # the last ``destination`` and its target

    @property
    def rows(self) -> slice:
        assert self.context is not None
        return slice(self.context.start, self.context.stop)

    def start(self, context: ChunkContext, view: LayerView) -> None:
        """A new chunk: observe its layer 0."""
        self.context = context
        self.observe(view)

    def results(self) -> dict[str, Tensor]:
        raise NotImplementedError

    @staticmethod
    def results_view(memory: Tensor) -> Tensor:
        """The ``(samples, slots, columns)`` view of layer-major memory."""
        return memory.permute(2, 0, 1)

    def _slot(self, target: Tensor, slot: int) -> Tensor:
        """The ``(chunk, columns)`` view of ``slot`` of the layer-major ``target`` at the
        chunk's rows: one indexing of a view of all the slots made once per chunk (a view
        made from ``target`` costs several small calls, at every layer), with the strides of
        a contiguous tensor where it is one (``canonical``). The cache is replaced, not
        cleared, at a new chunk: the shallow copies of this observer on other threads keep
        theirs."""
        context = self.context
        assert context is not None
        if self._views_chunk is not context:
            self._views, self._views_chunk = {}, context
        slots = self._views.get(id(target))
        if slots is None:  # (slots, chunk, columns)
            rows = slice(context.start, context.stop)
            if target.shape[1] == 1:
                slots = target[:, 0, rows].unsqueeze(-1).unbind(0)
            else:
                slots = target[:, :, rows].transpose(1, 2).unbind(0)
            self._views[id(target)] = slots
        return slots[slot]

    def _slot_rows(self, target: Tensor, layer: int) -> Tensor:
        """The ``(columns, chunk)`` rows of the first slot of ``layer`` in the layer-major
        ``target`` (``destination``'s transpose), from views made once per chunk: a torch
        call, a view's too, lets go of the interpreter's lock, which the chain's other
        threads may hold when it is taken back."""
        context = self.context
        assert context is not None
        key = ("rows", id(target))
        rows = self._views.get(key)
        if rows is None or self._views_chunk is not context:
            self._slot(target, self.positions[layer][0])  # (re)starts the chunk's cache
            rows = target[:, :, context.start : context.stop].unbind(0)
            self._views[key] = rows
        return rows[self.positions[layer][0]]

    def _slot_array(self, target: Tensor, layer: int) -> np.ndarray | None:
        """``_slot_rows`` as a NumPy array (CPU), from an array of the chunk's columns made
        once per chunk; None on other devices."""
        context = self.context
        assert context is not None
        if target.device.type != "cpu":
            return None
        key = ("array", id(target))
        self._slot(target, self.positions[layer][0])  # (re)starts the chunk's cache
        arrays = self._views.get(key)
        if arrays is None:
            arrays = tuple(target.numpy()[:, :, context.start : context.stop])
            self._views[key] = arrays
        return arrays[self.positions[layer][0]]

    def _run_start(self, target: Tensor, first: int, count: int) -> int | None:
        """The first slot of layer ``first`` in the layer-major CPU ``target``, where the
        layers ``first .. first + count - 1`` are all recorded and their first slots follow
        each other (one write for the layers of a stretch: ``_slots_run``); else None."""
        slots = self.positions.get(first)
        if target.device.type != "cpu" or slots is None:
            return None
        start = slots[0]
        positions = self.positions
        if any(positions.get(first + i, (-1,))[0] != start + i for i in range(1, count)):
            return None
        return start

    def _slots_run(self, target: Tensor, first: int, count: int) -> np.ndarray | None:
        """The NumPy view ``(count, chunk)`` (one column) or ``(count, columns, chunk)`` of the
        first slots of the layers ``first .. first + count - 1`` (``_run_start``), or
        None."""
        context = self.context
        assert context is not None
        start = self._run_start(target, first, count)
        if start is None:
            return None
        self._slot(target, start)  # (re)starts the chunk's cache
        key = ("run", id(target))
        array = self._views.get(key)
        if array is None:
            array = target.numpy()[:, :, context.start : context.stop]
            array = self._views[key] = array[:, 0] if target.shape[1] == 1 else array
        return array[start : start + count]

    def _stretch_slots(
        self, target: Tensor, stretch: ObservedStretch
    ) -> Iterator[tuple[int, int, Tensor, np.ndarray | None]]:
        """The recorded layers of ``stretch`` one by one (where ``_slots_run`` does not
        apply): ``(index in the stretch, layer, destination, its NumPy view or None)``; the
        caller ``keep``s each."""
        for index in range(stretch.count):
            layer = stretch.first + index
            if layer in self.positions:
                out = self.destination(target, layer)
                yield index, layer, out, self._slot_array(target, layer)

    def _keep_run(self, target: Tensor, first: int, count: int) -> None:
        """``keep`` for the layers of a run written into their first slots (``_slots_run``):
        the layers recorded more than once copied into their other slots."""
        for layer in range(first, first + count):
            slots = self.positions[layer]
            if len(slots) > 1:
                values = self._slot(target, slots[0])
                for slot in slots[1:]:
                    self._slot(target, slot).copy_(values)

    def destination(self, target: Tensor, layer: int) -> Tensor:
        """Where the values of ``layer`` (chunk first, ``(chunk, columns)``) go in the
        layer-major ``target``: its first slot of ``layer``; ``keep`` fills the others."""
        out = self._slot(target, self.positions[layer][0])
        self._out = (id(target), out)
        return out

    def keep(self, target: Tensor, layer: int, values: Tensor) -> None:
        """Store ``values`` (``(chunk, columns)``) in every slot of ``layer`` of ``target``
        (values computed into ``destination`` are not copied again)."""
        slots = self.positions[layer]
        out = self._out
        computed = out is not None and out[0] == id(target) and out[1] is values
        for slot in slots:
            if computed and slot == slots[0]:
                continue  # computed where they go
            part = self._slot(target, slot)
            if part.data_ptr() != values.data_ptr() or part.stride() != values.stride():
                part.copy_(values)


def _phi_step(view: LayerView) -> tuple[Tensor, Tensor]:
    """``|view.phi_sign|`` (1 where ``phi_norm > 0``, +0 where it is zero) and that minus 1
    (-1 where ``phi_norm = 0``, +0 elsewhere), for a finite state; shared by the observers of
    a layer, in buffers of the view."""
    shared = view.shared.get("phi_step")
    if shared is None:
        unit = torch.abs(view.phi_sign, out=view.buffer("phi unit"))
        step = torch.sub(unit, 1, out=view.buffer("step"))
        shared = view.shared["phi_step"] = (unit, step)
    return shared


def _log_(
    values: Tensor, out: Tensor | None = None, arrays: tuple[np.ndarray, np.ndarray] | None = None
) -> Tensor:
    """``values.log_()``, or into ``out`` (of ``values``' shape) where given; on the CPU by
    NumPy, two (float32) to four (float64) times faster than torch's kernel on normal numbers
    (both within an ulp of the exact logarithm). Every log-growth, the fast path's and the
    reference's, is taken by this function. A log computed in a scratch buffer and written
    once into a (large) result costs less than a division written into the result and its
    log taken there in place. ``arrays``: NumPy views of ``values`` and ``out`` (the same
    memory, any shape they share) where the caller keeps them: ``.numpy()`` is a torch call,
    which lets go of the interpreter's lock (``_Recorder._slot_rows``)."""
    target = values if out is None else out
    if values.device.type != "cpu":
        return torch.log(values, out=target)
    array, into = (values.numpy(), target.numpy()) if arrays is None else arrays
    errors = np.geterr()
    if errors["divide"] == "ignore" and errors["invalid"] == "ignore":  # the chain's blocks
        np.log(array, out=into)
    else:
        with np.errstate(divide="ignore", invalid="ignore"):
            np.log(array, out=into)
    return target


class _RatioLog:
    """``log(p / q)`` for the norms ``p`` of a layer and ``q`` of layer 0, with the bits of
    ``_log_(p / q)`` (the reference) but with no zero, inf or NaN reaching the log, where
    its kernel is several times slower on them than on normal numbers (collapsed paths,
    p = 0, are common): NumPy's float64 log (its float32 log is as fast on them, and
    ``start`` leaves float32 to the reference). Valid for finite ``p`` and ``q``: the log is
    taken of the ratio with 1 in place of its zeros (``ratio - (s - 1)`` for the sign ``s``
    of ``p``: the ratio itself, bit for bit, where ``p > 0``) and the special results are
    added by arithmetic on ``s``: ``(s - 1) / s`` is -inf where ``p = 0`` and +0 elsewhere;
    where ``q = 0`` the ratio is taken with ``q = 1`` and +inf added, which makes ``0 / 0``
    the default NaN and ``p / 0`` +inf, as the division does (and the log keeps them)."""

    def __init__(self, norm0: Tensor) -> None:
        dead = norm0 == 0
        if bool(dead.any()):
            self.divisor = torch.where(dead, 1.0, norm0)
            self.offset: Tensor | None = torch.where(dead, math.inf, 0.0).to(norm0.dtype)
        else:
            self.divisor, self.offset = norm0, None

    @classmethod
    def start(cls, view: LayerView, norm0: Tensor) -> _RatioLog | None:
        """The branch-free log for this chunk, or None where the reference is as fast
        (float32 on the CPU) or ``q`` may not be finite."""
        if norm0.dtype != torch.float64 or norm0.device.type != "cpu":
            return None
        if not view.finite or not (norm0.numel() == 0 or float(norm0.max()) < math.inf):
            return None
        return cls(norm0)

    def __call__(
        self,
        view: LayerView,
        out: Tensor,
        columns: slice | None = None,
        arrays: Callable[[Tensor], tuple[np.ndarray, np.ndarray] | None] | None = None,
    ) -> Tensor:
        """The log-growth of a finite ``view``, into ``out`` (``(chunk, k)``), or of its inputs
        ``columns`` only (``out`` then has those columns, as ``norm0`` had); computed in a
        buffer of the view, written into ``out`` by the last operation (``arrays``: the NumPy
        views ``_log_`` may take for a ratio and ``out``)."""
        norm = view.phi_norm if columns is None else view.phi_norm[:, columns]
        work = view.buffer("log ratio")
        ratio = None if columns is not None else _LogGrowth.divided(view, self.divisor)
        if ratio is None:
            ratio = torch.div(norm, self.divisor, out=work if columns is None else work[:, columns])
        if self.offset is None and view.phi_range[0] > 0:  # no zero norm (NaN-safe: unknown)
            return _log_(ratio, out, None if arrays is None else arrays(ratio))
        if columns is None:
            unit, step = _phi_step(view)  # step: -1 where p = 0, 0 elsewhere
        else:
            unit = torch.abs(view.phi_sign[:, columns], out=view.buffer("phi unit")[:, columns])
            step = torch.sub(unit, 1, out=view.buffer("step")[:, columns])
        _log_(ratio.sub_(step))  # 0 where p = 0
        if self.offset is None:
            return torch.addcdiv(ratio, step, unit, out=out)  # -inf where p = 0, +0 elsewhere
        ratio.addcdiv_(step, unit)
        return torch.add(ratio, self.offset, out=out)


def _dead_chunk(context: ChunkContext | None, view: LayerView) -> bool:
    """Whether ``view`` is a finite layer of a width-1 ReLU chunk in which every path and
    input had ``phi(Y_0) = 0``: collapse is absorbing (a zero increment), so every later
    layer has the values of layer 0 (log-growth NaN, no active unit, no path alive) and the
    observers write them with no per-layer arithmetic. Decided once, at layer 0 (and shared
    by the chunk's observers); False where layer 0 was not known finite (the reference)."""
    if context is None:
        return False
    dead = context.__dict__.get("dead")
    if dead is None:
        plan = context.plan
        dead = (
            view.layer == 0
            and plan.width == 1
            and isinstance(plan.activation, ReLU)
            and view.finite
            and view.lost is None
            and view.phi_norm.numel() > 0
            and float(view.phi_norm.abs().max()) == 0.0
        )
        context.__dict__["dead"] = dead
    return dead and view.finite and view.lost is None


class _LogGrowth(_Recorder):
    def __init__(self, layers: tuple[int, ...], plan: ChainPlan) -> None:
        super().__init__(layers, plan.samples)
        self.values = _layer_major(plan.samples, len(layers), plan.inputs, plan.dtype, plan.device)
        self.norm0: Tensor | None = None
        self.exponent0: Tensor | None = None
        self.fast: _RatioLog | None = None

    def start(self, context: ChunkContext, view: LayerView) -> None:
        self.context = context
        self.norm0 = view.phi_norm.clone()
        self.exponent0 = view.exponent
        self.fast = _RatioLog.start(view, self.norm0)
        self.constant: Tensor | None = None
        self.columns: slice | None = None
        if _dead_chunk(context, view):  # the reference's values (NaN) of every layer
            self.constant = _log_(torch.div(view.phi_norm, self.norm0))
        else:
            columns = self._live_columns(context, view)
            # where the branch-free log applies (float64 on the CPU): else the reference's two
            # kernels on every input are as fast (float32's log is fast on NaN)
            fast = None if columns is None else _RatioLog.start(view, self.norm0[:, columns])
            if fast is not None:  # layer 0's values (NaN) of the dead inputs
                self.columns, self.fast = columns, fast
                self.constant = _log_(torch.div(view.phi_norm, self.norm0))
        space = view.workspace
        relu = isinstance(context.plan.activation, ReLU)
        self.divisor: Tensor | None = None  # what the compiled passes divide by
        if space is not None and self.constant is None and relu:
            # the compiled pass of each later layer divides by the norms of layer 0
            divisor = self.norm0 if self.fast is None else self.fast.divisor
            if space.divide_into(divisor, view.buffer("log ratio")):
                self.divisor = divisor
        self.observe(view)

    stretches = True

    def takes_stretch(self) -> bool:
        # the reference formula, on ratios the compiled passes divide by the norms of layer 0
        return self.divisor is not None and self.divisor is self.norm0 and self.constant is None

    def observe_stretch(self, stretch: ObservedStretch) -> None:
        """The reference formula at the recorded layers of ``stretch``, on its ratios."""
        assert stretch.ratio is not None and stretch.divisor is self.norm0
        ratios = stretch.arrays[1]
        assert ratios is not None
        # (stretches come only in chains never rescaled: no log-scale to add)
        assert stretch.exponent is self.exponent0
        run = self._slots_run(self.values, stretch.first, stretch.count)
        if run is not None:  # every layer's log in one call, into the results
            _log_(stretch.ratio, None, (ratios, run))
            self._keep_run(self.values, stretch.first, stretch.count)
            return
        for index, layer, out, target in self._stretch_slots(self.values, stretch):
            arrays = None if target is None else (ratios[index].reshape(target.shape), target)
            self.keep(self.values, layer, _log_(stretch.ratio[index], out, arrays))

    @staticmethod
    def divided(view: LayerView, divisor: Tensor) -> Tensor | None:
        """``view.phi_norm / divisor``, where the layer's compiled pass computed it
        (``_Workspace.divide_into``), else None."""
        done = view.shared.get("phi ratio")
        return done[1] if done is not None and done[0] is divisor else None

    @staticmethod
    def _live_columns(context: ChunkContext, view: LayerView) -> slice | None:
        """Width 1 (ReLU), several inputs of which some have ``phi(Y_0) = 0`` in every path
        of the chunk and the others form a run ``a:b``: that run, whose log-growth alone is
        computed at the later finite layers (the dead inputs keep layer 0's values, collapse
        being absorbing), or None."""
        plan = context.plan
        k = view.phi_norm.shape[-1]
        if not (plan.width == 1 and isinstance(plan.activation, ReLU) and k > 1):
            return None
        if not view.finite or view.lost is not None or view.phi_norm.shape[0] == 0:
            return None
        live = [
            index for index, dead in enumerate((view.phi_norm == 0).all(0).tolist()) if not dead
        ]
        if not live or len(live) == k or live[-1] - live[0] + 1 != len(live):
            return None
        return slice(live[0], live[-1] + 1)

    def observe(self, view: LayerView) -> None:
        if view.layer not in self.positions:
            return
        out = self.destination(self.values, view.layer)
        if self.constant is not None and _dead_chunk(self.context, view):
            self.keep(self.values, view.layer, out.copy_(self.constant))
            return
        columns = self.columns
        if columns is not None and view.finite and view.lost is None:
            assert self.constant is not None and self.norm0 is not None
            a, b = columns.start, columns.stop
            out[:, :a].copy_(self.constant[:, :a])
            out[:, b:].copy_(self.constant[:, b:])
            assert self.fast is not None
            self.fast(view, out[:, columns], columns)
            growth = out
        elif self.fast is not None and view.finite and columns is None:
            growth = self.fast(view, out, arrays=lambda ratio: self._arrays(view, ratio))
        else:  # the reference formula
            ratio = self.divided(view, self.norm0)
            if ratio is None:
                ratio = torch.div(view.phi_norm, self.norm0, out=self._work(view, out))
            growth = _log_(ratio, out, self._arrays(view, ratio))
        # phi(Y) = phi(y) 2^exponent: add the log-scale (the chain replaces the exponent
        # tensor when it rescales, so an unchanged one adds exactly zero)
        if view.exponent is not None and view.exponent is not self.exponent0:
            assert self.exponent0 is not None
            scale = (view.exponent - self.exponent0).to(torch.float64) * math.log(2.0)
            growth.copy_(growth + scale)  # in float64, rounded once to the dtype
        self.keep(self.values, view.layer, growth)

    def _arrays(self, view: LayerView, ratio: Tensor) -> tuple[np.ndarray, np.ndarray] | None:
        """NumPy views of the scratch ``ratio`` (the view's ``"log ratio"`` buffer) and of the
        layer's slot of the results, as ``_log_`` takes them, kept from layer to layer; None
        where ``ratio`` is not that buffer."""
        space = view.workspace
        if space is None or ratio is not view.buffer("log ratio"):
            return None
        target = self._slot_array(self.values, view.layer)
        return None if target is None else (space.rows_array(ratio), target)

    @staticmethod
    def _work(view: LayerView, out: Tensor) -> Tensor:
        """Where to divide before the log: a buffer of the view on the CPU (the log then
        writes the result once), ``out`` itself elsewhere."""
        return view.buffer("log ratio") if view.workspace is not None else out

    def results(self) -> dict[str, Tensor]:
        return {"log_growth": self.results_view(self.values)}


class _Alive:
    """Per chunk, shared by its observers: for each path and input, the number of layers
    ``l < steps`` at which it was alive (``phi_norm > 0``), the sum of the signs of
    ``phi_norm`` in the dtype (exact integers below 2^(mantissa bits + 1); one addition a
    layer, where a comparison and a ``masked_fill_`` are several times slower on the CPU; a
    layer with no zero norm only counts). Kept while every layer is finite with no underflow
    and the activation is positively homogeneous (phi of a finite state is then never NaN);
    from the first layer that is not (``stop``), the active counts are summed instead
    (``counts``) for the totals of width 1, where the sign is the count."""

    def __init__(self, plan: ChainPlan, view: LayerView, context: ChunkContext) -> None:
        exact = (
            plan.steps + 1 <= 2.0 / torch.finfo(plan.dtype).eps
            and plan.activation.positively_homogeneous
        )
        self.width1 = plan.width == 1 and isinstance(plan.activation, ReLU)
        self.steps = plan.steps
        counting = exact and view.finite and view.lost is None
        self.sum = torch.zeros_like(view.phi_norm) if counting else None
        self.everyone = self.seen = 0  # layers at which every path was alive / counted
        self.stop: int | None = None if counting else 0
        self.counts: Tensor | None = None
        self.layer = -1
        self.dead = counting and _dead_chunk(context, view)

    @staticmethod
    def of(context: ChunkContext, view: LayerView) -> _Alive:
        """The chunk's counter, made at its layer 0, with ``view`` (layer < steps) added."""
        alive = context.__dict__.get("alive")
        if alive is None:
            alive = context.__dict__["alive"] = _Alive(context.plan, view, context)
        alive.add(view)
        return alive

    def add(self, view: LayerView) -> None:
        if view.layer == self.layer or view.layer >= self.steps:
            return
        self.layer = view.layer
        if self.stop is None:
            if self.valid(view):
                self.count(view, self.sum)  # type: ignore[arg-type]
                return
            self.stop = view.layer
        if self.width1:  # the totals of width 1 go on from the counts
            count = view.active
            if self.counts is None:
                self.counts = _start_total(count, 1, self.steps)
                if self.sum is not None:
                    self.counts.add_(self.alive().to(self.counts.dtype))
            else:
                self.counts.add_(count)

    def takes_stretch(self) -> bool:
        """Whether layers may be counted by stretches (``add_stretch``): while they are
        counted by signs, at width > 1."""
        return self.stop is None and not self.width1 and self.sum is not None

    def add_stretch(self, stretch: ObservedStretch) -> None:
        """Count the layers of ``stretch`` (each checked: finite, never underflowed), once
        (every observer of the chunk that reads the counter passes it)."""
        if stretch.last <= self.layer:
            return
        assert self.takes_stretch() and stretch.first == self.layer + 1
        assert self.sum is not None
        count, _, alive = stretch.below(self.steps)
        self.sum.add_(alive)  # exact integers, like the signs
        self.seen += count
        self.layer = stretch.last

    @staticmethod
    def valid(view: LayerView) -> bool:
        return view.finite and view.lost is None

    def count(self, view: LayerView, into: Tensor) -> None:
        """Count ``view``'s layer into ``into``."""
        if self.dead and view.finite and view.lost is None:  # +0 (+-0 added) stays +0
            pass
        elif view.phi_range[0] > 0:  # NaN-safe: an unknown range adds the signs
            self.everyone += 1
        else:
            into.add_(view.phi_sign)
        self.seen += 1

    def alive(self) -> Tensor:
        """The layers counted at which each path was alive (a new tensor)."""
        assert self.sum is not None
        return self.sum + self.everyone

    def total(self) -> Tensor:
        """Width 1: the sum of the active counts over the layers ``0..steps-1``."""
        if self.counts is not None:
            return self.counts
        return self.alive().to(torch.int32 if self.steps < 2**31 else torch.int64)


class _Collapse(_Recorder):
    """The first collapse layer. Collapse is absorbing in the chain: a path with
    ``phi(Y_l) = 0`` gets a zero increment (a zero row of the factor, never NaN) and stays
    as it is. So the first collapse layer of a path is the number of layers at which it was
    alive (``_Alive``), -1 where that is every layer; from a layer at which the chunk's
    signs are not counted, layers are compared."""

    def __init__(self, plan: ChainPlan) -> None:
        super().__init__((), plan.samples)
        self.steps = plan.steps
        self.first = _empty((plan.samples, plan.inputs), torch.long, plan.device).fill_(-1)

    def start(self, context: ChunkContext, view: LayerView) -> None:
        self.context = context
        self.counting = True
        self.observe(view)

    def observe(self, view: LayerView) -> None:
        assert self.context is not None
        alive = _Alive.of(self.context, view)
        if self.counting:
            if alive.stop is None and view.layer == self.steps and alive.valid(view):
                assert alive.sum is not None
                last = alive.sum.clone()
                alive.count(view, last)  # the last layer, not in the shared sum
                self._write(last + alive.everyone, alive.seen)
                alive.seen -= 1
                alive.everyone -= int(view.phi_range[0] > 0)
                self.counting = False
                return
            if alive.stop is None and view.layer < self.steps:
                return
            self.counting = False  # compared from this layer on
            if alive.sum is not None:  # counted up to the layer before this one
                self._write(alive.alive(), alive.seen)
        first = self.first[self.rows]
        collapsed = view.phi_norm == 0
        if view.lost is not None:  # a state that underflowed to zero has not collapsed
            collapsed &= ~view.lost
        first.masked_fill_(collapsed & (first < 0), view.layer)

    stretches = True

    def takes_stretch(self) -> bool:
        assert self.context is not None
        alive = self.context.__dict__.get("alive")
        return self.counting and alive is not None and alive.takes_stretch()

    def observe_stretch(self, stretch: ObservedStretch) -> None:
        assert self.context is not None
        alive = self.context.__dict__["alive"]
        alive.add_stretch(stretch)
        if stretch.last == self.steps:  # the last layer, not in the shared sum (``observe``)
            last = alive.sum + (stretch.norms > 0).to(alive.sum.dtype)
            self._write(last + alive.everyone, alive.seen + 1)
            self.counting = False

    def _write(self, alive: Tensor, seen: int) -> None:
        """The first layers counted (alive at every one of the ``seen`` layers: -1)."""
        self.first[self.rows] = torch.where(alive < seen, alive, -1.0).to(torch.long)

    def results(self) -> dict[str, Tensor]:
        return {"collapse_layer": self.first}


def _active_total(context: ChunkContext, view: LayerView, width: int, steps: int) -> Tensor:
    """The sum of the active counts of the chunk over the layers ``0..view.layer``, shared by
    the observers that need it (``active``'s time average, ``quasi_gbm``'s ReLU drift), so
    that it is added once per layer; observed layer by layer from 0 (``start``). Width 1
    (ReLU): read at the end from ``_Alive`` (the count is the sign of ``phi_norm``)."""
    shared = context.__dict__.setdefault("active_total", [-1, None])
    if shared[0] != view.layer:
        count = view.active
        shared[1] = _start_total(count, width, steps) if view.layer == 0 else shared[1].add_(count)
        shared[0] = view.layer
    return shared[1]


def _active_total_stretch(context: ChunkContext, stretch: ObservedStretch) -> Tensor:
    """``_active_total`` over the layers up to the last of ``stretch`` (its counts added
    once, for every observer that reads the total)."""
    shared = context.__dict__["active_total"]  # (observed from layer 0)
    if shared[0] < stretch.last:
        assert shared[0] == stretch.first - 1
        shared[1].add_(stretch.below(context.plan.steps)[1])
        shared[0] = stretch.last
    return shared[1]


def _total_at_end(context: ChunkContext | None, total: Tensor | None) -> Tensor | None:
    """The chunk's active total: ``total``, or width 1's from ``_Alive``."""
    if total is not None or context is None:
        return total
    alive = context.__dict__.get("alive")
    return alive.total() if alive is not None else None


class _Active(_Recorder):
    def __init__(self, layers: tuple[int, ...], plan: ChainPlan) -> None:
        super().__init__(layers, plan.samples)
        self.steps = plan.steps
        self.width = plan.width
        self.counts = _layer_major(plan.samples, len(layers), plan.inputs, torch.int32, plan.device)
        self.width1 = plan.width == 1 and isinstance(plan.activation, ReLU)
        self.average = _empty((plan.samples, plan.inputs), plan.dtype, plan.device).zero_()
        self.total: Tensor | None = None

    def start(self, context: ChunkContext, view: LayerView) -> None:
        self.context = context
        self.total = None
        self.observe(view)

    def observe(self, view: LayerView) -> None:
        if view.layer in self.positions:  # counted straight into the results
            out = self.destination(self.counts, view.layer)
            if _dead_chunk(self.context, view):
                self.keep(self.counts, view.layer, out.zero_())
            else:
                self.keep(self.counts, view.layer, view.count_active(out))
        following = view.layer + 1
        if following in self.positions and view.workspace is not None:
            # the next layer's pass counts straight into its slot of the results
            slot = self._slot(self.counts, self.positions[following][0])
            view.workspace.count_into(following, self._slot_rows(self.counts, following), slot)
        if view.layer < self.steps:  # time average over l = 0..L-1 (left Riemann sum)
            assert self.context is not None
            if self.width1:
                _Alive.of(self.context, view)
            else:
                self.total = _active_total(self.context, view, self.width, self.steps)

    stretches = True

    def takes_stretch(self) -> bool:
        return not self.width1

    def stretch_counts(self, first: int, count: int) -> Tensor | None:
        """The ``(count, chunk)`` slots of the layers ``first .. first + count - 1`` in the
        results, where they are all recorded one after the other: the stretch's kernel then
        writes their counts there (``ObservedStretch``), else None."""
        context = self.context
        assert context is not None
        start = self._run_start(self.counts, first, count)
        if start is None:
            return None
        rows = self.counts[start : start + count, :, context.start : context.stop]
        return rows[:, 0] if self.counts.shape[1] == 1 else rows

    totals = True

    def reads_counts(self, first: int, count: int) -> bool:
        return any(layer in self.positions for layer in range(first, first + count))

    def observe_stretch(self, stretch: ObservedStretch) -> None:
        """The counts of ``stretch`` in the recorded layers' slots; their total."""
        counts = stretch.arrays[0]
        assert self.context is not None and counts is not None  # (``totals``: counted)
        self.total = _active_total_stretch(self.context, stretch)
        run = self._slots_run(self.counts, stretch.first, stretch.count)
        if run is not None:  # counted into the results, or one copy for every layer
            if not np.shares_memory(run, counts):
                np.copyto(run, counts)
            self._keep_run(self.counts, stretch.first, stretch.count)
            return
        for index, layer, out, target in self._stretch_slots(self.counts, stretch):
            if target is None:
                out.copy_(stretch.layer_counts(index))
            else:
                np.copyto(target, counts[index].reshape(target.shape))
            self.keep(self.counts, layer, out)

    def end(self) -> None:
        super().end()
        self.total = _total_at_end(self.context, self.total)
        if self.total is not None:  # an exact integer sum, divided once
            self.average[self.rows] = self.total.to(self.average.dtype) / (self.width * self.steps)

    def results(self) -> dict[str, Tensor]:
        return {"active": self.results_view(self.counts), "active_fraction": self.average}


class _QuasiGBM(_Recorder):
    def __init__(self, plan: ChainPlan) -> None:
        super().__init__((), plan.samples)
        self.steps = plan.steps
        self.width = plan.width
        self.dt = plan.scale**2
        self.activation = plan.activation
        self.relu = isinstance(plan.activation, ReLU)
        shape = (plan.samples, plan.inputs)
        self.drift = _empty(shape, plan.dtype, plan.device).zero_()
        self.variation = _empty(shape, plan.dtype, plan.device).zero_()
        self.total: Tensor | None = None  # ReLU: sum of the active counts of the chunk
        self.dead: Tensor | None = None

    def start(self, context: ChunkContext, view: LayerView) -> None:
        self.context = context
        self.total = self.dead = None
        self.observe(view)

    def observe(self, view: LayerView) -> None:
        if view.layer >= self.steps:
            return
        if self.relu:  # phi' = 1{y > 0}: ||phi'||^2 = N and rho = 1 (NaN once collapsed)
            # an exact integer sum of N over the layers; collapse is absorbing (phi = 0 leaves
            # the state unchanged), so rho is NaN at some layer l < L iff it is at l = L - 1
            assert self.context is not None
            if self.width == 1:
                _Alive.of(self.context, view)
            else:
                self.total = _active_total(self.context, view, self.width, self.steps)
            if view.layer == self.steps - 1:
                self.dead = view.phi_norm == 0
            return
        phi, y = view.phi, view.y
        first = self.activation.derivative(y)
        unit = phi / view.phi_norm.unsqueeze(-1)  # NaN once collapsed: the drift is undefined
        rho = unit.mul_(first).square_().sum(-1)
        curvature = first.square().sum(-1)  # (a derivative may be an expanded constant)
        if not self.activation.positively_homogeneous:  # else phi'' = 0 (piecewise linear)
            curvature += (phi * self.activation.second_derivative(y)).sum(-1)
        mu = (curvature - 2.0 * rho) / (2.0 * self.width)
        self.drift[self.rows] += self.dt * mu
        self.variation[self.rows] += self.dt * rho / self.width

    stretches = True

    def takes_stretch(self) -> bool:
        return self.relu and self.width > 1

    totals = True

    def reads_counts(self, first: int, count: int) -> bool:
        return first <= self.steps - 1 < first + count - 1  # layer L - 1, not the last

    def observe_stretch(self, stretch: ObservedStretch) -> None:
        assert self.context is not None
        self.total = _active_total_stretch(self.context, stretch)
        if stretch.first <= self.steps - 1 <= stretch.last:  # (phi_norm = 0 where N = 0)
            self.dead = stretch.layer_counts(self.steps - 1 - stretch.first) == 0

    def end(self) -> None:
        super().end()
        if self.relu:
            self.total = _total_at_end(self.context, self.total)
        if self.total is None or self.dead is None:
            return
        # drift = dt sum_l (N_l - 2) / (2n), quadratic variation = dt L / n: NaN if collapsed
        rows, dtype = self.rows, self.drift.dtype
        nan = torch.where(self.dead, math.nan, 0.0).to(dtype)
        self.drift[rows] = (self.total - 2 * self.steps).to(dtype) * (
            self.dt / (2.0 * self.width)
        ) + nan
        self.variation[rows] = self.dt * self.steps / self.width + nan

    def results(self) -> dict[str, Tensor]:
        return {"drift": self.drift, "quadratic_variation": self.variation}


class _Correlation(_Recorder):
    def __init__(self, layers: tuple[int, ...], plan: ChainPlan) -> None:
        super().__init__(layers, plan.samples)
        self.pairs = list(itertools.combinations(range(plan.inputs), 2))
        if not self.pairs:
            raise ValueError(
                "observables='correlation' needs at least two inputs: give y0 or x as a "
                "(k, m) array with k >= 2"
            )
        self.values = _layer_major(
            plan.samples, len(layers), len(self.pairs), plan.dtype, plan.device
        )
        self.first = torch.tensor([a for a, _ in self.pairs], device=plan.device)
        self.second = torch.tensor([b for _, b in self.pairs], device=plan.device)

    def start(self, context: ChunkContext, view: LayerView) -> None:
        self.context = context
        self.unit: Tensor | None = None  # buffers of the chunk, allocated at the first layer
        self.product: Tensor | None = None
        self.rows_unit: Tensor | None = None
        self.rows_product: Tensor | None = None
        self.observe(view)

    def observe(self, view: LayerView) -> None:
        if view.layer not in self.positions:
            return
        memory = view.workspace.memory(view.y) if view.workspace is not None else None
        # the CPU chain: samples last in memory
        if memory is not None and self._rows_last(
            view, memory, self._slot_rows(self.values, view.layer)
        ):
            if len(self.positions[view.layer]) > 1:  # a layer listed twice
                out = self.destination(self.values, view.layer)
                self.keep(self.values, view.layer, out)
            return
        # the reference: unit vectors (scale-free, never underflow) and the products of the
        # pairs' entries, in buffers reused at every layer (a fresh tensor of a chunk's size
        # costs a page fault per 4 KiB) and written pair by pair from slices (gathering the
        # pairs by index is an order of magnitude slower on the CPU); the product is laid
        # out as the gather would be, so that its sum is the same reduction, bit for bit
        if self.unit is None or self.product is None:
            self.unit = torch.empty_like(view.y)
            self.product = torch.empty_like(view.y[:, self.first])
        unit = torch.div(view.y, view.y_norm.unsqueeze(-1), out=self.unit)
        start = 0
        for a in range(unit.shape[1] - 1):
            stop = start + unit.shape[1] - 1 - a  # the pairs (a, b) for b > a
            torch.mul(unit[:, a : a + 1], unit[:, a + 1 :], out=self.product[:, start:stop])
            start = stop
        self.keep(self.values, view.layer, self.product.sum(-1))

    def _rows_last(self, view: LayerView, memory: Tensor, out: Tensor) -> bool:
        """The correlations of a state stored samples last (``memory`` ``(k, n, block)``),
        computed in ``out`` (``(pairs, block)`` memory of the results), or False where the
        norms are not stored that way.

        The reference formula on rows: unit vectors ``u = y / |y|`` (scale-free: the same
        bits for a state rescaled by a power of two), then ``<u_a, u_b>``, the products of
        all pairs ``(a, b > a)`` of one ``a`` at once and summed over the width along memory
        (one sample per lane, where the reference sums each sample's strided row) straight
        into the results; at width 1 the products themselves, the reference's bits. Where the
        compiled kernel loads, the same formula in one pass over the state
        (``native.correlations``: the products summed in double; at width 1 one product, whose
        bits a double sum rounded back to the dtype keeps)."""
        k, n, size = memory.shape
        if n == 1 and native.correlations(memory, None, out):  # ||y|| = |y|, in the kernel
            return True
        space = view.workspace
        norm = view.y_norm
        # (k, block); the block's own buffers only in its cache (a norm computed again after a
        # rescaling is a tensor of its own, not passed again)
        if space is not None and norm is space.y_norm(view.layer):
            norms = space.transposed(norm)
        else:
            norms = norm.t()
        if not norms.is_contiguous():
            return False
        if native.correlations(memory, norms, out):  # one compiled pass (width 1: a sum of
            return True  # one product in double, rounded back: the product's bits)
        if self.rows_unit is None:
            self.rows_unit = torch.empty_like(memory)
            if n > 1:
                shape = (k - 1, n, size)
                self.rows_product = torch.empty(shape, dtype=memory.dtype, device=memory.device)
        unit = torch.div(memory, norms.unsqueeze(1), out=self.rows_unit)
        for a, start, stop in self._slices(k):
            if n == 1:
                torch.mul(unit[a, 0], unit[a + 1 :, 0], out=out[start:stop])
                continue
            assert self.rows_product is not None
            product = self.rows_product[: k - 1 - a]
            torch.sum(
                torch.mul(unit[a : a + 1], unit[a + 1 :], out=product), 1, out=out[start:stop]
            )
        return True

    stretches = True

    def takes_stretch(self) -> bool:
        # (a stretch of several inputs: the CPU chain, whose layers ``_rows_last`` computes
        # with the same kernel, from the norms of y of the same pass)
        return self.context is not None

    def stretch_correlations(self, first: int, count: int) -> tuple[list[int], int] | None:
        """The addresses of the ``(pairs, chunk)`` rows of the recorded layers of the stretch
        ``first .. first + count - 1`` in the results (0 for the others) and their distance:
        the kernel computes each layer's correlations there, as ``_rows_last`` does; None
        where the stretch records none."""
        addresses = []
        distance = 0
        for layer in range(first, first + count):
            if layer not in self.positions:
                addresses.append(0)
                continue
            rows = self._slot_rows(self.values, layer)
            if rows.shape[0] > 1 and rows.stride(1) != 1:
                return None
            distance = rows.stride(0) if rows.shape[0] > 1 else rows.shape[1]
            addresses.append(rows.data_ptr())
        # none recorded: no correlations (nor the norms of y they divide by) to compute
        return (addresses, distance) if any(addresses) else None

    def observe_stretch(self, stretch: ObservedStretch) -> None:
        """The layers of ``stretch`` listed twice: their other slots."""
        for layer in range(stretch.first, stretch.last + 1):
            if len(self.positions.get(layer, ())) > 1:
                out = self.destination(self.values, layer)
                self.keep(self.values, layer, out)

    @staticmethod
    def _slices(k: int) -> list[tuple[int, int, int]]:
        """``(a, start, stop)``: the pairs ``(a, b)`` for ``b > a`` are ``start:stop``."""
        slices, start = [], 0
        for a in range(k - 1):
            slices.append((a, start, start + k - 1 - a))
            start += k - 1 - a
        return slices

    def results(self) -> dict[str, Tensor]:
        return {"correlation": self.results_view(self.values)}


class _Norm(_Recorder):
    def __init__(self, layers: tuple[int, ...], plan: ChainPlan) -> None:
        super().__init__(layers, plan.samples)
        self.value_layers = frozenset(layers)
        shape = (plan.samples, len(layers), plan.inputs, plan.dtype, plan.device)
        self.y_norm = _layer_major(*shape)
        self.phi_norm = _layer_major(*shape)

    def observe(self, view: LayerView) -> None:
        if view.layer in self.positions:
            self.keep(self.y_norm, view.layer, view.absolute(view.y_norm))
            self.keep(self.phi_norm, view.layer, view.absolute(view.phi_norm))

    def results(self) -> dict[str, Tensor]:
        return {
            "y_norm": self.results_view(self.y_norm),
            "phi_norm": self.results_view(self.phi_norm),
        }


@dataclass
class Observations:
    """Observables of ``samples`` networks.

    ``values`` maps names to tensors, samples first: per-layer quantities are
    ``(samples, layers, k)`` (``correlation``: ``(samples, layers, pairs)``), per-path ones
    ``(samples, k)``. Per-layer tensors are views of layer-major memory ``(layers, k,
    samples)``, the order in which the chain produces them (the values of one layer and
    input are contiguous; ``.contiguous()`` gives a samples-first copy). ``layers`` are the recorded
    layers (or SDE step indices, ``times`` the matching times). ``squeeze_inputs`` is True
    when one input vector was given.
    """

    width: int
    steps: int
    activation: str
    method: str
    layers: tuple[int, ...]
    times: tuple[float, ...]
    values: dict[str, Tensor]
    pairs: list[tuple[int, int]] = field(default_factory=list)
    squeeze_inputs: bool = True

    def __getitem__(self, name: str) -> Tensor:
        if name not in self.values:
            raise KeyError(f"{name!r} was not observed; observed: {', '.join(self.values)}")
        return self.values[name]

    def __contains__(self, name: str) -> bool:
        return name in self.values

    @property
    def quasi_gbm_residual(self) -> Tensor:
        """``LG_L - drift`` per network and input (C9): needs ``log_growth`` at the last layer
        and ``quasi_gbm``."""
        if self.steps not in self.layers or "log_growth" not in self.values:
            raise ValueError("the quasi-GBM residual needs log_growth recorded at the last layer")
        last = self.layers.index(self.steps)
        return self["log_growth"][:, last] - self["drift"]

    def to_dataset(self) -> xr.Dataset:
        """An xarray Dataset with dims ``sample``, ``layer``, ``input``, ``pair``."""
        import xarray as xr

        data: dict[str, Any] = {}
        for name, tensor in self.values.items():
            array = tensor.detach().cpu().numpy()
            if name == "correlation":
                dims: tuple[str, ...] = ("sample", "layer", "pair")
            elif array.ndim == 3:
                dims = ("sample", "layer", "input")
            else:
                dims = ("sample", "input")
            data[name] = (dims, array)
        coords: dict[str, Any] = {"layer": list(self.layers), "time": ("layer", list(self.times))}
        if self.pairs:
            coords["pair"] = [f"{a}-{b}" for a, b in self.pairs]
        attrs = {
            "width": self.width,
            "steps": self.steps,
            "activation": self.activation,
            "method": self.method,
        }
        return xr.Dataset(data, coords=coords, attrs=attrs)


def _check_observables(observables: Any) -> tuple[str, ...]:
    if isinstance(observables, str):
        observables = (observables,)
    try:
        names = tuple(observables)
    except TypeError:
        names = (observables,)
    if not names:
        raise ValueError(f"observables must name at least one of {', '.join(OBSERVABLES)}")
    for name in names:
        if not isinstance(name, str) or name not in OBSERVABLES:
            raise ValueError(f"observables must be among {', '.join(OBSERVABLES)}, got {name!r}")
    return names


def _observation_need(
    plan: ChainPlan, names: tuple[str, ...], layers: Any, record_name: str
) -> Need:
    """The observables kept until the run returns (see the observers above)."""
    k, pairs = plan.inputs, plan.inputs * (plan.inputs - 1) // 2
    per_layer = {"log_growth": k, "active": k, "correlation": pairs, "norm": 2 * k}
    per_network = {"collapse": k, "active": k, "quasi_gbm": 2 * k}
    unique = dict.fromkeys(names)
    return held_need(
        plan,
        layers,
        sum(per_layer.get(name, 0) for name in unique),
        "the observables",
        record_name=record_name,
        numbers_per_network=sum(per_network.get(name, 0) for name in unique),
    )


def _observe(
    plan: ChainPlan,
    names: tuple[str, ...],
    layers: tuple[int, ...],
    progress: ProgressCallback | None,
    squeeze: bool,
) -> Observations:
    factories = {
        "log_growth": lambda: _LogGrowth(layers, plan),
        "collapse": lambda: _Collapse(plan),
        "active": lambda: _Active(layers, plan),
        "quasi_gbm": lambda: _QuasiGBM(plan),
        "correlation": lambda: _Correlation(layers, plan),
        "norm": lambda: _Norm(layers, plan),
    }
    # the results are allocated and filled on this thread alone: an OpenMP team forked here
    # for a fill would spin on the cores for milliseconds into the chain's run
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        observers: dict[str, _Recorder] = {name: factories[name]() for name in dict.fromkeys(names)}
    finally:
        torch.set_num_threads(previous)
    simulate_chain(plan, progress, list(observers.values()))
    values: dict[str, Tensor] = {}
    for observer in observers.values():
        values.update(observer.results())
    if squeeze:
        values = {
            name: (tensor.squeeze(-1) if name != "correlation" else tensor)
            for name, tensor in values.items()
        }
    correlation = observers.get("correlation")
    pairs = correlation.pairs if isinstance(correlation, _Correlation) else []
    return Observations(
        width=plan.width,
        steps=plan.steps,
        activation=plan.activation.spec,
        method=plan.method,
        layers=layers,
        times=tuple(layer / plan.steps for layer in layers),
        values=values,
        pairs=pairs,
        squeeze_inputs=squeeze,
    )


@dataclass(frozen=True)
class CollapseProbability:
    """``P(collapsed at or before layer l)`` for ``l = 0..depth`` with a binomial interval.

    ``collapsed[l]`` networks out of ``trials`` had collapsed by layer ``l``; ``conditional``
    says whether networks with a collapsed ``Y_0`` were excluded (then ``probability[0] = 0``).
    """

    probability: np.ndarray
    low: np.ndarray
    high: np.ndarray
    collapsed: np.ndarray
    trials: int
    samples: int
    conditional: bool
    level: float

    @property
    def layers(self) -> np.ndarray:
        return np.arange(self.probability.size)


def _collapse_curve(
    first: np.ndarray, depth: int, samples: int, conditional: bool, level: float
) -> CollapseProbability:
    """The empirical cdf of the first collapse layers ``first`` (-1: never) on ``0..depth``."""
    if conditional:
        first = first[first != 0]
        if first.size == 0:
            raise ValueError(
                "every network has phi(Y_0) = 0, so the probability conditional on a "
                "non-collapsed Y_0 is undefined; pass conditional=False or another y0/x"
            )
    layers = np.arange(depth + 1)
    collapsed_at = np.where(first >= 0, first, depth + 1)
    counts = np.searchsorted(np.sort(collapsed_at), layers, side="right")
    interval = binomial_interval(counts, first.size, level=level)
    return CollapseProbability(
        probability=counts / first.size,
        low=np.asarray(interval.low, dtype=float),
        high=np.asarray(interval.high, dtype=float),
        collapsed=counts,
        trials=int(first.size),
        samples=int(samples),
        conditional=bool(conditional),
        level=float(level),
    )


def correlation_coefficients(y_a: Any, y_b: Any, activation: Any) -> tuple[Tensor, Tensor]:
    """Drift ``mu_c`` and variance rate ``sigma_c^2`` of ``dc_t = mu_c dt + sigma_c^T dB_t``
    (hayou.md §6, Eq. 5), the SDE of the pre-activation correlation ``c = <a, b>/(|a| |b|)`` of
    two inputs, at ``a = y_a``, ``b = y_b`` (shape ``(..., n)``). With ``u = phi(a)``,
    ``v = phi(b)``, ``A = |a|^2``, ``B = |b|^2``, ``kappa = <u, v>/sqrt(AB)``,
    ``alpha_u = |u|^2/A``, ``alpha_v = |v|^2/B``:

        mu_c = kappa (1 - (2 - c^2)/n) - (c/2)(alpha_u + alpha_v)(1 - 1/n),
        sigma_c^2 = ||G||_F^2 / n,  G = (a v^T + b u^T)/sqrt(AB) - c a u^T/A - c b v^T/B.

    For the identity ``mu_c = -c (1 - c^2)/n``. The paper calls this SDE intractable because it
    is not autonomous in ``c``; the coefficients themselves are explicit.
    """
    from ..activations import parse_activation

    act = parse_activation(activation)
    a = torch.from_numpy(check_real_array("y_a", y_a))
    b = torch.from_numpy(check_real_array("y_b", y_b))
    if a.shape != b.shape or a.ndim == 0:
        raise ValueError(
            "y_a and y_b must have the same shape (..., n), "
            f"got {tuple(a.shape)} and {tuple(b.shape)}"
        )
    for name, vector in (("y_a", a), ("y_b", b)):
        if bool((vector == 0).all(-1).any()):
            raise ValueError(
                f"{name} must be nonzero vectors (the correlation divides by |{name}|)"
            )
    n = a.shape[-1]
    u, v = act.phi(a), act.phi(b)
    big_a, big_b = a.pow(2).sum(-1), b.pow(2).sum(-1)
    root = torch.sqrt(big_a * big_b)
    c = (a * b).sum(-1) / root
    kappa = (u * v).sum(-1) / root
    alpha_u, alpha_v = u.pow(2).sum(-1) / big_a, v.pow(2).sum(-1) / big_b
    drift = kappa * (1 - (2 - c * c) / n) - 0.5 * c * (alpha_u + alpha_v) * (1 - 1 / n)
    outer = lambda p, q: p.unsqueeze(-1) * q.unsqueeze(-2)
    g = (
        (outer(a, v) + outer(b, u)) / root[..., None, None]
        - c[..., None, None] * outer(a, u) / big_a[..., None, None]
        - c[..., None, None] * outer(b, v) / big_b[..., None, None]
    )
    return drift, g.pow(2).sum((-1, -2)) / n
