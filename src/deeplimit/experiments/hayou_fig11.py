"""Hayou Figs. 11-12 (App. K.2): more histograms of the width-1 ResNet with the OU activation.

With ``phi(x) = 2 sigma/(alpha beta sqrt(pi)) exp(E(beta x)^2)`` and ``theta = sigma^2/alpha^2``,
the output of the width-1 SDE is ``X_1 = erfi(U_1)/beta`` with
``U_1 ~ N(E(beta X_0) e^{-theta}, (1 - e^{-2 theta})/2)`` (Prop. 4, C7).

* Fig. 11: the output ``Y_L`` itself (not ``U``) for several starting points ``Y_0``, against
  the density of ``X_1``; KS on ``U_L = E(beta Y_L)`` (the same test as on ``Y_L``, ``E`` being
  increasing) and the median ``erfi(e^{-theta} E(beta Y_0))/beta``.
* Fig. 12: several mean-reversion rates ``theta`` (through ``alpha``) at one start. For
  ``theta < log(4/3)/2`` the output has a finite fourth moment and the martingale property
  ``E Y_L = Y_0`` (C2) can be tested on means (a z-test); above it only on quantiles.

The paper's parameters are lost; we use ``alpha = beta = sigma = 1``, starts ``-1, 0.5, 2`` at
``L = 300`` (Fig. 11) and ``alpha = 3, 1, 0.5`` at ``L = 1000`` (Fig. 12: the Euler error grows
with ``theta``; hayou.md §7: ``L = 1000`` passes KS with 4e4 samples).
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np
import torch
import xarray as xr
from matplotlib.figure import Figure

from ..activations import OU
from ..initialization.laws import ou_law
from ..initialization.network import sample_resnet
from ..rng import derive_seed
from ..special import erfi_inverse
from ..stats import binomial_test, ks_test, mean_zscore
from .base import Claim, ExperimentSpec, Progress
from .claims import pvalue_test
from .hayou_common import (
    OU_COLOR,
    HayouExperiment,
    columns,
    density_panel,
    ks_text,
    panels,
    reference_line,
)
from .spec_fields import DistinctFloats, Level, Positive, PositiveFloats, PositiveInt, Samples

__all__ = ["HayouFig11", "HayouFig11Spec", "HayouFig12", "HayouFig12Spec"]

OU_STREAM = 18
# E X_1^k < oo iff k < 1/(2 s^2), s^2 = (1 - e^{-2 theta})/2: k = 4 iff theta < log(4/3)/2
FINITE_FOURTH_MOMENT_THETA = 0.5 * math.log(4 / 3)


def _simulate(
    activation: OU, y0: float, depth: int, samples: int, seed: int, device: str
) -> np.ndarray:
    return sample_resnet(1, depth, activation, samples=samples, y0=[y0], seed=seed, device=device)[
        :, 0
    ].numpy()


def _simulate_cases(
    cases: list[tuple[OU, float]], spec: Any, figure: int, progress: Progress | None
) -> np.ndarray:
    """Y_L for every (activation, Y_0) case, ``spec.samples`` each; case ``i`` of figure
    ``figure`` draws from its own seed stream."""
    outputs = np.empty((len(cases), spec.samples))
    for i, (activation, y0) in enumerate(cases):
        seed = derive_seed(spec.seed, OU_STREAM, figure, i)
        outputs[i] = _simulate(activation, y0, spec.depth, spec.samples, seed, spec.device)
        if progress is not None:
            progress(i + 1, len(cases))
    return outputs


def _rows(cases: list[tuple[OU, float]], outputs: np.ndarray, level: float) -> list[dict]:
    rows = []
    for (activation, y0), y in zip(cases, outputs):
        law = ou_law(activation.alpha, activation.beta, activation.sigma, y0)
        u = erfi_inverse(torch.from_numpy(activation.beta * y)).numpy()
        ks = ks_test(u, law.u_law(), level=level)
        median = law.median()
        rows.append(
            {
                "theta": activation.theta,
                "alpha": activation.alpha,
                "y0": y0,
                "n": int(y.size),
                "ks_statistic": ks.statistic,
                "ks_pvalue": ks.pvalue,
                "u_mean": float(u.mean()),
                "u_mean_expected": law.u_mean,
                "u_var": float(u.var(ddof=1)),
                "u_var_expected": law.u_var,
                "median": float(np.median(y)),
                "median_expected": float(median),
                "median_pvalue": binomial_test(int(np.sum(y < median)), int(y.size), 0.5).pvalue,
                "mean": float(y.mean()),
            }
        )
    return rows


def _family_claim(
    claim_id: str, statement: str, rows: list[dict], key: str, level: float, label: str
) -> Claim:
    test = "KS" if key == "ks_pvalue" else "exact binomial"
    return Claim.family(
        claim_id,
        statement,
        {_case(r): pvalue_test(r[key], level=level, n=r["n"], test=test) for r in rows},
        level=level,
        what="cases",
        statistic=f"smallest {label}",
    )


def _case(row: dict, math: bool = False) -> str:
    if math:
        return rf"$\theta$ = {row['theta']:.3g}, $Y_0$ = {row['y0']:g}"
    return f"theta = {row['theta']:.3g}, Y_0 = {row['y0']:g}"


LEGEND = {"data_label": "ResNet (Eq. 1)", "law_label": "law of $X_1$"}


def _plot(rows: list[dict], outputs: np.ndarray, cases: list[tuple[OU, float]]) -> Figure:
    with panels(len(rows)) as (figure, axes):
        for ax, row, y, (activation, y0) in zip(axes, rows, outputs, cases):
            law = ou_law(activation.alpha, activation.beta, activation.sigma, y0)
            density_panel(
                ax,
                values=y,
                span=(law.ppf(0.01), law.ppf(0.99)),
                bins=80,
                law=law.pdf,
                title=f"{_case(row, math=True)}\n{ks_text(row)}\nmedian {row['median']:.3f} "
                f"(law {row['median_expected']:.3f}, dotted)",
                xlabel="$Y_L$ (1-99 % range of the law)",
                color=OU_COLOR,
                **(LEGEND if ax is axes[0] else {}),
            )
            reference_line(ax, x=row["median_expected"], extent=(0, ax.dataLim.y1))
        axes[0].set_ylabel("density")
    return figure


_TABLE = columns(
    "theta: theta; y0: Y_0; n: n; ks_statistic: KS D (U); ks_pvalue: KS p; median: median Y_L; "
    "median_expected: law; mean: mean Y_L"
)


class OUCasesSpec(ExperimentSpec):
    depth: PositiveInt = 300
    samples: Samples = 10_000
    beta: Positive = 1.0
    sigma: Positive = 1.0
    level: Level = 1e-3


class _OUCases(HayouExperiment):
    """Width-1 OU-activation networks for several (activation, Y_0) cases: one histogram of
    ``Y_L`` a case against the law of ``X_1``."""

    table = _TABLE

    def _cases(self, spec: Any) -> list[tuple[OU, float]]:
        raise NotImplementedError

    def _coordinate(self, spec: Any) -> tuple[str, list[float]]:
        """The name and values of what differs between the cases."""
        raise NotImplementedError

    def compute(self, spec: Any, progress: Progress | None = None) -> xr.Dataset:
        outputs = _simulate_cases(self._cases(spec), spec, self.order, progress)
        name, values = self._coordinate(spec)
        return xr.Dataset(
            {"y_last": (("case", "sample"), outputs)},
            coords={"case": list(range(len(outputs))), name: ("case", values)},
        )

    def summarize(self, dataset: xr.Dataset, spec: Any) -> list[dict[str, Any]]:
        return _rows(self._cases(spec), dataset.y_last.values, spec.level)

    def draw(self, dataset: xr.Dataset, spec: Any) -> Figure:
        return _plot(self.summarize(dataset, spec), dataset.y_last.values, self._cases(spec))


# --------------------------------------------------------------------------------------------
# Fig. 11: several starting points


class HayouFig11Spec(OUCasesSpec):
    starts: DistinctFloats = (-1.0, 0.5, 2.0)
    alpha: Positive = 1.0


class HayouFig11(_OUCases):
    name = "hayou-fig11"
    Spec = HayouFig11Spec
    full_scale: ClassVar[dict[str, Any]] = {
        "starts": (-2.0, -1.0, 0.0, 0.5, 2.0, 5.0),
        "depth": 3000,
        "samples": 40_000,
    }
    smoke_scale: ClassVar[dict[str, Any]] = {"starts": (0.5, 2.0), "depth": 30, "samples": 300}

    def caption(self, spec: HayouFig11Spec) -> str:
        starts = ", ".join(f"{y:g}" for y in spec.starts)
        theta = spec.sigma**2 / spec.alpha**2
        return (
            f"Width n = 1, OU activation (alpha, beta, sigma) = ({spec.alpha:g}, {spec.beta:g}, "
            f"{spec.sigma:g}), theta = {theta:g}, depth L = {spec.depth}, starts Y_0 in "
            f"{{{starts}}}, {spec.samples} networks each (exact-in-law sampler, seed "
            f"{spec.seed}). Histograms of Y_L against the density of X_1 = erfi(U_1)/beta "
            "(Prop. 4) on the law's 1-99 % range (the tails are heavy); dotted: the median "
            "erfi(e^-theta E(beta Y_0))/beta. KS is computed on U_L = E(beta Y_L). The paper's "
            "parameters are lost; these are our choices."
        )

    def _cases(self, spec: HayouFig11Spec) -> list[tuple[OU, float]]:
        activation = OU(alpha=spec.alpha, beta=spec.beta, sigma=spec.sigma)
        return [(activation, y0) for y0 in spec.starts]

    def _coordinate(self, spec: HayouFig11Spec) -> tuple[str, list[float]]:
        return "y0", list(spec.starts)

    def check(self, dataset: xr.Dataset, spec: HayouFig11Spec) -> list[Claim]:
        rows = self.summarize(dataset, spec)
        return [
            _family_claim(
                "C7",
                f"At L = {spec.depth}, U_L = E(beta Y_L) ~ N(U_0 e^-theta, (1 - e^-2theta)/2) "
                "from every start",
                rows,
                "ks_pvalue",
                spec.level,
                "KS p-value",
            ),
            _family_claim(
                "C7",
                "median(Y_L) = erfi(e^-theta E(beta Y_0))/beta from every start",
                rows,
                "median_pvalue",
                spec.level,
                "binomial p-value of P(Y_L < median) = 1/2",
            ),
        ]


# --------------------------------------------------------------------------------------------
# Fig. 12: several theta


class HayouFig12Spec(OUCasesSpec):
    alphas: PositiveFloats = (3.0, 1.0, 0.5)
    y0: float = 0.5
    depth: PositiveInt = 1000


class HayouFig12(_OUCases):
    name = "hayou-fig12"
    Spec = HayouFig12Spec
    full_scale: ClassVar[dict[str, Any]] = {
        "alphas": (4.0, 3.0, 2.0, 1.0, 0.5),
        "depth": 3000,
        "samples": 40_000,
    }
    smoke_scale: ClassVar[dict[str, Any]] = {"alphas": (3.0, 1.0), "depth": 30, "samples": 300}

    def caption(self, spec: HayouFig12Spec) -> str:
        thetas = ", ".join(f"{spec.sigma**2 / a**2:.3g}" for a in spec.alphas)
        alphas = ", ".join(f"{a:g}" for a in spec.alphas)
        return (
            f"Width n = 1, OU activation with alpha in {{{alphas}}} (theta = sigma^2/alpha^2 in "
            f"{{{thetas}}}), beta = {spec.beta:g}, sigma = {spec.sigma:g}, Y_0 = {spec.y0:g}, "
            f"depth L = {spec.depth}, {spec.samples} networks each (exact-in-law sampler, seed "
            f"{spec.seed}). Histograms of Y_L against the density of X_1 (Prop. 4); KS on "
            "U_L = E(beta Y_L). For theta < log(4/3)/2 the fourth moment is finite and the "
            "martingale mean E Y_L = Y_0 is tested. The paper's parameters are lost; these are "
            "our choices."
        )

    def _cases(self, spec: HayouFig12Spec) -> list[tuple[OU, float]]:
        return [(OU(alpha=a, beta=spec.beta, sigma=spec.sigma), spec.y0) for a in spec.alphas]

    def _coordinate(self, spec: HayouFig12Spec) -> tuple[str, list[float]]:
        return "alpha", list(spec.alphas)

    def check(self, dataset: xr.Dataset, spec: HayouFig12Spec) -> list[Claim]:
        rows = self.summarize(dataset, spec)
        claims = [
            _family_claim(
                "C7",
                f"At L = {spec.depth}, U_L = E(beta Y_L) follows the OU law for every theta",
                rows,
                "ks_pvalue",
                spec.level,
                "KS p-value",
            )
        ]
        # a finite fourth moment, so that the standard error of the mean is itself reliable
        finite = [(i, r) for i, r in enumerate(rows) if r["theta"] < FINITE_FOURTH_MOMENT_THETA]
        if finite:
            thetas = ", ".join(f"{r['theta']:.3g}" for _, r in finite)
            tests = {
                f"theta = {r['theta']:.3g}": mean_zscore(
                    dataset.y_last.values[i], spec.y0, level=spec.level
                )
                for i, r in finite
            }
            claims.append(
                Claim.family(
                    "C2",
                    f"Martingale (exact at any depth): E Y_L = Y_0 = {spec.y0:g} for theta "
                    f"< log(4/3)/2, where E Y^4 < oo (theta in {{{thetas}}})",
                    tests,
                    level=spec.level,
                    what="thetas",
                )
            )
        return claims
