"""Chizat C1–C2: the error at initialization and the hidden width LM (chizat.md §6).

At initialization the Mean ODE does not move (``E[phi(h, z_0)] = 0``: ``h(s) = h(0)``), so the
error of a random 2LP ResNet is its drift ``h_L - h_0``: a sum of ``L M`` independent
zero-mean unit contributions of size ``(1/(LM)) v sigma(<u, h>/D)``. Its RMS per coordinate is

    sqrt(D/(LM)) sqrt(E_n E[sigma(g_n)^2]),     g_n ~ N(0, ||h_0(x_n)||^2 / D)        (C1)

to leading order (``h_{l-1}`` replaced by ``h_0``), and it depends on ``(L, M)`` only through
the hidden width ``LM`` (C2). We measure it over many seeds for the two shapes of the C1 probe,
for the four splits of ``LM = 512`` of C2, and on a sweep of splits at several ``LM`` (figure).
"""

from __future__ import annotations

import math
from typing import Annotated, Any, ClassVar

import numpy as np
import xarray as xr
from matplotlib.figure import Figure
from pydantic import AfterValidator

from ..activations import parse_activation
from ..gaussian import second_moment
from ..training import TwoLayerBlock, synthetic_task
from .base import Claim, Progress
from .chizat_common import (
    COLORS,
    ChizatExperiment,
    ChizatSpec,
    Tracker,
    chizat_figure,
    columns,
    log_axes,
    log_error_bars,
    synthetic_resnet,
)
from .claims import bound
from .spec_fields import ActivationSpec, Increasing, Level, PositiveInt, Seeds

__all__ = ["ChizatInit", "ChizatInitSpec"]

Shape = tuple[int, int, int]


def _check_shapes(name: str, value: tuple, size: int) -> tuple:
    if not value or any(len(s) != size or any(int(v) < 1 for v in s) for s in value):
        raise ValueError(
            f"{name} must be a non-empty list of {size}-tuples of integers >= 1, got {value}"
        )
    return tuple(tuple(int(v) for v in s) for s in value)


def _splits(value: tuple) -> tuple:
    value = _check_shapes("c2_splits", value, 2)
    if len(value) < 2 or len({depth * width for depth, width in value}) != 1:
        raise ValueError(
            f"c2_splits must be at least two (L, M) pairs with the same product LM, got {value}"
        )
    return value


Shapes = Annotated[tuple[Shape, ...], AfterValidator(lambda v: _check_shapes("c1_shapes", v, 3))]
Splits = Annotated[tuple[tuple[int, int], ...], AfterValidator(_splits)]
Sweep = Increasing(int, length=1)


class ChizatInitSpec(ChizatSpec):
    """C1 shapes ``(L, M, D)``; C2 splits ``(L, M)`` of one ``LM`` at ``c2_dim``; the sweep
    ``sweep_depths x sweep_hidden_widths`` (``M = LM / L``) at ``sweep_dim``."""

    activation: ActivationSpec = "tanh"
    c1_shapes: Shapes = ((32, 16, 64), (32, 16, 256))
    c1_seeds: Seeds = 64
    c2_splits: Splits = ((512, 1), (128, 4), (32, 16), (8, 64))
    c2_dim: PositiveInt = 64
    c2_seeds: Seeds = 16
    sweep_depths: Sweep = (1, 4, 16, 64)
    sweep_hidden_widths: Sweep = (64, 256, 1024, 4096)
    sweep_dim: PositiveInt = 64
    sweep_seeds: Seeds = 8
    tolerance: Level = 0.05


def predicted_mean_square(activation: str, depth: int, width: int, dim: int, h0: Any) -> float:
    """C1: ``(D/(LM)) mean_n E[sigma(g_n)^2]``, ``g_n ~ N(0, ||h_0(x_n)||^2 / D)``, each
    expectation by :func:`deeplimit.gaussian.second_moment` (accurate at every variance)."""
    act = parse_activation(activation)
    variances = (np.asarray(h0, dtype=float) ** 2).sum(1) / dim
    moments = [second_moment(act, float(q)) for q in variances]
    return dim / (depth * width) * float(np.mean(moments))


