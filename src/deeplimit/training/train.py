"""Full-batch gradient descent on batches of ResNets (chizat.md §1.2, §1.5), with records.

``train_resnet`` is the public entry point (the Python API contract of the training half);
``build_resnet`` + ``train`` are the two halves it is made of, for callers who want another
block, per-network scalings (a batched sweep over ``alpha`` at one shape) or their own model.

Divergence: a network *diverges* at the first step ``k`` whose loss is non-finite or exceeds
``explosion_factor * max(R_0, mean(y^2))`` (``R_0`` its initial loss, ``mean(y^2)`` the loss of
the zero predictor, so a perfect initial fit does not make the threshold zero). Its entries at
step ``k`` are kept as computed (they show the explosion), its later entries are NaN, its
``diverged_at`` is ``k``, and it stops updating while the others go on.
"""

from __future__ import annotations

import functools
import math
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from threadpoolctl import ThreadpoolController
from torch import Tensor

from ..devices import compiled_kernels, one_torch_thread, resolve_device, resolve_dtype
from ..errors import check_bool, check_choice, check_int, check_positive_float
from ..sizes import Need, check_memory, format_value, rates, warn_if_slow
from .data import TrainingData, resolve_data
from .defaults import DEFAULT_DATA_SEED, DEFAULT_EXPLOSION_FACTOR, DEFAULT_STEPS
from .embeddings import resolve_embeddings
from .model import (
    Block,
    ForwardPass,
    ResNet,
    TwoLayerBlock,
    check_shape_arguments,
    draw_parameters,
)
from .scaling import Scaling

__all__ = [
    "DEFAULT_EXPLOSION_FACTOR",
    "TrainingDivergedError",
    "TrainingDivergenceWarning",
    "TrainingResult",
    "build_resnet",
    "resolve_seed_indices",
    "train",
    "train_resnet",
]

ON_DIVERGENCE = ("warn", "ignore", "raise")
_MOVEMENT_CHUNK_NUMBERS = 2**23  # entries of one parameter per movement chunk (64 MiB float64)
# flops per GD step (12 N L M D S) from which ``_NetworkGroups`` splits a batch over threads:
# ~10 ms of one core, against a hand-over to the threads of ~0.1 ms on a quiet machine (and
# several ms each way on a loaded one, where a woken thread waits for a time slice)
_GROUP_MIN_FLOPS = 1e8


class TrainingDivergenceWarning(RuntimeWarning):
    """Some networks of a batch diverged (their ``diverged_at`` says when)."""


class TrainingDivergedError(FloatingPointError):
    """Raised with ``on_divergence='raise'``: ``step`` and the diverged ``seeds``."""

    def __init__(self, step: int, seeds: list[int], message: str) -> None:
        self.step = step
        self.seeds = seeds
        super().__init__(message)


class StepRecords:
    """What ``TrainingResult`` and ``LimitResult`` share: records indexed by the GD step
    ``k = 0..K`` (axis ``step_axis`` of ``outputs``) and ``diverged_at`` (-1: never)."""

    step_axis: ClassVar[int] = 0
    outputs: Tensor
    diverged_at: Any

    @property
    def steps(self) -> int:
        return int(self.outputs.shape[self.step_axis]) - 1

    @property
    def diverged(self) -> Any:
        """``diverged_at >= 0``: a bool mask (S,) over the networks of a training, a bool for
        a limit."""
        return self.diverged_at >= 0


