"""One description, two objects: a random ResNet and its infinite-depth SDE (hayou.md §1-§6).

``RandomResNet(width, activation)`` describes the networks of Eq. 1,

    Y_0 = W_in x,    Y_l = Y_{l-1} + L^{-1/2} W_l phi(Y_{l-1}),    l = 1..L,

and ``.limit()`` gives the ``ResNetSDE`` of the same description, the limit ``L -> oo`` (Eq. 4)

    dX_t = n^{-1/2} ||phi(X_t)|| dB_t   (one input; ``dM_t phi(X_t)`` for several),

solved by Euler-Maruyama with ``steps`` equal steps. Both objects have the same methods, the
ResNet's at a depth, the SDE's at a number of steps: ``sample``, ``observe``,
``collapse_probability`` and ``gradient_norms`` (for the SDE, the backward variable of its
Euler scheme, ``(dX_1/dX_t)^T g_1``; hayou.md §6). ``law`` returns the
closed-form law of the limit's output where one exists (``deeplimit.laws``) and ``meanfield``
the infinite-width limits (``deeplimit.initialization.meanfield``).

How to simulate is one ``Sampling`` (samples, seed, method, record, dtype, device, chunks,
progress); where to start is one ``Start`` (inputs ``x`` or a state ``y0``; a plain array
means inputs). The functions ``sample_resnet``, ``sample_sde``, ``observe_resnet``,
``observe_sde``, ``collapse_probability`` and ``gradient_norms`` are shorthands for these
methods and give the same numbers.

Example
-------
>>> net = RandomResNet(width=4, activation="relu")
>>> y = net.sample(100, [1.0, -0.5], Sampling(samples=1000, seed=1))
>>> x1 = net.limit().sample(1000, [1.0, -0.5], Sampling(samples=1000, seed=1))
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor

from ..activations import OU, Activation, Linear, ReLU, parse_activation
from ..errors import check_bool, check_finite_float, check_int, check_real_array
from . import meanfield as _meanfield
from .chain import ChainPlan, report_numerics, simulate_chain
from .fused import as_fused, is_fused, refuse_fused, simulate_fused
from .gradients import _Backward
from .network import check_run, held_need, shape_result
from .observables import (
    CollapseProbability,
    Observations,
    _check_observables,
    _collapse_curve,
    _observation_need,
    _observe,
)
from .recording import Recording, resolve_layers, resolve_times
from .sampling import Sampling, Start, as_sampling, as_start, resolve_method
from .state import InitialState, initial_state

__all__ = ["LAW_STATISTICS", "MeanFieldLimit", "RandomResNet", "ResNetSDE"]

LAW_STATISTICS = ("state", "log_growth", "norm")


# --------------------------------------------------------------------------- the engines' calls
# Every method (and every shorthand function) goes through these: one place that turns a
# description, a start and a Sampling into a ChainPlan, checks its size and runs the chain.
# ``kind`` is "resnet" (depth, layers) or "sde" (steps, times); ``context`` and ``record_name``
# are the names the caller's messages use (the shorthands keep theirs: ``layers=``, ``times=``).
# A run_* function is called by a public method through ``_Chain._run``, or by a shorthand
# function through ``shorthands.shorthand``: the slow-run warning points STACKLEVEL frames up,
# at the caller's line (warn_if_slow <- check_run <- run_* <- _run / shorthand <- public <-
# caller).
STACKLEVEL = 6


def _steps_name(kind: str) -> str:
    return "depth" if kind == "resnet" else "steps"


def _setup(
    width: int,
    activation: Activation,
    kind: str,
    steps: Any,
    start: Start,
    sampling: Sampling,
    quantity: str,
) -> tuple[int, InitialState, ChainPlan]:
    """The checked number of layers (steps), the initial state and the chain's plan (its
    sampler chosen for ``quantity``, see ``resolve_method``)."""
    steps = check_int(_steps_name(kind), steps, minimum=1)
    state = initial_state(width, start, sampling.dtype, sampling.device)
    fields: dict[str, Any] = dict(
        width=width,
        activation=activation,
        state=state,
        samples=sampling.samples,
        method=resolve_method(sampling.method, quantity, state.inputs),
        record=(),
        seed=sampling.seed,
        device=sampling.device,
        dtype=sampling.dtype,
        chunk_size=sampling.chunk_size,
        memory_budget=sampling.memory_budget,
        on_nonfinite=sampling.on_nonfinite,
    )
    if kind == "resnet":
        return steps, state, ChainPlan.resnet(steps, **fields)
    return steps, state, ChainPlan(steps=steps, scale=steps**-0.5, step_name="step", **fields)


def _recording(kind: str, record: Any, steps: int, name: str) -> Recording:
    return (resolve_layers if kind == "resnet" else resolve_times)(record, steps, name)


def run_sample(
    width: int,
    activation: Activation,
    kind: str,
    steps: Any,
    start: Start,
    sampling: Sampling,
    record: Any,
    *,
    context: str,
    record_name: str = "record",
) -> Tensor:
    """States ``(samples, [layers,] [k,] width)`` at the recorded layers (times)."""
    steps, state, plan = _setup(width, activation, kind, steps, start, sampling, "state")
    unit = "layer" if kind == "resnet" else "time"
    what = f"the returned tensor of {state.inputs * width} numbers per {unit}"
    held = held_need(plan, record, state.inputs * width, what, record_name=record_name)
    check_run(plan, sampling.progress, context, held, stacklevel=STACKLEVEL)
    recording = _recording(kind, record, steps, record_name)
    plan = dataclasses.replace(plan, record=recording.steps)
    if is_fused(sampling.method):
        out = simulate_fused(plan, as_fused(sampling.method), sampling.progress)
    else:
        out = simulate_chain(plan, sampling.progress)
    return shape_result(out, recording, state)


def run_observe(
    width: int,
    activation: Activation,
    kind: str,
    steps: Any,
    start: Start,
    sampling: Sampling,
    record: Any,
    *,
    observables: Any,
    context: str,
    record_name: str = "record",
    stacklevel: int = STACKLEVEL,
) -> Observations:
    """Observables streamed out of the chain (``observables.py``)."""
    names = _check_observables(observables)
    refuse_fused(sampling.method, "observables and collapse probabilities")
    steps, state, plan = _setup(width, activation, kind, steps, start, sampling, "observables")
    held = _observation_need(plan, names, record, record_name)
    check_run(plan, sampling.progress, context, held, stacklevel=stacklevel)
    recorded = _recording(kind, record, steps, record_name).steps
    return _observe(plan, names, recorded, sampling.progress, state.squeeze)


def run_collapse(
    width: int,
    activation: Activation,
    kind: str,
    steps: Any,
    start: Start,
    sampling: Sampling,
    record: Any = None,
    *,
    conditional: Any,
    level: Any,
    context: str,
    record_name: str = "record",
) -> CollapseProbability:
    """The empirical cdf of the first collapse layer (step) with binomial intervals
    (``record`` is not used: every layer is reported)."""
    conditional = check_bool("conditional", conditional)
    level = check_finite_float("level", level)
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be a confidence level in (0, 1), got {level!r}")
    observations = run_observe(
        width,
        activation,
        kind,
        steps,
        start,
        sampling,
        "last",
        observables=("collapse",),
        context=context,
        stacklevel=STACKLEVEL + 1,
    )
    if not observations.squeeze_inputs:
        raise ValueError(f"{context} takes one input: x or y0 must be a vector")
    first = observations["collapse_layer"].cpu().numpy()
    return _collapse_curve(first, int(steps), sampling.samples, conditional, level)


def run_gradients(
    width: int,
    activation: Activation,
    kind: str,
    steps: Any,
    start: Start,
    sampling: Sampling,
    record: Any,
    *,
    grad_last: Any,
    context: str,
    record_name: str = "record",
) -> Tensor:
    """Norms of the gradient back-propagated from ``grad_last`` (``gradients.py``): through
    the ResNet's layers, or through the steps of the SDE's Euler scheme (its backward
    variable ``dX_1 / dX_t``, the same recursion with ``L^{-1/2}`` replaced by ``sqrt(dt)``)."""
    refuse_fused(sampling.method, "gradient norms")
    steps, state, plan = _setup(width, activation, kind, steps, start, sampling, "gradients")
    if plan.method == "law" and state.inputs > 1:
        weights = "W_l" if kind == "resnet" else "the Brownian increment dM"
        raise ValueError(
            "method='law' gives exact gradients for one input only (given all increments "
            f"{'W_l Phi' if kind == 'resnet' else 'dM phi(X)'}, the conditional law of "
            f"{weights} couples the inputs through their Gram matrix, which is not "
            "implemented); use method='weights' (or 'auto') for several inputs"
        )
    g_last = _last_gradient(grad_last, state.inputs, width, sampling)
    held = held_need(plan, record, state.inputs, "the gradient norms", record_name=record_name)
    path = _Backward.path_bytes(plan)
    check_run(plan, sampling.progress, context, held, path_bytes=path, stacklevel=STACKLEVEL)
    recording = _recording(kind, record, steps, record_name)
    backward = _Backward(plan, g_last.contiguous(), recording.steps)
    simulate_chain(plan, sampling.progress, [backward])
    report_numerics(plan, backward.first_bad, backward.first_lost, backward=True)
    return shape_result(backward.norms, recording, state)


def _last_gradient(grad_last: Any, inputs: int, width: int, sampling: Sampling) -> Tensor:
    """``g_L`` as a ``(k, width)`` tensor: ``grad_last`` (one row for every input, or one row
    per input), by default ``(1, ..., 1)/sqrt(n)``."""
    dtype, device = sampling.dtype, sampling.device
    if grad_last is None:
        return torch.full((inputs, width), width**-0.5, dtype=dtype, device=device)
    given = torch.from_numpy(check_real_array("grad_last", grad_last))
    g_last = given.to(device=device, dtype=dtype)
    if g_last.ndim == 1:
        g_last = g_last.expand(inputs, -1)
    if g_last.shape != (inputs, width):
        raise ValueError(
            f"grad_last must be finite with shape ({width},) or ({inputs}, {width}), "
            f"got shape {tuple(given.shape)}"
        )
    return g_last


# --------------------------------------------------------------------------- the descriptions

# method: (its run_* function, the quantity whose default ``record`` it takes)
_METHODS: dict[str, tuple[Any, str]] = {
    "sample": (run_sample, "state"),
    "observe": (run_observe, "observables"),
    "collapse_probability": (run_collapse, "observables"),  # (every layer: record not used)
    "gradient_norms": (run_gradients, "gradients"),
}


class _Chain:
    """What ``RandomResNet`` and ``ResNetSDE`` share: a validated width and activation, and
    their methods' one way to a run (``kind``: ``"resnet"`` or ``"sde"``)."""

    _kind: ClassVar[str]
    width: int
    activation: Any

    def __post_init__(self) -> None:
        object.__setattr__(self, "width", check_int("width", self.width, minimum=1))
        object.__setattr__(self, "activation", parse_activation(self.activation))

    def _run(self, method: str, steps: Any, start: Any, sampling: Any, **extra: Any) -> Any:
        """The public ``method``: its run_* function with the sampling's ``record`` (or the
        default of what the method returns)."""
        sampling = as_sampling(sampling)
        runner, quantity = _METHODS[method]
        return runner(
            self.width,
            self.activation,
            self._kind,
            steps,
            as_start(start),
            sampling,
            sampling.record_for(quantity),
            context=f"{type(self).__name__}.{method}",
            **extra,
        )

    def meanfield(self) -> MeanFieldLimit:
        """The infinite-width limits of these networks (hayou.md §5; for the SDE, ``n -> oo``
        after ``L -> oo``)."""
        return MeanFieldLimit(self.activation)


