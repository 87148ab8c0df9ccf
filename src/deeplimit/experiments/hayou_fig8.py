"""Hayou Fig. 8: gradient norms back-propagated through a random ResNet (hayou.md §6).

"Fix the last layer's gradient to a constant value and back-propagate": with
``g_l = d loss / d Y_l`` and ``g_L = (1, ..., 1)/sqrt(n)``,
``g_{l-1} = g_l + L^{-1/2} phi'(Y_{l-1}) * (W_l^T g_l)``. The paper's point is that the
``1/sqrt(L)`` branch scale keeps ``||g_l||`` of order one at every layer, at any width (C14).
The infinite-width heuristic (independent backward weights) is
``E||g_{l-1}||^2 = E||g_l||^2 (1 + chi_{l-1}/L)`` with ``chi_l = E phi'(sqrt(q_l) Z)^2`` and
``q_l`` the width-first variance recursion: ``(1 + 1/(2L))^{L-l} -> e^{(1-t)/2}`` for ReLU.
Gradients are exact (``gradient_norms(method="law")``: the backward weights are drawn from
their conditional law given the forward pass).
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np
import torch
import xarray as xr
from matplotlib.figure import Figure

from ..activations import Activation, CustomActivation
from ..gaussian import activation_scale, gaussian_expectation
from ..initialization.gradients import gradient_norms
from ..initialization.meanfield import infinite_width_variance
from ..rng import derive_seed
from .base import Claim, ExperimentSpec, Progress
from .claims import bound
from .hayou_common import (
    BLUES,
    LAW_COLOR,
    ActivationName,
    HayouExperiment,
    activation_kind,
    columns,
    panels,
    reference_line,
    runnable_activation,
    sizes_text,
    width_panel,
)
from .spec_fields import AtLeast, Level, Positive, PositiveInt, Seeds, Widths

__all__ = ["HayouFig8", "HayouFig8Spec", "infinite_width_gradient"]

GRADIENT_STREAM = 16
BAND = (0.5, 3.0)
TOLERANCE = 0.05


class HayouFig8Spec(ExperimentSpec):
    widths: Widths = (2, 5, 20, 100)
    depth: Seeds = 200
    samples: AtLeast(20) = 2_000  # type: ignore[valid-type]
    activation: ActivationName = "relu"
    q0: Positive = 1.0
    heuristic_from_width: PositiveInt = 20
    level: Level = 1e-3


def infinite_width_gradient(activation: Activation, q0: float, depth: int) -> np.ndarray:
    """``E||g_l||^2 / ||g_L||^2`` for ``l = 0..L`` at infinite width (gradient independence):
    ``prod_{k=l}^{L-1} (1 + chi_k / L)``, ``chi_k = E phi'(sqrt(q_k) Z)^2`` by
    :func:`deeplimit.gaussian.gaussian_expectation` (accurate at every variance; a fixed
    Gauss-Hermite rule is not once ``q_k`` is large)."""

    def slope_squared(x: np.ndarray) -> np.ndarray:
        return activation.derivative(torch.from_numpy(x)).to(torch.float64).numpy() ** 2

    scale = activation_scale(activation)
    # the library's phi' are analytic off the imaginary axis or jump at 0 (a panel edge):
    # the fixed rule is exact to rounding for them; user callables get the adaptive one
    adaptive = isinstance(activation, CustomActivation)
    variances = infinite_width_variance(activation, q0, depth)
    chi = np.array(
        [
            gaussian_expectation(slope_squared, float(q), scale=scale, adaptive=adaptive)
            for q in variances[:-1]
        ]
    )
    factors = 1.0 + chi / depth
    return np.append(np.cumprod(factors[::-1])[::-1], 1.0)


class HayouFig8(HayouExperiment):
    name = "hayou-fig8"
    Spec = HayouFig8Spec
    table = columns(
        "width: n; median_low: min median |g_l|; median_high: max median |g_l|; "
        "g0_square_mean: E |g_0|^2; g0_square_se: SE; heuristic: n = oo"
    )

    full_scale: ClassVar[dict[str, Any]] = {
        "widths": (2, 5, 20, 100, 400),
        "depth": 1000,
        "samples": 10_000,
    }

    smoke_scale: ClassVar[dict[str, Any]] = {"widths": (2, 20), "depth": 20, "samples": 50}

    def caption(self, spec: HayouFig8Spec) -> str:
        return (
            f"{sizes_text(spec)}, "
            f"{spec.samples} networks per width, input x = (sqrt q0), q0 = {spec.q0:g}, "
            "g_L = (1, ..., 1)/sqrt(n) (exact gradients: backward weights from their law given "
            f"the forward pass; seed {spec.seed}). Left: median and 10-90 % band of "
            "||g_l|| / ||g_L|| against t = l/L, with the infinite-width heuristic "
            "sqrt(prod (1 + chi_k/L)) (dashed; e^{(1-t)/4} for ReLU). Right: E||g_0||^2 against n."
            " The paper's sizes are lost; these are our choices."
        )

    def compute(self, spec: HayouFig8Spec, progress: Progress | None = None) -> xr.Dataset:
        activation = runnable_activation(spec.activation)
        layers = spec.depth + 1
        quantiles = np.empty((len(spec.widths), 3, layers))
        square_mean = np.empty((len(spec.widths), layers))
        first_square = np.empty((len(spec.widths), spec.samples))
        for i, width in enumerate(spec.widths):
            norms = (
                gradient_norms(
                    width,
                    spec.depth,
                    activation,
                    samples=spec.samples,
                    x=[math.sqrt(spec.q0)],
                    method="law",
                    seed=derive_seed(spec.seed, GRADIENT_STREAM, width),
                    device=spec.device,
                )
                .cpu()
                .numpy()
            )  # (samples, L + 1); ||g_L|| = 1
            quantiles[i] = np.quantile(norms, [0.1, 0.5, 0.9], axis=0)
            square_mean[i] = (norms**2).mean(0)
            first_square[i] = norms[:, 0] ** 2
            if progress is not None:
                progress(i + 1, len(spec.widths))
        return xr.Dataset(
            {
                "quantiles": (("width", "quantile", "layer"), quantiles),
                "square_mean": (("width", "layer"), square_mean),
                "first_square": (("width", "sample"), first_square),
                "heuristic": (
                    "layer",
                    infinite_width_gradient(activation, spec.q0, spec.depth),
                ),
            },
            coords={
                "width": list(spec.widths),
                "quantile": [0.1, 0.5, 0.9],
                "layer": np.arange(layers),
                "time": ("layer", np.arange(layers) / spec.depth),
            },
        )

    def summarize(self, dataset: xr.Dataset, spec: HayouFig8Spec) -> list[dict[str, Any]]:
        rows = []
        for i, width in enumerate(dataset.width.values):
            median = dataset.quantiles.values[i, 1]
            first = dataset.first_square.values[i]
            rows.append(
                {
                    "width": int(width),
                    "samples": int(first.size),
                    "median_low": float(median.min()),
                    "median_high": float(median.max()),
                    "median_first": float(median[0]),
                    "g0_square_mean": float(first.mean()),
                    "g0_square_se": float(first.std(ddof=1) / math.sqrt(first.size)),
                    "heuristic": float(dataset.heuristic.values[0]),
                }
            )
        return rows

    def check(self, dataset: xr.Dataset, spec: HayouFig8Spec) -> list[Claim]:
        rows = self.summarize(dataset, spec)
        low = min(rows, key=lambda r: r["median_low"])
        high = max(rows, key=lambda r: r["median_high"])
        claims = [
            Claim.bound(
                "C14",
                "Gradients stay of order one: the median of ||g_l|| / ||g_L|| lies in "
                f"[{BAND[0]}, {BAND[1]}] at every layer and width ({spec.activation})",
                bound(high["median_high"], within=BAND, n=min(r["samples"] for r in rows)),
                statistic="range of the median over layers and widths",
                note="a loose band (hayou.md §8 C14)",
                requires={
                    f"lowest median {low['median_low']:.3f} >= {BAND[0]}": bound(
                        low["median_low"], at_least=BAND[0]
                    )
                },
            )
        ]
        wide = [r for r in rows if r["width"] >= spec.heuristic_from_width]
        if wide:
            relu = activation_kind(spec.activation) == "relu"
            worst = max(wide, key=lambda r: abs(r["g0_square_mean"] / r["heuristic"] - 1))
            checks = {
                f"n = {r['width']}": bound(
                    r["g0_square_mean"],
                    equals=r["heuristic"],
                    tolerance=TOLERANCE * r["heuristic"] + 3 * r["g0_square_se"],
                    n=r["samples"],
                    fmt=".4f",
                )
                for r in wide
            }
            target = "(1 + 1/(2L))^L ~ e^{1/2}" if relu else "prod (1 + chi_k/L)"
            claims.append(
                Claim.bound(
                    "C14" if relu else "fig8-infinite-width",
                    f"For n >= {spec.heuristic_from_width}, E||g_0||^2/||g_L||^2 follows the "
                    f"infinite-width heuristic {target} = {worst['heuristic']:.4f}",
                    checks[f"n = {worst['width']}"],
                    statistic=f"E||g_0||^2 farthest from it (n = {worst['width']})",
                    note=f"{TOLERANCE:.0%} (finite width) + 3 SE, every width",
                    requires=checks,
                )
            )
        return claims

    def draw(self, dataset: xr.Dataset, spec: HayouFig8Spec) -> Figure:
        rows = self.summarize(dataset, spec)
        times = dataset.time.values
        with panels(2, columns=2, size=(3.2, 2.5)) as (figure, (paths, first)):
            paths.axhspan(*BAND, color="#e8f5e9", zorder=-1)
            for color, row, quantiles in zip(BLUES[1:] + BLUES[:1], rows, dataset.quantiles.values):
                paths.fill_between(times, quantiles[0], quantiles[2], color=color, alpha=0.15)
                paths.plot(times, quantiles[1], color=color, lw=1.3, label=f"$n$ = {row['width']}")
            paths.plot(
                times, np.sqrt(dataset.heuristic.values), "k--", lw=1, label=r"$n = \infty$ (sqrt)"
            )
            paths.set(xlabel="$t = l / L$", ylabel=r"$\|g_l\| / \|g_L\|$ (median, 10-90 %)")
            paths.set_ylim(0, 3.2)
            width_panel(
                first,
                rows,
                "g0_square_mean",
                "g0_square_se",
                ylabel=r"$E\,\|g_0\|^2 / \|g_L\|^2$",
                xscale="log",
            )
            reference_line(
                first,
                y=rows[0]["heuristic"],
                color=LAW_COLOR,
                ls="-",
                label=r"$n = \infty$ heuristic",
            )
        return figure
