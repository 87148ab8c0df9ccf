"""Pieces shared by the Hayou experiments (hayou.md): spec field types with their validation,
activation classes (which paper claims apply to which activation), the log-growth simulation
that Figs. 5 and 13-21 share, small statistics helpers, the bases of the figure families
(``DepthSweep``: Figs. 1, 3, 9, 10; ``LogGrowthExperiment``: Figs. 5, 13) and the panels every
figure draws with (``panels``, ``density_panel``, ``measured_panel``, ``reference_line``) in
the house style of ``style.py``: maths labels, panel letters, statistics in the panel titles,
legends over no data, no caption in the image.

The activation of a figure is a spec field: a name or spec string of the library (``"relu"``,
``"gelu"``, ``"leaky:alpha=1,beta=0.5"``, ``"ou:alpha=2,beta=1,sigma=1"``), an ``Activation``
or, through the Python API, an elementwise callable. It is stored by its spec string, so a
user callable is stored as ``"custom:<name>"``: a label that plots and claims can use but that
cannot be run again from a stored spec.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Annotated, Any, ClassVar

import numpy as np
import scipy.stats as sps
import torch
import xarray as xr
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.layout_engine import ConstrainedLayoutEngine
from pydantic import AfterValidator, PlainSerializer

from ..activations import GELU, Activation, SiLU, SoftplusM, Tanh, parse_activation
from ..initialization.network import sample_resnet
from ..initialization.observables import observe_resnet
from ..rng import derive_seed
from .base import Experiment, ExperimentSpec, Progress
from .claims import Claim, bound, pvalue_test
from .registry import EXPERIMENTS
from .spec_fields import Depths, Level, Positive, PositiveInt, Samples, Seeds, Widths
from .style import ensure_log_ticks, finish_axes, panel_letters, styled

__all__ = [
    "COLORS",
    "KS_COLUMNS",
    "ActivationName",
    "DepthSweep",
    "DepthSweepSpec",
    "HayouExperiment",
    "LogGrowthExperiment",
    "LogGrowthRun",
    "LogGrowthSpec",
    "activation_kind",
    "columns",
    "density_panel",
    "depth_ks_claims",
    "ito_claims",
    "ks_by_width",
    "ks_result",
    "ks_text",
    "limit_claim",
    "log_growth_run",
    "log_growth_runs",
    "measured_panel",
    "one_sided_critical",
    "panels",
    "reference_line",
    "runnable_activation",
    "samples_for_width",
    "samples_text",
    "sizes_text",
    "skewness_standard_error",
    "standard_layers",
    "tex_number",
    "width1_depth_sweep",
    "width_panel",
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


class LogGrowthSpec(ExperimentSpec):
    """Networks per width: ``samples_for`` (``samples`` up to ``small_width_limit``, then the
    same work per width, at least ``wide_samples``)."""

    widths: Widths = (1, 2, 3, 4, 8, 16, 64, 256)
    depth: Seeds = 200
    samples: Samples = 100_000
    wide_samples: Samples = 2_000
    small_width_limit: PositiveInt = 8
    activation: ActivationName = "relu"
    q0: Positive = 1.0
    level: Level = 1e-3

    def samples_for(self, width: int) -> int:
        return samples_for_width(width, self.samples, self.small_width_limit, self.wide_samples)


def log_growth_runs(spec: Any, progress: Progress | None) -> Iterator[LogGrowthRun]:
    """The ``log_growth_run`` of every width of ``spec.widths`` (a ``LogGrowthSpec``)."""
    activation = runnable_activation(spec.activation)
    total = sum(spec.samples_for(n) * n for n in spec.widths)
    done = 0
    for width in spec.widths:
        yield log_growth_run(
            width,
            spec.depth,
            activation,
            samples=spec.samples_for(width),
            q0=spec.q0,
            seed=spec.seed,
            device=spec.device,
        )
        done += spec.samples_for(width) * width
        if progress is not None:
            progress(done, total)


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


def ks_result(row: dict[str, Any], *, level: float, n_key: str, prefix: str = "") -> Any:
    """The KS test stored in ``row`` (``{prefix}ks_pvalue``, ``{prefix}ks_statistic``)."""
    return pvalue_test(
        row[f"{prefix}ks_pvalue"],
        level=level,
        n=row[n_key],
        test="KS",
        statistic=row[f"{prefix}ks_statistic"],
    )


def ks_by_width(rows: list[dict[str, Any]], **how: Any) -> dict[str, Any]:
    """``{"n = 4": test, ...}``: the KS test of every width's row (``ks_result``)."""
    return {f"n = {r['width']}": ks_result(r, **how) for r in rows}


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
        return ks_result(row, level=level, n_key=n_key)

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


