"""Chizat's width studies redone with attention heads as the hidden units (training/attention.py).

The limit theorems cover any block ``sum_j phi(h, z_j)`` with i.i.d. units; the papers say so
for "attention heads per layer" and "Transformers with bounded key-query dimension" but check
only 2LP blocks. Here ``M`` causal attention heads (key dimension ``d_k``) per layer, critical
scaling ``alpha/(LM)``, raw learning rate ``lr L M D / alpha^2``, on the synthetic sequence
task (``N = 10`` sequences of ``T = 4`` tokens, ``d_in = d_out = 5``, i.i.d. ``N(0, 1)``).

* **CA1** (cf. C1): at initialization the limit is ``h_L = h_0`` (a head's output has mean
  zero), and the error is ``RMS(h_L - h_0) ~ b sqrt(D/(LM))``: slope ``-1/2`` against ``LM``.
* **CA2** (cf. C2): at fixed ``LM`` the error does not depend on the split into ``L`` and ``M``:
  spread (max/min - 1) of ``error / sqrt(D/(LM))`` across splits at most 15% (editorial bound).
* **CA3** (cf. C3): after ``K`` GD steps, the embedding error against a seed-averaged
  same-depth reference of width ``M_ref`` falls like ``M^(-1/2)`` at fixed ``L, D``.
* **CA4** (cf. C7, the lazy regime): with ``alpha`` growing (antithetic heads, so the initial
  function does not depend on ``alpha``), the RMS movement of the heads' parameters after ``K``
  steps falls like ``1/alpha`` (slope -1 ± 0.1) while
* **CA5** the function's movement ``RMS(f_K - f_0)`` stays put (every ratio to the
  ``alpha = 1`` value within 1 ± 0.2, editorial).

Stated as "predicted by the theory, formally; measured here".
"""

from __future__ import annotations

import math
from typing import Annotated, Any, ClassVar

import numpy as np
import torch
import xarray as xr
from matplotlib.figure import Figure
from pydantic import AfterValidator, ValidationInfo

from ..training import train_resnet
from ..training.attention import AttentionBlock, synthetic_sequence_task
from .base import Progress
from .chizat_common import (
    COLORS,
    ChizatExperiment,
    ChizatSpec,
    plot_series,
    reference_line,
)
from .claims import Claim, bound
from .plotting import add_caption, panel_grid
from .spec_fields import DType, IncreasingFloats, IncreasingInts, Positive, PositiveInt, Seeds

__all__ = ["ChizatAttention", "ChizatAttentionSpec"]

REFERENCE_INDEX = 100_000
SPLIT_SPREAD = 0.15


def _even(value: int, info: ValidationInfo) -> int:
    if value < 2 or value % 2:
        raise ValueError(
            f"{info.field_name} must be an even integer >= 2 (antithetic heads), got {value}"
        )
    return value


class ChizatAttentionSpec(ChizatSpec):
    dim: PositiveInt = 16
    key_dim: PositiveInt = 4
    tokens: PositiveInt = 4
    init_products: IncreasingInts = (16, 64, 256, 1024)
    init_depths: IncreasingInts = (1, 4, 16)
    init_seeds: Seeds = 8
    depth: PositiveInt = 4
    widths: IncreasingInts = (8, 16, 32, 64, 128)
    seeds: Seeds = 6
    reference_width: PositiveInt = 1024
    reference_seeds: Seeds = 4
    steps: PositiveInt = 5
    lr: Positive = 0.5
    lazy_alphas: IncreasingFloats = (1.0, 2.0, 4.0, 8.0, 16.0, 32.0)
    lazy_depth: PositiveInt = 4
    lazy_width: Annotated[int, AfterValidator(_even)] = 64
    lazy_seeds: Seeds = 4
    dtype: DType = "float64"


