"""Chizat C10, C11: the joint limit L, M, D -> infinity and the budget P = LMD.

Chaintron–Chizat–Maass (2026, chizat.md §3, §4.2–§4.3): in embedding space the error of a
trained ResNet against the joint (D -> infinity) limit is ``sqrt(D/(LM)) + 1/sqrt(D)`` (plus
``1/L``), so along the best shape for a budget ``P = LMD`` it decays like ``P^(-1/6)`` (C10);
the output error behaves like ``D/(LM) + 1/sqrt(D)``, i.e. ``P^(-1/5)`` (C11).

Fast and exact for linear sigma (as in the authors' Python experiments, §4.3): the limit is
computed in the span of ``W_in, W_out`` (``span_linear_limit``), which gives the fixed-D limit
and its ``D -> infinity`` limit exactly at a cost independent of D; we compare against the
depth-L version (``M -> infinity`` then ``D -> infinity`` at the same L), so the ``1/L`` term
cancels and the grid measures the two other terms. Networks of every ``(M, D)`` of the grid are
trained at fixed ``L`` over several embedding draws (the ``1/sqrt(D)`` term is a property of the
draw of ``W_in, W_out``). We then fit, on the authors' window ``D > 10``,

    error^2 = A (D/(LM))^(2 gamma) + B D^(-2 delta)          (free exponents)

whose minimum over shapes at fixed ``P`` decays like ``P^(-e)`` with
``e = 2 gamma delta / (4 gamma + 2 delta)`` (``1/6`` for ``gamma = delta = 1/2``; ``1/5`` for the
output law ``gamma = 1``, ``delta = 1/2``). ``e`` is reported with a 95% CI (delta method) and
checked within ±0.03 (§6: "exponent ±0.03 on fitted law; don't assert constants").
"""

from __future__ import annotations

import functools
import math
from typing import Any, ClassVar

import numpy as np
import scipy.stats as sps
import xarray as xr
from matplotlib.figure import Figure
from scipy.optimize import least_squares

from ..checkpoints import current
from ..training import span_linear_limit
from . import chizat_common as common
from .base import Claim, Progress
from .chizat_common import (
    COLORS,
    ChizatExperiment,
    ChizatSpec,
    Divergence,
    Tracker,
    error_pair,
    train_networks,
)
from .claims import bound
from .spec_fields import DType, IncreasingInts, Positive, PositiveInt

__all__ = ["ChizatJoint", "ChizatJointSpec", "fit_joint_law"]

EXPECTED = {"embedding": 1 / 6, "output": 1 / 5}
EXPECTED_TEX = {"embedding": "1/6", "output": "1/5"}


class ChizatJointSpec(ChizatSpec):
    depth: PositiveInt = 16
    widths: IncreasingInts = (16, 64, 256, 1024)
    dims: IncreasingInts = (16, 32, 64, 128, 256, 512)
    embedding_seeds: PositiveInt = 4
    max_ratio: Positive = 0.5
    max_units: PositiveInt = 300_000
    steps: PositiveInt = 5
    lr: Positive = 0.5
    min_dim: PositiveInt = 11
    tolerance: Positive = 0.03
    dtype: DType = "float64"


def grid_points(spec: ChizatJointSpec) -> list[tuple[int, int]]:
    """``(M, D)`` pairs with ``D/(LM) <= max_ratio`` (beyond, the network is far from any
    limit) and ``M D <= max_units`` (cost)."""
    return [
        (width, dim)
        for width in spec.widths
        for dim in spec.dims
        if dim / (spec.depth * width) <= spec.max_ratio and width * dim <= spec.max_units
    ]