# --------------------------------------------------------------------------------------------
# the experiments' common declarations


def columns(text: str) -> dict[str, str]:
    """``"depth: L; n: n"`` as ``{"depth": "L", "n": "n"}``: the statistics shown in printed
    tables (``Experiment.table``) with their column labels."""
    return dict(entry.split(": ", 1) for entry in text.split("; "))


class HayouExperiment(Experiment):
    """A figure of the Hayou suite: ``full_scale`` and ``smoke_scale`` are the spec fields
    that differ from the fast defaults at paper and at smoke scale. The title is the
    registry's (one copy of it) and the place in the report is the figure's number."""

    suite = "hayou"

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        name = cls.__dict__.get("name")
        if name is not None:
            cls.title = cls.__dict__.get("title", EXPERIMENTS[name].title)
            number = name.removeprefix("hayou-fig")
            cls.order = cls.__dict__.get("order", int(number) if number.isdigit() else 0)

    full_scale: ClassVar[dict[str, Any]] = {}
    smoke_scale: ClassVar[dict[str, Any]] = {}

    def full_settings(self) -> dict[str, Any]:
        return dict(self.full_scale)

    def smoke_settings(self) -> dict[str, Any]:
        return dict(self.smoke_scale)


class DepthSweepSpec(ExperimentSpec):
    """Depths (ascending: the first is the 'small' depth, the last the 'large' one)."""

    depths: Depths = (5, 50, 500)
    samples: Samples = 20_000
    level: Level = 1e-3


KS_COLUMNS = "depth: L; n: n; ks_statistic: KS D; ks_pvalue: KS p; "


class DepthSweep(HayouExperiment):
    """Width-1 networks at every depth of ``spec.depths`` (Figs. 1, 3, 9, 10): one histogram
    a depth against the limit density, with the KS test in the panel's title. A figure says
    what its panels show (``panel``) and may add panels after them (``draw_more``)."""

    full_scale: ClassVar[dict[str, Any]] = {
        "depths": (5, 10, 20, 50, 100, 500, 2000),
        "samples": 200_000,
    }
    smoke_scale: ClassVar[dict[str, Any]] = {"depths": (5, 50), "samples": 1000}
    # the entries of the legend and the depth panel (an index into the depths) that shows it
    legend: ClassVar[dict[str, str]] = {}
    legend_panel: ClassVar[int] = -1
    more_panels: ClassVar[int] = 0
    # the paper claim that the KS tests check, the row key of their sample size, and whether
    # the claim states the test's resolution
    ks_claim: ClassVar[str]
    ks_count: ClassVar[str] = "n"
    ks_resolution: ClassVar[bool] = True

    def ks_law(self, spec: Any, rows: list[dict[str, Any]]) -> tuple[str, str]:
        """The law the KS tests compare with (large depth), and the statement that it is
        visibly not reached at the smallest depth."""
        raise NotImplementedError

    def more_claims(
        self, dataset: xr.Dataset, spec: Any, rows: list[dict[str, Any]]
    ) -> list[Claim]:
        """The figure's claims after the KS ones."""
        return []

    def check(self, dataset: xr.Dataset, spec: Any) -> list[Claim]:
        rows = self.summarize(dataset, spec)
        law, not_law = self.ks_law(spec, rows)
        return [
            *depth_ks_claims(
                self.ks_claim,
                self.name.removeprefix("hayou-"),
                rows,
                level=spec.level,
                law=law,
                not_law=not_law,
                n_key=self.ks_count,
                resolution=self.ks_resolution,
            ),
            *self.more_claims(dataset, spec, rows),
        ]

    def panel(self, dataset: xr.Dataset, spec: Any, row: dict[str, Any]) -> dict[str, Any]:
        """``density_panel`` arguments for the depth of ``row``; ``note``: a title line."""
        raise NotImplementedError

    def draw_more(self, axes: list[Axes], rows: list[dict[str, Any]], spec: Any) -> None:
        """Draw the ``more_panels`` panels after the histograms."""

    def draw(self, dataset: xr.Dataset, spec: Any) -> Figure:
        rows = self.summarize(dataset, spec)
        legend_row = rows[self.legend_panel]
        with panels(len(rows) + self.more_panels) as (figure, axes):
            for ax, row in zip(axes, rows):
                options = self.panel(dataset, spec, row)
                note = options.pop("note", "")
                density_panel(
                    ax,
                    title=f"$L$ = {row['depth']}: {ks_text(row)}" + (f"\n{note}" if note else ""),
                    **options,
                    **(self.legend if row is legend_row else {}),
                )
            axes[0].set_ylabel("density")
            self.draw_more(axes[len(rows) :], rows, spec)
        return figure


