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
from matplotlib.figure import Figure

from ..initialization import sample_resnet
from ..initialization.laws import gbm_law, relu_width1_collapse_probability
from ..stats import binomial_interval, binomial_test, ks_test
from .base import Claim, Experiment, ExperimentSpec, Progress
from .claims import bound, pvalue_test
from .hayou_common import depth_ks_claims
from .plotting import add_caption, panel_grid
from .spec_fields import Depths, Level, NonZero, Samples

__all__ = ["HayouFig1", "HayouFig1Spec"]


class HayouFig1Spec(ExperimentSpec):
    """Depths (ascending: the first is the 'small' depth, the last the 'large' one)."""

    depths: Depths = (5, 50, 500)
    samples: Samples = 20_000
    x: NonZero = 1.0
    level: Level = 1e-3


def _log_ratio(y0: np.ndarray, y_last: np.ndarray) -> np.ndarray:
    """``log(Y_L / Y_0)`` where ``Y_0 > 0`` and the network did not collapse, else NaN."""
    alive = (y0 > 0) & (y_last > 0)
    ratio = np.full(y0.shape, np.nan)
    ratio[alive] = np.log(y_last[alive] / y0[alive])
    return ratio


class HayouFig1(Experiment):
    name = "hayou-fig1"
    title = "Width-1 ReLU ResNet vs the GBM law (Hayou Fig. 1, Prop. 3)"
    Spec = HayouFig1Spec
    suite = "hayou"
    order = 1
    table: ClassVar[dict[str, str]] = {
        "depth": "L",
        "alive": "alive",
        "ks_statistic": "KS D",
        "ks_pvalue": "KS p",
        "collapse_fraction": "collapsed",
        "collapse_exact": "exact",
        "collapse_pvalue": "binom p",
    }

    def full_settings(self) -> dict[str, Any]:
        return {"depths": (5, 10, 20, 50, 100, 500, 2000), "samples": 200_000}

    def smoke_settings(self) -> dict[str, Any]:
        return {"depths": (5, 50), "samples": 1000}

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
        total = spec.samples * sum(spec.depths)
        done = 0
        y0 = np.empty((len(spec.depths), spec.samples))
        y_last = np.empty_like(y0)
        for i, depth in enumerate(spec.depths):

            def report(d: int, _t: int, offset: int = done) -> None:
                if progress is not None:
                    progress(offset + d, total)

            paths = sample_resnet(
                1,
                depth,
                "relu",
                samples=spec.samples,
                x=[spec.x],
                record=[0, depth],
                seed=spec.seed,
                device=spec.device,
                progress=report,
            )
            y0[i] = paths[:, 0, 0].cpu().numpy()
            y_last[i] = paths[:, 1, 0].cpu().numpy()
            done += spec.samples * depth
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

    def check(self, dataset: xr.Dataset, spec: HayouFig1Spec) -> list[Claim]:
        rows = self.summarize(dataset, spec)
        claims = depth_ks_claims(
            "C5",
            "fig1",
            rows,
            level=spec.level,
            law="log(Y_L/Y_0) given Y_0 > 0 and no collapse follows N(-1/2, 1)",
            not_law="the law is visibly not N(-1/2, 1)",
            n_key="alive",
        )
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

    def draw(self, dataset: xr.Dataset, spec: HayouFig1Spec) -> Figure:
        rows = {r["depth"]: r for r in self.summarize(dataset, spec)}
        law = gbm_law(1.0, 1.0).log_ratio()
        figure, axes = panel_grid(len(spec.depths))
        grid = np.linspace(-5.0, 4.0, 400)
        for ax, depth in zip(axes, spec.depths):
            ratio = dataset.log_ratio.sel(depth=depth).values
            ratio = ratio[np.isfinite(ratio)]
            row = rows[depth]
            ax.hist(
                ratio,
                bins=80,
                range=(-5.0, 4.0),
                density=True,
                color="#8fb3d9",
                edgecolor="none",
                label="ResNet, Eq. 1",
            )
            ax.plot(
                grid, np.exp(law.logpdf(grid)), color="#c0392b", lw=1.6, label="limit N(-1/2, 1)"
            )
            ax.set_title(f"L = {depth}")
            ax.set_xlabel("log(Y_L / Y_0)")
            ax.text(
                0.02,
                0.97,
                f"KS D = {row['ks_statistic']:.4f}\np = {row['ks_pvalue']:.2g}\n"
                f"collapsed {row['collapse_fraction']:.3g}\n"
                f"(exact {row['collapse_exact']:.3g})",
                transform=ax.transAxes,
                va="top",
                fontsize=8,
            )
        axes[0].set_ylabel("density")
        # one legend for the three panels, above them: inside a panel it covered the text box
        figure.legend(
            *axes[-1].get_legend_handles_labels(),
            loc="upper right",
            ncol=2,
            fontsize=7,
            frameon=False,
        )
        add_caption(figure, self.title, dataset.attrs["caption"])
        return figure