def fit_joint_law(hidden: np.ndarray, dim: np.ndarray, error: np.ndarray) -> dict[str, float]:
    """Least squares on ``log error`` of ``error^2 = A (D/H)^(2 gamma) + B D^(-2 delta)``
    (``H = LM``); returns the parameters, their standard errors, the budget exponent
    ``e = 2 gamma delta / (4 gamma + 2 delta)`` with its 95% CI (delta method, Student t)."""
    ratio = dim / hidden

    def residuals(p: np.ndarray) -> np.ndarray:
        model = np.exp(p[0]) * ratio ** (2 * p[1]) + np.exp(p[2]) * dim ** (-2 * p[3])
        return 0.5 * np.log(model) - np.log(error)

    start = np.array([0.0, 0.5, 1.0, 0.5])
    solution = least_squares(residuals, start)
    dof = error.size - start.size
    jacobian = solution.jac
    sigma2 = float(solution.fun @ solution.fun) / max(dof, 1)
    try:
        covariance = np.linalg.inv(jacobian.T @ jacobian) * sigma2
    except np.linalg.LinAlgError:
        covariance = np.full((4, 4), np.nan)
    gamma, delta = float(solution.x[1]), float(solution.x[3])
    denominator = 4 * gamma + 2 * delta
    exponent = 2 * gamma * delta / denominator
    gradient = np.array(
        [
            (2 * delta * denominator - 8 * gamma * delta) / denominator**2,
            (2 * gamma * denominator - 4 * gamma * delta) / denominator**2,
        ]
    )
    sub = covariance[np.ix_([1, 3], [1, 3])]
    stderr = (
        float(math.sqrt(max(gradient @ sub @ gradient, 0.0)))
        if np.all(np.isfinite(sub))
        else math.nan
    )
    half = float(sps.t.isf(0.025, max(dof, 1))) * stderr
    return {
        "A": float(math.exp(solution.x[0])),
        "gamma": gamma,
        "gamma_se": float(math.sqrt(covariance[1, 1]))
        if np.isfinite(covariance[1, 1])
        else math.nan,
        "B": float(math.exp(solution.x[2])),
        "delta": delta,
        "delta_se": float(math.sqrt(covariance[3, 3]))
        if np.isfinite(covariance[3, 3])
        else math.nan,
        "exponent": exponent,
        "exponent_se": stderr,
        "ci_low": exponent - half,
        "ci_high": exponent + half,
        "rms_log_residual": math.sqrt(sigma2),
        "points": int(error.size),
    }