def width1_depth_sweep(
    spec: Any,
    activation: Any,
    progress: Progress | None,
    *,
    seed: Callable[[int], int] | None = None,
    ends: bool = False,
    **start: Any,
) -> np.ndarray:
    """``Y_L`` of ``spec.samples`` width-1 networks at every depth of ``spec.depths`` (with
    ``ends``: ``(Y_0, Y_L)``), from the starting point ``start`` (``x=`` or ``y0=``), with the
    seed ``seed(depth)`` (default ``spec.seed``): shape ``(depths, samples, ...)``."""
    total = spec.samples * sum(spec.depths)
    outputs = []
    for i, depth in enumerate(spec.depths):

        def report(done: int, _total: int, offset: int = spec.samples * sum(spec.depths[:i])):
            if progress is not None:
                progress(offset + done, total)

        paths = sample_resnet(
            1,
            depth,
            activation,
            samples=spec.samples,
            **({"record": [0, depth]} if ends else {}),
            seed=spec.seed if seed is None else seed(depth),
            device=spec.device,
            progress=report,
            **start,
        )
        outputs.append(paths.cpu().numpy()[..., 0])
    return np.stack(outputs)


class LogGrowthExperiment(HayouExperiment):
    """Figs. 5 and 13: the log-growth of the same networks at every width."""

    full_scale: ClassVar[dict[str, Any]] = {
        "depth": 1000,
        "samples": 400_000,
        "wide_samples": 10_000,
    }
    smoke_scale: ClassVar[dict[str, Any]] = {
        "widths": (2, 3, 4, 16),
        "depth": 20,
        "samples": 400,
        "wide_samples": 200,
    }


# --------------------------------------------------------------------------------------------
# drawing: the house style (style.py) and the panels the figures share

DATA_COLOR = "#8fb3d9"
OU_COLOR = "#a9cba4"  # histograms of the OU-activation figures
LAW_COLOR = "#c0392b"
POINT_COLOR = "#1f4e79"
COLORS = ("#1f4e79", "#c55a11", "#548235", "#7030a0", "#bf9000", "#2e75b6", "#c00000", "#7f7f7f")
BLUES = ("#9dc3e6", "#5b9bd5", "#2e75b6", "#1f4e79", "#0b2a4a", "#000000")
# inches kept free under the panels for the provenance line that reproduce adds
FOOTER = 0.18
MARGIN = 0.1
LEFT_MARGIN = 0.06