@dataclass(frozen=True)
class RandomResNet(_Chain):
    """Random ResNets of width ``n`` at initialization (hayou.md §1, Eq. 1), any depth.

    ``activation``: a name or spec string (``"relu"``, ``"tanh"``, ``"leaky:alpha=1,beta=0.5"``,
    ``"ou:alpha=1,beta=1,sigma=1"``), an ``Activation`` or an elementwise callable; stored as
    an ``Activation``. Frozen: ``dataclasses.replace(net, width=8)`` gives another one.

    In every method ``start`` is a ``Start`` (or an array of inputs ``x``) and ``sampling`` a
    ``Sampling`` (or a number of samples). Shapes: samples first, then layers, inputs, width.
    """

    _kind: ClassVar[str] = "resnet"
    width: int
    activation: Any

    def sample(self, depth: int, start: Any, sampling: Any) -> Tensor:
        """Pre-activations ``Y_l`` of ``sampling.samples`` networks of depth ``depth`` at the
        recorded layers: ``(samples, [layers,] [k,] width)``, the layer axis present when
        ``record`` is ``"all"`` or a list, the input axis when the start holds a matrix."""
        return self._run("sample", depth, start, sampling)

    def observe(self, depth: int, start: Any, observables: Any, sampling: Any) -> Observations:
        """Observables (names from ``observables.OBSERVABLES``: ``log_growth``, ``collapse``,
        ``active``, ``quasi_gbm``, ``correlation``, ``norm``) streamed while sampling, at the
        recorded layers; the same networks as ``sample`` with the same ``sampling``."""
        return self._run("observe", depth, start, sampling, observables=observables)

    def collapse_probability(
        self,
        depth: int,
        start: Any,
        sampling: Any,
        *,
        conditional: bool = True,
        level: float = 0.95,
    ) -> CollapseProbability:
        """``P(phi(Y_l) = 0 at or before layer l)``, ``l = 0..depth``, with Wilson intervals at
        ``level``; ``conditional`` counts only networks with ``phi(Y_0) != 0`` (Fig. 4). One
        input. ``sampling.record`` is not used (every layer is reported)."""
        extra = {"conditional": conditional, "level": level}
        return self._run("collapse_probability", depth, start, sampling, **extra)

    def gradient_norms(
        self, depth: int, start: Any, sampling: Any, *, grad_last: Any = None
    ) -> Tensor:
        """Norms ``||g_l||`` of the gradient back-propagated from a fixed ``g_L = grad_last``
        (default ``(1, ..., 1)/sqrt(n)`` per input; hayou.md §6, Fig. 8) at the recorded
        layers (by default all): ``(samples, [layers,] [k])``. Exact with either method:
        ``"law"`` draws ``W_l`` given the forward increments (one input), ``"weights"`` draws
        the forward pass's ``W_l`` again; ``"auto"`` takes ``"law"`` for one input."""
        return self._run("gradient_norms", depth, start, sampling, grad_last=grad_last)

    def limit(self) -> ResNetSDE:
        """The infinite-depth limit of these networks: the SDE of the same width and
        activation (hayou.md §2, Eq. 4)."""
        return ResNetSDE(self.width, self.activation)

    def law(self, start: Any, statistic: str = "state") -> Any:
        """The closed-form law that ``statistic`` of ``Y_L`` tends to as ``depth -> oo``: the
        law of the limit's output, ``self.limit().law(start, statistic)`` (see there). At a
        finite depth the networks differ from it by ``O(1/L)``."""
        return self.limit().law(start, statistic)

    def as_dict(self) -> dict[str, Any]:
        """The description, for provenance."""
        return {"width": self.width, "activation": self.activation.spec}


