"""Learning-rate transfer across depth and width on real data, for five parametrizations.

For each parametrization of training/parametrizations.py, ResNets are trained by full-batch GD
for ``K`` steps on a training split of real data that ships with an installed package, over a
log2 grid of learning rates, at several depths ``L`` (fixed ``M``) and several widths ``M``
(fixed ``L``), with several seeds; the held-out loss after ``K`` steps is recorded. A
parametrization *transfers* the learning rate when the optimum of the loss-vs-lr curve stays put
as the network grows (the muP paper's Figure 1 style).

Tasks: ``"digits"`` (scikit-learn's digits, 2LP blocks, tanh; training/real_data.py) and
``"text"`` (character-level next-token prediction on Python's pydoc topics text, attention
blocks; training/attention.py).

Learning rates: the grid is ``lr = lr0(P) 2^k``; ``lr0(P)`` makes every parametrization ``P``
take the same raw learning rate on ``v`` as the critical scaling with ``lr = base_lr`` at the
reference shape (``L = width_depth``, ``M = depth_width``), so the curves of all
parametrizations coincide in raw units there and ``k`` (the x axis) is comparable.

Optimum: the grid point of least seed-mean held-out loss (a seed that diverged makes the mean
infinite), refined by a parabola through it and its two neighbours in ``(k, log loss)``
(shift clamped to half a grid step); an optimum on the edge of the grid is flagged. Drift: the
least-squares slope of the optimal ``k`` against ``log2 L`` (or ``log2 M``), i.e. the shift of the
optimum per doubling, with a bootstrap CI over seeds (seeds resampled with replacement, the whole
analysis redone). Predicted drift (editorial, from the one-step update exponents of
coord_check.py: the optimum keeps the function step fixed, so ``lr_opt ∝ 1/update``): standard
-1 per doubling of ``L`` and of ``M``; width-mup 0 in ``M``, -1 in ``L``; depth-mup, completep
and critical 0 in both. A claim passes when the measured drift over the span of the sweep is
within one grid step (factor 2) of the prediction.
"""

from __future__ import annotations

import functools
import math
from typing import Annotated, Any, ClassVar

import numpy as np
import torch
import xarray as xr
from matplotlib import colormaps
from matplotlib.figure import Figure
from pydantic import AfterValidator, ValidationInfo

from ..checkpoints import current
from ..training import build_resnet, train
from ..training.attention import AttentionBlock, SequenceData
from ..training.data import TrainingData
from ..training.model import TwoLayerBlock
from ..training.parametrizations import CriticalScaling, parametrization
from ..training.real_data import digits_task, text_task
from .base import Progress
from .chizat_common import ChizatExperiment, ChizatSpec, chizat_figure, columns, log_axes, mean_over
from .claims import Claim, bound
from .coord_check import ParametrizationKeys
from .spec_fields import DType, IncreasingInts, Positive, PositiveInt, Seeds

__all__ = ["PREDICTED_DRIFT", "Transfer", "TransferSpec", "drift_with_ci", "optimum"]

TASKS = ("digits", "text")
PREDICTED_DRIFT: dict[str, dict[str, float]] = {
    "standard": {"depth": -1.0, "width": -1.0},
    "width-mup": {"depth": -1.0, "width": 0.0},
    "depth-mup": {"depth": 0.0, "width": 0.0},
    "completep": {"depth": 0.0, "width": 0.0},
    "critical": {"depth": 0.0, "width": 0.0},
}


def _task(value: str, info: ValidationInfo) -> str:
    if value not in TASKS:
        raise ValueError(f"{info.field_name} must be one of {', '.join(TASKS)}, got {value!r}")
    return value


def _log2_grid(value: tuple[int, ...], info: ValidationInfo) -> tuple[int, ...]:
    if len(value) < 3 or list(value) != list(range(value[0], value[0] + len(value))):
        raise ValueError(
            f"{info.field_name} must be at least three consecutive increasing integers (the "
            f"log2 grid), got {value}"
        )
    return value


