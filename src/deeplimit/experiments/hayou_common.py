"""Pieces shared by the Hayou experiments (hayou.md): spec field types with their validation,
activation classes (which paper claims apply to which activation), the log-growth simulation
that Figs. 5 and 13-21 share, and small statistics helpers.

The activation of a figure is a spec field: a name or spec string of the library (``"relu"``,
``"gelu"``, ``"leaky:alpha=1,beta=0.5"``, ``"ou:alpha=2,beta=1,sigma=1"``), an ``Activation``
or, through the Python API, an elementwise callable. It is stored by its spec string, so a
user callable is stored as ``"custom:<name>"``: a label that plots and claims can use but that
cannot be run again from a stored spec.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Annotated, Any

import numpy as np
import scipy.stats as sps
import torch
from pydantic import AfterValidator, PlainSerializer

from ..activations import GELU, Activation, SiLU, SoftplusM, Tanh, parse_activation
from ..initialization.observables import observe_resnet
from ..rng import derive_seed
from .claims import Claim, bound, pvalue_test

__all__ = [
    "ActivationName",
    "LogGrowthRun",
    "activation_kind",
    "depth_ks_claims",
    "ito_claims",
    "limit_claim",
    "log_growth_run",
    "one_sided_critical",
    "runnable_activation",
    "samples_for_width",
    "samples_text",
    "skewness_standard_error",
    "standard_layers",
]

# random streams of the experiments that derive per-width seeds from the spec's seed
LOG_GROWTH_STREAM = 11


# --------------------------------------------------------------------------------------------
# spec field types


def _check_activation(value: Any) -> Any:
    if isinstance(value, str) and value.strip().startswith("custom:"):
        return value.strip()  # a stored user callable: a label only (see the module docstring)
    try:
        activation = parse_activation(value)
    except ValueError as error:
        raise ValueError(f"activation: {error}") from None
    return activation.spec if isinstance(value, str) else activation


def _activation_label(value: Any) -> str:
    return value if isinstance(value, str) else parse_activation(value).spec


ActivationName = Annotated[
    Any, AfterValidator(_check_activation), PlainSerializer(_activation_label, return_type=str)
]


# --------------------------------------------------------------------------------------------
# activations


def runnable_activation(value: Any) -> Activation:
    """The activation to simulate with; a stored ``custom:`` label cannot be run."""
    if isinstance(value, str) and value.startswith("custom:"):
        raise ValueError(
            f"activation {value!r} names a user callable of a stored result; to run it again, "
            "pass the callable itself (Python API: experiment.fast(activation=my_function))"
        )
    return parse_activation(value)


def _slopes(activation: Activation) -> tuple[float, float] | None:
    if not activation.positively_homogeneous:
        return None
    values = activation.phi(torch.tensor([1.0, -1.0], dtype=torch.float64))
    return float(values[0]), float(-values[1])


def activation_kind(value: Any) -> str:
    """Which paper claims apply: ``"relu"`` (Thm 1, collapse, regime change), ``"identity"``
    (Prop. 9), ``"smooth"`` (Lemma 2: tanh, GELU, SiLU, smoothed ReLU), or ``"other"``."""
    if isinstance(value, str) and value.startswith("custom:"):
        return "other"
    activation = parse_activation(value)
    slopes = _slopes(activation)
    if slopes == (1.0, 0.0):
        return "relu"
    if slopes == (1.0, 1.0):
        return "identity"
    if isinstance(activation, Tanh | GELU | SiLU | SoftplusM):
        return "smooth"
    return "other"


# --------------------------------------------------------------------------------------------
# the log-growth simulation of Figs. 5 and 13-21


def standard_layers(depth: int) -> tuple[int, ...]:
    """Layers ``1, 2, 5, 10, 20, 50, ...`` up to ``depth``, and ``depth`` itself."""
    layers = {depth}
    decade = 1
    while decade <= depth:
        layers.update(m * decade for m in (1, 2, 5) if m * decade <= depth)
        decade *= 10
    return tuple(sorted(layers))


@dataclass(frozen=True)
class LogGrowthRun:
    """``samples`` networks of width ``width`` and depth ``depth`` with input ``x = (sqrt q0)``.

    ``log_growth[s, j] = log(||phi(Y_l)|| / ||phi(Y_0)||)`` at ``l = layers[j]``; ``started``:
    ``phi(Y_0) != 0``; ``alive``: started and not collapsed by layer ``depth``; ``drift``,
    ``variation``: the integrated Itô drift and quadratic variation of ``log ||phi(Y)||``
    (``observables.py``); ``active_fraction``: ``(1/L) sum_{l<L} N_l / n``.
    """

    width: int
    depth: int
    layers: tuple[int, ...]
    log_growth: np.ndarray
    started: np.ndarray
    alive: np.ndarray
    drift: np.ndarray
    variation: np.ndarray
    active_fraction: np.ndarray

    @property
    def residual(self) -> np.ndarray:
        """``LG_L - drift`` over alive networks (Thm 1 / C9 for ReLU)."""
        return self.log_growth[self.alive, -1] - self.drift[self.alive]


@lru_cache(maxsize=24)
def _cached_run(
    width: int,
    depth: int,
    activation: Activation,
    samples: int,
    layers: tuple[int, ...],
    q0: float,
    seed: int,
    device: str,
) -> LogGrowthRun:
    observations = observe_resnet(
        width,
        depth,
        activation,
        samples=samples,
        x=[math.sqrt(q0)],
        observables=("log_growth", "collapse", "quasi_gbm", "active"),
        layers=list(layers),
        seed=derive_seed(seed, LOG_GROWTH_STREAM, width),
        device=device,
    )

    def array(name: str) -> np.ndarray:
        values = observations[name].detach().cpu().numpy()
        values.setflags(write=False)  # shared between experiments through the cache
        return values

    collapse = array("collapse_layer")
    started = collapse != 0
    alive = collapse < 0
    for flags in (started, alive):
        flags.setflags(write=False)
    return LogGrowthRun(
        width=width,
        depth=depth,
        layers=layers,
        log_growth=array("log_growth").reshape(samples, len(layers)),
        started=started,
        alive=alive,
        drift=array("drift"),
        variation=array("quadratic_variation"),
        active_fraction=array("active_fraction"),
    )


def log_growth_run(
    width: int,
    depth: int,
    activation: Activation,
    *,
    samples: int,
    layers: tuple[int, ...] = (),
    q0: float = 1.0,
    seed: int = 0,
    device: str = "cpu",
) -> LogGrowthRun:
    """The log-growth of ``samples`` random ResNets (Eq. 1), recorded at ``standard_layers``
    and ``layers``. Runs with equal arguments are computed once per process and shared
    (Figs. 5 and 13-21 look at the same networks); the seed of width ``n`` is derived from
    ``seed`` and ``n``."""
    recorded = tuple(sorted(set(standard_layers(depth)) | set(layers)))
    return _cached_run(width, depth, activation, samples, recorded, float(q0), seed, device)


def samples_for_width(width: int, samples: int, small_width_limit: int, wide_samples: int) -> int:
    """Networks for width ``n``: ``samples`` up to ``small_width_limit``, then
    ``samples * limit / n`` (the same work per width: the log-growth's sd is ~ 1/sqrt(n), so
    its mean keeps the same relative precision), and never fewer than ``wide_samples``."""
    if width <= small_width_limit:
        return samples
    return max(wide_samples, samples * small_width_limit // width)


def samples_text(spec: Any) -> str:
    """``"100000 networks per width n <= 8, then 50000 (n = 16), ..."`` for a caption."""
    wide = [n for n in spec.widths if n > spec.small_width_limit]
    text = f"{spec.samples} networks per width n <= {spec.small_width_limit}"
    if wide:
        counts = ", ".join(f"{spec.samples_for(n)} (n = {n})" for n in wide)
        text += f", then {counts}"
    return text


# --------------------------------------------------------------------------------------------
# statistics helpers


def one_sided_critical(level: float, members: int = 1) -> float:
    """``z`` with ``P(N(0,1) > z) = level / members`` (one-sided, Bonferroni)."""
    return float(sps.norm.isf(level / members))


def skewness_standard_error(n: int) -> float:
    """Standard error of the sample skewness of ``n`` Gaussian values."""
    return math.sqrt(6.0 * n * (n - 1) / ((n - 2) * (n + 1) * (n + 3)))


def moments(values: np.ndarray) -> dict[str, float]:
    """Count, mean, standard deviation, standard error, skewness (and its standard error)."""
    n = int(values.size)
    mean = float(values.mean())
    sd = float(values.std(ddof=1))
    return {
        "n": n,
        "mean": mean,
        "sd": sd,
        "se": sd / math.sqrt(n),
        "skew": float(sps.skew(values)),
        "skew_se": skewness_standard_error(n),
    }


def histogram(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Density histogram of ``values`` on ``edges`` (mass outside counted in no bin)."""
    counts, _ = np.histogram(values, bins=edges)
    return counts / (values.size * np.diff(edges))


