"""Hayou's claims that no figure shows (hayou.md §8): C1 (Lemma 6), C2 (martingale), C3
(second moment), C11 (identity activation at any width) and C16 (Lemma 2: smooth activations
never collapse).

* C1: for a fixed ``y`` and ``W`` with iid ``N(0, 1/n)`` entries, ``W phi(y)`` has iid
  ``N(0, ||phi(y)||^2/n)`` coordinates, so ``n ||W phi(y)||^2 / ||phi(y)||^2 ~ chi^2_n``. We
  test it on explicit matrices, and the library's exact-in-law sampler (built on it) against
  its explicit-weights sampler over a whole network (two-sample KS per coordinate).
* C2: ``E[Y_l | Y_{l-1}] = Y_{l-1}``, so ``E[Y_L - Y_0] = 0`` at any depth, for any activation.
* C3: ``E[||Y_l||^2 | Y_{l-1}] = ||Y_{l-1}||^2 + ||phi(Y_{l-1})||^2 / L``; for the identity,
  ``E||Y_L||^2 = (1 + 1/L)^L ||Y_0||^2``.
* C11 (Prop. 9): for the identity, ``log(||X_1|| / ||X_0||) ~ N((n-2)/(2n), 1/n)`` at any width.
* C16 (Lemma 2): tanh, GELU and SiLU never collapse: ``min_l ||phi(Y_l)|| > 0`` on every path.
"""

from __future__ import annotations

import itertools
import math
from typing import Annotated, Any, ClassVar

import numpy as np
import scipy.stats as sps
import torch
import xarray as xr
from matplotlib.figure import Figure
from pydantic import AfterValidator

from ..activations import parse_activation
from ..initialization.laws import identity_log_norm_law
from ..initialization.network import sample_resnet
from ..initialization.observables import observe_resnet
from ..rng import derive_seed
from ..stats import ks_test, mean_zscore, two_sample_test
from .base import Claim, ExperimentSpec, Progress
from .claims import bound, pvalue_test
from .hayou_common import (
    COLORS,
    ActivationName,
    HayouExperiment,
    activation_kind,
    columns,
    density_panel,
    histogram,
    panels,
    reference_line,
    runnable_activation,
)
from .spec_fields import AtLeast, Level, PositiveInt, Samples, Widths

__all__ = ["HayouClaims", "HayouClaimsSpec"]

CLAIMS_STREAM = 19


def _activations(value: tuple[str, ...]) -> tuple[str, ...]:
    if not value:
        raise ValueError("activation lists must name at least one activation")
    return tuple(parse_activation(v).spec for v in value)


Activations = Annotated[tuple[str, ...], AfterValidator(_activations)]


class HayouClaimsSpec(ExperimentSpec):
    y0: tuple[float, ...] = (1.0, -0.5, 0.3, 0.8, -1.2)
    activation: ActivationName = "relu"
    lemma6_samples: Samples = 20_000
    chain_depth: PositiveInt = 50
    chain_samples: Samples = 20_000
    martingale_activations: Activations = ("relu", "tanh", "gelu")
    identity_widths: Widths = (1, 2, 3, 8)
    identity_depth: PositiveInt = 200
    identity_samples: Samples = 20_000
    smooth_activations: Activations = ("tanh", "gelu", "silu")
    smooth_width: PositiveInt = 3
    smooth_depth: PositiveInt = 100
    smooth_samples: AtLeast(10) = 5_000  # type: ignore[valid-type]
    level: Level = 1e-3


def _seed(spec: HayouClaimsSpec, *key: int) -> int:
    return derive_seed(spec.seed, CLAIMS_STREAM, *key)


