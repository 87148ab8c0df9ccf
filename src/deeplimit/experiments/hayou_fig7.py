"""Hayou Fig. 7: correlation paths ``c_l(x, x')`` of finite-width ResNets (hayou.md §6).

For two inputs, ``c_l = <Y_l(x), Y_l(x')> / (||Y_l(x)|| ||Y_l(x')||)`` follows, as ``L -> oo``,
the SDE ``dc = mu_c dt + sigma_c^T dB`` (Eq. 5), which is not autonomous in ``c`` (the paper
calls it intractable). The paper shows simulated paths: stochastic, with no degeneracy
(no convergence to ``+-1``, unlike deep MLPs off the edge of chaos). We draw a few paths per
width, the median and 5-95 % band over many networks, and the infinite-width (McKean-Vlasov)
correlation ``K_01 / sqrt(K_00 K_11)`` (the arc-cosine ODE for ReLU). A one-step Monte Carlo
from a fixed state checks the explicit drift and variance of Eq. 5
(``correlation_coefficients``), with antithetic increments ``+-W`` to cancel the noise.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np
import scipy.stats as sps
import torch
import xarray as xr
from matplotlib.figure import Figure
from pydantic import model_validator

from ..initialization.meanfield import meanfield_covariance
from ..initialization.observables import correlation_coefficients, observe_resnet
from ..rng import derive_seed
from .base import Claim, ExperimentSpec, Progress
from .claims import bound
from .hayou_common import (
    POINT_COLOR,
    ActivationName,
    HayouExperiment,
    columns,
    panels,
    runnable_activation,
    sizes_text,
)
from .spec_fields import AtLeast, Level, Positive, PositiveInt, Widths

__all__ = ["HayouFig7", "HayouFig7Spec"]

CORRELATION_STREAM = 14
ONE_STEP_STREAM = 15
CHUNK = 200_000


class HayouFig7Spec(ExperimentSpec):
    widths: Widths = (3, 5, 10)
    depth: AtLeast(10) = 1000  # type: ignore[valid-type]
    samples: AtLeast(20) = 2_000  # type: ignore[valid-type]
    paths: PositiveInt = 5
    rho0: float = 0.5
    activation: ActivationName = "relu"
    q0: Positive = 1.0
    # the one-step check of Eq. 5: a fixed state (a, b) of width len(a), step dt
    onestep_a: tuple[float, ...] = (1.2, -0.4, 0.7)
    onestep_b: tuple[float, ...] = (0.6, 0.9, -0.5)
    onestep_dt: Positive = 1e-3
    onestep_samples: AtLeast(1000) = 1_000_000  # type: ignore[valid-type]
    level: Level = 1e-3

    @model_validator(mode="after")
    def _check(self) -> HayouFig7Spec:
        if not -1 < self.rho0 < 1:
            raise ValueError(f"rho0 must be in (-1, 1), got {self.rho0}")
        if self.paths > self.samples:
            raise ValueError(f"paths must be <= samples = {self.samples}, got {self.paths}")
        if len(self.onestep_a) != len(self.onestep_b) or len(self.onestep_a) < 2:
            raise ValueError(
                "onestep_a and onestep_b must be vectors of the same length >= 2, got "
                f"{self.onestep_a} and {self.onestep_b}"
            )
        if self.onestep_dt >= 0.1:
            raise ValueError(f"onestep_dt must be < 0.1, got {self.onestep_dt}")
        return self


def _inputs(spec: HayouFig7Spec) -> list[list[float]]:
    """Two inputs of dimension 2 with ``<x, x'>/(|x||x'|) = rho0`` and ``|x|^2/d = q0``."""
    scale = math.sqrt(2 * spec.q0)
    return [[scale, 0.0], [scale * spec.rho0, scale * math.sqrt(1 - spec.rho0**2)]]


def _correlation(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a * b).sum(-1) / (a.norm(dim=-1) * b.norm(dim=-1))


def one_step(spec: HayouFig7Spec) -> dict[str, float]:
    """Antithetic one-step Monte Carlo of ``c`` from ``(a, b)``: ``E[(c+ + c-)/2 - c] / dt``
    estimates ``mu_c`` and ``E[((c+ - c-)/2)^2] / dt`` estimates ``sigma_c^2`` (errors O(dt))."""
    activation = runnable_activation(spec.activation)
    a = torch.tensor(spec.onestep_a, dtype=torch.float64)
    b = torch.tensor(spec.onestep_b, dtype=torch.float64)
    n = a.numel()
    u, v = activation.phi(a), activation.phi(b)
    start = _correlation(a, b)
    generator = torch.Generator().manual_seed(derive_seed(spec.seed, ONE_STEP_STREAM))
    drifts, squares = [], []
    remaining = spec.onestep_samples
    while remaining > 0:
        size = min(CHUNK, remaining)
        weights = torch.randn(size, n, n, generator=generator, dtype=torch.float64) / math.sqrt(n)
        step_a = math.sqrt(spec.onestep_dt) * (weights @ u)
        step_b = math.sqrt(spec.onestep_dt) * (weights @ v)
        plus = _correlation(a + step_a, b + step_b)
        minus = _correlation(a - step_a, b - step_b)
        drifts.append(((plus + minus) / 2 - start) / spec.onestep_dt)
        squares.append(((plus - minus) / 2) ** 2 / spec.onestep_dt)
        remaining -= size
    drift, square = torch.cat(drifts), torch.cat(squares)
    mu, variance = correlation_coefficients(a, b, activation)
    count = spec.onestep_samples
    return {
        "c": float(start),
        "mu": float(mu),
        "sigma2": float(variance),
        "mu_estimate": float(drift.mean()),
        "mu_se": float(drift.std() / math.sqrt(count)),
        "sigma2_estimate": float(square.mean()),
        "sigma2_se": float(square.std() / math.sqrt(count)),
    }


class HayouFig7(HayouExperiment):
    name = "hayou-fig7"
    Spec = HayouFig7Spec
    table = columns(
        "width: n; c0_mean: E c_0; cL_mean: E c_L; cL_sd: sd c_L; near_one: P(|c_L| > 0.99); "
        "max_abs: max |c_l|; meanfield: n = oo"
    )

    full_scale: ClassVar[dict[str, Any]] = {
        "widths": (3, 5, 10, 30),
        "depth": 3000,
        "samples": 10_000,
        "onestep_samples": 10_000_000,
        "onestep_dt": 1e-4,
    }

    smoke_scale: ClassVar[dict[str, Any]] = {
        "widths": (3, 5),
        "depth": 20,
        "samples": 50,
        "paths": 3,
        "onestep_samples": 2000,
    }

    def caption(self, spec: HayouFig7Spec) -> str:
        return (
            f"{sizes_text(spec)}, two "
            f"inputs in dimension d = 2 with correlation rho0 = {spec.rho0:g} and |x|^2/d = "
            f"{spec.q0:g}; {spec.samples} networks per width (exact-in-law Gram sampler, seed "
            f"{spec.seed}). Thin lines: {spec.paths} paths c_l; band: 5-95 % over networks; "
            "dashed: the infinite-width correlation of the McKean-Vlasov kernel ODE. One-step "
            f"check of Eq. 5 at a = {spec.onestep_a}, b = {spec.onestep_b}, dt = "
            f"{spec.onestep_dt:g}, {spec.onestep_samples} antithetic pairs. Parameters lost in "
            "the paper; these are our choices (hayou.md §7 suggests n = 3-10, L = 1000)."
        )

    def compute(self, spec: HayouFig7Spec, progress: Progress | None = None) -> xr.Dataset:
        activation = runnable_activation(spec.activation)
        stride = max(1, spec.depth // 200)
        layers = sorted(set(range(0, spec.depth + 1, stride)) | {spec.depth})
        values = np.empty((len(spec.widths), spec.samples, len(layers)))
        for i, width in enumerate(spec.widths):
            observations = observe_resnet(
                width,
                spec.depth,
                activation,
                samples=spec.samples,
                x=_inputs(spec),
                observables=("correlation",),
                layers=layers,
                seed=derive_seed(spec.seed, CORRELATION_STREAM, width),
                device=spec.device,
            )
            values[i] = observations["correlation"][..., 0].cpu().numpy()
            if progress is not None:
                progress(i + 1, len(spec.widths) + 1)
        times = np.array(layers) / spec.depth
        kernel0 = spec.q0 * np.array([[1.0, spec.rho0], [spec.rho0, 1.0]])
        kernel = meanfield_covariance(activation, kernel0, times)
        meanfield = kernel[:, 0, 1] / np.sqrt(kernel[:, 0, 0] * kernel[:, 1, 1])
        check = one_step(spec)
        quantiles = np.quantile(values, [0.05, 0.5, 0.95], axis=1)  # (3, widths, layers)
        return xr.Dataset(
            {
                "paths": (("width", "path", "layer"), values[:, : spec.paths]),
                "quantiles": (("quantile", "width", "layer"), quantiles),
                "c_first": (("width", "sample"), values[:, :, 0]),
                "c_last": (("width", "sample"), values[:, :, -1]),
                "max_abs": ("width", np.abs(values).max(axis=(1, 2))),
                "meanfield": ("layer", meanfield),
            },
            coords={
                "width": list(spec.widths),
                "layer": layers,
                "time": ("layer", times),
                "quantile": [0.05, 0.5, 0.95],
            },
            attrs={
                **{f"onestep_{key}": value for key, value in check.items()},
            },
        )

    def summarize(self, dataset: xr.Dataset, spec: HayouFig7Spec) -> list[dict[str, Any]]:
        rows = []
        for i, width in enumerate(dataset.width.values):
            first = dataset.c_first.values[i]
            last = dataset.c_last.values[i]
            rows.append(
                {
                    "width": int(width),
                    "samples": int(last.size),
                    "c0_mean": float(first.mean()),
                    "cL_mean": float(last.mean()),
                    "cL_se": float(last.std(ddof=1) / math.sqrt(last.size)),
                    "cL_sd": float(last.std(ddof=1)),
                    "near_one": float(np.mean(np.abs(last) > 0.99)),
                    "max_abs": float(dataset.max_abs.values[i]),
                    "meanfield": float(dataset.meanfield.values[-1]),
                }
            )
        return rows

    def check(self, dataset: xr.Dataset, spec: HayouFig7Spec) -> list[Claim]:
        rows = self.summarize(dataset, spec)
        critical = float(sps.norm.isf(spec.level / len(rows)))
        largest = max(r["max_abs"] for r in rows)
        upper = max(rows, key=lambda r: r["cL_mean"] + critical * r["cL_se"])
        attrs = dataset.attrs
        mu_z = (attrs["onestep_mu_estimate"] - attrs["onestep_mu"]) / attrs["onestep_mu_se"]
        claims = [
            Claim.bound(
                "C15",
                "Correlation paths stay strictly inside (-1, 1) at every layer",
                bound(1.0 - largest, above=0, n=sum(r["samples"] for r in rows)),
                statistic="1 - max |c_l| over all networks, layers and widths",
                note="exact",
            ),
            Claim.bound(
                "C15",
                f"No degeneracy: at L = {spec.depth} the correlation has not drifted to +-1 "
                "(E c_L well below 1 at every width)",
                bound(upper["cL_mean"] + critical * upper["cL_se"], below=0.9, n=upper["samples"]),
                statistic=f"largest upper bound of E c_L (n = {upper['width']})",
                note=f"one-sided z bound, Bonferroni over {len(rows)} widths",
                details={"P(|c_L|>0.99)": {r["width"]: r["near_one"] for r in rows}},
            ),
        ]
        for key, statement, statistic, z in (
            (
                "mu",
                f"One step of Eq. 5 from c = {attrs['onestep_c']:.3f}: the drift equals "
                f"mu_c = {attrs['onestep_mu']:.5f}",
                "antithetic Monte Carlo drift",
                f"; z = {mu_z:.2f}",
            ),
            (
                "sigma2",
                "One step of Eq. 5: the variance rate equals sigma_c^2 = "
                f"{attrs['onestep_sigma2']:.5f}",
                "antithetic Monte Carlo variance rate",
                "",
            ),
        ):
            expected, se = attrs[f"onestep_{key}"], attrs[f"onestep_{key}_se"]
            # the Euler bias of the one-step estimates is O(dt) relative; allowed 10 dt
            allowed = 3 * se + 10 * spec.onestep_dt * abs(expected)
            claims.append(
                Claim.bound(
                    "C15",
                    statement,
                    bound(
                        attrs[f"onestep_{key}_estimate"],
                        equals=expected,
                        tolerance=allowed,
                        n=spec.onestep_samples,
                        fmt=".5f",
                    ),
                    statistic=statistic,
                    note=f"3 SE ({3 * se:.2g}) + 10 dt relative{z}",
                )
            )
        return claims

    def draw(self, dataset: xr.Dataset, spec: HayouFig7Spec) -> Figure:
        rows = self.summarize(dataset, spec)
        times = dataset.time.values
        with panels(len(rows), columns=3, size=(2.7, 2.3), shared_legend=True) as (figure, axes):
            for i, (ax, row) in enumerate(zip(axes, rows)):
                low, median, high = dataset.quantiles.values[:, i]
                labelled = ax is axes[0]
                ax.fill_between(
                    times, low, high, color="#dbe8f5", label="5-95 %" if labelled else None
                )
                ax.plot(
                    times, median, color=POINT_COLOR, lw=1.2, label="median" if labelled else None
                )
                for path in dataset.paths.values[i]:
                    ax.plot(times, path, lw=0.6, alpha=0.8)
                ax.plot(
                    times,
                    dataset.meanfield.values,
                    "k--",
                    lw=1.0,
                    label=r"$n = \infty$" if labelled else None,
                )
                ax.set(ylim=(-1.02, 1.02), xlabel="$t = l / L$")
                ax.set_title(f"$n$ = {row['width']}: $E\\,c_L$ = {row['cL_mean']:.3f}", fontsize=8)
            axes[0].set_ylabel("$c_l(x, x')$")
        return figure
