"""The experiments deeplimit can reproduce, by name, and the suites that group them.

``EXPERIMENTS`` is the registry: each experiment's name, the module of ``deeplimit.experiments``
that defines it, its suite (``"hayou"``, ``"chizat"``, ...: the report it belongs to) and its title,
in report order. Listing names (``deeplimit reproduce --help``) reads the table alone; an
experiment's module is imported when the experiment is first asked for. A new experiment adds
one line here (a test checks the table against the classes). ``deeplimit reproduce NAME``
accepts an experiment or a suite.
"""

from __future__ import annotations

import importlib
import inspect
from functools import cache
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from .base import Experiment

__all__ = [
    "EXPERIMENTS",
    "Entry",
    "experiment_names",
    "get_experiment",
    "suite_members",
    "suite_names",
]


class Entry(NamedTuple):
    module: str  # the module of deeplimit.experiments that defines the Experiment subclass
    suite: str
    title: str  # the class's title


EXPERIMENTS: dict[str, Entry] = {
    "coord-check": Entry(
        "coord_check",
        "beyond",
        "Coordinate check in width and depth for five parametrizations",
    ),
    "transfer": Entry(
        "transfer",
        "beyond",
        "Learning-rate transfer across depth and width on real data (five parametrizations)",
    ),
    "chizat-attention": Entry(
        "chizat_attention",
        "beyond",
        "Attention heads as the hidden width: error vs LM at init, vs M and L; lazy regime",
    ),
    "chizat-init": Entry(
        "chizat_init",
        "chizat",
        "Error at initialization vs its closed form; invariance in the split of LM (C1, C2)",
    ),
    "chizat-width": Entry(
        "chizat_width", "chizat", "Error against the width M at fixed L, D (C3, C8, C9)"
    ),
    "chizat-depth": Entry(
        "chizat_depth",
        "chizat",
        "Error against depth L and hidden width LM: Euler term 1/L, CLT term (C5)",
    ),
    "chizat-dim": Entry(
        "chizat_dim", "chizat", "Error against the embedding dimension D at fixed L, M (C4, C8)"
    ),
    "chizat-alpha": Entry(
        "chizat_alpha", "chizat", "Error against the residual-scale dial alpha (C6)"
    ),
    "chizat-lazy": Entry(
        "chizat_lazy",
        "chizat",
        "The lazy regime: unit movement ∝ 1/alpha, function movement constant (C7)",
    ),
    "chizat-phase": Entry(
        "chizat_phase",
        "chizat",
        "Measured phase diagram: residual-scale exponent a vs learning-rate exponent b",
    ),
    "chizat-joint": Entry(
        "chizat_joint",
        "chizat",
        "Joint limit L, M, D -> infinity: error against D/(LM) and 1/D, budget P = LMD (C10, C11)",
    ),
    "chizat-lazy-optimum": Entry(
        "chizat_lazy_optimum",
        "chizat",
        "The best alpha for the lazy ODE against the hidden width LM (C12)",
    ),
    "chizat-scaling": Entry(
        "chizat_scaling",
        "chizat",
        "The authors' linear scaling study: error vs D, L, M with one global fit "
        "a·D/(ML) + b/D + c/L² (C10, C11, C13, C14)",
    ),
    "chizat-grid": Entry(
        "chizat_grid",
        "chizat",
        "The authors' tanh (M, D) grid against the coupled largest reference: error vs D, M "
        "and the budget P = LMD (C15, C16)",
    ),
    "chizat-coordinates": Entry(
        "chizat_coordinates",
        "chizat",
        "Per-coordinate trajectories and histograms of h and of the backward variable against "
        "N(0, Gamma(s)[k, k]) (C17)",
    ),
    "hayou-claims": Entry(
        "hayou_claims",
        "hayou",
        "Claims without a figure: Lemma 6, martingale, second moment, identity, Lemma 2",
    ),
    "hayou-fig1": Entry(
        "hayou_fig1", "hayou", "Width-1 ReLU ResNet vs the GBM law (Hayou Fig. 1, Prop. 3)"
    ),
    "hayou-fig2": Entry(
        "hayou_fig2", "hayou", "The Ornstein-Uhlenbeck activation of Prop. 4 (Hayou Fig. 2)"
    ),
    "hayou-fig3": Entry(
        "hayou_fig3",
        "hayou",
        "Width-1 ResNet with the OU activation vs the OU law (Hayou Fig. 3, Prop. 4)",
    ),
    "hayou-fig4": Entry(
        "hayou_fig4",
        "hayou",
        "Probability of network collapse against depth and width (Hayou Fig. 4)",
    ),
    "hayou-fig5": Entry(
        "hayou_fig5",
        "hayou",
        "Quasi-GBM log-growth and the regime change between widths 3 and 4 (Hayou Fig. 5)",
    ),
    "hayou-fig6": Entry(
        "hayou_fig6",
        "hayou",
        "Depth-then-width vs width-then-depth: log-growth and coordinates (Hayou Fig. 6)",
    ),
    "hayou-fig7": Entry(
        "hayou_fig7", "hayou", "Correlation paths of finite-width ResNets (Hayou Fig. 7, Eq. 5)"
    ),
    "hayou-fig8": Entry(
        "hayou_fig8",
        "hayou",
        "Gradient norms back-propagated from a fixed last-layer gradient (Hayou Fig. 8)",
    ),
    "hayou-fig9": Entry(
        "hayou_fig9", "hayou", "Width-1 linear ResNet vs the GBM law (Hayou Fig. 9, Prop. 2)"
    ),
    "hayou-fig10": Entry(
        "hayou_fig9",
        "hayou",
        "Width-1 ReLU ResNet output vs the GBM-point mixture law (Hayou Fig. 10, Prop. 3)",
    ),
    "hayou-fig11": Entry(
        "hayou_fig11",
        "hayou",
        "Width-1 OU-activation ResNet outputs from several starts (Hayou Fig. 11, Prop. 4)",
    ),
    "hayou-fig12": Entry(
        "hayou_fig11",
        "hayou",
        "Width-1 OU-activation ResNet outputs for several theta (Hayou Fig. 12, Prop. 4)",
    ),
    "hayou-fig13": Entry(
        "hayou_fig13",
        "hayou",
        "Non-scaled log-growth across widths: concentration (Hayou Fig. 13, Thm 2)",
    ),
    "hayou-fig14": Entry(
        "hayou_fig13", "hayou", "Scaled log-growth at hidden layers, width 2 (Hayou Fig. 14)"
    ),
    "hayou-fig15": Entry(
        "hayou_fig13", "hayou", "Scaled log-growth at hidden layers, width 3 (Hayou Fig. 15)"
    ),
    "hayou-fig16": Entry(
        "hayou_fig13", "hayou", "Scaled log-growth at hidden layers, width 4 (Hayou Fig. 16)"
    ),
    "hayou-fig17": Entry(
        "hayou_fig13", "hayou", "Scaled log-growth at hidden layers, width 8 (Hayou Fig. 17)"
    ),
    "hayou-fig18": Entry(
        "hayou_fig13", "hayou", "Non-scaled log-growth at hidden layers, width 2 (Hayou Fig. 18)"
    ),
    "hayou-fig19": Entry(
        "hayou_fig13", "hayou", "Non-scaled log-growth at hidden layers, width 3 (Hayou Fig. 19)"
    ),
    "hayou-fig20": Entry(
        "hayou_fig13", "hayou", "Non-scaled log-growth at hidden layers, width 4 (Hayou Fig. 20)"
    ),
    "hayou-fig21": Entry(
        "hayou_fig13", "hayou", "Non-scaled log-growth at hidden layers, width 8 (Hayou Fig. 21)"
    ),
}


