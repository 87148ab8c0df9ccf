"""The authors' tanh (M, D) grid against the coupled largest reference (chizat.md §4.2; C15, C16).

Chaintron–Chizat–Maass (2026), Julia code: tanh, alpha = 1, eta = 1 (our ``lr = 0.5``), the
synthetic task (N = 10, d = 5), L fixed, M and D on a log grid; per repetition the reference is
the largest network ``(M, D) = (max M, max D)`` and a smaller model uses the *top-left blocks*
of the reference's ``W_in``, ``W_out`` (our ``coupled_embeddings``: row ``i`` of the maps
depends only on the embedding seed and ``i``), ``U, V`` independent per shape. Errors at step K
(the authors' Julia RMS, which is also ours): embedding ``sqrt(mean_{d <= D, n, reps} (h_L -
h_L^ref[:D])^2)`` and output ``sqrt(mean (f - f_ref)^2)``; diverged runs are excluded and
counted. The same-``L`` reference cancels the 1/L term: the grid sees ``sqrt(D/(LM))`` and
``1/sqrt(D)`` (embedding), ``D/(LM)`` and ``1/sqrt(D)`` (output).

Fits on ``D, M >= min_dim, min_width`` (chizat_fits): one global law per quantity with the
theory's exponents (the authors' hand-set curves: embedding ``(0.8 sqrt(D/(ML)))^2 +
(2.5/sqrt(D))^2``, output ``(0.15 D/(ML))^2 + (0.9/sqrt(D))^2``), and free exponents whose
budget exponent ``e`` (error ∝ ``P^-e`` along the best shape at fixed ``P = LMD``; 1/6
embedding, 1/5 output) is reported with a 95% CI and a Wald test (C15, C16).
"""

from __future__ import annotations

import functools
import math
from typing import Any, ClassVar

import numpy as np
import torch
import xarray as xr
from matplotlib.figure import Figure

from ..checkpoints import current
from ..training import TrainingResult, build_resnet, coupled_embeddings, synthetic_task, train
from ..training.authors import with_embeddings
from . import chizat_common as common
from .base import Claim, Progress
from .chizat_common import COLORS, ChizatExperiment, ChizatSpec, Divergence, Tracker, authors_grid
from .chizat_fits import budget_exponent_claim
from .claims import bound
from .spec_fields import DType, IncreasingInts, Positive, PositiveInt

__all__ = ["ChizatGrid", "ChizatGridSpec"]

REFERENCE_INDEX = 100_000  # seed indices of the reference networks, apart from the grid's
TERMS = {"embedding": ("D/(LM)", "1/D"), "output": ("(D/(LM))^2", "1/D")}
EXPECTED = {"embedding": ((0.5, 0.5), 1 / 6), "output": ((1.0, 0.5), 1 / 5)}


class ChizatGridSpec(ChizatSpec):
    depth: PositiveInt = 50
    widths: IncreasingInts = (2, 4, 8, 16, 32, 64, 128, 256)
    dims: IncreasingInts = (2, 4, 8, 16, 32, 64, 128, 256)
    reps: PositiveInt = 3
    steps: PositiveInt = 15
    lr: Positive = 0.5
    min_dim: PositiveInt = 11
    min_width: PositiveInt = 11
    residuals: common.Residuals = "log"
    tolerance: Positive = 0.03
    dtype: DType = "float64"


