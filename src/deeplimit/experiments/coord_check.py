"""Coordinate check (muP's first sanity tool, Yang et al. 2022 §D) in width and in depth.

For each parametrization of training/parametrizations.py, 2LP ResNets (tanh) on a batch of
scikit-learn digits take one full-batch GD step. Per layer ``l`` we record the RMS (over seeds,
samples and coordinates) of

* the activation ``h_l`` at initialization,
* the residual branch ``h_l - h_{l-1}`` at initialization,
* one step's update ``h_l(step 1) - h_l(step 0)`` (same inputs),

against the hidden width ``M`` (fixed ``L``) and against the depth ``L`` (fixed ``M``), at
fixed ``D``. A parametrization passes a coordinate check when nothing blows up or vanishes as
the size grows: flat lines (slope 0) for the activations and the update of ``h_L``.

Predicted log-log slopes (editorial, by counting orders at fixed ``D``; not from a paper): the
branch of one layer at initialization is ``c sqrt(M)`` (``M`` independent units), and one step
moves ``h_L`` by ``~ lr_raw c^2 L M`` (each unit's move is aligned with its gradient). With the
exponents of training/parametrizations.py:

================  ==========================  ==========================
parametrization   branch (M; L)               update of h_L (M; L)
================  ==========================  ==========================
standard          0; 0                        +1; +1
width-mup         -1/2; 0                     0; +1
depth-mup         -1/2; -1/2                  0; 0
completep         -1/2; -1                    0; 0
critical          -1/2; -1                    0; 0
================  ==========================  ==========================
"""

from __future__ import annotations

import math
from typing import Annotated, Any, ClassVar

import numpy as np
import torch
import xarray as xr
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from pydantic import AfterValidator, ValidationInfo

from ..training import build_resnet, train
from ..training.parametrizations import PARAMETRIZATIONS, parametrization
from ..training.real_data import digits_task
from .base import Progress
from .chizat_common import (
    COLORS,
    ChizatExperiment,
    ChizatSpec,
    chizat_figure,
    columns,
    fit_or_none,
    log_axes,
    log_error_bars,
    rms_over,
)
from .claims import Claim
from .spec_fields import DType, IncreasingInts, Positive, PositiveInt

__all__ = ["PREDICTED_SLOPES", "CoordCheck", "CoordCheckSpec"]

QUANTITIES = ("activation", "branch", "update")
AXES = ("width", "depth")

# (branch, update) predicted slopes against (width M, depth L)
PREDICTED_SLOPES: dict[str, dict[str, tuple[float, float]]] = {
    "standard": {"width": (0.0, 1.0), "depth": (0.0, 1.0)},
    "width-mup": {"width": (-0.5, 0.0), "depth": (0.0, 1.0)},
    "depth-mup": {"width": (-0.5, 0.0), "depth": (-0.5, 0.0)},
    "completep": {"width": (-0.5, 0.0), "depth": (-1.0, 0.0)},
    "critical": {"width": (-0.5, 0.0), "depth": (-1.0, 0.0)},
}
SLOPE_TOLERANCE = 0.25


def check_parametrizations(value: tuple[str, ...], info: ValidationInfo) -> tuple[str, ...]:
    """Spec field check: known, distinct parametrization keys."""
    unknown = [v for v in value if v not in PARAMETRIZATIONS]
    if unknown or not value or len(set(value)) != len(value):
        raise ValueError(
            f"{info.field_name} must be distinct names among {', '.join(PARAMETRIZATIONS)}, "
            f"got {value}"
        )
    return value


ParametrizationKeys = Annotated[tuple[str, ...], AfterValidator(check_parametrizations)]


class CoordCheckSpec(ChizatSpec):
    parametrizations: ParametrizationKeys = tuple(PARAMETRIZATIONS)
    dim: PositiveInt = 32
    widths: IncreasingInts = (16, 32, 64, 128, 256, 512)
    width_depth: PositiveInt = 4
    depths: IncreasingInts = (2, 4, 8, 16, 32, 64)
    depth_width: PositiveInt = 32
    samples: PositiveInt = 64
    seeds: PositiveInt = 2
    lr: Positive = 0.02
    dtype: DType = "float64"


def layer_rms(states: torch.Tensor, *, per_seed: bool = False) -> np.ndarray:
    """``(3, L)`` RMS of activation, branch and update per layer from ``states``
    ``(S, 2, L+1, N, D)`` (steps 0 and 1 of ``train(..., record_layers=True)``); with
    ``per_seed``, ``(S, 3, L)``: each seed's own."""

    def rms(value: torch.Tensor) -> np.ndarray:
        return value.pow(2).mean(dim=(2, 3) if per_seed else (0, 2, 3)).sqrt().numpy()

    initial, after = states[:, 0], states[:, 1]
    activation = rms(initial[:, 1:])
    branch = rms(initial[:, 1:] - initial[:, :-1])
    update = rms(after[:, 1:] - initial[:, 1:])
    return np.stack([activation, branch, update], axis=-2)


