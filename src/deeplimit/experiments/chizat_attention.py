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
* **CA6** (cf. C5 and the hidden width): after ``K`` steps at fixed small ``M`` and ``D``, the
  embedding error against a seed-averaged *same-width* reference of depth ``L_ref`` (an
  estimate of the depth limit, which does not depend on ``M``) falls with ``L``. The theory
  gives ``error^2 ~ (a/L)^2 + b^2 D/(LM)``; at ``M`` small against ``D`` the CLT term
  dominates and the slope against ``L`` is ``-1/2`` (it steepens towards ``-1`` where the Euler
  term ``a/L`` matters). The two-term law, fitted once, is reported with the slope.
* **CA4** (cf. C7, the lazy regime): with ``alpha`` growing (antithetic heads, so the initial
  function does not depend on ``alpha``), the RMS movement of the heads' parameters after ``K``
  steps falls like ``1/alpha`` (slope -1 ± 0.1) while
* **CA5** the function's movement ``RMS(f_K - f_0)`` stays put (every ratio to the
  ``alpha = 1`` value within 1 ± 0.2, editorial).

Stated as "predicted by the theory, formally; measured here". Errors are RMS over
(coordinates, tokens, samples, networks); the datasets also keep each network's RMS error
(``*_seeds``), drawn as mean ± 1.96 standard errors.
"""

from __future__ import annotations

import math
import warnings
from typing import Annotated, Any, ClassVar

import numpy as np
import torch
import xarray as xr
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from pydantic import AfterValidator, ValidationInfo

from ..training import train_resnet
from ..training.attention import AttentionBlock, synthetic_sequence_task
from .base import Progress
from .chizat_common import (
    COLORS,
    ChizatExperiment,
    ChizatSpec,
    Tracker,
    chizat_figure,
    fit_or_none,
    reference_line,
)
from .chizat_depth import collapse_fit
from .claims import Claim, bound
from .spec_fields import DType, IncreasingFloats, IncreasingInts, Positive, PositiveInt, Seeds
from .style import error_band

__all__ = ["ChizatAttention", "ChizatAttentionSpec"]

REFERENCE_INDEX = 100_000  # seed indices of the same-depth (width) reference networks
DEPTH_REFERENCE_INDEX = 200_000  # ... of the same-width (depth) reference networks
DEPTH_INDEX = 50_000  # ... of the networks of the depth series
SPLIT_SPREAD = 0.15
BUDGET_FRACTION = 5  # a reference's own error must be <= 1/5 of the smallest measured error


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
    depth_width: PositiveInt = 4
    depths: IncreasingInts = (1, 2, 4, 8, 16)
    depth_seeds: Seeds = 6
    depth_reference: PositiveInt = 256
    depth_reference_seeds: Seeds = 4
    steps: PositiveInt = 5
    lr: Positive = 0.5
    lazy_alphas: IncreasingFloats = (1.0, 2.0, 4.0, 8.0, 16.0, 32.0)
    lazy_depth: PositiveInt = 4
    lazy_width: Annotated[int, AfterValidator(_even)] = 64
    lazy_seeds: Seeds = 4
    dtype: DType = "float64"


def _pooled(per_seed: np.ndarray, axis: int = -1) -> np.ndarray:
    """RMS over networks from each network's RMS (equal sizes): NaN where none is finite."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN slices: NaN
        return np.sqrt(np.nanmean(per_seed**2, axis=axis))


def _seed_errors(embeddings: torch.Tensor, target: torch.Tensor, diverged: Any = None):
    """Each network's RMS of ``embeddings - target`` (``(S, ...)`` against ``(...)``), NaN for
    the networks that diverged."""
    errors = ((embeddings - target) ** 2).flatten(1).mean(1).sqrt().double().numpy()
    if diverged is not None:
        errors[diverged.numpy()] = np.nan
    return errors