class ChizatJoint(ChizatExperiment):
    name = "chizat-joint"
    title = (
        "Joint limit L, M, D -> infinity: error against D/(LM) and 1/D, budget P = LMD (C10, C11)"
    )
    Spec = ChizatJointSpec
    order = 8
    table: ClassVar[dict[str, str]] = common.GRID_TABLE

    def full_settings(self) -> dict[str, Any]:
        return {
            "depth": 32,
            "widths": (16, 32, 64, 128, 256, 512, 1024, 2048),
            "dims": (16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512),
            "embedding_seeds": 8,
            "max_units": 2_000_000,
        }

    def smoke_settings(self) -> dict[str, Any]:
        return {
            "depth": 4,
            "widths": (4, 8, 16),
            "dims": (12, 16, 24, 32),
            "embedding_seeds": 1,
            "max_ratio": 1.0,
            "steps": 2,
        }

    def caption(self, spec: ChizatJointSpec) -> str:
        return (
            f"Linear 2LP ResNets (sigma = identity, chizat.md §1.2, alpha = 1, raw LR "
            f"{spec.lr:g}·LMD), L={spec.depth}, M in {list(spec.widths)}, D in {list(spec.dims)}"
            f" with D/(LM) <= {spec.max_ratio:g} and MD <= {spec.max_units}, synthetic task of "
            f"§1.5, K={spec.steps} GD steps, {spec.embedding_seeds} draws of the coupled "
            f"W_in, W_out (one network each), {spec.dtype}, seed {spec.seed}. Limit: the exact "
            "D -> infinity limit at the same depth L (span_linear_limit: M -> infinity then "
            "D -> infinity; the 1/L term cancels), on the first D coordinates. Errors = RMS at "
            "step K over coordinates, samples and draws. Fits on D > "
            f"{spec.min_dim - 1} (the authors' window): error^2 = A (D/(LM))^(2 gamma) + "
            "B D^(-2 delta), free exponents; budget exponent e = 2 gamma delta/(4 gamma + "
            "2 delta) (expected 1/6 embedding, C10; 1/5 output, C11). Right: the errors "
            "against P = LMD with the fitted law's optimal frontier."
        )

    def compute(self, spec: ChizatJointSpec, progress: Progress | None = None) -> xr.Dataset:
        points = grid_points(spec)
        if len(points) < 5:
            raise ValueError(
                f"the grid keeps only {len(points)} (M, D) points (D/(LM) <= {spec.max_ratio}, "
                f"MD <= {spec.max_units}); widen widths/dims"
            )
        tracker = Tracker(sum(m * d for m, d in points) * spec.embedding_seeds, progress)
        divergence = Divergence()
        embedding = np.full(len(points), np.nan)
        output = np.full(len(points), np.nan)
        per_draw = np.full((2, len(points), spec.embedding_seeds), np.nan)
        diverged = np.zeros(len(points), dtype=int)
        limits: dict[tuple[int, int], Any] = {}
        checkpoint = current()  # units: one (M, D) point each (deeplimit.checkpoints)
        for index, (width, dim) in enumerate(points):
            unit = checkpoint.unit(
                f"M{width}-D{dim}",
                functools.partial(self._point, spec, index, width, dim, limits),
            )
            for draw in range(spec.embedding_seeds):
                divergence.add_steps(f"M={width} D={dim}", unit["diverged_at"][draw : draw + 1])
            diverged[index] = int((unit["diverged_at"] >= 0).sum())
            per_draw[:, index] = unit["pairs"]
            finite = ~np.isnan(unit["pairs"]).any(axis=0)
            if finite.any():
                squares = np.ascontiguousarray(unit["pairs"][:, finite].T)  # (draws, 2)
                embedding[index], output[index] = np.sqrt(np.mean(np.square(squares), axis=0))
            tracker.advance(width * dim * spec.embedding_seeds)
        return xr.Dataset(
            {
                "embedding_error": (("point",), embedding),
                "output_error": (("point",), output),
                "diverged": (("point",), diverged),
                "embedding_error_draws": (("point", "draw"), per_draw[0]),
                "output_error_draws": (("point", "draw"), per_draw[1]),
            },
            coords={
                "point": np.arange(len(points)),
                "draw": np.arange(spec.embedding_seeds),
                "width": (("point",), [p[0] for p in points]),
                "dim": (("point",), [p[1] for p in points]),
            },
            attrs={"divergence_note": divergence.note()},
        )

    @staticmethod
    def _point(
        spec: ChizatJointSpec,
        index: int,
        width: int,
        dim: int,
        limits: dict[tuple[int, int], Any],
    ) -> dict[str, np.ndarray]:
        """The unit of one (M, D) point: per embedding draw, the (embedding, output) errors
        against the limit (NaN unless both are finite) and the step at which its network
        diverged (-1: never). ``limits`` caches the limit of each (D, draw)."""
        pairs = np.full((2, spec.embedding_seeds), np.nan)
        diverged_at = np.full(spec.embedding_seeds, -1, dtype=np.int64)
        for draw in range(spec.embedding_seeds):
            key = (dim, draw)
            if key not in limits:
                limits[key] = span_linear_limit(
                    dim,
                    steps=spec.steps,
                    lr=spec.lr,
                    depth=spec.depth,
                    infinite_dim=True,
                    embedding_seed=draw,
                )
            result = train_networks(
                spec.depth,
                width,
                dim,
                steps=spec.steps,
                seeds=[index * 100 + draw],
                activation="identity",
                lr=spec.lr,
                seed=spec.seed,
                embedding_seed=draw,
                device=spec.device,
                dtype=spec.dtype,
            )
            diverged_at[draw] = int(result.diverged_at[0])
            pair = error_pair(result, limits[key], spec.steps)
            if all(math.isfinite(v) for v in pair):
                pairs[:, draw] = pair
        return {"pairs": pairs, "diverged_at": diverged_at}

    def fits(
        self, dataset: xr.Dataset, spec: ChizatJointSpec | None = None
    ) -> dict[str, dict[str, float] | None]:
        spec = spec or self.spec_from_dataset(dataset)
        dims = dataset.dim.values.astype(float)
        hidden = spec.depth * dataset.width.values.astype(float)
        out: dict[str, dict[str, float] | None] = {}
        for quantity in ("embedding", "output"):
            error = dataset[f"{quantity}_error"].values
            keep = (dims >= spec.min_dim) & np.isfinite(error) & (error > 0)
            out[quantity] = (
                fit_joint_law(hidden[keep], dims[keep], error[keep]) if keep.sum() >= 6 else None
            )
        return out

    def summarize(self, dataset: xr.Dataset, spec: ChizatJointSpec) -> list[dict[str, Any]]:
        return [
            {
                "width": int(dataset.width.values[i]),
                "dim": int(dataset.dim.values[i]),
                "budget": int(spec.depth * dataset.width.values[i] * dataset.dim.values[i]),
                "embedding_error": float(dataset.embedding_error.values[i]),
                "output_error": float(dataset.output_error.values[i]),
                "diverged": int(dataset.diverged.values[i]),
            }
            for i in range(dataset.sizes["point"])
        ]

    def check(self, dataset: xr.Dataset, spec: ChizatJointSpec) -> list[Claim]:
        note = dataset.attrs.get("divergence_note", "")
        claims = []
        for claim_id, quantity, law in (
            ("C10", "embedding", "sqrt(D/(LM)) + 1/sqrt(D): P^(-1/6)"),
            ("C11", "output", "D/(LM) + 1/sqrt(D): P^(-1/5)"),
        ):
            fit = self.fits(dataset, spec)[quantity]
            expected = EXPECTED[quantity]
            if fit is None:
                claims.append(
                    Claim.bound(
                        claim_id,
                        f"{quantity} error in the joint limit: {law} (fewer than 6 "
                        "finite grid points: no fit)" + note,
                        bound(math.nan, equals=expected, tolerance=spec.tolerance, fmt=".4f"),
                        statistic="budget exponent e of the fitted law",
                    )
                )
                continue
            claims.append(
                Claim.bound(
                    claim_id,
                    f"Linear sigma, L={spec.depth}, K={spec.steps}: {quantity} error vs the "
                    f"D -> infinity limit follows {law}; fitted error^2 = "
                    f"{fit['A']:.3g} (D/(LM))^(2x{fit['gamma']:.3f}±{fit['gamma_se']:.3f}) + "
                    f"{fit['B']:.3g} D^(-2x{fit['delta']:.3f}±{fit['delta_se']:.3f}) on "
                    f"{fit['points']} points (RMS log residual {fit['rms_log_residual']:.3f})"
                    + note,
                    bound(
                        fit["exponent"],
                        equals=expected,
                        tolerance=spec.tolerance,
                        n=fit["points"],
                        fmt=".4f",
                    ),
                    statistic="budget exponent e = 2 gamma delta / (4 gamma + 2 delta) of the "
                    "fitted law (error ∝ P^-e along the optimal shape)",
                    note=f"95% CI [{fit['ci_low']:.3f}, {fit['ci_high']:.3f}]",
                    details=fit,
                )
            )
        return claims

    def draw(self, dataset: xr.Dataset, spec: ChizatJointSpec) -> Figure:
        fits = self.fits(dataset, spec)
        dims = dataset.dim.values.astype(float)
        widths = dataset.width.values.astype(float)
        budget = spec.depth * widths * dims
        with common.chizat_figure(3, columns=3) as (figure, axes):
            for ax, quantity in ((axes[0], "embedding"), (axes[1], "output")):
                error, relative = self._draws(dataset, quantity)
                fit = fits[quantity]
                for color, width in zip(COLORS, spec.widths, strict=False):
                    pick = widths == width
                    if not pick.any():
                        continue
                    common.log_error_bars(
                        ax,
                        dims[pick],
                        error[pick],
                        relative[pick],
                        color=color,
                        label=f"$M={width}$",
                    )
                    if fit is not None:
                        grid = np.geomspace(dims[pick].min(), dims[pick].max(), 40)
                        ax.plot(
                            grid, _law(fit, spec.depth * width, grid), color=color, lw=0.9, ls="--"
                        )
                title = common.QUANTITY_TEX[quantity]
                if fit is not None:
                    title += rf": $e = {fit['exponent']:.3f}$ (${EXPECTED_TEX[quantity]}$)"
                common.log_axes(ax, r"embedding dimension $D$", "RMS error at step $K$", title)
            ax = axes[2]
            for color, quantity in ((COLORS[0], "embedding"), (COLORS[1], "output")):
                error, relative = self._draws(dataset, quantity)
                common.log_error_bars(
                    ax, budget, error, relative, color=color, alpha=0.8, label=quantity
                )
                fit = fits[quantity]
                if fit is None:
                    continue
                grid = np.geomspace(budget.min(), budget.max(), 40)
                # optimal frontier of the fitted law: minimize over D at fixed P (H = P / D)
                candidate = np.geomspace(dims.min(), dims.max(), 400)  # no extrapolation in D
                frontier = [_law(fit, p / candidate, candidate).min() for p in grid]
                label = rf"frontier $P^{{-{fit['exponent']:.3f}}}$"
                ax.plot(grid, frontier, color=color, lw=1.0, ls="--", label=label)
            common.log_axes(
                ax, r"budget $P = LMD$", "RMS error at step $K$", "best shape at fixed $P$"
            )
        return figure

    @staticmethod
    def _draws(dataset: xr.Dataset, quantity: str) -> tuple[np.ndarray, np.ndarray]:
        """The errors of ``quantity`` per grid point and the relative half-width of their 95%
        interval over the draws (NaN with one draw, or a dataset without the draws)."""
        error = dataset[f"{quantity}_error"].values
        name = f"{quantity}_error_draws"
        if name not in dataset:
            return error, np.full(error.shape, np.nan)
        return error, common.rms_over(dataset[name].values)[1]


def _law(fit: dict[str, float], hidden: Any, dim: Any) -> np.ndarray:
    """The fitted joint law ``sqrt(A (D/H)^(2 gamma) + B D^(-2 delta))``."""
    ratio = np.asarray(dim, dtype=float) / hidden
    return np.sqrt(
        fit["A"] * ratio ** (2 * fit["gamma"])
        + fit["B"] * np.asarray(dim, dtype=float) ** (-2 * fit["delta"])
    )
