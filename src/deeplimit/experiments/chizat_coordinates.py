"""Per-coordinate laws in the joint limit (chizat.md §2.4(3), §4.3; C17).

Chaintron–Chizat–Maass (2026), Python ``plt_training_trajectories``: one linear network (their
task and maps, ``eta_0 = 0.1``), D = M = 1000, L = 200. In the ``D -> infinity`` limit the
coordinates of the state ``h_l`` and of the backward variable ``beta_l = D dR/dh_l`` are i.i.d.
Gaussian given the kernels: ``h_i(s) ~ N(0, Gamma_H(s)[k, k])``, ``beta_i(s) ~ N(0,
Gamma_B(s)[k, k])`` at GD step ``k`` and depth ``s = l/L``; a coordinate's limit path is
``W[i] xi_k(s)`` for the network's own map rows ``W[i]`` (``training.authors.span_kernels``).

Shown: a few coordinates' trajectories ``h_i(l)`` and ``beta_i(l)`` at one step against their
limit paths (dashed), and histograms over the D coordinates at layers 0 and L at a few steps
against ``N(0, Gamma(s)[k, k])``, with the Kolmogorov–Smirnov statistic of each panel. C17: every
panel consistent with its Gaussian law (KS p-values, Bonferroni over the panels at level 1e-3).
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np
import scipy.stats as sps
import torch
import xarray as xr
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from pydantic import field_validator, model_validator

from ..stats import ks_test
from ..training import build_resnet
from ..training.authors import (
    AUTHORS_W_SEEDS,
    authors_embeddings,
    authors_linear_task,
    authors_units,
    interpolate_depth,
    span_kernels,
    train_with_adjoint,
)
from .base import Claim, Progress
from .chizat_common import (
    COLORS,
    ChizatExperiment,
    ChizatSpec,
    Divergence,
    authors_span_limit,
    chizat_figure,
    columns,
    python_lr,
)
from .spec_fields import AtLeast, Positive, PositiveInt

__all__ = ["ChizatCoordinates", "ChizatCoordinatesSpec"]

QUANTITIES = ("h", "beta")
TEX = {"h": "h", "beta": r"\beta"}
LEVEL = 1e-3


class ChizatCoordinatesSpec(ChizatSpec):
    depth: PositiveInt = 100
    width: PositiveInt = 512
    dim: PositiveInt = 512
    show_steps: tuple[int, ...] = (0, 4, 8)
    trajectory_step: int = 8
    coordinates: PositiveInt = 10
    eta: Positive = 0.1
    w_seed: int = AUTHORS_W_SEEDS[0]
    rep: int = 1
    their_units: bool = False
    intervals: AtLeast(4) = 256

    @field_validator("show_steps")
    @classmethod
    def _steps(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if not value or any(v < 0 for v in value) or list(value) != sorted(set(value)):
            raise ValueError(f"show_steps must be distinct increasing integers >= 0, got {value}")
        return value

    @model_validator(mode="after")
    def _check(self) -> ChizatCoordinatesSpec:
        if not 0 <= self.trajectory_step <= max(self.show_steps):
            raise ValueError(
                f"trajectory_step must lie in 0..max(show_steps)={max(self.show_steps)}, got "
                f"{self.trajectory_step}"
            )
        if self.coordinates > self.dim:
            raise ValueError(f"coordinates must be <= dim={self.dim}, got {self.coordinates}")
        if self.dim > 1000:
            raise ValueError(f"dim must be <= 1000 (the authors' maps), got {self.dim}")
        return self

    @property
    def steps(self) -> int:
        """Steps trained: one past the last shown, so its adjoint exists."""
        return max(self.show_steps) + 1


class ChizatCoordinates(ChizatExperiment):
    name = "chizat-coordinates"
    title = (
        "Per-coordinate trajectories and histograms of h and of the backward variable against "
        "N(0, Gamma(s)[k, k]) (C17)"
    )
    Spec = ChizatCoordinatesSpec
    order = 12
    table: ClassVar[dict[str, str]] = columns(
        "quantity",
        "layer",
        "step=k",
        "variance=Gamma[k,k]",
        "empirical=empirical var",
        "ks=KS D",
        "pvalue=p",
    )

    def full_settings(self) -> dict[str, Any]:
        return {"depth": 200, "width": 1000, "dim": 1000}

    def smoke_settings(self) -> dict[str, Any]:
        return {
            "depth": 8,
            "width": 32,
            "dim": 64,
            "show_steps": (0, 2),
            "trajectory_step": 2,
            "coordinates": 4,
            "intervals": 16,
        }

    def caption(self, spec: ChizatCoordinatesSpec) -> str:
        lr = python_lr(spec.eta)
        units = "the authors' U, V (NumPy seed rep)" if spec.their_units else "our U, V draw"
        return (
            f"One linear 2LP ResNet (sigma = id, alpha = 1), the authors' task and maps "
            f"(chizat.md §1.5; W seed {spec.w_seed}), eta_0={spec.eta:g} (lr={lr:g}), "
            f"L={spec.depth}, M={spec.width}, D={spec.dim}, {units} (rep {spec.rep}), "
            f"{spec.steps} GD steps, seed {spec.seed}. Limit: the exact D -> infinity linear limit "
            f"(continuous depth, RK4 on {spec.intervals} intervals, resampled to the layers); "
            "coordinate paths W[i] xi(s), kernels Gamma_H, Gamma_B. Top: "
            f"{spec.coordinates} coordinates of h_l and of beta_l = D dR/dh_l at step "
            f"{spec.trajectory_step} (solid) and their limit paths (dashed). Histograms: the D "
            f"coordinates at layers 0 and L, steps {list(spec.show_steps)}, against "
            "N(0, Gamma(s)[k, k]), KS statistic D and p-value in each title."
        )

    def compute(self, spec: ChizatCoordinatesSpec, progress: Progress | None = None) -> xr.Dataset:
        task = authors_linear_task()
        lr = python_lr(spec.eta)
        w_e, w_u = authors_embeddings(spec.dim, w_seed=spec.w_seed)
        model = build_resnet(
            spec.depth,
            spec.width,
            spec.dim,
            input_dim=3,
            output_dim=3,
            activation="identity",
            lr=lr,
            seeds=[spec.rep],
            seed=spec.seed,
            embeddings=(w_e, w_u),
            device=spec.device,
        )
        if spec.their_units:
            for name, value in authors_units(spec.depth, spec.width, spec.dim, spec.rep).items():
                model.storage[name].copy_(value)
        record = train_with_adjoint(model, task, spec.steps, record_steps=spec.show_steps)
        if progress is not None:
            progress(1, 2)
        # a Divergence marks the study if the limit diverged
        limit = authors_span_limit(task, lr, spec.steps, spec.intervals, Divergence())
        kernels = span_kernels(limit)
        h_path, b_path = kernels.coordinates(torch.cat([w_e, w_u], dim=1))
        steps = list(spec.show_steps)
        finite = {
            "h": record.states[0, steps, :, 0].double(),  # (steps, L+1, D)
            "beta": record.adjoint[0, steps, :, 0].double(),
        }
        paths = {
            "h": torch.stack([interpolate_depth(h_path[k, :, 0], spec.depth) for k in steps]),
            "beta": torch.stack([interpolate_depth(b_path[k, :, 0], spec.depth) for k in steps]),
        }
        variance = {
            "h": torch.stack([kernels.variance_h(k)[[0, -1]] for k in steps]),  # (steps, 2)
            "beta": torch.stack([kernels.variance_b(k)[[0, -1]] for k in steps]),
        }
        data_vars: dict[str, Any] = {}
        for q in QUANTITIES:
            data_vars[f"{q}_finite"] = (("step", "layer", "coordinate"), finite[q].numpy())
            data_vars[f"{q}_limit"] = (("step", "layer", "coordinate"), paths[q].numpy())
            data_vars[f"{q}_variance"] = (("step", "end"), variance[q].numpy())
        if progress is not None:
            progress(2, 2)
        return xr.Dataset(
            data_vars,
            coords={
                "step": steps,
                "layer": np.arange(spec.depth + 1),
                "coordinate": np.arange(spec.dim),
                "end": [0, spec.depth],
            },
            attrs={"spec": spec.model_dump_json(), "caption": self.caption(spec)},
        )

    def panels(self, dataset: xr.Dataset) -> list[dict[str, Any]]:
        """One row per histogram panel: quantity, layer, step, kernel variance, empirical
        variance and the KS test against N(0, Gamma[k, k])."""
        rows = []
        for q in QUANTITIES:
            for e, layer in enumerate(dataset.end.values):
                for s, step in enumerate(dataset.step.values):
                    values = dataset[f"{q}_finite"].values[s, int(layer)]
                    var = float(dataset[f"{q}_variance"].values[s, e])
                    test = sps.kstest(values, sps.norm(0.0, math.sqrt(var)).cdf)
                    rows.append(
                        {
                            "quantity": q,
                            "layer": int(layer),
                            "step": int(step),
                            "variance": var,
                            "empirical": float(np.mean(values**2)),
                            "ks": float(test.statistic),
                            "pvalue": float(test.pvalue),
                        }
                    )
        return rows

    def summarize(self, dataset: xr.Dataset, spec: Any) -> list[dict[str, Any]]:
        return self.panels(dataset)

    def check(self, dataset: xr.Dataset, spec: Any) -> list[Claim]:
        rows = self.panels(dataset)
        worst = min(rows, key=lambda r: r["pvalue"])
        deviation = {
            q: float(
                np.sqrt(
                    np.mean((dataset[f"{q}_finite"].values - dataset[f"{q}_limit"].values) ** 2)
                )
            )
            for q in QUANTITIES
        }
        tests = {}
        for q in QUANTITIES:
            for e, layer in enumerate(dataset.end.values):
                for s, step in enumerate(dataset.step.values):
                    values = dataset[f"{q}_finite"].values[s, int(layer)]
                    sd = math.sqrt(float(dataset[f"{q}_variance"].values[s, e]))
                    tests[f"{q} layer {int(layer)} k={int(step)}"] = ks_test(
                        values, sps.norm(0.0, sd), level=LEVEL
                    )
        return [
            Claim.family(
                "C17",
                (
                    f"Linear, D={spec.dim}, M={spec.width}, L={spec.depth}: the coordinates of "
                    f"h and beta = D dR/dh at layers 0 and L, steps {list(spec.show_steps)}, are "
                    "N(0, Gamma(s)[k, k]) with the kernels of the D -> infinity limit; worst "
                    f"panel {worst['quantity']} layer {worst['layer']} step {worst['step']}: KS "
                    f"D = {worst['ks']:.4f}, p = {worst['pvalue']:.3g}; largest KS D = "
                    f"{max(r['ks'] for r in rows):.4f} ({len(rows)} panels). RMS distance of "
                    f"each coordinate to its limit path W[i] xi: h {deviation['h']:.3g}, beta "
                    f"{deviation['beta']:.3g}."
                ),
                tests,
                level=LEVEL,
                what="panels",
                details={"panels": rows, "path_rms": deviation},
            )
        ]

    def draw(self, dataset: xr.Dataset, spec: Any) -> Figure:
        rows = self.panels(dataset)
        s = list(dataset.step.values).index(spec.trajectory_step)
        layers = dataset.layer.values
        with chizat_figure(2 + len(rows), columns=4, size=(2.3, 2.0)) as (figure, axes):
            for ax, q in zip(axes[:2], QUANTITIES, strict=True):
                finite = dataset[f"{q}_finite"].values[s]
                limit = dataset[f"{q}_limit"].values[s]
                for i in range(spec.coordinates):
                    color = COLORS[i % len(COLORS)]
                    ax.plot(layers, finite[:, i], color=color, lw=0.9)
                    ax.plot(layers, limit[:, i], color=color, lw=0.9, ls="--")
                title = f"${TEX[q]}_i(l)$, step $k={spec.trajectory_step}$"
                ax.set(xlabel="layer $l$", title=title)
            for ax, row in zip(axes[2:], rows, strict=True):
                step_index = list(dataset.step.values).index(row["step"])
                values = dataset[f"{row['quantity']}_finite"].values[step_index, row["layer"]]
                sd = math.sqrt(row["variance"])
                ax.hist(values, bins=40, density=True, color="#9bb7d4", edgecolor="none")
                grid = np.linspace(-4 * sd, 4 * sd, 200)
                ax.plot(grid, sps.norm(0, sd).pdf(grid), color="#c0392b", lw=1.0)
                ax.set_title(
                    f"${TEX[row['quantity']]}$, $l={row['layer']}$, $k={row['step']}$\n"
                    f"KS {row['ks']:.3f}, $p={row['pvalue']:.2g}$"
                )
            keys = [
                Line2D([], [], color="#444444", lw=0.9, label="network (a colour a coordinate)"),
                Line2D([], [], color="#444444", lw=0.9, ls="--", label=r"limit $W_i\,\xi(s)$"),
                Line2D([], [], color="#c0392b", lw=1.0, label=r"$\mathcal{N}(0, \Gamma(s)[k,k])$"),
            ]
            figure.legend(handles=keys, loc="outside upper center", ncols=3)
        return figure
