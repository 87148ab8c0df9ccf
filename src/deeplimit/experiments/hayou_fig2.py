"""Hayou Fig. 2: the graph of the Ornstein-Uhlenbeck activation of Prop. 4 (hayou.md §3.3).

Asking that ``Z = g(X)`` of the width-1 SDE ``dX = |phi(X)| dB`` be an OU process
``dZ = -theta Z dt + sigma dB`` forces ``g(x) = alpha E(beta x)`` (``E = erfi^{-1}``) and

    phi(x) = 2 sigma / (alpha beta sqrt(pi)) exp(E(beta x)^2),   theta = sigma^2 / alpha^2.

The figure draws ``phi`` (and two other ``beta``), its derivative ``(2 sigma/alpha) E(beta x)``,
and its growth ``phi(x) ~ (2 sigma/alpha) |x| sqrt(log(beta |x|))``. The checks are numerical:
``phi`` is positive and even with minimum ``2 sigma/(alpha beta sqrt(pi))`` at 0, the growth
ratio tends to 1, and the two ODEs of the construction, ``g' |phi| = sigma`` and
``(1/2) g'' phi^2 = -theta g``, hold (finite differences of ``g`` computed with
``erfi_inverse``), which is what makes Fig. 3's OU law exact.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np
import torch
import xarray as xr
from matplotlib.figure import Figure

from ..activations import OU
from ..special import erfi_inverse
from .base import Claim, ExperimentSpec, Progress
from .claims import bound
from .hayou_common import LAW_COLOR, HayouExperiment, columns, panels, reference_line
from .spec_fields import AtLeast, Positive

__all__ = ["HayouFig2", "HayouFig2Spec"]

GROWTH_TOLERANCE = 0.05
ITO_TOLERANCE = 1e-6


class HayouFig2Spec(ExperimentSpec):
    alpha: Positive = 1.0
    beta: Positive = 1.0
    sigma: Positive = 1.0
    x_max: Positive = 3.0
    points: AtLeast(11) = 601  # type: ignore[valid-type]
    far: Positive = 1e18


def _phi(spec: HayouFig2Spec, beta: float, x: np.ndarray) -> np.ndarray:
    activation = OU(alpha=spec.alpha, beta=beta, sigma=spec.sigma)
    return activation.phi(torch.from_numpy(x)).numpy()


class HayouFig2(HayouExperiment):
    name = "hayou-fig2"
    Spec = HayouFig2Spec
    table = columns(
        "x: x; phi: phi(x); derivative: phi'(x); "
        "growth_ratio: phi / ((2 sigma/alpha) x sqrt(log beta x))"
    )

    full_scale: ClassVar[dict[str, Any]] = {"points": 4001}

    smoke_scale: ClassVar[dict[str, Any]] = {"points": 61}

    def caption(self, spec: HayouFig2Spec) -> str:
        theta = spec.sigma**2 / spec.alpha**2
        minimum = 2 * spec.sigma / (spec.alpha * spec.beta * math.sqrt(math.pi))
        return (
            f"phi(x) = 2 sigma/(alpha beta sqrt(pi)) exp(E(beta x)^2), E = erfi^-1, with alpha = "
            f"{spec.alpha:g}, beta = {spec.beta:g}, sigma = {spec.sigma:g} (theta = {theta:g}; "
            f"thin lines: beta/2 and 2 beta), on x in [-{spec.x_max:g}, {spec.x_max:g}] "
            f"({spec.points} points); minimum phi(0) = {minimum:.4f}. Middle: phi'(x) = "
            "(2 sigma/alpha) E(beta x) and g(x) = alpha E(beta x). Right: the growth ratio "
            f"phi(x) / ((2 sigma/alpha) |x| sqrt(log beta|x|)) up to |x| = {spec.far:g}. The "
            "paper's (alpha, beta) are lost; alpha = beta = sigma = 1 is our choice. "
            f"Deterministic (no random numbers; seed {spec.seed} unused)."
        )

    def compute(self, spec: HayouFig2Spec, progress: Progress | None = None) -> xr.Dataset:
        activation = OU(alpha=spec.alpha, beta=spec.beta, sigma=spec.sigma)
        x = np.linspace(-spec.x_max, spec.x_max, spec.points)
        tensor = torch.from_numpy(x)
        far = np.geomspace(10.0 / spec.beta, spec.far, 120)
        scale = 2 * spec.sigma / spec.alpha
        growth = _phi(spec, spec.beta, far) / (scale * far * np.sqrt(np.log(spec.beta * far)))
        ito_first, ito_second = _ito_residuals(spec, x)
        if progress is not None:
            progress(1, 1)
        return xr.Dataset(
            {
                "phi": ("x", activation.phi(tensor).numpy()),
                "phi_mirror": ("x", activation.phi(-tensor).numpy()),
                "derivative": ("x", activation.derivative(tensor).numpy()),
                "g": ("x", spec.alpha * erfi_inverse(spec.beta * tensor).numpy()),
                "phi_half_beta": ("x", _phi(spec, spec.beta / 2, x)),
                "phi_double_beta": ("x", _phi(spec, spec.beta * 2, x)),
                "growth_ratio": ("far", growth),
                "ito_first": ("x", ito_first),
                "ito_second": ("x", ito_second),
            },
            coords={"x": x, "far": far},
        )

    def summarize(self, dataset: xr.Dataset, spec: HayouFig2Spec) -> list[dict[str, Any]]:
        rows = []
        x = dataset.x.values
        for target in (0.0, 1.0, 2.0, float(x[-1])):
            i = int(np.argmin(np.abs(x - target)))
            rows.append(
                {
                    "x": float(x[i]),
                    "phi": float(dataset.phi.values[i]),
                    "derivative": float(dataset.derivative.values[i]),
                }
            )
        for far, ratio in zip(dataset.far.values[::40], dataset.growth_ratio.values[::40]):
            rows.append({"x": float(far), "growth_ratio": float(ratio)})
        rows.append(
            {"x": float(dataset.far.values[-1]), "growth_ratio": float(dataset.growth_ratio[-1])}
        )
        return rows

    def check(self, dataset: xr.Dataset, spec: HayouFig2Spec) -> list[Claim]:
        phi = dataset.phi.values
        x = dataset.x.values
        minimum = 2 * spec.sigma / (spec.alpha * spec.beta * math.sqrt(math.pi))
        at = int(np.argmin(phi))
        even = float(np.max(np.abs(phi - dataset.phi_mirror.values) / phi))
        ratio = dataset.growth_ratio.values
        ito = max(
            float(np.max(np.abs(dataset.ito_first.values))),
            float(np.max(np.abs(dataset.ito_second.values))),
        )
        grid = 1e-12 + (x[1] - x[0]) / 2
        return [
            Claim.bound(
                "fig2-positive",
                f"phi > 0 with minimum phi(0) = 2 sigma/(alpha beta sqrt(pi)) = {minimum:.6f}",
                bound(
                    phi[at], equals=minimum, tolerance=1e-12, relative=True, n=phi.size, fmt=".6f"
                ),
                statistic=f"min phi on the grid (at x = {x[at]:.3g})",
                requires={
                    "phi > 0": bound(phi.min(), above=0),
                    "at x = 0": bound(abs(x[at]), at_most=grid),
                },
            ),
            Claim.bound(
                "fig2-even",
                "phi is even: phi(-x) = phi(x)",
                bound(even, at_most=1e-12, n=phi.size),
                statistic="max |phi(x) - phi(-x)| / phi(x)",
                note="rounding",
            ),
            Claim.bound(
                "fig2-growth",
                "phi(x) ~ (2 sigma/alpha) |x| sqrt(log(beta|x|)): the ratio tends to 1",
                bound(ratio[-1], equals=1.0, tolerance=GROWTH_TOLERANCE, n=ratio.size),
                statistic=f"ratio at |x| = {dataset.far.values[-1]:.3g}",
                note="the correction is 1 + O(log log x / log x)",
                requires={
                    "decreasing along the tail": bool(np.all(np.diff(ratio[ratio.size // 2 :]) < 0))
                },
            ),
            Claim.bound(
                "fig2-ito",
                "The construction of Prop. 4 holds: with g = alpha E(beta x), g'|phi| = sigma "
                "and (1/2) g'' phi^2 = -theta g (so g(X) is an OU process)",
                bound(ito, at_most=ITO_TOLERANCE, n=x.size),
                statistic="largest relative residual (central finite differences of g)",
                note="finite-difference error ~ h^2, h = 1e-4 relative",
            ),
        ]

    def draw(self, dataset: xr.Dataset, spec: HayouFig2Spec) -> Figure:
        x = dataset.x.values
        with panels(3, columns=3, size=(2.6, 2.2)) as (figure, (left, middle, right)):
            for values, color, width, label in (
                (dataset.phi, "#1f4e79", 1.8, rf"$\beta$ = {spec.beta:g}"),
                (dataset.phi_half_beta, "#5b9bd5", 0.9, r"$\beta/2$"),
                (dataset.phi_double_beta, "#9dc3e6", 0.9, r"$2\beta$"),
            ):
                left.plot(x, values.values, color=color, lw=width, label=label)
            left.set(xlabel="$x$", ylabel=r"$\phi(x)$", ylim=(0, None))
            middle.plot(x, dataset.derivative.values, color="#c55a11", label=r"$\phi'(x)$")
            middle.plot(x, dataset.g.values, color="#548235", label=r"$g(x) = \alpha E(\beta x)$")
            reference_line(middle, y=0.0, ls="-", lw=0.6)
            middle.set_xlabel("$x$")
            right.plot(dataset.far.values, dataset.growth_ratio.values, color="#1f4e79")
            right.set(xscale="log", xlabel="$|x|$", ylabel=r"$\phi(x) \,/\, \phi_\infty(x)$")
            right.set_title(
                r"$\phi_\infty(x) = (2\sigma/\alpha)|x|\sqrt{\log \beta|x|}$", fontsize=8
            )
            reference_line(right, y=1.0, color=LAW_COLOR, ls="--")
        return figure


def _ito_residuals(spec: HayouFig2Spec, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Relative residuals of ``g'|phi| = sigma`` and ``(1/2) g'' phi^2 = -theta g`` on ``x``,
    with ``g = alpha E(beta x)`` differentiated by central differences (step 1e-4 (1 + |x|))."""
    theta = spec.sigma**2 / spec.alpha**2
    step = 1e-4 * (1 + np.abs(x))

    def g(points: np.ndarray) -> np.ndarray:
        return spec.alpha * erfi_inverse(torch.from_numpy(spec.beta * points)).numpy()

    centre, up, down = g(x), g(x + step), g(x - step)
    first = (up - down) / (2 * step)
    second = (up - 2 * centre + down) / step**2
    phi = _phi(spec, spec.beta, x)
    drift_scale = theta * np.maximum(np.abs(centre), spec.alpha)
    return first * phi / spec.sigma - 1, (0.5 * second * phi**2 + theta * centre) / drift_scale