@cache
def _load(name: str) -> Experiment:
    from .base import Experiment

    module = importlib.import_module(f"{__package__}.{EXPERIMENTS[name].module}")
    for _, cls in inspect.getmembers(module, inspect.isclass):
        if issubclass(cls, Experiment) and getattr(cls, "name", None) == name:
            return cls()
    raise RuntimeError(
        f"the registry places {name!r} in {module.__name__}, which does not define it"
    )


def _experiments() -> dict[str, Experiment]:
    return {name: _load(name) for name in EXPERIMENTS}


def experiment_names() -> list[str]:
    return list(EXPERIMENTS)


def suite_names() -> list[str]:
    return sorted({entry.suite for entry in EXPERIMENTS.values() if entry.suite})


def suite_members(suite: str) -> list[Experiment]:
    """The experiments of ``suite`` in report order."""
    members = [_load(name) for name, entry in EXPERIMENTS.items() if entry.suite == suite]
    if not members:
        raise ValueError(f"suite must be one of {', '.join(suite_names())}, got {suite!r}")
    return members


def get_experiment(name: str) -> Experiment:
    experiments = EXPERIMENTS
    if name in suite_names():
        raise ValueError(
            f"{name!r} is a suite (a group of experiments: `deeplimit reproduce {name}` runs them "
            f"all), not one experiment; experiment must be one of {', '.join(experiments)}"
        )
    if name not in experiments:
        raise ValueError(
            f"experiment must be one of {', '.join(experiments)} (`deeplimit reproduce` also "
            f"takes a suite: {', '.join(suite_names())}), got {name!r}"
        )
    return _load(name)