class TransferSpec(ChizatSpec):
    task: Annotated[str, AfterValidator(_task)] = "digits"
    parametrizations: ParametrizationKeys = (
        "standard",
        "width-mup",
        "depth-mup",
        "completep",
        "critical",
    )
    dim: PositiveInt = 32
    depths: IncreasingInts = (2, 4, 8, 16)
    depth_width: PositiveInt = 16
    widths: IncreasingInts = (8, 16, 32, 64)
    width_depth: PositiveInt = 4
    lr_exponents: Annotated[tuple[int, ...], AfterValidator(_log2_grid)] = tuple(range(-3, 10))
    base_lr: Positive = 0.25
    steps: PositiveInt = 30
    train_samples: PositiveInt = 256
    test_samples: PositiveInt = 512
    seeds: Seeds = 3
    tokens: PositiveInt = 16
    key_dim: PositiveInt = 4
    bootstrap: PositiveInt = 400
    dtype: DType = "float64"


def optimum(grid: np.ndarray, curve: np.ndarray) -> tuple[float, bool]:
    """The log2 learning rate of least loss on ``curve`` over ``grid`` (consecutive integers),
    refined by a parabola in ``(k, log loss)``; and whether it lies on the grid's edge.
    Non-finite losses count as infinite; NaN when every point is."""
    values = np.where(np.isfinite(curve) & (curve > 0), curve, np.inf)
    if not np.isfinite(values).any():
        return math.nan, True
    i = int(np.argmin(values))
    edge = i == 0 or i == len(grid) - 1
    if edge or not (np.isfinite(values[i - 1]) and np.isfinite(values[i + 1])):
        return float(grid[i]), edge
    left, middle, right = np.log(values[i - 1 : i + 2])
    curvature = left - 2 * middle + right
    shift = 0.0 if curvature <= 0 else 0.5 * (left - right) / curvature
    return float(grid[i] + np.clip(shift, -0.5, 0.5)), False