def summary(values: np.ndarray) -> np.ndarray:
    """``(..., 3, layer)`` -> ``(..., 3)``: activation and update at the last layer (the
    first non-NaN from the end), branch as the RMS over layers."""
    out = np.full(values.shape[:-1], np.nan)
    for index in np.ndindex(values.shape[:-2]):
        block = values[index]
        finite = np.flatnonzero(np.isfinite(block[0]))
        if finite.size == 0:
            continue
        last = finite[-1]
        out[index] = (
            block[0, last],
            math.sqrt(float(np.nanmean(block[1, : last + 1] ** 2))),
            block[2, last],
        )
    return out


class CoordCheck(ChizatExperiment):
    name = "coord-check"
    title = "Coordinate check in width and depth for five parametrizations"
    Spec = CoordCheckSpec
    suite = "beyond"
    order = 1
    table: ClassVar[dict[str, str]] = columns(
        "parametrization",
        "axis",
        "activation_slope=act. slope",
        "branch_slope=branch slope",
        "update_slope=update slope",
    )

    def full_settings(self) -> dict[str, Any]:
        return {
            "widths": (16, 32, 64, 128, 256, 512, 1024, 2048),
            "depths": (2, 4, 8, 16, 32, 64, 128, 256),
            "samples": 128,
            "seeds": 4,
        }

    def smoke_settings(self) -> dict[str, Any]:
        return {
            "dim": 8,
            "widths": (4, 8, 16),
            "width_depth": 2,
            "depths": (2, 4, 8),
            "depth_width": 4,
            "samples": 8,
            "seeds": 1,
        }

    def caption(self, spec: CoordCheckSpec) -> str:
        return (
            f"2LP ResNets (tanh) on {spec.samples} scikit-learn digits (64 standardized pixels, "
            f"centred one-hot targets), D={spec.dim}, one full-batch GD step at base learning "
            f"rate {spec.lr:g} of each parametrization (training/parametrizations.py), "
            f"{spec.seeds} seed(s), {spec.dtype}, seed {spec.seed}. Top: against the width M "
            f"in {list(spec.widths)} at L={spec.width_depth}; bottom: against the depth L in "
            f"{list(spec.depths)} at M={spec.depth_width}. RMS over seeds, samples and "
            "coordinates of h_L at initialization (activation), of the residual branch "
            "h_l - h_(l-1) (RMS over layers) and of one step's update of h_L. Flat lines: the "
            "parametrization passes the coordinate check along that axis."
        )

    def _measure(
        self, spec: CoordCheckSpec, key: str, depth: int, width: int, data: Any
    ) -> tuple[np.ndarray, np.ndarray]:
        """The layer RMS of every quantity over the seeds ``(3, L)`` and per seed ``(S, 3,
        L)``."""
        model = build_resnet(
            depth,
            width,
            spec.dim,
            input_dim=data.input_dim,
            output_dim=data.output_dim,
            scaling=parametrization(key, spec.lr),
            seeds=spec.seeds,
            seed=spec.seed,
            device=spec.device,
            dtype=getattr(torch, spec.dtype),
        )
        result = train(
            model, data, 1, record_movement=False, record_layers=True, on_divergence="ignore"
        )
        states = result.states.double()
        return layer_rms(states), layer_rms(states, per_seed=True)

    def compute(self, spec: CoordCheckSpec, progress: Progress | None = None) -> xr.Dataset:
        data, _ = digits_task(spec.samples, 1, seed=spec.seed)
        keys = list(spec.parametrizations)
        width_values = np.full((len(keys), len(spec.widths), 3, spec.width_depth), np.nan)
        depth_values = np.full((len(keys), len(spec.depths), 3, max(spec.depths)), np.nan)
        seeds = (spec.seeds, 3)
        width_seeds = np.full((len(keys), len(spec.widths), *seeds, spec.width_depth), np.nan)
        depth_seeds = np.full((len(keys), len(spec.depths), *seeds, max(spec.depths)), np.nan)
        total = len(keys) * (len(spec.widths) + len(spec.depths))
        done = 0
        for p, key in enumerate(keys):
            for i, width in enumerate(spec.widths):
                width_values[p, i], width_seeds[p, i] = self._measure(
                    spec, key, spec.width_depth, width, data
                )
                done += 1
                if progress is not None:
                    progress(done, total)
            for i, depth in enumerate(spec.depths):
                pooled, per_seed = self._measure(spec, key, depth, spec.depth_width, data)
                depth_values[p, i, :, :depth] = pooled
                depth_seeds[p, i, ..., :depth] = per_seed
                done += 1
                if progress is not None:
                    progress(done, total)
        return xr.Dataset(
            {
                "width_rms": (("parametrization", "width", "quantity", "layer"), width_values),
                "depth_rms": (
                    ("parametrization", "depth", "quantity", "depth_layer"),
                    depth_values,
                ),
                "width_rms_seeds": (
                    ("parametrization", "width", "seed", "quantity", "layer"),
                    width_seeds,
                ),
                "depth_rms_seeds": (
                    ("parametrization", "depth", "seed", "quantity", "depth_layer"),
                    depth_seeds,
                ),
            },
            coords={
                "parametrization": keys,
                "width": list(spec.widths),
                "depth": list(spec.depths),
                "quantity": list(QUANTITIES),
                "seed": np.arange(spec.seeds),
                "layer": np.arange(1, spec.width_depth + 1),
                "depth_layer": np.arange(1, max(spec.depths) + 1),
            },
            attrs={"spec": spec.model_dump_json(), "caption": self.caption(spec)},
        )

    def _summaries(self, dataset: xr.Dataset) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """axis -> (sizes, summary values (parametrization, size, quantity))."""
        return {
            "width": (dataset.width.values, summary(dataset.width_rms.values)),
            "depth": (dataset.depth.values, summary(dataset.depth_rms.values)),
        }

    def summarize(self, dataset: xr.Dataset, spec: Any) -> list[dict[str, Any]]:
        rows = []
        for axis, (sizes, values) in self._summaries(dataset).items():
            for p, key in enumerate(dataset.parametrization.values):
                row: dict[str, Any] = {"parametrization": str(key), "axis": axis}
                for q, quantity in enumerate(QUANTITIES):
                    fit = fit_or_none(sizes, values[p, :, q])
                    row[f"{quantity}_slope"] = math.nan if fit is None else fit.slope
                    row[f"{quantity}_ci"] = (
                        [math.nan, math.nan] if fit is None else [fit.ci_low, fit.ci_high]
                    )
                rows.append(row)
        return rows

    def check(self, dataset: xr.Dataset, spec: Any) -> list[Claim]:
        claims = []
        for axis, (sizes, values) in self._summaries(dataset).items():
            fixed = f"L={spec.width_depth}" if axis == "width" else f"M={spec.depth_width}"
            symbol = "M" if axis == "width" else "L"
            for p, key in enumerate(dataset.parametrization.values):
                branch, update = PREDICTED_SLOPES[str(key)][axis]
                for q, quantity, expected in ((1, "branch", branch), (2, "update", update)):
                    what = (
                        "residual-branch RMS" if quantity == "branch" else "one-step update of h_L"
                    )
                    claim = Claim.slope(
                        f"CC-{key}-{symbol}-{quantity}",
                        f"{key}, D={spec.dim}, {fixed}: the {what} against {symbol} scales "
                        f"like {symbol}^{expected:+g} (predicted by order counting, "
                        "editorial; measured here)",
                        sizes,
                        values[p, :, q],
                        expected=expected,
                        tolerance=SLOPE_TOLERANCE,
                        what=f"{what} vs {symbol}",
                    )
                    claim.details["experiment"] = self.name
                    claims.append(claim)
        return claims

    def draw(self, dataset: xr.Dataset, spec: Any) -> Figure:
        titles = {
            "activation": "activation $h_L$ at init",
            "branch": "residual branch",
            "update": "one-step update of $h_L$",
        }
        keys = [str(key) for key in dataset.parametrization.values]
        with chizat_figure(6, columns=3, size=(2.5, 2.2)) as (figure, axes):
            for row, (axis, (sizes, values)) in enumerate(self._summaries(dataset).items()):
                relative = self._seed_intervals(dataset, axis, values.shape)
                symbol = "M" if axis == "width" else "L"
                for q, quantity in enumerate(QUANTITIES):
                    ax = axes[3 * row + q]
                    for p in range(len(keys)):
                        color = COLORS[p % len(COLORS)]
                        y = values[p, :, q]
                        fit = fit_or_none(sizes, y)
                        label = "—" if fit is None else f"{fit.slope:+.2f}"
                        log_error_bars(
                            ax, sizes, y, relative[p, :, q], color=color, fmt="o-", label=label
                        )
                        if fit is not None:
                            grid = np.geomspace(min(sizes), max(sizes), 40)
                            ax.plot(grid, fit.predict(grid), ls=":", color=color, lw=1.0)
                    ylabel = "RMS" if q == 0 else ""
                    log_axes(ax, f"{axis} ${symbol}$", ylabel, f"{titles[quantity]} vs ${symbol}$")
                    ax.legend(title="slope")
            keys_ = [
                Line2D([], [], color=COLORS[p % len(COLORS)], marker="o", label=key)
                for p, key in enumerate(keys)
            ]
            figure.legend(handles=keys_, loc="outside upper center", ncols=len(keys))
        return figure

    @staticmethod
    def _seed_intervals(dataset: xr.Dataset, axis: str, shape: tuple[int, ...]) -> np.ndarray:
        """Relative half-widths of the 95% intervals over the seeds of the summaries
        ``(parametrization, size, quantity)`` (NaN with one seed, or without the seeds)."""
        name = f"{axis}_rms_seeds"
        if name not in dataset:
            return np.full(shape, np.nan)
        per_seed = summary(dataset[name].values)  # (parametrization, size, seed, quantity)
        return rms_over(per_seed, axis=2)[1]