@dataclass(frozen=True)
class TrainingResult(StepRecords):
    """Records of ``S`` networks trained for ``K`` steps (index 0 = initialization).

    ``outputs`` (S, K+1, N, d_out), ``embeddings`` (S, K+1, N, D) = ``h_L``, ``loss``
    (S, K+1), ``diverged_at`` (S,) (-1 if never), ``movement[name]`` (S, K+1): RMS unit
    movement since initialization (2LP: ``"u"``, ``"v"`` = RMS over units of
    ``||z - z_0|| / sqrt(D)``; ``"preactivation"`` = RMS over units and samples of
    ``<u - u_0, h_0>/D``); ``states`` (S, K+1, L+1, N, D) when ``record_layers``; ``adjoint``
    (S, K, L+1, N, D) when ``record_adjoint``: the backward variable ``b_l = D dR/dh_l`` of
    step ``k`` (at the parameters before its update, layers ``l = 0..L``). All tensors
    are on the CPU; ``w_in`` (D, d_in) and ``w_out`` (D, d_out) are the maps used.
    ``movement`` is empty unless ``record_movement`` was asked for. ``problem``: the
    ``TrainingProblem`` trained (``None`` for a model built by hand and ``train``-ed), which
    ``limit_error`` checks against the limit's.
    """

    outputs: Tensor
    embeddings: Tensor
    loss: Tensor
    diverged_at: Tensor
    w_in: Tensor
    w_out: Tensor
    movement: dict[str, Tensor]
    states: Tensor | None
    x: Tensor
    y: Tensor
    depth: int
    hidden_width: int
    embedding_dim: int
    block: str
    residual_scale: Tensor
    learning_rates: dict[str, Tensor]
    explosion_factor: float
    provenance: dict[str, Any] = field(default_factory=dict)
    problem: Any = None
    adjoint: Tensor | None = None

    step_axis: ClassVar[int] = 1

    @property
    def seeds(self) -> int:
        return int(self.outputs.shape[0])


def seed_count(seeds: Any) -> int:
    """The number of networks ``seeds`` asks for, without building its list of indices."""
    if hasattr(seeds, "__len__") and not isinstance(seeds, str):
        return len(seeds)
    return check_int("seeds", seeds, minimum=1)


def _largest(**values: int) -> tuple[str, int]:
    """The name and value of the largest dimension: the one to name when a size is too big."""
    return max(values.items(), key=lambda item: item[1])


def check_training_size(
    context: str,
    *,
    depth: int,
    hidden_width: int,
    embedding_dim: int,
    networks: int,
    samples: int,
    output_dim: int,
    steps: int | None,
    device: torch.device,
    dtype: torch.dtype,
    unit_numbers: int | None = None,
    record_movement: bool = True,
    record_layers: bool = False,
    parameters_exist: bool = False,
    record_adjoint: bool = False,
) -> None:
    """Refuse a training run that cannot fit in memory, and warn before one that takes hours.

    Held at once: the parameters ``S L M (numbers per unit)`` (unless ``parameters_exist``,
    then they are already in memory) and their initial copy for ``record_movement``; the
    records ``S (K+1) N (D + d_out)`` (and ``S (K+1) (L+1) N D`` with ``record_layers``, as
    much again with ``record_adjoint``); the
    per-layer states of one step ``S L N (D + 2 M)``. Time: ``~12 K N L M D`` flops per network
    plus a fixed cost per layer and step. ``steps=None`` checks the parameters only.
    """
    itemsize = torch.finfo(dtype).bits // 8
    per_unit = 2 * embedding_dim if unit_numbers is None else unit_numbers
    parameters = float(networks) * depth * hidden_width * per_unit * itemsize
    shape = dict(depth=depth, hidden_width=hidden_width, embedding_dim=embedding_dim)
    name, value = _largest(seeds=networks, **shape)
    what = f"the parameters of {networks} network(s) of {depth} x {hidden_width} units"
    needs = [] if parameters_exist else [Need(name, value, parameters, what)]
    if steps is not None:
        if record_movement:
            needs.append(Need(name, value, parameters, "the initial parameters (record_movement)"))
        records = float(networks) * (steps + 1) * (samples * (embedding_dim + output_dim) + 8)
        name_r = "steps" if steps + 1 >= networks else "seeds"
        what = f"the records of {networks} network(s) at {steps + 1} steps"
        value_r = steps if name_r == "steps" else networks
        needs.append(Need(name_r, value_r, records * itemsize, what))
        if record_layers:
            states = records * (depth + 1) * itemsize
            needs.append(Need("record_layers", True, states, "the states of every layer"))
        if record_adjoint:
            adjoint = records * (depth + 1) * itemsize
            needs.append(Need("record_adjoint", True, adjoint, "the adjoint of every layer"))
        working = float(networks) * depth * samples * (embedding_dim + 2 * hidden_width)
        name_w, value_w = _largest(seeds=networks, depth=depth, hidden_width=hidden_width)
        needs.append(Need(name_w, value_w, working * itemsize, "the per-layer states of a step"))
    check_memory(context, needs, device)
    if steps is None:
        return
    speed = rates(device)
    flops = 12.0 * steps * samples * depth * hidden_width * embedding_dim * networks
    seconds = flops / speed.flops + 3.0 * (steps + 1) * depth * speed.step_seconds
    parameters_text = (
        f"steps={format_value(steps)} x seeds={format_value(networks)} x depth={depth} x "
        f"hidden_width={format_value(hidden_width)} x embedding_dim={embedding_dim}"
    )
    warn_if_slow(context, seconds, parameters_text, device, stacklevel=4)


