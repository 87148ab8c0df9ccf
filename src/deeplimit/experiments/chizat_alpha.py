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
from typing import Any, ClassVar

import numpy as np
import xarray as xr
from matplotlib.figure import Figure
from pydantic import field_validator

from ..training import MeanFieldScaling
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

__all__ = ["ChizatAlpha", "ChizatAlphaSpec"]


class ChizatAlphaSpec(ChizatSpec):
    depth: int = 16
    width: int = 128
    dim: int = 8
    alphas: tuple[float, ...] = (1.0, 2.0, 4.0, 8.0)
    seeds: int = 8
    reference_width: int = 2048
    reference_seeds: int = 8
    steps: int = 6
    lr: float = 0.5
    dtype: str = "float64"

    @field_validator("alphas")
    @classmethod
    def _alphas(cls, value: tuple[float, ...]) -> tuple[float, ...]:
        if (
            len(value) < 3
            or any(not math.isfinite(a) or a <= 0 for a in value)
            or list(value) != sorted(set(value))
        ):
            raise ValueError(
                f"alphas must be at least three distinct increasing finite numbers > 0, got {value}"
            )
        return value

    _positive = field_validator("depth", "width", "dim", "steps", "reference_width")(
        integer_at_least(1)
    )

    _seeds = field_validator("seeds", "reference_seeds")(integer_at_least(2))

    _lr = field_validator("lr")(positive_finite)

    _dtype = field_validator("dtype")(dtype_name)


class ChizatAlpha(ChizatExperiment):
    name = "chizat-alpha"
    title = "Error against the residual-scale dial alpha (C6)"
    Spec = ChizatAlphaSpec
    suite = "chizat"
    order = 5
    table: ClassVar[dict[str, str]] = {
        "alpha": "alpha",
        "embedding_error": "emb. error",
        "output_error": "output error",
        "reference_clt": "reference emb. error",
        "diverged": "diverged",
    }

    def full_settings(self) -> dict[str, Any]:
        return {
            "depth": 32,
            "width": 256,
            "alphas": (1.0, 2.0, 4.0, 8.0, 16.0),
            "seeds": 16,
            "reference_width": 4096,
        }

    def smoke_settings(self) -> dict[str, Any]:
        return {
            "depth": 4,
            "width": 8,
            "dim": 4,
            "alphas": (1.0, 2.0, 4.0),
            "seeds": 2,
            "reference_width": 32,
            "reference_seeds": 2,
            "steps": 2,
        }

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

    def _run(self, spec: ChizatAlphaSpec, progress: Progress | None = None) -> xr.Dataset:
        per_alpha = (
            spec.depth
            * spec.dim
            * (spec.width * spec.seeds + spec.reference_width * spec.reference_seeds)
        )
        tracker = Tracker(per_alpha * len(spec.alphas), progress)
        divergence = Divergence()
        common = dict(steps=spec.steps, seed=spec.seed, device=spec.device, dtype=spec.dtype)
        errors = np.full((len(spec.alphas), 2), np.nan)
        budgets = np.full((len(spec.alphas), 2), np.nan)
        diverged = np.zeros(len(spec.alphas), dtype=int)
        for index, alpha in enumerate(spec.alphas):
            scaling = MeanFieldScaling(alpha=alpha, lr=spec.lr)
            reference_run = train_networks(
                spec.depth,
                spec.reference_width,
                spec.dim,
                seeds=range(REFERENCE_INDEX, REFERENCE_INDEX + spec.reference_seeds),
                scaling=scaling,
                chunk=4,
                **common,
            )
            divergence.add(f"reference alpha={alpha:g}", reference_run)
            reference, budget = reference_network_limit(
                reference_run, description=f"reference alpha={alpha:g}"
            )
            budgets[index] = budget["embeddings_clt"], budget["outputs_clt"]
            result = train_networks(
                spec.depth,
                spec.width,
                spec.dim,
                seeds=range(spec.seeds),
                scaling=scaling,
                **common,
            )
            divergence.add(f"alpha={alpha:g}", result)
            diverged[index] = int(result.diverged.sum())
            errors[index] = error_pair(result, reference, spec.steps)
            tracker.advance(per_alpha)
        return error_dataset(
            "alpha",
            spec.alphas,
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
        return error_rows(dataset, "alpha", float)

    def claims(self, dataset: xr.Dataset) -> list[Claim]:
        spec = self.spec_from_dataset(dataset)
        alphas = dataset.alpha.values
        embedding = dataset.embedding_error.values
        ratio = dataset.reference_embeddings_clt.values / embedding
        budget_ok = bool(np.all(ratio[np.isfinite(ratio)] <= 0.2))
        largest = alphas[-1] * math.sqrt(spec.dim / (spec.depth * spec.width))
        claim = slope_claim(
            "C6",
            f"tanh, L={spec.depth}, M={spec.width}, D={spec.dim}, K={spec.steps}, LR "
            f"∝ 1/alpha^2: embedding error vs alpha ({alphas[0]:g}…{alphas[-1]:g}; largest "
            f"alpha sqrt(D/(LM)) = {largest:.2f}) has slope +1; reference error / measured "
            f"<= {np.nanmax(ratio):.2f} ({'within' if budget_ok else 'above'} the 1/5 budget)",
            alphas,
            embedding,
            expected=1.0,
            tolerance=0.15,
            what="embedding error vs alpha",
            note=dataset.attrs.get("divergence_note", ""),
        )
        if not budget_ok:
            claim = type(claim)(**{**claim.__dict__, "passed": False})
        return [claim]

    def plot(self, dataset: xr.Dataset) -> Figure:
        spec = self.spec_from_dataset(dataset)
        figure, axes = panel_grid(1, columns=1, size=(5.5, 3.8))
        ax = axes[0]
        alphas = dataset.alpha.values
        plot_series(ax, alphas, dataset.embedding_error.values, label="embedding", color=COLORS[0])
        plot_series(ax, alphas, dataset.output_error.values, label="output", color=COLORS[1])
        plot_series(
            ax,
            alphas,
            dataset.reference_embeddings_clt.values,
            label="reference (its own error)",
            color=COLORS[5],
            fit=False,
            marker="s",
            style=":",
        )
        first = dataset.embedding_error.values[0]
        if np.isfinite(first):
            reference_line(ax, alphas, first * 0.7, 1.0, "slope +1")
        ax.set_xlabel("alpha")
        ax.set_ylabel("RMS error at step K")
        ax.set_title(f"L={spec.depth}, M={spec.width}, D={spec.dim}")
        ax.legend(fontsize=7, frameon=False)
        add_caption(figure, self.title, dataset.attrs["caption"])
        return figure
