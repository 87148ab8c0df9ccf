"""Chizat C6: the error against the richness dial alpha at fixed L, M, D.

With residual scale ``alpha/(LM)`` and raw learning rate ``lr L M D / alpha^2`` (chizat.md
§1.1 Eq. (5)), the Mean ODE limit exists for every fixed ``alpha`` and the finite network's
CLT error is ``O(alpha sqrt(D/(LM)))`` (Thm 1, v1): slope ``+1`` in alpha (C6). For each alpha
the limit is a seed-averaged same-depth reference network of the same alpha (the 1/L term
cancels). Common random numbers: every alpha uses the same seed indices (the same initial
units), for the measured networks and for the references, so that the alpha-dependence is not
hidden by seed-to-seed noise.
"""

from __future__ import annotations

import math
from typing import Any

import xarray as xr

from ..training import MeanFieldScaling
from .chizat_sweep import SMOKE, ErrorSweep, ErrorSweepSpec, Slope, budget_text
from .spec_fields import IncreasingFloats, PositiveInt

__all__ = ["ChizatAlpha", "ChizatAlphaSpec"]


class ChizatAlphaSpec(ErrorSweepSpec):
    depth: PositiveInt = 16
    width: PositiveInt = 128
    dim: PositiveInt = 8
    alphas: IncreasingFloats = (1.0, 2.0, 4.0, 8.0)


class ChizatAlpha(ErrorSweep):
    name = "chizat-alpha"
    title = "Error against the residual-scale dial alpha (C6)"
    Spec = ChizatAlphaSpec
    order = 5
    axis, values_field, axis_label, axis_symbol = "alpha", "alphas", r"$\alpha$", "alpha"
    common_random_numbers = True
    slopes = (Slope("C6", "embedding", 1.0, 0.15, budget=True, guide="slope $+1$"),)

    def full_settings(self) -> dict[str, Any]:
        return {
            "depth": 32,
            "width": 256,
            "alphas": (1.0, 2.0, 4.0, 8.0, 16.0),
            "seeds": 16,
            "reference_width": 4096,
        }

    def smoke_settings(self) -> dict[str, Any]:
        sizes = {"depth": 4, "width": 8, "dim": 4, "reference_width": 32}
        return {**SMOKE, **sizes, "alphas": (1.0, 2.0, 4.0)}

    def setting(self, spec: ChizatAlphaSpec, value: float) -> dict[str, Any]:
        scaling = MeanFieldScaling(alpha=value, lr=spec.lr)
        return {"depth": spec.depth, "width": spec.width, "dim": spec.dim, "scaling": scaling}

    def caption(self, spec: ChizatAlphaSpec) -> str:
        return (
            f"tanh 2LP ResNets with residual scale alpha/(LM) and raw LR {spec.lr:g}·LMD/alpha^2 "
            f"(chizat.md §1.1 Eq. (5)), L={spec.depth}, M={spec.width}, D={spec.dim}, "
            f"alpha in {list(spec.alphas)}, synthetic task of §1.5, K={spec.steps} GD steps, "
            f"{spec.seeds} networks per alpha, {spec.dtype}, seed {spec.seed}; limit per alpha "
            f"= mean of {spec.reference_seeds} same-depth reference networks of width "
            f"{spec.reference_width} and the same alpha; common random numbers (the same "
            "initial units for every alpha). RMS error at step K of h_L (per coordinate) and "
            "of f: slope +1 in alpha (C6); dashed grey: slope +1."
        )

    def statement(self, slope: Slope, dataset: xr.Dataset, spec: ChizatAlphaSpec) -> str:
        alphas = dataset.alpha.values
        largest = alphas[-1] * math.sqrt(spec.dim / (spec.depth * spec.width))
        return (
            f"tanh, L={spec.depth}, M={spec.width}, D={spec.dim}, K={spec.steps}, LR "
            f"∝ 1/alpha^2: embedding error vs alpha ({alphas[0]:g}…{alphas[-1]:g}; largest "
            f"alpha sqrt(D/(LM)) = {largest:.2f}) has slope +1; reference error / measured "
            f"{budget_text(self.budget_ratio(dataset))}"
        )
