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
from scipy.optimize import nnls

from ..training import exact_linear_limit
from .base import Claim
from .chizat_common import COLORS, ChizatSpec, fit_or_none, rms_over, slope_text
from .chizat_sweep import ErrorSweep, Point, Slope, loglog_panel
from .claims import bound
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


def pooled_slope(x: np.ndarray, y: np.ndarray, groups: list) -> tuple[float, float, float]:
    """Least-squares slope of ``y`` on ``x`` with one intercept per group, and its 95% CI
    (Student t; NaN without residual degrees of freedom)."""
    labels = sorted(set(groups))
    design = np.zeros((len(x), 1 + len(labels)))
    design[:, 0] = x
    for row, group in enumerate(groups):
        design[row, 1 + labels.index(group)] = 1.0
    coefficients, *_ = np.linalg.lstsq(design, np.asarray(y), rcond=None)
    residuals = np.asarray(y) - design @ coefficients
    dof = len(x) - design.shape[1]
    if dof < 1:
        return float(coefficients[0]), math.nan, math.nan
    covariance = float(residuals @ residuals) / dof * np.linalg.inv(design.T @ design)
    half = float(sps.t.isf(0.025, dof)) * math.sqrt(covariance[0, 0])
    return float(coefficients[0]), coefficients[0] - half, coefficients[0] + half