@dataclass(frozen=True)
class ResNetSDE(_Chain):
    """The infinite-depth limit of ``RandomResNet(width, activation)`` on ``[0, 1]``
    (hayou.md §2, Eq. 4 and Prop. 5), solved by Euler-Maruyama with ``steps`` equal steps.

    Its methods are the ResNet's with ``steps`` in place of ``depth`` and ``record`` given in
    time (``"last"`` = 1, ``"all"``, a time or a list of times on the grid ``j/steps``). The
    Euler increment ``dM phi(X)`` over ``dt = 1/steps`` has the law of the ResNet increment
    with ``L^{-1/2} = sqrt(dt)`` (Lemma 6): with the same ``Sampling``, ``sample(steps=L)`` is
    ``RandomResNet.sample(depth=L)`` to the bit, so an SDE reference for depth ``L`` needs
    ``steps`` much larger than ``L`` (or ``law``). ``method="weights"`` draws the Brownian
    matrix increments ``dM`` explicitly.
    """

    _kind: ClassVar[str] = "sde"
    width: int
    activation: Any

    def sample(self, steps: int, start: Any, sampling: Any) -> Tensor:
        """Euler-Maruyama states at the recorded times: ``(samples, [times,] [k,] width)``."""
        return self._run("sample", steps, start, sampling)

    def observe(self, steps: int, start: Any, observables: Any, sampling: Any) -> Observations:
        """Observables along the Euler-Maruyama paths, at the recorded times."""
        return self._run("observe", steps, start, sampling, observables=observables)

    def collapse_probability(
        self,
        steps: int,
        start: Any,
        sampling: Any,
        *,
        conditional: bool = True,
        level: float = 0.95,
    ) -> CollapseProbability:
        """``P(phi(X) = 0 at or before step j)``, ``j = 0..steps`` (time ``j/steps``), with
        Wilson intervals; as ``RandomResNet.collapse_probability``."""
        extra = {"conditional": conditional, "level": level}
        return self._run("collapse_probability", steps, start, sampling, **extra)

    def gradient_norms(
        self, steps: int, start: Any, sampling: Any, *, grad_last: Any = None
    ) -> Tensor:
        """Norms ``||g_t||`` of the backward variable of the Euler scheme at the recorded times
        (by default every grid time): ``g_t = (dX_1 / dX_t)^T g_1`` from a fixed
        ``g_1 = grad_last`` (default ``(1, ..., 1)/sqrt(n)`` per input), by the recursion
        ``g_{t-dt} = g_t + phi'(X_{t-dt}) * (dM^T g_t)`` (hayou.md §6, Fig. 8, with ``sqrt(dt)``
        for ``L^{-1/2}``): ``(samples, [times,] [k])``. As ``steps -> oo`` it is the gradient of
        ``X_1`` along the SDE's paths, the limit of the ResNet's ``gradient_norms`` at layer
        ``l = t L``; with ``steps = L`` it is that of depth ``L`` to the bit. Methods as for the
        ResNet: ``"law"`` (one input) draws ``dM`` given the forward increments, ``"weights"``
        draws the forward pass's ``dM`` again."""
        return self._run("gradient_norms", steps, start, sampling, grad_last=grad_last)

    def law(self, start: Any, statistic: str = "state") -> Any:
        """The closed-form law (a ``deeplimit.laws.Law``) of a statistic of ``X_1``.

        ``statistic``:

        * ``"state"``: ``X_1`` itself, width 1: linear ``phi = a x`` from ``y0`` (GBM,
          Prop. 2), ReLU from ``y0`` or ``x`` (Prop. 3; the mixture for random ``X_0``), the
          OU activation from ``y0`` (Prop. 4);
        * ``"log_growth"``: ``log(||phi(X_1)|| / ||phi(X_0)||)``, as ``observe`` reports it:
          linear ``phi = a x``, any width and start, ``N(a^2 (n-2)/(2n), a^2/n)`` (Prop. 9 for
          ``a = 1``; ``|X|`` is a GBM); ReLU width 1 from ``y0 > 0``, ``N(-1/2, 1)``;
        * ``"norm"``: ``||X_1||`` from ``y0``, linear: ``||y0|| exp(N(a^2 (n-2)/(2n), a^2/n))``.

        One input. Any other case raises a ValueError naming what has no closed form.
        """
        return _closed_form(self.width, self.activation, as_start(start), statistic)

    def resnet(self) -> RandomResNet:
        """The finite-depth networks this SDE is the limit of."""
        return RandomResNet(self.width, self.activation)

    def as_dict(self) -> dict[str, Any]:
        """The description, for provenance."""
        return {"width": self.width, "activation": self.activation.spec, "limit": "depth"}


