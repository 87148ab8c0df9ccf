"""Chizat C5 and the hidden width: the error against the depth L for several widths M.

Linear sigma, so that the exact limits are available (chizat.md §2.4(2)): the fixed-D Mean ODE
(``L -> infinity``) and, for every ``L``, the exact ``M -> infinity`` limit of the depth-``L``
network (its Euler scheme). The error of a finite network splits into

    error^2 ~ (a / L)^2 + b^2 D / (L M)            (chizat.md §3 Thm 1/3, "in quadrature")

* the deterministic Euler term ``a/L``: the *seed mean* of the networks minus the Mean ODE,
  with the seed noise removed in quadrature, has slope -1 in L at large M and does not depend
  on M (C5); it is compared with its exact value (depth-L limit minus Mean ODE);
* the CLT term ``b sqrt(D/(LM))``: the total error has slope -1/2 in L at small M, and all
  points collapse on one curve against the hidden width ``LM`` once L is large, with one
  two-term law (``a``, ``b`` fitted once) through every point.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np
import scipy.stats as sps
import xarray as xr
from matplotlib.figure import Figure
from scipy.optimize import nnls

from ..training import exact_linear_limit
from .base import Claim, Progress
from .chizat_common import (
    COLORS,
    ChizatExperiment,
    ChizatSpec,
    Divergence,
    Tracker,
    fit_or_none,
    plot_series,
    slope_text,
    train_networks,
)
from .claims import bound
from .plotting import add_caption, panel_grid
from .spec_fields import AtLeast, DType, IncreasingInts, Positive, PositiveInt

__all__ = ["ChizatDepth", "ChizatDepthSpec", "collapse_fit"]


MIN_BIAS_WIDTH = 256  # chizat.md §6 C5 measures the Euler term at large M


class ChizatDepthSpec(ChizatSpec):
    dim: PositiveInt = 16
    depths: IncreasingInts = (1, 2, 4, 8, 16, 32)
    widths: IncreasingInts = (4, 16, 64, 256, 1024)
    seeds: AtLeast(3) = 16  # type: ignore[valid-type]  # seed noise is estimated
    steps: PositiveInt = 10
    lr: Positive = 0.5
    collapse_min_depth: PositiveInt = 8
    collapse_tolerance: Positive = 0.25
    dtype: DType = "float64"


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(x * x)))


def collapse_fit(depth: np.ndarray, width: np.ndarray, dim: int, error: np.ndarray) -> tuple:
    """Least squares of ``error^2 = a^2 / L^2 + b^2 D / (L M)`` on the relative scale (each
    point weighted by ``1/error^2``), ``a, b >= 0``. Returns ``(a, b, prediction)``."""
    design = np.stack([1.0 / depth**2, dim / (depth * width)], axis=1) / error[:, None] ** 2
    target = np.ones_like(error)
    coefficients, _ = nnls(design, target)
    a2, b2 = coefficients
    prediction = np.sqrt(a2 / depth**2 + b2 * dim / (depth * width))
    return math.sqrt(a2), math.sqrt(b2), prediction


class ChizatDepth(ChizatExperiment):
    name = "chizat-depth"
    title = "Error against depth L and hidden width LM: Euler term 1/L, CLT term (C5)"
    Spec = ChizatDepthSpec
    suite = "chizat"
    order = 3
    table: ClassVar[dict[str, str]] = {
        "width": "M",
        "slope_text": "slope of error vs L (95% CI)",
        "bias_slope_text": "slope of bias vs L (95% CI)",
        "error_first": "error (smallest L)",
        "error_last": "error (largest L)",
        "diverged": "diverged",
    }

    def full_settings(self) -> dict[str, Any]:
        return {
            "depths": (1, 2, 4, 8, 16, 32, 64),
            "widths": (4, 16, 64, 256, 1024, 4096),
            "seeds": 24,
        }

    def smoke_settings(self) -> dict[str, Any]:
        return {
            "dim": 8,
            "depths": (1, 2, 4),
            "widths": (4, 8, 16),
            "seeds": 3,
            "steps": 2,
            "collapse_min_depth": 2,
        }

    def caption(self, spec: ChizatDepthSpec) -> str:
        return (
            f"Linear 2LP ResNets (sigma = identity; chizat.md §1.2, alpha = 1, raw LR "
            f"{spec.lr:g}·LMD), D={spec.dim}, synthetic task of §1.5, K={spec.steps} GD steps, "
            f"{spec.seeds} networks per (L, M), L in {list(spec.depths)}, M in "
            f"{list(spec.widths)}, {spec.dtype}, seed {spec.seed}; limits exact (§2.4(2)). "
            "Left: RMS embedding error against the fixed-D Mean ODE vs L (slope -1/2 at small "
            "M, where the CLT term b sqrt(D/(LM)) dominates). Middle: Euler term = RMS of the "
            "seed mean minus the Mean ODE, seed noise removed in quadrature, for the three "
            "largest M, against its exact value (depth-L infinite-width limit minus Mean ODE, "
            "black): slope -1, independent of M (C5). Right: the same errors against the "
            f"hidden width LM for L >= {spec.collapse_min_depth}, with one law "
            "sqrt(a^2/L^2 + b^2 D/(LM)) (a, b fitted once on every point; dashed)."
        )

    def compute(self, spec: ChizatDepthSpec, progress: Progress | None = None) -> xr.Dataset:
        tracker = Tracker(sum(spec.depths) * sum(spec.widths) * spec.seeds, progress)
        divergence = Divergence()
        ode = exact_linear_limit(spec.dim, steps=spec.steps, lr=spec.lr, on_divergence="ignore")
        divergence.add_limit("Mean ODE", ode)
        target = ode.embeddings[-1].numpy()
        shape = (len(spec.depths), len(spec.widths))
        error = np.full(shape, np.nan)
        bias = np.full(shape, np.nan)
        noise = np.full(shape, np.nan)
        diverged = np.zeros(shape, dtype=int)
        euler = np.empty(len(spec.depths))
        for i, depth in enumerate(spec.depths):
            layered = exact_linear_limit(
                spec.dim, steps=spec.steps, lr=spec.lr, depth=depth, on_divergence="ignore"
            )
            divergence.add_limit(f"depth-{depth} infinite-width", layered)
            euler[i] = _rms(layered.embeddings[-1].numpy() - target)
            for j, width in enumerate(spec.widths):
                result = train_networks(
                    depth,
                    width,
                    spec.dim,
                    steps=spec.steps,
                    seeds=range((i * 100 + j) * 1000, (i * 100 + j) * 1000 + spec.seeds),
                    activation="identity",
                    lr=spec.lr,
                    seed=spec.seed,
                    device=spec.device,
                    dtype=spec.dtype,
                )
                divergence.add(f"L={depth} M={width}", result)
                diverged[i, j] = int(result.diverged.sum())
                last = result.embeddings[~result.diverged, -1].double().numpy()
                if last.shape[0] >= 2:
                    error[i, j] = _rms(last - target)
                    count = last.shape[0]
                    seed_noise = float(np.mean(last.var(0, ddof=1)) / count)
                    noise[i, j] = math.sqrt(seed_noise)
                    mean_square = float(np.mean((last.mean(0) - target) ** 2))
                    bias[i, j] = math.sqrt(max(mean_square - seed_noise, 0.0))
                tracker.advance(depth * width * spec.seeds)
        return xr.Dataset(
            {
                "error": (("depth", "width"), error),
                "bias": (("depth", "width"), bias),
                "bias_noise": (("depth", "width"), noise),
                "euler_exact": (("depth",), euler),
                "diverged": (("depth", "width"), diverged),
            },
            coords={"depth": list(spec.depths), "width": list(spec.widths)},
            attrs={
                "divergence_note": divergence.note(),
            },
        )

    def _m_slope(self, dataset: xr.Dataset) -> tuple[float, float, float, int]:
        """Pooled slope of log(bias) on log(M) with one intercept per L, over the widths
        ``M >= MIN_BIAS_WIDTH`` and the depths where the exact Euler term is at least the seed
        noise of the mean at every such M (below that the quadrature subtraction is noise)."""
        widths = dataset.width.values[dataset.width.values >= MIN_BIAS_WIDTH]
        if widths.size < 2:
            widths = dataset.width.values[-2:]
        xs, ys, groups = [], [], []
        for depth in dataset.depth.values:
            row = dataset.sel(depth=depth, width=widths)
            bias, noise = row.bias.values, row.bias_noise.values
            if (
                np.all(np.isfinite(bias))
                and np.all(bias > 0)
                and np.all(float(row.euler_exact) >= noise)
            ):
                xs += list(np.log(widths))
                ys += list(np.log(bias))
                groups += [depth] * len(widths)
        if len(set(groups)) < 1 or len(xs) < 3:
            return math.nan, math.nan, math.nan, 0
        labels = sorted(set(groups))
        design = np.zeros((len(xs), 1 + len(labels)))
        design[:, 0] = xs
        for row, group in enumerate(groups):
            design[row, 1 + labels.index(group)] = 1.0
        coefficients, *_ = np.linalg.lstsq(design, np.asarray(ys), rcond=None)
        residuals = np.asarray(ys) - design @ coefficients
        dof = len(xs) - design.shape[1]
        if dof < 1:
            return float(coefficients[0]), math.nan, math.nan, len(xs)
        sigma2 = float(residuals @ residuals) / dof
        covariance = sigma2 * np.linalg.inv(design.T @ design)
        half = float(sps.t.isf(0.025, dof)) * math.sqrt(covariance[0, 0])
        return float(coefficients[0]), coefficients[0] - half, coefficients[0] + half, len(xs)

    def summarize(self, dataset: xr.Dataset, spec: ChizatDepthSpec) -> list[dict[str, Any]]:
        depths = dataset.depth.values
        rows = []
        for width in dataset.width.values:
            item = dataset.sel(width=width)
            fit = fit_or_none(depths, item.error.values)
            bias_fit = fit_or_none(depths, item.bias.values)
            rows.append(
                {
                    "width": int(width),
                    "slope_vs_depth": math.nan if fit is None else fit.slope,
                    "slope_ci": None if fit is None else (fit.ci_low, fit.ci_high),
                    "slope_text": "—" if fit is None else slope_text(fit),
                    "bias_slope": math.nan if bias_fit is None else bias_fit.slope,
                    "bias_slope_ci": None
                    if bias_fit is None
                    else (bias_fit.ci_low, bias_fit.ci_high),
                    "bias_slope_text": "—" if bias_fit is None else slope_text(bias_fit),
                    "error_first": float(item.error.values[0]),
                    "error_last": float(item.error.values[-1]),
                    "diverged": int(item.diverged.sum()),
                }
            )
        return rows

    def check(self, dataset: xr.Dataset, spec: ChizatDepthSpec) -> list[Claim]:
        note = dataset.attrs.get("divergence_note", "")
        depths = dataset.depth.values
        widest = int(dataset.width.values[-1])
        claims = [
            Claim.slope(
                "C5",
                f"Linear sigma, D={spec.dim}, K={spec.steps}, M={widest}: the Euler term (seed "
                f"mean minus the Mean ODE, seed noise removed in quadrature) vs L "
                f"({depths[0]}…{depths[-1]}) has slope -1",
                depths,
                dataset.bias.sel(width=widest).values,
                expected=-1.0,
                tolerance=0.15,
                what="Euler term vs L",
                note=note,
                details={"euler_exact": dataset.euler_exact.values.tolist()},
            )
        ]
        slope, low, high, n = self._m_slope(dataset)
        used = [int(w) for w in dataset.width.values if w >= MIN_BIAS_WIDTH] or [
            int(w) for w in dataset.width.values[-2:]
        ]
        claims.append(
            Claim.bound(
                "C5",
                "The Euler term does not depend on M: pooled slope of log(bias) on log(M), "
                f"M in {used}, one intercept per L (L where the exact Euler term is >= "
                "the seed noise of the mean)" + note,
                bound(slope, equals=0.0, tolerance=0.15, n=n),
                statistic="log-log slope of the Euler term vs M",
                note=f"95% CI [{low:+.3f}, {high:+.3f}]",
                details={"ci_low": low, "ci_high": high},
            )
        )
        depth_grid, width_grid = np.meshgrid(depths, dataset.width.values, indexing="ij")
        error = dataset.error.values
        keep = (depth_grid >= spec.collapse_min_depth) & np.isfinite(error) & (error > 0)
        all_points = np.isfinite(error) & (error > 0)
        if keep.sum() >= 3:
            a, b, prediction = collapse_fit(
                depth_grid[all_points], width_grid[all_points], spec.dim, error[all_points]
            )
            deviation = np.abs(error[all_points] / prediction - 1.0)
            worst = float(deviation.max())
            # collapse: at large L the errors of one LM agree, whatever the split
            hidden = (depth_grid * width_grid)[keep]
            residual = np.log(error[keep]) - 0.5 * np.log(spec.dim / hidden)
            spread = float(np.exp(residual.max() - residual.min()))
            claims.append(
                Claim.bound(
                    "hidden-width",
                    f"One law sqrt(a^2/L^2 + b^2 D/(LM)) with a = {a:.3f}, b = {b:.3f} "
                    f"fitted once fits every (L, M) point; at L >= {spec.collapse_min_depth}"
                    f" error/sqrt(D/(LM)) varies by a factor {spread:.2f} over "
                    f"{int(keep.sum())} points (collapse on LM)" + note,
                    bound(worst, at_most=spec.collapse_tolerance, n=int(all_points.sum())),
                    statistic="largest relative deviation from the single law",
                    details={"a": a, "b": b, "collapse_spread": spread},
                )
            )
        return claims

    def draw(self, dataset: xr.Dataset, spec: ChizatDepthSpec) -> Figure:
        depths = dataset.depth.values
        figure, axes = panel_grid(3, columns=3, size=(4.3, 3.4))
        ax = axes[0]
        for color, width in zip(COLORS, dataset.width.values, strict=False):
            plot_series(
                ax, depths, dataset.error.sel(width=width).values, label=f"M={width}", color=color
            )
        ax.set_xlabel("depth L")
        ax.set_ylabel("RMS embedding error at step K")
        ax.set_title("total error vs L")
        ax.legend(fontsize=6.5, frameon=False)
        ax = axes[1]
        for color, width in zip(COLORS[2:], dataset.width.values[-3:], strict=False):
            plot_series(
                ax,
                depths,
                dataset.bias.sel(width=width).values,
                label=f"bias M={width}",
                color=color,
            )
        plot_series(
            ax,
            depths,
            dataset.euler_exact.values,
            label="exact Euler term",
            color="#000000",
            marker="",
        )
        ax.set_xlabel("depth L")
        ax.set_ylabel("RMS of seed mean - Mean ODE")
        ax.set_title("Euler term (C5)")
        ax.legend(fontsize=6.5, frameon=False)
        ax = axes[2]
        depth_grid, width_grid = np.meshgrid(depths, dataset.width.values, indexing="ij")
        error = dataset.error.values
        ok = np.isfinite(error) & (error > 0)
        if ok.sum() >= 3:
            a, b, _ = collapse_fit(depth_grid[ok], width_grid[ok], spec.dim, error[ok])
            for color, depth in zip(COLORS, depths, strict=False):
                if depth < spec.collapse_min_depth:
                    continue
                hidden = depth * dataset.width.values
                ax.plot(
                    hidden,
                    dataset.error.sel(depth=depth).values,
                    "o",
                    color=color,
                    ms=4,
                    label=f"L={depth}",
                )
                law = np.sqrt(a**2 / depth**2 + b**2 * spec.dim / hidden)
                ax.plot(hidden, law, ls="--", color=color, lw=0.9)
            ax.set_title(f"collapse on LM: a={a:.3f}, b={b:.3f}")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("hidden width LM")
        ax.set_ylabel("RMS embedding error")
        ax.legend(fontsize=6.5, frameon=False)
        add_caption(figure, self.title, dataset.attrs["caption"])
        return figure