class ChizatGrid(ChizatExperiment):
    name = "chizat-grid"
    title = (
        "The authors' tanh (M, D) grid against the coupled largest reference: error vs D, M "
        "and the budget P = LMD (C15, C16)"
    )
    Spec = ChizatGridSpec
    order = 11
    table: ClassVar[dict[str, str]] = common.GRID_TABLE

    def full_settings(self) -> dict[str, Any]:
        grid = authors_grid(1.5, 2000, 20)
        return {"widths": grid, "dims": grid, "reps": 5}

    def smoke_settings(self) -> dict[str, Any]:
        return {
            "depth": 4,
            "widths": (2, 4, 8, 16),
            "dims": (4, 8, 16, 32),
            "reps": 1,
            "steps": 2,
            "min_dim": 1,
            "min_width": 1,
        }

    def caption(self, spec: ChizatGridSpec) -> str:
        return (
            f"tanh 2LP ResNets (chizat.md §1.2, alpha = 1, lr = {spec.lr:g} = the authors' "
            f"Julia eta = {2 * spec.lr:g}), synthetic task of §1.5, L={spec.depth}, M in "
            f"{list(spec.widths)}, D in {list(spec.dims)}, K={spec.steps} GD steps, "
            f"{spec.reps} repetition(s), {spec.dtype}, seed {spec.seed}. Reference per "
            f"repetition: the (M, D) = ({max(spec.widths)}, {max(spec.dims)}) network; a smaller "
            "model uses the top-left blocks of its W_in, W_out (coupled rows), U, V drawn "
            "independently. Errors at step K: RMS over the first D coordinates (or the d_out "
            "outputs), samples and repetitions (the authors' Julia metric). Dashed: one global "
            f"fit per quantity on D >= {spec.min_dim}, M >= {spec.min_width} (embedding err² = "
            "a D/(LM) + b/D; output err² = a (D/(LM))² + b/D), "
            f"{spec.residuals} residuals. Right: against P = LMD with the free-exponent fit's "
            "budget exponent (95% CI)."
        )

    def compute(self, spec: ChizatGridSpec, progress: Progress | None = None) -> xr.Dataset:
        ref_width, ref_dim = max(spec.widths), max(spec.dims)
        shape = (len(spec.widths), len(spec.dims))
        squares = np.zeros((2, *shape))
        counts = np.zeros(shape, dtype=int)
        diverged = np.zeros(shape, dtype=int)
        per_rep = np.full((2, *shape, spec.reps), np.nan)  # RMS of each repetition
        divergence = Divergence()
        work = sum(m * d for m in spec.widths for d in spec.dims) * spec.reps
        tracker = Tracker(work + ref_width * ref_dim * spec.reps, progress)
        data = synthetic_task()
        reps = list(range(spec.reps))
        # units (deeplimit.checkpoints): the reference, then each shape; an interrupted run
        # resumes from the finished ones (every network is seeded by its index, not its turn)
        checkpoint = current()
        reference = checkpoint.unit(
            "reference",
            functools.partial(self._reference, spec, data, [REFERENCE_INDEX + r for r in reps]),
        )
        tracker.advance(ref_width * ref_dim * spec.reps)
        divergence.add_steps("reference", reference["diverged_at"])
        for j, width in enumerate(spec.widths):
            for k, dim in enumerate(spec.dims):
                if (width, dim) == (ref_width, ref_dim):
                    continue
                indices = [r * 10_000 + j * 100 + k for r in reps]
                unit = checkpoint.unit(
                    f"M{width}-D{dim}",
                    functools.partial(self._errors, spec, data, width, dim, indices, reference),
                )
                tracker.advance(width * dim * spec.reps)
                divergence.add_steps(f"M={width} D={dim}", unit["diverged_at"])
                diverged[j, k] += int((unit["diverged_at"] >= 0).sum())
                squares[:, j, k] = unit["squares"]
                per_rep[:, j, k] = unit["per_rep"]
                counts[j, k] = int(unit["count"])
        with np.errstate(invalid="ignore", divide="ignore"):
            errors = np.sqrt(squares / np.where(counts > 0, counts, np.nan))
        errors[:, -1, -1] = np.nan  # the reference shape itself
        return xr.Dataset(
            {
                "embedding_error": (("width", "dim"), errors[0]),
                "output_error": (("width", "dim"), errors[1]),
                "runs": (("width", "dim"), counts),
                "diverged": (("width", "dim"), diverged),
                "embedding_error_reps": (("width", "dim", "rep"), per_rep[0]),
                "output_error_reps": (("width", "dim", "rep"), per_rep[1]),
            },
            coords={"width": list(spec.widths), "dim": list(spec.dims), "rep": reps},
            attrs={
                "spec": spec.model_dump_json(),
                "caption": self.caption(spec) + divergence.note(),
                "divergence_note": divergence.note(),
            },
        )

    def _reference(
        self, spec: ChizatGridSpec, data: Any, indices: list[int]
    ) -> dict[str, torch.Tensor]:
        """The unit ``reference``: the largest network's embeddings and outputs at step K."""
        result = self._train(spec, data, max(spec.widths), max(spec.dims), indices)
        return {
            "embeddings": result.embeddings[:, spec.steps],  # (reps, N, max D)
            "outputs": result.outputs[:, spec.steps],
            "diverged_at": result.diverged_at,
        }

    def _errors(
        self,
        spec: ChizatGridSpec,
        data: Any,
        width: int,
        dim: int,
        indices: list[int],
        reference: dict[str, np.ndarray],
    ) -> dict[str, Any]:
        """The unit of one shape: the summed mean squares (embedding, output) over the
        repetitions that stayed finite (here and in the reference), each one's RMS, how many,
        and the step at which each network diverged."""
        result = self._train(spec, data, width, dim, indices)
        squares = np.zeros(2)
        per_rep = np.full((2, spec.reps), np.nan)
        ok = torch.from_numpy(reference["diverged_at"] < 0) & ~result.diverged
        if bool(ok.any()):
            h = result.embeddings[ok, spec.steps]  # (reps, N, D)
            f = result.outputs[ok, spec.steps]
            ref_h = torch.from_numpy(reference["embeddings"])[ok, :, :dim]
            ref_f = torch.from_numpy(reference["outputs"])[ok]
            for q, mean_square in enumerate(
                (((h - ref_h) ** 2).flatten(1).mean(1), ((f - ref_f) ** 2).flatten(1).mean(1))
            ):
                squares[q] = float(mean_square.sum())
                per_rep[q, ok.cpu().numpy()] = mean_square.sqrt().cpu().numpy()
        return {
            "squares": squares,
            "per_rep": per_rep,
            "count": int(ok.sum()),
            "diverged_at": result.diverged_at,
        }

    @staticmethod
    def _train(
        spec: ChizatGridSpec, data: Any, width: int, dim: int, indices: list[int]
    ) -> TrainingResult:
        """Every repetition of one shape in one batch (network ``r``: unit seed index
        ``indices[r]``, the coupled maps of embedding seed ``r``), chunked to at most
        ``PARAMETER_BUDGET`` bytes of parameters; divergence recorded, never raised."""
        parts = []
        for part in common.batches(len(indices), spec.depth, width, dim, spec.dtype):
            reps = range(len(indices))[part]
            maps = [
                coupled_embeddings(dim, data.input_dim, data.output_dim, embedding_seed=r)
                for r in reps
            ]
            model = build_resnet(
                spec.depth,
                width,
                dim,
                input_dim=data.input_dim,
                output_dim=data.output_dim,
                activation="tanh",
                lr=spec.lr,
                seeds=[indices[r] for r in reps],
                seed=spec.seed,
                embeddings=maps[0],
                device=spec.device,
                dtype=getattr(torch, spec.dtype),
            )
            model = with_embeddings(
                model, torch.stack([m[0] for m in maps]), torch.stack([m[1] for m in maps])
            )
            parts.append(train(model, data, spec.steps, on_divergence="ignore"))
        return common.concatenate_results(parts)

    def fits(self, dataset: xr.Dataset) -> dict[str, dict[str, Any] | None]:
        spec = self.spec_from_dataset(dataset)
        width, dim = np.meshgrid(dataset.width.values, dataset.dim.values, indexing="ij")
        depth = np.full(width.shape, spec.depth)
        window = (dim >= spec.min_dim) & (width >= spec.min_width)
        out: dict[str, dict[str, Any] | None] = {}
        for quantity in ("embedding", "output"):
            error = np.where(window, dataset[f"{quantity}_error"].values, np.nan)
            out[quantity], out[f"{quantity}_free"] = common.fit_laws(
                depth,
                width,
                dim,
                error,
                TERMS[quantity],
                depth_term=False,
                expected=EXPECTED[quantity][0],
                residuals=spec.residuals,
            )
        return out

    def summarize(self, dataset: xr.Dataset, spec: Any) -> list[dict[str, Any]]:
        errors = {q: dataset[f"{q}_error"].values for q in ("embedding", "output")}
        coords = {"width": dataset.width.values, "dim": dataset.dim.values}
        return common.grid_rows(coords, errors, dataset.diverged.values, depth=spec.depth)

    def check(self, dataset: xr.Dataset, spec: Any) -> list[Claim]:
        fits = self.fits(dataset)
        note = dataset.attrs.get("divergence_note", "")
        claims = []
        for claim_id, quantity, law in (
            ("C15", "embedding", "sqrt(D/(LM)) + 1/sqrt(D): P^(-1/6)"),
            ("C16", "output", "D/(LM) + 1/sqrt(D): P^(-1/5)"),
        ):
            free, fixed = fits[f"{quantity}_free"], fits[quantity]
            expected = EXPECTED[quantity][1]
            if free is None or fixed is None:
                claims.append(
                    Claim.bound(
                        claim_id,
                        f"tanh grid, {quantity}: too few finite points to fit" + note,
                        bound(math.nan, equals=expected, tolerance=spec.tolerance, fmt=".4f"),
                        statistic="budget exponent e of the free-exponent law",
                    )
                )
                continue
            claims.append(
                budget_exponent_claim(
                    claim_id,
                    f"tanh, L={spec.depth}, K={spec.steps}, coupled largest reference: "
                    f"{quantity} error follows {law}. Global fit err² = "
                    f"{common.constants_text(fixed, TERMS[quantity])} (95% CIs); ",
                    free,
                    expected=expected,
                    tolerance=spec.tolerance,
                    depth_term=False,
                    note=note,
                    details={"free": free, "global": fixed},
                )
            )
        return claims

    def draw(self, dataset: xr.Dataset, spec: Any) -> Figure:
        fits = self.fits(dataset)
        widths, dims = dataset.width.values, dataset.dim.values
        pick_w = list(range(len(widths)))[:: max(1, len(widths) // 5)][::-1]
        pick_d = list(range(len(dims)))[:: max(1, len(dims) // 5)][::-1]
        with common.chizat_figure(6, columns=3) as (figure, axes):
            for row, quantity in enumerate(("embedding", "output")):
                error, relative = _with_reps(dataset, quantity)
                fit = fits[quantity]
                common.law_panel(
                    axes[3 * row],
                    dims,
                    [
                        (f"$M={widths[j]}$", error[j], relative[j], (spec.depth, widths[j], dims))
                        for j in pick_w
                    ],
                    fit,
                )
                common.law_panel(
                    axes[3 * row + 1],
                    widths,
                    [
                        (
                            f"$D={dims[k]}$",
                            error[:, k],
                            relative[:, k],
                            (spec.depth, widths, dims[k]),
                        )
                        for k in pick_d
                    ],
                    fit,
                )
                for col, axis in enumerate(("D", "M")):
                    common.log_axes(
                        axes[3 * row + col],
                        f"${axis}$",
                        "RMS error at step $K$" if col == 0 else "",
                        f"{common.QUANTITY_TEX[quantity]} vs ${axis}$",
                    )
                width, dim = np.meshgrid(widths, dims, indexing="ij")
                common.budget_panel(
                    axes[3 * row + 2],
                    (spec.depth * width * dim).ravel(),
                    error.ravel(),
                    relative.ravel(),
                    EXPECTED[quantity][1],
                    fits[f"{quantity}_free"],
                    quantity=quantity,
                    color=COLORS[row],
                    anchor="lowest",
                )
        return figure


def _with_reps(dataset: xr.Dataset, quantity: str) -> tuple[np.ndarray, np.ndarray]:
    """The errors of ``quantity`` on the grid and the relative half-widths of their 95%
    intervals over the repetitions (NaN with one, or in a dataset without them)."""
    error = dataset[f"{quantity}_error"].values
    name = f"{quantity}_error_reps"
    if name not in dataset:
        return error, np.full(error.shape, np.nan)
    return error, common.rms_over(dataset[name].values)[1]
