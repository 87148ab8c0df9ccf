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
from .base import Claim, Experiment, ExperimentSpec, Progress
from .claims import bound
from .hayou_common import (
    ActivationName,
    activation_kind,
    histogram,
    limit_claim,
    log_growth_run,
    moments,
    runnable_activation,
    samples_for_width,
    samples_text,
)
from .plotting import add_caption, panel_grid
from .spec_fields import Level, Positive, PositiveInt, Samples, Seeds, Widths

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
COLORS = ("#1f4e79", "#2e75b6", "#5b9bd5", "#9dc3e6", "#c55a11", "#f4b183", "#548235", "#a9d18e")


# --------------------------------------------------------------------------------------------
# Fig. 13


class HayouFig13Spec(ExperimentSpec):
    """Same sizes as Fig. 5 by default, so both figures share their networks."""

    widths: Widths = (1, 2, 3, 4, 8, 16, 64, 256)
    depth: Seeds = 200
    samples: Samples = 100_000
    wide_samples: Samples = 2_000
    small_width_limit: PositiveInt = 8
    activation: ActivationName = "relu"
    q0: Positive = 1.0
    level: Level = 1e-3

    def samples_for(self, width: int) -> int:
        return samples_for_width(width, self.samples, self.small_width_limit, self.wide_samples)


class HayouFig13(Experiment):
    name = "hayou-fig13"
    title = "Non-scaled log-growth across widths: concentration (Hayou Fig. 13, Thm 2)"
    Spec = HayouFig13Spec
    suite = "hayou"
    order = 13
    table: ClassVar[dict[str, str]] = {
        "width": "n",
        "alive": "alive",
        "mean": "E LG_L",
        "sd": "sd",
        "scaled_variance": "n Var",
        "scaled_variance_se": "SE",
    }

    def full_settings(self) -> dict[str, Any]:
        return {"depth": 1000, "samples": 400_000, "wide_samples": 10_000}

    def smoke_settings(self) -> dict[str, Any]:
        return {"widths": (2, 3, 4, 16), "depth": 20, "samples": 400, "wide_samples": 200}

    def caption(self, spec: HayouFig13Spec) -> str:
        widths = ", ".join(str(n) for n in spec.widths)
        return (
            f"Activation {spec.activation}, depth L = {spec.depth}, widths n in {{{widths}}}, "
            f"q0 = {spec.q0:g}, {samples_text(spec)} (the networks of Fig. 5; seed "
            f"{spec.seed}). "
            "Density histograms of the non-scaled LG_L = log(||phi(Y_L)|| / ||phi(Y_0)||) over "
            "networks that did not collapse, on one axis: the law concentrates at the "
            "infinite-width limit (dashed) as n grows, with spread ~ 1/sqrt(n). Right: n Var(LG_L)"
            " against n. Parameters lost in the paper; these are our choices."
        )

    def compute(self, spec: HayouFig13Spec, progress: Progress | None = None) -> xr.Dataset:
        activation = runnable_activation(spec.activation)
        total = sum(spec.samples_for(n) * n for n in spec.widths)
        done = 0
        stats: dict[str, list[float]] = {}
        edges_all, density_all = [], []
        for width in spec.widths:
            run = log_growth_run(
                width,
                spec.depth,
                activation,
                samples=spec.samples_for(width),
                q0=spec.q0,
                seed=spec.seed,
                device=spec.device,
            )
            growth = run.log_growth[run.alive, -1]
            row = moments(growth)
            for key in ("n", "mean", "sd", "se"):
                stats.setdefault(key, []).append(row[key])
            edges = np.linspace(row["mean"] - 4.5 * row["sd"], row["mean"] + 4.5 * row["sd"], 81)
            edges_all.append(edges)
            density_all.append(histogram(growth, edges))
            done += spec.samples_for(width) * width
            if progress is not None:
                progress(done, total)
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
        figure, axes = panel_grid(2, columns=2, size=(5.5, 3.6))
        ax = axes[0]
        for color, row, edges, density in zip(
            COLORS * 2, rows, dataset.hist_edges.values, dataset.hist_density.values
        ):
            ax.stairs(density, edges, color=color, lw=1.2, label=f"n = {row['width']}")
        ax.axvline(float(dataset.attrs["limit"]), color="k", ls="--", lw=0.9, label="n = oo")
        ax.set_xlabel("LG_L (non-scaled)")
        ax.set_ylabel("density")
        edges = dataset.hist_edges.values
        ax.set_xlim(max(edges[:, 0].min(), -3.0), min(edges[:, -1].max(), 2.0))
        ax.legend(fontsize=6, frameon=False, loc="upper left")
        ax = axes[1]
        widths = np.array([r["width"] for r in rows])
        values = np.array([r["scaled_variance"] for r in rows])
        errors = np.array([3 * r["scaled_variance_se"] for r in rows])
        ax.errorbar(widths, values, yerr=errors, fmt="o", ms=3, color="#1f4e79")
        ax.axhline(1.0, color="#c0392b", lw=0.9, label="1 (Var of W_1 / sqrt n)")
        ax.set_xscale("log", base=2)
        ax.set_xlabel("width n")
        ax.set_ylabel("n Var(LG_L)")
        ax.legend(fontsize=7, frameon=False)
        add_caption(figure, self.title, dataset.attrs["caption"])
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