# --------------------------------------------------------------------------- closed forms

_CLOSED_FORMS = (
    "state: width 1 with linear (given y0), relu (y0 or x) or ou (given y0); "
    "log_growth: linear at any width, relu at width 1 from y0 > 0; "
    "norm: linear at any width given y0"
)


def _closed_form(width: int, activation: Activation, start: Start, statistic: Any) -> Any:
    from . import laws

    if not isinstance(statistic, str) or statistic not in LAW_STATISTICS:
        raise ValueError(
            f"statistic must be one of {', '.join(map(repr, LAW_STATISTICS))}, got {statistic!r}"
        )
    case = f"statistic={statistic!r}, activation={activation.spec}, width={width}, {start!r}"
    if start.count != 1:
        raise ValueError(f"no closed-form law for several inputs ({case}); give one input")
    values = start.values
    if start.kind == "y0" and values.size != width:
        raise ValueError(
            f"y0 must have shape (width,) = ({width},), got shape {tuple(values.shape)}"
        )
    linear = isinstance(activation, Linear)
    if linear and activation.a == 0.0 and statistic != "state":
        raise ValueError(f"phi = 0 leaves X_t = X_0: {statistic} has no law ({case})")
    if linear and statistic != "state":
        a2, n = activation.a**2, width
        log_mean, log_var = a2 * (n - 2) / (2 * n), a2 / n
        if not np.any(values != 0):
            raise ValueError(f"the start is 0, so X_t = 0 and {statistic} is undefined ({case})")
        if statistic == "log_growth":
            if activation.a == 1.0:
                return laws.identity_log_norm_law(n)
            return laws.normal_law(log_mean, log_var)
        if start.kind == "y0":
            norm0 = float(np.linalg.norm(values))
            if activation.a == 1.0:
                return laws.identity_norm_law(n, norm0)
            return laws.ScaledLogNormalLaw(norm0, log_mean, log_var)
    if width == 1 and statistic == "state":
        scalar = float(values.reshape(-1)[0]) if start.kind == "y0" else None
        if linear and scalar is not None:
            return laws.gbm_law(activation.a, scalar)
        if isinstance(activation, ReLU):
            return (
                laws.relu_width1_law(y0=scalar)
                if scalar is not None
                else laws.relu_width1_law(x=values)
            )
        if isinstance(activation, OU) and scalar is not None:
            return laws.ou_law(activation.alpha, activation.beta, activation.sigma, scalar)
    if (
        width == 1
        and statistic == "log_growth"
        and isinstance(activation, ReLU)
        and start.kind == "y0"
        and float(values[0]) > 0
    ):
        return laws.normal_law(-0.5, 1.0)
    raise ValueError(f"no closed-form law is known for {case}; closed forms: {_CLOSED_FORMS}")


