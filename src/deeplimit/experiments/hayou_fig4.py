"""Hayou Fig. 4: the probability of network collapse against depth, for several widths.

A ReLU network *collapses* at layer ``l`` when every pre-activation is ``<= 0``: then
``phi(Y_l) = 0`` and every later layer is the identity (Lemma 1). In the infinite-depth limit
collapse has probability 0 given ``phi(X_0) != 0`` (Lemma 3), while ``P(phi(X_0) = 0) =
2^-n``. At finite depth it has positive probability that decreases with the depth and with the
width (C8). For width 1 it is exactly ``1 - (1 - Phi(-sqrt L))^L`` (C6), drawn beside the
Monte Carlo points. We estimate ``P(collapse by layer L | phi(Y_0) != 0)`` for networks of depth
``L`` (the branch scale is ``1/sqrt(L)``, so each depth is its own set of networks).

Other activations: smooth ones (tanh, GELU, SiLU) never collapse (Lemma 2, C16); for the rest
the figure only shows the measured frequencies.
"""

from __future__ import annotations

import itertools
import math
from typing import Any, ClassVar

import numpy as np
import scipy.stats as sps
import xarray as xr
from matplotlib.figure import Figure

from ..initialization.laws import relu_width1_collapse_probability
from ..initialization.observables import observe_resnet
from ..rng import derive_seed
from ..stats import binomial_interval, binomial_test
from .base import Claim, ExperimentSpec, Progress
from .claims import bound, pvalue_test
from .hayou_common import (
    COLORS,
    ActivationName,
    HayouExperiment,
    activation_kind,
    columns,
    measured_panel,
    panels,
    runnable_activation,
)
from .spec_fields import Depths, Level, Positive, Samples, Widths

__all__ = ["HayouFig4", "HayouFig4Spec"]

COLLAPSE_STREAM = 12


class HayouFig4Spec(ExperimentSpec):
    widths: Widths = (1, 2, 3, 4, 6, 8)
    depths: Depths = (1, 2, 3, 5, 7, 10, 15, 20, 30, 50)
    samples: Samples = 100_000
    activation: ActivationName = "relu"
    q0: Positive = 1.0
    level: Level = 1e-3


def _increase_pvalue(before: tuple[int, int], after: tuple[int, int]) -> float:
    """One-sided Fisher exact p-value of ``p_after > p_before`` from (events, trials)."""
    (k1, n1), (k2, n2) = before, after
    if k2 == 0:
        return 1.0
    table = [[k2, n2 - k2], [k1, n1 - k1]]
    return float(sps.fisher_exact(table, alternative="greater").pvalue)