class ChizatAttention(ChizatExperiment):
    name = "chizat-attention"
    title = (
        "Attention heads as the hidden width: error vs LM at init and after training, lazy regime"
    )
    Spec = ChizatAttentionSpec
    suite = "beyond"
    order = 3
    table: ClassVar[dict[str, str]] = {
        "series": "series",
        "depth": "L",
        "width": "M",
        "error": "emb. error",
        "constant": "err / sqrt(D/LM)",
    }

    def full_settings(self) -> dict[str, Any]:
        return {
            "init_products": (16, 64, 256, 1024, 4096),
            "init_seeds": 16,
            "widths": (8, 16, 32, 64, 128, 256),
            "seeds": 12,
            "reference_width": 4096,
            "reference_seeds": 8,
            "lazy_alphas": (1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0),
            "lazy_width": 256,
            "lazy_seeds": 8,
        }

    def smoke_settings(self) -> dict[str, Any]:
        return {
            "dim": 6,
            "key_dim": 2,
            "tokens": 3,
            "init_products": (4, 8, 16),
            "init_depths": (1, 2, 4),
            "init_seeds": 2,
            "depth": 2,
            "widths": (2, 4, 8),
            "seeds": 2,
            "reference_width": 16,
            "reference_seeds": 2,
            "steps": 2,
            "lazy_alphas": (1.0, 4.0, 16.0),
            "lazy_depth": 2,
            "lazy_width": 4,
            "lazy_seeds": 2,
        }

    def caption(self, spec: ChizatAttentionSpec) -> str:
        return (
            f"ResNets of causal attention heads (key_dim {spec.key_dim}, tanh value path, "
            f"training/attention.py), critical scaling alpha = 1, raw LR {spec.lr:g}·LMD, "
            f"synthetic sequences (N=10, T={spec.tokens}, d_in=d_out=5, iid N(0,1)), "
            f"D={spec.dim}, {spec.dtype}, seed {spec.seed}. Left: error at initialization "
            f"RMS(h_L - h_0) against LM in {list(spec.init_products)} for L in "
            f"{list(spec.init_depths)} (M = LM/L), {spec.init_seeds} networks each (CA1, CA2). "
            f"Right: embedding error after K={spec.steps} GD steps at L={spec.depth} against "
            f"M in {list(spec.widths)} ({spec.seeds} networks each), against the mean of "
            f"{spec.reference_seeds} same-depth networks of width {spec.reference_width} (CA3). "
            f"Lazy regime: L={spec.lazy_depth}, M={spec.lazy_width} antithetic heads, alpha in "
            f"{list(spec.lazy_alphas)}, {spec.lazy_seeds} networks each: RMS movement of the "
            f"heads' parameters and of the function f after K={spec.steps} steps (CA4, CA5)."
        )

    def _train(self, spec: ChizatAttentionSpec, depth: int, width: int, seeds: Any, steps: int):
        data = synthetic_sequence_task(tokens=spec.tokens)
        return train_resnet(
            depth,
            width,
            spec.dim,
            block="attention",
            key_dim=spec.key_dim,
            data=data,
            steps=steps,
            lr=spec.lr,
            seeds=seeds,
            seed=spec.seed,
            device=spec.device,
            dtype=getattr(torch, spec.dtype),
            record_movement=False,
            on_divergence="ignore",
        )

    def compute(self, spec: ChizatAttentionSpec, progress: Progress | None = None) -> xr.Dataset:
        init = np.full((len(spec.init_depths), len(spec.init_products)), np.nan)
        total = init.size + len(spec.widths) + 1
        done = 0

        def tick() -> None:
            nonlocal done
            done += 1
            if progress is not None:
                progress(done, total)

        for i, depth in enumerate(spec.init_depths):
            for j, product in enumerate(spec.init_products):
                if product % depth or product < depth:
                    tick()
                    continue
                result = self._train(spec, depth, product // depth, spec.init_seeds, 0)
                h = result.embeddings[:, 0]
                h0 = (result.x @ result.w_in.T).to(h.dtype)
                init[i, j] = float(((h - h0) ** 2).mean().sqrt())
                tick()
        reference_run = self._train(
            spec,
            spec.depth,
            spec.reference_width,
            range(REFERENCE_INDEX, REFERENCE_INDEX + spec.reference_seeds),
            spec.steps,
        )
        ok = ~reference_run.diverged
        reference = reference_run.embeddings[ok, -1]
        budget = float((reference.var(0) / max(1, int(ok.sum()))).mean().sqrt())
        reference = reference.mean(0)
        tick()
        errors = np.full(len(spec.widths), np.nan)
        diverged = np.zeros(len(spec.widths), dtype=int)
        for index, width in enumerate(spec.widths):
            result = self._train(
                spec, spec.depth, width, range(index * 1000, index * 1000 + spec.seeds), spec.steps
            )
            keep = ~result.diverged
            diverged[index] = int((~keep).sum())
            if keep.any():
                diff = result.embeddings[keep, -1] - reference
                errors[index] = float((diff**2).mean().sqrt())
            tick()
        lazy = np.full((len(spec.lazy_alphas), 2), np.nan)
        data = synthetic_sequence_task(tokens=spec.tokens)
        for index, alpha in enumerate(spec.lazy_alphas):
            result = train_resnet(
                spec.lazy_depth,
                spec.lazy_width,
                spec.dim,
                block=AttentionBlock(spec.tokens, spec.key_dim, antithetic=True),
                data=data.flat(),
                steps=spec.steps,
                alpha=alpha,
                lr=spec.lr,
                seeds=spec.lazy_seeds,
                seed=spec.seed,
                device=spec.device,
                dtype=getattr(torch, spec.dtype),
                record_movement=True,
                on_divergence="ignore",
            )
            keep = ~result.diverged
            if keep.any():
                sizes = {"q": spec.key_dim, "k": spec.key_dim, "u": 1, "v": 1}
                squares = sum(sizes[n] * result.movement[n][keep, -1] ** 2 for n in sizes) / sum(
                    sizes.values()
                )
                function = result.outputs[keep, -1] - result.outputs[keep, 0]
                lazy[index] = (
                    float(squares.mean().sqrt()) / math.sqrt(spec.dim),
                    float((function**2).mean().sqrt()),
                )
        return xr.Dataset(
            {
                "lazy_unit_movement": (("alpha",), lazy[:, 0]),
                "lazy_function_movement": (("alpha",), lazy[:, 1]),
                "init_error": (("init_depth", "init_product"), init),
                "width_error": (("width",), errors),
                "diverged": (("width",), diverged),
            },
            coords={
                "init_depth": list(spec.init_depths),
                "init_product": list(spec.init_products),
                "width": list(spec.widths),
                "alpha": list(spec.lazy_alphas),
            },
            attrs={
                "spec": spec.model_dump_json(),
                "caption": self.caption(spec),
                "reference_clt": budget,
            },
        )

    def summarize(self, dataset: xr.Dataset, spec: Any) -> list[dict[str, Any]]:
        rows = []
        for depth in dataset.init_depth.values:
            for product in dataset.init_product.values:
                error = float(dataset.init_error.sel(init_depth=depth, init_product=product))
                if not math.isfinite(error):
                    continue
                rows.append(
                    {
                        "series": "init",
                        "depth": int(depth),
                        "width": int(product // depth),
                        "error": error,
                        "constant": error / math.sqrt(spec.dim / product),
                    }
                )
        for width in dataset.width.values:
            error = float(dataset.width_error.sel(width=width))
            rows.append(
                {
                    "series": f"step {spec.steps}",
                    "depth": spec.depth,
                    "width": int(width),
                    "error": error,
                    "constant": error / math.sqrt(spec.dim / (spec.depth * width)),
                }
            )
        return rows

    def check(self, dataset: xr.Dataset, spec: Any) -> list[Claim]:
        products = dataset.init_product.values.astype(float)
        init = dataset.init_error.values
        pooled = np.exp(np.nanmean(np.log(init), axis=0))  # geometric mean over splits
        claims = []
        ca1 = Claim.slope(
            "CA1",
            f"attention heads, D={spec.dim}, d_k={spec.key_dim}: the error at initialization "
            f"RMS(h_L - h_0) scales like sqrt(D/(LM)) (predicted by the theory, formally; "
            f"measured here; geometric mean over L in {list(spec.init_depths)})",
            products,
            pooled,
            expected=-0.5,
            tolerance=0.08,
            what="init error vs LM",
        )
        claims.append(ca1)
        constants = init / np.sqrt(spec.dim / products)[None, :]
        spreads = []
        for j in range(products.size):
            column = constants[:, j][np.isfinite(constants[:, j])]
            if column.size >= 2:
                spreads.append(float(column.max() / column.min() - 1))
        spread = max(spreads) if spreads else math.nan
        claims.append(
            Claim.bound(
                "CA2",
                f"attention heads: at fixed LM the error at initialization does not depend on "
                f"the split into L (in {list(spec.init_depths)}) and M (predicted by the theory, "
                "formally; measured here): largest spread of err/sqrt(D/(LM)) across splits",
                bound(spread, at_most=SPLIT_SPREAD, n=int(np.isfinite(constants).sum())),
                statistic="max over LM of (max/min - 1) of err/sqrt(D/(LM)) across splits",
                note=f"editorial; {spec.init_seeds} networks each",
                details={"spreads": spreads, "constants": constants.tolist()},
            )
        )
        budget = float(dataset.attrs["reference_clt"])
        errors = dataset.width_error.values
        smallest = float(np.nanmin(errors)) if np.isfinite(errors).any() else math.nan
        ca3 = Claim.slope(
            "CA3",
            f"attention heads, L={spec.depth}, D={spec.dim}, K={spec.steps}: the embedding "
            f"error against a same-depth reference (M_ref={spec.reference_width}) falls like "
            f"M^(-1/2) (predicted by the theory, formally; measured here); reference error "
            f"{budget:.2g} vs smallest error {smallest:.3g}",
            dataset.width.values,
            errors,
            expected=-0.5,
            tolerance=0.1,
            what="embedding error vs M",
            details={"reference_clt": budget},
        )
        claims.append(ca3)
        alphas = dataset.alpha.values
        claims.append(
            Claim.slope(
                "CA4",
                f"attention heads (antithetic), L={spec.lazy_depth}, M={spec.lazy_width}, "
                f"K={spec.steps}: the RMS movement of the heads' parameters (q, k, u, v, "
                "relative to sqrt(D)) falls like 1/alpha — the lazy regime (predicted by the "
                "theory, formally; measured here)",
                alphas,
                dataset.lazy_unit_movement.values,
                expected=-1.0,
                tolerance=0.1,
                what="head movement vs alpha",
            )
        )
        function = dataset.lazy_function_movement.values
        ratios = function / function[0]
        finite = ratios[np.isfinite(ratios)]
        worst = float(np.max(np.abs(finite - 1))) if finite.size else math.nan
        claims.append(
            Claim.bound(
                "CA5",
                f"attention heads: the function's movement RMS(f_K - f_0) does not depend on "
                f"alpha in {[float(a) for a in alphas]} (predicted by the theory, formally; "
                "measured here)",
                bound(worst, at_most=0.2, n=int(finite.size)),
                statistic="largest |ratio - 1| of RMS(f_K - f_0) to its alpha = 1 value",
                note="editorial",
                requires={"every alpha finite": bool(finite.size == ratios.size)},
                details={"ratios": ratios.tolist()},
            )
        )
        for claim in claims:
            claim.details["experiment"] = self.name
        return claims

    def draw(self, dataset: xr.Dataset, spec: Any) -> Figure:
        figure, axes = panel_grid(3, columns=3, size=(4.4, 3.6))
        products = dataset.init_product.values
        for i, depth in enumerate(dataset.init_depth.values):
            plot_series(
                axes[0],
                products,
                dataset.init_error.values[i],
                label=f"L={int(depth)}",
                color=COLORS[i % len(COLORS)],
            )
        first = np.nanmax(dataset.init_error.values[:, 0])
        if np.isfinite(first):
            reference_line(axes[0], products, first * 1.2, -0.5, "slope -1/2")
        axes[0].set_xlabel("LM")
        axes[0].set_ylabel("RMS(h_L - h_0) at init")
        axes[0].set_title("error at initialization (CA1, CA2)")
        axes[0].legend(fontsize=7, frameon=False)
        widths = dataset.width.values
        plot_series(
            axes[1], widths, dataset.width_error.values, label=f"L={spec.depth}", color=COLORS[0]
        )
        first = dataset.width_error.values[0]
        if np.isfinite(first):
            reference_line(axes[1], widths, first * 1.2, -0.5, "slope -1/2")
        axes[1].axhline(dataset.attrs["reference_clt"], color="#999999", lw=0.8, ls=":")
        axes[1].set_xlabel("heads per layer M")
        axes[1].set_ylabel(f"embedding error at step {spec.steps}")
        axes[1].set_title("error after training vs M (CA3)")
        axes[1].legend(fontsize=7, frameon=False)
        alphas = dataset.alpha.values
        plot_series(
            axes[2],
            alphas,
            dataset.lazy_unit_movement.values,
            label="heads (RMS / sqrt(D))",
            color=COLORS[1],
        )
        plot_series(
            axes[2],
            alphas,
            dataset.lazy_function_movement.values,
            label="function f",
            color=COLORS[2],
        )
        axes[2].set_xlabel("alpha")
        axes[2].set_ylabel(f"movement after {spec.steps} steps")
        axes[2].set_title("lazy regime (CA4, CA5)")
        axes[2].legend(fontsize=7, frameon=False)
        add_caption(figure, self.title, dataset.attrs["caption"])
        return figure
