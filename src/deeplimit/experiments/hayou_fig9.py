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
from matplotlib.axes import Axes

from ..activations import Linear
from ..initialization.laws import (
    gbm_law,
    relu_width1_law,
    relu_width1_nonpositive_probability,
)
from ..rng import derive_seed
from ..stats import binomial_interval, binomial_test, ks_test
from .base import Claim, Progress
from .claims import bound
from .hayou_common import (
    KS_COLUMNS,
    DepthSweep,
    DepthSweepSpec,
    columns,
    measured_panel,
    width1_depth_sweep,
)
from .spec_fields import Positive

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


class HayouFig9Spec(DepthSweepSpec):
    a: Positive = 1.0
    y0: Positive = 1.0


class HayouFig9(DepthSweep):
    name = "hayou-fig9"
    Spec = HayouFig9Spec
    table = columns(KS_COLUMNS + "flips: sign flips; flip_fraction: fraction; flips_exact: exact")
    ks_claim = "C4"
    legend: ClassVar[dict[str, str]] = {"data_label": "ResNet (Eq. 1)", "law_label": "GBM law"}
    more_panels = 1

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
        values = width1_depth_sweep(
            spec,
            Linear(spec.a),
            progress,
            seed=lambda depth: derive_seed(spec.seed, WIDTH1_STREAM, 9, depth),
            y0=[spec.y0],
        )
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

    def ks_law(self, spec: HayouFig9Spec, rows: list[dict]) -> tuple[str, str]:
        law = f"log|Y_L/Y_0| follows N({-(spec.a**2) / 2:g}, {spec.a**2:g})"
        return law, "the law is visibly not the limit"

    def more_claims(self, dataset: xr.Dataset, spec: HayouFig9Spec, rows: list[dict]) -> list:
        large = rows[-1]
        claims = []
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

    def panel(self, dataset: xr.Dataset, spec: HayouFig9Spec, row: dict) -> dict[str, Any]:
        centre = -(spec.a**2) / 2
        return {
            "values": np.log(np.abs(dataset.y_last.sel(depth=row["depth"]).values / spec.y0)),
            "span": (centre - 5 * spec.a, centre + 4 * spec.a),
            "bins": 80,
            "law": gbm_law(spec.a, 1.0).log_ratio().pdf,
            "note": f"{row['flips']} sign flips",
            "xlabel": r"$\log|Y_L / Y_0|$",
        }

    def draw_more(self, axes: list[Axes], rows: list[dict], spec: HayouFig9Spec) -> None:
        fine = np.unique(np.geomspace(1, max(spec.depths), 200).astype(int))
        exact = np.array([sign_flip_probability(int(d), spec.a) for d in fine])
        measured_panel(
            axes[0],
            spec.depths,
            [r["flip_fraction"] for r in rows],
            curve=(fine[exact > 1e-12], exact[exact > 1e-12], "exact"),
            xlabel="depth $L$",
            ylabel="P(sign flip)",
            xscale="log",
            yscale="log",
        )


# --------------------------------------------------------------------------------------------
# Fig. 10: ReLU with a random input, the output law


class HayouFig10Spec(DepthSweepSpec):
    x: Positive = 1.0


class HayouFig10(DepthSweep):
    name = "hayou-fig10"
    Spec = HayouFig10Spec
    table = columns(KS_COLUMNS + "nonpositive_fraction: P(Y_L <= 0); nonpositive_exact: exact")
    legend: ClassVar[dict[str, str]] = {"data_label": "ResNet (Eq. 1)", "law_label": "law of $X_1$"}
    legend_panel = 0
    ks_claim = "C5"

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
        values = width1_depth_sweep(
            spec,
            "relu",
            progress,
            seed=lambda depth: derive_seed(spec.seed, WIDTH1_STREAM, 10, depth),
            x=[spec.x],
        )
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

    def ks_law(self, spec: HayouFig10Spec, rows: list[dict]) -> tuple[str, str]:
        law = "the output Y_L follows the mixture law of X_1 (Prop. 3)"
        return law, "the law is visibly not the limit"

    def more_claims(self, dataset: xr.Dataset, spec: HayouFig10Spec, rows: list[dict]) -> list:
        claims = []
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

    def panel(self, dataset: xr.Dataset, spec: HayouFig10Spec, row: dict) -> dict[str, Any]:
        return {
            "values": dataset.y_last.sel(depth=row["depth"]).values,
            "span": (-3.5 * spec.x, 5 * spec.x),
            "bins": 90,
            "law": relu_width1_law(x=[spec.x]).pdf,
            "note": f"$P(Y_L \\leq 0)$ = {row['nonpositive_fraction']:.4f} "
            f"(exact {row['nonpositive_exact']:.4f})",
            "xlabel": "$Y_L$",
        }
