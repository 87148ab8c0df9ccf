"""Chizat C4 and C8: the error against the embedding dimension D at fixed L, M.

tanh 2LP ResNets (chizat.md §1.2) after ``K`` GD steps, against a seed-averaged same-depth
reference of the same ``D`` and the same (coupled) embeddings, one per ``D`` (the fixed-D Mean
ODE depends on D). The embedding error per coordinate is the CLT term ``b sqrt(D/(LM))``:
slope ``+1/2`` in D (C4, for ``D << LM``). The output ``f = W_out^T h_L / D`` averages the D
coordinates: its error is ``~ 1/sqrt(LM)``, D-independent while ``D <~ sqrt(LM)`` (C8; a
``D/(LM)`` term takes over beyond, chizat.md §4.2). Defaults are the C4/C8 probes of §6
(L=16, M=32, D 8…128, LM = 512).
"""

from __future__ import annotations

import math
from typing import Any

import xarray as xr

from .chizat_sweep import SMOKE, ErrorSweep, ErrorSweepSpec, Slope, budget_text
from .spec_fields import IncreasingInts, PositiveInt

__all__ = ["ChizatDim", "ChizatDimSpec"]


class ChizatDimSpec(ErrorSweepSpec):
    depth: PositiveInt = 16
    width: PositiveInt = 32
    dims: IncreasingInts = (8, 16, 32, 64, 128)
    reference_width: PositiveInt = 512


class ChizatDim(ErrorSweep):
    name = "chizat-dim"
    title = "Error against the embedding dimension D at fixed L, M (C4, C8)"
    Spec = ChizatDimSpec
    order = 4
    axis, values_field, axis_label, axis_symbol = "dim", "dims", r"embedding dimension $D$", "D"
    cast = int
    slopes = (
        Slope("C4", "embedding", 0.5, 0.15, budget=True, guide="slope $+1/2$"),
        Slope("C8", "output", 0.0, 0.1),
    )

    def full_settings(self) -> dict[str, Any]:
        return {
            "dims": (4, 8, 16, 32, 64, 128, 256),
            "seeds": 16,
            "reference_width": 4096,
            "reference_seeds": 8,
        }

    def smoke_settings(self) -> dict[str, Any]:
        return {**SMOKE, "depth": 4, "width": 8, "dims": (4, 8, 16), "reference_width": 32}

    def label(self, value: int) -> str:
        return f"D={value}"

    def setting(self, spec: ChizatDimSpec, value: int) -> dict[str, Any]:
        return {"depth": spec.depth, "width": spec.width, "dim": value, "lr": spec.lr}

    def caption(self, spec: ChizatDimSpec) -> str:
        return (
            f"tanh 2LP ResNets (chizat.md §1.2, alpha = 1, raw LR {spec.lr:g}·LMD), L="
            f"{spec.depth}, M={spec.width} (LM = {spec.depth * spec.width}), D in "
            f"{list(spec.dims)}, synthetic task of §1.5, K={spec.steps} GD steps, "
            f"{spec.seeds} networks per D, {spec.dtype}, seed {spec.seed}; for each D the "
            f"limit is the mean of {spec.reference_seeds} same-depth reference networks of "
            f"width {spec.reference_width} with the same coupled W_in, W_out. RMS error at "
            "step K of h_L per coordinate (C4: slope +1/2) and of the output f (C8: "
            "D-independent while D <~ sqrt(LM)); dotted: fitted power laws; dashed grey: "
            "slope +1/2."
        )

    def statement(self, slope: Slope, dataset: xr.Dataset, spec: ChizatDimSpec) -> str:
        dims = dataset.dim.values
        if slope.claim_id == "C4":
            return (
                f"tanh, L={spec.depth}, M={spec.width}, K={spec.steps}: embedding error vs D "
                f"(D {dims[0]}…{dims[-1]}, D << LM = {spec.depth * spec.width}) has slope "
                f"+1/2; reference error / measured error {budget_text(self.budget_ratio(dataset))}"
            )
        return (
            f"tanh, L={spec.depth}, M={spec.width}: output error vs D (D {dims[0]}…{dims[-1]}, "
            f"sqrt(LM) = {math.sqrt(spec.depth * spec.width):.0f}) is D-independent (1/sqrt(LM))"
        )