# --------------------------------------------------------------------------- infinite width


def _second_moment(start: Any) -> float:
    if isinstance(start, Start):
        if start.count != 1:
            raise ValueError("one input is needed for the variance; use covariance for several")
        return float(np.mean(start.values**2))
    return start


@dataclass(frozen=True)
class MeanFieldLimit:
    """The infinite-width limits of ``RandomResNet(n, activation)`` (hayou.md §5, Thm 2-3).

    Where a method takes ``q0`` (``kernel0``) a ``Start`` may be given instead: ``q0`` is then
    ``||x||^2/d`` (``||y0||^2/n``), and the kernel ``x x^T / d``. The methods are those of
    ``deeplimit.initialization.meanfield``.
    """

    activation: Any

    def __post_init__(self) -> None:
        object.__setattr__(self, "activation", parse_activation(self.activation))

    def variance(self, q0: Any, t: Any = 1.0) -> Any:
        """``q_t``, ``q' = E phi(sqrt(q) Z)^2`` (McKean-Vlasov, depth then width)."""
        return _meanfield.meanfield_variance(self.activation, _second_moment(q0), t)

    def log_growth(self, q0: Any, t: Any = 1.0) -> Any:
        """The limit of ``log(||phi(X_t)|| / ||phi(X_0)||)`` as ``n -> oo``."""
        return _meanfield.meanfield_log_growth(self.activation, _second_moment(q0), t)

    def finite_depth_variance(self, q0: Any, depth: int) -> np.ndarray:
        """``q_l``, ``l = 0..L``, width first at depth ``L`` (Thm 3)."""
        return _meanfield.infinite_width_variance(self.activation, _second_moment(q0), depth)

    def covariance(self, kernel0: Any, t: Any = 1.0) -> np.ndarray:
        """The kernel ``K_t`` of several inputs, ``K_ab' = E phi(U_a) phi(U_b)``."""
        if isinstance(kernel0, Start):
            values = np.atleast_2d(kernel0.values)
            kernel0 = values @ values.T / values.shape[1]
        return _meanfield.meanfield_covariance(self.activation, kernel0, t)