def optima(grid: np.ndarray, losses: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per size, the optimum of the seed-mean curve: ``losses`` (sizes, lr, seeds)."""
    mean = np.where(np.isfinite(losses), losses, np.inf).mean(-1)
    pairs = [optimum(grid, curve) for curve in mean]
    return np.array([p[0] for p in pairs]), np.array([p[1] for p in pairs])


def _slope(sizes: np.ndarray, values: np.ndarray) -> float:
    if not np.isfinite(values).all():
        return math.nan
    return float(np.polyfit(np.log2(sizes), values, 1)[0])


def drift_with_ci(
    sizes: np.ndarray, grid: np.ndarray, losses: np.ndarray, *, samples: int, seed: int = 0
) -> dict[str, Any]:
    """The drift of the optimum per doubling of the size (slope of the optimal log2 lr against
    log2 size) and its 95% bootstrap CI over seeds; ``losses`` (sizes, lr, seeds)."""
    best, edge = optima(grid, losses)
    slope = _slope(sizes, best)
    rng = np.random.default_rng(seed)
    seeds = losses.shape[-1]
    draws = []
    for _ in range(samples):
        pick = rng.integers(0, seeds, seeds)
        draws.append(_slope(sizes, optima(grid, losses[..., pick])[0]))
    draws = np.array(draws)
    finite = draws[np.isfinite(draws)]
    low, high = np.percentile(finite, [2.5, 97.5]) if finite.size else (math.nan, math.nan)
    return {
        "drift": slope,
        "ci_low": float(low),
        "ci_high": float(high),
        "optima": best.tolist(),
        "edge": edge.tolist(),
        "bootstrap_finite": int(finite.size),
    }


class Transfer(ChizatExperiment):
    name = "transfer"
    title = "Learning-rate transfer across depth and width on real data (five parametrizations)"
    Spec = TransferSpec
    suite = "beyond"
    order = 2
    table: ClassVar[dict[str, str]] = columns(
        "parametrization",
        "axis",
        "drift=drift / doubling",
        "ci=95% bootstrap CI",
        "span_drift=drift over span",
        "optima=optimal log2 lr",
    )

    def full_settings(self) -> dict[str, Any]:
        # 16x in depth and in width (four doublings each, twice the fast span), 16 learning
        # rates, 8 seeds, 100 steps on 4x the data; float32, the practitioners' dtype, which
        # trains these small batched products ~3x faster than float64 on a CPU (an hour on the
        # 2-core machine, where 2...64 x 8...256 in float64 would take ~9 hours)
        return {
            "depths": (2, 4, 8, 16, 32),
            "widths": (8, 16, 32, 64, 128),
            "lr_exponents": tuple(range(-4, 12)),
            "steps": 100,
            "dtype": "float32",
            "train_samples": 1024,
            "test_samples": 773,
            "seeds": 8,
            "bootstrap": 1000,
        }

    def smoke_settings(self) -> dict[str, Any]:
        return {
            "dim": 8,
            "depths": (1, 2, 4),
            "depth_width": 4,
            "widths": (2, 4, 8),
            "width_depth": 2,
            "lr_exponents": (-2, -1, 0, 1),
            "steps": 3,
            "train_samples": 16,
            "test_samples": 16,
            "seeds": 2,
            "tokens": 4,
            "key_dim": 2,
            "bootstrap": 20,
        }

    def caption(self, spec: TransferSpec) -> str:
        if spec.task == "digits":
            task = (
                f"scikit-learn digits ({spec.train_samples} training / {spec.test_samples} "
                "held-out images, centred one-hot targets), 2LP blocks (tanh)"
            )
        else:
            task = (
                f"character-level next token on Python's pydoc topics text "
                f"({spec.train_samples} training / {spec.test_samples} held-out sequences of "
                f"T={spec.tokens}), attention blocks (key_dim {spec.key_dim})"
            )
        return (
            f"{task}, D={spec.dim}, K={spec.steps} full-batch GD steps, {spec.seeds} seeds, "
            f"{spec.dtype}, seed {spec.seed}. Learning rate lr0(P) 2^k, k in "
            f"{spec.lr_exponents[0]}..{spec.lr_exponents[-1]}, lr0(P) matching the critical "
            f"scaling's raw rate at lr={spec.base_lr:g} at L={spec.width_depth}, "
            f"M={spec.depth_width}. Top: depths L in {list(spec.depths)} at "
            f"M={spec.depth_width}; bottom: widths M in {list(spec.widths)} at "
            f"L={spec.width_depth}. Held-out MSE after K steps, mean over seeds (a diverged "
            "seed ends the curve); ticks: optima (parabola-refined)."
        )

    # ------------------------------------------------------------------ running

    def _data(self, spec: TransferSpec) -> tuple[TrainingData, TrainingData, Any]:
        if spec.task == "digits":
            train_data, test_data = digits_task(
                spec.train_samples, spec.test_samples, seed=spec.seed
            )
            return train_data, test_data, lambda: TwoLayerBlock("tanh")
        (x, y), (xt, yt), description = text_task(
            spec.train_samples, spec.test_samples, tokens=spec.tokens, seed=spec.seed
        )
        train_data = SequenceData(torch.from_numpy(x), torch.from_numpy(y), description).flat()
        test_data = SequenceData(torch.from_numpy(xt), torch.from_numpy(yt), description).flat()
        return train_data, test_data, lambda: AttentionBlock(spec.tokens, spec.key_dim, "tanh")

    def _base_lr(self, spec: TransferSpec, key: str) -> float:
        shape = (spec.width_depth, spec.depth_width, spec.dim)
        reference = CriticalScaling(lr=spec.base_lr).learning_rate(*shape)
        return reference / parametrization(key, 1.0).learning_rate(*shape)

    def _curves(
        self, spec: TransferSpec, key: str, depth: int, width: int, data: tuple[Any, Any, Any]
    ) -> np.ndarray:
        """``(2, lr, seeds)``: held-out and training loss after K steps (NaN if diverged)."""
        train_data, test_data, block = data
        base = self._base_lr(spec, key)
        grid = list(spec.lr_exponents)
        scalings = [parametrization(key, base * 2.0**k) for k in grid for _ in range(spec.seeds)]
        model = build_resnet(
            depth,
            width,
            spec.dim,
            input_dim=train_data.input_dim,
            output_dim=train_data.output_dim,
            block=block(),
            scaling=scalings,
            seeds=list(range(spec.seeds)) * len(grid),
            seed=spec.seed,
            device=spec.device,
            dtype=getattr(torch, spec.dtype),
        )
        result = train(model, train_data, spec.steps, record_movement=False, on_divergence="ignore")
        with torch.no_grad():
            x = test_data.x.to(model.device, model.dtype)
            y = test_data.y.to(model.device, model.dtype)
            held_out = model.risk(model.readout(model.forward(x).last), y).double().cpu()
        bad = result.diverged | ~torch.isfinite(held_out)
        held_out[bad] = math.nan
        trained = result.loss[:, -1].double().clone()
        trained[bad] = math.nan
        shape = (len(grid), spec.seeds)
        return np.stack([held_out.numpy().reshape(shape), trained.numpy().reshape(shape)])

    def compute(self, spec: TransferSpec, progress: Progress | None = None) -> xr.Dataset:
        data = self._data(spec)
        keys = list(spec.parametrizations)
        n_lr = len(spec.lr_exponents)
        depth_values = np.full((len(keys), len(spec.depths), 2, n_lr, spec.seeds), np.nan)
        width_values = np.full((len(keys), len(spec.widths), 2, n_lr, spec.seeds), np.nan)
        work = [
            (p, "depth", i, depth, spec.depth_width)
            for p in range(len(keys))
            for i, depth in enumerate(spec.depths)
        ] + [
            (p, "width", i, spec.width_depth, width)
            for p in range(len(keys))
            for i, width in enumerate(spec.widths)
        ]
        weights = [depth * width for _, _, _, depth, width in work]
        total, done = sum(weights), 0
        cache: dict[tuple[int, int, int], np.ndarray] = {}
        checkpoint = current()  # units: one (parametrization, L, M) each (deeplimit.checkpoints)
        for (p, axis, i, depth, width), weight in zip(work, weights, strict=True):
            if (p, depth, width) not in cache:
                curves = functools.partial(self._curves, spec, keys[p], depth, width, data)
                unit = checkpoint.unit(
                    f"{keys[p]}-L{depth}-M{width}", lambda curves=curves: {"loss": curves()}
                )
                cache[(p, depth, width)] = unit["loss"]
            target = depth_values if axis == "depth" else width_values
            target[p, i] = cache[(p, depth, width)]
            done += weight
            if progress is not None:
                progress(done, total)
        dims = ("parametrization", "{axis}", "split", "lr", "seed")
        return xr.Dataset(
            {
                "depth_loss": (tuple(d.format(axis="depth") for d in dims), depth_values),
                "width_loss": (tuple(d.format(axis="width") for d in dims), width_values),
            },
            coords={
                "parametrization": keys,
                "depth": list(spec.depths),
                "width": list(spec.widths),
                "split": ["held_out", "train"],
                "lr": list(spec.lr_exponents),
                "seed": list(range(spec.seeds)),
            },
            attrs={
                "spec": spec.model_dump_json(),
                "caption": self.caption(spec),
                "base_lrs": [self._base_lr(spec, key) for key in keys],
            },
        )

    # ------------------------------------------------------------------ analysis

    def drifts(self, dataset: xr.Dataset) -> dict[tuple[str, str], dict[str, Any]]:
        spec = self.spec_from_dataset(dataset)
        grid = dataset.lr.values.astype(float)
        out = {}
        for axis in ("depth", "width"):
            sizes = dataset[axis].values.astype(float)
            losses = dataset[f"{axis}_loss"].sel(split="held_out").values
            for p, key in enumerate(dataset.parametrization.values):
                result = drift_with_ci(
                    sizes, grid, losses[p], samples=spec.bootstrap, seed=spec.seed
                )
                result["span_doublings"] = float(np.log2(sizes[-1] / sizes[0]))
                out[(str(key), axis)] = result
        return out

    def summarize(self, dataset: xr.Dataset, spec: Any) -> list[dict[str, Any]]:
        rows = []
        for (key, axis), result in self.drifts(dataset).items():
            rows.append(
                {
                    "parametrization": key,
                    "axis": axis,
                    "drift": result["drift"],
                    "ci": [result["ci_low"], result["ci_high"]],
                    "span_drift": result["drift"] * result["span_doublings"],
                    "optima": [round(v, 2) for v in result["optima"]],
                    "edge": result["edge"],
                }
            )
        return rows

    def check(self, dataset: xr.Dataset, spec: Any) -> list[Claim]:
        claims = []
        for (key, axis), result in self.drifts(dataset).items():
            symbol = "L" if axis == "depth" else "M"
            sizes = dataset[axis].values
            expected = PREDICTED_DRIFT[key][axis]
            span = result["span_doublings"]
            total = result["drift"] * span
            edges = sum(result["edge"])
            edge_note = (
                f"; {edges} optimum/optima on the edge of the grid (drift there is a bound)"
                if edges
                else ""
            )
            paper = "; the papers' prediction for the critical scaling" if key == "critical" else ""
            fixed = f"M={spec.depth_width}" if axis == "depth" else f"L={spec.width_depth}"
            claims.append(
                Claim.bound(
                    f"TR-{key}-{symbol}",
                    f"{key} ({spec.task}, {fixed}, D={spec.dim}, K={spec.steps}): the optimal "
                    f"learning rate drifts by {expected:+g} grid steps (log2) per doubling "
                    f"of {symbol} over {symbol} {sizes[0]}…{sizes[-1]} (editorial "
                    f"prediction{paper}); measured optima "
                    f"{[round(v, 2) for v in result['optima']]}{edge_note}",
                    bound(
                        result["drift"],
                        equals=expected,
                        tolerance=1.0 / span,
                        n=int(dataset.seed.size),
                        fmt="+g",
                    ),
                    statistic=f"log2 drift of the optimal lr per doubling of {symbol}",
                    note=(
                        f"one grid step over the {span:g} doublings (drift over the span "
                        f"{total:+.2f}); 95% bootstrap CI [{result['ci_low']:+.2f}, "
                        f"{result['ci_high']:+.2f}] per doubling"
                    ),
                    details={**result, "experiment": self.name},
                )
            )
        return claims

    def draw(self, dataset: xr.Dataset, spec: Any) -> Figure:
        keys = [str(k) for k in dataset.parametrization.values]
        grid = dataset.lr.values.astype(float)
        drifts = self.drifts(dataset)
        cmap = colormaps["viridis"]
        with chizat_figure(2 * len(keys), columns=len(keys), size=(2.1, 1.9)) as (figure, axes):
            for row, axis in enumerate(("depth", "width")):
                sizes = dataset[axis].values
                losses = dataset[f"{axis}_loss"].sel(split="held_out").values
                symbol = "L" if axis == "depth" else "M"
                for p, key in enumerate(keys):
                    ax = axes[row * len(keys) + p]
                    result = drifts[(key, axis)]
                    for i, size in enumerate(sizes):
                        color = cmap(i / max(1, len(sizes) - 1))
                        # a diverged seed ends the curve: the mean over seeds is NaN there
                        mean = np.where(np.isfinite(losses[p, i]), losses[p, i], np.nan).mean(-1)
                        label = f"${symbol}={size}$" if p == 0 else None
                        ax.plot(grid, mean, "o-", ms=2.5, lw=1.1, color=color, label=label)
                        relative = mean_over(losses[p, i])  # 95% over the seeds, log space
                        if np.isfinite(relative).any():
                            ax.fill_between(
                                grid,
                                mean * np.exp(-relative),
                                mean * np.exp(relative),
                                color=color,
                                alpha=0.2,
                                lw=0,
                            )
                        best = result["optima"][i]
                        if math.isfinite(best):
                            ax.axvline(best, color=color, lw=0.6, ls=":")
                    title = f"{key}\n${result['drift']:+.2f}$ per doubling of ${symbol}$"
                    ylabel = f"held-out loss (vs ${symbol}$)" if p == 0 else ""
                    log_axes(ax, r"$\log_2(\mathrm{lr}/\mathrm{lr}_0)$", ylabel, title, x=False)
        return figure
