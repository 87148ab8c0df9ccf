"""The Neural Mean ODE limit (L -> infinity, D fixed, any M) after each GD step (chizat.md §2).

The solvers behind ``TrainingProblem.limit(method)`` (``problem.py``: the method objects
``Exact``, ``Span``, ``Lazy``, ``Reference``, ``Particles`` call ``exact_limit_of``,
``span_limit_of``, ``reference_limit_of`` here) and the function shorthands, all returning a
``LimitResult`` with ``outputs`` (K+1, N, d_out), ``embeddings`` (K+1, N, D) (``h_k(1, x)``),
``loss`` (K+1,), the maps ``w_in``, ``w_out`` (the same as ``train_resnet`` for the same
``embedding_seed`` and ``D``), an ``error_budget``, and the ``problem`` and ``strategy``:

* ``exact_linear_limit`` — sigma linear (``sigma(x) = a x``), exact deterministic matrix ODE
  (§2.4(2), re-derived below). Cost ``O(K n (D^3 + N D^2))`` for ``n`` depth intervals.
* ``span_linear_limit`` — the same limit in the span of ``W_in, W_out`` (derivation in its
  docstring), at a cost independent of ``D``; also ``D -> infinity`` and the lazy ODE.
* ``reference_limit`` — any sigma: the seed average of large ResNets with the same ``D`` and
  embeddings (§2.4(1)); its budget combines the seed spread (CLT part) and the 1/L term
  (measured against a run at half the depth). Cost ``1.5 S_ref 12 K N L M D`` flops.
  ``antithetic=True`` uses unit pairs ``(u, +-v)`` (zero drift at init, §2.4(4)) and
  ``extrapolate=True`` Richardson-extrapolates the two depths (``2 mean_L - mean_{L/2}``),
  which cancels the 1/L term: together, the "particle solver" ``method="particles"``.
* ``mean_ode_limit`` — the function entry point: ``"exact"`` (computed by the span solver)
  for linear sigma, else ``"reference"`` networks, an estimate (or the method asked for).

Divergence follows ``train_resnet``'s rule: the limit *diverges* at the first step ``k`` whose
loss is non-finite or exceeds ``explosion_factor * max(R_0, mean(y^2))``; its records at step
``k`` are kept as computed, later ones are NaN, ``diverged_at = k``, and ``on_divergence``
(``"warn"``, ``"ignore"``, ``"raise"``) says whether to warn (``TrainingDivergenceWarning``) or
raise ``TrainingDivergedError``. Error budgets then describe the last step before ``k``. The
reference methods average the networks that did not diverge; when fewer than 2 of either depth
are left, the limit diverges at the first step where that happens.

Derivation of the exact linear limit (Eq. (22) units, ``c = alpha/(LM)``,
``lr_raw = eta L M D / alpha^2``, ``sigma(x) = a x``). Layer ``l`` maps
``h -> (I + (alpha a / L) A_l) h`` with ``A_l = (1/M) sum_j v_j u_j^T / D``, and the adjoint
``g_l -> g_{l-1} = (I + (alpha a / L) A_l^T) g_l``. With ``beta = D g`` and ``s = l/L``:

    d/ds h = alpha a A(s) h,            h(0) = W_in x
    d/ds beta = -alpha a A(s)^T beta,   beta(1) = W_out dR/df = W_out 2 (f - y)/(N d_out)

The GD step on unit ``j`` of layer ``l`` reads (``lr_raw c = eta D / alpha``)
``v_j <- v_j - (eta_v a / alpha) G u_j``, ``u_j <- u_j - (eta_u a / alpha) G^T v_j`` with
``G(s) = (1/D) sum_n beta_n(s) h_n(s)^T``: each unit moves linearly, ``z_k = T_k(s) z_0``,
``z = (u; v)``, ``z_0 ~ N(0, D I_{2D})``, ``T_0 = I`` and
``T_{k+1} = [[I, -(eta_u a/alpha) G_k^T], [-(eta_v a/alpha) G_k, I]] T_k``, so that
``A_k(s) = E[v u^T]/D = T_v T_u^T`` (``T_u``, ``T_v`` the u- and v-rows of ``T``). Both ODEs are
integrated by RK4 on ``n`` intervals, ``A`` at mid-points by 4-point Lagrange interpolation
(fourth order overall); the budget compares with ``n/2`` intervals (``|diff| / 15``).
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from ..activations import Linear
from ..errors import check_bool, check_choice, check_int
from ..sizes import Need, check_memory
from .data import TrainingData
from .defaults import DEFAULT_DATA_SEED, DEFAULT_EXPLOSION_FACTOR, DEFAULT_STEPS
from .model import TwoLayerBlock
from .scaling import LazyScaling, MeanFieldScaling
from .train import (
    ON_DIVERGENCE,
    StepRecords,
    TrainingDivergedError,
    TrainingDivergenceWarning,
    TrainingResult,
    _outside_stacklevel,
    build_resnet,
    train,
)

if TYPE_CHECKING:
    from .problem import Exact, Reference, Span, TrainingProblem

__all__ = [
    "LimitResult",
    "exact_linear_limit",
    "limit_error",
    "mean_ode_limit",
    "problem_mismatch",
    "reference_limit",
    "span_linear_limit",
]

REFERENCE_SEED = 0x5EF  # default seed base of reference networks (problem.REFERENCE_SEED)


@dataclass(frozen=True)
class LimitResult(StepRecords):
    """The limit after each GD step ``k = 0..K``: ``outputs`` (K+1, N, d_out), ``embeddings``
    (K+1, N, D), ``loss`` (K+1,), the maps ``w_in``, ``w_out``; ``method`` and ``description``
    say how it was computed and ``error_budget`` how far it may be from the true limit
    (RMS per coordinate, last step); ``states`` (K+1, n+1, N, D) on ``depth_grid`` (n+1,) when
    available. ``diverged_at``: the step at which the limit diverged (-1 if never; module
    docstring); its later records are NaN. ``problem``: the ``TrainingProblem`` it is the
    limit of and ``strategy`` the method object used (``Exact()``, ``Span()``, ...), ``None``
    for a limit built by hand."""

    outputs: Tensor
    embeddings: Tensor
    loss: Tensor
    w_in: Tensor
    w_out: Tensor
    method: str
    description: str
    error_budget: dict[str, float]
    depth_grid: Tensor | None = None
    states: Tensor | None = None
    details: dict[str, Any] = field(default_factory=dict)
    diverged_at: int = -1
    problem: Any = None
    strategy: Any = None


def _divergence(loss: Tensor, data: TrainingData, explosion_factor: float) -> tuple[int, float]:
    """``(k, threshold)``: the first step whose loss is non-finite or above
    ``explosion_factor * max(R_0, mean(y^2))`` (``train_resnet``'s rule), -1 if none."""
    start = float(loss[0])
    threshold = explosion_factor * max(start if math.isfinite(start) else 0.0, data.null_risk())
    bad = ~torch.isfinite(loss) | (loss > threshold)
    return (int(torch.nonzero(bad)[0, 0]) if bool(bad.any()) else -1), threshold


def _blank_after(step: int, *tensors: Tensor | None) -> None:
    """NaN from step ``step + 1`` on (dimension 0 is the GD step), in place."""
    for tensor in tensors:
        if tensor is not None:
            tensor[step + 1 :] = math.nan


def _report_divergence(on_divergence: str, what: str, step: int, reason: str) -> None:
    if on_divergence == "ignore":
        return
    message = (
        f"the {what} diverged at step {step}: {reason}; its later records are NaN (try a "
        "smaller lr)"
    )
    if on_divergence == "raise":
        raise TrainingDivergedError(step, [], message)
    warnings.warn(message, TrainingDivergenceWarning, stacklevel=_outside_stacklevel())


def _with_divergence(
    result: LimitResult,
    data: TrainingData,
    explosion_factor: float,
    on_divergence: str,
    *extra: Tensor | None,
) -> LimitResult:
    """``result`` with ``diverged_at`` set and its records after it NaN (``extra``: more
    per-step tensors to blank), reported according to ``on_divergence``."""
    step, threshold = _divergence(result.loss, data, explosion_factor)
    if step < 0:
        return result
    _blank_after(step, result.outputs, result.embeddings, result.loss, result.states, *extra)
    _report_divergence(
        on_divergence,
        f"{result.method} limit",
        step,
        f"loss {float(result.loss[step]):.3g} is non-finite or above the explosion threshold "
        f"({threshold:.3g} = explosion_factor x max(R_0, mean y^2))",
    )
    return dataclasses.replace(result, diverged_at=step)


def _midpoints(a: Tensor) -> Tensor:
    """Values at ``(m + 1/2)`` of a field sampled at nodes ``0..n``: cubic Lagrange, O(h^4)."""
    n = a.shape[0] - 1
    mid = torch.empty_like(a[:-1])
    mid[1:-1] = (9.0 * (a[1:-2] + a[2:-1]) - a[:-3] - a[3:]) / 16.0
    mid[0] = (5.0 * a[0] + 15.0 * a[1] - 5.0 * a[2] + a[3]) / 16.0
    mid[n - 1] = (a[n - 3] - 5.0 * a[n - 2] + 15.0 * a[n - 1] + 5.0 * a[n]) / 16.0
    return mid


def _rk4_linear(start: Tensor, nodes: Tensor, mids: Tensor, step: float) -> Tensor:
    """Solve ``d/dt X = X C(t)^T`` (rows of ``X`` are samples) from ``t_0`` over the nodes;
    ``nodes[m] = C(t_m)``, ``mids[m] = C(t_m + step/2)``. Returns ``X`` at every node."""
    out = torch.empty((nodes.shape[0], *start.shape), dtype=start.dtype, device=start.device)
    x = start
    out[0] = x
    for m in range(nodes.shape[0] - 1):
        c0, c1, c2 = nodes[m].T, mids[m].T, nodes[m + 1].T
        k1 = x @ c0
        k2 = (x + (0.5 * step) * k1) @ c1
        k3 = (x + (0.5 * step) * k2) @ c1
        k4 = (x + step * k3) @ c2
        x = x + (step / 6.0) * (k1 + 2.0 * (k2 + k3) + k4)
        out[m + 1] = x
    return out


def _linear_descent(
    h0: Tensor,
    w_out: Tensor,
    y: Tensor,
    *,
    nodes: int,
    slope: float,
    alpha: float,
    lr_u: float,
    lr_v: float,
    steps: int,
    forward: Callable[[Tensor], Tensor],
    gradient: Callable[[Tensor, Tensor, Tensor], Tensor],
) -> tuple[Tensor, Tensor]:
    """GD of the exact linear limit with ``A = E[v u^T]/D`` (nodes, D, D) on ``nodes`` points
    of depth, held through the unit coordinates ``T_u, T_v`` (nodes, D, 2D). Each step,
    ``forward(A)`` gives the states ``h`` (points, N, D) and ``gradient(A, h, beta_L)`` the
    ``G = (1/D) sum_n beta_n h_n^T`` (nodes, D, D) from the terminal adjoint ``beta_L``.
    Returns the states (K+1, points, N, D) and outputs (K+1, N, d_out)."""
    n_samples, d = h0.shape
    d_out = y.shape[1]
    eye = torch.eye(d, dtype=h0.dtype, device=h0.device)
    zero = torch.zeros_like(eye)
    t_u = torch.cat([eye, zero], dim=1).expand(nodes, d, 2 * d).clone()
    t_v = torch.cat([zero, eye], dim=1).expand(nodes, d, 2 * d).clone()
    a = torch.zeros(nodes, d, d, dtype=h0.dtype, device=h0.device)
    states = []
    outputs = torch.empty(steps + 1, n_samples, d_out, dtype=h0.dtype, device=h0.device)
    for k in range(steps + 1):
        h = forward(a)
        states.append(h)
        outputs[k] = h[-1] @ w_out / d
        if k == steps:
            break
        beta_last = ((2.0 / (n_samples * d_out)) * (outputs[k] - y)) @ w_out.T
        g = gradient(a, h, beta_last)
        new_u = t_u - (lr_u * slope / alpha) * (g.transpose(1, 2) @ t_v)
        new_v = t_v - (lr_v * slope / alpha) * (g @ t_u)
        t_u, t_v = new_u, new_v
        a = t_v @ t_u.transpose(1, 2)  # A = E[v u^T]/D
    return torch.stack(states), outputs


def _linear_ode(
    h0: Tensor, w_out: Tensor, y: Tensor, *, slope: float, alpha: float, intervals: int, **rates
) -> tuple[Tensor, Tensor]:
    """States ``h_k(s_m)`` (K+1, n+1, N, D) and outputs (K+1, N, d_out) of the exact ODE
    (``rates``: ``lr_u``, ``lr_v``, ``steps`` of ``_linear_descent``)."""
    d = h0.shape[1]
    ds = 1.0 / intervals
    gain = alpha * slope

    def forward(a: Tensor) -> Tensor:
        generator = gain * a
        return _rk4_linear(h0, generator, _midpoints(generator), ds)  # d/ds h = gain A h

    def gradient(a: Tensor, h: Tensor, beta_last: Tensor) -> Tensor:
        # d/ds beta = -gain A^T beta; in reversed time tau = 1 - s: d/dtau beta = gain A^T beta,
        # i.e. rows: d/dtau B = B (gain A) = B C^T with C = gain A^T
        backward = (gain * a).transpose(1, 2).flip(0)
        beta = _rk4_linear(beta_last, backward, _midpoints(backward), ds).flip(0)
        return beta.transpose(1, 2) @ h / d  # G(s) = (1/D) sum_n beta_n h_n^T   (n+1, D, D)

    return _linear_descent(
        h0,
        w_out,
        y,
        nodes=intervals + 1,
        slope=slope,
        alpha=alpha,
        forward=forward,
        gradient=gradient,
        **rates,
    )


def _linear_layers(
    h0: Tensor, w_out: Tensor, y: Tensor, *, slope: float, alpha: float, depth: int, **rates
) -> tuple[Tensor, Tensor]:
    """The same dynamics on ``depth`` discrete layers: the exact ``M -> infinity`` limit of the
    depth-``L`` network (each layer's empirical ``A_l`` replaced by its mean). Returns states
    ``h_k(l)`` (K+1, L+1, N, D) and outputs (K+1, N, d_out)."""
    d = h0.shape[1]
    gain = alpha * slope / depth

    def forward(a: Tensor) -> Tensor:
        h = torch.empty(depth + 1, *h0.shape, dtype=h0.dtype, device=h0.device)
        h[0] = h0
        for layer in range(depth):  # h_l = (I + gain A_l) h_{l-1}   (rows: h A^T)
            h[layer + 1] = h[layer] + gain * (h[layer] @ a[layer].T)
        return h

    def gradient(a: Tensor, h: Tensor, beta_last: Tensor) -> Tensor:
        beta = torch.empty_like(h)
        beta[-1] = beta_last
        for layer in range(depth, 0, -1):  # beta_{l-1} = (I + gain A_l^T) beta_l
            beta[layer - 1] = beta[layer] + gain * (beta[layer] @ a[layer - 1])
        return beta[1:].transpose(1, 2) @ h[:-1] / d  # G_l = (1/D) sum_n beta_l h_{l-1}^T

    return _linear_descent(
        h0,
        w_out,
        y,
        nodes=depth,
        slope=slope,
        alpha=alpha,
        forward=forward,
        gradient=gradient,
        **rates,
    )


def _risk(outputs: Tensor, y: Tensor) -> Tensor:
    return ((outputs - y) ** 2).flatten(-2).mean(-1)


def _limit_inputs(
    problem: TrainingProblem, *, lazy: bool = False
) -> tuple[TrainingData, Tensor, Tensor, Any]:
    """Data, float64 CPU maps and scaling of ``problem`` for a limit, after checking that the
    records fit in memory and that the scaling has a limit (``alpha/(LM)``; ``lazy``: also
    ``LazyScaling``)."""
    dataset, steps, dim = problem.data, problem.steps, problem.embedding_dim
    records = 8.0 * (steps + 1) * dataset.samples * (dim + dataset.output_dim)
    check_memory("the limit", [Need("steps", steps, records, f"the records of {steps + 1} steps")])
    allowed = (MeanFieldScaling, LazyScaling) if lazy else (MeanFieldScaling,)
    if not isinstance(problem.scaling, allowed):
        raise ValueError(
            "scaling must be a MeanFieldScaling"
            + (" or a LazyScaling" if lazy else "")
            + " (the limit exists for the alpha/(LM) family), got "
            + type(problem.scaling).__name__
        )
    w_in, w_out = problem.maps()
    return dataset, w_in, w_out, problem.scaling


def _linear_slope(problem: TrainingProblem, method: str) -> float:
    """``a`` of a linear 2LP block ``sigma(x) = a x``; other blocks have no exact limit."""
    act = problem.activation
    if not isinstance(problem.block, TwoLayerBlock):
        raise ValueError(
            f"block must be the 2LP block with a linear activation for the {method} limit (the "
            f"only closed form), got block {problem.block.spec}: a block of attention heads or "
            "any other block has no closed-form limit; use method='reference' (Reference(), "
            "an estimate by reference networks with its error budget)"
        )
    if not isinstance(act, Linear):
        what = act.spec
        raise ValueError(
            f"activation must be linear ('linear', 'identity', 'linear:a=...') for the {method} "
            f"limit, got {what!r}; use method='reference' (Reference()) for other activations"
        )
    return float(act.a)


def exact_limit_of(problem: TrainingProblem, method: Exact, on_divergence: str) -> LimitResult:
    """``problem.limit(Exact(...))``: the exact fixed-D Mean ODE for linear sigma by the matrix
    ODE (``solver="matrix"``) or the span solver (``solver="span"``, the same numbers)."""
    slope = _linear_slope(problem, "exact")
    dataset, w_in, w_out, scaling = _limit_inputs(problem)
    if method.solver == "span":
        return _exact_by_span(problem, method, on_divergence)
    explosion_factor = problem.explosion_factor
    act_spec, intervals, depth = problem.activation.spec, method.intervals, method.depth
    h0 = dataset.x @ w_in.T
    kwargs = dict(
        slope=slope,
        alpha=scaling.alpha,
        lr_u=scaling.lr * dict(scaling.relative_lrs).get("u", 1.0),
        lr_v=scaling.lr * dict(scaling.relative_lrs).get("v", 1.0),
        steps=problem.steps,
    )
    if depth is not None:
        states, outputs = _linear_layers(h0, w_out, dataset.y, depth=depth, **kwargs)
        result = LimitResult(
            outputs=outputs,
            embeddings=states[:, -1].clone(),
            loss=_risk(outputs, dataset.y),
            w_in=w_in,
            w_out=w_out,
            method="exact-layers",
            description=(
                f"exact infinite-width (M -> infinity) limit at depth L={depth} for sigma = "
                f"{act_spec} (discrete layers of chizat.md §2.4(2)), float64"
            ),
            error_budget={"discretization": 0.0},
            depth_grid=torch.arange(depth + 1, dtype=torch.float64) / depth,
            states=states,
            details={"alpha": scaling.alpha, "lr": scaling.lr, "data": dataset.description},
        )
        return _with_divergence(result, dataset, explosion_factor, on_divergence)
    states, outputs = _linear_ode(h0, w_out, dataset.y, intervals=intervals, **kwargs)
    loss = _risk(outputs, dataset.y)
    stop, _ = _divergence(loss, dataset, explosion_factor)
    valid = slice(None) if stop < 0 else slice(0, stop)  # steps before any divergence
    discretization = 0.0 if stop != 0 else math.nan
    if method.estimate_error and stop != 0:
        half = max(4, intervals // 2)
        coarse_states, coarse_outputs = _linear_ode(h0, w_out, dataset.y, intervals=half, **kwargs)
        discretization = (
            max(
                float((coarse_states[valid, -1] - states[valid, -1]).abs().max()),
                float((coarse_outputs[valid] - outputs[valid]).abs().max()),
            )
            / 15.0
        )
    result = LimitResult(
        outputs=outputs,
        embeddings=states[:, -1].clone(),
        loss=loss,
        w_in=w_in,
        w_out=w_out,
        method="exact",
        description=(
            f"exact fixed-D Mean ODE for sigma = {act_spec} (chizat.md §2.4(2)), RK4 on "
            f"{intervals} depth intervals, float64"
        ),
        error_budget={"discretization": discretization},
        depth_grid=torch.linspace(0.0, 1.0, intervals + 1, dtype=torch.float64),
        states=states,
        details={"alpha": scaling.alpha, "lr": scaling.lr, "data": dataset.description},
    )
    return _with_divergence(result, dataset, explosion_factor, on_divergence)


def _exact_by_span(problem: TrainingProblem, method: Exact, on_divergence: str) -> LimitResult:
    """The exact fixed-D limit from the span solver, presented as the matrix ODE presents it:
    ``states`` ``W xi`` on the depth grid and the discretization budget ``|n - n/2| / 15``."""
    solve = partial(_span_solution, problem, lazy=False, infinite_dim=False, depth=method.depth)
    fine = solve(intervals=method.intervals)
    basis = fine["basis"]
    states = fine["coefficients"] @ basis.T  # (K+1, n+1, N, D)
    outputs, dataset = fine["outputs"], problem.data
    loss = _risk(outputs, dataset.y)
    discretization = 0.0
    if method.depth is None:
        stop, _ = _divergence(loss, dataset, problem.explosion_factor)
        valid = slice(None) if stop < 0 else slice(0, stop)
        discretization = 0.0 if stop != 0 else math.nan
        if method.estimate_error and stop != 0:
            coarse = solve(intervals=max(4, method.intervals // 2))
            discretization = (
                max(
                    float((coarse["embeddings"][valid] - fine["embeddings"][valid]).abs().max()),
                    float((coarse["outputs"][valid] - outputs[valid]).abs().max()),
                )
                / 15.0
            )
    act = problem.activation.spec
    if method.depth is not None:
        label = "exact-layers"
        what = (
            f"exact infinite-width (M -> infinity) limit at depth L={method.depth} for sigma = "
            f"{act} (discrete layers of chizat.md §2.4(2))"
        )
    else:
        label = "exact"
        what = (
            f"exact fixed-D Mean ODE for sigma = {act} (chizat.md §2.4(2)), RK4 on "
            f"{method.intervals} depth intervals"
        )
    result = LimitResult(
        outputs=outputs,
        embeddings=fine["embeddings"],
        loss=loss,
        w_in=fine["w_in"],
        w_out=fine["w_out"],
        method=label,
        description=(
            f"{what}, computed by the span solver in span(W_in, W_out) (D={problem.embedding_dim}"
            f", rank {basis.shape[1]}), float64"
        ),
        error_budget={"discretization": discretization},
        depth_grid=fine["grid"],
        states=states,
        details={**fine["details"], "solver": "span"},
    )
    return _with_divergence(
        result, dataset, problem.explosion_factor, on_divergence, fine["coefficients"]
    )


def exact_linear_limit(
    embedding_dim: int,
    *,
    data: Any = None,
    activation: Any = "linear",
    alpha: float | None = None,
    lr: float | None = None,
    steps: int = DEFAULT_STEPS,
    embedding_seed: int = 0,
    scaling: MeanFieldScaling | None = None,
    embeddings: Any = None,
    data_seed: int = DEFAULT_DATA_SEED,
    intervals: int = 128,
    estimate_error: bool = True,
    depth: int | None = None,
    explosion_factor: float = DEFAULT_EXPLOSION_FACTOR,
    on_divergence: str = "warn",
) -> LimitResult:
    """Exact fixed-D Mean ODE limit for linear sigma (chizat.md §2.4(2); derivation in the
    module docstring), in float64 on the CPU, on ``intervals`` RK4 depth steps, by the
    ``O(D^3)`` matrix ODE: shorthand for ``TrainingProblem(...).limit(Exact(intervals, depth,
    estimate_error, solver="matrix"))`` (``mean_ode_limit`` and ``problem.limit()`` use the
    span solver, the same numbers at a cost independent of ``D``).

    ``error_budget["discretization"]``: max |result(n) - result(n/2)| / 15 over the recorded
    embeddings and outputs (RK4 is fourth order); 0 when ``estimate_error=False``.

    ``depth=L`` instead gives the exact infinite-width limit of the depth-``L`` network
    (``M -> infinity`` at fixed ``L``: the Euler scheme of the Mean ODE, one node per layer),
    whose distance to the Mean ODE is the deterministic ``O(1/L)`` term of chizat.md §3.

    Divergence (``explosion_factor``, ``on_divergence``): module docstring.
    """
    from .problem import Exact, problem_from_arguments

    check_choice("on_divergence", on_divergence, ON_DIVERGENCE)
    problem = problem_from_arguments(locals())
    method = Exact(intervals, depth, estimate_error, solver="matrix")
    return problem.limit(method, on_divergence=on_divergence)


def _reference_stop(runs: Sequence[TrainingResult]) -> int:
    """The first step at which fewer than 2 networks of some run are still training (a
    network that diverged at ``k`` no longer counts from ``k`` on), or -1 if never."""
    stops = []
    for run in runs:
        d = run.diverged_at
        for step in range(run.steps + 1):
            if int(((d < 0) | (d > step)).sum()) < 2:
                stops.append(step)
                break
    return min(stops) if stops else -1


def _seed_statistics(
    result: TrainingResult, stop: int
) -> tuple[Tensor, Tensor, Tensor, Tensor, int]:
    """Seed means and standard errors of embeddings and outputs over the networks that never
    diverged, or (``stop >= 0``, the limit diverges there) over those still training at
    ``stop - 1``."""
    d = result.diverged_at
    ok = (d < 0) if stop < 0 else (d < 0) | (d >= stop)
    count = int(ok.sum())
    emb, out = result.embeddings[ok], result.outputs[ok]
    return (
        emb.mean(0),
        emb.std(0) / math.sqrt(count),
        out.mean(0),
        out.std(0) / math.sqrt(count),
        count,
    )


def _rms(x: Tensor) -> float:
    return float(torch.sqrt((x * x).mean()))


def reference_limit_of(
    problem: TrainingProblem, method: Reference, on_divergence: str
) -> LimitResult:
    """``problem.limit(Reference(...))``: seed-averaged large reference networks (§2.4(1));
    see ``reference_limit``."""
    dataset, w_in, w_out, scaling = _limit_inputs(problem)
    embedding_dim, steps, explosion_factor = (
        problem.embedding_dim,
        problem.steps,
        problem.explosion_factor,
    )
    depth, hidden_width, seeds, seed = method.depth, method.hidden_width, method.seeds, method.seed
    antithetic, extrapolate = method.antithetic, method.extrapolate
    block = problem.block
    if antithetic:
        if not isinstance(block, TwoLayerBlock):
            raise ValueError(f"antithetic units need the 2LP block, got block {block.spec}")
        block = TwoLayerBlock(block.activation, antithetic=True)
    sigma = block.activation.spec if isinstance(block, TwoLayerBlock) else None
    runs = {}
    for run_depth, indices in ((depth, range(seeds)), (depth // 2, range(seeds, 2 * seeds))):
        model = build_resnet(
            run_depth,
            hidden_width,
            embedding_dim,
            input_dim=dataset.input_dim,
            output_dim=dataset.output_dim,
            block=block,
            scaling=scaling,
            seeds=list(indices),
            seed=seed,
            embeddings=(w_in, w_out),
            device=method.device,
            dtype=method.dtype,
        )
        runs[run_depth] = train(
            model,
            dataset,
            steps,
            record_movement=False,
            explosion_factor=explosion_factor,
            on_divergence="ignore",
        )
    stop = _reference_stop(list(runs.values()))
    full = _seed_statistics(runs[depth], stop)
    half = _seed_statistics(runs[depth // 2], stop)
    last = -1 if stop < 0 else stop - 1  # the budget's step: the last one before divergence
    budget: dict[str, float] = {}
    means = []
    for name, (mean_l, se_l, mean_h, se_h) in (
        ("embeddings", (full[0], full[1], half[0], half[1])),
        ("outputs", (full[2], full[3], half[2], half[3])),
    ):
        if stop == 0:  # diverged at initialization: nothing to budget
            means.append(2.0 * mean_l - mean_h if extrapolate else mean_l)
            budget.update({f"{name}_{key}": math.nan for key in ("clt", "euler", "total")})
            continue
        diff, noise = mean_h[last] - mean_l[last], se_l[last] ** 2 + se_h[last] ** 2
        euler = math.sqrt(max(0.0, _rms(diff) ** 2 - float(noise.mean())))
        if extrapolate:
            mean = 2.0 * mean_l - mean_h
            clt = math.sqrt(float((4.0 * se_l[last] ** 2 + se_h[last] ** 2).mean()))
            total = clt
        else:
            mean = mean_l
            clt = _rms(se_l[last])
            total = math.hypot(clt, euler)
        budget.update({f"{name}_clt": clt, f"{name}_euler": euler, f"{name}_total": total})
        means.append(mean)
    embeddings_mean, outputs_mean = means
    kind = "particles" if (antithetic and extrapolate) else "reference"
    what = f"sigma = {sigma}" if sigma is not None else f"block {block.spec}"
    description = (
        f"estimate of the Neural Mean ODE limit (no exact solver): seed mean of {full[4]} "
        f"reference ResNets L={depth}, M={hidden_width}, D={embedding_dim}"
        f" ({what}{', antithetic units (u, +-v)' if antithetic else ''}), "
        f"{'Richardson-extrapolated with ' if extrapolate else 'Euler term from '}"
        f"{half[4]} at L={depth // 2}; same W_in, W_out; reference seed base {seed}"
    )
    diverged = int(runs[depth].diverged.sum() + runs[depth // 2].diverged.sum())
    result = LimitResult(
        outputs=outputs_mean,
        embeddings=embeddings_mean,
        loss=_risk(outputs_mean, dataset.y),
        w_in=w_in,
        w_out=w_out,
        method=kind,
        description=description,
        error_budget=budget,
        details={
            "depth": depth,
            "hidden_width": hidden_width,
            "seeds": seeds,
            "diverged": diverged,
            "flops": 18.0 * seeds * steps * dataset.samples * depth * hidden_width * embedding_dim,
        },
    )
    if stop >= 0:  # the limit diverges where fewer than 2 networks of a depth are left
        _blank_after(stop, result.outputs, result.embeddings, result.loss)
        _report_divergence(
            on_divergence,
            f"{kind} limit",
            stop,
            f"fewer than 2 of the {seeds} reference networks of a depth are left (the others "
            f"diverged: loss non-finite or above {explosion_factor:g} x max(R_0, mean y^2))",
        )
        return dataclasses.replace(result, diverged_at=stop)
    if diverged and on_divergence != "ignore":
        warnings.warn(
            f"{diverged} of {2 * seeds} reference networks diverged; the {kind} limit averages "
            "the others (a mean conditioned on not diverging: lower lr to trust it)",
            TrainingDivergenceWarning,
            stacklevel=_outside_stacklevel(),
        )
    return _with_divergence(result, dataset, explosion_factor, on_divergence)


def reference_limit(
    embedding_dim: int,
    *,
    data: Any = None,
    activation: Any = None,
    alpha: float | None = None,
    lr: float | None = None,
    steps: int = DEFAULT_STEPS,
    embedding_seed: int = 0,
    scaling: MeanFieldScaling | None = None,
    embeddings: Any = None,
    data_seed: int = DEFAULT_DATA_SEED,
    depth: int = 64,
    hidden_width: int = 1024,
    seeds: int = 8,
    seed: int = REFERENCE_SEED,
    antithetic: bool = False,
    extrapolate: bool = False,
    device: Any = "cpu",
    dtype: Any = torch.float64,
    explosion_factor: float = DEFAULT_EXPLOSION_FACTOR,
    on_divergence: str = "warn",
) -> LimitResult:
    """Seed-averaged large reference ResNet with the same ``D`` and embeddings (§2.4(1)): an
    estimate of the Mean ODE limit for any sigma (default ``"tanh"``, as ``train_resnet``).
    Shorthand for ``TrainingProblem(...).limit(Reference(depth, hidden_width, seeds, seed,
    antithetic, extrapolate, device, dtype))``.

    ``seeds`` networks of shape ``(depth, hidden_width, D)`` and ``seeds`` more of depth
    ``depth // 2`` (other seed indices) are trained with the same data, scaling and maps.
    Returned: the seed mean at ``depth`` (or ``2 mean_L - mean_{L/2}`` with ``extrapolate``).
    Budget (RMS per coordinate at the last step, for embeddings and outputs): ``clt`` = RMS
    standard error of the returned mean; ``euler`` = the 1/L term, RMS of
    ``mean_{L/2} - mean_L`` with its noise removed in quadrature (for ``extrapolate`` this is
    the removed term, the remainder being ``O(1/L^2)``); ``total`` = their root sum of squares
    (``clt`` only for ``extrapolate``). Divergence: module docstring.
    """
    from .problem import Reference, problem_from_arguments

    check_choice("on_divergence", on_divergence, ON_DIVERGENCE)
    problem = problem_from_arguments(locals())
    seeds = check_int("reference_seeds", seeds, minimum=2)
    seed = check_int("reference_seed", seed, minimum=0)
    if check_int("depth", depth, minimum=1) < 2:
        raise ValueError(f"reference depth must be >= 2 (a half-depth run is needed), got {depth}")
    method = Reference(depth, hidden_width, seeds, seed, antithetic, extrapolate, device, dtype)
    return problem.limit(method, on_divergence=on_divergence)


# --------------------------------------------------------------------------------------------
# the linear limit in the span of the embeddings: any D, D -> infinity, alpha -> infinity


def _span_fields(y_u: Tensor, y_v: Tensor, gram: Tensor, inv_alpha: float, rank: int) -> Tensor:
    """``alpha A^`` at every node: ``Y_u[:, r:]^T + Y_v[:, :r] + Y_v Gamma_2 Y_u^T / alpha``."""
    field_ = y_u[:, :, rank:].transpose(1, 2) + y_v[:, :, :rank]
    if inv_alpha:
        gram2 = torch.block_diag(gram, gram)
        field_ = field_ + inv_alpha * (y_v @ gram2 @ y_u.transpose(1, 2))
    return field_


def _span_update(
    y_u: Tensor,
    y_v: Tensor,
    g: Tensor,
    gram: Tensor,
    *,
    rank: int,
    inv_alpha: float,
    step_u: float,
    step_v: float,
) -> tuple[Tensor, Tensor]:
    """One GD step of the unit maps: ``Y_u -= eta_u a G^T ([0, I] + Gamma Y_v / alpha)``,
    ``Y_v -= eta_v a G ([I, 0] + Gamma Y_u / alpha)`` (simultaneous)."""
    eye = torch.eye(rank, dtype=gram.dtype)
    zero = torch.zeros_like(eye)
    right_u = torch.cat([zero, eye], dim=1) + inv_alpha * (gram @ y_v)
    right_v = torch.cat([eye, zero], dim=1) + inv_alpha * (gram @ y_u)
    return y_u - step_u * (g.transpose(1, 2) @ right_u), y_v - step_v * (g @ right_v)


def _span_ode(
    xi0: Tensor,
    b_last: Any,
    gram: Tensor,
    *,
    slope: float,
    inv_alpha: float,
    step_u: float,
    step_v: float,
    steps: int,
    intervals: int | None,
    depth: int | None,
) -> tuple[Tensor, Tensor]:
    """Coefficients ``xi_k(s)`` (K+1, n+1, N, r) of the states and ``b_k(s)`` (K+1, n+1, N, r)
    of the adjoint ``beta = W b`` in the basis ``W``, on ``n`` RK4 intervals (``intervals``)
    or ``L`` discrete layers (``depth``); the adjoint at the last step is NaN (not needed)."""
    n_samples, rank = xi0.shape
    nodes = depth if depth is not None else intervals
    y_u = torch.zeros(nodes + (depth is None), rank, 2 * rank, dtype=xi0.dtype)
    y_v = torch.zeros_like(y_u)
    states = torch.empty(steps + 1, nodes + 1, n_samples, rank, dtype=xi0.dtype)
    adjoints = torch.full_like(states, math.nan)
    for k in range(steps + 1):
        # d/ds xi = a (alpha A^) Gamma xi; rows: d/ds Xi = Xi C^T with C = a (alpha A^) Gamma
        forward = slope * _span_fields(y_u, y_v, gram, inv_alpha, rank) @ gram
        if depth is None:
            xi = _rk4_linear(xi0, forward, _midpoints(forward), 1.0 / intervals)
        else:
            xi = states[k]
            xi[0] = xi0
            for layer in range(depth):  # xi_l = xi_{l-1} + (1/L) C_l xi_{l-1}
                xi[layer + 1] = xi[layer] + (xi[layer] @ forward[layer].T) / depth
        states[k] = xi
        if k == steps:
            break
        b_end = b_last(xi[-1])
        # d/ds b = -a (alpha A^)^T Gamma b: reversed time, C_b = a (alpha A^)^T Gamma
        backward = slope * _span_fields(y_u, y_v, gram, inv_alpha, rank).transpose(1, 2) @ gram
        if depth is None:
            flipped = backward.flip(0)
            b = _rk4_linear(b_end, flipped, _midpoints(flipped), 1.0 / intervals).flip(0)
            g = b.transpose(1, 2) @ xi  # G^(s) = sum_n b_n xi_n^T at every node
        else:
            b = torch.empty_like(xi)
            b[-1] = b_end
            for layer in range(depth, 0, -1):  # b_{l-1} = b_l + (1/L) C_b,l b_l
                b[layer - 1] = b[layer] + (b[layer] @ backward[layer - 1].T) / depth
            g = b[1:].transpose(1, 2) @ xi[:-1]  # G^_l = sum_n b_l xi_{l-1}^T
        adjoints[k] = b
        y_u, y_v = _span_update(
            y_u, y_v, g, gram, rank=rank, inv_alpha=inv_alpha, step_u=step_u, step_v=step_v
        )
    return states, adjoints


def _span_solution(
    problem: TrainingProblem,
    *,
    lazy: bool,
    infinite_dim: bool,
    depth: int | None,
    intervals: int,
    embedding_variances: tuple[float, float] | None = None,
) -> dict[str, Any]:
    """The span solver (see ``span_linear_limit``) on a checked problem: coefficients
    ``xi`` (K+1, n+1, N, r) and ``b`` of the adjoint, outputs, embeddings ``W xi(1)``, maps,
    basis, grid, details. ``embedding_variances``: the D -> infinity Gram matrix
    ``blockdiag(s_in I, s_out I)`` (default ``(1/d_in, d_out)``)."""
    slope = _linear_slope(problem, "exact")
    dataset, w_in, w_out, scaling = _limit_inputs(problem, lazy=lazy)
    if infinite_dim and problem.embeddings is not None and embedding_variances is None:
        raise ValueError(
            "infinite_dim with user embeddings needs embedding_variances=(s_in, s_out), the "
            "entry variances of the law their rows are drawn from (the D -> infinity limit "
            "of arbitrary maps is not defined)"
        )
    d_in, d_out = dataset.input_dim, dataset.output_dim
    if embedding_variances is None:
        embedding_variances = (1.0 / d_in, float(d_out))
    elif not infinite_dim:
        raise ValueError(
            "embedding_variances sets the D -> infinity Gram matrix: give it with "
            "infinite_dim=True (at finite D the Gram matrix comes from the maps themselves)"
        )
    var_in, var_out = embedding_variances
    basis = torch.cat([w_in, w_out], dim=1)  # W (D, r)
    if infinite_dim:
        gram = torch.block_diag(
            torch.eye(d_in, dtype=torch.float64) * var_in,
            torch.eye(d_out, dtype=torch.float64) * var_out,
        )
    else:
        gram = basis.T @ basis / problem.embedding_dim
    n_samples = dataset.samples
    xi0 = torch.cat([dataset.x, torch.zeros(n_samples, d_out, dtype=torch.float64)], dim=1)
    gram_out = gram[d_in:]  # f = Gamma_out xi

    def b_last(xi_end: Tensor) -> Tensor:
        residual = (2.0 / (n_samples * d_out)) * (xi_end @ gram_out.T - dataset.y)
        return torch.cat([torch.zeros(n_samples, d_in, dtype=torch.float64), residual], dim=1)

    lrs = dict(scaling.relative_lrs)
    states, adjoints = _span_ode(
        xi0,
        b_last,
        gram,
        slope=slope,
        inv_alpha=0.0 if lazy else 1.0 / scaling.alpha,
        step_u=scaling.lr * lrs.get("u", 1.0) * slope,
        step_v=scaling.lr * lrs.get("v", 1.0) * slope,
        steps=problem.steps,
        intervals=intervals if depth is None else None,
        depth=depth,
    )
    grid = (
        torch.arange(depth + 1, dtype=torch.float64) / depth
        if depth is not None
        else torch.linspace(0.0, 1.0, intervals + 1, dtype=torch.float64)
    )
    return {
        "coefficients": states,
        "adjoint": adjoints,
        "outputs": states[:, -1] @ gram_out.T,
        "embeddings": states[:, -1] @ basis.T,
        "w_in": w_in,
        "w_out": w_out,
        "basis": basis,
        "grid": grid,
        "details": {
            "alpha": math.inf if lazy else scaling.alpha,
            "lr": scaling.lr,
            "data": dataset.description,
            "gram": gram,
            "coefficients": states,
            "adjoint": adjoints,
            "infinite_dim": bool(infinite_dim),
        },
    }


def span_limit_of(problem: TrainingProblem, method: Span, on_divergence: str) -> LimitResult:
    """``problem.limit(Span(...))`` or ``problem.limit(Lazy(...))``: see ``span_linear_limit``."""
    depth, intervals = method.depth, method.intervals
    solution = _span_solution(
        problem,
        lazy=method.lazy,
        infinite_dim=method.infinite_dim,
        depth=depth,
        intervals=intervals,
        embedding_variances=method.embedding_variances,
    )
    regime = "lazy (alpha -> infinity) " if method.lazy else ""
    size = "D -> infinity" if method.infinite_dim else f"D={problem.embedding_dim}"
    where = f"depth L={depth} (discrete layers)" if depth is not None else f"RK4 on {intervals}"
    outputs = solution["outputs"]
    result = LimitResult(
        outputs=outputs,
        embeddings=solution["embeddings"],
        loss=_risk(outputs, problem.data.y),
        w_in=solution["w_in"],
        w_out=solution["w_out"],
        method="span",
        description=(
            f"exact {regime}linear limit ({size}, sigma = {problem.activation.spec}) in the span "
            f"of W_in, W_out, {where}{' intervals' if depth is None else ''}, float64"
        ),
        error_budget={"discretization": 0.0},
        depth_grid=solution["grid"],
        states=None,
        details=solution["details"],
    )
    return _with_divergence(
        result,
        problem.data,
        problem.explosion_factor,
        on_divergence,
        solution["coefficients"],
        solution["adjoint"],
    )


def span_linear_limit(
    embedding_dim: int,
    *,
    data: Any = None,
    activation: Any = "linear",
    alpha: float | None = None,
    lr: float | None = None,
    steps: int = DEFAULT_STEPS,
    embedding_seed: int = 0,
    embeddings: Any = None,
    data_seed: int = DEFAULT_DATA_SEED,
    infinite_dim: bool = False,
    lazy: bool = False,
    depth: int | None = None,
    intervals: int = 128,
    relative_lrs: Any = None,
    embedding_variances: tuple[float, float] | None = None,
    explosion_factor: float = DEFAULT_EXPLOSION_FACTOR,
    on_divergence: str = "warn",
) -> LimitResult:
    """The exact linear-sigma limit computed in the span of the embeddings, for any ``D``, for
    ``D -> infinity`` (``infinite_dim``) and for ``alpha -> infinity`` (``lazy``): shorthand
    for ``TrainingProblem(...).limit(Span(infinite_dim, depth, intervals))`` (``Lazy(...)``
    with ``lazy``).

    For ``sigma(x) = a x`` every operator of the exact limit (``A``, ``G`` and ``T - T_0`` in
    the module docstring) maps into and vanishes off ``V = span(W_in, W_out)``, of dimension
    ``r <= d_in + d_out`` (induction over steps: ``h(0) = W_in x`` and ``beta(1) = W_out r``
    are in ``V``). With ``W = [W_in, W_out]`` (D, r), ``Gamma = W^T W / D`` (r, r),
    ``h = W xi``, ``beta = W b``, ``A = W A^ W^T / D``, ``T_u = [I, 0] + W Z_u blockdiag(W, W)^T
    / D`` (and ``T_v`` with ``[0, I]``), the limit becomes the ``r``-dimensional system

        d/ds xi = alpha a A^ Gamma xi,             xi(0) = (x, 0)
        d/ds b = -alpha a A^T Gamma b,             b(1) = (0, 2 (f - y) / (N d_out))
        f = Gamma_out xi(1)  (the W_out rows of Gamma),   G^ = sum_n b_n xi_n^T
        A^ = Z_u[:, r:]^T + Z_v[:, :r] + Z_v blockdiag(Gamma, Gamma) Z_u^T
        Z_u <- Z_u - (eta_u a / alpha) G^T ([0, I] + Gamma Z_v)
        Z_v <- Z_v - (eta_v a / alpha) G^  ([I, 0] + Gamma Z_u)

    so ``D`` enters only through ``Gamma``: ``Gamma = W^T W / D`` gives the fixed-D limit
    (equal to ``exact_linear_limit`` to rounding, at a cost independent of ``D``), and its
    expectation ``blockdiag(I/d_in, d_out I)`` (the coupled Gaussian maps of
    ``coupled_embeddings``) gives the ``D -> infinity`` limit, whose coordinate ``i`` is
    ``h_i = W[i] xi`` (chizat.md §2.4(3): coordinates Gaussian given the kernels). With
    ``Y = alpha Z``, ``lazy=True`` sets ``1/alpha = 0`` at fixed ``eta``: the linearized
    ("Neural Tangent") ODE of chizat.md §2.3, the lazy limit of the Mean ODE.

    ``depth=L`` gives the depth-``L`` discrete-layer version (``M -> infinity`` at fixed ``L``)
    instead of the ODE on ``intervals`` RK4 steps. ``embedding_variances=(s_in, s_out)``: the
    entry variances of ``W_in``, ``W_out`` in the ``D -> infinity`` Gram matrix
    ``blockdiag(s_in I, s_out I)`` (default ``(1/d_in, d_out)``, ``coupled_embeddings``; the
    authors' Python uses ``(1, 1)``, ``deeplimit.training.authors``). Returns a
    ``LimitResult`` whose ``embeddings`` are the first ``embedding_dim`` coordinates
    ``W xi(1)``; ``details`` holds ``gram``, the coefficients ``xi`` (K+1, n+1, N, r)
    (``"coefficients"``) and those of the adjoint ``beta = D dR/dh = W b`` (``"adjoint"``,
    NaN at step K); ``deeplimit.training.authors.span_kernels`` turns them into the kernels
    ``Gamma_H``, ``Gamma_B`` and per-coordinate paths. Divergence (``explosion_factor``,
    ``on_divergence``): module docstring.
    """
    from .problem import Lazy, Span, TrainingProblem

    check_choice("on_divergence", on_divergence, ON_DIVERGENCE)
    kwargs = {k: v for k, v in (("alpha", alpha), ("lr", lr)) if v is not None}
    problem = TrainingProblem(
        embedding_dim,
        data=data,
        activation=activation,
        scaling=MeanFieldScaling(**kwargs, relative_lrs=relative_lrs),
        steps=steps,
        embedding_seed=embedding_seed,
        embeddings=embeddings,
        data_seed=data_seed,
        explosion_factor=explosion_factor,
    )
    method = (Lazy if check_bool("lazy", lazy) else Span)(
        infinite_dim, depth, intervals, embedding_variances
    )
    return problem.limit(method, on_divergence=on_divergence)


def mean_ode_limit(
    embedding_dim: int,
    *,
    data: Any = None,
    activation: Any = None,
    alpha: float | None = None,
    lr: float | None = None,
    steps: int = DEFAULT_STEPS,
    embedding_seed: int = 0,
    method: str = "auto",
    scaling: MeanFieldScaling | None = None,
    embeddings: Any = None,
    data_seed: int = DEFAULT_DATA_SEED,
    intervals: int = 128,
    reference_depth: int = 64,
    reference_width: int = 1024,
    reference_seeds: int = 8,
    reference_seed: int = REFERENCE_SEED,
    device: Any = "cpu",
    dtype: Any = torch.float64,
    explosion_factor: float = DEFAULT_EXPLOSION_FACTOR,
    on_divergence: str = "warn",
) -> LimitResult:
    """The Neural Mean ODE limit (L -> infinity at fixed D, any M; chizat.md §2.1–§2.4) of
    ``train_resnet(L, M, embedding_dim, ...)`` with the same data, activation (default
    ``"tanh"`` for both), ``alpha``, ``lr``, ``steps`` and ``embedding_seed`` (hence the same
    ``W_in``, ``W_out``). Shorthand for ``TrainingProblem(...).limit(method_from_name(method,
    ...))``.

    ``method``: ``"exact"`` (linear sigma only: the deterministic matrix ODE of §2.4(2),
    computed by the span solver, ``Exact()``), ``"reference"`` (an estimate: seed-averaged large
    ResNets of ``reference_depth x reference_width``, §2.4(1), ``Reference()``),
    ``"particles"`` (the same with antithetic units and depth extrapolation, ``Particles()``),
    or ``"auto"``: exact for linear sigma, else reference networks. ``result.method``,
    ``description``, ``strategy`` and ``error_budget`` say which was used and how accurate it
    is.

    Divergence, as in ``train_resnet``: the first step whose loss is non-finite or above
    ``explosion_factor * max(R_0, mean(y^2))`` sets ``result.diverged_at`` (later records NaN)
    and, by ``on_divergence``, warns (``"warn"``, ``TrainingDivergenceWarning``), raises
    (``"raise"``, ``TrainingDivergedError``) or neither (``"ignore"``).
    """
    from .problem import method_from_name, problem_from_arguments

    check_choice("method", method, ("auto", "exact", "reference", "particles"))
    check_choice("on_divergence", on_divergence, ON_DIVERGENCE)
    problem = problem_from_arguments(locals())
    strategy = method_from_name(
        method,
        problem,
        intervals=intervals,
        reference_depth=reference_depth,
        reference_width=reference_width,
        reference_seeds=reference_seeds,
        reference_seed=reference_seed,
        device=device,
        dtype=dtype,
    )
    return problem.limit(strategy, on_divergence=on_divergence)


def limit_error(
    result: TrainingResult,
    limit: LimitResult,
    *,
    quantity: str = "embeddings",
    step: int | Sequence[int] | None = None,
    per_seed: bool = False,
    diverged: str = "propagate",
) -> Tensor:
    """RMS error per coordinate of finite networks against a limit (chizat.md §1.3): RMS over
    (coordinates, samples, seeds) of ``result.<quantity> - limit.<quantity>``, at every step
    (``step=None``, shape (K+1,)) or at the given step(s); ``per_seed`` keeps the seed axis.
    Only the first ``D`` coordinates of the limit are used (coupled embeddings).

    A run and a limit of different problems are refused: when both carry their
    ``TrainingProblem`` (``train_resnet``, ``mean_ode_limit``, ``problem.train``,
    ``problem.limit``, ...), a ``ValueError`` names what differs (e.g. ``activation: tanh vs
    linear:a=1``). Only a ``D -> infinity`` limit (``Span(infinite_dim=True)``) may have more
    coordinates than the run.

    ``diverged``: ``"propagate"`` (default) lets the NaN records of diverged seeds make the
    RMS NaN from their divergence on, so a sweep cannot drop them silently; ``"exclude"``
    averages over the seeds that did not diverge (check ``result.diverged`` yourself).
    """
    if not isinstance(result, TrainingResult):
        raise ValueError(f"result must be a TrainingResult, got {type(result).__name__}")
    if not isinstance(limit, LimitResult):
        raise ValueError(f"limit must be a LimitResult, got {type(limit).__name__}")
    mismatch = problem_mismatch(result, limit)
    if mismatch:
        raise ValueError(
            f"result and limit are of different problems ({'; '.join(mismatch)}): build both "
            "from one TrainingProblem (problem.train(...), problem.limit())"
        )
    check_choice("quantity", quantity, ("embeddings", "outputs"))
    check_choice("diverged", diverged, ("propagate", "exclude"))
    per_seed = check_bool("per_seed", per_seed)
    if step is not None:
        several = not isinstance(step, numbers.Integral) and hasattr(step, "__len__")
        step = [
            check_int("step", s, minimum=0, maximum=result.steps)
            for s in (step if several else [step])
        ]
        step = step if several else step[0]
    finite = getattr(result, quantity)
    reference = getattr(limit, quantity).to(finite.dtype)
    if quantity == "embeddings":
        reference = reference[..., : finite.shape[-1]]
    if reference.shape[0] != finite.shape[1]:
        raise ValueError(
            f"result has {finite.shape[1] - 1} steps but the limit {reference.shape[0] - 1}"
        )
    squared = ((finite - reference) ** 2).flatten(2).mean(2)  # (S, K+1)
    if step is not None:
        squared = squared[:, step]
    if per_seed:
        return squared.sqrt()
    if diverged == "exclude":
        squared = squared[~result.diverged]
    return squared.mean(0).sqrt()


def problem_mismatch(result: TrainingResult, limit: LimitResult) -> list[str]:
    """What differs between the problem of a run and that of a limit (``[]`` when they match or
    one of them does not carry its problem); a ``D -> infinity`` limit may have a larger ``D``."""
    mine, theirs = result.problem, limit.problem
    if mine is None or theirs is None:
        return []
    found = mine.differences(theirs, for_limit=True)
    if limit.details.get("infinite_dim") and mine.embedding_dim <= theirs.embedding_dim:
        found = [item for item in found if not item.startswith("embedding_dim:")]
    return found