class _HiddenLayerHistograms(Experiment):
    """Histograms of ``LG_l`` at the hidden layers of one width (scaled or not)."""

    figure_number: ClassVar[int]
    scaled: ClassVar[bool]
    suite = "hayou"
    table: ClassVar[dict[str, str]] = {
        "layer": "l",
        "t": "t = l/L",
        "alive": "alive",
        "mean": "E LG_l",
        "sd": "sd",
        "spread_ratio": "sd sqrt(nL/l)",
        "skew": "skew",
        "skew_se": "SE",
        "ks_distance": "D to N(0,1) (standardized)",
    }

    def full_settings(self) -> dict[str, Any]:
        return {"depth": 1000, "hidden_layers": (1, 10, 100, 500, 1000), "samples": 400_000}

    def smoke_settings(self) -> dict[str, Any]:
        return {"depth": 20, "hidden_layers": (1, 5, 20), "samples": 400}

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
        prefix = f"fig{self.figure_number}"
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
        figure, axes = panel_grid(len(rows))
        for i, (ax, row) in enumerate(zip(axes, rows)):
            if self.scaled:
                ax.stairs(dataset.z_density.values[i], Z_EDGES, fill=True, color="#a9cba4")
                grid = np.linspace(-5, 5, 300)
                ax.plot(grid, sps.norm.pdf(grid), color="#c0392b", lw=1.4, label="N(0, 1)")
                ax.set_xlabel("(LG_l - mean) / sd")
            else:
                edges = dataset.hist_edges.values[i]
                ax.stairs(dataset.hist_density.values[i], edges, fill=True, color="#8fb3d9")
                grid = np.linspace(edges[0], edges[-1], 300)
                spread = math.sqrt(row["t"] / spec.width)
                ax.plot(
                    grid,
                    sps.norm.pdf(grid, row["mean"], spread),
                    color="#c0392b",
                    lw=1.4,
                    label="N(mean, t/n)",
                )
                ax.set_xlabel("LG_l")
            ax.set_title(f"l = {row['layer']} (t = {row['t']:.3g})")
            ax.text(
                0.02,
                0.97,
                f"skew {row['skew']:+.3f}\n± {row['skew_se']:.3f}\nD {row['ks_distance']:.4f}",
                transform=ax.transAxes,
                va="top",
                fontsize=7,
            )
        axes[0].set_ylabel("density")
        axes[-1].legend(loc="upper right", fontsize=7, frameon=False)
        add_caption(figure, self.title, dataset.attrs["caption"])
        return figure


class HayouFig14Spec(HiddenLayersSpec):
    width: PositiveInt = 2


class HayouFig15Spec(HiddenLayersSpec):
    width: PositiveInt = 3


class HayouFig16Spec(HiddenLayersSpec):
    width: PositiveInt = 4


class HayouFig17Spec(HiddenLayersSpec):
    width: PositiveInt = 8


class HayouFig14(_HiddenLayerHistograms):
    name = "hayou-fig14"
    title = "Scaled log-growth at hidden layers, width 2 (Hayou Fig. 14)"
    Spec = HayouFig14Spec
    order = 14
    figure_number = 14
    scaled = True


class HayouFig15(_HiddenLayerHistograms):
    name = "hayou-fig15"
    title = "Scaled log-growth at hidden layers, width 3 (Hayou Fig. 15)"
    Spec = HayouFig15Spec
    order = 15
    figure_number = 15
    scaled = True


class HayouFig16(_HiddenLayerHistograms):
    name = "hayou-fig16"
    title = "Scaled log-growth at hidden layers, width 4 (Hayou Fig. 16)"
    Spec = HayouFig16Spec
    order = 16
    figure_number = 16
    scaled = True


class HayouFig17(_HiddenLayerHistograms):
    name = "hayou-fig17"
    title = "Scaled log-growth at hidden layers, width 8 (Hayou Fig. 17)"
    Spec = HayouFig17Spec
    order = 17
    figure_number = 17
    scaled = True


class HayouFig18(_HiddenLayerHistograms):
    name = "hayou-fig18"
    title = "Non-scaled log-growth at hidden layers, width 2 (Hayou Fig. 18)"
    Spec = HayouFig14Spec
    order = 18
    figure_number = 18
    scaled = False


class HayouFig19(_HiddenLayerHistograms):
    name = "hayou-fig19"
    title = "Non-scaled log-growth at hidden layers, width 3 (Hayou Fig. 19)"
    Spec = HayouFig15Spec
    order = 19
    figure_number = 19
    scaled = False


class HayouFig20(_HiddenLayerHistograms):
    name = "hayou-fig20"
    title = "Non-scaled log-growth at hidden layers, width 4 (Hayou Fig. 20)"
    Spec = HayouFig16Spec
    order = 20
    figure_number = 20
    scaled = False


class HayouFig21(_HiddenLayerHistograms):
    name = "hayou-fig21"
    title = "Non-scaled log-growth at hidden layers, width 8 (Hayou Fig. 21)"
    Spec = HayouFig17Spec
    order = 21
    figure_number = 21
    scaled = False
