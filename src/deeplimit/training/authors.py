"""The conventions of the authors' 2026 code (chizat.md §1.2, §1.5, §4.3), selectable.

Chaintron–Chizat–Maass (arXiv 2603.18168) publish two code bases: Julia (tanh, the (M, D) grid)
and Python (linear sigma, the three-panel scaling study, coordinate laws). Their model is ours
(chizat.md §1.2); what differs is bookkeeping, mapped here (table in docs/chizat.md):

* learning rate: ``lr = (eta/2) (d_out/d_in)`` for the Julia code (loss ``sum|f-y|^2/(N d_in)``,
  ``eta = 1``), ``lr = (eta_0/2) d_out`` for the Python code (loss ``(1/N) 1/2 sum|f-y|^2``,
  ``eta_u = eta_v = D``, ``eta_0 = 0.1``) — ``authors_lr``;
* maps: Julia ``W_in ~ N(0, 1/d_in)``, ``W_out ~ N(0, d_out)`` (our default); Python
  ``W_e, W_u ~ N(0, 1)`` drawn by ``np.random.seed(W_SEED)``, ``randn(1000, d_in)`` then
  ``randn(1000, d_out)``, a size-D model taking the first D rows — ``authors_embeddings``
  (their numbers exactly) or ``scaled_embeddings`` (our coupled rows, any variances);
* data: Python ``np.random.seed(42)``, ``x = 0.8 g/|g|``, ``y = A x + 0.05 xi`` (``N = 1``,
  ``d_in = d_out = 3``) — ``authors_linear_task`` (their numbers exactly);
* units: Python ``np.random.seed(rep)``, ``U = sqrt(D) randn(D, M, L)`` then ``V`` —
  ``authors_units`` (their numbers exactly); ``ScaledTwoLayerBlock`` draws ``u, v`` with
  entries ``N(0, s_u D)``, ``N(0, s_v D)``;
* steps: the authors' records start after the first forward pass; Julia's 1-based step ``k``
  is our step ``k - 1`` (our index 0 = initialization), the Python ``id_train = 5`` is our 5;
* error metrics: ours is the RMS over coordinates (and samples, runs) at ``h_L``
  (``rms_error``); the authors' is, per run, the max over layers ``l`` of the mean over
  coordinates of ``|h_l - H(l/L)|`` (``layer_error``), then a plain mean over runs with every
  value above ``1e3`` set to 0 (``authors_mean``: their treatment of diverged runs, which biases
  the mean low; non-finite values, which would make their mean NaN, are zeroed too).

Kernels (chizat.md §2.4(3)): in the ``D -> infinity`` linear limit a coordinate ``i`` is
``h_i = W[i] xi`` with ``W[i] ~ N(0, Gamma)`` (``Gamma`` the Gram matrix), so the coordinates are
i.i.d. Gaussian with covariance across (step, sample) ``Gamma_H(s) = xi Gamma xi^T`` and, for
the adjoint ``beta = D dR/dh = W b``, ``Gamma_B(s) = b Gamma b^T`` — ``span_kernels``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..errors import check_choice, check_int, check_positive_float
from .data import TrainingData
from .embeddings import _STREAM_W_IN, _STREAM_W_OUT, coupled_rows
from .limit import LimitResult
from .model import ResNet, TwoLayerBlock

__all__ = [
    "AUTHORS_LINEAR_SEED",
    "AUTHORS_MAX_DIM",
    "AUTHORS_W_SEEDS",
    "AdjointTrajectory",
    "PerNetworkEmbeddings",
    "ScaledTwoLayerBlock",
    "SpanKernels",
    "authors_embedding_rates",
    "authors_embeddings",
    "authors_linear_task",
    "authors_lr",
    "authors_mean",
    "authors_units",
    "interpolate_depth",
    "layer_error",
    "rms_error",
    "scaled_embeddings",
    "span_kernels",
    "train_with_adjoint",
    "with_embeddings",
]

AUTHORS_LINEAR_SEED = 42
AUTHORS_MAX_DIM = 1000
# the Python notebooks' W_SEEDs are ["A", 0, 2, 4, ..., 2048] with the run notebook's default
# W_SEED = 4096; "A" is a file label, not a NumPy seed: we use 4096 for it
AUTHORS_W_SEEDS = (4096, 0, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048)
AUTHORS_DIVERGENCE_THRESHOLD = 1e3
CODES = ("julia", "python")


def authors_lr(eta: float, *, code: str, input_dim: int, output_dim: int) -> float:
    """Our ``lr`` (raw rate ``lr L M D / alpha^2`` on ``R = sum|f-y|^2/(N d_out)``) equal to the
    authors' step size: Julia ``eta`` (``(eta/2) d_out/d_in``; ``eta = 1`` gives 0.5 on the
    square task) or Python ``eta_0`` with ``eta_u = eta_v = D`` (``(eta_0/2) d_out``)."""
    eta = check_positive_float("eta", eta)
    check_choice("code", code, CODES)
    input_dim = check_int("input_dim", input_dim, minimum=1)
    output_dim = check_int("output_dim", output_dim, minimum=1)
    if code == "julia":
        return 0.5 * eta * output_dim / input_dim
    return 0.5 * eta * output_dim


def authors_linear_task(
    seed: int = AUTHORS_LINEAR_SEED,
    *,
    input_dim: int = 3,
    output_dim: int = 3,
    scale: float = 0.8,
    noise: float = 0.05,
) -> TrainingData:
    """The authors' linear task (Python, chizat.md §1.5), their numbers exactly: NumPy's legacy
    generator seeded ``seed``, ``g ~ randn(d_in)``, ``x = scale g/|g|``, ``A ~ randn(d_out,
    d_in)``, ``y = A x + noise randn(d_out)``; ``N = 1``."""
    seed = check_int("data_seed", seed, minimum=0)
    input_dim = check_int("input_dim", input_dim, minimum=1)
    output_dim = check_int("output_dim", output_dim, minimum=1)
    scale = check_positive_float("scale", scale)
    noise = float(noise)
    if not math.isfinite(noise) or noise < 0:
        raise ValueError(f"noise must be a finite number >= 0, got {noise}")
    rng = np.random.RandomState(seed)
    g = rng.randn(input_dim)
    x = scale * g / np.linalg.norm(g)
    a = rng.randn(output_dim, input_dim)
    y = a @ x + noise * rng.randn(output_dim)
    return TrainingData(
        x=torch.from_numpy(x[None, :].copy()),
        y=torch.from_numpy(y[None, :].copy()),
        description=(
            f"authors' linear task (chizat.md §1.5): N=1, d_in={input_dim}, d_out={output_dim},"
            f" x = {scale:g} g/|g|, y = A x + {noise:g} xi, NumPy legacy seed {seed}"
        ),
    )


def authors_embeddings(
    embedding_dim: int,
    *,
    w_seed: int,
    input_dim: int = 3,
    output_dim: int = 3,
    max_dim: int = AUTHORS_MAX_DIM,
) -> tuple[Tensor, Tensor]:
    """``(W_e[:D], W_u[:D])`` of the authors' Python runs, their numbers exactly: NumPy's legacy
    generator seeded ``w_seed``, ``randn(max_dim, d_in)`` then ``randn(max_dim, d_out)``
    (entries ``N(0, 1)``; pass ``embedding_variances=(1, 1)`` to the D -> infinity limit)."""
    max_dim = check_int("max_dim", max_dim, minimum=1)
    embedding_dim = check_int("embedding_dim", embedding_dim, minimum=1, maximum=max_dim)
    w_seed = check_int("w_seed", w_seed, minimum=0, maximum=2**32 - 1)
    rng = np.random.RandomState(w_seed)
    w_e = rng.randn(max_dim, input_dim)
    w_u = rng.randn(max_dim, output_dim)
    return (
        torch.from_numpy(w_e[:embedding_dim].copy()),
        torch.from_numpy(w_u[:embedding_dim].copy()),
    )


def scaled_embeddings(
    embedding_dim: int,
    input_dim: int,
    output_dim: int,
    *,
    embedding_seed: int = 0,
    input_variance: float | None = None,
    output_variance: float | None = None,
) -> tuple[Tensor, Tensor]:
    """Our coupled maps (rows shared across D, ``coupled_embeddings``) with entry variances
    ``input_variance`` (default ``1/d_in``) and ``output_variance`` (default ``d_out``)."""
    embedding_dim = check_int("embedding_dim", embedding_dim, minimum=1)
    input_dim = check_int("input_dim", input_dim, minimum=1)
    output_dim = check_int("output_dim", output_dim, minimum=1)
    embedding_seed = check_int("embedding_seed", embedding_seed, minimum=0)
    var_in = 1.0 / input_dim if input_variance is None else input_variance
    var_out = float(output_dim) if output_variance is None else output_variance
    var_in = check_positive_float("input_variance", var_in)
    var_out = check_positive_float("output_variance", var_out)
    w_in = coupled_rows(embedding_dim, input_dim, seed=embedding_seed, stream=_STREAM_W_IN)
    w_out = coupled_rows(embedding_dim, output_dim, seed=embedding_seed, stream=_STREAM_W_OUT)
    return w_in * math.sqrt(var_in), w_out * math.sqrt(var_out)


def authors_units(depth: int, hidden_width: int, embedding_dim: int, rep: int) -> dict[str, Tensor]:
    """``u, v`` of the authors' Python run ``rep`` (``np.random.seed(rep)``, ``U =
    sqrt(D) randn(D, M, L)``, then ``V``), in our layer-major layout ``(L, 1, M, D)``."""
    depth = check_int("depth", depth, minimum=1)
    hidden_width = check_int("hidden_width", hidden_width, minimum=1)
    embedding_dim = check_int("embedding_dim", embedding_dim, minimum=1)
    rep = check_int("rep", rep, minimum=0, maximum=2**32 - 1)
    rng = np.random.RandomState(rep)
    std = math.sqrt(embedding_dim)
    out = {}
    for name in ("u", "v"):
        drawn = rng.randn(embedding_dim, hidden_width, depth) * std  # (D, M, L)
        out[name] = torch.from_numpy(np.ascontiguousarray(drawn.transpose(2, 1, 0)))[:, None]
    return out


class ScaledTwoLayerBlock(TwoLayerBlock):
    """The 2LP block with ``u, v`` entries ``N(0, u_variance D)``, ``N(0, v_variance D)``
    (``1, 1``: ``TwoLayerBlock``; the authors' ``sigma_u``, ``sigma_v`` are the square roots)."""

    thread_safe_init = True  # its initialize_layer scales the 2LP block's: no shared state

    def __init__(
        self,
        activation: Any = "tanh",
        *,
        u_variance: float = 1.0,
        v_variance: float = 1.0,
        antithetic: bool = False,
    ) -> None:
        super().__init__(activation, antithetic=antithetic)
        self.u_variance = check_positive_float("u_variance", u_variance)
        self.v_variance = check_positive_float("v_variance", v_variance)

    @property
    def spec(self) -> str:
        base = super().spec
        if self.u_variance == 1.0 and self.v_variance == 1.0:
            return base
        return f"{base[:-1]}, var_u={self.u_variance:g}, var_v={self.v_variance:g})"

    def initialize_layer(
        self, generator: torch.Generator, hidden_width: int, embedding_dim: int
    ) -> dict[str, Tensor]:
        drawn = super().initialize_layer(generator, hidden_width, embedding_dim)
        return {
            "u": drawn["u"] * math.sqrt(self.u_variance),
            "v": drawn["v"] * math.sqrt(self.v_variance),
        }


# --------------------------------------------------------------------------------------------
# error metrics


def rms_error(finite: Tensor, limit: Tensor) -> Tensor:
    """Our metric per run: RMS over every axis after the first of ``finite - limit`` (``limit``
    broadcast; e.g. ``h_L`` (S, N, D) against (N, D)). Shape (S,)."""
    diff = (finite - limit).flatten(1)
    return (diff * diff).mean(1).sqrt()


def layer_error(states: Tensor, limit_states: Tensor, *, reduce: str = "max") -> Tensor:
    """The authors' metric per run: ``states`` (S, L+1, N, D) against ``limit_states``
    (L+1, N, D): mean over samples and coordinates of ``|h_l - H_l|``, then the max (``reduce
    = "max"``, their figures) or the mean (``"mean"``) over the L+1 layers. Shape (S,)."""
    check_choice("reduce", reduce, ("max", "mean"))
    per_layer = (states - limit_states).abs().flatten(2).mean(2)  # (S, L+1)
    return per_layer.amax(1) if reduce == "max" else per_layer.mean(1)


def authors_mean(
    values: Any, *, threshold: float = AUTHORS_DIVERGENCE_THRESHOLD, axis: int = 0
) -> np.ndarray:
    """The authors' average over runs: values above ``threshold`` (diverged runs) set to 0, then
    a plain mean (non-finite values are zeroed too)."""
    values = np.asarray(values, dtype=float)
    cleaned = np.where(np.isfinite(values) & (values <= threshold), values, 0.0)
    return cleaned.mean(axis=axis)


def interpolate_depth(values: Tensor, depth: int) -> Tensor:
    """Linear interpolation of ``values`` (n+1, ...) on the uniform grid ``s_m = m/n`` to the
    ``L+1`` layer positions ``l/L`` (the authors resample their 100-point limit the same way)."""
    depth = check_int("depth", depth, minimum=1)
    n = values.shape[0] - 1
    if n < 1:
        raise ValueError("values must hold at least 2 grid points")
    position = torch.arange(depth + 1, dtype=torch.float64) * (n / depth)
    low = position.floor().long().clamp(max=n - 1)
    weight = (position - low).to(values.dtype).reshape(-1, *([1] * (values.dim() - 1)))
    return values[low] * (1 - weight) + values[low + 1] * weight


# --------------------------------------------------------------------------------------------
# kernels and per-coordinate values of the D -> infinity linear limit


@dataclass(frozen=True)
class SpanKernels:
    """Kernels of the ``D -> infinity`` linear limit on its depth grid ``s`` (n+1,):
    ``gamma_h[m, k, n, k', n'] = lim <h_k(s_m, x_n), h_k'(s_m, x_n')>/D`` (n+1, K+1, N, K+1, N)
    and ``gamma_b`` the same for ``beta = D dR/dh`` (steps 0..K-1; NaN at K). ``xi``, ``b``: the
    span coefficients (K+1, n+1, N, r); ``gram`` (r, r)."""

    s: Tensor
    gamma_h: Tensor
    gamma_b: Tensor
    xi: Tensor
    b: Tensor
    gram: Tensor

    def variance_h(self, step: int, sample: int = 0) -> Tensor:
        """``Gamma_H(s)[k, k]`` for one sample at every depth node (n+1,)."""
        return self.gamma_h[:, step, sample, step, sample]

    def variance_b(self, step: int, sample: int = 0) -> Tensor:
        return self.gamma_b[:, step, sample, step, sample]

    def coordinates(self, basis: Tensor) -> tuple[Tensor, Tensor]:
        """Per-coordinate limit paths for maps ``basis = [W_in, W_out]`` (D, r): ``h`` and
        ``beta`` of shapes (K+1, n+1, N, D) (``h_i = W[i] xi``, ``beta_i = W[i] b``)."""
        basis = basis.to(self.xi.dtype)
        return self.xi @ basis.T, self.b @ basis.T


def span_kernels(limit: LimitResult) -> SpanKernels:
    """``SpanKernels`` of a ``span_linear_limit(..., infinite_dim=True)`` result."""
    if not isinstance(limit, LimitResult) or limit.method != "span":
        raise ValueError("limit must be a LimitResult of span_linear_limit")
    if not limit.details.get("infinite_dim", False):
        raise ValueError(
            "the kernels are those of the D -> infinity limit: compute it with "
            "span_linear_limit(..., infinite_dim=True)"
        )
    xi = limit.details["coefficients"]
    b = limit.details["adjoint"]
    gram = limit.details["gram"]
    gamma_h = torch.einsum("kmnr,rq,jmpq->mknjp", xi, gram, xi)
    gamma_b = torch.einsum("kmnr,rq,jmpq->mknjp", b, gram, b)
    return SpanKernels(s=limit.depth_grid, gamma_h=gamma_h, gamma_b=gamma_b, xi=xi, b=b, gram=gram)


# --------------------------------------------------------------------------------------------
# one batch, one embedding per network


class PerNetworkEmbeddings(ResNet):
    """A ``ResNet`` whose ``S`` networks each have their own maps: ``w_in`` (S, D, d_in),
    ``w_out`` (S, D, d_out). Lets a study batch its embedding draws (the authors' W seeds) into
    one launch; ``train`` and ``train_with_adjoint`` accept it unchanged. Build it with
    ``with_embeddings``."""

    @property
    def input_dim(self) -> int:
        return int(self.w_in.shape[-1])

    @property
    def output_dim(self) -> int:
        return int(self.w_out.shape[-1])

    def embed(self, x: Tensor) -> Tensor:
        """``h_0 = W_in x`` per network: shape (S, N, D)."""
        return torch.matmul(x, self.w_in.transpose(1, 2))


def with_embeddings(model: ResNet, w_in: Tensor, w_out: Tensor) -> PerNetworkEmbeddings:
    """``model`` (its parameters, scales and rates, shared not copied) with per-network maps
    ``w_in`` (S, D, d_in), ``w_out`` (S, D, d_out), cast to the model's dtype and device."""
    if not isinstance(model, ResNet):
        raise ValueError(f"model must be a ResNet, got {type(model).__name__}")
    s, d = model.networks, model.embedding_dim
    w_in = torch.as_tensor(w_in).to(device=model.device, dtype=model.dtype)
    w_out = torch.as_tensor(w_out).to(device=model.device, dtype=model.dtype)
    if w_in.dim() != 3 or tuple(w_in.shape[:2]) != (s, d):
        raise ValueError(
            f"w_in must have shape (S, D, d_in) = ({s}, {d}, d_in), got {tuple(w_in.shape)}"
        )
    if w_out.dim() != 3 or tuple(w_out.shape[:2]) != (s, d):
        raise ValueError(
            f"w_out must have shape (S, D, d_out) = ({s}, {d}, d_out), got {tuple(w_out.shape)}"
        )
    batched = object.__new__(PerNetworkEmbeddings)
    batched.__dict__.update(model.__dict__)
    batched.w_in = w_in.contiguous()
    batched.w_out = w_out.contiguous()
    return batched


# --------------------------------------------------------------------------------------------
# training with the adjoint recorded


@dataclass(frozen=True)
class AdjointTrajectory:
    """Per-layer records of ``S`` networks at GD steps ``k = 0..K``: ``states`` (S, K+1, L+1,
    N, D) ``h_l`` and ``adjoint`` (S, K, L+1, N, D) ``beta_l = D dR/dh_l`` (the backward
    variable of the authors' code times D, chizat.md §2.4(3)), ``outputs`` (S, K+1, N, d_out)."""

    states: Tensor
    adjoint: Tensor
    outputs: Tensor


def authors_embedding_rates(
    eta: float, *, output_dim: int, eta_we: float = 1.0, eta_wu: float = 1.0, alpha: float = 1.0
) -> tuple[float, float]:
    """``embedding_rates`` of ``train_with_adjoint`` equal to the authors' trainable-embedding
    model (Python ``FiniteResNetWithTrainableEmbedding``: ``W_e -= eta_we (eta/alpha) (1/N) B_0
    X^T``, ``W_u -= eta_wu (eta/alpha) (1/N) H_L nabla_f^T``, loss ``(1/N) 1/2 sum|f-y|^2``):
    ``(eta_we eta d_out/(2 alpha), eta_wu eta d_out/(2 alpha))``."""
    eta = check_positive_float("eta", eta)
    alpha = check_positive_float("alpha", alpha)
    output_dim = check_int("output_dim", output_dim, minimum=1)
    factor = eta * output_dim / (2.0 * alpha)
    eta_we = float(eta_we)
    eta_wu = float(eta_wu)
    for name, value in (("eta_we", eta_we), ("eta_wu", eta_wu)):
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"{name} must be a finite number >= 0, got {value}")
    return eta_we * factor, eta_wu * factor


