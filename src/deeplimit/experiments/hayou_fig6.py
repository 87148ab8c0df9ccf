"""Hayou Fig. 6 (inferred, hayou.md §5, §7): depth-then-width against width-then-depth.

Depth first, then width (Thm 2): the log-growth ``LG_1 = log(||phi(X_1)|| / ||phi(X_0)||)``
concentrates at ``1/4`` (its variance is ``~ 1/n``), and every coordinate becomes the
McKean-Vlasov process ``dX = (E phi(X)^2)^{1/2} dB``: Gaussian with variance ``q_t``,
``q_t' = E phi(sqrt(q_t) Z)^2`` (``q_0 e^{t/2}`` for ReLU). Width first, then depth (Thm 3):
at fixed depth the coordinates are iid Gaussian with ``q_l = q_{l-1} + (1/L) E phi(N(0,
q_{l-1}))^2`` (``q_0 (1 + 1/(2L))^l`` for ReLU), which tends to the same ``q_t``. We simulate
depth-``L`` networks of growing width and compare the log-growth, the coordinate law and the
mean squared coordinate ``||Y_l||^2 / n`` with both limits, for any activation.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np
import scipy.stats as sps
import torch
import xarray as xr
from matplotlib.figure import Figure
from pydantic import model_validator

from ..initialization.meanfield import (
    infinite_width_variance,
    meanfield_log_growth,
    meanfield_variance,
)
from ..initialization.network import sample_resnet
from ..rng import derive_seed
from ..stats import ks_test
from .base import Claim, ExperimentSpec, Progress
from .claims import bound
from .hayou_common import (
    BLUES,
    LAW_COLOR,
    ActivationName,
    HayouExperiment,
    activation_kind,
    columns,
    density_panel,
    histogram,
    ks_by_width,
    limit_claim,
    moments,
    panels,
    reference_line,
    runnable_activation,
)
from .spec_fields import AtLeast, Level, Positive, PositiveInt, Widths

__all__ = ["HayouFig6", "HayouFig6Spec"]

DEPTH_WIDTH_STREAM = 13
GRID_POINTS = 9  # layers 0, L/8, ..., L where ||Y_l||^2 / n is recorded


class HayouFig6Spec(ExperimentSpec):
    """``samples[i]`` networks of width ``widths[i]``."""

    widths: Widths = (16, 64, 256, 1024)
    samples: tuple[int, ...] = (20_000, 5_000, 2_000, 500)
    depth: AtLeast(8) = 200  # type: ignore[valid-type]
    activation: ActivationName = "relu"
    q0: Positive = 1.0
    gaussian_from_width: PositiveInt = 256
    level: Level = 1e-3

    @model_validator(mode="after")
    def _samples_per_width(self) -> HayouFig6Spec:
        if len(self.samples) != len(self.widths) or any(s < 20 for s in self.samples):
            raise ValueError(
                f"samples must give one count >= 20 per width ({len(self.widths)} widths), "
                f"got {self.samples}"
            )
        return self


def _grid(depth: int) -> list[int]:
    return sorted({round(depth * k / (GRID_POINTS - 1)) for k in range(GRID_POINTS)})


class HayouFig6(HayouExperiment):
    name = "hayou-fig6"
    Spec = HayouFig6Spec
    table = columns(
        "width: n; samples: networks; lg_mean: E LG_L; lg_scaled_variance: n Var LG_L; "
        "norm2_mean: E |Y_L|^2/n; norm2_se: SE; coordinate_ks_pvalue: KS p (Y^1_L)"
    )

    full_scale: ClassVar[dict[str, Any]] = {
        "widths": (16, 64, 256, 1024, 4096),
        "samples": (100_000, 25_000, 10_000, 2_500, 600),
        "depth": 500,
    }

    smoke_scale: ClassVar[dict[str, Any]] = {
        "widths": (8, 32),
        "samples": (200, 100),
        "depth": 16,
        "gaussian_from_width": 32,
    }

    def caption(self, spec: HayouFig6Spec) -> str:
        pairs = ", ".join(f"{n} ({s})" for n, s in zip(spec.widths, spec.samples))
        return (
            f"Activation {spec.activation}, depth L = {spec.depth}, widths (networks) {pairs}, "
            f"input x = (sqrt q0), q0 = {spec.q0:g} (d = 1; exact-in-law sampler, seed "
            f"{spec.seed}, derived per width). Left: LG_L concentrates at the depth-then-width "
            "limit (Thm 2; 1/4 for ReLU). Middle: the first coordinate Y^1_L at the largest "
            "width against N(0, q_1), q_1 from the McKean-Vlasov ODE q' = E phi(sqrt(q) Z)^2 "
            "(q_0 e^{1/2} for ReLU). Right: mean ||Y_l||^2/n against t = l/L with the ODE "
            "(line) and the width-then-depth recursion q_l (Thm 3, crosses). Coordinates are "
            f"tested for Gaussianity from width {spec.gaussian_from_width}. Parameters lost in "
            "the paper; these are our choices."
        )

    def compute(self, spec: HayouFig6Spec, progress: Progress | None = None) -> xr.Dataset:
        activation = runnable_activation(spec.activation)
        grid = _grid(spec.depth)
        most = max(spec.samples)
        growth = np.full((len(spec.widths), most), np.nan)
        coordinate = np.full((len(spec.widths), most), np.nan)
        norm2_mean = np.empty((len(spec.widths), len(grid)))
        norm2_se = np.empty_like(norm2_mean)
        total = sum(n * s for n, s in zip(spec.widths, spec.samples))
        done = 0
        for i, (width, samples) in enumerate(zip(spec.widths, spec.samples)):
            paths = sample_resnet(
                width,
                spec.depth,
                activation,
                samples=samples,
                x=[math.sqrt(spec.q0)],
                record=grid,
                seed=derive_seed(spec.seed, DEPTH_WIDTH_STREAM, width),
                device=spec.device,
            ).numpy()  # (samples, layers, width)
            phi = activation.phi(torch.from_numpy(paths[:, [0, -1]])).numpy()
            norms = np.linalg.norm(phi, axis=-1)
            alive = (norms[:, 0] > 0) & (norms[:, 1] > 0)
            growth[i, :samples][alive] = np.log(norms[alive, 1] / norms[alive, 0])
            coordinate[i, :samples] = paths[:, -1, 0]
            squares = (paths**2).mean(-1)  # ||Y_l||^2 / n per network
            norm2_mean[i] = squares.mean(0)
            norm2_se[i] = squares.std(0, ddof=1) / math.sqrt(samples)
            done += width * samples
            if progress is not None:
                progress(done, total)
        times = np.array(grid) / spec.depth
        return xr.Dataset(
            {
                "log_growth": (("width", "sample"), growth),
                "coordinate": (("width", "sample"), coordinate),
                "norm2_mean": (("width", "layer"), norm2_mean),
                "norm2_se": (("width", "layer"), norm2_se),
                "meanfield": ("layer", np.asarray(meanfield_variance(activation, spec.q0, times))),
                "width_first": (
                    "layer",
                    infinite_width_variance(activation, spec.q0, spec.depth)[grid],
                ),
            },
            coords={"width": list(spec.widths), "layer": grid, "time": ("layer", times)},
            attrs={
                "limit": float(meanfield_log_growth(activation, spec.q0, 1.0)),
            },
        )

    def summarize(self, dataset: xr.Dataset, spec: HayouFig6Spec) -> list[dict[str, Any]]:
        variance = float(dataset.meanfield.values[-1])
        rows = []
        for i, width in enumerate(dataset.width.values):
            samples = spec.samples[i]
            growth = dataset.log_growth.values[i, :samples]
            growth = growth[np.isfinite(growth)]
            stats = moments(growth)
            ks = ks_test(
                dataset.coordinate.values[i, :samples],
                sps.norm(scale=math.sqrt(variance)),
                level=spec.level,
            )
            n = int(width)
            rows.append(
                {
                    "width": n,
                    "samples": samples,
                    "alive": stats["n"],
                    "lg_mean": stats["mean"],
                    "lg_se": stats["se"],
                    "se": stats["se"],
                    "mean": stats["mean"],
                    "lg_scaled_variance": n * stats["sd"] ** 2,
                    "lg_scaled_variance_se": n * stats["sd"] ** 2 * math.sqrt(2 / stats["n"]),
                    "norm2_mean": float(dataset.norm2_mean.values[i, -1]),
                    "norm2_se": float(dataset.norm2_se.values[i, -1]),
                    "coordinate_ks_statistic": ks.statistic,
                    "coordinate_ks_pvalue": ks.pvalue,
                }
            )
        return rows

    def check(self, dataset: xr.Dataset, spec: HayouFig6Spec) -> list[Claim]:
        rows = self.summarize(dataset, spec)
        largest = rows[-1]
        claims = [limit_claim("C12", spec, largest, float(dataset.attrs["limit"]))]
        if activation_kind(spec.activation) == "relu":
            low, high = 0.95, 1.20
            farthest = max(
                rows,
                key=lambda r: max(low - r["lg_scaled_variance"], r["lg_scaled_variance"] - high),
            )
            bands = {
                f"n = {r['width']}": bound(
                    r["lg_scaled_variance"],
                    within=(
                        low - 3 * r["lg_scaled_variance_se"],
                        high + 3 * r["lg_scaled_variance_se"],
                    ),
                    fmt=".3f",
                )
                for r in rows
            }
            claims.append(
                Claim.bound(
                    "C12",
                    "Var(LG_L) ~ 1/n: n Var(LG_L) in [0.95, 1.20] at every width (Thm 1: "
                    "Var R = 1/n, plus the O(1/n) variance of the random drift)",
                    bands[f"n = {farthest['width']}"],
                    statistic="n Var(LG_L) farthest outside the band",
                    n=min(r["alive"] for r in rows),
                    note="[0.95, 1.20] ± 3 SE (relative SE sqrt(2/M)), every width",
                    requires=bands,
                )
            )
        variance = float(dataset.meanfield.values[-1])
        wide = [r for r in rows if r["width"] >= spec.gaussian_from_width] or [largest]
        worst = min(wide, key=lambda r: r["coordinate_ks_pvalue"])
        claims.append(
            Claim.family(
                "C12",
                f"A coordinate Y^1_L is Gaussian N(0, q_1 = {variance:.4f}) at widths >= "
                f"{wide[0]['width']} (McKean-Vlasov limit)",
                ks_by_width(wide, level=spec.level, n_key="samples", prefix="coordinate_"),
                level=spec.level,
                what=f"widths (KS resolution ~{1.95 / math.sqrt(worst['samples']):.3f})",
            )
        )
        for claim_id, target, label in (
            ("C12", variance, "the depth-then-width ODE q_1 (Thm 2)"),
            (
                "C13",
                float(dataset.width_first.values[-1]),
                f"the width-then-depth recursion q_L at L = {spec.depth} (Thm 3)",
            ),
        ):
            deviation = abs(largest["norm2_mean"] - target)
            allowed = 3 * largest["norm2_se"] + 3 * target / largest["width"]
            claims.append(
                Claim.bound(
                    claim_id,
                    f"At width n = {largest['width']}, E ||Y_L||^2/n equals {label} = {target:.4f}",
                    bound(deviation, at_most=allowed, n=largest["samples"], fmt=".4f"),
                    statistic="|E ||Y_L||^2/n - q|",
                    note="3 SE + 3 q/n: sampling plus an O(1/n) finite-width allowance",
                )
            )
        return claims

    def draw(self, dataset: xr.Dataset, spec: HayouFig6Spec) -> Figure:
        rows = self.summarize(dataset, spec)
        limit = float(dataset.attrs["limit"])
        scale = math.sqrt(float(dataset.meanfield.values[-1]))
        with panels(3, columns=3, size=(2.7, 2.4)) as (figure, (growth, coordinate, norms)):
            for color, row, values in zip(BLUES, rows, dataset.log_growth.values):
                values = values[np.isfinite(values)]
                span = 5 * max(float(values.std()), 1e-3)
                edges = np.linspace(limit - span, limit + span, 61)
                growth.stairs(
                    histogram(values, edges), edges, color=color, label=f"$n$ = {row['width']}"
                )
            growth.set(xlim=(limit - 1.0, limit + 1.0), xlabel="$LG_L$", ylabel="density")
            growth.set_ylim(0, 1.35 * growth.dataLim.y1)
            reference_line(
                growth,
                x=limit,
                extent=(0, growth.dataLim.y1),
                color=LAW_COLOR,
                ls="--",
                label=f"limit {limit:.3g}",
            )
            density_panel(
                coordinate,
                values=dataset.coordinate.values[-1, : spec.samples[-1]],
                span=(-4 * scale, 4 * scale),
                bins=50,
                law=lambda x: sps.norm.pdf(x, scale=scale),
                law_label=r"$\mathcal{N}(0, q_1)$",
                title=f"$Y^1_L$, $n$ = {rows[-1]['width']}: KS $p$ = "
                f"{rows[-1]['coordinate_ks_pvalue']:.2g}",
                xlabel="$Y^1_L$",
            )
            times = dataset.time.values
            for color, row, mean, se in zip(
                BLUES, rows, dataset.norm2_mean.values, dataset.norm2_se.values
            ):
                norms.errorbar(
                    times,
                    mean,
                    yerr=3 * se,
                    fmt="o",
                    ms=3,
                    color=color,
                    label=f"$n$ = {row['width']}",
                )
            norms.plot(
                times, dataset.meanfield.values, color=LAW_COLOR, lw=1.2, label="ODE $q_t$ (Thm 2)"
            )
            norms.plot(
                times, dataset.width_first.values, "x", color="k", ms=5, label="$q_l$ (Thm 3)"
            )
            norms.set(xlabel="$t = l / L$", ylabel=r"$E\,\|Y_l\|^2 / n$ ($\pm 3$ SE)")
        return figure
