"""Hayou Figs. 13-21 (App. K.3): histograms of the log-growth across widths and hidden layers.

* Fig. 13: the non-scaled ``LG_L = log(||phi(Y_L)|| / ||phi(Y_0)||)`` for several widths on one
  axis: it concentrates as the width grows (Thm 2: ``LG_1 -> 1/4``), so a Gaussian of fixed
  scale is "no longer accurate"; its spread is ``~ 1/sqrt(n)`` (Thm 1).
* Figs. 14-17: the *scaled* (standardized) ``LG_l`` at several hidden layers ``l`` of a depth-``L``
  network, one figure per width, against ``N(0, 1)``: "the Gaussian distribution fits better
  the last layers", since the Quasi-GBM limit holds for ``l = floor(tL)`` as ``L -> oo``; at
  ``l = 1`` the law is that of one Euler step, ``log(1 + u)``-like and skewed.
* Figs. 18-21: the same histograms *non-scaled*: ``LG_l`` spreads like ``sqrt(t/n)``
  (``t = l/L``), so the histograms concentrate to a Dirac mass as the width grows.

The paper's depth, hidden layers and widths are lost: we use ``L = 200``, ``l in {1, 10, 50,
200}`` and widths 2, 3, 4, 8 (Figs. 14/18, 15/19, 16/20, 17/21). All figures look at the same
networks as Fig. 5 (``log_growth_run`` computes them once per process).
"""

from __future__ import annotations

import itertools
import math
from typing import Any, ClassVar

import numpy as np
import scipy.stats as sps
import xarray as xr
from matplotlib.figure import Figure
from pydantic import model_validator

from ..initialization.meanfield import meanfield_log_growth
from .base import Claim, ExperimentSpec, Progress
from .claims import bound
from .hayou_common import (
    COLORS,
    LAW_COLOR,
    OU_COLOR,
    ActivationName,
    HayouExperiment,
    LogGrowthExperiment,
    LogGrowthSpec,
    activation_kind,
    columns,
    density_panel,
    histogram,
    limit_claim,
    log_growth_run,
    log_growth_runs,
    moments,
    panels,
    reference_line,
    runnable_activation,
    samples_text,
    sizes_text,
    width_panel,
)
from .spec_fields import Level, Positive, PositiveInt, Samples, Seeds

__all__ = [
    "HayouFig13",
    "HayouFig13Spec",
    "HayouFig14",
    "HayouFig15",
    "HayouFig16",
    "HayouFig17",
    "HayouFig18",
    "HayouFig19",
    "HayouFig20",
    "HayouFig21",
    "HiddenLayersSpec",
]

BINS = 60
Z_EDGES = np.linspace(-5.0, 5.0, BINS + 1)


# --------------------------------------------------------------------------------------------
# Fig. 13


class HayouFig13Spec(LogGrowthSpec):
    """Same sizes as Fig. 5 by default, so both figures share their networks."""


