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
from matplotlib.figure import Figure

from ..training import MeanFieldScaling
from .base import Claim, Progress
from .chizat_common import (
    COLORS,
    ChizatExperiment,
    ChizatSpec,
    Divergence,
    Tracker,
    plot_series,
)
from .chizat_common import train_networks as _train
from .claims import bound
from .plotting import add_caption, panel_grid
from .spec_fields import DType, IncreasingFloats, Positive, PositiveInt

__all__ = ["ChizatLazy", "ChizatLazySpec"]


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


class ChizatLazy(ChizatExperiment):
    name = "chizat-lazy"
    title = "The lazy regime: unit movement ∝ 1/alpha, function movement constant (C7)"
    Spec = ChizatLazySpec
    suite = "chizat"
    order = 6
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

    def compute(self, spec: ChizatLazySpec, progress: Progress | None = None) -> xr.Dataset:
        tracker = Tracker(len(spec.alphas), progress)
        scalings = [
            MeanFieldScaling(alpha=alpha, lr=spec.lr)
            for alpha in spec.alphas
            for _ in range(spec.seeds)
        ]
        # common random numbers: every alpha uses the same seed indices
        result = _train(
            spec.depth,
            spec.width,
            spec.dim,
            steps=spec.steps,
            seeds=list(range(spec.seeds)) * len(spec.alphas),
            scaling=scalings,
            antithetic=spec.antithetic,
            record_movement=True,
            seed=spec.seed,
            device=spec.device,
            dtype=spec.dtype,
        )
        tracker.advance(len(spec.alphas))
        divergence = Divergence()
        divergence.add("alpha batch", result)
        shape = (len(spec.alphas), spec.seeds)
        change = (result.outputs[:, -1] - result.outputs[:, 0]).double()
        variables = {
            "function": change.pow(2).flatten(1).mean(1).sqrt().numpy().reshape(shape),
            "final_loss": result.loss[:, -1].double().numpy().reshape(shape),
            "initial_loss": result.loss[:, 0].double().numpy().reshape(shape),
            "diverged_at": result.diverged_at.numpy().reshape(shape),
        }
        for name in ("preactivation", "u", "v"):
            variables[name] = result.movement[name][:, -1].double().numpy().reshape(shape)
        return xr.Dataset(
            {name: (("alpha", "seed"), value) for name, value in variables.items()},
            coords={"alpha": list(spec.alphas), "seed": list(range(spec.seeds))},
            attrs={
                "divergence_note": divergence.note(),
            },
        )

    def _mean(self, dataset: xr.Dataset, name: str) -> np.ndarray:
        """Seed means over the networks that did not diverge (RMS for movements)."""
        values = dataset[name].where(dataset.diverged_at < 0)
        if name in ("preactivation", "u", "v", "function"):
            return np.sqrt((values**2).mean("seed", skipna=True).values)
        return values.mean("seed", skipna=True).values

    def summarize(self, dataset: xr.Dataset, spec: ChizatLazySpec) -> list[dict[str, Any]]:
        means = {
            name: self._mean(dataset, name)
            for name in ("preactivation", "u", "v", "function", "final_loss")
        }
        return [
            {
                "alpha": float(alpha),
                **{name: float(values[i]) for name, values in means.items()},
                "diverged": int((dataset.diverged_at.sel(alpha=alpha) >= 0).sum()),
            }
            for i, alpha in enumerate(dataset.alpha.values)
        ]

    def check(self, dataset: xr.Dataset, spec: ChizatLazySpec) -> list[Claim]:
        note = dataset.attrs.get("divergence_note", "")
        alphas = dataset.alpha.values
        units = "antithetic" if spec.antithetic else "i.i.d."
        unit_claim = Claim.slope(
            "C7",
            f"tanh, L={spec.depth}, M={spec.width}, D={spec.dim}, K={spec.steps}, {units} units:"
            f" RMS pre-activation change <u - u_0, h_0>/D vs alpha ({alphas[0]:g}…"
            f"{alphas[-1]:g}) has slope -1 (units move O(1/alpha))",
            alphas,
            self._mean(dataset, "preactivation"),
            expected=-1.0,
            tolerance=0.1,
            what="pre-activation change vs alpha",
            note=note,
        )
        function = self._mean(dataset, "function")
        finite = function[np.isfinite(function)]
        ratios = finite / finite.mean() if finite.size else finite
        worst = float(ratios[np.argmax(np.abs(ratios - 1))]) if ratios.size else math.nan
        text = ", ".join(f"{a:g}: {f:.4f}" for a, f in zip(alphas, function, strict=True))
        function_claim = Claim.bound(
            "C7",
            f"The function moves O(1) whatever alpha: RMS of f_K - f_0 per alpha {text}" + note,
            bound(worst, equals=1.0, tolerance=spec.function_tolerance, n=finite.size),
            statistic="function movement / its mean over alpha, farthest from 1",
            note="every ratio",
            requires={"no alpha without a finite movement": finite.size == alphas.size},
            details={"function_movement": function.tolist()},
        )
        return [unit_claim, function_claim]

    def draw(self, dataset: xr.Dataset, spec: ChizatLazySpec) -> Figure:
        figure, axes = panel_grid(2, columns=2, size=(4.6, 3.5))
        alphas = dataset.alpha.values
        ax = axes[0]
        for color, name, label in (
            (COLORS[0], "preactivation", "<u - u_0, h_0>/D"),
            (COLORS[1], "u", "|u - u_0|/sqrt(D)"),
            (COLORS[2], "v", "|v - v_0|/sqrt(D)"),
        ):
            plot_series(ax, alphas, self._mean(dataset, name), label=label, color=color)
        ax.set_xlabel("alpha")
        ax.set_ylabel("RMS unit movement after K steps")
        ax.set_title("units: lazy as alpha grows")
        ax.legend(fontsize=7, frameon=False)
        ax = axes[1]
        function = self._mean(dataset, "function")
        ax.plot(alphas, function, "o-", color=COLORS[3], ms=4, label="RMS f_K - f_0")
        if np.isfinite(function).any():
            mean = np.nanmean(function)
            ax.axhspan(
                mean * (1 - spec.function_tolerance),
                mean * (1 + spec.function_tolerance),
                color="#27855a",
                alpha=0.12,
                label=f"mean ± {spec.function_tolerance:.0%}",
            )
        ax.set_xscale("log")
        ax.set_ylim(bottom=0)
        ax.set_xlabel("alpha")
        ax.set_ylabel("RMS function movement")
        ax.set_title("function: O(1) for every alpha")
        ax.legend(fontsize=7, frameon=False)
        add_caption(figure, self.title, dataset.attrs["caption"])
        return figure
