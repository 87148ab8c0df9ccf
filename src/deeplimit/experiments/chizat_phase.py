"""A measured phase diagram over the residual-scale and learning-rate exponents (chizat.md §3).

The paper's phase diagram "singles out an ideal scaling of hyper-parameters (initialization
scale and learning rates)"; its exact axes and regions could not be recovered (chizat.md §3,
§7.1). We use the two-exponent family of ``PowerLawScaling.phase_point(a, b)``:

    residual scale  c = (LM)^(-a),        raw learning rate  lr_raw = lr D (LM)^b,

so ``(a, b) = (1, 1)`` is the paper's mean-field / critical scaling ``alpha/(LM)`` with LR
``lr LMD/alpha^2`` at alpha = 1, and the line ``b = 2a - 1`` is that family with
``alpha = (LM)^(1 - a)``. For each cell we train networks at several hidden widths ``LM`` (all
cells of one width in one batch, per-network scalings) and *measure*, after K steps, how three
quantities scale with LM (log-log slopes over the widths):

* ``initial``: RMS of the initial branch ``h_L - h_0`` (theory: ``(LM)^(1/2 - a)``),
* ``function``: RMS of the function movement ``f_K - f_0`` (theory: ``(LM)^(1 + b - 2a)``),
* ``units``: RMS pre-activation change ``<u - u_0, h_0>/D`` (theory: ``(LM)^(b - a)``),

and whether any network diverged (``train``'s divergence rule). Classification, in order:
**unstable** if a network diverged, or ``initial``, ``function`` or ``units`` grows with LM
(slope above its threshold); **no learning** if ``function`` shrinks with LM; **lazy** if
``function`` is O(1) but ``units`` shrinks with LM; **feature learning** if both are O(1).
The theory's class of a cell (editorial, from ``predicted_regime`` and §3's table) is drawn as
lines: ``b = 2a - 1`` (function step O(1)), ``a = 1/2`` (initial output O(1); below it blows
up), ``a = 1`` (units move O(1) per step: complete feature learning at ``(1, 1)``).
"""

from __future__ import annotations

import functools
import math
from typing import Annotated, Any, ClassVar

import numpy as np
import xarray as xr
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from pydantic import AfterValidator, ValidationInfo

from ..checkpoints import current
from ..stats import fit_loglog_slope
from ..training import PowerLawScaling, predicted_regime
from .base import Claim, Progress
from .chizat_common import (
    ChizatExperiment,
    ChizatSpec,
    Tracker,
    chizat_figure,
    columns,
    train_networks,
)
from .claims import bound
from .spec_fields import DType, IncreasingInts, Positive, PositiveInt

__all__ = ["CLASSES", "ChizatPhase", "ChizatPhaseSpec", "theory_class"]

CLASSES = ("no learning", "lazy", "feature learning", "unstable")
CLASS_COLORS = ("#c9d6e3", "#f2c57c", "#5cb85c", "#d9534f")


def theory_class(a: float, b: float) -> str:
    """The theory's class of cell ``(a, b)`` as ``LM -> infinity`` (editorial, chizat.md §3):
    ``predicted_regime`` on and off the line ``b = 2a - 1``, except that for ``a < 1/2`` the
    initial output blows up like ``(LM)^(1/2 - a)`` at any ``b`` (unstable); on ``a = 1/2``
    (O(1) fluctuations, SDE-type limit) units move ``(LM)^(-1/2)``, measured as lazy."""
    if a < 0.5 - 1e-9:
        return "unstable"
    regime = predicted_regime(a, b)
    if regime.startswith("unstable") or regime.startswith("units move"):
        return "unstable"
    if regime.startswith("frozen"):
        return "no learning"
    if regime.startswith("mean ODE"):
        return "feature learning"
    if regime.startswith("lazy") or regime.startswith("critical"):
        return "lazy"
    return "unstable"


def _grid(value: tuple[float, ...], info: ValidationInfo) -> tuple[float, ...]:
    if (
        len(value) < 2
        or any(not math.isfinite(v) for v in value)
        or list(value) != sorted(set(value))
    ):
        raise ValueError(
            f"{info.field_name} must be at least two distinct increasing finite numbers, "
            f"got {value}"
        )
    return value