class HayouFig13(LogGrowthExperiment):
    name = "hayou-fig13"
    Spec = HayouFig13Spec
    table = columns(
        "width: n; alive: alive; mean: E LG_L; sd: sd; scaled_variance: n Var; "
        "scaled_variance_se: SE"
    )

    def caption(self, spec: HayouFig13Spec) -> str:
        return (
            f"{sizes_text(spec)}, "
            f"q0 = {spec.q0:g}, {samples_text(spec)} (the networks of Fig. 5; seed "
            f"{spec.seed}). "
            "Density histograms of the non-scaled LG_L = log(||phi(Y_L)|| / ||phi(Y_0)||) over "
            "networks that did not collapse, on one axis: the law concentrates at the "
            "infinite-width limit (dashed) as n grows, with spread ~ 1/sqrt(n). Right: n Var(LG_L)"
            " against n. Parameters lost in the paper; these are our choices."
        )

    def compute(self, spec: HayouFig13Spec, progress: Progress | None = None) -> xr.Dataset:
        activation = runnable_activation(spec.activation)
        stats: dict[str, list[float]] = {}
        edges_all, density_all = [], []
        for run in log_growth_runs(spec, progress):
            growth = run.log_growth[run.alive, -1]
            row = moments(growth)
            for key in ("n", "mean", "sd", "se"):
                stats.setdefault(key, []).append(row[key])
            edges = np.linspace(row["mean"] - 4.5 * row["sd"], row["mean"] + 4.5 * row["sd"], 81)
            edges_all.append(edges)
            density_all.append(histogram(growth, edges))
        return xr.Dataset(
            {
                "alive": ("width", np.asarray(stats["n"])),
                "mean": ("width", np.asarray(stats["mean"])),
                "sd": ("width", np.asarray(stats["sd"])),
                "se": ("width", np.asarray(stats["se"])),
                "hist_edges": (("width", "edge"), np.array(edges_all)),
                "hist_density": (("width", "bin"), np.array(density_all)),
            },
            coords={"width": list(spec.widths)},
            attrs={
                "limit": float(meanfield_log_growth(activation, spec.q0, 1.0)),
            },
        )

    def summarize(self, dataset: xr.Dataset, spec: HayouFig13Spec) -> list[dict[str, Any]]:
        rows = []
        for i, width in enumerate(dataset.width.values):
            n, alive = int(width), int(dataset.alive.values[i])
            sd = float(dataset.sd.values[i])
            rows.append(
                {
                    "width": n,
                    "alive": alive,
                    "mean": float(dataset["mean"].values[i]),
                    "sd": sd,
                    "se": float(dataset.se.values[i]),
                    "scaled_variance": n * sd * sd,
                    # the sample variance of near-Gaussian values has relative SE sqrt(2/M)
                    "scaled_variance_se": n * sd * sd * math.sqrt(2.0 / alive),
                }
            )
        return rows

    def check(self, dataset: xr.Dataset, spec: HayouFig13Spec) -> list[Claim]:
        rows = self.summarize(dataset, spec)
        claims = []
        steps = list(itertools.pairwise(rows))
        if steps:
            worst = max(steps, key=lambda pair: pair[1]["sd"] / pair[0]["sd"])
            claims.append(
                Claim.bound(
                    "fig13-concentration",
                    "The spread of LG_L shrinks at every step up in width (Thm 2)",
                    bound(
                        worst[1]["sd"] / worst[0]["sd"],
                        below=1,
                        n=min(worst[0]["alive"], worst[1]["alive"]),
                    ),
                    statistic=f"largest sd ratio sd(n')/sd(n) (n = {worst[0]['width']} -> "
                    f"{worst[1]['width']})",
                    note="point estimates (relative SE of sd ~ 1/sqrt(2M))",
                    requires={
                        f"n = {a['width']} -> {b['width']}": bound(b["sd"], below=a["sd"])
                        for a, b in steps
                    },
                )
            )
        if activation_kind(spec.activation) == "relu":
            low, high = 0.95, 1.20
            worst = max(
                rows,
                key=lambda r: (
                    max(low - r["scaled_variance"], r["scaled_variance"] - high)
                    / r["scaled_variance_se"]
                ),
            )
            bands = {
                f"n = {r['width']}": bound(
                    r["scaled_variance"],
                    within=(low - 3 * r["scaled_variance_se"], high + 3 * r["scaled_variance_se"]),
                    n=r["alive"],
                    fmt=".3f",
                )
                for r in rows
            }
            claims.append(
                Claim.bound(
                    "fig13-scaling",
                    "n Var(LG_L) stays in [0.95, 1.20] at every width: the spread is "
                    "1/sqrt(n) (Thm 1: Var R = 1/n, plus the O(1/n) variance of the random "
                    "drift)",
                    bands[f"n = {worst['width']}"],
                    statistic=f"n Var(LG_L) farthest outside the band (n = {worst['width']})",
                    note=f"[{low}, {high}] ± 3 SE, every width",
                    requires=bands,
                )
            )
        claims.append(limit_claim("fig13-limit", spec, rows[-1], float(dataset.attrs["limit"])))
        return claims

    def draw(self, dataset: xr.Dataset, spec: HayouFig13Spec) -> Figure:
        rows = self.summarize(dataset, spec)
        with panels(2, columns=2, size=(3.2, 2.5)) as (figure, axes):
            ax = axes[0]
            for color, row, edges, density in zip(
                COLORS * 2, rows, dataset.hist_edges.values, dataset.hist_density.values
            ):
                ax.stairs(density, edges, color=color, lw=1.2, label=f"$n$ = {row['width']}")
            edges = dataset.hist_edges.values
            ax.set_xlim(max(edges[:, 0].min(), -3.0), min(edges[:, -1].max(), 2.0))
            ax.set_ylim(0, 1.35 * dataset.hist_density.values.max())
            reference_line(
                ax,
                x=float(dataset.attrs["limit"]),
                extent=(0, dataset.hist_density.values.max()),
                ls="--",
                label=r"$n = \infty$",
            )
            ax.set(xlabel="$LG_L$ (non-scaled)", ylabel="density")
            width_panel(
                axes[1],
                rows,
                "scaled_variance",
                "scaled_variance_se",
                ylabel=r"$n\,\mathrm{Var}(LG_L)$",
            )
            axes[1].set_xscale("log", base=2)
            reference_line(
                axes[1], y=1.0, color=LAW_COLOR, ls="-", label=r"1 (Var of $W_1/\sqrt{n}$)"
            )
        return figure


