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

from ..training import exact_linear_limit
from .chizat_common import COLORS
from .chizat_sweep import SMOKE, ErrorSweep, ErrorSweepSpec, Point, Slope
from .claims import bound
from .spec_fields import IncreasingInts, PositiveInt, Seeds

__all__ = ["ChizatWidth", "ChizatWidthSpec"]


class ChizatWidthSpec(ErrorSweepSpec):
    depth: PositiveInt = 16
    dim: PositiveInt = 32
    widths: IncreasingInts = (16, 32, 64, 128, 256)
    linear_depth: PositiveInt = 32
    linear_dim: PositiveInt = 16
    linear_widths: IncreasingInts = (16, 32, 64, 128, 256, 512, 1024)
    linear_seeds: Seeds = 8


class ChizatWidth(ErrorSweep):
    name = "chizat-width"
    title = "Error against the width M at fixed L, D (C3, C8, C9)"
    Spec = ChizatWidthSpec
    order = 2
    axis, values_field, axis_label, axis_symbol, cast = "width", "widths", r"width $M$", "M", int
    slopes = (
        Slope("C3", "embedding", -0.5, 0.08, series="tanh"),
        Slope("C8", "output", -0.5, 0.1, series="tanh"),
        Slope("C9", "embedding", -0.5, 0.05, series="linear", guide="slope $-1/2$"),
    )
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
        tanh = {"depth": 4, "dim": 8, "widths": (4, 8, 16), "reference_width": 64}
        linear = {
            "linear_depth": 4,
            "linear_dim": 8,
            "linear_widths": (4, 8, 16),
            "linear_seeds": 2,
        }
        return {**SMOKE, **tanh, **linear}

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

    def series(self, spec: ChizatWidthSpec) -> dict[str, tuple]:
        """Per series: activation, depth, dim, widths, networks per width."""
        return {
            "tanh": ("tanh", spec.depth, spec.dim, spec.widths, spec.seeds),
            "linear": (
                *("identity", spec.linear_depth, spec.linear_dim),
                *(spec.linear_widths, spec.linear_seeds),
            ),
        }

    def points(self, spec: ChizatWidthSpec):
        for name, (activation, depth, dim, widths, seeds) in self.series(spec).items():
            for index, width in enumerate(widths):
                network = dict(depth=depth, width=width, dim=dim, activation=activation)
                seed_indices = self.seed_indices(spec, index, seeds)
                label, network = f"{name} M={width}", {**network, "lr": spec.lr}
                yield Point({"width": width}, label, network, seed_indices, name, name)

    def limit(self, spec: ChizatWidthSpec, point: Point, divergence: Any) -> Any:
        if point.series == "linear":  # the exact fixed-D Mean ODE
            return exact_linear_limit(spec.linear_dim, steps=spec.steps, lr=spec.lr), None
        return self.reference(
            spec,
            point.network,
            f"reference M={spec.reference_width}",
            divergence,
            description=f"mean of {spec.reference_seeds} tanh networks L={spec.depth}, "
            f"M={spec.reference_width}, D={spec.dim}",
        )

    def assemble(self, spec: ChizatWidthSpec, *args: Any) -> xr.Dataset:
        dataset = super().assemble(spec, *args)
        budget = {  # one reference for every width
            name: float(dataset[f"tanh_{name}"][0])
            for name in ("reference_embeddings_clt", "reference_outputs_clt")
        }
        euler, ode = (
            exact_linear_limit(spec.linear_dim, steps=spec.steps, lr=spec.lr, depth=depth)
            for depth in (spec.linear_depth, None)
        )
        floor = float(((euler.embeddings[-1] - ode.embeddings[-1]) ** 2).mean().sqrt())
        return dataset.drop_vars([f"tanh_{name}" for name in budget]).assign_attrs(
            **budget, linear_euler_floor=floor
        )

    def constants(self, dataset: xr.Dataset, spec: ChizatWidthSpec, name: str) -> np.ndarray:
        """err / sqrt(D/(LM)) of a series (C9: a constant c for linear sigma)."""
        depth, dim = self.series(spec)[name][1:3]
        widths = dataset[f"{name}_width"].values
        return dataset[f"{name}_embedding_error"].values / np.sqrt(dim / (depth * widths))

    def summarize(self, dataset: xr.Dataset, spec: ChizatWidthSpec) -> list[dict[str, Any]]:
        rows = []
        for name in self.series(spec):
            constants = self.constants(dataset, spec, name)
            for i, width in enumerate(dataset[f"{name}_width"].values):
                item = dataset.isel({f"{name}_width": i})
                rows.append(
                    {
                        "series": name,
                        "width": int(width),
                        **{
                            f"{q}_error": float(item[f"{name}_{q}_error"])
                            for q in ("embedding", "output")
                        },
                        "constant": float(constants[i]),
                        "diverged": int(item[f"{name}_diverged"]),
                    }
                )
        return rows

    def budget(self, dataset: xr.Dataset) -> tuple[float, float, bool]:
        """The reference's own embedding error, the smallest measured one, within 1/5."""
        embedding = dataset.tanh_embedding_error.values
        smallest = float(np.nanmin(embedding)) if np.isfinite(embedding).any() else math.nan
        budget = float(dataset.attrs["reference_embeddings_clt"])
        return budget, smallest, budget <= smallest / 5

    def statement(self, slope: Slope, dataset: xr.Dataset, spec: ChizatWidthSpec) -> str:
        widths = dataset.tanh_width.values
        budget, smallest, ok = self.budget(dataset)
        if slope.claim_id == "C3":
            return (
                f"tanh, L={spec.depth}, D={spec.dim}, K={spec.steps}: embedding error vs M "
                f"(M {widths[0]}…{widths[-1]}) against a same-depth reference has slope -1/2; "
                f"reference error {budget:.2g} {'<=' if ok else '>'} 1/5 of the smallest "
                f"error {smallest:.3g}"
            )
        if slope.claim_id == "C8":
            return (
                f"tanh, L={spec.depth}, D={spec.dim} (small D): output error vs M has slope "
                f"-1/2 (1/sqrt(LM)); reference output error "
                f"{float(dataset.attrs['reference_outputs_clt']):.2g}"
            )
        finite = self.constants(dataset, spec, "linear")
        finite = finite[np.isfinite(finite)]
        spread = (
            f"; c = err/sqrt(D/(LM)) from {finite.min():.3f} to {finite.max():.3f}"
            if finite.size
            else ""
        )
        return (
            f"linear sigma, L={spec.linear_depth}, D={spec.linear_dim}: embedding error vs the "
            f"exact fixed-D Mean ODE vanishes like c sqrt(D/(LM)){spread}; depth-L Euler floor "
            f"{float(dataset.attrs['linear_euler_floor']):.2g}"
        )

    def requires(self, slope: Slope, dataset: xr.Dataset, spec: Any) -> dict[str, Any] | None:
        budget, smallest, _ = self.budget(dataset)
        if slope.claim_id != "C3":
            return None
        return {"reference error <= 1/5 of the smallest": bound(budget, at_most=smallest / 5)}

    def details(self, slope: Slope, dataset: xr.Dataset, spec: Any) -> dict[str, Any] | None:
        if slope.claim_id == "C3":
            budget, _, ok = self.budget(dataset)
            return {"reference_clt": budget, "budget_ok": ok}
        if slope.claim_id == "C9":
            return {"constants": self.constants(dataset, spec, "linear").tolist()}
        return None

    def series_label(self, series: str, spec: ChizatWidthSpec) -> str:
        depth, dim = self.series(spec)[series][1:3]
        return f"{series} $L={depth}$, $D={dim}$"

    def panel_title(self, spec: ChizatWidthSpec, quantity: str) -> str:
        return {"embedding": "C3, C9", "output": "C8"}[quantity]

    def panel_count(self, spec: ChizatWidthSpec) -> int:
        return 3

    def panels(self, axes: list, dataset: xr.Dataset, spec: ChizatWidthSpec) -> None:
        super().panels(axes[:2], dataset, spec)
        ax = axes[2]
        constants = self.constants(dataset, spec, "linear")
        ax.plot(dataset.linear_width.values, constants, "o-", color=COLORS[1], ms=4)
        ax.set_xscale("log")
        if np.isfinite(constants).any():  # from 0, the largest point inside the frame
            ax.set_ylim(min(0.0, np.nanmin(constants)), 1.1 * max(np.nanmax(constants), 0.0))
        ax.set(xlabel=self.axis_label, ylabel=r"error $/\sqrt{D/(LM)}$")
        ax.set_title(r"C9: constant $c$ (linear $\sigma$)")