# --------------------------------------------------------------------------------------------
# claims shared by the figures


def depth_ks_claims(
    claim_id: str,
    prefix: str,
    rows: list[dict[str, Any]],
    *,
    level: float,
    law: str,
    not_law: str,
    n_key: str = "n",
    resolution: bool = True,
) -> list[Claim]:
    """The KS claims of a depth sweep (rows with ``depth``, ``ks_pvalue``, ``ks_statistic``):
    at the largest depth the law holds ("At L = ..., {law}"); at the smallest it is visibly
    not reached yet ("At L = ... {not_law}", a rejection)."""
    small, large = rows[0], rows[-1]

    def ks(row: dict[str, Any]) -> Any:
        return pvalue_test(
            row["ks_pvalue"], level=level, n=row[n_key], test="KS", statistic=row["ks_statistic"]
        )

    note = f"resolution ~{1.95 / math.sqrt(large[n_key]):.4f}" if resolution else ""
    return [
        Claim.from_test(claim_id, f"At L = {large['depth']}, {law}", ks(large), note=note),
        Claim.from_test(
            f"{prefix}-small-depth", f"At L = {small['depth']} {not_law}", ks(small), reject=True
        ),
    ]


def ito_claims(prefix: str, level: float, rows: list[dict[str, Any]]) -> list[Claim]:
    """Any activation: the Itô residual R = LG_L - int mu is a martingale with quadratic
    variation int rho/n, so E R = 0 and Var R = E int rho / n (up to O(1/L) Euler bias)."""
    critical = float(sps.norm.isf(level / (2 * len(rows))))
    worst = max(rows, key=lambda r: abs(r["residual_mean"]) / r["residual_se"])
    z = worst["residual_mean"] / worst["residual_se"]
    ratio_row = max(rows, key=lambda r: abs(r["variance_ratio"] - 1) / math.sqrt(2 / r["alive"]))
    ratio_se = math.sqrt(2 / ratio_row["alive"])
    return [
        Claim.bound(
            f"{prefix}-ito",
            "Itô's formula for log||phi(Y)||: the residual R = LG_L - int mu has mean 0 at "
            "every width",
            bound(abs(z), below=critical, n=worst["alive"], fmt=".2f"),
            statistic=f"largest |z| of mean R (at n = {worst['width']})",
            note=f"two-sided z, Bonferroni over {len(rows)} widths at level {level:g}",
        ),
        Claim.bound(
            f"{prefix}-ito",
            "Var R equals the mean quadratic variation E int rho/n at every width",
            bound(
                ratio_row["variance_ratio"],
                equals=1.0,
                tolerance=critical * ratio_se + 0.02,
                n=ratio_row["alive"],
            ),
            statistic=f"Var R / E QV farthest from 1 (at n = {ratio_row['width']})",
            note=f"{critical:.2f} x {ratio_se:.3f} (sampling) + 0.02 (Euler bias O(1/L))",
            requires={
                f"n = {r['width']}": bound(
                    r["variance_ratio"],
                    equals=1.0,
                    tolerance=critical * math.sqrt(2 / r["alive"]) + 0.02,
                )
                for r in rows
            },
        ),
    ]


def limit_claim(claim_id: str, spec: Any, row: dict[str, Any], limit: float) -> Claim:
    """Thm 2: at large width E LG_1 approaches the mean-field limit (1/4 for ReLU); the
    finite-width correction is O(1/n) (-1/n for ReLU), allowed 3/n."""
    width = row["width"]
    deviation = abs(row["mean"] - limit)
    return Claim.bound(
        claim_id,
        f"At the largest width n = {width}, E LG_L is near its infinite-width limit "
        f"{limit:.4f} (Thm 2; {spec.activation})",
        bound(deviation, at_most=3 / width + 3 * row["se"], n=row["alive"], fmt=".4f"),
        statistic="|mean - limit|",
        note="3/n + 3 SE: finite-width correction O(1/n) (ReLU: -1/n) plus sampling",
    )