# --------------------------------------------------------------------------------------------
# Figs. 14-21


class HiddenLayersSpec(ExperimentSpec):
    """One width; ``hidden_layers`` increasing in ``[1, depth]``."""

    width: PositiveInt = 2
    depth: Seeds = 200
    hidden_layers: tuple[int, ...] = (1, 10, 50, 200)
    samples: Samples = 100_000
    activation: ActivationName = "relu"
    q0: Positive = 1.0
    level: Level = 1e-3

    @model_validator(mode="after")
    def _layers_within_depth(self) -> HiddenLayersSpec:
        layers = self.hidden_layers
        if (
            len(layers) < 2
            or list(layers) != sorted(set(layers))
            or layers[0] < 1
            or layers[-1] > self.depth
        ):
            raise ValueError(
                f"hidden_layers must be at least two distinct increasing layers in [1, depth = "
                f"{self.depth}], got {layers}"
            )
        return self


class _HiddenLayerHistograms(HayouExperiment):
    """Histograms of ``LG_l`` at the hidden layers of one width (scaled or not)."""

    scaled: ClassVar[bool]
    table = columns(
        "layer: l; t: t = l/L; alive: alive; mean: E LG_l; sd: sd; spread_ratio: sd sqrt(nL/l); "
        "skew: skew; skew_se: SE; ks_distance: D to N(0,1) (standardized)"
    )

    full_scale: ClassVar[dict[str, Any]] = {
        "depth": 1000,
        "hidden_layers": (1, 10, 100, 500, 1000),
        "samples": 400_000,
    }

    smoke_scale: ClassVar[dict[str, Any]] = {
        "depth": 20,
        "hidden_layers": (1, 5, 20),
        "samples": 400,
    }

    def caption(self, spec: HiddenLayersSpec) -> str:
        layers = ", ".join(str(layer) for layer in spec.hidden_layers)
        view = (
            "standardized (LG_l - mean)/sd against N(0, 1)"
            if self.scaled
            else "non-scaled LG_l, with the Gaussian N(mean, t/n) of the Quasi-GBM spread"
        )
        kind = activation_kind(spec.activation)
        applies = (kind == "relu") if self.scaled else kind in ("relu", "identity")
        note = (
            ""
            if applies
            else f" The paper's claim for this figure concerns ReLU, not {spec.activation}."
        )
        return (
            f"Activation {spec.activation}, width n = {spec.width}, depth L = {spec.depth}, "
            f"hidden layers l in {{{layers}}}, q0 = {spec.q0:g}, {spec.samples} networks (the "
            f"networks of Fig. 5 for the default sizes; seed {spec.seed}). Histograms of "
            f"LG_l = log(||phi(Y_l)|| / ||phi(Y_0)||) over networks that did not collapse, {view}"
            ". Parameters lost in the paper; these are our choices (hayou.md §7)." + note
        )

    def compute(self, spec: HiddenLayersSpec, progress: Progress | None = None) -> xr.Dataset:
        activation = runnable_activation(spec.activation)
        run = log_growth_run(
            spec.width,
            spec.depth,
            activation,
            samples=spec.samples,
            layers=spec.hidden_layers,
            q0=spec.q0,
            seed=spec.seed,
            device=spec.device,
        )
        columns = [run.layers.index(layer) for layer in spec.hidden_layers]
        stats: dict[str, list[float]] = {}
        z_density, edges_all, density_all = [], [], []
        for column in columns:
            growth = run.log_growth[run.alive, column]
            row = moments(growth)
            standardized = (growth - row["mean"]) / row["sd"]
            row["ks_distance"] = float(sps.kstest(standardized, "norm").statistic)
            for key in ("n", "mean", "sd", "se", "skew", "skew_se", "ks_distance"):
                stats.setdefault(key, []).append(row[key])
            z_density.append(histogram(standardized, Z_EDGES))
            edges = np.linspace(row["mean"] - 5 * row["sd"], row["mean"] + 5 * row["sd"], BINS + 1)
            edges_all.append(edges)
            density_all.append(histogram(growth, edges))
        if progress is not None:
            progress(1, 1)
        data = {key: ("layer", np.asarray(values)) for key, values in stats.items()}
        data["z_density"] = (("layer", "bin"), np.array(z_density))
        data["hist_edges"] = (("layer", "edge"), np.array(edges_all))
        data["hist_density"] = (("layer", "bin"), np.array(density_all))
        return xr.Dataset(
            data,
            coords={"layer": list(spec.hidden_layers)},
        )

    def summarize(self, dataset: xr.Dataset, spec: Any) -> list[dict[str, Any]]:
        rows = []
        for i, layer in enumerate(dataset.layer.values):
            row: dict[str, Any] = {"layer": int(layer), "t": int(layer) / spec.depth}
            for key in ("mean", "sd", "se", "skew", "skew_se", "ks_distance"):
                row[key] = float(dataset[key].values[i])
            row["alive"] = int(dataset["n"].values[i])
            row["spread_ratio"] = row["sd"] * math.sqrt(spec.width * spec.depth / int(layer))
            rows.append(row)
        return rows

    def check(self, dataset: xr.Dataset, spec: Any) -> list[Claim]:
        rows = self.summarize(dataset, spec)
        kind = activation_kind(spec.activation)
        prefix = f"fig{self.order}"
        if self.scaled and kind == "relu":
            first, last = rows[0], rows[-1]
            gap = abs(first["skew"]) - abs(last["skew"])
            se = math.hypot(first["skew_se"], last["skew_se"])
            critical = float(sps.norm.isf(spec.level))
            return [
                Claim.bound(
                    f"{prefix}-gaussian-last-layers",
                    f"The Gaussian fits the last layer (l = {last['layer']}) better than the "
                    f"first hidden layer (l = {first['layer']}): |skewness| is smaller",
                    bound(gap / se, above=critical, n=last["alive"], fmt=".2f"),
                    statistic="(|skew_first| - |skew_last|) / SE",
                    note=f"one-sided z at level {spec.level:g}; skew {first['skew']:+.3f} vs "
                    f"{last['skew']:+.3f}",
                )
            ]
        if not self.scaled and kind in ("relu", "identity"):
            low, high = 0.95, 1.10
            worst = max(rows, key=lambda r: abs(r["spread_ratio"] - 1.0))
            # the sample sd of M near-Gaussian values has relative standard error 1/sqrt(2M)
            se = {r["layer"]: r["spread_ratio"] / math.sqrt(2.0 * r["alive"]) for r in rows}
            bands = {
                f"l = {r['layer']}": bound(
                    r["spread_ratio"],
                    within=(low - 3 * se[r["layer"]], high + 3 * se[r["layer"]]),
                    n=r["alive"],
                    fmt=".3f",
                )
                for r in rows
            }
            return [
                Claim.bound(
                    f"{prefix}-spread",
                    "LG_l spreads like sqrt(t/n), t = l/L, at every hidden layer (Thm 1: "
                    "W_t/sqrt(n)), so the histograms concentrate as n grows",
                    bands[f"l = {worst['layer']}"],
                    statistic=f"sd(LG_l) sqrt(nL/l) farthest from 1 (l = {worst['layer']})",
                    note=f"[{low}, {high}] ± 3 SE; the band allows the O(t) variance of the "
                    "random drift",
                    requires=bands,
                )
            ]
        return []

    def draw(self, dataset: xr.Dataset, spec: Any) -> Figure:
        rows = self.summarize(dataset, spec)
        with panels(len(rows)) as (figure, axes):
            for i, (ax, row) in enumerate(zip(axes, rows)):
                title = (
                    f"$l$ = {row['layer']} ($t$ = {row['t']:.3g}): skew {row['skew']:+.3f} "
                    f"$\\pm$ {row['skew_se']:.3f}\n$D$ = {row['ks_distance']:.4f} to N(0, 1)"
                )
                legend = ax is axes[-1]
                if self.scaled:
                    density_panel(
                        ax,
                        stairs=(dataset.z_density.values[i], Z_EDGES),
                        law=sps.norm.pdf,
                        law_label=r"$\mathcal{N}(0, 1)$" if legend else None,
                        title=title,
                        xlabel=r"$(LG_l - \mathrm{mean}) / \mathrm{sd}$",
                        color=OU_COLOR,
                    )
                    continue
                spread = math.sqrt(row["t"] / spec.width)
                density_panel(
                    ax,
                    stairs=(dataset.hist_density.values[i], dataset.hist_edges.values[i]),
                    law=lambda x, row=row, spread=spread: sps.norm.pdf(x, row["mean"], spread),
                    law_label=r"$\mathcal{N}(\mathrm{mean}, t/n)$" if legend else None,
                    title=title,
                    xlabel="$LG_l$",
                )
            axes[0].set_ylabel("density")
        return figure


def _declare(number: int, width: int) -> tuple[Any, Any, Any]:
    """The spec of one width and its two figures: Fig. ``number`` (scaled) and Fig.
    ``number + 4`` (non-scaled)."""
    spec = type(
        f"HayouFig{number}Spec",
        (HiddenLayersSpec,),
        {"__module__": __name__, "__annotations__": {"width": PositiveInt}, "width": width},
    )

    def figure(figure_number: int, scaled: bool) -> Any:
        return type(
            f"HayouFig{figure_number}",
            (_HiddenLayerHistograms,),
            {
                "__module__": __name__,
                "name": f"hayou-fig{figure_number}",
                "Spec": spec,
                "scaled": scaled,
            },
        )

    return spec, figure(number, True), figure(number + 4, False)


HayouFig14Spec, HayouFig14, HayouFig18 = _declare(14, 2)
HayouFig15Spec, HayouFig15, HayouFig19 = _declare(15, 3)
HayouFig16Spec, HayouFig16, HayouFig20 = _declare(16, 4)
HayouFig17Spec, HayouFig17, HayouFig21 = _declare(17, 8)
