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
from typing import Any, ClassVar

import numpy as np
import xarray as xr
from matplotlib.figure import Figure
from pydantic import field_validator

from .base import Claim, Progress
from .chizat_common import (
    COLORS,
    ChizatExperiment,
    ChizatSpec,
    Divergence,
    Tracker,
    dtype_name,
    error_dataset,
    error_pair,
    error_rows,
    integer_at_least,
    plot_series,
    positive_finite,
    reference_line,
    reference_network_limit,
    slope_claim,
    train_networks,
)
from .chizat_width import REFERENCE_INDEX
from .plotting import add_caption, panel_grid

__all__ = ["ChizatDim", "ChizatDimSpec"]


class ChizatDimSpec(ChizatSpec):
    depth: int = 16
    width: int = 32
    dims: tuple[int, ...] = (8, 16, 32, 64, 128)
    seeds: int = 8
    reference_width: int = 512
    reference_seeds: int = 8
    steps: int = 6
    lr: float = 0.5
    dtype: str = "float64"

    @field_validator("dims")
    @classmethod
    def _dims(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if len(value) < 3 or any(v < 1 for v in value) or list(value) != sorted(set(value)):
            raise ValueError(
                f"dims must be at least three distinct increasing integers >= 1, got {value}"
            )
        return value

    _positive = field_validator("depth", "width", "steps", "reference_width")(integer_at_least(1))

    _seeds = field_validator("seeds", "reference_seeds")(integer_at_least(2))

    _lr = field_validator("lr")(positive_finite)

    _dtype = field_validator("dtype")(dtype_name)


class ChizatDim(ChizatExperiment):
    name = "chizat-dim"
    title = "Error against the embedding dimension D at fixed L, M (C4, C8)"
    Spec = ChizatDimSpec
    suite = "chizat"
    order = 4
    table: ClassVar[dict[str, str]] = {
        "dim": "D",
        "embedding_error": "emb. error",
        "output_error": "output error",
        "reference_clt": "reference emb. error",
        "diverged": "diverged",
    }

    def full_settings(self) -> dict[str, Any]:
        return {
            "dims": (4, 8, 16, 32, 64, 128, 256),
            "seeds": 16,
            "reference_width": 4096,
            "reference_seeds": 8,
        }

    def smoke_settings(self) -> dict[str, Any]:
        return {
            "depth": 4,
            "width": 8,
            "dims": (4, 8, 16),
            "seeds": 2,
            "reference_width": 32,
            "reference_seeds": 2,
            "steps": 2,
        }

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

    def _run(self, spec: ChizatDimSpec, progress: Progress | None = None) -> xr.Dataset:
        tracker = Tracker(
            spec.depth
            * sum(spec.dims)
            * (spec.width * spec.seeds + spec.reference_width * spec.reference_seeds),
            progress,
        )
        divergence = Divergence()
        errors = np.full((len(spec.dims), 2), np.nan)
        budgets = np.full((len(spec.dims), 2), np.nan)
        diverged = np.zeros(len(spec.dims), dtype=int)
        common = dict(
            steps=spec.steps, lr=spec.lr, seed=spec.seed, device=spec.device, dtype=spec.dtype
        )
        for index, dim in enumerate(spec.dims):
            reference_run = train_networks(
                spec.depth,
                spec.reference_width,
                dim,
                seeds=range(REFERENCE_INDEX, REFERENCE_INDEX + spec.reference_seeds),
                chunk=4,
                **common,
            )
            divergence.add(f"reference D={dim}", reference_run)
            reference, budget = reference_network_limit(
                reference_run, description=f"reference D={dim}"
            )
            budgets[index] = budget["embeddings_clt"], budget["outputs_clt"]
            tracker.advance(spec.depth * dim * spec.reference_width * spec.reference_seeds)
            result = train_networks(
                spec.depth,
                spec.width,
                dim,
                seeds=range(index * 1000, index * 1000 + spec.seeds),
                **common,
            )
            divergence.add(f"D={dim}", result)
            diverged[index] = int(result.diverged.sum())
            errors[index] = error_pair(result, reference, spec.steps)
            tracker.advance(spec.depth * dim * spec.width * spec.seeds)
        return error_dataset(
            "dim",
            spec.dims,
            errors,
            budgets,
            diverged,
            {
                "spec": spec.model_dump_json(),
                "caption": self.caption(spec) + divergence.note(),
                "divergence_note": divergence.note(),
            },
        )

    def statistics(self, dataset: xr.Dataset) -> list[dict[str, Any]]:
        return error_rows(dataset, "dim", int)

    def claims(self, dataset: xr.Dataset) -> list[Claim]:
        spec = self.spec_from_dataset(dataset)
        note = dataset.attrs.get("divergence_note", "")
        dims = dataset.dim.values
        embedding = dataset.embedding_error.values
        ratio = dataset.reference_embeddings_clt.values / embedding
        budget_ok = bool(np.all(ratio[np.isfinite(ratio)] <= 0.2))
        c4 = slope_claim(
            "C4",
            f"tanh, L={spec.depth}, M={spec.width}, K={spec.steps}: embedding error vs D "
            f"(D {dims[0]}…{dims[-1]}, D << LM = {spec.depth * spec.width}) has slope +1/2; "
            f"reference error / measured error <= {np.nanmax(ratio):.2f} "
            f"({'within' if budget_ok else 'above'} the 1/5 budget)",
            dims,
            embedding,
            expected=0.5,
            tolerance=0.15,
            what="embedding error vs D",
            note=note,
        )
        if not budget_ok:
            c4 = type(c4)(**{**c4.__dict__, "passed": False})
        c8 = slope_claim(
            "C8",
            f"tanh, L={spec.depth}, M={spec.width}: output error vs D (D {dims[0]}…{dims[-1]}, "
            f"sqrt(LM) = {math.sqrt(spec.depth * spec.width):.0f}) is D-independent (1/sqrt(LM))",
            dims,
            dataset.output_error.values,
            expected=0.0,
            tolerance=0.1,
            what="output error vs D",
            note=note,
        )
        return [c4, c8]

    def plot(self, dataset: xr.Dataset) -> Figure:
        spec = self.spec_from_dataset(dataset)
        figure, axes = panel_grid(2, columns=2, size=(4.6, 3.5))
        dims = dataset.dim.values
        ax = axes[0]
        plot_series(ax, dims, dataset.embedding_error.values, label="networks", color=COLORS[0])
        plot_series(
            ax,
            dims,
            dataset.reference_embeddings_clt.values,
            label="reference (its own error)",
            color=COLORS[5],
            fit=False,
            marker="s",
            style=":",
        )
        first = dataset.embedding_error.values[0]
        if np.isfinite(first):
            reference_line(ax, dims, first * 0.8, 0.5, "slope +1/2")
        ax.set_title(f"embedding error (C4), L={spec.depth}, M={spec.width}")
        ax.set_xlabel("embedding dimension D")
        ax.set_ylabel("RMS error per coordinate at step K")
        ax.legend(fontsize=7, frameon=False)
        ax = axes[1]
        plot_series(ax, dims, dataset.output_error.values, label="networks", color=COLORS[1])
        ax.axvline(math.sqrt(spec.depth * spec.width), color="#999999", lw=0.8, ls="--")
        ax.set_title("output error (C8); dashed: D = sqrt(LM)")
        ax.set_xlabel("embedding dimension D")
        ax.set_ylabel("RMS output error at step K")
        ax.legend(fontsize=7, frameon=False)
        add_caption(figure, self.title, dataset.attrs["caption"])
        return figure