@contextlib.contextmanager
def panels(
    count: int,
    *,
    columns: int = 4,
    size: tuple[float, float] = (2.5, 2.1),
    shared_legend: bool = False,
) -> Iterator[tuple[Figure, list[Axes]]]:
    """A figure of ``count`` panels (rows of at most ``columns``, each ``size`` inches) in the
    house style, laid out so that no label is clipped or collides with the next panel. When the
    block ends, every panel is finished: labelled log ticks, its legend (if any artist has a
    label) where it hides the fewest points, and panel letters; with ``shared_legend``, one
    legend of all the labelled artists above the panels instead (for panels that data fill).
    Titles and captions stay out of the image (the report and the documentation show them)."""
    columns = min(columns, count)
    rows = -(-count // columns)
    with styled():
        width, height = size[0] * columns, size[1] * rows + FOOTER
        figure = Figure(figsize=(width, height))
        FigureCanvasAgg(figure)
        # the footer's strip, a margin on the right for a tick label at the last tick, and a
        # thin one on the left (the constrained layout puts the y label at the very edge,
        # where the rendering of the saved image can cut its first pixels)
        left = LEFT_MARGIN / width
        frame = (left, FOOTER / height, 1 - (MARGIN + LEFT_MARGIN) / width, 1 - FOOTER / height)
        figure.set_layout_engine(ConstrainedLayoutEngine(rect=frame))
        grid = figure.subplots(rows, columns, squeeze=False)
        axes = [ax for row in grid for ax in row]
        for ax in axes[count:]:
            ax.remove()
        axes = axes[:count]
        yield figure, axes
        if shared_legend:
            entries = {}
            for ax in axes:
                for handle, label in zip(*ax.get_legend_handles_labels()):
                    entries.setdefault(label, handle)
            figure.legend(
                entries.values(), entries.keys(), loc="outside upper center", ncol=len(entries)
            )
        for ax in axes:
            ensure_log_ticks(ax)
        if count > 1:
            panel_letters(axes)
        # lay out once (ticks are made here, in the style), then keep the layout: the
        # legends go inside the panels, where data are not
        figure.get_layout_engine().execute(figure)
        figure.set_layout_engine("none")
        for ax in axes:
            finish_axes(ax, legend=not shared_legend)


def density_panel(
    ax: Axes,
    *,
    title: str,
    xlabel: str,
    values: np.ndarray | None = None,
    span: tuple[float, float] | None = None,
    bins: int = 60,
    stairs: tuple[np.ndarray, np.ndarray] | None = None,
    law: Callable[[np.ndarray], np.ndarray] | None = None,
    law_label: str | None = None,
    data_label: str | None = None,
    color: str = DATA_COLOR,
) -> None:
    """A histogram (density) against a limit density: the histogram of ``values`` with
    ``bins`` bins on ``span`` (default: their range), or given ``stairs = (density, edges)``,
    and the curve ``law(x)`` on the histogram's range; ``title`` can carry the panel's
    statistics on further lines. Labels name the entries of the legend (none without)."""
    if stairs is None:
        values = np.asarray(values, dtype=float)
        values = values[np.isfinite(values)]
        low, high = span if span is not None else (float(values.min()), float(values.max()))
        edges = np.linspace(low, high, bins + 1)
        stairs = (histogram(values, edges), edges)
    density, edges = stairs
    ax.stairs(density, edges, fill=True, color=color, label=data_label)
    if law is not None:
        grid = np.linspace(edges[0], edges[-1], 400)
        ax.plot(grid, law(grid), color=LAW_COLOR, lw=1.4, label=law_label)
    ax.set_xlim(edges[0], edges[-1])
    if data_label or law_label:  # room for the legend above the histogram
        ax.set_ylim(0, 1.6 * max(ax.dataLim.y1, 1e-12))
    else:
        ax.set_ylim(bottom=0)
    ax.set_title(title, fontsize=8)
    ax.set_xlabel(xlabel)


def measured_panel(
    ax: Axes,
    x: Sequence[float],
    y: Sequence[float],
    *,
    error: Sequence[float] | None = None,
    label: str | None = "Monte Carlo",
    color: str = POINT_COLOR,
    curve: tuple[Any, Any, str] | None = None,
    xlabel: str = "",
    ylabel: str = "",
    xscale: str = "linear",
    yscale: str = "linear",
) -> None:
    """Measured points (with ``± error`` bars where given; on a log axis only the positive
    ones) and an exact or limit ``curve = (x, y, label)``."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    shown = np.isfinite(y) & ((y > 0) if yscale == "log" else True)
    if error is None:
        ax.plot(x[shown], y[shown], "o", color=color, label=label)
    else:
        error = np.asarray(error, dtype=float)[shown]
        ax.errorbar(x[shown], y[shown], yerr=error, fmt="o", ms=3.5, color=color, label=label)
    if curve is not None:
        ax.plot(curve[0], curve[1], color=LAW_COLOR, lw=1.1, label=curve[2])
    ax.set(xscale=xscale, yscale=yscale, xlabel=xlabel, ylabel=ylabel)


def width_panel(
    ax: Axes,
    rows: list[dict[str, Any]],
    key: str,
    se_key: str,
    *,
    label: str = r"Monte Carlo ($\pm 3$ SE)",
    **options: Any,
) -> None:
    """``measured_panel`` of ``row[key] ± 3 row[se_key]`` against the width of each row."""
    measured_panel(
        ax,
        [r["width"] for r in rows],
        [r[key] for r in rows],
        error=[3 * r[se_key] for r in rows],
        label=label,
        xlabel="width $n$",
        **options,
    )


def sizes_text(spec: Any) -> str:
    """``"Activation relu, depth L = 200, widths n in {2, 5}"``: the start of a caption."""
    widths = ", ".join(str(n) for n in spec.widths)
    return f"Activation {spec.activation}, depth L = {spec.depth}, widths n in {{{widths}}}"


def reference_line(
    ax: Axes,
    *,
    x: float | None = None,
    y: float | None = None,
    extent: tuple[float, float] | None = None,
    **style: Any,
):
    """A vertical (``x``) or horizontal (``y``) line across the panel (or along ``extent``),
    drawn as a curve of many points so that a legend placed later avoids it too. The limits
    stay as they are, widened where needed to show the line inside the frame."""
    vertical = x is not None
    value = float(x if vertical else y)
    limits = [list(ax.get_xlim()), list(ax.get_ylim())]
    across = limits[0 if vertical else 1]
    log = (ax.get_xscale() if vertical else ax.get_yscale()) == "log"
    if not log or value > 0:
        scale = (lambda v: math.log(v)) if log else (lambda v: v)
        margin = 0.04 * (scale(across[1]) - scale(across[0]))
        if scale(value) - margin < scale(across[0]):
            across[0] = math.exp(scale(value) - margin) if log else value - margin
        if scale(value) + margin > scale(across[1]):
            across[1] = math.exp(scale(value) + margin) if log else value + margin
    along = extent or tuple(limits[1 if vertical else 0])
    along_log = (ax.get_yscale() if vertical else ax.get_xscale()) == "log"
    points = np.geomspace(*along, 60) if along_log else np.linspace(*along, 60)
    constant = np.full(points.size, value)
    xy = (constant, points) if vertical else (points, constant)
    (line,) = ax.plot(*xy, **{"color": "k", "lw": 0.8, "ls": ":", **style})
    ax.set_xlim(*limits[0])
    ax.set_ylim(*limits[1])
    return line


def ks_text(row: dict[str, Any]) -> str:
    """``"$D$ = 0.0372, $p$ = 0.48"``: a KS test's statistic and p-value for a panel (maths
    for the symbols only: mathtext parses each distinct string once, numbers vary)."""
    return f"$D$ = {row['ks_statistic']:.4f}, $p$ = {tex_number(row['ks_pvalue'])}"


def tex_number(value: float, digits: int = 2) -> str:
    """``0.0072`` as it is, ``3.8e-11`` as mathtext ``3.8\times10^{-11}``."""
    if value == 0 or 1e-3 <= abs(value) < 1e3 or not math.isfinite(value):
        return f"{value:.{digits}g}"
    mantissa, exponent = f"{value:.{digits - 1}e}".split("e")
    return rf"${mantissa}\times10^{{{int(exponent)}}}$"
