"""Hayou Fig. 1: the width-1 ReLU ResNet against the GBM law (Prop. 3, hayou.md §3.2).

With ``n = d = 1`` and ReLU, ``Y_0 = W_in x`` and the infinite-depth limit is
``X_1 = 1{X_0 > 0} X_0 exp(B_1 - 1/2) + 1{X_0 <= 0} X_0``. So given ``Y_0 > 0`` and no
collapse, ``log(Y_L / Y_0)`` tends to ``N(-1/2, 1)``; at small depth it does not. We show the
histograms at a small, a medium and a large depth with the limit density, the KS statistics,
and the fraction of networks that collapsed (some factor ``1 + Z_l / sqrt(L) <= 0``) next to
its exact value ``1 - (1 - Phi(-sqrt(L)))^L``.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import xarray as xr

from ..initialization.laws import gbm_law, relu_width1_collapse_probability
from ..stats import binomial_interval, binomial_test, ks_test
from .base import Claim, Progress
from .claims import bound, pvalue_test
from .hayou_common import (
    DepthSweep,
    DepthSweepSpec,
    columns,
    tex_number,
    width1_depth_sweep,
)
from .spec_fields import NonZero

__all__ = ["HayouFig1", "HayouFig1Spec"]


class HayouFig1Spec(DepthSweepSpec):
    x: NonZero = 1.0


def _log_ratio(y0: np.ndarray, y_last: np.ndarray) -> np.ndarray:
    """``log(Y_L / Y_0)`` where ``Y_0 > 0`` and the network did not collapse, else NaN."""
    alive = (y0 > 0) & (y_last > 0)
    ratio = np.full(y0.shape, np.nan)
    ratio[alive] = np.log(y_last[alive] / y0[alive])
    return ratio


class HayouFig1(DepthSweep):
    name = "hayou-fig1"
    Spec = HayouFig1Spec
    table = columns(
        "depth: L; alive: alive; ks_statistic: KS D; ks_pvalue: KS p; "
        "collapse_fraction: collapsed; collapse_exact: exact; collapse_pvalue: binom p"
    )
    ks_claim, ks_count = "C5", "alive"
    legend: ClassVar[dict[str, str]] = {
        "data_label": "ResNet (Eq. 1)",
        "law_label": r"limit $\mathcal{N}(-1/2,\,1)$",
    }

    def caption(self, spec: HayouFig1Spec) -> str:
        depths = ", ".join(str(d) for d in spec.depths)
        return (
            f"Width n = d = 1, ReLU, x = {spec.x:g}, Y_0 = W_in x, {spec.samples} networks per "
            f"depth L in {{{depths}}} (exact-in-law sampler, seed {spec.seed}). Histograms of "
            "log(Y_L/Y_0) over networks with Y_0 > 0 that did not collapse, against the "
            "infinite-depth law N(-1/2, 1) (Prop. 3). Collapse: fraction of networks with "
            "Y_0 > 0 and Y_L <= 0, exact value 1 - (1 - Phi(-sqrt L))^L."
        )

    def compute(self, spec: HayouFig1Spec, progress: Progress | None = None) -> xr.Dataset:
        ends = width1_depth_sweep(spec, "relu", progress, ends=True, x=[spec.x])
        y0, y_last = ends[:, :, 0], ends[:, :, 1]
        dataset = xr.Dataset(
            {
                "y0": (("depth", "sample"), y0),
                "y_last": (("depth", "sample"), y_last),
                "log_ratio": (("depth", "sample"), _log_ratio(y0, y_last)),
            },
            coords={"depth": list(spec.depths)},
        )
        dataset["log_ratio"].attrs["long_name"] = "log(Y_L / Y_0) given Y_0 > 0 and no collapse"
        return dataset

    def summarize(self, dataset: xr.Dataset, spec: HayouFig1Spec) -> list[dict[str, Any]]:
        """Per depth: KS against N(-1/2, 1), collapse fraction against the exact formula."""
        law = gbm_law(1.0, 1.0).log_ratio()
        rows = []
        for depth in dataset.depth.values:
            ratio = dataset.log_ratio.sel(depth=depth).values
            y0 = dataset.y0.sel(depth=depth).values
            y_last = dataset.y_last.sel(depth=depth).values
            positive = y0 > 0
            collapsed = int(np.sum(positive & (y_last <= 0)))
            started = int(np.sum(positive))
            exact = float(relu_width1_collapse_probability(int(depth)))
            ks = ks_test(ratio[np.isfinite(ratio)], law, level=spec.level)
            interval = binomial_interval(collapsed, started, level=0.95)
            rows.append(
                {
                    "depth": int(depth),
                    "alive": int(np.isfinite(ratio).sum()),
                    "ks_statistic": ks.statistic,
                    "ks_pvalue": ks.pvalue,
                    "ks_passed": ks.passed,
                    "collapsed": collapsed,
                    "started_positive": started,
                    "collapse_fraction": collapsed / started,
                    "collapse_low": float(interval.low),
                    "collapse_high": float(interval.high),
                    "collapse_exact": exact,
                    "collapse_pvalue": binomial_test(collapsed, started, exact).pvalue,
                    "absorbed_moved": int(np.sum((y0 <= 0) & (y_last != y0))),
                }
            )
        return rows

    def ks_law(self, spec: HayouFig1Spec, rows: list[dict]) -> tuple[str, str]:
        return (
            "log(Y_L/Y_0) given Y_0 > 0 and no collapse follows N(-1/2, 1)",
            "the law is visibly not N(-1/2, 1)",
        )

    def more_claims(self, dataset: xr.Dataset, spec: HayouFig1Spec, rows: list[dict]) -> list:
        claims = []
        worst = min(rows, key=lambda r: r["collapse_pvalue"])
        claims.append(
            Claim.family(
                "C6",
                "Collapse frequency given Y_0 > 0 equals 1 - (1 - Phi(-sqrt L))^L",
                {
                    f"L = {r['depth']}": pvalue_test(
                        r["collapse_pvalue"],
                        level=spec.level,
                        n=r["started_positive"],
                        test="exact binomial",
                    )
                    for r in rows
                },
                level=spec.level,
                what="depths",
                statistic="smallest binomial p-value over depths",
                details={"depth_of_smallest_p": worst["depth"]},
            )
        )
        claims.append(
            Claim.bound(
                "C5",
                "Y_0 <= 0 is absorbing: Y_L = Y_0 exactly",
                bound(
                    float(sum(r["absorbed_moved"] for r in rows)),
                    equals=0,
                    n=int(sum(dataset.sizes["sample"] - r["started_positive"] for r in rows)),
                ),
                statistic="networks with Y_0 <= 0 whose Y_L moved",
            )
        )
        return claims

    def panel(self, dataset: xr.Dataset, spec: HayouFig1Spec, row: dict) -> dict[str, Any]:
        return {
            "values": dataset.log_ratio.sel(depth=row["depth"]).values,
            "span": (-5.0, 4.0),
            "bins": 80,
            "law": gbm_law(1.0, 1.0).log_ratio().pdf,
            "note": f"collapsed {tex_number(row['collapse_fraction'], 3)} "
            f"(exact {tex_number(row['collapse_exact'], 3)})",
            "xlabel": r"$\log(Y_L / Y_0)$",
        }
