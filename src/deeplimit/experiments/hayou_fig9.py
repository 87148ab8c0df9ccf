"""Hayou Figs. 9-10 (App. K.1): more histograms of the width-1 GBM case.

* Fig. 9, the linear activation ``phi(x) = a x`` (Prop. 2): ``dX = |a| |X| dB`` is a GBM, so
  ``log|X_1 / X_0| ~ N(-a^2/2, a^2)`` and the sign of ``X_0`` is kept (C4). At depth ``L`` the
  chain is exactly ``Y_L = Y_0 prod_l (1 + a Z_l / sqrt(L))``; its sign flips when an odd number
  of factors is negative, with probability ``(1 - (1 - 2p)^L)/2``, ``p = Phi(-sqrt(L)/|a|)``,
  which tends to 0.
* Fig. 10, ReLU with a random input (Prop. 3): the output law itself,
  ``X_1 = 1{X_0 > 0} X_0 e^{B_1 - 1/2} + 1{X_0 <= 0} X_0`` with ``X_0 = W_in x ~ N(0, q0)``, a
  continuous mixture (``relu_width1_law(x=...)``), and ``P(Y_L <= 0) = 1/2 + p_col(L)/2`` (C5).

The depths and sample sizes of App. K.1 are lost; we use ``L in {5, 50, 500}`` and 20 000
networks (the paper says that a small depth does not match and larger ones do).
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np
import scipy.stats as sps
import xarray as xr
from matplotlib.figure import Figure

from ..activations import Linear
from ..initialization.laws import (
    gbm_law,
    relu_width1_law,
    relu_width1_nonpositive_probability,
)
from ..initialization.network import sample_resnet
from ..rng import derive_seed
from ..stats import binomial_interval, binomial_test, ks_test
from .base import Claim, Experiment, ExperimentSpec, Progress
from .claims import bound
from .hayou_common import depth_ks_claims
from .plotting import add_caption, panel_grid
from .spec_fields import Depths, Level, Positive, Samples

__all__ = ["HayouFig9", "HayouFig9Spec", "HayouFig10", "HayouFig10Spec", "sign_flip_probability"]

WIDTH1_STREAM = 17


def sign_flip_probability(depth: int, a: float) -> float:
    """``P(sign Y_L != sign Y_0)`` for width 1 and ``phi(x) = a x``: an odd number of the
    factors ``1 + a Z_l / sqrt(L)`` is negative, each with probability ``p = Phi(-sqrt(L)/|a|)``."""
    p = float(sps.norm.cdf(-math.sqrt(depth) / abs(a)))
    return -0.5 * math.expm1(depth * math.log1p(-2 * p))


def _binomial_claim(
    claim_id: str, statement: str, level: float, rows: list[dict[str, Any]], key: str
) -> Claim:
    return Claim.family(
        claim_id,
        statement,
        {
            f"L = {r['depth']}": binomial_test(r[key], r["n"], r[f"{key}_exact"], level=level)
            for r in rows
        },
        level=level,
        what="depths",
    )


# --------------------------------------------------------------------------------------------
# Fig. 9: linear activation, GBM


class HayouFig9Spec(ExperimentSpec):
    depths: Depths = (5, 50, 500)
    samples: Samples = 20_000
    a: Positive = 1.0
    y0: Positive = 1.0
    level: Level = 1e-3


class HayouFig9(Experiment):
    name = "hayou-fig9"
    title = "Width-1 linear ResNet vs the GBM law (Hayou Fig. 9, Prop. 2)"
    Spec = HayouFig9Spec
    suite = "hayou"
    order = 9
    table: ClassVar[dict[str, str]] = {
        "depth": "L",
        "n": "n",
        "ks_statistic": "KS D",
        "ks_pvalue": "KS p",
        "flips": "sign flips",
        "flip_fraction": "fraction",
        "flips_exact": "exact",
    }

    def full_settings(self) -> dict[str, Any]:
        return {"depths": (5, 10, 20, 50, 100, 500, 2000), "samples": 200_000}

    def smoke_settings(self) -> dict[str, Any]:
        return {"depths": (5, 50), "samples": 1000}

    def caption(self, spec: HayouFig9Spec) -> str:
        depths = ", ".join(str(d) for d in spec.depths)
        return (
            f"Width n = 1, linear activation phi(x) = a x with a = {spec.a:g}, fixed Y_0 = "
            f"{spec.y0:g}, {spec.samples} networks per depth L in {{{depths}}} (exact-in-law "
            f"sampler, seed {spec.seed}). Histograms of log|Y_L / Y_0| against the GBM law "
            f"N(-a^2/2, a^2) of Prop. 2; last panel: the frequency of a sign flip against its "
            "exact value (1 - (1 - 2 Phi(-sqrt(L)/a))^L)/2, which tends to 0. The paper's "
            "depths are lost; these are our choices."
        )

    def compute(self, spec: HayouFig9Spec, progress: Progress | None = None) -> xr.Dataset:
        values = np.empty((len(spec.depths), spec.samples))
        for i, depth in enumerate(spec.depths):
            values[i] = sample_resnet(
                1,
                depth,
                Linear(spec.a),
                samples=spec.samples,
                y0=[spec.y0],
                seed=derive_seed(spec.seed, WIDTH1_STREAM, 9, depth),
                device=spec.device,
            )[:, 0].numpy()
            if progress is not None:
                progress(i + 1, len(spec.depths))
        return xr.Dataset(
            {"y_last": (("depth", "sample"), values)},
            coords={"depth": list(spec.depths)},
        )

    def summarize(self, dataset: xr.Dataset, spec: HayouFig9Spec) -> list[dict[str, Any]]:
        law = gbm_law(spec.a, 1.0).log_ratio()
        rows = []
        for depth in dataset.depth.values:
            y = dataset.y_last.sel(depth=depth).values
            ratio = np.log(np.abs(y / spec.y0))
            ks = ks_test(ratio, law, level=spec.level)
            flips = int(np.sum(y * spec.y0 < 0))
            rows.append(
                {
                    "depth": int(depth),
                    "n": int(y.size),
                    "ks_statistic": ks.statistic,
                    "ks_pvalue": ks.pvalue,
                    "flips": flips,
                    "flip_fraction": flips / y.size,
                    "flips_exact": sign_flip_probability(int(depth), spec.a),
                    "flip_high": float(
                        binomial_interval(
                            flips, int(y.size), level=1 - 2 * spec.level, method="clopper-pearson"
                        ).high
                    ),
                }
            )
        return rows

    def check(self, dataset: xr.Dataset, spec: HayouFig9Spec) -> list[Claim]:
        rows = self.summarize(dataset, spec)
        large = rows[-1]
        claims = depth_ks_claims(
            "C4",
            "fig9",
            rows,
            level=spec.level,
            law=f"log|Y_L/Y_0| follows N({-(spec.a**2) / 2:g}, {spec.a**2:g})",
            not_law="the law is visibly not the limit",
        )
        claims.append(
            _binomial_claim(
                "C4",
                "Sign flips occur with the exact finite-depth probability (1 - (1-2p)^L)/2",
                spec.level,
                rows,
                "flips",
            )
        )
        claims.append(
            Claim.bound(
                "C4",
                f"P(sign flip) -> 0: below 1e-3 at L = {large['depth']}",
                bound(large["flip_high"], below=1e-3, n=large["n"]),
                statistic=f"one-sided {1 - spec.level:g} upper bound (Clopper-Pearson)",
                note=f"exact value {large['flips_exact']:.3g}",
            )
        )
        return claims

    def draw(self, dataset: xr.Dataset, spec: HayouFig9Spec) -> Figure:
        rows = {r["depth"]: r for r in self.summarize(dataset, spec)}
        law = gbm_law(spec.a, 1.0).log_ratio()
        figure, axes = panel_grid(len(spec.depths) + 1)
        centre, spread = -(spec.a**2) / 2, spec.a
        grid = np.linspace(centre - 5 * spread, centre + 4 * spread, 400)
        for ax, depth in zip(axes, spec.depths):
            y = dataset.y_last.sel(depth=depth).values
            ratio = np.log(np.abs(y / spec.y0))
            ax.hist(ratio, bins=80, range=(grid[0], grid[-1]), density=True, color="#8fb3d9")
            ax.plot(grid, np.exp(law.logpdf(grid)), color="#c0392b", lw=1.5, label="GBM law")
            ax.set_title(f"L = {depth}")
            ax.set_xlabel("log |Y_L / Y_0|")
            row = rows[depth]
            ax.text(
                0.02,
                0.97,
                f"KS D = {row['ks_statistic']:.4f}\np = {row['ks_pvalue']:.2g}\n"
                f"flips {row['flips']}",
                transform=ax.transAxes,
                va="top",
                fontsize=8,
            )
        axes[0].set_ylabel("density")
        axes[len(spec.depths) - 1].legend(fontsize=7, frameon=False, loc="upper right")
        ax = axes[-1]
        depths = np.array(spec.depths)
        fractions = np.array([rows[d]["flip_fraction"] for d in spec.depths])
        seen = fractions > 0
        ax.plot(depths[seen], fractions[seen], "o", color="#1f4e79", label="MC")
        fine = np.unique(np.geomspace(1, depths.max(), 200).astype(int))
        exact = np.array([sign_flip_probability(int(d), spec.a) for d in fine])
        ax.plot(fine[exact > 1e-12], exact[exact > 1e-12], color="#c0392b", lw=1, label="exact")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("depth L")
        ax.set_ylabel("P(sign flip)")
        ax.legend(fontsize=7, frameon=False)
        add_caption(figure, self.title, dataset.attrs["caption"])
        return figure


# --------------------------------------------------------------------------------------------
# Fig. 10: ReLU with a random input, the output law


class HayouFig10Spec(ExperimentSpec):
    depths: Depths = (5, 50, 500)
    samples: Samples = 20_000
    x: Positive = 1.0
    level: Level = 1e-3


class HayouFig10(Experiment):
    name = "hayou-fig10"
    title = "Width-1 ReLU ResNet output vs the GBM-point mixture law (Hayou Fig. 10, Prop. 3)"
    Spec = HayouFig10Spec
    suite = "hayou"
    order = 10
    table: ClassVar[dict[str, str]] = {
        "depth": "L",
        "n": "n",
        "ks_statistic": "KS D",
        "ks_pvalue": "KS p",
        "nonpositive_fraction": "P(Y_L <= 0)",
        "nonpositive_exact": "exact",
    }

    def full_settings(self) -> dict[str, Any]:
        return {"depths": (5, 10, 20, 50, 100, 500, 2000), "samples": 200_000}

    def smoke_settings(self) -> dict[str, Any]:
        return {"depths": (5, 50), "samples": 1000}

    def caption(self, spec: HayouFig10Spec) -> str:
        depths = ", ".join(str(d) for d in spec.depths)
        return (
            f"Width n = d = 1, ReLU, input x = {spec.x:g} so Y_0 = W_in x ~ N(0, x^2); "
            f"{spec.samples} networks per depth L in {{{depths}}} (exact-in-law sampler, seed "
            f"{spec.seed}). Histograms of the output Y_L against the density of the limit "
            "X_1 = 1{X_0 > 0} X_0 exp(B_1 - 1/2) + 1{X_0 <= 0} X_0 (Prop. 3); KS against its "
            "cdf. P(Y_L <= 0) against its exact value 1/2 + p_col(L)/2. The paper's depths "
            "are lost; these are our choices."
        )

    def compute(self, spec: HayouFig10Spec, progress: Progress | None = None) -> xr.Dataset:
        values = np.empty((len(spec.depths), spec.samples))
        for i, depth in enumerate(spec.depths):
            values[i] = sample_resnet(
                1,
                depth,
                "relu",
                samples=spec.samples,
                x=[spec.x],
                seed=derive_seed(spec.seed, WIDTH1_STREAM, 10, depth),
                device=spec.device,
            )[:, 0].numpy()
            if progress is not None:
                progress(i + 1, len(spec.depths))
        # the mixture cdf needs a quadrature per point: test once here, not at every redraw
        law = relu_width1_law(x=[spec.x])
        tests = [ks_test(row, law, level=spec.level) for row in values]
        return xr.Dataset(
            {
                "y_last": (("depth", "sample"), values),
                "ks_statistic": ("depth", [t.statistic for t in tests]),
                "ks_pvalue": ("depth", [t.pvalue for t in tests]),
            },
            coords={"depth": list(spec.depths)},
        )

    def summarize(self, dataset: xr.Dataset, spec: HayouFig10Spec) -> list[dict[str, Any]]:
        rows = []
        for depth in dataset.depth.values:
            y = dataset.y_last.sel(depth=depth).values
            nonpositive = int(np.sum(y <= 0))
            rows.append(
                {
                    "depth": int(depth),
                    "n": int(y.size),
                    "ks_statistic": float(dataset.ks_statistic.sel(depth=depth)),
                    "ks_pvalue": float(dataset.ks_pvalue.sel(depth=depth)),
                    "nonpositive": nonpositive,
                    "nonpositive_fraction": nonpositive / y.size,
                    "nonpositive_exact": float(relu_width1_nonpositive_probability(int(depth))),
                }
            )
        return rows

    def check(self, dataset: xr.Dataset, spec: HayouFig10Spec) -> list[Claim]:
        rows = self.summarize(dataset, spec)
        claims = depth_ks_claims(
            "C5",
            "fig10",
            rows,
            level=spec.level,
            law="the output Y_L follows the mixture law of X_1 (Prop. 3)",
            not_law="the law is visibly not the limit",
        )
        claims.append(
            _binomial_claim(
                "C5",
                "P(Y_L <= 0) = 1/2 + p_col(L)/2 at every depth (-> 1/2)",
                spec.level,
                rows,
                "nonpositive",
            )
        )
        return claims

    def draw(self, dataset: xr.Dataset, spec: HayouFig10Spec) -> Figure:
        rows = {r["depth"]: r for r in self.summarize(dataset, spec)}
        law = relu_width1_law(x=[spec.x])
        figure, axes = panel_grid(len(spec.depths))
        grid = np.linspace(-3.5 * spec.x, 5 * spec.x, 500)
        grid = grid[grid != 0]
        for ax, depth in zip(axes, spec.depths):
            y = dataset.y_last.sel(depth=depth).values
            ax.hist(y, bins=90, range=(grid[0], grid[-1]), density=True, color="#8fb3d9")
            ax.plot(grid, np.exp(law.logpdf(grid)), color="#c0392b", lw=1.4, label="law of X_1")
            row = rows[depth]
            ax.set_title(f"L = {depth}")
            ax.set_xlabel("Y_L")
            ax.text(
                0.98,
                0.97,
                f"KS D = {row['ks_statistic']:.4f}\np = {row['ks_pvalue']:.2g}\n"
                f"P(Y_L<=0) {row['nonpositive_fraction']:.4f}\n"
                f"(exact {row['nonpositive_exact']:.4f})",
                transform=ax.transAxes,
                va="top",
                ha="right",
                fontsize=7,
            )
        axes[0].set_ylabel("density")
        axes[0].legend(fontsize=7, frameon=False, loc="upper left")
        add_caption(figure, self.title, dataset.attrs["caption"])
        return figure
