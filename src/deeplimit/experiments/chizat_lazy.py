"""Chizat C7: the lazy regime — units move like 1/alpha, the function does not.

With residual scale ``alpha/(LM)`` and raw learning rate ``lr L M D / alpha^2`` a GD step moves
each unit by ``O(lr/alpha)`` and the function by ``O(lr)`` (chizat.md §1.1, §2.3): as alpha
grows the dynamics becomes lazy (linearized). We measure, after K steps and for every alpha,
the RMS change of each unit's pre-activation on the training inputs, ``<u - u_0, h_0>/D``
(its "local feature"; slope -1 in alpha), the RMS unit movement ``||u - u_0||/sqrt(D)``,
``||v - v_0||/sqrt(D)``, and the RMS change of the function on the training inputs,
``f_K - f_0`` (constant in alpha).

Units are antithetic by default (pairs ``(u, v)``, ``(u, -v)``, chizat.md §2.4(4)): the initial
function is then exactly ``W_out^T W_in x / D`` for every alpha. With i.i.d. units the initial
branch fluctuation ``alpha sqrt(D/(LM))`` grows with alpha and changes the task itself once it
is O(1), which is a different effect (set ``antithetic=False`` to see it).
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np
import xarray as xr

from ..training import MeanFieldScaling
from .base import Claim
from .chizat_common import COLORS, ChizatSpec, log_error_bars, plot_series, rms_over
from .chizat_sweep import ErrorSweep, Point, Slope
from .claims import bound
from .spec_fields import DType, IncreasingFloats, Positive, PositiveInt

__all__ = ["ChizatLazy", "ChizatLazySpec"]

MOVEMENTS = {  # dataset variable: its legend
    "preactivation": r"$\langle u - u_0, h_0\rangle/D$",
    "u": r"$|u - u_0|/\sqrt{D}$",
    "v": r"$|v - v_0|/\sqrt{D}$",
}


class ChizatLazySpec(ChizatSpec):
    depth: PositiveInt = 16
    width: PositiveInt = 256
    dim: PositiveInt = 32
    alphas: IncreasingFloats = (1.0, 2.0, 4.0, 8.0, 16.0, 32.0)
    seeds: PositiveInt = 2
    steps: PositiveInt = 5
    lr: Positive = 0.5
    antithetic: bool = True
    function_tolerance: Positive = 0.05
    dtype: DType = "float64"


class ChizatLazy(ErrorSweep):
    name = "chizat-lazy"
    title = "The lazy regime: unit movement ∝ 1/alpha, function movement constant (C7)"
    Spec = ChizatLazySpec
    order = 6
    axis, values_field, axis_label, axis_symbol = "alpha", "alphas", r"$\alpha$", "alpha"
    common_random_numbers = True
    slopes = (Slope("C7", "preactivation", -1.0, 0.1, what="pre-activation change vs alpha"),)
    table: ClassVar[dict[str, str]] = {
        "alpha": "alpha",
        "preactivation": "Δ preactivation",
        "u": "Δu",
        "v": "Δv",
        "function": "Δf",
        "final_loss": "loss at K",
        "diverged": "diverged",
    }

    def full_settings(self) -> dict[str, Any]:
        return {
            "depth": 32,
            "width": 512,
            "alphas": (1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0),
            "seeds": 4,
        }

    def smoke_settings(self) -> dict[str, Any]:
        return {"depth": 4, "width": 8, "dim": 8, "alphas": (1.0, 4.0, 16.0), "steps": 2}

    def caption(self, spec: ChizatLazySpec) -> str:
        units = (
            "antithetic units (u, ±v): the initial function is the same for every alpha"
            if spec.antithetic
            else "i.i.d. units"
        )
        return (
            f"tanh 2LP ResNets with residual scale alpha/(LM) and raw LR {spec.lr:g}·LMD/alpha^2 "
            f"(chizat.md §1.1), L={spec.depth}, M={spec.width}, D={spec.dim}, alpha in "
            f"{list(spec.alphas)}, {units}; synthetic task of §1.5, K={spec.steps} GD steps, "
            f"{spec.seeds} networks per alpha (one batch), {spec.dtype}, seed {spec.seed}. "
            "After K steps: RMS over units and samples of the pre-activation change "
            "<u - u_0, h_0>/D and RMS unit movements |u - u_0|/sqrt(D), |v - v_0|/sqrt(D) "
            "(slope -1: lazy as alpha grows) and the RMS change of the function f_K - f_0 on "
            f"the training inputs (constant within ±{spec.function_tolerance:.0%}) (C7)."
        )

    def points(self, spec: ChizatLazySpec):
        """Every alpha in one batch, with the same seed indices (common random numbers)."""
        for index, alpha in enumerate(spec.alphas):
            network = {"depth": spec.depth, "width": spec.width, "dim": spec.dim}
            scaling = MeanFieldScaling(alpha=alpha, lr=spec.lr)
            options = {"scaling": scaling, "antithetic": spec.antithetic, "record_movement": True}
            seeds = self.seed_indices(spec, index)
            label, network = f"alpha={alpha:g}", {**network, **options}
            yield Point({"alpha": alpha}, label, network, seeds, batch="alpha batch")

    def measure(self, spec: ChizatLazySpec, result: Any, limit: Any, point: Point) -> dict:
        """Per network: the function's and the units' movements after K steps, the losses."""
        change = (result.outputs[:, -1] - result.outputs[:, 0]).double()
        values = {
            "function": change.pow(2).flatten(1).mean(1).sqrt(),
            "final_loss": result.loss[:, -1].double(),
            "initial_loss": result.loss[:, 0].double(),
            "diverged_at": result.diverged_at,
            **{name: result.movement[name][:, -1].double() for name in MOVEMENTS},
        }
        return {name: (("seed",), value.numpy()) for name, value in values.items()}

    def assemble(self, spec: ChizatLazySpec, *args: Any) -> xr.Dataset:
        return super().assemble(spec, *args).assign_coords(seed=list(range(spec.seeds)))

    def mean(self, dataset: xr.Dataset, name: str) -> np.ndarray:
        """Seed means over the networks that did not diverge (RMS for movements)."""
        values = dataset[name].where(dataset.diverged_at < 0)
        if name in (*MOVEMENTS, "function"):
            return np.sqrt((values**2).mean("seed", skipna=True).values)
        return values.mean("seed", skipna=True).values

    def summarize(self, dataset: xr.Dataset, spec: ChizatLazySpec) -> list[dict[str, Any]]:
        means = {name: self.mean(dataset, name) for name in (*MOVEMENTS, "function", "final_loss")}
        return [
            {
                "alpha": float(alpha),
                **{name: float(values[i]) for name, values in means.items()},
                "diverged": int((dataset.diverged_at.sel(alpha=alpha) >= 0).sum()),
            }
            for i, alpha in enumerate(dataset.alpha.values)
        ]

    def slope_data(self, slope: Slope, dataset: xr.Dataset) -> tuple[np.ndarray, np.ndarray]:
        return dataset.alpha.values, self.mean(dataset, slope.quantity)

    def statement(self, slope: Slope, dataset: xr.Dataset, spec: ChizatLazySpec) -> str:
        alphas = dataset.alpha.values
        units = "antithetic" if spec.antithetic else "i.i.d."
        return (
            f"tanh, L={spec.depth}, M={spec.width}, D={spec.dim}, K={spec.steps}, {units} units:"
            f" RMS pre-activation change <u - u_0, h_0>/D vs alpha ({alphas[0]:g}…"
            f"{alphas[-1]:g}) has slope -1 (units move O(1/alpha))"
        )

    def check(self, dataset: xr.Dataset, spec: ChizatLazySpec) -> list[Claim]:
        function = self.mean(dataset, "function")
        finite = function[np.isfinite(function)]
        ratios = finite / finite.mean() if finite.size else finite
        worst = float(ratios[np.argmax(np.abs(ratios - 1))]) if ratios.size else math.nan
        alphas = dataset.alpha.values
        text = ", ".join(f"{a:g}: {f:.4f}" for a, f in zip(alphas, function, strict=True))
        function_claim = Claim.bound(
            "C7",
            f"The function moves O(1) whatever alpha: RMS of f_K - f_0 per alpha {text}"
            + dataset.attrs.get("divergence_note", ""),
            bound(worst, equals=1.0, tolerance=spec.function_tolerance, n=finite.size),
            statistic="function movement / its mean over alpha, farthest from 1",
            note="every ratio",
            requires={"no alpha without a finite movement": finite.size == alphas.size},
            details={"function_movement": function.tolist()},
        )
        return [*super().check(dataset, spec), function_claim]

    def panels(self, axes: list, dataset: xr.Dataset, spec: ChizatLazySpec) -> None:
        """Movements against alpha: RMS over the networks with its 95% interval."""
        alphas = dataset.alpha.values
        kept = dataset.where(dataset.diverged_at < 0)
        for color, (name, label) in zip(COLORS, MOVEMENTS.items(), strict=False):
            rms, relative = rms_over(kept[name].values)
            plot_series(axes[0], alphas, rms, label=label, color=color)
            log_error_bars(axes[0], alphas, rms, relative, fmt="none", color=color)
        axes[0].set(xlabel=self.axis_label, ylabel=r"RMS unit movement after $K$ steps")
        axes[0].set_title(r"units: lazy as $\alpha$ grows")
        ax = axes[1]
        rms, relative = rms_over(kept.function.values)
        log_error_bars(ax, alphas, rms, relative, fmt="o-", color=COLORS[3], label=r"$f_K - f_0$")
        if np.isfinite(rms).any():
            mean, tolerance = np.nanmean(rms), spec.function_tolerance
            band = (mean * (1 - tolerance), mean * (1 + tolerance))
            ax.axhspan(*band, color="#27855a", alpha=0.12, label=f"mean $\\pm$ {tolerance:.0%}")
        ax.set(xscale="log", xlabel=self.axis_label, ylabel="RMS function movement")
        ax.set_ylim(bottom=0)
        ax.set_title(r"function: $O(1)$ for every $\alpha$")