def _fraction(value: float, info: ValidationInfo) -> float:
    if not 0 < value <= 1:
        raise ValueError(f"{info.field_name} must be in (0, 1], got {value}")
    return value


Exponents = Annotated[tuple[float, ...], AfterValidator(_grid)]
Fraction = Annotated[float, AfterValidator(_fraction)]


class ChizatPhaseSpec(ChizatSpec):
    depth: PositiveInt = 8
    widths: IncreasingInts = (16, 64, 256, 1024)
    dim: PositiveInt = 16
    a_values: Exponents = (0.25, 0.5, 0.75, 1.0, 1.25)
    b_values: Exponents = (-1.5, -1.0, -0.5, 0.0, 0.5, 1.0, 1.5)
    seeds: PositiveInt = 2
    steps: PositiveInt = 10
    lr: Positive = 0.5
    function_threshold: Positive = 0.25
    unit_threshold: Positive = 0.125
    initial_threshold: Positive = 0.125
    agreement: Fraction = 0.9
    dtype: DType = "float64"


def _slope(hidden: np.ndarray, values: np.ndarray) -> tuple[float, float]:
    """Log-log slope and the half-width of its 95% CI (NaN with fewer than 3 points)."""
    keep = np.isfinite(values) & (values > 0)
    if keep.sum() < 2:
        return math.nan, math.nan
    if keep.sum() == 2:
        return float(np.polyfit(np.log(hidden[keep]), np.log(values[keep]), 1)[0]), math.nan
    fit = fit_loglog_slope(hidden[keep], values[keep])
    return fit.slope, fit.ci_high - fit.slope


def _text(fit: tuple[float, float]) -> str:
    slope, half = fit
    if not math.isfinite(slope):
        return "—"
    return f"{slope:+.3f}" if not math.isfinite(half) else f"{slope:+.3f} ± {half:.3f}"


