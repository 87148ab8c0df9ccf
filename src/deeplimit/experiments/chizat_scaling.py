"""The authors' linear three-panel scaling study (chizat.md §4.3; C10, C11, C13, C14).

Chaintron–Chizat–Maass (2026), Python code: sigma = id, alpha = 1, their task (``x = 0.8
g/|g|``, ``y = A x + 0.05 xi``, seed 42), their maps ``W_e, W_u ~ N(0, 1)`` (13 NumPy seeds,
coupled prefixes), ``eta_0 = 0.1`` (our ``lr = 0.15``), errors read after 5 updates against the
exact ``D -> infinity`` limit *with the 1/L term kept* (the continuous-depth limit, here
``span_linear_limit(infinite_dim=True)`` on an RK4 grid, resampled linearly to the layers as
they do). Every (L, M, D) of a 3-D grid is trained for every (W seed, U/V seed).

Two metrics (``metric`` selects the one fitted and drawn; both are stored): ``"authors"`` =
per run ``max_l mean_d |h_l - H(l/L)|``, then the mean over runs with values > 1e3 set to 0
(``training.authors``); ``"rms"`` = our RMS over coordinates and runs at ``h_L`` (diverged runs
excluded and counted). Output error: ``sqrt(mean_dout (f - f_lim)^2)`` per run, averaged the
same way.

Fits (``chizat_fits``), on the authors' windows: one global law per quantity with fixed
exponents, ``err^2 = a D/(ML) + b/D + c/L^2`` (embedding), ``err^2 = a (D/(ML))^2 + b/D``
(output), constants with 95% CIs (C13, C14: both terms detected, i.e. the CIs of ``a`` and ``b``
exclude 0); and the same laws with free exponents, whose budget exponent ``e`` (1/6, 1/5) and
the Wald test of the theory's exponents check C10, C11 on this grid, with a note where the
data cannot separate the exponents.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np
import torch
import xarray as xr
from matplotlib.figure import Figure
from pydantic import field_validator, model_validator

from ..checkpoints import current
from ..training import build_resnet, train
from ..training.authors import (
    AUTHORS_DIVERGENCE_THRESHOLD,
    AUTHORS_MAX_DIM,
    AUTHORS_W_SEEDS,
    authors_embeddings,
    authors_linear_task,
    authors_mean,
    interpolate_depth,
    layer_error,
    rms_error,
    with_embeddings,
)
from . import chizat_common as common
from .base import Claim, Progress
from .chizat_common import COLORS, ChizatExperiment, ChizatSpec, Divergence, Tracker, authors_grid
from .chizat_fits import budget_exponent_claim
from .claims import bound
from .spec_fields import AtLeast, DType, Increasing, Positive, PositiveInt

__all__ = ["ChizatScaling", "ChizatScalingSpec", "authors_grid"]

METRICS = ("authors", "rms")
EMBEDDING_TERMS = ("D/(LM)", "1/D", "1/L^2")
OUTPUT_TERMS = ("(D/(LM))^2", "1/D")


# each axis of the grid: at least two distinct increasing integers >= 1
Axis = Increasing(int, length=2)


class ChizatScalingSpec(ChizatSpec):
    depths: Axis = (17, 40, 93)
    widths: Axis = (17, 40, 93, 216)
    dims: Axis = (17, 40, 93, 216)
    w_seeds: tuple[int, ...] = AUTHORS_W_SEEDS[:4]
    unit_seeds: PositiveInt = 2
    step: PositiveInt = 5
    eta: Positive = 0.1
    metric: str = "authors"
    panel_dim: int | None = None
    panel_depth: int | None = None
    embedding_window: tuple[int, int, int] = (11, 11, 11)
    output_window: tuple[int, int, int, int, int, int] = (11, 11, 11, 199, 999, 199)
    residuals: common.Residuals = "log"
    intervals: AtLeast(4) = 256
    tolerance: Positive = 0.03
    dtype: DType = "float64"

    @field_validator("w_seeds")
    @classmethod
    def _w_seeds(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if not value or len(set(value)) != len(value) or any(not 0 <= v < 2**32 for v in value):
            raise ValueError(f"w_seeds must be distinct integers in [0, 2^32), got {value}")
        return value

    @field_validator("metric")
    @classmethod
    def _metric(cls, value: str) -> str:
        if value not in METRICS:
            raise ValueError(f"metric must be one of {', '.join(METRICS)}, got {value!r}")
        return value

    @model_validator(mode="after")
    def _panels(self) -> ChizatScalingSpec:
        if self.panel_dim is not None and self.panel_dim not in self.dims:
            raise ValueError(f"panel_dim must be one of dims {self.dims}, got {self.panel_dim}")
        if self.panel_depth is not None and self.panel_depth not in self.depths:
            raise ValueError(
                f"panel_depth must be one of depths {self.depths}, got {self.panel_depth}"
            )
        if max(self.dims) > AUTHORS_MAX_DIM:
            raise ValueError(
                f"dims must be <= {AUTHORS_MAX_DIM} (the authors' maps have {AUTHORS_MAX_DIM} "
                f"rows), got {max(self.dims)}"
            )
        return self

    def chosen_dim(self) -> int:
        return self.panel_dim if self.panel_dim is not None else self.dims[len(self.dims) // 2]

    def chosen_depth(self) -> int:
        return (
            self.panel_depth if self.panel_depth is not None else self.depths[len(self.depths) // 2]
        )


class ChizatScaling(ChizatExperiment):
    name = "chizat-scaling"
    title = (
        "The authors' linear scaling study: error vs D, L, M with one global fit "
        "a·D/(ML) + b/D + c/L² (C10, C11, C13, C14)"
    )
    Spec = ChizatScalingSpec
    order = 10
    table: ClassVar[dict[str, str]] = common.columns(
        "depth", "width", "dim", "embedding_error", "output_error", "diverged"
    )

    def full_settings(self) -> dict[str, Any]:
        grid = authors_grid()
        return {
            "depths": grid,
            "widths": grid[:-1],  # their M loop skips 499
            "dims": grid,
            "w_seeds": AUTHORS_W_SEEDS,
            "unit_seeds": 5,
            "panel_dim": 70,
            "panel_depth": 163,
            "embedding_window": (11, 11, 51),
            "output_window": (11, 11, 11, 199, 999, 199),
        }

    def smoke_settings(self) -> dict[str, Any]:
        return {
            "depths": (4, 8),
            "widths": (4, 8, 16),
            "dims": (4, 8, 16),
            "w_seeds": AUTHORS_W_SEEDS[:1],
            "unit_seeds": 1,
            "step": 2,
            "intervals": 16,
            "embedding_window": (1, 1, 1),
            "output_window": (1, 1, 1, 1000, 1000, 1000),
        }

    def caption(self, spec: ChizatScalingSpec) -> str:
        lr = common.python_lr(spec.eta)
        metric = (
            "authors' metric: per run max over layers of mean_d |h_l - H(l/L)|, mean over runs "
            "with values > 1e3 set to 0"
            if spec.metric == "authors"
            else "RMS over coordinates and runs at h_L (diverged runs excluded)"
        )
        return (
            f"Linear 2LP ResNets (sigma = id, alpha = 1), the authors' task and maps (Python, "
            f"chizat.md §1.5: N=1, d=3, NumPy seed 42; W_e, W_u ~ N(0,1), W seeds "
            f"{list(spec.w_seeds)}), eta_0={spec.eta:g} (lr={lr:g}), {spec.unit_seeds} U/V "
            f"seed(s) per W seed, L in {list(spec.depths)}, M in {list(spec.widths)}, D in "
            f"{list(spec.dims)}, read at step {spec.step}, {spec.dtype}, seed {spec.seed}. "
            f"Limit: exact D -> infinity linear limit, continuous depth (1/L term kept), RK4 on "
            f"{spec.intervals} intervals, linearly resampled to the layers. Embedding error: "
            f"{metric}; output error sqrt(mean (f - f_lim)^2), averaged alike. Panels: vs D at "
            f"L={max(spec.depths)} (one curve per M), vs L at D={spec.chosen_dim()} (per M), "
            f"vs M at L={spec.chosen_depth()} (per D); dashed: one global fit per quantity "
            f"(embedding err² = a D/(ML) + b/D + c/L² on D, M, L >= "
            f"{spec.embedding_window}; output err² = a (D/(ML))² + b/D on "
            f"{spec.output_window[:3]} <= (D, M, L) <= {spec.output_window[3:]}), "
            f"{spec.residuals} residuals. Bottom: against P = LMD."
        )

    def compute(self, spec: ChizatScalingSpec, progress: Progress | None = None) -> xr.Dataset:
        task = authors_linear_task()
        lr = common.python_lr(spec.eta)
        divergence = Divergence()
        limit = common.authors_span_limit(task, lr, spec.step, spec.intervals, divergence)
        xi = limit.details["coefficients"][spec.step]  # (n+1, N, r)
        f_limit = limit.outputs[spec.step]  # (N, d_out)
        runs = len(spec.w_seeds) * spec.unit_seeds
        shape = (len(spec.depths), len(spec.widths), len(spec.dims), runs)
        emb_authors = np.full(shape, np.nan)
        emb_rms = np.full(shape, np.nan)
        out_err = np.full(shape, np.nan)
        diverged = np.zeros(shape[:3], dtype=int)
        work = sum(L * M * D for L in spec.depths for M in spec.widths for D in spec.dims)
        tracker = Tracker(work * len(spec.w_seeds), progress)
        max_dim = max(spec.dims)
        maps = [
            authors_embeddings(max_dim, w_seed=w, max_dim=max(AUTHORS_MAX_DIM, max_dim))
            for w in spec.w_seeds
        ]
        # run r = (W seed r // unit_seeds, U/V seed r % unit_seeds): every run of a shape in one
        # batch (chunks of at most PARAMETER_BUDGET bytes of parameters)
        w_e_all = torch.stack([m[0] for m in maps for _ in range(spec.unit_seeds)])
        w_u_all = torch.stack([m[1] for m in maps for _ in range(spec.unit_seeds)])
        unit_index = [u for _ in spec.w_seeds for u in range(spec.unit_seeds)]
        # per-coordinate limit paths W[i] xi for every run: (runs, n+1, N, Dmax)
        limit_states = torch.einsum("mnr,sdr->smnd", xi, torch.cat([w_e_all, w_u_all], dim=2))
        resampled: dict[int, torch.Tensor] = {}

        def layers_at(depth: int) -> torch.Tensor:
            """The limit paths resampled to ``depth`` layers (the last depth asked, kept)."""
            if depth not in resampled:
                resampled.clear()
                resampled[depth] = torch.stack([interpolate_depth(p, depth) for p in limit_states])
            return resampled[depth]

        checkpoint = current()  # units: one shape each (deeplimit.checkpoints)
        maps_all = (w_e_all, w_u_all, unit_index)
        for i, depth in enumerate(spec.depths):
            for j, width in enumerate(spec.widths):
                for k, dim in enumerate(spec.dims):
                    size = (depth, width, dim)
                    unit = checkpoint.unit(
                        f"L{depth}-M{width}-D{dim}",
                        functools.partial(
                            self._shape_runs, spec, task, size, maps_all, layers_at, f_limit
                        ),
                    )
                    for part in common.batches(runs, depth, width, dim, spec.dtype):
                        divergence.add_steps(
                            f"L={depth} M={width} D={dim}", unit["diverged_at"][part]
                        )
                    diverged[i, j, k] += int((unit["diverged_at"] >= 0).sum())
                    emb_authors[i, j, k] = unit["authors"]
                    emb_rms[i, j, k] = unit["rms"]
                    out_err[i, j, k] = unit["output"]
                    tracker.advance(depth * width * dim * len(spec.w_seeds))
        coords = {
            "depth": list(spec.depths),
            "width": list(spec.widths),
            "dim": list(spec.dims),
            "run": np.arange(runs),
        }
        dims_ = ("depth", "width", "dim", "run")
        return xr.Dataset(
            {
                "embedding_error_authors_runs": (dims_, emb_authors),
                "embedding_error_rms_runs": (dims_, emb_rms),
                "output_error_runs": (dims_, out_err),
                "diverged": (dims_[:3], diverged),
            },
            coords=coords,
            attrs={
                "spec": spec.model_dump_json(),
                "caption": self.caption(spec) + divergence.note(),
                "divergence_note": divergence.note(),
                "limit_outputs": f_limit.flatten().tolist(),
            },
        )

    @staticmethod
    def _shape_runs(
        spec: ChizatScalingSpec,
        task: Any,
        shape: tuple[int, int, int],
        maps: tuple[torch.Tensor, torch.Tensor, list[int]],
        layers_at: Callable[[int], torch.Tensor],
        f_limit: torch.Tensor,
    ) -> dict[str, np.ndarray]:
        """The unit of one shape (L, M, D): every run's errors (authors' metric, RMS at h_L,
        output) and the step at which each diverged (-1: never). Run ``r`` = (W seed
        ``r // unit_seeds``, U/V seed ``r % unit_seeds``), in chunks of at most
        ``PARAMETER_BUDGET`` bytes of parameters."""
        depth, width, dim = shape
        w_e_all, w_u_all, unit_index = maps
        runs = len(unit_index)
        out = {name: np.full(runs, np.nan) for name in ("authors", "rms", "output")}
        diverged_at = np.full(runs, -1, dtype=np.int64)
        for part in common.batches(runs, depth, width, dim, spec.dtype):
            model = build_resnet(
                depth,
                width,
                dim,
                input_dim=3,
                output_dim=3,
                activation="identity",
                lr=common.python_lr(spec.eta),
                seeds=unit_index[part],
                seed=spec.seed,
                embeddings=(w_e_all[0, :dim], w_u_all[0, :dim]),
                device=spec.device,
                dtype=getattr(torch, spec.dtype),
            )
            model = with_embeddings(model, w_e_all[part, :dim], w_u_all[part, :dim])
            result = train(
                model,
                task,
                spec.step,
                record_movement=False,
                record_layers=True,
                on_divergence="ignore",
            )
            diverged_at[part] = result.diverged_at.numpy()
            states = result.states[:, spec.step].double()  # (S, L+1, N, D)
            target = layers_at(depth)[part, ..., :dim]
            out["authors"][part] = layer_error(states, target).numpy()
            out["rms"][part] = rms_error(states[:, -1], target[:, -1]).numpy()
            out["output"][part] = rms_error(result.outputs[:, spec.step].double(), f_limit).numpy()
        return {**out, "diverged_at": diverged_at}

    # ---------------------------------------------------------------------------------------

    def errors(self, dataset: xr.Dataset) -> dict[str, np.ndarray]:
        """Run-averaged errors (depth, width, dim) by the spec's metric."""
        return {q: v[0] for q, v in self._errors(dataset).items()}

    def _errors(self, dataset: xr.Dataset) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Per quantity: the run-averaged errors by the spec's metric and the relative
        half-widths of their 95% intervals over the runs (NaN with one run)."""
        spec = self.spec_from_dataset(dataset)
        out = dataset.output_error_runs.values
        if spec.metric == "authors":
            runs = {"embedding": dataset.embedding_error_authors_runs.values, "output": out}
            cleaned = {
                q: np.where(np.isfinite(v) & (v <= AUTHORS_DIVERGENCE_THRESHOLD), v, 0.0)
                for q, v in runs.items()
            }
            return {
                q: (authors_mean(v, axis=-1), common.mean_over(cleaned[q])) for q, v in runs.items()
            }
        runs = {"embedding": dataset.embedding_error_rms_runs.values, "output": out}
        with np.errstate(invalid="ignore"):
            return {
                q: (np.sqrt(np.nanmean(v**2, axis=-1)), common.rms_over(v)[1])
                for q, v in runs.items()
            }

    def fits(self, dataset: xr.Dataset) -> dict[str, dict[str, Any] | None]:
        spec = self.spec_from_dataset(dataset)
        errors = self.errors(dataset)
        depth, width, dim = np.meshgrid(
            dataset.depth.values, dataset.width.values, dataset.dim.values, indexing="ij"
        )
        fits: dict[str, dict[str, Any] | None] = {}
        low = spec.embedding_window
        window = (dim >= low[0]) & (width >= low[1]) & (depth >= low[2])
        o = spec.output_window
        window_out = (
            (dim >= o[0])
            & (width >= o[1])
            & (depth >= o[2])
            & (dim <= o[3])
            & (width <= o[4])
            & (depth <= o[5])
        )
        for quantity, pick, terms, expected, depth_term in (
            ("embedding", window, EMBEDDING_TERMS, (0.5, 0.5), True),
            ("output", window_out, OUTPUT_TERMS, (1.0, 0.5), False),
        ):
            fits[quantity], fits[f"{quantity}_free"] = common.fit_laws(
                depth,
                width,
                dim,
                np.where(pick, errors[quantity], np.nan),
                terms,
                depth_term=depth_term,
                expected=expected,
                residuals=spec.residuals,
            )
        return fits

    def summarize(self, dataset: xr.Dataset, spec: Any) -> list[dict[str, Any]]:
        coords = {name: dataset[name].values for name in ("depth", "width", "dim")}
        return common.grid_rows(coords, self.errors(dataset), dataset.diverged.values)

    def check(self, dataset: xr.Dataset, spec: Any) -> list[Claim]:
        fits = self.fits(dataset)
        note = dataset.attrs.get("divergence_note", "")
        claims = []
        for claim_id, quantity, law, expected in (
            ("C10", "embedding", "sqrt(D/(LM)) + 1/sqrt(D) (+ 1/L): P^(-1/6)", 1 / 6),
            ("C11", "output", "D/(LM) + 1/sqrt(D): P^(-1/5)", 1 / 5),
        ):
            free = fits[f"{quantity}_free"]
            if free is None:
                claims.append(_no_fit(claim_id, quantity, "free-exponent law", note))
                continue
            claims.append(
                budget_exponent_claim(
                    claim_id,
                    f"Authors' linear grid ({spec.metric} metric, step {spec.step}): "
                    f"{quantity} error follows {law}; ",
                    free,
                    expected=expected,
                    tolerance=spec.tolerance,
                    depth_term=quantity == "embedding",
                    note=note,
                    details={**free, "experiment": self.name},
                )
            )
        for claim_id, quantity, terms in (
            ("C13", "embedding", EMBEDDING_TERMS),
            ("C14", "output", OUTPUT_TERMS),
        ):
            fit = fits[quantity]
            if fit is None:
                claims.append(_no_fit(claim_id, quantity, "global law", note))
                continue
            text = common.constants_text(fit, terms)
            first, second = terms[0], terms[1]
            lowest = min(fit["ci_low"][first], fit["ci_low"][second])
            claims.append(
                Claim.bound(
                    claim_id,
                    (
                        f"One global law through the three panels ({quantity}, {spec.metric} "
                        f"metric, step {spec.step}): err² = {text} (95% CIs), RMS "
                        f"{fit['residuals']} residual {fit['rms_residual']:.3f} on "
                        f"{fit['points']} points; authors: a = 0.673, b = 0.437, c ≈ 0 "
                        "(embedding), a = 0.0265, b = 0.250 (output)." + note
                    ),
                    bound(lowest, above=0.0, n=fit["points"], fmt=".3g"),
                    statistic=f"lower 95% confidence bound of the {first} and {second} "
                    "constants (both error sources detected)",
                    note="both 95% CIs exclude 0",
                    details={**fit, "experiment": self.name},
                )
            )
        return claims

    def draw(self, dataset: xr.Dataset, spec: Any) -> Figure:
        errors = self._errors(dataset)
        fits = self.fits(dataset)
        depths, widths, dims = (dataset[n].values for n in ("depth", "width", "dim"))
        i_d = list(depths).index(max(spec.depths))
        k_dim = list(dims).index(spec.chosen_dim())
        i_m = list(depths).index(spec.chosen_depth())
        with common.chizat_figure(8, columns=3) as (figure, axes):
            for row, quantity in enumerate(("embedding", "output")):
                error, relative = errors[quantity]

                def curve(label: str, index: Any, shape: tuple[Any, ...]) -> tuple[Any, ...]:
                    return label, error[index], relative[index], shape  # noqa: B023

                d, m = dims[k_dim], depths[i_m]
                panels = (
                    (
                        "D",
                        dims,
                        [
                            curve(f"$M={w}$", (i_d, j), (max(depths), w, dims))
                            for j, w in enumerate(widths)
                        ],
                        f"$L={depths[i_d]}$",
                    ),
                    (
                        "L",
                        depths,
                        [
                            curve(f"$M={w}$", (slice(None), j, k_dim), (depths, w, d))
                            for j, w in enumerate(widths)
                        ],
                        f"$D={d}$",
                    ),
                    (
                        "M",
                        widths,
                        [
                            curve(f"$D={v}$", (i_m, slice(None), k), (m, widths, v))
                            for k, v in enumerate(dims)
                        ],
                        f"$L={m}$",
                    ),
                )
                for col, (axis, x, series, fixed) in enumerate(panels):
                    ax = axes[3 * row + col]
                    common.law_panel(ax, x, series, fits[quantity])
                    ylabel = f"error ({spec.metric} metric)" if col == 0 else ""
                    common.log_axes(
                        ax, f"${axis}$", ylabel, f"{common.QUANTITY_TEX[quantity]}, {fixed}"
                    )
            depth, width, dim = np.meshgrid(depths, widths, dims, indexing="ij")
            budget = (depth * width * dim).ravel()
            for ax, quantity, exponent in (
                (axes[6], "embedding", 1 / 6),
                (axes[7], "output", 1 / 5),
            ):
                common.budget_panel(
                    ax,
                    budget,
                    errors[quantity][0].ravel(),
                    errors[quantity][1].ravel(),
                    exponent,
                    fits[f"{quantity}_free"],
                    quantity=quantity,
                    color=COLORS[0],
                    anchor="mean",
                )
        return figure


def _no_fit(claim_id: str, quantity: str, what: str, note: str) -> Claim:
    return Claim.bound(
        claim_id,
        f"{quantity} error: too few finite points in the fit window for the {what}" + note,
        bound(math.nan, above=0.0),
        statistic=what,
        details={"experiment": "chizat-scaling"},
    )
