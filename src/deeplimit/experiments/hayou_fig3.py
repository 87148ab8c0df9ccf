"""Hayou Fig. 3: the width-1 ResNet with the OU activation against the OU law (Prop. 4).

With ``phi(x) = 2 sigma / (alpha beta sqrt(pi)) exp(E(beta x)^2)`` (``E = erfi^{-1}``), the
width-1 SDE ``dX = |phi(X)| dB`` maps through ``U = E(beta X)`` to the Ornstein-Uhlenbeck
process ``dU = -theta U dt + sqrt(theta) dB`` with ``theta = sigma^2 / alpha^2``, so
``U_1 ~ N(U_0 e^{-theta}, (1 - e^{-2 theta}) / 2)`` given ``X_0`` (hayou.md §3.3, C7). We run
the ResNet of Eq. 1 from a fixed ``Y_0`` at several depths and compare ``E(beta Y_L)`` with that
normal law; ``X_1`` has heavy tails (infinite variance for ``theta >= ln 2 / 2``), so the
comparison is made on ``U`` and on medians, never on means.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np
import torch
import xarray as xr

from ..activations import OU
from ..initialization.laws import ou_law
from ..special import erfi_inverse
from ..stats import binomial_test, ks_test
from .base import Claim, Progress
from .claims import pvalue_test
from .hayou_common import (
    KS_COLUMNS,
    OU_COLOR,
    DepthSweep,
    DepthSweepSpec,
    columns,
    width1_depth_sweep,
)
from .spec_fields import Depths, Finite, Positive, Samples

__all__ = ["HayouFig3", "HayouFig3Spec"]


class HayouFig3Spec(DepthSweepSpec):
    depths: Depths = (10, 100, 1000)
    samples: Samples = 10_000
    y0: Finite = 0.5
    alpha: Positive = 1.0
    beta: Positive = 1.0
    sigma: Positive = 1.0


class HayouFig3(DepthSweep):
    name = "hayou-fig3"
    Spec = HayouFig3Spec
    table = columns(
        KS_COLUMNS
        + "u_mean: mean U; u_mean_expected: limit; u_var: var U; u_var_expected: limit ; "
        "median_y: median Y; median_expected: limit  "
    )

    full_scale: ClassVar[dict[str, Any]] = {
        "depths": (10, 30, 100, 300, 1000, 3000),
        "samples": 40_000,
    }

    smoke_scale: ClassVar[dict[str, Any]] = {"depths": (5, 50), "samples": 500}
    ks_claim, ks_resolution = "C7", False
    legend: ClassVar[dict[str, str]] = {
        "data_label": "ResNet (Eq. 1)",
        "law_label": r"OU law of $U_1$",
    }

    def caption(self, spec: HayouFig3Spec) -> str:
        theta = spec.sigma**2 / spec.alpha**2
        depths = ", ".join(str(d) for d in spec.depths)
        return (
            f"Width n = 1, OU activation (alpha, beta, sigma) = ({spec.alpha:g}, {spec.beta:g}, "
            f"{spec.sigma:g}), theta = {theta:g}, fixed Y_0 = {spec.y0:g}, {spec.samples} "
            f"networks per depth L in {{{depths}}} (exact-in-law sampler, seed {spec.seed}). "
            "Histograms of U_L = E(beta Y_L) against the OU law "
            "N(U_0 e^-theta, (1 - e^-2theta)/2) of U_1 (Prop. 4); KS statistics per depth."
        )

    def _law(self, spec: HayouFig3Spec) -> Any:
        return ou_law(alpha=spec.alpha, beta=spec.beta, sigma=spec.sigma, y0=spec.y0)

    def compute(self, spec: HayouFig3Spec, progress: Progress | None = None) -> xr.Dataset:
        activation = OU(alpha=spec.alpha, beta=spec.beta, sigma=spec.sigma)
        y_last = width1_depth_sweep(spec, activation, progress, y0=[spec.y0])
        u_last = erfi_inverse(torch.from_numpy(spec.beta * y_last)).numpy()
        return xr.Dataset(
            {
                "y_last": (("depth", "sample"), y_last),
                "u_last": (("depth", "sample"), u_last),
            },
            coords={"depth": list(spec.depths)},
        )

    def summarize(self, dataset: xr.Dataset, spec: HayouFig3Spec) -> list[dict[str, Any]]:
        law = self._law(spec)
        u_law = law.u_law()
        median = law.median()
        rows = []
        for depth in dataset.depth.values:
            u = dataset.u_last.sel(depth=depth).values
            y = dataset.y_last.sel(depth=depth).values
            ks = ks_test(u, u_law, level=spec.level)
            below = int(np.sum(y < median))
            rows.append(
                {
                    "depth": int(depth),
                    "n": int(u.size),
                    "ks_statistic": ks.statistic,
                    "ks_pvalue": ks.pvalue,
                    "u_mean": float(u.mean()),
                    "u_var": float(u.var(ddof=1)),
                    "u_mean_expected": float(u_law.mean()),
                    "u_var_expected": float(u_law.var()),
                    "median_y": float(np.median(y)),
                    "median_expected": float(median),
                    "median_pvalue": binomial_test(below, int(y.size), 0.5).pvalue,
                }
            )
        return rows

    def ks_law(self, spec: HayouFig3Spec, rows: list[dict]) -> tuple[str, str]:
        large = rows[-1]
        return (
            f"U_L = E(beta Y_L) follows the OU law of U_1 "
            f"N({large['u_mean_expected']:.4f}, {large['u_var_expected']:.4f})",
            "the law of U_L is visibly not the OU law",
        )

    def more_claims(self, dataset: xr.Dataset, spec: HayouFig3Spec, rows: list[dict]) -> list:
        large = rows[-1]
        return [
            Claim.from_test(
                "C7",
                f"At L = {large['depth']}, median(Y_L) = erfi(e^-theta E(beta Y_0))/beta "
                f"= {large['median_expected']:.4f}",
                pvalue_test(
                    large["median_pvalue"], level=spec.level, n=large["n"], test="exact binomial"
                ),
                statistic="binomial p-value of P(Y_L < median) = 1/2",
                note=f"sample median {large['median_y']:.4f}",
            ),
        ]

    def panel(self, dataset: xr.Dataset, spec: HayouFig3Spec, row: dict) -> dict[str, Any]:
        u_law = self._law(spec).u_law()
        center, spread = u_law.mean(), math.sqrt(u_law.var())
        return {
            "values": dataset.u_last.sel(depth=row["depth"]).values,
            "span": (center - 4.5 * spread, center + 4.5 * spread),
            "bins": 70,
            "law": u_law.pdf,
            "xlabel": r"$U_L = E(\beta Y_L)$",
            "color": OU_COLOR,
        }