class ChizatDepth(ErrorSweep):
    name = "chizat-depth"
    title = "Error against depth L and hidden width LM: Euler term 1/L, CLT term (C5)"
    Spec = ChizatDepthSpec
    order = 3
    axis, values_field, axis_label, axis_symbol, cast = "depth", "depths", r"depth $L$", "L", int
    slopes = (Slope("C5", "bias", -1.0, 0.15, what="Euler term vs L"),)
    figure_size = (4.0, 3.5)
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
            **{"dim": 8, "depths": (1, 2, 4), "widths": (4, 8, 16), "seeds": 3, "steps": 2},
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

    def points(self, spec: ChizatDepthSpec):
        for i, depth in enumerate(spec.depths):
            for j, width in enumerate(spec.widths):
                start = (i * 100 + j) * 1000
                network = dict(depth=depth, width=width, dim=spec.dim, activation="identity")
                seeds = tuple(range(start, start + spec.seeds))
                label = f"L={depth} M={width}"
                coords = {"depth": depth, "width": width}
                yield Point(coords, label, {**network, "lr": spec.lr}, seeds, "Mean ODE")

    def exact(self, spec: ChizatDepthSpec, depth: int | None = None) -> Any:
        """The Mean ODE (``depth=None``) or the depth-L infinite-width limit (exact)."""
        return exact_linear_limit(
            spec.dim, steps=spec.steps, lr=spec.lr, depth=depth, on_divergence="ignore"
        )

    def limit(self, spec: ChizatDepthSpec, point: Point, divergence: Any) -> Any:
        ode = self.exact(spec)
        divergence.add_limit("Mean ODE", ode)
        return ode, None

    def measure(self, spec: ChizatDepthSpec, result: Any, limit: Any, point: Point) -> dict:
        """RMS error of the networks, Euler term (seed mean minus the Mean ODE, seed noise
        removed in quadrature) and that seed noise, over the networks that did not diverge."""
        target = limit[0].embeddings[-1].numpy()
        row = {"error": math.nan, "bias": math.nan, "bias_noise": math.nan}
        last = result.embeddings[~result.diverged, -1].double().numpy()
        if last.shape[0] >= 2:
            seed_noise = float(np.mean(last.var(0, ddof=1)) / last.shape[0])
            mean_square = float(np.mean((last.mean(0) - target) ** 2))
            row["error"] = _rms(last - target)
            row["bias"] = math.sqrt(max(mean_square - seed_noise, 0.0))
            row["bias_noise"] = math.sqrt(seed_noise)
        deviation = result.embeddings[:, -1].double().numpy() - target  # per network, for bars
        errors = np.sqrt((deviation**2).reshape(len(deviation), -1).mean(1))
        errors[result.diverged.numpy()] = math.nan
        return {**row, "diverged": int(result.diverged.sum()), "errors": (("seed",), errors)}

    def assemble(self, spec: ChizatDepthSpec, points: list, rows: list, divergence: Any):
        target = self.exact(spec).embeddings[-1].numpy()
        euler = np.empty(len(spec.depths))
        for i, depth in enumerate(spec.depths):
            layered = self.exact(spec, depth)
            divergence.add_limit(f"depth-{depth} infinite-width", layered)
            euler[i] = _rms(layered.embeddings[-1].numpy() - target)
        dataset = super().assemble(spec, points, rows, divergence)
        return dataset.assign(euler_exact=(("depth",), euler))

    def bias_widths(self, dataset: xr.Dataset) -> np.ndarray:
        """The widths where C5 measures the Euler term's M-dependence (the two widest if
        fewer than two reach ``MIN_BIAS_WIDTH``)."""
        widths = dataset.width.values[dataset.width.values >= MIN_BIAS_WIDTH]
        return widths if widths.size >= 2 else dataset.width.values[-2:]

    def m_slope(self, dataset: xr.Dataset) -> tuple[float, float, float, int]:
        """Pooled slope of log(bias) on log(M) with one intercept per L, over
        :meth:`bias_widths` and the depths where the exact Euler term is at least the seed
        noise of the mean at every such M (below that the quadrature subtraction is noise)."""
        widths = self.bias_widths(dataset)
        xs, ys, groups = [], [], []
        for depth in dataset.depth.values:
            row = dataset.sel(depth=depth, width=widths)
            bias, noise = row.bias.values, row.bias_noise.values
            if np.all(np.isfinite(bias) & (bias > 0) & (float(row.euler_exact) >= noise)):
                xs += list(np.log(widths))
                ys += list(np.log(bias))
                groups += [depth] * len(widths)
        if len(xs) < 3:
            return math.nan, math.nan, math.nan, 0
        return (*pooled_slope(np.asarray(xs), np.asarray(ys), groups), len(xs))

    def summarize(self, dataset: xr.Dataset, spec: ChizatDepthSpec) -> list[dict[str, Any]]:
        depths = dataset.depth.values
        rows = []
        for width in dataset.width.values:
            item = dataset.sel(width=width)
            row: dict[str, Any] = {"width": int(width)}
            for prefix, name in (("", "error"), ("bias_", "bias")):
                fit = fit_or_none(depths, item[name].values)
                key = "slope_vs_depth" if name == "error" else "bias_slope"
                row[key] = math.nan if fit is None else fit.slope
                row[f"{prefix}slope_ci"] = None if fit is None else (fit.ci_low, fit.ci_high)
                row[f"{prefix}slope_text"] = "—" if fit is None else slope_text(fit)
            rows.append(
                {
                    **row,
                    "error_first": float(item.error.values[0]),
                    "error_last": float(item.error.values[-1]),
                    "diverged": int(item.diverged.sum()),
                }
            )
        return rows

    def slope_data(self, slope: Slope, dataset: xr.Dataset) -> tuple[np.ndarray, np.ndarray]:
        return dataset.depth.values, dataset.bias.sel(width=dataset.width.values[-1]).values

    def statement(self, slope: Slope, dataset: xr.Dataset, spec: ChizatDepthSpec) -> str:
        depths = dataset.depth.values
        return (
            f"Linear sigma, D={spec.dim}, K={spec.steps}, M={int(dataset.width.values[-1])}: "
            "the Euler term (seed mean minus the Mean ODE, seed noise removed in quadrature) vs "
            f"L ({depths[0]}…{depths[-1]}) has slope -1"
        )

    def details(self, slope: Slope, dataset: xr.Dataset, spec: Any) -> dict[str, Any]:
        return {"euler_exact": dataset.euler_exact.values.tolist()}

    def check(self, dataset: xr.Dataset, spec: ChizatDepthSpec) -> list[Claim]:
        note = dataset.attrs.get("divergence_note", "")
        claims = super().check(dataset, spec)
        slope, low, high, n = self.m_slope(dataset)
        claims.append(
            Claim.bound(
                "C5",
                "The Euler term does not depend on M: pooled slope of log(bias) on log(M), "
                f"M in {[int(w) for w in self.bias_widths(dataset)]}, one intercept per L (L "
                "where the exact Euler term is >= the seed noise of the mean)" + note,
                bound(slope, equals=0.0, tolerance=0.15, n=n),
                statistic="log-log slope of the Euler term vs M",
                note=f"95% CI [{low:+.3f}, {high:+.3f}]",
                details={"ci_low": low, "ci_high": high},
            )
        )
        depth, width, error = self.grid(dataset)
        keep = (depth >= spec.collapse_min_depth) & np.isfinite(error) & (error > 0)
        points = np.isfinite(error) & (error > 0)
        if keep.sum() >= 3:
            a, b, prediction = collapse_fit(depth[points], width[points], spec.dim, error[points])
            worst = float(np.abs(error[points] / prediction - 1.0).max())
            # collapse: at large L the errors of one LM agree, whatever the split
            residual = np.log(error[keep]) - 0.5 * np.log(spec.dim / (depth * width)[keep])
            spread = float(np.exp(residual.max() - residual.min()))
            claims.append(
                Claim.bound(
                    "hidden-width",
                    f"One law sqrt(a^2/L^2 + b^2 D/(LM)) with a = {a:.3f}, b = {b:.3f} "
                    f"fitted once fits every (L, M) point; at L >= {spec.collapse_min_depth}"
                    f" error/sqrt(D/(LM)) varies by a factor {spread:.2f} over "
                    f"{int(keep.sum())} points (collapse on LM)" + note,
                    bound(worst, at_most=spec.collapse_tolerance, n=int(points.sum())),
                    statistic="largest relative deviation from the single law",
                    details={"a": a, "b": b, "collapse_spread": spread},
                )
            )
        return claims

    def grid(self, dataset: xr.Dataset) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Depth, width and error on the (L, M) grid."""
        depth, width = np.meshgrid(dataset.depth.values, dataset.width.values, indexing="ij")
        return depth, width, dataset.error.values

    def bars(self, dataset: xr.Dataset, width: int) -> dict[str, Any]:
        """95% bars of the RMS error over the networks (none for datasets without them)."""
        if "errors" not in dataset:
            return {}
        return {"bars": rms_over(dataset.errors.sel(width=width).values)[1]}

    def panel_count(self, spec: ChizatDepthSpec) -> int:
        return 3

    def panels(self, axes: list, dataset: xr.Dataset, spec: ChizatDepthSpec) -> None:
        depths, widths = dataset.depth.values, dataset.width.values
        loglog_panel(
            axes[0],
            [
                (depths, dataset.error.sel(width=w).values, f"$M={w}$", c, self.bars(dataset, w))
                for c, w in zip(COLORS, widths, strict=False)
            ],
            xlabel=self.axis_label,
            ylabel=r"RMS embedding error at step $K$",
            title=r"total error vs $L$",
        )
        biases = [
            (depths, dataset.bias.sel(width=w).values, f"bias $M={w}$", c)
            for c, w in zip(COLORS[2:], widths[-3:], strict=False)
        ]
        exact = (depths, dataset.euler_exact.values, "exact Euler term", "#000000")
        loglog_panel(
            axes[1],
            [*biases, (*exact, {"marker": ""})],
            xlabel=self.axis_label,
            ylabel="RMS of seed mean $-$ Mean ODE",
            title="Euler term (C5)",
        )
        ax = axes[2]
        depth, width, error = self.grid(dataset)
        ok = np.isfinite(error) & (error > 0)
        if ok.sum() >= 3:
            a, b, _ = collapse_fit(depth[ok], width[ok], spec.dim, error[ok])
            for color, value in zip(COLORS, depths, strict=False):
                if value < spec.collapse_min_depth:
                    continue
                hidden = value * widths
                errors = dataset.error.sel(depth=value).values
                ax.plot(hidden, errors, "o", color=color, label=f"$L={value}$")
                law = np.sqrt(a**2 / value**2 + b**2 * spec.dim / hidden)
                ax.plot(hidden, law, ls="--", color=color, lw=0.9)
            ax.set_title(f"collapse on $LM$: $a={a:.3f}$, $b={b:.3f}$")
        ax.set(xscale="log", yscale="log", xlabel="hidden width $LM$")
        ax.set_ylabel("RMS embedding error")