def _lemma6(spec: HayouClaimsSpec) -> dict[str, Any]:
    """Explicit ``W``: chi^2 of the scaled squared norm, coordinates, their correlations."""
    activation = runnable_activation(spec.activation)
    y = torch.tensor(spec.y0, dtype=torch.float64)
    n = y.numel()
    phi = activation.phi(y)
    norm = float(phi.norm())
    if norm == 0:
        raise ValueError(f"phi(y0) = 0 for y0 = {spec.y0}: Lemma 6 needs phi(y0) != 0")
    generator = torch.Generator().manual_seed(_seed(spec, 1))
    weights = torch.randn(spec.lemma6_samples, n, n, generator=generator, dtype=torch.float64)
    product = (weights / math.sqrt(n)) @ phi  # (M, n) draws of W phi(y)
    scaled = n * product.pow(2).sum(-1).numpy() / norm**2
    standardized = (product * math.sqrt(n) / norm).numpy()
    coordinate_tests = [ks_test(standardized[:, i], sps.norm()) for i in range(n)]
    correlations = np.corrcoef(standardized, rowvar=False)
    # Fisher's z of a zero correlation is N(0, 1/(M - 3))
    pairs = list(itertools.combinations(range(n), 2))
    z = [math.atanh(correlations[a, b]) * math.sqrt(spec.lemma6_samples - 3) for a, b in pairs]
    correlation_pvalues = [2 * sps.norm.sf(abs(v)) for v in z]
    return {
        "chi2": scaled,
        "chi2_test": ks_test(scaled, sps.chi2(n), level=spec.level),
        "coordinate_tests": coordinate_tests,
        "correlation_pvalues": correlation_pvalues,
    }