class HayouFig4(HayouExperiment):
    name = "hayou-fig4"
    Spec = HayouFig4Spec
    table = columns(
        "width: n; depth: L; started: phi(Y_0) != 0; collapsed: collapsed; "
        "probability: P(collapse); high: 95% upper; exact: exact (n = 1)"
    )

    full_scale: ClassVar[dict[str, Any]] = {
        "widths": (1, 2, 3, 4, 5, 6, 8, 16),
        "depths": (1, 2, 3, 5, 7, 10, 15, 20, 30, 50, 100),
        "samples": 1_000_000,
    }

    smoke_scale: ClassVar[dict[str, Any]] = {"widths": (1, 2), "depths": (1, 2, 5), "samples": 500}

    def caption(self, spec: HayouFig4Spec) -> str:
        widths = ", ".join(str(n) for n in spec.widths)
        depths = ", ".join(str(d) for d in spec.depths)
        kind = activation_kind(spec.activation)
        note = {
            "relu": "Width 1: the exact 1 - (1 - Phi(-sqrt L))^L (line). Points with no "
            "collapse are drawn at their 95% upper bound (open triangles).",
            "smooth": f"{spec.activation} satisfies Lemma 2: no collapse is expected (C16).",
        }.get(kind, f"No paper claim concerns collapse for {spec.activation}.")
        return (
            f"Activation {spec.activation}, widths n in {{{widths}}}, depths L in {{{depths}}}, "
            f"{spec.samples} networks per (n, L) with input x = (sqrt q0), q0 = {spec.q0:g} "
            f"(d = 1; exact-in-law sampler, seed {spec.seed}, derived per (n, L)). "
            "P(collapse by layer L | phi(Y_0) != 0): fraction of networks whose "
            "post-activations all vanish at some layer l <= L, with 95% Wilson intervals. "
            f"Right: P(phi(Y_0) = 0) against 2^-n. {note} The paper's grid is lost; "
            "these are our choices (hayou.md §7)."
        )

    def compute(self, spec: HayouFig4Spec, progress: Progress | None = None) -> xr.Dataset:
        activation = runnable_activation(spec.activation)
        shape = (len(spec.widths), len(spec.depths))
        started = np.zeros(shape, dtype=np.int64)
        collapsed = np.zeros(shape, dtype=np.int64)
        total = spec.samples * sum(spec.depths) * len(spec.widths)
        done = 0
        for (i, width), (j, depth) in itertools.product(
            enumerate(spec.widths), enumerate(spec.depths)
        ):
            first = observe_resnet(
                width,
                depth,
                activation,
                samples=spec.samples,
                x=[math.sqrt(spec.q0)],
                observables=("collapse",),
                seed=derive_seed(spec.seed, COLLAPSE_STREAM, width, depth),
                device=spec.device,
            )["collapse_layer"].numpy()
            started[i, j] = int(np.sum(first != 0))
            collapsed[i, j] = int(np.sum(first > 0))
            done += spec.samples * depth
            if progress is not None:
                progress(done, total)
        exact = (
            relu_width1_collapse_probability(np.array(spec.depths))
            if activation_kind(spec.activation) == "relu"
            else np.full(len(spec.depths), math.nan)
        )
        return xr.Dataset(
            {
                "started": (("width", "depth"), started),
                "collapsed": (("width", "depth"), collapsed),
                "exact_width1": ("depth", np.asarray(exact, dtype=float)),
            },
            coords={"width": list(spec.widths), "depth": list(spec.depths)},
            attrs={
                "samples": spec.samples,
            },
        )

    def summarize(self, dataset: xr.Dataset, spec: HayouFig4Spec) -> list[dict[str, Any]]:
        rows = []
        samples = int(dataset.attrs["samples"])
        for width, depth in itertools.product(dataset.width.values, dataset.depth.values):
            started = int(dataset.started.sel(width=width, depth=depth))
            collapsed = int(dataset.collapsed.sel(width=width, depth=depth))
            interval = binomial_interval(collapsed, max(started, 1), level=0.95)
            exact = float(dataset.exact_width1.sel(depth=depth)) if width == 1 else math.nan
            rows.append(
                {
                    "width": int(width),
                    "depth": int(depth),
                    "samples": samples,
                    "started": started,
                    "collapsed": collapsed,
                    "probability": collapsed / max(started, 1),
                    "low": float(interval.low),
                    "high": float(interval.high),
                    "exact": exact,
                }
            )
        return rows

    def check(self, dataset: xr.Dataset, spec: HayouFig4Spec) -> list[Claim]:
        rows = self.summarize(dataset, spec)
        kind = activation_kind(spec.activation)
        if kind == "smooth":
            collapsed = sum(r["collapsed"] for r in rows)
            dead = sum(r["samples"] - r["started"] for r in rows)
            return [
                Claim.bound(
                    "C16",
                    f"{spec.activation} (Lemma 2): no network collapses, phi(Y_l) != 0 at "
                    "every layer",
                    bound(float(collapsed + dead), equals=0, n=sum(r["samples"] for r in rows)),
                    statistic="networks with phi(Y_l) = 0 at some layer",
                    note="a zero has probability 0",
                )
            ]
        if kind != "relu":
            return []
        return _relu_claims(spec, rows)

    def draw(self, dataset: xr.Dataset, spec: HayouFig4Spec) -> Figure:
        rows = self.summarize(dataset, spec)
        floor = 1.0 / (10 * spec.samples)
        label = r"$P(\mathrm{collapse\ by}\ L \mid \phi(Y_0) \neq 0)$"
        with panels(3, columns=3, size=(2.7, 2.4)) as (figure, (by_depth, by_width, dead)):
            for color, width in zip(COLORS * 2, spec.widths):
                own = [r for r in rows if r["width"] == width]
                depths = np.array([r["depth"] for r in own])
                prob, low, high = (
                    np.array([r[k] for r in own]) for k in ("probability", "low", "high")
                )
                seen = prob > 0
                by_depth.errorbar(
                    depths[seen],
                    prob[seen],
                    yerr=[prob[seen] - np.maximum(low[seen], floor), high[seen] - prob[seen]],
                    fmt="o",
                    ms=3.5,
                    color=color,
                    label=f"$n$ = {width}",
                )
                by_depth.plot(depths[~seen], high[~seen], "v", mfc="none", color=color, ms=4)
            if activation_kind(spec.activation) == "relu" and 1 in spec.widths:
                fine = np.arange(1, max(spec.depths) + 1)
                exact = relu_width1_collapse_probability(fine)
                by_depth.plot(fine, exact, color=COLORS[0], lw=1.0, label="exact, $n$ = 1")
            by_depth.set(xscale="log", yscale="log", xlabel="depth $L$", ylabel=label)
            by_depth.set_ylim(bottom=max(floor, 1e-7))
            # the depths with a collapse at some width: a line without points has no entry
            for color, depth in zip(COLORS * 2, spec.depths[:: max(1, len(spec.depths) // 4)]):
                own = [r for r in rows if r["depth"] == depth and r["probability"] > 0]
                if own:
                    by_width.plot(
                        [r["width"] for r in own],
                        [r["probability"] for r in own],
                        "o-",
                        ms=3.5,
                        color=color,
                        label=f"$L$ = {depth}",
                    )
            by_width.set(yscale="log", xlabel="width $n$", ylabel=label)
            widths = np.array(spec.widths, dtype=float)
            trials = spec.samples * len(spec.depths)
            measured_panel(
                dead,
                widths,
                [
                    sum(r["samples"] - r["started"] for r in rows if r["width"] == w) / trials
                    for w in spec.widths
                ],
                curve=(widths, 2.0**-widths, "$2^{-n}$"),
                xlabel="width $n$",
                ylabel=r"$P(\phi(Y_0) = 0)$",
                yscale="log",
            )
        return figure


def _relu_claims(spec: HayouFig4Spec, rows: list[dict[str, Any]]) -> list[Claim]:
    def cell(width: int, depth: int) -> dict[str, Any]:
        return next(r for r in rows if r["width"] == width and r["depth"] == depth)

    claims = []
    # C8, monotone: no significant increase between consecutive depths (fixed width) or
    # consecutive widths (fixed depth); one-sided Fisher exact tests, Bonferroni over all pairs.
    for axis, pairs in (
        (
            "depth",
            [
                (cell(n, a), cell(n, b))
                for n in spec.widths
                for a, b in itertools.pairwise(spec.depths)
            ],
        ),
        (
            "width",
            [
                (cell(a, d), cell(b, d))
                for d in spec.depths
                for a, b in itertools.pairwise(spec.widths)
            ],
        ),
    ):
        if not pairs:
            continue
        other = "n" if axis == "depth" else "L"
        tests = {
            f"{axis} {x[axis]} -> {y[axis]} at {other} = "
            f"{x['width'] if axis == 'depth' else x['depth']}": pvalue_test(
                _increase_pvalue((x["collapsed"], x["started"]), (y["collapsed"], y["started"])),
                level=spec.level,
                n=min(x["started"], y["started"]),
                test="one-sided Fisher exact",
            )
            for x, y in pairs
        }
        claims.append(
            Claim.family(
                "C8",
                f"P(collapse) is non-increasing in the {axis} (no significant increase)",
                tests,
                level=spec.level,
                what="pairs",
            )
        )
    # C8, strictly decreasing overall where the data resolve it
    first_depth, last_depth = spec.depths[0], spec.depths[-1]
    resolved = [n for n in spec.widths if cell(n, first_depth)["collapsed"] >= 10]
    if resolved:
        tests = {
            f"n = {n}": pvalue_test(
                _increase_pvalue(
                    (cell(n, last_depth)["collapsed"], cell(n, last_depth)["started"]),
                    (cell(n, first_depth)["collapsed"], cell(n, first_depth)["started"]),
                ),
                level=spec.level,
                n=cell(n, last_depth)["started"],
                test="one-sided Fisher exact",
            )
            for n in resolved
        }
        claims.append(
            Claim.family(
                "C8",
                f"P(collapse) decreases from L = {first_depth} to L = {last_depth} for every "
                f"width with >= 10 collapses at L = {first_depth} "
                f"(n in {{{', '.join(map(str, resolved))}}})",
                tests,
                level=spec.level,
                what="widths",
                reject=True,
            )
        )
    # C8, tends to 0: an exact upper confidence bound at the largest depth
    bounds = [
        float(
            binomial_interval(
                cell(n, last_depth)["collapsed"],
                cell(n, last_depth)["started"],
                level=1 - 2 * spec.level,
                method="clopper-pearson",
            ).high
        )
        for n in spec.widths
    ]
    claims.append(
        Claim.bound(
            "C8",
            f"P(collapse) -> 0 with depth: below 1e-3 at L = {last_depth}, every width",
            bound(
                max(bounds),
                below=1e-3,
                n=min(cell(n, last_depth)["started"] for n in spec.widths),
            ),
            statistic=f"largest one-sided {1 - spec.level:g} upper bound (Clopper-Pearson)",
            note="exact binomial bound",
        )
    )
    # C8, layer 0 of the limit: P(phi(X_0) = 0) = 2^-n, pooled over the depths
    tests = {}
    for n in spec.widths:
        own = [r for r in rows if r["width"] == n]
        dead = sum(r["samples"] - r["started"] for r in own)
        trials = sum(r["samples"] for r in own)
        tests[f"n = {n}: {dead} of {trials}"] = binomial_test(
            dead, trials, 2.0**-n, level=spec.level
        )
    claims.append(
        Claim.family(
            "C8",
            "P(phi(Y_0) = 0) = 2^-n (the only collapse of the infinite-depth limit)",
            tests,
            level=spec.level,
            what="widths",
        )
    )
    if 1 in spec.widths:
        own = [r for r in rows if r["width"] == 1]
        claims.append(
            Claim.family(
                "C6",
                "Width 1: P(collapse | Y_0 > 0) = 1 - (1 - Phi(-sqrt L))^L at every depth",
                {
                    f"L = {r['depth']}": binomial_test(
                        r["collapsed"], r["started"], r["exact"], level=spec.level
                    )
                    for r in own
                },
                level=spec.level,
                what="depths",
            )
        )
    return claims