class ChizatAttention(ChizatExperiment):
    name = "chizat-attention"
    title = "Attention heads as the hidden width: error vs LM at init, vs M and L; lazy regime"
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
        # one line per study: init (CA1, CA2), vs M (CA3), vs L (CA6), lazy (CA4, CA5)
        return {
            **{"init_products": (16, 64, 256, 1024, 4096), "init_seeds": 16},
            **{"widths": (8, 16, 32, 64, 128, 256), "seeds": 12},
            **{"reference_width": 4096, "reference_seeds": 8},
            **{"depths": (1, 2, 4, 8, 16, 32), "depth_seeds": 12},
            **{"depth_reference": 512, "depth_reference_seeds": 8},
            **{"lazy_alphas": (1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0), "lazy_width": 256},
            **{"lazy_seeds": 8},
        }

    def smoke_settings(self) -> dict[str, Any]:
        return {
            **{"dim": 6, "key_dim": 2, "tokens": 3, "steps": 2},
            **{"init_products": (4, 8, 16), "init_depths": (1, 2, 4), "init_seeds": 2},
            **{"depth": 2, "widths": (2, 4, 8), "seeds": 2},
            **{"reference_width": 16, "reference_seeds": 2},
            **{"depth_width": 2, "depths": (1, 2, 4), "depth_seeds": 2},
            **{"depth_reference": 16, "depth_reference_seeds": 2},
            **{"lazy_alphas": (1.0, 4.0, 16.0), "lazy_depth": 2, "lazy_width": 4, "lazy_seeds": 2},
        }

    def caption(self, spec: ChizatAttentionSpec) -> str:
        return (
            f"ResNets of causal attention heads (key_dim {spec.key_dim}, tanh value path, "
            f"training/attention.py), critical scaling alpha = 1, raw LR {spec.lr:g}·LMD, "
            f"synthetic sequences (N=10, T={spec.tokens}, d_in=d_out=5, iid N(0,1)), "
            f"D={spec.dim}, {spec.dtype}, seed {spec.seed}. (a) error at initialization "
            f"RMS(h_L - h_0) against LM in {list(spec.init_products)} for L in "
            f"{list(spec.init_depths)} (M = LM/L), {spec.init_seeds} networks each (CA1, CA2). "
            f"(b) embedding error after K={spec.steps} GD steps at L={spec.depth} against "
            f"M in {list(spec.widths)} ({spec.seeds} networks each), against the mean of "
            f"{spec.reference_seeds} same-depth networks of width {spec.reference_width} (CA3). "
            f"(c) the same at M={spec.depth_width} against L in {list(spec.depths)} "
            f"({spec.depth_seeds} networks each), against the mean of "
            f"{spec.depth_reference_seeds} same-width networks of depth {spec.depth_reference} "
            "(CA6; dashed: the two-term law sqrt(a^2/L^2 + b^2 D/(LM)) fitted once). "
            f"(d) lazy regime: L={spec.lazy_depth}, M={spec.lazy_width} antithetic heads, "
            f"alpha in {list(spec.lazy_alphas)}, {spec.lazy_seeds} networks each: RMS movement "
            f"of the heads' parameters and of the function f after K={spec.steps} steps (CA4, "
            "CA5). Points and bands: mean of the networks' RMS errors ± 1.96 standard errors; "
            "dotted: least-squares power laws; dashed grey: slope -1/2; dotted grey: the "
            "reference's own error."
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

    def _reference(
        self, spec: ChizatAttentionSpec, depth: int, width: int, seeds: int, start: int
    ) -> tuple[torch.Tensor, float]:
        """The seed mean of ``seeds`` networks of shape ``(depth, width)`` at step ``K`` and its
        own error (RMS standard error of the mean)."""
        run = self._train(spec, depth, width, range(start, start + seeds), spec.steps)
        kept = run.embeddings[~run.diverged, -1]
        budget = float((kept.var(0) / max(1, kept.shape[0])).mean().sqrt())
        return kept.mean(0), budget

    def _series(
        self,
        spec: ChizatAttentionSpec,
        shapes: list[tuple[int, int]],
        seeds: int,
        start: int,
        reference: torch.Tensor,
        tracker: Tracker,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Each network's error at step ``K`` against ``reference`` for networks of the given
        ``(depth, width)`` shapes (``seeds`` each, seed indices from ``start + 1000 i``), and
        the number that diverged per shape."""
        errors = np.full((len(shapes), seeds), np.nan)
        diverged = np.zeros(len(shapes), dtype=int)
        for index, (depth, width) in enumerate(shapes):
            first = start + index * 1000
            result = self._train(spec, depth, width, range(first, first + seeds), spec.steps)
            errors[index] = _seed_errors(result.embeddings[:, -1], reference, result.diverged)
            diverged[index] = int(result.diverged.sum())
            tracker.advance(depth * width * seeds)
        return errors, diverged

    def compute(self, spec: ChizatAttentionSpec, progress: Progress | None = None) -> xr.Dataset:
        init_cost = sum(spec.init_products) * len(spec.init_depths) * spec.init_seeds
        width_cost = spec.depth * (
            sum(spec.widths) * spec.seeds + spec.reference_width * spec.reference_seeds
        )
        depth_cost = spec.depth_width * (
            sum(spec.depths) * spec.depth_seeds + spec.depth_reference * spec.depth_reference_seeds
        )
        lazy_cost = spec.lazy_depth * spec.lazy_width * spec.lazy_seeds * len(spec.lazy_alphas)
        tracker = Tracker(init_cost + width_cost + depth_cost + lazy_cost, progress)
        init = np.full((len(spec.init_depths), len(spec.init_products), spec.init_seeds), np.nan)
        for i, depth in enumerate(spec.init_depths):
            for j, product in enumerate(spec.init_products):
                if product % depth == 0 and product >= depth:
                    result = self._train(spec, depth, product // depth, spec.init_seeds, 0)
                    h0 = (result.x @ result.w_in.T).to(result.embeddings.dtype)
                    init[i, j] = _seed_errors(result.embeddings[:, 0], h0)
                tracker.advance(product * spec.init_seeds)
        reference, budget = self._reference(
            spec, spec.depth, spec.reference_width, spec.reference_seeds, REFERENCE_INDEX
        )
        tracker.advance(spec.depth * spec.reference_width * spec.reference_seeds)
        width_errors, width_diverged = self._series(
            spec, [(spec.depth, w) for w in spec.widths], spec.seeds, 0, reference, tracker
        )
        depth_target, depth_budget = self._reference(
            spec,
            spec.depth_reference,
            spec.depth_width,
            spec.depth_reference_seeds,
            DEPTH_REFERENCE_INDEX,
        )
        tracker.advance(spec.depth_reference * spec.depth_width * spec.depth_reference_seeds)
        depth_errors, depth_diverged = self._series(
            spec,
            [(d, spec.depth_width) for d in spec.depths],
            spec.depth_seeds,
            DEPTH_INDEX,
            depth_target,
            tracker,
        )
        lazy = self._lazy(spec, tracker)
        return xr.Dataset(
            {
                "lazy_unit_movement": (("alpha",), lazy[:, 0]),
                "lazy_function_movement": (("alpha",), lazy[:, 1]),
                "init_error": (("init_depth", "init_product"), _pooled(init)),
                "init_error_seeds": (("init_depth", "init_product", "init_seed"), init),
                "width_error": (("width",), _pooled(width_errors)),
                "width_error_seeds": (("width", "seed"), width_errors),
                "diverged": (("width",), width_diverged),
                "depth_error": (("depth",), _pooled(depth_errors)),
                "depth_error_seeds": (("depth", "depth_seed"), depth_errors),
                "depth_diverged": (("depth",), depth_diverged),
            },
            coords={
                "init_depth": list(spec.init_depths),
                "init_product": list(spec.init_products),
                "width": list(spec.widths),
                "depth": list(spec.depths),
                "alpha": list(spec.lazy_alphas),
            },
            attrs={
                "spec": spec.model_dump_json(),
                "caption": self.caption(spec),
                "reference_clt": budget,
                "depth_reference_clt": depth_budget,
            },
        )

    def _lazy(self, spec: ChizatAttentionSpec, tracker: Tracker) -> np.ndarray:
        """``(alpha, 2)``: RMS movement of the heads' parameters (relative to ``sqrt(D)``) and
        of the function after ``K`` steps, antithetic heads."""
        lazy = np.full((len(spec.lazy_alphas), 2), np.nan)
        data = synthetic_sequence_task(tokens=spec.tokens)
        sizes = {"q": spec.key_dim, "k": spec.key_dim, "u": 1, "v": 1}
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
                squares = sum(sizes[n] * result.movement[n][keep, -1] ** 2 for n in sizes)
                function = result.outputs[keep, -1] - result.outputs[keep, 0]
                lazy[index] = (
                    float((squares / sum(sizes.values())).mean().sqrt()) / math.sqrt(spec.dim),
                    float((function**2).mean().sqrt()),
                )
            tracker.advance(spec.lazy_depth * spec.lazy_width * spec.lazy_seeds)
        return lazy

    def summarize(self, dataset: xr.Dataset, spec: Any) -> list[dict[str, Any]]:
        rows = []

        def add(series: str, depth: int, width: int, error: float) -> None:
            constant = error / math.sqrt(spec.dim / (depth * width))
            rows.append(
                {
                    "series": series,
                    "depth": depth,
                    "width": width,
                    "error": error,
                    "constant": constant,
                }
            )

        for depth in dataset.init_depth.values:
            for product in dataset.init_product.values:
                error = float(dataset.init_error.sel(init_depth=depth, init_product=product))
                if math.isfinite(error):  # LM not a multiple of L: no network
                    add("init", int(depth), int(product // depth), error)
        for width in dataset.width.values:
            add(
                f"step {spec.steps}",
                spec.depth,
                int(width),
                float(dataset.width_error.sel(width=width)),
            )
        if "depth_error" in dataset:
            for depth in dataset.depth.values:
                error = float(dataset.depth_error.sel(depth=depth))
                add(f"step {spec.steps} (vs L)", int(depth), spec.depth_width, error)
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
        claims.append(
            Claim.slope(
                "CA3",
                f"attention heads, L={spec.depth}, D={spec.dim}, K={spec.steps}: the embedding "
                f"error against a same-depth reference (M_ref={spec.reference_width}) falls like "
                f"M^(-1/2) (predicted by the theory, formally; measured here); reference error "
                f"{budget:.2g} vs smallest error {_smallest(errors):.3g}",
                dataset.width.values,
                errors,
                expected=-0.5,
                tolerance=0.1,
                what="embedding error vs M",
                details={"reference_clt": budget},
            )
        )
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
        if "depth_error" in dataset:  # results stored before CA6 existed lack it
            claims.append(self._depth_claim(dataset, spec))
        for claim in claims:
            claim.details["experiment"] = self.name
        return claims

    def _depth_claim(self, dataset: xr.Dataset, spec: Any) -> Claim:
        depths = dataset.depth.values
        errors = dataset.depth_error.values
        budget = float(dataset.attrs["depth_reference_clt"])
        smallest = _smallest(errors)
        law = _two_term_law(depths, spec.depth_width, spec.dim, errors)
        fitted = (
            f"; the two-term law sqrt(a^2/L^2 + b^2 D/(LM)) fitted once gives a = {law[0]:.3f}, "
            f"b = {law[1]:.3f}"
            if law is not None
            else ""
        )
        return Claim.slope(
            "CA6",
            f"attention heads, M={spec.depth_width}, D={spec.dim}, K={spec.steps}: the "
            f"embedding error against a same-width reference (L_ref={spec.depth_reference}, "
            f"{spec.depth_reference_seeds} networks) falls like L^(-1/2), the CLT term "
            "b sqrt(D/(LM)) dominating the Euler term a/L at M small against D (predicted by "
            f"the theory, formally; measured here){fitted}; reference error {budget:.2g} vs "
            f"smallest error {smallest:.3g}",
            depths,
            errors,
            expected=-0.5,
            tolerance=0.1,
            what="embedding error vs L",
            requires={
                f"reference error <= 1/{BUDGET_FRACTION} of the smallest": bound(
                    budget, at_most=smallest / BUDGET_FRACTION
                )
            },
            details={
                "reference_clt": budget,
                "a": None if law is None else law[0],
                "b": None if law is None else law[1],
            },
        )

    def draw(self, dataset: xr.Dataset, spec: Any) -> Figure:
        has_depth = "depth_error" in dataset
        panels = 4 if has_depth else 3
        with chizat_figure(panels, columns=2, size=(3.6, 2.8)) as (figure, axes):
            self._draw_init(axes[0], dataset)
            _draw_errors(
                axes[1],
                dataset.width.values,
                dataset.width_error_seeds.values
                if "width_error_seeds" in dataset
                else dataset.width_error.values,
                dataset.width_error.values,
                label=f"$L={spec.depth}$",
                reference=float(dataset.attrs["reference_clt"]),
            )
            axes[1].set(
                xlabel="heads per layer $M$",
                ylabel=f"embedding error at step {spec.steps}",
                title="vs $M$, same-depth ref. (CA3)",
            )
            if has_depth:
                depths = dataset.depth.values
                _draw_errors(
                    axes[2],
                    depths,
                    dataset.depth_error_seeds.values,
                    dataset.depth_error.values,
                    label=f"$M={spec.depth_width}$",
                    reference=float(dataset.attrs["depth_reference_clt"]),
                )
                law = _two_term_law(depths, spec.depth_width, spec.dim, dataset.depth_error.values)
                if law is not None:
                    grid = np.geomspace(depths.min(), depths.max(), 50)
                    curve = np.sqrt(
                        law[0] ** 2 / grid**2 + law[1] ** 2 * spec.dim / (grid * spec.depth_width)
                    )
                    axes[2].plot(
                        grid,
                        curve,
                        color=COLORS[3],
                        ls="--",
                        lw=1.0,
                        label=f"$a={law[0]:.2f},\\ b={law[1]:.2f}$",
                    )
                axes[2].set(
                    xlabel="depth $L$",
                    ylabel=f"embedding error at step {spec.steps}",
                    title="vs $L$, same-width ref. (CA6)",
                )
            self._draw_lazy(axes[-1], dataset, spec)
        return figure

    def _draw_init(self, ax: Axes, dataset: xr.Dataset) -> None:
        products = dataset.init_product.values
        seeds = dataset.init_error_seeds.values if "init_error_seeds" in dataset else None
        for i, depth in enumerate(dataset.init_depth.values):
            _power_law(
                ax,
                products,
                seeds[i].T if seeds is not None else dataset.init_error.values[i],
                label=f"$L={int(depth)}$",
                color=COLORS[i % len(COLORS)],
                pooled=dataset.init_error.values[i],
            )
        first = np.nanmax(dataset.init_error.values[:, 0])
        if np.isfinite(first):
            reference_line(ax, products, first * 1.2, -0.5, "slope $-1/2$")
        ax.set(
            xlabel="$LM$",
            ylabel="$\\mathrm{RMS}(h_L - h_0)$ at init",
            title="at initialization (CA1, CA2)",
        )

    def _draw_lazy(self, ax: Axes, dataset: xr.Dataset, spec: Any) -> None:
        alphas = dataset.alpha.values
        for color, name, label in (
            (COLORS[1], "lazy_unit_movement", "heads$/\\sqrt{D}$"),
            (COLORS[2], "lazy_function_movement", "function $f$"),
        ):
            _power_law(ax, alphas, dataset[name].values, label=label, color=color)
        ax.set(
            xlabel="$\\alpha$",
            ylabel=f"movement after {spec.steps} steps",
            title="lazy regime (CA4, CA5)",
        )


def _smallest(errors: np.ndarray) -> float:
    return float(np.nanmin(errors)) if np.isfinite(errors).any() else math.nan


def _two_term_law(depths: Any, width: int, dim: int, errors: Any) -> tuple[float, float] | None:
    """``(a, b)`` of ``error^2 = a^2/L^2 + b^2 D/(LM)`` fitted once (``collapse_fit``), or None
    with fewer than 2 finite points."""
    depths = np.asarray(depths, dtype=float)
    errors = np.asarray(errors, dtype=float)
    keep = np.isfinite(errors) & (errors > 0)
    if keep.sum() < 2:
        return None
    a, b, _ = collapse_fit(depths[keep], np.full(int(keep.sum()), float(width)), dim, errors[keep])
    return a, b


def _power_law(
    ax: Axes, x: Any, values: Any, *, label: str, color: str, pooled: Any = None
) -> None:
    """``values`` (``(seeds, points)`` or ``(points,)``) as mean ± 1.96 standard errors, and
    the least-squares power law of ``pooled`` (default: ``values``) dotted, its slope in the
    label."""
    pooled = values if pooled is None else pooled
    fit = fit_or_none(x, pooled)
    text = label if fit is None else f"{label}: slope ${fit.slope:+.2f}$"
    error_band(ax, x, values, label=text, color=color)
    ax.set(xscale="log", yscale="log")
    if fit is not None:
        keep = np.isfinite(pooled) & (np.asarray(pooled) > 0)
        grid = np.geomspace(np.asarray(x)[keep].min(), np.asarray(x)[keep].max(), 50)
        ax.plot(grid, fit.predict(grid), ls=":", color=color, lw=1.0)


def _draw_errors(
    ax: Axes, x: Any, per_seed: Any, pooled: Any, *, label: str, reference: float
) -> None:
    """An error series against ``x`` (CA3, CA6): the networks' errors, their fitted power law,
    a slope ``-1/2`` for the eye and the reference's own error (dotted grey)."""
    per_seed = np.asarray(per_seed, dtype=float)
    _power_law(
        ax,
        x,
        per_seed.T if per_seed.ndim == 2 else per_seed,
        label=label,
        color=COLORS[0],
        pooled=pooled,
    )
    first = np.asarray(pooled, dtype=float)[0]
    if np.isfinite(first):
        reference_line(ax, x, first * 1.2, -0.5, "slope $-1/2$")
    if math.isfinite(reference):
        ax.axhline(reference, color="#999999", lw=0.8, ls=":", label="ref. own error")
