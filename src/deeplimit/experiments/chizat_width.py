"""Chizat C3, C8, C9: the error against the width M at fixed depth L and dimension D.

Trained 2LP ResNets (chizat.md §1.2) after ``K`` GD steps against their Mean ODE limit:

* tanh (the paper's activation): against a seed-averaged *same-depth* reference network of
  width ``M_ref`` (chizat.md §2.4(1)). At equal ``L`` the deterministic 1/L term cancels, so the
  error is the CLT term ``b sqrt(D/(LM))``: embedding slope ``-1/2`` (C3), output slope ``-1/2``
  at small D (C8, where the output averages D coordinates and is ``~ 1/sqrt(LM)``). The
  reference's own error (standard error of its mean) must be <= 1/5 of the smallest measured
  error (§6 common protocol).
* linear sigma: against the exact fixed-D Mean ODE (§2.4(2)); the error tends to zero as
  ``c sqrt(D/(LM))`` (C9).
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np
import xarray as xr
from matplotlib.figure import Figure

from ..training import exact_linear_limit
from .base import Claim, Progress
from .chizat_common import (
    COLORS,
    REFERENCE_INDEX,
    ChizatExperiment,
    ChizatSpec,
    Divergence,
    Tracker,
    error_pair,
    plot_series,
    reference_line,
    reference_network_limit,
    train_networks,
)
from .claims import bound
from .plotting import add_caption, panel_grid
from .spec_fields import DType, IncreasingInts, Positive, PositiveInt, Seeds

__all__ = ["ChizatWidth", "ChizatWidthSpec"]


class ChizatWidthSpec(ChizatSpec):
    depth: PositiveInt = 16
    dim: PositiveInt = 32
    widths: IncreasingInts = (16, 32, 64, 128, 256)
    seeds: Seeds = 8
    reference_width: PositiveInt = 2048
    reference_seeds: Seeds = 8
    linear_depth: PositiveInt = 32
    linear_dim: PositiveInt = 16
    linear_widths: IncreasingInts = (16, 32, 64, 128, 256, 512, 1024)
    linear_seeds: Seeds = 8
    steps: PositiveInt = 6
    lr: Positive = 0.5
    dtype: DType = "float64"


class ChizatWidth(ChizatExperiment):
    name = "chizat-width"
    title = "Error against the width M at fixed L, D (C3, C8, C9)"
    Spec = ChizatWidthSpec
    suite = "chizat"
    order = 2
    table: ClassVar[dict[str, str]] = {
        "series": "sigma",
        "width": "M",
        "embedding_error": "emb. error",
        "output_error": "output error",
        "constant": "err / sqrt(D/LM)",
        "diverged": "diverged",
    }

    def full_settings(self) -> dict[str, Any]:
        return {
            "widths": (16, 32, 64, 128, 256, 512),
            "seeds": 16,
            "reference_width": 8192,
            "reference_seeds": 16,
            "linear_widths": (16, 32, 64, 128, 256, 512, 1024, 2048, 4096),
            "linear_seeds": 16,
        }

    def smoke_settings(self) -> dict[str, Any]:
        return {
            "depth": 4,
            "dim": 8,
            "widths": (4, 8, 16),
            "seeds": 2,
            "reference_width": 64,
            "reference_seeds": 2,
            "linear_depth": 4,
            "linear_dim": 8,
            "linear_widths": (4, 8, 16),
            "linear_seeds": 2,
            "steps": 2,
        }

    def caption(self, spec: ChizatWidthSpec) -> str:
        return (
            f"2LP ResNets (chizat.md §1.2, alpha = 1, raw LR {spec.lr:g}·LMD, synthetic task "
            f"of §1.5: N=10, d_in=d_out=5, coupled W_in, W_out of embedding seed 0) after "
            f"K={spec.steps} full-batch GD steps, {spec.dtype}, seed {spec.seed}. tanh: L="
            f"{spec.depth}, D={spec.dim}, M in {list(spec.widths)}, {spec.seeds} networks per "
            f"M, against the mean of {spec.reference_seeds} same-depth reference networks of "
            f"width {spec.reference_width} (the 1/L term cancels; C3 embedding, C8 output). "
            f"Linear sigma: L={spec.linear_depth}, D={spec.linear_dim}, M in "
            f"{list(spec.linear_widths)}, {spec.linear_seeds} networks per M, against the exact "
            "fixed-D Mean ODE (§2.4(2), RK4, 128 depth intervals) (C9). Error = RMS over "
            "(coordinates, samples, networks) of h_L (embedding) or f (output) minus the limit, "
            "at step K. Dotted: least-squares power laws; dashed grey: slope -1/2."
        )

    def compute(self, spec: ChizatWidthSpec, progress: Progress | None = None) -> xr.Dataset:
        cost_tanh = (
            spec.depth
            * spec.dim
            * (sum(spec.widths) * spec.seeds + spec.reference_width * spec.reference_seeds)
        )
        cost_linear = spec.linear_depth * spec.linear_dim * sum(spec.linear_widths)
        tracker = Tracker(cost_tanh + cost_linear * spec.linear_seeds, progress)
        divergence = Divergence()
        common = dict(steps=spec.steps, lr=spec.lr, seed=spec.seed, device=spec.device)
        reference_run = train_networks(
            spec.depth,
            spec.reference_width,
            spec.dim,
            seeds=range(REFERENCE_INDEX, REFERENCE_INDEX + spec.reference_seeds),
            activation="tanh",
            dtype=spec.dtype,
            chunk=4,
            **common,
        )
        divergence.add(f"reference M={spec.reference_width}", reference_run)
        reference, budget = reference_network_limit(
            reference_run,
            description=f"mean of {spec.reference_seeds} tanh networks L={spec.depth}, "
            f"M={spec.reference_width}, D={spec.dim}",
        )
        tracker.advance(spec.depth * spec.dim * spec.reference_width * spec.reference_seeds)
        series = {}
        for name, activation, depth, dim, widths, seeds in (
            ("tanh", "tanh", spec.depth, spec.dim, spec.widths, spec.seeds),
            (
                "linear",
                "identity",
                spec.linear_depth,
                spec.linear_dim,
                spec.linear_widths,
                spec.linear_seeds,
            ),
        ):
            if name == "linear":
                limit = exact_linear_limit(dim, steps=spec.steps, lr=spec.lr)
            else:
                limit = reference
            errors = np.full((len(widths), 2), np.nan)
            diverged = np.zeros(len(widths), dtype=int)
            for index, width in enumerate(widths):
                result = train_networks(
                    depth,
                    width,
                    dim,
                    seeds=range(index * 1000, index * 1000 + seeds),
                    activation=activation,
                    dtype=spec.dtype,
                    **common,
                )
                divergence.add(f"{name} M={width}", result)
                diverged[index] = int(result.diverged.sum())
                errors[index] = error_pair(result, limit, spec.steps)
                tracker.advance(depth * dim * width * seeds)
            series[name] = (errors, diverged)
        euler = exact_linear_limit(
            spec.linear_dim, steps=spec.steps, lr=spec.lr, depth=spec.linear_depth
        )
        ode = exact_linear_limit(spec.linear_dim, steps=spec.steps, lr=spec.lr)
        floor = float(((euler.embeddings[-1] - ode.embeddings[-1]) ** 2).mean().sqrt())
        return xr.Dataset(
            {
                "tanh_embedding_error": (("tanh_width",), series["tanh"][0][:, 0]),
                "tanh_output_error": (("tanh_width",), series["tanh"][0][:, 1]),
                "tanh_diverged": (("tanh_width",), series["tanh"][1]),
                "linear_embedding_error": (("linear_width",), series["linear"][0][:, 0]),
                "linear_output_error": (("linear_width",), series["linear"][0][:, 1]),
                "linear_diverged": (("linear_width",), series["linear"][1]),
            },
            coords={"tanh_width": list(spec.widths), "linear_width": list(spec.linear_widths)},
            attrs={
                "divergence_note": divergence.note(),
                "reference_embeddings_clt": budget["embeddings_clt"],
                "reference_outputs_clt": budget["outputs_clt"],
                "linear_euler_floor": floor,
            },
        )

    def summarize(self, dataset: xr.Dataset, spec: ChizatWidthSpec) -> list[dict[str, Any]]:
        rows = []
        for name, depth, dim in (
            ("tanh", spec.depth, spec.dim),
            ("linear", spec.linear_depth, spec.linear_dim),
        ):
            for width in dataset[f"{name}_width"].values:
                item = dataset.sel({f"{name}_width": width})
                embedding = float(item[f"{name}_embedding_error"])
                rows.append(
                    {
                        "series": name,
                        "width": int(width),
                        "embedding_error": embedding,
                        "output_error": float(item[f"{name}_output_error"]),
                        "constant": embedding / math.sqrt(dim / (depth * int(width))),
                        "diverged": int(item[f"{name}_diverged"]),
                    }
                )
        return rows

    def check(self, dataset: xr.Dataset, spec: ChizatWidthSpec) -> list[Claim]:
        note = dataset.attrs.get("divergence_note", "")
        widths = dataset.tanh_width.values
        embedding = dataset.tanh_embedding_error.values
        output = dataset.tanh_output_error.values
        budget = float(dataset.attrs["reference_embeddings_clt"])
        budget_out = float(dataset.attrs["reference_outputs_clt"])
        smallest = float(np.nanmin(embedding)) if np.isfinite(embedding).any() else math.nan
        fifth = smallest / 5
        budget_ok = budget <= fifth
        c3 = Claim.slope(
            "C3",
            f"tanh, L={spec.depth}, D={spec.dim}, K={spec.steps}: embedding error vs M "
            f"(M {widths[0]}…{widths[-1]}) against a same-depth reference has slope -1/2; "
            f"reference error {budget:.2g} {'<=' if budget_ok else '>'} 1/5 of the smallest "
            f"error {smallest:.3g}",
            widths,
            embedding,
            expected=-0.5,
            tolerance=0.08,
            what="embedding error vs M",
            note=note,
            requires={"reference error <= 1/5 of the smallest": bound(budget, at_most=fifth)},
            details={"reference_clt": budget, "budget_ok": budget_ok},
        )
        c8 = Claim.slope(
            "C8",
            f"tanh, L={spec.depth}, D={spec.dim} (small D): output error vs M has slope -1/2 "
            f"(1/sqrt(LM)); reference output error {budget_out:.2g}",
            widths,
            output,
            expected=-0.5,
            tolerance=0.1,
            what="output error vs M",
            note=note,
        )
        linear_widths = dataset.linear_width.values
        linear = dataset.linear_embedding_error.values
        constants = linear / np.sqrt(spec.linear_dim / (spec.linear_depth * linear_widths))
        finite = constants[np.isfinite(constants)]
        spread = (
            f"; c = err/sqrt(D/(LM)) from {finite.min():.3f} to {finite.max():.3f}"
            if finite.size
            else ""
        )
        c9 = Claim.slope(
            "C9",
            f"linear sigma, L={spec.linear_depth}, D={spec.linear_dim}: embedding error vs the "
            f"exact fixed-D Mean ODE vanishes like c sqrt(D/(LM)){spread}; depth-L Euler floor "
            f"{float(dataset.attrs['linear_euler_floor']):.2g}",
            linear_widths,
            linear,
            expected=-0.5,
            tolerance=0.05,
            what="embedding error vs M",
            note=note,
            details={"constants": constants.tolist()},
        )
        return [c3, c8, c9]

    def draw(self, dataset: xr.Dataset, spec: ChizatWidthSpec) -> Figure:
        figure, axes = panel_grid(3, columns=3, size=(4.3, 3.4))
        for ax, quantity, title in (
            (axes[0], "embedding", "embedding error (C3, C9)"),
            (axes[1], "output", "output error (C8)"),
        ):
            for color, name, label in (
                (COLORS[0], "tanh", f"tanh L={spec.depth} D={spec.dim}"),
                (COLORS[1], "linear", f"linear L={spec.linear_depth} D={spec.linear_dim}"),
            ):
                x = dataset[f"{name}_width"].values
                plot_series(
                    ax, x, dataset[f"{name}_{quantity}_error"].values, label=label, color=color
                )
            x = dataset.linear_width.values
            first = dataset[f"linear_{quantity}_error"].values[0]
            if np.isfinite(first):
                reference_line(ax, x, first * 1.3, -0.5, "slope -1/2")
            ax.set_xlabel("width M")
            ax.set_ylabel("RMS error at step K")
            ax.set_title(title)
            ax.legend(fontsize=7, frameon=False)
        ax = axes[2]
        x = dataset.linear_width.values
        constants = dataset.linear_embedding_error.values / np.sqrt(
            spec.linear_dim / (spec.linear_depth * x)
        )
        ax.plot(x, constants, "o-", color=COLORS[1], ms=4)
        ax.set_xscale("log")
        ax.set_xlabel("width M")
        ax.set_ylabel("error / sqrt(D/(LM))")
        ax.set_title("C9: constant c (linear sigma)")
        low = np.nanmin(constants) if np.isfinite(constants).any() else 0.0
        ax.set_ylim(bottom=0.0 if not np.isfinite(low) else min(0.0, low))
        add_caption(figure, self.title, dataset.attrs["caption"])
        return figure