class ChizatInit(ChizatExperiment):
    name = "chizat-init"
    title = "Error at initialization vs its closed form; invariance in the split of LM (C1, C2)"
    Spec = ChizatInitSpec
    order = 1
    table: ClassVar[dict[str, str]] = columns(
        "group=study",
        "depth",
        "width",
        "dim",
        "seeds",
        "rms=RMS h_L - h_0",
        "predicted=closed form",
        "ratio",
        "ratio_se=se",
    )

    def full_settings(self) -> dict[str, Any]:
        return {
            "c1_seeds": 256,
            "c2_seeds": 64,
            "sweep_depths": (1, 4, 16, 64, 256),
            "sweep_hidden_widths": (64, 256, 1024, 4096, 16384),
            "sweep_seeds": 16,
        }

    def smoke_settings(self) -> dict[str, Any]:
        return {
            "c1_shapes": ((4, 8, 16),),
            "c1_seeds": 4,
            "c2_splits": ((8, 2), (2, 8)),
            "c2_dim": 16,
            "c2_seeds": 4,
            "sweep_depths": (1, 4),
            "sweep_hidden_widths": (16, 64),
            "sweep_dim": 16,
            "sweep_seeds": 2,
        }

    def caption(self, spec: ChizatInitSpec) -> str:
        c1 = ", ".join(f"(L,M,D)=({a},{b},{c})" for a, b, c in spec.c1_shapes)
        c2 = ", ".join(f"({a},{b})" for a, b in spec.c2_splits)
        return (
            f"2LP ResNet at initialization (chizat.md §1.2: u, v entries N(0, D), residual "
            f"scale 1/(LM), sigma = {spec.activation}), synthetic task of §1.5 (N=10, d_in=5, "
            f"W_in entries N(0, 1/5)), seed {spec.seed}. RMS over (coordinates, samples, seeds) "
            f"of h_L - h_0 (the error w.r.t. the Mean ODE, which does not move at init) against "
            f"the closed form sqrt(D/(LM)) sqrt(E sigma(g)^2), g ~ N(0, |h_0|^2/D) (C1): "
            f"{c1}, {spec.c1_seeds} seeds each. C2: splits (L, M) = {c2} of one LM at "
            f"D={spec.c2_dim}, {spec.c2_seeds} independent seeds each. Left: sweep over "
            f"L in {list(spec.sweep_depths)} and LM in {list(spec.sweep_hidden_widths)} "
            f"(M = LM/L), D={spec.sweep_dim}, {spec.sweep_seeds} seeds: points of one LM "
            f"collapse whatever the split. Tolerance ±{spec.tolerance:.0%} on ratios; se = "
            "standard error from the seed spread."
        )

    def _shapes(self, spec: ChizatInitSpec) -> list[tuple[str, int, int, int, int]]:
        shapes = [("C1", d, m, dim, spec.c1_seeds) for d, m, dim in spec.c1_shapes]
        shapes += [("C2", d, m, spec.c2_dim, spec.c2_seeds) for d, m in spec.c2_splits]
        for hidden in spec.sweep_hidden_widths:
            for depth in spec.sweep_depths:
                if hidden % depth == 0:
                    shapes.append(
                        ("sweep", depth, hidden // depth, spec.sweep_dim, spec.sweep_seeds)
                    )
        return shapes

    def compute(self, spec: ChizatInitSpec, progress: Progress | None = None) -> xr.Dataset:
        data = synthetic_task()
        shapes = self._shapes(spec)
        tracker = Tracker(sum(s[1] * s[2] * s[3] * s[4] for s in shapes), progress)
        max_seeds = max(s[4] for s in shapes)
        mean_square = np.full((len(shapes), max_seeds), np.nan)
        predicted = np.empty(len(shapes))
        for index, (_group, depth, width, dim, seeds) in enumerate(shapes):
            # independent seeds per shape (C2 says "independent seeds")
            model = synthetic_resnet(
                depth,
                width,
                dim,
                data,
                TwoLayerBlock(spec.activation),
                seeds=seeds,
                seed=spec.seed * 1000 + index,
                device=spec.device,
            )
            x = data.x.to(model.device)
            h0 = model.embed(x)
            drift = model.forward(x).last - h0
            mean_square[index, :seeds] = (drift**2).flatten(1).mean(1).cpu().numpy()
            predicted[index] = predicted_mean_square(
                spec.activation, depth, width, dim, h0.cpu().numpy()
            )
            tracker.advance(depth * width * dim * seeds)
        return xr.Dataset(
            {
                "mean_square": (("shape", "seed"), mean_square),
                "predicted_mean_square": (("shape",), predicted),
            },
            coords={
                "shape": np.arange(len(shapes)),
                "group": (("shape",), [s[0] for s in shapes]),
                "depth": (("shape",), [s[1] for s in shapes]),
                "width": (("shape",), [s[2] for s in shapes]),
                "dim": (("shape",), [s[3] for s in shapes]),
                "seeds": (("shape",), [s[4] for s in shapes]),
            },
        )

    def summarize(self, dataset: xr.Dataset, spec: ChizatInitSpec) -> list[dict[str, Any]]:
        rows = []
        for index in dataset.shape.values:
            item = dataset.sel(shape=index)
            values = item.mean_square.values
            values = values[np.isfinite(values)]
            mean = float(values.mean())
            rms = math.sqrt(mean)
            predicted = math.sqrt(float(item.predicted_mean_square))
            # delta method: se of sqrt(mean) is se(mean) / (2 sqrt(mean))
            se_ratio = float(values.std(ddof=1)) / math.sqrt(values.size) / (2 * rms) / predicted
            rows.append(
                {
                    "group": str(item.group.values),
                    "depth": int(item.depth),
                    "width": int(item.width),
                    "dim": int(item.dim),
                    "seeds": int(values.size),
                    "hidden_width": int(item.depth) * int(item.width),
                    "rms": rms,
                    "predicted": predicted,
                    "ratio": rms / predicted,
                    "ratio_se": se_ratio,
                }
            )
        return rows

    def check(self, dataset: xr.Dataset, spec: ChizatInitSpec) -> list[Claim]:
        rows = self.summarize(dataset, spec)
        tol = spec.tolerance
        claims = []
        for row in (r for r in rows if r["group"] == "C1"):
            deviation = abs(row["ratio"] - 1.0)
            zscore = (row["ratio"] - 1) / row["ratio_se"]
            claims.append(
                Claim.bound(
                    "C1",
                    f"At init, RMS of h_L - h_0 at (L,M,D)=({row['depth']},{row['width']},"
                    f"{row['dim']}) equals sqrt(D/(LM)) sqrt(E sigma(g)^2) = "
                    f"{row['predicted']:.4f} (measured {row['rms']:.4f})",
                    bound(row["ratio"], equals=1.0, tolerance=tol, n=row["seeds"]),
                    statistic="ratio measured / closed form",
                    note=f"se {row['ratio_se']:.4f}, z = {zscore:.2f}",
                    requires={
                        "resolved by the seeds, |ratio - 1| + 3 se <= tolerance": bound(
                            deviation + 3 * row["ratio_se"], at_most=tol
                        )
                    },
                    details={"se": row["ratio_se"], "predicted": row["predicted"]},
                )
            )
        c2 = [r for r in rows if r["group"] == "C2"]
        if c2:
            mean = float(np.mean([r["rms"] for r in c2]))
            ratios = [r["rms"] / mean for r in c2]
            worst = int(np.argmax([abs(q - 1) for q in ratios]))
            splits = ", ".join(
                f"({r['depth']},{r['width']}): {q:.4f}" for r, q in zip(c2, ratios, strict=True)
            )
            claims.append(
                Claim.bound(
                    "C2",
                    f"At init the error depends on (L, M) only through LM = "
                    f"{c2[0]['hidden_width']} (D={c2[0]['dim']}): RMS / mean over splits "
                    f"{splits}",
                    bound(ratios[worst], equals=1.0, tolerance=tol, n=sum(r["seeds"] for r in c2)),
                    statistic="ratio to the mean over splits, farthest from 1",
                    note="every ratio (independent seeds)",
                    details={"ratios": ratios},
                )
            )
        return claims

    def draw(self, dataset: xr.Dataset, spec: ChizatInitSpec) -> Figure:
        rows = self.summarize(dataset, spec)
        with chizat_figure(3, columns=3) as (figure, axes):
            ax = axes[0]
            sweep = [r for r in rows if r["group"] == "sweep"]
            for color, depth in zip(COLORS, spec.sweep_depths, strict=False):
                points = [r for r in sweep if r["depth"] == depth]
                if points:  # bars: 95% over the seeds (delta method, log space)
                    log_error_bars(
                        ax,
                        [r["hidden_width"] for r in points],
                        [r["rms"] for r in points],
                        [1.96 * r["ratio_se"] / r["ratio"] for r in points],
                        color=color,
                        label=f"$L = {depth}$",
                    )
            if sweep:
                grid = sorted({r["hidden_width"] for r in sweep})
                closed = {r["hidden_width"]: r["predicted"] for r in sweep}
                ax.plot(
                    grid, [closed[g] for g in grid], color="#444444", lw=1.2, label="closed form"
                )
            title = f"collapse on $LM$ ($D = {spec.sweep_dim}$)"
            log_axes(ax, "hidden width $LM$", r"RMS of $h_L - h_0$ at init", title)
            for ax, group, title in (
                (axes[1], "C1", "C1: measured / closed form"),
                (axes[2], "C2", "C2: RMS / mean over splits"),
            ):
                selected = [r for r in rows if r["group"] == group]
                if group == "C1":
                    values = [r["ratio"] for r in selected]
                    errors = [3 * r["ratio_se"] for r in selected]
                    labels = [f"({r['depth']},{r['width']},{r['dim']})" for r in selected]
                else:
                    mean = np.mean([r["rms"] for r in selected]) if selected else 1.0
                    values = [r["rms"] / mean for r in selected]
                    errors = [3 * r["ratio_se"] * r["predicted"] / mean for r in selected]
                    labels = [f"({r['depth']},{r['width']})" for r in selected]
                positions = np.arange(len(values))
                ax.errorbar(positions, values, yerr=errors, fmt="o", color=COLORS[0], capsize=3)
                ax.axhspan(1 - spec.tolerance, 1 + spec.tolerance, color="#27855a", alpha=0.12)
                ax.axhline(1.0, color="#444444", lw=0.8)
                ax.set_xticks(positions, labels, rotation=20)
                ax.set_xlim(-0.5, len(values) - 0.5)
                ax.set(
                    title=title,
                    xlabel="$(L, M, D)$" if group == "C1" else "$(L, M)$",
                    ylabel=r"ratio ($\pm 3$ se)",
                )
        return figure