class ChizatPhase(ChizatExperiment):
    name = "chizat-phase"
    title = "Measured phase diagram: residual-scale exponent a vs learning-rate exponent b"
    Spec = ChizatPhaseSpec
    order = 7
    table: ClassVar[dict[str, str]] = columns(
        "a",
        "b",
        *(f"{k}_text=slope {w} (± 95% CI)" for k, w in (("initial",) * 2, ("function",) * 2)),
        "unit_text=slope units (± 95% CI)",
        *("diverged", "measured", "theory"),
    )

    def full_settings(self) -> dict[str, Any]:
        return {
            "widths": (16, 64, 256, 1024, 4096),
            "a_values": (0.25, 0.375, 0.5, 0.625, 0.75, 0.875, 1.0, 1.125, 1.25),
            "b_values": (
                -1.5,
                -1.25,
                -1.0,
                -0.75,
                -0.5,
                -0.25,
                0.0,
                0.25,
                0.5,
                0.75,
                1.0,
                1.25,
                1.5,
            ),
            "seeds": 4,
        }

    def smoke_settings(self) -> dict[str, Any]:
        return {
            "depth": 2,
            "widths": (4, 8, 16),
            "dim": 4,
            "a_values": (0.5, 1.0),
            "b_values": (0.0, 1.0),
            "seeds": 1,
            "steps": 2,
        }

    def caption(self, spec: ChizatPhaseSpec) -> str:
        return (
            f"tanh 2LP ResNets (chizat.md §1.2) with residual scale (LM)^-a and raw LR "
            f"{spec.lr:g}·D·(LM)^b (PowerLawScaling.phase_point(a, b); (1, 1) = the paper's "
            f"critical alpha/(LM) scaling), L={spec.depth}, D={spec.dim}, M in "
            f"{list(spec.widths)}, a in {list(spec.a_values)}, b in {list(spec.b_values)}, "
            f"{spec.seeds} network(s) per cell and width (same seed indices in every cell), "
            f"K={spec.steps} GD steps on the synthetic task of §1.5, {spec.dtype}, seed "
            f"{spec.seed}. Each cell is classified from measured LM-slopes of the initial branch "
            f"RMS (> {spec.initial_threshold:g}: unstable), of the function movement f_K - f_0 "
            f"(> {spec.function_threshold:g}: unstable, < -{spec.function_threshold:g}: no "
            f"learning) and of the pre-activation change (> {spec.unit_threshold:g}: unstable, "
            f"< -{spec.unit_threshold:g}: lazy, else feature learning), and any divergence "
            "(unstable). Lines: the theory's boundaries b = 2a - 1, a = 1/2, a = 1 (editorial, "
            "§3); a cross marks a cell whose measured class differs from the theory's. The "
            "paper's exact phase-diagram axes could not be recovered (chizat.md §7.1)."
        )

    def compute(self, spec: ChizatPhaseSpec, progress: Progress | None = None) -> xr.Dataset:
        cells = [(a, b) for a in spec.a_values for b in spec.b_values]
        tracker = Tracker(sum(spec.widths), progress)
        shape = (len(spec.a_values), len(spec.b_values), len(spec.widths), spec.seeds)
        records = {
            name: np.full(shape, np.nan)
            for name in ("initial", "function", "units", "initial_loss", "final_loss")
        }
        diverged_at = np.full(shape, -1, dtype=int)
        scalings = [
            PowerLawScaling.phase_point(a, b, lr=spec.lr)
            for a, b in cells
            for _ in range(spec.seeds)
        ]
        checkpoint = current()  # units: one width each (deeplimit.checkpoints)
        for k, width in enumerate(spec.widths):
            unit = checkpoint.unit(
                f"M{width}", functools.partial(self._width, spec, k, width, scalings, len(cells))
            )
            for name in records:
                records[name][:, :, k] = unit[name].reshape(
                    len(spec.a_values), len(spec.b_values), spec.seeds
                )
            diverged_at[:, :, k] = unit["diverged_at"].reshape(
                len(spec.a_values), len(spec.b_values), spec.seeds
            )
            tracker.advance(width)
        dims = ("a", "b", "width", "seed")
        data = {name: (dims, value) for name, value in records.items()}
        data["diverged_at"] = (dims, diverged_at)
        return xr.Dataset(
            data,
            coords={
                "a": list(spec.a_values),
                "b": list(spec.b_values),
                "width": list(spec.widths),
                "seed": list(range(spec.seeds)),
            },
        )

    @staticmethod
    def _width(
        spec: ChizatPhaseSpec, k: int, width: int, scalings: list[Any], cells: int
    ) -> dict[str, Any]:
        """The unit of one width: every (a, b) cell's networks trained at once; per network
        the initial output, function and unit movements, losses and divergence step."""
        result = train_networks(
            spec.depth,
            width,
            spec.dim,
            steps=spec.steps,
            seeds=list(range(spec.seeds)) * cells,
            scaling=scalings,
            record_movement=True,
            seed=spec.seed + k,
            device=spec.device,
            dtype=spec.dtype,
        )
        h0 = result.x @ result.w_in.T
        initial = (result.embeddings[:, 0].double() - h0).pow(2).flatten(1).mean(1).sqrt()
        function = (
            (result.outputs[:, -1] - result.outputs[:, 0]).double().pow(2).flatten(1).mean(1)
        ).sqrt()
        return {
            "initial": initial,
            "function": function,
            "units": result.movement["preactivation"][:, -1].double(),
            "initial_loss": result.loss[:, 0].double(),
            "final_loss": result.loss[:, -1].double(),
            "diverged_at": result.diverged_at,
        }

    def classify(
        self, dataset: xr.Dataset, spec: ChizatPhaseSpec | None = None
    ) -> list[dict[str, Any]]:
        """One row per cell: measured slopes, divergence, measured and theory classes."""
        spec = spec or self.spec_from_dataset(dataset)
        hidden = spec.depth * dataset.width.values.astype(float)
        rows = []
        for a in dataset.a.values:
            for b in dataset.b.values:
                cell = dataset.sel(a=a, b=b)
                ok = cell.diverged_at < 0

                def rms(name: str, cell: xr.Dataset = cell, ok: xr.DataArray = ok) -> np.ndarray:
                    values = cell[name].where(ok)
                    return np.sqrt((values**2).mean("seed", skipna=True).values)

                fits = {
                    name: _slope(hidden, rms(name)) for name in ("initial", "function", "units")
                }
                slopes = {name: fit[0] for name, fit in fits.items()}
                diverged = int((cell.diverged_at >= 0).sum())
                first = int(cell.diverged_at.where(cell.diverged_at >= 0).min()) if diverged else -1
                if diverged:
                    measured, reason = "unstable", f"{diverged} diverged (first at step {first})"
                elif slopes["initial"] > spec.initial_threshold:
                    measured, reason = "unstable", "initial output grows"
                elif slopes["function"] > spec.function_threshold:
                    measured, reason = "unstable", "function movement grows"
                elif slopes["units"] > spec.unit_threshold:
                    measured, reason = "unstable", "unit movement grows"
                elif slopes["function"] < -spec.function_threshold:
                    measured, reason = "no learning", "function movement vanishes"
                elif slopes["units"] < -spec.unit_threshold:
                    measured, reason = "lazy", "units freeze, function moves"
                elif any(math.isnan(s) for s in slopes.values()):
                    measured, reason = "unstable", "no finite measurement"
                else:
                    measured, reason = "feature learning", "units and function move O(1)"
                rows.append(
                    {
                        "a": float(a),
                        "b": float(b),
                        "initial_slope": slopes["initial"],
                        "function_slope": slopes["function"],
                        "unit_slope": slopes["units"],
                        "initial_ci": fits["initial"][1],
                        "function_ci": fits["function"][1],
                        "unit_ci": fits["units"][1],
                        "initial_text": _text(fits["initial"]),
                        "function_text": _text(fits["function"]),
                        "unit_text": _text(fits["units"]),
                        "diverged": diverged,
                        "first_divergence_step": first,
                        "measured": measured,
                        "reason": reason,
                        "theory": theory_class(float(a), float(b)),
                    }
                )
        return rows

    def summarize(self, dataset: xr.Dataset, spec: ChizatPhaseSpec) -> list[dict[str, Any]]:
        return self.classify(dataset, spec)

    def check(self, dataset: xr.Dataset, spec: ChizatPhaseSpec) -> list[Claim]:
        rows = self.classify(dataset, spec)
        agree = [r for r in rows if r["measured"] == r["theory"]]
        fraction = len(agree) / len(rows)
        differ = "; ".join(
            f"(a={r['a']:g}, b={r['b']:g}) measured {r['measured']} ({r['reason']}), theory "
            f"{r['theory']}"
            for r in rows
            if r["measured"] != r["theory"]
        )
        diverged = sum(r["diverged"] for r in rows)
        claims = [
            Claim.bound(
                "phase-diagram",
                "Each cell's class measured from the LM-scaling of the initial branch, the "
                "function movement and the unit movement (and divergence) equals the theory's"
                f" class; {diverged} networks diverged (counted as unstable, never dropped)"
                + (f". Cells that differ: {differ}" if differ else ""),
                bound(fraction, at_least=spec.agreement, n=len(rows)),
                statistic="fraction of cells where measured = theory",
                note="finite LM blurs boundary cells",
                details={"cells": rows},
            )
        ]
        ideal = [r for r in rows if r["a"] == 1.0 and r["b"] == 1.0]
        if ideal:
            row = ideal[0]
            claims.append(
                Claim.bound(
                    "phase-ideal",
                    "The paper's critical scaling (a, b) = (1, 1) (residual scale 1/(LM), "
                    "LR LMD) is measured as feature learning: function and units move O(1) "
                    f"(slopes {row['function_slope']:+.3f}, {row['unit_slope']:+.3f})",
                    bound(
                        row["unit_slope"],
                        equals=0.0,
                        tolerance=spec.unit_threshold,
                        n=spec.seeds * len(spec.widths),
                    ),
                    statistic="LM-slope of the pre-activation change at (1, 1)",
                    requires={
                        f"class 'feature learning' (function slope within "
                        f"±{spec.function_threshold:g}, no divergence)": row["measured"]
                        == "feature learning"
                    },
                )
            )
        return claims

    def draw(self, dataset: xr.Dataset, spec: ChizatPhaseSpec) -> Figure:
        rows = self.classify(dataset, spec)
        a_values = np.asarray(dataset.a.values, dtype=float)
        b_values = np.asarray(dataset.b.values, dtype=float)
        grid = np.zeros((len(b_values), len(a_values)))
        for row in rows:
            i = int(np.argmin(np.abs(b_values - row["b"])))
            j = int(np.argmin(np.abs(a_values - row["a"])))
            grid[i, j] = CLASSES.index(row["measured"])
        with chizat_figure(2, columns=2, size=(3.3, 2.9)) as (figure, axes):
            self._draw_cells(axes[0], rows, a_values, b_values, grid)
            self._draw_slopes(axes[1], rows, spec)
            handles = [Patch(color=c, label=n) for c, n in zip(CLASS_COLORS, CLASSES, strict=True)]
            lines = [h for h in axes[0].get_lines() if not str(h.get_label()).startswith("_")]
            figure.legend(handles=handles + lines, loc="outside lower center", ncols=4)
            for line in lines:  # in the figure's legend only
                line.set_label(f"_{line.get_label()}")
        return figure

    @staticmethod
    def _draw_cells(
        ax: Any, rows: list[dict[str, Any]], a_values: np.ndarray, b_values: np.ndarray, grid: Any
    ) -> None:
        """The measured class of every cell, crosses where it differs from the theory's, and
        the theory's boundaries."""

        def edges(values: np.ndarray) -> np.ndarray:
            if values.size == 1:
                return np.array([values[0] - 0.5, values[0] + 0.5])
            middle = (values[1:] + values[:-1]) / 2
            return np.concatenate(
                [
                    [values[0] - (middle[0] - values[0])],
                    middle,
                    [values[-1] + (values[-1] - middle[-1])],
                ]
            )

        ax.pcolormesh(
            edges(a_values),
            edges(b_values),
            grid,
            cmap=ListedColormap(CLASS_COLORS),
            vmin=-0.5,
            vmax=len(CLASSES) - 0.5,
            shading="flat",
            edgecolors="white",
            linewidth=0.6,
        )
        for row in rows:
            if row["measured"] != row["theory"]:
                ax.plot(row["a"], row["b"], "x", color="black", ms=7, mew=1.5)
        lo, hi = a_values.min() - 0.2, a_values.max() + 0.2
        line = np.linspace(lo, hi, 50)
        ax.plot(
            line, 2 * line - 1, color="black", lw=1.4, label="$b = 2a - 1$ (function step $O(1)$)"
        )
        ax.axvline(0.5, color="black", lw=1.0, ls="--", label="$a = 1/2$ (initial output $O(1)$)")
        ax.axvline(1.0, color="black", lw=1.0, ls=":", label="$a = 1$ (units move $O(1)$)")
        ax.plot(
            1.0, 1.0, "*", color="white", ms=13, mec="black", label="$(1, 1)$: critical $1/(LM)$"
        )
        ax.set_xlim(edges(a_values)[0], edges(a_values)[-1])
        ax.set_ylim(edges(b_values)[0], edges(b_values)[-1])
        ax.set(
            xlabel="$a$: residual scale $(LM)^{-a}$",
            ylabel="$b$: learning rate $D\\,(LM)^{b}$",
            title="measured classes (×: not the theory's)",
        )

    @staticmethod
    def _draw_slopes(ax: Any, rows: list[dict[str, Any]], spec: ChizatPhaseSpec) -> None:
        """Every cell in the plane of its two LM-slopes, with their 95% CIs (over the widths)
        where there were enough widths, and the classification thresholds."""
        for row in rows:
            x, y = row["function_slope"], row["unit_slope"]
            if not (math.isfinite(x) and math.isfinite(y)):
                continue
            xerr, yerr = row["function_ci"], row["unit_ci"]
            ax.errorbar(
                x,
                y,
                xerr=xerr if math.isfinite(xerr) else None,
                yerr=yerr if math.isfinite(yerr) else None,
                fmt="o",
                ms=5,
                color=CLASS_COLORS[CLASSES.index(row["measured"])],
                mec="#333333",
                mew=0.5,
                ecolor="#777777",
                elinewidth=0.7,
            )
        for value in (spec.function_threshold, -spec.function_threshold):
            ax.axvline(value, color="#999999", lw=0.8, ls="--")
        for value in (spec.unit_threshold, -spec.unit_threshold):
            ax.axhline(value, color="#999999", lw=0.8, ls=":")
        ax.set(
            xlabel="function movement",
            ylabel="unit (pre-activation) movement",
            title="$LM$-slopes of the cells (95% CIs)",
        )