def resolve_seed_indices(seeds: Any) -> tuple[int, ...]:
    """``seeds``: a count ``S >= 1`` (indices ``0..S-1``) or a sequence of indices >= 0."""
    if hasattr(seeds, "__iter__") and not isinstance(seeds, str):
        indices = tuple(
            check_int("seeds[i]", i.item() if hasattr(i, "item") else i, minimum=0) for i in seeds
        )
        if not indices:
            raise ValueError("seeds must be a count >= 1 or a non-empty sequence of indices >= 0")
        return indices
    return tuple(range(check_int("seeds", seeds, minimum=1)))


def build_resnet(
    depth: int,
    hidden_width: int,
    embedding_dim: int,
    *,
    input_dim: int,
    output_dim: int,
    activation: Any = None,
    block: Block | None = None,
    alpha: float | None = None,
    lr: float | None = None,
    scaling: Scaling | Sequence[Scaling] | None = None,
    seeds: int | Sequence[int] = 1,
    seed: int = 0,
    embedding_seed: int = 0,
    embeddings: Any = None,
    device: Any = "cpu",
    dtype: Any = torch.float64,
) -> ResNet:
    """A batch of freshly initialized ResNets (see ``train_resnet`` for the arguments).

    ``scaling`` may be a list with one ``Scaling`` per network: networks of one shape but
    different residual scales / learning rates then train in one batch (give the same seed
    index several times for common random numbers across them).
    """
    from .problem import resolve_block, scaling_from_arguments

    depth, hidden_width, embedding_dim = check_shape_arguments(depth, hidden_width, embedding_dim)
    seed = check_int("seed", seed, minimum=0)
    embedding_seed = check_int("embedding_seed", embedding_seed, minimum=0)
    device = resolve_device(device)
    dtype = resolve_dtype(dtype)
    block = resolve_block(activation, block)
    check_training_size(
        "build_resnet",
        depth=depth,
        hidden_width=hidden_width,
        embedding_dim=embedding_dim,
        networks=seed_count(seeds),
        samples=0,
        output_dim=0,
        steps=None,
        device=device,
        dtype=dtype,
        unit_numbers=len(block.parameter_names) * embedding_dim,
    )
    indices = resolve_seed_indices(seeds)
    scaling = scaling_from_arguments(scaling, alpha, lr)
    if isinstance(scaling, tuple) and len(scaling) != len(indices):
        raise ValueError(
            f"scaling must be one Scaling or one per network ({len(indices)}), got {len(scaling)}"
        )
    scalings = list(scaling) if isinstance(scaling, tuple) else [scaling] * len(indices)
    resolved = [s.resolve(depth, hidden_width, embedding_dim) for s in scalings]
    w_in, w_out = resolve_embeddings(
        embeddings,
        embedding_dim,
        input_dim,
        output_dim,
        embedding_seed=embedding_seed,
        device=device,
        dtype=dtype,
    )
    storage = draw_parameters(
        block, depth, hidden_width, embedding_dim, indices, seed=seed, device=device, dtype=dtype
    )
    residual_scale = torch.tensor([r.residual_scale for r in resolved], dtype=dtype, device=device)
    learning_rates = {
        name: torch.tensor([r.lr_for(name) for r in resolved], dtype=dtype, device=device)
        for name in storage
    }
    model = ResNet(block, storage, w_in, w_out, residual_scale, learning_rates)
    model.provenance = {
        "seed": seed,
        "seed_indices": indices,
        "embedding_seed": embedding_seed,
        "scaling": [repr(s) for s in scalings]
        if len(set(map(repr, scalings))) > 1
        else repr(scalings[0]),
    }
    return model