def train_with_adjoint(
    model: ResNet,
    data: TrainingData,
    steps: int,
    *,
    record_steps: Sequence[int] | None = None,
    embedding_rates: tuple[float, float] | None = None,
) -> AdjointTrajectory:
    """Train ``model`` in place for ``steps`` full-batch GD steps (the same updates as
    ``train``: one forward pass keeping the states, one adjoint sweep updating each layer in
    place) and record every layer's state and adjoint at ``record_steps`` (default all; others
    are NaN). No divergence handling: for the well-behaved runs of the coordinate study.

    ``embedding_rates=(r_in, r_out)``: the trainable-embedding variant of the authors' model
    (one network: the maps are shared by the batch): after each sweep ``W_in -= r_in dR/dW_in``
    and ``W_out -= r_out D dR/dW_out`` (``dR/dW_in = sum_n g_0 x_n^T``, ``dR/dW_out = h_L
    (dR/df)^T / D``, both at the step's parameters); ``authors_embedding_rates`` gives their
    values. ``None`` (default): fixed maps."""
    steps = check_int("steps", steps, minimum=0)
    if embedding_rates is not None:
        if model.networks != 1 or isinstance(model, PerNetworkEmbeddings):
            raise ValueError(
                "embedding_rates needs a model of one network (the maps W_in, W_out are "
                f"shared by the batch), got {model.networks}"
            )
        if not isinstance(embedding_rates, (tuple, list)) or len(embedding_rates) != 2:
            raise ValueError(
                f"embedding_rates must be a pair (r_in, r_out), got {embedding_rates!r}"
            )
        rate_in, rate_out = (float(r) for r in embedding_rates)
        if not all(math.isfinite(r) and r >= 0 for r in (rate_in, rate_out)):
            raise ValueError(f"embedding_rates must be finite numbers >= 0, got {embedding_rates}")
    wanted = set(range(steps + 1)) if record_steps is None else {int(k) for k in record_steps}
    if any(k < 0 or k > steps for k in wanted):
        raise ValueError(f"record_steps must lie in 0..steps={steps}, got {sorted(wanted)}")
    device, dtype = model.device, model.dtype
    x = data.x.to(device=device, dtype=dtype)
    y = data.y.to(device=device, dtype=dtype)
    s, n, d, depth = model.networks, data.samples, model.embedding_dim, model.depth
    states = torch.full((s, steps + 1, depth + 1, n, d), math.nan, dtype=dtype)
    adjoint = torch.full((s, max(steps, 1), depth + 1, n, d), math.nan, dtype=dtype)
    outputs = torch.empty((s, steps + 1, n, data.output_dim), dtype=dtype)
    for k in range(steps + 1):
        forward = model.forward(x, keep=True)
        f = model.readout(forward.last)
        outputs[:, k] = f.cpu()
        if k in wanted:
            states[:, k] = torch.stack([*forward.states, forward.last], dim=1).cpu()
        if k == steps:
            break
        g = model.last_gradient(f, y)
        if embedding_rates is not None:
            # dR/dW_out = h_L (dR/df)^T / D with dR/df = 2 (f - y)/(N d_out), before any update
            residual = (2.0 / (n * data.output_dim)) * (f[0] - y)
            grad_out = forward.last[0].T @ residual / d
        record = partial(_record_adjoint, adjoint[:, k], d) if k in wanted else None
        g = model.descend(forward, g, record)
        if embedding_rates is not None:
            # new tensors, not in place: the maps may be the caller's arrays
            model.w_in = model.w_in - rate_in * (g[0].T @ x)  # dR/dW_in = sum_n g_0 x_n^T
            model.w_out = model.w_out - (rate_out * d) * grad_out
    return AdjointTrajectory(states=states, adjoint=adjoint[:, :steps], outputs=outputs)


def _record_adjoint(out: Tensor, d: int, layer: int, g: Tensor) -> None:
    """``b_l = D g_l`` into ``out`` (S, L+1, N, D) (on the CPU)."""
    out[:, layer] = (g * d).cpu()