class HayouClaims(HayouExperiment):
    name = "hayou-claims"
    Spec = HayouClaimsSpec
    table = columns("check: check; statistic: statistic; value: value; n: n")

    full_scale: ClassVar[dict[str, Any]] = {
        "lemma6_samples": 200_000,
        "chain_samples": 200_000,
        "chain_depth": 200,
        "identity_depth": 1000,
        "identity_samples": 200_000,
        "identity_widths": (1, 2, 3, 4, 8, 16, 64),
        "smooth_samples": 50_000,
        "smooth_depth": 1000,
    }

    smoke_scale: ClassVar[dict[str, Any]] = {
        "lemma6_samples": 500,
        "chain_depth": 10,
        "chain_samples": 500,
        "identity_widths": (1, 3),
        "identity_depth": 20,
        "identity_samples": 500,
        "smooth_depth": 10,
        "smooth_samples": 100,
    }

    def caption(self, spec: HayouClaimsSpec) -> str:
        n = len(spec.y0)
        return (
            f"C1 (Lemma 6): W phi(y0) for y0 = {spec.y0} (width {n}), {spec.activation}, "
            f"{spec.lemma6_samples} explicit Gaussian matrices: n||W phi||^2/||phi||^2 against "
            f"chi^2_{n}; the exact-in-law sampler against explicit weights at depth "
            f"{spec.chain_depth}, {spec.chain_samples} networks each. C2/C3: {spec.chain_samples}"
            f" networks of depth {spec.chain_depth} from Y_0 = y0, activations "
            f"{', '.join(spec.martingale_activations)}: mean of Y_L - Y_0 per coordinate (3 SE "
            f"bars). C11: identity activation, widths {spec.identity_widths}, depth "
            f"{spec.identity_depth}, {spec.identity_samples} networks, x = (1): "
            "log(||Y_L||/||Y_0||) against N((n-2)/(2n), 1/n). C16: min over layers of "
            "||phi(Y_l)|| for "
            f"{', '.join(spec.smooth_activations)}, width {spec.smooth_width}, depth "
            f"{spec.smooth_depth}, {spec.smooth_samples} networks, x = (1, 0.5); seed {spec.seed}."
        )

    def compute(self, spec: HayouClaimsSpec, progress: Progress | None = None) -> xr.Dataset:
        n = len(spec.y0)
        activation = runnable_activation(spec.activation)
        steps = 4 + len(spec.martingale_activations)
        lemma = _lemma6(spec)
        report = _Steps(progress, steps)
        # C1 on the library: exact-in-law and explicit-weight networks, coordinates of Y_L
        law, weights = (
            sample_resnet(
                n,
                spec.chain_depth,
                activation,
                samples=spec.chain_samples,
                y0=list(spec.y0),
                method=method,
                seed=_seed(spec, 2, k),
            ).numpy()
            for k, method in enumerate(("law", "weights"))
        )
        sampler_tests = [two_sample_test(law[:, i], weights[:, i]) for i in range(n)]
        report()
        # C2 and C3: martingale and second moment, every activation; the first step too
        y0 = np.array(spec.y0)
        drift_mean, drift_se, martingale_p, second_p = [], [], [], []
        for k, name in enumerate(spec.martingale_activations):
            act = parse_activation(name)
            paths = sample_resnet(
                n,
                spec.chain_depth,
                act,
                samples=spec.chain_samples,
                y0=list(spec.y0),
                record=[1, spec.chain_depth],
                seed=_seed(spec, 3, k),
            ).numpy()
            increments = paths[:, 1] - y0
            test = mean_zscore(increments, np.zeros(n))
            drift_mean.append(test.mean)
            drift_se.append(test.standard_error)
            martingale_p.append(test.family_pvalue)
            phi0 = act.phi(torch.from_numpy(y0)).numpy()
            expected = float(y0 @ y0 + phi0 @ phi0 / spec.chain_depth)
            second_p.append(mean_zscore((paths[:, 0] ** 2).sum(-1), expected).pvalue)
            report()
        identity = sample_resnet(
            n,
            spec.chain_depth,
            "linear",
            samples=spec.chain_samples,
            y0=list(spec.y0),
            seed=_seed(spec, 4),
        ).numpy()
        identity_square = (identity**2).sum(-1)
        identity_expected = (1 + 1 / spec.chain_depth) ** spec.chain_depth * float(y0 @ y0)
        report()
        # C11: identity at several widths
        growth = np.empty((len(spec.identity_widths), spec.identity_samples))
        for i, width in enumerate(spec.identity_widths):
            growth[i] = observe_resnet(
                width,
                spec.identity_depth,
                "linear",
                samples=spec.identity_samples,
                x=[1.0],
                observables=("log_growth",),
                seed=_seed(spec, 5, width),
            )["log_growth"].numpy()[:, -1]
        report()
        # C16: smooth activations never collapse
        minimum = np.empty((len(spec.smooth_activations), spec.smooth_samples))
        for i, name in enumerate(spec.smooth_activations):
            observations = observe_resnet(
                spec.smooth_width,
                spec.smooth_depth,
                name,
                samples=spec.smooth_samples,
                x=[1.0, 0.5],
                observables=("norm", "collapse"),
                layers="all",
                seed=_seed(spec, 6, i),
            )
            norms = observations["phi_norm"].numpy().min(axis=1)
            collapsed = observations["collapse_layer"].numpy() >= 0
            minimum[i] = np.where(collapsed, 0.0, norms)
        report()
        return xr.Dataset(
            {
                "chi2": ("lemma_sample", lemma["chi2"]),
                "chi2_ks_statistic": lemma["chi2_test"].statistic,
                "chi2_ks_pvalue": lemma["chi2_test"].pvalue,
                "coordinate_ks_pvalue": (
                    "coordinate",
                    [t.pvalue for t in lemma["coordinate_tests"]],
                ),
                "correlation_pvalue": ("pair", lemma["correlation_pvalues"]),
                "sampler_pvalue": ("coordinate", [t.pvalue for t in sampler_tests]),
                "drift_mean": (("activation", "coordinate"), np.array(drift_mean)),
                "drift_se": (("activation", "coordinate"), np.array(drift_se)),
                "martingale_pvalue": ("activation", martingale_p),
                "second_moment_pvalue": ("activation", second_p),
                "identity_square_mean": float(identity_square.mean()),
                "identity_square_se": float(
                    identity_square.std(ddof=1) / math.sqrt(identity_square.size)
                ),
                "identity_square_expected": identity_expected,
                "identity_growth": (("identity_width", "identity_sample"), growth),
                "smooth_minimum": (("smooth", "smooth_sample"), minimum),
            },
            coords={
                "activation": list(spec.martingale_activations),
                "coordinate": list(range(n)),
                "identity_width": list(spec.identity_widths),
                "smooth": list(spec.smooth_activations),
            },
        )

    def summarize(self, dataset: xr.Dataset, spec: HayouClaimsSpec) -> list[dict[str, Any]]:
        rows = [
            {
                "check": "C1 chi^2",
                "statistic": "KS p",
                "value": float(dataset.chi2_ks_pvalue),
                "n": spec.lemma6_samples,
            },
            {
                "check": "C1 sampler law vs weights",
                "statistic": "min two-sample KS p",
                "value": float(dataset.sampler_pvalue.min()),
                "n": spec.chain_samples,
            },
        ]
        for name in spec.martingale_activations:
            rows.append(
                {
                    "check": f"C2 martingale {name}",
                    "statistic": "Bonferroni z p",
                    "value": float(dataset.martingale_pvalue.sel(activation=name)),
                    "n": spec.chain_samples,
                }
            )
            rows.append(
                {
                    "check": f"C3 one step {name}",
                    "statistic": "z p",
                    "value": float(dataset.second_moment_pvalue.sel(activation=name)),
                    "n": spec.chain_samples,
                }
            )
        for width in spec.identity_widths:
            values = dataset.identity_growth.sel(identity_width=width).values
            rows.append(
                {
                    "check": f"C11 identity n = {width}",
                    "statistic": "KS p",
                    "value": ks_test(values, identity_log_norm_law(int(width))).pvalue,
                    "n": int(values.size),
                }
            )
        for name in spec.smooth_activations:
            values = dataset.smooth_minimum.sel(smooth=name).values
            rows.append(
                {
                    "check": f"C16 {name}",
                    "statistic": "min_l ||phi(Y_l)||",
                    "value": float(values.min()),
                    "n": int(values.size),
                }
            )
        return rows

    def check(self, dataset: xr.Dataset, spec: HayouClaimsSpec) -> list[Claim]:
        level = spec.level
        n = len(spec.y0)
        claims = [
            Claim.from_test(
                "C1",
                f"Lemma 6: n ||W phi(y)||^2 / ||phi(y)||^2 ~ chi^2_{n} ({spec.activation})",
                pvalue_test(
                    float(dataset.chi2_ks_pvalue),
                    level=level,
                    n=spec.lemma6_samples,
                    test="KS",
                    statistic=float(dataset.chi2_ks_statistic),
                ),
            ),
            _family(
                "C1",
                "Lemma 6: the coordinates of W phi(y) are N(0, ||phi||^2/n) and uncorrelated",
                [
                    *map(float, dataset.coordinate_ks_pvalue.values),
                    *map(float, dataset.correlation_pvalue.values),
                ],
                level,
                "smallest p (KS per coordinate, Fisher z per pair)",
                spec.lemma6_samples,
            ),
            _family(
                "C1",
                f"The exact-in-law sampler agrees with explicit weights at depth "
                f"{spec.chain_depth} (every coordinate of Y_L)",
                list(map(float, dataset.sampler_pvalue.values)),
                level,
                "smallest two-sample KS p",
                spec.chain_samples,
            ),
            _family(
                "C2",
                "Martingale: E[Y_L - Y_0 | Y_0] = 0 for " + ", ".join(spec.martingale_activations),
                list(map(float, dataset.martingale_pvalue.values)),
                level,
                "smallest z-test p (Bonferroni over coordinates inside)",
                spec.chain_samples,
            ),
            _family(
                "C3",
                "E[||Y_1||^2 | Y_0] = ||Y_0||^2 + ||phi(Y_0)||^2 / L for "
                + ", ".join(spec.martingale_activations),
                list(map(float, dataset.second_moment_pvalue.values)),
                level,
                "smallest z-test p",
                spec.chain_samples,
            ),
        ]
        mean = float(dataset.identity_square_mean)
        se = float(dataset.identity_square_se)
        expected = float(dataset.identity_square_expected)
        p = float(2 * sps.norm.sf(abs(mean - expected) / se))
        claims.append(
            Claim.from_test(
                "C3",
                f"Identity: E||Y_L||^2 = (1 + 1/L)^L ||Y_0||^2 = {expected:.4f} (L = "
                f"{spec.chain_depth})",
                pvalue_test(p, level=level, n=spec.chain_samples, test="z-test"),
                note=f"mean {mean:.4f} ± {se:.4f}",
            )
        )
        rows = self.summarize(dataset, spec)
        identity = [r for r in rows if r["check"].startswith("C11")]
        claims.append(
            _family(
                "C11",
                "Identity (Prop. 9): log(||Y_L||/||Y_0||) ~ N((n-2)/(2n), 1/n) for n in "
                + ", ".join(map(str, spec.identity_widths)),
                [r["value"] for r in identity],
                level,
                "smallest KS p",
                spec.identity_samples,
            )
        )
        smooth = [r for r in rows if r["check"].startswith("C16")]
        smallest = min(r["value"] for r in smooth)
        kinds = {name: activation_kind(name) for name in spec.smooth_activations}
        claims.append(
            Claim.bound(
                "C16",
                "Lemma 2: smooth activations never collapse, min_l ||phi(Y_l)|| > 0 on every "
                f"path ({', '.join(spec.smooth_activations)})",
                bound(smallest, above=0, n=sum(r["n"] for r in smooth)),
                statistic="smallest min_l ||phi(Y_l)|| over all paths",
                note="exact (a zero has probability 0)",
                details={"kinds": kinds},
            )
        )
        return claims

    def draw(self, dataset: xr.Dataset, spec: HayouClaimsSpec) -> Figure:
        n = len(spec.y0)
        with panels(4, columns=4, size=(2.5, 2.2)) as (figure, (lemma, drift, identity, smooth)):
            values = dataset.chi2.values
            density_panel(
                lemma,
                values=values,
                span=(0.0, float(np.quantile(values, 0.995))),
                bins=70,
                law=lambda x: sps.chi2.pdf(x, n),
                law_label=rf"$\chi^2_{{{n}}}$",
                title="C1: Lemma 6",
                xlabel=r"$n\,\|W\phi(y)\|^2 / \|\phi(y)\|^2$",
            )
            for k, (color, name) in enumerate(zip(COLORS, spec.martingale_activations)):
                drift.errorbar(
                    np.arange(n) + 0.2 * (k - 1),
                    dataset.drift_mean.sel(activation=name).values,
                    yerr=3 * dataset.drift_se.sel(activation=name).values,
                    fmt="o",
                    ms=3,
                    color=color,
                    label=name,
                )
            drift.set_xlabel("coordinate")
            drift.set_title(r"C2: $E[Y_L - Y_0]$ ($\pm 3$ SE)", fontsize=8)
            reference_line(drift, y=0.0, ls="-")
            low, high = drift.get_ylim()
            drift.set_ylim(low, high + 0.45 * (high - low))  # room for the legend
            for color, width in zip(COLORS, spec.identity_widths):
                values = dataset.identity_growth.sel(identity_width=width).values
                edges = np.linspace(values.min(), values.max(), 61)
                identity.stairs(histogram(values, edges), edges, color=color)
                grid = np.linspace(values.min(), values.max(), 300)
                law = identity_log_norm_law(int(width)).pdf(grid)
                identity.plot(grid, law, color=color, ls="--", lw=0.9, label=f"$n$ = {width}")
            identity.set_ylim(0, 1.4 * identity.dataLim.y1)
            identity.set_title(r"C11: identity, $\mathcal{N}((n-2)/2n,\, 1/n)$", fontsize=8)
            identity.set_xlabel(r"$\log(\|Y_L\| / \|Y_0\|)$")
            for color, name in zip(COLORS, spec.smooth_activations):
                values = dataset.smooth_minimum.sel(smooth=name).values
                values = np.log10(values[values > 0])
                edges = np.linspace(values.min(), values.max(), 51)
                smooth.stairs(histogram(values, edges), edges, color=color, label=name)
            smooth.set_ylim(0, 1.4 * smooth.dataLim.y1)
            smooth.set_title(r"C16: $\min_l \|\phi(Y_l)\| > 0$", fontsize=8)
            smooth.set_xlabel(r"$\log_{10} \min_l \|\phi(Y_l)\|$")
        return figure


class _Steps:
    def __init__(self, progress: Progress | None, total: int) -> None:
        self.progress, self.total, self.done = progress, total, 0

    def __call__(self) -> None:
        self.done += 1
        if self.progress is not None:
            self.progress(self.done, self.total)


def _family(
    claim_id: str, statement: str, pvalues: list[float], level: float, label: str, n: int
) -> Claim:
    """A family of tests passes when every p-value is >= level / m (Bonferroni)."""
    return Claim.family(
        claim_id,
        statement,
        {f"#{i}": pvalue_test(p, level=level, n=n) for i, p in enumerate(pvalues)},
        level=level,
        statistic=label,
    )