def _movement(model: ResNet, initial: dict[str, Tensor], h0: Tensor) -> dict[str, Tensor]:
    """RMS unit movement per network, accumulated over chunks of layers (bounded memory)."""
    per_layer = max(v[0].numel() for v in model.storage.values())
    chunk = max(1, _MOVEMENT_CHUNK_NUMBERS // max(1, per_layer))
    totals: dict[str, list[Any]] = {}
    for start in range(0, model.depth, chunk):
        stop = min(model.depth, start + chunk)
        params = {name: value[start:stop].transpose(0, 1) for name, value in model.storage.items()}
        init = {name: value[start:stop].transpose(0, 1) for name, value in initial.items()}
        for name, (total, count) in model.block.movement_sums(params, init, h0).items():
            entry = totals.setdefault(name, [0.0, 0])
            entry[0] = entry[0] + total
            entry[1] += count
    return {name: torch.sqrt(total / count) for name, (total, count) in totals.items()}


def train(
    model: ResNet,
    data: TrainingData,
    steps: int,
    *,
    record_movement: bool = False,
    record_layers: bool = False,
    explosion_factor: float = DEFAULT_EXPLOSION_FACTOR,
    on_divergence: str = "warn",
    record_adjoint: bool = False,
) -> TrainingResult:
    """Train ``model`` in place by ``steps`` full-batch GD steps on ``data`` and record, at
    every step ``k = 0..K``, outputs, ``h_L``, loss and (with ``record_movement``) unit
    movement (chizat.md §1.2).

    Each step is one forward pass keeping the per-layer states and one adjoint sweep that
    updates layer ``l`` as soon as its gradient is known (``ResNet.descent_step``).
    ``steps=0`` records the initialization alone (index 0 of every record).
    ``record_adjoint``: the backward variable of every layer at every step (``adjoint``; off
    by default, and then nothing is recorded or copied).

    On the CPU, a batch of two or more 2LP networks is split into ``torch.get_num_threads()``
    groups trained on as many threads (``_NetworkGroups``); the results are the same.
    """
    if not isinstance(model, ResNet):
        raise ValueError(f"model must be a ResNet (see build_resnet), got {type(model).__name__}")
    data = data if isinstance(data, TrainingData) else resolve_data(data)
    steps = check_int("steps", steps, minimum=0)
    record_movement = check_bool("record_movement", record_movement)
    record_layers = check_bool("record_layers", record_layers)
    record_adjoint = check_bool("record_adjoint", record_adjoint)
    explosion_factor = check_positive_float("explosion_factor", explosion_factor)
    check_choice("on_divergence", on_divergence, ON_DIVERGENCE)
    if data.input_dim != model.input_dim or data.output_dim != model.output_dim:
        raise ValueError(
            f"data have d_in={data.input_dim}, d_out={data.output_dim} but the model's maps "
            f"have shapes W_in {tuple(model.w_in.shape)}, W_out {tuple(model.w_out.shape)}"
        )
    check_training_size(
        "train",
        depth=model.depth,
        hidden_width=model.hidden_width,
        embedding_dim=model.embedding_dim,
        networks=model.networks,
        samples=data.samples,
        output_dim=data.output_dim,
        steps=steps,
        device=model.device,
        dtype=model.dtype,
        unit_numbers=sum(v[0, 0, 0].numel() for v in model.storage.values()),
        record_movement=record_movement,
        record_layers=record_layers,
        parameters_exist=True,
        record_adjoint=record_adjoint,
    )
    return _descend(
        model,
        data,
        steps,
        record_movement,
        record_layers,
        explosion_factor,
        on_divergence,
        record_adjoint=record_adjoint,
    )


@functools.cache
def _blas_controller() -> ThreadpoolController:
    """The BLAS libraries loaded (found once: a search costs milliseconds)."""
    return ThreadpoolController()


class _NetworkGroups:
    """The networks of ``model`` in ``torch.get_num_threads()`` groups, each sweeping its
    layers on its own Python thread with one-thread torch operations (CPU, 2LP blocks, two or
    more networks, a step of at least ``_GROUP_MIN_FLOPS``; otherwise one group, the model
    itself, on the calling thread).

    The per-layer products have N rows (N = 10 in the authors' task): too small for torch's
    OpenMP parallel region per operation, whose fork and barrier cost about as much as the
    product (and collapse when other processes share the cores: threads spin on a barrier
    while the one they wait for is descheduled). Split by networks instead, the cores share
    the work with one hand-over per forward pass and per adjoint sweep. Every product is per
    network, so each network's arithmetic is the batch's.
    """

    def __init__(self, model: ResNet, samples: int) -> None:
        threads = torch.get_num_threads()
        shape = (samples, model.depth, model.hidden_width, model.embedding_dim, model.networks)
        split = (
            threads > 1
            and model.networks > 1
            and 12.0 * math.prod(shape) >= _GROUP_MIN_FLOPS
            and model.device.type == "cpu"
            and type(model) is ResNet
            and isinstance(model.block, TwoLayerBlock)
        )
        self.parts = model.split(min(threads, model.networks)) if split else [model]
        self.offsets = [0]
        for part in self.parts[:-1]:
            self.offsets.append(self.offsets[-1] + part.networks)
        self._threads = threads
        self._pool: ThreadPoolExecutor | None = None

    def __enter__(self) -> _NetworkGroups:
        if len(self.parts) > 1:
            torch.set_num_threads(1)
            # NumPy's BLAS too (``TwoLayerBlock.numpy_row_products``): one thread per group
            self._blas_limits = _blas_controller().limit(limits=1, user_api="blas")
            self._pool = ThreadPoolExecutor(
                len(self.parts), thread_name_prefix="deeplimit-train", initializer=one_torch_thread
            )
        return self

    def __exit__(self, *exc: object) -> None:
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None
            self._blas_limits.restore_original_limits()
            torch.set_num_threads(self._threads)

    def _map(self, function: Callable[..., Any], *columns: Sequence[Any]) -> list[Any]:
        if self._pool is None:
            return [function(*row) for row in zip(*columns, strict=True)]
        return list(self._pool.map(function, *columns))

    def forward(self, x: Tensor, keep: bool) -> list[ForwardPass]:
        return self._map(lambda part: part.forward(x, keep=keep), self.parts)

    def descend(
        self,
        forwards: list[ForwardPass],
        g_last: Tensor,
        record: Callable[[int, int, Tensor], None] | None,
    ) -> None:
        """One GD step of every group from the batch's ``g_L``; ``record(offset, l, g_l)`` sees
        each group's adjoint."""

        def step(part: ResNet, forward: ForwardPass, offset: int) -> None:
            hook = None if record is None else (lambda layer, g: record(offset, layer, g))
            part.descend(forward, g_last[offset : offset + part.networks], hook)

        self._map(step, self.parts, forwards, self.offsets)


def _joined(forwards: list[ForwardPass], record_layers: bool) -> tuple[Tensor, Tensor | None]:
    """``h_L`` of the whole batch and, with ``record_layers``, its states ``(S, L+1, N, D)``."""
    last = forwards[0].last if len(forwards) == 1 else torch.cat([f.last for f in forwards])
    if not record_layers:
        return last, None
    return last, torch.cat([torch.stack([*f.states, f.last], dim=1) for f in forwards])


def _descend(
    model: ResNet,
    data: TrainingData,
    steps: int,
    record_movement: bool,
    record_layers: bool,
    explosion_factor: float,
    on_divergence: str,
    *,
    record_adjoint: bool = False,
) -> TrainingResult:
    """The gradient descent of ``train``, on checked arguments."""
    started = time.perf_counter()
    device, dtype = model.device, model.dtype
    x = data.x.to(device=device, dtype=dtype)
    y = data.y.to(device=device, dtype=dtype)
    networks, n, d = model.networks, data.samples, model.embedding_dim
    nan = float("nan")
    outputs = torch.full((networks, steps + 1, n, data.output_dim), nan, device=device, dtype=dtype)
    embeddings = torch.full((networks, steps + 1, n, d), nan, device=device, dtype=dtype)
    loss = torch.full((networks, steps + 1), nan, device=device, dtype=dtype)
    states = None
    if record_layers:
        states = torch.full(
            (networks, steps + 1, model.depth + 1, n, d), nan, device=device, dtype=dtype
        )
    adjoint = record = None
    if record_adjoint:
        adjoint = torch.full(
            (networks, steps, model.depth + 1, n, d), nan, device=device, dtype=dtype
        )
    diverged_at = torch.full((networks,), -1, dtype=torch.long, device=device)
    alive = torch.ones(networks, dtype=torch.bool, device=device)
    h0 = model.embed(x)
    initial = {k: v.clone() for k, v in model.storage.items()} if record_movement else {}
    movement: dict[str, Tensor] = {}
    threshold = None
    with _NetworkGroups(model, n) as groups:
        for step in range(steps + 1):
            forwards = groups.forward(x, keep=step < steps or record_layers)
            last, layers = _joined(forwards, record_layers)
            f = model.readout(last)
            risk = model.risk(f, y)
            keep_mask = alive.clone()
            outputs[:, step] = torch.where(keep_mask.view(-1, 1, 1), f, nan)
            embeddings[:, step] = torch.where(keep_mask.view(-1, 1, 1), last, nan)
            loss[:, step] = torch.where(keep_mask, risk, nan)
            if states is not None:
                states[:, step] = torch.where(keep_mask.view(-1, 1, 1, 1), layers, nan)
            if record_movement:
                for name, value in _movement(model, initial, h0).items():
                    if name not in movement:
                        movement[name] = torch.full(
                            (networks, steps + 1), nan, device=device, dtype=dtype
                        )
                    movement[name][:, step] = torch.where(keep_mask, value, nan)
            if threshold is None:
                threshold = explosion_factor * torch.clamp(risk, min=data.null_risk())
            bad = alive & (~torch.isfinite(risk) | (risk > threshold))
            if bool(bad.any()):
                diverged_at[bad] = step
                alive &= ~bad
                model.freeze(bad)
                _report_divergence(on_divergence, step, bad, risk, threshold)
            if step == steps or not bool(alive.any()):
                break
            if adjoint is not None:
                record = _adjoint_recorder(adjoint[:, step], d)
            groups.descend(forwards, model.last_gradient(f, y), record)
            if adjoint is not None:
                adjoint[~alive, step] = nan  # frozen networks: no adjoint
    provenance = dict(model.provenance)
    provenance.update(
        data=data.description,
        device=str(device),
        dtype=str(dtype),
        wall_time_s=time.perf_counter() - started,
        steps=steps,
    )
    if kernels := compiled_kernels():  # which path the sweeps took (training/native.py)
        provenance["compiled_kernels"] = kernels
    return TrainingResult(
        outputs=outputs.cpu(),
        embeddings=embeddings.cpu(),
        loss=loss.cpu(),
        diverged_at=diverged_at.cpu(),
        w_in=model.w_in.cpu(),
        w_out=model.w_out.cpu(),
        movement={name: value.cpu() for name, value in movement.items()},
        states=None if states is None else states.cpu(),
        adjoint=None if adjoint is None else adjoint.cpu(),
        x=data.x,
        y=data.y,
        depth=model.depth,
        hidden_width=model.hidden_width,
        embedding_dim=model.embedding_dim,
        block=model.block.spec,
        residual_scale=model.residual_scale.cpu(),
        learning_rates={name: lr.cpu() for name, lr in model.learning_rates.items()},
        explosion_factor=explosion_factor,
        provenance=provenance,
    )


def _adjoint_recorder(out: Tensor, d: int) -> Callable[[int, int, Tensor], None]:
    """Writes ``b_l = D g_l`` of networks ``offset..`` into ``out`` (S, L+1, N, D)."""

    def record(offset: int, layer: int, g: Tensor) -> None:
        torch.mul(g, d, out=out[offset : offset + g.shape[0], layer])

    return record


def _report_divergence(
    on_divergence: str, step: int, bad: Tensor, risk: Tensor, threshold: Tensor
) -> None:
    if on_divergence == "ignore":
        return
    seeds = [int(i) for i in torch.nonzero(bad).flatten().tolist()]
    values = ", ".join(f"{float(risk[i]):.3g}" for i in seeds[:5])
    message = (
        f"{len(seeds)} network(s) (batch positions {seeds[:10]}{'...' if len(seeds) > 10 else ''})"
        f" diverged at step {step}: loss {values} is non-finite or above the explosion "
        f"threshold ({float(threshold[seeds[0]]):.3g}); their later records are NaN and "
        "they stop training"
    )
    if on_divergence == "raise":
        raise TrainingDivergedError(step, seeds, message)
    warnings.warn(message, TrainingDivergenceWarning, stacklevel=_outside_stacklevel())


def _outside_stacklevel() -> int:
    """``stacklevel`` (for a ``warnings.warn`` in the caller) of the first frame outside
    ``deeplimit.training``: the user's line, however many wrappers lie between."""
    frame, level = sys._getframe(1), 1
    while frame.f_back is not None and str(frame.f_globals.get("__name__", "")).startswith(
        "deeplimit.training"
    ):
        frame, level = frame.f_back, level + 1
    return level


def train_resnet(
    depth: int,
    hidden_width: int,
    embedding_dim: int,
    *,
    data: Any = None,
    activation: Any = None,
    alpha: float | None = None,
    lr: float | None = None,
    steps: int = DEFAULT_STEPS,
    seeds: int | Sequence[int] = 1,
    embedding_seed: int = 0,
    device: Any = "cpu",
    dtype: Any = torch.float64,
    seed: int = 0,
    scaling: Scaling | Sequence[Scaling] | None = None,
    block: Block | str | None = None,
    embeddings: Any = None,
    data_seed: int = DEFAULT_DATA_SEED,
    record_movement: bool = False,
    record_layers: bool = False,
    explosion_factor: float = DEFAULT_EXPLOSION_FACTOR,
    on_divergence: str = "warn",
    key_dim: int | None = None,
    record_adjoint: bool = False,
) -> TrainingResult:
    """Train the 2LP ResNet of chizat.md §1.2 by full-batch gradient descent: shorthand for
    ``TrainingProblem(embedding_dim, data=..., activation=..., ...).train(depth, hidden_width,
    seeds, ...)``.

    ``h_0 = W_in x``, ``p_{l,j} = <u_{j,l}, h_{l-1}>/D``,
    ``h_l = h_{l-1} + (alpha/(L M)) sum_j v_{j,l} sigma(p_{l,j})``, ``f = W_out^T h_L / D``;
    ``u, v`` entries ``N(0, D)``, ``W_in`` entries ``N(0, 1/d_in)``, ``W_out`` ``N(0, d_out)``;
    risk ``R = (1/(N d_out)) sum_n ||f(x_n) - y_n||^2``; update
    ``Z <- Z - lr (L M D / alpha^2) dR/dZ`` for every ``u, v`` (``lr = 0.5`` is the authors'
    Julia ``eta = 1``).

    Parameters
    ----------
    depth, hidden_width, embedding_dim:
        ``L, M, D >= 1``.
    data:
        ``None``: the synthetic task of §1.5 (``N = 10``, ``d_in = d_out = 5``, numpy seed
        ``data_seed``); or ``(X, Y)`` of shapes ``(N, d_in)``, ``(N, d_out)``.
    activation:
        ``sigma`` (default ``"tanh"``, ``DEFAULT_ACTIVATION``, the same as ``mean_ode_limit``'s):
        a name (``"tanh"``, ``"identity"``, ``"relu"``, any library activation), an
        ``Activation`` or an elementwise callable. ``block`` replaces the 2LP block altogether
        (not both).
    block, key_dim:
        A ``Block`` instance, or ``"attention"``: ``M`` causal attention heads per layer with
        key-query dimension ``key_dim`` (default 4) and ``sigma`` on the value path
        (``training/attention.py``); ``data`` are then sequences ``(X, Y)`` of shapes
        ``(N, T, d_in)``, ``(N, T, d_out)`` and the records get a token axis (``embeddings``
        ``(S, K+1, N, T, D)``, ``outputs`` ``(S, K+1, N, T, d_out)``).
    alpha, lr:
        ``MeanFieldScaling(alpha, lr)`` (defaults 1 and 0.5); or pass ``scaling`` (one, or one
        per network) and neither of them.
    steps:
        ``K >= 0`` GD steps; records have ``K + 1`` entries (``K = 0``: the initialization).
    seeds:
        ``S`` independent draws of ``U, V`` (indices ``0..S-1``), or a list of seed indices.
        Index ``i`` draws from ``derive_seed(seed, UNIT_STREAM, i)``, so a batch equals separate
        runs with the same indices.
    embedding_seed:
        ``W_in, W_out`` shared by the batch; row ``i`` depends only on
        ``(embedding_seed, i)`` (coupled embeddings across ``D``). ``embeddings=(W_in, W_out)``
        supplies them instead.
    device, dtype:
        ``"cpu"``/``"cuda"``; ``torch.float32``/``torch.float64``. Initial parameters are the
        same float64 draws on every device, rounded to ``dtype``.
    record_movement, record_layers:
        Unit-movement statistics (off by default: they cost one extra copy of the parameters
        and a pass over them per step); every layer's state at every step (``states``).
    record_adjoint:
        Every layer's backward variable ``b_l = D dR/dh_l`` at every step ``k < K`` (``adjoint``
        (S, K, L+1, N, D)); off by default (no cost).
    explosion_factor, on_divergence:
        Divergence threshold (see the module docstring); ``"warn"`` (default), ``"ignore"`` or
        ``"raise"`` (``TrainingDivergedError``).

    Returns
    -------
    TrainingResult with ``outputs`` (S, K+1, N, d_out), ``embeddings`` (S, K+1, N, D), ``loss``
    (S, K+1), ``diverged_at`` (S,), ``movement``, ``w_in`` (D, d_in), ``w_out`` (D, d_out) and
    ``problem`` (the ``TrainingProblem``).

    Cost: ``~12 K N L M D`` flops per network; memory: the parameters ``2 S L M D`` (twice that
    with ``record_movement``) plus the per-layer states ``S L N (D + 2M)`` of one step. Both
    are estimated before anything is drawn: a run that cannot fit in memory raises a
    ValueError naming the argument, one estimated at an hour or more warns.
    """
    from .problem import problem_from_arguments, training_options

    depth, hidden_width, embedding_dim = check_shape_arguments(depth, hidden_width, embedding_dim)
    problem = problem_from_arguments(locals())
    return problem._train(depth, hidden_width, seeds, "train_resnet", training_options(locals()))
